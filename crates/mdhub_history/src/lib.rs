//! mdhub's history lake: market data as Parquet files on object storage.
//!
//! Data comes in as [`Positioned`] events read from the log's `price-trades`
//! and `price-quotes` topics (each with its topic, partition and offset) and
//! leaves as Parquet files under the lake URL, in Hive-style partitions
//! `{trades|quotes}/date=YYYY-MM-DD/symbol=SYM/part-….parquet` that DuckDB,
//! Spark, Athena, DataFusion and pyarrow read as they are.
//!
//! The pieces, in data-flow order:
//! - [`plan_files`] splits a batch of log records into one [`FileBatch`] per
//!   table, UTC date (of `ts_exchange`), symbol and log partition — a file
//!   never spans two dates;
//! - [`encode_parquet`] turns rows into one Parquet file: Arrow [`schema`]s
//!   with exact `DECIMAL(38, 18)` prices and sizes ([`DecimalType::LAKE`],
//!   the same in every file so that readers never cast one file's decimals
//!   to another's), rows sorted by `ts_received` then log offset, zstd,
//!   encodings chosen by measurement (see the crate README);
//! - [`FileKey::path`] names the file after the log positions it holds, so a
//!   rewrite after a crash produces the same name and the same bytes;
//! - [`store_from_url`] and [`write_file`] put it on a local directory or S3.
//!
//! Feed-status events (`Event::Status`) are not lake rows: every function
//! here rejects them with [`HistoryError::NotLakeRow`] (they live on the
//! `feed-status` topic, which the archiver does not read).

pub mod archive;
pub mod bars;
pub mod compact;
mod decimal;
mod decode;
mod encode;
mod error;
mod lake;
mod path;
pub mod pg;
mod plan;
pub mod query;
pub mod retention;
mod schema;
mod store;

pub use decimal::DecimalType;
pub use decode::events;
pub use encode::{
    ColumnEncoding, EncodeOptions, encode_parquet, encode_parquet_with, record_batch,
};
pub use error::{HistoryError, Result};
pub use lake::{FileFilter, Lake, LakeFile, live_files};
pub use path::FileKey;
pub use plan::{FileBatch, plan_files};
pub use schema::{TableKind, schema};
pub use store::{WrittenFile, store_from_url, write_batch, write_file};

#[doc(no_inline)]
pub use mdhub_types::Positioned;
