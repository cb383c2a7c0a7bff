//! Per-stream delivery state of a connection (what was sent, `max_rate_ms`
//! throttling) and the client's frame allowance.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use mdhub_types::{Topic, Venue};

use crate::hub::Frame;

#[derive(Debug, Default)]
pub(super) struct ChannelState {
    pub(super) on: bool,
    /// The venues asked for (`SYMBOL@venue`); `None`: every venue.
    pub(super) venues: Option<BTreeSet<Venue>>,
    /// Offset of the last data frame sent for this symbol and channel (any
    /// venue: one symbol's records of all venues share a partition, and
    /// frames leave in log order).
    pub(super) last: Option<u64>,
    /// `max_rate_ms`: at most one frame per venue per this interval.
    pub(super) rate: Option<Duration>,
    /// With a rate: when the next frames may go out.
    pub(super) next_at: Option<Instant>,
    /// With a rate: the latest frame of each venue, waiting for `next_at`.
    pub(super) held: Vec<Frame>,
}

/// What [`ChannelState::throttle`] decided.
pub(super) enum Throttled {
    /// Send this frame.
    Send(Frame),
    /// Send these (held ones with the new one), in log order.
    SendAll(Vec<Frame>),
    /// Held until this instant.
    Held(Instant),
}

impl ChannelState {
    /// Whether frames of `venue` belong to this subscription.
    pub(super) fn wants(&self, venue: &Venue) -> bool {
        self.venues.as_ref().is_none_or(|s| s.contains(venue))
    }

    /// Apply `max_rate_ms`: send now, or hold as its venue's latest.
    pub(super) fn throttle(&mut self, f: Frame, now: Instant) -> Throttled {
        if self.held.is_empty() && self.rate.is_none() {
            return Throttled::Send(f);
        }
        match self.held.iter_mut().find(|h| h.venue == f.venue) {
            Some(older) => older.replace(f),
            None => self.held.push(f),
        }
        let Some(rate) = self.rate else {
            return Throttled::SendAll(self.take_held());
        };
        match self.next_at {
            Some(due) if now < due => Throttled::Held(due),
            _ => {
                self.next_at = Some(now + rate);
                Throttled::SendAll(self.take_held())
            }
        }
    }

    fn take_held(&mut self) -> Vec<Frame> {
        let mut out = std::mem::take(&mut self.held);
        out.sort_by_key(|f| f.pos.offset);
        out
    }

    /// The held frames (log order), if their time has come (at once when
    /// the rate was lifted).
    pub(super) fn due(&mut self, now: Instant) -> Vec<Frame> {
        if self.held.is_empty() || self.next_at.is_some_and(|d| d > now) {
            return Vec::new();
        }
        self.next_at = self.rate.map(|rate| now + rate);
        self.take_held()
    }

    /// A subscribe changed `max_rate_ms`: a faster (or no) rate takes effect
    /// now, so a page that comes back from a slow rate is not kept waiting
    /// for the old interval. Returns when the held frames are due.
    pub(super) fn set_rate(&mut self, rate: Option<Duration>, now: Instant) -> Option<Instant> {
        self.rate = rate;
        self.next_at = match (rate, self.next_at) {
            (Some(r), Some(at)) => Some(at.min(now + r)),
            _ => None,
        };
        (!self.held.is_empty()).then(|| self.next_at.unwrap_or(now))
    }

    /// Forget what was sent and held: the stream starts over (a reset).
    pub(super) fn restart(&mut self) {
        self.last = None;
        self.next_at = None;
        self.held.clear();
    }
}

pub(super) type SymbolState = [ChannelState; 3];

pub(super) fn idx(t: Topic) -> usize {
    match t {
        Topic::Quotes => 0,
        Topic::Trades => 1,
        Topic::Status => 2,
    }
}

/// A token bucket: `rate` tokens a second, at most `burst` saved up.
#[derive(Debug)]
pub(super) struct TokenBucket {
    pub(super) rate: f64,
    burst: f64,
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    pub(super) fn new(rate: u32, burst: u32) -> TokenBucket {
        let burst = f64::from(burst.max(1));
        TokenBucket {
            rate: f64::from(rate),
            burst,
            tokens: burst,
            at: Instant::now(),
        }
    }

    /// Take a token if there is one.
    pub(super) fn take(&mut self, now: Instant) -> bool {
        let refill = now.saturating_duration_since(self.at).as_secs_f64() * self.rate;
        self.tokens = (self.tokens + refill).min(self.burst);
        self.at = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}
