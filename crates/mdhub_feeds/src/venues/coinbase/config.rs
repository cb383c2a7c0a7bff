//! `[venues.coinbase]`: Coinbase Exchange, one connection.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{CoinbaseConfig, CoinbaseFeed};
use crate::Feed;
use crate::venues::registry::{FeedEnv, VenueSection, venue_symbols, ws_url};
use crate::venues::ws_section::OneConnectionSection;

/// `[venues.coinbase]` (URL default `wss://ws-feed.exchange.coinbase.com`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct CoinbaseSection(pub OneConnectionSection);

impl CoinbaseSection {
    /// The feed's settings, or the one-line problem.
    pub fn feed_config(&self) -> Result<CoinbaseConfig, String> {
        let s = &self.0;
        let url = s.url.clone().unwrap_or(CoinbaseConfig::default().url);
        ws_url("coinbase", &url)?;
        Ok(CoinbaseConfig {
            url,
            symbols: venue_symbols("coinbase", &s.symbols, "BTC-USD")?,
            ping_secs: s.ping_secs,
            stale_secs: s.stale_secs,
        })
    }
}

impl VenueSection for CoinbaseSection {
    const ID: &'static str = "coinbase";
    fn feed(&self, _env: &FeedEnv<'_>) -> Result<Arc<dyn Feed>, String> {
        Ok(Arc::new(CoinbaseFeed::new(self.feed_config()?)))
    }
    fn symbol_count(&self) -> usize {
        self.0.symbols.len()
    }
}
