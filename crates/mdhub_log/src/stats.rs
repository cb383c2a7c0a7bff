//! `LogStats`: a snapshot of every partition's offsets and disk usage, for
//! metrics and the admin API.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::partition::Partition;

/// One partition's numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionStats {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
    /// First retained offset.
    pub start_offset: u64,
    /// One past the last readable record.
    pub high_watermark: u64,
    /// One past the last fsynced record.
    pub synced_offset: u64,
    /// Bytes in segment files (flushed).
    pub bytes: u64,
    /// Segment files, the active one included.
    pub segments: usize,
}

/// Every partition's numbers, sorted by topic then partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogStats {
    /// One entry per partition.
    pub partitions: Vec<PartitionStats>,
}

impl LogStats {
    pub(crate) fn collect(all: &[Arc<Partition>]) -> LogStats {
        let mut partitions: Vec<_> = all
            .iter()
            .map(|p| {
                let (bytes, segments) = p.bytes_and_segments();
                PartitionStats {
                    topic: p.topic.clone(),
                    partition: p.id,
                    start_offset: p.start.load(Ordering::Acquire),
                    high_watermark: p.hw.load(Ordering::Acquire),
                    synced_offset: p.synced.load(Ordering::Acquire),
                    bytes,
                    segments,
                }
            })
            .collect();
        partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        LogStats { partitions }
    }

    /// Total bytes over all partitions.
    pub fn total_bytes(&self) -> u64 {
        self.partitions.iter().map(|p| p.bytes).sum()
    }
}
