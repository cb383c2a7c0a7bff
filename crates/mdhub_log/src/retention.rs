//! Retention: deleting a partition's oldest closed segments by age and by
//! size. Only a prefix of closed segments is ever removed, so the retained
//! offsets stay contiguous; the active segment is never deleted.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::Result;
use crate::partition::{Partition, remove_if_exists, sync_dir};
use crate::segment::Segment;

/// What one retention pass deleted.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Segment files deleted.
    pub segments_deleted: usize,
    /// Their total size in bytes.
    pub bytes_deleted: u64,
    /// Records they held.
    pub records_deleted: u64,
}

impl RetentionReport {
    pub(crate) fn add(&mut self, other: &RetentionReport) {
        self.segments_deleted += other.segments_deleted;
        self.bytes_deleted += other.bytes_deleted;
        self.records_deleted += other.records_deleted;
    }
}

/// Retention limits; 0 disables a limit.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    pub(crate) max_age_nanos: i64,
    pub(crate) max_bytes: u64,
}

impl Policy {
    pub(crate) fn from_config(retention_hours: u64, retention_bytes: u64) -> Policy {
        let hours = i64::try_from(retention_hours).unwrap_or(i64::MAX);
        Policy {
            max_age_nanos: hours.saturating_mul(3_600_000_000_000),
            max_bytes: retention_bytes,
        }
    }
}

impl Partition {
    /// Deletes expired closed segments; `now_nanos` is the current UTC time.
    pub(crate) fn enforce_retention(
        &self,
        policy: Policy,
        now_nanos: i64,
    ) -> Result<RetentionReport> {
        let cutoff = now_nanos.saturating_sub(policy.max_age_nanos);
        let removed: Vec<Arc<Segment>> = {
            let mut segs = self.segments.write();
            let mut total: u64 = segs.iter().map(|s| s.size()).sum();
            let mut n = 0;
            while n + 1 < segs.len() {
                let s = &segs[n];
                let too_old = policy.max_age_nanos > 0 && s.max_ts() < cutoff;
                let too_big = policy.max_bytes > 0 && total > policy.max_bytes;
                if !(too_old || too_big) {
                    break;
                }
                total -= s.size();
                n += 1;
            }
            if n == 0 {
                return Ok(RetentionReport::default());
            }
            let removed: Vec<_> = segs.drain(..n).collect();
            self.start.store(segs[0].base, Ordering::Release);
            removed
        };
        let mut report = RetentionReport::default();
        for seg in &removed {
            // Readers still holding the segment keep reading the unlinked file.
            remove_if_exists(&seg.index_path())?;
            remove_if_exists(&seg.path)?;
            report.segments_deleted += 1;
            report.bytes_deleted += seg.size();
            report.records_deleted += seg.next_offset() - seg.base;
        }
        sync_dir(&self.dir)?;
        tracing::info!(
            topic = %self.topic, partition = self.id,
            segments_deleted = report.segments_deleted, bytes_deleted = report.bytes_deleted,
            new_start_offset = self.start.load(Ordering::Acquire),
            "retention deleted old segments"
        );
        Ok(report)
    }
}
