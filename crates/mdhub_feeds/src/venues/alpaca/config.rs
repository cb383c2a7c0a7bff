//! `[venues.alpaca]`: Alpaca's real-time US equities stream (authenticated).

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{AlpacaConfig, AlpacaFeed};
use crate::Feed;
use crate::venues::registry::{FeedEnv, VenueSection, hidden, venue_symbols, ws_url};

/// `[venues.alpaca]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlpacaSection {
    /// Tickers (`AAPL`); each streams trades and quotes.
    pub symbols: Vec<String>,
    /// Stream URL. Default `wss://stream.data.alpaca.markets/v2/iex`
    /// (`…/v2/sip` with a SIP subscription).
    pub url: String,
    /// API key id; `$APCA_API_KEY_ID` when unset.
    pub key: String,
    /// API secret; `$APCA_API_SECRET_KEY` when unset. Never printed.
    #[serde(serialize_with = "hidden")]
    pub secret: String,
    /// Seconds between the feed's own pings (the stream is silent outside
    /// market hours). Default 20.
    pub ping_secs: u64,
    /// A connection silent this long, pongs included, is reopened. Default 60.
    pub stale_secs: u64,
}

impl Default for AlpacaSection {
    fn default() -> Self {
        let d = AlpacaConfig::default();
        AlpacaSection {
            symbols: Vec::new(),
            url: d.url,
            key: String::new(),
            secret: String::new(),
            ping_secs: d.ping_secs,
            stale_secs: d.stale_secs,
        }
    }
}

impl AlpacaSection {
    /// The feed's settings, or the one-line problem.
    pub fn feed_config(&self) -> Result<AlpacaConfig, String> {
        ws_url("alpaca", &self.url)?;
        if self.key.is_empty() || self.secret.is_empty() {
            return Err(
                "venues.alpaca: set key and secret (or APCA_API_KEY_ID and APCA_API_SECRET_KEY)"
                    .into(),
            );
        }
        Ok(AlpacaConfig {
            url: self.url.clone(),
            key: self.key.clone(),
            secret: self.secret.clone(),
            symbols: venue_symbols("alpaca", &self.symbols, "AAPL")?,
            ping_secs: self.ping_secs,
            stale_secs: self.stale_secs,
        })
    }
}

impl VenueSection for AlpacaSection {
    const ID: &'static str = "alpaca";
    fn feed(&self, _env: &FeedEnv<'_>) -> Result<Arc<dyn Feed>, String> {
        Ok(Arc::new(AlpacaFeed::new(self.feed_config()?)))
    }
    fn symbol_count(&self) -> usize {
        self.symbols.len()
    }
}
