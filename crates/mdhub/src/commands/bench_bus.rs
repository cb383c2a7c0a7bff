//! `mdhub bench bus`: produce and consume throughput, and produce → consume
//! latency, of the log behind the `Bus` seam — the embedded log, and Kafka
//! when `--kafka` names a broker — side by side in one run, with `kcat`
//! producing to the same broker for comparison when it is installed.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use mdhub_bus::{Bus, EmbeddedBus, EmbeddedBusConfig, KafkaBus, KafkaConfig, Start, SubscribeSpec};
use mdhub_log::{Log, LogConfig};
use mdhub_types::{
    Decimal, Encoding, Event, Position, Side, Symbol, Timestamp, Topic, Trade, Venue,
};

/// Flags of `mdhub bench bus`.
#[derive(Debug, Args)]
pub struct BusArgs {
    /// Also measure Kafka at this broker (host:port), or `mock` for
    /// librdkafka's in-process mock cluster (separates client from broker costs).
    #[arg(long, value_name = "HOST:PORT|mock")]
    pub kafka: Option<String>,
    /// Messages for the throughput runs.
    #[arg(long, default_value_t = 500_000)]
    pub messages: usize,
    /// Messages per second for the latency run.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Seconds of the latency run.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Record encoding.
    #[arg(long, default_value = "json", value_parser = ["json", "avro"])]
    pub encoding: String,
    /// A librdkafka property for the Kafka client, applied last (repeatable),
    /// e.g. `--kafka-property linger.ms=0 --kafka-property fetch.wait.max.ms=1`.
    #[arg(long, value_name = "KEY=VALUE", value_parser = parse_property)]
    pub kafka_property: Vec<(String, String)>,
}

fn parse_property(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .filter(|(k, _)| !k.trim().is_empty())
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .ok_or_else(|| format!("{s:?} is not KEY=VALUE"))
}

fn events(n: usize, symbols: &[Symbol]) -> Vec<Event> {
    let venue = Venue::new("bench").unwrap_or_else(|_| unreachable!("valid venue"));
    (0..n)
        .map(|i| {
            Event::Trade(Trade {
                venue: venue.clone(),
                symbol: symbols[i % symbols.len()].clone(),
                ts_exchange: Timestamp::now(),
                ts_received: Timestamp::now(),
                price: Decimal::from_parts(1_000_000 + (i % 1000) as i128, 2)
                    .unwrap_or(Decimal::ZERO),
                size: Decimal::from(100),
                side: Side::Buy,
                trade_id: Some(i.to_string()),
            })
        })
        .collect()
}

struct Figures {
    produce: f64,
    consume: f64,
    latency: [u64; 4],
    /// p50, p99 of one 1 ms batch's `publish` call, in µs.
    publish_rtt: [u64; 2],
}

async fn measure(bus: Arc<dyn Bus>, a: &BusArgs) -> anyhow::Result<Figures> {
    let symbols: Vec<Symbol> = (0..100)
        .filter_map(|i| Symbol::new(&format!("S{i:04}")).ok())
        .collect();
    let batch = events(1000, &symbols);
    let mut starts = Vec::new();
    for p in 0..bus.partitions(Topic::Trades) {
        let (_, end) = bus.watermarks(Topic::Trades, p).await?;
        starts.push(Position {
            topic: Topic::Trades,
            partition: p,
            offset: end,
        });
    }
    // Produce: four concurrent publishers of 1000-event batches.
    let rounds = a.messages.div_ceil(1000 * 4).max(1);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let (bus, batch) = (bus.clone(), batch.clone());
        tasks.push(tokio::spawn(async move {
            for _ in 0..rounds {
                bus.publish(&batch).await?;
            }
            Ok::<_, mdhub_bus::Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let produced = (rounds * 4 * 1000) as f64;
    let produce = produced / t0.elapsed().as_secs_f64();
    // Consume everything just produced.
    let mut sub = bus
        .subscribe(SubscribeSpec::Assign { positions: starts })
        .await?;
    let t0 = Instant::now();
    let mut n = 0usize;
    while (n as f64) < produced {
        let got = sub.next_batch(10_000, Duration::from_secs(5)).await?;
        if got.is_empty() {
            anyhow::bail!("consumer stalled after {n} of {produced} records");
        }
        n += got.len();
    }
    let consume = n as f64 / t0.elapsed().as_secs_f64();
    // Latency: publish at the rate in 1 ms batches; a tailing consumer measures.
    let mut tail = bus
        .subscribe(SubscribeSpec::Direct {
            topics: vec![Topic::Trades],
            start: Start::Latest,
        })
        .await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let reader = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut lat = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let Ok(got) = tail.next_batch(10_000, Duration::from_millis(100)).await else {
                    break;
                };
                let now = Timestamp::now();
                lat.extend(
                    got.iter()
                        .map(|d| now.nanos_since(d.timestamp).max(0) as u64 / 1000),
                );
            }
            lat
        })
    };
    let per_ms = (a.rate / 1000).max(1) as usize;
    let ticks = (a.duration * 1000.0) as u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(1));
    let mut publish_us: Vec<u64> = Vec::with_capacity(ticks as usize);
    for _ in 0..ticks {
        ticker.tick().await;
        let mut b = events(per_ms, &symbols);
        for e in &mut b {
            if let Event::Trade(t) = e {
                t.ts_received = Timestamp::now();
            }
        }
        let t = Instant::now();
        bus.publish(&b).await?;
        publish_us.push(t.elapsed().as_micros() as u64);
    }
    publish_us.sort_unstable();
    let pq = |p: f64| {
        publish_us
            .get(((publish_us.len() as f64 * p) as usize).min(publish_us.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    let publish_rtt = [pq(0.5), pq(0.99)];
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut lat = reader.await?;
    lat.sort_unstable();
    let q = |p: f64| {
        lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0)
    };
    Ok(Figures {
        produce,
        consume,
        latency: [q(0.5), q(0.99), q(0.999), lat.len() as u64],
        publish_rtt,
    })
}

fn kcat_produce(broker: &str, topic: &str, n: usize) -> Option<f64> {
    let mut input = String::with_capacity(n * 220);
    let sample = mdhub_types::json::to_vec(&events(1, &[Symbol::new("S0000").ok()?])[0]);
    let line = String::from_utf8(sample).ok()?;
    for i in 0..n {
        input.push_str(&format!("S{:04}\t{line}\n", i % 100));
    }
    let t0 = Instant::now();
    let mut child = std::process::Command::new("kcat")
        .args([
            "-P",
            "-b",
            broker,
            "-t",
            topic,
            "-K",
            "\t",
            "-X",
            "acks=all",
            "-X",
            "linger.ms=1",
        ])
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    child.stdin.take()?.write_all(input.as_bytes()).ok()?;
    child
        .wait()
        .ok()?
        .success()
        .then(|| n as f64 / t0.elapsed().as_secs_f64())
}

/// Entry point of the scenario.
pub(crate) async fn run(a: BusArgs) -> anyhow::Result<()> {
    let encoding = Encoding::parse(&a.encoding).map_err(|e| anyhow::anyhow!("{e}"))?;
    let dir = std::env::temp_dir().join(format!("mdhub-bench-bus-{}", std::process::id()));
    let log = Log::open(LogConfig {
        dir: dir.clone(),
        ..LogConfig::default()
    })
    .context("opening a scratch log")?;
    let embedded: Arc<dyn Bus> = Arc::new(EmbeddedBus::new(
        Arc::new(log),
        EmbeddedBusConfig { encoding },
    )?);
    let mut rows = vec![("embedded log", measure(embedded, &a).await?)];
    let mut kcat = None;
    let mut mock = None;
    if let Some(target) = &a.kafka {
        let prefix = format!("bench{}.", std::process::id());
        let broker = if target == "mock" {
            let cluster =
                rdkafka::mocking::MockCluster::new(1).context("starting the mock cluster")?;
            for t in ["price-quotes", "price-trades", "feed-status"] {
                cluster
                    .create_topic(&format!("{prefix}{t}"), 8, 1)
                    .context("mock topic")?;
            }
            let b = cluster.bootstrap_servers();
            mock = Some(cluster);
            b
        } else {
            target.clone()
        };
        let broker = &broker;
        let cfg = KafkaConfig {
            url: broker.clone(),
            prefix: prefix.clone(),
            properties: a.kafka_property.iter().cloned().collect(),
            ..KafkaConfig::default()
        };
        let kafka: Arc<dyn Bus> = Arc::new(
            KafkaBus::connect(cfg, encoding)
                .await
                .context("connecting to Kafka")?,
        );
        rows.push(("kafka", measure(kafka, &a).await?));
        if mock.is_none() {
            kcat = kcat_produce(broker, &format!("{prefix}price-trades"), a.messages);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "bus bench: {} messages, latency at {}/s for {} s, {} records",
        a.messages, a.rate, a.duration, a.encoding
    )?;
    writeln!(
        out,
        "{:<14} {:>14} {:>14}   latency p50 / p99 / p99.9 (µs); publish call p50 / p99 (µs)",
        "log", "produce/s", "consume/s"
    )?;
    for (name, f) in rows {
        writeln!(
            out,
            "{name:<14} {:>14.0} {:>14.0}   {} / {} / {}  ({} samples); {} / {}",
            f.produce,
            f.consume,
            f.latency[0],
            f.latency[1],
            f.latency[2],
            f.latency[3],
            f.publish_rtt[0],
            f.publish_rtt[1]
        )?;
    }
    match (a.kafka.is_some(), kcat) {
        (true, Some(k)) => writeln!(
            out,
            "{:<14} {k:>14.0}   (kcat -P, same broker, acks=all)",
            "kcat"
        )?,
        (true, None) => writeln!(out, "kcat: not installed or failed (apt-get install kcat)")?,
        _ => {}
    }
    Ok(())
}
