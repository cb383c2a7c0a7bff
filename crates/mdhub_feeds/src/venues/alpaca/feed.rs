//! The live Alpaca stock data feed: one connection; after connecting, the
//! auth message and the subscribe message (sent again after every
//! reconnect), kept alive by [`crate::venues::ws`]. Outside market hours the
//! stream is silent: the feed's own pings (answered with pongs) keep the
//! watchdog from dropping a healthy connection.

use std::fmt;

use mdhub_types::{Symbol, Venue};

use super::Decoder;
use crate::venues::ws;
use crate::{Feed, FeedContext, FeedError};

/// Settings of an Alpaca feed.
#[derive(Clone)]
pub struct AlpacaConfig {
    /// Stream URL. Default `wss://stream.data.alpaca.markets/v2/iex`
    /// (`…/v2/sip` with a SIP subscription).
    pub url: String,
    /// API key id.
    pub key: String,
    /// API secret key (never printed).
    pub secret: String,
    /// Tickers (`AAPL`): trades and quotes of each.
    pub symbols: Vec<Symbol>,
    /// Send a ping this often (seconds).
    pub ping_secs: u64,
    /// Drop a connection that sent nothing, not even a pong, this long (seconds).
    pub stale_secs: u64,
}

impl fmt::Debug for AlpacaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AlpacaConfig")
            .field("url", &self.url)
            .field("key", &self.key)
            .field("secret", &"***")
            .field("symbols", &self.symbols)
            .finish_non_exhaustive()
    }
}

impl Default for AlpacaConfig {
    fn default() -> Self {
        AlpacaConfig {
            url: "wss://stream.data.alpaca.markets/v2/iex".into(),
            key: String::new(),
            secret: String::new(),
            symbols: Vec::new(),
            ping_secs: 20,
            stale_secs: 60,
        }
    }
}

/// The Alpaca stock data feed.
#[derive(Debug)]
pub struct AlpacaFeed {
    venue: Venue,
    cfg: AlpacaConfig,
}

impl AlpacaFeed {
    /// A feed for `cfg.symbols`.
    pub fn new(cfg: AlpacaConfig) -> Self {
        AlpacaFeed {
            venue: Venue::new("alpaca").unwrap_or_else(|_| unreachable!("valid venue id")),
            cfg,
        }
    }

    /// The messages sent after connecting: auth, then subscribe.
    pub fn session_messages(&self) -> Vec<String> {
        let tickers: Vec<&str> = self.cfg.symbols.iter().map(Symbol::as_str).collect();
        vec![
            serde_json::json!({"action": "auth", "key": self.cfg.key, "secret": self.cfg.secret})
                .to_string(),
            serde_json::json!({"action": "subscribe", "trades": tickers, "quotes": tickers})
                .to_string(),
        ]
    }
}

#[async_trait::async_trait]
impl Feed for AlpacaFeed {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn symbols(&self) -> Vec<Symbol> {
        self.cfg.symbols.clone()
    }

    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        if self.cfg.key.is_empty() || self.cfg.secret.is_empty() {
            return Err(FeedError::Config {
                venue: "alpaca".into(),
                message: "API key and secret are required (venues.alpaca.key/secret, or APCA_API_KEY_ID/APCA_API_SECRET_KEY)".into(),
            });
        }
        ws::run_single(
            "alpaca",
            &self.cfg.url,
            &self.cfg.symbols,
            self.session_messages(),
            Box::new(Decoder::default()),
            (self.cfg.ping_secs, self.cfg.stale_secs),
            ctx,
        )
        .await
    }
}
