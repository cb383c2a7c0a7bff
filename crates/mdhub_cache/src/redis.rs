//! [`RedisCache`]: the [`Cache`] in a Redis server shared by every gateway
//! and writer, so a snapshot is the same whichever instance serves it.
//!
//! # Key layout
//!
//! Every key starts with the configured prefix (default `mdhub:`), so several
//! environments can share one Redis; [`Cache::clear`] removes only its own.
//!
//! | key | type | content |
//! |---|---|---|
//! | `{prefix}latest:{SYMBOL}` | hash | the symbol's latest quote and trade on every venue |
//! | `{prefix}symbols` | hash | the directory: `SYMBOL@venue` → `{"venue":"sim-fx","last_update":1700000000000000120}` |
//!
//! Fields of a latest hash, per venue `V` and slot `quote` and `trade`:
//!
//! | field | content |
//! |---|---|
//! | `quote:V` | the [`Positioned`] event as JSON: `{"position":"quotes:3:1234","event":{…}}`, the event in mdhub's JSON encoding (`mdhub_types::json`: decimals as exact text, timestamps as integer nanoseconds), byte for byte what `serde_json` writes for `Positioned` |
//! | `quote_off:V` | the log offset, decimal text |
//! | `quote_ts:V` | `ts_received` in nanoseconds, decimal text |
//!
//! and the same three with `trade`. The two small fields let the put script
//! decide and maintain the directory without decoding JSON. A Redis written
//! by an mdhub from before instruments were keyed by venue holds `quote` and
//! `trade` fields without a venue (and a directory field `SYMBOL`): they are
//! read as the entries of the venue their event names, until newer events
//! of that venue replace them.
//!
//! # Writes
//!
//! [`Cache::put`] first keeps, per instrument and slot, only the entry that
//! applying the batch in order would leave (the first of the highest offset):
//! exactly the same result, far less work. The survivors go to one Lua script
//! (`put.lua`, sent once, then called by its SHA with `EVALSHA`) per 1000
//! instruments: per instrument one `HMGET` of the stored offsets and at most one
//! `HSET`, and one `HSET` of the directory per call. Redis runs a script
//! atomically, so racing writers and replays can never move a slot backwards.
//! The script compares offsets and timestamps as decimal text, never as Lua
//! doubles (exact only to 2^53).
//!
//! # Failures
//!
//! The connection is a [`ConnectionManager`], which reconnects by itself.
//! Every round trip is bounded by `op_timeout_ms`; an unreachable, slow,
//! restarting or read-only server is [`Error::Unavailable`] (retryable), and
//! data that does not decode is [`Error::Corrupt`]. If every operation has
//! failed for [`REBUILD_AFTER`] (a reconnect that gave up on a non-I/O
//! error), or a write meets a read-only replica (after a failover behind the
//! same host name), a fresh connection is built.

mod codec;
mod config;

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::sync::Once;
use std::time::{Duration, Instant};

use ::redis::aio::{ConnectionManager, ConnectionManagerConfig};
use ::redis::io::tcp::{TcpSettings, socket2::TcpKeepalive};
use ::redis::{
    AsyncConnectionConfig, Client, ErrorKind, IntoConnectionInfo, RedisError, RedisResult, Script,
    ServerErrorKind, Value,
};
use mdhub_types::{Event, Positioned, Symbol, Venue};
use parking_lot::{Mutex, RwLock};

use crate::{Cache, Error, Latest, Result, SymbolInfo, VenueOffsets};
use codec::Keys;
pub use config::{DEFAULT_PREFIX, HEROKU_VARIABLES, RedisConfig, RedisConfigError};

/// Most symbols given to one script call: bounds how long one call holds
/// Redis (a few milliseconds), not how many a `put` may take.
const MAX_SCRIPT_SYMBOLS: usize = 1000;
/// `COUNT` hint of each `SCAN` step in `clear`.
const SCAN_COUNT: usize = 1000;
/// After this long with every operation failing, the connection is rebuilt
/// from scratch; also the least time between two rebuilds.
pub const REBUILD_AFTER: Duration = Duration::from_secs(5);
/// TCP keepalive and `TCP_USER_TIMEOUT`: a peer that vanished without a reset
/// (a dropped NAT mapping, a dead host) closes the socket within ~15 s, which
/// the connection manager sees as a dropped connection and reconnects.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(10);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(5);
const TCP_USER_TIMEOUT: Duration = Duration::from_secs(15);

static PUT_SCRIPT: &str = include_str!("redis/put.lua");

/// The latest-price cache in Redis. Cheap to share behind an `Arc`; all
/// methods take `&self` and may run concurrently over one multiplexed
/// connection.
pub struct RedisCache {
    conn: Conn,
    keys: Keys,
    put_script: Script,
    op_timeout: Duration,
    /// The URL without its password, for messages.
    url: String,
    prefix: String,
}

impl fmt::Debug for RedisCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisCache")
            .field("url", &self.url)
            .field("prefix", &self.prefix)
            .field("op_timeout", &self.op_timeout)
            .finish_non_exhaustive()
    }
}

impl RedisCache {
    /// Validate `config`, connect and check that the server answers. Fails
    /// with [`Error::Config`] for a bad setting and [`Error::Unavailable`]
    /// (with the reason: refused, TLS, authentication…) when the server
    /// cannot be used within `connect_timeout_ms`.
    pub async fn connect(config: &RedisConfig) -> Result<Self> {
        config.validate()?;
        install_crypto_provider();
        let url = config.redacted();
        let unavailable = |e: String| Error::Unavailable(format!("redis at {url}: {e}"));
        let info = config
            .connection_url()?
            .as_str()
            .into_connection_info()
            .map_err(|e| unavailable(e.to_string()))?
            .set_tcp_settings(tcp_settings());
        let client = Client::open(info).map_err(|e| unavailable(e.to_string()))?;
        if config.tls() && !config.verifies_certificate() {
            tracing::warn!(url = %url, "redis TLS certificate verification is off (insecure_tls or #insecure)");
        }

        // One plain attempt first: the connection manager retries with
        // backoff, which would turn "wrong password" into a bare timeout.
        let probe = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(config.connect_timeout()))
            .set_response_timeout(Some(config.op_timeout()));
        let attempt = client.get_multiplexed_async_connection_with_config(&probe);
        match tokio::time::timeout(config.connect_timeout(), attempt).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => return Err(unavailable(e.to_string())),
            Err(_) => {
                return Err(unavailable(format!(
                    "no connection within {} ms",
                    config.connect_timeout_ms
                )));
            }
        }

        let manager_config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout()))
            .set_response_timeout(Some(config.op_timeout()))
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_secs(1))
            .set_number_of_retries(8);
        let manager =
            ConnectionManager::new_lazy_with_config(client.clone(), manager_config.clone())
                .map_err(|e| unavailable(e.to_string()))?;
        let cache = RedisCache {
            conn: Conn::new(client, manager_config, manager),
            keys: Keys::new(&config.prefix),
            put_script: Script::new(PUT_SCRIPT),
            op_timeout: config.op_timeout(),
            url,
            prefix: config.prefix.clone(),
        };
        cache.health().await?;
        tracing::info!(url = %cache.url, prefix = %cache.prefix, "redis cache connected");
        Ok(cache)
    }

    /// One pipelined `HGETALL` of the latest hash per symbol: one reply
    /// per symbol, in order (a reply may be a per-command error, which
    /// [`hash_pairs`] maps).
    async fn hgetall(&self, what: &'static str, symbols: &[Symbol]) -> Result<Vec<Value>> {
        if symbols.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = ::redis::pipe();
        for s in symbols {
            pipe.cmd("HGETALL").arg(self.keys.latest(s));
        }
        pipe.ignore_errors();
        let replies: Vec<Value> = self
            .run(what, |mut c| async move { pipe.query_async(&mut c).await })
            .await?;
        if replies.len() != symbols.len() {
            return Err(Error::Unavailable(format!(
                "redis {what} at {}: {} replies to {} commands",
                self.url,
                replies.len(),
                symbols.len()
            )));
        }
        Ok(replies)
    }

    /// The key prefix.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Run one round trip on the shared connection, bounded by `op_timeout`.
    async fn run<T, F, Fut>(&self, what: &'static str, f: F) -> Result<T>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        match tokio::time::timeout(self.op_timeout, f(self.conn.current())).await {
            Ok(Ok(v)) => {
                self.conn.succeeded();
                Ok(v)
            }
            Ok(Err(e)) => {
                if let Some(err) = corrupt_from_script(&e) {
                    self.conn.succeeded();
                    return Err(err);
                }
                let read_only = e.kind() == ErrorKind::Server(ServerErrorKind::ReadOnly);
                self.conn.failed(read_only, &self.url);
                Err(Error::Unavailable(format!(
                    "redis {what} at {}: {e}",
                    self.url
                )))
            }
            Err(_) => {
                self.conn.failed(false, &self.url);
                Err(Error::Unavailable(format!(
                    "redis {what} at {}: no answer within {} ms",
                    self.url,
                    self.op_timeout.as_millis()
                )))
            }
        }
    }

    /// One script call for up to [`MAX_SCRIPT_SYMBOLS`] instruments
    /// (argument layout in `put.lua`).
    async fn put_chunk(&self, chunk: &[Newest<'_>]) -> Result<()> {
        let mut call = self.put_script.prepare_invoke();
        call.key(self.keys.symbols());
        let mut value = Vec::with_capacity(320);
        for n in chunk {
            call.key(self.keys.latest(n.symbol));
            call.arg(n.symbol.as_str()).arg(n.venue.as_str());
            for slot in [n.quote, n.trade] {
                match slot {
                    Some(p) => {
                        value.clear();
                        codec::encode(p, &mut value);
                        call.arg(p.position.offset)
                            .arg(p.event.ts_received().as_nanos())
                            .arg(value.as_slice());
                    }
                    None => {
                        call.arg("").arg("").arg("");
                    }
                }
            }
        }
        self.run("put", |mut c| async move {
            call.invoke_async::<i64>(&mut c).await
        })
        .await?;
        Ok(())
    }
}

#[async_trait::async_trait]
impl Cache for RedisCache {
    async fn put(&self, entries: &[Positioned]) -> Result<()> {
        let newest = newest_per_instrument(entries);
        for chunk in newest.chunks(MAX_SCRIPT_SYMBOLS) {
            self.put_chunk(chunk).await?;
        }
        Ok(())
    }

    async fn get(&self, symbol: &Symbol) -> Result<Vec<Latest>> {
        let mut got = self.get_many(std::slice::from_ref(symbol)).await?;
        Ok(got.pop().unwrap_or_default())
    }

    async fn get_many(&self, symbols: &[Symbol]) -> Result<Vec<Vec<Latest>>> {
        let replies = self.hgetall("get", symbols).await?;
        symbols
            .iter()
            .zip(&replies)
            .map(|(s, v)| codec::decode_latest(s, &hash_pairs(s, v)?))
            .collect()
    }

    /// The whole hashes travel (one round trip), but only the small offset
    /// fields are parsed: no event is decoded.
    async fn offsets(&self, symbols: &[Symbol]) -> Result<Vec<Vec<VenueOffsets>>> {
        let replies = self.hgetall("offsets", symbols).await?;
        symbols
            .iter()
            .zip(&replies)
            .map(|(s, v)| codec::decode_offsets(s, &hash_pairs(s, v)?))
            .collect()
    }

    async fn symbols(&self) -> Result<Vec<SymbolInfo>> {
        let key = self.keys.symbols().to_string();
        let reply: Value = self
            .run("symbols", |mut c| async move {
                ::redis::cmd("HGETALL").arg(key).query_async(&mut c).await
            })
            .await?;
        let mut out = Vec::new();
        for (field, value) in pairs("(directory)", &reply)? {
            out.push(codec::decode_dir_entry(field, value)?);
        }
        // A legacy `SYMBOL` line and a `SYMBOL@venue` line may name the same
        // instrument: keep the newer.
        out.sort_by(|a, b| {
            (&a.symbol, &a.venue)
                .cmp(&(&b.symbol, &b.venue))
                .then(b.last_update.cmp(&a.last_update))
        });
        out.dedup_by(|later, first| later.symbol == first.symbol && later.venue == first.venue);
        Ok(out)
    }

    async fn clear(&self) -> Result<()> {
        let pattern = self.keys.latest_pattern();
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<Vec<u8>>) = self
                .run("clear", |mut c| {
                    let pattern = pattern.clone();
                    async move {
                        ::redis::cmd("SCAN")
                            .arg(cursor)
                            .arg("MATCH")
                            .arg(pattern)
                            .arg("COUNT")
                            .arg(SCAN_COUNT)
                            .query_async(&mut c)
                            .await
                    }
                })
                .await?;
            let ours: Vec<Vec<u8>> = keys
                .into_iter()
                .filter(|k| self.keys.is_latest_key(k))
                .collect();
            if !ours.is_empty() {
                self.run("clear", |mut c| async move {
                    ::redis::cmd("UNLINK")
                        .arg(ours)
                        .query_async::<i64>(&mut c)
                        .await
                })
                .await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
        let key = self.keys.symbols().to_string();
        self.run("clear", |mut c| async move {
            ::redis::cmd("UNLINK")
                .arg(key)
                .query_async::<i64>(&mut c)
                .await
        })
        .await?;
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        self.run("ping", |mut c| async move {
            ::redis::cmd("PING").query_async::<String>(&mut c).await
        })
        .await?;
        Ok(())
    }
}

/// What applying a batch in order would leave for one instrument: per
/// slot, the first entry with the highest offset (a later equal offset never
/// replaces it).
#[derive(Debug, PartialEq)]
struct Newest<'a> {
    symbol: &'a Symbol,
    venue: &'a Venue,
    quote: Option<&'a Positioned>,
    trade: Option<&'a Positioned>,
}

/// [`Newest`] for every instrument of `batch`, in order of first appearance.
fn newest_per_instrument(batch: &[Positioned]) -> Vec<Newest<'_>> {
    let mut out: Vec<Newest<'_>> = Vec::new();
    let mut index: HashMap<(&Symbol, &Venue), usize> = HashMap::new();
    for p in batch {
        if matches!(p.event, Event::Status(_)) {
            continue;
        }
        let (symbol, venue) = (p.event.symbol(), p.event.venue());
        let i = *index.entry((symbol, venue)).or_insert_with(|| {
            out.push(Newest {
                symbol,
                venue,
                quote: None,
                trade: None,
            });
            out.len() - 1
        });
        let slot = match p.event {
            Event::Quote(_) => &mut out[i].quote,
            Event::Trade(_) => &mut out[i].trade,
            Event::Status(_) => continue,
        };
        if slot.is_none_or(|cur| p.position.offset > cur.position.offset) {
            *slot = Some(p);
        }
    }
    out
}

/// The field/value pairs of `symbol`'s latest hash from its HGETALL reply.
fn hash_pairs<'a>(symbol: &Symbol, reply: &'a Value) -> Result<Vec<(&'a [u8], &'a [u8])>> {
    match reply {
        Value::ServerError(e) if e.code() == "WRONGTYPE" => Err(Error::Corrupt {
            symbol: symbol.as_str().to_string(),
            reason: format!("its latest key is not a hash: {e}"),
        }),
        Value::ServerError(e) => Err(Error::Unavailable(format!(
            "redis get of {}: {e}",
            symbol.as_str()
        ))),
        other => pairs(symbol.as_str(), other),
    }
}

/// Field/value pairs of an HGETALL reply (a flat array in RESP2, a map in
/// RESP3); `whose` names the key in errors.
fn pairs<'a>(whose: &str, reply: &'a Value) -> Result<Vec<(&'a [u8], &'a [u8])>> {
    let bad = |what: String| Error::Corrupt {
        symbol: whose.into(),
        reason: what,
    };
    let mut out = Vec::new();
    match reply {
        Value::Array(items) if items.len() % 2 == 0 => {
            for kv in items.chunks_exact(2) {
                match (&kv[0], &kv[1]) {
                    (Value::BulkString(k), Value::BulkString(v)) => out.push((&k[..], &v[..])),
                    other => return Err(bad(format!("unexpected HGETALL item {other:?}"))),
                }
            }
        }
        Value::Map(items) => {
            for (k, v) in items {
                match (k, v) {
                    (Value::BulkString(k), Value::BulkString(v)) => out.push((&k[..], &v[..])),
                    other => return Err(bad(format!("unexpected HGETALL item {other:?}"))),
                }
            }
        }
        Value::ServerError(e) if e.code() == "WRONGTYPE" => {
            return Err(bad(format!("the key is not a hash: {e}")));
        }
        other => return Err(bad(format!("unexpected HGETALL reply {other:?}"))),
    }
    Ok(out)
}

/// The put script's `MDHUB_CORRUPT SYMBOL reason` error (a latest key of the
/// wrong type), as [`Error::Corrupt`].
fn corrupt_from_script(e: &RedisError) -> Option<Error> {
    if e.code() != Some("MDHUB_CORRUPT") {
        return None;
    }
    let detail = e.detail().unwrap_or_default();
    let (symbol, reason) = detail.split_once(' ').unwrap_or((detail, ""));
    Some(Error::Corrupt {
        symbol: symbol.to_string(),
        reason: format!("cannot update its latest key: {reason}"),
    })
}

fn tcp_settings() -> TcpSettings {
    let keepalive = TcpKeepalive::new()
        .with_time(KEEPALIVE_IDLE)
        .with_interval(KEEPALIVE_INTERVAL);
    let settings = TcpSettings::default()
        .set_nodelay(true)
        .set_keepalive(keepalive);
    #[cfg(target_os = "linux")]
    let settings = settings.set_user_timeout(TCP_USER_TIMEOUT);
    settings
}

/// rustls 0.23 needs a process-wide crypto provider before the first TLS
/// connection; redis-rs does not pick one. Install `ring` once, unless the
/// program already installed one (that one is kept).
fn install_crypto_provider() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The connection manager, with the backstop that rebuilds it (see the
/// module docs, "Failures").
struct Conn {
    client: Client,
    config: ConnectionManagerConfig,
    manager: RwLock<ConnectionManager>,
    state: Mutex<ConnState>,
}

struct ConnState {
    failing_since: Option<Instant>,
    rebuilt_at: Option<Instant>,
}

impl Conn {
    fn new(client: Client, config: ConnectionManagerConfig, manager: ConnectionManager) -> Self {
        Conn {
            client,
            config,
            manager: RwLock::new(manager),
            state: Mutex::new(ConnState {
                failing_since: None,
                rebuilt_at: None,
            }),
        }
    }

    fn current(&self) -> ConnectionManager {
        self.manager.read().clone()
    }

    fn succeeded(&self) {
        self.state.lock().failing_since = None;
    }

    /// Note a failed operation; rebuild the connection when it has been
    /// failing for [`REBUILD_AFTER`], or at once when `now` (a read-only
    /// replica), at most once per [`REBUILD_AFTER`].
    fn failed(&self, now: bool, url: &str) {
        let t = Instant::now();
        let mut s = self.state.lock();
        let since = *s.failing_since.get_or_insert(t);
        let due = now || t.duration_since(since) >= REBUILD_AFTER;
        let allowed = s
            .rebuilt_at
            .is_none_or(|r| t.duration_since(r) >= REBUILD_AFTER);
        if !(due && allowed) {
            return;
        }
        match ConnectionManager::new_lazy_with_config(self.client.clone(), self.config.clone()) {
            Ok(m) => {
                *self.manager.write() = m;
                tracing::warn!(url, "redis connection rebuilt after persistent failures");
            }
            Err(e) => tracing::warn!(url, error = %e, "redis connection could not be rebuilt"),
        }
        s.rebuilt_at = Some(t);
        s.failing_since = Some(t);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{quote, trade};

    #[test]
    fn newest_per_instrument_is_what_in_order_application_leaves() {
        let mut same = quote("AAPL", "v", 12, 99);
        same.position.offset = 12;
        let batch = vec![
            quote("AAPL", "v", 10, 1),
            trade("AAPL", "v", 3, 2),
            quote("AAPL", "v", 12, 3),
            quote("MSFT", "v", 5, 4),
            same,
            quote("AAPL", "v", 11, 5),
            trade("AAPL", "v", 2, 6),
            quote("AAPL", "w", 1, 7),
        ];
        let kept = newest_per_instrument(&batch);
        let aapl = Symbol::new("AAPL").unwrap();
        let msft = Symbol::new("MSFT").unwrap();
        let (v, w) = (Venue::new("v").unwrap(), Venue::new("w").unwrap());
        assert_eq!(
            kept,
            vec![
                Newest {
                    symbol: &aapl,
                    venue: &v,
                    quote: Some(&batch[2]),
                    trade: Some(&batch[1]),
                },
                Newest {
                    symbol: &msft,
                    venue: &v,
                    quote: Some(&batch[3]),
                    trade: None,
                },
                Newest {
                    symbol: &aapl,
                    venue: &w,
                    quote: Some(&batch[7]),
                    trade: None,
                },
            ]
        );
        assert!(newest_per_instrument(&[]).is_empty());
    }
}
