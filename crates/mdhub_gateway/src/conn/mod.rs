//! One WebSocket connection: parse client actions, send snapshots and
//! replays, forward live frames from the hub, keep the heartbeat.
//!
//! Everything for one connection runs in one task, so frames reach the socket
//! in the order they are produced: ack, then per symbol and channel a reset
//! (if any), the snapshot or the replay of missed updates, then live updates.
//! Live frames queued meanwhile are filtered by the last offset sent for their
//! symbol and channel, so nothing is sent twice.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use mdhub_types::protocol::{ClientMessage, ErrorCode, ServerMessage, parse_client_message};
use mdhub_types::{ChannelSet, Symbol, Timestamp, Topic};
use tokio::sync::mpsc;

pub(crate) mod close;
mod replay;
mod stream;
mod subscribe;

use crate::Shared;
use crate::auth::{Grant, UserSlot};
use crate::conflate::Conflator;
use crate::hub::{ConnHandle, Frame};
use close::{TOO_BIG_LINGER, close_with, too_big};
use stream::{ChannelState, SymbolState, Throttled, TokenBucket, idx};
use subscribe::Subscribe;

struct Conn {
    shared: Arc<Shared>,
    handle: ConnHandle,
    subs: BTreeMap<Symbol, SymbolState>,
    last_seen: Instant,
    /// `ts_received` of the frames written since the last flush.
    sent_ts: Vec<Timestamp>,
    /// When the next frame held back by `max_rate_ms` is due.
    flush_at: Option<Instant>,
    /// The client's frame allowance (`client_messages_per_sec`).
    bucket: TokenBucket,
    /// Frames are being dropped by the bucket (and the client was told).
    limited: bool,
    /// What the connection may see; `None` until it authenticates.
    grant: Option<Grant>,
    /// Its user's connection slot, released when the connection ends.
    slot: Option<UserSlot>,
    /// Closed (4401) unless authenticated by then.
    auth_deadline: Option<Instant>,
    /// Closed (4403) when the credential expires.
    expires: Option<Instant>,
    /// Bytes of replayed frames this connection may still receive
    /// (`max_replay_bytes`).
    replay_budget: u64,
}

enum Flow {
    Continue,
    Stop,
}

/// Serve one upgraded connection until it closes.
/// Serve one upgraded connection until it closes. `grant`: what a
/// credential presented at the upgrade allows (with its user's connection
/// slot); `None` when the client must still authenticate in a frame.
pub(crate) async fn serve(
    mut ws: WebSocket,
    shared: Arc<Shared>,
    grant: Option<(Grant, Option<UserSlot>)>,
) {
    let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
    let (tx, mut rx) = mpsc::channel::<Frame>(shared.cfg.queue_capacity);
    let mut conn = Conn {
        shared: shared.clone(),
        handle: ConnHandle {
            id,
            tx,
            slow: Arc::new(Conflator::default()),
        },
        subs: BTreeMap::new(),
        last_seen: Instant::now(),
        // Both grow with the first batches: an idle connection holds nothing.
        sent_ts: Vec::new(),
        flush_at: None,
        bucket: TokenBucket::new(
            shared.cfg.client_messages_per_sec,
            shared.cfg.client_message_burst,
        ),
        limited: false,
        expires: None,
        auth_deadline: None,
        grant: None,
        slot: None,
        replay_budget: shared.cfg.max_replay_bytes,
    };
    match grant {
        Some((g, slot)) => {
            conn.expires = g.remaining().map(|d| Instant::now() + d);
            conn.grant = Some(g);
            conn.slot = slot;
        }
        None => {
            let limit = Duration::from_millis(shared.cfg.auth.timeout_ms);
            conn.auth_deadline = Some(Instant::now() + limit);
        }
    }
    shared.metrics.connections.fetch_add(1, Ordering::Relaxed);
    shared
        .metrics
        .connections_total
        .fetch_add(1, Ordering::Relaxed);
    let welcome = ServerMessage::Welcome {
        epoch: shared.epoch.clone(),
        server: concat!("mdhub/", env!("CARGO_PKG_VERSION")).to_string(),
        heartbeat_ms: shared.cfg.heartbeat_ms,
        max_symbols: shared.cfg.max_symbols,
        auth_required: shared.auth.required(),
    };
    if ws.send(text(welcome.to_json())).await.is_ok() {
        let _ = conn.run(&mut ws, &mut rx).await;
    }
    for (symbol, _) in std::mem::take(&mut conn.subs) {
        shared.hub.unregister(id, &symbol, ChannelSet::ALL);
    }
    shared.metrics.connections.fetch_sub(1, Ordering::Relaxed);
}

/// Sleep until `at`; forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at.into()).await,
        None => std::future::pending().await,
    }
}

pub(super) fn text(s: String) -> Message {
    Message::Text(Utf8Bytes::from(s))
}

impl Conn {
    async fn run(
        &mut self,
        ws: &mut WebSocket,
        rx: &mut mpsc::Receiver<Frame>,
    ) -> Result<(), axum::Error> {
        let beat = Duration::from_millis(self.shared.cfg.heartbeat_ms);
        let timeout = Duration::from_millis(self.shared.cfg.client_timeout_ms);
        let mut heartbeat = tokio::time::interval_at(tokio::time::Instant::now() + beat, beat);
        let shutdown = self.shared.shutdown.clone();
        let mut batch = Vec::new();
        let slow = self.handle.slow.clone();
        loop {
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => {
                    // Spread the reconnects of a restart over the window.
                    let spread = self.shared.cfg.reconnect_spread_ms;
                    let wait = rand::random_range(0..=spread);
                    close_with(ws, close::GOING_AWAY, "server shutting down; reconnect and resume", Some(wait)).await;
                    return Ok(());
                }
                msg = ws.recv() => {
                    let msg = match msg {
                        Some(Ok(msg)) => msg,
                        Some(Err(e)) if too_big(&e) => {
                            close_with(ws, close::TOO_BIG, "frame larger than 4 × gateway.max_message_bytes", Some(0)).await;
                            // Let the close frame reach the client before the
                            // socket goes: dropped with the rest of the huge
                            // frame unread, the kernel resets the connection,
                            // which can discard the frame at the client.
                            tokio::time::sleep(TOO_BIG_LINGER).await;
                            return Ok(());
                        }
                        _ => return Ok(()),
                    };
                    self.last_seen = Instant::now();
                    // Boxed: handling a subscribe is a large future that an idle
                    // connection should not carry in its task.
                    if let Flow::Stop = Box::pin(self.on_message(ws, msg)).await? {
                        return Ok(());
                    }
                }
                n = rx.recv_many(&mut batch, 256) => {
                    if n == 0 {
                        return Ok(());
                    }
                    if !self.deliver(ws, &mut batch, true).await? {
                        return Ok(());
                    }
                }
                // Only with the queue empty (biased): the held frames are
                // newer than anything queued.
                _ = slow.ready() => {
                    let mut held = slow.drain();
                    if !self.deliver(ws, &mut held, true).await? {
                        return Ok(());
                    }
                }
                _ = sleep_until_some(self.auth_deadline) => {
                    close_with(ws, close::UNAUTHORIZED, "no credential within gateway.auth.timeout_ms", None).await;
                    return Ok(());
                }
                _ = sleep_until_some(self.expires) => {
                    close_with(ws, close::EXPIRED, "credential expired; reconnect with a fresh one", Some(0)).await;
                    return Ok(());
                }
                _ = sleep_until_some(self.flush_at) => {
                    let mut due = self.take_due();
                    if !self.deliver(ws, &mut due, false).await? {
                        return Ok(());
                    }
                }
                _ = heartbeat.tick() => {
                    if self.last_seen.elapsed() > timeout {
                        self.shared.metrics.timeouts_total.fetch_add(1, Ordering::Relaxed);
                        close_with(ws, close::HEARTBEAT_TIMEOUT, "no frame from the client within the timeout", Some(0)).await;
                        return Ok(());
                    }
                    ws.feed(Message::Ping(bytes::Bytes::new())).await?;
                    ws.send(text(ServerMessage::Heartbeat { ts: Timestamp::now() }.to_json())).await?;
                }
            }
        }
    }

    /// [`Conn::forward`] within `slow_client_timeout_ms`; false when the
    /// socket took nothing for that long and the connection was closed (4008).
    async fn deliver(
        &mut self,
        ws: &mut WebSocket,
        batch: &mut Vec<Frame>,
        throttle: bool,
    ) -> Result<bool, axum::Error> {
        let limit = Duration::from_millis(self.shared.cfg.slow_client_timeout_ms);
        let forward = self.forward(ws, batch, throttle);
        if let Ok(written) = tokio::time::timeout(limit, forward).await {
            return written.map(|()| true);
        }
        self.shared
            .metrics
            .lagged_total
            .fetch_add(1, Ordering::Relaxed);
        let reason = "too slow: nothing written for slow_client_timeout_ms; reconnect and resume";
        let closing = close_with(ws, close::LAGGED, reason, Some(1000));
        let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
        Ok(false)
    }

    /// The frames held back by `max_rate_ms` whose time has come (oldest
    /// first); sets when the next ones are due.
    fn take_due(&mut self) -> Vec<Frame> {
        let now = Instant::now();
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for ch in self.subs.values_mut().flatten() {
            let frames = ch.due(now);
            if frames.is_empty() && !ch.held.is_empty() {
                next = match (next, ch.next_at) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            due.extend(frames);
        }
        self.flush_at = next;
        // Log order within each partition, so within each symbol and channel.
        due.sort_by_key(|f| f.pos);
        due
    }

    /// Write live frames, dropping those already sent by a snapshot or
    /// replay, and (with `throttle`) holding back what `max_rate_ms` says.
    async fn forward(
        &mut self,
        ws: &mut WebSocket,
        batch: &mut Vec<Frame>,
        throttle: bool,
    ) -> Result<(), axum::Error> {
        let now = Instant::now();
        let (mut sent, mut skipped) = (0u64, 0u64);
        for f in batch.drain(..) {
            let Some(state) = self.subs.get_mut(&f.symbol) else {
                continue;
            };
            let ch = &mut state[idx(f.pos.topic)];
            if !ch.on || !ch.wants(&f.venue) || ch.last.is_some_and(|l| f.pos.offset <= l) {
                continue;
            }
            // One frame, or several (held ones) — no allocation for one.
            let (one, several) = if throttle {
                match ch.throttle(f, now) {
                    Throttled::Send(f) => (Some(f), Vec::new()),
                    Throttled::SendAll(all) => (None, all),
                    Throttled::Held(due) => {
                        self.flush_at = Some(self.flush_at.map_or(due, |t| t.min(due)));
                        continue;
                    }
                }
            } else {
                (Some(f), Vec::new())
            };
            for f in one.into_iter().chain(several) {
                ch.last = Some(f.pos.offset);
                skipped += f.skipped;
                ws.feed(Message::Text(f.wire_text())).await?;
                self.sent_ts.push(f.ts_received);
                sent += 1;
            }
        }
        ws.flush().await?;
        let now = Timestamp::now();
        for ts in self.sent_ts.drain(..) {
            let us = now.nanos_since(ts).max(0) as u64 / 1000;
            self.shared.metrics.latency.observe_us(us);
        }
        let m = &self.shared.metrics;
        m.deliveries_total.fetch_add(sent, Ordering::Relaxed);
        m.skipped_total.fetch_add(skipped, Ordering::Relaxed);
        Ok(())
    }

    async fn send(&self, ws: &mut WebSocket, m: ServerMessage) -> Result<(), axum::Error> {
        if matches!(m, ServerMessage::Error { .. }) {
            self.shared
                .metrics
                .client_errors_total
                .fetch_add(1, Ordering::Relaxed);
        }
        ws.send(text(m.to_json())).await
    }

    async fn error(
        &self,
        ws: &mut WebSocket,
        code: ErrorCode,
        message: String,
        symbols: Vec<String>,
        id: Option<serde_json::Value>,
    ) -> Result<(), axum::Error> {
        self.send(
            ws,
            ServerMessage::Error {
                code,
                message,
                symbols,
                id,
            },
        )
        .await
    }

    async fn on_message(&mut self, ws: &mut WebSocket, msg: Message) -> Result<Flow, axum::Error> {
        self.shared
            .metrics
            .client_messages_total
            .fetch_add(1, Ordering::Relaxed);
        let body = match msg {
            Message::Close(_) => return Ok(Flow::Stop),
            Message::Ping(_) | Message::Pong(_) => return Ok(Flow::Continue),
            _ if !self.bucket.take(Instant::now()) => {
                // One error per run of dropped frames: the answer to a flood
                // must not be a flood.
                if !std::mem::replace(&mut self.limited, true) {
                    let m = format!(
                        "more than {} frames per second; frames are dropped until the rate falls",
                        self.shared.cfg.client_messages_per_sec
                    );
                    self.error(ws, ErrorCode::RateLimited, m, vec![], None)
                        .await?;
                }
                return Ok(Flow::Continue);
            }
            Message::Text(t) => {
                self.limited = false;
                t
            }
            Message::Binary(_) => {
                let m = "binary frames are not accepted; send JSON text".to_string();
                self.error(ws, ErrorCode::BadRequest, m, vec![], None)
                    .await?;
                return Ok(Flow::Continue);
            }
        };
        if body.len() > self.shared.cfg.max_message_bytes {
            let m = format!(
                "frame of {} bytes exceeds the limit of {}",
                body.len(),
                self.shared.cfg.max_message_bytes
            );
            self.error(ws, ErrorCode::MessageTooLarge, m, vec![], None)
                .await?;
            return Ok(Flow::Continue);
        }
        let parsed = match parse_client_message(body.as_str()) {
            Ok(m) => m,
            Err(r) => {
                self.error(ws, r.code, r.message, vec![], r.id).await?;
                return Ok(Flow::Continue);
            }
        };
        let needs_grant = !matches!(
            parsed,
            ClientMessage::Auth { .. } | ClientMessage::Ping { .. }
        );
        if needs_grant && self.grant.is_none() {
            let m = r#"authenticate first: {"action":"auth","token":"<API key or JWT>"}"#;
            let id = parsed.id().cloned();
            self.error(ws, ErrorCode::Unauthenticated, m.into(), vec![], id)
                .await?;
            return Ok(Flow::Continue);
        }
        match parsed {
            ClientMessage::Auth { token, id } => return self.authenticate(ws, &token, id).await,
            ClientMessage::Ping { id } => {
                self.send(
                    ws,
                    ServerMessage::Pong {
                        id,
                        ts: Timestamp::now(),
                    },
                )
                .await?
            }
            ClientMessage::Unsubscribe {
                symbols,
                channels,
                id,
            } => {
                self.unsubscribe(ws, symbols, channels, id).await?;
            }
            ClientMessage::Subscribe {
                symbols,
                channels,
                resume,
                max_rate_ms,
                id,
            } => {
                let req = Subscribe {
                    symbols,
                    channels,
                    resume,
                    max_rate_ms,
                };
                self.subscribe(ws, req, id).await?;
            }
        }
        Ok(Flow::Continue)
    }

    /// Take a credential presented in a frame: the connection gets its
    /// grant (or, for a second `auth`, a renewed one for the same user).
    async fn authenticate(
        &mut self,
        ws: &mut WebSocket,
        token: &str,
        id: Option<serde_json::Value>,
    ) -> Result<Flow, axum::Error> {
        let grant = match self.shared.auth.verify(token) {
            Ok(g) => g,
            Err(e) => {
                self.error(ws, ErrorCode::Unauthorized, e.to_string(), vec![], id)
                    .await?;
                close_with(ws, close::UNAUTHORIZED, "credential refused", None).await;
                return Ok(Flow::Stop);
            }
        };
        match &self.grant {
            Some(old) if old.user != grant.user => {
                let m = format!("this connection belongs to {:?}", old.user);
                self.error(ws, ErrorCode::Unauthorized, m, vec![], id)
                    .await?;
                return Ok(Flow::Continue);
            }
            Some(_) => {}
            None => match self.shared.users.acquire(&grant) {
                Some(slot) => self.slot = Some(slot),
                None => {
                    let m = format!("{} holds its limit of connections", grant.user);
                    self.error(ws, ErrorCode::TooManyConnections, m, vec![], id)
                        .await?;
                    close_with(ws, close::TOO_MANY, "too many connections", Some(5000)).await;
                    return Ok(Flow::Stop);
                }
            },
        }
        self.expires = grant.remaining().map(|d| Instant::now() + d);
        self.auth_deadline = None;
        self.grant = Some(grant);
        self.prune_unentitled(ws, &id).await?;
        let ack = ServerMessage::Ack {
            action: "auth".into(),
            id,
            subscriptions: self.subscriptions(),
        };
        self.send(ws, ack).await?;
        Ok(Flow::Continue)
    }

    /// After a renewed grant: drop the streams it no longer allows.
    async fn prune_unentitled(
        &mut self,
        ws: &mut WebSocket,
        id: &Option<serde_json::Value>,
    ) -> Result<(), axum::Error> {
        let Some(grant) = &self.grant else {
            return Ok(());
        };
        let mut dropped = Vec::new();
        for (sym, state) in &mut self.subs {
            let allowed = if grant.allows(sym.as_str()) {
                grant.channels(ChannelSet::ALL)
            } else {
                ChannelSet::EMPTY
            };
            let lost: ChannelSet = Topic::ALL
                .into_iter()
                .filter(|t| state[idx(*t)].on && !allowed.contains(*t))
                .collect();
            if !lost.is_empty() {
                for t in lost.topics() {
                    state[idx(t)] = ChannelState::default();
                }
                self.shared.hub.unregister(self.handle.id, sym, lost);
                dropped.push(sym.to_string());
            }
        }
        self.subs.retain(|_, st| st.iter().any(|c| c.on));
        if dropped.is_empty() {
            return Ok(());
        }
        let m = "the renewed credential is not entitled to these any more".to_string();
        self.error(ws, ErrorCode::NotEntitled, m, dropped, id.clone())
            .await
    }
}
