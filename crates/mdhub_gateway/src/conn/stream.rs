//! Per-stream delivery state of a connection (what was sent, `max_rate_ms`
//! throttling) and the client's frame allowance.

use std::time::{Duration, Instant};

use mdhub_types::Topic;

use crate::hub::Frame;

#[derive(Debug, Default)]
pub(super) struct ChannelState {
    pub(super) on: bool,
    /// Offset of the last data frame sent for this symbol and channel.
    pub(super) last: Option<u64>,
    /// `max_rate_ms`: at most one frame per this interval.
    pub(super) rate: Option<Duration>,
    /// With a rate: when the next frame may go out.
    pub(super) next_at: Option<Instant>,
    /// With a rate: the latest frame, waiting for `next_at`.
    pub(super) held: Option<Frame>,
}

/// What [`ChannelState::throttle`] decided.
pub(super) enum Throttled {
    Send(Frame),
    /// Held until this instant.
    Held(Instant),
}

impl ChannelState {
    /// Apply `max_rate_ms`: send now, or hold as the stream's latest.
    pub(super) fn throttle(&mut self, f: Frame, now: Instant) -> Throttled {
        let f = match self.held.take() {
            Some(mut older) => {
                older.replace(f);
                older
            }
            None => f,
        };
        let Some(rate) = self.rate else {
            return Throttled::Send(f);
        };
        match self.next_at {
            Some(due) if now < due => {
                self.held = Some(f);
                Throttled::Held(due)
            }
            _ => {
                self.next_at = Some(now + rate);
                Throttled::Send(f)
            }
        }
    }

    /// The held frame, if its time has come.
    pub(super) fn due(&mut self, now: Instant) -> Option<Frame> {
        let rate = self.rate?;
        if self.next_at.is_some_and(|d| d > now) {
            return None;
        }
        let f = self.held.take()?;
        self.next_at = Some(now + rate);
        Some(f)
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
