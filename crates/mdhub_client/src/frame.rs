//! Decoding the server's frames (`docs/protocol.md`).
//!
//! Data frames are nearly all of the traffic, and the server always writes
//! them as `{"type":"update"|"snapshot","channel":…,"pos":…,"data":{…}}`, so a
//! frame starting that way is decoded straight into [`Data`] in one pass. Any
//! other frame goes through a `serde_json::Value` first, which also accepts
//! data frames with their fields in another order; a frame of a type this
//! client does not know is [`Frame::Unknown`] and is skipped, so a newer
//! server can add frame types without breaking older clients.

use mdhub_types::protocol::ServerMessage;
use mdhub_types::{Event, Position};
use serde::Deserialize;

/// Whether a data frame is a snapshot or an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// The latest known event, sent on subscribe (or after a `reset`).
    Snapshot,
    /// A live or replayed event.
    Update,
}

/// A market-data frame: an event and its position in the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Data {
    /// Snapshot or update.
    pub kind: Kind,
    /// Where the event sits in the log; the channel is `pos.topic`.
    pub pos: Position,
    /// Updates of this stream the server skipped just before this one: it
    /// was conflating because the connection read too slowly. 0 normally.
    pub skipped: u64,
    /// The event, with exact decimals and nanosecond timestamps.
    pub event: Event,
}

/// One decoded server frame.
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A snapshot or update.
    Data(Data),
    /// Any control frame: welcome, ack, error, reset, heartbeat, pong.
    Control(ServerMessage),
    /// A frame of a type this client does not know (from a newer server).
    Unknown(String),
}

/// A frame that is not what the protocol says.
#[derive(Debug, thiserror::Error)]
#[error("bad frame from the server: {0}")]
pub struct DecodeError(#[from] serde_json::Error);

#[derive(Deserialize)]
struct WireData {
    #[serde(rename = "type")]
    kind: Kind,
    #[serde(rename = "channel")]
    _channel: serde::de::IgnoredAny,
    pos: Position,
    #[serde(default)]
    skipped: u64,
    data: Event,
}

impl From<WireData> for Data {
    fn from(w: WireData) -> Data {
        Data {
            kind: w.kind,
            pos: w.pos,
            skipped: w.skipped,
            event: w.data,
        }
    }
}

/// Decode one text frame.
pub fn decode(text: &str) -> Result<Frame, DecodeError> {
    if text.starts_with(r#"{"type":"update""#) || text.starts_with(r#"{"type":"snapshot""#) {
        return Ok(Frame::Data(serde_json::from_str::<WireData>(text)?.into()));
    }
    let v: serde_json::Value = serde_json::from_str(text)?;
    match v.get("type").and_then(|t| t.as_str()) {
        Some("update" | "snapshot") => {
            Ok(Frame::Data(serde_json::from_value::<WireData>(v)?.into()))
        }
        Some("welcome" | "ack" | "error" | "reset" | "heartbeat" | "pong" | "closing") => {
            Ok(Frame::Control(serde_json::from_value(v)?))
        }
        Some(other) => Ok(Frame::Unknown(other.to_string())),
        None => Ok(Frame::Unknown(String::new())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdhub_types::Topic;

    const QUOTE: &str = r#"{"type":"snapshot","channel":"quotes","pos":"quotes:1:347","data":{"type":"quote","venue":"sim-nasdaq","symbol":"AAPL","ts_exchange":1764162000123456789,"ts_received":1764162000123800000,"bid_price":"189.52","bid_size":"300","ask_price":"189.53","ask_size":"100"}}"#;

    #[test]
    fn data_frames_decode_exactly() {
        let Frame::Data(d) = decode(QUOTE).unwrap() else {
            panic!("not data")
        };
        assert_eq!(d.kind, Kind::Snapshot);
        assert_eq!(d.pos.to_string(), "quotes:1:347");
        let Event::Quote(q) = &d.event else { panic!() };
        assert_eq!(q.bid_price.to_string(), "189.52");
        assert_eq!(q.ts_exchange.as_nanos(), 1_764_162_000_123_456_789);
    }

    #[test]
    fn conflated_updates_say_how_many_were_skipped() {
        let text = QUOTE.replace(r#"{"type":"snapshot","#, r#"{"type":"update","skipped":7,"#);
        let Frame::Data(d) = decode(&text).unwrap() else {
            panic!()
        };
        assert_eq!((d.kind, d.skipped), (Kind::Update, 7));
    }

    #[test]
    fn field_order_does_not_matter() {
        let text = r#"{"pos":"trades:0:5","data":{"type":"trade","venue":"coinbase","symbol":"BTC-USD","ts_exchange":1,"ts_received":2,"price":"97000.123456789012345678","size":"0.5","side":"sell"},"channel":"trades","type":"update"}"#;
        let Frame::Data(d) = decode(text).unwrap() else {
            panic!()
        };
        assert_eq!(d.pos.topic, Topic::Trades);
        let Event::Trade(t) = &d.event else { panic!() };
        assert_eq!(t.price.to_string(), "97000.123456789012345678");
    }

    #[test]
    fn control_and_unknown_frames() {
        let f = decode(r#"{"type":"heartbeat","ts":1764162020000000000}"#).unwrap();
        assert!(matches!(f, Frame::Control(ServerMessage::Heartbeat { .. })));
        let f = decode(
            r#"{"type":"reset","symbol":"AAPL","channel":"quotes","reason":"epoch_changed"}"#,
        )
        .unwrap();
        assert!(matches!(f, Frame::Control(ServerMessage::Reset { .. })));
        assert_eq!(
            decode(r#"{"type":"news","x":1}"#).unwrap(),
            Frame::Unknown("news".into())
        );
    }

    #[test]
    fn bad_frames_are_errors_not_panics() {
        for text in [
            "",
            "not json",
            r#"{"type":"update"}"#,
            r#"{"type":"update","channel":"quotes","pos":"nowhere","data":{}}"#,
            r#"{"type":"welcome"}"#,
            &QUOTE.replace("189.52", "1e999999999"),
        ] {
            assert!(decode(text).is_err(), "{text}");
        }
    }
}
