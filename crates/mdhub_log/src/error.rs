//! The crate's error type: every variant names what failed (file, topic,
//! partition, offset) so that the message alone tells an operator what to do.

use std::io;
use std::path::PathBuf;

/// Result alias used throughout `mdhub_log`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the embedded log.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An operating-system call failed on a file or directory.
    #[error("I/O error while trying to {op} {}: {source}", path.display())]
    Io {
        /// What the log was doing (e.g. "write", "fsync", "open").
        op: &'static str,
        /// The file or directory involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A configuration value is out of its allowed range.
    #[error("invalid log configuration: `{field}` {reason}")]
    InvalidConfig {
        /// The offending `LogConfig` field.
        field: &'static str,
        /// Why it was rejected.
        reason: String,
    },

    /// Another process (or another `Log` in this process) holds the directory.
    #[error("log directory {} is locked by another process or Log instance; stop it first", dir.display())]
    Locked {
        /// The log directory.
        dir: PathBuf,
    },

    /// The on-disk format version is not one this build understands.
    #[error("{} has unsupported format {found:?} (this build reads format {expected})", path.display())]
    UnsupportedFormat {
        /// The meta file.
        path: PathBuf,
        /// What the file says.
        found: String,
        /// What this build supports.
        expected: u32,
    },

    /// A topic name is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error(
        "invalid topic name {name:?}: use 1-249 characters from [A-Za-z0-9._-], not \".\" or \"..\""
    )]
    InvalidTopicName {
        /// The rejected name.
        name: String,
    },

    /// A consumer group name is empty, too long, or has characters outside `[A-Za-z0-9._-]`.
    #[error(
        "invalid consumer group name {name:?}: use 1-249 characters from [A-Za-z0-9._-], not \".\" or \"..\""
    )]
    InvalidGroupName {
        /// The rejected name.
        name: String,
    },

    /// The topic has not been created.
    #[error("unknown topic {topic:?}: create it first with create_topic")]
    UnknownTopic {
        /// The topic asked for.
        topic: String,
    },

    /// The partition number is not below the topic's partition count.
    #[error("topic {topic:?} has {partitions} partitions; partition {partition} does not exist")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        partitions: u32,
    },

    /// `create_topic` was called for an existing topic with another partition count.
    #[error("topic {topic:?} already exists with {existing} partitions (requested {requested})")]
    PartitionCountMismatch {
        /// The topic.
        topic: String,
        /// Its partition count on disk.
        existing: u32,
        /// The count requested.
        requested: u32,
    },

    /// `create_topic` was called with zero partitions.
    #[error("topic {topic:?}: partition count must be between 1 and 100000, got {requested}")]
    InvalidPartitionCount {
        /// The topic.
        topic: String,
        /// The rejected count.
        requested: u32,
    },

    /// The log's filesystem has less free space than `log.min_free_mb`:
    /// nothing is appended until space returns (retry later).
    #[error(
        "{}: {free_bytes} bytes free, below the watermark of {min_free_bytes} (log.min_free_mb): appends wait for space",
        dir.display()
    )]
    LowDiskSpace {
        /// The log directory.
        dir: PathBuf,
        /// Free bytes when last checked.
        free_bytes: u64,
        /// The watermark.
        min_free_bytes: u64,
    },

    /// The requested offset is outside `[start, end]`; the caller should reset
    /// to `start` (earliest) or `end` (latest).
    #[error(
        "offset {requested} is out of range for {topic}/{partition}: retained offsets are [{start}, {end})"
    )]
    OffsetOutOfRange {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
        /// The offset asked for.
        requested: u64,
        /// The first retained offset.
        start: u64,
        /// The high watermark (one past the last readable record).
        end: u64,
    },

    /// A key, header block or value exceeds what the record format can hold.
    #[error("record {field} is {len} bytes, the maximum is {max}")]
    RecordTooLarge {
        /// "key", "headers", "value" or "record".
        field: &'static str,
        /// Its size.
        len: usize,
        /// The limit.
        max: usize,
    },

    /// A header name is longer than 255 bytes.
    #[error("header name {name:?} is {len} bytes, the maximum is 255")]
    HeaderNameTooLong {
        /// The start of the name.
        name: String,
        /// Its length in bytes.
        len: usize,
    },

    /// Data that was already acknowledged failed validation (bad CRC, bad
    /// length) — disk corruption outside the recoverable tail.
    #[error("corrupt data in {} at byte {position}: {reason}", path.display())]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Byte position of the damage.
        position: u64,
        /// What was wrong.
        reason: String,
    },

    /// An earlier write or fsync on this partition failed in a way that leaves
    /// its file state unknown; reopen the log to recover from disk.
    #[error(
        "partition {topic}/{partition} is unusable after an earlier I/O failure; reopen the log to recover"
    )]
    Poisoned {
        /// The topic.
        topic: String,
        /// The partition.
        partition: u32,
    },
}

impl Error {
    /// Whether retrying the same call later may succeed (transient I/O such as
    /// a full disk); validation and range errors are never retryable.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Error::Io { .. } | Error::LowDiskSpace { .. })
    }

    pub(crate) fn io(
        op: &'static str,
        path: impl Into<PathBuf>,
    ) -> impl FnOnce(io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}
