//! `mdhub run`: the whole pipeline in one process on embedded defaults.
//!
//! Start-up: bind the listener first (a platform's router sees the port at
//! once), open the embedded log (recovering a torn tail), refill the in-memory
//! cache from the newest records, start the feeds (simulated unless real
//! venues are configured), the ingest stage and the gateway. Shutdown on
//! SIGTERM or Ctrl-C, in order: feeds stop, the ingest stage drains the
//! channel and publishes what is buffered, the log fsyncs, then the gateway
//! closes client sockets with 1001 so they reconnect and resume. Bounded by
//! 25 s so the process exits inside Heroku's 30 s window.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mdhub_bus::{Bus, EmbeddedBus, EmbeddedBusConfig};
use mdhub_cache::{Cache, LayeredCache, MemoryCache};
use mdhub_feeds::{FeedContext, FeedStatus};
use mdhub_log::Log;
use mdhub_types::Topic;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::cache_writer::{self, CacheWriterStats};
use crate::config::Config;
use crate::ingest::{self, IngestStats};

/// Flags of `mdhub run` (each overrides its configuration key).
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Data directory (overrides `data_dir`; the log goes to DIR/log unless `log.dir` is set).
    #[arg(long, env = "MDHUB_RUN_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// Simulated events per second across all venues (overrides `sim.rate`).
    #[arg(long, value_name = "EVENTS_PER_SEC")]
    pub sim_rate: Option<f64>,
    /// Seed of the simulated exchanges, for a reproducible stream (overrides `sim.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Listen address for HTTP and WebSocket (overrides `server.listen` and `$PORT`; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Stop by itself after this many seconds (default: run until SIGTERM or Ctrl-C).
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<f64>,
    /// Record every raw venue frame with its receipt time into DIR (overrides
    /// `ingest.record_raw`); `mdhub replay DIR` plays it back.
    #[arg(long, value_name = "DIR")]
    pub record_raw: Option<PathBuf>,
}

const SHUTDOWN_BUDGET: Duration = Duration::from_secs(25);

/// Entry point: builds a runtime and runs until a signal.
pub fn main(mut cfg: Config, args: RunArgs) -> ExitCode {
    if let Some(dir) = args.data_dir.clone() {
        if cfg.log.dir == cfg.data_dir.join("log") {
            cfg.log.dir = dir.join("log");
        }
        cfg.data_dir = dir;
    }
    if let Some(rate) = args.sim_rate {
        cfg.sim.rate = rate;
    }
    if let Some(seed) = args.seed {
        cfg.sim.seed = Some(seed);
    }
    if let Some(listen) = args.listen {
        cfg.server.listen = listen;
    }
    if let Some(dir) = args.record_raw {
        cfg.ingest.record_raw = Some(dir);
    }
    if let Err(e) = cfg.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    super::block_on(true, async {
        match run(cfg, args.exit_after.map(Duration::from_secs_f64)).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Feeds that replace the configured ones (`mdhub replay`); the process
/// stops by itself once they have all returned.
pub(crate) type FeedsOverride = Option<Vec<Arc<dyn mdhub_feeds::Feed>>>;

/// Which parts of the pipeline a process runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Roles {
    /// Feeds → ingest → log (`run`, `ingest`).
    pub(crate) feeds: bool,
    /// Log → WebSocket/REST clients (`run`, `serve`).
    pub(crate) gateway: bool,
    /// Log → Redis, when Redis is configured (`cache-writer`; `run` and
    /// `ingest` unless `cache.writer` is off).
    pub(crate) cache_writer: bool,
    /// Log → hot tier → Parquet lake (`archive`; `run` unless
    /// `history.archive` is off).
    pub(crate) archive: bool,
}

/// Open the log: Kafka when `kafka.url` is set, the embedded log otherwise.
pub(crate) async fn open_bus(cfg: &Config) -> anyhow::Result<OpenBus> {
    if cfg.kafka.enabled() {
        let bus = mdhub_bus::KafkaBus::connect(cfg.kafka.clone(), cfg.bus.encoding)
            .await
            .with_context(|| format!("connecting to Kafka at {}", cfg.kafka.url))?;
        let what = format!(
            "Kafka topics {} at {}",
            bus.topic_names().join(", "),
            cfg.kafka.url
        );
        let stats = bus.stats();
        return Ok((Arc::new(bus), what, Some(stats)));
    }
    let log_dir = cfg.log.dir.clone();
    let log = tokio::task::spawn_blocking({
        let c = cfg.log.clone();
        move || Log::open(c)
    })
    .await?
    .with_context(|| format!("opening the embedded log at {}", log_dir.display()))?;
    let bus = EmbeddedBus::new(
        Arc::new(log),
        EmbeddedBusConfig {
            encoding: cfg.bus.encoding,
        },
    )?;
    Ok((
        Arc::new(bus),
        format!("embedded log at {}", log_dir.display()),
        None,
    ))
}

/// The log, a description for the start-up line, and Kafka's counters.
pub(crate) type OpenBus = (
    Arc<dyn Bus>,
    String,
    Option<Arc<mdhub_bus::kafka::KafkaStats>>,
);

async fn run(cfg: Config, exit_after: Option<Duration>) -> anyhow::Result<()> {
    let writer = cfg.cache.writer;
    let archive = cfg.history.archive;
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (server.listen / --listen / $PORT)",
                cfg.server.listen
            )
        })?;
    run_roles(
        cfg,
        Roles {
            feeds: true,
            gateway: true,
            cache_writer: writer,
            archive,
        },
        Some(listener),
        exit_after,
        None,
    )
    .await
}

/// Run the chosen roles until a signal (or `exit_after`), then shut down in
/// order: feeds, ingest drain, log sync, client sockets.
/// `[gateway.auth]` for a gateway on `addr`, said out loud: required
/// (on a public address unless turned off), or off — with a warning when
/// the address is public.
fn authenticator(
    cfg: &Config,
    addr: std::net::SocketAddr,
) -> anyhow::Result<mdhub_gateway::Authenticator> {
    let public = !addr.ip().is_loopback();
    let auth = mdhub_gateway::Authenticator::new(&cfg.gateway.auth, public)?;
    if auth.required() {
        eprintln!("auth: required: clients present an API key or a JWT (docs/security.md)");
    } else if public {
        let warning = format!(
            "authentication is OFF on the public address {addr}: anyone who reaches it gets every price (gateway.auth.mode = \"off\"; see docs/security.md)"
        );
        eprintln!("WARNING: {warning}");
        tracing::warn!("{warning}");
    }
    Ok(auth)
}

pub(crate) async fn run_roles(
    cfg: Config,
    roles: Roles,
    listener: Option<tokio::net::TcpListener>,
    exit_after: Option<Duration>,
    feeds_override: FeedsOverride,
) -> anyhow::Result<()> {
    // Checked first: a gateway that nobody could use must not start at all.
    let mut auth = match (&listener, roles.gateway) {
        (Some(l), true) => Some(authenticator(&cfg, l.local_addr()?)?),
        _ => None,
    };
    let (bus, log_desc, kafka_stats) = open_bus(&cfg).await?;
    // This process's own view of the latest prices, kept from the log; with
    // Redis, gateways read Redis over it (newest entry wins, own view alone
    // while Redis is down).
    let local: Arc<dyn Cache> = Arc::new(MemoryCache::new());
    let shared = crate::shared_cache::open(&cfg.redis).await?;
    let cache: Arc<dyn Cache> = match &shared {
        Some(shared) => Arc::new(LayeredCache::new(
            shared.clone(),
            local.clone(),
            Duration::from_millis(cfg.cache.retry_after_ms),
        )),
        None => local.clone(),
    };
    let follower = if roles.gateway || roles.feeds {
        let (warmed, follower) =
            ingest::warm_cache(&*bus, &*local, cfg.ingest.cache_warm_records).await?;
        let symbols = local.symbols().await.map(|s| s.len()).unwrap_or(0);
        tracing::info!(log = %log_desc, epoch = %bus.epoch(), records = warmed, symbols, "log open; cache warmed");
        Some(follower)
    } else {
        tracing::info!(log = %log_desc, epoch = %bus.epoch(), "log open");
        None
    };
    let writer_stats = Arc::new(CacheWriterStats::default());
    let writer_stop = CancellationToken::new();
    let mut writer_task = match &shared {
        Some(shared) if roles.cache_writer => {
            tracing::info!(redis = %cfg.redis.redacted(), group = cache_writer::GROUP, "starting the cache writer");
            Some(tokio::spawn(cache_writer::run(
                bus.clone(),
                shared.clone(),
                cfg.cache.writer_batch,
                writer_stats.clone(),
                writer_stop.clone(),
            )))
        }
        _ => None,
    };

    // History: the archiver (with its hot tier) and, for the gateway,
    // queries over the lake and that hot tier.
    let archive_stop = CancellationToken::new();
    let mut archive_stats = None;
    let mut history = None;
    let mut compact_task = None;
    let mut pg_task = None;
    let mut pg_stats = None;
    let mut archive_task = if roles.archive {
        let lake = crate::history::open_lake(&cfg)?;
        let (archiver, hot, stats) = crate::history::archiver(&cfg, lake.clone());
        tracing::info!(lake = %lake.url(), group = mdhub_history::archive::GROUP,
            flush_secs = cfg.history.flush_interval_secs, "starting the archiver");
        archive_stats = Some(stats);
        history = Some(mdhub_history::query::History::new(lake.clone(), Some(hot)));
        if cfg.history.compact_interval_secs > 0 {
            compact_task = Some(tokio::spawn(mdhub_history::compact::run_periodic(
                lake.clone(),
                Duration::from_secs(cfg.history.compact_interval_secs),
                crate::history::compact_policy(&cfg),
                crate::history::retention_policy(&cfg),
                archive_stop.clone(),
            )));
        }
        if let Some(url) = cfg.history.database_url.clone() {
            let stats = Arc::new(mdhub_history::pg::PgStats::default());
            tracing::info!(
                group = mdhub_history::pg::GROUP,
                "starting the PostgreSQL hot tier writer"
            );
            pg_stats = Some(stats.clone());
            pg_task = Some(tokio::spawn(mdhub_history::pg::run(
                bus.clone(),
                url,
                cfg.history.pg_retention_days,
                stats,
                archive_stop.clone(),
            )));
        }
        Some(tokio::spawn(mdhub_history::archive::run(
            bus.clone(),
            archiver,
            archive_stop.clone(),
        )))
    } else {
        if roles.gateway {
            match crate::history::open_lake(&cfg) {
                Ok(lake) => history = Some(mdhub_history::query::History::new(lake, None)),
                Err(e) => {
                    tracing::warn!(error = %e, "no history over REST: the lake cannot be opened")
                }
            }
        }
        None
    };

    let feed_stop = CancellationToken::new();
    let mut feed_tasks = Vec::new();
    let mut statuses = Vec::new();
    let stats = Arc::new(IngestStats::default());
    let follow_stop = CancellationToken::new();
    let replaying = feeds_override.is_some();
    let feeds_done = CancellationToken::new();
    let mut capture_task = None;
    let mut ingest_task = if roles.feeds {
        let feeds = match feeds_override {
            Some(f) => f,
            None => feeds(&cfg)?,
        };
        let capture = match &cfg.ingest.record_raw {
            Some(dir) if !replaying => {
                let (rec, _stats, task) = mdhub_feeds::capture::Recorder::start(dir)?;
                tracing::info!(dir = %dir.display(), "recording raw frames");
                capture_task = Some(task);
                Some(rec)
            }
            _ => None,
        };
        let (tx, rx) = mpsc::channel(cfg.ingest.channel_capacity);
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(feeds.len()));
        for feed in feeds {
            let status = FeedStatus::new(feed.venue().clone());
            statuses.push(status.clone());
            let ctx = FeedContext {
                out: tx.clone(),
                shutdown: feed_stop.clone(),
                status,
                capture: capture.clone(),
            };
            tracing::info!(venue = %feed.venue(), symbols = feed.symbols().len(), "starting feed");
            let (running, done) = (running.clone(), feeds_done.clone());
            feed_tasks.push(tokio::spawn(async move {
                let r = feed.run(ctx).await;
                if running.fetch_sub(1, Ordering::AcqRel) == 1 {
                    done.cancel();
                }
                r
            }));
        }
        drop(capture);
        drop(tx);
        tokio::spawn(ingest::run(
            rx,
            bus.clone(),
            local.clone(),
            cfg.ingest.clone(),
            stats.clone(),
        ))
    } else if let Some(follower) = follower {
        // No ingest here: keep the cache current by following the log.
        tokio::spawn(ingest::follow_into_cache(
            follower,
            local.clone(),
            follow_stop.clone(),
        ))
    } else {
        let stop = follow_stop.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            Ok(())
        })
    };
    let reporter = tokio::spawn(report(
        bus.clone(),
        cache.clone(),
        stats.clone(),
        cfg.ingest.status_interval_secs,
    ));
    let gateway_stop = CancellationToken::new();
    let mut gateway_task = match (roles.gateway, listener) {
        (true, Some(listener)) => {
            let addr = listener.local_addr()?;
            let feeds_status = Arc::new(crate::status::Feeds(statuses.clone()));
            let ingest_status = Arc::new(crate::status::Ingest(stats.clone()));
            let gateway =
                mdhub_gateway::Gateway::new(bus.clone(), cache.clone(), cfg.gateway.clone())
                    .with_status(feeds_status.clone())
                    .with_metrics(feeds_status)
                    .with_status(ingest_status.clone())
                    .with_metrics(ingest_status);
            let gateway = if writer_task.is_some() {
                let w = Arc::new(crate::status::CacheWriter(writer_stats.clone()));
                gateway.with_status(w.clone()).with_metrics(w)
            } else {
                gateway
            };
            let gateway = match &archive_stats {
                Some(a) => {
                    let a = Arc::new(crate::status::Archiver(a.clone()));
                    gateway.with_status(a.clone()).with_metrics(a)
                }
                None => gateway,
            };
            let gateway = match &pg_stats {
                Some(p) => {
                    let p = Arc::new(crate::status::Postgres(p.clone()));
                    gateway.with_status(p.clone()).with_metrics(p)
                }
                None => gateway,
            };
            let gateway = match history.clone() {
                Some(h) => gateway.with_history(Arc::new(crate::history::HistoryApi(h))),
                None => gateway,
            };
            let gateway = match kafka_stats {
                Some(k) => gateway.with_metrics(Arc::new(crate::status::Kafka(k))),
                None => gateway,
            };
            let token_flag = match &auth {
                Some(a) if a.required() => "--token KEY ",
                _ => "",
            };
            let gateway = match auth.take() {
                Some(a) => gateway.with_auth(a),
                None => gateway,
            };
            let source = if roles.feeds {
                format!("{} -> ", feeds_desc(&cfg))
            } else {
                String::new()
            };
            println!(
                "mdhub running: http://{addr} (WebSocket ws://{addr}/v1/ws); {source}{log_desc}"
            );
            println!(
                "watch prices: mdhub tail {token_flag}--url ws://{addr}/v1/ws AAPL BTC-USDT EUR-USD   (Ctrl-C stops mdhub)"
            );
            tokio::spawn(gateway.serve(listener, gateway_stop.clone()))
        }
        _ => {
            if roles.feeds {
                println!("mdhub running: {} -> {log_desc}", feeds_desc(&cfg));
            } else if roles.archive {
                println!(
                    "mdhub running: {log_desc} -> lake {} (archiver, group {})",
                    cfg.lake_url(),
                    mdhub_history::archive::GROUP
                );
            } else {
                println!(
                    "mdhub running: {log_desc} -> Redis {} (cache writer)",
                    cfg.redis.redacted()
                );
            }
            let stop = gateway_stop.clone();
            tokio::spawn(async move {
                stop.cancelled().await;
                Ok::<(), std::io::Error>(())
            })
        }
    };

    let stop_reason = tokio::select! {
        r = signal() => r,
        _ = sleep_opt(exit_after) => "--exit-after elapsed",
        _ = feeds_done.cancelled(), if replaying => "the capture is replayed",
        r = &mut gateway_task => {
            feed_stop.cancel();
            follow_stop.cancel();
            reporter.abort();
            return Err(match r {
                Ok(Ok(())) => anyhow::anyhow!("the gateway stopped unexpectedly"),
                Ok(Err(e)) => anyhow::anyhow!("the gateway failed: {e}"),
                Err(e) => anyhow::anyhow!("the gateway panicked: {e}"),
            });
        }
        // A replay's ingest ends by itself once the feeds have played their
        // captures: the shutdown sequence below collects its result.
        r = &mut ingest_task, if !replaying => {
            feed_stop.cancel();
            gateway_stop.cancel();
            writer_stop.cancel();
            reporter.abort();
            return match r {
                Ok(Ok(())) => Err(anyhow::anyhow!("the ingest stage stopped unexpectedly")),
                Ok(Err(e)) => Err(e.into()),
                Err(e) => Err(anyhow::anyhow!("the ingest stage panicked: {e}")),
            };
        }
        r = async { archive_task.as_mut().expect("guarded").await }, if archive_task.is_some() => {
            feed_stop.cancel();
            follow_stop.cancel();
            gateway_stop.cancel();
            writer_stop.cancel();
            reporter.abort();
            return match r {
                Ok(Ok(())) => Err(anyhow::anyhow!("the archiver stopped unexpectedly")),
                Ok(Err(e)) => Err(anyhow::anyhow!("the archiver stopped: {e}")),
                Err(e) => Err(anyhow::anyhow!("the archiver panicked: {e}")),
            };
        }
        r = async { writer_task.as_mut().expect("guarded").await }, if writer_task.is_some() => {
            feed_stop.cancel();
            follow_stop.cancel();
            gateway_stop.cancel();
            reporter.abort();
            return match r {
                Ok(Ok(())) => Err(anyhow::anyhow!("the cache writer stopped unexpectedly")),
                Ok(Err(e)) => Err(anyhow::anyhow!("the cache writer stopped: {e}")),
                Err(e) => Err(anyhow::anyhow!("the cache writer panicked: {e}")),
            };
        }
    };
    tracing::info!(reason = stop_reason, "shutting down: stopping feeds");
    let shutdown = async {
        feed_stop.cancel();
        follow_stop.cancel();
        for t in feed_tasks {
            match t.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "feed stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "feed task failed"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(t) = capture_task {
            match t.await {
                Ok(Ok(frames)) => tracing::info!(frames, "raw capture closed"),
                Ok(Err(e)) => tracing::warn!(error = %e, "raw capture failed"),
                Err(e) => tracing::warn!(error = %e, "raw capture task failed"),
            }
        }
        tracing::info!("feeds stopped; draining the ingest stage");
        let r = ingest_task.await;
        tracing::info!("ingest drained; syncing the log");
        bus.sync().await?;
        writer_stop.cancel();
        if let Some(t) = writer_task {
            match t.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "cache writer stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "cache writer task failed"),
                Ok(Ok(())) => {}
            }
        }
        archive_stop.cancel();
        if let Some(t) = compact_task {
            let _ = t.await;
        }
        if let Some(t) = pg_task {
            match t.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "PostgreSQL writer stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "PostgreSQL writer task failed"),
                Ok(Ok(())) => {}
            }
        }
        if let Some(t) = archive_task {
            match t.await {
                Ok(Err(e)) => tracing::warn!(error = %e, "archiver stopped with an error"),
                Err(e) => tracing::warn!(error = %e, "archiver task failed"),
                Ok(Ok(())) => {}
            }
        }
        tracing::info!("log synced; closing client connections");
        gateway_stop.cancel();
        match gateway_task.await {
            Ok(Err(e)) => tracing::warn!(error = %e, "gateway stopped with an error"),
            Err(e) if !e.is_cancelled() => tracing::warn!(error = %e, "gateway task failed"),
            _ => {}
        }
        match r {
            Ok(r) => r.map_err(anyhow::Error::from),
            Err(e) => Err(anyhow::anyhow!("the ingest stage panicked: {e}")),
        }
    };
    let result = tokio::time::timeout(SHUTDOWN_BUDGET, shutdown)
        .await
        .unwrap_or_else(|_| {
            Err(anyhow::anyhow!(
                "shutdown took longer than {}s",
                SHUTDOWN_BUDGET.as_secs()
            ))
        });
    reporter.abort();
    let published = stats.published.load(Ordering::Relaxed);
    for s in &statuses {
        let s = s.snapshot();
        tracing::info!(venue = %s.venue, events = s.events, dropped = s.dropped, "feed totals");
    }
    tracing::info!(published, "stopped");
    result
}

/// What the feeds are, for the start-up line.
fn feeds_desc(cfg: &Config) -> String {
    if cfg.venues.any() {
        let mut v = Vec::new();
        if let Some(b) = &cfg.venues.binance {
            v.push(format!("binance ({} symbols)", b.symbols.len()));
        }
        if let Some(c) = &cfg.venues.coinbase {
            v.push(format!("coinbase ({} symbols)", c.symbols.len()));
        }
        if let Some(k) = &cfg.venues.kraken {
            v.push(format!("kraken ({} symbols)", k.symbols.len()));
        }
        if let Some(a) = &cfg.venues.alpaca {
            v.push(format!("alpaca ({} symbols)", a.symbols.len()));
        }
        if let Some(f) = &cfg.venues.fix {
            v.push(format!(
                "fix {}:{} ({} symbols)",
                f.host,
                f.port,
                f.symbols.len()
            ));
        }
        v.join(", ")
    } else {
        "simulated venues".to_string()
    }
}

/// The configured real venues, or the simulator when none is.
fn feeds(cfg: &Config) -> anyhow::Result<Vec<Arc<dyn mdhub_feeds::Feed>>> {
    if !cfg.venues.any() {
        return mdhub_feeds::sim::sim_feeds(&cfg.sim).map_err(|e| anyhow::anyhow!("{e}"));
    }
    let mut out: Vec<Arc<dyn mdhub_feeds::Feed>> = Vec::new();
    if let Some(b) = &cfg.venues.binance {
        out.push(Arc::new(mdhub_feeds::venues::binance::BinanceFeed::new(
            b.feed_config()?,
        )));
    }
    if let Some(c) = &cfg.venues.coinbase {
        out.push(Arc::new(mdhub_feeds::venues::coinbase::CoinbaseFeed::new(
            c.coinbase()?,
        )));
    }
    if let Some(k) = &cfg.venues.kraken {
        out.push(Arc::new(mdhub_feeds::venues::kraken::KrakenFeed::new(
            k.kraken()?,
        )));
    }
    if let Some(a) = &cfg.venues.alpaca {
        out.push(Arc::new(mdhub_feeds::venues::alpaca::AlpacaFeed::new(
            a.feed_config()?,
        )));
    }
    if let Some(f) = &cfg.venues.fix {
        out.push(Arc::new(mdhub_feeds::venues::fix::FixFeed::new(
            f.feed_config(&cfg.data_dir)?,
        )));
    }
    Ok(out)
}

async fn sleep_opt(d: Option<Duration>) {
    match d {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

async fn signal() -> &'static str {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => tokio::select! {
                _ = term.recv() => "SIGTERM",
                _ = tokio::signal::ctrl_c() => "Ctrl-C",
            },
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                "Ctrl-C"
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
        "Ctrl-C"
    }
}

async fn report(
    bus: Arc<dyn Bus>,
    cache: Arc<dyn Cache>,
    stats: Arc<IngestStats>,
    every_secs: u64,
) {
    if every_secs == 0 {
        return;
    }
    let every = Duration::from_secs(every_secs);
    let mut last = 0u64;
    loop {
        tokio::time::sleep(every).await;
        let now = stats.published.load(Ordering::Relaxed);
        let mut ends = [0u64; 2];
        for (i, topic) in Topic::PRICES.into_iter().enumerate() {
            for p in 0..bus.partitions(topic) {
                if let Ok((_, end)) = bus.watermarks(topic, p).await {
                    ends[i] += end;
                }
            }
        }
        tracing::info!(
            events_per_sec = (now - last) / every_secs,
            published = now,
            quotes_in_log = ends[0],
            trades_in_log = ends[1],
            retries = stats.retries.load(Ordering::Relaxed),
            "ingest"
        );
        last = now;
        println!("{}", board(&*cache).await);
    }
}

/// One line of latest prices: `AAPL 189.52 x 189.53 | EUR-USD 1.08423 x 1.08425 | …`.
async fn board(cache: &dyn Cache) -> String {
    let Ok(symbols) = cache.symbols().await else {
        return String::new();
    };
    let names: Vec<_> = symbols.into_iter().map(|s| s.symbol).collect();
    let Ok(latest) = cache.get_many(&names).await else {
        return String::new();
    };
    let cells: Vec<String> = latest
        .into_iter()
        .flatten()
        .filter_map(|l| match l.quote.map(|p| p.event) {
            Some(mdhub_types::Event::Quote(q)) => {
                Some(format!("{} {} x {}", q.symbol, q.bid_price, q.ask_price))
            }
            _ => None,
        })
        .collect();
    cells.join(" | ")
}
