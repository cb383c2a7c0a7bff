//! Redis as the shared latest-price cache, end to end: ingest with its cache
//! writer, gateways snapshotting from Redis and resuming across instances on
//! Kafka; a Redis that stops and comes back mid-stream; the Procfile's
//! commands. Needs `$MDHUB_TEST_KAFKA` and `$MDHUB_TEST_REDIS` (scripts/test.sh).

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::kafka::{as_refs, broker, kafka_env, kafka_records, prefix, subscribe_and_collect};
use common::{Hub, free_port, http_get, metric};
use futures_util::{SinkExt, StreamExt};
use mdhub_cache::{Cache, RedisCache, RedisConfig};
use mdhub_types::protocol::DataFrame;
use mdhub_types::{Event, Position, Symbol, Topic};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

fn redis_url() -> String {
    std::env::var("MDHUB_TEST_REDIS").unwrap_or_else(|_| {
        panic!(
            "MDHUB_TEST_REDIS is not set: run scripts/test.sh, which checks Redis on 127.0.0.1:6379"
        )
    })
}

async fn redis_cache(url: &str, prefix: &str) -> RedisCache {
    let cfg = RedisConfig {
        prefix: prefix.to_string(),
        ..RedisConfig::new(url)
    };
    RedisCache::connect(&cfg).await.expect("connect to Redis")
}

/// Ingest (with its cache writer) fills Redis; a gateway that has seen none of
/// the stream snapshots from Redis and replays the rest from the log; the
/// client then resumes on a second gateway — every frame matches Kafka, with
/// no gap and no duplicate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_from_redis_then_resume_on_another_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let p = prefix();
    let redis_prefix = format!("{p}mdhub:");
    let mut env = kafka_env(&p);
    env.push(("REDIS_URL", redis_url()));
    env.push(("MDHUB_REDIS__PREFIX", redis_prefix.clone()));
    let ingest = Hub::start_role(
        dir.path(),
        &["ingest", "--sim-rate", "1000", "--seed", "5"],
        &as_refs(&env),
    );
    let redis = redis_cache(&redis_url(), &redis_prefix).await;
    let symbols = ["MSFT", "BTC-USDT"];
    let wanted: Vec<Symbol> = symbols.iter().map(|s| Symbol::new(s).unwrap()).collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = redis.get_many(&wanted).await.unwrap();
        if got.iter().all(|venues| {
            !venues.is_empty()
                && venues
                    .iter()
                    .all(|l| l.quote.is_some() && l.trade.is_some())
        }) {
            break;
        }
        assert!(Instant::now() < deadline, "the cache writer fills Redis");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(ingest.stop().success());
    // Nothing writes now: what Redis holds is what a snapshot must be.
    let in_redis = redis.get_many(&wanted).await.unwrap();

    // Gateways that read no history from the log: their own view is empty.
    let mut genv = env.clone();
    genv.push(("MDHUB_INGEST__CACHE_WARM_RECORDS", "0".into()));
    let a = Hub::start_role(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &as_refs(&genv),
    );
    let b = Hub::start_role(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &as_refs(&genv),
    );
    let (_, snap) = subscribe_and_collect(
        &a.ws_url(),
        json!({"action":"subscribe","symbols":symbols}),
        Duration::from_millis(1500),
    )
    .await;
    // A snapshot per venue (BTC-USDT is on two).
    let per_venue = wanted
        .iter()
        .zip(&in_redis)
        .flat_map(|(sym, venues)| venues.iter().map(move |l| (sym, l)));
    for (sym, latest) in per_venue {
        for (topic, entry) in [
            (Topic::Quotes, &latest.quote),
            (Topic::Trades, &latest.trade),
        ] {
            let entry = entry.as_ref().unwrap();
            let venue = &latest.venue;
            let first = snap
                .iter()
                .find(|f| f.data.symbol() == sym && f.data.venue() == venue && f.channel == topic)
                .unwrap_or_else(|| panic!("no frame for {sym}@{venue} {topic}"));
            assert_eq!(
                first.kind, "snapshot",
                "{sym} {topic} starts with a snapshot"
            );
            assert_eq!(
                first.pos, entry.position,
                "{sym} {topic}: the snapshot is Redis's entry"
            );
            assert_eq!(first.data, entry.event);
        }
    }

    // New data; the client reads it on A, drops, and resumes on B.
    let ingest = Hub::start_role(
        dir.path(),
        &["ingest", "--sim-rate", "1000", "--seed", "6"],
        &as_refs(&env),
    );
    let (epoch, live_a) = subscribe_and_collect(
        &a.ws_url(),
        json!({"action":"subscribe","symbols":symbols}),
        Duration::from_millis(2500),
    )
    .await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut last: BTreeMap<String, BTreeMap<String, Position>> = BTreeMap::new();
    for f in snap.iter().chain(&live_a) {
        last.entry(f.data.symbol().to_string())
            .or_default()
            .insert(f.channel.channel().to_string(), f.pos);
    }
    let (_, live_b) = subscribe_and_collect(
        &b.ws_url(),
        json!({"action":"subscribe","symbols":symbols,"resume":{"epoch":epoch,"positions":last}}),
        Duration::from_millis(1500),
    )
    .await;
    assert!(
        live_b.iter().all(|f| f.kind == "update"),
        "a resume sends no snapshot"
    );
    assert!(ingest.stop().success());
    drop((a, b));

    // The first session (snapshot + replay) and the resumed one, each equal
    // to Kafka's records over its range, the second continuing the first.
    // Per venue stream: a venue's frames are that venue's records.
    type Stream = (String, String, Topic);
    let key = |f: &DataFrame| {
        (
            f.data.symbol().to_string(),
            f.data.venue().to_string(),
            f.channel,
        )
    };
    let mut first: HashMap<Stream, Vec<&DataFrame>> = HashMap::new();
    for f in &snap {
        first.entry(key(f)).or_default().push(f);
    }
    let mut resumed: HashMap<Stream, Vec<&DataFrame>> = HashMap::new();
    for f in &live_b {
        resumed.entry(key(f)).or_default().push(f);
    }
    assert_eq!(first.len(), 6, "MSFT on one venue, BTC-USDT on two");
    for ((sym, venue, topic), frames) in first {
        let log: BTreeMap<u64, Event> = kafka_records(&p, topic, &sym)
            .await
            .into_iter()
            .filter(|(_, e)| e.venue().as_str() == venue)
            .collect();
        let check = |frames: &[&DataFrame]| {
            let (lo, hi) = (frames[0].pos.offset, frames[frames.len() - 1].pos.offset);
            let want: Vec<(u64, &Event)> = log.range(lo..=hi).map(|(o, e)| (*o, e)).collect();
            let got: Vec<(u64, &Event)> = frames.iter().map(|f| (f.pos.offset, &f.data)).collect();
            assert!(
                got == want,
                "{sym}@{venue} {topic}: {} frames vs {} records in {lo}..={hi}",
                got.len(),
                want.len()
            );
        };
        check(&frames);
        if let Some(r) = resumed.get(&(sym.clone(), venue.clone(), topic)) {
            check(r);
            let resumed_from = last[&sym][topic.channel()].offset;
            let next = log.range(resumed_from + 1..).next().map(|(o, _)| *o);
            assert_eq!(
                Some(r[0].pos.offset),
                next,
                "{sym}@{venue} {topic}: the resume continues at the venue's next record"
            );
        }
    }
    assert!(!resumed.is_empty(), "gateway B streams after the resume");
    redis.clear().await.unwrap();
}

/// A redis-server this test owns on its own port.
struct OwnRedis {
    child: Child,
}

impl OwnRedis {
    fn start(port: u16, dir: &Path) -> Self {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server (Debian package redis-server)");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not start on {port}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        OwnRedis { child }
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn readyz(addr: &str) -> (u16, Value) {
    let (code, body) = http_get(addr, "/readyz");
    (code, serde_json::from_str(&body).unwrap())
}

async fn first_snapshot(url: &str, symbol: &str) -> Option<DataFrame> {
    let (_, frames) = subscribe_and_collect(
        url,
        json!({"action":"subscribe","symbols":[symbol]}),
        Duration::from_millis(800),
    )
    .await;
    frames.into_iter().find(|f| f.kind == "snapshot")
}

/// Redis stops mid-stream and comes back empty: streaming never stops,
/// snapshots come from the gateway's own view meanwhile, `/readyz` says
/// degraded, and everything recovers by itself.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_mid_stream() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = OwnRedis::start(port, redis_dir.path());
    let url = format!("redis://127.0.0.1:{port}");
    let hub = Hub::start(
        dir.path(),
        &["--sim-rate", "2000", "--seed", "9"],
        &[("REDIS_URL", &url), ("MDHUB_REDIS__OP_TIMEOUT_MS", "300")],
    );
    let cache = redis_cache(&url, "mdhub:").await;
    let aapl = Symbol::new("AAPL").unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while cache.get(&aapl).await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the cache writer fills Redis");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (code, r) = readyz(&hub.addr);
    assert_eq!((code, &r["degraded"]), (200, &json!(false)), "{r}");

    // A client streams across the whole outage.
    let (mut ws, _) = tokio_tungstenite::connect_async(hub.ws_url())
        .await
        .unwrap();
    ws.send(Message::text(
        json!({"action":"subscribe","symbols":["AAPL"]}).to_string(),
    ))
    .await
    .unwrap();
    let (stamp_tx, mut stamps) = tokio::sync::mpsc::unbounded_channel::<(Instant, Position)>();
    let reader = tokio::spawn(async move {
        while let Some(Ok(Message::Text(t))) = ws.next().await {
            let v: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_ne!(v["type"], "reset", "no reset during a Redis outage: {v}");
            if v["type"] == "update" {
                let pos: Position = v["pos"].as_str().unwrap().parse().unwrap();
                let _ = stamp_tx.send((Instant::now(), pos));
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    redis.stop();
    let down_at = Instant::now();
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (code, r) = readyz(&hub.addr);
    assert_eq!(code, 200, "a degraded gateway still serves: {r}");
    assert_eq!(r["degraded"], json!(true), "{r}");
    let snap = first_snapshot(&hub.ws_url(), "AAPL").await;
    assert!(
        snap.is_some(),
        "snapshots come from the gateway's own view while Redis is down"
    );
    let (code, body) = http_get(&hub.addr, "/v1/snapshot?symbols=AAPL");
    assert_eq!(code, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let redis = OwnRedis::start(port, redis_dir.path());
    let up_at = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (code, r) = readyz(&hub.addr);
        let refilled = cache.get(&aapl).await.is_ok_and(|l| !l.is_empty());
        if code == 200 && r["degraded"] == json!(false) && refilled {
            break;
        }
        assert!(Instant::now() < deadline, "recovers by itself: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        first_snapshot(&hub.ws_url(), "AAPL").await.is_some(),
        "snapshots after recovery"
    );
    assert!(
        metric(
            &hub.addr,
            "mdhub_consumer_errors_total{group=\"mdhub-cache\"}"
        ) > 0,
        "the writer saw the outage"
    );
    assert!(
        metric(
            &hub.addr,
            "mdhub_consumer_persisted_total{group=\"mdhub-cache\"}"
        ) > 0
    );

    let status = hub.stop();
    assert!(status.success(), "clean exit after the outage: {status}");
    reader.abort();
    let mut during = 0;
    let mut after = 0;
    let mut prev: HashMap<Topic, u64> = HashMap::new();
    while let Ok((at, pos)) = stamps.try_recv() {
        if at > down_at && at < up_at {
            during += 1;
        }
        if at > up_at {
            after += 1;
        }
        if let Some(p) = prev.insert(pos.topic, pos.offset) {
            assert!(pos.offset > p, "offsets only grow: {p} then {pos}");
        }
    }
    assert!(during > 0, "updates kept flowing while Redis was down");
    assert!(after > 0, "and after it came back");
    drop(redis);
}

/// Every Procfile process starts with Heroku's variables and stops cleanly on
/// SIGTERM; `web` binds `$PORT` on all interfaces.
#[test]
fn procfile_processes_start_and_stop() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let procfile =
        std::fs::read_to_string(root.join("Procfile")).expect("Procfile at the repository root");
    let dir = tempfile::tempdir().unwrap();
    let p = prefix();
    let mut seen = Vec::new();
    for line in procfile
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (name, command) = line.split_once(':').expect("`name: command`");
        let command = command.trim();
        assert!(
            command.starts_with("./target/release/mdhub "),
            "{name}: runs the release binary the buildpack builds: {command}"
        );
        let command = command.replacen("./target/release/mdhub", env!("CARGO_BIN_EXE_mdhub"), 1);
        let port = free_port();
        let mut cmd = Command::new("bash");
        for (k, _) in std::env::vars() {
            if k.starts_with("MDHUB_") || k == "PORT" {
                cmd.env_remove(k);
            }
        }
        let mut child = cmd
            .arg("-c")
            .arg(format!("exec {command}"))
            .env("PORT", port.to_string())
            .env("KAFKA_URL", format!("kafka://{}", broker()))
            .env("KAFKA_PREFIX", &p)
            .env("MDHUB_KAFKA__PROPERTIES__BATCH.NUM.MESSAGES", "1")
            .env("REDIS_URL", redis_url())
            .env("MDHUB_REDIS__PREFIX", format!("{p}mdhub:"))
            // app.json generates this: web binds a public address, where
            // the gateway requires credentials.
            .env(
                "MDHUB_GATEWAY__AUTH__JWT_SECRET",
                "procfile-test-secret-of-at-least-32-bytes",
            )
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut out = std::io::BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        std::io::BufRead::read_line(&mut out, &mut first).unwrap();
        assert!(first.starts_with("mdhub running: "), "{name}: {first:?}");
        if name == "web" {
            let (code, _) = http_get(&format!("127.0.0.1:{port}"), "/healthz");
            assert_eq!(code, 200, "web answers on $PORT");
            let any = std::net::TcpListener::bind(("0.0.0.0", port));
            assert!(any.is_err(), "web binds 0.0.0.0:$PORT");
        }
        std::thread::sleep(Duration::from_secs(2));
        assert!(child.try_wait().unwrap().is_none(), "{name} keeps running");
        common::sigterm(&child);
        let status = common::wait_exit(&mut child, Duration::from_secs(30));
        assert!(
            status.success(),
            "{name} exits cleanly on SIGTERM: {status}"
        );
        seen.push(name.to_string());
    }
    assert!(
        seen.contains(&"web".to_string()) && seen.contains(&"worker".to_string()),
        "{seen:?}"
    );
}

/// The cache writer's lag: measured apart from the writer, so it rises while
/// the writer is stuck on a Redis that is stopped (SIGSTOP: connections
/// hang, nothing answers), and falls back once Redis runs again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_lag_rises_while_redis_is_stopped_and_falls_after() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let redis_dir = tempfile::tempdir().unwrap();
    let redis = OwnRedis::start(port, redis_dir.path());
    let url = format!("redis://127.0.0.1:{port}");
    let hub = Hub::start(
        dir.path(),
        &["--sim-rate", "1000", "--seed", "5"],
        &[
            ("REDIS_URL", &url),
            ("MDHUB_REDIS__OP_TIMEOUT_MS", "300"),
            ("MDHUB_INGEST__STATUS_INTERVAL_SECS", "0"),
        ],
    );
    let lag = || {
        metric(
            &hub.addr,
            "mdhub_consumer_lag_records{group=\"mdhub-cache\"}",
        )
    };
    let persisted = || {
        metric(
            &hub.addr,
            "mdhub_consumer_persisted_total{group=\"mdhub-cache\"}",
        )
    };
    let signal = |sig: &str| {
        let ok = Command::new("kill")
            .args([sig, &redis.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    };
    let until = |secs: u64, what: &str, f: &dyn Fn() -> bool| {
        common::wait_until(secs, what, || (f(), lag()));
    };
    until(20, "the writer writes", &|| persisted() > 0);
    until(10, "a small lag while the writer keeps up", &|| lag() < 200);

    signal("-STOP");
    // 1,000 events/s into the log: two seconds of them at least.
    until(20, "the lag rises while Redis is stopped", &|| {
        lag() > 2_000
    });
    let stopped_lag = lag();
    signal("-CONT");
    until(30, "the lag falls back once Redis answers", &|| lag() < 200);
    assert!(stopped_lag > 2_000);
    let status: Value = serde_json::from_str(&http_get(&hub.addr, "/v1/status").1).unwrap();
    let writer = status["stages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "cache-writer")
        .cloned()
        .unwrap();
    assert!(writer["failures"].as_u64().unwrap() > 0, "{writer}");
    assert!(hub.stop().success());
    drop(redis);
}
