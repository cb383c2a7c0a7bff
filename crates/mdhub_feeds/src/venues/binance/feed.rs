//! The live Binance spot feed: combined streams named in the URL
//! (`/stream?streams=btcusdt@trade/…`), so no subscribe messages are sent and
//! Binance's 5-messages-per-second inbound limit is never at risk; at most
//! 1,024 streams per connection (more symbols open more connections). The
//! connection keeping — pings, watchdog, the 24-hour renewal, backoff with
//! jitter, Retry-After — is [`crate::venues::ws`].

use mdhub_types::{Symbol, Venue};

use super::Decoder;
use crate::venues::ws::{self, WsJob, WsSettings};
use crate::{Feed, FeedContext, FeedError};

/// Settings of a Binance feed.
#[derive(Debug, Clone)]
pub struct BinanceConfig {
    /// Base URL. Default `wss://stream.binance.com:9443`.
    pub url: String,
    /// Canonical symbols to stream (trades and best bid/ask of each).
    pub symbols: Vec<Symbol>,
    /// Streams per connection (Binance allows 1,024).
    pub max_streams_per_connection: usize,
    /// Send a ping this often (seconds).
    pub ping_secs: u64,
    /// Drop a connection that sent nothing for this long (seconds).
    pub stale_secs: u64,
    /// Reconnect after this long, before Binance's 24-hour cut (seconds).
    pub max_connection_secs: u64,
}

impl Default for BinanceConfig {
    fn default() -> Self {
        BinanceConfig {
            url: "wss://stream.binance.com:9443".into(),
            symbols: Vec::new(),
            max_streams_per_connection: 1024,
            ping_secs: 20,
            stale_secs: 60,
            max_connection_secs: 23 * 3600 + 50 * 60,
        }
    }
}

/// The Binance spot feed.
#[derive(Debug)]
pub struct BinanceFeed {
    venue: Venue,
    cfg: BinanceConfig,
}

impl BinanceFeed {
    /// A feed for `cfg.symbols`.
    pub fn new(cfg: BinanceConfig) -> Self {
        BinanceFeed {
            venue: Venue::new("binance").unwrap_or_else(|_| unreachable!("valid venue id")),
            cfg,
        }
    }

    /// The combined-stream URLs, one per connection.
    pub fn urls(&self) -> Vec<String> {
        self.connections().into_iter().map(|(url, _)| url).collect()
    }

    /// One entry per connection: its combined-stream URL and the symbols
    /// it carries (two streams each, within `max_streams_per_connection`).
    fn connections(&self) -> Vec<(String, Vec<Symbol>)> {
        let names = Decoder::default().symbols;
        let per_connection = (self.cfg.max_streams_per_connection / 2).max(1);
        self.cfg
            .symbols
            .chunks(per_connection)
            .map(|chunk| {
                let streams: Vec<String> = chunk
                    .iter()
                    .flat_map(|s| {
                        let n = names.native(s);
                        [format!("{n}@trade"), format!("{n}@bookTicker")]
                    })
                    .collect();
                let url = format!(
                    "{}/stream?streams={}",
                    self.cfg.url.trim_end_matches('/'),
                    streams.join("/")
                );
                (url, chunk.to_vec())
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Feed for BinanceFeed {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn symbols(&self) -> Vec<Symbol> {
        self.cfg.symbols.clone()
    }

    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        let jobs = self
            .connections()
            .into_iter()
            .map(|(url, symbols)| WsJob {
                venue: "binance",
                url,
                symbols,
                conn: 0,
                subscribe: Vec::new(),
                decoder: Box::new(Decoder::default()),
                settings: WsSettings {
                    ping_secs: self.cfg.ping_secs,
                    stale_secs: self.cfg.stale_secs,
                    max_connection_secs: self.cfg.max_connection_secs,
                },
            })
            .collect();
        ws::run_all("binance", jobs, ctx).await
    }
}
