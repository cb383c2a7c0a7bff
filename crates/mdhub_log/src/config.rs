//! `LogConfig`: the `[log]` section of `mdhub.toml`. The `///` docs on its
//! fields are the user documentation of each knob.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Configuration of the embedded log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Directory holding the log's files (created if missing). Only one
    /// process may open it at a time. Default `./mdhub-data/log`.
    pub dir: PathBuf,
    /// Partition count given to topics created without an explicit count
    /// (the server's `price-quotes` and `price-trades`). Records are spread
    /// over partitions by Kafka's murmur2 hash of their key. Default 8.
    pub partitions: u32,
    /// Size in bytes past which a partition's active segment file is closed
    /// and a new one started. Retention deletes whole closed segments, so
    /// smaller segments free space in finer steps. 1 KiB to 4 GiB - 1.
    /// Default 134217728 (128 MiB).
    pub segment_bytes: u64,
    /// Group commit interval in milliseconds: a background thread fsyncs
    /// every partition written since its last pass this often, so at most
    /// this much acknowledged data is lost on power failure (a process crash
    /// loses nothing that was flushed). 0 = fsync inside every `flush()`
    /// (safest, slowest). Default 200.
    pub fsync_interval_ms: u64,
    /// Closed segments whose newest record is older than this many hours are
    /// deleted (checked every minute). 0 = keep forever. Default 168 (7 days).
    pub retention_hours: u64,
    /// Per-partition size cap in bytes: the oldest closed segments are
    /// deleted while a partition is larger. The active segment is never
    /// deleted, so a partition may exceed the cap by up to `segment_bytes`.
    /// 0 = unlimited. Default 0.
    pub retention_bytes: u64,
    /// Granularity of the sparse offset/time index: one entry per this many
    /// bytes of records. Smaller = faster seeks, bigger index files.
    /// Default 4096.
    pub index_interval_bytes: u32,
    /// The background scrub re-reads closed segments at this many MiB per
    /// second on average and checks every record's CRC, reporting damage
    /// before a reader meets it. 0 = no scrub. Default 8.
    pub scrub_mb_per_sec: u32,
    /// Seconds between the end of one scrub pass and the start of the next.
    /// Default 3600.
    pub scrub_interval_secs: u64,
    /// Free-space watermark in MiB: below it (checked by the background
    /// thread, at least every second) appends are refused with a retryable
    /// error, before the disk is full. 0 = automatic: 2% of the filesystem,
    /// at most 1 GiB. Default 0.
    pub min_free_mb: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            dir: PathBuf::from("./mdhub-data/log"),
            partitions: 8,
            segment_bytes: 128 * 1024 * 1024,
            fsync_interval_ms: 200,
            retention_hours: 168,
            retention_bytes: 0,
            index_interval_bytes: 4096,
            scrub_mb_per_sec: 8,
            scrub_interval_secs: 3600,
            min_free_mb: 0,
        }
    }
}

/// Smallest accepted `segment_bytes`; tests use tiny segments to exercise rolling.
pub(crate) const MIN_SEGMENT_BYTES: u64 = 1024;
/// Index entries store file positions as u32.
pub(crate) const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;
/// Upper bound on partitions per topic (one directory and one open file each).
pub(crate) const MAX_PARTITIONS: u32 = 100_000;

impl LogConfig {
    /// Checks every field's range; `Log::open` calls this first.
    pub fn validate(&self) -> Result<()> {
        let bad = |field: &'static str, reason: String| Err(Error::InvalidConfig { field, reason });
        if self.dir.as_os_str().is_empty() {
            return bad("dir", "must not be empty".into());
        }
        if self.partitions == 0 || self.partitions > MAX_PARTITIONS {
            return bad(
                "partitions",
                format!(
                    "must be between 1 and {MAX_PARTITIONS}, got {}",
                    self.partitions
                ),
            );
        }
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return bad(
                "segment_bytes",
                format!(
                    "must be between {MIN_SEGMENT_BYTES} and {MAX_SEGMENT_BYTES}, got {}",
                    self.segment_bytes
                ),
            );
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes", "must be at least 1".into());
        }
        if self.retention_hours > 24 * 365 * 1000 {
            return bad(
                "retention_hours",
                format!("is absurdly large: {}", self.retention_hours),
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_documented_values() {
        let c = LogConfig::default();
        c.validate().expect("default config is valid");
        assert_eq!(c.partitions, 8);
        assert_eq!(c.segment_bytes, 128 << 20);
        assert_eq!(c.retention_hours, 168);
    }

    #[test]
    fn rejects_out_of_range_fields() {
        let c = LogConfig {
            segment_bytes: 10,
            ..LogConfig::default()
        };
        let err = c.validate().unwrap_err().to_string();
        assert!(err.contains("segment_bytes"), "{err}");
        let c = LogConfig {
            partitions: 0,
            ..LogConfig::default()
        };
        assert!(c.validate().unwrap_err().to_string().contains("partitions"));
    }
}
