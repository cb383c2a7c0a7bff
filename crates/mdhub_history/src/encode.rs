//! Rows to one Parquet file.

use std::borrow::Borrow;
use std::sync::Arc;

use arrow_array::types::Int32Type;
use arrow_array::{
    ArrayRef, DictionaryArray, RecordBatch, StringArray, TimestampNanosecondArray, UInt32Array,
    UInt64Array,
};
use bytes::Bytes;
use mdhub_types::{Decimal, Event, Positioned, Quote, Trade};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::SortingColumn;
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;

use crate::schema::schema_with;
use crate::{DecimalType, HistoryError, Result, TableKind};

/// How one group of columns is encoded in Parquet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnEncoding {
    /// A dictionary page and RLE indices; when the dictionary outgrows its
    /// page limit (1 MiB), the rest of the column chunk is written as `Delta`.
    /// Parquet 1.0 files (what the lake writes, for the widest reader
    /// support) have no dictionary for `FIXED_LEN_BYTE_ARRAY`, so 16-byte
    /// decimals get `Delta` straight away.
    Dictionary,
    /// Values as they are.
    Plain,
    /// `DELTA_BINARY_PACKED` for integers (timestamps, offsets, `INT64`
    /// decimals), `DELTA_BYTE_ARRAY` (shared prefixes) for strings and
    /// 16-byte decimals.
    Delta,
    /// `BYTE_STREAM_SPLIT`: the k-th bytes of all values together.
    ByteStreamSplit,
}

/// How [`encode_parquet_with`] writes a file. The [`Default`] is what
/// [`encode_parquet`] uses: the smallest files measured on the simulator's
/// data (see the crate README for the numbers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodeOptions {
    /// `ts_exchange` and `ts_received`.
    pub timestamps: ColumnEncoding,
    /// The price and size columns.
    pub decimals: ColumnEncoding,
    /// The type of every price and size column; `None` chooses the smallest
    /// per file and column ([`DecimalType::for_values`]) — smaller files, but
    /// files of one table then differ in type, which readers mishandle (see
    /// [`DecimalType::LAKE`]). The lake uses `Some(DecimalType::LAKE)`.
    pub decimal_type: Option<DecimalType>,
    /// `log_offset`.
    pub log_offset: ColumnEncoding,
    /// `trade_id`.
    pub trade_id: ColumnEncoding,
    /// zstd level (1–22).
    pub zstd_level: i32,
    /// `venue` as Arrow `Dictionary(Int32, Utf8)` instead of `Utf8`.
    pub venue_dictionary: bool,
    /// Rows per row group, at most.
    pub max_row_group_rows: usize,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            timestamps: ColumnEncoding::Delta,
            decimals: ColumnEncoding::Plain,
            decimal_type: Some(DecimalType::LAKE),
            log_offset: ColumnEncoding::Delta,
            trade_id: ColumnEncoding::Delta,
            zstd_level: 3,
            venue_dictionary: false,
            max_row_group_rows: 1 << 20,
        }
    }
}

/// One Parquet file of `table` holding `rows`, with the default
/// [`EncodeOptions`]. See [`encode_parquet_with`].
pub fn encode_parquet<R: Borrow<Positioned>>(table: TableKind, rows: &[R]) -> Result<Bytes> {
    encode_parquet_with(table, rows, &EncodeOptions::default())
}

/// One Parquet file of `table` holding `rows`: schema [`crate::schema`] with
/// exact decimals ([`DecimalType::LAKE`] unless `opts` say otherwise),
/// rows sorted by `ts_received` then log offset (the order is declared in the
/// file's sorting columns), zstd, and `opts`' encodings. Low-cardinality
/// columns (`venue`, `symbol`, `side`, `log_partition`) are always
/// dictionary-encoded.
///
/// Every row must be a row of `table` ([`HistoryError::NotLakeRow`]
/// otherwise; feed-status events are rejected). The rows need not share a
/// date, symbol or partition — [`crate::plan_files`] groups them so.
pub fn encode_parquet_with<R: Borrow<Positioned>>(
    table: TableKind,
    rows: &[R],
    opts: &EncodeOptions,
) -> Result<Bytes> {
    let (batch, decimals) = build_batch(table, rows, opts, true)?;
    let footer = match table {
        TableKind::Trades => Some(crate::bars::to_json(&crate::bars::minute_bars(
            rows.iter().map(Borrow::borrow),
        )?)),
        TableKind::Quotes => None,
    };
    let props = properties(table, &decimals, opts, footer)?;
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    writer.write(&batch)?;
    Ok(Bytes::from(writer.into_inner()?))
}

/// One Parquet file of `table` from a batch already in the lake's schema
/// ([`crate::schema`]`(table, &[])`) and already sorted like a lake file:
/// how compaction rewrites files it has merged.
pub(crate) fn encode_batch(
    table: TableKind,
    batch: &RecordBatch,
    bars: Option<String>,
) -> Result<Bytes> {
    let opts = EncodeOptions::default();
    let decimals = vec![DecimalType::LAKE; table.decimal_columns().len()];
    let props = properties(table, &decimals, &opts, bars)?;
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props))?;
    writer.write(batch)?;
    Ok(Bytes::from(writer.into_inner()?))
}

/// `rows` of `table` as one Arrow batch in the lake's schema
/// ([`crate::schema`]`(table, &[])`), sorted like a lake file (by
/// `ts_received`, then log offset). This is how the hot tier holds rows that
/// are not in the lake yet, so queries see one schema for both.
///
/// Every row must be a row of `table`, else [`HistoryError::NotLakeRow`].
pub fn record_batch<R: Borrow<Positioned>>(table: TableKind, rows: &[R]) -> Result<RecordBatch> {
    Ok(build_batch(table, rows, &EncodeOptions::default(), true)?.0)
}

/// [`record_batch`] in the order given (the hot tier: queries sort as they
/// need, and the log's order is as good as any).
pub(crate) fn record_batch_unsorted<R: Borrow<Positioned>>(
    table: TableKind,
    rows: &[R],
) -> Result<RecordBatch> {
    Ok(build_batch(table, rows, &EncodeOptions::default(), false)?.0)
}

/// The sorted batch and the decimal type of each decimal column.
fn build_batch<R: Borrow<Positioned>>(
    table: TableKind,
    rows: &[R],
    opts: &EncodeOptions,
    sort: bool,
) -> Result<(RecordBatch, Vec<DecimalType>)> {
    let mut sorted: Vec<&Positioned> = rows.iter().map(Borrow::borrow).collect();
    for r in &sorted {
        if TableKind::of(&r.event) != Some(table) || r.position.topic != table.topic() {
            return Err(HistoryError::NotLakeRow {
                position: r.position,
                table,
            });
        }
    }
    // Stable: equal (ts_received, offset) keep their input order.
    if sort {
        sorted.sort_by_key(|r| (r.event.ts_received(), r.position.offset));
    }

    let mut columns = common_columns(&sorted, opts.venue_dictionary);
    let decimals = match table {
        TableKind::Trades => trade_columns(&trades(&sorted), opts.decimal_type, &mut columns)?,
        TableKind::Quotes => quote_columns(&quotes(&sorted), opts.decimal_type, &mut columns)?,
    };
    columns.push(Arc::new(UInt32Array::from_iter_values(
        sorted.iter().map(|r| r.position.partition),
    )));
    columns.push(Arc::new(UInt64Array::from_iter_values(
        sorted.iter().map(|r| r.position.offset),
    )));
    let schema = schema_with(table, &decimals, opts.venue_dictionary);
    Ok((RecordBatch::try_new(schema, columns)?, decimals))
}

fn common_columns(rows: &[&Positioned], venue_dictionary: bool) -> Vec<ArrayRef> {
    let ts = |f: fn(&Event) -> i64| -> ArrayRef {
        Arc::new(
            TimestampNanosecondArray::from_iter_values(rows.iter().map(|r| f(&r.event)))
                .with_timezone("UTC"),
        )
    };
    let venues = rows.iter().map(|r| Some(r.event.venue().as_str()));
    let venue: ArrayRef = if venue_dictionary {
        Arc::new(venues.collect::<DictionaryArray<Int32Type>>())
    } else {
        Arc::new(venues.collect::<StringArray>())
    };
    vec![
        ts(|e| e.ts_exchange().as_nanos()),
        ts(|e| e.ts_received().as_nanos()),
        venue,
        Arc::new(StringArray::from_iter_values(
            rows.iter().map(|r| r.event.symbol().as_str()),
        )),
    ]
}

// The callers checked that every row is of the table.
fn trades<'a>(rows: &[&'a Positioned]) -> Vec<&'a Trade> {
    rows.iter()
        .filter_map(|r| match &r.event {
            Event::Trade(t) => Some(t),
            _ => None,
        })
        .collect()
}

fn quotes<'a>(rows: &[&'a Positioned]) -> Vec<&'a Quote> {
    rows.iter()
        .filter_map(|r| match &r.event {
            Event::Quote(q) => Some(q),
            _ => None,
        })
        .collect()
}

/// Appends the decimal column `name` at type `fixed` (or the smallest that
/// holds its values) and returns its type.
fn decimal_column<T>(
    rows: &[&T],
    name: &'static str,
    get: fn(&T) -> Decimal,
    fixed: Option<DecimalType>,
    columns: &mut Vec<ArrayRef>,
) -> Result<DecimalType> {
    let values = rows.iter().map(|r| get(r));
    let ty = match fixed {
        Some(t) => t,
        None => DecimalType::for_values(name, values.clone())?,
    };
    columns.push(Arc::new(ty.array(name, values)?));
    Ok(ty)
}

fn trade_columns(
    rows: &[&Trade],
    fixed: Option<DecimalType>,
    columns: &mut Vec<ArrayRef>,
) -> Result<Vec<DecimalType>> {
    let decimals = vec![
        decimal_column(rows, "price", |t| t.price, fixed, columns)?,
        decimal_column(rows, "size", |t| t.size, fixed, columns)?,
    ];
    columns.push(Arc::new(StringArray::from_iter_values(
        rows.iter().map(|t| t.side.as_str()),
    )));
    columns.push(Arc::new(
        rows.iter()
            .map(|t| t.trade_id.as_deref())
            .collect::<StringArray>(),
    ));
    Ok(decimals)
}

fn quote_columns(
    rows: &[&Quote],
    fixed: Option<DecimalType>,
    columns: &mut Vec<ArrayRef>,
) -> Result<Vec<DecimalType>> {
    Ok(vec![
        decimal_column(rows, "bid_price", |q| q.bid_price, fixed, columns)?,
        decimal_column(rows, "bid_size", |q| q.bid_size, fixed, columns)?,
        decimal_column(rows, "ask_price", |q| q.ask_price, fixed, columns)?,
        decimal_column(rows, "ask_size", |q| q.ask_size, fixed, columns)?,
    ])
}

/// Whether a column of `enc` has a dictionary, and its (fallback) encoding.
fn encoding(enc: ColumnEncoding, byte_array: bool) -> (bool, Encoding) {
    let delta = if byte_array {
        Encoding::DELTA_BYTE_ARRAY
    } else {
        Encoding::DELTA_BINARY_PACKED
    };
    match enc {
        ColumnEncoding::Dictionary => (true, delta),
        ColumnEncoding::Plain => (false, Encoding::PLAIN),
        ColumnEncoding::Delta => (false, delta),
        ColumnEncoding::ByteStreamSplit => (false, Encoding::BYTE_STREAM_SPLIT),
    }
}

fn properties(
    table: TableKind,
    decimals: &[DecimalType],
    opts: &EncodeOptions,
    bars: Option<String>,
) -> Result<WriterProperties> {
    let schema = schema_with(table, decimals, false);
    let index = |name: &str| schema.index_of(name).map(|i| i as i32);
    let mut b = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(opts.zstd_level)?))
        .set_dictionary_enabled(true)
        .set_key_value_metadata(bars.map(|text| {
            vec![parquet::file::metadata::KeyValue::new(
                crate::bars::VENUE_BARS_KEY.to_owned(),
                text,
            )]
        }))
        .set_max_row_group_row_count(Some(opts.max_row_group_rows.max(1)))
        .set_sorting_columns(Some(vec![
            SortingColumn {
                column_idx: index("ts_received")?,
                descending: false,
                nulls_first: false,
            },
            SortingColumn {
                column_idx: index("log_offset")?,
                descending: false,
                nulls_first: false,
            },
        ]));
    let mut chosen: Vec<(&str, ColumnEncoding, bool)> = vec![
        ("ts_exchange", opts.timestamps, false),
        ("ts_received", opts.timestamps, false),
        ("log_offset", opts.log_offset, false),
    ];
    for (name, ty) in table.decimal_columns().iter().zip(decimals) {
        chosen.push((name, opts.decimals, ty.precision > 18));
    }
    if table == TableKind::Trades {
        chosen.push(("trade_id", opts.trade_id, true));
    }
    for (column, enc, byte_array) in chosen {
        let (dictionary, e) = encoding(enc, byte_array);
        b = b
            .set_column_dictionary_enabled(ColumnPath::from(column), dictionary)
            .set_column_encoding(ColumnPath::from(column), e);
    }
    Ok(b.build())
}
