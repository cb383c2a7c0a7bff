//! The background scrub: closed segments never change, so a thread re-reads
//! them at a bounded rate and checks every record (as `verify` does), so
//! that damage shows in [`Log::scrub_status`] — and in mdhub's status,
//! metrics and `/readyz` — before a reader meets it.
//!
//! [`Log::scrub_status`]: crate::Log::scrub_status

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::log::Inner;
use crate::verify::{Damage, SegmentAt, check_segment};

/// What the scrub has found so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScrubStatus {
    /// Whole passes over every closed segment.
    pub passes: u64,
    /// Bytes checked since start.
    pub bytes: u64,
    /// Segments checked since start.
    pub segments: u64,
    /// Damage in the closed segments as last checked (segments deleted by
    /// retention since drop out after the next pass).
    pub damage: Vec<Damage>,
}

/// The scrub's state, shared with `Log`.
#[derive(Debug, Default)]
pub(crate) struct Scrub {
    passes: u64,
    bytes: u64,
    segments: u64,
    by_segment: BTreeMap<PathBuf, Vec<Damage>>,
}

impl Scrub {
    pub(crate) fn status(&self) -> ScrubStatus {
        ScrubStatus {
            passes: self.passes,
            bytes: self.bytes,
            segments: self.segments,
            damage: self.by_segment.values().flatten().cloned().collect(),
        }
    }
}

impl Inner {
    /// Waits `d` unless the log is closing; false when it is.
    fn pause(&self, d: Duration) -> bool {
        let mut stopped = self.stop.lock();
        if !*stopped && !d.is_zero() {
            self.stop_cond.wait_for(&mut stopped, d);
        }
        !*stopped
    }

    /// The scrub thread: a pass over every closed segment at
    /// `scrub_mb_per_sec` on average, then `scrub_interval_secs` of rest,
    /// until the log closes.
    pub(crate) fn scrub(&self) {
        let rate = u64::from(self.config.scrub_mb_per_sec) << 20;
        let rest = Duration::from_secs(self.config.scrub_interval_secs);
        let mut buf = Vec::new();
        loop {
            let all = Arc::clone(&self.all.read());
            let mut seen = Vec::new();
            for p in all.iter() {
                let closed: Vec<_> = {
                    let segs = p.segments.read();
                    segs[..segs.len().saturating_sub(1)].to_vec()
                };
                for seg in closed {
                    let at = SegmentAt {
                        topic: &p.topic,
                        partition: p.id,
                        path: &seg.path,
                        base: seg.base,
                        len: seg.size(),
                    };
                    let mut found = Vec::new();
                    // The segment's own descriptor: retention may unlink it meanwhile.
                    if let Err(e) = check_segment(&seg.file, &at, &mut buf, &mut found) {
                        tracing::warn!(segment = %seg.path.display(), error = %e, "scrub could not read a segment");
                        continue;
                    }
                    for d in &found {
                        tracing::error!(topic = %d.topic, partition = d.partition, segment = %d.segment.display(),
                            position = d.position, offset = d.offset, resume = ?d.resume, reason = %d.reason,
                            "scrub found damaged records");
                    }
                    {
                        let mut s = self.scrub.lock();
                        s.bytes += at.len;
                        s.segments += 1;
                        s.by_segment.insert(seg.path.clone(), found);
                    }
                    seen.push(seg.path.clone());
                    let spent = Duration::from_secs_f64(at.len as f64 / rate as f64);
                    if !self.pause(spent) {
                        return;
                    }
                }
            }
            {
                let mut s = self.scrub.lock();
                s.passes += 1;
                s.by_segment.retain(|path, _| seen.contains(path));
            }
            if !self.pause(rest.max(Duration::from_millis(100))) {
                return;
            }
        }
    }
}
