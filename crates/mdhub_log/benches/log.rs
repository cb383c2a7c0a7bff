//! Criterion benchmarks of the embedded log: group-committed appends and the
//! sequential zero-copy read. Figures are recorded in BENCHMARKS.md.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdhub_log::{Log, LogConfig, RecordIn};

const BATCH: u64 = 100;
const PARTITIONS: u32 = 8;
const READ_RECORDS: u64 = 1_000_000;

fn open(dir: &std::path::Path) -> Log {
    let log = Log::open(LogConfig {
        dir: dir.into(),
        ..LogConfig::default()
    })
    .expect("open log");
    log.create_topic("bench", PARTITIONS).expect("create topic");
    log
}

fn value() -> Vec<u8> {
    (0..100u8).collect()
}

/// 8-byte keys, 100-byte values, batches of 100 per partition, one flush
/// (group commit) per batch; the background thread fsyncs every 200 ms.
fn append(c: &mut Criterion) {
    let value = value();
    let mut g = c.benchmark_group("append");
    g.throughput(Throughput::Elements(BATCH));
    g.bench_function("100B_values_batch100_flush", |b| {
        b.iter_custom(|iters| {
            let tmp = tempfile::tempdir().expect("tempdir");
            let log = open(tmp.path());
            let start = Instant::now();
            for i in 0..iters {
                let partition = (i % PARTITIONS as u64) as u32;
                let recs = (0..BATCH).map(|j| {
                    let ts = (i * BATCH + j) as i64;
                    RecordIn {
                        timestamp: ts,
                        key: b"BTC-USDT",
                        value: &value,
                        headers: &[],
                    }
                });
                black_box(log.append_batch("bench", partition, recs).expect("append"));
                log.flush().expect("flush");
            }
            let elapsed = start.elapsed();
            drop(log);
            elapsed
        })
    });
    g.finish();
}

/// Sequential read of 1M records (100-byte values) through the visitor.
fn read(c: &mut Criterion) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let log = open(tmp.path());
    let value = value();
    for chunk in 0..READ_RECORDS / 1000 {
        let recs = (0..1000).map(|j| RecordIn {
            timestamp: (chunk * 1000 + j) as i64,
            key: b"ETH-USDT",
            value: &value,
            headers: &[],
        });
        log.append_batch("bench", 0, recs).expect("append");
    }
    log.sync().expect("sync");
    let mut g = c.benchmark_group("read");
    g.throughput(Throughput::Elements(READ_RECORDS));
    g.measurement_time(Duration::from_secs(3));
    g.bench_function("sequential_1M_records_100B", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            let out = log
                .read("bench", 0, 0, usize::MAX, usize::MAX, |r| {
                    bytes += r.value.len() + r.key.len()
                })
                .expect("read");
            assert_eq!(out.records as u64, READ_RECORDS);
            black_box(bytes)
        })
    });
    g.finish();
}

criterion_group!(benches, append, read);
criterion_main!(benches);
