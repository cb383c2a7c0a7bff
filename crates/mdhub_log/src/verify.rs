//! `verify`: checks every record of every segment of a log directory
//! (length, CRC, offset continuity, segments that continue each other) and
//! reports damage by topic, partition, segment, byte and offset. Read-only
//! and lock-free, like `kafka-dump-log`: it runs beside a live process, and
//! on an active segment it may report the record being written as torn.

use std::fs::File;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::segment::{ScanEnd, all_zero, parse_segment_file_name, resync, scan};

/// One damaged range of a segment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damage {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: u32,
    /// The segment file.
    pub segment: PathBuf,
    /// Byte position where the damage starts.
    pub position: u64,
    /// Byte position where it ends: the next readable record, or the end
    /// of the segment.
    pub end: u64,
    /// The first offset that cannot be read.
    pub offset: u64,
    /// The next offset that can be read (a valid record found past the
    /// damage); `None` when nothing after it in the segment is readable.
    pub resume: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// What `verify` looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifyReport {
    /// Partitions checked.
    pub partitions: u64,
    /// Segment files checked.
    pub segments: u64,
    /// Bytes read.
    pub bytes: u64,
    /// Valid records found.
    pub records: u64,
    /// Every damaged range, in topic, partition and offset order.
    pub damage: Vec<Damage>,
}

/// Progress of a running `verify`: bytes checked so far of the total.
#[derive(Debug, Clone, Copy)]
pub struct VerifyProgress {
    /// Bytes checked so far.
    pub done: u64,
    /// Bytes in all segments.
    pub total: u64,
}

/// Checks every segment under `dir` (a log directory: `dir/topics/...`),
/// calling `progress` after each segment.
pub fn verify(dir: &Path, mut progress: impl FnMut(VerifyProgress)) -> Result<VerifyReport> {
    let topics_dir = dir.join("topics");
    if !dir.join("meta").exists() {
        return Err(Error::Corrupt {
            path: dir.join("meta"),
            position: 0,
            reason: "not a log directory (no meta file)".into(),
        });
    }
    let mut partitions = Vec::new();
    for topic in sorted_dir(&topics_dir)? {
        let Some(name) = topic
            .file_name()
            .and_then(|n| n.to_str())
            .map(str::to_owned)
        else {
            continue;
        };
        if !topic.is_dir() {
            continue;
        }
        for part in sorted_dir(&topic)? {
            if let Some(id) = part
                .file_name()
                .and_then(|n| n.to_str()?.parse::<u32>().ok())
            {
                let mut segs: Vec<(u64, PathBuf)> = sorted_dir(&part)?
                    .into_iter()
                    .filter_map(|p| {
                        let base = parse_segment_file_name(p.file_name()?.to_str()?)?;
                        Some((base, p))
                    })
                    .collect();
                segs.sort();
                partitions.push((name.clone(), id, segs));
            }
        }
    }
    partitions.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
    let total = partitions
        .iter()
        .flat_map(|(_, _, s)| s)
        .map(|(_, p)| p.metadata().map_or(0, |m| m.len()))
        .sum();
    let mut report = VerifyReport::default();
    let mut buf = Vec::new();
    for (topic, partition, segs) in &partitions {
        report.partitions += 1;
        let mut expected: Option<u64> = None;
        for (base, path) in segs {
            if let Some(e) = expected
                && e != *base
            {
                report.damage.push(Damage {
                    topic: topic.clone(),
                    partition: *partition,
                    segment: path.clone(),
                    position: 0,
                    end: 0,
                    offset: e.min(*base),
                    resume: Some(*base),
                    reason: format!(
                        "segment starts at offset {base}, the previous one ends at {e}"
                    ),
                });
            }
            let file = File::open(path).map_err(Error::io("open segment", path))?;
            let len = file
                .metadata()
                .map_err(Error::io("stat segment", path))?
                .len();
            let at = SegmentAt {
                topic,
                partition: *partition,
                path,
                base: *base,
                len,
            };
            let (records, next) = check_segment(&file, &at, &mut buf, &mut report.damage)?;
            report.segments += 1;
            report.records += records;
            report.bytes += path.metadata().map_or(0, |m| m.len());
            expected = Some(next);
            progress(VerifyProgress {
                done: report.bytes,
                total,
            });
        }
    }
    Ok(report)
}

fn sorted_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut v: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(d) => d.filter_map(|e| Some(e.ok()?.path())).collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(Error::io("list", dir)(e)),
    };
    v.sort();
    Ok(v)
}

/// Which segment a check is of.
pub(crate) struct SegmentAt<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: u32,
    pub(crate) path: &'a Path,
    pub(crate) base: u64,
    /// Bytes to check.
    pub(crate) len: u64,
}

/// Scans one segment's first `at.len` bytes; returns its valid records and
/// the offset after its last readable record, adding damage to `damage`.
pub(crate) fn check_segment(
    file: &File,
    at: &SegmentAt<'_>,
    buf: &mut Vec<u8>,
    damage: &mut Vec<Damage>,
) -> Result<(u64, u64)> {
    let SegmentAt {
        topic,
        partition,
        path,
        base,
        len,
    } = *at;
    let (mut pos, mut next, mut records) = (0u64, base, 0u64);
    while pos < len {
        let mut stopped_at = None;
        let end = scan(file, path, pos, len, buf, |p, rec, _| {
            if rec.offset != next {
                stopped_at = Some((p, rec.offset));
                return ControlFlow::Break(());
            }
            next += 1;
            records += 1;
            ControlFlow::Continue(())
        })?;
        let (at, reason) = match end {
            ScanEnd::End => break,
            ScanEnd::Stopped(p) => {
                let found = stopped_at.map_or(next, |s| s.1);
                (
                    p,
                    format!("record with offset {found} where {next} was expected"),
                )
            }
            ScanEnd::Invalid { position, reason } => (position, reason.to_string()),
            ScanEnd::Truncated { position } => (position, "record truncated".to_owned()),
        };
        if all_zero(file, path, at, len, buf)? {
            break; // the preallocated tail of an active segment, or of a crash
        }
        let found = resync(file, path, at + 1, len, next..u64::MAX, buf)?;
        damage.push(Damage {
            topic: topic.to_owned(),
            partition,
            segment: path.to_owned(),
            position: at,
            end: found.map_or(len, |f| f.1),
            offset: next,
            resume: found.map(|f| f.0),
            reason,
        });
        match found {
            Some((offset, p)) => {
                next = offset;
                pos = p;
            }
            None => break,
        }
    }
    Ok((records, next))
}
