//! Real venues, one folder each: the venue's wire format decoded into
//! [`Event`]s, its symbols mapped both ways, and its documented payloads kept
//! as fixtures beside the code.
//!
//! Every venue implements [`VenueDecoder`]: one raw frame in, zero or more
//! events out, or a [`DecodeError`] that says what was wrong. Decoding never
//! panics and never reads a clock: `ts_received` is passed in, taken where the
//! frame came off the socket (or, for `mdhub normalize`, when the line was
//! read).

pub mod alpaca;
pub mod binance;
pub mod coinbase;
pub mod fix;
pub mod kraken;
pub mod registry;
pub(crate) mod ws;
pub mod ws_section;

use std::collections::HashMap;

use mdhub_types::{Decimal, Event, FeedEvent, FeedStatusKind, Symbol, Timestamp, Venue};

/// What a frame was, besides the events it carried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// Market data; the events were appended.
    Data,
    /// The venue acknowledged a request (a subscription), by request id.
    Ack(String),
    /// The venue refused a request.
    Refused(String),
    /// A frame that carries nothing mdhub uses (another stream's data, a
    /// heartbeat), with what it was.
    Ignored(String),
    /// The frame shows that data was missed: its events include a `gap`
    /// feed-status event per symbol ([`gap_event`]) before any data; the text
    /// says what is missing.
    Gap(String),
}

/// Why a frame could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// Not JSON, or not the shape the venue documents.
    #[error("malformed frame: {0}")]
    Malformed(String),
    /// A field the event needs is absent.
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A price or size that is not an exact decimal mdhub can hold.
    #[error("field `{field}`: {reason}")]
    BadNumber {
        /// The venue's field name.
        field: &'static str,
        /// Why.
        reason: String,
    },
    /// A venue symbol with no canonical mapping.
    #[error("unknown symbol {0:?} (add it to the venue's symbol map)")]
    UnknownSymbol(String),
}

/// One venue's wire format.
pub trait VenueDecoder: Send {
    /// The venue id events carry (`binance`).
    fn venue(&self) -> &str;
    /// Decode one frame, appending its events to `out`.
    fn decode(
        &mut self,
        frame: &[u8],
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError>;
}

/// The decoder of a venue by id, with default settings (`mdhub normalize`).
pub fn decoder(venue: &str) -> Option<Box<dyn VenueDecoder>> {
    registry::spec(venue).map(|s| (s.decoder)())
}

/// The newest trade id per book, for venues whose trade ids are consecutive
/// per symbol (Coinbase, Kraken): what was already sent, and what was skipped.
#[derive(Debug, Default)]
pub(crate) struct TradeIds(HashMap<String, u64>);

impl TradeIds {
    /// Record trade `id` of `book`: `None` when it was already seen (at or
    /// below the newest), `Some(None)` when it is the next (or the first),
    /// `Some(Some(gap))` when ids were skipped before it.
    pub(crate) fn see(&mut self, book: &str, id: u64) -> Option<Option<String>> {
        let last = self.0.get(book).copied();
        if last.is_some_and(|l| id <= l) {
            return None;
        }
        self.0.insert(book.to_string(), id);
        Some(match last {
            Some(l) if id > l + 1 => Some(format!(
                "trades {}..={} missed ({} trades)",
                l + 1,
                id - 1,
                id - 1 - l
            )),
            _ => None,
        })
    }

    /// The newest id of `book`.
    pub(crate) fn newest(&self, book: &str) -> Option<u64> {
        self.0.get(book).copied()
    }

    /// Set the newest id of `book` (a heartbeat's `last_trade_id`).
    pub(crate) fn set(&mut self, book: &str, id: u64) {
        self.0.insert(book.to_string(), id);
    }
}

/// The `gap` feed-status event a decoder appends before the data that showed
/// the gap ([`Frame::Gap`]).
pub(crate) fn gap_event(
    venue: &Venue,
    symbol: Symbol,
    ts_exchange: Timestamp,
    ts_received: Timestamp,
    detail: String,
) -> Event {
    Event::Status(FeedEvent {
        venue: venue.clone(),
        symbol,
        ts_exchange,
        ts_received,
        status: FeedStatusKind::Gap,
        detail: Some(detail),
    })
}

/// A frame as text: one UTF-8 check of the whole frame (SIMD-fast in std),
/// so the JSON parse can borrow every string without checking each again.
pub(crate) fn text(frame: &[u8]) -> Result<&str, DecodeError> {
    std::str::from_utf8(frame).map_err(|e| DecodeError::Malformed(format!("not UTF-8: {e}")))
}

/// An exact decimal from a JSON value's raw text: a string (`"0.001"`, how
/// most venues send prices) or a number (`0.001`, `1e-8`), never through f64.
pub(crate) fn decimal(
    field: &'static str,
    raw: &serde_json::value::RawValue,
) -> Result<Decimal, DecodeError> {
    decimal_text(field, raw.get())
}

/// [`decimal`] from a JSON value's source text, whichever parser kept it.
pub(crate) fn decimal_text(field: &'static str, text: &str) -> Result<Decimal, DecodeError> {
    let inner = text
        .strip_prefix('"')
        .and_then(|t| t.strip_suffix('"'))
        .unwrap_or(text);
    Decimal::parse(inner).map_err(|e| DecodeError::BadNumber {
        field,
        reason: e.to_string(),
    })
}

/// What the venues' fixture tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use mdhub_types::{Event, Timestamp};

    use super::{DecodeError, Frame, VenueDecoder};

    /// The receipt time every fixture test stamps.
    pub(crate) const RECEIVED: Timestamp = Timestamp::from_nanos(1_700_000_000_123_456_789);

    /// `src/venues/<venue>/fixtures/<name>`.
    pub(crate) fn fixture(venue: &str, name: &str) -> String {
        let path = format!(
            "{}/src/venues/{venue}/fixtures/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    /// Decode one frame: the outcome and the events.
    pub(crate) fn decode(
        d: &mut dyn VenueDecoder,
        frame: &str,
    ) -> (Result<Frame, DecodeError>, Vec<Event>) {
        let mut out = Vec::new();
        let r = d.decode(frame.trim().as_bytes(), RECEIVED, &mut out);
        (r, out)
    }
}
