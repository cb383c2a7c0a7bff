//! The Kafka bus against the conformance suite: on librdkafka's in-process
//! mock cluster, and on a real Kafka-protocol broker (`$MDHUB_TEST_KAFKA`,
//! started by scripts/test.sh).

use std::sync::Arc;

use mdhub_bus::{Bus, KafkaBus, KafkaConfig, conformance};
use mdhub_types::{Encoding, Timestamp};
use rdkafka::mocking::MockCluster;

mod broker;

fn unique_prefix() -> String {
    format!(
        "t{}.",
        Timestamp::now().as_nanos() as u64 % 1_000_000_000_000
    )
}

/// tansu 0.6.0 answers ListOffsets(latest) with the last *batch's* base
/// offset + 1, so watermarks are only right with one record per batch.
fn one_record_per_batch() -> std::collections::BTreeMap<String, String> {
    [("batch.num.messages".to_string(), "1".to_string())].into()
}

async fn bus(url: &str, prefix: &str, encoding: Encoding) -> Arc<KafkaBus> {
    let cfg = KafkaConfig {
        url: url.to_string(),
        prefix: prefix.to_string(),
        partitions: 4,
        properties: one_record_per_batch(),
        ..KafkaConfig::default()
    };
    Arc::new(
        KafkaBus::connect(cfg, encoding)
            .await
            .expect("connect to Kafka"),
    )
}

/// The broker scripts/test.sh starts; a missing broker is a failure, not a skip.
fn real_broker() -> String {
    std::env::var("MDHUB_TEST_KAFKA").unwrap_or_else(|_| {
        panic!("MDHUB_TEST_KAFKA is not set: run scripts/test.sh, which installs and starts a Kafka-protocol broker (tansu)")
    })
}

/// A bus on librdkafka's in-process mock cluster (kept alive by the caller).
async fn mock_bus() -> (
    MockCluster<'static, rdkafka::producer::DefaultProducerContext>,
    Arc<KafkaBus>,
) {
    let cluster = MockCluster::new(1).expect("mock cluster");
    let prefix = unique_prefix();
    // The mock cluster has no CreateTopics; its own API creates them.
    for t in ["price-quotes", "price-trades", "feed-status"] {
        cluster
            .create_topic(&format!("{prefix}{t}"), 4, 1)
            .expect("mock topic");
    }
    let b = bus(&cluster.bootstrap_servers(), &prefix, Encoding::Json).await;
    (cluster, b)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_the_mock_cluster() {
    let (_cluster, b) = mock_bus().await;
    assert_eq!(b.partitions(mdhub_types::Topic::Quotes), 4);
    // The mock cluster answers ListOffsets-by-time with the end offset.
    conformance::run_except(b, &["time_start"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_real_broker_json() {
    let b = bus(&real_broker(), &unique_prefix(), Encoding::Json).await;
    conformance::run_all(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_real_broker_avro() {
    let b = bus(&real_broker(), &unique_prefix(), Encoding::Avro).await;
    conformance::run_all(b).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn existing_topics_are_verified_not_recreated() {
    let url = real_broker();
    let prefix = unique_prefix();
    let first = bus(&url, &prefix, Encoding::Json).await;
    let cfg = KafkaConfig {
        url,
        prefix,
        partitions: 12,
        create_topics: false,
        ..KafkaConfig::default()
    };
    let second = KafkaBus::connect(cfg, Encoding::Json)
        .await
        .expect("existing topics");
    assert_eq!(
        second.partitions(mdhub_types::Topic::Trades),
        first.partitions(mdhub_types::Topic::Trades)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_topics_without_creation_name_the_fix() {
    let cfg = KafkaConfig {
        url: real_broker(),
        prefix: unique_prefix(),
        create_topics: false,
        ..KafkaConfig::default()
    };
    let err = KafkaBus::connect(cfg, Encoding::Json)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("price-quotes") && err.contains("heroku kafka:topics:create"),
        "{err}"
    );
}

/// A broker outage mid-stream on librdkafka's mock cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_outage_loses_nothing() {
    let (cluster, b) = mock_bus().await;
    outage_loses_nothing(
        b,
        async || cluster.broker_down(1).expect("broker down"),
        async || cluster.broker_up(1).expect("broker up"),
    )
    .await;
}

/// The real broker goes away for ten seconds mid-stream and comes back:
/// every connection is reset and new ones are refused, then accepted again.
///
/// The outage is made by a gate in front of tansu rather than by stopping
/// tansu itself: tansu 0.6.0 keeps nothing across a restart with its memory
/// engine, and its durable sqlite engine panics on the first idempotent
/// produce after a restart ("more or less than one row" in
/// `idempotent_message_check`), which no client can ride out. What the
/// client sees is the same as a durable broker's restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_broker_restart_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (port, gate_port) = (broker::free_port(), broker::free_port());
    let _tansu = broker::Tansu::start(dir.path(), port, gate_port, "memory://tansu/");
    let gate = std::sync::Arc::new(tokio::sync::Mutex::new(
        broker::Gate::open(gate_port, port).await,
    ));
    let b = bus(
        &format!("kafka://127.0.0.1:{gate_port}"),
        &unique_prefix(),
        Encoding::Json,
    )
    .await;
    outage_loses_nothing(
        b,
        async || gate.lock().await.close().await,
        async || gate.lock().await.reopen().await,
    )
    .await;
}

/// Publishing blocks and retries while the broker is away; nothing is lost
/// or duplicated, and a consumer ends with every trade exactly once
/// (counted by venue and trade id).
async fn outage_loses_nothing(b: Arc<KafkaBus>, down: impl AsyncFnOnce(), up: impl AsyncFnOnce()) {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use mdhub_bus::{Start, SubscribeSpec};
    use mdhub_types::{Event, Symbol, Topic};

    let mut reader = b
        .subscribe(SubscribeSpec::Direct {
            topics: vec![Topic::Trades],
            start: Start::Latest,
        })
        .await
        .expect("subscribe");
    let symbols: Vec<Symbol> = ["AAPL", "BTC-USDT", "EUR-USD"]
        .iter()
        .map(|s| Symbol::new(s).unwrap())
        .collect();
    let producer = {
        let b = b.clone();
        let symbols = symbols.clone();
        tokio::spawn(async move {
            let mut sent = 0i64;
            for round in 0..60i64 {
                let batch: Vec<Event> = (0..10)
                    .map(|k| conformance::trade(&symbols[(k % 3) as usize], round * 10 + k))
                    .collect();
                // What the ingest stage does: retry a failed batch until it lands.
                loop {
                    match b.publish(&batch).await {
                        Ok(_) => break,
                        Err(e) => {
                            eprintln!("publish round {round}: {e} (retrying)");
                            assert!(e.is_retryable(), "an outage is retryable: {e}");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                }
                sent += 10;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            sent
        })
    };
    tokio::time::sleep(Duration::from_millis(700)).await;
    down().await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    up().await;
    let sent = tokio::time::timeout(Duration::from_secs(120), producer)
        .await
        .expect("producer finishes")
        .unwrap();
    let mut seen: BTreeMap<(String, String), u32> = BTreeMap::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while seen.len() < sent as usize && tokio::time::Instant::now() < deadline {
        for d in reader
            .next_batch(1000, Duration::from_millis(500))
            .await
            .expect("read")
        {
            let Event::Trade(t) = d.decode().unwrap() else {
                panic!("trade expected")
            };
            *seen
                .entry((t.venue.to_string(), t.trade_id.unwrap()))
                .or_default() += 1;
        }
    }
    assert_eq!(seen.len() as i64, sent, "every trade arrives");
    assert!(seen.values().all(|&n| n == 1), "no trade arrives twice");
}

/// Heroku's variables with real, freshly generated PEMs (two CAs, a client
/// certificate and key) give a client configuration librdkafka accepts —
/// it parses every certificate and the key when the client is created — and
/// a broken PEM is refused.
#[test]
fn heroku_tls_variables_with_generated_pems_build_a_client() {
    use std::collections::HashMap;
    use std::process::Command;

    use rdkafka::producer::FutureProducer;

    let dir = tempfile::tempdir().unwrap();
    let generate = |name: &str| {
        let key = dir.path().join(format!("{name}.key"));
        let crt = dir.path().join(format!("{name}.pem"));
        let ok = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj",
            ])
            .arg(format!("/CN={name}"))
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&crt)
            .output()
            .expect("openssl (Debian package openssl) generates the test certificates");
        assert!(
            ok.status.success(),
            "{}",
            String::from_utf8_lossy(&ok.stderr)
        );
        (
            std::fs::read_to_string(crt).unwrap(),
            std::fs::read_to_string(key).unwrap(),
        )
    };
    let (ca1, _) = generate("ca-old");
    let (ca2, _) = generate("ca-new");
    let (client, client_key) = generate("client");
    let env: HashMap<String, String> = [
        (
            "KAFKA_URL",
            "kafka+ssl://127.0.0.1:9096,kafka+ssl://127.0.0.1:9097".to_string(),
        ),
        ("KAFKA_TRUSTED_CERT", format!("{ca1}{ca2}")),
        ("KAFKA_CLIENT_CERT", client),
        ("KAFKA_CLIENT_CERT_KEY", client_key.clone()),
        ("KAFKA_PREFIX", "tenant-7.".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    let mut cfg = KafkaConfig::default();
    cfg.apply_env(&env);
    let producer: Result<FutureProducer, _> = cfg.producer_config().unwrap().create();
    assert!(
        producer.is_ok(),
        "librdkafka accepts the generated PEMs: {:?}",
        producer.err()
    );

    let mut broken = cfg.clone();
    // Keep the PEM armour, corrupt the base64 body.
    let mut lines: Vec<String> = client_key.lines().map(str::to_string).collect();
    lines[1] = "!".repeat(lines[1].len());
    broken.client_cert_key = Some(lines.join("\n"));
    let producer: Result<FutureProducer, _> = broken.producer_config().unwrap().create();
    assert!(
        producer.is_err(),
        "a corrupted key must be refused at start-up"
    );
}

/// A real TLS connection in Heroku's shape: the broker (tansu behind a TLS
/// front, as tansu 0.6.0 itself does not terminate TLS) presents a
/// certificate for a name that is not the host dialled, signed by a private
/// CA, and requires a client certificate. With Heroku's variables — two CAs
/// in `KAFKA_TRUSTED_CERT`, client certificate and key — the bus passes the
/// conformance suite; trusting the wrong CA, or sending no client
/// certificate, fails to connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heroku_tls_to_a_real_broker() {
    use std::collections::HashMap;

    let dir = tempfile::tempdir().unwrap();
    let pki = broker::Pki::new(dir.path());
    let ca = pki.ca("heroku-ca");
    let other_ca = pki.ca("retired-ca");
    let (server, server_key) = pki.issue("heroku-ca", "broker", "kafka-1.heroku.invalid");
    let (client, client_key) = pki.issue("heroku-ca", "client", "mdhub-app");

    let (plain, tls) = (broker::free_port(), broker::free_port());
    let _tansu = broker::Tansu::start(dir.path(), plain, tls, "memory://tansu/");
    let _front = broker::TlsFront::start(dir.path(), tls, plain, &server, &server_key, &ca);

    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap();
    let env = |trusted: String, with_client: bool| {
        let mut env: HashMap<String, String> = HashMap::new();
        env.insert("KAFKA_URL".into(), format!("kafka+ssl://127.0.0.1:{tls}"));
        env.insert("KAFKA_TRUSTED_CERT".into(), trusted);
        env.insert("KAFKA_PREFIX".into(), unique_prefix());
        if with_client {
            env.insert("KAFKA_CLIENT_CERT".into(), read(&client));
            env.insert("KAFKA_CLIENT_CERT_KEY".into(), read(&client_key));
        }
        let mut cfg = KafkaConfig {
            partitions: 4,
            properties: one_record_per_batch(),
            ..KafkaConfig::default()
        };
        cfg.apply_env(&env);
        cfg
    };

    let good = env(format!("{}{}", read(&other_ca), read(&ca)), true);
    assert!(
        !good.verify_hostname,
        "Heroku's certificates do not name the host"
    );
    let b = KafkaBus::connect(good, Encoding::Json)
        .await
        .expect("connect over TLS with Heroku's variables");
    conformance::run_all(Arc::new(b)).await;

    let wrong_ca = KafkaBus::connect(env(read(&other_ca), true), Encoding::Json).await;
    assert!(
        wrong_ca.is_err(),
        "a broker signed by an untrusted CA is refused"
    );
    let no_client_cert = KafkaBus::connect(env(read(&ca), false), Encoding::Json).await;
    assert!(
        no_client_cert.is_err(),
        "the broker requires a client certificate"
    );
}
