//! A gateway's view of the cache: a shared layer (Redis, written by the cache
//! writer) over a local layer (this process's own [`MemoryCache`], kept current
//! from the log).
//!
//! Reads merge both layers slot by slot (quote, trade) and keep the entry with
//! the higher log offset, so a gateway that just started answers from Redis at
//! once, and one whose local view is ahead of the cache writer answers from
//! memory. When the shared layer fails, reads answer from the local layer alone
//! and the shared layer is left alone for `retry_after` before it is tried
//! again — a Redis outage never slows a subscribe down by more than one
//! timeout per `retry_after`. [`Cache::degraded`] then says why.
//!
//! [`MemoryCache`]: crate::MemoryCache

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use std::collections::BTreeMap;

use mdhub_types::{Positioned, Symbol, Venue};
use parking_lot::Mutex;

use crate::{Cache, Latest, Result, SymbolInfo, VenueOffsets};

/// Two caches read as one; see the module docs.
///
/// Contract, beyond [`Cache`]'s: `put` writes the local layer only (the shared
/// layer has its own writer); `clear` clears the local layer only; `health`
/// is the local layer's (the gateway can serve without the shared layer), and
/// `degraded` reports a failing shared layer.
#[derive(Debug)]
pub struct LayeredCache {
    shared: Arc<dyn Cache>,
    local: Arc<dyn Cache>,
    retry_after: Duration,
    down: Mutex<Option<(Instant, String)>>,
    fallbacks: AtomicU64,
}

impl LayeredCache {
    /// `shared` over `local`; after a failure of `shared`, reads skip it for
    /// `retry_after`.
    pub fn new(shared: Arc<dyn Cache>, local: Arc<dyn Cache>, retry_after: Duration) -> Self {
        Self {
            shared,
            local,
            retry_after,
            down: Mutex::new(None),
            fallbacks: AtomicU64::new(0),
        }
    }

    /// Reads answered from the local layer alone because the shared one failed
    /// or was resting after a failure.
    pub fn fallbacks(&self) -> u64 {
        self.fallbacks.load(Ordering::Relaxed)
    }

    fn shared_resting(&self) -> bool {
        matches!(&*self.down.lock(), Some((until, _)) if Instant::now() < *until)
    }

    fn shared_failed(&self, e: &crate::Error) {
        *self.down.lock() = Some((Instant::now() + self.retry_after, e.to_string()));
    }

    /// The shared layer's answer, or `None` when it failed or is resting.
    async fn ask_shared<T>(&self, f: impl std::future::Future<Output = Result<T>>) -> Option<T> {
        if self.shared_resting() {
            self.fallbacks.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        match f.await {
            Ok(v) => {
                *self.down.lock() = None;
                Some(v)
            }
            Err(e) => {
                self.fallbacks.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %e, retry_in_ms = self.retry_after.as_millis() as u64,
                    "shared cache failed; answering from this gateway's own view");
                self.shared_failed(&e);
                None
            }
        }
    }
}

fn newer(a: Option<Positioned>, b: Option<Positioned>) -> Option<Positioned> {
    match (a, b) {
        (Some(a), Some(b)) => Some(if b.position.offset > a.position.offset {
            b
        } else {
            a
        }),
        (a, b) => a.or(b),
    }
}

/// Both views of one symbol, venue by venue and slot by slot (the higher
/// offset wins), sorted by venue.
fn merge(a: Vec<Latest>, b: Vec<Latest>) -> Vec<Latest> {
    let mut by_venue: BTreeMap<Venue, Latest> = BTreeMap::new();
    for l in a.into_iter().chain(b) {
        match by_venue.remove(&l.venue) {
            Some(old) => {
                let merged = Latest {
                    venue: l.venue,
                    symbol: l.symbol,
                    quote: newer(old.quote, l.quote),
                    trade: newer(old.trade, l.trade),
                };
                by_venue.insert(merged.venue.clone(), merged);
            }
            None => {
                by_venue.insert(l.venue.clone(), l);
            }
        }
    }
    by_venue.into_values().collect()
}

/// Whether `shared` holds an entry newer than `local` has, on any venue.
fn shared_is_newer(shared: &[VenueOffsets], local: &[Latest]) -> bool {
    shared.iter().any(|(venue, offs)| {
        let have = local
            .iter()
            .find(|l| l.venue == *venue)
            .map_or([None, None], Latest::offsets);
        offs.iter().zip(have).any(|(s, h)| *s > h)
    })
}

#[async_trait::async_trait]
impl Cache for LayeredCache {
    async fn put(&self, entries: &[Positioned]) -> Result<()> {
        self.local.put(entries).await
    }

    async fn get(&self, symbol: &Symbol) -> Result<Vec<Latest>> {
        let mut v = self.get_many(std::slice::from_ref(symbol)).await?;
        Ok(v.pop().unwrap_or_default())
    }

    /// Offsets first: symbols the local view lacks are fetched whole, and
    /// for the others only their offsets are asked (both in one round trip);
    /// entries are fetched and decoded only where the shared layer is newer
    /// on some venue. A gateway that follows the log is usually as new as
    /// the cache writer, so a snapshot costs one small round trip.
    async fn get_many(&self, symbols: &[Symbol]) -> Result<Vec<Vec<Latest>>> {
        let mut local = self.local.get_many(symbols).await?;
        let (missing, present): (Vec<usize>, Vec<usize>) =
            (0..symbols.len()).partition(|&i| local[i].is_empty());
        let pick = |idx: &[usize]| idx.iter().map(|&i| symbols[i].clone()).collect::<Vec<_>>();
        let (missing_syms, present_syms) = (pick(&missing), pick(&present));
        let both = async {
            let (whole, offsets) = tokio::join!(
                self.shared.get_many(&missing_syms),
                self.shared.offsets(&present_syms)
            );
            Ok::<_, crate::Error>((whole?, offsets?))
        };
        let Some((whole, offsets)) = self.ask_shared(both).await else {
            return Ok(local);
        };
        for (i, s) in missing.into_iter().zip(whole) {
            local[i] = s;
        }
        let stale: Vec<usize> = present
            .into_iter()
            .zip(offsets)
            .filter(|(i, shared)| shared_is_newer(shared, &local[*i]))
            .map(|(i, _)| i)
            .collect();
        if stale.is_empty() {
            return Ok(local);
        }
        let Some(fetched) = self.ask_shared(self.shared.get_many(&pick(&stale))).await else {
            return Ok(local);
        };
        for (i, s) in stale.into_iter().zip(fetched) {
            local[i] = merge(s, std::mem::take(&mut local[i]));
        }
        Ok(local)
    }

    async fn symbols(&self) -> Result<Vec<SymbolInfo>> {
        let mut all = self.local.symbols().await?;
        if let Some(shared) = self.ask_shared(self.shared.symbols()).await {
            all.extend(shared);
            // Newest first within an instrument, then keep one line each.
            all.sort_by(|a, b| {
                (&a.symbol, &a.venue)
                    .cmp(&(&b.symbol, &b.venue))
                    .then(b.last_update.cmp(&a.last_update))
            });
            all.dedup_by(|later, first| later.symbol == first.symbol && later.venue == first.venue);
        }
        Ok(all)
    }

    async fn clear(&self) -> Result<()> {
        self.local.clear().await
    }

    async fn health(&self) -> Result<()> {
        self.local.health().await
    }

    async fn degraded(&self) -> Option<String> {
        match self.shared.health().await {
            Ok(()) => {
                *self.down.lock() = None;
                None
            }
            Err(e) => {
                self.shared_failed(&e);
                Some(format!(
                    "shared cache unavailable, serving this gateway's own view: {e}"
                ))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemoryCache;
    use crate::conformance::{quote, trade};

    /// A shared layer that is down: every call fails as an unreachable server does.
    #[derive(Debug)]
    struct Down;

    #[async_trait::async_trait]
    impl Cache for Down {
        async fn put(&self, _: &[Positioned]) -> Result<()> {
            Err(crate::Error::Unavailable("connection refused".into()))
        }
        async fn get(&self, _: &Symbol) -> Result<Vec<Latest>> {
            Err(crate::Error::Unavailable("connection refused".into()))
        }
        async fn symbols(&self) -> Result<Vec<SymbolInfo>> {
            Err(crate::Error::Unavailable("connection refused".into()))
        }
        async fn clear(&self) -> Result<()> {
            Err(crate::Error::Unavailable("connection refused".into()))
        }
        async fn health(&self) -> Result<()> {
            Err(crate::Error::Unavailable("connection refused".into()))
        }
    }

    fn layered(shared: Arc<dyn Cache>) -> (LayeredCache, Arc<MemoryCache>) {
        let local = Arc::new(MemoryCache::new());
        (
            LayeredCache::new(shared, local.clone(), Duration::from_secs(60)),
            local,
        )
    }

    #[tokio::test]
    async fn passes_the_conformance_suite_over_an_empty_shared_layer() {
        let (c, _) = layered(Arc::new(MemoryCache::new()));
        crate::conformance::run_all(&c).await;
        assert_eq!(c.degraded().await, None);
    }

    #[tokio::test]
    async fn passes_the_conformance_suite_with_the_shared_layer_down() {
        let (c, _) = layered(Arc::new(Down));
        crate::conformance::run_all(&c).await;
        assert!(c.degraded().await.unwrap().contains("connection refused"));
        assert!(c.fallbacks() > 0);
    }

    #[tokio::test]
    async fn reads_keep_the_newer_entry_of_each_slot() {
        let shared = Arc::new(MemoryCache::new());
        let (c, local) = layered(shared.clone());
        // Shared is ahead on quotes, the local view ahead on trades.
        shared
            .put(&[
                quote("AAPL", "sim-nasdaq", 10, 1),
                trade("AAPL", "sim-nasdaq", 3, 1),
            ])
            .await
            .unwrap();
        local
            .put(&[
                quote("AAPL", "sim-nasdaq", 7, 2),
                trade("AAPL", "sim-nasdaq", 9, 2),
            ])
            .await
            .unwrap();
        // Only the shared layer knows MSFT.
        shared
            .put(&[quote("MSFT", "sim-nasdaq", 4, 3)])
            .await
            .unwrap();
        let mut aapl = c.get(&Symbol::new("AAPL").unwrap()).await.unwrap();
        assert_eq!(aapl.len(), 1);
        let aapl = aapl.pop().unwrap();
        assert_eq!(aapl.quote.unwrap().position.offset, 10);
        assert_eq!(aapl.trade.unwrap().position.offset, 9);
        assert_eq!(c.get(&Symbol::new("MSFT").unwrap()).await.unwrap().len(), 1);
        let names: Vec<String> = c
            .symbols()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.symbol.to_string())
            .collect();
        assert_eq!(names, ["AAPL", "MSFT"]);
    }

    #[tokio::test]
    async fn a_failed_shared_layer_rests_then_is_tried_again() {
        let (mut c, local) = layered(Arc::new(Down));
        c.retry_after = Duration::from_millis(50);
        local
            .put(&[quote("AAPL", "sim-nasdaq", 1, 1)])
            .await
            .unwrap();
        let aapl = Symbol::new("AAPL").unwrap();
        assert_eq!(c.get(&aapl).await.unwrap().len(), 1);
        let after_first = c.fallbacks();
        assert!(c.shared_resting(), "a failure rests the shared layer");
        assert_eq!(c.get(&aapl).await.unwrap().len(), 1);
        assert_eq!(c.fallbacks(), after_first + 1);
        tokio::time::sleep(Duration::from_millis(60)).await;
        assert!(!c.shared_resting(), "after retry_after it is tried again");
    }

    #[tokio::test]
    async fn a_venue_only_the_shared_layer_has_is_read_even_when_older() {
        // The local view started following the log late: it has kraken at a
        // higher offset than anything shared holds, but not coinbase.
        let shared = Arc::new(MemoryCache::new());
        let (c, local) = layered(shared.clone());
        shared
            .put(&[
                quote("BTC-USD", "coinbase", 450, 1),
                quote("BTC-USD", "kraken", 400, 2),
            ])
            .await
            .unwrap();
        local
            .put(&[quote("BTC-USD", "kraken", 500, 3)])
            .await
            .unwrap();
        let got = c.get(&Symbol::new("BTC-USD").unwrap()).await.unwrap();
        let seen: Vec<(String, u64)> = got
            .iter()
            .map(|l| {
                let off = l.quote.as_ref().unwrap().position.offset;
                (l.venue.to_string(), off)
            })
            .collect();
        assert_eq!(
            seen,
            [("coinbase".to_string(), 450), ("kraken".to_string(), 500)]
        );
    }
}
