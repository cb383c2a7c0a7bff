//! The lake's tables and their Arrow schemas.

use std::fmt;
use std::sync::Arc;

use arrow_schema::{DataType, Field, Schema, TimeUnit};
use mdhub_types::{Event, Topic};

use crate::DecimalType;

/// A table of the lake: the top directory of its files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TableKind {
    /// `trades/`: one row per [`mdhub_types::Trade`], from topic `price-trades`.
    Trades,
    /// `quotes/`: one row per [`mdhub_types::Quote`], from topic `price-quotes`.
    Quotes,
}

impl TableKind {
    /// Both tables.
    pub const ALL: [TableKind; 2] = [TableKind::Trades, TableKind::Quotes];

    /// `trades` or `quotes`: the table's directory.
    pub fn as_str(self) -> &'static str {
        match self {
            TableKind::Trades => "trades",
            TableKind::Quotes => "quotes",
        }
    }

    /// The log topic the table's rows come from.
    pub fn topic(self) -> Topic {
        match self {
            TableKind::Trades => Topic::Trades,
            TableKind::Quotes => Topic::Quotes,
        }
    }

    /// The table an event belongs to; `None` for feed-status events.
    pub fn of(event: &Event) -> Option<TableKind> {
        match event {
            Event::Trade(_) => Some(TableKind::Trades),
            Event::Quote(_) => Some(TableKind::Quotes),
            Event::Status(_) => None,
        }
    }

    /// The table's decimal columns, in schema order; [`schema`] takes one
    /// [`DecimalType`] for each.
    pub fn decimal_columns(self) -> &'static [&'static str] {
        match self {
            TableKind::Trades => &["price", "size"],
            TableKind::Quotes => &["bid_price", "bid_size", "ask_price", "ask_size"],
        }
    }
}

impl fmt::Display for TableKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The Arrow schema of one file of `kind`, with `decimals[i]` the type of
/// `kind.decimal_columns()[i]`; missing entries are [`DecimalType::LAKE`], so
/// `schema(kind, &[])` is the schema of every file the lake writes.
///
/// Columns: `ts_exchange`, `ts_received` (`Timestamp(ns, "UTC")`), `venue`,
/// `symbol` (`Utf8`), the decimal columns, for trades `side` (`buy`, `sell`
/// or `unknown`) and the nullable `trade_id`, then the record's place in the
/// log: `log_partition` (`UInt32`) and `log_offset` (`UInt64`). Only
/// `trade_id` is nullable.
pub fn schema(kind: TableKind, decimals: &[DecimalType]) -> Arc<Schema> {
    schema_with(kind, decimals, false)
}

/// [`schema`], with `venue` as `Dictionary(Int32, Utf8)` when `venue_dictionary`.
pub(crate) fn schema_with(
    kind: TableKind,
    decimals: &[DecimalType],
    venue_dictionary: bool,
) -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into()));
    let venue = if venue_dictionary {
        DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8))
    } else {
        DataType::Utf8
    };
    let mut fields = vec![
        Field::new("ts_exchange", ts.clone(), false),
        Field::new("ts_received", ts, false),
        Field::new("venue", venue, false),
        Field::new("symbol", DataType::Utf8, false),
    ];
    for (i, name) in kind.decimal_columns().iter().enumerate() {
        let t = decimals.get(i).copied().unwrap_or(DecimalType::LAKE);
        fields.push(Field::new(*name, t.data_type(), false));
    }
    if kind == TableKind::Trades {
        fields.push(Field::new("side", DataType::Utf8, false));
        fields.push(Field::new("trade_id", DataType::Utf8, true));
    }
    fields.push(Field::new("log_partition", DataType::UInt32, false));
    fields.push(Field::new("log_offset", DataType::UInt64, false));
    Arc::new(Schema::new(fields))
}
