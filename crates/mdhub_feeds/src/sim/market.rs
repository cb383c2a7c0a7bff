//! [`SimMarket`]: the deterministic event generator behind the simulated feeds.

use mdhub_types::{Event, Quote, Symbol, Timestamp, Trade, Venue};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use super::book::Book;
use super::config::{SimConfig, SimVenueConfig};
use super::dist::{chance, log_normal, weighted};
use super::regime::Regime;
use crate::FeedError;

/// A deterministic generator of quotes and trades for one or more simulated
/// venues. It reads no clock: the caller passes the receipt time of each
/// event, and the same seed with the same sequence of times gives the same
/// events.
#[derive(Debug, Clone)]
pub struct SimMarket {
    rng: SmallRng,
    trade_ratio: f64,
    venues: Vec<VenueSim>,
    /// Scratch space for the venue weights of one draw.
    weights: Vec<f64>,
}

#[derive(Debug, Clone)]
struct VenueSim {
    venue: Venue,
    /// Share of the total rate (its fraction of all symbols).
    share: f64,
    latency_ns: f64,
    regime: Regime,
    books: Vec<Book>,
    /// 1/n for the n-th symbol: the first symbols are the busiest.
    skew: Vec<f64>,
    next_trade_id: u64,
    last_ts_exchange: Timestamp,
}

/// SplitMix64: decorrelated seeds for the parts of a market from one seed.
pub(super) fn mix(seed: u64, stream: u64) -> u64 {
    let mut z = seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl SimMarket {
    /// A market of every venue in `cfg`, validating it first. `seed` is used
    /// as given (the caller resolves [`SimConfig::seed`]).
    pub fn new(cfg: &SimConfig, seed: u64) -> Result<SimMarket, FeedError> {
        cfg.validate()?;
        Ok(SimMarket::from_validated(cfg, &cfg.venues, seed))
    }

    /// A market of some of `cfg`'s venues; `cfg` must be validated.
    pub(super) fn from_validated(
        cfg: &SimConfig,
        venues: &[SimVenueConfig],
        seed: u64,
    ) -> SimMarket {
        let mut rng = SmallRng::seed_from_u64(mix(seed, 0));
        let total: usize = venues.iter().map(|v| v.symbols.len()).sum();
        let venues: Vec<VenueSim> = venues
            .iter()
            .enumerate()
            .map(|(i, v)| VenueSim {
                venue: Venue::new(&v.venue).expect("validated: venue"),
                share: v.symbols.len() as f64 / total as f64,
                latency_ns: f64::from(v.latency_us) * 1e3,
                regime: Regime::new(cfg.regimes, mix(seed, i as u64 + 1)),
                books: v.symbols.iter().map(Book::new).collect(),
                skew: (1..=v.symbols.len()).map(|n| 1.0 / n as f64).collect(),
                next_trade_id: rng.random_range(1_000_000..10_000_000),
                last_ts_exchange: Timestamp::EPOCH,
            })
            .collect();
        SimMarket {
            rng,
            trade_ratio: cfg.trade_ratio,
            weights: vec![0.0; venues.len()],
            venues,
        }
    }

    /// The venues, in configuration order.
    pub fn venues(&self) -> Vec<Venue> {
        self.venues.iter().map(|v| v.venue.clone()).collect()
    }

    /// Every symbol, venue by venue, in configuration order.
    pub fn symbols(&self) -> Vec<Symbol> {
        self.venues
            .iter()
            .flat_map(|v| v.books.iter().map(|b| b.symbol().clone()))
            .collect()
    }

    /// Advance the burst/quiet regimes to `now` and return the current event
    /// rate as a multiple of the configured one (long-run average 1). Calling
    /// it does not change the events generated.
    pub fn rate_multiplier(&mut self, now: Timestamp) -> f64 {
        self.venues
            .iter_mut()
            .map(|v| v.share * v.regime.multiplier(now))
            .sum()
    }

    /// The next event, received at `now`: a venue is picked by its share and
    /// current regime, a symbol by the skew, then a quote or (with
    /// probability `trade_ratio`) a trade.
    pub fn next_event(&mut self, now: Timestamp) -> Event {
        for (w, v) in self.weights.iter_mut().zip(&mut self.venues) {
            *w = v.share * v.regime.multiplier(now);
        }
        let rng = &mut self.rng;
        let v = &mut self.venues[weighted(rng, &self.weights)];
        let activity = v.regime.multiplier(now);
        let book = &mut v.books[weighted(rng, &v.skew)];
        book.advance(now, activity, rng);

        // The venue stamped the event a jittered network delay before we read
        // it; its clock never runs backwards.
        let latency =
            (v.latency_ns * log_normal(rng, 0.35)).clamp(v.latency_ns / 4.0, v.latency_ns * 8.0);
        let ts_exchange = now.add_nanos(-(latency as i64)).max(v.last_ts_exchange);
        v.last_ts_exchange = ts_exchange;

        let (venue, symbol) = (v.venue.clone(), book.symbol().clone());
        if chance(rng, self.trade_ratio) {
            let fill = book.trade(rng);
            let id = v.next_trade_id;
            v.next_trade_id += 1;
            Event::Trade(Trade {
                venue,
                symbol,
                ts_exchange,
                ts_received: now,
                price: fill.price,
                size: fill.size,
                side: fill.side,
                trade_id: Some(id.to_string()),
            })
        } else {
            let t = book.quote(rng);
            Event::Quote(Quote {
                venue,
                symbol,
                ts_exchange,
                ts_received: now,
                bid_price: t.bid_price,
                bid_size: t.bid_size,
                ask_price: t.ask_price,
                ask_size: t.ask_size,
            })
        }
    }
}
