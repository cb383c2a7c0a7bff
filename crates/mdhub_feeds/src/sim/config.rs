//! The `[sim]` configuration section, its defaults and its validation.

use std::collections::HashSet;

use mdhub_types::{Decimal, Symbol, Venue};
use serde::{Deserialize, Serialize};

use crate::FeedError;

/// The simulated exchanges (`[sim]` in `mdhub.toml`). They run when no real
/// venue is configured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimConfig {
    /// Seed of the random generator. The same seed (and configuration) gives
    /// the same prices, sizes and trade ids; leave unset for a different
    /// market every run (the seed used is logged so a run can be repeated).
    pub seed: Option<u64>,
    /// Average number of events per second, summed over all simulated venues
    /// (shared between venues in proportion to their number of symbols).
    /// Bursts raise it several times for a few seconds, quiet periods lower
    /// it. Default 200: a lively quote board. `mdhub bench` raises it to
    /// 100000 and more.
    pub rate: f64,
    /// Fraction of events that are trades (the rest are quotes), from 0 to 1.
    /// Default 0.3.
    pub trade_ratio: f64,
    /// Vary each venue's event rate with bursts (about five times the rate for
    /// a few seconds, roughly once a minute) and quiet periods (a quarter of
    /// the rate). The long-run average stays `rate`. Set to false for a
    /// steady rate, e.g. when measuring throughput. Default true.
    pub regimes: bool,
    /// The simulated venues and their symbols. Default: `sim-nasdaq` (AAPL,
    /// MSFT, NVDA, AMZN, TSLA), `sim-fx` (EUR-USD, GBP-USD, USD-JPY),
    /// `sim-crypto` (BTC-USDT, ETH-USDT, SOL-USDT) and `sim-dex` (BTC-USDT,
    /// ETH-USDT: the same pairs on a second venue).
    pub venues: Vec<SimVenueConfig>,
}

/// One simulated venue (`[[sim.venues]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimVenueConfig {
    /// Venue id: lower case letters, digits, `.`, `_` and `-` (e.g.
    /// `sim-nasdaq`). Must be unique.
    pub venue: String,
    /// Typical delay in microseconds between the venue's timestamp
    /// (`ts_exchange`) and mdhub's receipt (`ts_received`); each event's delay
    /// is jittered around it. Default 500.
    pub latency_us: u32,
    /// The instruments traded on this venue. The first is the busiest: the
    /// n-th symbol gets events in proportion to 1/n.
    pub symbols: Vec<SimSymbolConfig>,
}

/// One simulated instrument (`[[sim.venues.symbols]]`). Decimal values are
/// strings, read exactly (`"0.00001"`), never through floating point.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SimSymbolConfig {
    /// Canonical symbol: the ticker for equities (`AAPL`), `BASE-QUOTE` for
    /// pairs (`EUR-USD`, `BTC-USDT`). Must be unique within the venue.
    pub symbol: String,
    /// Price at start-up; a positive multiple of `tick_size`. The price
    /// wanders from it and is slowly pulled back to it (over about a day).
    /// Default "100.00".
    pub start_price: String,
    /// Price increment. Every price is a whole number of ticks, written with
    /// the tick's decimal places (tick "0.01" gives "189.50"). Default "0.01".
    pub tick_size: String,
    /// Size increment. Every size is a whole, positive number of lots, written
    /// with the lot's decimal places. Default "1".
    pub lot_size: String,
    /// When set, most sizes (about 85% of quotes and 70% of trades) are whole
    /// multiples of this — 100 shares for US equities, 100000 for FX — and the
    /// rest are odd lots. A multiple of `lot_size`, at most `size`.
    /// Default: unset (any multiple of `lot_size`).
    pub round_lot: Option<String>,
    /// Typical (median) size quoted at the best bid or ask; trades are
    /// typically a quarter of it. Sizes vary widely around it. A multiple of
    /// `lot_size`. Default "100".
    pub size: String,
    /// Volatility of the price per square root of a second, as a fraction:
    /// over `t` seconds the price typically moves by about
    /// `volatility × √t × price`. 0.0002 moves a 100.00 price by about 0.02 in
    /// a second and 1.2% in an hour (livelier than most real markets, which
    /// is what a demo wants). 0 keeps the price still. Bursts move prices
    /// faster, quiet periods slower. Default 0.0002.
    pub volatility: f64,
    /// Typical spread between best bid and best ask, in ticks (at least 1).
    /// The spread varies around it and is never below one tick. Default 1.
    pub spread_ticks: u32,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            seed: None,
            rate: 200.0,
            trade_ratio: 0.3,
            regimes: true,
            venues: default_venues(),
        }
    }
}

impl Default for SimVenueConfig {
    fn default() -> Self {
        SimVenueConfig {
            venue: String::new(),
            latency_us: 500,
            symbols: Vec::new(),
        }
    }
}

impl Default for SimSymbolConfig {
    fn default() -> Self {
        SimSymbolConfig {
            symbol: String::new(),
            start_price: "100.00".into(),
            tick_size: "0.01".into(),
            lot_size: "1".into(),
            round_lot: None,
            size: "100".into(),
            volatility: 0.0002,
            spread_ticks: 1,
        }
    }
}

/// One row of the default table: symbol, start, tick, lot, round lot, size,
/// volatility, spread.
type Row = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    Option<&'static str>,
    &'static str,
    f64,
    u32,
);

fn venue(name: &str, latency_us: u32, rows: &[Row]) -> SimVenueConfig {
    let symbols = rows
        .iter()
        .map(
            |&(symbol, start, tick, lot, round, size, vol, spread)| SimSymbolConfig {
                symbol: symbol.into(),
                start_price: start.into(),
                tick_size: tick.into(),
                lot_size: lot.into(),
                round_lot: round.map(Into::into),
                size: size.into(),
                volatility: vol,
                spread_ticks: spread,
            },
        )
        .collect();
    SimVenueConfig {
        venue: name.into(),
        latency_us,
        symbols,
    }
}

/// The default venues: US equities, FX and crypto.
fn default_venues() -> Vec<SimVenueConfig> {
    let e = Some("100");
    let fx = Some("100000");
    #[rustfmt::skip]
    let v = vec![
        venue("sim-nasdaq", 300, &[
            ("AAPL", "189.50", "0.01", "1", e, "300", 0.00015, 1),
            ("MSFT", "415.20", "0.01", "1", e, "200", 0.00015, 2),
            ("NVDA", "121.40", "0.01", "1", e, "500", 0.00030, 1),
            ("AMZN", "182.30", "0.01", "1", e, "300", 0.00020, 1),
            ("TSLA", "248.90", "0.01", "1", e, "200", 0.00035, 2),
        ]),
        venue("sim-fx", 800, &[
            ("EUR-USD", "1.08420", "0.00001", "1000", fx, "1000000", 0.00003, 3),
            ("GBP-USD", "1.26850", "0.00001", "1000", fx, "1000000", 0.00004, 5),
            ("USD-JPY", "151.200", "0.001", "1000", fx, "1000000", 0.00004, 4),
        ]),
        venue("sim-crypto", 2000, &[
            ("BTC-USDT", "67250.00", "0.01", "0.00001", None, "0.5", 0.00020, 1),
            ("ETH-USDT", "3450.00", "0.01", "0.0001", None, "5", 0.00025, 1),
            ("SOL-USDT", "145.00", "0.01", "0.001", None, "60", 0.00035, 2),
        ]),
        // The same pairs on a second venue, a little apart in price: the
        // default shows one symbol on two venues (a stream each).
        venue("sim-dex", 5000, &[
            ("BTC-USDT", "67262.50", "0.01", "0.00001", None, "0.2", 0.00020, 2),
            ("ETH-USDT", "3451.20", "0.01", "0.0001", None, "2", 0.00025, 2),
        ]),
    ];
    v
}

/// A configuration error naming the key: `sim.venues[1].symbols[0].tick_size: ...`.
pub(crate) fn config_error(key: &str, problem: impl std::fmt::Display) -> FeedError {
    FeedError::Config {
        venue: "sim".into(),
        message: format!("{key}: {problem}"),
    }
}

/// Largest number of ticks (or lots) a price (or size) may reach, as a
/// multiple of its start value; checked to fit a [`Decimal`] at validation.
pub(crate) const MAX_GROWTH: i64 = 100;
/// Largest start price in ticks (and typical size in lots) accepted.
const MAX_UNITS: i64 = 1_000_000_000_000_000;

/// A decimal in `unit`s: `Some(n)` when `value = n × unit` exactly.
pub(crate) fn in_units(value: Decimal, unit: Decimal) -> Option<i128> {
    let s = value.scale().max(unit.scale());
    let (v, u) = (value.rescaled(s)?.mantissa(), unit.rescaled(s)?.mantissa());
    (u != 0 && v % u == 0).then(|| v / u)
}

fn positive(key: &str, text: &str) -> Result<Decimal, FeedError> {
    let d = Decimal::parse(text).map_err(|e| config_error(key, e))?;
    if d.is_negative() || d.is_zero() {
        return Err(config_error(key, format_args!("{text:?} must be > 0")));
    }
    Ok(d)
}

fn multiple(
    key: &str,
    text: &str,
    unit: Decimal,
    unit_key: &str,
    text_unit: &str,
) -> Result<i64, FeedError> {
    let v = positive(key, text)?;
    let n = in_units(v, unit).ok_or_else(|| {
        config_error(
            key,
            format_args!("{text:?} is not a multiple of {unit_key} {text_unit:?}"),
        )
    })?;
    if n > i128::from(MAX_UNITS) {
        return Err(config_error(
            key,
            format_args!("{text:?} is more than 10^15 {unit_key}s"),
        ));
    }
    // `n` is positive and at most 10^15, so it fits in an i64.
    Ok(n as i64)
}

/// Whether `units × MAX_GROWTH` units of `unit` is still a [`Decimal`].
fn fits(units: i64, unit: Decimal) -> bool {
    i128::from(units)
        .checked_mul(i128::from(MAX_GROWTH))
        .and_then(|n| n.checked_mul(unit.mantissa()))
        .is_some_and(|m| Decimal::from_parts(m, unit.scale()).is_ok())
}

impl SimConfig {
    /// Check every value; the error names the first bad key and the problem,
    /// e.g. `sim.venues[1].symbols[0].tick_size: "0" must be > 0`.
    pub fn validate(&self) -> Result<(), FeedError> {
        if !(self.rate.is_finite() && self.rate > 0.0) {
            return Err(config_error(
                "sim.rate",
                format_args!("{} must be a number > 0", self.rate),
            ));
        }
        if !(0.0..=1.0).contains(&self.trade_ratio) {
            let msg = format_args!("{} must be between 0 and 1", self.trade_ratio);
            return Err(config_error("sim.trade_ratio", msg));
        }
        if self.venues.is_empty() {
            return Err(config_error("sim.venues", "must list at least one venue"));
        }
        let mut venues = HashSet::new();
        for (i, v) in self.venues.iter().enumerate() {
            let key = format!("sim.venues[{i}]");
            Venue::new(&v.venue).map_err(|e| config_error(&format!("{key}.venue"), e))?;
            if !venues.insert(v.venue.as_str()) {
                let msg = format_args!("{:?} is listed twice", v.venue);
                return Err(config_error(&format!("{key}.venue"), msg));
            }
            if v.symbols.is_empty() {
                return Err(config_error(
                    &format!("{key}.symbols"),
                    "must list at least one symbol",
                ));
            }
            let mut symbols = HashSet::new();
            for (j, s) in v.symbols.iter().enumerate() {
                let key = format!("{key}.symbols[{j}]");
                s.validate(&key)?;
                if !symbols.insert(s.symbol.as_str()) {
                    let msg = format_args!("{:?} is listed twice in this venue", s.symbol);
                    return Err(config_error(&format!("{key}.symbol"), msg));
                }
            }
        }
        Ok(())
    }
}

impl SimSymbolConfig {
    fn validate(&self, key: &str) -> Result<(), FeedError> {
        let k = |field: &str| format!("{key}.{field}");
        Symbol::new(&self.symbol).map_err(|e| config_error(&k("symbol"), e))?;
        let tick = positive(&k("tick_size"), &self.tick_size)?;
        let lot = positive(&k("lot_size"), &self.lot_size)?;
        let start = multiple(
            &k("start_price"),
            &self.start_price,
            tick,
            "tick_size",
            &self.tick_size,
        )?;
        if !fits(start, tick) {
            return Err(config_error(
                &k("start_price"),
                format_args!("{:?} is too large", self.start_price),
            ));
        }
        let size = multiple(&k("size"), &self.size, lot, "lot_size", &self.lot_size)?;
        if !fits(size, lot) {
            return Err(config_error(
                &k("size"),
                format_args!("{:?} is too large", self.size),
            ));
        }
        if let Some(round) = &self.round_lot {
            let r = multiple(&k("round_lot"), round, lot, "lot_size", &self.lot_size)?;
            if r > size {
                let msg = format_args!("{round:?} must not exceed size {:?}", self.size);
                return Err(config_error(&k("round_lot"), msg));
            }
        }
        if !(self.volatility.is_finite() && (0.0..1.0).contains(&self.volatility)) {
            let msg = format_args!("{} must be at least 0 and below 1", self.volatility);
            return Err(config_error(&k("volatility"), msg));
        }
        if self.spread_ticks == 0 {
            return Err(config_error(&k("spread_ticks"), "0 must be at least 1"));
        }
        if i64::from(self.spread_ticks) > start {
            let msg = format_args!(
                "{} is wider than start_price {:?} ({start} ticks)",
                self.spread_ticks, self.start_price
            );
            return Err(config_error(&k("spread_ticks"), msg));
        }
        Ok(())
    }
}
