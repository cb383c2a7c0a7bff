//! A client that stops reading during a resume replay, on the real binary
//! (its own test binary: it loads the machine, and runs alone).

mod common;

use std::time::Duration;

use common::Hub;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A client whose socket takes little: a backlog piles up in the hub.
async fn connect_small(addr: &str) -> Ws {
    let sock = TcpSocket::new_v4().unwrap();
    sock.set_recv_buffer_size(16 * 1024).unwrap();
    let stream = sock.connect(addr.parse().unwrap()).await.unwrap();
    let url = format!("ws://{addr}/v1/ws");
    let (ws, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    ws
}

/// A client that resumes from old positions and reads nothing while its
/// replay is written: the replay's writes follow the same slow-client rule
/// as live delivery, so it is closed (4008) instead of holding its task and
/// socket forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_during_a_replay_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MDHUB_GATEWAY__SLOW_CLIENT_TIMEOUT_MS", "2000"),
        ("MDHUB_INGEST__STATUS_INTERVAL_SECS", "0"),
    ];
    let hub = Hub::start(dir.path(), &["--sim-rate", "20000", "--seed", "6"], &env);
    hub.wait_published(1_000);
    let addr = hub.addr.clone();
    let (_, body) = tokio::task::spawn_blocking(move || common::http_get(&addr, "/v1/symbols"))
        .await
        .unwrap();
    let all: Value = serde_json::from_str(&body).unwrap();
    let symbols: Vec<String> = all["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap().to_string())
        .collect();
    // Positions at the start of the log for every stream: the replay is
    // everything published since (tens of megabytes by the time it runs).
    let mut first = connect_small(&hub.addr).await;
    let welcome: Value = match first.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(t.as_str()).unwrap(),
        other => panic!("welcome: {other:?}"),
    };
    let epoch = welcome["epoch"].as_str().unwrap().to_string();
    drop(first);
    let mut positions = serde_json::Map::new();
    for s in &symbols {
        let key = s.as_bytes();
        let q = mdhub_log::partition_for_key(key, 8);
        positions.insert(
            s.clone(),
            json!({"quotes": format!("quotes:{q}:0"), "trades": format!("trades:{q}:0")}),
        );
    }
    let addr = hub.addr.clone();
    common::wait_until_async(30, "a large log to replay", || {
        let addr = addr.clone();
        async move {
            let published = tokio::task::spawn_blocking(move || {
                let (_, b) = common::http_get(&addr, "/v1/status");
                serde_json::from_str::<Value>(&b).unwrap()["ingest"]["published"]
                    .as_u64()
                    .unwrap_or(0)
            })
            .await
            .unwrap();
            (published > 60_000, published)
        }
    })
    .await;
    let mut stalled = connect_small(&hub.addr).await;
    let resume = json!({"action":"subscribe","symbols":symbols,
        "resume":{"epoch": epoch, "positions": positions}});
    stalled
        .send(Message::text(resume.to_string()))
        .await
        .unwrap();
    // It never reads. The hub closes it within the slow-client timeout.
    let addr = hub.addr.clone();
    common::wait_until_async(30, "the stalled replay closed (4008)", || {
        let addr = addr.clone();
        async move {
            let lagged = tokio::task::spawn_blocking(move || {
                common::metric(&addr, "mdhub_gateway_lagged_disconnects_total")
            })
            .await
            .unwrap();
            (lagged >= 1, lagged)
        }
    })
    .await;
    // Reading now drains what the socket buffers held, then the close.
    let mut close = None;
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(30), stalled.next()).await {
        match m {
            Ok(Message::Close(f)) => {
                close = f.map(|f| u16::from(f.code));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert!(
        close == Some(4008) || close.is_none(),
        "4008 (or the socket gone): {close:?}"
    );
}
