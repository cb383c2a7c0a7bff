//! Minute bars kept with the ticks, per venue.
//!
//! Every trades file carries, in its Parquet footer (key-value metadata
//! [`VENUE_BARS_KEY`]), the 1-minute bars of its own rows, one series per
//! venue: open, high, low, close, volume, the exact VWAP numerator
//! `Σ price·size` and the trade count, with the (`ts_exchange`, log offset)
//! of the open and close trades. Such *partial* bars combine exactly — the
//! open of two is the one with the earlier key, sums add — so the bars of any
//! set of files, of the hot tier's rows, and of any width that is a whole
//! number of minutes are computed from them without reading a tick: a day of
//! one symbol is at most 1,440 small records per venue and file instead of
//! millions of rows.
//!
//! The bars live in the same file as the rows they summarize, so they share
//! its name, its exactly-once guarantee and its compaction (a merged file's
//! bars are its sources' bars combined); a file whose rows retention removed
//! keeps them.
//!
//! Files written before bars were per venue hold one series for all venues
//! under [`BARS_KEY`]. Such a footer is used as it is when the file's
//! statistics show a single venue; otherwise the bars are computed from the
//! file's rows; and when retention already removed the rows, the bars are
//! kept under no venue (`None`): what the file says, nothing made up.

use std::collections::BTreeMap;

use datafusion::arrow::datatypes::i256;
use mdhub_types::{Decimal, Event, Positioned, Timestamp, Venue};
use serde_json::{Value, json};

use crate::{HistoryError, Result};

/// The footer key of a trades file's minute bars per venue.
pub const VENUE_BARS_KEY: &str = "mdhub.bars.1m.venue";

/// The footer key of the minute bars of all venues together, as files
/// written before bars were per venue hold them (read, never written).
pub const BARS_KEY: &str = "mdhub.bars.1m";

/// One minute in nanoseconds.
pub const MINUTE: i64 = 60_000_000_000;

/// Where a trade sits in a venue's sequence of a symbol: `ts_exchange`, then
/// log offset (a venue's trades of one symbol are all in one log partition).
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

/// Bars by venue, then interval start. `None`: bars of a file written before
/// bars were per venue, whose rows are gone (the venue is unknown).
pub type VenueBars = BTreeMap<Option<Venue>, Bars>;

/// Fold one venue's bar into `bars`.
pub fn add_venue(bars: &mut VenueBars, venue: Option<&Venue>, bar: PartialBar) -> Result<()> {
    match bars.get_mut(&venue.cloned()) {
        Some(b) => add(b, bar),
        None => {
            bars.insert(venue.cloned(), Bars::from([(bar.start, bar)]));
            Ok(())
        }
    }
}

/// Fold every bar of `other` into `bars`.
pub fn merge_all(bars: &mut VenueBars, other: VenueBars) -> Result<()> {
    for (venue, series) in other {
        for bar in series.into_values() {
            add_venue(bars, venue.as_ref(), bar)?;
        }
    }
    Ok(())
}

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

/// The minute bars of the trades among `rows`, per venue (other rows are
/// skipped).
pub fn minute_bars<'a>(rows: impl IntoIterator<Item = &'a Positioned>) -> Result<VenueBars> {
    let mut bars = VenueBars::new();
    for r in rows {
        if let Event::Trade(t) = &r.event {
            let ts = t.ts_exchange.as_nanos();
            let bar = PartialBar::of(bucket(ts, MINUTE), (ts, r.position.offset), t.price, t.size)?;
            add_venue(&mut bars, Some(&t.venue), bar)?;
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

/// The footer text of `bars` ([`VENUE_BARS_KEY`]): a JSON array of
/// `[venue, start, open_ts, open_offset, open, high, low, close_ts,
/// close_offset, close, volume_e18, notional_e36, trades]`, `venue` a venue
/// id or `null` (unknown), decimals as exact text.
pub fn to_json(bars: &VenueBars) -> String {
    let rows: Vec<Value> = bars
        .iter()
        .flat_map(|(venue, series)| series.values().map(move |b| (venue, b)))
        .map(|(venue, b)| {
            let mut row = vec![venue.as_ref().map_or(Value::Null, |v| json!(v.as_str()))];
            row.extend(fields(b));
            Value::Array(row)
        })
        .collect();
    Value::Array(rows).to_string()
}

/// The twelve fields of a bar after its venue.
fn fields(b: &PartialBar) -> Vec<Value> {
    vec![
        json!(b.start),
        json!(b.open.0.0),
        json!(b.open.0.1),
        json!(b.open.1.to_string()),
        json!(b.high.to_string()),
        json!(b.low.to_string()),
        json!(b.close.0.0),
        json!(b.close.0.1),
        json!(b.close.1.to_string()),
        json!(b.volume.to_string()),
        json!(b.notional.to_string()),
        json!(b.trades),
    ]
}

/// The bars of a footer written by [`to_json`].
pub fn from_json(text: &str) -> Result<VenueBars> {
    let bad = |why: &str| HistoryError::BadRow(format!("{VENUE_BARS_KEY}: {why}"));
    let mut bars = VenueBars::new();
    for a in footer_rows(text, VENUE_BARS_KEY)? {
        let (venue, rest) = a.split_first().ok_or_else(|| bad("an empty bar"))?;
        let venue = match venue {
            Value::Null => None,
            Value::String(v) => Some(Venue::new(v).map_err(|e| bad(&e.to_string()))?),
            _ => return Err(bad("a venue is text or null")),
        };
        add_venue(&mut bars, venue.as_ref(), bar_of(rest, VENUE_BARS_KEY)?)?;
    }
    Ok(bars)
}

/// The bars of a footer of all venues together ([`BARS_KEY`], written before
/// bars were per venue): a JSON array of the twelve fields of [`to_json`]
/// after the venue.
pub fn from_legacy_json(text: &str) -> Result<Bars> {
    let mut bars = Bars::new();
    for a in footer_rows(text, BARS_KEY)? {
        add(&mut bars, bar_of(&a, BARS_KEY)?)?;
    }
    Ok(bars)
}

/// The arrays of a footer's JSON array (under `key`).
fn footer_rows(text: &str, key: &str) -> Result<Vec<Vec<Value>>> {
    let bad = |why: String| HistoryError::BadRow(format!("{key}: {why}"));
    let rows: Vec<Value> = serde_json::from_str(text).map_err(|e| bad(e.to_string()))?;
    rows.into_iter()
        .map(|r| match r {
            Value::Array(a) => Ok(a),
            _ => Err(bad("not an array".into())),
        })
        .collect()
}

/// One bar from its twelve footer fields.
fn bar_of(a: &[Value], key: &str) -> Result<PartialBar> {
    let bad = |why: &str| HistoryError::BadRow(format!("{key}: {why}"));
    if a.len() != 12 {
        return Err(bad("a bar has 12 fields after its venue"));
    }
    let int = |i: usize| a[i].as_i64().ok_or_else(|| bad("expected an integer"));
    let uint = |i: usize| a[i].as_u64().ok_or_else(|| bad("expected an integer"));
    let text = |i: usize| a[i].as_str().ok_or_else(|| bad("expected text"));
    let dec =
        |i: usize| -> Result<Decimal> { Decimal::parse(text(i)?).map_err(|e| bad(&e.to_string())) };
    Ok(PartialBar {
        start: int(0)?,
        open: ((int(1)?, uint(2)?), dec(3)?),
        high: dec(4)?,
        low: dec(5)?,
        close: ((int(6)?, uint(7)?), dec(8)?),
        volume: text(9)?.parse().map_err(|_| bad("volume"))?,
        notional: i256::from_string(text(10)?).ok_or_else(|| bad("notional"))?,
        trades: uint(11)?,
    })
}

/// A venue's bar as the API gives it.
pub fn finish(venue: Option<&Venue>, b: &PartialBar) -> crate::query::Bar {
    crate::query::Bar {
        ts: Timestamp::from_nanos(b.start),
        venue: venue.cloned(),
        open: b.open.1.normalized(),
        high: b.high.normalized(),
        low: b.low.normalized(),
        close: b.close.1.normalized(),
        volume: b.volume(),
        vwap: b.vwap(),
        trades: b.trades,
    }
}

/// The bars a trades file's footer holds, as it holds them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Stored {
    /// Per venue ([`VENUE_BARS_KEY`]).
    ByVenue(String),
    /// All venues together ([`BARS_KEY`], before bars were per venue).
    Mixed {
        /// The footer text.
        text: String,
        /// The file's one venue, when its statistics show a single one.
        venue: Option<Venue>,
        /// The file's row count.
        rows: i64,
    },
    /// None (a file written before bars were kept).
    Missing,
}

impl Stored {
    /// What `meta`'s key-value metadata holds.
    pub(crate) fn of(meta: &parquet::file::metadata::ParquetMetaData) -> Stored {
        let kv = |key: &str| {
            meta.file_metadata()
                .key_value_metadata()?
                .iter()
                .find(|kv| kv.key == key)?
                .value
                .clone()
        };
        if let Some(text) = kv(VENUE_BARS_KEY) {
            return Stored::ByVenue(text);
        }
        match kv(BARS_KEY) {
            Some(text) => Stored::Mixed {
                text,
                venue: single_venue(meta),
                rows: meta.file_metadata().num_rows(),
            },
            None => Stored::Missing,
        }
    }

    /// The bars per venue when the footer alone gives them: bars per
    /// venue, or bars of a file whose rows are all of one venue and all
    /// counted in them.
    pub(crate) fn footer_only(&self) -> Result<Option<VenueBars>> {
        match self {
            Stored::ByVenue(text) => from_json(text).map(Some),
            Stored::Mixed {
                text,
                venue: Some(venue),
                rows,
            } => {
                let bars = from_legacy_json(text)?;
                let trades: u64 = bars.values().map(|b| b.trades).sum();
                Ok((u64::try_from(*rows).ok() == Some(trades))
                    .then(|| VenueBars::from([(Some(venue.clone()), bars)])))
            }
            Stored::Mixed { .. } | Stored::Missing => Ok(None),
        }
    }

    /// The bars per venue of a file whose trades are `rows`.
    pub(crate) fn with_rows(&self, rows: &[Positioned]) -> Result<VenueBars> {
        if let Some(bars) = self.footer_only()? {
            return Ok(bars);
        }
        match self {
            // Thinned by retention before bars were per venue: the bars are
            // all that is left, and they name no venue.
            Stored::Mixed { text, .. } if rows.is_empty() => {
                let bars = from_legacy_json(text)?;
                Ok(if bars.is_empty() {
                    VenueBars::new()
                } else {
                    VenueBars::from([(None, bars)])
                })
            }
            _ => minute_bars(rows),
        }
    }
}

/// The one venue of a file, when the statistics of its `venue` column say
/// that every row has the same (exact minimum = exact maximum in every row
/// group, no nulls).
fn single_venue(meta: &parquet::file::metadata::ParquetMetaData) -> Option<Venue> {
    use parquet::file::statistics::Statistics;
    let column = meta
        .file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.name() == "venue")?;
    let mut venue: Option<Vec<u8>> = None;
    for rg in meta.row_groups() {
        if rg.num_rows() == 0 {
            continue;
        }
        let Some(Statistics::ByteArray(s)) = rg.column(column).statistics() else {
            return None;
        };
        let (min, max) = (s.min_opt()?, s.max_opt()?);
        if !s.min_is_exact() || !s.max_is_exact() || s.null_count_opt() != Some(0) || min != max {
            return None;
        }
        match &venue {
            Some(v) if v.as_slice() != min.data() => return None,
            _ => venue = Some(min.data().to_vec()),
        }
    }
    Venue::new(std::str::from_utf8(&venue?).ok()?).ok()
}

/// The minute bars of one trades file per venue, from its footer (two range
/// reads). A file without them (written before they existed), or with bars
/// of several venues together (written before bars were per venue), is read
/// and its bars computed from the rows.
pub async fn file_bars(lake: &crate::Lake, file: &crate::LakeFile) -> Result<VenueBars> {
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
    let stored = Stored::of(&meta);
    if let Some(bars) = stored.footer_only()? {
        return Ok(bars);
    }
    let bytes = lake.store().get(&path).await?.bytes().await?;
    let (batches, _) = crate::compact::read_file(bytes)?;
    stored.with_rows(&trades_of(&batches)?)
}

/// The trades of a file's batches.
pub(crate) fn trades_of(
    batches: &[datafusion::arrow::array::RecordBatch],
) -> Result<Vec<Positioned>> {
    let mut rows = Vec::new();
    for b in batches {
        rows.extend(crate::events(crate::TableKind::Trades, b)?);
    }
    Ok(rows)
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
        let by_venue = minute_bars(&rows).unwrap();
        assert_eq!(by_venue.len(), 1, "one venue");
        let whole = by_venue[&Some(Venue::new("binance").unwrap())].clone();
        // Any split, combined in any order, gives the same bars.
        for split in 0..=rows.len() {
            let (a, b) = rows.split_at(split);
            let mut bars = minute_bars(b).unwrap();
            merge_all(&mut bars, minute_bars(a).unwrap()).unwrap();
            assert_eq!(bars, by_venue, "split at {split}");
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
        assert_eq!(from_json(&to_json(&by_venue)).unwrap(), by_venue);
        let five = rebucket(whole.into_values(), 5 * MINUTE).unwrap();
        assert_eq!(five.len(), 1);
        assert_eq!(five[&0].trades, 5);
        assert_eq!(five[&0].close.1.to_string(), "7");
        assert!(from_json("[[1,2]]").is_err());
    }
}
