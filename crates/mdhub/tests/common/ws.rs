//! A WebSocket client for tests: connect and read the welcome, send a
//! subscribe, gather the frames that follow.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use super::Hub;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connect to the hub's WebSocket and read its `welcome`: the socket and the
/// log's epoch.
pub async fn connect(hub: &Hub) -> (Ws, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(hub.ws_url())
        .await
        .expect("connect");
    let welcome = next_json(&mut ws, Duration::from_secs(10))
        .await
        .expect("welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    (ws, welcome["epoch"].as_str().unwrap().to_owned())
}

/// The next text frame as JSON; `None` when nothing comes within `wait` or
/// the connection ends.
pub async fn next_json(ws: &mut Ws, wait: Duration) -> Option<Value> {
    loop {
        match tokio::time::timeout(wait, ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return serde_json::from_str(t.as_str()).ok(),
            Ok(Some(Ok(_))) => continue,
            _ => return None,
        }
    }
}

/// Sends `msg`, then gathers every frame but heartbeats for `wait`, from
/// its `ack` on (frames of earlier subscriptions that arrive before the ack
/// are dropped; those after it are kept).
pub async fn request(ws: &mut Ws, msg: Value, wait: Duration) -> Vec<Value> {
    ws.send(Message::text(msg.to_string())).await.unwrap();
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + wait;
    while let Some(left) = deadline.checked_duration_since(tokio::time::Instant::now()) {
        match next_json(ws, left).await {
            Some(v) if v["type"] == "heartbeat" => {}
            Some(v) => frames.push(v),
            None => break,
        }
    }
    let ack = frames
        .iter()
        .position(|f| f["type"] == "ack")
        .unwrap_or_else(|| panic!("no ack: {frames:?}"));
    frames.split_off(ack)
}

/// The symbol a frame is about (`reset`, `snapshot`, `update`).
pub fn symbol_of(frame: &Value) -> Option<&str> {
    frame["symbol"]
        .as_str()
        .or_else(|| frame["data"]["symbol"].as_str())
}

/// The offset of a data frame's `pos` (`quotes:3:1234` → 1234).
pub fn offset_of(frame: &Value) -> u64 {
    let pos = frame["pos"].as_str().unwrap();
    pos.rsplit(':').next().unwrap().parse().unwrap()
}
