//! `mdhub run`: the whole pipeline in one process on embedded defaults.
//!
//! Start-up: bind the listener first (a platform's router sees the port at
//! once), then run every stage on the supervisor (`crate::process`): the
//! embedded log (recovering a torn tail), the in-memory cache refilled from
//! the newest records, the feeds (simulated unless real venues are
//! configured), the ingest stage, the group consumers and the gateway.
//! Shutdown on SIGTERM or Ctrl-C, in order: feeds stop, the ingest stage
//! drains the channel, the log fsyncs, the consumers read to the log's end,
//! then the gateway closes client sockets with 1001 so they reconnect and
//! resume. Bounded by 25 s so the process exits inside Heroku's 30 s window.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use mdhub_bus::Bus;
use mdhub_cache::Cache;
use mdhub_types::Topic;

use crate::config::Config;
use crate::ingest::IngestStats;
use crate::process::Roles;

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

async fn run(cfg: Config, exit_after: Option<Duration>) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(cfg.server.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (server.listen / --listen / $PORT)",
                cfg.server.listen
            )
        })?;
    let roles = Roles {
        feeds: true,
        gateway: true,
        cache_writer: cfg.cache.writer,
        archive: cfg.history.archive,
    };
    crate::process::start(cfg, roles, Some(listener), exit_after, None).await
}

/// What the feeds are, for the start-up line.
pub(crate) fn feeds_desc(cfg: &Config) -> String {
    if cfg.venues.any() {
        cfg.venues.describe()
    } else {
        "simulated venues".to_string()
    }
}

/// The configured real venues, or the simulator when none is.
pub(crate) fn feeds(cfg: &Config) -> anyhow::Result<Vec<Arc<dyn mdhub_feeds::Feed>>> {
    if !cfg.venues.any() {
        return mdhub_feeds::sim::sim_feeds(&cfg.sim).map_err(|e| anyhow::anyhow!("{e}"));
    }
    Ok(cfg.venues.feeds(&cfg.data_dir)?)
}

pub(crate) async fn report(
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

/// One line of latest prices: `AAPL 189.52 x 189.53 | BTC-USDT@sim-a 67000 x 67001 | …`
/// (a symbol on several venues gets a cell per venue, named `SYMBOL@venue`).
async fn board(cache: &dyn Cache) -> String {
    let Ok(symbols) = cache.symbols().await else {
        return String::new();
    };
    let mut names: Vec<_> = symbols.into_iter().map(|s| s.symbol).collect();
    names.dedup();
    let Ok(latest) = cache.get_many(&names).await else {
        return String::new();
    };
    let mut cells = Vec::new();
    for venues in latest {
        let several = venues.len() > 1;
        for l in venues {
            if let Some(mdhub_types::Event::Quote(q)) = l.quote.map(|p| p.event) {
                let name = if several {
                    format!("{}@{}", q.symbol, q.venue)
                } else {
                    q.symbol.to_string()
                };
                cells.push(format!("{name} {} x {}", q.bid_price, q.ask_price));
            }
        }
    }
    cells.join(" | ")
}
