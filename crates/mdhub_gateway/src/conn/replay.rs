//! Bringing a new subscription up to the live stream: reset, snapshot, or
//! replay of what a resuming client missed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use mdhub_bus::{Delivery, SubscribeSpec};
use mdhub_types::protocol::{DataKind, ErrorCode, ResetReason, ServerMessage, data_frame};
use mdhub_types::{Position, Positioned, Symbol, Topic, json};

use super::Conn;
use super::stream::idx;
use crate::hub::frame_text;

impl Conn {
    /// Bring one symbol and channel up to the live stream: resume from a
    /// position, or snapshot then replay, so that the next live frame follows
    /// without a gap.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn catch_up(
        &mut self,
        ws: &mut WebSocket,
        sym: &Symbol,
        topic: Topic,
        h: u64,
        pos: Option<Position>,
        epoch: Option<&str>,
        latest: Option<mdhub_cache::Latest>,
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
        let start = match start {
            Some(s) => s,
            None => self
                .snapshot(ws, sym, topic, latest.as_ref())
                .await?
                .unwrap_or(h),
        };
        if start < h {
            let from = Position {
                topic,
                partition,
                offset: start,
            };
            let replays = self.shared.replays.clone();
            let ended = match tokio::time::timeout(REPLAY_WAIT, replays.acquire_owned()).await {
                Ok(Ok(_running)) => self.replay(ws, sym, from, h).await?,
                _ => ReplayEnd::Limit,
            };
            if ended == ReplayEnd::Limit {
                // A fresh state instead of the rest; live updates follow.
                self.replay_reset(ws, sym, topic, ResetReason::ReplayLimit)
                    .await?;
                self.snapshot(ws, sym, topic, latest.as_ref()).await?;
            }
        }
        Ok(())
    }

    /// Sends the latest state of `sym` on `topic` as a `snapshot` frame (when
    /// there is one) and returns the offset after it.
    async fn snapshot(
        &mut self,
        ws: &mut WebSocket,
        sym: &Symbol,
        topic: Topic,
        latest: Option<&mdhub_cache::Latest>,
    ) -> Result<Option<u64>, axum::Error> {
        let Some(p) = snapshot_of(latest, topic) else {
            return Ok(None);
        };
        let mut buf = Vec::with_capacity(512);
        data_frame(
            DataKind::Snapshot,
            p.position,
            &json::to_vec(&p.event),
            &mut buf,
        );
        ws.feed(Message::Text(Utf8Bytes::from(
            String::from_utf8_lossy(&buf).into_owned(),
        )))
        .await?;
        self.shared
            .metrics
            .deliveries_total
            .fetch_add(1, Ordering::Relaxed);
        self.set_last(sym, topic, p.position.offset);
        Ok(Some(p.position.offset + 1))
    }

    fn set_last(&mut self, sym: &Symbol, topic: Topic, offset: u64) {
        if let Some(st) = self.subs.get_mut(sym) {
            st[idx(topic)].last = Some(offset);
        }
    }

    /// Send every record of `sym` in `[from.offset, h)` of its partition,
    /// within the connection's replay budget.
    async fn replay(
        &mut self,
        ws: &mut WebSocket,
        sym: &Symbol,
        from: Position,
        h: u64,
    ) -> Result<ReplayEnd, axum::Error> {
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
                if let Some(t) = frame_text(DataKind::Update, d, &mut buf) {
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
    async fn replay_reset(
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

fn snapshot_of(latest: Option<&mdhub_cache::Latest>, topic: Topic) -> Option<&Positioned> {
    let l = latest?;
    match topic {
        Topic::Quotes => l.quote.as_ref(),
        Topic::Trades => l.trade.as_ref(),
        // Feed status has no snapshot: a subscriber gets it live (or replayed
        // from a resume position).
        Topic::Status => None,
    }
}
