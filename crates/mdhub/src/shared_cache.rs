//! The shared cache (Redis) as a process opens it: at once when it answers,
//! otherwise in the background while the process starts without it — a
//! gateway must bind and stream even when Redis is down at start-up, and a
//! cache writer waits for Redis instead of crash-looping. A bad setting (a
//! malformed `REDIS_URL`) is still an error at start-up.

use std::sync::Arc;
use std::time::Duration;

use mdhub_cache::{Cache, Latest, RedisCache, RedisConfig, SymbolInfo, VenueOffsets};
use mdhub_types::{Positioned, Symbol};
use parking_lot::Mutex;
use tokio::sync::OnceCell;

/// How long between connection attempts while Redis is unreachable.
const RETRY: Duration = Duration::from_secs(2);

/// Redis once connected; until then every call fails as unavailable, with
/// the reason of the last attempt.
#[derive(Debug)]
struct Deferred {
    cache: OnceCell<RedisCache>,
    last_error: Mutex<String>,
}

impl Deferred {
    fn get(&self) -> mdhub_cache::Result<&RedisCache> {
        self.cache
            .get()
            .ok_or_else(|| mdhub_cache::Error::Unavailable(self.last_error.lock().clone()))
    }
}

#[async_trait::async_trait]
impl Cache for Deferred {
    async fn put(&self, entries: &[Positioned]) -> mdhub_cache::Result<()> {
        self.get()?.put(entries).await
    }
    async fn get(&self, symbol: &Symbol) -> mdhub_cache::Result<Vec<Latest>> {
        self.get()?.get(symbol).await
    }
    async fn get_many(&self, symbols: &[Symbol]) -> mdhub_cache::Result<Vec<Vec<Latest>>> {
        self.get()?.get_many(symbols).await
    }
    async fn offsets(&self, symbols: &[Symbol]) -> mdhub_cache::Result<Vec<Vec<VenueOffsets>>> {
        self.get()?.offsets(symbols).await
    }
    async fn symbols(&self) -> mdhub_cache::Result<Vec<SymbolInfo>> {
        self.get()?.symbols().await
    }
    async fn clear(&self) -> mdhub_cache::Result<()> {
        self.get()?.clear().await
    }
    async fn health(&self) -> mdhub_cache::Result<()> {
        self.get()?.health().await
    }
}

/// Open Redis as configured: `None` when `redis.url` is empty.
pub(crate) async fn open(cfg: &RedisConfig) -> anyhow::Result<Option<Arc<dyn Cache>>> {
    if !cfg.enabled() {
        return Ok(None);
    }
    match RedisCache::connect(cfg).await {
        Ok(c) => Ok(Some(Arc::new(c))),
        Err(e @ mdhub_cache::Error::Config(_)) => Err(anyhow::anyhow!("{e}")),
        Err(e) => {
            tracing::warn!(error = %e, retry_every_s = RETRY.as_secs(),
                "Redis is unreachable; starting without it and connecting in the background");
            let deferred = Arc::new(Deferred {
                cache: OnceCell::new(),
                last_error: Mutex::new(e.to_string()),
            });
            let d = deferred.clone();
            let cfg = cfg.clone();
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(RETRY).await;
                    match RedisCache::connect(&cfg).await {
                        Ok(c) => {
                            let _ = d.cache.set(c);
                            tracing::info!("Redis is reachable again; using it");
                            return;
                        }
                        Err(e) => *d.last_error.lock() = e.to_string(),
                    }
                }
            });
            Ok(Some(deferred))
        }
    }
}
