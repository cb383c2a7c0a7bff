//! `mdhub_client` against the real binary: gateways killed, frozen, wiped and
//! replaced under a live client, and every update it hands the application
//! checked against the log — exactly once, in order.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::Hub;
use common::log::{assert_exactly_per_venue, log_records};
use mdhub_client::{Client, ClientConfig, ClientEvent, Data, Kind};
use mdhub_types::protocol::{ErrorCode, ResetReason};
use mdhub_types::{Event, Topic};

const FAST_HEARTBEAT: [(&str, &str); 2] = [
    ("MDHUB_GATEWAY__HEARTBEAT_MS", "300"),
    ("MDHUB_GATEWAY__CLIENT_TIMEOUT_MS", "1000"),
];

/// A loopback address with a free port, to restart a hub on the same one.
fn free_addr() -> String {
    format!("127.0.0.1:{}", common::free_port())
}

/// `mdhub run` on `addr` with its data in `dir`.
fn run_on(dir: &Path, addr: &str) -> Hub {
    let d = dir.to_str().unwrap();
    let args = [
        "run",
        "--listen",
        addr,
        "--data-dir",
        d,
        "--sim-rate",
        "2000",
        "--seed",
        "5",
    ];
    let hub = Hub::start_role(dir, &args, &FAST_HEARTBEAT);
    // Let the simulator publish every symbol once: a hub refuses symbols it
    // has never seen.
    hub.wait_published(600);
    hub
}

fn config(url: String) -> ClientConfig {
    let mut c = ClientConfig::new(url);
    c.backoff_base = Duration::from_millis(50);
    c.backoff_cap = Duration::from_millis(400);
    c.connect_timeout = Duration::from_secs(1);
    c
}

/// Everything a client reported.
#[derive(Debug, Default)]
struct Seen {
    data: Vec<Data>,
    connects: Vec<ClientEvent>,
    /// How many data events came before each `Connected`.
    data_at_connect: Vec<usize>,
    disconnects: Vec<String>,
    resets: Vec<(String, Topic, ResetReason)>,
    rejected: Vec<(ErrorCode, Vec<String>)>,
}

impl Seen {
    /// Take the client's events for `dur`.
    async fn take(&mut self, client: &mut Client, dur: Duration) {
        let deadline = tokio::time::Instant::now() + dur;
        while let Ok(Some(ev)) = tokio::time::timeout_at(deadline, client.next()).await {
            match ev {
                ClientEvent::Data(d) => self.data.push(d),
                ClientEvent::Disconnected { reason, .. } => self.disconnects.push(reason),
                ClientEvent::Reset {
                    symbol,
                    channel,
                    reason,
                } => self.resets.push((symbol, channel, reason)),
                ClientEvent::Rejected { code, symbols, .. } => self.rejected.push((code, symbols)),
                c @ ClientEvent::Connected { .. } => {
                    self.connects.push(c);
                    self.data_at_connect.push(self.data.len());
                }
                _ => {}
            }
        }
    }

    /// Deliveries per (symbol, channel), in order.
    fn streams(&self) -> BTreeMap<(String, Topic), Vec<(u64, &Event)>> {
        let mut m: BTreeMap<(String, Topic), Vec<(u64, &Event)>> = BTreeMap::new();
        for d in &self.data {
            m.entry((d.event.symbol().to_string(), d.pos.topic))
                .or_default()
                .push((d.pos.offset, &d.event));
        }
        m
    }

    /// Every stream is exactly the embedded log's records over its range.
    fn assert_exactly_the_log(&self, dir: &Path, streams: usize) {
        let all = self.streams();
        assert_eq!(all.len(), streams, "streams delivered: {:?}", all.keys());
        for ((sym, topic), got) in all {
            let log = log_records(dir, topic, &sym);
            assert_exactly_per_venue(&log, &got, &format!("{sym} {topic}"));
        }
    }

    fn updates_since(&self, n: usize) -> usize {
        self.data[n..]
            .iter()
            .filter(|d| d.kind == Kind::Update)
            .count()
    }
}

fn signal(hub: &Hub, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &hub.child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success(), "kill {sig}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resumes_exactly_once_across_a_killed_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut hub = run_on(dir.path(), &addr);
    let mut client = Client::connect(config(format!("ws://{addr}/v1/ws"))).unwrap();
    client.subscribe(["MSFT", "ETH-USDT"], &[]).await.unwrap();
    let mut seen = Seen::default();
    seen.take(&mut client, Duration::from_millis(1000)).await;
    let before = seen.data.len();
    assert!(before > 20, "data before the kill: {before}");

    // SIGKILL: no close frame, the socket just dies with the process.
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    seen.take(&mut client, Duration::from_millis(300)).await;
    let hub = run_on(dir.path(), &addr);
    seen.take(&mut client, Duration::from_millis(1500)).await;
    client.close().await;
    assert!(hub.stop().success());

    assert!(!seen.disconnects.is_empty(), "the client saw the kill");
    assert!(seen.connects.len() >= 2, "{:?}", seen.connects);
    let ClientEvent::Connected {
        resumed,
        epoch_changed,
        ..
    } = seen.connects.last().unwrap()
    else {
        unreachable!()
    };
    assert_eq!(*resumed, 4, "two symbols × quotes and trades resumed");
    assert!(!epoch_changed, "the restarted hub keeps its log");
    assert!(seen.updates_since(before) > 20, "updates after the restart");
    assert!(seen.resets.is_empty(), "{:?}", seen.resets);
    let snapshots = seen
        .data
        .iter()
        .filter(|d| d.kind == Kind::Snapshot)
        .count();
    assert!(
        snapshots <= 6,
        "snapshots (one per venue: ETH-USDT is on two) only on the first subscribe: {snapshots}"
    );
    seen.assert_exactly_the_log(dir.path(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_gateway_is_detected_by_heartbeats() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let hub = run_on(dir.path(), &addr);
    let mut client = Client::connect(config(format!("ws://{addr}/v1/ws"))).unwrap();
    client.subscribe(["AAPL"], &[Topic::Trades]).await.unwrap();
    let mut seen = Seen::default();
    seen.take(&mut client, Duration::from_millis(800)).await;

    // SIGSTOP: the TCP connection stays up but nothing comes through it.
    signal(&hub, "-STOP");
    seen.take(&mut client, Duration::from_millis(1500)).await;
    signal(&hub, "-CONT");
    let stalled = seen.disconnects.clone();
    seen.take(&mut client, Duration::from_millis(1500)).await;
    client.close().await;
    assert!(hub.stop().success());

    assert!(
        stalled
            .first()
            .is_some_and(|r| r.contains("nothing received for 600 ms")),
        "dead after two 300 ms heartbeats: {stalled:?}"
    );
    assert!(seen.connects.len() >= 2, "reconnected after SIGCONT");
    seen.assert_exactly_the_log(dir.path(), 1);
}

/// `SYMBOL@venue`: the SDK delivers that venue's frames (they name the
/// symbol), and resumes them across a restart from the symbol's position.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscription_to_one_venue_streams_and_resumes_that_venue() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let mut hub = run_on(dir.path(), &addr);
    let mut client = Client::connect(config(format!("ws://{addr}/v1/ws"))).unwrap();
    client.subscribe(["BTC-USDT@sim-dex"], &[]).await.unwrap();
    let mut seen = Seen::default();
    seen.take(&mut client, Duration::from_millis(1000)).await;
    let before = seen.data.len();
    hub.child.kill().unwrap();
    hub.child.wait().unwrap();
    let hub = run_on(dir.path(), &addr);
    seen.take(&mut client, Duration::from_millis(1500)).await;
    client.close().await;
    assert!(hub.stop().success());
    assert!(before > 5, "frames of sim-dex before the restart: {before}");
    assert!(seen.updates_since(before) > 5, "and after it");
    assert!(
        seen.data
            .iter()
            .all(|d| d.event.venue().as_str() == "sim-dex"),
        "one venue only"
    );
    assert!(seen.resets.is_empty(), "{:?}", seen.resets);
    seen.assert_exactly_the_log(dir.path(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_log_resets_every_stream_and_refusals_are_reported() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let hub = run_on(dir.path(), &addr);
    let mut client = Client::connect(config(format!("ws://{addr}/v1/ws"))).unwrap();
    let req = client
        .subscribe(["AAPL", "NOSUCH"], &[Topic::Quotes])
        .await
        .unwrap();
    let mut seen = Seen::default();
    seen.take(&mut client, Duration::from_millis(800)).await;
    assert_eq!(
        seen.rejected,
        vec![(ErrorCode::UnknownSymbol, vec!["NOSUCH".to_string()])],
        "request {req:?}"
    );
    assert!(hub.stop().success());

    // A new, empty log on the same address: a new epoch.
    let fresh = tempfile::tempdir().unwrap();
    let hub = run_on(fresh.path(), &addr);
    seen.take(&mut client, Duration::from_millis(2500)).await;
    client.close().await;
    assert!(hub.stop().success());

    let ClientEvent::Connected { epoch_changed, .. } = seen.connects.last().unwrap() else {
        unreachable!()
    };
    assert!(epoch_changed, "{:?}", seen.connects);
    assert_eq!(
        seen.resets,
        vec![("AAPL".to_string(), Topic::Quotes, ResetReason::EpochChanged)]
    );
    assert_eq!(seen.rejected.len(), 1, "NOSUCH is not asked for again");
    let after = &seen.data[*seen.data_at_connect.last().unwrap()..];
    assert_eq!(
        after[0].kind,
        Kind::Snapshot,
        "a fresh snapshot after the reset"
    );
    assert!(after.len() > 5 && after.iter().all(|d| d.event.symbol().as_str() == "AAPL"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_fails_over_between_gateways_of_one_kafka_log() {
    use common::kafka::{as_refs, kafka_env, kafka_records, prefix};
    let dir = tempfile::tempdir().unwrap();
    let p = prefix();
    let env = kafka_env(&p);
    let ingest = Hub::start_role(
        dir.path(),
        &["ingest", "--sim-rate", "1000", "--seed", "9"],
        &as_refs(&env),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let serve = ["serve", "--listen", "127.0.0.1:0"];
    let mut a = Hub::start_role(dir.path(), &serve, &as_refs(&env));
    let b = Hub::start_role(dir.path(), &serve, &as_refs(&env));
    let urls = [a.ws_url(), b.ws_url()];
    let mut cfg = config(String::new());
    cfg.urls = urls.to_vec();
    let mut client = Client::connect(cfg).unwrap();
    client.subscribe(["MSFT", "BTC-USDT"], &[]).await.unwrap();
    let mut seen = Seen::default();
    seen.take(&mut client, Duration::from_millis(1500)).await;
    let before = seen.data.len();

    a.child.kill().unwrap();
    a.child.wait().unwrap();
    seen.take(&mut client, Duration::from_millis(2500)).await;
    client.close().await;
    assert!(ingest.stop().success());
    drop(b);

    let ClientEvent::Connected { url, resumed, .. } = seen.connects.last().unwrap() else {
        unreachable!()
    };
    assert_eq!(url, &urls[1], "moved to the other gateway");
    assert_eq!(*resumed, 4);
    assert!(seen.updates_since(before) > 10);
    for ((sym, topic), got) in seen.streams() {
        let log = kafka_records(&p, topic, &sym).await;
        assert_exactly_per_venue(&log, &got, &format!("{sym} {topic} (Kafka)"));
    }
}
