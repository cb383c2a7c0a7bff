//! One simulated instrument: its fair price on the tick grid and its top of book.

use mdhub_types::{Decimal, Side, Symbol, Timestamp};
use rand::Rng;
use rand::rngs::SmallRng;

use super::config::{MAX_GROWTH, SimSymbolConfig, in_units};
use super::dist::{chance, log_normal, normal};

/// Rate at which the log price is pulled back to the start price: a half-life
/// of one day, so a demo left running for weeks still shows sensible prices.
const REVERSION_PER_S: f64 = std::f64::consts::LN_2 / 86_400.0;
/// Largest value of a Decimal mantissa (38 digits).
const MAX_MANTISSA: i128 = 10i128.pow(38) - 1;

/// The fixed description of an instrument, from validated configuration.
#[derive(Debug, Clone)]
struct Spec {
    symbol: Symbol,
    tick: Decimal,
    lot: Decimal,
    start_ticks: f64,
    /// Highest price and size in ticks and lots: both stay representable.
    max_ticks: i64,
    max_lots: i64,
    size_lots: f64,
    round_lots: Option<i64>,
    volatility: f64,
    spread_ticks: f64,
}

/// An instrument's evolving state.
#[derive(Debug, Clone)]
pub(super) struct Book {
    spec: Spec,
    /// ln(fair price / start price).
    log_dev: f64,
    last_update: Option<Timestamp>,
    /// Sign of the latest move of the fair price, in ticks (-1, 0, 1).
    trend: f64,
    bid: i64,
    ask: i64,
    bid_size: i64,
    ask_size: i64,
}

/// A top-of-book state in ticks and lots.
pub(super) struct Touch {
    pub(super) bid_price: Decimal,
    pub(super) bid_size: Decimal,
    pub(super) ask_price: Decimal,
    pub(super) ask_size: Decimal,
}

/// A trade in decimals.
pub(super) struct Fill {
    pub(super) price: Decimal,
    pub(super) size: Decimal,
    pub(super) side: Side,
}

fn units(text: &str, unit: Decimal) -> i64 {
    let d = Decimal::parse(text).expect("validated: a decimal");
    // Validation checked it is a whole number of units, at most 10^15.
    in_units(d, unit).expect("validated: a multiple of its unit") as i64
}

/// The largest count of `unit` whose value is still a Decimal, capped at `cap`.
fn representable(unit: Decimal, cap: i64) -> i64 {
    let n = MAX_MANTISSA / unit.mantissa();
    i64::try_from(n).unwrap_or(i64::MAX).min(cap)
}

impl Book {
    /// From a validated symbol configuration.
    pub(super) fn new(cfg: &SimSymbolConfig) -> Self {
        let tick = Decimal::parse(&cfg.tick_size).expect("validated: tick_size");
        let lot = Decimal::parse(&cfg.lot_size).expect("validated: lot_size");
        let start = units(&cfg.start_price, tick);
        let size = units(&cfg.size, lot);
        let spec = Spec {
            symbol: Symbol::new(&cfg.symbol).expect("validated: symbol"),
            tick,
            lot,
            start_ticks: start as f64,
            // Validation checked that MAX_GROWTH times the start fits.
            max_ticks: representable(tick, start.saturating_mul(MAX_GROWTH)),
            max_lots: representable(lot, size.saturating_mul(MAX_GROWTH)),
            size_lots: size as f64,
            round_lots: cfg.round_lot.as_deref().map(|r| units(r, lot)),
            volatility: cfg.volatility,
            spread_ticks: f64::from(cfg.spread_ticks),
        };
        let spread = i64::from(cfg.spread_ticks);
        // Validation keeps the spread within the start price, far below max_ticks.
        let bid = (start - spread / 2).max(1);
        Book {
            log_dev: 0.0,
            last_update: None,
            trend: 0.0,
            bid,
            ask: bid + spread,
            bid_size: size,
            ask_size: size,
            spec,
        }
    }

    pub(super) fn symbol(&self) -> &Symbol {
        &self.spec.symbol
    }

    /// The fair price in ticks, kept within the representable range.
    fn fair(&self) -> f64 {
        (self.spec.start_ticks * self.log_dev.exp()).clamp(1.0, (self.spec.max_ticks - 1) as f64)
    }

    /// Keep the fair price inside the representable range, so it never
    /// sticks to a bound.
    fn clamp_dev(&mut self) {
        let lo = (1.0 / self.spec.start_ticks).ln();
        let hi = ((self.spec.max_ticks - 1) as f64 / self.spec.start_ticks).ln();
        self.log_dev = self.log_dev.clamp(lo, hi);
    }

    /// Move the fair price to `now`: an Ornstein–Uhlenbeck step of the log
    /// price (a random walk weakly pulled to the start), in business time —
    /// `activity` (the regime multiplier) scales the variance.
    pub(super) fn advance(&mut self, now: Timestamp, activity: f64, rng: &mut SmallRng) {
        let dt = match self.last_update {
            Some(t) => (now.nanos_since(t).max(0) as f64) * 1e-9,
            None => 0.0,
        };
        self.last_update = Some(self.last_update.map_or(now, |t| t.max(now)));
        if dt <= 0.0 || self.spec.volatility == 0.0 {
            return;
        }
        let before = self.fair().round();
        let decay = (-REVERSION_PER_S * dt).exp();
        let var = -(-2.0 * REVERSION_PER_S * dt).exp_m1() / (2.0 * REVERSION_PER_S);
        let sd = self.spec.volatility * (var * activity).sqrt();
        self.log_dev = self.log_dev * decay + sd * normal(rng);
        self.clamp_dev();
        let moved = self.fair().round() - before;
        if moved != 0.0 {
            self.trend = moved.signum();
        }
    }

    /// A size in lots around `median` lots: log-normal, mostly whole round
    /// lots (with probability `p_round`) when the symbol has one.
    fn draw_size(&self, median: f64, sigma: f64, p_round: f64, rng: &mut SmallRng) -> i64 {
        let x = (median * log_normal(rng, sigma)).clamp(1.0, self.spec.max_lots as f64);
        let lots = match self.spec.round_lots {
            Some(r) if chance(rng, p_round) => ((x / r as f64).round() as i64).max(1) * r,
            _ => x.round() as i64,
        };
        lots.clamp(1, self.spec.max_lots)
    }

    /// A new top of book around the fair price. The spread is sticky and
    /// varies around its typical value; sizes change on the side whose price
    /// moved, otherwise on one or both sides (orders joining and leaving).
    pub(super) fn quote(&mut self, rng: &mut SmallRng) -> Touch {
        let mut spread = self.ask - self.bid;
        if chance(rng, 0.2) {
            let typical = self.spec.spread_ticks;
            let drawn = (typical * log_normal(rng, 0.4))
                .round()
                .clamp(1.0, typical * 10.0);
            spread = drawn as i64;
        }
        let half = spread as f64 / 2.0;
        let bid = ((self.fair() - half).round() as i64).clamp(1, self.spec.max_ticks - 1);
        let ask = (bid + spread).min(self.spec.max_ticks);
        let median = self.spec.size_lots;
        let (mut new_bid, mut new_ask) = (bid != self.bid, ask != self.ask);
        if !new_bid && !new_ask {
            let r = rng.random::<f64>();
            new_bid = r < 0.6;
            new_ask = r >= 0.4;
        }
        if new_bid {
            self.bid_size = self.draw_size(median, 0.8, 0.85, rng);
        }
        if new_ask {
            self.ask_size = self.draw_size(median, 0.8, 0.85, rng);
        }
        (self.bid, self.ask) = (bid, ask);
        Touch {
            bid_price: self.price(self.bid),
            bid_size: self.size(self.bid_size),
            ask_price: self.price(self.ask),
            ask_size: self.size(self.ask_size),
        }
    }

    /// A trade against the current top of book. The aggressor leans with the
    /// latest price move; most trades print at the touch (a buy at the ask, a
    /// sell at the bid), a few inside a wide spread. A trade as large as the
    /// size shown takes the level out and pushes the price a tick its way.
    pub(super) fn trade(&mut self, rng: &mut SmallRng) -> Fill {
        let side = if chance(rng, 0.5 + 0.15 * self.trend) {
            Side::Buy
        } else {
            Side::Sell
        };
        let spread = self.ask - self.bid;
        let price = if spread >= 2 && chance(rng, 0.06) {
            self.bid + rng.random_range(1..spread)
        } else if side == Side::Buy {
            self.ask
        } else {
            self.bid
        };
        let size = self.draw_size(self.spec.size_lots / 4.0, 1.0, 0.7, rng);
        let (shown, dir) = match side {
            Side::Buy => (self.ask_size, 1.0),
            _ => (self.bid_size, -1.0),
        };
        if size >= shown {
            let fair = self.fair();
            self.log_dev += ((fair + dir).max(1.0) / fair).ln();
            self.clamp_dev();
            self.trend = dir;
        } else if side == Side::Buy {
            self.ask_size -= size;
        } else {
            self.bid_size -= size;
        }
        Fill {
            price: self.price(price),
            size: self.size(size),
            side,
        }
    }

    fn price(&self, ticks: i64) -> Decimal {
        let m = i128::from(ticks) * self.spec.tick.mantissa();
        // `ticks` is at most `max_ticks`, which keeps the mantissa in range.
        Decimal::from_parts(m, self.spec.tick.scale()).expect("price within range")
    }

    fn size(&self, lots: i64) -> Decimal {
        let m = i128::from(lots) * self.spec.lot.mantissa();
        // `lots` is at most `max_lots`, which keeps the mantissa in range.
        Decimal::from_parts(m, self.spec.lot.scale()).expect("size within range")
    }
}
