//! A process of mdhub: the stages its role runs, on one supervisor.
//!
//! Every role (`run`, `ingest`, `serve`, `cache-writer`, `archive`,
//! `replay`) is a [`Roles`] value, and [`start`] turns it into a list of
//! stages (see `docs/architecture.md`, "Stages"):
//!
//! | stage | phase | on failure | readiness |
//! |---|---|---|---|
//! | `feed:<venue>` | feeds | restart | — |
//! | `capture` | feeds | exit | — |
//! | `ingest` | ingest | exit | critical |
//! | `cache-follower` | ingest | exit | critical |
//! | `log` | log | exit | — |
//! | `cache-writer`, `archiver`, `pg-writer` | consumers | restart | degraded |
//! | `compaction`, `consumer-lag`, `status-line` | consumers | restart | degraded |
//! | `gateway` | gateway | exit | critical |
//!
//! The supervisor stops them phase by phase (feeds, ingest, log sync,
//! consumers, gateway) within 25 s, inside Heroku's 30 s window.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use mdhub_bus::{Bus, EmbeddedBus, EmbeddedBusConfig};
use mdhub_cache::{Cache, LayeredCache, MemoryCache};
use mdhub_feeds::{FeedContext, FeedStatus};
use mdhub_gateway::{MetricsSource, StatusSource};
use mdhub_log::Log;
use mdhub_pipeline::{ConsumerStats, DriverConfig, GroupSink, Phase, Stage, Supervisor};
use tokio::sync::mpsc;

use crate::config::Config;
use crate::ingest::{self, IngestStats};
use crate::status;

/// How long the ordered shutdown may take.
const SHUTDOWN_BUDGET: Duration = Duration::from_secs(25);

/// Feeds that replace the configured ones (`mdhub replay`); the process
/// stops by itself once they have all returned.
pub(crate) type FeedsOverride = Option<Vec<Arc<dyn mdhub_feeds::Feed>>>;

/// Which parts of the pipeline a process runs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Roles {
    /// Feeds → ingest → log (`run`, `ingest`, `replay`).
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

/// The log, a description for the start-up line, Kafka's counters, and
/// the embedded log itself (for its status).
pub(crate) type OpenBus = (
    Arc<dyn Bus>,
    String,
    Option<Arc<mdhub_bus::kafka::KafkaStats>>,
    Option<Arc<Log>>,
);

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
        return Ok((Arc::new(bus), what, Some(stats), None));
    }
    let log_dir = cfg.log.dir.clone();
    let log = tokio::task::spawn_blocking({
        let c = cfg.log.clone();
        move || Log::open(c)
    })
    .await?
    .with_context(|| format!("opening the embedded log at {}", log_dir.display()))?;
    let log = Arc::new(log);
    let bus = EmbeddedBus::new(
        log.clone(),
        EmbeddedBusConfig {
            encoding: cfg.bus.encoding,
        },
    )?;
    Ok((
        Arc::new(bus),
        format!("embedded log at {}", log_dir.display()),
        None,
        Some(log),
    ))
}

/// A section of `/v1/status` and its metrics: one value, two views.
type Section = (Arc<dyn StatusSource>, Arc<dyn MetricsSource>);

fn section<T: StatusSource + MetricsSource + 'static>(s: T) -> Section {
    let s = Arc::new(s);
    (s.clone(), s)
}

/// A process being assembled: its supervisor and what its stages share.
#[derive(Debug)]
struct Process {
    cfg: Config,
    sup: Supervisor,
    bus: Arc<dyn Bus>,
    log_desc: String,
    kafka: Option<Arc<mdhub_bus::kafka::KafkaStats>>,
    /// This process's own view of the latest prices, kept from the log.
    local: Arc<dyn Cache>,
    /// What the gateway reads: Redis over the own view, or the own view.
    cache: Arc<dyn Cache>,
    shared: Option<Arc<dyn Cache>>,
    follower: Option<Box<dyn mdhub_bus::Subscription>>,
    history: Option<mdhub_history::query::History>,
    /// The embedded log, when it is the bus.
    log: Option<Arc<Log>>,
    sections: Vec<Section>,
    consumers: Vec<Arc<ConsumerStats>>,
    ingest: Arc<IngestStats>,
    feeds: Vec<Arc<FeedStatus>>,
}

/// Run `roles` until a signal, `exit_after`, a replay's end, or a stage
/// that must not go on fails; then shut down in order.
pub(crate) async fn start(
    cfg: Config,
    roles: Roles,
    listener: Option<tokio::net::TcpListener>,
    exit_after: Option<Duration>,
    feeds_override: FeedsOverride,
) -> anyhow::Result<()> {
    // Checked first: a gateway that nobody could use must not start at all.
    let auth = match (&listener, roles.gateway) {
        (Some(l), true) => Some(authenticator(&cfg, l.local_addr()?)?),
        _ => None,
    };
    let replaying = feeds_override.is_some();
    let mut p = Process::open(cfg, roles).await?;
    if roles.cache_writer {
        p.add_cache_writer();
    }
    if roles.archive {
        p.add_archive()?;
    } else if roles.gateway {
        p.open_history();
    }
    if roles.feeds {
        p.add_feeds(feeds_override)?;
    } else {
        p.add_follower();
    }
    p.add_log();
    p.add_status_line();
    p.add_lag_monitor();
    match (roles.gateway, listener, auth) {
        (true, Some(listener), Some(auth)) => p.add_gateway(listener, auth, roles)?,
        _ => p.say_headless(roles),
    }
    if replaying {
        p.sup.stop_when_finished(Phase::Feeds);
    }
    p.run(exit_after).await
}

impl Process {
    async fn open(cfg: Config, roles: Roles) -> anyhow::Result<Process> {
        let (bus, log_desc, kafka, log) = open_bus(&cfg).await?;
        let local: Arc<dyn Cache> = Arc::new(MemoryCache::new());
        // With Redis, gateways read Redis over their own view (newest entry
        // wins, own view alone while Redis is down).
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
        Ok(Process {
            cfg,
            sup: Supervisor::new(),
            bus,
            log_desc,
            kafka,
            local,
            cache,
            shared,
            follower,
            history: None,
            sections: log
                .iter()
                .map(|l| section(status::LogFiles(l.clone())))
                .collect(),
            log,
            consumers: Vec::new(),
            ingest: Arc::new(IngestStats::default()),
            feeds: Vec::new(),
        })
    }

    /// Add a group consumer stage for `group`: `make` builds a fresh sink
    /// for each run.
    fn add_consumer<S, F>(
        &mut self,
        name: &str,
        group: &'static str,
        driver: DriverConfig,
        mut make: F,
    ) where
        S: GroupSink + 'static,
        F: FnMut() -> S + Send + 'static,
    {
        let stats = ConsumerStats::new(group);
        self.consumers.push(stats.clone());
        let bus = self.bus.clone();
        tracing::info!(stage = name, group, "starting a group consumer");
        self.sup.add(
            Stage::new(name, Phase::Consumers, move |ctx| {
                let (bus, stats, driver, sink) =
                    (bus.clone(), stats.clone(), driver.clone(), make());
                async move { mdhub_pipeline::drive(bus, sink, &driver, &stats, &ctx).await }
            })
            .restart(),
        );
    }

    /// Log → Redis (`mdhub-cache`), when Redis is configured.
    fn add_cache_writer(&mut self) {
        let Some(shared) = self.shared.clone() else {
            return;
        };
        tracing::info!(redis = %self.cfg.redis.redacted(), "cache writer on Redis");
        let driver = DriverConfig {
            batch: self.cfg.cache.writer_batch,
            ..DriverConfig::default()
        };
        self.add_consumer(
            "cache-writer",
            mdhub_cache::writer::GROUP,
            driver,
            move || mdhub_cache::CacheWriter::new(shared.clone()),
        );
    }

    /// The archiver (log → hot tier → lake), compaction, and the PostgreSQL
    /// hot tier when `DATABASE_URL` is set.
    fn add_archive(&mut self) -> anyhow::Result<()> {
        let lake = crate::history::open_lake(&self.cfg)?;
        let (first, hot, stats) = crate::history::archiver(&self.cfg, lake.clone());
        tracing::info!(lake = %lake.url(), flush_secs = self.cfg.history.flush_interval_secs, "archiver on the lake");
        self.sections.push(section(status::Archiver(stats.clone())));
        self.history = Some(
            mdhub_history::query::History::new(lake.clone(), Some(hot.clone()))
                .with_limits(crate::history::query_limits(&self.cfg)),
        );
        let driver = first.driver_config();
        let (cfg, mut first, again) = (self.cfg.clone(), Some(first), lake.clone());
        self.add_consumer(
            "archiver",
            mdhub_history::archive::GROUP,
            driver,
            move || match first.take() {
                Some(a) => a,
                None => {
                    crate::history::archiver_into(&cfg, again.clone(), hot.clone(), stats.clone())
                }
            },
        );
        if self.cfg.history.compact_interval_secs > 0 {
            let every = Duration::from_secs(self.cfg.history.compact_interval_secs);
            let policy = crate::history::compact_policy(&self.cfg);
            let retention = crate::history::retention_policy(&self.cfg);
            self.sup.add(
                Stage::new("compaction", Phase::Consumers, move |ctx| {
                    let run = mdhub_history::compact::run_periodic(
                        lake.clone(),
                        every,
                        policy.clone(),
                        retention,
                        ctx.stop,
                    );
                    async move {
                        run.await;
                        Ok::<(), std::convert::Infallible>(())
                    }
                })
                .restart(),
            );
        }
        if let Some(url) = self.cfg.history.database_url.clone() {
            let stats = Arc::new(mdhub_history::pg::PgStats::default());
            self.sections.push(section(status::Postgres(stats.clone())));
            let days = self.cfg.history.pg_retention_days;
            self.add_consumer(
                "pg-writer",
                mdhub_history::pg::GROUP,
                DriverConfig::default(),
                move || mdhub_history::pg::PgWriter::new(url.clone(), days, stats.clone()),
            );
        }
        Ok(())
    }

    /// History over REST for a gateway that does not archive: the lake alone.
    fn open_history(&mut self) {
        match crate::history::open_lake(&self.cfg) {
            Ok(lake) => {
                self.history = Some(
                    mdhub_history::query::History::new(lake, None)
                        .with_limits(crate::history::query_limits(&self.cfg)),
                )
            }
            Err(e) => tracing::warn!(error = %e, "no history over REST: the lake cannot be opened"),
        }
    }

    /// Feeds (configured, simulated or replayed), the raw capture, and the
    /// ingest stage that publishes what they send.
    fn add_feeds(&mut self, feeds_override: FeedsOverride) -> anyhow::Result<()> {
        let replaying = feeds_override.is_some();
        let feeds = match feeds_override {
            Some(f) => f,
            None => crate::commands::run::feeds(&self.cfg)?,
        };
        let capture = match &self.cfg.ingest.record_raw {
            Some(dir) if !replaying => {
                let (rec, _stats, task) = mdhub_feeds::capture::Recorder::start(dir)?;
                tracing::info!(dir = %dir.display(), "recording raw frames");
                self.sup.add(
                    Stage::once("capture", Phase::Feeds, move |_ctx| async move {
                        let frames = task.await??;
                        tracing::info!(frames, "raw capture closed");
                        Ok::<(), anyhow::Error>(())
                    })
                    .finishes(),
                );
                Some(rec)
            }
            _ => None,
        };
        let (tx, rx) = mpsc::channel(self.cfg.ingest.channel_capacity);
        for feed in feeds {
            let status = FeedStatus::new(feed.venue().clone());
            self.feeds.push(status.clone());
            tracing::info!(venue = %feed.venue(), symbols = feed.symbols().len(), "starting feed");
            let (tx, capture) = (tx.clone(), capture.clone());
            let stage = Stage::new(format!("feed:{}", feed.venue()), Phase::Feeds, move |ctx| {
                let feed = feed.clone();
                let fctx = FeedContext {
                    out: tx.clone(),
                    shutdown: ctx.stop,
                    status: status.clone(),
                    capture: capture.clone(),
                };
                async move { feed.run(fctx).await }
            });
            self.sup.add(if replaying {
                stage.finishes()
            } else {
                stage.restart()
            });
        }
        let (bus, local, cfg, stats) = (
            self.bus.clone(),
            self.local.clone(),
            self.cfg.ingest.clone(),
            self.ingest.clone(),
        );
        // Ends once every feed has returned and the channel is drained.
        let stage = Stage::once("ingest", Phase::Ingest, move |ctx| {
            ingest::run(rx, bus, local, cfg, stats, ctx.health)
        })
        .critical();
        self.sup
            .add(if replaying { stage.finishes() } else { stage });
        self.follower = None;
        Ok(())
    }

    /// No ingest here: keep the own view current by following the log.
    fn add_follower(&mut self) {
        let Some(follower) = self.follower.take() else {
            return;
        };
        let local = self.local.clone();
        self.sup.add(
            Stage::once("cache-follower", Phase::Ingest, move |ctx| {
                ingest::follow_into_cache(follower, local, ctx.stop)
            })
            .critical(),
        );
    }

    /// The log's final sync, once ingest has published everything.
    fn add_log(&mut self) {
        let bus = self.bus.clone();
        self.sup
            .add(Stage::once("log", Phase::Log, move |ctx| async move {
                ctx.stop.cancelled().await;
                tracing::info!("ingest drained; syncing the log");
                bus.sync().await
            }));
    }

    /// The periodic status line (`ingest.status_interval_secs`).
    fn add_status_line(&mut self) {
        let every = self.cfg.ingest.status_interval_secs;
        if every == 0 {
            return;
        }
        let (bus, cache, stats) = (self.bus.clone(), self.cache.clone(), self.ingest.clone());
        self.sup.add(
            Stage::new("status-line", Phase::Consumers, move |ctx| {
                let report =
                    crate::commands::run::report(bus.clone(), cache.clone(), stats.clone(), every);
                async move {
                    tokio::select! {
                        _ = ctx.stop.cancelled() => {}
                        _ = report => {}
                    }
                    Ok::<(), std::convert::Infallible>(())
                }
            })
            .restart(),
        );
    }

    /// Every section this process reports, with the stages and consumers.
    fn all_sections(&self) -> Vec<Section> {
        let mut out = vec![
            section(status::Stages(self.sup.report())),
            section(status::Consumers(self.consumers.clone())),
        ];
        if !self.feeds.is_empty() {
            out.push(section(status::Feeds(self.feeds.clone())));
            out.push(section(status::Ingest(self.ingest.clone())));
        }
        out.extend(self.sections.iter().cloned());
        out
    }

    /// The gateway, with every section of this process in its status,
    /// readiness and metrics.
    fn add_gateway(
        &mut self,
        listener: tokio::net::TcpListener,
        auth: mdhub_gateway::Authenticator,
        roles: Roles,
    ) -> anyhow::Result<()> {
        let addr = listener.local_addr()?;
        let mut gateway = mdhub_gateway::Gateway::new(
            self.bus.clone(),
            self.cache.clone(),
            self.cfg.gateway.clone(),
        )
        .with_health(Arc::new(status::Stages(self.sup.report())))
        .with_metrics(Arc::new(status::ProcessInfo));
        if let Some(log) = &self.log {
            gateway = gateway.with_health(Arc::new(status::LogFiles(log.clone())));
        }
        for (status, metrics) in self.all_sections() {
            gateway = gateway.with_status(status).with_metrics(metrics);
        }
        if let Some(h) = self.history.clone() {
            gateway = gateway.with_history(Arc::new(crate::history::HistoryApi(h)));
        }
        if let Some(k) = self.kafka.clone() {
            gateway = gateway.with_metrics(Arc::new(status::Kafka(k)));
        }
        let token_flag = if auth.required() { "--token KEY " } else { "" };
        let mut gateway = gateway.with_auth(auth);
        let (http, ws) = match (
            &self.cfg.server.tls_cert_file,
            &self.cfg.server.tls_key_file,
        ) {
            (Some(cert), Some(key)) => {
                let tls = mdhub_gateway::tls_server_config(cert, key)
                    .context("server.tls_cert_file / server.tls_key_file")?;
                gateway = gateway.with_tls(tls);
                ("https", "wss")
            }
            _ => ("http", "ws"),
        };
        let source = if roles.feeds {
            format!("{} -> ", crate::commands::run::feeds_desc(&self.cfg))
        } else {
            String::new()
        };
        println!(
            "mdhub running: {http}://{addr} (WebSocket {ws}://{addr}/v1/ws); {source}{}",
            self.log_desc
        );
        println!(
            "watch prices: mdhub tail {token_flag}--url {ws}://{addr}/v1/ws AAPL BTC-USDT EUR-USD   (Ctrl-C stops mdhub)"
        );
        self.sup.add(
            Stage::once("gateway", Phase::Gateway, move |ctx| {
                gateway.serve(listener, ctx.stop)
            })
            .critical(),
        );
        Ok(())
    }

    /// The start-up line of a process without a listener.
    fn say_headless(&self, roles: Roles) {
        let log = &self.log_desc;
        if roles.feeds {
            println!(
                "mdhub running: {} -> {log}",
                crate::commands::run::feeds_desc(&self.cfg)
            );
        } else if roles.archive {
            println!(
                "mdhub running: {log} -> lake {} (archiver, group {})",
                self.cfg.lake_url(),
                mdhub_history::archive::GROUP
            );
        } else {
            println!(
                "mdhub running: {log} -> Redis {} (cache writer)",
                self.cfg.redis.redacted()
            );
        }
    }

    /// The group consumers' lag, measured every second apart from them.
    fn add_lag_monitor(&mut self) {
        if self.consumers.is_empty() {
            return;
        }
        let (bus, consumers) = (self.bus.clone(), self.consumers.clone());
        self.sup.add(
            Stage::new("consumer-lag", Phase::Consumers, move |ctx| {
                let (bus, consumers) = (bus.clone(), consumers.clone());
                async move {
                    loop {
                        mdhub_pipeline::measure_lag(&*bus, &consumers).await;
                        tokio::select! {
                            _ = ctx.stop.cancelled() => break,
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                        }
                    }
                    Ok::<(), std::convert::Infallible>(())
                }
            })
            .restart(),
        );
    }

    async fn run(self, exit_after: Option<Duration>) -> anyhow::Result<()> {
        let stop = async move {
            tokio::select! {
                r = signal() => r.to_string(),
                _ = sleep_opt(exit_after) => "--exit-after elapsed".to_string(),
            }
        };
        let result = self.sup.run(stop, SHUTDOWN_BUDGET).await;
        for s in &self.feeds {
            let s = s.snapshot();
            tracing::info!(venue = %s.venue, events = s.events, dropped = s.dropped, "feed totals");
        }
        let published = self
            .ingest
            .published
            .load(std::sync::atomic::Ordering::Relaxed);
        tracing::info!(published, "stopped");
        result.map_err(anyhow::Error::from)
    }
}

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
    } else if !public {
        eprintln!(
            "auth: off: {addr} is a loopback address, reachable from this machine only (gateway.auth.mode; docs/security.md)"
        );
    } else {
        let warning = format!(
            "authentication is OFF on the public address {addr}: anyone who reaches it gets every price (gateway.auth.mode = \"off\"; see docs/security.md)"
        );
        eprintln!("WARNING: {warning}");
        tracing::warn!("{warning}");
    }
    Ok(auth)
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
