//! The fan-out core: one reader of the log, many connection queues.
//!
//! The hub follows every partition of both topics from the log's end. For
//! each record it builds the client frame once (`{"type":"update",…}` around
//! the record's JSON, which with the default JSON encoding is the record value
//! itself, never re-encoded) and hands the same bytes to the bounded queue of
//! every connection subscribed to that symbol and channel.
//!
//! Registration and dispatch share a lock, and the hub records per partition
//! the next offset it will dispatch. A connection that registers learns that
//! offset `H` under the same lock: every record at or after `H` reaches its
//! queue live, every record before `H` it replays from the log. That is what
//! makes snapshot → stream and resume free of gaps and duplicates.
//!
//! Queue policy: `try_send`, never wait. A full queue switches the connection
//! to conflated delivery (latest frame per symbol and channel, with a count of
//! the skipped ones; see `conflate`) until it has caught up.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::ws::Utf8Bytes;
use mdhub_bus::{Bus, Delivery, Start, SubscribeSpec, partition_for_key};
use mdhub_types::protocol::{DataKind, data_frame};
use mdhub_types::{ChannelSet, Encoding, Position, Symbol, Timestamp, Topic, Venue, json};
use parking_lot::RwLock;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::conflate::Conflator;
use crate::metrics::GatewayMetrics;

/// A data frame ready to write, shared by every connection that gets it.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub(crate) symbol: Symbol,
    /// The event's venue: connections filter on it (`SYMBOL@venue`), and
    /// conflation keeps the latest frame of each venue.
    pub(crate) venue: Venue,
    pub(crate) pos: Position,
    pub(crate) ts_received: Timestamp,
    pub(crate) text: Utf8Bytes,
    /// Updates of the stream conflated away just before this one; the text
    /// gets `"skipped":N` when it is written.
    pub(crate) skipped: u64,
}

fn idx(t: Topic) -> usize {
    match t {
        Topic::Quotes => 0,
        Topic::Trades => 1,
        Topic::Status => 2,
    }
}

/// What the hub needs to reach one connection.
#[derive(Debug, Clone)]
pub(crate) struct ConnHandle {
    pub(crate) id: u64,
    pub(crate) tx: mpsc::Sender<Frame>,
    /// Where frames go while the queue is full.
    pub(crate) slow: Arc<Conflator>,
}

#[derive(Debug)]
struct Member {
    conn: ConnHandle,
    channels: ChannelSet,
}

#[derive(Debug)]
pub(crate) struct Hub {
    registry: RwLock<HashMap<Symbol, Vec<Member>>>,
    next: [Vec<AtomicU64>; 3],
    partitions: [u32; 3],
    ready: AtomicBool,
    metrics: Arc<GatewayMetrics>,
}

impl Hub {
    pub(crate) fn new(bus: &dyn Bus, metrics: Arc<GatewayMetrics>) -> Self {
        let partitions = Topic::ALL.map(|t| bus.partitions(t));
        let next = partitions.map(|n| (0..n).map(|_| AtomicU64::new(0)).collect());
        Hub {
            registry: RwLock::default(),
            next,
            partitions,
            ready: AtomicBool::new(false),
            metrics,
        }
    }

    /// True once the hub follows the log.
    pub(crate) fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Acquire)
    }

    /// The partition of `symbol` in `topic`.
    pub(crate) fn partition(&self, topic: Topic, symbol: &Symbol) -> u32 {
        partition_for_key(symbol.as_str().as_bytes(), self.partitions[idx(topic)])
    }

    /// Add `channels` of `symbol` to the connection's live set. Returns, per
    /// topic, the first offset that will arrive live (`H` in the module docs).
    pub(crate) fn register(
        &self,
        conn: &ConnHandle,
        symbol: &Symbol,
        channels: ChannelSet,
    ) -> [u64; 3] {
        let mut reg = self.registry.write();
        let members = reg.entry(symbol.clone()).or_default();
        match members.iter_mut().find(|m| m.conn.id == conn.id) {
            Some(m) => m.channels = m.channels.union(channels),
            None => members.push(Member {
                conn: conn.clone(),
                channels,
            }),
        }
        Topic::ALL
            .map(|t| self.next[idx(t)][self.partition(t, symbol) as usize].load(Ordering::Acquire))
    }

    /// Remove `channels` of `symbol` from the connection's live set.
    pub(crate) fn unregister(&self, id: u64, symbol: &Symbol, channels: ChannelSet) {
        let mut reg = self.registry.write();
        if let Some(members) = reg.get_mut(symbol) {
            for m in members.iter_mut().filter(|m| m.conn.id == id) {
                m.channels = m.channels.difference(channels);
            }
            members.retain(|m| !m.channels.is_empty());
            if members.is_empty() {
                reg.remove(symbol);
            }
        }
    }

    /// Frames waiting in all connection queues, and the connections in
    /// conflated delivery now.
    pub(crate) fn queued(&self) -> (u64, u64) {
        let reg = self.registry.read();
        let mut seen = std::collections::HashSet::new();
        let (mut frames, mut conflated) = (0u64, 0u64);
        for m in reg.values().flatten() {
            if seen.insert(m.conn.id) {
                frames += (m.conn.tx.max_capacity() - m.conn.tx.capacity()) as u64;
                conflated += u64::from(m.conn.slow.is_active());
            }
        }
        (frames, conflated)
    }

    /// Follow the log until `shutdown`, dispatching every record.
    pub(crate) async fn run(self: Arc<Self>, bus: Arc<dyn Bus>, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(100);
        let mut venues = Venues::default();
        while !shutdown.is_cancelled() {
            let spec = SubscribeSpec::Direct {
                topics: Topic::ALL.to_vec(),
                start: Start::Latest,
            };
            let mut sub = match bus.subscribe(spec).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, retry_ms = backoff.as_millis() as u64, "gateway cannot follow the log");
                    tokio::select! { _ = shutdown.cancelled() => return, _ = tokio::time::sleep(backoff) => {} }
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            {
                // Under the lock, so no registration sees a half-set table.
                let _reg = self.registry.write();
                for p in sub.positions() {
                    self.next[idx(p.topic)][p.partition as usize]
                        .store(p.offset, Ordering::Release);
                }
            }
            self.ready.store(true, Ordering::Release);
            backoff = Duration::from_millis(100);
            loop {
                let batch = tokio::select! {
                    _ = shutdown.cancelled() => return,
                    b = sub.next_batch(4096, Duration::from_millis(500)) => b,
                };
                match batch {
                    Ok(batch) => self.dispatch(&batch, &mut venues),
                    Err(e @ mdhub_bus::Error::Damaged { .. }) => {
                        // Live subscribers of that partition miss the
                        // records; one that resumes over them gets a
                        // `data_lost` reset from its replay.
                        tracing::error!(error = %e, "live delivery skipped damaged log records");
                    }
                    Err(e) => {
                        // Following from the end again skips records: clients on
                        // the affected partitions see the gap in their positions
                        // only if they resume; log it loudly.
                        tracing::error!(error = %e, "gateway lost its place in the log; following from the end");
                        self.ready.store(false, Ordering::Release);
                        break;
                    }
                }
            }
        }
    }

    fn dispatch(&self, batch: &[Delivery], venues: &mut Venues) {
        let reg = self.registry.read();
        let mut buf = Vec::with_capacity(512);
        for d in batch {
            let t = d.position.topic;
            if let Some(members) = reg
                .get(&d.symbol)
                .filter(|m| m.iter().any(|m| m.channels.contains(t)))
                && let Some((text, venue)) = update_text(d, &mut buf, venues)
            {
                let frame = Frame {
                    symbol: d.symbol.clone(),
                    venue,
                    pos: d.position,
                    ts_received: d.timestamp,
                    text,
                    skipped: 0,
                };
                for m in members.iter().filter(|m| m.channels.contains(t)) {
                    let slow = &m.conn.slow;
                    if slow.offer(&frame) {
                        continue;
                    }
                    if let Err(mpsc::error::TrySendError::Full(f)) =
                        m.conn.tx.try_send(frame.clone())
                        && slow.activate(f)
                    {
                        self.metrics.conflated_total.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            self.next[idx(d.position.topic)][d.position.partition as usize]
                .store(d.position.offset + 1, Ordering::Release);
        }
        self.metrics
            .updates_total
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
    }
}

/// The venues seen so far, so a frame shares its venue's name instead of
/// allocating one per record (a hub sees a handful of venues).
#[derive(Debug, Default)]
pub(crate) struct Venues(Vec<Venue>);

impl Venues {
    pub(crate) fn get(&mut self, name: &str) -> Option<Venue> {
        if let Some(v) = self.0.iter().find(|v| v.as_str() == name) {
            return Some(v.clone());
        }
        let v = Venue::new(name).ok()?;
        if self.0.len() < MAX_INTERNED_VENUES {
            self.0.push(v.clone());
        }
        Some(v)
    }
}

/// Bound of [`Venues`]: past it, names are allocated per record.
const MAX_INTERNED_VENUES: usize = 1024;

/// The `update` frame of a record and its venue; `None` (logged) if its
/// value cannot be read.
pub(crate) fn update_text(
    d: &Delivery,
    buf: &mut Vec<u8>,
    venues: &mut Venues,
) -> Option<(Utf8Bytes, Venue)> {
    frame_text(DataKind::Update, d, buf, venues)
}

pub(crate) fn frame_text(
    kind: DataKind,
    d: &Delivery,
    buf: &mut Vec<u8>,
    venues: &mut Venues,
) -> Option<(Utf8Bytes, Venue)> {
    buf.clear();
    let venue = match d.encoding {
        Encoding::Json => {
            data_frame(kind, d.position, &d.value, buf);
            json::peek_venue(&d.value).and_then(|v| venues.get(v))
        }
        Encoding::Avro => {
            let event = match d.decode() {
                Ok(e) => e,
                Err(e) => {
                    tracing::warn!(error = %e, pos = %d.position, "skipping a record that does not decode");
                    return None;
                }
            };
            let js = json::to_vec(&event);
            data_frame(kind, d.position, &js, buf);
            venues.get(event.venue().as_str())
        }
    };
    let Some(venue) = venue else {
        tracing::warn!(pos = %d.position, "skipping a record without a venue");
        return None;
    };
    match String::from_utf8(buf.clone()) {
        Ok(s) => Some((Utf8Bytes::from(s), venue)),
        Err(_) => {
            tracing::warn!(pos = %d.position, "skipping a record that is not UTF-8 JSON");
            None
        }
    }
}
