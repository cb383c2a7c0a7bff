//! The client protocol of `GET /v1/ws` (documented with examples in
//! `docs/protocol.md`): what clients send ([`ClientMessage`]) and the frames
//! the server sends back ([`ServerMessage`] for control frames; market data
//! frames are built once per update by [`data_frame`] and fanned out as bytes).
//!
//! Positions: every `update` and `snapshot` carries `pos`
//! (`CHANNEL:PARTITION:OFFSET`, see [`Position`]). A client keeps the last
//! `pos` per symbol and channel and sends them back in `resume` after a
//! reconnect — to any gateway of the same log — to receive exactly what it
//! missed, or a `reset` and a fresh snapshot when that is no longer held.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{Position, Timestamp, Topic};

/// Messages a client sends (JSON text frames), tagged by `action`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "lowercase", deny_unknown_fields)]
pub enum ClientMessage {
    /// Add symbols (and channels) to the subscription set.
    Subscribe {
        /// Canonical symbols.
        symbols: Vec<String>,
        /// `quotes`, `trades`; both when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channels: Option<Vec<String>>,
        /// Resume from positions seen on an earlier connection.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resume: Option<Resume>,
        /// At most one update per symbol and channel every this many
        /// milliseconds (1..=60000): the latest, with `skipped`. Absent: every
        /// update.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        max_rate_ms: Option<u64>,
        /// Echoed in the acknowledgement or error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// Remove symbols (from the given channels, or from all).
    Unsubscribe {
        /// Canonical symbols.
        symbols: Vec<String>,
        /// Channels to drop; all when absent.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        channels: Option<Vec<String>>,
        /// Echoed in the acknowledgement or error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// Present a credential (API key or JWT) on an open connection: the
    /// way for browsers, which cannot set headers on a WebSocket.
    Auth {
        /// The API key or JWT.
        token: String,
        /// Echoed in the acknowledgement or error.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// Application-level ping; answered with `pong`.
    Ping {
        /// Echoed in the pong.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
}

impl ClientMessage {
    /// The request's `id`, to echo.
    pub fn id(&self) -> Option<&serde_json::Value> {
        match self {
            ClientMessage::Subscribe { id, .. }
            | ClientMessage::Unsubscribe { id, .. }
            | ClientMessage::Auth { id, .. }
            | ClientMessage::Ping { id } => id.as_ref(),
        }
    }
}

/// Why a client frame was not understood: the `error` to answer with.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// `bad_json`, `unknown_action` or `bad_request`.
    pub code: ErrorCode,
    /// What is wrong, for a person.
    pub message: String,
    /// The frame's `id`, when it had one, to echo.
    pub id: Option<serde_json::Value>,
}

/// Parse one client text frame. Never panics, whatever the input (fuzzed:
/// `fuzz/fuzz_targets/client_protocol.rs`); a frame that is not a request
/// gets the [`Rejection`] the gateway answers with.
pub fn parse_client_message(text: &str) -> Result<ClientMessage, Rejection> {
    let reject = |code, message: String, id| Rejection { code, message, id };
    let value: serde_json::Value = match serde_json::from_str(text) {
        Ok(v @ serde_json::Value::Object(_)) => v,
        Ok(_) => {
            return Err(reject(
                ErrorCode::BadJson,
                "expected a JSON object".into(),
                None,
            ));
        }
        Err(e) => return Err(reject(ErrorCode::BadJson, format!("not JSON: {e}"), None)),
    };
    let id = value.get("id").cloned();
    let action = value
        .get("action")
        .and_then(|a| a.as_str())
        .map(str::to_string);
    serde_json::from_value(value).map_err(|e| match action.as_deref() {
        Some("subscribe" | "unsubscribe" | "ping" | "auth") => {
            reject(ErrorCode::BadRequest, e.to_string(), id)
        }
        Some(other) => reject(
            ErrorCode::UnknownAction,
            format!("unknown action {other:?}; expected subscribe, unsubscribe, auth or ping"),
            id,
        ),
        None => reject(ErrorCode::UnknownAction, "missing \"action\"".into(), id),
    })
}

/// Where to resume: the log epoch the positions belong to, and the last
/// position seen per symbol and channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Resume {
    /// The `epoch` from the `welcome` of the connection the positions came from.
    pub epoch: String,
    /// symbol → channel → last `pos` received.
    pub positions: BTreeMap<String, BTreeMap<String, Position>>,
}

/// Stable error codes (the `code` of an `error` frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The frame is not JSON, or not a JSON object.
    BadJson,
    /// `action` is missing or unknown.
    UnknownAction,
    /// A field is missing, has the wrong type, or is not allowed.
    BadRequest,
    /// A symbol is not canonical (`btcusdt`, `BTC/USD`).
    InvalidSymbol,
    /// A symbol this hub has never seen.
    UnknownSymbol,
    /// A channel other than `quotes` and `trades`.
    InvalidChannel,
    /// A `resume` position does not belong to the symbol or channel.
    InvalidPosition,
    /// The connection would exceed its symbol limit.
    TooManySymbols,
    /// A frame larger than the server accepts, or a binary frame.
    MessageTooLarge,
    /// More frames than `gateway.client_messages_per_sec` allows; the frame
    /// was dropped.
    RateLimited,
    /// The gateway requires a credential and none was presented yet.
    Unauthenticated,
    /// The credential was refused (unknown key, bad or expired token).
    Unauthorized,
    /// Symbols (or channels) the credential is not entitled to.
    NotEntitled,
    /// The user already holds as many connections as allowed.
    TooManyConnections,
}

impl ErrorCode {
    /// The wire name (`unknown_symbol`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownAction => "unknown_action",
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::InvalidSymbol => "invalid_symbol",
            ErrorCode::UnknownSymbol => "unknown_symbol",
            ErrorCode::InvalidChannel => "invalid_channel",
            ErrorCode::InvalidPosition => "invalid_position",
            ErrorCode::TooManySymbols => "too_many_symbols",
            ErrorCode::MessageTooLarge => "message_too_large",
            ErrorCode::RateLimited => "rate_limited",
            ErrorCode::Unauthenticated => "unauthenticated",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::NotEntitled => "not_entitled",
            ErrorCode::TooManyConnections => "too_many_connections",
        }
    }
}

/// Why the server sends a `reset` for a symbol and channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResetReason {
    /// The position is older than the log holds (retention).
    PositionExpired,
    /// The positions belong to another log (the log was replaced).
    EpochChanged,
    /// The position is ahead of the log (from a log that lost data).
    PositionAhead,
    /// Records after the position could not be read (the log's copy is
    /// damaged); the stream goes on after them.
    DataLost,
    /// The server would not replay this much now (`max_replays` busy, or the
    /// connection's `max_replay_bytes` spent); a fresh snapshot follows.
    ReplayLimit,
    /// The subscription of a live stream was widened to more venues
    /// (`SYMBOL@venue`, or the bare symbol): the stream starts over with a
    /// snapshot of every venue it now holds.
    VenuesChanged,
}

/// Control frames the server sends, tagged by `type`. Data frames (`update`,
/// `snapshot`) are written by [`data_frame`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum ServerMessage {
    /// First frame of every connection.
    Welcome {
        /// The log epoch; positions are valid within it.
        epoch: String,
        /// Server name and version.
        server: String,
        /// Interval of server heartbeats, in milliseconds.
        heartbeat_ms: u64,
        /// Most symbols one connection may subscribe.
        max_symbols: usize,
        /// A credential is needed (present it with an `auth` action unless
        /// the connection carried one).
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        auth_required: bool,
    },
    /// Acknowledgement of a subscribe or unsubscribe, with the resulting set.
    Ack {
        /// `subscribe` or `unsubscribe`.
        action: String,
        /// The request's `id`, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
        /// symbol → channels, after the action.
        subscriptions: BTreeMap<String, Vec<Topic>>,
    },
    /// A rejected request or part of one; the connection stays open.
    Error {
        /// Stable code.
        code: ErrorCode,
        /// Human-readable detail.
        message: String,
        /// The symbols concerned, when the error is about some of them.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        symbols: Vec<String>,
        /// The request's `id`, if it had one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
    },
    /// The client's position could not be resumed; a snapshot follows.
    Reset {
        /// Symbol.
        symbol: String,
        /// Channel.
        channel: Topic,
        /// Why.
        reason: ResetReason,
    },
    /// Sent every `heartbeat_ms`.
    Heartbeat {
        /// Server time.
        ts: Timestamp,
    },
    /// Sent just before the server closes the connection: the close code,
    /// and whether and when to reconnect, so clients neither give up on a
    /// restart nor all come back in the same millisecond.
    Closing {
        /// The WebSocket close code that follows.
        code: u16,
        /// Reconnect (and resume) or not.
        reconnect: bool,
        /// Wait at least this long before reconnecting.
        retry_after_ms: u64,
        /// Why, in words.
        reason: String,
    },
    /// Answer to `ping`.
    Pong {
        /// The ping's `id`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<serde_json::Value>,
        /// Server time.
        ts: Timestamp,
    },
}

impl ServerMessage {
    /// The JSON text of this frame.
    pub fn to_json(&self) -> String {
        // Serializing these plain structures cannot fail.
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// Kind of a data frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataKind {
    /// A live or replayed event.
    Update,
    /// The latest known event, sent on subscribe.
    Snapshot,
}

/// Build a data frame around an event already encoded as JSON:
/// `{"type":"update","channel":"quotes","pos":"quotes:3:1234","data":{…}}`.
pub fn data_frame(kind: DataKind, position: Position, event_json: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(match kind {
        DataKind::Update => b"{\"type\":\"update\",\"channel\":\"",
        DataKind::Snapshot => b"{\"type\":\"snapshot\",\"channel\":\"",
    });
    out.extend_from_slice(position.topic.channel().as_bytes());
    out.extend_from_slice(b"\",\"pos\":\"");
    out.extend_from_slice(position.to_string().as_bytes());
    out.extend_from_slice(b"\",\"data\":");
    out.extend_from_slice(event_json);
    out.push(b'}');
}

/// A data frame as a client receives it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DataFrame {
    /// `update` or `snapshot`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Channel.
    pub channel: Topic,
    /// Position of the event in the log.
    pub pos: Position,
    /// The event.
    pub data: crate::Event,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_messages_parse() {
        let m: ClientMessage =
            serde_json::from_str(r#"{"action":"subscribe","symbols":["AAPL","MSFT"]}"#).unwrap();
        assert!(
            matches!(m, ClientMessage::Subscribe { ref symbols, channels: None, resume: None, id: None, max_rate_ms: None } if symbols.len() == 2)
        );
        let m: ClientMessage = serde_json::from_str(
            r#"{"action":"subscribe","symbols":["AAPL"],"channels":["quotes"],"id":7,
               "resume":{"epoch":"e1","positions":{"AAPL":{"quotes":"quotes:3:1234"}}}}"#,
        )
        .unwrap();
        let ClientMessage::Subscribe {
            resume: Some(r), ..
        } = m
        else {
            panic!()
        };
        assert_eq!(r.positions["AAPL"]["quotes"].offset, 1234);
        assert!(
            serde_json::from_str::<ClientMessage>(
                r#"{"action":"subscribe","symbols":["A"],"x":1}"#
            )
            .is_err()
        );
    }

    #[test]
    fn server_messages_have_stable_shapes() {
        let e = ServerMessage::Error {
            code: ErrorCode::UnknownSymbol,
            message: "no such symbol".into(),
            symbols: vec!["XYZ".into()],
            id: None,
        };
        assert_eq!(
            e.to_json(),
            r#"{"type":"error","code":"unknown_symbol","message":"no such symbol","symbols":["XYZ"]}"#
        );
        let p = Position {
            topic: Topic::Quotes,
            partition: 3,
            offset: 9,
        };
        let mut out = Vec::new();
        data_frame(DataKind::Update, p, b"{}", &mut out);
        assert_eq!(
            out,
            br#"{"type":"update","channel":"quotes","pos":"quotes:3:9","data":{}}"#
        );
    }
}
