//! The activity regime of a venue: normal trading, bursts and quiet spells
//! (the model is described in the module docs of `sim`).
//!
//! Stays are a minimum plus an exponential time. The multipliers are divided
//! by their long-run time average ([`NORMALIZER`]) so that the average rate
//! is exactly the configured one.

use mdhub_types::Timestamp;
use rand::SeedableRng;
use rand::rngs::SmallRng;

use super::dist::{chance, exponential};

/// The regimes: (multiplier, minimum stay s, mean extra stay s).
const NORMAL: (f64, f64, f64) = (1.0, 4.0, 16.0);
const BURST: (f64, f64, f64) = (5.0, 1.0, 2.0);
const QUIET: (f64, f64, f64) = (0.25, 2.0, 6.0);
/// Probability that a normal spell ends in a burst rather than a quiet one.
const P_BURST: f64 = 0.4;

/// Long-run time average of the raw multiplier. Per cycle of the embedded
/// chain, normal is visited 1/2 of the time, burst 0.4/2, quiet 0.6/2;
/// time spent is visits × mean stay.
const NORMALIZER: f64 = {
    let n = 0.5 * (NORMAL.1 + NORMAL.2);
    let b = 0.5 * P_BURST * (BURST.1 + BURST.2);
    let q = 0.5 * (1.0 - P_BURST) * (QUIET.1 + QUIET.2);
    (n * NORMAL.0 + b * BURST.0 + q * QUIET.0) / (n + b + q)
};

/// A jump of `now` larger than this restarts the chain instead of replaying it.
const MAX_CATCH_UP_NS: i64 = 3_600_000_000_000;

/// Which regime a venue is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Phase {
    Normal,
    Burst,
    Quiet,
}

impl Phase {
    fn params(self) -> (f64, f64, f64) {
        match self {
            Phase::Normal => NORMAL,
            Phase::Burst => BURST,
            Phase::Quiet => QUIET,
        }
    }
}

/// The regime process of one venue. It draws from its own generator, so its
/// course depends only on the seed and the times it is asked about — not on
/// how many events were generated in between.
#[derive(Debug, Clone)]
pub(super) struct Regime {
    rng: SmallRng,
    enabled: bool,
    phase: Phase,
    /// When the current phase ends; `None` before the first call.
    until: Option<Timestamp>,
}

impl Regime {
    pub(super) fn new(enabled: bool, seed: u64) -> Self {
        Regime {
            rng: SmallRng::seed_from_u64(seed),
            enabled,
            phase: Phase::Normal,
            until: None,
        }
    }

    /// Advance to `now` and return the rate multiplier (long-run mean 1).
    pub(super) fn multiplier(&mut self, now: Timestamp) -> f64 {
        if !self.enabled {
            return 1.0;
        }
        let rng = &mut self.rng;
        let until = match self.until {
            Some(u) if now.nanos_since(u) > MAX_CATCH_UP_NS => None,
            other => other,
        };
        let mut until = match until {
            Some(u) => u,
            None => {
                self.phase = Phase::Normal;
                now.add_nanos(secs(5.0 + exponential(rng, NORMAL.2)))
            }
        };
        while now >= until {
            self.phase = match self.phase {
                Phase::Normal if chance(rng, P_BURST) => Phase::Burst,
                Phase::Normal => Phase::Quiet,
                Phase::Burst | Phase::Quiet => Phase::Normal,
            };
            let (_, min, extra) = self.phase.params();
            until = until.add_nanos(secs(min + exponential(rng, extra)));
        }
        self.until = Some(until);
        self.phase.params().0 / NORMALIZER
    }

    /// The current phase (for tests and logs).
    #[cfg(test)]
    pub(super) fn phase(&self) -> Phase {
        self.phase
    }
}

fn secs(s: f64) -> i64 {
    (s * 1e9) as i64
}
