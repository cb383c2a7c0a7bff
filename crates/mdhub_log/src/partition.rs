//! One topic-partition: its segment list, the writer (one mutex: buffer,
//! offsets, rolling), group-commit fsync, and recovery on open.
//!
//! Visibility protocol: the writer appends encoded records to an in-memory
//! buffer; `flush_locked` copies the buffer into the active segment's write
//! map (or, past the map, writes it with one `pwrite`), publishes the new
//! segment size and index entries, then stores the high watermark. Readers
//! load the high watermark first and never return a record at or past it, so
//! they only ever see whole, flushed records.
//!
//! File length: the active segment's file runs past its records by a
//! preallocated, zero-filled tail (see `map`). Rolling a segment and closing
//! the log cut it; recovery cuts it after a crash.

use std::fs;
use std::mem;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};

use crate::error::{Error, Result};
use crate::index::{IndexEntry, SegmentSummary};
use crate::map::{MAX_PREPARED, MIN_PREPARED, WriteMap};
use crate::notify::Notifier;
use crate::record::{self, RecordIn};
use crate::segment::{Segment, parse_segment_file_name};

/// Writer knobs derived from `LogConfig`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Settings {
    pub(crate) segment_bytes: u64,
    pub(crate) index_interval: u32,
    /// A partition's buffer is written out once it would grow past this.
    pub(crate) max_buffer: usize,
}

/// Default cap of a partition's write buffer.
pub(crate) const MAX_BUFFER_BYTES: usize = 256 << 10;

#[derive(Debug)]
pub(crate) struct Partition {
    pub(crate) topic: String,
    pub(crate) id: u32,
    pub(crate) dir: PathBuf,
    settings: Settings,
    notifier: Arc<Notifier>,
    /// Oldest first; the last one is the active segment.
    pub(crate) segments: RwLock<Vec<Arc<Segment>>>,
    writer: Mutex<Writer>,
    /// Serializes fsync passes so `synced` never runs ahead of the disk.
    sync_lock: Mutex<()>,
    pub(crate) hw: AtomicU64,
    pub(crate) start: AtomicU64,
    pub(crate) synced: AtomicU64,
    /// Hint that the buffer is non-empty, so `flush()` skips idle partitions without locking.
    unflushed: AtomicBool,
    /// Bytes written to the active segment when `prepare` last ran.
    prepared_at: AtomicU64,
}

#[derive(Debug)]
struct Writer {
    active: Arc<Segment>,
    buf: Vec<u8>,
    next_offset: u64,
    /// Bytes of the active segment already written to the OS.
    written: u64,
    /// Largest timestamp in the active segment, buffered records included.
    max_ts: i64,
    last_entry_pos: u64,
    pending_entries: Vec<IndexEntry>,
    /// The active segment's write map; `None` where mapping failed (then
    /// every flush is a `pwrite`).
    map: Option<Arc<WriteMap>>,
    unsynced_closed: Vec<Arc<Segment>>,
    dir_dirty: bool,
    poisoned: bool,
}

/// fsyncs a directory so that file creations/renames/unlinks in it are durable.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(Error::io("fsync directory", dir))
}

impl Partition {
    /// Opens (creating if needed) a partition directory and recovers its segments.
    pub(crate) fn open(
        topic: &str,
        id: u32,
        dir: PathBuf,
        settings: Settings,
        notifier: Arc<Notifier>,
        before_loss: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<Partition> {
        fs::create_dir_all(&dir).map_err(Error::io("create partition directory", &dir))?;
        let mut bases = Vec::new();
        for entry in fs::read_dir(&dir).map_err(Error::io("list partition directory", &dir))? {
            let entry = entry.map_err(Error::io("list partition directory", &dir))?;
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if let Some(base) = parse_segment_file_name(&name) {
                bases.push(base);
            } else if !name.ends_with(".index") {
                tracing::warn!(file = %entry.path().display(), "ignoring unexpected file in partition directory");
            }
        }
        bases.sort_unstable();
        let mut buf = Vec::new();
        let mut segments: Vec<Arc<Segment>> = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let path = dir.join(crate::segment::segment_file_name(base));
            let next_base = bases.get(i + 1).copied();
            let seg = Segment::recover(
                path,
                base,
                next_base,
                settings.index_interval,
                &mut buf,
                before_loss,
            )?;
            if let Some(prev) = segments.last()
                && seg.base != prev.next_offset()
            {
                before_loss(&format!(
                    "{topic}/{id}: segment {} does not continue the previous one (expected offset {}); it and {} later segments are dropped",
                    seg.path.display(),
                    prev.next_offset(),
                    bases.len() - i - 1
                ))?;
                tracing::error!(
                    topic, partition = id, expected_offset = prev.next_offset(), segment = %seg.path.display(),
                    dropped_segments = bases.len() - i,
                    "segment does not continue the previous one (earlier data was lost); dropping it and every later segment"
                );
                for &later in &bases[i..] {
                    let p = dir.join(crate::segment::segment_file_name(later));
                    remove_if_exists(&p)?;
                    remove_if_exists(&p.with_extension("index"))?;
                }
                break;
            }
            seg.file
                .sync_data()
                .map_err(Error::io("fsync segment", &seg.path))?;
            segments.push(Arc::new(seg));
        }
        if segments.is_empty() {
            segments.push(Arc::new(Segment::create(&dir, 0)?));
            sync_dir(&dir)?;
        }
        let start = segments[0].base;
        let active = Arc::clone(segments.last().expect("segments is non-empty"));
        let hw = active.next_offset();
        let map = map_segment(&active, settings.segment_bytes);
        let writer = Writer {
            next_offset: hw,
            written: active.size(),
            max_ts: active.max_ts(),
            last_entry_pos: active.last_index_position(),
            map,
            active,
            buf: Vec::new(),
            pending_entries: Vec::new(),
            unsynced_closed: Vec::new(),
            dir_dirty: false,
            poisoned: false,
        };
        tracing::debug!(
            topic,
            partition = id,
            start,
            hw,
            segments = segments.len(),
            "partition opened"
        );
        Ok(Partition {
            topic: topic.to_owned(),
            id,
            dir,
            settings,
            notifier,
            segments: RwLock::new(segments),
            writer: Mutex::new(writer),
            sync_lock: Mutex::new(()),
            hw: AtomicU64::new(hw),
            start: AtomicU64::new(start),
            synced: AtomicU64::new(hw),
            unflushed: AtomicBool::new(false),
            prepared_at: AtomicU64::new(u64::MAX),
        })
    }

    fn poisoned(&self) -> Error {
        Error::Poisoned {
            topic: self.topic.clone(),
            partition: self.id,
        }
    }

    /// Appends records to the buffer, assigning consecutive offsets. If one is
    /// rejected (too large), the ones before it stay appended.
    pub(crate) fn append<'a>(
        &self,
        recs: impl IntoIterator<Item = RecordIn<'a>>,
    ) -> Result<Range<u64>> {
        let mut w = self.writer.lock();
        if w.poisoned {
            return Err(self.poisoned());
        }
        let first = w.next_offset;
        for rec in recs {
            self.append_one(&mut w, &rec)?;
        }
        if !w.buf.is_empty() {
            self.unflushed.store(true, Ordering::Release);
        }
        Ok(first..w.next_offset)
    }

    fn append_one(&self, w: &mut Writer, rec: &RecordIn<'_>) -> Result<()> {
        let sizes = record::encoded_len(rec)?;
        let total = sizes.0;
        let seg_len = w.written + w.buf.len() as u64;
        if seg_len > 0 && seg_len + total as u64 > self.settings.segment_bytes {
            self.roll(w)?;
        } else if !w.buf.is_empty() && w.buf.len() + total > self.settings.max_buffer {
            self.flush_locked(w)?;
        }
        let pos = w.written + w.buf.len() as u64;
        if pos - w.last_entry_pos >= self.settings.index_interval as u64 {
            let rel_offset = (w.next_offset - w.active.base) as u32;
            w.pending_entries.push(IndexEntry {
                rel_offset,
                position: pos as u32,
                max_ts_before: w.max_ts,
            });
            w.last_entry_pos = pos;
        }
        record::encode(&mut w.buf, w.next_offset, rec, sizes);
        w.max_ts = w.max_ts.max(rec.timestamp);
        w.next_offset += 1;
        Ok(())
    }

    /// Writes the buffer to the OS if it holds anything.
    pub(crate) fn flush(&self) -> Result<()> {
        if !self.unflushed.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut w = self.writer.lock();
        if w.poisoned {
            return Err(self.poisoned());
        }
        self.flush_locked(&mut w)
    }

    fn flush_locked(&self, w: &mut Writer) -> Result<()> {
        if w.buf.is_empty() {
            return Ok(());
        }
        if let Err(source) = self.write_out(w) {
            // Cut any partial write so the file ends at the last published
            // record; the buffer is kept and retried by the next flush. The
            // map goes first: the file must not shrink under it.
            w.map = None;
            if let Err(e) = w.active.file.set_len(w.written) {
                w.poisoned = true;
                tracing::error!(topic = %self.topic, partition = self.id, segment = %w.active.path.display(), error = %e,
                    "could not undo a failed write; partition disabled until reopen");
            }
            return Err(Error::Io {
                op: "write segment",
                path: w.active.path.clone(),
                source,
            });
        }
        w.written += w.buf.len() as u64;
        let summary = SegmentSummary {
            bytes: w.written,
            next_offset: w.next_offset,
            max_ts: w.max_ts,
        };
        let Writer {
            active,
            pending_entries,
            buf,
            ..
        } = w;
        active.publish(pending_entries, summary);
        buf.clear();
        if buf.capacity() > 4 * self.settings.max_buffer {
            buf.shrink_to(self.settings.max_buffer); // after one huge record
        }
        self.hw.store(w.next_offset, Ordering::Release);
        self.unflushed.store(false, Ordering::Release);
        self.notifier.bump();
        Ok(())
    }

    /// Writes the buffer at the end of the active segment: through the write
    /// map (a copy into prepared pages, a `pwrite` past them), or with
    /// `pwrite` where the segment could not be mapped.
    fn write_out(&self, w: &mut Writer) -> std::io::Result<()> {
        match &w.map {
            Some(map) => map.write(&w.active.file, w.written, &w.buf),
            None => w.active.file.write_all_at(&w.buf, w.written),
        }
    }

    /// Cuts the active segment's file to its records (the preallocated tail
    /// goes) and drops its map. Used when the segment closes.
    fn trim_locked(&self, w: &mut Writer) -> Result<()> {
        let Some(map) = w.map.take() else {
            return Ok(());
        };
        if map.allocated() > w.written {
            w.active
                .file
                .set_len(w.written)
                .map_err(Error::io("truncate segment", &w.active.path))?;
        }
        Ok(())
    }

    /// Flushes, then cuts the preallocated tail of the active segment: a
    /// cleanly closed log leaves files that end at their last record.
    pub(crate) fn close(&self) -> Result<()> {
        let mut w = self.writer.lock();
        if w.poisoned {
            return Err(self.poisoned());
        }
        self.flush_locked(&mut w)?;
        self.trim_locked(&mut w)
    }

    /// Prepares the pages just past the writer in the active segment (see
    /// `map`), so the writer's copies take no page faults. Called by the
    /// background thread after each fsync pass, which also leaves
    /// written-back pages read-only again. Skips a partition not written
    /// since the last call. The window is twice what was written since then,
    /// between 64 KiB and 4 MiB. Then unmaps the pages the writer has passed.
    pub(crate) fn prepare(&self) {
        let (map, active, written) = {
            let w = self.writer.lock();
            let Some(map) = w.map.clone() else { return };
            (map, Arc::clone(&w.active), w.written)
        };
        let last = self.prepared_at.swap(written, Ordering::AcqRel);
        if last == written {
            return;
        }
        let grown = if written > last {
            written - last
        } else {
            written
        };
        let window = grown.saturating_mul(2).clamp(MIN_PREPARED, MAX_PREPARED);
        // Unlocked: the writer keeps copying below what is allocated meanwhile.
        if let Err(e) = map.prepare(&active.file, written, window) {
            tracing::debug!(topic = %self.topic, partition = self.id, error = %e, "could not prepare the next pages");
        }
        if let Err(e) = map.release_below(written) {
            tracing::debug!(topic = %self.topic, partition = self.id, error = %e, "could not unmap written pages");
        }
    }

    /// Closes the active segment (after flushing it) and starts a new one.
    fn roll(&self, w: &mut Writer) -> Result<()> {
        self.flush_locked(w)?;
        self.trim_locked(w)?;
        w.active.store_index()?;
        let new = Arc::new(Segment::create(&self.dir, w.next_offset)?);
        w.map = map_segment(&new, self.settings.segment_bytes);
        self.segments.write().push(Arc::clone(&new));
        let old = mem::replace(&mut w.active, new);
        tracing::debug!(topic = %self.topic, partition = self.id, closed = %old.path.display(), base = w.next_offset, "rolled segment");
        w.unsynced_closed.push(old);
        w.dir_dirty = true;
        w.written = 0;
        w.last_entry_pos = 0;
        w.max_ts = i64::MIN;
        Ok(())
    }

    /// fsyncs everything flushed so far; afterwards `synced == hw` as of the call.
    pub(crate) fn sync(&self) -> Result<()> {
        let _one_at_a_time = self.sync_lock.lock();
        let (hw, active, closed, dir_dirty) = {
            let mut w = self.writer.lock();
            if w.poisoned {
                return Err(self.poisoned());
            }
            let closed = mem::take(&mut w.unsynced_closed);
            (
                self.hw.load(Ordering::Acquire),
                Arc::clone(&w.active),
                closed,
                mem::take(&mut w.dir_dirty),
            )
        };
        if closed.is_empty() && !dir_dirty && hw <= self.synced.load(Ordering::Acquire) {
            return Ok(());
        }
        let result = (|| {
            for seg in &closed {
                seg.file
                    .sync_data()
                    .map_err(Error::io("fsync segment", &seg.path))?;
            }
            if dir_dirty {
                sync_dir(&self.dir)?;
            }
            active
                .file
                .sync_data()
                .map_err(Error::io("fsync segment", &active.path))
        })();
        match result {
            Ok(()) => {
                self.synced.fetch_max(hw, Ordering::AcqRel);
                Ok(())
            }
            Err(e) => {
                // After a failed fsync the page cache may have dropped the data
                // (see PostgreSQL's "fsyncgate"): stop writing rather than lie.
                self.writer.lock().poisoned = true;
                tracing::error!(topic = %self.topic, partition = self.id, error = %e, "fsync failed; partition disabled until reopen");
                Err(e)
            }
        }
    }

    pub(crate) fn needs_sync(&self) -> bool {
        self.synced.load(Ordering::Acquire) < self.hw.load(Ordering::Acquire)
            || !self.writer.lock().unsynced_closed.is_empty()
    }

    /// Returns the segment holding `offset` (the last one whose base is <= it).
    pub(crate) fn segment_for(&self, offset: u64) -> Option<Arc<Segment>> {
        let segs = self.segments.read();
        let i = segs.partition_point(|s| s.base <= offset);
        (i > 0).then(|| Arc::clone(&segs[i - 1]))
    }

    pub(crate) fn bytes_and_segments(&self) -> (u64, usize) {
        let segs = self.segments.read();
        (segs.iter().map(|s| s.size()).sum(), segs.len())
    }
}

/// A write map over a segment, or `None` (with a warning) where mapping fails.
fn map_segment(seg: &Segment, segment_bytes: u64) -> Option<Arc<WriteMap>> {
    match WriteMap::new(&seg.file, segment_bytes, seg.size()) {
        Ok(m) => Some(Arc::new(m)),
        Err(e) => {
            tracing::warn!(segment = %seg.path.display(), error = %e, "cannot map the segment; writing it with pwrite");
            None
        }
    }
}

pub(crate) fn remove_if_exists(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(Error::io("remove", path)(e)),
        _ => Ok(()),
    }
}
