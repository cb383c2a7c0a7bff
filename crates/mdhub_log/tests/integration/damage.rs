//! Damage after the fact (a bad disk, a flipped bit), and the two promises
//! about it: records that readers may have seen are never silently replaced
//! by others at the same offsets (the epoch changes), and damage inside a
//! closed segment costs the damaged records only, with the reader told.

use std::fs;
use std::path::Path;

use mdhub_log::{Error, Log};

use crate::common::{append_derived, config, key_for, read_all, segment_files, value_for};

const SEGMENT: u64 = 64 << 10;

/// Byte position of `offset` in the segment that starts at `base` (records
/// carry no headers: 32 bytes, key, value).
fn position_of(base: u64, offset: u64) -> u64 {
    (base..offset)
        .map(|o| 32 + key_for(o).len() as u64 + value_for(o).len() as u64)
        .sum()
}

/// The base offset in a segment file's name.
fn base_of(segment: &Path) -> u64 {
    segment
        .file_stem()
        .and_then(|s| s.to_str())
        .and_then(|s| s.parse().ok())
        .expect("a segment file name")
}

fn flip(path: &Path, at: u64) {
    let mut bytes = fs::read(path).unwrap();
    bytes[at as usize] ^= 0x5a;
    fs::write(path, bytes).unwrap();
}

fn written(dir: &Path, n: u64) -> String {
    let log = Log::open(config(dir, SEGMENT)).unwrap();
    log.create_topic("t", 1).unwrap();
    append_derived(&log, "t", 0, n);
    let epoch = log.epoch().to_owned();
    log.close().unwrap();
    epoch
}

/// Reads `[from, hw)` the way a consumer does: on damage, skip it and go on.
/// Returns the offsets read and the damaged ranges skipped.
fn read_skipping(log: &Log, from: u64) -> (Vec<u64>, Vec<(u64, u64)>) {
    let hw = log.high_watermark("t", 0).unwrap();
    let (mut got, mut skipped, mut next) = (Vec::new(), Vec::new(), from);
    while next < hw {
        match log.read("t", 0, next, 500, 1 << 20, |r| {
            assert_eq!(r.value, value_for(r.offset), "offset {}", r.offset);
            got.push(r.offset);
        }) {
            Ok(out) => next = out.next_offset,
            Err(Error::Corrupt { .. }) => {
                let resume = log.skip_damaged("t", 0, next).unwrap();
                assert!(resume > next, "skipping moves forward");
                skipped.push((next, resume));
                next = resume;
            }
            Err(e) => panic!("read at {next}: {e}"),
        }
    }
    (got, skipped)
}

#[test]
fn a_damaged_record_in_a_closed_segment_costs_that_record_only() {
    for (case, at_field, drop_index) in [
        ("crc, index kept", 20, false),
        ("crc, index rebuilt", 20, true),
        ("length field, index kept", 1, false),
        ("length field, index rebuilt", 3, true),
    ] {
        let tmp = tempfile::tempdir().unwrap();
        let epoch = written(tmp.path(), 1500);
        let segs = segment_files(tmp.path());
        assert!(segs.len() >= 3, "the test needs closed segments");
        let victim = 100; // in the first, closed segment
        flip(&segs[0], position_of(0, victim) + at_field);
        if drop_index {
            fs::remove_file(segs[0].with_extension("index")).unwrap();
        }
        let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
        assert_eq!(log.epoch(), epoch, "{case}: nothing cut, the epoch stays");
        assert_eq!(log.high_watermark("t", 0).unwrap(), 1500, "{case}");
        assert_eq!(
            segment_files(tmp.path()).len(),
            segs.len(),
            "{case}: no segment dropped"
        );
        let (got, skipped) = read_skipping(&log, 0);
        assert_eq!(skipped, vec![(victim, victim + 1)], "{case}");
        let want: Vec<u64> = (0..1500).filter(|&o| o != victim).collect();
        assert_eq!(got, want, "{case}: every other record is read");
        // Appends continue after the damage as before.
        append_derived(&log, "t", 0, 10);
        log.flush().unwrap();
        assert_eq!(log.high_watermark("t", 0).unwrap(), 1510);
    }
}

#[test]
fn a_damaged_newest_segment_is_cut_under_a_new_epoch() {
    let tmp = tempfile::tempdir().unwrap();
    let epoch = written(tmp.path(), 1500);
    let segs = segment_files(tmp.path());
    let active = segs.last().unwrap();
    let base = base_of(active);
    let victim = base + 5;
    flip(active, position_of(base, victim) + 20);

    let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
    assert_eq!(
        log.high_watermark("t", 0).unwrap(),
        victim,
        "cut at the damage"
    );
    assert_ne!(
        log.epoch(),
        epoch,
        "records readers saw were cut: new epoch"
    );
    assert_eq!(log.previous_epoch(), Some(epoch.as_str()));
    let meta = fs::read_to_string(tmp.path().join("meta")).unwrap();
    assert!(meta.contains(&format!("epoch={}\n", log.epoch())), "{meta}");
    assert!(
        meta.contains(&format!("previous_epoch={epoch}\n")),
        "{meta}"
    );
    let new_epoch = log.epoch().to_owned();
    drop(log);
    // The change is durable and happens once: a clean reopen keeps it.
    let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
    assert_eq!(log.epoch(), new_epoch);
    assert_eq!(log.previous_epoch(), None);
    assert_eq!(read_all(&log, "t", 0, 0).len() as u64, victim);
}

#[test]
fn a_machine_crash_changes_the_epoch_a_process_crash_does_not() {
    let tmp = tempfile::tempdir().unwrap();
    let epoch = written(tmp.path(), 10);
    assert!(
        !tmp.path().join("running").exists(),
        "a clean close removes the marker"
    );
    // What a process killed on this boot leaves behind.
    let boot = fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
    fs::write(
        tmp.path().join("running"),
        format!("boot={}\npid=1\n", boot.trim()),
    )
    .unwrap();
    {
        let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
        assert_eq!(log.epoch(), epoch, "kill -9 loses nothing flushed");
        assert!(
            tmp.path().join("running").exists(),
            "an open log is marked running"
        );
    }
    // What a power loss leaves behind: the marker of another boot.
    fs::write(
        tmp.path().join("running"),
        "boot=00000000-dead-beef-0000-000000000000\npid=1\n",
    )
    .unwrap();
    let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
    assert_ne!(
        log.epoch(),
        epoch,
        "unsynced records may be gone: new epoch"
    );
    assert_eq!(read_all(&log, "t", 0, 0).len(), 10);
}

#[test]
fn verify_reports_damage_by_partition_segment_and_offset() {
    let tmp = tempfile::tempdir().unwrap();
    written(tmp.path(), 1500);
    let clean = mdhub_log::verify(tmp.path(), |_| {}).unwrap();
    assert!(clean.damage.is_empty(), "{:?}", clean.damage);
    assert_eq!(clean.records, 1500);
    assert_eq!(clean.partitions, 1);
    let segs = segment_files(tmp.path());
    let (victim_a, victim_b) = (100, 103);
    flip(&segs[0], position_of(0, victim_a) + 20);
    flip(&segs[0], position_of(0, victim_b) + 1);
    let mut seen = Vec::new();
    let report = mdhub_log::verify(tmp.path(), |p| seen.push((p.done, p.total))).unwrap();
    assert_eq!(seen.len(), segs.len(), "progress after each segment");
    assert_eq!(seen.last().map(|p| p.0), seen.last().map(|p| p.1));
    assert_eq!(report.records, 1498);
    let found: Vec<(u64, Option<u64>, u64)> = report
        .damage
        .iter()
        .map(|d| (d.offset, d.resume, d.position))
        .collect();
    assert_eq!(
        found,
        vec![
            (victim_a, Some(victim_a + 1), position_of(0, victim_a)),
            (victim_b, Some(victim_b + 1), position_of(0, victim_b)),
        ]
    );
    assert!(
        report
            .damage
            .iter()
            .all(|d| d.topic == "t" && d.partition == 0 && d.segment == segs[0])
    );
    assert!(
        report.damage[0].reason.contains("CRC"),
        "{}",
        report.damage[0].reason
    );
    // A running log's preallocated tail is not damage.
    let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
    append_derived(&log, "t", 0, 5);
    log.flush().unwrap();
    let live = mdhub_log::verify(tmp.path(), |_| {}).unwrap();
    assert_eq!(live.damage.len(), 2, "{:?}", live.damage);
    assert_eq!(live.records, 1503);
}

#[test]
fn the_scrub_finds_damage_in_closed_segments_before_a_reader_does() {
    let tmp = tempfile::tempdir().unwrap();
    written(tmp.path(), 1500);
    let segs = segment_files(tmp.path());
    let victim = 200;
    flip(&segs[0], position_of(0, victim) + 20);
    let cfg = mdhub_log::LogConfig {
        scrub_mb_per_sec: 1000,
        scrub_interval_secs: 1,
        ..config(tmp.path(), SEGMENT)
    };
    let log = Log::open(cfg).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        let s = log.scrub_status();
        if s.passes >= 1 || std::time::Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.passes >= 1, "a pass within 20 s: {status:?}");
    assert_eq!(
        status.segments as usize % (segs.len() - 1),
        0,
        "closed segments only"
    );
    let found: Vec<(u64, Option<u64>)> =
        status.damage.iter().map(|d| (d.offset, d.resume)).collect();
    assert_eq!(found, vec![(victim, Some(victim + 1))]);
    assert_eq!(status.damage[0].segment, segs[0]);
}

#[test]
fn repair_quarantines_damage_cuts_the_newest_segment_and_keeps_the_rest() {
    let tmp = tempfile::tempdir().unwrap();
    let epoch = written(tmp.path(), 1500);
    let segs = segment_files(tmp.path());
    flip(&segs[0], position_of(0, 100) + 20);
    let newest = segs.last().unwrap();
    let base = base_of(newest);
    flip(newest, position_of(base, base + 3) + 20);

    let r = mdhub_log::repair(config(tmp.path(), SEGMENT)).unwrap();
    assert_eq!(r.before.len(), 2, "{:?}", r.before);
    assert_eq!(r.quarantined.len(), 2);
    let kept = fs::read(&r.quarantined[0]).unwrap();
    let original_len = (position_of(0, 101) - position_of(0, 100)) as usize;
    assert_eq!(
        kept.len(),
        original_len,
        "the damaged record's bytes, exactly"
    );
    assert!(r.indexes_rebuilt >= segs.len() - 1);
    assert_eq!(
        r.previous_epoch.as_deref(),
        Some(epoch.as_str()),
        "the cut changed the epoch"
    );
    assert_ne!(r.epoch, epoch);
    let left: Vec<u64> = r.after.iter().map(|d| d.offset).collect();
    assert_eq!(
        left,
        vec![100],
        "closed-segment damage stays, skipped by readers"
    );
    let log = Log::open(config(tmp.path(), SEGMENT)).unwrap();
    assert_eq!(log.high_watermark("t", 0).unwrap(), base + 3);
    assert_eq!(log.epoch(), r.epoch);
    // Refused while the log is open.
    assert!(matches!(
        mdhub_log::repair(config(tmp.path(), SEGMENT)),
        Err(Error::Locked { .. })
    ));
}
