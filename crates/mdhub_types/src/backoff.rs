//! One retry policy for every loop in mdhub that waits before trying again:
//! venue reconnects, a sink that is down, a stage the supervisor restarts.
//!
//! Capped exponential backoff with *full jitter*: attempt `n` (1-based)
//! waits a uniformly random time in `[0, min(cap, base × 2^(n-1))]`, so many
//! parties that failed together (every client of a restarted gateway, every
//! stage of a restarted broker) come back spread out rather than in waves.
//! After a success that lasted at least [`Backoff::reset_after`], the next
//! failure starts again from `base`; a success that did not last as long
//! keeps the ceiling where it was, so a thing that flaps does not hammer.

use std::time::Duration;

use rand::Rng;

/// A capped, fully jittered exponential backoff (see the module docs).
#[derive(Debug, Clone)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
    reset_after: Duration,
    attempt: u32,
}

impl Backoff {
    /// Start at `base`, never wait more than `cap`; a success that lasts a
    /// minute resets it (change that with [`Backoff::with_reset_after`]).
    pub fn new(base: Duration, cap: Duration) -> Self {
        Backoff {
            base,
            cap: cap.max(base),
            reset_after: Duration::from_secs(60),
            attempt: 0,
        }
    }

    /// How long a success must last before the next failure starts from `base` again.
    pub fn with_reset_after(mut self, healthy_for: Duration) -> Self {
        self.reset_after = healthy_for;
        self
    }

    /// The healthy time after which the backoff starts over.
    pub fn reset_after(&self) -> Duration {
        self.reset_after
    }

    /// Failures since the last reset.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// The upper bound of the next wait: `min(cap, base × 2^attempts)`.
    pub fn ceiling(&self) -> Duration {
        self.base
            .saturating_mul(1u32 << self.attempt.min(20))
            .min(self.cap)
    }

    /// Record a failure and return how long to wait before the next try:
    /// uniform in `[0, ceiling]`.
    pub fn next_delay(&mut self) -> Duration {
        let ceiling = self.ceiling();
        self.attempt = self.attempt.saturating_add(1);
        let ms = ceiling.as_millis().min(u128::from(u64::MAX)) as u64;
        Duration::from_millis(rand::rng().random_range(0..=ms))
    }

    /// A success: the next failure waits from `base` again.
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// A run that was healthy for `d` ended: reset when `d` reaches
    /// [`Backoff::reset_after`], otherwise keep climbing.
    pub fn healthy_for(&mut self, d: Duration) {
        if d >= self.reset_after {
            self.reset();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_stay_under_a_doubling_ceiling_up_to_the_cap() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_millis(1_000));
        let mut b = Backoff::new(base, cap);
        let ceilings = [100, 200, 400, 800, 1_000, 1_000, 1_000];
        for want in ceilings {
            assert_eq!(b.ceiling(), Duration::from_millis(want));
            for _ in 0..50 {
                let mut probe = b.clone();
                assert!(probe.next_delay() <= Duration::from_millis(want));
            }
            b.next_delay();
        }
        assert_eq!(b.attempts(), 7);
    }

    #[test]
    fn jitter_spreads_the_waits() {
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..200 {
            let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1));
            seen.insert(b.next_delay().as_millis() / 100);
        }
        assert!(seen.len() >= 5, "full jitter covers [0, ceiling]: {seen:?}");
    }

    #[test]
    fn only_a_lasting_success_resets() {
        let mut b = Backoff::new(Duration::from_millis(10), Duration::from_secs(10))
            .with_reset_after(Duration::from_secs(5));
        for _ in 0..4 {
            b.next_delay();
        }
        b.healthy_for(Duration::from_secs(1));
        assert_eq!(b.ceiling(), Duration::from_millis(160));
        b.healthy_for(Duration::from_secs(5));
        assert_eq!(b.ceiling(), Duration::from_millis(10));
        assert_eq!(b.attempts(), 0);
    }

    #[test]
    fn huge_attempt_counts_saturate_at_the_cap() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(30));
        for _ in 0..100 {
            assert!(b.next_delay() <= Duration::from_secs(30));
        }
        assert_eq!(b.ceiling(), Duration::from_secs(30));
    }
}
