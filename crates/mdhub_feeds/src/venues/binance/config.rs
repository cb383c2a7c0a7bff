//! `[venues.binance]`: Binance spot over combined WebSocket streams.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{BinanceConfig, BinanceFeed};
use crate::Feed;
use crate::venues::registry::{FeedEnv, VenueSection, venue_symbols, ws_url};

/// `[venues.binance]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BinanceSection {
    /// Canonical symbols (`BTC-USDT`); each streams trades and best bid/ask.
    pub symbols: Vec<String>,
    /// Base URL. Default `wss://stream.binance.com:9443`.
    pub url: String,
    /// Streams per connection (Binance allows 1024). Default 1024.
    pub max_streams_per_connection: usize,
    /// Seconds between the feed's own pings. Default 20.
    pub ping_secs: u64,
    /// A connection silent this long is dropped and reopened. Default 60.
    pub stale_secs: u64,
}

impl Default for BinanceSection {
    fn default() -> Self {
        let d = BinanceConfig::default();
        BinanceSection {
            symbols: Vec::new(),
            url: d.url,
            max_streams_per_connection: d.max_streams_per_connection,
            ping_secs: d.ping_secs,
            stale_secs: d.stale_secs,
        }
    }
}

impl BinanceSection {
    /// The feed's settings, or the one-line problem.
    pub fn feed_config(&self) -> Result<BinanceConfig, String> {
        let symbols = venue_symbols("binance", &self.symbols, "BTC-USDT")?;
        ws_url("binance", &self.url)?;
        Ok(BinanceConfig {
            url: self.url.clone(),
            symbols,
            max_streams_per_connection: self.max_streams_per_connection.max(2),
            ping_secs: self.ping_secs,
            stale_secs: self.stale_secs,
            ..Default::default()
        })
    }
}

impl VenueSection for BinanceSection {
    const ID: &'static str = "binance";
    fn feed(&self, _env: &FeedEnv<'_>) -> Result<Arc<dyn Feed>, String> {
        Ok(Arc::new(BinanceFeed::new(self.feed_config()?)))
    }
    fn symbol_count(&self) -> usize {
        self.symbols.len()
    }
}
