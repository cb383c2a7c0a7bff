//! Configuration: `mdhub.toml` (or `--config PATH`) layered under environment
//! variables, then command-line flags.
//!
//! Precedence, lowest first: built-in defaults, the TOML file,
//! `MDHUB_<SECTION>__<KEY>` variables (`MDHUB_LOG__FSYNC_INTERVAL_MS=50`,
//! top-level keys as `MDHUB_<KEY>`: `MDHUB_DATA_DIR`), the platforms' own
//! variables (`PORT`), then flags. Every key is documented by the `///` comment
//! on its field; `mdhub config` prints the effective configuration.
//!
//! Errors name the key and where its value came from, on one line:
//! `config: log.fsync_interval_ms (from MDHUB_LOG__FSYNC_INTERVAL_MS): invalid type: string "soon", expected u64`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mdhub_bus::KafkaConfig;
use mdhub_cache::RedisConfig;
use mdhub_feeds::sim::SimConfig;
use mdhub_gateway::GatewayConfig;
use mdhub_log::LogConfig;
use mdhub_types::Encoding;
use serde::{Deserialize, Serialize};

mod venues;
pub use venues::VenuesConfig;

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where mdhub keeps its data on this machine: the embedded log lives in
    /// `<data_dir>/log` unless `log.dir` says otherwise. Default `./mdhub-data`.
    pub data_dir: PathBuf,
    /// The HTTP/WebSocket listener.
    pub server: ServerConfig,
    /// The WebSocket service: heartbeats, queues, limits.
    pub gateway: GatewayConfig,
    /// How events are written to the log.
    pub bus: BusConfig,
    /// Kafka, used as the log when `kafka.url` (`$KAFKA_URL`) is set.
    pub kafka: KafkaConfig,
    /// The embedded log, used when `KAFKA_URL` is not set.
    pub log: LogConfig,
    /// Redis, the shared latest-price cache, used when `redis.url`
    /// (`$REDIS_URL`) is set.
    pub redis: RedisConfig,
    /// How the processes use the latest-price cache.
    pub cache: CacheConfig,
    /// The ingest stage between the feeds and the log.
    pub ingest: IngestConfig,
    /// The simulated exchanges: the feed used when no real venue is configured.
    pub sim: SimConfig,
    /// Real venues. When any is configured, the simulator is off.
    pub venues: VenuesConfig,
    /// History: the archiver (log → hot tier → Parquet lake) and queries.
    pub history: HistoryConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from("./mdhub-data"),
            server: ServerConfig::default(),
            gateway: GatewayConfig::default(),
            bus: BusConfig::default(),
            kafka: KafkaConfig::default(),
            log: LogConfig::default(),
            redis: RedisConfig::default(),
            cache: CacheConfig::default(),
            ingest: IngestConfig::default(),
            sim: SimConfig::default(),
            venues: VenuesConfig::default(),
            history: HistoryConfig::default(),
        }
    }
}

/// `[server]`: the HTTP/WebSocket listener.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8080`; `$PORT` (Heroku)
    /// replaces the port, and `--listen` the whole address.
    pub listen: SocketAddr,
    /// PEM certificate chain (leaf first): with `tls_key_file`, the
    /// listener speaks HTTPS and `wss://` itself. Unset (default): plain
    /// HTTP, for a router or proxy that terminates TLS (Heroku's does).
    pub tls_cert_file: Option<PathBuf>,
    /// PEM private key of that certificate.
    pub tls_key_file: Option<PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            tls_cert_file: None,
            tls_key_file: None,
        }
    }
}

/// `[bus]`: the log's record format.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BusConfig {
    /// Encoding of record values: `json` (default; `schemas/event.schema.json`)
    /// or `avro` (single-object encoding of `schemas/*.avsc`). Readers follow
    /// the `mdhub-encoding` header of each record, so it can change at any time.
    pub encoding: Encoding,
}

/// `[ingest]`: the stage that takes normalized events from the feeds and
/// publishes them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Capacity of the bounded channel from the feeds to the publisher, in
    /// events. When it is full, feeds wait (backpressure); nothing is dropped.
    /// Default 65536.
    pub channel_capacity: usize,
    /// Most events published in one group commit. Default 4096.
    pub max_batch: usize,
    /// At start-up, refill the latest-price cache from up to this many of the
    /// newest records of every partition. Default 10000.
    pub cache_warm_records: u64,
    /// Seconds between progress lines: an ingest summary on stderr and a line of
    /// latest prices on stdout (0 = none). Default 5.
    pub status_interval_secs: u64,
    /// Record every raw venue frame with its receipt time into this
    /// directory (`--record-raw DIR`; replay with `mdhub replay DIR`).
    /// Default: not recorded.
    pub record_raw: Option<PathBuf>,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            channel_capacity: 65_536,
            max_batch: 4096,
            cache_warm_records: 10_000,
            status_interval_secs: 5,
            record_raw: None,
        }
    }
}

/// `[cache]`: how processes use the latest-price cache. Without Redis each
/// process keeps its own in-memory cache, refilled from the log; with Redis the
/// cache writer fills Redis and gateways read it over their own view.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CacheConfig {
    /// Run the cache writer (log → Redis, consumer group `mdhub-cache`) inside
    /// `mdhub ingest` and `mdhub run` when Redis is configured. Turn off when
    /// `mdhub cache-writer` runs as its own process. Default true.
    pub writer: bool,
    /// Most records the cache writer reads and writes to Redis in one
    /// pipelined call. Default 1000.
    pub writer_batch: usize,
    /// After a failed Redis read, gateways answer from their own view alone
    /// for this long before trying Redis again, in milliseconds. Default 1000.
    pub retry_after_ms: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        CacheConfig {
            writer: true,
            writer_batch: 1000,
            retry_after_ms: 1000,
        }
    }
}

/// `[history]`: the archiver and history queries.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistoryConfig {
    /// Run the archiver (log → Parquet lake, consumer group `mdhub-archive`)
    /// inside `mdhub run`. Turn off when `mdhub archive` runs as its own
    /// process. Default true.
    pub archive: bool,
    /// Where the lake is: a directory, `file:///path`, or `s3://bucket/prefix`
    /// with the `AWS_*` variables (`AWS_ENDPOINT_URL` for S3-compatible
    /// stores). `$MDHUB_LAKE_URL` sets it. Default `<data_dir>/lake`.
    pub lake_url: Option<String>,
    /// The archiver writes what it holds at least this often, in seconds;
    /// until then rows are queryable from memory (the hot tier). Longer
    /// makes fewer, larger files. Default 60.
    pub flush_interval_secs: u64,
    /// The archiver writes as soon as it holds this many rows (bounds its
    /// memory: about 300 bytes a row). Default 1000000.
    pub max_buffered_rows: usize,
    /// The archiver merges the lake's small files this often, in seconds
    /// (0 = never; `mdhub archive --compact` runs it once). Default 3600.
    pub compact_interval_secs: u64,
    /// Compaction leaves files of this many MiB alone and grows merged
    /// files up to it. Default 64.
    pub compact_target_mb: u64,
    /// Keep raw ticks of this many UTC days before today; older days keep
    /// only their minute bars (applied with compaction). 0 = keep forever.
    /// Default 0.
    pub raw_retention_days: u32,
    /// PostgreSQL for the SQL hot tier (`$DATABASE_URL`, Heroku Postgres'
    /// variable): the archiving process also writes recent rows to tables
    /// `mdhub_trades` / `mdhub_quotes` (consumer group `mdhub-pg`). Unset:
    /// no PostgreSQL. `mdhub config` prints it with the password hidden.
    #[serde(serialize_with = "url_without_password")]
    pub database_url: Option<String>,
    /// Days of rows the PostgreSQL tables keep (whole days are dropped).
    /// Default 2.
    pub pg_retention_days: u32,
    /// Memory one history query's operators may hold (hash tables, sorts,
    /// joins), in MiB; past it the query fails with `query_memory_exceeded`.
    /// Default 512.
    pub query_memory_mb: usize,
    /// Longest a history query may run, in seconds; then it is cancelled
    /// with `query_timeout`. Default 30.
    pub query_timeout_secs: u64,
    /// Largest result one history query may return, in MiB (as Arrow,
    /// before JSON); past it `query_result_too_large`. Default 64.
    pub query_result_mb: usize,
}

impl Default for HistoryConfig {
    fn default() -> Self {
        HistoryConfig {
            archive: true,
            lake_url: None,
            flush_interval_secs: 60,
            max_buffered_rows: 1_000_000,
            compact_interval_secs: 3600,
            compact_target_mb: 64,
            raw_retention_days: 0,
            database_url: None,
            pg_retention_days: 2,
            query_memory_mb: 512,
            query_timeout_secs: 30,
            query_result_mb: 64,
        }
    }
}

/// A URL with its password replaced by `***`.
fn url_without_password<S: serde::Serializer>(v: &Option<String>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        None => s.serialize_none(),
        Some(text) => match url::Url::parse(text) {
            Ok(mut u) if u.password().is_some() => {
                let _ = u.set_password(Some("***"));
                s.serialize_some(u.as_str())
            }
            _ => s.serialize_some(text),
        },
    }
}

impl Config {
    /// The lake URL: `history.lake_url`, else `<data_dir>/lake`.
    pub fn lake_url(&self) -> String {
        self.history
            .lake_url
            .clone()
            .unwrap_or_else(|| self.data_dir.join("lake").display().to_string())
    }
}

/// A configuration problem, reported as one line.
#[derive(Debug, thiserror::Error)]
#[error("config: {0}")]
pub struct ConfigError(pub String);

/// Where the configuration comes from (the process environment, or a map in tests).
#[derive(Debug, Clone, Default)]
pub struct Sources {
    /// The TOML file, if any: `--config PATH`, else `./mdhub.toml` when it exists.
    pub file: Option<PathBuf>,
    /// Environment variables.
    pub env: HashMap<String, String>,
}

impl Sources {
    /// The real process environment and the given (or default) file.
    pub fn from_process(config_flag: Option<PathBuf>) -> Self {
        let file = config_flag.or_else(|| {
            let p = PathBuf::from("mdhub.toml");
            p.exists().then_some(p)
        });
        Sources {
            file,
            env: std::env::vars().collect(),
        }
    }
}

/// Environment-sourced keys: dotted key → (variable, raw text, key path).
type Origins = HashMap<String, (String, String, Vec<String>)>;

/// Load, layer and validate.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let mut root = toml::Table::new();
    // key path -> (variable name, raw text)
    let mut origin: Origins = HashMap::new();
    if let Some(path) = &sources.file {
        root = read_file(path)?;
    }
    let mut env_keys: Vec<(&String, &String)> = sources
        .env
        .iter()
        .filter(|(k, _)| k.starts_with("MDHUB_"))
        .collect();
    env_keys.sort();
    for (name, value) in env_keys {
        // The lake's own variable; it sets `history.lake_url`.
        let path: Vec<String> = if name == "MDHUB_LAKE_URL" {
            vec!["history".into(), "lake_url".into()]
        } else {
            name["MDHUB_".len()..]
                .split("__")
                .map(str::to_ascii_lowercase)
                .collect()
        };
        if path.iter().any(String::is_empty) {
            return Err(ConfigError(format!(
                "{name}: malformed variable name (use MDHUB_<SECTION>__<KEY>)"
            )));
        }
        set_path(&mut root, &path, literal(value))
            .map_err(|why| ConfigError(format!("{name}: {why}")))?;
        origin.insert(path.join("."), (name.clone(), value.clone(), path.clone()));
    }
    // The Heroku Kafka and Redis add-ons' variables, honoured as they are.
    let heroku = mdhub_bus::kafka::HEROKU_VARIABLES
        .iter()
        .map(|(var, key)| ("kafka", *var, *key))
        .chain(
            mdhub_cache::redis::HEROKU_VARIABLES
                .iter()
                .map(|(var, key)| ("redis", *var, *key)),
        );
    for (section, var, key) in heroku {
        if let Some(value) = sources.env.get(var) {
            let path = vec![section.to_string(), key.to_string()];
            set_path(&mut root, &path, toml::Value::String(value.clone()))
                .map_err(|why| ConfigError(format!("{var}: {why}")))?;
            origin.insert(
                format!("{section}.{key}"),
                (var.to_string(), value.clone(), path),
            );
        }
    }
    // Heroku Postgres' variable.
    if let Some(url) = sources.env.get("DATABASE_URL") {
        let path = vec!["history".to_string(), "database_url".to_string()];
        set_path(&mut root, &path, toml::Value::String(url.clone()))
            .map_err(|why| ConfigError(format!("DATABASE_URL: {why}")))?;
        origin.insert(
            "history.database_url".into(),
            ("DATABASE_URL".into(), url.clone(), path),
        );
    }
    if let Some(port) = sources.env.get("PORT") {
        let port: u16 = port
            .trim()
            .parse()
            .map_err(|_| ConfigError(format!("PORT: {port:?} is not a port number (1-65535)")))?;
        let listen = match root
            .get("server")
            .and_then(|s| s.get("listen"))
            .and_then(|v| v.as_str())
        {
            Some(addr) => addr
                .parse::<SocketAddr>()
                .map_err(|e| ConfigError(format!("server.listen: {addr:?}: {e}")))?,
            None => ServerConfig::default().listen,
        };
        set_path(
            &mut root,
            &["server".into(), "listen".into()],
            toml::Value::String(SocketAddr::new(listen.ip(), port).to_string()),
        )
        .map_err(|why| ConfigError(format!("PORT: {why}")))?;
        origin.insert(
            "server.listen".into(),
            (
                "PORT".into(),
                port.to_string(),
                vec!["server".into(), "listen".into()],
            ),
        );
    }
    let log_dir_set = root.get("log").and_then(|l| l.get("dir")).is_some();
    let mut cfg = deserialize(root, &origin, sources.file.as_deref())?;
    // A venue's own variables (Alpaca's APCA_*) fill fields the
    // configuration leaves empty.
    cfg.venues.fill_from_env(&sources.env);
    if !log_dir_set {
        cfg.log.dir = cfg.data_dir.join("log");
    }
    cfg.validate()?;
    Ok(cfg)
}

fn read_file(path: &Path) -> Result<toml::Table, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read {}: {e}", path.display())))?;
    text.parse::<toml::Table>().map_err(|e| {
        let (line, col) = e
            .span()
            .map(|s| {
                let before = &text[..s.start.min(text.len())];
                (
                    before.matches('\n').count() + 1,
                    before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1,
                )
            })
            .unwrap_or((0, 0));
        ConfigError(format!(
            "{} line {line}, column {col}: {}",
            path.display(),
            e.message()
        ))
    })
}

/// Environment values are TOML literals when they parse as one (`50`, `true`,
/// `["a","b"]`), strings otherwise. A literal given for a string key is
/// retried as the raw string (see [`deserialize`]).
fn literal(raw: &str) -> toml::Value {
    format!("v = {raw}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_string()))
}

fn set_path(root: &mut toml::Table, path: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = path.split_last().ok_or("empty key")?;
    let mut t = root;
    for p in parents {
        let entry = t
            .entry(p.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        t = entry
            .as_table_mut()
            .ok_or_else(|| format!("`{p}` is not a section"))?;
    }
    t.insert(last.clone(), value);
    Ok(())
}

fn deserialize(
    mut root: toml::Table,
    origin: &Origins,
    file: Option<&Path>,
) -> Result<Config, ConfigError> {
    // At most one retry per environment-sourced key.
    for _ in 0..=origin.len() {
        let value = toml::Value::Table(root.clone());
        match serde_path_to_error::deserialize::<_, Config>(value) {
            Ok(cfg) => return Ok(cfg),
            Err(err) => {
                let key = err.path().to_string();
                if let Some((_, raw, path)) = origin.get(&key)
                    && !matches!(get_path(&root, path), Some(toml::Value::String(_)))
                {
                    set_path(&mut root, path, toml::Value::String(raw.clone()))
                        .map_err(ConfigError)?;
                    continue;
                }
                let from = match origin.get(&key) {
                    Some((var, _, _)) => format!(" (from {var})"),
                    None => file
                        .map(|f| format!(" (in {})", f.display()))
                        .unwrap_or_default(),
                };
                let key = if key == "." || key.is_empty() {
                    "top level".to_string()
                } else {
                    key
                };
                return Err(ConfigError(format!(
                    "{key}{from}: {}",
                    err.inner().message()
                )));
            }
        }
    }
    Err(ConfigError("configuration could not be read".into()))
}

fn get_path<'a>(root: &'a toml::Table, path: &[String]) -> Option<&'a toml::Value> {
    let (last, parents) = path.split_last()?;
    let mut t = root;
    for p in parents {
        t = t.get(p)?.as_table()?;
    }
    t.get(last)
}

impl Config {
    /// Range checks that serde cannot express, each naming its key.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.server.tls_cert_file.is_some() != self.server.tls_key_file.is_some() {
            return Err(ConfigError(
                "server.tls_cert_file and server.tls_key_file: set both (TLS) or neither".into(),
            ));
        }
        if self.ingest.channel_capacity == 0 {
            return Err(ConfigError(
                "ingest.channel_capacity: must be at least 1".into(),
            ));
        }
        if self.history.flush_interval_secs == 0 {
            return Err(ConfigError(
                "history.flush_interval_secs: must be at least 1".into(),
            ));
        }
        if self.history.max_buffered_rows == 0 {
            return Err(ConfigError(
                "history.max_buffered_rows: must be at least 1".into(),
            ));
        }
        if self.history.compact_target_mb == 0 {
            return Err(ConfigError(
                "history.compact_target_mb: must be at least 1".into(),
            ));
        }
        if let Some(url) = &self.history.lake_url {
            let scheme = url.split_once("://").map(|(s, _)| s);
            if url.trim().is_empty() || scheme.is_some_and(|s| s != "file" && s != "s3") {
                return Err(ConfigError(format!(
                    "history.lake_url: {url:?}: expected a directory, file:///path or s3://bucket/prefix"
                )));
            }
        }
        if self.ingest.max_batch == 0 {
            return Err(ConfigError("ingest.max_batch: must be at least 1".into()));
        }
        self.log.validate().map_err(|e| match e {
            mdhub_log::Error::InvalidConfig { field, reason } => {
                ConfigError(format!("log.{field}: {reason}"))
            }
            other => ConfigError(format!("log: {other}")),
        })?;
        self.gateway.validate().map_err(ConfigError)?;
        self.kafka
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        self.sim
            .validate()
            .map_err(|e| ConfigError(e.to_string()))?;
        if self.redis.enabled() {
            self.redis
                .validate()
                .map_err(|e| ConfigError(e.to_string()))?;
        }
        self.venues.setups()?;
        if self.cache.writer_batch == 0 {
            return Err(ConfigError("cache.writer_batch: must be at least 1".into()));
        }
        Ok(())
    }

    /// The effective configuration as TOML.
    pub fn to_toml(&self) -> String {
        toml::to_string_pretty(self)
            .unwrap_or_else(|e| format!("# cannot print the configuration: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
