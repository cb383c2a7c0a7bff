//! The live Coinbase Exchange feed: one connection, a subscribe message for
//! `matches`, `ticker` and `heartbeat` of every configured product (sent again
//! after each reconnect — Coinbase closes connections that do not subscribe
//! within 5 seconds), kept alive by [`crate::venues::ws`]. Heartbeats arrive
//! every second per product, so the watchdog never trips on a quiet market.

use mdhub_types::{Symbol, Venue};

use super::Decoder;
use crate::venues::ws;
use crate::{Feed, FeedContext, FeedError};

/// Settings of a Coinbase feed.
#[derive(Debug, Clone)]
pub struct CoinbaseConfig {
    /// The feed URL. Default `wss://ws-feed.exchange.coinbase.com`.
    pub url: String,
    /// Products (canonical symbols are Coinbase product ids: `BTC-USD`).
    pub symbols: Vec<Symbol>,
    /// Send a ping this often (seconds).
    pub ping_secs: u64,
    /// Drop a connection that sent nothing for this long (seconds).
    pub stale_secs: u64,
}

impl Default for CoinbaseConfig {
    fn default() -> Self {
        CoinbaseConfig {
            url: "wss://ws-feed.exchange.coinbase.com".into(),
            symbols: Vec::new(),
            ping_secs: 20,
            stale_secs: 30,
        }
    }
}

/// The Coinbase Exchange feed.
#[derive(Debug)]
pub struct CoinbaseFeed {
    venue: Venue,
    cfg: CoinbaseConfig,
}

impl CoinbaseFeed {
    /// A feed for `cfg.symbols`.
    pub fn new(cfg: CoinbaseConfig) -> Self {
        CoinbaseFeed {
            venue: Venue::new("coinbase").unwrap_or_else(|_| unreachable!("valid venue id")),
            cfg,
        }
    }

    /// The subscribe message.
    pub fn subscribe_message(&self) -> String {
        serde_json::json!({
            "type": "subscribe",
            "product_ids": self.cfg.symbols.iter().map(Symbol::as_str).collect::<Vec<_>>(),
            "channels": ["matches", "ticker", "heartbeat"],
        })
        .to_string()
    }
}

#[async_trait::async_trait]
impl Feed for CoinbaseFeed {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn symbols(&self) -> Vec<Symbol> {
        self.cfg.symbols.clone()
    }

    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        ws::run_single(
            "coinbase",
            &self.cfg.url,
            &self.cfg.symbols,
            vec![self.subscribe_message()],
            Box::new(Decoder::default()),
            (self.cfg.ping_secs, self.cfg.stale_secs),
            ctx,
        )
        .await
    }
}
