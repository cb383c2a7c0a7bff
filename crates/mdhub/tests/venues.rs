//! `mdhub run` with a real venue configured: a local server speaking
//! Binance's combined-stream protocol stands in for stream.binance.com, and a
//! WebSocket client of mdhub receives its prices, exact.

mod common;

use std::time::Duration;

use common::kafka::subscribe_and_collect;
use common::{Hub, http_get};
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

/// Every price event in the embedded log under `dir`, as JSON, per partition
/// in offset order.
fn prices_in(dir: &std::path::Path) -> Vec<String> {
    use mdhub_log::{Log, LogConfig};
    let log = Log::open(LogConfig {
        dir: dir.join("log"),
        ..LogConfig::default()
    })
    .expect("open the log");
    let mut out = Vec::new();
    for topic in mdhub_types::Topic::PRICES {
        for p in 0..log.partitions(topic.log_name()).unwrap() {
            let end = log.high_watermark(topic.log_name(), p).unwrap();
            let mut next = log.start_offset(topic.log_name(), p).unwrap();
            while next < end {
                next = log
                    .read(topic.log_name(), p, next, 10_000, 8 << 20, |r| {
                        let e = mdhub_types::Encoding::Json.decode(r.value).unwrap();
                        out.push(String::from_utf8(mdhub_types::json::to_vec(&e)).unwrap());
                    })
                    .unwrap()
                    .next_offset;
            }
        }
    }
    out
}

/// `--record-raw` writes every frame with its receipt time; `mdhub replay`
/// plays the capture through the pipeline into another log, and the events
/// are exactly the live run's — receipt times included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recorded_capture_replays_to_the_same_events() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("ws://{}", listener.local_addr().unwrap());
    tokio::spawn(fake_binance(listener));
    let live = tempfile::tempdir().unwrap();
    let capture = live.path().join("capture");
    let hub = Hub::start(
        live.path(),
        &["--record-raw", capture.to_str().unwrap()],
        &[
            ("MDHUB_VENUES__BINANCE__SYMBOLS", "[\"BTC-USDT\"]"),
            ("MDHUB_VENUES__BINANCE__URL", &url),
        ],
    );
    // Two connections' worth (the fake venue drops each after 40 pairs).
    tokio::time::sleep(Duration::from_millis(2000)).await;
    assert!(hub.stop().success());
    let files: Vec<_> = std::fs::read_dir(&capture)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert_eq!(files.len(), 1, "one file per venue: {files:?}");
    let name = files[0].file_name().unwrap().to_str().unwrap().to_string();
    assert!(
        name.starts_with("binance-") && name.ends_with(".capture.jsonl"),
        "{name}"
    );
    let text = std::fs::read_to_string(&files[0]).unwrap();
    let first: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(first["venue"], "binance");
    assert!(first["ts"].as_i64().unwrap() > 1_700_000_000_000_000_000);
    assert!(
        first["frame"]
            .as_str()
            .unwrap()
            .starts_with("{\"stream\":\"btcusdt@"),
        "{first}"
    );
    let live_events = prices_in(live.path());
    assert!(live_events.len() >= 80, "{} events", live_events.len());
    assert_eq!(
        text.lines().count(),
        live_events.len(),
        "one frame, one event"
    );

    // `mdhub replay ARGS` into a fresh data directory; its price events.
    let replay = |args: &[&str]| {
        let dir = tempfile::tempdir().unwrap();
        let out = common::mdhub()
            .arg("replay")
            .args(args)
            .env("MDHUB_DATA_DIR", dir.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{err}");
        prices_in(dir.path())
    };
    assert_eq!(
        replay(&[capture.to_str().unwrap()]),
        live_events,
        "replay = the live run"
    );

    // At the recorded pace it takes about as long as the recording.
    let t = std::time::Instant::now();
    let paced = replay(&["--speed", "1", files[0].to_str().unwrap()]);
    let span = {
        let ts = |l: &str| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["ts"]
                .as_i64()
                .unwrap()
        };
        let lines: Vec<&str> = text.lines().collect();
        Duration::from_nanos((ts(lines[lines.len() - 1]) - ts(lines[0])) as u64)
    };
    assert!(t.elapsed() >= span, "{:?} < recorded {span:?}", t.elapsed());
    assert_eq!(paced, live_events);

    let bad = common::mdhub()
        .args(["replay", "--speed", "fast", "x"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));

    // `mdhub archive --backfill` puts the same events into a lake, once.
    let lake = live.path().join("backfilled");
    let backfill = || {
        let out = common::mdhub()
            .args(["archive", "--lake", lake.to_str().unwrap(), "--backfill"])
            .arg(&capture)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    let first = backfill();
    assert!(
        first.starts_with(&format!("backfilled {} rows", live_events.len())),
        "{first}"
    );
    let again = backfill();
    assert!(
        again.starts_with("backfilled 0 rows into 0 files")
            && again.contains(&format!("({} already there)", live_events.len())),
        "{again}"
    );
    let out = common::mdhub()
        .args(["query", "--lake", lake.to_str().unwrap(), "--format", "csv"])
        .arg("SELECT count(*) AS n, count(DISTINCT ts_received) AS t FROM (SELECT ts_received FROM trades UNION ALL SELECT ts_received FROM quotes)")
        .output()
        .unwrap();
    let csv = String::from_utf8(out.stdout).unwrap();
    let live_ts: std::collections::BTreeSet<i64> = live_events
        .iter()
        .map(|e| {
            serde_json::from_str::<serde_json::Value>(e).unwrap()["ts_received"]
                .as_i64()
                .unwrap()
        })
        .collect();
    assert_eq!(
        csv.lines().nth(1),
        Some(format!("{},{}", live_events.len(), live_ts.len()).as_str()),
        "{csv}"
    );
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
        Duration::from_millis(4000),
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
        story.contains(&d) && story.contains(&c),
        "a drop and a reconnect: {story:?}"
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

/// One symbol from two real venues' decoders: Coinbase `ticker` and `match`,
/// Kraken v2 `ticker` and `trade` frames (the venues' documented message
/// shapes, as in their fixtures) for BTC-USD,
/// played through `mdhub replay`, stay two instruments — a snapshot each,
/// each with its own venue's prices.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn btc_usd_from_coinbase_and_kraken_is_two_instruments() {
    let dir = tempfile::tempdir().unwrap();
    let capture = dir.path().join("capture");
    std::fs::create_dir_all(&capture).unwrap();
    let t0 = 1_760_000_000_000_000_000i64;
    let line = |venue: &str, i: i64, frame: String| {
        serde_json::json!({"venue": venue, "ts": t0 + i * 1_000_000, "frame": frame}).to_string()
    };
    let mut coinbase: Vec<String> = (0..3)
        .map(|i| {
            let frame = format!(
                r#"{{"type":"ticker","sequence":{},"product_id":"BTC-USD","price":"6700{i}.10","open_24h":"66000","volume_24h":"1000","low_24h":"65000","high_24h":"68000","volume_30d":"9000","best_bid":"6700{i}.00","best_bid_size":"0.5","best_ask":"6700{i}.20","best_ask_size":"0.7","side":"buy","time":"2025-10-09T08:53:2{i}.061769Z","trade_id":{},"last_size":"0.01"}}"#,
                1000 + i,
                5000 + i
            );
            line("coinbase", 2 * i, frame)
        })
        .collect();
    let mut kraken: Vec<String> = (0..3)
        .map(|i| {
            let frame = format!(
                r#"{{"channel":"ticker","type":"update","data":[{{"symbol":"BTC/USD","bid":6000{i}.5,"bid_qty":1.25,"ask":6000{i}.6,"ask_qty":2.5,"last":6000{i}.5,"volume":10.0,"vwap":60000.0,"low":59000.0,"high":61000.0,"change":1.0,"change_pct":0.01}}]}}"#
            );
            line("kraken", 2 * i + 1, frame)
        })
        .collect();
    coinbase.push(line(
        "coinbase",
        6,
        r#"{"type":"match","trade_id":5003,"sequence":1003,"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","time":"2025-10-09T08:53:23.028459Z","product_id":"BTC-USD","size":"0.25","price":"67002.15","side":"sell"}"#.into(),
    ));
    kraken.push(line(
        "kraken",
        7,
        r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":60002.55,"qty":0.5,"ord_type":"market","trade_id":4665906,"timestamp":"2025-10-09T08:53:23.708706Z"}]}"#.into(),
    ));
    std::fs::write(
        capture.join("coinbase-1.capture.jsonl"),
        coinbase.join("\n") + "\n",
    )
    .unwrap();
    std::fs::write(
        capture.join("kraken-1.capture.jsonl"),
        kraken.join("\n") + "\n",
    )
    .unwrap();
    let out = common::mdhub()
        .arg("replay")
        .arg(&capture)
        .env("MDHUB_DATA_DIR", dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A hub on that log: its cache is refilled from the log at start.
    let hub = Hub::start(dir.path(), &["--sim-rate", "50"], &[]);
    let snap = common::wait_until_async(20, "BTC-USD on two venues", || async {
        let addr = hub.addr.clone();
        let (_, body) =
            tokio::task::spawn_blocking(move || http_get(&addr, "/v1/snapshot?symbols=BTC-USD"))
                .await
                .unwrap();
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let venues = v["symbols"]["BTC-USD"].clone();
        (venues.as_object().is_some_and(|m| m.len() == 2), venues)
    })
    .await;
    assert_eq!(snap["coinbase"]["quote"]["data"]["bid_price"], "67002.00");
    assert_eq!(snap["coinbase"]["quote"]["data"]["ask_price"], "67002.20");
    assert_eq!(snap["coinbase"]["trade"]["data"]["price"], "67002.15");
    assert_eq!(snap["kraken"]["trade"]["data"]["price"], "60002.55");
    assert_eq!(snap["kraken"]["quote"]["data"]["bid_price"], "60002.5");
    assert_eq!(snap["kraken"]["quote"]["data"]["ask_price"], "60002.6");
    assert!(hub.stop().success());
}
