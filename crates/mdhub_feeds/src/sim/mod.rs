//! The simulated exchanges: the default feed when no real venue is configured.
//!
//! `mdhub run` with no configuration streams prices from four simulated
//! venues — `sim-nasdaq` (US equities), `sim-fx` (currency pairs),
//! `sim-crypto` (crypto pairs) and `sim-dex` (two of the same pairs, a little
//! apart in price) — through the same pipeline a real connector
//! feeds. They are built to look like real markets on a quote board and to
//! tests:
//!
//! - **Random walk on a tick grid.** Each symbol has a hidden fair price whose
//!   logarithm takes a random walk (`volatility` per √second), weakly pulled
//!   back to `start_price` (half-life one day). Published prices are whole
//!   numbers of `tick_size`, written with the tick's decimal places
//!   (`"189.52"`, `"1.08423"`), never zero or below. Everything is exact
//!   [`Decimal`](mdhub_types::Decimal) arithmetic on integers of ticks and lots.
//! - **A top of book.** The bid is below the ask by at least one tick; the
//!   spread is sticky and varies around `spread_ticks`. Sizes are whole
//!   numbers of `lot_size` around the typical `size`, mostly whole `round_lot`s
//!   when one is set (100 shares, 100000 of a currency). Sizes change on the
//!   side whose price moved, or on one side when orders join and leave.
//! - **Trades** print at the ask when the buyer crossed the spread
//!   ([`Side::Buy`](mdhub_types::Side)), at the bid when the seller did, a few
//!   inside a wide spread. Buyers are more likely after an up-move; a trade as
//!   large as the shown size takes the level out and pushes the price a tick.
//!   Trade ids increase by one per venue.
//! - **Regimes.** Each venue alternates between normal trading, short bursts
//!   and quiet spells; prices move faster when trading is busier (the random
//!   walk runs in "business time"). From normal a venue goes to a burst (40%)
//!   or a quiet spell (60%), and back to normal:
//!
//!   | regime | share of time | rate (× configured) | lasts           |
//!   |--------|---------------|---------------------|-----------------|
//!   | normal | 77%           | 0.96                | 4 s + Exp(16 s) |
//!   | burst  | 5%            | 4.8                 | 1 s + Exp(2 s)  |
//!   | quiet  | 18%           | 0.24                | 2 s + Exp(6 s)  |
//!
//!   A venue bursts about once a minute; the long-run average is exactly the
//!   configured `rate`. Every market starts with at least 5 s of normal
//!   trading. `regimes = false` gives a steady rate (for benchmarks).
//! - **Skew.** Within a venue the n-th symbol gets events in proportion to
//!   1/n: the first listed is the busiest. Venues share the total rate in
//!   proportion to their number of symbols.
//! - **Timestamps.** `ts_received` is the time given to
//!   [`SimMarket::next_event`] (the feed passes
//!   [`Timestamp::now()`](mdhub_types::Timestamp::now) at emission);
//!   `ts_exchange` is a jittered network delay earlier (around the venue's
//!   `latency_us`), and never goes backwards within a venue.
//!
//! [`SimMarket`] is the pure generator: it reads no clock and is fully
//! determined by its seed and the times passed in. [`SimFeed`] paces it in
//! real time as a [`Feed`](crate::Feed): every millisecond it emits the
//! events that fell due, so rates from a few per second to hundreds of
//! thousands work; a full channel makes it wait (backpressure).
//!
//! # Configuration
//!
//! The `[sim]` section ([`SimConfig`]); every key is optional. A venue of your
//! own replaces the defaults:
//!
//! ```toml
//! [sim]
//! seed = 42          # the same market every run
//! rate = 1000        # events per second, all venues together
//! trade_ratio = 0.3
//!
//! [[sim.venues]]
//! venue = "sim-lse"
//! latency_us = 400
//!
//! [[sim.venues.symbols]]
//! symbol = "VOD"
//! start_price = "71.24"
//! tick_size = "0.02"
//! lot_size = "1"
//! round_lot = "100"
//! size = "5000"
//! volatility = 0.0002
//! spread_ticks = 2
//! ```

mod book;
mod config;
mod dist;
mod feed;
mod market;
mod regime;

pub use config::{SimConfig, SimSymbolConfig, SimVenueConfig};
pub use feed::{SimFeed, sim_feeds};
pub use market::SimMarket;

#[cfg(test)]
mod tests;
