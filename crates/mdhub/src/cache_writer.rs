//! The cache writer: log → shared cache (Redis), as consumer group
//! `mdhub-cache` (prefixed like topics on Kafka).
//!
//! Policy: read a batch (up to `redis.writer_batch` records), write it to the
//! cache in one pipelined call, and only then commit the group's offsets —
//! a crash or a Redis outage replays records, which the cache's
//! newest-offset-wins rule makes harmless. While the cache is unreachable the
//! writer retries the same batch with capped backoff and reads nothing more, so
//! nothing queues up in memory: the log is the buffer. A group with no
//! committed offsets starts at the oldest record the log holds, so a new cache
//! knows every symbol the log still has. Several writers may run (one per
//! `mdhub ingest`, say): the group shares the partitions among them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mdhub_bus::{Bus, ReadMarks};
use mdhub_cache::Cache;
use mdhub_types::Positioned;
use tokio_util::sync::CancellationToken;

use crate::ingest::IngestError;

/// The consumer group's name (before the Kafka prefix).
pub const GROUP: &str = "mdhub-cache";

/// Counters of the cache writer.
#[derive(Debug, Default)]
pub struct CacheWriterStats {
    /// Events written to the cache.
    pub written: AtomicU64,
    /// Batches written (one pipelined call each).
    pub batches: AtomicU64,
    /// Failed cache writes (each retried).
    pub errors: AtomicU64,
    /// Records that could not be decoded (skipped, counted).
    pub undecodable: AtomicU64,
}

/// Run until `stop`; returns an error only when the log fails for good.
pub async fn run(
    bus: Arc<dyn Bus>,
    cache: Arc<dyn Cache>,
    batch: usize,
    stats: Arc<CacheWriterStats>,
    stop: CancellationToken,
) -> Result<(), IngestError> {
    let mut sub = mdhub_bus::subscribe_prices(&*bus, GROUP).await?;
    loop {
        let deliveries = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            b = sub.next_batch(batch, Duration::from_millis(200)) => b?,
        };
        if deliveries.is_empty() {
            continue;
        }
        let mut events: Vec<Positioned> = Vec::with_capacity(deliveries.len());
        let mut read = ReadMarks::default();
        for d in &deliveries {
            let p = d.position;
            read.note(p);
            match d.positioned() {
                Ok(e) => events.push(e),
                Err(e) => {
                    stats.undecodable.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, position = %p, "skipping a record the cache writer cannot decode");
                }
            }
        }
        let mut delay = Duration::from_millis(100);
        loop {
            match cache.put(&events).await {
                Ok(()) => break,
                Err(e) => {
                    stats.errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %e, retry_in_ms = delay.as_millis() as u64, events = events.len(),
                        "cache write failed; retrying (the log keeps the events)");
                    tokio::select! {
                        _ = stop.cancelled() => return Ok(()),
                        _ = tokio::time::sleep(delay) => {}
                    }
                    delay = (delay * 2).min(Duration::from_secs(5));
                }
            }
        }
        stats
            .written
            .fetch_add(events.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        // A failed commit is covered by the next; a restart replays them.
        read.commit(&mut *sub, "cache writer").await;
    }
}
