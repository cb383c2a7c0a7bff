//! `[venues.kraken]`: Kraken spot over WebSocket v2, one connection.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{KrakenConfig, KrakenFeed};
use crate::Feed;
use crate::venues::registry::{FeedEnv, VenueSection, venue_symbols, ws_url};
use crate::venues::ws_section::OneConnectionSection;

/// `[venues.kraken]` (URL default `wss://ws.kraken.com/v2`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KrakenSection(pub OneConnectionSection);

impl KrakenSection {
    /// The feed's settings, or the one-line problem.
    pub fn feed_config(&self) -> Result<KrakenConfig, String> {
        let s = &self.0;
        let url = s.url.clone().unwrap_or(KrakenConfig::default().url);
        ws_url("kraken", &url)?;
        Ok(KrakenConfig {
            url,
            symbols: venue_symbols("kraken", &s.symbols, "BTC-USD")?,
            ping_secs: s.ping_secs,
            stale_secs: s.stale_secs,
        })
    }
}

impl VenueSection for KrakenSection {
    const ID: &'static str = "kraken";
    fn feed(&self, _env: &FeedEnv<'_>) -> Result<Arc<dyn Feed>, String> {
        Ok(Arc::new(KrakenFeed::new(self.feed_config()?)))
    }
    fn symbol_count(&self) -> usize {
        self.0.symbols.len()
    }
}
