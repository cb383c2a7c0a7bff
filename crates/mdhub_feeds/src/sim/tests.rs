//! Unit tests of the generator's internals; the public behaviour is tested in
//! `tests/sim.rs`.

use std::collections::HashMap;

use mdhub_types::{Event, Side, Timestamp};

use super::config::in_units;
use super::regime::{Phase, Regime};
use super::*;

const T0: i64 = 1_714_571_100_000_000_000;

/// `n` events at `step_us` apart from a fixed start.
fn events(cfg: &SimConfig, seed: u64, n: usize, step_us: i64) -> Vec<Event> {
    let mut m = SimMarket::new(cfg, seed).unwrap();
    (0..n as i64)
        .map(|i| m.next_event(Timestamp::from_nanos(T0 + i * step_us * 1000)))
        .collect()
}

#[test]
fn same_seed_same_events_different_seed_different_events() {
    let cfg = SimConfig::default();
    let a = events(&cfg, 7, 5000, 700);
    assert_eq!(a, events(&cfg, 7, 5000, 700));
    assert_ne!(a, events(&cfg, 8, 5000, 700));
}

#[test]
fn asking_for_the_rate_does_not_change_the_events() {
    let cfg = SimConfig::default();
    let mut m = SimMarket::new(&cfg, 3).unwrap();
    let mut with_rate = Vec::new();
    for i in 0..3000 {
        let now = Timestamp::from_nanos(T0 + i * 5_000_000);
        assert!(m.rate_multiplier(now) > 0.0);
        with_rate.push(m.next_event(now));
    }
    assert_eq!(with_rate, events(&cfg, 3, 3000, 5000));
}

#[test]
fn regimes_average_to_one_and_include_bursts_and_quiet_spells() {
    let mut r = Regime::new(true, 11);
    let (mut sum, mut n) = (0.0, 0u32);
    let mut seen = HashMap::new();
    // 200 000 s of market time, sampled every 100 ms.
    for i in 0..2_000_000i64 {
        let m = r.multiplier(Timestamp::from_nanos(T0 + i * 100_000_000));
        if i < 50 {
            assert_eq!(
                r.phase(),
                Phase::Normal,
                "starts with 5 s of normal trading"
            );
        }
        *seen.entry(r.phase()).or_insert(0u32) += 1;
        sum += m;
        n += 1;
    }
    let mean = sum / f64::from(n);
    assert!((0.93..1.07).contains(&mean), "mean multiplier {mean}");
    let burst = f64::from(seen[&Phase::Burst]) / f64::from(n);
    let quiet = f64::from(seen[&Phase::Quiet]) / f64::from(n);
    assert!((0.03..0.07).contains(&burst), "burst share {burst}");
    assert!((0.14..0.23).contains(&quiet), "quiet share {quiet}");
    assert_eq!(
        Regime::new(false, 11).multiplier(Timestamp::from_nanos(T0)),
        1.0
    );
}

#[test]
fn a_jump_in_time_restarts_the_regime_instead_of_replaying_it() {
    let mut r = Regime::new(true, 1);
    r.multiplier(Timestamp::from_nanos(T0));
    // Ten years later: must return at once, in a fresh normal spell.
    r.multiplier(Timestamp::from_nanos(T0 + 315_360_000_000_000_000));
    assert_eq!(r.phase(), Phase::Normal);
}

#[test]
fn exchange_time_is_a_little_before_receipt_and_monotonic_per_venue() {
    let cfg = SimConfig::default();
    let mut last: HashMap<String, Timestamp> = HashMap::new();
    for e in events(&cfg, 5, 20_000, 300) {
        let lag = e.ts_received().nanos_since(e.ts_exchange());
        assert!((0..=16_000_000).contains(&lag), "{lag} ns: {e:?}");
        let prev = last.insert(e.venue().to_string(), e.ts_exchange());
        assert!(prev.is_none_or(|p| p <= e.ts_exchange()), "{e:?}");
    }
    // Latencies follow the venue's setting: nasdaq is faster than crypto.
    let median_lag = |venue: &str| {
        let mut lags: Vec<i64> = events(&cfg, 5, 4000, 20_000)
            .iter()
            .filter(|e| e.venue().as_str() == venue)
            .map(|e| e.ts_received().nanos_since(e.ts_exchange()))
            .collect();
        lags.sort_unstable();
        lags[lags.len() / 2]
    };
    let (nasdaq, crypto) = (median_lag("sim-nasdaq"), median_lag("sim-crypto"));
    assert!((150_000..600_000).contains(&nasdaq), "{nasdaq}");
    assert!((1_000_000..4_000_000).contains(&crypto), "{crypto}");
}

#[test]
fn trades_print_at_the_touch_and_ids_increase_per_venue() {
    let cfg = SimConfig::default();
    let mut touch: HashMap<String, (mdhub_types::Decimal, mdhub_types::Decimal)> = HashMap::new();
    let mut ids: HashMap<String, u64> = HashMap::new();
    let (mut at_touch, mut checked, mut buys, mut trades) = (0, 0, 0, 0);
    for e in events(&cfg, 9, 50_000, 1000) {
        match e {
            Event::Quote(q) => {
                touch.insert(
                    format!("{}@{}", q.symbol, q.venue),
                    (q.bid_price, q.ask_price),
                );
            }
            Event::Status(f) => panic!("the simulator emits no feed status: {f:?}"),
            Event::Trade(t) => {
                trades += 1;
                buys += usize::from(t.side == Side::Buy);
                let id: u64 = t.trade_id.as_deref().unwrap().parse().unwrap();
                if let Some(prev) = ids.insert(t.venue.to_string(), id) {
                    assert_eq!(id, prev + 1, "{t:?}");
                }
                // The book's touch is the last quote, unless a trade took it.
                if let Some((bid, ask)) = touch.remove(&format!("{}@{}", t.symbol, t.venue)) {
                    checked += 1;
                    assert!(
                        bid <= t.price && t.price <= ask,
                        "{t:?} outside {bid}/{ask}"
                    );
                    let expected = if t.side == Side::Buy { ask } else { bid };
                    at_touch += usize::from(t.price == expected);
                }
            }
        }
    }
    assert!(checked > 1000, "{checked}");
    assert!(
        at_touch * 100 >= checked * 90,
        "{at_touch} of {checked} at the touch"
    );
    assert!(
        (0.4..0.6).contains(&(buys as f64 / trades as f64)),
        "{buys} buys of {trades}"
    );
}

#[test]
fn busier_symbols_come_first() {
    let cfg = SimConfig::default();
    let mut count: HashMap<String, usize> = HashMap::new();
    for e in events(&cfg, 1, 30_000, 1000) {
        *count.entry(e.symbol().to_string()).or_default() += 1;
    }
    assert!(count["AAPL"] > 2 * count["TSLA"], "{count:?}");
    assert!(count["BTC-USDT"] > 2 * count["SOL-USDT"], "{count:?}");
}

#[test]
fn prices_stay_on_the_grid_and_positive_under_wild_volatility() {
    let mut cfg = SimConfig::default();
    cfg.venues.truncate(1);
    cfg.venues[0].symbols = vec![SimSymbolConfig {
        symbol: "PENNY".into(),
        start_price: "0.03".into(),
        tick_size: "0.01".into(),
        volatility: 0.5,
        ..SimSymbolConfig::default()
    }];
    let tick = mdhub_types::Decimal::parse("0.01").unwrap();
    let mut m = SimMarket::new(&cfg, 2).unwrap();
    for i in 0..20_000 {
        if let Event::Quote(q) = m.next_event(Timestamp::from_nanos(T0 + i * 50_000_000)) {
            assert!(
                q.bid_price > mdhub_types::Decimal::ZERO && q.bid_price < q.ask_price,
                "{q:?}"
            );
            assert!(
                q.ask_price <= mdhub_types::Decimal::parse("3.00").unwrap(),
                "{q:?}"
            );
            assert!(in_units(q.ask_price, tick).is_some(), "{q:?}");
        }
    }
}

#[test]
fn round_lots_dominate_equity_sizes() {
    let cfg = SimConfig::default();
    let (mut round, mut total) = (0, 0);
    for e in events(&cfg, 4, 20_000, 1000) {
        if let Event::Quote(q) = e
            && q.venue.as_str() == "sim-nasdaq"
        {
            total += 2;
            round += usize::from(q.bid_size.mantissa() % 100 == 0);
            round += usize::from(q.ask_size.mantissa() % 100 == 0);
        }
    }
    assert!(
        round * 100 > total * 75,
        "{round} of {total} sizes in round lots"
    );
}
