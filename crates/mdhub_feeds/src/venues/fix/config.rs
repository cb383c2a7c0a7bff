//! `[venues.fix]`: a FIX 4.4 market-data session (the institutional path).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::{FixFeed, FixSettings};
use crate::Feed;
use crate::venues::registry::{FeedEnv, VenueSection};

/// `[venues.fix]`.
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
    pub store_dir: Option<PathBuf>,
    /// A QuickFIX-format dictionary (XML) for a venue with custom tags.
    pub dictionary: Option<PathBuf>,
    /// Canonical symbol → the venue's Symbol(55), e.g. `"BTC-USD" = "BTC/USD"`.
    pub symbols: BTreeMap<String, String>,
}

impl Default for FixSection {
    fn default() -> Self {
        let d = FixSettings::default();
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
    pub fn feed_config(&self, data_dir: &Path) -> Result<FixSettings, String> {
        if self.symbols.is_empty() {
            return Err(
                "venues.fix.symbols: map at least one symbol, e.g. \"BTC-USD\" = \"BTC/USD\""
                    .into(),
            );
        }
        if self.sender_comp_id.is_empty() || self.target_comp_id.is_empty() {
            return Err("venues.fix: sender_comp_id and target_comp_id are required".into());
        }
        let mut symbols = BTreeMap::new();
        for (canonical, native) in &self.symbols {
            let s = mdhub_types::Symbol::new(canonical)
                .map_err(|e| format!("venues.fix.symbols: {canonical:?}: {e}"))?;
            symbols.insert(s, native.clone());
        }
        Ok(FixSettings {
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
            ..FixSettings::default()
        })
    }
}

impl VenueSection for FixSection {
    const ID: &'static str = "fix";
    fn feed(&self, env: &FeedEnv<'_>) -> Result<Arc<dyn Feed>, String> {
        Ok(Arc::new(FixFeed::new(self.feed_config(env.data_dir)?)))
    }
    fn symbol_count(&self) -> usize {
        self.symbols.len()
    }
}
