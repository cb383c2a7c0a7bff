//! mdhub's normalized market-data model — the types every other crate shares.
//!
//! Data comes in from connectors (`mdhub_feeds`) as venue-specific messages and
//! leaves them as [`Event`]s: a [`Quote`] (top of book) or a [`Trade`], with a
//! [`Venue`], a canonical [`Symbol`], exact [`Decimal`] prices and sizes, and
//! two nanosecond [`Timestamp`]s. Events are written to the log in one of two
//! [`Encoding`]s — JSON ([`json`]) or Avro single-object ([`avro`]) — and every
//! record in the log has a [`Position`] that clients carry to resume.
//!
//! No I/O happens here and no clock is read except by [`Timestamp::now`].

pub mod avro;
mod avro_pcf;
pub mod backoff;
pub mod decimal;
mod event;
pub mod json;
pub mod protocol;
mod symbol;
mod time;

pub use backoff::Backoff;
pub use decimal::{Decimal, DecimalError};
pub use event::{
    ChannelSet, Event, FeedEvent, FeedStatusKind, Position, PositionError, Positioned, Quote, Side,
    Topic, Trade,
};
pub use symbol::{Instrument, NameError, Symbol, Venue};
pub use time::{Timestamp, TimestampError};

/// How an event is encoded in a log record's value. The log stores it in the
/// record header `mdhub-encoding` (`json` or `avro`) so readers never guess.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// JSON text, `schemas/event.schema.json`. The default.
    #[default]
    Json,
    /// Avro single-object encoding of `schemas/quote.avsc` / `schemas/trade.avsc`.
    Avro,
}

/// The record header naming the value's encoding.
pub const ENCODING_HEADER: &str = "mdhub-encoding";
/// The schema version, in the record header `mdhub-schema`.
pub const SCHEMA_VERSION: &str = "1";
/// The record header carrying [`SCHEMA_VERSION`].
pub const SCHEMA_HEADER: &str = "mdhub-schema";

/// Why a record value could not be turned into an event or back.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// JSON encoding problem.
    #[error(transparent)]
    Json(#[from] json::JsonError),
    /// Avro encoding problem.
    #[error(transparent)]
    Avro(#[from] avro::AvroError),
    /// The encoding header names something unknown.
    #[error("unknown encoding {0:?} (expected \"json\" or \"avro\")")]
    UnknownEncoding(String),
}

impl Encoding {
    /// The header value: `json` or `avro`.
    pub fn as_str(self) -> &'static str {
        match self {
            Encoding::Json => "json",
            Encoding::Avro => "avro",
        }
    }

    /// From a header value.
    pub fn parse(s: &str) -> Result<Self, CodecError> {
        match s {
            "json" => Ok(Encoding::Json),
            "avro" => Ok(Encoding::Avro),
            other => Err(CodecError::UnknownEncoding(
                other.chars().take(32).collect(),
            )),
        }
    }

    /// The encoding a record of `event` is written in by a log whose
    /// encoding is `self`: feed-status events are always JSON (they have no
    /// Avro schema; the record header says so).
    pub fn for_event(self, event: &Event) -> Encoding {
        match event {
            Event::Status(_) => Encoding::Json,
            _ => self,
        }
    }

    /// Append `event` in this encoding to `out`.
    pub fn encode(self, event: &Event, out: &mut Vec<u8>) -> Result<(), CodecError> {
        match self {
            Encoding::Json => {
                json::encode_event(event, out);
                Ok(())
            }
            Encoding::Avro => Ok(avro::encode(event, out)?),
        }
    }

    /// Decode one event in this encoding.
    pub fn decode(self, bytes: &[u8]) -> Result<Event, CodecError> {
        match self {
            Encoding::Json => Ok(json::decode_event(bytes)?),
            Encoding::Avro => Ok(avro::decode(bytes)?),
        }
    }
}
