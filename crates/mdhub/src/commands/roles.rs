//! `mdhub ingest` and `mdhub serve`: the pipeline split across processes
//! (a Heroku worker dyno and web dynos), joined by Kafka.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use crate::config::Config;
use crate::process::{Roles, start};

/// Flags of `mdhub ingest`.
#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Simulated events per second across all venues (overrides `sim.rate`).
    #[arg(long, value_name = "EVENTS_PER_SEC")]
    pub sim_rate: Option<f64>,
    /// Seed of the simulated exchanges (overrides `sim.seed`).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<f64>,
    /// Record every raw venue frame with its receipt time into DIR (overrides
    /// `ingest.record_raw`); `mdhub replay DIR` plays it back.
    #[arg(long, value_name = "DIR")]
    pub record_raw: Option<std::path::PathBuf>,
}

/// Flags of `mdhub replay`.
#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// Capture files or directories written by `--record-raw` (every
    /// `*.capture.jsonl` in a directory; one feed per file, in parallel).
    #[arg(required = true, value_name = "CAPTURE")]
    pub captures: Vec<std::path::PathBuf>,
    /// `max` (as fast as the pipeline takes it) or a factor of the recorded
    /// pace (`1` = as recorded, `10` = ten times faster).
    #[arg(long, default_value = "max", value_name = "max|FACTOR")]
    pub speed: String,
}

/// `mdhub replay`: play raw captures through the normal pipeline — each
/// frame through its venue's decoder with the recorded receipt time, then
/// published to the log (and Redis, when configured) like live data. Exits
/// when every capture is played.
pub fn replay(cfg: Config, args: ReplayArgs) -> ExitCode {
    use mdhub_feeds::capture::{ReplayFeed, Speed, capture_files};
    let speed = match args.speed.as_str() {
        "max" => Speed::Max,
        x => match x.parse::<f64>() {
            Ok(f) if f > 0.0 && f.is_finite() => Speed::Times(f),
            _ => {
                eprintln!(
                    "error: --speed {x:?}: expected `max` or a positive factor such as 1 or 10"
                );
                return ExitCode::from(2);
            }
        },
    };
    if let Err(e) = cfg.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let mut feeds: Vec<Arc<dyn mdhub_feeds::Feed>> = Vec::new();
    for path in &args.captures {
        let files = match capture_files(path) {
            Ok(f) => f,
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::from(2);
            }
        };
        for f in files {
            match ReplayFeed::open(&f, speed) {
                Ok(feed) => feeds.push(Arc::new(feed)),
                Err(e) => {
                    eprintln!("error: {e}");
                    return ExitCode::from(2);
                }
            }
        }
    }
    if feeds.is_empty() {
        eprintln!("error: no *.capture.jsonl files in {:?}", args.captures);
        return ExitCode::from(2);
    }
    eprintln!(
        "replaying {} capture file(s) at {} speed",
        feeds.len(),
        args.speed
    );
    let roles = Roles {
        feeds: true,
        gateway: false,
        cache_writer: cfg.cache.writer,
        archive: false,
    };
    super::block_on(true, async move {
        finish(start(cfg, roles, None, None, Some(feeds)).await)
    })
}

/// Flags of `mdhub serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Listen address (overrides `server.listen` and `$PORT`; port 0 picks a free one).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<std::net::SocketAddr>,
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<f64>,
}

fn finish(r: anyhow::Result<()>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn warn_embedded(cfg: &Config, role: &str) {
    if !cfg.kafka.enabled() {
        tracing::warn!(
            dir = %cfg.log.dir.display(),
            "`mdhub {role}` without KAFKA_URL uses the embedded log, which one process at a time can open; \
             set KAFKA_URL to split roles across processes, or use `mdhub run`"
        );
    }
}

/// Flags of `mdhub cache-writer`.
#[derive(Debug, Args)]
pub struct CacheWriterArgs {
    /// Stop by itself after this many seconds.
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<f64>,
}

/// `mdhub cache-writer`: log → Redis, as consumer group `mdhub-cache`. For
/// deployments that scale it apart from `mdhub ingest` (then set
/// `cache.writer = false` for the ingest processes).
pub fn cache_writer(cfg: Config, args: CacheWriterArgs) -> ExitCode {
    if !cfg.redis.enabled() {
        eprintln!(
            "error: `mdhub cache-writer` needs Redis: set REDIS_URL (or redis.url), e.g. REDIS_URL=redis://127.0.0.1:6379"
        );
        return ExitCode::from(2);
    }
    warn_embedded(&cfg, "cache-writer");
    let roles = Roles {
        feeds: false,
        gateway: false,
        cache_writer: true,
        archive: false,
    };
    headless(cfg, roles, args.exit_after)
}

/// Flags of `mdhub archive`.
#[derive(Debug, Args)]
pub struct ArchiveArgs {
    /// The lake (overrides `history.lake_url` / `$MDHUB_LAKE_URL`): a
    /// directory, file:///path or s3://bucket/prefix.
    #[arg(long, value_name = "URL")]
    pub lake: Option<String>,
    /// Stop by itself after this many seconds (flushing what it holds).
    #[arg(long, value_name = "SECS")]
    pub exit_after: Option<f64>,
    /// Merge the lake's small files and apply `history.raw_retention_days`
    /// once, then exit (no log needed).
    #[arg(long, conflicts_with = "exit_after")]
    pub compact: bool,
    /// Import raw captures (`--record-raw` files or directories) into the
    /// lake, with a progress bar, then exit (no log needed). Idempotent.
    #[arg(long, value_name = "CAPTURE", num_args = 1.., conflicts_with_all = ["exit_after", "compact"])]
    pub backfill: Vec<std::path::PathBuf>,
}

/// `mdhub archive --compact`: one compaction of both tables.
fn compact_once(cfg: &Config) -> ExitCode {
    let lake = match crate::history::open_lake(cfg) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::from(2);
        }
    };
    let policy = crate::history::compact_policy(cfg);
    let retention = crate::history::retention_policy(cfg);
    super::block_on(false, async move {
        for table in mdhub_history::TableKind::ALL {
            match mdhub_history::compact::compact(&lake, table, &Default::default(), &policy).await
            {
                Ok(r) => println!(
                    "{table}: merged {} files into {}, {} rows; deleted {} files",
                    r.files_merged, r.files_written, r.rows, r.files_deleted
                ),
                Err(e) => {
                    eprintln!("error: compacting {table} in {}: {e}", lake.url());
                    return ExitCode::FAILURE;
                }
            }
        }
        let today = mdhub_types::Timestamp::now()
            .as_nanos()
            .div_euclid(86_400_000_000_000);
        match mdhub_history::retention::apply(&lake, &retention, today).await {
            Ok(r) => println!(
                "retention: dropped {} raw rows from {} files (minute bars kept)",
                r.rows_dropped, r.files_thinned
            ),
            Err(e) => {
                eprintln!("error: applying retention in {}: {e}", lake.url());
                return ExitCode::FAILURE;
            }
        }
        ExitCode::SUCCESS
    })
}

/// `mdhub archive`: log → Parquet lake as consumer group `mdhub-archive`,
/// exactly once (see `mdhub_history::archive`). On SIGTERM it writes what
/// it holds and commits before exiting.
pub fn archive(mut cfg: Config, args: ArchiveArgs) -> ExitCode {
    if let Some(l) = args.lake {
        cfg.history.lake_url = Some(l);
    }
    if let Err(e) = cfg.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    if args.compact {
        return compact_once(&cfg);
    }
    if !args.backfill.is_empty() {
        return super::backfill::main(&cfg, &args.backfill);
    }
    warn_embedded(&cfg, "archive");
    let roles = Roles {
        feeds: false,
        gateway: false,
        cache_writer: false,
        archive: true,
    };
    headless(cfg, roles, args.exit_after)
}

/// Run roles that need no listener until a signal or `exit_after`.
fn headless(cfg: Config, roles: Roles, exit_after: Option<f64>) -> ExitCode {
    let exit_after = exit_after.map(Duration::from_secs_f64);
    super::block_on(true, async move {
        finish(start(cfg, roles, None, exit_after, None).await)
    })
}

/// `mdhub ingest`: feeds → normalize → publish, no listener.
pub fn ingest(mut cfg: Config, args: IngestArgs) -> ExitCode {
    if let Some(r) = args.sim_rate {
        cfg.sim.rate = r;
    }
    if let Some(s) = args.seed {
        cfg.sim.seed = Some(s);
    }
    if let Some(dir) = args.record_raw {
        cfg.ingest.record_raw = Some(dir);
    }
    if let Err(e) = cfg.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    warn_embedded(&cfg, "ingest");
    let roles = Roles {
        feeds: true,
        gateway: false,
        cache_writer: cfg.cache.writer,
        archive: false,
    };
    headless(cfg, roles, args.exit_after)
}

/// `mdhub serve`: log → WebSocket/REST clients. Binds before connecting to
/// the log, so a platform's router sees the port at once.
pub fn serve(mut cfg: Config, args: ServeArgs) -> ExitCode {
    if let Some(l) = args.listen {
        cfg.server.listen = l;
    }
    warn_embedded(&cfg, "serve");
    let exit_after = args.exit_after.map(Duration::from_secs_f64);
    super::block_on(true, async move {
        let listener = match tokio::net::TcpListener::bind(cfg.server.listen)
            .await
            .with_context(|| {
                format!(
                    "cannot listen on {} (server.listen / --listen / $PORT)",
                    cfg.server.listen
                )
            }) {
            Ok(l) => l,
            Err(e) => return finish(Err(e)),
        };
        finish(
            start(
                cfg,
                Roles {
                    feeds: false,
                    gateway: true,
                    cache_writer: false,
                    archive: false,
                },
                Some(listener),
                exit_after,
                None,
            )
            .await,
        )
    })
}
