//! The read side: the zero-copy visitor read, seek by timestamp, and
//! `PartitionReader`, a cursor that keeps its buffer and file position.
//!
//! Reads take the partition's segment list lock only to find a segment, then
//! `pread` large chunks without any lock, so they never block the writer.

use std::cell::Cell;
use std::fmt;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::error::{Error, Result};
use crate::partition::Partition;
use crate::record::RecordView;
use crate::segment::ScanEnd;

/// What a read delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Records passed to the visitor.
    pub records: usize,
    /// Their encoded size in bytes.
    pub bytes: usize,
    /// The offset to read next (one past the last delivered record, or `from`).
    pub next_offset: u64,
    /// The high watermark the read ran up to.
    pub high_watermark: u64,
}

/// Where the previous read stopped, to skip the index lookup next time.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Hint {
    offset: u64,
    base: u64,
    position: u64,
}

thread_local! {
    /// One read buffer per thread, reused across `Log::read` calls. Taken
    /// out while in use, so a visitor that itself reads just gets a new one.
    static READ_BUF: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

pub(crate) fn with_thread_buffer<R>(f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut buf = READ_BUF.with(Cell::take);
    let r = f(&mut buf);
    READ_BUF.with(|b| b.set(buf));
    r
}

impl Partition {
    pub(crate) fn out_of_range(&self, requested: u64) -> Error {
        Error::OffsetOutOfRange {
            topic: self.topic.clone(),
            partition: self.id,
            requested,
            start: self.start.load(Ordering::Acquire),
            end: self.hw.load(Ordering::Acquire),
        }
    }

    /// Visits records with offset in `[from, hw)`; see `Log::read`.
    pub(crate) fn read<F: FnMut(RecordView<'_>)>(
        &self,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        buf: &mut Vec<u8>,
        hint: &mut Option<Hint>,
        f: &mut F,
    ) -> Result<ReadOutcome> {
        let hw = self.hw.load(Ordering::Acquire);
        let start = self.start.load(Ordering::Acquire);
        if from < start || from > hw {
            return Err(self.out_of_range(from));
        }
        let mut out = ReadOutcome {
            records: 0,
            bytes: 0,
            next_offset: from,
            high_watermark: hw,
        };
        let mut next = from;
        while next < hw && out.records < max_records {
            let Some(seg) = self.segment_for(next) else {
                return Err(self.out_of_range(next)); // deleted by retention meanwhile
            };
            let pos = match *hint {
                Some(h) if h.offset == next && h.base == seg.base => h.position,
                _ => seg.position_for_offset(next),
            };
            let end = seg.size();
            let (mut records, mut bytes, before) = (out.records, out.bytes, next);
            let scan_end = seg.scan(pos, end, buf, |_, rec, n| {
                if rec.offset < next {
                    return ControlFlow::Continue(());
                }
                if rec.offset >= hw
                    || records >= max_records
                    || (records > 0 && bytes + n > max_bytes)
                {
                    return ControlFlow::Break(());
                }
                f(*rec);
                records += 1;
                bytes += n;
                next = rec.offset + 1;
                ControlFlow::Continue(())
            })?;
            out.records = records;
            out.bytes = bytes;
            out.next_offset = next;
            match scan_end {
                ScanEnd::Stopped(position) => {
                    *hint = Some(Hint {
                        offset: next,
                        base: seg.base,
                        position,
                    });
                    break;
                }
                ScanEnd::End => {
                    *hint = Some(Hint {
                        offset: next,
                        base: seg.base,
                        position: end,
                    });
                    if next == before {
                        if out.records > 0 {
                            break; // deliver these; the next read meets the damage first
                        }
                        // Records below the high watermark are always published
                        // in the segment that covers them; not finding one is damage.
                        return Err(Error::Corrupt {
                            path: seg.path.clone(),
                            position: pos,
                            reason: format!(
                                "offset {next} (below high watermark {hw}) not found in segment"
                            ),
                        });
                    }
                }
                damage => {
                    if out.records > 0 {
                        // Deliver what came before; the next read meets the damage first.
                        *hint = None;
                        break;
                    }
                    return Err(damage
                        .corrupt_error(&seg.path)
                        .unwrap_or_else(|| self.out_of_range(next)));
                }
            }
        }
        Ok(out)
    }

    /// For a reader that met damage reading `from`: the first offset after
    /// it that can be read (see `Log::skip_damaged`).
    pub(crate) fn skip_damaged(&self, from: u64, buf: &mut Vec<u8>) -> Result<u64> {
        let hw = self.hw.load(Ordering::Acquire);
        if from >= hw {
            return Ok(from);
        }
        let Some(seg) = self.segment_for(from) else {
            return Err(self.out_of_range(from));
        };
        let limit = seg.next_offset().min(hw);
        let mut found = None;
        let scanned = seg.scan(
            seg.position_for_offset(from),
            seg.size(),
            buf,
            |_, rec, _| {
                if rec.offset >= from {
                    found = Some(rec.offset);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            },
        )?;
        let damaged_at = match scanned {
            ScanEnd::Stopped(_) => return Ok(found.unwrap_or(from)),
            ScanEnd::End => return Ok(limit.max(from + 1)),
            ScanEnd::Invalid { position, .. } | ScanEnd::Truncated { position } => position,
        };
        let resume = match seg.resync(damaged_at + 1, from + 1, limit, buf)? {
            Some((offset, position)) => {
                seg.add_resync_entry(offset, position);
                offset
            }
            None => limit.max(from + 1),
        };
        tracing::warn!(topic = %self.topic, partition = self.id, segment = %seg.path.display(),
            from, resume, "skipping damaged records");
        Ok(resume)
    }

    /// First offset whose timestamp is >= `ts`, or the high watermark.
    pub(crate) fn offset_for_timestamp(&self, ts: i64, buf: &mut Vec<u8>) -> Result<u64> {
        let hw = self.hw.load(Ordering::Acquire);
        let segments: Vec<_> = self.segments.read().clone();
        for seg in segments.iter().filter(|s| s.max_ts() >= ts) {
            let mut found = None;
            let pos = seg.position_for_timestamp(ts);
            let end = seg.scan(pos, seg.size(), buf, |_, rec, _| {
                if rec.offset >= hw {
                    return ControlFlow::Break(());
                }
                if rec.timestamp >= ts {
                    found = Some(rec.offset);
                    return ControlFlow::Break(());
                }
                ControlFlow::Continue(())
            })?;
            if let Some(offset) = found {
                return Ok(offset);
            }
            if let Some(e) = end.corrupt_error(&seg.path) {
                return Err(e);
            }
        }
        Ok(hw)
    }
}

/// A cursor over one partition that keeps its own read buffer and remembers
/// where it stopped, for consumers that read the same partition repeatedly.
pub struct PartitionReader {
    partition: Arc<Partition>,
    next: u64,
    buf: Vec<u8>,
    hint: Option<Hint>,
}

impl fmt::Debug for PartitionReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PartitionReader")
            .field("topic", &self.partition.topic)
            .field("partition", &self.partition.id)
            .field("next_offset", &self.next)
            .finish_non_exhaustive()
    }
}

impl PartitionReader {
    pub(crate) fn new(partition: Arc<Partition>, from: u64) -> Result<PartitionReader> {
        let hw = partition.hw.load(Ordering::Acquire);
        if from < partition.start.load(Ordering::Acquire) || from > hw {
            return Err(partition.out_of_range(from));
        }
        Ok(PartitionReader {
            partition,
            next: from,
            buf: Vec::new(),
            hint: None,
        })
    }

    /// The offset the next batch starts at.
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Moves the cursor; validated by the next `next_batch`.
    pub fn seek(&mut self, offset: u64) {
        self.next = offset;
    }

    /// The partition's current high watermark (the cursor is caught up when equal).
    pub fn high_watermark(&self) -> u64 {
        self.partition.hw.load(Ordering::Acquire)
    }

    /// Visits up to `max_records` records (and about `max_bytes`, at least
    /// one record) from the cursor and advances it. 0 records means caught
    /// up. `Error::OffsetOutOfRange` if retention passed the cursor.
    pub fn next_batch(
        &mut self,
        max_records: usize,
        max_bytes: usize,
        mut f: impl FnMut(RecordView<'_>),
    ) -> Result<ReadOutcome> {
        let out = self.partition.read(
            self.next,
            max_records,
            max_bytes,
            &mut self.buf,
            &mut self.hint,
            &mut f,
        )?;
        self.next = out.next_offset;
        Ok(out)
    }
}
