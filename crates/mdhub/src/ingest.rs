//! The ingest stage: feeds → bounded channel → publish to the log → cache.
//!
//! Policy: the channel from the feeds is bounded (`ingest.channel_capacity`);
//! when it is full, feeds wait. Events are taken in batches of up to
//! `ingest.max_batch` and published with one group commit. A retryable
//! publish failure (broker or disk briefly unavailable) is retried with capped
//! exponential backoff while the channel fills and backpressure reaches the
//! feeds — nothing is dropped. An event the log cannot encode (e.g. a decimal
//! outside Avro's decimal(38,18)) is dropped alone, counted and logged. Any
//! other failure stops the stage with an error. After publishing, the cache
//! gets the events with their positions; a cache failure is counted and
//! logged, never fatal (the log is the authority, the cache is refilled).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mdhub_bus::{Bus, Start, SubscribeSpec, Subscription};
use mdhub_cache::Cache;
use mdhub_pipeline::StageHealth;
use mdhub_types::{Backoff, Event, Position, Positioned, Topic};
use tokio::sync::mpsc;

use crate::config::IngestConfig;

/// Counters of the ingest stage.
#[derive(Debug, Default)]
pub struct IngestStats {
    /// Events published to the log.
    pub published: AtomicU64,
    /// Group commits.
    pub batches: AtomicU64,
    /// Publish attempts that failed and were retried.
    pub retries: AtomicU64,
    /// Events dropped because the log could not encode them.
    pub unencodable: AtomicU64,
    /// Cache updates that failed.
    pub cache_errors: AtomicU64,
}

/// Why the ingest stage stopped.
#[derive(Debug, thiserror::Error)]
#[error("ingest stopped: {0}")]
pub struct IngestError(#[from] mdhub_bus::Error);

/// Run until every sender of `rx` is gone and the channel is drained.
/// While publishing fails and is retried, `health` says so (the stage is
/// reported as retrying and the process as not ready).
pub async fn run(
    mut rx: mpsc::Receiver<Event>,
    bus: Arc<dyn Bus>,
    cache: Arc<dyn Cache>,
    cfg: IngestConfig,
    stats: Arc<IngestStats>,
    health: Arc<StageHealth>,
) -> Result<(), IngestError> {
    let mut batch = Vec::with_capacity(cfg.max_batch);
    let mut stamped = Vec::with_capacity(cfg.max_batch);
    while let Some(first) = rx.recv().await {
        batch.clear();
        batch.push(first);
        while batch.len() < cfg.max_batch {
            match rx.try_recv() {
                Ok(e) => batch.push(e),
                Err(_) => break,
            }
        }
        let published = publish_with_retry(&*bus, &batch, &stats, &health).await?;
        stamped.clear();
        stamped.extend(published);
        stats
            .published
            .fetch_add(stamped.len() as u64, Ordering::Relaxed);
        stats.batches.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = cache.put(&stamped).await {
            stats.cache_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %e, events = stamped.len(), "cache update failed; the log has the events");
        }
    }
    Ok(())
}

async fn publish_with_retry(
    bus: &dyn Bus,
    batch: &[Event],
    stats: &IngestStats,
    health: &StageHealth,
) -> Result<Vec<Positioned>, IngestError> {
    let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
    // Events of the batch already appended (a `Partial` publish): never
    // published again, only the rest; once all are appended, a sync makes
    // the ones still buffered readable.
    let mut positions: Vec<Position> = Vec::new();
    loop {
        let rest = &batch[positions.len()..];
        let attempt = if rest.is_empty() {
            bus.sync().await.map(|()| Vec::new())
        } else {
            bus.publish(rest).await
        };
        let e = match attempt {
            Ok(pos) => {
                health.recovered();
                positions.extend(pos);
                return Ok(zip(batch, positions));
            }
            // Encoding fails before anything is appended: `rest` is whole.
            Err(mdhub_bus::Error::Codec(_)) => {
                let done = positions.len();
                let mut out = zip(&batch[..done], positions);
                out.extend(publish_one_by_one(bus, rest, stats).await?);
                return Ok(out);
            }
            Err(mdhub_bus::Error::Partial {
                positions: done,
                source,
            }) => {
                positions.extend(done);
                *source
            }
            Err(e) => e,
        };
        if !e.is_retryable() {
            return Err(e.into());
        }
        stats.retries.fetch_add(1, Ordering::Relaxed);
        health.retrying(&e);
        let wait = backoff.next_delay();
        tracing::warn!(error = %e, retry_in_ms = wait.as_millis() as u64, events = batch.len(),
            appended = positions.len(), "publish failed; retrying what is not appended yet");
        tokio::time::sleep(wait).await;
    }
}

async fn publish_one_by_one(
    bus: &dyn Bus,
    batch: &[Event],
    stats: &IngestStats,
) -> Result<Vec<Positioned>, IngestError> {
    let mut out = Vec::with_capacity(batch.len());
    for e in batch {
        match bus.publish(std::slice::from_ref(e)).await {
            Ok(pos) => out.extend(zip(std::slice::from_ref(e), pos)),
            Err(mdhub_bus::Error::Codec(err)) => {
                stats.unencodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %err, symbol = %e.symbol(), venue = %e.venue(), "dropped an event the log cannot encode");
            }
            Err(err) => return Err(err.into()),
        }
    }
    Ok(out)
}

fn zip(events: &[Event], positions: Vec<Position>) -> Vec<Positioned> {
    debug_assert_eq!(events.len(), positions.len());
    events
        .iter()
        .cloned()
        .zip(positions)
        .map(|(event, position)| Positioned { position, event })
        .collect()
}

/// Refill the cache from the newest `per_partition` records of every
/// partition. Returns how many records were read, and the subscription,
/// positioned at the end of what was read, for [`follow_into_cache`].
pub async fn warm_cache(
    bus: &dyn Bus,
    cache: &dyn Cache,
    per_partition: u64,
) -> Result<(u64, Box<dyn Subscription>), mdhub_bus::Error> {
    let mut sub = bus
        .subscribe(SubscribeSpec::Direct {
            topics: Topic::PRICES.to_vec(),
            start: Start::Latest,
        })
        .await?;
    let mut ends = Vec::new();
    for topic in Topic::PRICES {
        for partition in 0..bus.partitions(topic) {
            let (start, end) = bus.watermarks(topic, partition).await?;
            sub.seek(
                topic,
                partition,
                end.saturating_sub(per_partition).max(start),
            )
            .await?;
            ends.push(Position {
                topic,
                partition,
                offset: end,
            });
        }
    }
    let mut read = 0u64;
    loop {
        let done = sub.positions().iter().all(|p| {
            ends.iter()
                .any(|e| e.topic == p.topic && e.partition == p.partition && p.offset >= e.offset)
        });
        if done || per_partition == 0 {
            return Ok((read, sub));
        }
        let batch = match sub.next_batch(8192, Duration::from_millis(500)).await {
            Err(e @ mdhub_bus::Error::Damaged { .. }) => {
                tracing::error!(error = %e, "the cache misses damaged log records");
                continue;
            }
            b => b?,
        };
        if batch.is_empty() {
            return Ok((read, sub));
        }
        read += batch.len() as u64;
        put_deliveries(cache, &batch).await;
    }
}

async fn put_deliveries(cache: &dyn Cache, batch: &[mdhub_bus::Delivery]) {
    let stamped: Vec<Positioned> = batch.iter().filter_map(|d| d.positioned().ok()).collect();
    if let Err(e) = cache.put(&stamped).await {
        tracing::warn!(error = %e, "cache update failed");
    }
}

/// Keep the cache current from the log (a process without its own ingest
/// stage: `mdhub serve`). Runs until `stop`.
pub async fn follow_into_cache(
    mut sub: Box<dyn Subscription>,
    cache: Arc<dyn Cache>,
    stop: tokio_util::sync::CancellationToken,
) -> Result<(), IngestError> {
    loop {
        let batch = tokio::select! {
            _ = stop.cancelled() => return Ok(()),
            b = sub.next_batch(4096, Duration::from_millis(500)) => b,
        };
        let batch = match batch {
            Err(e @ mdhub_bus::Error::Damaged { .. }) => {
                tracing::error!(error = %e, "the cache misses damaged log records");
                continue;
            }
            b => b?,
        };
        put_deliveries(&*cache, &batch).await;
    }
}
