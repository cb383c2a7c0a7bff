//! `[venues]`: the real exchanges `mdhub run` and `mdhub ingest` connect to,
//! each turned into its feed's settings with one-line errors.

use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[venues]`: real exchange connections.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VenuesConfig {
    /// Binance spot (`[venues.binance]`); absent = not connected.
    pub binance: Option<BinanceSection>,
    /// Coinbase Exchange (`[venues.coinbase]`); absent = not connected.
    pub coinbase: Option<VenueSection>,
    /// Kraken spot, WebSocket v2 (`[venues.kraken]`); absent = not connected.
    pub kraken: Option<VenueSection>,
    /// Alpaca US equities data (`[venues.alpaca]`); absent = not connected.
    pub alpaca: Option<AlpacaSection>,
    /// A FIX 4.4 market-data session (`[venues.fix]`); absent = not connected.
    pub fix: Option<FixSection>,
}

impl VenuesConfig {
    /// Is any real venue configured?
    pub fn any(&self) -> bool {
        self.binance.is_some()
            || self.coinbase.is_some()
            || self.kraken.is_some()
            || self.alpaca.is_some()
            || self.fix.is_some()
    }
}

/// `[venues.binance]`: Binance spot over combined WebSocket streams.
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
        let d = mdhub_feeds::venues::binance::BinanceConfig::default();
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
    pub fn feed_config(&self) -> Result<mdhub_feeds::venues::binance::BinanceConfig, ConfigError> {
        let symbols = venue_symbols("binance", &self.symbols, "BTC-USDT")?;
        ws_url("binance", &self.url)?;
        Ok(mdhub_feeds::venues::binance::BinanceConfig {
            url: self.url.clone(),
            symbols,
            max_streams_per_connection: self.max_streams_per_connection.max(2),
            ping_secs: self.ping_secs,
            stale_secs: self.stale_secs,
            ..Default::default()
        })
    }
}

/// `[venues.coinbase]` and `[venues.kraken]`: a venue with one connection
/// and subscribe messages.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VenueSection {
    /// Canonical symbols (`BTC-USD`).
    pub symbols: Vec<String>,
    /// Feed URL; unset = the venue's public endpoint
    /// (`wss://ws-feed.exchange.coinbase.com`, `wss://ws.kraken.com/v2`).
    pub url: Option<String>,
    /// Seconds between the feed's own pings. Default 20.
    pub ping_secs: u64,
    /// A connection silent this long is dropped and reopened (both venues
    /// send heartbeats every second). Default 30.
    pub stale_secs: u64,
}

impl Default for VenueSection {
    fn default() -> Self {
        VenueSection {
            symbols: Vec::new(),
            url: None,
            ping_secs: 20,
            stale_secs: 30,
        }
    }
}

impl VenueSection {
    /// The Coinbase feed's settings, or the one-line problem.
    pub fn coinbase(&self) -> Result<mdhub_feeds::venues::coinbase::CoinbaseConfig, ConfigError> {
        let d = mdhub_feeds::venues::coinbase::CoinbaseConfig::default();
        let url = self.url.clone().unwrap_or(d.url);
        ws_url("coinbase", &url)?;
        Ok(mdhub_feeds::venues::coinbase::CoinbaseConfig {
            url,
            symbols: venue_symbols("coinbase", &self.symbols, "BTC-USD")?,
            ping_secs: self.ping_secs,
            stale_secs: self.stale_secs,
        })
    }

    /// The Kraken feed's settings, or the one-line problem.
    pub fn kraken(&self) -> Result<mdhub_feeds::venues::kraken::KrakenConfig, ConfigError> {
        let d = mdhub_feeds::venues::kraken::KrakenConfig::default();
        let url = self.url.clone().unwrap_or(d.url);
        ws_url("kraken", &url)?;
        Ok(mdhub_feeds::venues::kraken::KrakenConfig {
            url,
            symbols: venue_symbols("kraken", &self.symbols, "BTC-USD")?,
            ping_secs: self.ping_secs,
            stale_secs: self.stale_secs,
        })
    }
}

/// `[venues.alpaca]`: Alpaca's real-time US equities stream (authenticated).
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

fn hidden<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if v.is_empty() { "" } else { "***" })
}

impl Default for AlpacaSection {
    fn default() -> Self {
        let d = mdhub_feeds::venues::alpaca::AlpacaConfig::default();
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
    pub fn feed_config(&self) -> Result<mdhub_feeds::venues::alpaca::AlpacaConfig, ConfigError> {
        ws_url("alpaca", &self.url)?;
        if self.key.is_empty() || self.secret.is_empty() {
            return Err(ConfigError(
                "venues.alpaca: set key and secret (or APCA_API_KEY_ID and APCA_API_SECRET_KEY)"
                    .into(),
            ));
        }
        Ok(mdhub_feeds::venues::alpaca::AlpacaConfig {
            url: self.url.clone(),
            key: self.key.clone(),
            secret: self.secret.clone(),
            symbols: venue_symbols("alpaca", &self.symbols, "AAPL")?,
            ping_secs: self.ping_secs,
            stale_secs: self.stale_secs,
        })
    }
}

/// `[venues.fix]`: a FIX 4.4 market-data session (the institutional path).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FixSection {
    /// The venue's FIX host.
    pub host: String,
    /// The venue's FIX port.
    pub port: u16,
    /// SenderCompID(49): mdhub's id at the venue.
    pub sender_comp_id: String,
    /// TargetCompID(56): the venue's id.
    pub target_comp_id: String,
    /// HeartBtInt(108) proposed at Logon, seconds. Default 30.
    pub heartbeat_secs: u64,
    /// Sequence numbers and sent messages, kept across restarts. Default
    /// `<data_dir>/fix`.
    pub store_dir: Option<std::path::PathBuf>,
    /// A QuickFIX-format dictionary (XML) for a venue with custom tags.
    pub dictionary: Option<std::path::PathBuf>,
    /// Canonical symbol → the venue's Symbol(55), e.g. `"BTC-USD" = "BTC/USD"`.
    pub symbols: std::collections::BTreeMap<String, String>,
}

impl Default for FixSection {
    fn default() -> Self {
        let d = mdhub_feeds::venues::fix::FixSettings::default();
        FixSection {
            host: d.host,
            port: d.port,
            sender_comp_id: d.sender_comp_id,
            target_comp_id: d.target_comp_id,
            heartbeat_secs: d.heartbeat_secs,
            store_dir: None,
            dictionary: None,
            symbols: Default::default(),
        }
    }
}

impl FixSection {
    /// The feed's settings (store under `data_dir` unless set), or the
    /// one-line problem.
    pub fn feed_config(
        &self,
        data_dir: &std::path::Path,
    ) -> Result<mdhub_feeds::venues::fix::FixSettings, ConfigError> {
        if self.symbols.is_empty() {
            return Err(ConfigError(
                "venues.fix.symbols: map at least one symbol, e.g. \"BTC-USD\" = \"BTC/USD\""
                    .into(),
            ));
        }
        if self.sender_comp_id.is_empty() || self.target_comp_id.is_empty() {
            return Err(ConfigError(
                "venues.fix: sender_comp_id and target_comp_id are required".into(),
            ));
        }
        let mut symbols = std::collections::BTreeMap::new();
        for (canonical, native) in &self.symbols {
            let s = mdhub_types::Symbol::new(canonical)
                .map_err(|e| ConfigError(format!("venues.fix.symbols: {canonical:?}: {e}")))?;
            symbols.insert(s, native.clone());
        }
        Ok(mdhub_feeds::venues::fix::FixSettings {
            host: self.host.clone(),
            port: self.port,
            sender_comp_id: self.sender_comp_id.clone(),
            target_comp_id: self.target_comp_id.clone(),
            heartbeat_secs: self.heartbeat_secs.max(1),
            store_dir: self
                .store_dir
                .clone()
                .unwrap_or_else(|| data_dir.join("fix")),
            symbols,
            dictionary: self.dictionary.clone(),
            ..mdhub_feeds::venues::fix::FixSettings::default()
        })
    }
}

fn venue_symbols(
    venue: &str,
    list: &[String],
    example: &str,
) -> Result<Vec<mdhub_types::Symbol>, ConfigError> {
    if list.is_empty() {
        return Err(ConfigError(format!(
            "venues.{venue}.symbols: list at least one symbol, e.g. [\"{example}\"]"
        )));
    }
    list.iter()
        .map(|s| {
            mdhub_types::Symbol::new(s)
                .map_err(|e| ConfigError(format!("venues.{venue}.symbols: {s:?}: {e}")))
        })
        .collect()
}

fn ws_url(venue: &str, url: &str) -> Result<(), ConfigError> {
    if url.starts_with("wss://") || url.starts_with("ws://") {
        Ok(())
    } else {
        Err(ConfigError(format!(
            "venues.{venue}.url: {url:?} is not a ws:// or wss:// URL"
        )))
    }
}
