//! RedisCache against a real Redis (`$MDHUB_TEST_REDIS`, else
//! redis://127.0.0.1:6379): `cargo bench -p mdhub_cache --bench redis`.
//!
//! - `put/1000_over_100_symbols`: one writer, batches of 1000 events spread
//!   over 100 symbols (4 quotes to 1 trade), offsets always advancing so every
//!   batch really replaces what is stored.
//! - `put/1000_distinct_symbols`: the worst case for a batch, every event its
//!   own symbol and slot (nothing to coalesce).
//! - `get_many/100_symbols`: one pipelined read of 100 symbols; a latency
//!   summary (p50/p99 over 5000 calls) is printed after criterion's figures.

use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdhub_cache::conformance::{quote, trade};
use mdhub_cache::{Cache, RedisCache, RedisConfig};
use mdhub_types::{Positioned, Symbol, Timestamp};
use tokio::runtime::Runtime;

const BATCH: usize = 1000;

fn url() -> String {
    std::env::var("MDHUB_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

fn symbol_name(i: usize) -> String {
    format!("SYM{i:04}")
}

/// Batch number `n` of `BATCH` events over `symbols` symbols; offsets grow
/// with `n`, so each batch is newer than the one before.
fn batch(n: u64, symbols: usize) -> Vec<Positioned> {
    (0..BATCH)
        .map(|i| {
            let name = symbol_name(i % symbols);
            let offset = n * BATCH as u64 + i as u64;
            let v = (offset % 10_000) as i64;
            if i % 5 == 4 {
                trade(&name, "sim-nasdaq", offset, v)
            } else {
                quote(&name, "sim-nasdaq", offset, v)
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let rt = Runtime::new().expect("tokio runtime");
    let mut config = RedisConfig::new(url());
    config.prefix = format!(
        "mdhub-bench:{}:",
        Timestamp::now().as_nanos() as u64 % 1_000_000_000_000
    );
    let cache = rt
        .block_on(RedisCache::connect(&config))
        .unwrap_or_else(|e| panic!("{e} (start redis-server or set MDHUB_TEST_REDIS)"));

    let mut g = c.benchmark_group("put");
    g.throughput(Throughput::Elements(BATCH as u64));
    for (name, symbols) in [
        ("1000_over_100_symbols", 100),
        ("1000_distinct_symbols", BATCH),
    ] {
        let mut n = 0u64;
        g.bench_function(name, |b| {
            b.iter_custom(|iters| {
                let mut spent = Duration::ZERO;
                for _ in 0..iters {
                    n += 1;
                    let entries = batch(n, symbols);
                    let start = Instant::now();
                    rt.block_on(cache.put(&entries)).expect("put");
                    spent += start.elapsed();
                }
                spent
            })
        });
    }
    g.finish();

    let wanted: Vec<Symbol> = (0..100)
        .map(|i| Symbol::new(&symbol_name(i)).expect("symbol"))
        .collect();
    let mut g = c.benchmark_group("get_many");
    g.throughput(Throughput::Elements(wanted.len() as u64));
    g.bench_function("100_symbols", |b| {
        b.iter(|| {
            let got = rt.block_on(cache.get_many(&wanted)).expect("get_many");
            assert!(got.iter().all(|l| !l.is_empty()));
        })
    });
    g.finish();

    let mut lat: Vec<Duration> = (0..5000)
        .map(|_| {
            let start = Instant::now();
            rt.block_on(cache.get_many(&wanted)).expect("get_many");
            start.elapsed()
        })
        .collect();
    lat.sort_unstable();
    let pct = |p: usize| lat[(lat.len() * p / 100).min(lat.len() - 1)];
    println!(
        "get_many/100_symbols latency over {} calls: p50 {:?}, p90 {:?}, p99 {:?}, max {:?}",
        lat.len(),
        pct(50),
        pct(90),
        pct(99),
        lat[lat.len() - 1]
    );

    rt.block_on(cache.clear()).expect("clear");
}

criterion_group!(benches, bench);
criterion_main!(benches);
