//! The `Bus` seam: where normalized events meet the log.
//!
//! Data comes in from the ingest stage ([`Bus::publish`]: events keyed by
//! canonical symbol to `price-quotes` / `price-trades`) and goes out to
//! consumers ([`Bus::subscribe`]): the gateway reads every partition from a
//! client's position, the cache writer and the archiver read as consumer
//! groups with committed offsets. A [`Position`] (topic, partition, offset) is
//! the same for every reader of the same log, which is what makes client resume
//! work on any gateway instance.
//!
//! Implementations: [`EmbeddedBus`] over `mdhub_log` (the single-machine
//! default) and [`KafkaBus`] (when `KAFKA_URL` is set). Both pass
//! [`conformance::run_all`].

pub mod conformance;
mod cursor;
mod embedded;
pub mod kafka;

use std::fmt::Debug;
use std::time::Duration;

use bytes::Bytes;
use mdhub_types::{CodecError, Encoding, Event, Position, Positioned, Symbol, Timestamp, Topic};

pub use embedded::{EmbeddedBus, EmbeddedBusConfig};
pub use kafka::{KafkaBus, KafkaConfig};
pub use mdhub_log::partition_for_key;

/// Why a bus operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The requested offset is not in the log: older than retention keeps, or
    /// beyond the end. A gateway answers a client with a reset and a fresh snapshot.
    #[error(
        "offset {requested} of {topic} partition {partition} is out of range (log holds {start}..{end})"
    )]
    OffsetOutOfRange {
        /// Topic.
        topic: Topic,
        /// Partition.
        partition: u32,
        /// The offset asked for.
        requested: u64,
        /// First offset held.
        start: u64,
        /// One past the last offset held.
        end: u64,
    },
    /// A partition number that the topic does not have.
    #[error("{topic} has {partitions} partitions; partition {partition} does not exist")]
    NoSuchPartition {
        /// Topic.
        topic: Topic,
        /// Partition asked for.
        partition: u32,
        /// How many the topic has.
        partitions: u32,
    },
    /// Another member of this consumer group is active (the embedded log does
    /// not share a group's partitions between members).
    #[error("consumer group {0:?} is already in use in this process")]
    GroupInUse(String),
    /// `commit` on a subscription that is not a consumer group.
    #[error("commit needs a consumer-group subscription")]
    NotAGroup,
    /// An event could not be encoded for the log.
    #[error("cannot encode event: {0}")]
    Codec(#[from] CodecError),
    /// The log or broker failed.
    #[error("log: {0}")]
    Log(#[from] mdhub_log::Error),
    /// The broker cannot be reached right now.
    #[error("bus unavailable: {0}")]
    Unavailable(String),
    /// A publish stopped part-way: the first `positions.len()` events were
    /// appended and hold `positions` (in input order); they become readable
    /// with the next publish or [`Bus::sync`] that succeeds. Publish only the
    /// events after them again — publishing these again writes them twice.
    #[error("publish stopped after {} of its events: {source}", positions.len())]
    Partial {
        /// Where the appended events are.
        positions: Vec<Position>,
        /// Why the publish stopped.
        source: Box<Error>,
    },
    /// Records `from..resume` of a partition cannot be read: the log's
    /// copy is damaged (see `mdhub log verify`). The subscription has
    /// moved past them and the next `next_batch` goes on from `resume`; the
    /// caller must make the loss visible (the gateway sends a `data_lost`
    /// reset, consumer groups count it).
    #[error("{topic} partition {partition}: records {from}..{resume} are damaged and were skipped")]
    Damaged {
        /// Topic.
        topic: Topic,
        /// Partition.
        partition: u32,
        /// First damaged offset.
        from: u64,
        /// Where reading goes on.
        resume: u64,
    },
    /// The bus was closed.
    #[error("bus is closed")]
    Closed,
}

impl Error {
    /// Whether retrying later may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Unavailable(_) => true,
            Error::Log(e) => e.is_retryable(),
            Error::Partial { source, .. } => source.is_retryable(),
            _ => false,
        }
    }
}

/// The bus's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a subscription starts reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Start {
    /// The oldest record still held.
    Earliest,
    /// Only records published after the subscription starts.
    Latest,
    /// This offset (the next record the reader wants).
    Offset(u64),
    /// The first record with a timestamp (`ts_received`) at or after this time.
    Time(Timestamp),
}

/// How to subscribe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeSpec {
    /// A consumer group: reads every partition of `topics` from the group's
    /// committed offsets (`reset` where it has none) and commits with
    /// [`Subscription::commit`]. The name is prefixed like topics on Kafka.
    Group {
        /// Group name, e.g. `mdhub-archive`.
        name: String,
        /// Topics to read.
        topics: Vec<Topic>,
        /// Where to start a partition with no committed offset.
        reset: Start,
    },
    /// Read only the given partitions, each from its position's offset (the
    /// next record wanted). Used to replay a client's gap.
    Assign {
        /// One position per partition.
        positions: Vec<Position>,
    },
    /// No group: read every partition of `topics` from `start`, then follow
    /// the log; [`Subscription::seek`] moves one partition. Used by gateways.
    Direct {
        /// Topics to read.
        topics: Vec<Topic>,
        /// Where to start every partition.
        start: Start,
    },
}

/// One record as read from the log: its position, key, timestamp and the
/// encoded value. The value is kept encoded so a gateway can forward the bytes
/// without decoding; [`Delivery::decode`] gives the [`Event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Where the record sits.
    pub position: Position,
    /// The record key: the canonical symbol.
    pub symbol: Symbol,
    /// The record timestamp (the event's `ts_received`).
    pub timestamp: Timestamp,
    /// The value's encoding, from the record header.
    pub encoding: Encoding,
    /// The encoded event.
    pub value: Bytes,
}

impl Delivery {
    /// Decode the value.
    pub fn decode(&self) -> Result<Event, CodecError> {
        self.encoding.decode(&self.value)
    }

    /// Decode into a [`Positioned`] event.
    pub fn positioned(&self) -> Result<Positioned, CodecError> {
        Ok(Positioned {
            position: self.position,
            event: self.decode()?,
        })
    }
}

/// The publish/subscribe seam over the log.
///
/// Contract (checked by [`conformance::run_all`]):
/// - `publish` sends each event to its topic (`Event::topic`) with the
///   canonical symbol as key, in partition `partition_for_key(symbol,
///   partitions)` (Kafka's Java default partitioner); it returns the positions
///   in input order. Events of one symbol get increasing offsets in the order
///   given, and concurrent publishers never get the same position.
/// - When `publish` returns, the records are readable by every subscriber and
///   survive a crash of this process; each implementation documents when they
///   also survive a machine failure (embedded: after the next group-commit
///   fsync or [`Bus::sync`]; Kafka: acks=all).
/// - A failed `publish` wrote none of its events, or says which it wrote
///   with [`Error::Partial`]: a caller that publishes again only what was not
///   written never writes an event twice (the embedded log on a full disk).
/// - A subscription delivers each partition's records in offset order, with no
///   gaps and no duplicates, starting where its spec says.
/// - A start offset outside `[start, end]` of a partition fails with
///   [`Error::OffsetOutOfRange`].
#[async_trait::async_trait]
pub trait Bus: Send + Sync + Debug {
    /// Identifies this log's incarnation. Positions are only meaningful within
    /// one epoch; a client holding positions from another epoch gets a reset.
    fn epoch(&self) -> String;
    /// Number of partitions of a topic.
    fn partitions(&self, topic: Topic) -> u32;
    /// The encoding new records are written in.
    fn encoding(&self) -> Encoding;
    /// Publish events (see the trait docs).
    async fn publish(&self, events: &[Event]) -> Result<Vec<Position>>;
    /// Start a subscription.
    async fn subscribe(&self, spec: SubscribeSpec) -> Result<Box<dyn Subscription>>;
    /// `(start, end)`: the first offset held and one past the last.
    async fn watermarks(&self, topic: Topic, partition: u32) -> Result<(u64, u64)>;
    /// The first offset whose timestamp is at or after `ts` (`end` if none).
    async fn offset_for_time(&self, topic: Topic, partition: u32, ts: Timestamp) -> Result<u64>;
    /// Make everything published so far durable against machine failure.
    async fn sync(&self) -> Result<()>;
}

/// A running subscription (see [`Bus::subscribe`]).
#[async_trait::async_trait]
pub trait Subscription: Send + Debug {
    /// Up to `max` records, waiting at most `wait` for the first one; an empty
    /// vector when nothing arrived in time. Records of one partition come in
    /// offset order.
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>>;
    /// Consumer groups: record that every record up to and including each
    /// position is processed. Durable before it returns.
    async fn commit(&mut self, positions: &[Position]) -> Result<()>;
    /// Move one partition so the next record read is `offset`.
    async fn seek(&mut self, topic: Topic, partition: u32, offset: u64) -> Result<()>;
    /// The next offset this subscription will read, per partition.
    fn positions(&self) -> Vec<Position>;
}

/// Subscribe consumer group `name` to the price topics (`price-quotes`,
/// `price-trades`), from the oldest record where it has no committed offset:
/// how the cache writer, the archiver and the PostgreSQL writer read.
pub async fn subscribe_prices(bus: &dyn Bus, name: &str) -> Result<Box<dyn Subscription>> {
    bus.subscribe(SubscribeSpec::Group {
        name: name.into(),
        topics: mdhub_types::Topic::PRICES.to_vec(),
        reset: Start::Earliest,
    })
    .await
}

/// The highest position read in each partition since the last commit: what
/// a consumer group commits once the records are safely processed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ReadMarks(std::collections::BTreeMap<(mdhub_types::Topic, u32), u64>);

impl ReadMarks {
    /// Note a record read.
    pub fn note(&mut self, p: Position) {
        let e = self.0.entry((p.topic, p.partition)).or_insert(p.offset);
        *e = (*e).max(p.offset);
    }

    /// The highest position noted in each partition.
    pub fn positions(&self) -> Vec<Position> {
        self.0
            .iter()
            .map(|(&(topic, partition), &offset)| Position {
                topic,
                partition,
                offset,
            })
            .collect()
    }

    /// Whether nothing was read since the last commit.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Commit every noted position on `sub` and forget them. A failed commit
    /// is logged (as `who`) and kept for the next one: a restart replays
    /// those records, which every group consumer of mdhub absorbs.
    pub async fn commit(&mut self, sub: &mut dyn Subscription, who: &str) {
        let done = self.positions();
        match sub.commit(&done).await {
            Ok(()) => self.0.clear(),
            Err(e) => tracing::warn!(error = %e, "{who} could not commit its offsets"),
        }
    }
}
