//! The Alpaca feed against a local server speaking Alpaca's stock data
//! protocol: greeting, auth (refused for a wrong secret), subscribe, data in
//! arrays; and the secret never shows in the configuration's debug output.

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mdhub_feeds::Feed;
use mdhub_feeds::venues::alpaca::{AlpacaConfig, AlpacaFeed};
use mdhub_types::{Event, Symbol};
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;

async fn serve(listener: TcpListener, seen: Arc<Mutex<Vec<Value>>>) {
    while let Ok((tcp, _)) = listener.accept().await {
        let seen = seen.clone();
        tokio::spawn(async move {
            let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                return;
            };
            ws.send(Message::text(r#"[{"T":"success","msg":"connected"}]"#))
                .await
                .unwrap();
            let Some(Ok(Message::Text(auth))) = ws.next().await else {
                return;
            };
            let auth: Value = serde_json::from_str(auth.as_str()).unwrap();
            seen.lock().unwrap().push(auth.clone());
            if auth["secret"] != "s3cret" {
                ws.send(Message::text(
                    r#"[{"T":"error","code":402,"msg":"auth failed"}]"#,
                ))
                .await
                .unwrap();
                return;
            }
            ws.send(Message::text(r#"[{"T":"success","msg":"authenticated"}]"#))
                .await
                .unwrap();
            let Some(Ok(Message::Text(sub))) = ws.next().await else {
                return;
            };
            seen.lock()
                .unwrap()
                .push(serde_json::from_str(sub.as_str()).unwrap());
            ws.send(Message::text(
                r#"[{"T":"subscription","trades":["AAPL"],"quotes":["AAPL"]}]"#,
            ))
            .await
            .unwrap();
            ws.send(Message::text(r#"[{"T":"t","i":1,"S":"AAPL","x":"V","p":230.10,"s":5,"t":"2026-11-26T15:30:00.000000001Z","c":["@"],"z":"C"},{"T":"q","S":"AAPL","bx":"V","bp":230.09,"bs":2,"ax":"V","ap":230.11,"as":3,"t":"2026-11-26T15:30:00.000000002Z","c":["R"],"z":"C"}]"#)).await.unwrap();
            while let Some(Ok(_)) = ws.next().await {}
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authenticates_subscribes_and_streams() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    tokio::spawn(serve(listener, seen.clone()));
    let cfg = AlpacaConfig {
        url,
        key: "PKTEST".into(),
        secret: "s3cret".into(),
        symbols: vec![Symbol::new("AAPL").unwrap()],
        ..AlpacaConfig::default()
    };
    assert!(
        !format!("{cfg:?}").contains("s3cret"),
        "the secret is never printed"
    );
    let feed = AlpacaFeed::new(cfg);
    let support::Harness {
        ctx,
        events: mut rx,
        shutdown,
        ..
    } = support::harness("alpaca");
    let run = tokio::spawn(async move { feed.run(ctx).await });
    let mut got = Vec::new();
    while got.len() < 2 {
        let Ok(Some(e)) = tokio::time::timeout(Duration::from_secs(10), rx.recv()).await else {
            panic!("events so far: {got:?}");
        };
        match e {
            // Both symbols are reported connected before any data.
            Event::Status(f) => assert!(
                got.is_empty() && f.status == mdhub_types::FeedStatusKind::Connected,
                "{f:?}"
            ),
            e => got.push(e),
        }
    }
    let Event::Trade(t) = &got[0] else {
        panic!("{got:?}")
    };
    assert_eq!(t.price.to_string(), "230.10");
    assert!(matches!(&got[1], Event::Quote(q) if q.ask_price.to_string() == "230.11"));
    shutdown.cancel();
    assert!(
        tokio::time::timeout(Duration::from_secs(5), run)
            .await
            .unwrap()
            .unwrap()
            .is_ok()
    );
    let seen = seen.lock().unwrap();
    assert_eq!(seen[0]["action"], "auth");
    assert_eq!(seen[0]["key"], "PKTEST");
    assert_eq!(
        seen[1],
        serde_json::json!({"action":"subscribe","trades":["AAPL"],"quotes":["AAPL"]})
    );
}

#[tokio::test]
async fn missing_keys_are_a_configuration_error() {
    let feed = AlpacaFeed::new(AlpacaConfig {
        symbols: vec![Symbol::new("AAPL").unwrap()],
        ..AlpacaConfig::default()
    });
    let h = support::harness("alpaca");
    let e = feed.run(h.ctx).await.unwrap_err().to_string();
    assert!(e.contains("APCA_API_KEY_ID"), "{e}");
}
