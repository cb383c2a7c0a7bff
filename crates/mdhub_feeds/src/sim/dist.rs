//! The few random distributions the simulator draws from, on a seeded
//! [`SmallRng`] (rand 0.9 has no normal distribution without `rand_distr`).

use rand::Rng;
use rand::rngs::SmallRng;

/// A standard normal draw (Box–Muller).
pub(super) fn normal(rng: &mut SmallRng) -> f64 {
    // 1 - u is in (0, 1], so the logarithm is finite.
    let u1 = 1.0 - rng.random::<f64>();
    let u2 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// An exponential draw with the given mean.
pub(super) fn exponential(rng: &mut SmallRng, mean: f64) -> f64 {
    -mean * (1.0 - rng.random::<f64>()).ln()
}

/// A log-normal draw with median 1 and log-standard-deviation `sigma`.
pub(super) fn log_normal(rng: &mut SmallRng, sigma: f64) -> f64 {
    (sigma * normal(rng)).exp()
}

/// True with probability `p`.
pub(super) fn chance(rng: &mut SmallRng, p: f64) -> bool {
    rng.random::<f64>() < p
}

/// An index drawn in proportion to `weights` (non-empty, positive sum).
pub(super) fn weighted(rng: &mut SmallRng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut x = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}
