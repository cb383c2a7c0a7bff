//! Minute bars kept with the ticks.
//!
//! Every trades file carries, in its Parquet footer (key-value metadata
//! [`BARS_KEY`]), the 1-minute bars of its own rows: open, high, low, close,
//! volume, the exact VWAP numerator `Σ price·size` and the trade count, with
//! the (`ts_exchange`, log offset) of the open and close trades. Such
//! *partial* bars combine exactly — the open of two is the one with the
//! earlier key, sums add — so the bars of any set of files, of the hot tier's
//! rows, and of any width that is a whole number of minutes are computed from
//! them without reading a tick: a day of one symbol is at most 1,440 small
//! records per file instead of millions of rows.
//!
//! The bars live in the same file as the rows they summarize, so they share
//! its name, its exactly-once guarantee and its compaction (a merged file's
//! bars are its sources' bars combined); a file whose rows retention removed
//! keeps them.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::i256;
use mdhub_types::{Decimal, Event, Positioned, Timestamp};
use serde_json::{Value, json};

use crate::{HistoryError, Result};

/// The footer key of a trades file's minute bars.
pub const BARS_KEY: &str = "mdhub.bars.1m";

/// One minute in nanoseconds.
pub const MINUTE: i64 = 60_000_000_000;

/// Where a trade sits in a symbol's sequence: `ts_exchange`, then log offset
/// (a symbol's trades are all in one log partition).
pub type TradeKey = (i64, u64);

/// The bar of some of the trades of one interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartialBar {
    /// Start of the interval, nanoseconds since the epoch.
    pub start: i64,
    /// The first trade's key and price.
    pub open: (TradeKey, Decimal),
    /// Highest price.
    pub high: Decimal,
    /// Lowest price.
    pub low: Decimal,
    /// The last trade's key and price.
    pub close: (TradeKey, Decimal),
    /// Σ size, at scale 18.
    pub volume: i128,
    /// Σ price·size, at scale 36.
    pub notional: i256,
    /// Number of trades.
    pub trades: u64,
}

impl PartialBar {
    fn of(start: i64, key: TradeKey, price: Decimal, size: Decimal) -> Result<PartialBar> {
        let (p, s) = (scaled(price)?, scaled(size)?);
        Ok(PartialBar {
            start,
            open: (key, price),
            high: price,
            low: price,
            close: (key, price),
            volume: s,
            notional: i256::from_i128(p).wrapping_mul(i256::from_i128(s)),
            trades: 1,
        })
    }

    /// Fold `other` (of the same interval) into this bar.
    pub fn merge(&mut self, other: &PartialBar) -> Result<()> {
        if other.open.0 < self.open.0 {
            self.open = other.open;
        }
        if other.close.0 > self.close.0 {
            self.close = other.close;
        }
        self.high = self.high.max(other.high);
        self.low = self.low.min(other.low);
        self.volume = self.volume.checked_add(other.volume).ok_or_else(overflow)?;
        self.notional = self
            .notional
            .checked_add(other.notional)
            .ok_or_else(overflow)?;
        self.trades += other.trades;
        Ok(())
    }

    /// VWAP at scale 18, rounded half away from zero; `None` at zero volume.
    pub fn vwap(&self) -> Option<Decimal> {
        let m = div_round(self.notional, i256::from_i128(self.volume))?;
        Decimal::from_parts(m, 18).ok().map(Decimal::normalized)
    }

    /// Σ size.
    pub fn volume(&self) -> Decimal {
        Decimal::from_parts(self.volume, 18)
            .map(Decimal::normalized)
            .unwrap_or(Decimal::ZERO)
    }
}

fn overflow() -> HistoryError {
    HistoryError::BadRow("bar sums overflow".into())
}

/// A decimal's mantissa at scale 18 (the lake's scale).
fn scaled(d: Decimal) -> Result<i128> {
    d.rescaled(18)
        .map(Decimal::mantissa)
        .ok_or_else(|| HistoryError::BadRow(format!("{d} does not fit DECIMAL(38, 18)")))
}

/// `n / d` rounded half away from zero, when `d ≠ 0` and it fits an i128.
pub(crate) fn div_round(n: i256, d: i256) -> Option<i128> {
    if d == i256::ZERO {
        return None;
    }
    let (q, r) = (n / d, n % d);
    let twice = r.wrapping_mul(i256::from_i128(2)).wrapping_abs();
    let round = if twice >= d.wrapping_abs() {
        if (n < i256::ZERO) != (d < i256::ZERO) {
            i256::MINUS_ONE
        } else {
            i256::ONE
        }
    } else {
        i256::ZERO
    };
    (q + round).to_i128()
}

/// The start of the `width`-wide interval holding `ts` (aligned to the epoch).
pub fn bucket(ts: i64, width: i64) -> i64 {
    ts - ts.rem_euclid(width)
}

/// Bars by interval start.
pub type Bars = BTreeMap<i64, PartialBar>;

/// Fold one bar into `bars` (keyed by its start).
pub fn add(bars: &mut Bars, bar: PartialBar) -> Result<()> {
    match bars.get_mut(&bar.start) {
        Some(b) => b.merge(&bar),
        None => {
            bars.insert(bar.start, bar);
            Ok(())
        }
    }
}

/// The minute bars of the trades among `rows` (other rows are skipped).
pub fn minute_bars<'a>(rows: impl IntoIterator<Item = &'a Positioned>) -> Result<Bars> {
    let mut bars = Bars::new();
    for r in rows {
        if let Event::Trade(t) = &r.event {
            let ts = t.ts_exchange.as_nanos();
            let bar = PartialBar::of(bucket(ts, MINUTE), (ts, r.position.offset), t.price, t.size)?;
            add(&mut bars, bar)?;
        }
    }
    Ok(bars)
}

/// `bars` regrouped into intervals `width` wide (a multiple of theirs).
pub fn rebucket(bars: impl IntoIterator<Item = PartialBar>, width: i64) -> Result<Bars> {
    let mut out = Bars::new();
    for mut b in bars {
        b.start = bucket(b.start, width);
        add(&mut out, b)?;
    }
    Ok(out)
}

/// The footer text of `bars`: a JSON array of
/// `[start, open_ts, open_offset, open, high, low, close_ts, close_offset,
/// close, volume_e18, notional_e36, trades]`, decimals as exact text.
pub fn to_json(bars: &Bars) -> String {
    let rows: Vec<Value> = bars
        .values()
        .map(|b| {
            json!([
                b.start,
                b.open.0.0,
                b.open.0.1,
                b.open.1.to_string(),
                b.high.to_string(),
                b.low.to_string(),
                b.close.0.0,
                b.close.0.1,
                b.close.1.to_string(),
                b.volume.to_string(),
                b.notional.to_string(),
                b.trades
            ])
        })
        .collect();
    Value::Array(rows).to_string()
}

/// The bars of a footer written by [`to_json`].
pub fn from_json(text: &str) -> Result<Bars> {
    let bad = |why: &str| HistoryError::BadRow(format!("{BARS_KEY}: {why}"));
    let rows: Vec<Value> = serde_json::from_str(text).map_err(|e| bad(&e.to_string()))?;
    let mut bars = Bars::new();
    for r in rows {
        let a = r.as_array().ok_or_else(|| bad("not an array"))?;
        if a.len() != 12 {
            return Err(bad("a bar has 12 fields"));
        }
        let int = |i: usize| a[i].as_i64().ok_or_else(|| bad("expected an integer"));
        let uint = |i: usize| a[i].as_u64().ok_or_else(|| bad("expected an integer"));
        let text = |i: usize| a[i].as_str().ok_or_else(|| bad("expected text"));
        let dec = |i: usize| -> Result<Decimal> {
            Decimal::parse(text(i)?).map_err(|e| bad(&e.to_string()))
        };
        let bar = PartialBar {
            start: int(0)?,
            open: ((int(1)?, uint(2)?), dec(3)?),
            high: dec(4)?,
            low: dec(5)?,
            close: ((int(6)?, uint(7)?), dec(8)?),
            volume: text(9)?.parse().map_err(|_| bad("volume"))?,
            notional: i256::from_string(text(10)?).ok_or_else(|| bad("notional"))?,
            trades: uint(11)?,
        };
        add(&mut bars, bar)?;
    }
    Ok(bars)
}

/// A bar as the API gives it.
pub fn finish(b: &PartialBar) -> crate::query::Bar {
    crate::query::Bar {
        ts: Timestamp::from_nanos(b.start),
        open: b.open.1.normalized(),
        high: b.high.normalized(),
        low: b.low.normalized(),
        close: b.close.1.normalized(),
        volume: b.volume(),
        vwap: b.vwap(),
        trades: b.trades,
    }
}

/// The minute bars of one trades file, from its footer (two range reads).
/// A file without them (written before they existed) is read and its bars
/// computed from the rows.
pub async fn file_bars(lake: &crate::Lake, file: &crate::LakeFile) -> Result<Bars> {
    use object_store::ObjectStoreExt;
    use parquet::file::metadata::ParquetMetaDataReader;
    let path = file.key.path();
    let bad = |why: String| HistoryError::BadRow(format!("{path}: {why}"));
    if file.size < 12 {
        return Err(bad("too short for a Parquet file".into()));
    }
    let tail = lake
        .store()
        .get_range(&path, file.size - 8..file.size)
        .await?;
    if &tail[4..8] != b"PAR1" {
        return Err(bad("no Parquet footer".into()));
    }
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    if len + 8 > file.size {
        return Err(bad("footer longer than the file".into()));
    }
    let footer = lake
        .store()
        .get_range(&path, file.size - 8 - len..file.size - 8)
        .await?;
    let meta = ParquetMetaDataReader::decode_metadata(&footer)?;
    if let Some(text) = footer_bars(meta.file_metadata()) {
        return from_json(text);
    }
    let bytes = lake.store().get(&path).await?.bytes().await?;
    let mut rows = Vec::new();
    for b in crate::compact::read_parquet(bytes)? {
        rows.extend(crate::events(crate::TableKind::Trades, &b)?);
    }
    minute_bars(&rows)
}

/// The bars text in a file's key-value metadata.
pub(crate) fn footer_bars(meta: &parquet::file::metadata::FileMetaData) -> Option<&str> {
    meta.key_value_metadata()?
        .iter()
        .find(|kv| kv.key == BARS_KEY)?
        .value
        .as_deref()
}

#[cfg(test)]
mod tests {
    use mdhub_types::{Position, Side, Symbol, Topic, Trade, Venue};

    use super::*;

    fn trade(offset: u64, ts: i64, price: &str, size: &str) -> Positioned {
        Positioned {
            position: Position {
                topic: Topic::Trades,
                partition: 0,
                offset,
            },
            event: Event::Trade(Trade {
                venue: Venue::new("binance").unwrap(),
                symbol: Symbol::new("BTC-USDT").unwrap(),
                ts_exchange: Timestamp::from_nanos(ts),
                ts_received: Timestamp::from_nanos(ts + 1),
                price: Decimal::parse(price).unwrap(),
                size: Decimal::parse(size).unwrap(),
                side: Side::Buy,
                trade_id: None,
            }),
        }
    }

    #[test]
    fn partial_bars_combine_to_the_bars_of_the_whole() {
        let rows = vec![
            trade(0, 10, "100.5", "1"),
            trade(1, MINUTE - 1, "101", "2"),
            trade(2, 5, "99.25", "0.5"), // earlier in time, later in the log
            trade(3, MINUTE + 7, "60000.123456789012345678", "1.5"),
            trade(4, 3 * MINUTE, "7", "3"),
        ];
        let whole = minute_bars(&rows).unwrap();
        // Any split, combined in any order, gives the same bars.
        for split in 0..=rows.len() {
            let (a, b) = rows.split_at(split);
            let mut bars = minute_bars(b).unwrap();
            for bar in minute_bars(a).unwrap().into_values() {
                add(&mut bars, bar).unwrap();
            }
            assert_eq!(bars, whole, "split at {split}");
        }
        let first = &whole[&0];
        assert_eq!(first.open.1.to_string(), "99.25");
        assert_eq!(first.close.1.to_string(), "101");
        assert_eq!(
            (first.high.to_string(), first.low.to_string()),
            ("101".into(), "99.25".into())
        );
        assert_eq!(first.trades, 3);
        // (100.5·1 + 101·2 + 99.25·0.5) / 3.5
        assert_eq!(first.vwap().unwrap().to_string(), "100.607142857142857143");
        assert_eq!(
            whole[&MINUTE].vwap().unwrap().to_string(),
            "60000.123456789012345678"
        );
        // Footer text round trip, and five-minute bars from minute bars.
        assert_eq!(from_json(&to_json(&whole)).unwrap(), whole);
        let five = rebucket(whole.into_values(), 5 * MINUTE).unwrap();
        assert_eq!(five.len(), 1);
        assert_eq!(five[&0].trades, 5);
        assert_eq!(five[&0].close.1.to_string(), "7");
        assert!(from_json("[[1,2]]").is_err());
    }
}
