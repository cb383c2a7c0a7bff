//! Kafka and WebSocket helpers for the tests that run roles on the real
//! broker scripts/test.sh starts (`$MDHUB_TEST_KAFKA`).

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mdhub_bus::{Bus, KafkaBus, KafkaConfig, SubscribeSpec};
use mdhub_types::protocol::DataFrame;
use mdhub_types::{Encoding, Event, Position, Timestamp, Topic};
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

pub fn broker() -> String {
    std::env::var("MDHUB_TEST_KAFKA").unwrap_or_else(|_| {
        panic!("MDHUB_TEST_KAFKA is not set: run scripts/test.sh, which installs and starts a Kafka-protocol broker (tansu)")
    })
}

pub fn prefix() -> String {
    format!(
        "e{}.",
        Timestamp::now().as_nanos() as u64 % 1_000_000_000_000
    )
}

pub fn kafka_env(prefix: &str) -> Vec<(&'static str, String)> {
    vec![
        ("KAFKA_URL", format!("kafka://{}", broker())),
        ("KAFKA_PREFIX", prefix.to_string()),
        // tansu 0.6.0 reports the high watermark as the last batch's base
        // offset + 1; one record per batch keeps watermarks right.
        (
            "MDHUB_KAFKA__PROPERTIES__BATCH.NUM.MESSAGES",
            "1".to_string(),
        ),
    ]
}

pub fn as_refs<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

pub async fn subscribe_and_collect(
    url: &str,
    body: Value,
    dur: Duration,
) -> (String, Vec<DataFrame>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .expect("connect");
    let mut epoch = String::new();
    ws.send(Message::text(body.to_string())).await.unwrap();
    let mut frames = Vec::new();
    let deadline = tokio::time::Instant::now() + dur;
    while let Ok(Some(Ok(msg))) = tokio::time::timeout_at(deadline, ws.next()).await {
        let Message::Text(t) = msg else { continue };
        let v: Value = serde_json::from_str(t.as_str()).unwrap();
        match v["type"].as_str() {
            Some("welcome") => epoch = v["epoch"].as_str().unwrap().to_string(),
            Some("update" | "snapshot") => frames.push(serde_json::from_value(v).unwrap()),
            Some("reset") => panic!("unexpected reset: {v}"),
            _ => {}
        }
    }
    (epoch, frames)
}

/// The records of `symbol` on `topic` in Kafka, by offset.
pub async fn kafka_records(prefix: &str, topic: Topic, symbol: &str) -> BTreeMap<u64, Event> {
    let cfg = KafkaConfig {
        url: broker(),
        prefix: prefix.to_string(),
        create_topics: false,
        properties: [("batch.num.messages".to_string(), "1".to_string())].into(),
        ..KafkaConfig::default()
    };
    let bus = KafkaBus::connect(cfg, Encoding::Json)
        .await
        .expect("connect");
    let p = mdhub_bus::partition_for_key(symbol.as_bytes(), bus.partitions(topic));
    let (lo, hi) = bus.watermarks(topic, p).await.unwrap();
    let mut sub = bus
        .subscribe(SubscribeSpec::Assign {
            positions: vec![Position {
                topic,
                partition: p,
                offset: lo,
            }],
        })
        .await
        .unwrap();
    let mut out = BTreeMap::new();
    while sub.positions()[0].offset < hi {
        for d in sub
            .next_batch(10_000, Duration::from_secs(5))
            .await
            .unwrap()
        {
            if d.symbol.as_str() == symbol {
                out.insert(d.position.offset, d.decode().unwrap());
            }
        }
    }
    out
}
