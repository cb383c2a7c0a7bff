//! The embedded in-memory [`Cache`].

use std::collections::BTreeMap;

use mdhub_types::{Event, Positioned, Symbol, Venue};
use parking_lot::RwLock;

use crate::{Cache, Latest, Result, SymbolInfo};

/// A process-local cache: per symbol, a map from venue to its latest quote
/// and trade, behind a read-write lock. Reads never wait on I/O; nothing
/// survives a restart (the ingest stage refills it from the log on start-up).
#[derive(Debug, Default)]
pub struct MemoryCache {
    map: RwLock<BTreeMap<Symbol, BTreeMap<Venue, Latest>>>,
}

impl MemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of instruments (venue and symbol) held.
    pub fn len(&self) -> usize {
        self.map.read().values().map(BTreeMap::len).sum()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }
}

fn newer(slot: &Option<Positioned>, p: &Positioned) -> bool {
    slot.as_ref()
        .is_none_or(|cur| p.position.offset > cur.position.offset)
}

#[async_trait::async_trait]
impl Cache for MemoryCache {
    async fn put(&self, entries: &[Positioned]) -> Result<()> {
        let mut map = self.map.write();
        for p in entries {
            if matches!(p.event, Event::Status(_)) {
                continue;
            }
            let (symbol, venue) = (p.event.symbol(), p.event.venue());
            let venues = match map.get_mut(symbol) {
                Some(v) => v,
                None => map.entry(symbol.clone()).or_default(),
            };
            let latest = match venues.get_mut(venue) {
                Some(l) => l,
                None => venues
                    .entry(venue.clone())
                    .or_insert_with(|| Latest::empty(venue.clone(), symbol.clone())),
            };
            let slot = match p.event {
                Event::Quote(_) => &mut latest.quote,
                Event::Trade(_) => &mut latest.trade,
                Event::Status(_) => continue,
            };
            if newer(slot, p) {
                *slot = Some(p.clone());
            }
        }
        Ok(())
    }

    async fn get(&self, symbol: &Symbol) -> Result<Vec<Latest>> {
        Ok(self
            .map
            .read()
            .get(symbol)
            .map(|v| v.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn symbols(&self) -> Result<Vec<SymbolInfo>> {
        Ok(self
            .map
            .read()
            .values()
            .flat_map(BTreeMap::values)
            .filter_map(info)
            .collect())
    }

    async fn clear(&self) -> Result<()> {
        self.map.write().clear();
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

/// The directory line of an instrument: the time of its newest event.
pub(crate) fn info(l: &Latest) -> Option<SymbolInfo> {
    let newest = [&l.quote, &l.trade]
        .into_iter()
        .flatten()
        .map(|p| p.event.ts_received())
        .max()?;
    Some(SymbolInfo {
        symbol: l.symbol.clone(),
        venue: l.venue.clone(),
        last_update: newest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn passes_the_conformance_suite() {
        crate::conformance::run_all(&MemoryCache::new()).await;
    }
}
