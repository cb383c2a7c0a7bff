//! Retention by size and by age (with a fake clock).

use mdhub_log::{Error, Log, LogConfig};

use crate::common::{append_derived, check_derived, config};

const HOUR: i64 = 3_600_000_000_000;

#[test]
fn retention_by_size_keeps_the_cap_and_the_active_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_bytes: 10_000,
        retention_hours: 0,
        ..config(tmp.path(), 2048)
    };
    let log = Log::open(cfg).unwrap();
    log.create_topic("t", 1).unwrap();
    append_derived(&log, "t", 0, 500);
    log.flush().unwrap();
    let before = log.stats().partitions[0].clone();
    assert!(before.bytes > 10_000);
    let report = log.enforce_retention(0).unwrap();
    assert!(
        report.segments_deleted > 0 && report.records_deleted > 0,
        "{report:?}"
    );
    let after = log.stats().partitions[0].clone();
    assert!(after.bytes <= 10_000, "{after:?}");
    assert_eq!(after.bytes + report.bytes_deleted, before.bytes);
    let start = log.start_offset("t", 0).unwrap();
    assert_eq!(start, report.records_deleted);
    assert_eq!(check_derived(&log, "t", 0), 500);
    match log.read("t", 0, start - 1, 1, 1, |_| {}) {
        Err(Error::OffsetOutOfRange {
            start: s, end: 500, ..
        }) => assert_eq!(s, start),
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    // Survives reopen: the start offset comes from the remaining files.
    drop(log);
    let log = Log::open(LogConfig {
        retention_bytes: 10_000,
        ..config(tmp.path(), 2048)
    })
    .unwrap();
    assert_eq!(log.start_offset("t", 0).unwrap(), start);
    assert_eq!(check_derived(&log, "t", 0), 500);
}

#[test]
fn retention_by_age_uses_the_newest_record_of_each_segment() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_hours: 1,
        ..config(tmp.path(), 2048)
    };
    let log = Log::open(cfg).unwrap();
    log.create_topic("t", 1).unwrap();
    append_derived(&log, "t", 0, 400); // timestamps = offset * 10 ns
    log.flush().unwrap();
    // Nothing is older than an hour at t = 1h.
    assert_eq!(log.enforce_retention(HOUR).unwrap().segments_deleted, 0);
    // At 1h + 2000ns, segments whose newest record is < 2000 (offsets < 200) go.
    let report = log.enforce_retention(HOUR + 2000).unwrap();
    let start = log.start_offset("t", 0).unwrap();
    assert!(report.segments_deleted > 0);
    assert!(start <= 200 && start > 100, "start {start}");
    assert_eq!(log.offset_for_timestamp("t", 0, 0).unwrap(), start);
    // Far in the future everything but the active segment goes.
    log.enforce_retention(1000 * HOUR).unwrap();
    assert_eq!(log.stats().partitions[0].segments, 1);
    assert_eq!(check_derived(&log, "t", 0), 400);
    // Appends continue after the active segment becomes the only one.
    append_derived(&log, "t", 0, 10);
    log.flush().unwrap();
    assert_eq!(check_derived(&log, "t", 0), 410);
}

#[test]
fn zero_limits_keep_everything() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig {
        retention_hours: 0,
        retention_bytes: 0,
        ..config(tmp.path(), 2048)
    })
    .unwrap();
    log.create_topic("t", 1).unwrap();
    append_derived(&log, "t", 0, 200);
    log.flush().unwrap();
    assert_eq!(log.enforce_retention(i64::MAX).unwrap().segments_deleted, 0);
    assert_eq!(log.start_offset("t", 0).unwrap(), 0);
}
