//! Close codes (documented in docs/protocol.md) and how a connection ends:
//! the `closing` advice, then the close frame.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket};
use futures_util::SinkExt;
use mdhub_types::protocol::ServerMessage;

use super::text;

/// Server shutting down: reconnect (to any instance) and resume.
pub(crate) const GOING_AWAY: u16 = 1001;
/// No frame (not even a pong) from the client within the timeout.
pub(crate) const HEARTBEAT_TIMEOUT: u16 = 4002;
/// The client stopped reading (even conflated delivery made no progress
/// for `slow_client_timeout_ms`): reconnect and resume.
pub(crate) const LAGGED: u16 = 4008;
/// No credential in time, or a refused one: don't reconnect as is.
pub(crate) const UNAUTHORIZED: u16 = 4401;
/// The credential expired: reconnect with a fresh one.
pub(crate) const EXPIRED: u16 = 4403;
/// The user holds too many connections: retry later.
pub(crate) const TOO_MANY: u16 = 4429;
/// A frame above four times `max_message_bytes` (RFC 6455's 1009,
/// "message too big"); smaller oversize frames get an error instead.
pub(crate) const TOO_BIG: u16 = 1009;

/// How long a connection closed with 1009 lingers before its socket drops.
pub(super) const TOO_BIG_LINGER: Duration = Duration::from_millis(500);

/// Whether a read failed on a frame past the size limit (tungstenite's
/// capacity error, which the WebSocket layer passes on only as text).
pub(super) fn too_big(e: &axum::Error) -> bool {
    let text = e.to_string();
    text.contains("Space limit exceeded") || text.contains("too long")
}

/// Say whether and when to reconnect (a `closing` frame), then close.
/// `retry_after_ms`: `None` advises not to reconnect.
pub(super) async fn close_with(
    ws: &mut WebSocket,
    code: u16,
    reason: &'static str,
    retry_after_ms: Option<u64>,
) {
    let advice = ServerMessage::Closing {
        code,
        reconnect: retry_after_ms.is_some(),
        retry_after_ms: retry_after_ms.unwrap_or(0),
        reason: reason.to_string(),
    };
    let _ = ws.feed(text(advice.to_json())).await;
    let _ = ws
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        })))
        .await;
}
