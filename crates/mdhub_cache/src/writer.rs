//! The cache writer: log → shared cache (Redis), as consumer group
//! [`GROUP`] (prefixed like topics on Kafka), on the one consumer driver
//! ([`mdhub_pipeline::drive`]).
//!
//! Policy: each read batch (up to `cache.writer_batch` records) is written
//! to the cache in one pipelined call, and only then are the group's offsets
//! committed — a crash or a Redis outage replays records, which the cache's
//! newest-offset-wins rule makes harmless. While the cache is unreachable
//! the driver retries the same batch with the shared backoff and reads
//! nothing more, so nothing queues up in memory: the log is the buffer. A
//! group with no committed offsets starts at the oldest record the log
//! holds, so a new cache knows every symbol the log still has. Several
//! writers may run (one per `mdhub ingest`, say): the group shares the
//! partitions among them.

use std::sync::Arc;

use mdhub_pipeline::{GroupSink, SinkError};
use mdhub_types::Positioned;

use crate::Cache;

/// The consumer group's name (before the Kafka prefix).
pub const GROUP: &str = "mdhub-cache";

/// Writes what the log holds to a [`Cache`] (see the module docs).
#[derive(Debug)]
pub struct CacheWriter {
    cache: Arc<dyn Cache>,
    pending: Vec<Positioned>,
}

impl CacheWriter {
    /// A writer into `cache`.
    pub fn new(cache: Arc<dyn Cache>) -> Self {
        CacheWriter {
            cache,
            pending: Vec::new(),
        }
    }
}

#[async_trait::async_trait]
impl GroupSink for CacheWriter {
    fn group(&self) -> &'static str {
        GROUP
    }

    fn push(&mut self, records: Vec<Positioned>) -> Result<(), SinkError> {
        self.pending.extend(records);
        Ok(())
    }

    async fn persist(&mut self) -> Result<(), SinkError> {
        match self.cache.put(&self.pending).await {
            Ok(()) => {
                self.pending.clear();
                Ok(())
            }
            Err(e) if e.is_retryable() => Err(SinkError::retry(e)),
            Err(e) => Err(SinkError::fatal(e)),
        }
    }

    fn pending(&self) -> usize {
        self.pending.len()
    }
}
