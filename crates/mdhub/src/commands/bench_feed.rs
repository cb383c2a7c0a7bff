//! `mdhub bench feed`: latency from socket read to publish — the feed side of
//! the pipeline as it runs in production. A local server speaks Binance's
//! combined-stream protocol and sends trade frames at a fixed rate over
//! loopback; the real Binance feed reads them (stamping `ts_received` at the
//! read), decodes and normalizes, hands them over the bounded channel to the
//! ingest stage, which publishes them to an embedded log (group commit). For
//! every event the time from `ts_received` to the return of `Bus::publish`
//! is recorded; the table gives its percentiles per rate.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::SinkExt;
use mdhub_bus::{Bus, EmbeddedBus, EmbeddedBusConfig, SubscribeSpec, Subscription};
use mdhub_cache::MemoryCache;
use mdhub_feeds::venues::binance::{BinanceConfig, BinanceFeed};
use mdhub_feeds::{Feed, FeedContext, FeedStatus};
use mdhub_log::{Log, LogConfig};
use mdhub_types::{Encoding, Event, Position, Symbol, Timestamp, Topic, Venue};
use parking_lot::Mutex;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::config::IngestConfig;
use crate::ingest::{self, IngestStats};

/// Flags of `mdhub bench feed`.
#[derive(Debug, Args)]
pub struct FeedArgs {
    /// Frames per second the venue sends (comma-separated: one run each).
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,50000")]
    pub rates: Vec<u32>,
    /// Seconds measured per rate (after a 1 s warm-up).
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Symbols the frames cover.
    #[arg(long, default_value_t = 10)]
    pub symbols: usize,
    /// The log's group-commit fsync interval in ms (0: fsync in every
    /// flush), to see what the background fsync costs the publish tail.
    #[arg(long, value_name = "MS", default_value_t = LogConfig::default().fsync_interval_ms)]
    pub fsync_interval_ms: u64,
    /// Which threads run what: `shared` (the venue server, the feed and the
    /// ingest stage as tasks of one multi-thread runtime, as `mdhub run`
    /// runs its feeds), `split` (the venue server on a thread of its own, as
    /// a remote venue would be), `pinned` (also the feed and the ingest stage
    /// on one single-thread runtime, so the hop between them never crosses
    /// threads).
    #[arg(long, value_enum, default_value_t = Threads::Shared)]
    pub threads: Threads,
}

/// See [`FeedArgs::threads`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Threads {
    /// Everything on the process's multi-thread runtime.
    Shared,
    /// The venue server on its own thread.
    Split,
    /// The venue server on its own thread; feed and ingest on one thread.
    Pinned,
}

/// Run `fut` on a single-thread runtime of its own thread.
fn on_own_thread<F>(
    name: &str,
    fut: F,
) -> std::io::Result<std::thread::JoinHandle<std::io::Result<F::Output>>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(rt.block_on(fut))
        })
}

/// Wait for a thread of [`on_own_thread`] without blocking the runtime.
async fn join<T: Send + 'static>(
    t: std::thread::JoinHandle<std::io::Result<T>>,
) -> anyhow::Result<T> {
    let joined = tokio::task::spawn_blocking(move || t.join()).await?;
    Ok(joined.map_err(|_| anyhow::anyhow!("a benchmark thread panicked"))??)
}

/// What [`TimingBus`] records.
#[derive(Debug, Default)]
struct Samples {
    /// Nanoseconds from `ts_received` to the return of `publish`, per event.
    latency: Vec<u64>,
    /// Nanoseconds from `ts_received` to the call of `publish`, per event:
    /// decode, the channel hop and the ingest task's wake-up.
    before: Vec<u64>,
    /// Nanoseconds inside `publish` per batch, with the batch's size.
    batches: Vec<(u64, usize)>,
}

impl Samples {
    /// Room for `events` samples, with the memory touched up front: growing
    /// a vector (and the first write to each new page) during the run would
    /// stall the ingest task between events, which the figures would show.
    fn with_room(events: usize) -> Samples {
        fn touched<T: Copy + Default>(n: usize) -> Vec<T> {
            // `vec![0; n]` would map fresh zero pages without touching them
            // (and an allocation filled with a known zero may become one).
            let mut v = Vec::with_capacity(n);
            v.resize(n, std::hint::black_box(T::default()));
            v.clear();
            v
        }
        Samples {
            latency: touched(events),
            before: touched(events),
            batches: touched(events),
        }
    }
}

/// A bus that times every published event from its `ts_received`.
#[derive(Debug)]
struct TimingBus {
    inner: Arc<dyn Bus>,
    samples: Mutex<Samples>,
    measuring: std::sync::atomic::AtomicBool,
}

#[async_trait::async_trait]
impl Bus for TimingBus {
    fn epoch(&self) -> String {
        self.inner.epoch()
    }
    fn partitions(&self, topic: Topic) -> u32 {
        self.inner.partitions(topic)
    }
    fn encoding(&self) -> Encoding {
        self.inner.encoding()
    }
    async fn publish(&self, events: &[Event]) -> mdhub_bus::Result<Vec<Position>> {
        let called = Timestamp::now().as_nanos();
        let t = Instant::now();
        let r = self.inner.publish(events).await;
        let inside = t.elapsed().as_nanos() as u64;
        let now = Timestamp::now().as_nanos();
        if r.is_ok() && self.measuring.load(std::sync::atomic::Ordering::Relaxed) {
            let mut s = self.samples.lock();
            for e in events.iter().filter(|e| !matches!(e, Event::Status(_))) {
                let rx = e.ts_received().as_nanos();
                s.latency.push((now - rx).max(0) as u64);
                s.before.push((called - rx).max(0) as u64);
            }
            s.batches.push((inside, events.len()));
        }
        r
    }
    async fn subscribe(&self, spec: SubscribeSpec) -> mdhub_bus::Result<Box<dyn Subscription>> {
        self.inner.subscribe(spec).await
    }
    async fn watermarks(&self, topic: Topic, partition: u32) -> mdhub_bus::Result<(u64, u64)> {
        self.inner.watermarks(topic, partition).await
    }
    async fn offset_for_time(
        &self,
        topic: Topic,
        partition: u32,
        ts: Timestamp,
    ) -> mdhub_bus::Result<u64> {
        self.inner.offset_for_time(topic, partition, ts).await
    }
    async fn sync(&self) -> mdhub_bus::Result<()> {
        self.inner.sync().await
    }
}

/// Serve Binance combined-stream trade frames at `rate` per second, in
/// 1 ms ticks, to every connection until `stop`.
async fn venue(listener: TcpListener, rate: u32, symbols: Vec<String>, stop: CancellationToken) {
    loop {
        let tcp = tokio::select! {
            _ = stop.cancelled() => return,
            r = listener.accept() => match r {
                Ok((tcp, _)) => tcp,
                Err(_) => return,
            },
        };
        let _ = tcp.set_nodelay(true);
        let (symbols, stop) = (symbols.clone(), stop.clone());
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            let per_tick = f64::from(rate) / 1000.0;
            let mut tick = tokio::time::interval(Duration::from_millis(1));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let (mut owed, mut i) = (0.0f64, 0u64);
            while !stop.is_cancelled() {
                tick.tick().await;
                owed += per_tick;
                while owed >= 1.0 {
                    owed -= 1.0;
                    i += 1;
                    let s = &symbols[i as usize % symbols.len()];
                    let ms = Timestamp::now().as_millis();
                    let frame = format!(
                        r#"{{"stream":"{l}@trade","data":{{"e":"trade","E":{ms},"s":"{s}","t":{i},"p":"91234.{:08}","q":"0.00012000","T":{ms},"m":{},"M":true}}}}"#,
                        i % 100_000_000,
                        i % 2 == 0,
                        l = s.to_ascii_lowercase(),
                    );
                    if ws.feed(Message::text(frame)).await.is_err() {
                        return;
                    }
                }
                if ws.flush().await.is_err() {
                    return;
                }
            }
        });
    }
}

fn pct(v: &[u64], q: f64) -> Duration {
    Duration::from_nanos(v[((v.len() as f64 * q) as usize).min(v.len() - 1)])
}

async fn one_rate(a: &FeedArgs, rate: u32) -> anyhow::Result<()> {
    let dir = super::bench::tempfile_dir::TempDir::new("feed")?;
    let log = Log::open(LogConfig {
        dir: dir.0.join("log"),
        fsync_interval_ms: a.fsync_interval_ms,
        ..LogConfig::default()
    })?;
    let inner = Arc::new(EmbeddedBus::new(
        Arc::new(log),
        EmbeddedBusConfig {
            encoding: Encoding::Json,
        },
    )?);
    let bus = Arc::new(TimingBus {
        inner,
        samples: Mutex::new(Samples::with_room(
            (f64::from(rate) * (a.duration + 2.0) * 1.2) as usize,
        )),
        measuring: Default::default(),
    });
    let natives: Vec<String> = (0..a.symbols).map(|i| format!("S{i}USDT")).collect();
    let symbols: Vec<Symbol> = (0..a.symbols)
        .map(|i| Symbol::new(&format!("S{i}-USDT")))
        .collect::<Result<_, _>>()?;
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    listener.set_nonblocking(true)?;
    let url = format!("ws://{}", listener.local_addr()?);
    let stop_venue = CancellationToken::new();
    let serve = {
        let stop = stop_venue.clone();
        async move {
            if let Ok(l) = TcpListener::from_std(listener) {
                venue(l, rate, natives, stop).await;
            }
        }
    };
    let venue_thread = match a.threads {
        Threads::Shared => {
            tokio::spawn(serve);
            None
        }
        Threads::Split | Threads::Pinned => Some(on_own_thread("venue", serve)?),
    };

    let feed = BinanceFeed::new(BinanceConfig {
        url,
        symbols,
        ..BinanceConfig::default()
    });
    let cfg = IngestConfig::default();
    let (tx, rx) = tokio::sync::mpsc::channel(cfg.channel_capacity);
    let stop_feed = CancellationToken::new();
    let ctx = FeedContext {
        out: tx,
        shutdown: stop_feed.clone(),
        status: FeedStatus::new(Venue::new("binance")?),
        capture: None,
    };
    let stats = Arc::new(IngestStats::default());
    let pipeline = {
        let bus: Arc<dyn Bus> = bus.clone();
        async move {
            let feed_task = tokio::spawn(async move { feed.run(ctx).await });
            let ingest_task = tokio::spawn(ingest::run(
                rx,
                bus,
                Arc::new(MemoryCache::new()),
                cfg,
                stats,
                mdhub_pipeline::StageHealth::detached("ingest"),
            ));
            let feed = feed_task.await.map_err(anyhow::Error::from)?;
            let ingest = ingest_task.await.map_err(anyhow::Error::from)?;
            feed.context("feed")?;
            ingest.context("ingest")?;
            anyhow::Ok(())
        }
    };
    let pipeline: tokio::task::JoinHandle<anyhow::Result<()>> = match a.threads {
        Threads::Pinned => {
            let t = on_own_thread("pipeline", pipeline)?;
            tokio::spawn(async move { join(t).await? })
        }
        Threads::Shared | Threads::Split => tokio::spawn(pipeline),
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    bus.measuring
        .store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    bus.measuring
        .store(false, std::sync::atomic::Ordering::Relaxed);
    stop_feed.cancel();
    stop_venue.cancel();
    pipeline.await??;
    if let Some(t) = venue_thread {
        join(t).await?;
    }
    print_row(a, rate, std::mem::take(&mut *bus.samples.lock()))
}

/// One row of the table: the latencies of one rate.
fn print_row(a: &FeedArgs, rate: u32, samples: Samples) -> anyhow::Result<()> {
    let Samples {
        latency: mut lat,
        mut before,
        batches,
    } = samples;
    anyhow::ensure!(!lat.is_empty(), "no events arrived at rate {rate}/s");
    lat.sort_unstable();
    before.sort_unstable();
    let mut inside: Vec<u64> = batches.iter().map(|b| b.0).collect();
    inside.sort_unstable();
    let events: usize = batches.iter().map(|b| b.1).sum();
    let inside_sum: u64 = inside.iter().sum();
    println!(
        "{:>8} {:>9} {:>9.0} {:>10.1?} {:>10.1?} {:>10.1?} {:>10.1?} {:>8.1} {:>12.2?} {:>10.1?} {:>10.1?}",
        rate,
        lat.len(),
        lat.len() as f64 / a.duration,
        pct(&lat, 0.5),
        pct(&lat, 0.99),
        pct(&lat, 0.999),
        Duration::from_nanos(lat[lat.len() - 1]),
        events as f64 / batches.len().max(1) as f64,
        Duration::from_nanos(inside_sum / events.max(1) as u64),
        pct(&before, 0.99),
        pct(&inside, 0.99),
    );
    Ok(())
}

/// Run every rate and print one table.
pub(crate) async fn run(a: FeedArgs) -> anyhow::Result<()> {
    anyhow::ensure!(a.symbols > 0, "--symbols must be at least 1");
    println!(
        "socket read (ts_received) -> Bus::publish returned, Binance trade frames over loopback, embedded log"
    );
    println!(
        "{:>8} {:>9} {:>9} {:>10} {:>10} {:>10} {:>10} {:>8} {:>12} {:>10} {:>10}",
        "rate/s",
        "events",
        "events/s",
        "p50",
        "p99",
        "p99.9",
        "max",
        "batch",
        "publish/evt",
        "p99 pre",
        "p99 pub"
    );
    println!(
        "(p99 pre: ts_received -> publish called, per event; p99 pub: time inside publish, per batch)"
    );
    for &rate in &a.rates {
        one_rate(&a, rate).await?;
    }
    Ok(())
}
