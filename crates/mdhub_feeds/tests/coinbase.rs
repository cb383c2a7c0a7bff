//! The Coinbase feed against a local server speaking Coinbase Exchange's
//! feed protocol: the client must subscribe first (the server answers with
//! `subscriptions`), matches stream, the connection drops, and after the
//! reconnect and a second subscribe the server's `last_match` shows trades
//! were missed while disconnected — a gap, counted.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mdhub_feeds::Feed;
use mdhub_feeds::venues::coinbase::{CoinbaseConfig, CoinbaseFeed};
use mdhub_types::{Event, Symbol};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn matched(kind: &str, id: u64) -> String {
    format!(
        r#"{{"type":"{kind}","trade_id":{id},"sequence":{},"maker_order_id":"m","taker_order_id":"t","time":"2026-11-26T12:00:00.{id:06}Z","product_id":"BTC-USD","size":"0.01","price":"95000.{id:02}","side":"buy"}}"#,
        id + 1000
    )
}

async fn serve(listener: TcpListener, subscribes: Arc<Mutex<Vec<Value>>>) {
    let mut k = 0;
    while let Ok((tcp, _)) = listener.accept().await {
        k += 1;
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            continue;
        };
        // Coinbase: subscribe first, or be disconnected.
        let Some(Ok(Message::Text(sub))) = ws.next().await else {
            continue;
        };
        let sub: Value = serde_json::from_str(sub.as_str()).unwrap();
        subscribes.lock().unwrap().push(sub);
        let frames: Vec<String> = if k == 1 {
            vec![
                r#"{"type":"subscriptions","channels":[{"name":"matches","product_ids":["BTC-USD"]}]}"#.into(),
                matched("last_match", 9),
                matched("match", 10),
                matched("match", 11),
            ]
        } else {
            vec![
                r#"{"type":"subscriptions","channels":[{"name":"matches","product_ids":["BTC-USD"]}]}"#.into(),
                matched("last_match", 14),
                matched("match", 15),
                r#"{"type":"heartbeat","sequence":2000,"last_trade_id":15,"product_id":"BTC-USD","time":"2026-11-26T12:00:01Z"}"#.into(),
            ]
        };
        for f in frames {
            ws.send(Message::text(f)).await.unwrap();
        }
        if k == 1 {
            continue; // dropped mid-stream
        }
        tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribes_again_after_a_drop_and_reports_the_gap() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let subscribes = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve(listener, subscribes.clone()));
    let feed = CoinbaseFeed::new(CoinbaseConfig {
        url,
        symbols: vec![Symbol::new("BTC-USD").unwrap()],
        ..CoinbaseConfig::default()
    });
    let support::Harness {
        ctx,
        events: mut rx,
        status,
        shutdown,
    } = support::harness("coinbase");
    let run = tokio::spawn(async move { feed.run(ctx).await });
    let (mut ids, mut statuses) = (Vec::new(), Vec::new());
    while ids.len() < 5 {
        let t = match tokio::time::timeout(Duration::from_secs(15), rx.recv()).await {
            Ok(Some(Event::Trade(t))) => t,
            Ok(Some(Event::Status(f))) => {
                statuses.push(f);
                continue;
            }
            other => panic!("trades so far: {ids:?}; then {other:?}"),
        };
        assert_eq!(
            t.side,
            mdhub_types::Side::Sell,
            "maker bought: the taker sold"
        );
        ids.push(t.trade_id.unwrap());
    }
    assert_eq!(ids, ["9", "10", "11", "14", "15"]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .unwrap()
            .unwrap()
            .is_ok()
    );
    support::drain_statuses(&mut rx, &mut statuses);
    support::assert_reconnect_with_gap(&statuses, "BTC-USD", "trades 12..=13 missed (2 trades)");
    let s = status.snapshot();
    assert_eq!(s.gaps, 1, "12..=13 missed while disconnected: {s:?}");
    assert!(s.reconnects >= 1);
    let subs = subscribes.lock().unwrap();
    assert_eq!(subs.len(), 2, "subscribed again after the reconnect");
    assert_eq!(subs[0]["type"], "subscribe");
    assert_eq!(subs[0]["product_ids"], serde_json::json!(["BTC-USD"]));
    assert_eq!(
        subs[0]["channels"],
        serde_json::json!(["matches", "ticker", "heartbeat"])
    );
}
