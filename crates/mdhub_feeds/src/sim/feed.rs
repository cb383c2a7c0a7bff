//! [`SimFeed`]: a simulated venue paced in real time.

use std::sync::Arc;
use std::time::Duration;

use mdhub_types::{Event, Symbol, Timestamp, Venue};
use parking_lot::Mutex;
use tokio::sync::mpsc::error::TrySendError;
use tokio::time::{Instant, MissedTickBehavior};

use super::config::SimConfig;
use super::market::{SimMarket, mix};
use crate::{Feed, FeedContext, FeedError, FeedState};

/// How often the pacing loop wakes up to emit the events that fell due.
const TICK: Duration = Duration::from_millis(1);
/// At most this much time's worth of events is emitted late: when the
/// pipeline is slower than the configured rate (backpressure), the simulated
/// venue slows down with it instead of piling up a backlog.
const MAX_BACKLOG_S: f64 = 0.1;

/// One simulated venue as a [`Feed`]. Build them with [`sim_feeds`].
#[derive(Debug)]
pub struct SimFeed {
    venue: Venue,
    symbols: Vec<Symbol>,
    /// Average events per second of this venue.
    rate: f64,
    /// The generator's state between runs: a restarted feed carries on from
    /// the prices where it stopped.
    market: Mutex<SimMarket>,
}

/// One [`SimFeed`] per configured venue, sharing `cfg.rate` in proportion to
/// their number of symbols. Validates `cfg` first. With `cfg.seed` unset a
/// random seed is drawn and logged.
pub fn sim_feeds(cfg: &SimConfig) -> Result<Vec<Arc<dyn Feed>>, FeedError> {
    cfg.validate()?;
    let seed = cfg.seed.unwrap_or_else(rand::random);
    let total: usize = cfg.venues.iter().map(|v| v.symbols.len()).sum();
    tracing::info!(
        seed,
        rate = cfg.rate,
        venues = cfg.venues.len(),
        "simulated exchanges"
    );
    let feeds = (0..cfg.venues.len())
        .map(|i| {
            let market =
                SimMarket::from_validated(cfg, &cfg.venues[i..=i], mix(seed, 1000 + i as u64));
            let share = cfg.venues[i].symbols.len() as f64 / total as f64;
            Arc::new(SimFeed {
                venue: market.venues().remove(0),
                symbols: market.symbols(),
                rate: cfg.rate * share,
                market: Mutex::new(market),
            }) as Arc<dyn Feed>
        })
        .collect();
    Ok(feeds)
}

impl SimFeed {
    /// Average events per second of this venue (before bursts and quiet spells).
    pub fn rate(&self) -> f64 {
        self.rate
    }

    /// Emit events at the rate until shutdown or a closed pipeline.
    async fn pace(&self, market: &mut SimMarket, ctx: &FeedContext) -> Result<(), FeedError> {
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut last = Instant::now();
        let mut due = 0.0f64;
        loop {
            tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => return Ok(()),
                () = ctx.out.closed() => return Err(self.closed()),
                _ = ticker.tick() => {}
            }
            let now = Instant::now();
            let elapsed = now.duration_since(last).as_secs_f64();
            last = now;
            let rate = self.rate * market.rate_multiplier(Timestamp::now());
            due = (due + rate * elapsed).min(rate * MAX_BACKLOG_S + 1.0);
            let batch = due.floor();
            due -= batch;
            for _ in 0..batch as u64 {
                if ctx.shutdown.is_cancelled() {
                    return Ok(());
                }
                let ts_received = Timestamp::now();
                let event = market.next_event(ts_received);
                if !self.send(event, ctx).await? {
                    return Ok(());
                }
                ctx.status.record_event(ts_received);
            }
        }
    }

    /// Send one event, waiting while the channel is full. `Ok(false)` when
    /// shutdown came first.
    async fn send(&self, event: Event, ctx: &FeedContext) -> Result<bool, FeedError> {
        match ctx.out.try_send(event) {
            Ok(()) => Ok(true),
            Err(TrySendError::Closed(_)) => Err(self.closed()),
            Err(TrySendError::Full(event)) => tokio::select! {
                biased;
                () = ctx.shutdown.cancelled() => Ok(false),
                sent = ctx.out.send(event) => sent.map(|()| true).map_err(|_| self.closed()),
            },
        }
    }

    fn closed(&self) -> FeedError {
        FeedError::PipelineClosed {
            venue: self.venue.to_string(),
        }
    }
}

#[async_trait::async_trait]
impl Feed for SimFeed {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn symbols(&self) -> Vec<Symbol> {
        self.symbols.clone()
    }

    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        tracing::info!(venue = %self.venue, rate = self.rate, "simulated venue live");
        ctx.status.set_state(FeedState::Live);
        let mut market = self.market.lock().clone();
        let result = self.pace(&mut market, &ctx).await;
        *self.market.lock() = market;
        ctx.status.set_state(FeedState::Stopped);
        match &result {
            Ok(()) => tracing::info!(venue = %self.venue, "simulated venue stopped"),
            Err(e) => tracing::warn!(venue = %self.venue, error = %e, "simulated venue stopped"),
        }
        result
    }
}
