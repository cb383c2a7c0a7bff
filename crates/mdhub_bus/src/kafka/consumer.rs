//! Kafka subscriptions: explicit assignment (Direct, Assign) or a consumer group.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use mdhub_types::{ENCODING_HEADER, Encoding, Position, Symbol, Timestamp, Topic};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Headers, Message};
use rdkafka::{Offset, TopicPartitionList};

use super::{KafkaBus, TS_HEADER, kafka_err, watermarks};
use crate::cursor::{Cursor, check_partition, highest_per_partition, idx, in_range, set_cursor};
use crate::{Bus, Delivery, Error, Result, Start, SubscribeSpec, Subscription};

const TIMEOUT: Duration = Duration::from_secs(10);

pub(super) async fn offset_for_time(
    meta: &Arc<BaseConsumer>,
    topic: &str,
    partition: u32,
    ts: Timestamp,
) -> Result<u64> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(
        topic,
        partition as i32,
        Offset::Offset(ts.as_nanos().div_euclid(1_000_000)),
    )
    .map_err(kafka_err)?;
    let m = meta.clone();
    let out = tokio::task::spawn_blocking(move || m.offsets_for_times(tpl, TIMEOUT))
        .await
        .map_err(|_| Error::Closed)?
        .map_err(kafka_err)?;
    let found = out.elements().first().map(|e| e.offset());
    match found {
        Some(Offset::Offset(o)) => Ok(o.max(0) as u64),
        // No record at or after the time: the end.
        _ => Ok(watermarks(meta, topic, partition).await?.1),
    }
}

pub(super) struct KafkaSubscription {
    consumer: Arc<StreamConsumer>,
    topics: [String; 3],
    partitions: [u32; 3],
    meta: Arc<BaseConsumer>,
    group: bool,
    cursors: Vec<Cursor>,
    /// Explicit assignment: the cursors changed since librdkafka last got
    /// them. Seeks only mark this; the next read assigns once, so a reader
    /// that positions many partitions (a cache warm-up) does not reassign
    /// per partition — rapid reassignment trips an assertion inside
    /// librdkafka (`rd_kafka_assignment_partition_stopped`).
    assign_pending: bool,
}

impl std::fmt::Debug for KafkaSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaSubscription")
            .field("group", &self.group)
            .field("cursors", &self.cursors)
            .finish()
    }
}

async fn resolve(bus: &KafkaBus, topic: Topic, partition: u32, start: Start) -> Result<u64> {
    let (lo, hi) = watermarks(bus.meta(), bus.topic_name(topic), partition).await?;
    Ok(match start {
        Start::Earliest => lo,
        Start::Latest => hi,
        Start::Time(ts) => {
            offset_for_time(bus.meta(), bus.topic_name(topic), partition, ts).await?
        }
        Start::Offset(o) => in_range(topic, partition, o, lo, hi)?,
    })
}

pub(super) async fn subscribe(
    bus: &KafkaBus,
    spec: SubscribeSpec,
) -> Result<Box<dyn Subscription>> {
    let cfg = bus.config();
    let mut cc = cfg
        .client_config()
        .map_err(|e| Error::Unavailable(e.to_string()))?;
    cc.set("enable.auto.commit", "false");
    cc.set("enable.auto.offset.store", "false");
    cc.set("enable.partition.eof", "false");
    cc.set("fetch.wait.max.ms", cfg.fetch_wait_ms.to_string());
    let topics = Topic::ALL.map(|t| bus.topic_name(t).to_string());
    let partitions = Topic::ALL.map(|t| bus.partitions(t));
    let mut cursors = Vec::new();
    let group = matches!(spec, SubscribeSpec::Group { .. });
    match &spec {
        SubscribeSpec::Group { name, reset, .. } => {
            cc.set("group.id", cfg.prefixed(name));
            // Fail over within seconds when a member dies without leaving.
            cc.set("session.timeout.ms", "6000");
            cc.set("heartbeat.interval.ms", "1000");
            cc.set(
                "auto.offset.reset",
                if *reset == Start::Latest {
                    "latest"
                } else {
                    "earliest"
                },
            );
        }
        SubscribeSpec::Direct { topics: ts, start } => {
            // A group id is required by librdkafka even when nothing is committed.
            cc.set("group.id", cfg.prefixed("mdhub-direct"));
            cc.set("auto.offset.reset", "error");
            for &t in ts {
                for p in 0..bus.partitions(t) {
                    cursors.push(Cursor {
                        topic: t,
                        partition: p,
                        next: resolve(bus, t, p, *start).await?,
                    });
                }
            }
        }
        SubscribeSpec::Assign { positions } => {
            cc.set("group.id", cfg.prefixed("mdhub-direct"));
            cc.set("auto.offset.reset", "error");
            for p in positions {
                bus.check_partition(p.topic, p.partition)?;
                let next = resolve(bus, p.topic, p.partition, Start::Offset(p.offset)).await?;
                cursors.push(Cursor {
                    topic: p.topic,
                    partition: p.partition,
                    next,
                });
            }
        }
    }
    // The user's properties win over mdhub's consumer defaults.
    for (k, v) in &cfg.properties {
        cc.set(k, v);
    }
    let consumer: StreamConsumer = cc.create().map_err(kafka_err)?;
    let sub = KafkaSubscription {
        consumer: Arc::new(consumer),
        topics,
        partitions,
        meta: bus.meta().clone(),
        group,
        cursors,
        assign_pending: !group,
    };
    if let SubscribeSpec::Group { topics: ts, .. } = &spec {
        let names: Vec<&str> = ts.iter().map(|t| sub.topics[idx(*t)].as_str()).collect();
        sub.consumer.subscribe(&names).map_err(kafka_err)?;
    }
    Ok(Box::new(sub))
}

/// Errors librdkafka recovers from by itself (connection loss, leader
/// changes): a consumer keeps going.
fn is_transient(e: &KafkaError) -> bool {
    match e {
        KafkaError::MessageConsumption(code) => matches!(
            code,
            RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::RequestTimedOut
                | RDKafkaErrorCode::OperationTimedOut
                | RDKafkaErrorCode::NetworkException
                | RDKafkaErrorCode::UnknownTopicOrPartition
        ),
        _ => false,
    }
}

impl KafkaSubscription {
    fn assign(&self) -> Result<()> {
        let mut tpl = TopicPartitionList::new();
        for c in &self.cursors {
            tpl.add_partition_offset(
                &self.topics[idx(c.topic)],
                c.partition as i32,
                Offset::Offset(c.next as i64),
            )
            .map_err(kafka_err)?;
        }
        self.consumer.assign(&tpl).map_err(kafka_err)
    }

    fn topic_of(&self, name: &str) -> Option<Topic> {
        Topic::ALL
            .into_iter()
            .find(|t| self.topics[idx(*t)] == name)
    }

    fn delivery(&mut self, m: &BorrowedMessage<'_>) -> Option<Delivery> {
        let topic = self.topic_of(m.topic())?;
        let (partition, offset) = (m.partition() as u32, m.offset() as u64);
        if let Some(c) = self
            .cursors
            .iter_mut()
            .find(|c| c.topic == topic && c.partition == partition)
        {
            c.next = offset + 1;
        } else {
            self.cursors.push(Cursor {
                topic,
                partition,
                next: offset + 1,
            });
        }
        let symbol = m
            .key()
            .and_then(|k| std::str::from_utf8(k).ok())
            .and_then(|k| Symbol::new(k).ok())?;
        let mut encoding = Encoding::Json;
        let mut ts = m
            .timestamp()
            .to_millis()
            .map(Timestamp::from_millis)
            .unwrap_or_default();
        if let Some(h) = m.headers() {
            for h in h.iter() {
                let v = h.value.and_then(|v| std::str::from_utf8(v).ok());
                match (h.key, v) {
                    (ENCODING_HEADER, Some(v)) => encoding = Encoding::parse(v).ok()?,
                    (TS_HEADER, Some(v)) => ts = v.parse().map(Timestamp::from_nanos).unwrap_or(ts),
                    _ => {}
                }
            }
        }
        Some(Delivery {
            position: Position {
                topic,
                partition,
                offset,
            },
            symbol,
            timestamp: ts,
            encoding,
            value: Bytes::copy_from_slice(m.payload().unwrap_or_default()),
        })
    }

    fn map_err(&self, e: KafkaError) -> Error {
        if let KafkaError::MessageConsumption(RDKafkaErrorCode::OffsetOutOfRange) = e
            && let Some(c) = self.cursors.first()
        {
            return Error::OffsetOutOfRange {
                topic: c.topic,
                partition: c.partition,
                requested: c.next,
                start: 0,
                end: 0,
            };
        }
        kafka_err(e)
    }
}

#[async_trait::async_trait]
impl Subscription for KafkaSubscription {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        if self.assign_pending {
            self.assign()?;
            self.assign_pending = false;
        }
        let consumer = self.consumer.clone();
        let mut out = Vec::new();
        let deadline = tokio::time::Instant::now() + wait;
        let mut skipped = 0u64;
        while out.is_empty() {
            let Ok(first) = tokio::time::timeout_at(deadline, consumer.recv()).await else {
                break;
            };
            let mut next = Some(first);
            while let Some(r) = next {
                match r {
                    Ok(m) => match self.delivery(&m) {
                        Some(d) => out.push(d),
                        None => skipped += 1,
                    },
                    Err(e) if is_transient(&e) => {
                        // librdkafka reconnects by itself; report and keep waiting.
                        tracing::debug!(error = %e, "transient Kafka consumer error");
                        break;
                    }
                    Err(e) => {
                        if out.is_empty() {
                            return Err(self.map_err(e));
                        }
                        break;
                    }
                }
                if out.len() >= max.max(1) {
                    break;
                }
                next = consumer.recv().now_or_never();
            }
        }
        if skipped > 0 {
            tracing::warn!(
                skipped,
                "skipped Kafka records with an invalid key or encoding header"
            );
        }
        Ok(out)
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<()> {
        if !self.group {
            return Err(Error::NotAGroup);
        }
        let upto = highest_per_partition(positions);
        let mut tpl = TopicPartitionList::new();
        for ((t, p), o) in upto {
            tpl.add_partition_offset(&self.topics[idx(t)], p as i32, Offset::Offset(o as i64 + 1))
                .map_err(kafka_err)?;
        }
        let c = self.consumer.clone();
        tokio::task::spawn_blocking(move || c.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|_| Error::Closed)?
            .map_err(kafka_err)
    }

    async fn seek(&mut self, topic: Topic, partition: u32, offset: u64) -> Result<()> {
        check_partition(self.partitions, topic, partition)?;
        let (lo, hi) = watermarks(&self.meta, &self.topics[idx(topic)], partition).await?;
        in_range(topic, partition, offset, lo, hi)?;
        set_cursor(&mut self.cursors, topic, partition, offset);
        if self.group {
            let c = self.consumer.clone();
            let t = self.topics[idx(topic)].clone();
            return tokio::task::spawn_blocking(move || {
                c.seek(&t, partition as i32, Offset::Offset(offset as i64), TIMEOUT)
            })
            .await
            .map_err(|_| Error::Closed)?
            .map_err(kafka_err);
        }
        self.assign_pending = true;
        Ok(())
    }

    fn positions(&self) -> Vec<Position> {
        crate::cursor::positions(&self.cursors)
    }
}
