//! Model-based proptest: random appends, batches, flushes, reopens and reads
//! against an in-memory model of every partition.

use mdhub_log::{Log, LogConfig, RecordIn};
use proptest::prelude::*;

use crate::common::read_all;

/// One partition of the model: every appended record and how many are flushed.
type ModelPartition = (Vec<(i64, Vec<u8>, Vec<u8>)>, usize);

#[derive(Debug, Clone)]
enum Op {
    Append {
        partition: u32,
        records: Vec<(i64, Vec<u8>, Vec<u8>)>,
    },
    Flush,
    Reopen,
    Read {
        partition: u32,
        from_frac: f64,
        max: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let rec = (
        any::<i64>(),
        proptest::collection::vec(any::<u8>(), 0..12),
        proptest::collection::vec(any::<u8>(), 0..300),
    );
    prop_oneof![
        5 => (0..3u32, proptest::collection::vec(rec, 1..30)).prop_map(|(partition, records)| Op::Append { partition, records }),
        3 => Just(Op::Flush),
        1 => Just(Op::Reopen),
        3 => (0..3u32, 0.0..1.0f64, 1..50usize).prop_map(|(partition, from_frac, max)| Op::Read { partition, from_frac, max }),
    ]
}

fn cfg(dir: &std::path::Path) -> LogConfig {
    LogConfig {
        dir: dir.into(),
        segment_bytes: 2048,
        index_interval_bytes: 128,
        ..LogConfig::default()
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn log_behaves_like_a_vec_per_partition(ops in proptest::collection::vec(op(), 1..40)) {
        let tmp = tempfile::tempdir().unwrap();
        let mut log = Log::open(cfg(tmp.path())).unwrap();
        log.create_topic("m", 3).unwrap();
        // Per partition: all appended records and how many are flushed.
        let mut model: Vec<ModelPartition> = vec![(Vec::new(), 0); 3];
        for op in ops {
            match op {
                Op::Append { partition, records } => {
                    let recs = &mut model[partition as usize].0;
                    let range = log.append_batch("m", partition, records.iter().map(|(t, k, v)| RecordIn { timestamp: *t, key: k, value: v, headers: &[] })).unwrap();
                    prop_assert_eq!(range.start, recs.len() as u64);
                    recs.extend(records);
                    prop_assert_eq!(range.end, recs.len() as u64);
                    // Rolling a segment or a full buffer writes records out early.
                    let hw = log.high_watermark("m", partition).unwrap() as usize;
                    prop_assert!(model[partition as usize].1 <= hw && hw <= range.end as usize);
                    model[partition as usize].1 = hw;
                }
                Op::Flush => {
                    log.flush().unwrap();
                    for m in &mut model { m.1 = m.0.len(); }
                }
                Op::Reopen => {
                    drop(log); // Drop flushes buffered records.
                    for m in &mut model { m.1 = m.0.len(); }
                    log = Log::open(cfg(tmp.path())).unwrap();
                }
                Op::Read { partition, from_frac, max } => {
                    let (recs, flushed) = &model[partition as usize];
                    let from = (*flushed as f64 * from_frac) as u64;
                    let mut got = Vec::new();
                    let out = log.read("m", partition, from, max, usize::MAX, |r| got.push((r.offset, r.timestamp, r.key.to_vec(), r.value.to_vec()))).unwrap();
                    let expect: Vec<_> = recs[from as usize..(*flushed).min(from as usize + max)]
                        .iter().enumerate().map(|(i, (t, k, v))| (from + i as u64, *t, k.clone(), v.clone())).collect();
                    prop_assert_eq!(out.records, expect.len());
                    prop_assert_eq!(got, expect);
                }
            }
            for (p, (recs, flushed)) in model.iter().enumerate() {
                prop_assert_eq!(log.high_watermark("m", p as u32).unwrap(), *flushed as u64);
                let _ = recs;
            }
        }
        log.flush().unwrap();
        for (p, (recs, _)) in model.iter().enumerate() {
            let all = read_all(&log, "m", p as u32, 0);
            prop_assert_eq!(all.len(), recs.len());
            for (r, (t, k, v)) in all.iter().zip(recs) {
                prop_assert_eq!((&r.timestamp, &r.key, &r.value), (t, k, v));
            }
        }
    }
}
