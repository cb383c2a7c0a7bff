//! The embedded in-memory [`Cache`].

use std::collections::BTreeMap;

use mdhub_types::{Event, Positioned, Symbol};
use parking_lot::RwLock;

use crate::{Cache, Latest, Result, SymbolInfo};

/// A process-local cache: a map from symbol to its latest quote and trade
/// behind a read-write lock. Reads never wait on I/O; nothing survives a restart
/// (the ingest stage refills it from the log on start-up).
#[derive(Debug, Default)]
pub struct MemoryCache {
    map: RwLock<BTreeMap<Symbol, Latest>>,
}

impl MemoryCache {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of symbols held.
    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    /// True when no symbol is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
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
            let symbol = p.event.symbol();
            let latest = match map.get_mut(symbol) {
                Some(l) => l,
                None => map.entry(symbol.clone()).or_insert(Latest {
                    symbol: symbol.clone(),
                    quote: None,
                    trade: None,
                }),
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

    async fn get(&self, symbol: &Symbol) -> Result<Option<Latest>> {
        Ok(self.map.read().get(symbol).cloned())
    }

    async fn symbols(&self) -> Result<Vec<SymbolInfo>> {
        Ok(self.map.read().values().filter_map(info).collect())
    }

    async fn clear(&self) -> Result<()> {
        self.map.write().clear();
        Ok(())
    }

    async fn health(&self) -> Result<()> {
        Ok(())
    }
}

/// The directory line of a symbol: venue and time of its newest event.
pub(crate) fn info(l: &Latest) -> Option<SymbolInfo> {
    let newest = [&l.quote, &l.trade]
        .into_iter()
        .flatten()
        .max_by_key(|p| p.event.ts_received())?;
    Some(SymbolInfo {
        symbol: l.symbol.clone(),
        venue: newest.event.venue().clone(),
        last_update: newest.event.ts_received(),
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
