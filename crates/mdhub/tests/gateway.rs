//! End-to-end tests of the gateway: the real `mdhub run` binary on port 0,
//! real WebSocket clients, and every delivered update checked against the log.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use common::log::{assert_exactly_per_venue, log_records};
use common::{Hub, http_get};
use futures_util::{SinkExt, StreamExt};
use mdhub_types::protocol::DataFrame;
use mdhub_types::{Event, Position, Topic};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const FAST_HEARTBEAT: [(&str, &str); 2] = [
    ("MDHUB_GATEWAY__HEARTBEAT_MS", "300"),
    ("MDHUB_GATEWAY__CLIENT_TIMEOUT_MS", "1000"),
];

fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Hub {
    Hub::start(dir, &["--sim-rate", "2000", "--seed", "11"], env)
}

async fn connect(hub: &Hub) -> (Ws, String) {
    let (mut ws, _) = tokio_tungstenite::connect_async(hub.ws_url())
        .await
        .expect("connect");
    let welcome = next_json(&mut ws).await.expect("welcome");
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let epoch = welcome["epoch"].as_str().unwrap().to_string();
    (ws, epoch)
}

async fn send(ws: &mut Ws, v: &Value) {
    ws.send(Message::text(v.to_string())).await.unwrap();
}

/// The next text frame as JSON; `None` when the connection ends.
async fn next_json(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("no frame within 10 s")?
        {
            Ok(Message::Text(t)) => return Some(serde_json::from_str(t.as_str()).unwrap()),
            Ok(Message::Close(_)) | Err(_) => return None,
            Ok(_) => continue,
        }
    }
}

/// The next frame of type `ty`, skipping heartbeats and data frames.
async fn expect_type(ws: &mut Ws, ty: &str) -> Value {
    loop {
        let v = next_json(ws)
            .await
            .unwrap_or_else(|| panic!("connection ended while waiting for {ty}"));
        if v["type"] == ty {
            return v;
        }
        let skippable =
            ["heartbeat", "update", "snapshot"].contains(&v["type"].as_str().unwrap_or(""));
        assert!(skippable, "expected {ty}, got {v}");
    }
}

/// Every data frame for `dur`, and the control frames seen meanwhile.
async fn collect(ws: &mut Ws, dur: Duration) -> (Vec<DataFrame>, Vec<Value>) {
    let mut data = Vec::new();
    let mut other = Vec::new();
    let deadline = tokio::time::Instant::now() + dur;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(t) = msg {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            match v["type"].as_str() {
                Some("update" | "snapshot") => data.push(serde_json::from_value(v).unwrap()),
                _ => other.push(v),
            }
        }
    }
    (data, other)
}

fn by_stream<'a>(
    frames: impl IntoIterator<Item = &'a DataFrame>,
) -> HashMap<(String, Topic), Vec<&'a DataFrame>> {
    let mut m: HashMap<(String, Topic), Vec<&DataFrame>> = HashMap::new();
    for f in frames {
        m.entry((f.data.symbol().to_string(), f.channel))
            .or_default()
            .push(f);
    }
    m
}

fn last_positions(frames: &[DataFrame]) -> Value {
    let mut m: BTreeMap<String, BTreeMap<String, Position>> = BTreeMap::new();
    for f in frames {
        m.entry(f.data.symbol().to_string())
            .or_default()
            .insert(f.channel.channel().to_string(), f.pos);
    }
    serde_json::to_value(m).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_gets_ack_snapshot_and_ordered_updates_of_its_symbols_only() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[]);
    hub.wait_published(1_000);
    let (mut ws, _) = connect(&hub).await;
    send(
        &mut ws,
        &json!({"action":"subscribe","symbols":["AAPL","MSFT"]}),
    )
    .await;
    let ack = expect_type(&mut ws, "ack").await;
    assert_eq!(
        ack["subscriptions"],
        json!({"AAPL":["quotes","trades"],"MSFT":["quotes","trades"]})
    );
    let (frames, _) = collect(&mut ws, Duration::from_millis(1500)).await;
    assert!(frames.len() > 20, "only {} frames", frames.len());
    assert_eq!(
        frames[0].kind, "snapshot",
        "the snapshot comes before live updates"
    );
    for f in &frames {
        assert!(
            ["AAPL", "MSFT"].contains(&f.data.symbol().as_str()),
            "unsubscribed symbol {}",
            f.data.symbol()
        );
        assert_eq!(f.data.topic(), f.channel);
    }
    for ((sym, topic), list) in by_stream(&frames) {
        for w in list.windows(2) {
            assert!(
                w[1].pos.offset > w[0].pos.offset,
                "{sym} {topic}: positions must increase"
            );
        }
    }
    drop(ws);
    assert!(hub.stop().success());
    for ((sym, topic), list) in by_stream(&frames) {
        assert_each_venue_exactly_the_log(dir.path(), &list, &sym, topic);
    }
}

/// The frames of each venue of `list`, in order.
fn by_venue<'a>(list: &[&'a DataFrame]) -> BTreeMap<String, Vec<&'a DataFrame>> {
    let mut m: BTreeMap<String, Vec<&DataFrame>> = BTreeMap::new();
    for f in list {
        m.entry(f.data.venue().to_string()).or_default().push(f);
    }
    m
}

/// Check that `frames` of one symbol and channel are, venue by venue, exactly
/// that venue's log records from its first frame to its last.
fn assert_each_venue_exactly_the_log(
    dir: &std::path::Path,
    frames: &[&DataFrame],
    symbol: &str,
    topic: Topic,
) {
    let log = log_records(dir, topic, symbol);
    let got: Vec<(u64, &Event)> = frames.iter().map(|f| (f.pos.offset, &f.data)).collect();
    assert_exactly_per_venue(&log, &got, &format!("{symbol} {topic}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_symbol_on_two_venues_is_a_stream_per_venue() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[]);
    hub.wait_published(2_000);
    let addr = hub.addr.clone();
    let get = move |path: String| {
        let addr = addr.clone();
        async move {
            tokio::task::spawn_blocking(move || http_get(&addr, &path))
                .await
                .unwrap()
        }
    };
    // REST: a snapshot per venue, and a directory line per venue.
    let both = common::wait_until_async(20, "BTC-USDT quoted on both venues", || async {
        let (_, body) = get("/v1/snapshot?symbols=BTC-USDT".into()).await;
        let v: Value = serde_json::from_str(&body).unwrap();
        let venues = v["symbols"]["BTC-USDT"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let done = venues.len() == 2 && venues.values().all(|e| e["quote"].is_object());
        (done, venues)
    })
    .await;
    for (venue, entry) in &both {
        assert_eq!(entry["quote"]["data"]["venue"], venue.as_str());
        assert_eq!(entry["quote"]["data"]["symbol"], "BTC-USDT");
    }
    let (_, body) = get("/v1/symbols".into()).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    let btc: Vec<&str> = v["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["symbol"] == "BTC-USDT")
        .map(|l| l["venue"].as_str().unwrap())
        .collect();
    assert_eq!(btc, ["sim-crypto", "sim-dex"]);
    let (_, body) = get("/v1/snapshot?symbols=BTC-USDT@sim-dex,BTC-USDT@nowhere".into()).await;
    let v: Value = serde_json::from_str(&body).unwrap();
    let venues: Vec<&String> = v["symbols"]["BTC-USDT"]
        .as_object()
        .unwrap()
        .keys()
        .collect();
    assert_eq!(venues, ["sim-dex"]);
    assert_eq!(v["unknown"], json!(["BTC-USDT@nowhere"]));

    // Every venue: a snapshot of each, then both venues' updates in log order.
    let (mut all, _) = connect(&hub).await;
    send(
        &mut all,
        &json!({"action":"subscribe","symbols":["BTC-USDT"]}),
    )
    .await;
    let ack = expect_type(&mut all, "ack").await;
    assert_eq!(
        ack["subscriptions"],
        json!({"BTC-USDT":["quotes","trades"]})
    );
    // One venue, then a second one on quotes.
    let (mut one, _) = connect(&hub).await;
    send(
        &mut one,
        &json!({"action":"subscribe","symbols":["BTC-USDT@sim-dex"]}),
    )
    .await;
    let ack = expect_type(&mut one, "ack").await;
    assert_eq!(
        ack["subscriptions"],
        json!({"BTC-USDT@sim-dex":["quotes","trades"]})
    );
    let (dex_only, _) = collect(&mut one, Duration::from_millis(1500)).await;
    send(
        &mut one,
        &json!({"action":"subscribe","symbols":["BTC-USDT@sim-crypto"],"channels":["quotes"]}),
    )
    .await;
    let ack = expect_type(&mut one, "ack").await;
    assert_eq!(
        ack["subscriptions"],
        json!({"BTC-USDT@sim-crypto":["quotes"],"BTC-USDT@sim-dex":["quotes","trades"]})
    );
    let (widened, control) = collect(&mut one, Duration::from_millis(1500)).await;
    let (frames, _) = collect(&mut all, Duration::from_millis(100)).await;
    // Narrowing "every venue" by one is refused, and changes nothing.
    send(
        &mut all,
        &json!({"action":"unsubscribe","symbols":["BTC-USDT@sim-dex"]}),
    )
    .await;
    let ack = expect_type(&mut all, "ack").await;
    assert_eq!(
        ack["subscriptions"],
        json!({"BTC-USDT":["quotes","trades"]})
    );
    let err = expect_type(&mut all, "error").await;
    assert_eq!(err["code"], "bad_request", "{err}");
    drop((all, one));
    assert!(hub.stop().success());

    let resets: Vec<&Value> = control.iter().filter(|c| c["type"] == "reset").collect();
    assert_eq!(resets.len(), 1, "{control:?}");
    assert_eq!(resets[0]["channel"], "quotes");
    assert_eq!(resets[0]["reason"], "venues_changed");
    for (what, frames, venues) in [
        ("every venue", &frames, vec!["sim-crypto", "sim-dex"]),
        ("one venue", &dex_only, vec!["sim-dex"]),
    ] {
        for ((sym, topic), list) in by_stream(frames.iter()) {
            let seen: Vec<String> = by_venue(&list).into_keys().collect();
            assert_eq!(seen, venues, "{what}: {sym} {topic}");
            for w in list.windows(2) {
                assert!(
                    w[1].pos.offset > w[0].pos.offset,
                    "{what}: {sym} {topic} in log order"
                );
            }
            let snaps: Vec<&str> = list
                .iter()
                .filter(|f| f.kind == "snapshot")
                .map(|f| f.data.venue().as_str())
                .collect();
            assert_eq!(snaps.len(), venues.len(), "{what}: a snapshot per venue");
            assert_each_venue_exactly_the_log(dir.path(), &list, &sym, topic);
        }
    }
    let quotes: Vec<&DataFrame> = widened
        .iter()
        .filter(|f| f.channel == Topic::Quotes)
        .collect();
    assert_eq!(
        by_venue(&quotes).into_keys().collect::<Vec<_>>(),
        ["sim-crypto", "sim-dex"],
        "after the reset, quotes of both venues"
    );
    assert_each_venue_exactly_the_log(dir.path(), &quotes, "BTC-USDT", Topic::Quotes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_messages_get_errors_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[]);
    hub.wait_published(1_000);
    let (mut ws, _) = connect(&hub).await;
    ws.send(Message::text("{{{ garbage")).await.unwrap();
    assert_eq!(expect_type(&mut ws, "error").await["code"], "bad_json");
    send(&mut ws, &json!({"action":"dance"})).await;
    assert_eq!(
        expect_type(&mut ws, "error").await["code"],
        "unknown_action"
    );
    send(
        &mut ws,
        &json!({"action":"subscribe","symbols":["AAPL","NOPE","btc"],"id":1}),
    )
    .await;
    let ack = expect_type(&mut ws, "ack").await;
    assert_eq!(ack["subscriptions"], json!({"AAPL":["quotes","trades"]}));
    let e1 = expect_type(&mut ws, "error").await;
    assert_eq!(
        (e1["code"].as_str(), &e1["symbols"]),
        (Some("invalid_symbol"), &json!(["btc"]))
    );
    let e2 = expect_type(&mut ws, "error").await;
    assert_eq!(
        (e2["code"].as_str(), &e2["symbols"]),
        (Some("unknown_symbol"), &json!(["NOPE"]))
    );
    ws.send(Message::binary(vec![1u8, 2, 3])).await.unwrap();
    assert_eq!(expect_type(&mut ws, "error").await["code"], "bad_request");
    send(&mut ws, &json!({"action":"ping","id":"p"})).await;
    assert_eq!(expect_type(&mut ws, "pong").await["id"], "p");
    let (frames, _) = collect(&mut ws, Duration::from_millis(500)).await;
    assert!(
        frames.iter().any(|f| f.kind == "update"),
        "updates still flow after errors"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn too_many_symbols_is_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[("MDHUB_GATEWAY__MAX_SYMBOLS", "2")]);
    hub.wait_published(1_000);
    let (mut ws, _) = connect(&hub).await;
    send(
        &mut ws,
        &json!({"action":"subscribe","symbols":["AAPL","MSFT","NVDA"]}),
    )
    .await;
    assert_eq!(
        expect_type(&mut ws, "error").await["code"],
        "too_many_symbols"
    );
    send(&mut ws, &json!({"action":"unsubscribe","symbols":["AAPL"]})).await;
    assert_eq!(
        expect_type(&mut ws, "ack").await["subscriptions"],
        json!({})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsubscribe_stops_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[]);
    hub.wait_published(1_000);
    let (mut ws, _) = connect(&hub).await;
    send(
        &mut ws,
        &json!({"action":"subscribe","symbols":["AAPL","EUR-USD"]}),
    )
    .await;
    expect_type(&mut ws, "ack").await;
    collect(&mut ws, Duration::from_millis(300)).await;
    send(&mut ws, &json!({"action":"unsubscribe","symbols":["AAPL"]})).await;
    // Everything after the ack is EUR-USD only.
    let ack = expect_type(&mut ws, "ack").await;
    assert_eq!(ack["subscriptions"], json!({"EUR-USD":["quotes","trades"]}));
    let (frames, _) = collect(&mut ws, Duration::from_millis(800)).await;
    assert!(!frames.is_empty());
    assert!(frames.iter().all(|f| f.data.symbol().as_str() == "EUR-USD"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_delivers_exactly_the_missed_updates() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[]);
    hub.wait_published(1_000);
    let symbols = ["AAPL", "BTC-USDT", "EUR-USD"];
    let (mut ws, epoch) = connect(&hub).await;
    send(&mut ws, &json!({"action":"subscribe","symbols":symbols})).await;
    expect_type(&mut ws, "ack").await;
    let (first, _) = collect(&mut ws, Duration::from_millis(800)).await;
    drop(ws);
    tokio::time::sleep(Duration::from_millis(1000)).await; // updates happen while we are away
    let (mut ws, epoch2) = connect(&hub).await;
    assert_eq!(epoch, epoch2);
    let resume = json!({"epoch": epoch, "positions": last_positions(&first)});
    send(
        &mut ws,
        &json!({"action":"subscribe","symbols":symbols,"resume":resume}),
    )
    .await;
    expect_type(&mut ws, "ack").await;
    let (second, other) = collect(&mut ws, Duration::from_millis(800)).await;
    assert!(
        other.iter().all(|v| v["type"] != "reset"),
        "no reset expected: {other:?}"
    );
    assert!(
        second.iter().all(|f| f.kind == "update"),
        "a resumed stream has no snapshot"
    );
    drop(ws);
    assert!(hub.stop().success());
    let all: Vec<DataFrame> = first.into_iter().chain(second).collect();
    let streams = by_stream(&all);
    assert_eq!(streams.len(), 6, "three symbols × two channels");
    for ((sym, topic), list) in streams {
        assert_each_venue_exactly_the_log(dir.path(), &list, &sym, topic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_across_a_restart_of_mdhub_run() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[]);
    hub.wait_published(1_000);
    let (mut ws, epoch) = connect(&hub).await;
    send(
        &mut ws,
        &json!({"action":"subscribe","symbols":["MSFT","ETH-USDT"]}),
    )
    .await;
    expect_type(&mut ws, "ack").await;
    let (first, _) = collect(&mut ws, Duration::from_millis(700)).await;
    // Stop the hub while the client keeps reading, as a live client does:
    // it sees the server go away with 1001.
    let stopper = tokio::task::spawn_blocking(move || hub.stop());
    let closed = loop {
        match ws.next().await {
            Some(Ok(Message::Close(Some(f)))) => break Some(u16::from(f.code)),
            Some(Ok(_)) => continue,
            _ => break None,
        }
    };
    assert!(
        stopper.await.unwrap().success(),
        "clean shutdown with a client connected"
    );
    assert_eq!(closed, Some(1001));
    let hub = start(dir.path(), &[]);
    let (mut ws, epoch2) = connect(&hub).await;
    assert_eq!(epoch, epoch2, "a restart keeps the log and its epoch");
    let resume = json!({"epoch": epoch, "positions": last_positions(&first)});
    send(
        &mut ws,
        &json!({"action":"subscribe","symbols":["MSFT","ETH-USDT"],"resume":resume}),
    )
    .await;
    expect_type(&mut ws, "ack").await;
    let (second, _) = collect(&mut ws, Duration::from_millis(1000)).await;
    assert!(!second.is_empty());
    drop(ws);
    assert!(hub.stop().success());
    let all: Vec<DataFrame> = first.into_iter().chain(second).collect();
    for ((sym, topic), list) in by_stream(&all) {
        assert_each_venue_exactly_the_log(dir.path(), &list, &sym, topic);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stale_positions_get_a_reset_and_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[]);
    hub.wait_published(1_000);
    let (mut ws, epoch) = connect(&hub).await;
    let far = "quotes:0:999999999";
    let p = mdhub_log::partition_for_key(b"AAPL", 8);
    let ahead = format!("quotes:{p}:999999999");
    send(
        &mut ws,
        &json!({"action":"subscribe","symbols":["AAPL"],"channels":["quotes"],
        "resume":{"epoch": epoch, "positions":{"AAPL":{"quotes": ahead}}}}),
    )
    .await;
    expect_type(&mut ws, "ack").await;
    let reset = expect_type(&mut ws, "reset").await;
    assert_eq!(reset["reason"], "position_ahead");
    assert_eq!(expect_type(&mut ws, "snapshot").await["channel"], "quotes");
    // The largest offset there is: ahead too, not wrapped to 0 (which would
    // replay the whole partition).
    let max = format!("quotes:{p}:{}", u64::MAX);
    let (mut fresh, _) = connect(&hub).await;
    send(
        &mut fresh,
        &json!({"action":"subscribe","symbols":["AAPL"],"channels":["quotes"],
        "resume":{"epoch": epoch, "positions":{"AAPL":{"quotes": max}}}}),
    )
    .await;
    expect_type(&mut fresh, "ack").await;
    let reset = expect_type(&mut fresh, "reset").await;
    assert_eq!(reset["reason"], "position_ahead");
    assert_eq!(
        expect_type(&mut fresh, "snapshot").await["channel"],
        "quotes"
    );
    // A quotes position handed in for the trades channel.
    send(
        &mut ws,
        &json!({"action":"subscribe","symbols":["AAPL"],"channels":["trades"],
        "resume":{"epoch": epoch, "positions":{"AAPL":{"trades": far}}}}),
    )
    .await;
    expect_type(&mut ws, "ack").await;
    assert_eq!(
        expect_type(&mut ws, "error").await["code"],
        "invalid_position"
    );
    assert_eq!(expect_type(&mut ws, "snapshot").await["channel"], "trades");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_flow_and_a_silent_client_is_closed() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &FAST_HEARTBEAT);
    let (mut live, _) = connect(&hub).await;
    let (mut silent, _) = connect(&hub).await;
    // The live client reads (its library answers pings) for 2.5 s.
    let (_, other) = collect(&mut live, Duration::from_millis(2500)).await;
    let beats = other.iter().filter(|v| v["type"] == "heartbeat").count();
    assert!(beats >= 4, "expected heartbeats every 300 ms, got {beats}");
    // The silent client never read, so never answered a ping: the server
    // closed it with 4002. (Reading now may hit the closed socket before the
    // close frame, as the client library first flushes its queued pongs.)
    let mut ended = false;
    while let Ok(next) = tokio::time::timeout(Duration::from_secs(5), silent.next()).await {
        match next {
            Some(Ok(Message::Close(Some(f)))) => {
                assert_eq!(u16::from(f.code), 4002);
                ended = true;
                break;
            }
            Some(Ok(_)) => continue,
            Some(Err(_)) | None => {
                ended = true;
                break;
            }
        }
    }
    assert!(ended, "a silent client must be disconnected");
    let addr = hub.addr.clone();
    let (_, metrics) = tokio::task::spawn_blocking(move || http_get(&addr, "/metrics"))
        .await
        .unwrap();
    let timeouts: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mdhub_gateway_heartbeat_timeouts_total "))
        .and_then(|v| v.parse().ok())
        .unwrap();
    assert!(timeouts >= 1, "the server must count the heartbeat timeout");
    // The live one is still served.
    send(&mut live, &json!({"action":"ping"})).await;
    expect_type(&mut live, "pong").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_endpoints() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[]);
    hub.wait_published(1_000);
    let addr = hub.addr.clone();
    let get = move |path: &'static str| {
        let addr = addr.clone();
        async move {
            tokio::task::spawn_blocking(move || http_get(&addr, path))
                .await
                .unwrap()
        }
    };
    let (code, body) = get("/v1/snapshot?symbols=AAPL,NOPE,bad/sym").await;
    assert_eq!(code, 200);
    let v: Value = serde_json::from_str(&body).unwrap();
    let aapl = &v["symbols"]["AAPL"]["sim-nasdaq"];
    assert_eq!(aapl["quote"]["data"]["symbol"], "AAPL");
    assert!(
        aapl["quote"]["pos"]
            .as_str()
            .unwrap()
            .starts_with("quotes:")
    );
    assert_eq!(v["unknown"], json!(["NOPE"]));
    assert_eq!(v["invalid"], json!(["bad/sym"]));
    let (code, _) = get("/v1/snapshot").await;
    assert_eq!(code, 400);
    let (_, body) = get("/v1/symbols").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        v["symbols"].as_array().unwrap().len(),
        13,
        "a line per instrument: {v}"
    );
    let (_, body) = get("/v1/status").await;
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["feeds"].as_array().unwrap().len(), 4);
    assert!(v["ingest"]["published"].as_u64().unwrap() > 0);
    assert_eq!(v["log"]["price-quotes"].as_array().unwrap().len(), 8);
    assert_eq!(get("/healthz").await.0, 200);
    let (code, body) = get("/readyz").await;
    assert_eq!(code, 200, "{body}");
    let (_, body) = get("/metrics").await;
    for m in [
        "mdhub_gateway_connections ",
        "mdhub_gateway_delivery_latency_seconds_bucket{le=\"0.001\"}",
        "mdhub_feed_events_total{venue=\"sim-nasdaq\"}",
        "mdhub_ingest_published_total ",
        "mdhub_gateway_queued_frames ",
    ] {
        assert!(body.contains(m), "/metrics lacks {m}");
    }
}

/// Every `ws` block of docs/protocol.md, sent to a live gateway.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_doc_examples_hold() {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/protocol.md"
    ))
    .unwrap();
    let blocks: Vec<&str> = doc
        .split("```ws\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .collect();
    assert!(
        blocks.len() >= 8,
        "expected the protocol's examples, found {} blocks",
        blocks.len()
    );
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &FAST_HEARTBEAT);
    hub.wait_published(1_000);
    for block in blocks {
        let (mut ws, _) = tokio_tungstenite::connect_async(hub.ws_url())
            .await
            .unwrap();
        let lines: Vec<&str> = block.lines().filter(|l| !l.trim().is_empty()).collect();
        let starts_with_welcome = lines.first().is_some_and(|l| l.contains("\"welcome\""));
        if !starts_with_welcome {
            expect_type(&mut ws, "welcome").await;
        }
        for line in lines {
            if let Some(out) = line.strip_prefix("> ") {
                ws.send(Message::text(out.to_string())).await.unwrap();
            } else if let Some(want) = line.strip_prefix("< ") {
                let want: Value =
                    serde_json::from_str(want).unwrap_or_else(|e| panic!("doc line {want}: {e}"));
                let got = expect_type(&mut ws, want["type"].as_str().unwrap()).await;
                same_shape(&want, &got, "", &format!("doc example {line}"));
            } else {
                panic!("a ws block line must start with '> ' or '< ': {line}");
            }
        }
    }
}

/// Values of these keys must match exactly in control frames; elsewhere only
/// the JSON type must match (epochs, positions, prices, times vary).
const STRICT: [&str; 9] = [
    "type",
    "action",
    "code",
    "reason",
    "id",
    "subscriptions",
    "symbols",
    "symbol",
    "channel",
];

fn same_shape(want: &Value, got: &Value, key: &str, ctx: &str) {
    let data_frame = matches!(
        got.get("type").and_then(Value::as_str),
        Some("update" | "snapshot")
    );
    match (want, got) {
        (Value::Object(w), Value::Object(g)) => {
            let wk: Vec<&String> = w.keys().collect();
            let gk: Vec<&String> = g.keys().collect();
            let (mut a, mut b) = (wk.clone(), gk.clone());
            a.sort();
            b.sort();
            if key == "data" {
                // Quote or trade, whichever came first.
                assert!(
                    g.contains_key("type") && g.contains_key("symbol"),
                    "{ctx}: data {got}"
                );
                return;
            }
            assert_eq!(a, b, "{ctx}: keys differ: {got}");
            for (k, wv) in w {
                let strict = STRICT.contains(&k.as_str()) && !(data_frame && k == "channel");
                if strict {
                    assert_eq!(wv, &g[k], "{ctx}: {k}");
                } else {
                    same_shape(wv, &g[k], k, ctx);
                }
            }
        }
        _ => assert_eq!(
            std::mem::discriminant(want),
            std::mem::discriminant(got),
            "{ctx}: {key} has another JSON type: {got}"
        ),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connection_limit_is_taken_before_accept() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[("MDHUB_GATEWAY__MAX_CONNECTIONS", "2")]);
    let (a, _) = connect(&hub).await;
    let (_b, _) = connect(&hub).await;
    let url = hub.ws_url();
    let third =
        tokio::spawn(async move { tokio_tungstenite::connect_async(url).await.map(|_| ()) });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !third.is_finished(),
        "a third connection must wait while two are open"
    );
    drop(a);
    let done = tokio::time::timeout(Duration::from_secs(5), third).await;
    assert!(
        matches!(done, Ok(Ok(Ok(())))),
        "the third connection goes through once one closes"
    );
}

#[test]
fn tail_prints_snapshots_and_updates() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[]);
    hub.wait_published(1_000);
    let url = hub.ws_url();
    let text = common::mdhub_ok(&["tail", "--url", &url, "--count", "12", "AAPL", "EUR-USD"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 12, "{text}");
    assert!(
        lines[0].contains("*AAPL"),
        "the first line is AAPL's snapshot: {text}"
    );
    assert!(
        lines
            .iter()
            .all(|l| l.contains("AAPL") || l.contains("EUR-USD"))
    );
    assert!(lines.iter().any(|l| l.contains(" quote ")) && lines.iter().all(|l| l.contains(":")));
    let json = common::mdhub()
        .args([
            "tail",
            "--url",
            &hub.ws_url(),
            "--count",
            "3",
            "--json",
            "--channels",
            "trades",
            "BTC-USDT",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8(json.stdout).unwrap();
    let data: Vec<DataFrame> = text
        .lines()
        .filter(|l| l.contains(r#""type":"update""#) || l.contains(r#""type":"snapshot""#))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(data.len(), 3, "{text}");
    assert!(data.iter().all(|f| f.channel == Topic::Trades));
    assert_eq!(
        text.lines().count(),
        3,
        "--json prints data frames only, one per line: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_frames_is_rate_limited_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MDHUB_GATEWAY__CLIENT_MESSAGES_PER_SEC", "10"),
        ("MDHUB_GATEWAY__CLIENT_MESSAGE_BURST", "20"),
    ];
    let hub = start(dir.path(), &env);
    let (mut ws, _) = connect(&hub).await;
    for i in 0..100 {
        send(&mut ws, &json!({"action":"ping","id":i})).await;
    }
    let mut pongs = 0;
    let mut limited = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(800);
    while let Ok(Some(v)) = tokio::time::timeout_at(deadline, next_json(&mut ws)).await {
        match v["type"].as_str() {
            Some("pong") => pongs += 1,
            Some("error") => limited.push(v),
            _ => {}
        }
    }
    assert!(
        (20..30).contains(&pongs),
        "the burst and little more: {pongs} pongs"
    );
    assert_eq!(
        limited.len(),
        1,
        "one error per run of dropped frames: {limited:?}"
    );
    assert_eq!(limited[0]["code"], "rate_limited");
    // The bucket refills: the connection works again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    send(&mut ws, &json!({"action":"ping","id":"again"})).await;
    assert_eq!(expect_type(&mut ws, "pong").await["id"], "again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_allowed_origins_may_open_websockets() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let dir = tempfile::tempdir().unwrap();
    let env = [(
        "MDHUB_GATEWAY__ALLOWED_ORIGINS",
        r#"["https://desk.example.com"]"#,
    )];
    let hub = start(dir.path(), &env);
    let open = |origin: Option<&'static str>| {
        let mut req = hub.ws_url().into_client_request().unwrap();
        if let Some(o) = origin {
            req.headers_mut().insert("Origin", o.parse().unwrap());
        }
        tokio_tungstenite::connect_async(req)
    };
    let refused = open(Some("https://evil.example.net")).await;
    match refused {
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => assert_eq!(r.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    assert!(open(Some("https://desk.example.com")).await.is_ok());
    assert!(
        open(None).await.is_ok(),
        "no Origin: not a browser, not refused"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_far_over_the_limit_is_closed_with_1009() {
    let dir = tempfile::tempdir().unwrap();
    let hub = start(dir.path(), &[("MDHUB_GATEWAY__MAX_MESSAGE_BYTES", "1024")]);
    let (mut ws, _) = connect(&hub).await;
    // Over 4 × the limit: no error frame, the connection ends, with 1009.
    let big = "X".repeat(64 * 1024);
    let _ = ws
        .send(Message::text(format!(
            "{{\"action\":\"subscribe\",\"symbols\":[\"{big}\"]}}"
        )))
        .await;
    let (mut closing, mut code) = (None, None);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        match m {
            Message::Text(t) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "closing" {
                    closing = Some(v);
                }
            }
            Message::Close(f) => {
                code = f.map(|f| u16::from(f.code));
                break;
            }
            _ => {}
        }
    }
    assert_eq!(code, Some(1009), "closing frame: {closing:?}");
    assert_eq!(closing.unwrap()["code"], 1009);
    assert!(hub.stop().success());
}
