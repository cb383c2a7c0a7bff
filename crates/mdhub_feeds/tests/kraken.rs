//! The Kraken v2 feed against a local server speaking Kraken's v2 protocol:
//! one subscribe request per channel (answered with `success`), a trade
//! snapshot then updates; after a drop the client subscribes again and the
//! repeated snapshot is not sent twice, while skipped trade ids are a gap.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mdhub_feeds::Feed;
use mdhub_feeds::venues::kraken::{KrakenConfig, KrakenFeed};
use mdhub_types::{Event, Symbol};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

fn trades(kind: &str, ids: &[u64]) -> String {
    let data: Vec<String> = ids
        .iter()
        .map(|id| {
            format!(
                r#"{{"symbol":"BTC/USD","side":"sell","price":95000.{id},"qty":0.001,"ord_type":"limit","trade_id":{id},"timestamp":"2026-11-26T12:00:00.{id:06}Z"}}"#
            )
        })
        .collect();
    format!(
        r#"{{"channel":"trade","type":"{kind}","data":[{}]}}"#,
        data.join(",")
    )
}

async fn serve(listener: TcpListener, requests: Arc<Mutex<Vec<Value>>>) {
    let mut k = 0;
    while let Ok((tcp, _)) = listener.accept().await {
        k += 1;
        let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
            continue;
        };
        for _ in 0..2 {
            let Some(Ok(Message::Text(req))) = ws.next().await else {
                return;
            };
            let req: Value = serde_json::from_str(req.as_str()).unwrap();
            let channel = req["params"]["channel"].as_str().unwrap().to_string();
            requests.lock().unwrap().push(req);
            let ack = format!(
                r#"{{"method":"subscribe","result":{{"channel":"{channel}","symbol":"BTC/USD"}},"success":true}}"#
            );
            ws.send(Message::text(ack)).await.unwrap();
        }
        let frames = if k == 1 {
            vec![trades("snapshot", &[1, 2]), trades("update", &[3])]
        } else {
            // The snapshot repeats 2 and 3; 4 and 5 were missed.
            vec![
                trades("snapshot", &[2, 3]),
                trades("update", &[6]),
                r#"{"channel":"heartbeat"}"#.to_string(),
            ]
        };
        for f in frames {
            ws.send(Message::text(f)).await.unwrap();
        }
        if k > 1 {
            tokio::spawn(async move { while let Some(Ok(_)) = ws.next().await {} });
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resubscribes_sends_no_trade_twice_and_reports_the_gap() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let requests = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve(listener, requests.clone()));
    let feed = KrakenFeed::new(KrakenConfig {
        url,
        symbols: vec![Symbol::new("BTC-USD").unwrap()],
        ..KrakenConfig::default()
    });
    let support::Harness {
        ctx,
        events: mut rx,
        status,
        shutdown,
    } = support::harness("kraken");
    let run = tokio::spawn(async move { feed.run(ctx).await });
    let (mut ids, mut statuses) = (Vec::new(), Vec::new());
    while ids.len() < 4 {
        let t = match tokio::time::timeout(Duration::from_secs(15), rx.recv()).await {
            Ok(Some(Event::Trade(t))) => t,
            Ok(Some(Event::Status(f))) => {
                statuses.push(f);
                continue;
            }
            other => panic!("trades so far: {ids:?}; then {other:?}"),
        };
        ids.push(t.trade_id.unwrap());
    }
    assert_eq!(ids, ["1", "2", "3", "6"]);
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
    support::assert_reconnect_with_gap(&statuses, "BTC-USD", "trades 4..=5 missed (2 trades)");
    let s = status.snapshot();
    assert_eq!(s.gaps, 1, "{s:?}");
    let reqs = requests.lock().unwrap();
    assert_eq!(
        reqs.len(),
        4,
        "two channels, subscribed on both connections"
    );
    assert_eq!(reqs[0]["method"], "subscribe");
    assert_eq!(reqs[0]["params"]["symbol"], serde_json::json!(["BTC/USD"]));
    let channels: Vec<&str> = reqs
        .iter()
        .map(|r| r["params"]["channel"].as_str().unwrap())
        .collect();
    assert_eq!(channels, ["trade", "ticker", "trade", "ticker"]);
}
