//! The crate's error type.

use mdhub_types::Position;

use crate::TableKind;

/// `Result` with [`HistoryError`].
pub type Result<T, E = HistoryError> = std::result::Result<T, E>;

/// Why a batch could not be turned into lake files or written.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The record is not a row of this table: a feed-status event, or a quote
    /// given to the trades table (or the reverse). A caller bug, not bad data.
    #[error("the record at {position} is not a row of the {table} table")]
    NotLakeRow {
        /// Where the record sits in the log.
        position: Position,
        /// The table it was given to.
        table: TableKind,
    },
    /// The values of one column of one file need more than 38 significant
    /// digits at their common scale (e.g. `10^37` and `10^-18` side by side),
    /// which no Parquet `DECIMAL` of 16 bytes holds.
    #[error("column {column}: values need more than 38 digits at scale {scale}")]
    DecimalOutOfRange {
        /// The column.
        column: &'static str,
        /// The common scale the values needed.
        scale: u8,
    },
    /// A file's first and last positions are on different topics or log
    /// partitions, or the last is before the first.
    #[error("a lake file spans {first} .. {last}: one topic, one partition, first <= last")]
    BadRange {
        /// The first position.
        first: Position,
        /// The last position.
        last: Position,
    },
    /// The lake URL is not a path, `file://` or `s3://` URL.
    #[error("bad lake URL {url:?}: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A row read back from the lake is not in the lake's schema or holds an
    /// impossible value.
    #[error("bad lake row: {0}")]
    BadRow(String),
    /// Creating the local lake directory failed.
    #[error("cannot create the lake directory {path:?}: {source}")]
    Io {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Building the Arrow arrays failed (a bug: the schema and arrays disagree).
    #[error(transparent)]
    Arrow(#[from] arrow_schema::ArrowError),
    /// The Parquet writer failed.
    #[error(transparent)]
    Parquet(#[from] parquet::errors::ParquetError),
    /// The object store refused or failed the write.
    #[error(transparent)]
    Store(#[from] object_store::Error),
}

impl HistoryError {
    /// True when trying the same write again may succeed (the store or the
    /// network failed); false when the input or the configuration is wrong.
    pub fn is_retryable(&self) -> bool {
        match self {
            HistoryError::Store(e) => matches!(
                e,
                object_store::Error::Generic { .. } | object_store::Error::JoinError { .. }
            ),
            HistoryError::Io { .. } => true,
            _ => false,
        }
    }
}
