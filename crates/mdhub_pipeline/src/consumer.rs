//! One driver for every log consumer group that writes batches somewhere:
//! the cache writer (Redis), the archiver (the lake) and the PostgreSQL
//! writer are [`GroupSink`]s; [`drive`] owns everything else.
//!
//! ## What [`drive`] does, for every sink
//!
//! 1. Subscribes the sink's group to the price topics (a new group starts at
//!    the oldest record held).
//! 2. Reads batches of up to [`DriverConfig::batch`] records, decodes them
//!    (in parallel for large batches) and counts the records that do not
//!    decode (skipped, logged, `undecodable`). Records the log cannot read
//!    because its copy is damaged are skipped too, logged as errors and
//!    counted (`damaged`): the sink's target has a hole there, and says so.
//! 3. Hands the records to [`GroupSink::push`]; when the sink is
//!    [`GroupSink::due`] it calls [`GroupSink::persist`]. A retryable failure
//!    is retried with the one shared backoff ([`mdhub_types::Backoff`]:
//!    capped, full jitter, reset once a write succeeds), reading nothing more
//!    meanwhile — memory stays bounded and the log is the buffer; the stage
//!    is reported as retrying. A fatal failure ends the run with an error
//!    (the supervisor restarts it; the group resumes from its commits).
//! 4. Commits the group's offsets only when the sink holds nothing that is
//!    not yet durable ([`GroupSink::pending`] is 0): a crash replays records,
//!    never skips them. Every sink absorbs a replay (each is idempotent by
//!    log position).
//! 5. On stop, reads on towards the log's end for at most
//!    [`DriverConfig::drain`] (the stages that publish have stopped by then),
//!    persists once more and commits; if that persist fails nothing is
//!    committed and the next start reads those records again.
//! 6. Keeps the group's committed offsets in [`ConsumerStats`], from which
//!    [`measure_lag`] (run apart, so a stuck consumer still shows) computes
//!    the lag: log end minus committed offset, per partition.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use mdhub_bus::{Bus, Delivery, ReadMarks, Subscription};
use mdhub_types::{Backoff, CodecError, Position, Positioned, Topic};
use parking_lot::Mutex;

use crate::supervisor::{BoxError, StageCtx};

/// Why a sink could not take or persist records.
#[derive(Debug)]
pub enum SinkError {
    /// May succeed later (the target is unreachable): the driver retries the
    /// same persist after a backoff.
    Retry(BoxError),
    /// Retrying will not help (bad data, bad configuration): the run ends
    /// with this error.
    Fatal(BoxError),
}

impl fmt::Display for SinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SinkError::Retry(e) | SinkError::Fatal(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for SinkError {}

impl SinkError {
    /// A retryable error.
    pub fn retry(e: impl Into<BoxError>) -> Self {
        SinkError::Retry(e.into())
    }

    /// A fatal error.
    pub fn fatal(e: impl Into<BoxError>) -> Self {
        SinkError::Fatal(e.into())
    }
}

/// A consumer group that writes the log's price records somewhere.
///
/// Contract (what [`drive`] relies on):
/// - `push` takes decoded records in log order per partition and only
///   buffers them (no I/O that can fail for a while); an error is fatal.
/// - `persist` makes everything pushed so far durable in the target. After a
///   `Retry` error it is called again with nothing new pushed in between, so
///   it must keep what it has not written. After it returns `Ok`, `pending`
///   is 0.
/// - Records may be pushed again after a restart (from the last commit):
///   writing a record twice must leave the target as writing it once.
#[async_trait::async_trait]
pub trait GroupSink: Send {
    /// The consumer group's name (before the Kafka prefix), e.g. `mdhub-cache`.
    fn group(&self) -> &'static str;
    /// Buffer decoded records.
    fn push(&mut self, records: Vec<Positioned>) -> Result<(), SinkError>;
    /// Whether `persist` should run now. Buffering sinks wait for their
    /// interval or size; the default persists every batch.
    fn due(&self) -> bool {
        self.pending() > 0
    }
    /// Make every pushed record durable.
    async fn persist(&mut self) -> Result<(), SinkError>;
    /// Records pushed and not yet durable.
    fn pending(&self) -> usize;
}

/// How [`drive`] reads.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Records per read.
    pub batch: usize,
    /// How long a read waits for the first record (also how often a
    /// buffering sink is asked whether it is due).
    pub tick: Duration,
    /// How long a stopping consumer reads on towards the log's end.
    pub drain: Duration,
    /// Backoff of a failing persist: first ceiling.
    pub retry_base: Duration,
    /// Backoff of a failing persist: largest ceiling.
    pub retry_cap: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            batch: 10_000,
            tick: Duration::from_millis(200),
            drain: Duration::from_secs(5),
            retry_base: Duration::from_millis(200),
            retry_cap: Duration::from_secs(10),
        }
    }
}

/// The counters every group consumer has, declared once.
#[derive(Debug)]
pub struct ConsumerStats {
    group: &'static str,
    /// Records read from the log.
    pub records: AtomicU64,
    /// Records that did not decode (skipped, counted).
    pub undecodable: AtomicU64,
    /// Records the log could not read (damaged on disk; skipped, counted).
    pub damaged: AtomicU64,
    /// Successful persists.
    pub persists: AtomicU64,
    /// Records the sink made durable (what it held when a persist succeeded).
    pub persisted: AtomicU64,
    /// Failed persists (each retried, or ending the run when fatal).
    pub errors: AtomicU64,
    /// Offset commits.
    pub commits: AtomicU64,
    committed: Mutex<BTreeMap<(Topic, u32), u64>>,
    lag: Mutex<BTreeMap<(Topic, u32), u64>>,
}

impl ConsumerStats {
    /// Counters for `group`.
    pub fn new(group: &'static str) -> Arc<ConsumerStats> {
        Arc::new(ConsumerStats {
            group,
            records: AtomicU64::new(0),
            undecodable: AtomicU64::new(0),
            damaged: AtomicU64::new(0),
            persists: AtomicU64::new(0),
            persisted: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            commits: AtomicU64::new(0),
            committed: Mutex::new(BTreeMap::new()),
            lag: Mutex::new(BTreeMap::new()),
        })
    }

    /// The group's name.
    pub fn group(&self) -> &'static str {
        self.group
    }

    /// The next offset the group will read after a restart (one past its
    /// last commit), per `(topic, partition)`, as far as this process knows.
    pub fn committed(&self) -> BTreeMap<(Topic, u32), u64> {
        self.committed.lock().clone()
    }

    /// Records the log holds past the group's committed offset, per
    /// `(topic, partition)`, as last measured by [`measure_lag`].
    pub fn lag(&self) -> BTreeMap<(Topic, u32), u64> {
        self.lag.lock().clone()
    }

    /// The sum of [`ConsumerStats::lag`].
    pub fn total_lag(&self) -> u64 {
        self.lag.lock().values().sum()
    }
}

/// Why [`drive`] ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum DriveError {
    /// The log failed.
    #[error("log: {0}")]
    Bus(#[from] mdhub_bus::Error),
    /// The sink failed in a way retrying cannot fix.
    #[error("{group}: {error}")]
    Sink {
        /// The group.
        group: &'static str,
        /// The sink's error.
        error: BoxError,
    },
}

/// A batch, or `None` after damage in the log that the subscription has
/// stepped past (logged, counted); other errors end the run.
fn skip_damage(
    batch: mdhub_bus::Result<Vec<Delivery>>,
    group: &str,
    stats: &ConsumerStats,
) -> Result<Option<Vec<Delivery>>, DriveError> {
    match batch {
        Ok(b) => Ok(Some(b)),
        Err(mdhub_bus::Error::Damaged {
            topic,
            partition,
            from,
            resume,
        }) => {
            stats.damaged.fetch_add(resume - from, Ordering::Relaxed);
            tracing::error!(group, %topic, partition, from, resume,
                "log records are damaged on disk and were skipped: the target misses them (`mdhub log verify`)");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Run `sink` as a consumer group until `ctx.stop` (see the module docs).
pub async fn drive<S: GroupSink>(
    bus: Arc<dyn Bus>,
    mut sink: S,
    cfg: &DriverConfig,
    stats: &ConsumerStats,
    ctx: &StageCtx,
) -> Result<(), DriveError> {
    let group = sink.group();
    let mut sub = mdhub_bus::subscribe_prices(&*bus, group).await?;
    // Where a group starts reading is where it last committed.
    *stats.committed.lock() = position_map(&sub.positions());
    let mut read = ReadMarks::default();
    let mut backoff = Backoff::new(cfg.retry_base, cfg.retry_cap);
    loop {
        let batch = tokio::select! {
            _ = ctx.stop.cancelled() => break,
            b = sub.next_batch(cfg.batch, cfg.tick) => b,
        };
        let Some(batch) = skip_damage(batch, group, stats)? else {
            continue;
        };
        take(&mut sink, batch, &mut read, stats).await?;
        if sink.due() && !persist_retrying(&mut sink, &mut backoff, stats, ctx).await? {
            return Ok(()); // stopped while the target was down: nothing committed
        }
        commit_if_durable((sink.pending(), sink.group()), &mut read, &mut *sub, stats).await;
        // Partitions a broker assigned after the subscription started.
        {
            let mut committed = stats.committed.lock();
            for p in sub.positions() {
                committed.entry((p.topic, p.partition)).or_insert(p.offset);
            }
        }
    }
    // The stages that publish stop before this one: read on to the log's end
    // (bounded, for a log that other processes keep writing) so that a clean
    // shutdown leaves the target complete.
    let deadline = Instant::now() + cfg.drain;
    while Instant::now() < deadline {
        let batch = sub.next_batch(cfg.batch, Duration::from_millis(100)).await;
        let Some(batch) = skip_damage(batch, group, stats)? else {
            continue;
        };
        if batch.is_empty() {
            break;
        }
        take(&mut sink, batch, &mut read, stats).await?;
    }
    if sink.pending() > 0 || !read.is_empty() {
        let n = sink.pending() as u64;
        match sink.persist().await {
            Ok(()) => {
                stats.persists.fetch_add(1, Ordering::Relaxed);
                stats.persisted.fetch_add(n, Ordering::Relaxed);
                commit_if_durable((sink.pending(), sink.group()), &mut read, &mut *sub, stats)
                    .await;
            }
            Err(e) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(group, error = %e, pending = sink.pending(),
                    "could not persist at shutdown; the next start reads these records again");
            }
        }
    }
    Ok(())
}

async fn take<S: GroupSink>(
    sink: &mut S,
    batch: Vec<Delivery>,
    read: &mut ReadMarks,
    stats: &ConsumerStats,
) -> Result<(), DriveError> {
    if batch.is_empty() {
        return Ok(());
    }
    stats
        .records
        .fetch_add(batch.len() as u64, Ordering::Relaxed);
    for d in &batch {
        read.note(d.position);
    }
    let mut rows = Vec::with_capacity(batch.len());
    for part in decode_parallel(batch).await {
        match part {
            Ok(e) => rows.push(e),
            Err((p, e)) => {
                stats.undecodable.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(group = sink.group(), error = %e, position = %p,
                    "skipping a record that does not decode");
            }
        }
    }
    sink.push(rows).map_err(|e| DriveError::Sink {
        group: sink.group(),
        error: e.into_inner(),
    })
}

impl SinkError {
    fn into_inner(self) -> BoxError {
        match self {
            SinkError::Retry(e) | SinkError::Fatal(e) => e,
        }
    }
}

/// Persist, retrying what may succeed later; `false` when stopped first.
async fn persist_retrying<S: GroupSink>(
    sink: &mut S,
    backoff: &mut Backoff,
    stats: &ConsumerStats,
    ctx: &StageCtx,
) -> Result<bool, DriveError> {
    loop {
        let n = sink.pending() as u64;
        match sink.persist().await {
            Ok(()) => {
                stats.persists.fetch_add(1, Ordering::Relaxed);
                stats.persisted.fetch_add(n, Ordering::Relaxed);
                backoff.reset();
                ctx.health.recovered();
                return Ok(true);
            }
            Err(SinkError::Retry(e)) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                ctx.health.retrying(&e);
                let wait = backoff.next_delay();
                tracing::warn!(group = sink.group(), error = %e, retry_in_ms = wait.as_millis() as u64,
                    pending = sink.pending(), "write failed; retrying (the log keeps the records)");
                tokio::select! {
                    _ = ctx.stop.cancelled() => return Ok(false),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Err(SinkError::Fatal(e)) => {
                stats.errors.fetch_add(1, Ordering::Relaxed);
                return Err(DriveError::Sink {
                    group: sink.group(),
                    error: e,
                });
            }
        }
    }
}

async fn commit_if_durable(
    (pending, group): (usize, &'static str),
    read: &mut ReadMarks,
    sub: &mut dyn Subscription,
    stats: &ConsumerStats,
) {
    if pending > 0 || read.is_empty() {
        return;
    }
    let marks = read.clone();
    read.commit(sub, group).await;
    if read.is_empty() {
        stats.commits.fetch_add(1, Ordering::Relaxed);
        let mut committed = stats.committed.lock();
        for p in marks.positions() {
            committed.insert((p.topic, p.partition), p.offset + 1);
        }
    }
}

fn position_map(positions: &[Position]) -> BTreeMap<(Topic, u32), u64> {
    positions
        .iter()
        .map(|p| ((p.topic, p.partition), p.offset))
        .collect()
}

/// Measure every consumer's lag once: for each partition the group has
/// read, the log's end minus the group's committed offset. Run apart from
/// the consumers (every second, by a stage of its own), so a consumer that
/// is stuck — its target hangs, it waits on a lock — shows a rising lag.
pub async fn measure_lag(bus: &dyn Bus, consumers: &[Arc<ConsumerStats>]) {
    let mut ends = BTreeMap::new();
    for topic in Topic::PRICES {
        for partition in 0..bus.partitions(topic) {
            if let Ok(w) = bus.watermarks(topic, partition).await {
                ends.insert((topic, partition), w);
            }
        }
    }
    for c in consumers {
        let committed = c.committed();
        let lag = committed
            .iter()
            .filter_map(|(k, &next)| {
                let &(start, end) = ends.get(k)?;
                Some((*k, end.saturating_sub(next.max(start))))
            })
            .collect();
        *c.lag.lock() = lag;
    }
}

type Decoded = Result<Positioned, (Position, CodecError)>;

/// Decode records in order, on up to one blocking thread per core for large
/// batches: decoding is most of a consumer's CPU between writes.
async fn decode_parallel(batch: Vec<Delivery>) -> Vec<Decoded> {
    let decode = |part: Vec<Delivery>| -> Vec<Decoded> {
        part.iter()
            .map(|d| d.positioned().map_err(|e| (d.position, e)))
            .collect()
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    if batch.len() < 1024 || cores == 1 {
        return decode(batch);
    }
    let per = batch.len().div_ceil(cores);
    let mut parts = Vec::with_capacity(cores);
    let mut rest = batch;
    while rest.len() > per {
        let tail = rest.split_off(per);
        parts.push(rest);
        rest = tail;
    }
    parts.push(rest);
    let tasks: Vec<_> = parts
        .into_iter()
        .map(|p| tokio::task::spawn_blocking(move || decode(p)))
        .collect();
    let mut out = Vec::new();
    for t in tasks {
        match t.await {
            Ok(v) => out.extend(v),
            // A panic in a decoder is a bug; the records stay uncommitted.
            Err(e) => std::panic::resume_unwind(e.into_panic()),
        }
    }
    out
}
