//! The Binance feed against a local server speaking Binance's combined-stream
//! protocol: streams named in the URL, frames as Binance sends them, a
//! dropped connection mid-stream, a 429 with Retry-After on the reconnect,
//! server pings that must be answered with the same payload, a bad frame.

// tungstenite's handshake callback returns its own (large) error type.
#![allow(clippy::result_large_err)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use mdhub_feeds::Feed;
use mdhub_feeds::venues::binance::{BinanceConfig, BinanceFeed};
use mdhub_types::{Event, FeedStatusKind, Symbol};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};

const TRADE: &str = r#"{"stream":"btcusdt@trade","data":{"e":"trade","E":1732615200123,"s":"BTCUSDT","t":1,"p":"91234.56000000","q":"0.00012000","T":1732615200122,"m":false,"M":true}}"#;
const BOOK: &str = r#"{"stream":"ethusdt@bookTicker","data":{"u":51842296101,"s":"ETHUSDT","b":"3345.67000000","B":"12.34560000","a":"3345.68000000","A":"0.00310000"}}"#;

#[derive(Default)]
struct Seen {
    paths: Vec<String>,
    connections: Vec<Instant>,
    pong: Option<Vec<u8>>,
}

async fn serve(listener: TcpListener, seen: Arc<Mutex<Seen>>) {
    let mut k = 0;
    while let Ok((mut tcp, _)) = listener.accept().await {
        seen.lock().unwrap().connections.push(Instant::now());
        k += 1;
        if k == 2 {
            // Rate-limited: refuse the handshake as Binance does.
            let _ = tcp
                .write_all(b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 1\r\nContent-Length: 0\r\n\r\n")
                .await;
            continue;
        }
        let seen2 = seen.clone();
        let cb = move |req: &Request, resp: Response| {
            seen2.lock().unwrap().paths.push(req.uri().to_string());
            Ok(resp)
        };
        let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, cb).await else {
            continue;
        };
        let seen = seen.clone();
        tokio::spawn(async move {
            ws.send(Message::text(TRADE)).await.unwrap();
            ws.send(Message::text(BOOK)).await.unwrap();
            if k == 1 {
                // Mid-stream, the connection just goes away.
                return;
            }
            ws.send(Message::text(
                "{\"stream\":\"btcusdt@trade\",\"data\":{\"e\":\"trade\"",
            ))
            .await
            .unwrap();
            ws.send(Message::Ping(b"server-ping-7".to_vec().into()))
                .await
                .unwrap();
            ws.send(Message::text(TRADE.replace("\"t\":1,", "\"t\":2,")))
                .await
                .unwrap();
            while let Some(Ok(m)) = ws.next().await {
                if let Message::Pong(p) = m {
                    seen.lock().unwrap().pong.get_or_insert(p.to_vec());
                }
            }
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconnects_honours_retry_after_and_answers_pings() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Seen::default()));
    tokio::spawn(serve(listener, seen.clone()));

    let feed = BinanceFeed::new(BinanceConfig {
        url: format!("ws://127.0.0.1:{port}"),
        symbols: vec![
            Symbol::new("BTC-USDT").unwrap(),
            Symbol::new("ETH-USDT").unwrap(),
        ],
        ping_secs: 1,
        stale_secs: 5,
        ..BinanceConfig::default()
    });
    let support::Harness {
        ctx,
        events: mut rx,
        status,
        shutdown,
    } = support::harness("binance");
    let run = tokio::spawn(async move { feed.run(ctx).await });

    let (mut events, mut statuses) = (Vec::new(), Vec::new());
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while events.len() < 5 {
        let Ok(Some(e)) = tokio::time::timeout_at(deadline, rx.recv()).await else {
            panic!("only {} events: {events:?}", events.len());
        };
        match e {
            Event::Status(f) => statuses.push(f),
            e => events.push(e),
        }
    }
    // The server's ping is answered with its payload.
    let deadline = Instant::now() + Duration::from_secs(5);
    while seen.lock().unwrap().pong.is_none() {
        assert!(Instant::now() < deadline, "no pong");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    shutdown.cancel();
    let r = tokio::time::timeout(Duration::from_secs(5), run)
        .await
        .expect("stops on shutdown")
        .unwrap();
    assert!(r.is_ok(), "{r:?}");
    while let Ok(e) = rx.try_recv() {
        match e {
            Event::Status(f) => statuses.push(f),
            e => panic!("no data after shutdown: {e:?}"),
        }
    }
    // Feed status as data: each symbol's connect, loss (not the refused
    // handshake: that connection never came up), reconnect and shutdown.
    let story: Vec<(String, FeedStatusKind)> = statuses
        .iter()
        .map(|f| (f.symbol.to_string(), f.status))
        .collect();
    let both = |k| [("BTC-USDT".to_string(), k), ("ETH-USDT".to_string(), k)];
    use FeedStatusKind::{Connected, Disconnected};
    assert_eq!(
        story,
        [
            both(Connected),
            both(Disconnected),
            both(Connected),
            both(Disconnected)
        ]
        .concat()
    );
    assert!(statuses[2].detail.is_some(), "a disconnect says why");
    assert_eq!(
        statuses[6].detail.as_deref(),
        Some("mdhub is shutting down")
    );
    assert!(statuses.iter().all(|f| f.venue.as_str() == "binance"));

    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.paths[0],
        "/stream?streams=btcusdt@trade/btcusdt@bookTicker/ethusdt@trade/ethusdt@bookTicker",
        "streams are named in the URL; no subscribe messages"
    );
    assert!(
        seen.paths.iter().all(|p| *p == seen.paths[0]),
        "resubscribes the same streams"
    );
    assert_eq!(seen.pong.as_deref(), Some(&b"server-ping-7"[..]));
    assert!(
        seen.connections[2] - seen.connections[1] >= Duration::from_millis(950),
        "Retry-After: 1 is honoured: {:?}",
        seen.connections[2] - seen.connections[1]
    );
    let kinds: Vec<(&str, String)> = events
        .iter()
        .map(|e| match e {
            Event::Trade(t) => ("trade", t.trade_id.clone().unwrap()),
            Event::Quote(q) => ("quote", q.symbol.to_string()),
            Event::Status(_) => unreachable!("statuses were set aside"),
        })
        .collect();
    assert_eq!(
        kinds,
        [
            ("trade", "1".to_string()),
            ("quote", "ETH-USDT".to_string()),
            ("trade", "1".to_string()),
            ("quote", "ETH-USDT".to_string()),
            ("trade", "2".to_string()),
        ]
    );
    let s = status.snapshot();
    assert!(s.reconnects >= 2, "{s:?}");
    assert_eq!(s.dropped, 1, "the truncated frame is counted, not fatal");
    assert_eq!(s.events, 5);
    assert_eq!(
        s.status_events,
        [4, 4, 0, 0],
        "connected, disconnected, gap, resync"
    );
    assert!(s.symbols.iter().all(|x| !x.connected), "{:?}", s.symbols);
}
