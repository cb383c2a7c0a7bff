//! `mdhub bench cache`: the Redis latest-price cache — how fast the cache
//! writer moves records from the log into Redis (the whole path: group
//! consumer on an embedded log, decode, pipelined script calls, commits),
//! the raw `put` rate beside it, and the latency of a 100-symbol snapshot
//! read, directly and through a gateway's layered view.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use mdhub_bus::{Bus, EmbeddedBus, EmbeddedBusConfig};
use mdhub_cache::conformance::{quote, trade};
use mdhub_cache::{Cache, LayeredCache, MemoryCache, RedisCache, RedisConfig};
use mdhub_log::{Log, LogConfig};
use mdhub_types::{Encoding, Event, Positioned, Symbol};
use tokio_util::sync::CancellationToken;

/// Flags of `mdhub bench cache`.
#[derive(Debug, Args)]
pub struct CacheArgs {
    /// Redis to measure (a scratch key prefix is used and removed after).
    #[arg(long, env = "REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    pub redis: String,
    /// Events through the cache writer, and through raw `put`.
    #[arg(long, default_value_t = 500_000)]
    pub events: usize,
    /// Distinct symbols the events cover.
    #[arg(long, default_value_t = 100)]
    pub symbols: usize,
    /// Records per pipelined write (the writer's `cache.writer_batch`).
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Snapshot reads of 100 symbols for the latency figures.
    #[arg(long, default_value_t = 5000)]
    pub snapshots: usize,
}

fn positioned(n: usize, symbols: &[String]) -> Vec<Positioned> {
    (0..n)
        .map(|i| {
            let s = &symbols[i % symbols.len()];
            if i % 4 == 0 {
                trade(s, "bench", i as u64, i as i64)
            } else {
                quote(s, "bench", i as u64, i as i64)
            }
        })
        .collect()
}

fn percentiles(mut v: Vec<Duration>) -> [Duration; 3] {
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q) as usize).min(v.len() - 1)];
    [at(0.5), at(0.99), v[v.len() - 1]]
}

/// 2: the cache writer end to end (records in an embedded log, consumer
/// group mdhub-cache on the consumer driver, decode, write, commit):
/// events per second.
async fn writer_rate(
    a: &CacheArgs,
    redis: Arc<RedisCache>,
    entries: Vec<Positioned>,
) -> anyhow::Result<f64> {
    // 2. The cache writer end to end: records in an embedded log, consumer
    //    group mdhub-cache, decode, write, commit.
    let dir = tempfile_dir()?;
    let log = Log::open(LogConfig {
        dir: dir.clone(),
        fsync_interval_ms: 1000,
        ..LogConfig::default()
    })?;
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new(
        Arc::new(log),
        EmbeddedBusConfig {
            encoding: Encoding::Json,
        },
    )?);
    let events: Vec<Event> = entries.into_iter().map(|p| p.event).collect();
    for chunk in events.chunks(4096) {
        bus.publish(chunk).await?;
    }
    let stats = mdhub_pipeline::ConsumerStats::new(mdhub_cache::writer::GROUP);
    let ctx = mdhub_pipeline::StageCtx {
        stop: CancellationToken::new(),
        health: mdhub_pipeline::StageHealth::detached("cache-writer"),
    };
    let stop = ctx.stop.clone();
    let t = Instant::now();
    let writer = tokio::spawn({
        let (bus, stats) = (bus.clone(), stats.clone());
        let sink = mdhub_cache::CacheWriter::new(redis.clone());
        let cfg = mdhub_pipeline::DriverConfig {
            batch: a.batch,
            ..Default::default()
        };
        async move { mdhub_pipeline::drive(bus, sink, &cfg, &stats, &ctx).await }
    });
    let mut last_print = Instant::now();
    while stats.persisted.load(Ordering::Relaxed) < a.events as u64 {
        anyhow::ensure!(!writer.is_finished(), "the cache writer stopped early");
        if last_print.elapsed() > Duration::from_secs(1) {
            eprint!(
                "\rcache writer: {}/{} events",
                stats.persisted.load(Ordering::Relaxed),
                a.events
            );
            last_print = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let rate = a.events as f64 / t.elapsed().as_secs_f64();
    eprint!("\r");
    stop.cancel();
    let _ = writer.await;

    let _ = std::fs::remove_dir_all(&dir);
    Ok(rate)
}

async fn snapshot_latency(
    cache: &dyn Cache,
    symbols: &[Symbol],
    n: usize,
) -> anyhow::Result<[Duration; 3]> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        let got = cache.get_many(symbols).await?;
        times.push(t.elapsed());
        anyhow::ensure!(got.iter().all(|l| !l.is_empty()), "snapshot misses symbols");
    }
    Ok(percentiles(times))
}

/// Run the measurements and print one table.
pub(crate) async fn run(a: CacheArgs) -> anyhow::Result<()> {
    anyhow::ensure!(
        a.symbols >= 100,
        "--symbols must be at least 100 (the snapshot reads 100)"
    );
    let prefix = format!("bench-{}:", std::process::id());
    let cfg = RedisConfig {
        prefix: prefix.clone(),
        ..RedisConfig::new(&a.redis)
    };
    let redis = Arc::new(
        RedisCache::connect(&cfg)
            .await
            .with_context(|| format!("connecting to Redis at {}", cfg.redacted()))?,
    );
    let names: Vec<String> = (0..a.symbols).map(|i| format!("S{i:04}")).collect();

    // 1. Raw put: pipelined batches straight into Redis.
    let entries = positioned(a.events, &names);
    let t = Instant::now();
    for chunk in entries.chunks(a.batch) {
        redis.put(chunk).await?;
    }
    let put_rate = a.events as f64 / t.elapsed().as_secs_f64();
    redis.clear().await?;

    let writer_rate = writer_rate(&a, redis.clone(), entries).await?;

    // 3. Snapshot reads of 100 symbols: Redis directly, and a gateway's view
    //    (Redis merged with its own memory).
    let hundred: Vec<Symbol> = names[..100]
        .iter()
        .filter_map(|s| Symbol::new(s).ok())
        .collect();
    let direct = snapshot_latency(&*redis, &hundred, a.snapshots).await?;
    let cold = LayeredCache::new(
        redis.clone(),
        Arc::new(MemoryCache::new()),
        Duration::from_secs(1),
    );
    let cold = snapshot_latency(&cold, &hundred, a.snapshots).await?;
    // A gateway that follows the log holds what the writer wrote.
    let own = Arc::new(MemoryCache::new());
    own.put(&positioned(a.events, &names)).await?;
    let warm = LayeredCache::new(redis.clone(), own, Duration::from_secs(1));
    let warm = snapshot_latency(&warm, &hundred, a.snapshots).await?;
    redis.clear().await?;

    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "redis {} · {} events over {} symbols · batches of {}",
        cfg.redacted(),
        a.events,
        a.symbols,
        a.batch
    );
    println!("{:<34} {:>12}", "path", "updates/s");
    println!("{:<34} {:>12.0}", "put (pipelined script calls)", put_rate);
    println!(
        "{:<34} {:>12.0}",
        "cache writer (log -> Redis, commit)", writer_rate
    );
    println!(
        "{:<34} {:>9} {:>9} {:>9}   ({} reads)",
        "100-symbol snapshot (µs)", "p50", "p99", "max", a.snapshots
    );
    for (name, [p50, p99, max]) in [
        ("Redis (get_many)", direct),
        ("gateway, own view empty", cold),
        ("gateway, own view current", warm),
    ] {
        println!(
            "{:<34} {:>9.0} {:>9.0} {:>9.0}",
            name,
            us(p50),
            us(p99),
            us(max)
        );
    }
    Ok(())
}

fn tempfile_dir() -> anyhow::Result<std::path::PathBuf> {
    let dir = std::env::temp_dir().join(format!("mdhub-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
