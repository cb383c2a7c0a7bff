//! Helpers shared by the integration tests.

use std::path::{Path, PathBuf};

use mdhub_log::{Log, LogConfig, RecordIn};

/// A small-segment config so tests exercise rolling.
pub(crate) fn config(dir: &Path, segment_bytes: u64) -> LogConfig {
    LogConfig {
        dir: dir.to_path_buf(),
        partitions: 4,
        segment_bytes,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

/// The value stored at `offset`: deterministic, 0-199 bytes.
pub(crate) fn value_for(offset: u64) -> Vec<u8> {
    let len = (offset.wrapping_mul(2_654_435_761) % 200) as usize;
    (0..len)
        .map(|i| (offset as usize).wrapping_mul(31).wrapping_add(i) as u8)
        .collect()
}

/// The key stored at `offset`.
pub(crate) fn key_for(offset: u64) -> Vec<u8> {
    format!("k{}", offset % 17).into_bytes()
}

/// Appends `n` records whose key/value/timestamp derive from their offset.
pub(crate) fn append_derived(log: &Log, topic: &str, partition: u32, n: u64) {
    let hw = log.high_watermark(topic, partition).expect("hw");
    // Buffered but unflushed records also take offsets; derive from the returned ones.
    for next in hw..hw + n {
        let (k, v) = (key_for(next), value_for(next));
        let rec = RecordIn {
            timestamp: next as i64 * 10,
            key: &k,
            value: &v,
            headers: &[],
        };
        let off = log.append(topic, partition, &rec).expect("append");
        assert_eq!(off, next, "offsets are assigned consecutively");
    }
}

/// One owned record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owned {
    pub(crate) offset: u64,
    pub(crate) timestamp: i64,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    pub(crate) headers: Vec<(String, Vec<u8>)>,
}

/// Reads every record from `from` to the high watermark.
pub(crate) fn read_all(log: &Log, topic: &str, partition: u32, from: u64) -> Vec<Owned> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let r = log
            .read(topic, partition, next, 1000, 1 << 20, |v| {
                out.push(Owned {
                    offset: v.offset,
                    timestamp: v.timestamp,
                    key: v.key.to_vec(),
                    value: v.value.to_vec(),
                    headers: v
                        .headers()
                        .map(|(n, v)| (n.to_owned(), v.to_vec()))
                        .collect(),
                })
            })
            .expect("read");
        if r.records == 0 {
            return out;
        }
        next = r.next_offset;
    }
}

/// Checks that records `[start, hw)` are present, contiguous and derived from their offset.
pub(crate) fn check_derived(log: &Log, topic: &str, partition: u32) -> u64 {
    let start = log.start_offset(topic, partition).expect("start");
    let hw = log.high_watermark(topic, partition).expect("hw");
    let recs = read_all(log, topic, partition, start);
    assert_eq!(
        recs.len() as u64,
        hw - start,
        "every retained record is readable"
    );
    for (i, r) in recs.iter().enumerate() {
        let o = start + i as u64;
        assert_eq!(r.offset, o, "offsets contiguous");
        assert_eq!(r.value, value_for(o), "value of offset {o}");
        assert_eq!(r.key, key_for(o), "key of offset {o}");
    }
    hw
}

/// The segment files of partition 0 of topic `t`, oldest first.
pub(crate) fn segment_files(dir: &Path) -> Vec<PathBuf> {
    let mut logs: Vec<_> = std::fs::read_dir(dir.join("topics/t/0"))
        .expect("partition directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    logs.sort();
    logs
}
