//! `Log`: the public handle. Owns the topic table, consumer groups and the
//! background thread (group-commit fsync and retention), and routes every
//! call to the right partition.

use std::collections::HashMap;
use std::fmt;
use std::fs::File;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::{Condvar, Mutex, RwLock};

use crate::config::{LogConfig, MAX_PARTITIONS};
use crate::error::{Error, Result};
use crate::groups::Groups;
use crate::notify::Notifier;
use crate::partition::{MAX_BUFFER_BYTES, Partition, Settings};
use crate::read::{PartitionReader, ReadOutcome, with_thread_buffer};
use crate::record::{RecordIn, RecordView};
use crate::retention::{Policy, RetentionReport};
use crate::topics::{self, Topic};
use crate::{meta, stats::LogStats};

/// The embedded log. `Send + Sync`: share it behind an `Arc`. Dropping it
/// stops the background thread and flushes (but does not fsync) buffered
/// records; call [`Log::close`] for a full sync.
pub struct Log {
    inner: Arc<Inner>,
    background: Option<JoinHandle<()>>,
    scrubber: Option<JoinHandle<()>>,
}

pub(crate) struct Inner {
    pub(crate) config: LogConfig,
    settings: Settings,
    pub(crate) policy: Policy,
    epoch: String,
    /// The epoch this open replaced, if recovery changed it.
    previous_epoch: Option<String>,
    topics: RwLock<HashMap<String, Arc<Topic>>>,
    /// Every partition, for flush/sync/retention passes without the topic map.
    pub(crate) all: RwLock<Arc<Vec<Arc<Partition>>>>,
    create_lock: Mutex<()>,
    groups: Groups,
    notifier: Arc<Notifier>,
    pub(crate) stop: Mutex<bool>,
    /// What the background scrub has found.
    pub(crate) scrub: Mutex<crate::scrub::Scrub>,
    /// Free space against the watermark.
    pub(crate) space: crate::space::Space,
    pub(crate) stop_cond: Condvar,
    _dir_lock: File,
}

impl fmt::Debug for Log {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Log")
            .field("dir", &self.inner.config.dir)
            .field("epoch", &self.inner.epoch)
            .field("topics", &self.topics())
            .finish_non_exhaustive()
    }
}

impl Log {
    /// Opens the log in `config.dir` (created if missing), takes its
    /// exclusive lock, recovers every partition (cutting torn tails left by a
    /// crash) and starts the background fsync/retention thread.
    pub fn open(config: LogConfig) -> Result<Log> {
        config.validate()?;
        let dir = config.dir.clone();
        std::fs::create_dir_all(&dir).map_err(Error::io("create log directory", &dir))?;
        let dir_lock = meta::lock_dir(&dir)?;
        let mut guard = meta::EpochGuard::new(&dir, meta::load_or_create(&dir)?);
        meta::check_running(&dir, &mut guard)?;
        let settings = Settings {
            segment_bytes: config.segment_bytes,
            index_interval: config.index_interval_bytes,
            max_buffer: MAX_BUFFER_BYTES,
        };
        let notifier = Arc::new(Notifier::default());
        let started = Instant::now();
        let opened = topics::open_all(&dir.join("topics"), settings, &notifier, &mut guard)?;
        let (epoch, previous_epoch) = guard.finish();
        let all: Vec<_> = opened
            .iter()
            .flat_map(|t| t.partitions.iter().cloned())
            .collect();
        tracing::info!(dir = %dir.display(), epoch, topics = opened.len(), partitions = all.len(),
            elapsed_ms = started.elapsed().as_millis() as u64, "log opened");
        let inner = Arc::new(Inner {
            policy: Policy::from_config(config.retention_hours, config.retention_bytes),
            groups: Groups::open(dir.join("groups"))?,
            config,
            settings,
            epoch,
            previous_epoch,
            topics: RwLock::new(
                opened
                    .into_iter()
                    .map(|t| (t.name.clone(), Arc::new(t)))
                    .collect(),
            ),
            all: RwLock::new(Arc::new(all)),
            create_lock: Mutex::new(()),
            notifier,
            stop: Mutex::new(false),
            scrub: Mutex::default(),
            space: crate::space::Space::default(),
            stop_cond: Condvar::new(),
            _dir_lock: dir_lock,
        });
        inner
            .space
            .check(&inner.config.dir, inner.config.min_free_mb);
        let bg = Arc::clone(&inner);
        let background = std::thread::Builder::new()
            .name("mdhub-log-sync".into())
            .spawn(move || bg.background())
            .map_err(Error::io("spawn background thread for", &dir))?;
        let scrubber = if inner.config.scrub_mb_per_sec > 0 {
            let s = Arc::clone(&inner);
            let spawned = std::thread::Builder::new()
                .name("mdhub-log-scrub".into())
                .spawn(move || s.scrub());
            match spawned {
                Ok(h) => Some(h),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot start the log scrub thread; running without");
                    None
                }
            }
        } else {
            None
        };
        Ok(Log {
            inner,
            background: Some(background),
            scrubber,
        })
    }

    /// Flushes and fsyncs everything, then stops the background thread.
    /// After return every appended record survives power loss.
    pub fn close(mut self) -> Result<()> {
        let result = self.sync();
        self.stop_background();
        result
        // Drop closes the partitions and removes the `running` marker.
    }

    fn stop_background(&mut self) {
        *self.inner.stop.lock() = true;
        self.inner.stop_cond.notify_all();
        for handle in [self.background.take(), self.scrubber.take()]
            .into_iter()
            .flatten()
        {
            if handle.join().is_err() {
                tracing::error!("a log background thread panicked");
            }
        }
    }

    /// The id generated when this log directory was first created, or when
    /// recovery last removed records that readers may have seen (see the
    /// crate's README); a client that sees it change knows its stored
    /// offsets are void.
    pub fn epoch(&self) -> &str {
        &self.inner.epoch
    }

    /// `Error::LowDiskSpace` while free space is below the watermark.
    fn check_space(&self) -> Result<()> {
        if !self.inner.space.low() {
            return Ok(());
        }
        let d = self.inner.space.report();
        Err(Error::LowDiskSpace {
            dir: self.inner.config.dir.clone(),
            free_bytes: d.free_bytes,
            min_free_bytes: d.min_free_bytes,
        })
    }

    /// The log filesystem's free space against the watermark
    /// (`min_free_mb`), as the background thread last read it.
    pub fn disk_space(&self) -> crate::DiskSpace {
        self.inner.space.report()
    }

    /// What the background scrub of closed segments has checked and found
    /// (`scrub_mb_per_sec`; see the crate's README).
    pub fn scrub_status(&self) -> crate::ScrubStatus {
        self.inner.scrub.lock().status()
    }

    /// The epoch this open replaced, when recovery had to change it.
    pub fn previous_epoch(&self) -> Option<&str> {
        self.inner.previous_epoch.as_deref()
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &LogConfig {
        &self.inner.config
    }

    /// Creates a topic with `partitions` partitions. Idempotent: Ok if it
    /// exists with the same count, `Error::PartitionCountMismatch` otherwise.
    /// Durable (directories and `topic.meta` fsynced) before return.
    pub fn create_topic(&self, topic: &str, partitions: u32) -> Result<()> {
        topics::check_name(topic)?;
        if partitions == 0 || partitions > MAX_PARTITIONS {
            return Err(Error::InvalidPartitionCount {
                topic: topic.to_owned(),
                requested: partitions,
            });
        }
        let _one_at_a_time = self.inner.create_lock.lock();
        if let Some(t) = self.inner.topics.read().get(topic) {
            let existing = t.partitions.len() as u32;
            return if existing == partitions {
                Ok(())
            } else {
                Err(Error::PartitionCountMismatch {
                    topic: topic.to_owned(),
                    existing,
                    requested: partitions,
                })
            };
        }
        let topics_dir = self.inner.config.dir.join("topics");
        let t = topics::open_topic(
            &topics_dir,
            topic,
            Some(partitions),
            self.inner.settings,
            &self.inner.notifier,
            None,
        )?
        .ok_or_else(|| Error::UnknownTopic {
            topic: topic.to_owned(),
        })?;
        let existing = t.partitions.len() as u32;
        if existing != partitions {
            return Err(Error::PartitionCountMismatch {
                topic: topic.to_owned(),
                existing,
                requested: partitions,
            });
        }
        let mut all = Vec::clone(&self.inner.all.read());
        all.extend(t.partitions.iter().cloned());
        self.inner
            .topics
            .write()
            .insert(topic.to_owned(), Arc::new(t));
        *self.inner.all.write() = Arc::new(all);
        tracing::info!(topic, partitions, "created topic");
        Ok(())
    }

    /// Every topic and its partition count, sorted by name.
    pub fn topics(&self) -> Vec<(String, u32)> {
        let mut v: Vec<_> = self
            .inner
            .topics
            .read()
            .values()
            .map(|t| (t.name.clone(), t.partitions.len() as u32))
            .collect();
        v.sort();
        v
    }

    /// The partition count of `topic` (`Error::UnknownTopic` if absent).
    pub fn partitions(&self, topic: &str) -> Result<u32> {
        self.inner
            .topics
            .read()
            .get(topic)
            .map(|t| t.partitions.len() as u32)
            .ok_or_else(|| Error::UnknownTopic {
                topic: topic.to_owned(),
            })
    }

    pub(crate) fn partition(&self, topic: &str, partition: u32) -> Result<Arc<Partition>> {
        let topics = self.inner.topics.read();
        let t = topics.get(topic).ok_or_else(|| Error::UnknownTopic {
            topic: topic.to_owned(),
        })?;
        t.partitions
            .get(partition as usize)
            .cloned()
            .ok_or_else(|| Error::UnknownPartition {
                topic: topic.to_owned(),
                partition,
                partitions: t.partitions.len() as u32,
            })
    }

    /// Appends one record and returns its offset. The record is buffered in
    /// memory: not visible to readers and not crash-safe until [`Log::flush`]
    /// (or until the partition's 256 KiB buffer fills and is written out).
    pub fn append(&self, topic: &str, partition: u32, rec: &RecordIn<'_>) -> Result<u64> {
        self.check_space()?;
        self.partition(topic, partition)?
            .append(std::iter::once(*rec))
            .map(|r| r.start)
    }

    /// Appends records with consecutive offsets under one lock and returns
    /// their offset range. Same durability as [`Log::append`]. If a record is
    /// rejected (too large), the ones before it stay appended.
    pub fn append_batch<'a>(
        &self,
        topic: &str,
        partition: u32,
        recs: impl IntoIterator<Item = RecordIn<'a>>,
    ) -> Result<Range<u64>> {
        self.check_space()?;
        self.partition(topic, partition)?.append(recs)
    }

    /// Group commit: writes every partition's buffer to the OS, one `write`
    /// per partition. After return all records appended before the call are
    /// visible to readers and survive a crash (kill -9) of the process, but
    /// not power loss — unless `fsync_interval_ms` is 0, in which case this
    /// also fsyncs (see [`Log::sync`]).
    pub fn flush(&self) -> Result<()> {
        let all = Arc::clone(&self.inner.all.read());
        let mut first_err = None;
        for p in all.iter() {
            if let Err(e) = p.flush() {
                first_err.get_or_insert(e);
            }
        }
        if let Some(e) = first_err {
            return Err(e);
        }
        if self.inner.config.fsync_interval_ms == 0 {
            self.inner.sync_dirty()?;
        }
        Ok(())
    }

    /// Flushes, then fsyncs every partition written since its last fsync.
    /// After return all records appended before the call survive power loss.
    pub fn sync(&self) -> Result<()> {
        self.flush()?;
        self.inner.sync_dirty()
    }

    /// One past the last readable (flushed) record of the partition.
    pub fn high_watermark(&self, topic: &str, partition: u32) -> Result<u64> {
        Ok(self.partition(topic, partition)?.hw.load(Ordering::Acquire))
    }

    /// The first offset still retained.
    pub fn start_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        Ok(self
            .partition(topic, partition)?
            .start
            .load(Ordering::Acquire))
    }

    /// One past the last fsynced record (records below it survive power loss).
    pub fn synced_offset(&self, topic: &str, partition: u32) -> Result<u64> {
        Ok(self
            .partition(topic, partition)?
            .synced
            .load(Ordering::Acquire))
    }

    /// Calls `f` for each record with offset in `[from, high watermark)`, in
    /// order, up to `max_records` records and about `max_bytes` bytes (at
    /// least one record is delivered if any is available). The views borrow
    /// an internal buffer and are valid only during the call. `from` equal to
    /// the high watermark yields 0 records; below the start offset or above
    /// the high watermark is `Error::OffsetOutOfRange` (the caller resets).
    /// Reads never see unflushed records; every record's CRC is checked.
    pub fn read(
        &self,
        topic: &str,
        partition: u32,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        mut f: impl FnMut(RecordView<'_>),
    ) -> Result<ReadOutcome> {
        let p = self.partition(topic, partition)?;
        with_thread_buffer(|buf| p.read(from, max_records, max_bytes, buf, &mut None, &mut f))
    }

    /// For a reader whose read at `from` failed with `Error::Corrupt`: the
    /// first offset after `from` that can be read, found by scanning the
    /// damaged segment for the next record that passes its CRC (the end of
    /// the segment if none does). The records in between are lost; a caller
    /// must say so (the gateway sends its clients a `data_lost` reset).
    pub fn skip_damaged(&self, topic: &str, partition: u32, from: u64) -> Result<u64> {
        let p = self.partition(topic, partition)?;
        with_thread_buffer(|buf| p.skip_damaged(from, buf))
    }

    /// A cursor at `from` holding its own buffer, for repeated reads of one partition.
    pub fn reader(&self, topic: &str, partition: u32, from: u64) -> Result<PartitionReader> {
        PartitionReader::new(self.partition(topic, partition)?, from)
    }

    /// The first offset whose timestamp is >= `ts_nanos` (located with the
    /// time index, then a scan), or the high watermark if there is none.
    pub fn offset_for_timestamp(&self, topic: &str, partition: u32, ts_nanos: i64) -> Result<u64> {
        let p = self.partition(topic, partition)?;
        with_thread_buffer(|buf| p.offset_for_timestamp(ts_nanos, buf))
    }

    /// Records `next_offset` as the group's position in the partition.
    /// Durable (temp file, fsync, rename, directory fsync) before return.
    pub fn commit(&self, group: &str, topic: &str, partition: u32, next_offset: u64) -> Result<()> {
        self.partition(topic, partition)?;
        self.inner
            .groups
            .commit(group, topic, partition, next_offset)
    }

    /// The group's last committed offset for the partition, if any.
    pub fn committed(&self, group: &str, topic: &str, partition: u32) -> Result<Option<u64>> {
        self.inner.groups.committed(group, topic, partition)
    }

    /// Deletes closed segments whose newest record is older than
    /// `retention_hours` before `now_nanos`, then the oldest closed segments
    /// of partitions larger than `retention_bytes`. Never deletes the active
    /// segment. Advances start offsets; deletions are durable on return. The
    /// background thread runs this every minute with the wall clock.
    pub fn enforce_retention(&self, now_nanos: i64) -> Result<RetentionReport> {
        self.inner.enforce_retention(now_nanos)
    }

    /// A counter bumped every time a flush makes records readable.
    pub fn watermark_seq(&self) -> u64 {
        self.inner.notifier.seq()
    }

    /// Blocks until [`Log::watermark_seq`] differs from `seen_seq` or
    /// `timeout` passes; returns the current value. Tailing readers loop:
    /// read to the high watermark, then wait with the seq read before reading.
    pub fn wait_for_flush(&self, seen_seq: u64, timeout: Duration) -> u64 {
        self.inner.notifier.wait(seen_seq, timeout)
    }

    /// Per-partition offsets and sizes.
    pub fn stats(&self) -> LogStats {
        LogStats::collect(&self.inner.all.read())
    }
}

impl Drop for Log {
    fn drop(&mut self) {
        self.stop_background();
        // Flush (and fsync, as `flush` does, when every flush is to be
        // fsynced), and cut each active segment's preallocated tail.
        let all = Arc::clone(&self.inner.all.read());
        for p in all.iter() {
            if let Err(e) = p.close() {
                tracing::error!(dir = %self.inner.config.dir.display(), error = %e, "closing a partition failed; buffered records may be lost");
            }
        }
        // Everything fsynced: the next open need not fear a machine crash.
        let dir = &self.inner.config.dir;
        match self.inner.sync_dirty() {
            Ok(()) => {
                if let Err(e) = meta::mark_clean(dir) {
                    tracing::warn!(dir = %dir.display(), error = %e, "could not remove the log's running marker");
                }
            }
            Err(e) => {
                tracing::error!(dir = %dir.display(), error = %e, "fsync on close failed");
            }
        }
    }
}

// Many threads share one `Log` behind an `Arc`.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Log>();
};
