//! Bringing a new subscription up to the live stream: reset, snapshot, or
//! replay of what a resuming client missed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use mdhub_bus::{Delivery, SubscribeSpec};
use mdhub_types::protocol::{DataKind, ErrorCode, ResetReason, ServerMessage, data_frame};
use mdhub_types::{Position, Positioned, Symbol, Topic, Venue, json};

use super::Conn;
use super::stream::idx;
use crate::hub::{Venues, frame_text};

impl Conn {
    /// Bring one symbol and channel up to the live stream: resume from a
    /// position, or snapshot (every venue the subscription holds) then
    /// replay, so that the next live frame follows without a gap. Frames
    /// leave in log order: a venue's snapshot waits for the replayed
    /// updates of other venues that are older than it.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn catch_up(
        &mut self,
        ws: &mut WebSocket,
        sym: &Symbol,
        topic: Topic,
        h: u64,
        pos: Option<Position>,
        epoch: Option<&str>,
        latest: &[mdhub_cache::Latest],
        id: &Option<serde_json::Value>,
    ) -> Result<(), axum::Error> {
        let partition = self.shared.hub.partition(topic, sym);
        let mut start = None;
        if let Some(p) = pos {
            let reset = if epoch != Some(self.shared.epoch.as_str()) {
                Some(ResetReason::EpochChanged)
            } else if p.topic != topic || p.partition != partition {
                let m = format!(
                    "position {p} is not on the {} channel of {sym} (partition {partition})",
                    topic.channel()
                );
                self.error(
                    ws,
                    ErrorCode::InvalidPosition,
                    m,
                    vec![sym.to_string()],
                    id.clone(),
                )
                .await?;
                None
            } else {
                match self.shared.bus.watermarks(topic, partition).await {
                    Ok((lo, _)) if p.offset.saturating_add(1) < lo => {
                        Some(ResetReason::PositionExpired)
                    }
                    Ok(_) if p.offset.saturating_add(1) > h => Some(ResetReason::PositionAhead),
                    Ok(_) => {
                        start = Some(p.offset.saturating_add(1));
                        None
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "watermarks unavailable; sending a snapshot");
                        Some(ResetReason::PositionExpired)
                    }
                }
            };
            if let Some(reason) = reset {
                self.shared
                    .metrics
                    .resets_total
                    .fetch_add(1, Ordering::Relaxed);
                self.send(
                    ws,
                    ServerMessage::Reset {
                        symbol: sym.to_string(),
                        channel: topic,
                        reason,
                    },
                )
                .await?;
            }
        }
        let mut snaps = match start {
            Some(_) => Vec::new(),
            None => self.snapshots_of(sym, topic, latest),
        };
        let start = start.unwrap_or_else(|| snaps.first().map_or(h, |p| p.position.offset + 1));
        if start < h {
            let from = Position {
                topic,
                partition,
                offset: start,
            };
            let replays = self.shared.replays.clone();
            let ended = match tokio::time::timeout(REPLAY_WAIT, replays.acquire_owned()).await {
                Ok(Ok(_running)) => self.replay(ws, sym, from, h, &mut snaps).await?,
                _ => ReplayEnd::Limit,
            };
            if ended == ReplayEnd::Limit {
                // A fresh state instead of the rest; live updates follow.
                self.replay_reset(ws, sym, topic, ResetReason::ReplayLimit)
                    .await?;
                snaps = self.snapshots_of(sym, topic, latest);
            }
        }
        for p in snaps {
            self.snapshot(ws, sym, &p).await?;
        }
        Ok(())
    }

    /// The latest event of every venue the subscription holds on `topic`,
    /// in log order.
    fn snapshots_of(
        &self,
        sym: &Symbol,
        topic: Topic,
        latest: &[mdhub_cache::Latest],
    ) -> Vec<Positioned> {
        let Some(ch) = self.subs.get(sym).map(|st| &st[idx(topic)]) else {
            return Vec::new();
        };
        let mut out: Vec<Positioned> = latest
            .iter()
            .filter(|l| ch.wants(&l.venue))
            .filter_map(|l| snapshot_of(l, topic).cloned())
            .collect();
        out.sort_by_key(|p| p.position.offset);
        out
    }

    /// Send one `snapshot` frame.
    async fn snapshot(
        &mut self,
        ws: &mut WebSocket,
        sym: &Symbol,
        p: &Positioned,
    ) -> Result<(), axum::Error> {
        let mut buf = Vec::with_capacity(512);
        data_frame(
            DataKind::Snapshot,
            p.position,
            &json::to_vec(&p.event),
            &mut buf,
        );
        let text = Utf8Bytes::from(String::from_utf8_lossy(&buf).into_owned());
        self.write_or_lag(ws, WsOp::Feed(Message::Text(text)))
            .await?;
        self.shared
            .metrics
            .deliveries_total
            .fetch_add(1, Ordering::Relaxed);
        self.set_last(sym, p.position.topic, p.position.offset);
        Ok(())
    }

    fn set_last(&mut self, sym: &Symbol, topic: Topic, offset: u64) {
        if let Some(st) = self.subs.get_mut(sym) {
            st[idx(topic)].last = Some(offset);
        }
    }

    /// Send every record of `sym` (of the venues the subscription holds)
    /// in `[from.offset, h)` of its partition, within the connection's
    /// replay budget. `snaps` are snapshots still to send (log order): each
    /// goes out when the replay passes its position, and a venue's records
    /// up to its snapshot are not sent (the snapshot stands for them).
    async fn replay(
        &mut self,
        ws: &mut WebSocket,
        sym: &Symbol,
        from: Position,
        h: u64,
        snaps: &mut Vec<Positioned>,
    ) -> Result<ReplayEnd, axum::Error> {
        let wants = self
            .subs
            .get(sym)
            .and_then(|st| st[idx(from.topic)].venues.clone());
        let covered: Vec<(Venue, u64)> = snaps
            .iter()
            .map(|p| (p.event.venue().clone(), p.position.offset))
            .collect();
        let mut venues = Venues::default();
        let mut sub = match self
            .shared
            .bus
            .subscribe(SubscribeSpec::Assign {
                positions: vec![from],
            })
            .await
        {
            Ok(s) => s,
            Err(e) => {
                // Retention passed the position between the check and now.
                tracing::warn!(error = %e, %from, "replay unavailable; resetting the client");
                let reset = ServerMessage::Reset {
                    symbol: sym.to_string(),
                    channel: from.topic,
                    reason: ResetReason::PositionExpired,
                };
                self.shared
                    .metrics
                    .resets_total
                    .fetch_add(1, Ordering::Relaxed);
                return self.send(ws, reset).await.map(|()| ReplayEnd::Done);
            }
        };
        let mut buf = Vec::with_capacity(512);
        'read: loop {
            if sub.positions().first().is_none_or(|p| p.offset >= h) {
                break;
            }
            let batch: Vec<Delivery> = match sub.next_batch(2048, Duration::from_secs(1)).await {
                Ok(b) if !b.is_empty() => b,
                Ok(_) => break,
                Err(e @ mdhub_bus::Error::Damaged { .. }) => {
                    // The records skipped may include this symbol's: never
                    // a silent gap. The replay goes on after them.
                    tracing::error!(error = %e, symbol = %sym, "replay met damaged records; resetting the stream");
                    self.replay_reset(ws, sym, from.topic, ResetReason::DataLost)
                        .await?;
                    continue;
                }
                Err(e) => {
                    // The replay cannot go on: the client must not take
                    // what follows as continuous with what it has.
                    tracing::warn!(error = %e, symbol = %sym, "replay interrupted; resetting the stream");
                    self.replay_reset(ws, sym, from.topic, ResetReason::PositionExpired)
                        .await?;
                    return self
                        .write_or_lag(ws, WsOp::Flush)
                        .await
                        .map(|()| ReplayEnd::Done);
                }
            };
            for d in &batch {
                if d.position.offset >= h {
                    break 'read;
                }
                if d.symbol != *sym {
                    continue;
                }
                if let Some((t, venue)) = frame_text(DataKind::Update, d, &mut buf, &mut venues) {
                    if wants.as_ref().is_some_and(|w| !w.contains(&venue))
                        || covered
                            .iter()
                            .any(|(v, at)| *v == venue && d.position.offset <= *at)
                    {
                        continue;
                    }
                    while snaps
                        .first()
                        .is_some_and(|p| p.position.offset < d.position.offset)
                    {
                        let p = snaps.remove(0);
                        self.snapshot(ws, sym, &p).await?;
                    }
                    let Some(left) = self.replay_budget.checked_sub(t.len() as u64) else {
                        self.replay_budget = 0;
                        self.write_or_lag(ws, WsOp::Flush).await?;
                        return Ok(ReplayEnd::Limit);
                    };
                    self.replay_budget = left;
                    self.write_or_lag(ws, WsOp::Feed(Message::Text(t))).await?;
                    self.set_last(sym, from.topic, d.position.offset);
                    self.shared
                        .metrics
                        .replayed_total
                        .fetch_add(1, Ordering::Relaxed);
                    self.shared
                        .metrics
                        .deliveries_total
                        .fetch_add(1, Ordering::Relaxed);
                }
            }
            self.write_or_lag(ws, WsOp::Flush).await?;
        }
        Ok(ReplayEnd::Done)
    }

    /// A `reset` in the middle of a replay, written under the replay's rule.
    pub(super) async fn replay_reset(
        &mut self,
        ws: &mut WebSocket,
        sym: &Symbol,
        channel: Topic,
        reason: ResetReason,
    ) -> Result<(), axum::Error> {
        self.shared
            .metrics
            .resets_total
            .fetch_add(1, Ordering::Relaxed);
        let reset = ServerMessage::Reset {
            symbol: sym.to_string(),
            channel,
            reason,
        };
        self.write_or_lag(ws, WsOp::Feed(super::text(reset.to_json())))
            .await
    }

    /// One write of a replay, under the same rule as live delivery: a
    /// socket that takes nothing for `slow_client_timeout_ms` is closed
    /// with 4008 (reconnect and resume), and the connection ends.
    async fn write_or_lag(&mut self, ws: &mut WebSocket, op: WsOp) -> Result<(), axum::Error> {
        let limit = Duration::from_millis(self.shared.cfg.slow_client_timeout_ms);
        let write = async {
            match op {
                WsOp::Feed(m) => ws.feed(m).await,
                WsOp::Flush => ws.flush().await,
            }
        };
        match tokio::time::timeout(limit, write).await {
            Ok(r) => r,
            Err(_) => {
                self.shared
                    .metrics
                    .lagged_total
                    .fetch_add(1, Ordering::Relaxed);
                let reason =
                    "too slow: nothing written for slow_client_timeout_ms; reconnect and resume";
                let closing = super::close_with(ws, super::close::LAGGED, reason, Some(1000));
                let _ = tokio::time::timeout(Duration::from_secs(1), closing).await;
                Err(axum::Error::new(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the client read nothing during a replay",
                )))
            }
        }
    }
}

/// How long a resume waits for one of the `max_replays` slots.
const REPLAY_WAIT: Duration = Duration::from_secs(10);

/// How a replay ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplayEnd {
    /// Everything up to the live position was sent (or a reset said why not).
    Done,
    /// No replay slot, or the connection's replay bytes are spent.
    Limit,
}

/// A write of a replay.
#[derive(Debug)]
enum WsOp {
    Feed(Message),
    Flush,
}

fn snapshot_of(l: &mdhub_cache::Latest, topic: Topic) -> Option<&Positioned> {
    match topic {
        Topic::Quotes => l.quote.as_ref(),
        Topic::Trades => l.trade.as_ref(),
        // Feed status has no snapshot: a subscriber gets it live (or replayed
        // from a resume position).
        Topic::Status => None,
    }
}
