//! Lake rows back to events: the inverse of [`crate::record_batch`].

use arrow_array::cast::AsArray;
use arrow_array::types::{Decimal128Type, TimestampNanosecondType, UInt32Type, UInt64Type};
use arrow_array::{Array, RecordBatch};
use mdhub_types::{
    Decimal, Event, Position, Positioned, Quote, Side, Symbol, Timestamp, Trade, Venue,
};

use crate::{HistoryError, Result, TableKind};

/// The events of `batch`, rows of `table` in the lake's schema (any column
/// order; extra columns are ignored). Decimals come back normalized
/// (`189.50` reads as `189.5`: equal in value, the lake keeps no trailing zeros).
pub fn events(table: TableKind, batch: &RecordBatch) -> Result<Vec<Positioned>> {
    let bad = |what: String| HistoryError::BadRow(what);
    let col = |name: &str| {
        batch
            .column_by_name(name)
            .ok_or_else(|| bad(format!("no column {name}")))
    };
    let ts = |name: &str| -> Result<_> {
        col(name)?
            .as_primitive_opt::<TimestampNanosecondType>()
            .ok_or_else(|| bad(format!("{name} is not a nanosecond timestamp")))
    };
    let text = |name: &str| -> Result<_> {
        col(name)?
            .as_string_opt::<i32>()
            .ok_or_else(|| bad(format!("{name} is not a string")))
    };
    let dec = |name: &str| -> Result<_> {
        col(name)?
            .as_primitive_opt::<Decimal128Type>()
            .ok_or_else(|| bad(format!("{name} is not a decimal")))
    };
    let (ts_exchange, ts_received) = (ts("ts_exchange")?, ts("ts_received")?);
    let (venue, symbol) = (text("venue")?, text("symbol")?);
    let partition = col("log_partition")?
        .as_primitive_opt::<UInt32Type>()
        .ok_or_else(|| bad("log_partition is not UInt32".into()))?;
    let offset = col("log_offset")?
        .as_primitive_opt::<UInt64Type>()
        .ok_or_else(|| bad("log_offset is not UInt64".into()))?;
    let d = |a: &arrow_array::Decimal128Array, r: usize| -> Result<Decimal> {
        Decimal::from_parts(a.value(r), a.scale().max(0) as u8)
            .map(Decimal::normalized)
            .map_err(|e| bad(e.to_string()))
    };
    let mut out = Vec::with_capacity(batch.num_rows());
    match table {
        TableKind::Trades => {
            let (price, size) = (dec("price")?, dec("size")?);
            let (side, trade_id) = (text("side")?, text("trade_id")?);
            for r in 0..batch.num_rows() {
                let event = Event::Trade(Trade {
                    venue: Venue::new(venue.value(r)).map_err(|e| bad(e.to_string()))?,
                    symbol: Symbol::new(symbol.value(r)).map_err(|e| bad(e.to_string()))?,
                    ts_exchange: Timestamp::from_nanos(ts_exchange.value(r)),
                    ts_received: Timestamp::from_nanos(ts_received.value(r)),
                    price: d(price, r)?,
                    size: d(size, r)?,
                    side: match side.value(r) {
                        "buy" => Side::Buy,
                        "sell" => Side::Sell,
                        _ => Side::Unknown,
                    },
                    trade_id: (!trade_id.is_null(r)).then(|| trade_id.value(r).to_owned()),
                });
                out.push(positioned(
                    table,
                    event,
                    partition.value(r),
                    offset.value(r),
                ));
            }
        }
        TableKind::Quotes => {
            let (bp, bs, ap, a_s) = (
                dec("bid_price")?,
                dec("bid_size")?,
                dec("ask_price")?,
                dec("ask_size")?,
            );
            for r in 0..batch.num_rows() {
                let event = Event::Quote(Quote {
                    venue: Venue::new(venue.value(r)).map_err(|e| bad(e.to_string()))?,
                    symbol: Symbol::new(symbol.value(r)).map_err(|e| bad(e.to_string()))?,
                    ts_exchange: Timestamp::from_nanos(ts_exchange.value(r)),
                    ts_received: Timestamp::from_nanos(ts_received.value(r)),
                    bid_price: d(bp, r)?,
                    bid_size: d(bs, r)?,
                    ask_price: d(ap, r)?,
                    ask_size: d(a_s, r)?,
                });
                out.push(positioned(
                    table,
                    event,
                    partition.value(r),
                    offset.value(r),
                ));
            }
        }
    }
    Ok(out)
}

fn positioned(table: TableKind, event: Event, partition: u32, offset: u64) -> Positioned {
    Positioned {
        position: Position {
            topic: table.topic(),
            partition,
            offset,
        },
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record_batch;

    #[test]
    fn round_trips_through_a_batch() {
        let t = |n| Timestamp::from_nanos(n);
        let d = |s| Decimal::parse(s).unwrap();
        let rows = vec![
            Positioned {
                position: Position {
                    topic: mdhub_types::Topic::Trades,
                    partition: 2,
                    offset: 7,
                },
                event: Event::Trade(Trade {
                    venue: Venue::new("binance").unwrap(),
                    symbol: Symbol::new("BTC-USDT").unwrap(),
                    ts_exchange: t(1),
                    ts_received: t(2),
                    price: d("60000.123456789012345678"),
                    size: d("0.5"),
                    side: Side::Sell,
                    trade_id: Some("42".into()),
                }),
            },
            Positioned {
                position: Position {
                    topic: mdhub_types::Topic::Trades,
                    partition: 2,
                    offset: 8,
                },
                event: Event::Trade(Trade {
                    venue: Venue::new("binance").unwrap(),
                    symbol: Symbol::new("BTC-USDT").unwrap(),
                    ts_exchange: t(3),
                    ts_received: t(4),
                    price: d("1"),
                    size: d("2"),
                    side: Side::Unknown,
                    trade_id: None,
                }),
            },
        ];
        let batch = record_batch(TableKind::Trades, &rows).unwrap();
        assert_eq!(events(TableKind::Trades, &batch).unwrap(), rows);
    }
}
