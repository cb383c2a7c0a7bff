//! The sparse offset/time index of one segment, and its `.index` file.
//!
//! One entry every `index_interval_bytes` of records: the record's offset
//! relative to the segment base, its byte position, and the largest
//! timestamp of all records *before* it in the segment (a running max, so
//! entries are sorted by all three fields). A seek finds the last entry at or
//! before the target and scans forward from there.
//!
//! The file is written when a segment is closed and trusted on open only if
//! its CRC and its summary (length, next offset) match the segment file;
//! otherwise the segment is rescanned and the file rewritten. It is a cache:
//! losing it never loses data.

use std::fs;
use std::path::Path;

use crate::error::{Error, Result};

/// One sparse index entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Offset minus the segment's base offset.
    pub(crate) rel_offset: u32,
    /// Byte position of the record in the segment file.
    pub(crate) position: u32,
    /// Largest timestamp of the records before `position` (`i64::MIN` if none).
    pub(crate) max_ts_before: i64,
}

/// The summary stored in an index file's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SegmentSummary {
    /// Length of the segment file in bytes.
    pub(crate) bytes: u64,
    /// One past the last offset in the segment.
    pub(crate) next_offset: u64,
    /// Largest timestamp in the segment (`i64::MIN` if empty).
    pub(crate) max_ts: i64,
}

const MAGIC: &[u8; 4] = b"MDXI";
const VERSION: u16 = 1;
/// magic 4 | version 2 | reserved 2 | crc 4 | bytes 8 | next_offset 8 | max_ts 8 | count 4 | reserved 4
pub(crate) const FILE_HEADER_LEN: usize = 44;
pub(crate) const ENTRY_LEN: usize = 16;

/// Position to start scanning from to find `offset` (segment base `base`).
pub(crate) fn position_for_offset(entries: &[IndexEntry], base: u64, offset: u64) -> u64 {
    let rel = offset.saturating_sub(base).min(u32::MAX as u64) as u32;
    let i = entries.partition_point(|e| e.rel_offset <= rel);
    if i == 0 {
        0
    } else {
        entries[i - 1].position as u64
    }
}

/// Position to start scanning from to find the first record with
/// timestamp >= `ts`: every record before it has a smaller timestamp.
pub(crate) fn position_for_timestamp(entries: &[IndexEntry], ts: i64) -> u64 {
    let i = entries.partition_point(|e| e.max_ts_before < ts);
    if i == 0 {
        0
    } else {
        entries[i - 1].position as u64
    }
}

/// Serializes the index file contents.
pub(crate) fn encode_file(summary: SegmentSummary, entries: &[IndexEntry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(FILE_HEADER_LEN + entries.len() * ENTRY_LEN);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&[0, 0]);
    out.extend_from_slice(&[0; 4]); // CRC, patched below
    out.extend_from_slice(&summary.bytes.to_le_bytes());
    out.extend_from_slice(&summary.next_offset.to_le_bytes());
    out.extend_from_slice(&summary.max_ts.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    for e in entries {
        out.extend_from_slice(&e.rel_offset.to_le_bytes());
        out.extend_from_slice(&e.position.to_le_bytes());
        out.extend_from_slice(&e.max_ts_before.to_le_bytes());
    }
    let crc = crc32c::crc32c(&out[12..]);
    out[8..12].copy_from_slice(&crc.to_le_bytes());
    out
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(a)
}

/// Parses index file contents; `None` if anything is off (the caller rebuilds).
pub(crate) fn decode_file(bytes: &[u8]) -> Option<(SegmentSummary, Vec<IndexEntry>)> {
    if bytes.len() < FILE_HEADER_LEN || &bytes[..4] != MAGIC {
        return None;
    }
    if u16::from_le_bytes([bytes[4], bytes[5]]) != VERSION || bytes[6..8] != [0, 0] {
        return None;
    }
    if crc32c::crc32c(&bytes[12..]) != u32_at(bytes, 8) {
        return None;
    }
    let summary = SegmentSummary {
        bytes: u64_at(bytes, 12),
        next_offset: u64_at(bytes, 20),
        max_ts: u64_at(bytes, 28) as i64,
    };
    let count = u32_at(bytes, 36) as usize;
    if bytes.len() != FILE_HEADER_LEN + count.checked_mul(ENTRY_LEN)? {
        return None;
    }
    let entries: Vec<IndexEntry> = bytes[FILE_HEADER_LEN..]
        .chunks_exact(ENTRY_LEN)
        .map(|c| IndexEntry {
            rel_offset: u32_at(c, 0),
            position: u32_at(c, 4),
            max_ts_before: u64_at(c, 8) as i64,
        })
        .collect();
    let sorted = entries.windows(2).all(|w| {
        w[0].rel_offset < w[1].rel_offset
            && w[0].position < w[1].position
            && w[0].max_ts_before <= w[1].max_ts_before
    });
    let in_bounds = entries
        .last()
        .is_none_or(|e| (e.position as u64) < summary.bytes);
    (sorted && in_bounds).then_some((summary, entries))
}

/// Reads and parses an index file; `Ok(None)` if missing or invalid.
pub(crate) fn load(path: &Path) -> Result<Option<(SegmentSummary, Vec<IndexEntry>)>> {
    match fs::read(path) {
        Ok(bytes) => Ok(decode_file(&bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io {
            op: "read index",
            path: path.to_owned(),
            source: e,
        }),
    }
}

/// Writes an index file (no fsync: it is rebuilt from the segment if lost).
pub(crate) fn store(path: &Path, summary: SegmentSummary, entries: &[IndexEntry]) -> Result<()> {
    fs::write(path, encode_file(summary, entries)).map_err(Error::io("write index", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries() -> Vec<IndexEntry> {
        vec![
            IndexEntry {
                rel_offset: 10,
                position: 1000,
                max_ts_before: 50,
            },
            IndexEntry {
                rel_offset: 20,
                position: 2000,
                max_ts_before: 90,
            },
        ]
    }

    #[test]
    fn lookups() {
        let e = entries();
        assert_eq!(position_for_offset(&e, 100, 105), 0);
        assert_eq!(position_for_offset(&e, 100, 110), 1000);
        assert_eq!(position_for_offset(&e, 100, 119), 1000);
        assert_eq!(position_for_offset(&e, 100, 500), 2000);
        assert_eq!(position_for_offset(&e, 100, 50), 0);
        assert_eq!(position_for_timestamp(&e, 40), 0);
        assert_eq!(position_for_timestamp(&e, 51), 1000);
        assert_eq!(position_for_timestamp(&e, 1000), 2000);
    }

    #[test]
    fn file_round_trip_and_rejects_damage() {
        let s = SegmentSummary {
            bytes: 3000,
            next_offset: 125,
            max_ts: 99,
        };
        let bytes = encode_file(s, &entries());
        assert_eq!(decode_file(&bytes), Some((s, entries())));
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0x40;
            assert_eq!(decode_file(&b), None, "flip at {i}");
        }
        assert_eq!(decode_file(&bytes[..bytes.len() - 1]), None);
        assert_eq!(decode_file(&[]), None);
    }
}
