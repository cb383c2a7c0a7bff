//! `[venues]`: the real exchanges `mdhub run` and `mdhub ingest` connect to.
//! Each `[venues.<id>]` section belongs to the venue's folder in
//! `mdhub_feeds` and is read through the venue registry; nothing here names
//! a venue.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use mdhub_feeds::venues::registry::{self, FeedEnv, VenueSetup};
use serde::{Deserialize, Serialize};

use super::ConfigError;

/// `[venues]`: real exchange connections, by venue id.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct VenuesConfig(BTreeMap<String, serde_json::Value>);

impl VenuesConfig {
    /// Is any real venue configured?
    pub fn any(&self) -> bool {
        !self.0.is_empty()
    }

    /// The configured venues' ids.
    pub fn ids(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    /// Fill empty string fields of configured sections from the venues'
    /// environment variables (Alpaca's `APCA_API_KEY_ID`, …).
    pub(crate) fn fill_from_env(&mut self, env: &std::collections::HashMap<String, String>) {
        for (id, section) in &mut self.0 {
            let Some(spec) = registry::spec(id) else {
                continue;
            };
            let Some(table) = section.as_object_mut() else {
                continue;
            };
            for (field, var) in spec.env {
                let empty = table
                    .get(*field)
                    .is_none_or(|v| v.as_str().is_some_and(str::is_empty));
                if let (true, Some(v)) = (empty, env.get(*var)) {
                    table.insert((*field).to_string(), serde_json::Value::String(v.clone()));
                }
            }
        }
    }

    /// Every configured venue, checked, in id order.
    pub fn setups(&self) -> Result<Vec<Box<dyn VenueSetup>>, ConfigError> {
        self.0
            .iter()
            .map(|(id, section)| {
                let spec = registry::spec(id).ok_or_else(|| {
                    ConfigError(format!(
                        "venues.{id}: unknown venue; known: {}",
                        registry::ids().collect::<Vec<_>>().join(", ")
                    ))
                })?;
                (spec.configure)(section.clone()).map_err(ConfigError)
            })
            .collect()
    }

    /// The configured venues' feeds.
    pub fn feeds(&self, data_dir: &Path) -> Result<Vec<Arc<dyn mdhub_feeds::Feed>>, ConfigError> {
        let env = FeedEnv { data_dir };
        self.setups()?
            .iter()
            .map(|s| s.feed(&env).map_err(ConfigError))
            .collect()
    }

    /// For the start-up line: `binance (3 symbols), kraken (2 symbols)`.
    pub fn describe(&self) -> String {
        match self.setups() {
            Ok(s) => s
                .iter()
                .map(|s| s.describe())
                .collect::<Vec<_>>()
                .join(", "),
            Err(e) => e.0,
        }
    }

    /// A venue's section as its venue reads it (defaults filled in).
    pub fn section<T: serde::de::DeserializeOwned>(&self, id: &str) -> Option<T> {
        serde_json::from_value(self.0.get(id)?.clone()).ok()
    }
}

impl Serialize for VenuesConfig {
    /// The effective sections (defaults filled in, secrets hidden); a
    /// section that does not check is printed as written.
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut out = BTreeMap::new();
        for (id, raw) in &self.0 {
            let shown = registry::spec(id)
                .and_then(|spec| (spec.configure)(raw.clone()).ok())
                .map_or_else(|| raw.clone(), |setup| setup.effective());
            out.insert(id.clone(), without_nulls(shown));
        }
        out.serialize(s)
    }
}

/// TOML has no null: unset optional fields are left out.
fn without_nulls(v: serde_json::Value) -> serde_json::Value {
    match v {
        serde_json::Value::Object(m) => serde_json::Value::Object(
            m.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, without_nulls(v)))
                .collect(),
        ),
        other => other,
    }
}
