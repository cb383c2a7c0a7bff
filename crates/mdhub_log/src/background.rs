//! The log's background thread: group-commit fsync every
//! `fsync_interval_ms` (then preparing the active segments' next pages) and
//! retention every minute, plus the passes it shares with `Log::sync` and
//! `Log::enforce_retention`.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::log::Inner;
use crate::partition::Partition;
use crate::retention::RetentionReport;

/// How often the background thread applies retention.
const RETENTION_EVERY: Duration = Duration::from_secs(60);
/// Longest time between two free-space checks.
const SPACE_EVERY: Duration = Duration::from_secs(1);

fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

impl Inner {
    pub(crate) fn sync_dirty(&self) -> Result<()> {
        self.sync_dirty_then(|_| {})
    }

    /// fsyncs every partition written since its last fsync, calling `then`
    /// on every partition right after its turn; returns the first error.
    fn sync_dirty_then(&self, then: impl Fn(&Partition)) -> Result<()> {
        let all = Arc::clone(&self.all.read());
        let mut first_err = None;
        for p in all.iter() {
            if p.needs_sync()
                && let Err(e) = p.sync()
            {
                first_err.get_or_insert(e);
            }
            then(p);
        }
        first_err.map_or(Ok(()), Err)
    }

    pub(crate) fn enforce_retention(&self, now_nanos: i64) -> Result<RetentionReport> {
        let all = Arc::clone(&self.all.read());
        let mut report = RetentionReport::default();
        for p in all.iter() {
            report.add(&p.enforce_retention(self.policy, now_nanos)?);
        }
        Ok(report)
    }

    /// The background thread: group-commit fsync every `fsync_interval_ms`,
    /// the free-space check at least every second and retention every
    /// minute, until `stop`.
    pub(crate) fn background(&self) {
        // At least every second: the free-space check runs on each pass.
        let tick = match self.config.fsync_interval_ms {
            0 => SPACE_EVERY,
            ms => Duration::from_millis(ms).min(SPACE_EVERY),
        };
        let mut last_retention = Instant::now();
        loop {
            {
                let mut stopped = self.stop.lock();
                if !*stopped {
                    self.stop_cond.wait_for(&mut stopped, tick);
                }
                if *stopped {
                    return;
                }
            }
            self.space.check(&self.config.dir, self.config.min_free_mb);
            // Each partition's next pages are prepared right after its fsync
            // (which left its written-back pages read-only): the page faults
            // happen here, not in the writer.
            if self.config.fsync_interval_ms > 0
                && let Err(e) = self.sync_dirty_then(Partition::prepare)
            {
                tracing::error!(error = %e, "background fsync failed");
            }
            if last_retention.elapsed() >= RETENTION_EVERY {
                last_retention = Instant::now();
                if let Err(e) = self.enforce_retention(now_nanos()) {
                    tracing::error!(error = %e, "retention pass failed");
                }
            }
        }
    }
}
