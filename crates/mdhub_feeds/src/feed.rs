//! The connector interface every venue (real or simulated) implements.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mdhub_types::{Event, FeedEvent, FeedStatusKind, Symbol, Timestamp, Venue};
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
    /// Feed-status events sent, by kind (connected, disconnected, gap, resync).
    status_events: [AtomicU64; 4],
    symbols: Mutex<BTreeMap<Symbol, SymbolStatus>>,
}

/// The feed's state for one symbol, from its feed-status events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SymbolStatus {
    /// The symbol.
    pub symbol: Symbol,
    /// `true` between a `connected` and the next `disconnected`.
    pub connected: bool,
    /// When `connected` last changed.
    pub since: Timestamp,
    /// The newest feed-status event's kind.
    pub last: FeedStatusKind,
    /// Its detail, if any.
    pub detail: Option<String>,
    /// Gaps seen in this symbol's stream since start.
    pub gaps: u64,
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
    /// Feed-status events sent: `[connected, disconnected, gap, resync]`.
    pub status_events: [u64; 4],
    /// Per symbol, the state its feed-status events describe (symbols with
    /// no such event yet are absent).
    pub symbols: Vec<SymbolStatus>,
}

fn kind_index(k: FeedStatusKind) -> usize {
    match k {
        FeedStatusKind::Connected => 0,
        FeedStatusKind::Disconnected => 1,
        FeedStatusKind::Gap => 2,
        FeedStatusKind::Resync => 3,
    }
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
            status_events: Default::default(),
            symbols: Mutex::default(),
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
    /// Record a feed-status event the feed sent (counts a gap too).
    pub fn record_status(&self, e: &FeedEvent) {
        self.status_events[kind_index(e.status)].fetch_add(1, Ordering::Relaxed);
        if e.status == FeedStatusKind::Gap {
            self.record_gap();
        }
        let mut map = self.symbols.lock();
        let entry = map.entry(e.symbol.clone()).or_insert_with(|| SymbolStatus {
            symbol: e.symbol.clone(),
            connected: false,
            since: e.ts_received,
            last: e.status,
            detail: None,
            gaps: 0,
        });
        let connected = match e.status {
            FeedStatusKind::Connected => true,
            FeedStatusKind::Disconnected => false,
            FeedStatusKind::Gap | FeedStatusKind::Resync => entry.connected,
        };
        if connected != entry.connected {
            entry.connected = connected;
            entry.since = e.ts_received;
        }
        entry.last = e.status;
        entry.detail.clone_from(&e.detail);
        entry.gaps += u64::from(e.status == FeedStatusKind::Gap);
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
            status_events: std::array::from_fn(|i| self.status_events[i].load(Ordering::Relaxed)),
            symbols: self.symbols.lock().values().cloned().collect(),
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
    /// Where raw frames are recorded (`--record-raw`), if anywhere.
    pub capture: Option<crate::capture::Recorder>,
}

impl FeedContext {
    /// Record one raw frame as read off connection `conn`, when recording.
    pub async fn record_raw(&self, conn: u32, ts_received: Timestamp, frame: &[u8]) {
        if let Some(c) = &self.capture {
            c.record(&self.status.venue, conn, ts_received, frame).await;
        }
    }

    /// Send one event downstream and count it: a price as an event, a
    /// feed-status event in the status counters. Waits while the pipeline is
    /// full; fails only when the pipeline has closed.
    pub async fn send(&self, event: Event) -> Result<(), FeedError> {
        match &event {
            Event::Status(f) => self.status.record_status(f),
            e => self.status.record_event(e.ts_received()),
        }
        self.out
            .send(event)
            .await
            .map_err(|_| FeedError::PipelineClosed {
                venue: self.status.venue.to_string(),
            })
    }

    /// Send a feed-status event for each of `symbols`, stamped `ts`.
    pub async fn send_status(
        &self,
        symbols: &[Symbol],
        status: FeedStatusKind,
        detail: Option<&str>,
        ts: Timestamp,
    ) -> Result<(), FeedError> {
        for symbol in symbols {
            let e = FeedEvent {
                venue: self.status.venue.clone(),
                symbol: symbol.clone(),
                ts_exchange: ts,
                ts_received: ts,
                status,
                detail: detail.map(str::to_string),
            };
            self.send(Event::Status(e)).await?;
        }
        Ok(())
    }
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
/// - Real venues report their state per symbol as data
///   ([`FeedContext::send_status`]): `connected` once a connection carrying the
///   symbol is subscribed, `disconnected` when it is lost, `gap` when the
///   venue's stream shows missed data, `resync` when a venue snapshot rebuilt
///   the symbol's state. They go down the same channel as prices.
#[async_trait::async_trait]
pub trait Feed: Send + Sync + Debug {
    /// The venue id.
    fn venue(&self) -> &Venue;
    /// The canonical symbols this feed publishes.
    fn symbols(&self) -> Vec<Symbol>;
    /// Run until shutdown (see the trait docs).
    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError>;
}
