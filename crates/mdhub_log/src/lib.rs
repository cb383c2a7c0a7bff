//! `mdhub_log`: mdhub's embedded log — a single-node, Kafka-like append-only
//! log on local disk, used when no `KAFKA_URL` is configured.
//!
//! Data comes in from the feed handlers through [`Log::append`] /
//! [`Log::append_batch`] (records keyed by canonical symbol, partitioned with
//! Kafka's [`partition_for_key`]), becomes readable and crash-safe on
//! [`Log::flush`] (group commit), and power-loss-safe on the background fsync
//! or [`Log::sync`]. It goes out to the gateway and the archiver through
//! [`Log::read`] / [`PartitionReader`], zero-copy visitors over CRC-checked
//! records, with consumer-group positions kept by [`Log::commit`].
//!
//! Each topic-partition is a directory of segment files with a sparse
//! offset/time index; a crash leaves at most a torn tail, which
//! [`Log::open`] cuts off. Old segments go by age and size
//! ([`Log::enforce_retention`]). The on-disk format is specified byte by byte
//! in the crate's `README.md` (`crates/mdhub_log/README.md`).
//!
//! The API is synchronous (std files and one background thread); async
//! callers wrap it with `spawn_blocking`.
//!
//! ```
//! use mdhub_log::{Log, LogConfig, RecordIn, partition_for_key};
//! # let tmp = tempfile::tempdir().unwrap();
//! let log = Log::open(LogConfig { dir: tmp.path().into(), ..LogConfig::default() })?;
//! log.create_topic("price-trades", 8)?;
//! let p = partition_for_key(b"BTC-USDT", 8);
//! let rec = RecordIn { timestamp: 1, key: b"BTC-USDT", value: b"{}", headers: &[("enc", b"json")] };
//! let offset = log.append("price-trades", p, &rec)?;
//! log.flush()?;
//! log.read("price-trades", p, offset, 100, 1 << 20, |r| assert_eq!(r.value, b"{}"))?;
//! # Ok::<(), mdhub_log::Error>(())
//! ```

mod background;
mod config;
mod error;
mod groups;
mod index;
mod log;
mod map;
mod meta;
mod notify;
mod partition;
mod partitioner;
mod read;
mod record;
mod repair;
mod retention;
mod scrub;
mod segment;
mod space;
mod stats;
mod topics;
mod verify;

pub use config::LogConfig;
pub use error::{Error, Result};
pub use log::Log;
pub use partitioner::{murmur2, partition_for_key};
pub use read::{PartitionReader, ReadOutcome};
pub use record::{RecordIn, RecordView};
pub use repair::{RepairReport, repair};
pub use retention::RetentionReport;
pub use scrub::ScrubStatus;
pub use space::DiskSpace;
pub use stats::{LogStats, PartitionStats};
pub use verify::{Damage, VerifyProgress, VerifyReport, verify};
