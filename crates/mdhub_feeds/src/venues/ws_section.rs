//! The `[venues.<id>]` section of a venue that carries every symbol on one
//! WebSocket connection with subscribe messages (Coinbase, Kraken).

use serde::{Deserialize, Serialize};

/// `[venues.coinbase]`, `[venues.kraken]`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OneConnectionSection {
    /// Canonical symbols (`BTC-USD`).
    pub symbols: Vec<String>,
    /// Feed URL; unset = the venue's public endpoint.
    pub url: Option<String>,
    /// Seconds between the feed's own pings. Default 20.
    pub ping_secs: u64,
    /// A connection silent this long is dropped and reopened (both venues
    /// send heartbeats every second). Default 30.
    pub stale_secs: u64,
}

impl Default for OneConnectionSection {
    fn default() -> Self {
        OneConnectionSection {
            symbols: Vec::new(),
            url: None,
            ping_secs: 20,
            stale_secs: 30,
        }
    }
}
