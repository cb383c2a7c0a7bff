//! `mdhub ingest` and `mdhub serve`: the pipeline split across processes
//! (a Heroku worker dyno and web dynos), joined by Kafka.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use super::run::{Roles, run_roles};
use crate::config::Config;

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
    };
    headless(cfg, roles, args.exit_after)
}

/// Run roles that need no listener until a signal or `exit_after`.
fn headless(cfg: Config, roles: Roles, exit_after: Option<f64>) -> ExitCode {
    let exit_after = exit_after.map(Duration::from_secs_f64);
    super::block_on(true, async move {
        finish(run_roles(cfg, roles, None, exit_after).await)
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
    if let Err(e) = cfg.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    warn_embedded(&cfg, "ingest");
    let roles = Roles {
        feeds: true,
        gateway: false,
        cache_writer: cfg.cache.writer,
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
            run_roles(
                cfg,
                Roles {
                    feeds: false,
                    gateway: true,
                    cache_writer: false,
                },
                Some(listener),
                exit_after,
            )
            .await,
        )
    })
}
