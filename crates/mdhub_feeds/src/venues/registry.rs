//! The one list of real venues. Everything outside a venue's folder that
//! needs to know the venues — the `[venues]` configuration and its
//! validation, `mdhub run`'s feeds and start-up line, `mdhub normalize`, the
//! fuzz corpus replay — iterates [`REGISTRY`].
//!
//! A venue's folder exports one [`VenueSpec`] (its id, a description, its
//! decoder with default settings, and how its `[venues.<id>]` section
//! becomes a feed). Adding a venue is that folder plus one line in
//! [`REGISTRY`] (`docs/contributing.md`).

use std::fmt::Debug;
use std::path::Path;
use std::sync::Arc;

use mdhub_types::Symbol;
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::VenueDecoder;
use crate::Feed;

/// What the rest of mdhub needs of a venue.
#[derive(Debug)]
pub struct VenueSpec {
    /// The venue id: the `[venues.<id>]` key, the id events carry.
    pub id: &'static str,
    /// One line for `--help` and the docs.
    pub description: &'static str,
    /// The venue's decoder with default settings (`mdhub normalize`, fuzzing).
    pub decoder: fn() -> Box<dyn VenueDecoder>,
    /// Environment variables that fill a section's empty string fields:
    /// `(field, variable)`, e.g. Alpaca's `("key", "APCA_API_KEY_ID")`.
    pub env: &'static [(&'static str, &'static str)],
    /// Read the `[venues.<id>]` section (any serde value) into a setup.
    pub configure: fn(serde_json::Value) -> Result<Box<dyn VenueSetup>, String>,
}

/// Every real venue, by id. Add a line here for a new venue's folder.
pub static REGISTRY: &[&VenueSpec] = &[
    &super::alpaca::SPEC,
    &super::binance::SPEC,
    &super::coinbase::SPEC,
    &super::fix::SPEC,
    &super::kraken::SPEC,
];

/// The venue with id `id`.
pub fn spec(id: &str) -> Option<&'static VenueSpec> {
    REGISTRY.iter().copied().find(|s| s.id == id)
}

/// Every venue id, in registry order.
pub fn ids() -> impl Iterator<Item = &'static str> {
    REGISTRY.iter().map(|s| s.id)
}

/// What a feed may need from the process besides its section.
#[derive(Debug, Clone, Copy)]
pub struct FeedEnv<'a> {
    /// The process's data directory (a FIX session keeps its store there).
    pub data_dir: &'a Path,
}

/// A venue's configured section, checked: it builds the feed.
pub trait VenueSetup: Debug + Send + Sync {
    /// The feed, or the one-line problem (`venues.<id>.<field>: …`).
    fn feed(&self, env: &FeedEnv<'_>) -> Result<Arc<dyn Feed>, String>;
    /// For the start-up line: `binance (3 symbols)`.
    fn describe(&self) -> String;
    /// The effective section (defaults filled, secrets hidden), for `mdhub config`.
    fn effective(&self) -> serde_json::Value;
}

/// A venue's `[venues.<id>]` section as a typed struct (serde, defaults for
/// every field). [`configure`] turns it into a [`VenueSetup`].
pub trait VenueSection: DeserializeOwned + Serialize + Debug + Send + Sync + 'static {
    /// The venue id.
    const ID: &'static str;
    /// The feed, or the one-line problem.
    fn feed(&self, env: &FeedEnv<'_>) -> Result<Arc<dyn Feed>, String>;
    /// How many symbols the section lists.
    fn symbol_count(&self) -> usize;
}

impl<T: VenueSection> VenueSetup for T {
    fn feed(&self, env: &FeedEnv<'_>) -> Result<Arc<dyn Feed>, String> {
        VenueSection::feed(self, env)
    }
    fn describe(&self) -> String {
        format!("{} ({} symbols)", T::ID, self.symbol_count())
    }
    fn effective(&self) -> serde_json::Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// [`VenueSpec::configure`] for a section type: deserialize, then check by
/// building the feed once (so a bad section fails at start-up, not later).
pub fn configure<T: VenueSection>(v: serde_json::Value) -> Result<Box<dyn VenueSetup>, String> {
    let section: T = serde_json::from_value(v).map_err(|e| format!("venues.{}: {e}", T::ID))?;
    VenueSection::feed(
        &section,
        &FeedEnv {
            data_dir: Path::new("."),
        },
    )?;
    Ok(Box::new(section))
}

/// The canonical symbols of `venues.<venue>.symbols`, at least one.
pub(crate) fn venue_symbols(
    venue: &str,
    list: &[String],
    example: &str,
) -> Result<Vec<Symbol>, String> {
    if list.is_empty() {
        return Err(format!(
            "venues.{venue}.symbols: list at least one symbol, e.g. [\"{example}\"]"
        ));
    }
    list.iter()
        .map(|s| Symbol::new(s).map_err(|e| format!("venues.{venue}.symbols: {s:?}: {e}")))
        .collect()
}

/// Check that `venues.<venue>.url` is a WebSocket URL.
pub(crate) fn ws_url(venue: &str, url: &str) -> Result<(), String> {
    if url.starts_with("wss://") || url.starts_with("ws://") {
        Ok(())
    } else {
        Err(format!(
            "venues.{venue}.url: {url:?} is not a ws:// or wss:// URL"
        ))
    }
}

/// Serialize a secret as `***` (empty stays empty).
pub(crate) fn hidden<S: serde::Serializer>(v: &str, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(if v.is_empty() { "" } else { "***" })
}
