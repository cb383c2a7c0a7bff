//! The live Kraken v2 feed: one connection, subscribe messages for the
//! `trade` and `ticker` channels of every configured symbol (sent again
//! after each reconnect), kept alive by [`crate::venues::ws`]. Kraken sends a
//! `heartbeat` every second once subscribed, so the watchdog never trips on a
//! quiet market.

use mdhub_types::{Symbol, Venue};

use super::Decoder;
use crate::venues::ws;
use crate::{Feed, FeedContext, FeedError};

/// Settings of a Kraken feed.
#[derive(Debug, Clone)]
pub struct KrakenConfig {
    /// The feed URL. Default `wss://ws.kraken.com/v2`.
    pub url: String,
    /// Canonical symbols (`BTC-USD`; Kraken's `BTC/USD`).
    pub symbols: Vec<Symbol>,
    /// Send a ping this often (seconds).
    pub ping_secs: u64,
    /// Drop a connection that sent nothing for this long (seconds).
    pub stale_secs: u64,
}

impl Default for KrakenConfig {
    fn default() -> Self {
        KrakenConfig {
            url: "wss://ws.kraken.com/v2".into(),
            symbols: Vec::new(),
            ping_secs: 20,
            stale_secs: 30,
        }
    }
}

/// The Kraken v2 feed.
#[derive(Debug)]
pub struct KrakenFeed {
    venue: Venue,
    cfg: KrakenConfig,
}

impl KrakenFeed {
    /// A feed for `cfg.symbols`.
    pub fn new(cfg: KrakenConfig) -> Self {
        KrakenFeed {
            venue: Venue::new("kraken").unwrap_or_else(|_| unreachable!("valid venue id")),
            cfg,
        }
    }

    /// The subscribe messages: one per channel, all symbols.
    pub fn subscribe_messages(&self) -> Vec<String> {
        let symbols: Vec<String> = self.cfg.symbols.iter().map(super::native).collect();
        ["trade", "ticker"]
            .into_iter()
            .map(|channel| {
                serde_json::json!({
                    "method": "subscribe",
                    "params": {"channel": channel, "symbol": symbols, "snapshot": true},
                })
                .to_string()
            })
            .collect()
    }
}

#[async_trait::async_trait]
impl Feed for KrakenFeed {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn symbols(&self) -> Vec<Symbol> {
        self.cfg.symbols.clone()
    }

    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        ws::run_single(
            "kraken",
            &self.cfg.url,
            &self.cfg.symbols,
            self.subscribe_messages(),
            Box::new(Decoder::default()),
            (self.cfg.ping_secs, self.cfg.stale_secs),
            ctx,
        )
        .await
    }
}
