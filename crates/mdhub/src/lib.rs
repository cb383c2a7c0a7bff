//! The `mdhub` binary: one subcommand per role, all sharing the
//! configuration in [`config`].
//!
//! Data flow in `mdhub run`: simulated (or real) feeds → bounded channel →
//! [`ingest`] (publish to the log, update the latest-price cache) → log →
//! consumers (gateway, cache writer, archiver). Each role lives in `commands/`.

pub mod commands;
pub mod config;
mod history;
pub mod ingest;
mod process;
mod shared_cache;
mod status;
mod telemetry;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// mdhub — a real-time market-data hub.
///
/// Connects to exchanges, normalizes quotes and trades into one exact schema,
/// publishes them to a log (Kafka, or an embedded log on one machine), and
/// serves them to clients. With no configuration, `mdhub run` simulates a few
/// exchanges and keeps its data in ./mdhub-data.
#[derive(Debug, Parser)]
#[command(
    name = "mdhub",
    version,
    propagate_version = true,
    arg_required_else_help = true
)]
pub struct Cli {
    /// Configuration file (TOML). Default: ./mdhub.toml when it exists.
    #[arg(long, global = true, env = "MDHUB_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Log output format.
    #[arg(long, global = true, env = "MDHUB_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    pub log_format: String,
    /// The role to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The roles.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one process on embedded defaults: simulated exchanges (or the configured venues), embedded log, in-memory cache, gateway.
    Run(commands::run::RunArgs),
    /// Print the live stream of some symbols (a WebSocket client with resume).
    Tail(commands::tail::TailArgs),
    /// Feed handlers alone: exchange connections -> normalize -> publish to the log (Heroku worker).
    Ingest(commands::roles::IngestArgs),
    /// Distribution gateway alone: log -> WebSocket/REST clients (Heroku web dyno, binds $PORT).
    Serve(commands::roles::ServeArgs),
    /// Cache writer alone: log -> Redis latest prices, consumer group mdhub-cache (needs REDIS_URL).
    CacheWriter(commands::roles::CacheWriterArgs),
    /// Archiver alone: log -> Parquet lake (local or S3), exactly once, as consumer group mdhub-archive (worker dyno).
    Archive(commands::roles::ArchiveArgs),
    /// SQL and OHLCV bars over the lake: `mdhub query "SELECT …"`, `mdhub query --bars AAPL --interval 5m`.
    Query(commands::query::QueryArgs),
    /// Replay raw captures (`--record-raw`) through the pipeline into the log, as fast as possible or at the recorded pace.
    Replay(commands::roles::ReplayArgs),
    /// Raw venue frames (one per line on stdin) -> normalized events as JSON lines on stdout.
    Normalize(commands::normalize::NormalizeArgs),
    /// Load generators and measurements against a hub (e.g. `mdhub bench fanout`).
    Bench(commands::bench::BenchArgs),
    /// A new API key for [gateway.auth]: prints the key once and the TOML that configures its hash.
    Keygen(commands::auth::KeygenArgs),
    /// An HS256 JWT for a user, signed with gateway.auth.jwt_secret.
    Token(commands::auth::TokenArgs),
    /// The embedded log's files: `mdhub log verify` checks every record and lists damage; `mdhub log repair` fixes what can be fixed on a stopped log.
    Log(commands::log::LogArgs),
    /// Print the effective configuration (defaults, file and environment merged) as TOML.
    Config,
}

/// Parse arguments, run the chosen role, and map the outcome to an exit code:
/// 0 success, 1 runtime failure, 2 usage or configuration error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init(&cli.log_format);
    let sources = config::Sources::from_process(cli.config.clone());
    let cfg = match config::load(&sources) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    match cli.command {
        Command::Config => {
            print!("{}", cfg.to_toml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => commands::run::main(cfg, args),
        Command::Tail(args) => commands::tail::main(cfg, args),
        Command::Keygen(args) => commands::auth::keygen(args),
        Command::Token(args) => commands::auth::token(cfg, args),
        Command::Ingest(args) => commands::roles::ingest(cfg, args),
        Command::Serve(args) => commands::roles::serve(cfg, args),
        Command::CacheWriter(args) => commands::roles::cache_writer(cfg, args),
        Command::Archive(args) => commands::roles::archive(cfg, args),
        Command::Query(args) => commands::query::main(cfg, args),
        Command::Replay(args) => commands::roles::replay(cfg, args),
        Command::Bench(args) => commands::bench::main(args),
        Command::Normalize(args) => commands::normalize::main(args),
        Command::Log(args) => commands::log::main(cfg, args),
    }
}
