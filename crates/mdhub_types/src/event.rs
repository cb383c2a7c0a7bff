//! The normalized events: [`Quote`] (top of book) and [`Trade`].
//!
//! Every event names its venue and canonical symbol and carries two UTC
//! nanosecond timestamps: `ts_exchange`, the venue's own time for the event,
//! and `ts_received`, when mdhub read it off the socket. Prices and sizes are
//! exact [`Decimal`]s. After normalization every connector yields [`Event`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Decimal, Symbol, Timestamp, Venue};

/// Which side the aggressor (the taker, whose order crossed the spread) was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Side {
    /// The taker bought (lifted the offer).
    Buy,
    /// The taker sold (hit the bid).
    Sell,
    /// The venue does not say.
    #[default]
    Unknown,
}

impl Side {
    /// `buy`, `sell` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Buy => "buy",
            Side::Sell => "sell",
            Side::Unknown => "unknown",
        }
    }
}

/// Top of book at one venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quote {
    /// Venue id.
    pub venue: Venue,
    /// Canonical symbol.
    pub symbol: Symbol,
    /// The venue's timestamp for this book state.
    pub ts_exchange: Timestamp,
    /// When mdhub read the message off the socket.
    pub ts_received: Timestamp,
    /// Best bid price.
    pub bid_price: Decimal,
    /// Size at the best bid.
    pub bid_size: Decimal,
    /// Best ask price.
    pub ask_price: Decimal,
    /// Size at the best ask.
    pub ask_size: Decimal,
}

/// One execution at one venue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trade {
    /// Venue id.
    pub venue: Venue,
    /// Canonical symbol.
    pub symbol: Symbol,
    /// The venue's execution time.
    pub ts_exchange: Timestamp,
    /// When mdhub read the message off the socket.
    pub ts_received: Timestamp,
    /// Execution price.
    pub price: Decimal,
    /// Executed quantity.
    pub size: Decimal,
    /// Aggressor side.
    pub side: Side,
    /// The venue's trade id, when it gives one.
    pub trade_id: Option<String>,
}

/// What happened to a venue's stream of one symbol ([`FeedEvent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FeedStatusKind {
    /// The symbol is subscribed on a live connection: data flows from here.
    Connected,
    /// The connection carrying the symbol was lost: nothing arrives from here
    /// until the next `connected` (the venue's data in between is missing).
    Disconnected,
    /// The venue's stream shows that data was missed (a skipped sequence or
    /// trade id); `detail` says what.
    Gap,
    /// The symbol's state was rebuilt from a venue snapshot after a gap or a
    /// reconnect: what follows is consistent again.
    Resync,
}

impl FeedStatusKind {
    /// `connected`, `disconnected`, `gap` or `resync`.
    pub fn as_str(self) -> &'static str {
        match self {
            FeedStatusKind::Connected => "connected",
            FeedStatusKind::Disconnected => "disconnected",
            FeedStatusKind::Gap => "gap",
            FeedStatusKind::Resync => "resync",
        }
    }
}

/// Feed status as data: a connector's connect, disconnect, gap and resync
/// events per venue and symbol. They go to the log's `feed-status` topic so
/// clients and the archive can tell where data is missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// Venue id.
    pub venue: Venue,
    /// Canonical symbol.
    pub symbol: Symbol,
    /// The venue's time for it when the venue gives one, else `ts_received`.
    pub ts_exchange: Timestamp,
    /// When mdhub noticed it (a socket read, or the moment a connection failed).
    pub ts_received: Timestamp,
    /// What happened.
    pub status: FeedStatusKind,
    /// Why, in words (the error, the missed range), when there is more to say.
    pub detail: Option<String>,
}

/// A normalized market-data event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Event {
    /// A top-of-book update.
    Quote(Quote),
    /// A trade.
    Trade(Trade),
    /// A change in a feed's state for one symbol (topic `feed-status`).
    Status(FeedEvent),
}

impl Event {
    /// The canonical symbol.
    pub fn symbol(&self) -> &Symbol {
        match self {
            Event::Quote(q) => &q.symbol,
            Event::Trade(t) => &t.symbol,
            Event::Status(s) => &s.symbol,
        }
    }
    /// The venue.
    pub fn venue(&self) -> &Venue {
        match self {
            Event::Quote(q) => &q.venue,
            Event::Trade(t) => &t.venue,
            Event::Status(s) => &s.venue,
        }
    }
    /// The venue's timestamp.
    pub fn ts_exchange(&self) -> Timestamp {
        match self {
            Event::Quote(q) => q.ts_exchange,
            Event::Trade(t) => t.ts_exchange,
            Event::Status(s) => s.ts_exchange,
        }
    }
    /// When mdhub received it.
    pub fn ts_received(&self) -> Timestamp {
        match self {
            Event::Quote(q) => q.ts_received,
            Event::Trade(t) => t.ts_received,
            Event::Status(s) => s.ts_received,
        }
    }
    /// The log topic this kind of event goes to.
    pub fn topic(&self) -> Topic {
        match self {
            Event::Quote(_) => Topic::Quotes,
            Event::Trade(_) => Topic::Trades,
            Event::Status(_) => Topic::Status,
        }
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        crate::json::Wire::deserialize(d)?
            .into_event()
            .map_err(serde::de::Error::custom)
    }
}

/// The streams of the log. Topic names are `price-quotes`, `price-trades` and
/// `feed-status` (prefixed by `KAFKA_PREFIX` on Kafka); clients call them
/// channels `quotes`, `trades` and `status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Topic {
    /// `price-quotes`.
    Quotes,
    /// `price-trades`.
    Trades,
    /// `feed-status`: [`FeedEvent`]s.
    Status,
}

impl Topic {
    /// Every topic of the log.
    pub const ALL: [Topic; 3] = [Topic::Quotes, Topic::Trades, Topic::Status];
    /// The market-data topics: what the cache keeps and clients get by default.
    pub const PRICES: [Topic; 2] = [Topic::Quotes, Topic::Trades];

    /// The log topic name without any prefix.
    pub fn log_name(self) -> &'static str {
        match self {
            Topic::Quotes => "price-quotes",
            Topic::Trades => "price-trades",
            Topic::Status => "feed-status",
        }
    }
    /// The client-facing channel name.
    pub fn channel(self) -> &'static str {
        match self {
            Topic::Quotes => "quotes",
            Topic::Trades => "trades",
            Topic::Status => "status",
        }
    }
    /// From a channel name (`quotes`, `trades`).
    pub fn from_channel(s: &str) -> Option<Topic> {
        match s {
            "quotes" => Some(Topic::Quotes),
            "trades" => Some(Topic::Trades),
            "status" => Some(Topic::Status),
            _ => None,
        }
    }
}

/// A set of channels (topics): what a client subscribed to, what a
/// credential is entitled to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ChannelSet(u8);

impl ChannelSet {
    /// No channel.
    pub const EMPTY: ChannelSet = ChannelSet(0);
    /// `quotes` and `trades`: a subscription that names no channels.
    pub const PRICES: ChannelSet = ChannelSet(0b011);
    /// Every channel: what an unrestricted credential is entitled to.
    pub const ALL: ChannelSet = ChannelSet(0b111);

    fn bit(t: Topic) -> u8 {
        match t {
            Topic::Quotes => 1,
            Topic::Trades => 2,
            Topic::Status => 4,
        }
    }

    /// The set holding `t` alone.
    pub fn of(t: Topic) -> ChannelSet {
        ChannelSet(Self::bit(t))
    }

    /// Whether `t` is in the set.
    pub fn contains(self, t: Topic) -> bool {
        self.0 & Self::bit(t) != 0
    }

    /// Whether the set is empty.
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The channels in both sets.
    pub fn intersection(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 & other.0)
    }

    /// The channels in either set.
    pub fn union(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 | other.0)
    }

    /// The channels of `self` that are not in `other`.
    pub fn difference(self, other: ChannelSet) -> ChannelSet {
        ChannelSet(self.0 & !other.0)
    }

    /// The topics in the set, in [`Topic::ALL`] order.
    pub fn topics(self) -> impl Iterator<Item = Topic> {
        Topic::ALL.into_iter().filter(move |t| self.contains(*t))
    }

    /// The set of channel names (`quotes`, `trades`, `status`); the names
    /// that are not channels when any is not.
    pub fn parse<S: AsRef<str>>(names: &[S]) -> Result<ChannelSet, Vec<String>> {
        let mut set = ChannelSet::EMPTY;
        let mut bad = Vec::new();
        for n in names {
            match Topic::from_channel(n.as_ref()) {
                Some(t) => set = set.union(ChannelSet::of(t)),
                None => bad.push(n.as_ref().to_string()),
            }
        }
        if bad.is_empty() { Ok(set) } else { Err(bad) }
    }
}

impl FromIterator<Topic> for ChannelSet {
    fn from_iter<I: IntoIterator<Item = Topic>>(iter: I) -> Self {
        iter.into_iter()
            .fold(ChannelSet::EMPTY, |s, t| s.union(ChannelSet::of(t)))
    }
}

impl fmt::Display for Topic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.channel())
    }
}

/// Where a record sits in the log: topic, partition, offset. Offsets come from
/// the log itself, so every reader of the same log (any gateway instance) sees
/// the same position for the same record. Text form: `quotes:3:1234`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Position {
    /// Which stream.
    pub topic: Topic,
    /// Partition within the topic (`murmur2(symbol) % partitions`).
    pub partition: u32,
    /// Offset within the partition.
    pub offset: u64,
}

/// Why a text is not a position.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a position (expected CHANNEL:PARTITION:OFFSET, e.g. quotes:3:1234): {0:?}")]
pub struct PositionError(pub String);

impl Position {
    /// The position `offset` in `partition` of `topic`.
    pub const fn new(topic: Topic, partition: u32, offset: u64) -> Position {
        Position {
            topic,
            partition,
            offset,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.topic.channel(),
            self.partition,
            self.offset
        )
    }
}

impl FromStr for Position {
    type Err = PositionError;
    fn from_str(s: &str) -> Result<Self, PositionError> {
        let err = || PositionError(s.chars().take(64).collect());
        let mut it = s.splitn(3, ':');
        let topic = it.next().and_then(Topic::from_channel).ok_or_else(err)?;
        let partition = it.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        let offset = it.next().and_then(|p| p.parse().ok()).ok_or_else(err)?;
        Ok(Position {
            topic,
            partition,
            offset,
        })
    }
}

impl Serialize for Position {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Position {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// An event together with its place in the log — what consumers receive and
/// what the cache stores, so a snapshot can be continued from the stream
/// without a gap or a duplicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Positioned {
    /// Where the event sits in the log.
    pub position: Position,
    /// The event.
    pub event: Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn position_text_round_trip() {
        let p = Position {
            topic: Topic::Trades,
            partition: 7,
            offset: 123_456,
        };
        assert_eq!(p.to_string(), "trades:7:123456");
        assert_eq!("trades:7:123456".parse::<Position>().unwrap(), p);
        assert!("bars:1:2".parse::<Position>().is_err());
        assert!("quotes:1".parse::<Position>().is_err());
        assert!("quotes:1:-2".parse::<Position>().is_err());
    }
}
