//! Where a lake file lives: a pure function of its table, date, symbol and
//! the log positions of its rows.

use mdhub_types::{Position, Symbol, Timestamp};
use object_store::path::Path;

use crate::{HistoryError, Result, TableKind};

const NANOS_PER_DAY: i64 = 86_400_000_000_000;

/// What names one lake file: rows of one table, one UTC date, one symbol and
/// one log partition, from `first_offset` to `last_offset` inclusive.
///
/// The path is
/// `{table}/date=YYYY-MM-DD/symbol=SYM/part-{partition}-{first}-{last}.parquet`
/// with both offsets written as 20 digits (zero-padded), so a listing of a
/// directory is in log order and the file holding the highest offset is the
/// last one listed. Symbols are canonical (`A-Z 0-9 . _ -`, starting with a
/// letter or digit), so they are safe in a path and need no escaping.
///
/// The date is the UTC calendar date of the rows' `ts_exchange` (the venue's
/// time: the day the market says the event happened, the same for every
/// mdhub instance that archives it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FileKey {
    /// The table.
    pub table: TableKind,
    /// The UTC date as days since 1970-01-01.
    pub day: i64,
    /// The canonical symbol.
    pub symbol: Symbol,
    /// The log partition of every row.
    pub partition: u32,
    /// The smallest log offset of the file's rows.
    pub first_offset: u64,
    /// The largest log offset of the file's rows.
    pub last_offset: u64,
}

impl FileKey {
    /// The key of a file of `table` for the UTC date of `ts_exchange`, holding
    /// the records `first ..= last` of one partition of `table`'s topic.
    pub fn new(
        table: TableKind,
        ts_exchange: Timestamp,
        symbol: Symbol,
        first: Position,
        last: Position,
    ) -> Result<Self> {
        if first.topic != table.topic()
            || last.topic != first.topic
            || last.partition != first.partition
            || last.offset < first.offset
        {
            return Err(HistoryError::BadRange { first, last });
        }
        Ok(FileKey {
            table,
            day: day_of(ts_exchange),
            symbol,
            partition: first.partition,
            first_offset: first.offset,
            last_offset: last.offset,
        })
    }

    /// The date partition value, `YYYY-MM-DD`.
    pub fn date(&self) -> String {
        Timestamp::from_nanos(self.day.saturating_mul(NANOS_PER_DAY)).date_string()
    }

    /// The file's path relative to the lake root.
    pub fn path(&self) -> Path {
        Path::from_iter([
            self.table.as_str().to_owned(),
            format!("date={}", self.date()),
            format!("symbol={}", self.symbol),
            format!(
                "part-{}-{:020}-{:020}.parquet",
                self.partition, self.first_offset, self.last_offset
            ),
        ])
    }

    /// The key of a path written by [`FileKey::path`]; `None` for any other path.
    pub fn parse(path: &Path) -> Option<Self> {
        let parts: Vec<_> = path.parts().collect();
        let [table, date, symbol, file] = parts.as_slice() else {
            return None;
        };
        let table = TableKind::ALL
            .into_iter()
            .find(|t| t.as_str() == table.as_ref())?;
        let day = day_of_date(date.as_ref().strip_prefix("date=")?)?;
        let symbol = Symbol::new(symbol.as_ref().strip_prefix("symbol=")?).ok()?;
        let name = file
            .as_ref()
            .strip_prefix("part-")?
            .strip_suffix(".parquet")?;
        let mut it = name.split('-');
        let partition = it.next()?.parse().ok()?;
        let first_offset = it.next()?.parse().ok()?;
        let last_offset = it.next()?.parse().ok()?;
        if it.next().is_some() || last_offset < first_offset {
            return None;
        }
        Some(FileKey {
            table,
            day,
            symbol,
            partition,
            first_offset,
            last_offset,
        })
    }
}

/// The UTC day of a `YYYY-MM-DD` date; `None` for anything else.
pub(crate) fn day_of_date(date: &str) -> Option<i64> {
    if date.len() != 10 {
        return None;
    }
    Some(day_of(Timestamp::parse_rfc3339(date).ok()?))
}

/// The UTC day (days since 1970-01-01) of a timestamp.
pub(crate) fn day_of(ts: Timestamp) -> i64 {
    ts.as_nanos().div_euclid(NANOS_PER_DAY)
}

#[cfg(test)]
mod tests {
    use mdhub_types::Topic;

    use super::*;

    #[test]
    fn hive_path_from_table_date_symbol_and_offsets() {
        // 2024-05-01T23:59:59.999999999Z
        let ts = Timestamp::from_nanos(1_714_607_999_999_999_999);
        let key = FileKey::new(
            TableKind::Trades,
            ts,
            Symbol::new("BTC-USD").unwrap(),
            Position::new(Topic::Trades, 3, 1234),
            Position::new(Topic::Trades, 3, 5678),
        )
        .unwrap();
        assert_eq!(
            key.path().as_ref(),
            "trades/date=2024-05-01/symbol=BTC-USD/part-3-00000000000000001234-00000000000000005678.parquet"
        );
        assert_eq!(FileKey::parse(&key.path()), Some(key.clone()));

        // One nanosecond later is the next day; before 1970 works too.
        let next = FileKey::new(
            TableKind::Quotes,
            ts.add_nanos(1),
            Symbol::new("BRK.B").unwrap(),
            Position::new(Topic::Quotes, 0, 0),
            Position::new(Topic::Quotes, 0, u64::MAX),
        )
        .unwrap();
        assert_eq!(
            next.path().as_ref(),
            "quotes/date=2024-05-02/symbol=BRK.B/part-0-00000000000000000000-18446744073709551615.parquet"
        );
        assert_eq!(FileKey::parse(&next.path()), Some(next));
        assert_eq!(day_of(Timestamp::from_nanos(-1)), -1);
    }

    #[test]
    fn a_file_spans_one_topic_and_partition_in_order() {
        let s = Symbol::new("AAPL").unwrap();
        let t = Timestamp::EPOCH;
        let bad = [
            (
                Position::new(Topic::Quotes, 1, 1),
                Position::new(Topic::Quotes, 1, 2),
            ),
            (
                Position::new(Topic::Trades, 1, 1),
                Position::new(Topic::Trades, 2, 2),
            ),
            (
                Position::new(Topic::Trades, 1, 3),
                Position::new(Topic::Trades, 1, 2),
            ),
        ];
        for (first, last) in bad {
            assert!(matches!(
                FileKey::new(TableKind::Trades, t, s.clone(), first, last),
                Err(HistoryError::BadRange { .. })
            ));
        }
        for p in [
            "trades/date=2024-05-01/symbol=AAPL/x.parquet",
            "trades/date=2024-5-1/symbol=AAPL/part-1-2-3.parquet",
            "bars/date=2024-05-01/symbol=AAPL/part-1-2-3.parquet",
            "trades/date=2024-05-01/symbol=aapl/part-1-2-3.parquet",
            "trades/date=2024-05-01/symbol=AAPL/part-1-3-2.parquet",
        ] {
            assert_eq!(FileKey::parse(&Path::from(p)), None, "{p}");
        }
    }
}
