//! Subscribe and unsubscribe: which symbols, venues and channels a
//! connection holds, with entitlements and limits checked, and each new
//! stream brought up to live (see `replay`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::WebSocket;
use futures_util::SinkExt;
use mdhub_types::protocol::{ErrorCode, ResetReason, Resume, ServerMessage};
use mdhub_types::{ChannelSet, Instrument, Symbol, Topic, Venue};

use super::Conn;
use super::stream::{ChannelState, idx};
use crate::auth::Grant;

/// The fields of a subscribe request (`ClientMessage::Subscribe` without its id).
pub(super) struct Subscribe {
    pub(super) symbols: Vec<String>,
    pub(super) channels: Option<Vec<String>>,
    pub(super) resume: Option<Resume>,
    pub(super) max_rate_ms: Option<u64>,
}

/// One symbol of a subscribe request: which venues, and the cache's latest
/// state of each (`None`: the cache could not answer).
struct Wanted {
    symbol: Symbol,
    /// `None`: every venue.
    venues: Option<BTreeSet<Venue>>,
    latest: Option<Vec<mdhub_cache::Latest>>,
    /// The names the request used for it (for errors).
    names: Vec<String>,
}

/// Largest `max_rate_ms` a subscription may ask for.
const MAX_RATE_MS: u64 = 60_000;

impl Conn {
    fn channel_mask(channels: Option<Vec<String>>) -> Result<ChannelSet, Vec<String>> {
        let Some(list) = channels else {
            return Ok(ChannelSet::PRICES);
        };
        match ChannelSet::parse(&list) {
            Ok(set) if !set.is_empty() => Ok(set),
            Ok(_) => Err(Vec::new()),
            Err(bad) => Err(bad),
        }
    }

    /// The channel mask, or `None` after telling the client which channels are wrong.
    async fn mask_or_error(
        &self,
        ws: &mut WebSocket,
        channels: Option<Vec<String>>,
        id: &Option<serde_json::Value>,
    ) -> Result<Option<ChannelSet>, axum::Error> {
        match Self::channel_mask(channels) {
            Ok(m) => Ok(Some(m)),
            Err(bad) => {
                let m = "channels must be \"quotes\", \"trades\" and/or \"status\"".to_string();
                self.error(ws, ErrorCode::InvalidChannel, m, bad, id.clone())
                    .await?;
                Ok(None)
            }
        }
    }

    /// The subscription set as the client names it: `SYMBOL` for channels
    /// on every venue, `SYMBOL@venue` for channels narrowed to venues.
    pub(super) fn subscriptions(&self) -> BTreeMap<String, Vec<Topic>> {
        let mut out: BTreeMap<String, Vec<Topic>> = BTreeMap::new();
        for (s, st) in &self.subs {
            for t in Topic::ALL {
                let ch = &st[idx(t)];
                if !ch.on {
                    continue;
                }
                match &ch.venues {
                    None => out.entry(s.to_string()).or_default().push(t),
                    Some(vs) => {
                        for v in vs {
                            out.entry(format!("{s}@{v}")).or_default().push(t);
                        }
                    }
                }
            }
        }
        out
    }

    pub(super) async fn unsubscribe(
        &mut self,
        ws: &mut WebSocket,
        symbols: Vec<String>,
        channels: Option<Vec<String>>,
        id: Option<serde_json::Value>,
    ) -> Result<(), axum::Error> {
        let Some(mask) = self.mask_or_error(ws, channels, &id).await? else {
            return Ok(());
        };
        let mut refused = Vec::new();
        for s in symbols {
            let Ok(inst) = Instrument::parse(&s) else {
                continue;
            };
            let Some(state) = self.subs.get_mut(&inst.symbol) else {
                continue;
            };
            let mut off = ChannelSet::EMPTY;
            for t in mask.topics() {
                let ch = &mut state[idx(t)];
                match (&inst.venue, &mut ch.venues) {
                    (None, _) => off = off.union(ChannelSet::of(t)),
                    (Some(v), Some(vs)) => {
                        vs.remove(v);
                        if vs.is_empty() {
                            off = off.union(ChannelSet::of(t));
                        }
                    }
                    // Every venue minus one is not a set this server keeps.
                    (Some(_), None) if ch.on => refused.push(s.clone()),
                    (Some(_), None) => {}
                }
            }
            for t in off.topics() {
                state[idx(t)] = ChannelState::default();
            }
            self.shared
                .hub
                .unregister(self.handle.id, &inst.symbol, off);
            if state.iter().all(|c| !c.on) {
                self.subs.remove(&inst.symbol);
            }
        }
        let ack = ServerMessage::Ack {
            action: "unsubscribe".into(),
            id: id.clone(),
            subscriptions: self.subscriptions(),
        };
        self.send(ws, ack).await?;
        if !refused.is_empty() {
            refused.dedup();
            let m = "subscribed on every venue: unsubscribe the symbol, then subscribe SYMBOL@venue for the venues you want".to_string();
            self.error(ws, ErrorCode::BadRequest, m, refused, id)
                .await?;
        }
        Ok(())
    }

    pub(super) async fn subscribe(
        &mut self,
        ws: &mut WebSocket,
        req: Subscribe,
        id: Option<serde_json::Value>,
    ) -> Result<(), axum::Error> {
        let Subscribe {
            symbols,
            channels,
            resume,
            max_rate_ms,
        } = req;
        let Some(mask) = self.mask_or_error(ws, channels, &id).await? else {
            return Ok(());
        };
        let rate = match max_rate_ms {
            None => None,
            Some(ms @ 1..=MAX_RATE_MS) => Some(Duration::from_millis(ms)),
            Some(_) => {
                let m = format!("max_rate_ms must be between 1 and {MAX_RATE_MS}");
                return self.error(ws, ErrorCode::BadRequest, m, vec![], id).await;
            }
        };
        if symbols.is_empty() {
            return self
                .error(
                    ws,
                    ErrorCode::BadRequest,
                    "\"symbols\" is empty".into(),
                    vec![],
                    id,
                )
                .await;
        }
        let mut invalid = Vec::new();
        let mut unknown = Vec::new();
        let mut accepted: Vec<Wanted> = Vec::new();
        for s in symbols {
            let Ok(inst) = Instrument::parse(&s) else {
                invalid.push(s);
                continue;
            };
            let at = match accepted.iter().position(|w| w.symbol == inst.symbol) {
                Some(at) => at,
                None => {
                    let latest = match self.shared.cache.get(&inst.symbol).await {
                        Ok(l) => Some(l),
                        // Cache down: accept and stream; no snapshot for now.
                        Err(e) => {
                            tracing::warn!(error = %e, "cache unavailable for a snapshot");
                            None
                        }
                    };
                    accepted.push(Wanted {
                        symbol: inst.symbol.clone(),
                        venues: Some(BTreeSet::new()),
                        latest,
                        names: Vec::new(),
                    });
                    accepted.len() - 1
                }
            };
            let w = &mut accepted[at];
            let held = self.subs.get(&w.symbol).is_some_and(|st| {
                st.iter()
                    .any(|c| c.on && inst.venue.as_ref().is_none_or(|v| c.wants(v)))
            });
            let known = match &w.latest {
                None => true,
                Some(l) => l.iter().any(|l| inst.matches(l.venue.as_str())),
            };
            if !known && !held {
                unknown.push(s);
                continue;
            }
            w.names.push(s);
            match (inst.venue, &mut w.venues) {
                (None, all) => *all = None,
                (Some(v), Some(set)) => {
                    set.insert(v);
                }
                (Some(_), None) => {}
            }
        }
        accepted.retain(|w| !w.names.is_empty());
        // Entitlements: the grant's channels, and its symbols.
        let mut not_entitled = Vec::new();
        let grant = self.grant.clone().unwrap_or_else(Grant::open);
        let mask = grant.channels(mask);
        accepted.retain(|w| {
            let ok = !mask.is_empty() && grant.allows(w.symbol.as_str());
            if !ok {
                not_entitled.extend(w.names.iter().cloned());
            }
            ok
        });
        let new = accepted
            .iter()
            .filter(|w| !self.subs.contains_key(&w.symbol))
            .count();
        if self.subs.len() + new > self.shared.cfg.max_symbols {
            let m = format!(
                "this connection may hold at most {} symbols ({} now, {} new)",
                self.shared.cfg.max_symbols,
                self.subs.len(),
                new
            );
            let names = accepted.into_iter().flat_map(|w| w.names).collect();
            return self
                .error(ws, ErrorCode::TooManySymbols, m, names, id)
                .await;
        }
        let mut todo = Vec::new();
        // Frames held under an old max_rate_ms that a new one makes due.
        let mut flush: Option<Instant> = None;
        for w in accepted {
            let h = self.shared.hub.register(&self.handle, &w.symbol, mask);
            let state = self.subs.entry(w.symbol.clone()).or_default();
            let latest = Arc::new(w.latest.unwrap_or_default());
            for t in mask.topics() {
                let ch = &mut state[idx(t)];
                if let Some(due) = ch.set_rate(rate, Instant::now()) {
                    flush = Some(flush.map_or(due, |f: Instant| f.min(due)));
                }
                let widened = if !ch.on {
                    *ch = ChannelState {
                        on: true,
                        rate,
                        venues: w.venues.clone(),
                        ..ChannelState::default()
                    };
                    false
                } else {
                    let wider = match (&ch.venues, &w.venues) {
                        (None, _) => None,
                        (Some(_), None) => Some(None),
                        (Some(have), Some(add)) if !add.is_subset(have) => {
                            Some(Some(have.union(add).cloned().collect()))
                        }
                        (Some(_), Some(_)) => None,
                    };
                    let Some(venues) = wider else {
                        continue;
                    };
                    // More venues on a live stream: it starts over, so the
                    // new venues' snapshots keep positions in log order.
                    ch.venues = venues;
                    ch.restart();
                    true
                };
                todo.push((w.symbol.clone(), t, h[idx(t)], latest.clone(), widened));
            }
        }
        if let Some(due) = flush {
            self.flush_at = Some(self.flush_at.map_or(due, |f| f.min(due)));
        }
        let ack = ServerMessage::Ack {
            action: "subscribe".into(),
            id: id.clone(),
            subscriptions: self.subscriptions(),
        };
        self.send(ws, ack).await?;
        if !invalid.is_empty() {
            let m = "not canonical symbols (use e.g. AAPL, BTC-USDT, EUR-USD, or BTC-USDT@binance for one venue)".to_string();
            self.error(ws, ErrorCode::InvalidSymbol, m, invalid, id.clone())
                .await?;
        }
        if !unknown.is_empty() {
            let m = "symbols (or venues) this hub has no data for (GET /v1/symbols lists them)"
                .to_string();
            self.error(ws, ErrorCode::UnknownSymbol, m, unknown, id.clone())
                .await?;
        }
        if !not_entitled.is_empty() {
            let m = "your credential is not entitled to these symbols (or channels)".to_string();
            self.error(ws, ErrorCode::NotEntitled, m, not_entitled, id.clone())
                .await?;
        }
        for (sym, topic, h, latest, widened) in todo {
            if widened {
                self.replay_reset(ws, &sym, topic, ResetReason::VenuesChanged)
                    .await?;
                self.catch_up(ws, &sym, topic, h, None, None, &latest, &id)
                    .await?;
                continue;
            }
            let pos = resume
                .as_ref()
                .and_then(|r| r.positions.get(sym.as_str()))
                .and_then(|m| m.get(topic.channel()));
            self.catch_up(
                ws,
                &sym,
                topic,
                h,
                pos.copied(),
                resume.as_ref().map(|r| r.epoch.as_str()),
                &latest,
                &id,
            )
            .await?;
        }
        ws.flush().await
    }
}
