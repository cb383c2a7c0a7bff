//! [`Bus`] over Kafka (librdkafka through `rdkafka`).
//!
//! Producing: key = canonical symbol, `murmur2_random` partitioner (Kafka's
//! Java default, the same partition the embedded log computes), acks=all,
//! idempotent, compressed. `publish` returns once every record is
//! acknowledged by the in-sync replicas. While brokers are down librdkafka
//! buffers up to `kafka.buffer_max_messages` and retries for
//! `kafka.message_timeout_ms`; at the buffer bound `publish` waits (counted in
//! [`KafkaStats::buffer_full_waits`]) and backpressure reaches the feeds.
//! A message that times out fails the whole `publish` with a retryable error
//! and the ingest stage publishes the batch again — after an outage longer
//! than the timeout, records of that batch that did get through appear twice;
//! nothing is dropped.
//!
//! Every record carries the headers `mdhub-encoding`, `mdhub-schema` and
//! `mdhub-ts` (`ts_received` in nanoseconds; Kafka's own timestamp has
//! milliseconds only).
//!
//! Consuming: [`SubscribeSpec::Direct`] and [`SubscribeSpec::Assign`] assign
//! partitions explicitly (no group, `auto.offset.reset=error`, so a position
//! that retention removed is an [`Error::OffsetOutOfRange`], never a silent
//! jump); [`SubscribeSpec::Group`] joins the prefixed consumer group and
//! commits only through [`Subscription::commit`].

mod config;
mod consumer;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mdhub_types::{
    ENCODING_HEADER, Encoding, Event, Position, SCHEMA_HEADER, SCHEMA_VERSION, Timestamp, Topic,
};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

pub use config::{HEROKU_VARIABLES, KafkaConfig, KafkaConfigError};

use crate::{Bus, Error, Result, SubscribeSpec, Subscription};

/// The header carrying `ts_received` in nanoseconds.
pub const TS_HEADER: &str = "mdhub-ts";

const META_TIMEOUT: Duration = Duration::from_secs(10);

/// Producer counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct KafkaStats {
    /// Records acknowledged by the brokers.
    pub delivered: AtomicU64,
    /// Records whose delivery failed (the batch is published again).
    pub failed: AtomicU64,
    /// Times `publish` waited because the producer's buffer was full.
    pub buffer_full_waits: AtomicU64,
}

/// The Kafka bus. Cheap to share behind `Arc`.
pub struct KafkaBus {
    cfg: KafkaConfig,
    producer: FutureProducer,
    meta: Arc<BaseConsumer>,
    topics: [String; 3],
    partitions: [u32; 3],
    encoding: Encoding,
    epoch: String,
    stats: Arc<KafkaStats>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("brokers", &self.cfg.url)
            .field("topics", &self.topics)
            .field("partitions", &self.partitions)
            .field("encoding", &self.encoding)
            .finish_non_exhaustive()
    }
}

fn idx(t: Topic) -> usize {
    match t {
        Topic::Quotes => 0,
        Topic::Trades => 1,
        Topic::Status => 2,
    }
}

pub(crate) fn kafka_err(e: KafkaError) -> Error {
    Error::Unavailable(e.to_string())
}

impl KafkaBus {
    /// Connect, make sure both topics exist (creating them when allowed),
    /// and learn their partition counts.
    pub async fn connect(cfg: KafkaConfig, encoding: Encoding) -> Result<Self> {
        let bad = |e: KafkaConfigError| Error::Unavailable(e.to_string());
        let producer: FutureProducer = cfg
            .producer_config()
            .map_err(bad)?
            .create()
            .map_err(kafka_err)?;
        let meta: BaseConsumer = cfg
            .client_config()
            .map_err(bad)?
            .create()
            .map_err(kafka_err)?;
        let meta = Arc::new(meta);
        let topics = Topic::ALL.map(|t| cfg.prefixed(t.log_name()));
        let partitions = ensure_topics(&cfg, &meta, &topics).await?;
        let epoch = {
            let m = meta.clone();
            tokio::task::spawn_blocking(move || m.client().fetch_cluster_id(META_TIMEOUT))
                .await
                .map_err(|_| Error::Closed)?
                .map(|id| format!("kafka-{id}"))
                .unwrap_or_else(|| "kafka".to_string())
        };
        Ok(KafkaBus {
            cfg,
            producer,
            meta,
            topics,
            partitions,
            encoding,
            epoch,
            stats: Arc::default(),
        })
    }

    /// Producer counters.
    pub fn stats(&self) -> Arc<KafkaStats> {
        self.stats.clone()
    }

    /// The topic names, prefixed.
    pub fn topic_names(&self) -> &[String; 3] {
        &self.topics
    }

    async fn watermarks_of(&self, topic: Topic, partition: u32) -> Result<(u64, u64)> {
        watermarks(&self.meta, &self.topics[idx(topic)], partition).await
    }
}

pub(crate) async fn watermarks(
    meta: &Arc<BaseConsumer>,
    topic: &str,
    partition: u32,
) -> Result<(u64, u64)> {
    let (m, t) = (meta.clone(), topic.to_string());
    let (lo, hi) =
        tokio::task::spawn_blocking(move || m.fetch_watermarks(&t, partition as i32, META_TIMEOUT))
            .await
            .map_err(|_| Error::Closed)?
            .map_err(kafka_err)?;
    Ok((lo.max(0) as u64, hi.max(0) as u64))
}

async fn ensure_topics(
    cfg: &KafkaConfig,
    meta: &Arc<BaseConsumer>,
    topics: &[String; 3],
) -> Result<[u32; 3]> {
    let owned = topics.clone();
    let counts = move |m: &Arc<BaseConsumer>| -> Result<[Option<u32>; 3]> {
        let md = m.fetch_metadata(None, META_TIMEOUT).map_err(kafka_err)?;
        Ok(owned.clone().map(|name| {
            md.topics()
                .iter()
                .find(|t| t.name() == name && t.error().is_none() && !t.partitions().is_empty())
                .map(|t| t.partitions().len() as u32)
        }))
    };
    let counts = Arc::new(counts);
    let (m, c) = (meta.clone(), counts.clone());
    let found = tokio::task::spawn_blocking(move || c(&m))
        .await
        .map_err(|_| Error::Closed)??;
    let missing: Vec<&String> = topics
        .iter()
        .zip(found)
        .filter(|(_, c)| c.is_none())
        .map(|(t, _)| t)
        .collect();
    if missing.is_empty() {
        return Ok(found.map(|c| c.unwrap_or(1)));
    }
    let hint = |t: &str| {
        let bare = t.strip_prefix(&cfg.prefix).unwrap_or(t);
        format!(
            "create it first, e.g. `heroku kafka:topics:create {bare} --partitions {}` (Heroku) or with your provider's tool",
            cfg.partitions
        )
    };
    if !cfg.create_topics {
        let t = missing[0];
        return Err(Error::Unavailable(format!(
            "topic {t} does not exist and kafka.create_topics is off; {}",
            hint(t)
        )));
    }
    let admin: AdminClient<DefaultClientContext> = cfg
        .client_config()
        .map_err(|e| Error::Unavailable(e.to_string()))?
        .create()
        .map_err(kafka_err)?;
    let new: Vec<NewTopic<'_>> = missing
        .iter()
        .map(|t| {
            NewTopic::new(
                t,
                cfg.partitions as i32,
                TopicReplication::Fixed(cfg.replication_factor),
            )
        })
        .collect();
    let results = admin
        .create_topics(
            &new,
            &AdminOptions::new().operation_timeout(Some(META_TIMEOUT)),
        )
        .await
        .map_err(kafka_err)?;
    for r in results {
        if let Err((t, code)) = r
            && code != RDKafkaErrorCode::TopicAlreadyExists
        {
            return Err(Error::Unavailable(format!(
                "topic {t} is missing and could not be created ({code}); {}",
                hint(&t)
            )));
        }
    }
    // Metadata catches up with creation asynchronously.
    for _ in 0..50 {
        let (m, c) = (meta.clone(), counts.clone());
        let found = tokio::task::spawn_blocking(move || c(&m))
            .await
            .map_err(|_| Error::Closed)??;
        if found.iter().all(Option::is_some) {
            return Ok(found.map(|c| c.unwrap_or(1)));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Error::Unavailable(format!(
        "created {missing:?} but the brokers do not list them yet"
    )))
}

#[async_trait::async_trait]
impl Bus for KafkaBus {
    fn epoch(&self) -> String {
        self.epoch.clone()
    }

    fn partitions(&self, topic: Topic) -> u32 {
        self.partitions[idx(topic)]
    }

    fn encoding(&self) -> Encoding {
        self.encoding
    }

    async fn publish(&self, events: &[Event]) -> Result<Vec<Position>> {
        let mut payloads = Vec::with_capacity(events.len());
        for e in events {
            let mut buf = Vec::with_capacity(256);
            self.encoding.for_event(e).encode(e, &mut buf)?;
            payloads.push(buf);
        }
        let mut pending = Vec::with_capacity(events.len());
        for (e, payload) in events.iter().zip(&payloads) {
            let topic = e.topic();
            let ts = e.ts_received().as_nanos().to_string();
            let headers = OwnedHeaders::new_with_capacity(3)
                .insert(Header {
                    key: ENCODING_HEADER,
                    value: Some(self.encoding.for_event(e).as_str()),
                })
                .insert(Header {
                    key: SCHEMA_HEADER,
                    value: Some(SCHEMA_VERSION),
                })
                .insert(Header {
                    key: TS_HEADER,
                    value: Some(ts.as_str()),
                });
            let mut record = FutureRecord::to(&self.topics[idx(topic)])
                .key(e.symbol().as_str())
                .payload(payload.as_slice())
                .headers(headers)
                .timestamp(e.ts_received().as_millis());
            loop {
                match self.producer.send_result(record) {
                    Ok(f) => {
                        pending.push((topic, f));
                        break;
                    }
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        // The bound: wait for deliveries to make room.
                        self.stats.buffer_full_waits.fetch_add(1, Ordering::Relaxed);
                        record = r;
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                    Err((e, _)) => return Err(kafka_err(e)),
                }
            }
        }
        let mut positions = Vec::with_capacity(pending.len());
        let mut failure = None;
        for (topic, f) in pending {
            match f.await {
                Ok(Ok(d)) => {
                    self.stats.delivered.fetch_add(1, Ordering::Relaxed);
                    positions.push(Position {
                        topic,
                        partition: d.partition as u32,
                        offset: d.offset as u64,
                    });
                }
                Ok(Err((e, _))) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    failure.get_or_insert(kafka_err(e));
                }
                Err(_) => {
                    self.stats.failed.fetch_add(1, Ordering::Relaxed);
                    failure.get_or_insert(Error::Closed);
                }
            }
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(positions),
        }
    }

    async fn subscribe(&self, spec: SubscribeSpec) -> Result<Box<dyn Subscription>> {
        consumer::subscribe(self, spec).await
    }

    async fn watermarks(&self, topic: Topic, partition: u32) -> Result<(u64, u64)> {
        self.check_partition(topic, partition)?;
        self.watermarks_of(topic, partition).await
    }

    async fn offset_for_time(&self, topic: Topic, partition: u32, ts: Timestamp) -> Result<u64> {
        self.check_partition(topic, partition)?;
        consumer::offset_for_time(&self.meta, &self.topics[idx(topic)], partition, ts).await
    }

    async fn sync(&self) -> Result<()> {
        let p = self.producer.clone();
        tokio::task::spawn_blocking(move || p.flush(Duration::from_secs(30)))
            .await
            .map_err(|_| Error::Closed)?
            .map_err(kafka_err)
    }
}

impl KafkaBus {
    pub(crate) fn check_partition(&self, topic: Topic, partition: u32) -> Result<()> {
        crate::cursor::check_partition(self.partitions, topic, partition)
    }

    pub(crate) fn config(&self) -> &KafkaConfig {
        &self.cfg
    }

    pub(crate) fn meta(&self) -> &Arc<BaseConsumer> {
        &self.meta
    }

    pub(crate) fn topic_name(&self, t: Topic) -> &str {
        &self.topics[idx(t)]
    }
}
