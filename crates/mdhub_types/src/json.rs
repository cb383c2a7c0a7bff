//! The JSON encoding of events (schema: `schemas/event.schema.json`).
//!
//! ```json
//! {"type":"quote","venue":"sim-nasdaq","symbol":"AAPL","ts_exchange":1714571100123456789,
//!  "ts_received":1714571100123500000,"bid_price":"189.52","bid_size":"300",
//!  "ask_price":"189.53","ask_size":"100"}
//! {"type":"trade","venue":"binance","symbol":"BTC-USDT","ts_exchange":1714571100123000000,
//!  "ts_received":1714571100124000000,"price":"63250.01","size":"0.00000845",
//!  "side":"buy","trade_id":"3374563"}
//! {"type":"status","venue":"coinbase","symbol":"BTC-USD","ts_exchange":1714571100200000000,
//!  "ts_received":1714571100200000000,"status":"gap","detail":"trade ids 101..=104 missed"}
//! ```
//!
//! Decimals are strings; timestamps are integer nanoseconds (a JavaScript
//! reader that needs all nine digits reads them from the source text). The
//! encoder here writes bytes directly and is byte-for-byte what `serde_json`
//! would write for [`Event`]'s `Serialize` impl; the decoder ignores unknown
//! fields so the schema can grow.

use std::borrow::Cow;

use serde::Deserialize;

use crate::{
    Decimal, Event, FeedEvent, FeedStatusKind, Quote, Side, Symbol, Timestamp, Trade, Venue,
};

/// Why bytes are not a valid JSON event.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// Not JSON, or a field has the wrong type.
    #[error("malformed event JSON: {0}")]
    Syntax(#[from] serde_json::Error),
    /// Well-formed JSON that is not a valid event.
    #[error("invalid event: {0}")]
    Invalid(String),
}

/// Append the JSON encoding of `event` to `out`.
pub fn encode_event(event: &Event, out: &mut Vec<u8>) {
    let mut buf = [0u8; 48];
    let mut field = |out: &mut Vec<u8>, name: &[u8], v: Decimal| {
        out.extend_from_slice(name);
        out.extend_from_slice(v.write_to(&mut buf).as_bytes());
    };
    match event {
        Event::Quote(q) => {
            push_head(
                out,
                b"quote",
                &q.venue,
                &q.symbol,
                q.ts_exchange,
                q.ts_received,
            );
            field(out, b",\"bid_price\":\"", q.bid_price);
            field(out, b"\",\"bid_size\":\"", q.bid_size);
            field(out, b"\",\"ask_price\":\"", q.ask_price);
            field(out, b"\",\"ask_size\":\"", q.ask_size);
            out.extend_from_slice(b"\"}");
        }
        Event::Trade(t) => {
            push_head(
                out,
                b"trade",
                &t.venue,
                &t.symbol,
                t.ts_exchange,
                t.ts_received,
            );
            field(out, b",\"price\":\"", t.price);
            field(out, b"\",\"size\":\"", t.size);
            out.extend_from_slice(b"\",\"side\":\"");
            out.extend_from_slice(t.side.as_str().as_bytes());
            out.extend_from_slice(b"\",\"trade_id\":");
            match &t.trade_id {
                Some(id) => push_json_string(out, id),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
        }
        Event::Status(f) => {
            push_head(
                out,
                b"status",
                &f.venue,
                &f.symbol,
                f.ts_exchange,
                f.ts_received,
            );
            out.extend_from_slice(b",\"status\":\"");
            out.extend_from_slice(f.status.as_str().as_bytes());
            out.extend_from_slice(b"\",\"detail\":");
            match &f.detail {
                Some(d) => push_json_string(out, d),
                None => out.extend_from_slice(b"null"),
            }
            out.push(b'}');
        }
    }
}

/// The fields both kinds share, in schema order. Venues and symbols are
/// validated names and never need escaping.
fn push_head(
    out: &mut Vec<u8>,
    kind: &[u8],
    venue: &Venue,
    symbol: &Symbol,
    ts_exchange: Timestamp,
    ts_received: Timestamp,
) {
    out.extend_from_slice(b"{\"type\":\"");
    out.extend_from_slice(kind);
    out.extend_from_slice(b"\",\"venue\":\"");
    out.extend_from_slice(venue.as_str().as_bytes());
    out.extend_from_slice(b"\",\"symbol\":\"");
    out.extend_from_slice(symbol.as_str().as_bytes());
    out.extend_from_slice(b"\",\"ts_exchange\":");
    push_int(out, ts_exchange.as_nanos());
    out.extend_from_slice(b",\"ts_received\":");
    push_int(out, ts_received.as_nanos());
}

/// The JSON encoding of `event` as a new buffer.
pub fn to_vec(event: &Event) -> Vec<u8> {
    let mut v = Vec::with_capacity(256);
    encode_event(event, &mut v);
    v
}

/// Decode one event.
pub fn decode_event(bytes: &[u8]) -> Result<Event, JsonError> {
    let wire: Wire<'_> = serde_json::from_slice(bytes)?;
    wire.into_event().map_err(JsonError::Invalid)
}

/// The venue of an event in this encoding without decoding it: the text of
/// its `"venue":"…"` member (which [`encode_event`] writes second, and which
/// never needs escapes: venue ids are `a-z 0-9 . _ -`). `None` when there is
/// none, or it is not a venue id.
pub fn peek_venue(bytes: &[u8]) -> Option<&str> {
    const KEY: &[u8] = b"\"venue\":\"";
    let at = bytes.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let rest = &bytes[at..];
    let end = rest.iter().take(64).position(|&b| b == b'"')?;
    let text = std::str::from_utf8(&rest[..end]).ok()?;
    crate::symbol::is_venue(text).then_some(text)
}

fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

/// Write `s` as a JSON string with the escapes `serde_json` uses.
pub fn push_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &c) in bytes.iter().enumerate() {
        let esc: &[u8] = match c {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => {
                out.extend_from_slice(&bytes[start..i]);
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[usize::from(c >> 4)],
                    HEX[usize::from(c & 0xf)],
                ]);
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(esc);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// The flat wire shape both kinds share; fields of the other kind are absent.
#[derive(Deserialize)]
pub(crate) struct Wire<'a> {
    #[serde(rename = "type", borrow)]
    kind: Cow<'a, str>,
    #[serde(borrow)]
    venue: Cow<'a, str>,
    #[serde(borrow)]
    symbol: Cow<'a, str>,
    ts_exchange: Timestamp,
    ts_received: Timestamp,
    bid_price: Option<Decimal>,
    bid_size: Option<Decimal>,
    ask_price: Option<Decimal>,
    ask_size: Option<Decimal>,
    price: Option<Decimal>,
    size: Option<Decimal>,
    side: Option<Side>,
    trade_id: Option<String>,
    status: Option<FeedStatusKind>,
    detail: Option<String>,
}

impl Wire<'_> {
    pub(crate) fn into_event(self) -> Result<Event, String> {
        let venue = Venue::new(&self.venue).map_err(|e| e.to_string())?;
        let symbol = Symbol::new(&self.symbol).map_err(|e| e.to_string())?;
        let need =
            |v: Option<Decimal>, name: &str| v.ok_or_else(|| format!("missing field `{name}`"));
        match &*self.kind {
            "quote" => Ok(Event::Quote(Quote {
                venue,
                symbol,
                ts_exchange: self.ts_exchange,
                ts_received: self.ts_received,
                bid_price: need(self.bid_price, "bid_price")?,
                bid_size: need(self.bid_size, "bid_size")?,
                ask_price: need(self.ask_price, "ask_price")?,
                ask_size: need(self.ask_size, "ask_size")?,
            })),
            "trade" => Ok(Event::Trade(Trade {
                venue,
                symbol,
                ts_exchange: self.ts_exchange,
                ts_received: self.ts_received,
                price: need(self.price, "price")?,
                size: need(self.size, "size")?,
                side: self.side.unwrap_or_default(),
                trade_id: self.trade_id,
            })),
            "status" => Ok(Event::Status(FeedEvent {
                venue,
                symbol,
                ts_exchange: self.ts_exchange,
                ts_received: self.ts_received,
                status: self.status.ok_or("missing field `status`")?,
                detail: self.detail,
            })),
            other => Err(format!(
                "unknown event type {other:?} (expected \"quote\", \"trade\" or \"status\")"
            )),
        }
    }
}
