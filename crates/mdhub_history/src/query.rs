//! Queries over history: the lake's Parquet files (cold) and the archiver's
//! buffer (hot), as the SQL tables `trades` and `quotes`, with Apache
//! DataFusion.
//!
//! Each table is a [`LakeTable`]: at every scan it lists the lake files the
//! query's filters can touch (a `symbol = '…'` filter reads one symbol's
//! directories, a `ts_exchange` range only its dates), drops files a
//! compacted file replaces ([`live_files`]), and adds the hot rows the lake
//! does not hold yet. So a query sees every archived row exactly once, from
//! the moment the archiver reads it from the log.
//!
//! On top of SQL, [`History::bars`] computes OHLCV bars with VWAP and trade
//! count per venue, and [`History::range`] a time range of one symbol's rows
//! (of one venue, or of all). The SQL
//! function `vwap(price, size)` is exact: it sums `price × size` in 256-bit
//! integers (a `DECIMAL(38, 18)` product needs 36 decimal places, which
//! overflow `DECIMAL(38, …)` arithmetic for ordinary prices and sizes).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Decimal128Array, RecordBatch};
use datafusion::arrow::datatypes::{DataType, Decimal128Type, SchemaRef, TimestampNanosecondType};
use datafusion::common::DataFusionError;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures_util::{StreamExt, TryStreamExt};
use mdhub_types::{Decimal, Symbol, Timestamp, Venue};

use crate::archive::HotTier;
use crate::path::day_of;
use crate::{FileFilter, HistoryError, Lake, TableKind, live_files, schema};

mod bounded;
mod table;
mod vwap;

pub use bounded::{Limit, QueryLimits};
pub use table::LakeTable;
pub use vwap::vwap_udaf;

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    /// The query is wrong (SQL syntax, unknown column, bad parameter).
    #[error("{0}")]
    Invalid(String),
    /// Planning or executing failed.
    #[error(transparent)]
    DataFusion(#[from] DataFusionError),
    /// Listing or reading the lake failed.
    #[error(transparent)]
    History(#[from] HistoryError),
    /// The query hit one of its bounds ([`QueryLimits`]).
    #[error("{1}")]
    Limit(Limit, String),
}

impl QueryError {
    /// Whether the caller's input is at fault (a 400 rather than a 500).
    pub fn is_invalid(&self) -> bool {
        match self {
            QueryError::Invalid(_) => true,
            QueryError::DataFusion(e) => matches!(
                e.find_root(),
                DataFusionError::SQL(..)
                    | DataFusionError::Plan(_)
                    | DataFusionError::SchemaError(..)
                    | DataFusionError::NotImplemented(_)
            ),
            QueryError::History(_) | QueryError::Limit(..) => false,
        }
    }

    /// The bound the query hit, if that is why it failed.
    pub fn limit(&self) -> Option<Limit> {
        match self {
            QueryError::Limit(l, _) => Some(*l),
            _ => None,
        }
    }
}

/// The object store URL the lake is registered under in each session.
const LAKE_URL: &str = "mdhub-lake://lake/";

/// History: the lake and, in the process that archives, the hot tier.
#[derive(Debug, Clone)]
pub struct History {
    lake: Lake,
    hot: Option<Arc<HotTier>>,
    limits: QueryLimits,
}

impl History {
    /// Queries over `lake`, and over `hot` (rows not in the lake yet) when
    /// given, each within the default [`QueryLimits`].
    pub fn new(lake: Lake, hot: Option<Arc<HotTier>>) -> History {
        History {
            lake,
            hot,
            limits: QueryLimits::default(),
        }
    }

    /// The same history with other bounds on each query.
    pub fn with_limits(mut self, limits: QueryLimits) -> History {
        self.limits = limits;
        self
    }

    /// The bounds on each query.
    pub fn limits(&self) -> QueryLimits {
        self.limits
    }

    /// The lake.
    pub fn lake(&self) -> &Lake {
        &self.lake
    }

    /// A DataFusion session with the tables `trades` and `quotes` and the
    /// function `vwap(price, size)`.
    pub fn context(&self) -> Result<SessionContext, QueryError> {
        let config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(bounded::threads())
            .set_str("datafusion.execution.time_zone", "UTC");
        let runtime = bounded::runtime_env(&self.limits)?;
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        let url = url::Url::parse(LAKE_URL).expect("static URL");
        ctx.register_object_store(&url, self.lake.store().clone());
        for table in TableKind::ALL {
            ctx.register_table(
                table.as_str(),
                Arc::new(LakeTable {
                    table,
                    lake: self.lake.clone(),
                    hot: self.hot.clone(),
                    schema: schema(table, &[]),
                }),
            )?;
        }
        ctx.register_udaf(vwap_udaf());
        Ok(ctx)
    }

    /// Run one SQL statement and collect its result, within the limits.
    pub async fn sql(&self, sql: &str) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
        let ctx = self.context()?;
        let df = ctx.sql(sql).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        Ok((schema, bounded::collect(df, None, self.limits).await?))
    }

    /// OHLCV bars of `symbol`'s trades with `ts_exchange` in `[from, to)`,
    /// `interval` wide (aligned to the Unix epoch), one series per venue —
    /// only `venue`'s when given —, ordered by time, then venue; bars
    /// without trades are left out. A venue's trades are ordered by
    /// `ts_exchange`, then log offset, so `open` and `close` are its first
    /// and last trade as the venue sent them.
    ///
    /// When `interval`, `from` and `to` are whole minutes, the answer comes
    /// from the minute bars in the files' footers ([`crate::bars`]) and the
    /// hot tier's rows, without reading ticks; otherwise from the ticks
    /// ([`History::bars_from_ticks`]). Both give the same bars, but for
    /// bars that retention kept from files written before bars were per
    /// venue: those name no venue (`venue: None`), and only the footer path
    /// has them (the ticks are gone), never under a `venue` filter.
    pub async fn bars(
        &self,
        symbol: &Symbol,
        venue: Option<&Venue>,
        interval: std::time::Duration,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Bar>, QueryError> {
        let width = i64::try_from(interval.as_nanos()).unwrap_or(i64::MAX);
        let whole = |n: i64| n.rem_euclid(crate::bars::MINUTE) == 0;
        if width > 0 && whole(width) && whole(from.as_nanos()) && whole(to.as_nanos()) {
            return self.bars_from_minutes(symbol, venue, width, from, to).await;
        }
        self.bars_from_ticks(symbol, venue, interval, from, to)
            .await
    }

    async fn bars_from_minutes(
        &self,
        symbol: &Symbol,
        venue: Option<&Venue>,
        width: i64,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Bar>, QueryError> {
        use crate::bars::{self as b, VenueBars};
        if from >= to {
            return Ok(Vec::new());
        }
        let (lo, hi) = (from.as_nanos(), to.as_nanos());
        let days = day_of(from)..=day_of(to.add_nanos(-1));
        let files = live_files(
            self.lake
                .files(
                    TableKind::Trades,
                    &FileFilter {
                        symbol: Some(symbol.clone()),
                        days: Some(days),
                    },
                )
                .await?,
        );
        let mut marks: BTreeMap<(i64, u32), u64> = BTreeMap::new();
        for f in &files {
            let m = marks
                .entry((f.key.day, f.key.partition))
                .or_insert(f.key.last_offset);
            *m = (*m).max(f.key.last_offset);
        }
        let footers: Vec<VenueBars> = futures_util::stream::iter(files.iter().cloned().map(|f| {
            let lake = self.lake.clone();
            async move { b::file_bars(&lake, &f).await }
        }))
        .buffered(16)
        .try_collect()
        .await?;
        let wanted = |v: &Option<Venue>| venue.is_none_or(|w| v.as_ref() == Some(w));
        let mut minutes = VenueBars::new();
        for (v, series) in footers.into_iter().flatten() {
            if !wanted(&v) {
                continue;
            }
            for bar in series.into_values() {
                if (lo..hi).contains(&bar.start) {
                    b::add_venue(&mut minutes, v.as_ref(), bar)?;
                }
            }
        }
        if let Some(hot) = &self.hot {
            let mut fresh = Vec::new();
            hot.for_each(TableKind::Trades, |r| {
                let ts = r.event.ts_exchange();
                if r.event.symbol() == symbol
                    && venue.is_none_or(|v| r.event.venue() == v)
                    && (lo..hi).contains(&ts.as_nanos())
                    && marks
                        .get(&(day_of(ts), r.position.partition))
                        .is_none_or(|m| r.position.offset > *m)
                {
                    fresh.push(r.clone());
                }
            });
            b::merge_all(&mut minutes, b::minute_bars(&fresh)?)?;
        }
        let mut out = Vec::new();
        for (v, series) in minutes {
            for bar in b::rebucket(series.into_values(), width)?.values() {
                out.push(b::finish(v.as_ref(), bar));
            }
        }
        out.sort_by(|x, y| (x.ts, &x.venue).cmp(&(y.ts, &y.venue)));
        Ok(out)
    }

    /// [`History::bars`] computed from the ticks (SQL over the trades):
    /// any interval, any range.
    pub async fn bars_from_ticks(
        &self,
        symbol: &Symbol,
        venue: Option<&Venue>,
        interval: std::time::Duration,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<Vec<Bar>, QueryError> {
        let sql = bars_sql(symbol, venue, interval, from, to)?;
        let (_, batches) = self.sql(&sql).await?;
        let mut out = Vec::new();
        for b in &batches {
            let ts = b.column(0).as_primitive::<TimestampNanosecondType>();
            let venues = datafusion::arrow::compute::cast(b.column(1), &DataType::Utf8)
                .map_err(HistoryError::from)?;
            let venues = venues.as_string::<i32>();
            let dec = |i: usize| b.column(i).as_primitive::<Decimal128Type>().clone();
            let (open, high, low, close, volume, vwap) =
                (dec(2), dec(3), dec(4), dec(5), dec(6), dec(7));
            let trades = b
                .column(8)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for r in 0..b.num_rows() {
                out.push(Bar {
                    ts: Timestamp::from_nanos(ts.value(r)),
                    venue: Some(
                        Venue::new(venues.value(r))
                            .map_err(|e| HistoryError::BadRow(e.to_string()))?,
                    ),
                    open: decimal(&open, r),
                    high: decimal(&high, r),
                    low: decimal(&low, r),
                    close: decimal(&close, r),
                    volume: decimal(&volume, r),
                    vwap: (!vwap.is_null(r)).then(|| decimal(&vwap, r)),
                    trades: trades.value(r) as u64,
                });
            }
        }
        Ok(out)
    }

    /// The last quote of `symbol` — of `venue` when given, of any venue
    /// otherwise — with `ts_exchange` at or before `at` (ties: the later log
    /// offset), looking back day by day, at most `max_days` UTC days before
    /// `at`'s. Hot rows count.
    pub async fn last_quote(
        &self,
        symbol: &Symbol,
        venue: Option<&Venue>,
        at: Timestamp,
        max_days: u32,
    ) -> Result<Option<mdhub_types::Positioned>, QueryError> {
        const DAY: i64 = 86_400_000_000_000;
        let venue_filter = venue.map_or(String::new(), |v| format!(" AND venue = '{v}'"));
        for d in self
            .quote_days(symbol, venue, at, max_days)
            .await?
            .into_iter()
            .rev()
        {
            let start = d.saturating_mul(DAY);
            let end = at.as_nanos().min(start.saturating_add(DAY - 1));
            let sql = format!(
                "SELECT * FROM quotes WHERE symbol = '{symbol}'{venue_filter} AND ts_exchange >= to_timestamp_nanos({start}) \
                 AND ts_exchange <= to_timestamp_nanos({end}) ORDER BY ts_exchange DESC, log_offset DESC LIMIT 1"
            );
            if let Some(q) = self.first_quote(&sql).await? {
                return Ok(Some(q));
            }
        }
        Ok(None)
    }

    /// The last quote of each venue of `symbol` with `ts_exchange` at or
    /// before `at` (ties: the later log offset), within `max_days` UTC days
    /// before `at`'s, ordered by venue. One pass over the `venue` and
    /// `ts_exchange` of the days that hold the symbol's quotes finds each
    /// venue's time, then one small query per venue its quote.
    pub async fn last_quotes(
        &self,
        symbol: &Symbol,
        at: Timestamp,
        max_days: u32,
    ) -> Result<Vec<mdhub_types::Positioned>, QueryError> {
        const DAY: i64 = 86_400_000_000_000;
        let days = self.quote_days(symbol, None, at, max_days).await?;
        let Some(first) = days.first() else {
            return Ok(Vec::new());
        };
        let sql = format!(
            "SELECT venue, CAST(max(ts_exchange) AS BIGINT) AS ts FROM quotes WHERE symbol = '{symbol}' \
             AND ts_exchange >= to_timestamp_nanos({}) AND ts_exchange <= to_timestamp_nanos({}) \
             GROUP BY venue ORDER BY venue",
            first.saturating_mul(DAY),
            at.as_nanos()
        );
        let (_, batches) = self.sql(&sql).await?;
        let mut out = Vec::new();
        for b in &batches {
            let venues = datafusion::arrow::compute::cast(b.column(0), &DataType::Utf8)
                .map_err(HistoryError::from)?;
            let venues = venues.as_string::<i32>();
            let ts = b
                .column(1)
                .as_primitive::<datafusion::arrow::datatypes::Int64Type>();
            for r in 0..b.num_rows() {
                let venue =
                    Venue::new(venues.value(r)).map_err(|e| HistoryError::BadRow(e.to_string()))?;
                let t = ts.value(r);
                let sql = format!(
                    "SELECT * FROM quotes WHERE symbol = '{symbol}' AND venue = '{venue}' \
                     AND ts_exchange = to_timestamp_nanos({t}) ORDER BY log_offset DESC LIMIT 1"
                );
                out.extend(self.first_quote(&sql).await?);
            }
        }
        Ok(out)
    }

    /// The UTC days from `max_days` before `at`'s to `at`'s that hold
    /// quotes of `symbol`, oldest first: the lake's file names say which,
    /// and the hot tier's rows (of `venue` when given). A time far in the
    /// past costs one listing, not one scan per day.
    async fn quote_days(
        &self,
        symbol: &Symbol,
        venue: Option<&Venue>,
        at: Timestamp,
        max_days: u32,
    ) -> Result<Vec<i64>, QueryError> {
        let day = day_of(at);
        let first = day.saturating_sub(i64::from(max_days));
        let filter = FileFilter {
            symbol: Some(symbol.clone()),
            days: Some(first..=day),
        };
        let mut days: std::collections::BTreeSet<i64> = self
            .lake
            .files(TableKind::Quotes, &filter)
            .await?
            .iter()
            .map(|f| f.key.day)
            .collect();
        if let Some(hot) = &self.hot {
            hot.for_each(TableKind::Quotes, |p| {
                let d = day_of(p.event.ts_exchange());
                if p.event.symbol() == symbol
                    && venue.is_none_or(|v| p.event.venue() == v)
                    && (first..=day).contains(&d)
                {
                    days.insert(d);
                }
            });
        }
        Ok(days.into_iter().collect())
    }

    /// The first quote `sql` answers.
    async fn first_quote(&self, sql: &str) -> Result<Option<mdhub_types::Positioned>, QueryError> {
        let (_, batches) = self.sql(sql).await?;
        for b in &batches {
            if let Some(q) = crate::events(TableKind::Quotes, b)?.into_iter().next() {
                return Ok(Some(q));
            }
        }
        Ok(None)
    }

    /// Run one read-only statement (a query: no DDL, DML, `COPY` or `SET`)
    /// — what the REST endpoint `/v1/history/sql` accepts.
    /// At most `max_rows` rows: the limit goes into the plan, so a query
    /// over a huge input stops reading once it has them.
    pub async fn sql_read_only(
        &self,
        sql: &str,
        max_rows: Option<usize>,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
        let ctx = self.context()?;
        let opts = datafusion::execution::context::SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let df = ctx.sql_with_options(sql, opts).await?;
        let schema: SchemaRef = Arc::new(df.schema().as_arrow().clone());
        Ok((schema, bounded::collect(df, max_rows, self.limits).await?))
    }

    /// The rows of `table` of `symbols` — `venue`'s only, when given —
    /// with `ts_exchange` in `[from, to)`, in time order (then log partition,
    /// then log offset: a total order), at most `limit`; with `after`, only
    /// the rows after that one in this order (the next page of a range
    /// whose last page ended there). The schema comes too: an Arrow answer
    /// of no rows still has one.
    #[allow(clippy::too_many_arguments)]
    pub async fn range(
        &self,
        table: TableKind,
        symbols: &[Symbol],
        venue: Option<&Venue>,
        from: Timestamp,
        to: Timestamp,
        after: Option<RowKey>,
        limit: usize,
    ) -> Result<(SchemaRef, Vec<RecordBatch>), QueryError> {
        // The cursor's time is the range's start (it keeps date pruning);
        // among rows of that very time, only those after its position.
        let (from, tie) = match after {
            Some(k) if k.ts >= from => (
                k.ts,
                format!(
                    " AND (ts_exchange > to_timestamp_nanos({}) OR log_partition > {} \
                     OR (log_partition = {} AND log_offset > {}))",
                    k.ts.as_nanos(),
                    k.partition,
                    k.partition,
                    k.offset
                ),
            ),
            _ => (from, String::new()),
        };
        // One scan per symbol (each reads only its symbol's files), merged
        // by the one order.
        let scans: Vec<String> = symbols
            .iter()
            .map(|symbol| {
                format!(
                    "SELECT * FROM {table} WHERE {}{tie}",
                    range_predicate(symbol, venue, from, to)
                )
            })
            .collect();
        if scans.is_empty() {
            return Err(QueryError::Invalid("a range needs a symbol".into()));
        }
        let sql = format!(
            "SELECT * FROM ({}) ORDER BY ts_exchange, log_partition, log_offset LIMIT {limit}",
            scans.join(" UNION ALL ")
        );
        self.sql(&sql).await
    }
}

/// Where a row sits in the order of [`History::range`]: its `ts_exchange`,
/// then its log position (which identifies it within a table).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RowKey {
    /// `ts_exchange`.
    pub ts: Timestamp,
    /// `log_partition`.
    pub partition: u32,
    /// `log_offset`.
    pub offset: u64,
}

/// The SQL of [`History::bars`]: columns `ts`, `venue`, `open`, `high`,
/// `low`, `close`, `volume`, `vwap`, `trades`, one bar per interval and
/// venue, ordered by `ts`, then `venue`.
pub fn bars_sql(
    symbol: &Symbol,
    venue: Option<&Venue>,
    interval: std::time::Duration,
    from: Timestamp,
    to: Timestamp,
) -> Result<String, QueryError> {
    let nanos = interval.as_nanos();
    if nanos == 0 || nanos > i64::MAX as u128 {
        return Err(QueryError::Invalid(format!(
            "interval {interval:?} must be between 1ns and 292 years"
        )));
    }
    Ok(format!(
        "SELECT date_bin(INTERVAL '{nanos} nanoseconds', ts_exchange, to_timestamp_nanos(0)) AS ts, \
         venue, first_value(price ORDER BY ts_exchange, log_offset) AS open, max(price) AS high, \
         min(price) AS low, last_value(price ORDER BY ts_exchange, log_offset) AS close, \
         sum(size) AS volume, vwap(price, size) AS vwap, count(*) AS trades \
         FROM trades WHERE {} GROUP BY 1, 2 ORDER BY 1, 2",
        range_predicate(symbol, venue, from, to)
    ))
}

/// `symbol = '…' [AND venue = '…'] AND ts_exchange >= … AND ts_exchange <
/// …` (canonical symbols and venues need no quoting: `A-Z a-z 0-9 . _ -`).
fn range_predicate(
    symbol: &Symbol,
    venue: Option<&Venue>,
    from: Timestamp,
    to: Timestamp,
) -> String {
    let venue = venue.map_or(String::new(), |v| format!(" AND venue = '{v}'"));
    format!(
        "symbol = '{symbol}'{venue} AND ts_exchange >= to_timestamp_nanos({}) AND ts_exchange < to_timestamp_nanos({})",
        from.as_nanos(),
        to.as_nanos()
    )
}

fn decimal(a: &Decimal128Array, row: usize) -> Decimal {
    Decimal::from_parts(a.value(row), a.scale() as u8)
        .map(Decimal::normalized)
        .unwrap_or(Decimal::ZERO)
}

/// `bars` as an Arrow batch with the columns of [`bars_sql`]'s result: `ts`
/// (`Timestamp(ns, UTC)`), `venue` (`Utf8`, null for bars that name no
/// venue), `open`, `high`, `low`, `close`, `volume`, `vwap`
/// (`Decimal128(38, 18)`, `vwap` nullable) and `trades` (`Int64`).
pub fn bars_batch(bars: &[Bar]) -> Result<RecordBatch, QueryError> {
    use datafusion::arrow::array::{Int64Array, StringArray, TimestampNanosecondArray};
    use datafusion::arrow::datatypes::{Field, Schema, TimeUnit};
    let dec = DataType::Decimal128(38, 18);
    let schema = Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Nanosecond, Some("UTC".into())),
            false,
        ),
        Field::new("venue", DataType::Utf8, true),
        Field::new("open", dec.clone(), false),
        Field::new("high", dec.clone(), false),
        Field::new("low", dec.clone(), false),
        Field::new("close", dec.clone(), false),
        Field::new("volume", dec.clone(), false),
        Field::new("vwap", dec, true),
        Field::new("trades", DataType::Int64, false),
    ]));
    let m = |d: Decimal| d.rescaled(18).map(Decimal::mantissa);
    let col = |f: fn(&Bar) -> Option<Decimal>| -> Result<ArrayRef, QueryError> {
        let values: Vec<Option<i128>> = bars.iter().map(|b| f(b).and_then(m)).collect();
        Ok(Arc::new(
            Decimal128Array::from(values)
                .with_precision_and_scale(38, 18)
                .map_err(HistoryError::from)?,
        ))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(
            TimestampNanosecondArray::from_iter_values(bars.iter().map(|b| b.ts.as_nanos()))
                .with_timezone("UTC"),
        ),
        Arc::new(StringArray::from_iter(
            bars.iter().map(|b| b.venue.as_ref().map(Venue::as_str)),
        )),
        col(|b| Some(b.open))?,
        col(|b| Some(b.high))?,
        col(|b| Some(b.low))?,
        col(|b| Some(b.close))?,
        col(|b| Some(b.volume))?,
        col(|b| b.vwap)?,
        Arc::new(Int64Array::from_iter_values(
            bars.iter().map(|b| b.trades as i64),
        )),
    ];
    Ok(RecordBatch::try_new(schema, columns).map_err(HistoryError::from)?)
}

/// `batch` with every decimal column cast to its exact text (JSON writers
/// print decimals as floats otherwise).
pub fn decimals_as_text(batch: &RecordBatch) -> Result<RecordBatch, QueryError> {
    use datafusion::arrow::datatypes::{Field, Schema};
    let schema = batch.schema();
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if matches!(
            f.data_type(),
            DataType::Decimal128(..) | DataType::Decimal256(..)
        ) {
            columns.push(
                datafusion::arrow::compute::cast(c, &DataType::Utf8).map_err(HistoryError::from)?,
            );
            fields.push(Field::new(f.name(), DataType::Utf8, f.is_nullable()));
        } else {
            columns.push(c.clone());
            fields.push(f.as_ref().clone());
        }
    }
    Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).map_err(HistoryError::from)?)
}

/// The rows of `batches` as JSON objects, decimals as exact text,
/// timestamps as RFC 3339.
pub fn json_rows(batches: &[RecordBatch]) -> Result<Vec<serde_json::Value>, QueryError> {
    let mut buf = Vec::new();
    {
        let mut w = datafusion::arrow::json::ArrayWriter::new(&mut buf);
        for b in batches {
            w.write(&decimals_as_text(b)?).map_err(HistoryError::from)?;
        }
        w.finish().map_err(HistoryError::from)?;
    }
    if buf.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&buf).map_err(|e| QueryError::Invalid(e.to_string()))
}

/// One OHLCV bar of one venue's trades.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Bar {
    /// Start of the bar (inclusive).
    pub ts: Timestamp,
    /// The venue whose trades it sums; `None` for bars that retention kept
    /// from a file written before bars were per venue (the venue is unknown).
    pub venue: Option<Venue>,
    /// First trade's price.
    pub open: Decimal,
    /// Highest price.
    pub high: Decimal,
    /// Lowest price.
    pub low: Decimal,
    /// Last trade's price.
    pub close: Decimal,
    /// Sum of sizes.
    pub volume: Decimal,
    /// Volume-weighted average price (exact to 18 decimal places, rounded
    /// half away from zero); `None` when the volume is zero.
    pub vwap: Option<Decimal>,
    /// Number of trades.
    pub trades: u64,
}

impl fmt::Display for Bar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} O {} H {} L {} C {} V {} n {}",
            self.ts,
            self.venue.as_ref().map_or("?", Venue::as_str),
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.trades
        )
    }
}

#[cfg(test)]
mod tests {
    use datafusion::common::ScalarValue;
    use datafusion::logical_expr::Accumulator;

    use super::table::file_filter;
    use super::vwap::Vwap;
    use super::*;

    fn d(s: &str) -> i128 {
        let x = Decimal::parse(s).unwrap().rescaled(18).unwrap();
        x.mantissa()
    }

    fn vwap_of(prices: &[&str], sizes: &[&str]) -> ScalarValue {
        let arr = |v: &[&str]| -> ArrayRef {
            Arc::new(
                Decimal128Array::from(v.iter().map(|s| d(s)).collect::<Vec<_>>())
                    .with_precision_and_scale(38, 18)
                    .unwrap(),
            )
        };
        let mut acc = Vwap::default();
        acc.update_batch(&[arr(prices), arr(sizes)]).unwrap();
        // Split and merged, as a partitioned aggregate does.
        let mut merged = Vwap::default();
        let state: Vec<ArrayRef> = acc
            .state()
            .unwrap()
            .into_iter()
            .map(|v| v.to_array().unwrap())
            .collect();
        merged.merge_batch(&state).unwrap();
        assert_eq!(merged.evaluate().unwrap(), acc.evaluate().unwrap());
        acc.evaluate().unwrap()
    }

    fn text(v: ScalarValue) -> String {
        let ScalarValue::Decimal128(Some(v), 38, 18) = v else {
            panic!("{v:?}")
        };
        Decimal::from_parts(v, 18).unwrap().normalized().to_string()
    }

    #[test]
    fn vwap_is_exact_and_rounds_half_away() {
        // 60000.12… × 1.5 needs 36 decimal places and 41 digits: beyond i128.
        assert_eq!(
            text(vwap_of(&["60000.123456789012345678"], &["1.5"])),
            "60000.123456789012345678"
        );
        // (10·1 + 11·2) / 3 = 10.666…
        assert_eq!(
            text(vwap_of(&["10", "11"], &["1", "2"])),
            "10.666666666666666667"
        );
        assert_eq!(
            text(vwap_of(&["-10", "-11"], &["1", "2"])),
            "-10.666666666666666667"
        );
        assert_eq!(
            vwap_of(&["5"], &["0"]),
            ScalarValue::Decimal128(None, 38, 18)
        );
    }

    #[test]
    fn filters_choose_a_symbol_and_days() {
        use datafusion::prelude::{col, lit};
        let ts = |n: i64| {
            lit(ScalarValue::TimestampNanosecond(
                Some(n),
                Some("UTC".into()),
            ))
        };
        let day = 86_400_000_000_000i64;
        let f = file_filter(&[col("symbol")
            .eq(lit("AAPL"))
            .and(col("ts_exchange").gt_eq(ts(3 * day + 5)))
            .and(ts(5 * day).gt(col("ts_exchange")))]);
        assert_eq!(f.symbol, Some(Symbol::new("AAPL").unwrap()));
        assert_eq!(f.days, Some(3..=5));
        assert_eq!(
            file_filter(&[col("price").gt(lit(1))]),
            FileFilter::default()
        );
    }
}
