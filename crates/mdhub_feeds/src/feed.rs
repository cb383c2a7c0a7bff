//! The connector interface every venue (real or simulated) implements.

use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mdhub_types::{Event, Symbol, Timestamp, Venue};
use parking_lot::Mutex;
use serde::Serialize;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Why a feed stopped or could not start.
#[derive(Debug, thiserror::Error)]
pub enum FeedError {
    /// The configuration of this feed is wrong (names the key and the problem).
    #[error("feed {venue}: bad configuration: {message}")]
    Config {
        /// The venue.
        venue: String,
        /// What is wrong.
        message: String,
    },
    /// The downstream channel was closed: the pipeline is shutting down.
    #[error("feed {venue}: the pipeline stopped accepting events")]
    PipelineClosed {
        /// The venue.
        venue: String,
    },
}

impl FeedError {
    /// Whether running the feed again may succeed.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Connection state of a feed, as shown in `/v1/status` and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedState {
    /// Not started, or connecting.
    Connecting,
    /// Connected and subscribed; events flow.
    Live,
    /// Disconnected; waiting for the next reconnect attempt.
    Backoff,
    /// Stopped for good (shutdown or a fatal error).
    Stopped,
}

/// Live counters of one feed, shared between the feed and whoever reports on it.
#[derive(Debug)]
pub struct FeedStatus {
    venue: Venue,
    state: Mutex<FeedState>,
    events: AtomicU64,
    dropped: AtomicU64,
    reconnects: AtomicU64,
    gaps: AtomicU64,
    last_event_ns: AtomicU64,
}

/// A point-in-time copy of [`FeedStatus`].
#[derive(Debug, Clone, Serialize)]
pub struct FeedStatusSnapshot {
    /// The venue.
    pub venue: Venue,
    /// Connection state.
    pub state: FeedState,
    /// Events sent downstream since start.
    pub events: u64,
    /// Messages dropped as invalid (counted and logged, never fatal).
    pub dropped: u64,
    /// Reconnections since start.
    pub reconnects: u64,
    /// Gaps detected in the venue's stream (missed trades or sequence numbers).
    pub gaps: u64,
    /// `ts_received` of the newest event, if any.
    pub last_event: Option<Timestamp>,
}

impl FeedStatus {
    /// A fresh status in [`FeedState::Connecting`].
    pub fn new(venue: Venue) -> Arc<Self> {
        Arc::new(FeedStatus {
            venue,
            state: Mutex::new(FeedState::Connecting),
            events: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            gaps: AtomicU64::new(0),
            last_event_ns: AtomicU64::new(0),
        })
    }
    /// Set the connection state.
    pub fn set_state(&self, s: FeedState) {
        *self.state.lock() = s;
    }
    /// Count one event sent downstream.
    pub fn record_event(&self, ts_received: Timestamp) {
        self.events.fetch_add(1, Ordering::Relaxed);
        self.last_event_ns
            .store(ts_received.as_nanos().max(0) as u64, Ordering::Relaxed);
    }
    /// Count one dropped (invalid) message.
    pub fn record_drop(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
    }
    /// Count one reconnection.
    pub fn record_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }
    /// Count one gap in the venue's stream.
    pub fn record_gap(&self) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
    }
    /// A copy of the counters.
    pub fn snapshot(&self) -> FeedStatusSnapshot {
        let last = self.last_event_ns.load(Ordering::Relaxed);
        FeedStatusSnapshot {
            venue: self.venue.clone(),
            state: *self.state.lock(),
            events: self.events.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            reconnects: self.reconnects.load(Ordering::Relaxed),
            gaps: self.gaps.load(Ordering::Relaxed),
            last_event: (last > 0).then(|| Timestamp::from_nanos(last as i64)),
        }
    }
}

/// What a running feed is given.
#[derive(Debug, Clone)]
pub struct FeedContext {
    /// Where normalized events go. Bounded: when the pipeline is behind,
    /// `send().await` waits (backpressure reaches the venue connection; a real
    /// connector keeps reading its socket and counts what it cannot hand on).
    pub out: mpsc::Sender<Event>,
    /// Cancelled when the process shuts down; the feed returns promptly.
    pub shutdown: CancellationToken,
    /// Counters this feed updates.
    pub status: Arc<FeedStatus>,
}

/// A connection to one venue (or a simulated one).
///
/// Contract:
/// - [`Feed::run`] runs until `ctx.shutdown` is cancelled, reconnecting by
///   itself after any transient failure (it never returns on a network error);
///   it returns `Ok(())` after shutdown and `Err` only for a fatal problem such
///   as bad configuration or a closed pipeline.
/// - Events of one symbol are sent in the order the venue produced them.
/// - `ts_received` is taken when the bytes are read off the socket and passed
///   into normalization; no conversion reads a clock.
/// - Bad input from the venue is counted ([`FeedStatus::record_drop`]) and
///   logged, never a panic.
#[async_trait::async_trait]
pub trait Feed: Send + Sync + Debug {
    /// The venue id.
    fn venue(&self) -> &Venue;
    /// The canonical symbols this feed publishes.
    fn symbols(&self) -> Vec<Symbol>;
    /// Run until shutdown (see the trait docs).
    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError>;
}
