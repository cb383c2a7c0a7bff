//! The archiver: the log's price topics → the lake, exactly once.
//!
//! The archiver is a [`GroupSink`] on the one consumer driver
//! ([`mdhub_pipeline::drive`]): it reads `price-trades` and `price-quotes`
//! as consumer group [`GROUP`], keeps what it reads in memory (the [`HotTier`], which queries
//! see at once), and every `flush_interval` — or when `max_buffered_rows`
//! are held — writes it out as Parquet files, one per table, UTC date,
//! symbol and log partition, and only then commits the group's offsets.
//!
//! Why nothing is lost or written twice:
//! - offsets are committed only after every file of a flush is durable
//!   ([`Lake::put`]), so a crash replays records, never skips them;
//! - the rows of one table, date, symbol and partition are written in log
//!   order, so the lake always holds a *prefix* of each such group, and its
//!   highest offset ([`Lake::watermark`], read from the file names) says which
//!   replayed rows are already there: a flush drops rows at or below it;
//! - a file's name is a function of its rows' log positions, so the rows a
//!   flush keeps never collide with an existing file.
//!
//! While the lake is unreachable the archiver retries the same flush with
//! capped backoff and reads nothing more: memory stays bounded by
//! `max_buffered_rows` (plus one read batch) and the log is the buffer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use futures_util::StreamExt;
use mdhub_bus::Bus;
use mdhub_pipeline::{
    ConsumerStats, DriveError, DriverConfig, GroupSink, SinkError, StageCtx, StageHealth, drive,
};
use mdhub_types::{Positioned, Symbol};
use parking_lot::RwLock;
use tokio_util::sync::CancellationToken;

use crate::encode::record_batch_unsorted;
use crate::path::day_of;
use crate::{FileKey, HistoryError, Lake, Result, TableKind, encode_parquet};

/// The consumer group's name (before the Kafka prefix).
pub const GROUP: &str = "mdhub-archive";

/// How the archiver batches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArchiveConfig {
    /// Write the buffered rows out at least this often. Longer intervals make
    /// fewer, larger files; rows are queryable from the hot tier meanwhile.
    pub flush_interval: Duration,
    /// Write out as soon as this many rows are buffered (bounds memory).
    pub max_buffered_rows: usize,
    /// Records read from the log per batch.
    pub read_batch: usize,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            flush_interval: Duration::from_secs(60),
            max_buffered_rows: 1_000_000,
            read_batch: 10_000,
        }
    }
}

/// Counters of the archiver.
#[derive(Debug, Default)]
pub struct ArchiveStats {
    /// Rows written to the lake.
    pub rows_written: AtomicU64,
    /// Files written.
    pub files_written: AtomicU64,
    /// Bytes written.
    pub bytes_written: AtomicU64,
    /// Flushes that completed (offsets committed after each).
    pub flushes: AtomicU64,
    /// Rows read again after a restart that the lake already held (dropped).
    pub rows_already_archived: AtomicU64,
    /// Rows buffered now (the hot tier's size).
    pub buffered: AtomicU64,
}

/// Rows read from the log but not yet in the lake, per table, in the batches
/// they were read in. Shared between the archiver, which appends and clears,
/// and queries, which see them in the lake's Arrow schema: each batch is
/// converted once, by the first query that needs it, so reading from the log
/// costs no conversion and memory holds the rows once (plus the Arrow copy
/// of batches that have been queried).
#[derive(Debug, Default)]
pub struct HotTier {
    tables: RwLock<[Vec<Arc<Chunk>>; 2]>,
}

/// One batch of rows and, once a query asked, its Arrow form.
#[derive(Debug)]
struct Chunk {
    rows: Vec<Positioned>,
    arrow: std::sync::OnceLock<RecordBatch>,
}

impl HotTier {
    /// An empty hot tier.
    pub fn new() -> Arc<HotTier> {
        Arc::new(HotTier::default())
    }

    /// The rows of `table` held now, as Arrow batches in the lake's schema.
    pub fn snapshot(&self, table: TableKind) -> Result<Vec<RecordBatch>> {
        let chunks = self.tables.read()[idx(table)].clone();
        let mut out = Vec::with_capacity(chunks.len());
        for c in chunks {
            let batch = match c.arrow.get() {
                Some(b) => b.clone(),
                None => {
                    let b = record_batch_unsorted(table, &c.rows)?;
                    let _ = c.arrow.set(b.clone());
                    b
                }
            };
            out.push(batch);
        }
        Ok(out)
    }

    /// Rows held now, both tables.
    pub fn rows(&self) -> usize {
        self.tables
            .read()
            .iter()
            .flatten()
            .map(|c| c.rows.len())
            .sum()
    }

    /// Call `f` on every row of `table` held now (no copy, no conversion).
    pub(crate) fn for_each(&self, table: TableKind, mut f: impl FnMut(&Positioned)) {
        for c in self.chunks(table) {
            c.rows.iter().for_each(&mut f);
        }
    }

    fn chunks(&self, table: TableKind) -> Vec<Arc<Chunk>> {
        self.tables.read()[idx(table)].clone()
    }

    fn push(&self, table: TableKind, rows: Vec<Positioned>) {
        if !rows.is_empty() {
            self.tables.write()[idx(table)].push(Arc::new(Chunk {
                rows,
                arrow: std::sync::OnceLock::new(),
            }));
        }
    }

    fn clear(&self) {
        *self.tables.write() = Default::default();
    }
}

fn idx(t: TableKind) -> usize {
    match t {
        TableKind::Trades => 0,
        TableKind::Quotes => 1,
    }
}

/// What one flush did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FlushReport {
    /// Files written.
    pub files: usize,
    /// Rows written.
    pub rows: usize,
    /// Bytes written.
    pub bytes: usize,
    /// Rows dropped because the lake already held them.
    pub already_archived: usize,
}

/// Buffers rows and writes them to the lake ([`Archiver::flush`]).
#[derive(Debug)]
pub struct Archiver {
    lake: Lake,
    cfg: ArchiveConfig,
    since: Option<Instant>,
    hot: Arc<HotTier>,
    stats: Arc<ArchiveStats>,
}

impl Archiver {
    /// An archiver writing to `lake`, buffering into `hot` (emptied first).
    pub fn new(
        lake: Lake,
        cfg: ArchiveConfig,
        hot: Arc<HotTier>,
        stats: Arc<ArchiveStats>,
    ) -> Archiver {
        // What the hot tier held belongs to an earlier run, whose records
        // are read again from the group's commits.
        hot.clear();
        stats.buffered.store(0, Ordering::Relaxed);
        Archiver {
            lake,
            cfg,
            since: None,
            hot,
            stats,
        }
    }

    /// Buffer rows read from the log. Feed-status events are not lake rows
    /// and are ignored.
    pub fn push(&mut self, rows: Vec<Positioned>) -> Result<()> {
        let mut by_table: [Vec<Positioned>; 2] = Default::default();
        for r in rows {
            if let Some(t) = mdhub_types_table(&r) {
                by_table[idx(t)].push(r);
            }
        }
        for t in TableKind::ALL {
            let rows = std::mem::take(&mut by_table[idx(t)]);
            if rows.is_empty() {
                continue;
            }
            self.hot.push(t, rows);
            self.since.get_or_insert_with(Instant::now);
        }
        self.stats
            .buffered
            .store(self.buffered() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Rows buffered.
    pub fn buffered(&self) -> usize {
        self.hot.rows()
    }

    /// Whether the buffer should be written now (full, or older than the
    /// flush interval).
    pub fn due(&self) -> bool {
        self.buffered() >= self.cfg.max_buffered_rows
            || self
                .since
                .is_some_and(|t| t.elapsed() >= self.cfg.flush_interval)
    }

    /// Write every buffered row that the lake does not hold yet, durably.
    /// On success the buffer (and the hot tier) is empty; on an error nothing
    /// is dropped and the same flush can be tried again — the files it wrote
    /// before failing are then found by their watermarks and not written twice.
    pub async fn flush(&mut self) -> Result<FlushReport> {
        let mut report = FlushReport::default();
        for table in TableKind::ALL {
            // On an error the rows stay held; a retry finds the files this
            // attempt wrote by their watermarks.
            let r = self
                .flush_table(table, Arc::new(self.hot.chunks(table)))
                .await?;
            report.files += r.files;
            report.rows += r.rows;
            report.bytes += r.bytes;
            report.already_archived += r.already_archived;
        }
        self.hot.clear();
        self.since = None;
        self.stats.buffered.store(0, Ordering::Relaxed);
        self.stats.flushes.fetch_add(1, Ordering::Relaxed);
        Ok(report)
    }

    async fn flush_table(
        &self,
        table: TableKind,
        chunks: Arc<Vec<Arc<Chunk>>>,
    ) -> Result<FlushReport> {
        let mut report = FlushReport::default();
        if chunks.is_empty() {
            return Ok(report);
        }
        let row = |(c, r): (usize, usize)| &chunks[c].rows[r];
        // Group rows (chunk, index) by (day, symbol, partition), in log order.
        let mut groups: BTreeMap<(i64, Symbol, u32), Vec<(usize, usize)>> = BTreeMap::new();
        for (c, chunk) in chunks.iter().enumerate() {
            for (i, r) in chunk.rows.iter().enumerate() {
                groups
                    .entry((
                        day_of(r.event.ts_exchange()),
                        r.event.symbol().clone(),
                        r.position.partition,
                    ))
                    .or_default()
                    .push((c, i));
            }
        }
        // One listing per (day, symbol): its files of every partition.
        let dirs: BTreeSet<(i64, Symbol)> =
            groups.keys().map(|(d, s, _)| (*d, s.clone())).collect();
        let mut marks: BTreeMap<(i64, Symbol, u32), u64> = BTreeMap::new();
        for (day, symbol) in dirs {
            let files = self
                .lake
                .files(
                    table,
                    &crate::FileFilter {
                        symbol: Some(symbol.clone()),
                        days: Some(day..=day),
                    },
                )
                .await?;
            for f in files {
                let m = marks
                    .entry((day, symbol.clone(), f.key.partition))
                    .or_insert(f.key.last_offset);
                *m = (*m).max(f.key.last_offset);
            }
        }
        // The files to write: each group's rows above its watermark.
        let mut jobs = Vec::new();
        for (key, idxs) in groups {
            let mark = marks.get(&key).copied();
            let total = idxs.len();
            let keep: Vec<(usize, usize)> = idxs
                .into_iter()
                .filter(|&i| mark.is_none_or(|m| row(i).position.offset > m))
                .collect();
            report.already_archived += total - keep.len();
            if keep.is_empty() {
                continue;
            }
            let (first, last) = keep.iter().fold(
                (row(keep[0]).position, row(keep[0]).position),
                |(a, b), &i| (a.min(row(i).position), b.max(row(i).position)),
            );
            let file_key = FileKey::new(
                table,
                row(keep[0]).event.ts_exchange(),
                key.1.clone(),
                first,
                last,
            )?;
            jobs.push((file_key, keep));
        }
        // Encode (CPU) and put (I/O) several files at once: one per core.
        let parallel = std::thread::available_parallelism().map_or(2, |n| n.get());
        let mut done = futures_util::stream::iter(jobs.into_iter().map(|(file_key, keep)| {
            let chunks = chunks.clone();
            async move {
                let n = keep.len();
                let bytes = tokio::task::spawn_blocking(move || {
                    let refs: Vec<&Positioned> =
                        keep.iter().map(|&(c, i)| &chunks[c].rows[i]).collect();
                    encode_parquet(table, &refs)
                })
                .await
                .map_err(|e| HistoryError::Io {
                    path: "<encoder>".into(),
                    source: std::io::Error::other(e),
                })??;
                let len = bytes.len();
                self.lake.put(&file_key.path(), bytes).await?;
                Ok::<_, HistoryError>((n, len))
            }
        }))
        .buffer_unordered(parallel);
        while let Some(r) = done.next().await {
            let (n, len) = r?;
            report.files += 1;
            report.rows += n;
            report.bytes += len;
            self.stats.files_written.fetch_add(1, Ordering::Relaxed);
            self.stats
                .rows_written
                .fetch_add(n as u64, Ordering::Relaxed);
            self.stats
                .bytes_written
                .fetch_add(len as u64, Ordering::Relaxed);
        }
        self.stats
            .rows_already_archived
            .fetch_add(report.already_archived as u64, Ordering::Relaxed);
        Ok(report)
    }
}

fn mdhub_types_table(r: &Positioned) -> Option<TableKind> {
    TableKind::of(&r.event).filter(|t| t.topic() == r.position.topic)
}

/// The archiver is a group consumer on the one driver
/// ([`mdhub_pipeline::drive`]): it buffers what it reads, is due when
/// [`Archiver::due`], and persisting is a flush. A flush error that may
/// succeed later (the lake unreachable) is retried in place; any other is
/// fatal to the run (the supervisor starts it again from the group's
/// commits).
#[async_trait::async_trait]
impl GroupSink for Archiver {
    fn group(&self) -> &'static str {
        GROUP
    }

    fn push(&mut self, records: Vec<Positioned>) -> std::result::Result<(), SinkError> {
        Archiver::push(self, records).map_err(SinkError::fatal)
    }

    fn due(&self) -> bool {
        Archiver::due(self)
    }

    async fn persist(&mut self) -> std::result::Result<(), SinkError> {
        match self.flush().await {
            Ok(r) => {
                tracing::debug!(
                    files = r.files,
                    rows = r.rows,
                    bytes = r.bytes,
                    already = r.already_archived,
                    "archiver flushed"
                );
                Ok(())
            }
            Err(e) if e.is_retryable() => Err(SinkError::retry(e)),
            Err(e) => Err(SinkError::fatal(e)),
        }
    }

    fn pending(&self) -> usize {
        self.buffered()
    }
}

impl Archiver {
    /// How the driver should read for this archiver (its `read_batch`).
    pub fn driver_config(&self) -> DriverConfig {
        DriverConfig {
            batch: self.cfg.read_batch,
            ..DriverConfig::default()
        }
    }
}

/// Run an archiver on the driver until `stop`, outside a supervisor (tools
/// and tests; `mdhub run` and `mdhub archive` run it as a stage).
pub async fn run(
    bus: Arc<dyn Bus>,
    archiver: Archiver,
    stop: CancellationToken,
) -> std::result::Result<(), DriveError> {
    let cfg = archiver.driver_config();
    let ctx = StageCtx {
        stop,
        health: StageHealth::detached(GROUP),
    };
    drive(bus, archiver, &cfg, &ConsumerStats::new(GROUP), &ctx).await
}
