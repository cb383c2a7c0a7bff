//! The latest-price cache: the newest quote and trade of every instrument
//! (venue and symbol), and a directory of instruments with their last update.
//!
//! An instrument is a venue and a symbol: `BTC-USD` on `coinbase` and
//! `BTC-USD` on `kraken` are two entries, never one that both overwrite.
//!
//! Data comes in from the log — the ingest stage or a log follower writes each
//! process's own [`MemoryCache`], the cache writer (consumer group
//! `mdhub-cache`) writes Redis — and goes out to gateways, which send
//! it as the snapshot a client receives on subscribe, and to `/v1/snapshot`.
//! Every entry keeps its log [`Position`](mdhub_types::Position), so a
//! gateway can continue a snapshot from the stream without a gap or a
//! duplicate.
//!
//! [`MemoryCache`] is the embedded default; [`RedisCache`] implements the same
//! [`Cache`] trait in a Redis server shared by every instance when `REDIS_URL`
//! is set (key layout: the [`redis`] module docs and the crate README).
//! [`LayeredCache`] is how a gateway reads Redis over its own view (newest
//! entry wins; its own view alone while Redis is down). [`conformance`] is the
//! suite every implementation runs.

pub mod conformance;
mod layered;
mod memory;
pub mod redis;
pub mod writer;

use std::fmt::Debug;

use mdhub_types::{Positioned, Symbol, Timestamp, Venue};
use serde::Serialize;

pub use self::redis::{RedisCache, RedisConfig, RedisConfigError};
pub use layered::LayeredCache;
pub use memory::MemoryCache;
pub use writer::CacheWriter;

/// Why a cache operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cache server cannot be reached or refused the operation.
    #[error("cache unavailable: {0}")]
    Unavailable(String),
    /// The cache is configured wrongly (a bad Redis URL, …); not retryable.
    #[error("cache configuration: {0}")]
    Config(#[from] RedisConfigError),
    /// Stored data could not be decoded.
    #[error("cache entry for {symbol} is corrupt: {reason}")]
    Corrupt {
        /// The symbol whose entry is bad.
        symbol: String,
        /// Why.
        reason: String,
    },
}

impl Error {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Unavailable(_))
    }
}

/// The cache's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The latest state of one instrument (venue and symbol).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Latest {
    /// The venue.
    pub venue: Venue,
    /// The symbol.
    pub symbol: Symbol,
    /// Newest quote, with its log position.
    pub quote: Option<Positioned>,
    /// Newest trade, with its log position.
    pub trade: Option<Positioned>,
}

impl Latest {
    /// An instrument with nothing in it yet.
    pub fn empty(venue: Venue, symbol: Symbol) -> Self {
        Latest {
            venue,
            symbol,
            quote: None,
            trade: None,
        }
    }

    /// The log offsets of the two slots, `[quote, trade]`.
    pub fn offsets(&self) -> [Option<u64>; 2] {
        let off = |p: &Option<Positioned>| p.as_ref().map(|p| p.position.offset);
        [off(&self.quote), off(&self.trade)]
    }
}

/// The log offsets of one instrument's entries, `[quote, trade]`.
pub type VenueOffsets = (Venue, [Option<u64>; 2]);

/// One line of the instrument directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolInfo {
    /// The symbol.
    pub symbol: Symbol,
    /// The venue.
    pub venue: Venue,
    /// `ts_received` of the instrument's newest event.
    pub last_update: Timestamp,
}

/// The latest-price cache.
///
/// Contract (checked by [`conformance::run_all`]):
/// - [`Cache::put`] keeps, per venue, symbol and kind (quote, trade), the
///   entry with the highest log offset: an older or equal position never
///   replaces a newer one, so writers may replay and race. Entries in one
///   call are applied in order. Venues never overwrite each other. Feed-status
///   entries ([`mdhub_types::Event::Status`]) are ignored: the cache holds
///   prices.
/// - A successful `put` is visible to every later `get` through the same cache
///   (read-your-writes); it is not promised to survive a restart of the cache.
/// - [`Cache::get`] returns one [`Latest`] per venue that has the symbol,
///   sorted by venue.
/// - [`Cache::symbols`] lists every instrument ever put (until
///   [`Cache::clear`]) with the `ts_received` of its newest event, sorted by
///   symbol, then venue.
/// - Methods fail only when the backing store is unreachable; they never panic.
#[async_trait::async_trait]
pub trait Cache: Send + Sync + Debug {
    /// Record events (see the trait docs for the ordering rule).
    async fn put(&self, entries: &[Positioned]) -> Result<()>;
    /// The latest state of one symbol on every venue that has it, sorted by
    /// venue; empty if it was never put.
    async fn get(&self, symbol: &Symbol) -> Result<Vec<Latest>>;
    /// Several symbols at once, in the order asked.
    async fn get_many(&self, symbols: &[Symbol]) -> Result<Vec<Vec<Latest>>> {
        let mut out = Vec::with_capacity(symbols.len());
        for s in symbols {
            out.push(self.get(s).await?);
        }
        Ok(out)
    }
    /// The log offsets of the entries [`Cache::get_many`] would return, per
    /// venue (sorted) for each symbol in the order asked — a cheap way to
    /// learn whether this cache holds anything newer than another view.
    async fn offsets(&self, symbols: &[Symbol]) -> Result<Vec<Vec<VenueOffsets>>> {
        Ok(self
            .get_many(symbols)
            .await?
            .into_iter()
            .map(|ls| ls.iter().map(|l| (l.venue.clone(), l.offsets())).collect())
            .collect())
    }
    /// The instrument directory, sorted by symbol, then venue.
    async fn symbols(&self) -> Result<Vec<SymbolInfo>>;
    /// Forget everything (used when the log's epoch changes).
    async fn clear(&self) -> Result<()>;
    /// Check that the backing store answers.
    async fn health(&self) -> Result<()>;
    /// `Some(reason)` when the cache answers but from a fallback (a shared
    /// layer is down), `None` when it is whole. Default `None`.
    async fn degraded(&self) -> Option<String> {
        None
    }
}
