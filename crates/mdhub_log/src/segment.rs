//! One segment: a `<base offset>.log` file of records plus its sparse index,
//! the chunked scanner every read path uses, and crash recovery of a segment.

use std::fs::{File, OpenOptions};
use std::io;
use std::ops::{ControlFlow, Range};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use parking_lot::RwLock;

use crate::error::{Error, Result};
use crate::index::{self, IndexEntry, SegmentSummary};
use crate::record::{self, Invalid, RecordView};

/// First read of a scan; small so that short reads stay cheap.
const FIRST_CHUNK: usize = 64 << 10;
/// Largest read of a scan (unless a single record is bigger).
const MAX_CHUNK: usize = 1 << 20;

/// A segment file shared by the writer and any number of readers. Readers
/// use positional reads (`pread`) on `file`, so they never move a cursor and
/// keep working on a segment that retention has already unlinked.
#[derive(Debug)]
pub(crate) struct Segment {
    pub(crate) base: u64,
    pub(crate) path: PathBuf,
    pub(crate) file: File,
    /// Bytes readers may read: everything written to the OS so far.
    size: AtomicU64,
    /// One past the last offset readers may see.
    next_offset: AtomicU64,
    /// Largest timestamp among readable records (`i64::MIN` if none).
    max_ts: AtomicI64,
    index: RwLock<Vec<IndexEntry>>,
}

pub(crate) fn segment_file_name(base: u64) -> String {
    format!("{base:020}.log")
}

/// Parses `<20 digits>.log` into its base offset.
pub(crate) fn parse_segment_file_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(".log")?;
    (digits.len() == 20 && digits.bytes().all(|b| b.is_ascii_digit()))
        .then(|| digits.parse().ok())?
}

impl Segment {
    /// Creates a new, empty segment file starting at `base`.
    pub(crate) fn create(dir: &Path, base: u64) -> Result<Segment> {
        let path = dir.join(segment_file_name(base));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(Error::io("create segment", &path))?;
        let summary = SegmentSummary {
            bytes: 0,
            next_offset: base,
            max_ts: i64::MIN,
        };
        Ok(Segment::new(base, path, file, summary, Vec::new()))
    }

    fn new(
        base: u64,
        path: PathBuf,
        file: File,
        s: SegmentSummary,
        entries: Vec<IndexEntry>,
    ) -> Segment {
        Segment {
            base,
            path,
            file,
            size: AtomicU64::new(s.bytes),
            next_offset: AtomicU64::new(s.next_offset),
            max_ts: AtomicI64::new(s.max_ts),
            index: RwLock::new(entries),
        }
    }

    pub(crate) fn index_path(&self) -> PathBuf {
        self.path.with_extension("index")
    }

    pub(crate) fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub(crate) fn max_ts(&self) -> i64 {
        self.max_ts.load(Ordering::Acquire)
    }

    pub(crate) fn summary(&self) -> SegmentSummary {
        SegmentSummary {
            bytes: self.size(),
            next_offset: self.next_offset(),
            max_ts: self.max_ts(),
        }
    }

    pub(crate) fn last_index_position(&self) -> u64 {
        self.index.read().last().map_or(0, |e| e.position as u64)
    }

    pub(crate) fn position_for_offset(&self, offset: u64) -> u64 {
        index::position_for_offset(&self.index.read(), self.base, offset)
    }

    pub(crate) fn position_for_timestamp(&self, ts: i64) -> u64 {
        index::position_for_timestamp(&self.index.read(), ts)
    }

    /// Publishes bytes the writer has just written: new index entries first,
    /// then the summary, so a reader never sees an entry past `size`.
    pub(crate) fn publish(&self, new_entries: &mut Vec<IndexEntry>, s: SegmentSummary) {
        if !new_entries.is_empty() {
            self.index.write().append(new_entries);
        }
        self.max_ts.store(s.max_ts, Ordering::Release);
        self.next_offset.store(s.next_offset, Ordering::Release);
        self.size.store(s.bytes, Ordering::Release);
    }

    /// Writes the `.index` file of a segment that is being closed.
    pub(crate) fn store_index(&self) -> Result<()> {
        index::store(&self.index_path(), self.summary(), &self.index.read())
    }

    /// Scans records from byte `pos` to `end` (see [`scan`]).
    pub(crate) fn scan(
        &self,
        pos: u64,
        end: u64,
        buf: &mut Vec<u8>,
        f: impl FnMut(u64, &RecordView<'_>, usize) -> ControlFlow<()>,
    ) -> Result<ScanEnd> {
        scan(&self.file, &self.path, pos, end, buf, f)
    }

    /// Adds an in-memory index entry at a record found past damage, so that
    /// reads of later offsets start scanning after the damage. Its
    /// `max_ts_before` is the next entry's (an upper bound), which keeps the
    /// entries ordered and time seeks correct.
    pub(crate) fn add_resync_entry(&self, offset: u64, position: u64) {
        let rel = (offset - self.base) as u32;
        let mut entries = self.index.write();
        let i = entries.partition_point(|e| e.rel_offset < rel);
        if entries.get(i).is_some_and(|e| e.rel_offset == rel) {
            return;
        }
        let max_ts_before = entries.get(i).map_or(self.max_ts(), |e| e.max_ts_before);
        entries.insert(
            i,
            IndexEntry {
                rel_offset: rel,
                position: position as u32,
                max_ts_before,
            },
        );
    }

    /// The first valid record at or past byte `pos` whose offset is in
    /// `min..before` (see [`resync`]): its offset and position.
    pub(crate) fn resync(
        &self,
        pos: u64,
        min: u64,
        before: u64,
        buf: &mut Vec<u8>,
    ) -> Result<Option<(u64, u64)>> {
        resync(&self.file, &self.path, pos, self.size(), min..before, buf)
    }

    /// Opens an existing segment after a restart. The last segment of a
    /// partition (`next_base` is `None`) is always scanned in full and its
    /// torn tail cut; a closed one is trusted if its index file agrees with
    /// it, else rescanned. `before_loss` runs before bytes that may hold
    /// records readers have seen are cut (it changes the log's epoch).
    ///
    /// Damage inside a closed segment cuts nothing: the next segment's base
    /// says where this one ends, so the records after the damage stay, and
    /// readers meet the damaged ones as `Error::Corrupt` (and can skip them
    /// with `Log::skip_damaged`).
    pub(crate) fn recover(
        path: PathBuf,
        base: u64,
        next_base: Option<u64>,
        interval: u32,
        buf: &mut Vec<u8>,
        before_loss: &mut dyn FnMut(&str) -> Result<()>,
    ) -> Result<Segment> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(Error::io("open segment", &path))?;
        let len = file
            .metadata()
            .map_err(Error::io("stat segment", &path))?
            .len();
        let index_path = path.with_extension("index");
        if next_base.is_some() {
            if let Some((summary, entries)) = index::load(&index_path)?
                && summary.bytes == len
                && verify_tail(&file, &path, base, &summary, &entries, buf)?
            {
                return Ok(Segment::new(base, path, file, summary, entries));
            }
            tracing::warn!(segment = %path.display(), "segment index missing or stale; rebuilding it by scanning");
        }
        let r = rebuild(&file, &path, base, len, interval, buf)?;
        let cut = len - r.summary.bytes;
        if let Some(next) = next_base
            && cut > 0
            && r.summary.next_offset < next
        {
            tracing::error!(
                segment = %path.display(),
                position = r.summary.bytes,
                first_damaged_offset = r.summary.next_offset,
                next_segment_base = next,
                reason = %r.stop_reason,
                "damaged records in a closed segment: kept in place; readers are told and skip them (`mdhub log verify` lists the damage)"
            );
            let summary = SegmentSummary {
                bytes: len,
                next_offset: next,
                max_ts: r.summary.max_ts,
            };
            index::store(&index_path, summary, &r.entries)?;
            return Ok(Segment::new(base, path, file, summary, r.entries));
        }
        if cut > 0 && all_zero(&file, &path, r.summary.bytes, len, buf)? {
            // The preallocated tail of a segment written through its map
            // (`map`): no record was lost.
            tracing::debug!(segment = %path.display(), bytes_cut = cut, "cutting the preallocated tail of a segment");
            file.set_len(r.summary.bytes)
                .map_err(Error::io("truncate segment", &path))?;
        } else if cut > 0 {
            if next_base.is_none() {
                // Readers may have been given records in the bytes cut; the
                // offsets they held will name new records.
                before_loss(&format!(
                    "{} is damaged ({}); {cut} bytes cut from offset {}",
                    path.display(),
                    r.stop_reason,
                    r.summary.next_offset
                ))?;
            }
            tracing::warn!(
                segment = %path.display(),
                bytes_cut = cut,
                valid_bytes = r.summary.bytes,
                next_offset = r.summary.next_offset,
                reason = %r.stop_reason,
                "truncating torn or corrupt tail of segment"
            );
            file.set_len(r.summary.bytes)
                .map_err(Error::io("truncate segment", &path))?;
            file.sync_all().map_err(Error::io("fsync segment", &path))?;
        }
        if next_base.is_none() {
            // The active segment's index lives in memory until the segment closes.
            match std::fs::remove_file(&index_path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::io("remove stale index", &index_path)(e));
                }
                _ => {}
            }
        } else {
            index::store(&index_path, r.summary, &r.entries)?;
        }
        Ok(Segment::new(base, path, file, r.summary, r.entries))
    }
}

/// Finds the first valid record at or past byte `pos` (and before `end`)
/// whose offset is in `offsets`, trying every byte position: the way past
/// damage, whose length fields cannot be trusted. A candidate must carry an
/// offset in range and pass its CRC, so damage is never taken for a record.
/// Returns its offset and position; `None` if there is none.
pub(crate) fn resync(
    file: &File,
    path: &Path,
    mut pos: u64,
    end: u64,
    offsets: Range<u64>,
    buf: &mut Vec<u8>,
) -> Result<Option<(u64, u64)>> {
    const HEAD: usize = 32;
    while pos + HEAD as u64 <= end {
        let want = (end - pos).min(MAX_CHUNK as u64) as usize;
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let got =
            read_full(file, &mut buf[..want], pos).map_err(Error::io("read segment", path))?;
        let data = &buf[..got];
        let mut i = 0;
        while i + HEAD <= got {
            let offset = u64::from_le_bytes(data[i + 8..i + 16].try_into().expect("8 bytes"));
            if offsets.contains(&offset) {
                match record::decode(&data[i..]) {
                    Ok(Some((rec, _))) if rec.offset == offset => {
                        return Ok(Some((offset, pos + i as u64)));
                    }
                    Ok(None) if i > 0 => break, // read on from here
                    Ok(None) => {
                        // A record larger than the window: read it whole.
                        if let Ok(Some(size)) = record::peek_size(data)
                            && pos + size as u64 <= end
                        {
                            let mut whole = vec![0u8; size];
                            let n = read_full(file, &mut whole, pos)
                                .map_err(Error::io("read segment", path))?;
                            if let Ok(Some((rec, _))) = record::decode(&whole[..n])
                                && rec.offset == offset
                            {
                                return Ok(Some((offset, pos)));
                            }
                        }
                    }
                    _ => {}
                }
            }
            i += 1;
        }
        if got < HEAD {
            break;
        }
        pos += i.max(1) as u64;
    }
    Ok(None)
}

/// How a scan ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScanEnd {
    /// Every record up to `end` was visited.
    End,
    /// The visitor stopped before the record at this position.
    Stopped(u64),
    /// The bytes at `position` are not a valid record.
    Invalid { position: u64, reason: Invalid },
    /// A record at `position` runs past `end` or past the end of the file.
    Truncated { position: u64 },
}

impl ScanEnd {
    /// Turns damage into an error for read paths, where data up to `end` was
    /// acknowledged and must be intact.
    pub(crate) fn corrupt_error(self, path: &Path) -> Option<Error> {
        let (position, reason) = match self {
            ScanEnd::Invalid { position, reason } => (position, reason.to_string()),
            ScanEnd::Truncated { position } => (position, "record truncated".to_owned()),
            ScanEnd::End | ScanEnd::Stopped(_) => return None,
        };
        Some(Error::Corrupt {
            path: path.to_owned(),
            position,
            reason,
        })
    }
}

/// Whether bytes `[from, to)` of the file are all zero (a preallocated tail).
pub(crate) fn all_zero(
    file: &File,
    path: &Path,
    mut from: u64,
    to: u64,
    buf: &mut Vec<u8>,
) -> Result<bool> {
    while from < to {
        let want = (to - from).min(MAX_CHUNK as u64) as usize;
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let got =
            read_full(file, &mut buf[..want], from).map_err(Error::io("read segment", path))?;
        if got == 0 {
            return Ok(true);
        }
        if buf[..got].iter().any(|&b| b != 0) {
            return Ok(false);
        }
        from += got as u64;
    }
    Ok(true)
}

/// Reads `buf.len()` bytes at `pos`, or fewer at end of file.
fn read_full(file: &File, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

/// Visits every valid record between byte `pos` and `end`, reading in chunks
/// of 64 KiB growing to 1 MiB into the reusable `buf`. The visitor gets the
/// record's position and size and may stop the scan before a record.
pub(crate) fn scan(
    file: &File,
    path: &Path,
    mut pos: u64,
    end: u64,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(u64, &RecordView<'_>, usize) -> ControlFlow<()>,
) -> Result<ScanEnd> {
    let mut chunk = FIRST_CHUNK;
    while pos < end {
        let want = (end - pos).min(chunk as u64) as usize;
        if buf.len() < want {
            buf.resize(want, 0);
        }
        let got =
            read_full(file, &mut buf[..want], pos).map_err(Error::io("read segment", path))?;
        let data = &buf[..got];
        let mut off = 0;
        loop {
            match record::decode(&data[off..]) {
                Ok(Some((rec, n))) => {
                    if f(pos + off as u64, &rec, n).is_break() {
                        return Ok(ScanEnd::Stopped(pos + off as u64));
                    }
                    off += n;
                }
                Ok(None) => break,
                Err(reason) => {
                    return Ok(ScanEnd::Invalid {
                        position: pos + off as u64,
                        reason,
                    });
                }
            }
        }
        if off == 0 {
            // The first record does not fit in what was read.
            if got < want || got as u64 == end - pos {
                return Ok(ScanEnd::Truncated { position: pos });
            }
            match record::peek_size(data) {
                Ok(Some(size)) => chunk = size,
                Ok(None) => return Ok(ScanEnd::Truncated { position: pos }),
                Err(reason) => {
                    return Ok(ScanEnd::Invalid {
                        position: pos,
                        reason,
                    });
                }
            }
            continue;
        }
        pos += off as u64;
        chunk = (chunk * 2).clamp(FIRST_CHUNK, MAX_CHUNK);
    }
    Ok(ScanEnd::End)
}

/// The valid prefix of a segment, found by scanning it.
struct Rebuilt {
    summary: SegmentSummary,
    entries: Vec<IndexEntry>,
    stop_reason: String,
}

/// Scans a whole segment, stopping at the first truncated, corrupt or
/// non-contiguous record, and rebuilds its index.
fn rebuild(
    file: &File,
    path: &Path,
    base: u64,
    len: u64,
    interval: u32,
    buf: &mut Vec<u8>,
) -> Result<Rebuilt> {
    let mut next = base;
    let mut max_ts = i64::MIN;
    let mut valid = 0u64;
    let mut last_entry_pos = 0u64;
    let mut entries = Vec::new();
    let end = scan(file, path, 0, len, buf, |pos, rec, n| {
        if rec.offset != next {
            return ControlFlow::Break(());
        }
        if pos - last_entry_pos >= interval as u64 {
            entries.push(IndexEntry {
                rel_offset: (next - base) as u32,
                position: pos as u32,
                max_ts_before: max_ts,
            });
            last_entry_pos = pos;
        }
        max_ts = max_ts.max(rec.timestamp);
        next += 1;
        valid = pos + n as u64;
        ControlFlow::Continue(())
    })?;
    let stop_reason = match end {
        ScanEnd::End => "none".to_owned(),
        ScanEnd::Stopped(p) => format!("offset not contiguous at byte {p} (expected {next})"),
        ScanEnd::Invalid { position, reason } => format!("{reason} at byte {position}"),
        ScanEnd::Truncated { position } => format!("record truncated at byte {position}"),
    };
    Ok(Rebuilt {
        summary: SegmentSummary {
            bytes: valid,
            next_offset: next,
            max_ts,
        },
        entries,
        stop_reason,
    })
}

/// Checks the records after the last index entry of a closed segment: they
/// must be valid, contiguous, and end exactly where the summary says.
fn verify_tail(
    file: &File,
    path: &Path,
    base: u64,
    s: &SegmentSummary,
    entries: &[IndexEntry],
    buf: &mut Vec<u8>,
) -> Result<bool> {
    let (mut next, pos) = entries.last().map_or((base, 0), |e| {
        (base + e.rel_offset as u64, e.position as u64)
    });
    let end = scan(file, path, pos, s.bytes, buf, |_, rec, _| {
        if rec.offset != next || rec.timestamp > s.max_ts {
            return ControlFlow::Break(());
        }
        next += 1;
        ControlFlow::Continue(())
    })?;
    Ok(end == ScanEnd::End && next == s.next_offset && next > base)
}
