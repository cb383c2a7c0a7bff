//! Appends and reads: partitions, headers, empty records, segment rolling,
//! arbitrary start offsets, seeks by timestamp, watermarks and range errors.

use std::sync::Arc;
use std::time::Duration;

use mdhub_log::{Error, Log, LogConfig, RecordIn};

use crate::common::{append_derived, check_derived, config, read_all};

#[test]
fn round_trip_many_partitions_headers_and_empty_records() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(config(tmp.path(), 1 << 20)).unwrap();
    log.create_topic("t", 6).unwrap();
    let headers: &[(&str, &[u8])] = &[("enc", b"json"), ("trace", &[0, 255]), ("", b"")];
    for p in 0..6u32 {
        for i in 0..50u64 {
            let value = format!("p{p}-{i}");
            let rec = if i % 10 == 0 {
                RecordIn {
                    timestamp: i as i64,
                    ..RecordIn::default()
                }
            } else {
                RecordIn {
                    timestamp: i as i64,
                    key: b"BTC-USDT",
                    value: value.as_bytes(),
                    headers,
                }
            };
            assert_eq!(log.append("t", p, &rec).unwrap(), i);
        }
    }
    log.flush().unwrap();
    for p in 0..6u32 {
        let recs = read_all(&log, "t", p, 0);
        assert_eq!(recs.len(), 50);
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(r.offset, i as u64);
            assert_eq!(r.timestamp, i as i64);
            if i % 10 == 0 {
                assert!(r.key.is_empty() && r.value.is_empty() && r.headers.is_empty());
            } else {
                assert_eq!(r.value, format!("p{p}-{i}").into_bytes());
                assert_eq!(r.headers.len(), 3);
                assert_eq!(r.headers[1], ("trace".to_owned(), vec![0, 255]));
            }
        }
        assert_eq!(log.high_watermark("t", p).unwrap(), 50);
        assert_eq!(log.start_offset("t", p).unwrap(), 0);
    }
    let out = log
        .read("t", 1, 1, 8, 1 << 20, |r| {
            assert_eq!(r.header("enc"), Some(&b"json"[..]))
        })
        .unwrap();
    assert_eq!(
        (out.records, out.next_offset, out.high_watermark),
        (8, 9, 50)
    );
}

#[test]
fn unflushed_records_are_invisible_until_flush() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(config(tmp.path(), 1 << 20)).unwrap();
    log.create_topic("t", 1).unwrap();
    let range = log
        .append_batch(
            "t",
            0,
            (0..5).map(|_| RecordIn {
                value: b"x",
                ..RecordIn::default()
            }),
        )
        .unwrap();
    assert_eq!(range, 0..5);
    assert_eq!(log.high_watermark("t", 0).unwrap(), 0);
    assert_eq!(
        log.read("t", 0, 0, 10, 100, |_| panic!("unflushed record seen"))
            .unwrap()
            .records,
        0
    );
    let seq = log.watermark_seq();
    log.flush().unwrap();
    assert!(log.watermark_seq() > seq);
    assert_eq!(log.high_watermark("t", 0).unwrap(), 5);
    log.sync().unwrap();
    assert_eq!(log.synced_offset("t", 0).unwrap(), 5);
}

#[test]
fn rolls_segments_and_reads_across_boundaries_from_any_offset() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(config(tmp.path(), 2048)).unwrap();
    log.create_topic("t", 2).unwrap();
    append_derived(&log, "t", 1, 700);
    log.flush().unwrap();
    let stats = log.stats();
    let p1 = stats.partitions.iter().find(|p| p.partition == 1).unwrap();
    assert!(p1.segments > 20, "tiny segments roll: {p1:?}");
    assert_eq!(p1.high_watermark, 700);
    check_derived(&log, "t", 1);
    for from in (0..700).step_by(13) {
        let mut seen = Vec::new();
        let out = log
            .read("t", 1, from, 25, usize::MAX, |r| seen.push(r.offset))
            .unwrap();
        let expect: Vec<u64> = (from..(from + 25).min(700)).collect();
        assert_eq!(seen, expect, "read from {from}");
        assert_eq!(out.next_offset, from + expect.len() as u64);
    }
    // max_bytes: at least one record, then stops before the limit.
    let out = log.read("t", 1, 5, 1000, 1, |_| {}).unwrap();
    assert_eq!(out.records, 1);
    let out = log.read("t", 1, 0, 1000, 4000, |_| {}).unwrap();
    assert!(out.bytes <= 4000 && out.records > 1, "{out:?}");
    // The empty partition 0 reads nothing.
    assert_eq!(log.read("t", 0, 0, 10, 10, |_| {}).unwrap().records, 0);
}

#[test]
fn out_of_range_and_unknown_names() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(config(tmp.path(), 1 << 20)).unwrap();
    log.create_topic("t", 1).unwrap();
    append_derived(&log, "t", 0, 10);
    log.flush().unwrap();
    assert_eq!(log.read("t", 0, 10, 10, 10, |_| {}).unwrap().records, 0);
    match log.read("t", 0, 11, 10, 10, |_| {}) {
        Err(Error::OffsetOutOfRange {
            requested: 11,
            start: 0,
            end: 10,
            ..
        }) => {}
        other => panic!("expected OffsetOutOfRange, got {other:?}"),
    }
    assert!(matches!(
        log.partitions("nope"),
        Err(Error::UnknownTopic { .. })
    ));
    assert!(matches!(
        log.high_watermark("t", 1),
        Err(Error::UnknownPartition { partitions: 1, .. })
    ));
    assert!(matches!(
        log.create_topic("bad/name", 1),
        Err(Error::InvalidTopicName { .. })
    ));
    assert!(matches!(
        log.create_topic("t", 2),
        Err(Error::PartitionCountMismatch { existing: 1, .. })
    ));
    log.create_topic("t", 1).expect("idempotent");
    assert_eq!(log.topics(), vec![("t".to_owned(), 1)]);
    let big = vec![0u8; 17 << 20];
    let rec = RecordIn {
        value: &big,
        ..RecordIn::default()
    };
    assert!(matches!(
        log.append("t", 0, &rec),
        Err(Error::RecordTooLarge { .. })
    ));
}

#[test]
fn offset_for_timestamp_matches_brute_force() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(config(tmp.path(), 4096)).unwrap();
    log.create_topic("t", 1).unwrap();
    // Mostly increasing timestamps with some out-of-order ones.
    let ts: Vec<i64> = (0..600i64)
        .map(|i| if i % 37 == 5 { i * 10 - 300 } else { i * 10 })
        .collect();
    for t in &ts {
        log.append(
            "t",
            0,
            &RecordIn {
                timestamp: *t,
                value: &[7; 40],
                ..RecordIn::default()
            },
        )
        .unwrap();
    }
    log.flush().unwrap();
    for q in (-500..6500).step_by(17) {
        let expect = ts.iter().position(|&t| t >= q).map_or(600, |i| i as u64);
        assert_eq!(
            log.offset_for_timestamp("t", 0, q).unwrap(),
            expect,
            "ts {q}"
        );
    }
}

#[test]
fn reopen_continues_offsets_and_rebuilds_lost_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    {
        let log = Log::open(config(tmp.path(), 2048)).unwrap();
        log.create_topic("t", 1).unwrap();
        append_derived(&log, "t", 0, 300);
        log.close().unwrap();
    }
    // Damage every closed segment's index: one deleted, the others garbage.
    let pdir = tmp.path().join("topics/t/0");
    let mut indexes: Vec<_> = std::fs::read_dir(&pdir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "index"))
        .collect();
    indexes.sort();
    assert!(indexes.len() > 3);
    std::fs::remove_file(&indexes[0]).unwrap();
    for p in &indexes[1..] {
        std::fs::write(p, b"garbage").unwrap();
    }
    let log = Log::open(config(tmp.path(), 2048)).unwrap();
    assert_eq!(check_derived(&log, "t", 0), 300);
    append_derived(&log, "t", 0, 50);
    log.flush().unwrap();
    assert_eq!(check_derived(&log, "t", 0), 350);
    assert_eq!(log.offset_for_timestamp("t", 0, 1000).unwrap(), 100);
}

#[test]
fn reader_cursor_tails_and_wait_for_flush_wakes() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Arc::new(Log::open(config(tmp.path(), 4096)).unwrap());
    log.create_topic("t", 1).unwrap();
    let mut reader = log.reader("t", 0, 0).unwrap();
    let writer = {
        let log = Arc::clone(&log);
        std::thread::spawn(move || {
            for _ in 0..20 {
                append_derived(&log, "t", 0, 25);
                log.flush().unwrap();
                std::thread::sleep(Duration::from_millis(2));
            }
        })
    };
    let mut next = 0u64;
    while next < 500 {
        let seq = log.watermark_seq();
        let out = reader
            .next_batch(64, 1 << 20, |r| {
                assert_eq!(r.offset, next);
                assert_eq!(r.value, crate::common::value_for(next));
                next += 1;
            })
            .unwrap();
        if out.records == 0 {
            log.wait_for_flush(seq, Duration::from_secs(5));
        }
    }
    writer.join().unwrap();
    assert_eq!(reader.position(), 500);
}

#[test]
fn concurrent_writers_and_readers() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Arc::new(
        Log::open(LogConfig {
            fsync_interval_ms: 5,
            ..config(tmp.path(), 8192)
        })
        .unwrap(),
    );
    log.create_topic("t", 4).unwrap();
    let mut handles = Vec::new();
    for p in 0..4u32 {
        let log = Arc::clone(&log);
        handles.push(std::thread::spawn(move || {
            for _ in 0..40 {
                append_derived(&log, "t", p, 10);
                log.flush().unwrap();
                let hw = log.high_watermark("t", p).unwrap();
                let from = hw.saturating_sub(15);
                let n = log
                    .read("t", p, from, 100, usize::MAX, |_| {})
                    .unwrap()
                    .records as u64;
                assert!(n >= hw - from);
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
    for p in 0..4 {
        assert_eq!(check_derived(&log, "t", p), 400);
    }
}

#[test]
fn fsync_on_every_flush_when_interval_is_zero() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig {
        fsync_interval_ms: 0,
        ..config(tmp.path(), 4096)
    })
    .unwrap();
    log.create_topic("t", 1).unwrap();
    append_derived(&log, "t", 0, 100);
    log.flush().unwrap();
    assert_eq!(log.synced_offset("t", 0).unwrap(), 100);
}

#[test]
fn background_thread_fsyncs_within_the_interval() {
    let tmp = tempfile::tempdir().unwrap();
    let log = Log::open(LogConfig {
        fsync_interval_ms: 10,
        ..config(tmp.path(), 4096)
    })
    .unwrap();
    log.create_topic("t", 1).unwrap();
    append_derived(&log, "t", 0, 100);
    log.flush().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while log.synced_offset("t", 0).unwrap() < 100 {
        assert!(
            std::time::Instant::now() < deadline,
            "background fsync did not run"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
