//! Raw capture and replay: every frame a venue sent, with the time it came
//! off the socket, written to disk (`mdhub run --record-raw DIR`), and played
//! back through the normal pipeline (`mdhub replay CAPTURE`).
//!
//! A capture is one file per venue and process start,
//! `DIR/<venue>-<YYYY-MM-DD>-<start ns>.capture.jsonl`, one JSON line per
//! frame, in the order the frames were read:
//!
//! ```json
//! {"ts":1764162000123456789,"venue":"binance","conn":0,"frame":"{\"stream\":\"btcusdt@trade\",…}"}
//! ```
//!
//! `ts` is the frame's `ts_received` (UTC ns), `conn` the connection it came
//! on (a venue with several connections keeps one decoder per connection, so
//! sequence checks replay as they ran), `frame` the frame's text exactly
//! (FIX's SOH separators appear as `\u0001`). Replaying a capture runs each
//! frame through the venue's decoder with the recorded `ts` as `ts_received`,
//! so the events are the ones the live run produced.
//!
//! Policy: the recorder's queue is bounded ([`QUEUE`] frames); when the disk
//! falls behind, feeds wait (the capture is complete or the process is slow,
//! never silently partial). A write error stops the capture with an error
//! logged and counted; the feeds go on.

use std::collections::HashMap;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mdhub_types::{Symbol, Timestamp, Venue, json::push_json_string};
use serde::Deserialize;
use tokio::sync::mpsc;

use crate::venues::{self, Frame, VenueDecoder};
use crate::{Feed, FeedContext, FeedError};

/// Frames the recorder holds before feeds wait.
pub const QUEUE: usize = 65_536;

/// Why a capture could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    /// A file or directory could not be created, written or read.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A line of a capture is not a capture record.
    #[error("{path}:{line}: not a capture record: {reason}")]
    BadLine {
        /// The file.
        path: PathBuf,
        /// 1-based line number.
        line: u64,
        /// Why.
        reason: String,
    },
    /// The capture names a venue mdhub has no decoder for.
    #[error("{path}: unknown venue {venue:?} (known: {known})")]
    UnknownVenue {
        /// The file.
        path: PathBuf,
        /// The venue named.
        venue: String,
        /// Venues with decoders.
        known: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> CaptureError + '_ {
    move |source| CaptureError::Io {
        path: path.to_path_buf(),
        source,
    }
}

struct RawFrame {
    venue: Venue,
    conn: u32,
    ts: Timestamp,
    frame: Vec<u8>,
}

/// Counters of a recorder.
#[derive(Debug, Default)]
pub struct CaptureStats {
    /// Frames written.
    pub frames: AtomicU64,
    /// Bytes written.
    pub bytes: AtomicU64,
    /// Write errors (each stops the capture).
    pub errors: AtomicU64,
}

/// The capture's writer thread; it returns the number of frames written.
pub type WriterTask = tokio::task::JoinHandle<Result<u64, CaptureError>>;

/// The sending side of a capture, shared by every feed of a process.
#[derive(Debug, Clone)]
pub struct Recorder {
    tx: mpsc::Sender<RawFrame>,
}

impl std::fmt::Debug for RawFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RawFrame")
            .field("venue", &self.venue)
            .field("conn", &self.conn)
            .finish_non_exhaustive()
    }
}

impl Recorder {
    /// Start recording into `dir` (created if missing). The writer task ends
    /// once every clone of the recorder is dropped and the queue is written;
    /// it returns the number of frames written.
    pub fn start(dir: &Path) -> Result<(Recorder, Arc<CaptureStats>, WriterTask), CaptureError> {
        std::fs::create_dir_all(dir).map_err(io_err(dir))?;
        let (tx, rx) = mpsc::channel(QUEUE);
        let stats = Arc::new(CaptureStats::default());
        let task = tokio::task::spawn_blocking({
            let dir = dir.to_path_buf();
            let stats = stats.clone();
            move || write_all(&dir, rx, &stats)
        });
        Ok((Recorder { tx }, stats, task))
    }

    /// Record one frame (waits while the queue is full). A stopped writer
    /// (after a write error) makes this a no-op.
    pub async fn record(&self, venue: &Venue, conn: u32, ts: Timestamp, frame: &[u8]) {
        let raw = RawFrame {
            venue: venue.clone(),
            conn,
            ts,
            frame: frame.to_vec(),
        };
        let _ = self.tx.send(raw).await;
    }
}

fn write_all(
    dir: &Path,
    mut rx: mpsc::Receiver<RawFrame>,
    stats: &CaptureStats,
) -> Result<u64, CaptureError> {
    let started = Timestamp::now();
    let mut files: HashMap<Venue, (PathBuf, std::io::BufWriter<std::fs::File>)> = HashMap::new();
    let mut line = Vec::with_capacity(1024);
    let mut written = 0u64;
    let result = (|| {
        while let Some(first) = rx.blocking_recv() {
            let mut next = Some(first);
            while let Some(f) = next {
                line.clear();
                line.extend_from_slice(b"{\"ts\":");
                line.extend_from_slice(f.ts.as_nanos().to_string().as_bytes());
                line.extend_from_slice(b",\"venue\":\"");
                line.extend_from_slice(f.venue.as_str().as_bytes());
                line.extend_from_slice(b"\",\"conn\":");
                line.extend_from_slice(f.conn.to_string().as_bytes());
                line.extend_from_slice(b",\"frame\":");
                push_json_string(&mut line, &String::from_utf8_lossy(&f.frame));
                line.extend_from_slice(b"}\n");
                let (path, w) = match files.get_mut(&f.venue) {
                    Some(e) => e,
                    None => {
                        let path = dir.join(format!(
                            "{}-{}-{}.capture.jsonl",
                            f.venue,
                            started.date_string(),
                            started.as_nanos()
                        ));
                        let file = std::fs::File::create(&path).map_err(io_err(&path))?;
                        tracing::info!(venue = %f.venue, path = %path.display(), "recording raw frames");
                        files
                            .entry(f.venue.clone())
                            .or_insert((path, std::io::BufWriter::with_capacity(1 << 20, file)))
                    }
                };
                w.write_all(&line).map_err(io_err(path))?;
                written += 1;
                stats.frames.fetch_add(1, Ordering::Relaxed);
                stats.bytes.fetch_add(line.len() as u64, Ordering::Relaxed);
                next = rx.try_recv().ok();
            }
            // Idle for now: what was read is on disk (the page cache).
            for (path, w) in files.values_mut() {
                w.flush().map_err(io_err(path))?;
            }
        }
        for (path, w) in files.values_mut() {
            w.flush().map_err(io_err(path))?;
            w.get_ref().sync_all().map_err(io_err(path))?;
        }
        Ok(written)
    })();
    if let Err(e) = &result {
        stats.errors.fetch_add(1, Ordering::Relaxed);
        tracing::error!(error = %e, "raw capture stopped");
    }
    result
}

#[derive(Deserialize)]
struct Line<'a> {
    ts: i64,
    #[serde(borrow)]
    venue: std::borrow::Cow<'a, str>,
    #[serde(default)]
    conn: u32,
    #[serde(borrow)]
    frame: std::borrow::Cow<'a, str>,
}

/// The capture files a path names: the file itself, or every
/// `*.capture.jsonl` in a directory (sorted by name).
pub fn capture_files(path: &Path) -> Result<Vec<PathBuf>, CaptureError> {
    if !path.is_dir() {
        std::fs::metadata(path).map_err(io_err(path))?;
        return Ok(vec![path.to_path_buf()]);
    }
    let mut out: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(io_err(path))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with(".capture.jsonl"))
        })
        .collect();
    out.sort();
    Ok(out)
}

/// The venue and symbols a capture file holds, read from its first line.
fn venue_of(path: &Path) -> Result<Venue, CaptureError> {
    let file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut first = String::new();
    std::io::BufReader::new(file)
        .read_line(&mut first)
        .map_err(io_err(path))?;
    let bad = |reason: String| CaptureError::BadLine {
        path: path.to_path_buf(),
        line: 1,
        reason,
    };
    let l: Line<'_> = serde_json::from_str(first.trim()).map_err(|e| bad(e.to_string()))?;
    if venues::decoder(&l.venue).is_none() {
        return Err(CaptureError::UnknownVenue {
            path: path.to_path_buf(),
            venue: l.venue.into_owned(),
            known: venues::registry::ids().collect::<Vec<_>>().join(", "),
        });
    }
    Venue::new(&l.venue).map_err(|e| bad(e.to_string()))
}

/// Reads a capture file frame by frame through its venue's decoders (one per
/// recorded connection), with each frame's recorded receipt time: what
/// [`ReplayFeed`] plays and `mdhub archive --backfill` imports.
pub struct CaptureReader {
    path: PathBuf,
    venue: Venue,
    reader: std::io::BufReader<std::fs::File>,
    decoders: HashMap<u32, Box<dyn VenueDecoder>>,
    text: String,
    /// Lines read so far.
    pub lines: u64,
    /// Bytes read so far (for progress).
    pub bytes: u64,
    /// Lines or frames dropped since this was last reset: not capture
    /// records, another venue's, or refused by the decoder (each logged).
    pub dropped: u64,
}

impl std::fmt::Debug for CaptureReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureReader")
            .field("path", &self.path)
            .field("venue", &self.venue)
            .field("lines", &self.lines)
            .field("dropped", &self.dropped)
            .finish_non_exhaustive()
    }
}

impl CaptureReader {
    /// Open a capture file (its first line names the venue).
    pub fn open(path: &Path) -> Result<CaptureReader, CaptureError> {
        let venue = venue_of(path)?;
        let file = std::fs::File::open(path).map_err(io_err(path))?;
        Ok(CaptureReader {
            path: path.to_path_buf(),
            venue,
            reader: std::io::BufReader::with_capacity(1 << 20, file),
            decoders: HashMap::new(),
            text: String::new(),
            lines: 0,
            bytes: 0,
            dropped: 0,
        })
    }

    /// The capture's venue.
    pub fn venue(&self) -> &Venue {
        &self.venue
    }

    /// Decode the next line's frame into `events`; its receipt time, or
    /// `None` at the end of the file. A line that cannot be used adds to
    /// [`CaptureReader::dropped`] and leaves `events` as it was.
    pub fn next_frame(
        &mut self,
        events: &mut Vec<mdhub_types::Event>,
    ) -> Result<Option<Timestamp>, CaptureError> {
        self.text.clear();
        let n = self
            .reader
            .read_line(&mut self.text)
            .map_err(io_err(&self.path))?;
        if n == 0 {
            return Ok(None);
        }
        self.lines += 1;
        self.bytes += n as u64;
        let line: Line<'_> = match serde_json::from_str(self.text.trim_end()) {
            Ok(l) => l,
            Err(e) => {
                self.dropped += 1;
                tracing::warn!(path = %self.path.display(), line = self.lines, error = %e, "not a capture record");
                return Ok(Some(Timestamp::EPOCH));
            }
        };
        let ts = Timestamp::from_nanos(line.ts);
        if line.venue != self.venue.as_str() {
            self.dropped += 1;
            tracing::warn!(path = %self.path.display(), line = self.lines, venue = %line.venue, "a frame of another venue");
            return Ok(Some(ts));
        }
        let decoder = match self.decoders.get_mut(&line.conn) {
            Some(d) => d,
            None => {
                let d = venues::decoder(self.venue.as_str()).ok_or_else(|| {
                    CaptureError::UnknownVenue {
                        path: self.path.clone(),
                        venue: self.venue.to_string(),
                        known: venues::registry::ids().collect::<Vec<_>>().join(", "),
                    }
                })?;
                self.decoders.entry(line.conn).or_insert(d)
            }
        };
        match decoder.decode(line.frame.as_bytes(), ts, events) {
            Ok(Frame::Refused(why)) => tracing::debug!(line = self.lines, %why, "refusal replayed"),
            Ok(_) => {}
            Err(e) => {
                self.dropped += 1;
                tracing::debug!(line = self.lines, error = %e, "frame dropped, as it was live");
            }
        }
        Ok(Some(ts))
    }
}

/// How fast a capture is played.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Speed {
    /// As fast as the pipeline takes it.
    Max,
    /// The recorded pace times this factor (`1.0` = as recorded).
    Times(f64),
}

/// A capture file played as a feed: each frame through its venue's decoder
/// (one per recorded connection) with the recorded receipt time.
#[derive(Debug)]
pub struct ReplayFeed {
    path: PathBuf,
    venue: Venue,
    speed: Speed,
}

impl ReplayFeed {
    /// A feed over one capture file (its first line names the venue).
    pub fn open(path: &Path, speed: Speed) -> Result<Self, CaptureError> {
        Ok(ReplayFeed {
            venue: venue_of(path)?,
            path: path.to_path_buf(),
            speed,
        })
    }
}

#[async_trait::async_trait]
impl Feed for ReplayFeed {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn symbols(&self) -> Vec<Symbol> {
        Vec::new()
    }

    /// Plays the file once and returns (or returns early at shutdown).
    /// Lines that are not capture records and frames the decoder refuses are
    /// counted as drops and logged; replay goes on.
    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        let venue_err = |message: String| FeedError::Config {
            venue: self.venue.to_string(),
            message,
        };
        let mut reader = CaptureReader::open(&self.path).map_err(|e| venue_err(e.to_string()))?;
        let mut events = Vec::with_capacity(8);
        let mut first: Option<(Timestamp, tokio::time::Instant)> = None;
        loop {
            if ctx.shutdown.is_cancelled() {
                return Ok(());
            }
            events.clear();
            let ts = match reader.next_frame(&mut events) {
                Ok(Some(ts)) => ts,
                Ok(None) => break,
                Err(e) => return Err(venue_err(e.to_string())),
            };
            for _ in 0..std::mem::take(&mut reader.dropped) {
                ctx.status.record_drop();
            }
            if let Speed::Times(x) = self.speed {
                let (t0, at0) = *first.get_or_insert((ts, tokio::time::Instant::now()));
                let since = (ts.as_nanos() - t0.as_nanos()).max(0) as f64 / x.max(1e-9);
                let due = at0 + Duration::from_nanos(since as u64);
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep_until(due) => {}
                }
            }
            for e in events.drain(..) {
                ctx.send(e).await?;
            }
        }
        let n = reader.lines;
        tracing::info!(path = %self.path.display(), lines = n, "capture replayed");
        Ok(())
    }
}
