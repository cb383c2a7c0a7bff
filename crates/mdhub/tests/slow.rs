//! Slow and stalled clients against the real binary: a client that stops
//! reading for a while is switched to conflated delivery (the latest update
//! per stream, with an exact `skipped` count) instead of being dropped; one
//! that stops reading for good is closed with 4008 after
//! `slow_client_timeout_ms`; a fast client on the same hub meanwhile gets
//! every update, in order.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::Hub;
use common::log::{assert_exactly_per_venue, log_records};
use futures_util::{SinkExt, StreamExt};
use mdhub_client::{Data, Frame, Kind, decode};
use mdhub_types::{Event, Topic};
use serde_json::{Value, json};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A client whose socket receive buffer is small and fixed (no
/// autotuning), so that when it stops reading the backlog piles up in the
/// server — where the gateway's policy applies — not in this process.
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

async fn subscribe(ws: &mut Ws, symbols: &Value) {
    let msg = json!({"action":"subscribe","symbols":symbols});
    ws.send(Message::text(msg.to_string())).await.unwrap();
}

/// What a client read: data frames, `closing` frames, and the close code.
#[derive(Default)]
struct Read {
    data: Vec<Data>,
    closing: Vec<Value>,
    close_code: Option<u16>,
}

/// Read for `dur` or until the connection ends.
async fn read_for(ws: &mut Ws, dur: Duration, out: &mut Read) {
    let deadline = tokio::time::Instant::now() + dur;
    while let Ok(Some(msg)) = tokio::time::timeout_at(deadline, ws.next()).await {
        match msg {
            Ok(Message::Text(t)) => match decode(t.as_str()) {
                Ok(Frame::Data(d)) => out.data.push(d),
                _ if t.as_str().contains(r#""type":"closing""#) => {
                    out.closing.push(serde_json::from_str(t.as_str()).unwrap());
                }
                _ => {}
            },
            Ok(Message::Close(f)) => {
                out.close_code = f.map(|f| u16::from(f.code));
                return;
            }
            Ok(_) => {}
            Err(_) => return,
        }
    }
}

/// The frames of each venue's stream: (`SYMBOL@venue`, channel).
fn streams(data: &[Data]) -> BTreeMap<(String, Topic), Vec<&Data>> {
    let mut m: BTreeMap<(String, Topic), Vec<&Data>> = BTreeMap::new();
    for d in data {
        let name = format!("{}@{}", d.event.symbol(), d.event.venue());
        m.entry((name, d.pos.topic)).or_default().push(d);
    }
    m
}

/// Per stream, offsets grow and each frame's `skipped` is exactly the number
/// of the stream's log records between it and the previous delivery. Returns
/// the total skipped.
fn assert_skips_match_the_log(dir: &std::path::Path, data: &[Data]) -> u64 {
    let mut total = 0;
    for ((name, topic), got) in streams(data) {
        let (sym, venue) = name.split_once('@').unwrap();
        let log: BTreeMap<u64, Event> = log_records(dir, topic, sym)
            .into_iter()
            .filter(|(_, e)| e.venue().as_str() == venue)
            .collect();
        for w in got.windows(2) {
            let (a, b) = (w[0].pos.offset, w[1].pos.offset);
            assert!(b > a, "{name} {topic}: offsets must grow");
            let between = log.range(a + 1..b).count() as u64;
            assert_eq!(
                w[1].skipped, between,
                "{name} {topic}: skipped {} but the venue has {between} records in {a}..{b}",
                w[1].skipped
            );
            total += w[1].skipped;
        }
    }
    total
}

fn metric(body: &str, name: &str) -> u64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} not in /metrics"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_conflated_stalled_ones_closed_and_fast_ones_miss_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MDHUB_GATEWAY__QUEUE_CAPACITY", "4096"),
        ("MDHUB_GATEWAY__SLOW_CLIENT_TIMEOUT_MS", "5000"),
    ];
    let hub = Hub::start(dir.path(), &["--sim-rate", "10000", "--seed", "4"], &env);
    hub.wait_published(1_000);
    let addr = hub.addr.clone();
    let (_, body) = tokio::task::spawn_blocking(move || common::http_get(&addr, "/v1/symbols"))
        .await
        .unwrap();
    let all: Value = serde_json::from_str(&body).unwrap();
    let symbols: Vec<&str> = all["symbols"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["symbol"].as_str().unwrap())
        .collect();
    let symbols = json!(symbols);

    let mut fast = connect_small(&hub.addr).await;
    let mut slow = connect_small(&hub.addr).await;
    let mut stalled = connect_small(&hub.addr).await;
    for ws in [&mut fast, &mut slow, &mut stalled] {
        subscribe(ws, &symbols).await;
    }
    let fast_reader = tokio::spawn(async move {
        let mut r = Read::default();
        read_for(&mut fast, Duration::from_secs(9), &mut r).await;
        r
    });
    // The slow client pauses 3.5 s (its backlog fills the server's socket
    // buffer, then its queue) and catches up for 1 s, twice.
    let mut s = Read::default();
    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(3500)).await;
        read_for(&mut slow, Duration::from_millis(1000), &mut s).await;
    }
    let fast = fast_reader.await.unwrap();
    // The stalled client read nothing for 9 s: closed after 5 s of no progress.
    let mut st = Read::default();
    read_for(&mut stalled, Duration::from_secs(5), &mut st).await;
    let addr = hub.addr.clone();
    let (_, metrics) = tokio::task::spawn_blocking(move || common::http_get(&addr, "/metrics"))
        .await
        .unwrap();
    assert!(hub.stop().success());

    assert!(
        st.close_code.is_none() || st.close_code == Some(4008),
        "{:?}",
        st.close_code
    );
    assert!(
        metric(&metrics, "mdhub_gateway_lagged_disconnects_total") >= 1,
        "the stalled client was closed"
    );
    assert!(metric(&metrics, "mdhub_gateway_conflated_total") >= 1);
    assert!(s.close_code.is_none(), "the slow client stays connected");

    assert!(
        assert_skips_match_the_log(dir.path(), &s.data) > 0,
        "the slow client was conflated"
    );

    // The fast client: exactly the log, nothing skipped.
    assert!(fast.data.iter().all(|d| d.skipped == 0));
    for ((name, topic), got) in streams(&fast.data) {
        let sym = name.split_once('@').unwrap().0;
        let log = log_records(dir.path(), topic, sym);
        let got: Vec<(u64, &Event)> = got
            .iter()
            .filter(|d| d.kind == Kind::Update)
            .map(|d| (d.pos.offset, &d.event))
            .collect();
        if !got.is_empty() {
            assert_exactly_per_venue(&log, &got, &format!("fast client {name} {topic}"));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_rate_ms_sends_the_latest_at_most_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(dir.path(), &["--sim-rate", "4000", "--seed", "8"], &[]);
    hub.wait_published(1_000);
    let mut ws = connect_small(&hub.addr).await;
    let bad = json!({"action":"subscribe","symbols":["AAPL"],"max_rate_ms":0,"id":1});
    ws.send(Message::text(bad.to_string())).await.unwrap();
    let sub = json!({"action":"subscribe","symbols":["AAPL","BTC-USDT"],"max_rate_ms":250});
    ws.send(Message::text(sub.to_string())).await.unwrap();
    let mut r = Read::default();
    let mut texts = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    while let Ok(Some(Ok(Message::Text(t)))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Ok(Frame::Data(d)) = decode(t.as_str()) {
            r.data.push(d);
        } else {
            texts.push(t.to_string());
        }
    }
    assert!(hub.stop().success());
    assert!(
        texts[1].contains(r#""code":"bad_request""#) && texts[1].contains("max_rate_ms"),
        "{texts:?}"
    );
    let per_stream = streams(&r.data);
    assert_eq!(
        per_stream.len(),
        6,
        "AAPL and BTC-USDT (on two venues) × quotes and trades"
    );
    for ((sym, topic), got) in &per_stream {
        // A snapshot, then at most one update per 250 ms over 2 s.
        let updates = got.iter().filter(|d| d.kind == Kind::Update).count();
        assert!(
            updates <= 9,
            "{sym} {topic}: {updates} updates in 2 s at 250 ms"
        );
    }
    assert!(
        assert_skips_match_the_log(dir.path(), &r.data) > 100,
        "the rest was skipped, and counted"
    );
}
