//! The roles on a real Kafka-protocol broker (`$MDHUB_TEST_KAFKA`, started by
//! scripts/test.sh): `mdhub run` with KAFKA_URL, `mdhub ingest` + two
//! `mdhub serve` with a client resuming across instances, and an independent
//! Kafka client reading what mdhub wrote.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::Hub;
use common::kafka::{as_refs, broker, kafka_env, kafka_records, prefix, subscribe_and_collect};
use common::log::assert_exactly_per_venue;
use mdhub_types::protocol::DataFrame;
use mdhub_types::{Event, Position, Topic};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_with_kafka_url_streams_to_websocket_clients() {
    let dir = tempfile::tempdir().unwrap();
    let p = prefix();
    let env = kafka_env(&p);
    let hub = Hub::start(dir.path(), &["--sim-rate", "1000"], &as_refs(&env));
    hub.wait_published(1_000);
    let (epoch, frames) = subscribe_and_collect(
        &hub.ws_url(),
        json!({"action":"subscribe","symbols":["AAPL"]}),
        Duration::from_millis(1500),
    )
    .await;
    assert!(
        epoch.starts_with("kafka"),
        "the epoch names the Kafka cluster: {epoch}"
    );
    assert!(
        frames.iter().filter(|f| f.kind == "update").count() > 5,
        "updates through the broker"
    );
    assert!(frames.iter().all(|f| f.data.symbol().as_str() == "AAPL"));
    let addr = hub.addr.clone();
    let (_, metrics) = tokio::task::spawn_blocking(move || common::http_get(&addr, "/metrics"))
        .await
        .unwrap();
    let delivered: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("mdhub_kafka_delivered_total "))
        .and_then(|v| v.parse().ok())
        .expect("mdhub_kafka_delivered_total in /metrics");
    assert!(delivered > 100, "delivery reports are counted: {delivered}");
    assert!(hub.stop().success());
    assert!(
        !dir.path().join("log").exists(),
        "with KAFKA_URL the embedded log is not used"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_and_two_gateways_resume_across_instances() {
    let dir = tempfile::tempdir().unwrap();
    let p = prefix();
    let env = kafka_env(&p);
    let ingest = Hub::start_role(
        dir.path(),
        &["ingest", "--sim-rate", "1000", "--seed", "3"],
        &as_refs(&env),
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let a = Hub::start_role(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &as_refs(&env),
    );
    let b = Hub::start_role(
        dir.path(),
        &["serve", "--listen", "127.0.0.1:0"],
        &as_refs(&env),
    );
    let symbols = ["MSFT", "BTC-USDT"];
    let (epoch, first) = subscribe_and_collect(
        &a.ws_url(),
        json!({"action":"subscribe","symbols":symbols}),
        Duration::from_millis(1200),
    )
    .await;
    assert!(!first.is_empty(), "gateway A streams");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let mut last: BTreeMap<String, BTreeMap<String, Position>> = BTreeMap::new();
    for f in &first {
        last.entry(f.data.symbol().to_string())
            .or_default()
            .insert(f.channel.channel().to_string(), f.pos);
    }
    let resume = json!({"epoch": epoch, "positions": last});
    let (epoch_b, second) = subscribe_and_collect(
        &b.ws_url(),
        json!({"action":"subscribe","symbols":symbols,"resume":resume}),
        Duration::from_millis(1500),
    )
    .await;
    assert_eq!(epoch, epoch_b, "both gateways report the same epoch");
    assert!(
        second.iter().all(|f| f.kind == "update"),
        "a resume sends no snapshot"
    );
    assert!(ingest.stop().success());
    drop((a, b));
    let mut streams: HashMap<(String, Topic), Vec<&DataFrame>> = HashMap::new();
    for f in first.iter().chain(&second) {
        streams
            .entry((f.data.symbol().to_string(), f.channel))
            .or_default()
            .push(f);
    }
    assert_eq!(streams.len(), 4);
    for ((sym, topic), frames) in streams {
        let log = kafka_records(&p, topic, &sym).await;
        let got: Vec<(u64, &Event)> = frames.iter().map(|f| (f.pos.offset, &f.data)).collect();
        assert_exactly_per_venue(&log, &got, &format!("{sym} {topic} in Kafka"));
    }
}

const PY_READER: &str = r#"
import sys, json, io
from kafka import KafkaConsumer, TopicPartition
from kafka.partitioner.default import murmur2
import jsonschema
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form
broker, prefix, schemas = sys.argv[1], sys.argv[2], sys.argv[3]
validator = jsonschema.Draft202012Validator(json.load(open(schemas + "/event.schema.json")))
avro = {}
for name in ("quote", "trade"):
    s = parse_schema(json.load(open(schemas + "/" + name + ".avsc")))
    avro[fingerprint(to_parsing_canonical_form(s), "CRC-64-AVRO")] = s
c = KafkaConsumer(bootstrap_servers=broker, enable_auto_commit=False, consumer_timeout_ms=5000)
n = 0
for topic in (prefix + "price-quotes", prefix + "price-trades"):
    parts = sorted(c.partitions_for_topic(topic))
    tps = [TopicPartition(topic, p) for p in parts]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    for m in c:
        key = m.key.decode()
        assert m.partition == (murmur2(m.key) & 0x7fffffff) % len(parts), (key, m.partition)
        headers = dict(m.headers)
        if headers["mdhub-encoding"] == b"json":
            v = json.loads(m.value)
            validator.validate(v)
        else:
            assert m.value[:2] == b"\xc3\x01"
            v = schemaless_reader(io.BytesIO(m.value[10:]), avro[m.value[2:10].hex()])
        assert v["symbol"] == key, (v["symbol"], key)
        n += 1
print(n)
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_client_reads_what_mdhub_wrote() {
    for encoding in ["json", "avro"] {
        let dir = tempfile::tempdir().unwrap();
        let p = prefix();
        let mut env = kafka_env(&p);
        env.push(("MDHUB_BUS__ENCODING", encoding.to_string()));
        let ingest = Hub::start_role(
            dir.path(),
            &[
                "ingest",
                "--sim-rate",
                "500",
                "--seed",
                "5",
                "--exit-after",
                "2",
            ],
            &as_refs(&env),
        );
        let mut ingest = ingest;
        let status = tokio::task::spawn_blocking(move || {
            common::wait_exit(&mut ingest.child, Duration::from_secs(30))
        })
        .await
        .unwrap();
        assert!(status.success());
        let python = std::env::var("MDHUB_TEST_PYTHON").unwrap_or_else(|_| "python3".into());
        let schemas = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");
        let py = Command::new(&python)
            .args(["-c", PY_READER, &broker(), &p, schemas])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("python (run scripts/test.sh, which creates .venv)");
        let out = py.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "kafka-python reader failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let n: u64 = String::from_utf8(out.stdout)
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            n > 300,
            "{encoding}: the independent reader saw only {n} records"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_without_a_broker_fails_with_a_clear_error() {
    let out = common::mdhub()
        .args(["serve", "--listen", "127.0.0.1:0", "--exit-after", "1"])
        .env("KAFKA_URL", "kafka://127.0.0.1:1")
        .env("MDHUB_KAFKA__PROPERTIES__SOCKET.TIMEOUT.MS", "2000")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("Kafka"), "{err}");
}
