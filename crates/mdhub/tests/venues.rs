//! `mdhub run` with a real venue configured: a local server speaking
//! Binance's combined-stream protocol stands in for stream.binance.com, and a
//! WebSocket client of mdhub receives its prices, exact.

mod common;

use std::time::Duration;

use common::Hub;
use common::kafka::subscribe_and_collect;
use futures_util::SinkExt;
use serde_json::json;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

/// Streams one trade and one book ticker of BTC-USDT every 20 ms, and drops
/// each connection after 40 of them (0.8 s), as a flaky venue would.
async fn fake_binance(listener: TcpListener) {
    let mut next = 0u64;
    while let Ok((tcp, _)) = listener.accept().await {
        let first = next;
        next += 40;
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            for i in first..first + 40 {
                let trade = format!(
                    r#"{{"stream":"btcusdt@trade","data":{{"e":"trade","E":{e},"s":"BTCUSDT","t":{i},"p":"91234.56000001","q":"0.00012000","T":{e},"m":true,"M":true}}}}"#,
                    e = 1_732_615_200_000 + i
                );
                let book = r#"{"stream":"btcusdt@bookTicker","data":{"u":1,"s":"BTCUSDT","b":"91234.55000000","B":"1.5","a":"91234.57000000","A":"0.25"}}"#;
                if ws.send(Message::text(trade)).await.is_err()
                    || ws.send(Message::text(book)).await.is_err()
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_streams_binance_prices_to_clients() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(fake_binance(listener));
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(
        dir.path(),
        &[],
        &[
            ("MDHUB_VENUES__BINANCE__SYMBOLS", "[\"BTC-USDT\"]"),
            ("MDHUB_VENUES__BINANCE__URL", &url),
        ],
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, frames) = subscribe_and_collect(
        &hub.ws_url(),
        json!({"action":"subscribe","symbols":["BTC-USDT"]}),
        Duration::from_millis(1500),
    )
    .await;
    let trades: Vec<_> = frames
        .iter()
        .filter_map(|f| match &f.data {
            mdhub_types::Event::Trade(t) => Some(t),
            _ => None,
        })
        .collect();
    assert!(trades.len() > 5, "{} trades", trades.len());
    assert!(trades.iter().all(|t| t.venue.as_str() == "binance"));
    assert_eq!(trades[0].price.to_string(), "91234.56000001");
    assert_eq!(trades[0].side, mdhub_types::Side::Sell);
    assert!(frames.iter().any(
        |f| matches!(&f.data, mdhub_types::Event::Quote(q) if q.ask_size.to_string() == "0.25")
    ));
    // Feed status as data: a client of the `status` channel sees the
    // venue's drops and reconnects as they happen.
    let (_, frames) = subscribe_and_collect(
        &hub.ws_url(),
        json!({"action":"subscribe","symbols":["BTC-USDT"],"channels":["status"]}),
        Duration::from_millis(2500),
    )
    .await;
    let story: Vec<_> = frames
        .iter()
        .map(|f| match &f.data {
            mdhub_types::Event::Status(s) => (s.venue.to_string(), s.status),
            other => panic!("only status on the status channel: {other:?}"),
        })
        .collect();
    use mdhub_types::FeedStatusKind::{Connected, Disconnected};
    let (c, d) = (
        ("binance".to_string(), Connected),
        ("binance".to_string(), Disconnected),
    );
    assert!(
        story.windows(2).any(|w| w == [d.clone(), c.clone()]),
        "a drop and the reconnect: {story:?}"
    );
    let (code, body) = common::http_get(&hub.addr, "/v1/status");
    assert_eq!(code, 200);
    assert!(body.contains("\"binance\""), "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let symbols = &status["feeds"][0]["symbols"];
    assert_eq!(symbols[0]["symbol"], "BTC-USDT", "{body}");
    assert!(
        status["log"]["feed-status"][0]["end"].as_u64().is_some(),
        "{body}"
    );
    let (_, metrics) = common::http_get(&hub.addr, "/metrics");
    assert!(
        metrics
            .contains("mdhub_feed_status_events_total{venue=\"binance\",status=\"disconnected\"}"),
        "{metrics}"
    );
    assert!(hub.stop().success());
}
