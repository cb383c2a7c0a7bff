//! [`Bus`] over the embedded log (`mdhub_log`).
//!
//! Durability: `publish` appends every record, then group-commits (one
//! `write` per touched partition). On return the records are readable and
//! survive a crash of the process; the log's fsync thread makes them survive
//! power loss within `log.fsync_interval_ms` (or at once with [`Bus::sync`]).
//! Readers are woken by a watch channel bumped after every commit, so a
//! gateway tailing the log sees a record as soon as `publish` returns.

use std::collections::HashSet;
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use mdhub_log::{Log, RecordIn};
use mdhub_types::{
    ENCODING_HEADER, Encoding, Event, Position, SCHEMA_HEADER, SCHEMA_VERSION, Symbol, Timestamp,
    Topic,
};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::cursor::{Cursor, check_partition, highest_per_partition, idx, in_range, set_cursor};
use crate::{Bus, Delivery, Error, Result, Start, SubscribeSpec, Subscription, partition_for_key};

/// Settings of the embedded bus (the log itself is configured by `LogConfig`).
#[derive(Debug, Clone, Copy, Default)]
pub struct EmbeddedBusConfig {
    /// Encoding of new records.
    pub encoding: Encoding,
}

/// The embedded-log bus. Cheap to share behind `Arc`.
#[derive(Debug)]
pub struct EmbeddedBus {
    log: Arc<Log>,
    encoding: Encoding,
    partitions: [u32; 3],
    committed: watch::Sender<u64>,
    groups: Arc<Mutex<HashSet<String>>>,
}

impl EmbeddedBus {
    /// Open over a log, creating `price-quotes`, `price-trades` and
    /// `feed-status` with the log's default partition count when they are missing.
    pub fn new(log: Arc<Log>, config: EmbeddedBusConfig) -> Result<Self> {
        let mut partitions = [0u32; 3];
        for t in Topic::ALL {
            let n = match log.partitions(t.log_name()) {
                Ok(n) => n,
                Err(mdhub_log::Error::UnknownTopic { .. }) => {
                    let n = log.config().partitions;
                    log.create_topic(t.log_name(), n)?;
                    n
                }
                Err(e) => return Err(e.into()),
            };
            partitions[idx(t)] = n;
        }
        Ok(EmbeddedBus {
            log,
            encoding: config.encoding,
            partitions,
            committed: watch::channel(0).0,
            groups: Arc::default(),
        })
    }

    /// The underlying log.
    pub fn log(&self) -> &Arc<Log> {
        &self.log
    }

    fn check_partition(&self, topic: Topic, partition: u32) -> Result<()> {
        check_partition(self.partitions, topic, partition)
    }

    fn resolve(&self, topic: Topic, partition: u32, start: Start) -> Result<u64> {
        let name = topic.log_name();
        Ok(match start {
            Start::Earliest => self.log.start_offset(name, partition)?,
            Start::Latest => self.log.high_watermark(name, partition)?,
            Start::Time(ts) => self
                .log
                .offset_for_timestamp(name, partition, ts.as_nanos())?,
            Start::Offset(o) => check_offset(&self.log, topic, partition, o)?,
        })
    }
}

/// `offset` if it lies within `[start, end]` of the partition.
fn check_offset(log: &Log, topic: Topic, partition: u32, offset: u64) -> Result<u64> {
    let name = topic.log_name();
    let (start, end) = (
        log.start_offset(name, partition)?,
        log.high_watermark(name, partition)?,
    );
    in_range(topic, partition, offset, start, end)
}

fn map_log_err(topic: Topic, e: mdhub_log::Error) -> Error {
    match e {
        mdhub_log::Error::OffsetOutOfRange {
            partition,
            requested,
            start,
            end,
            ..
        } => Error::OffsetOutOfRange {
            topic,
            partition,
            requested,
            start,
            end,
        },
        other => Error::Log(other),
    }
}

#[async_trait::async_trait]
impl Bus for EmbeddedBus {
    fn epoch(&self) -> String {
        self.log.epoch().to_string()
    }

    fn partitions(&self, topic: Topic) -> u32 {
        self.partitions[idx(topic)]
    }

    fn encoding(&self) -> Encoding {
        self.encoding
    }

    async fn publish(&self, events: &[Event]) -> Result<Vec<Position>> {
        // Encode everything first so an encoding error publishes nothing.
        let mut buf = Vec::with_capacity(events.len() * 200);
        let mut spans: Vec<Range<usize>> = Vec::with_capacity(events.len());
        for e in events {
            let start = buf.len();
            self.encoding.for_event(e).encode(e, &mut buf)?;
            spans.push(start..buf.len());
        }
        let header = |enc: Encoding| -> [(&str, &[u8]); 2] {
            [
                (ENCODING_HEADER, enc.as_str().as_bytes()),
                (SCHEMA_HEADER, SCHEMA_VERSION.as_bytes()),
            ]
        };
        let (headers, json_headers) = (header(self.encoding), header(Encoding::Json));
        let mut positions = Vec::with_capacity(events.len());
        for (e, span) in events.iter().zip(spans) {
            let headers = match self.encoding.for_event(e) {
                Encoding::Json => &json_headers,
                Encoding::Avro => &headers,
            };
            let topic = e.topic();
            let key = e.symbol().as_str().as_bytes();
            let partition = partition_for_key(key, self.partitions[idx(topic)]);
            let rec = RecordIn {
                timestamp: e.ts_received().as_nanos(),
                key,
                value: &buf[span],
                headers,
            };
            let offset = match self.log.append(topic.log_name(), partition, &rec) {
                Ok(o) => o,
                // Nothing appended: the whole publish may be tried again.
                Err(e) if positions.is_empty() => return Err(e.into()),
                Err(e) => return Err(partial(positions, e)),
            };
            positions.push(Position {
                topic,
                partition,
                offset,
            });
        }
        let flushed = self.log.flush();
        // Partitions that flushed are readable even when another failed.
        self.committed.send_modify(|v| *v = v.wrapping_add(1));
        match flushed {
            Ok(()) => Ok(positions),
            Err(e) => Err(partial(positions, e)),
        }
    }

    async fn subscribe(&self, spec: SubscribeSpec) -> Result<Box<dyn Subscription>> {
        let mut cursors = Vec::new();
        let mut group = None;
        match &spec {
            SubscribeSpec::Assign { positions } => {
                for p in positions {
                    check_partition(self.partitions, p.topic, p.partition)?;
                    let next = check_offset(&self.log, p.topic, p.partition, p.offset)?;
                    cursors.push(Cursor {
                        topic: p.topic,
                        partition: p.partition,
                        next,
                    });
                }
            }
            SubscribeSpec::Direct { topics, start } => {
                for &topic in topics {
                    for partition in 0..self.partitions[idx(topic)] {
                        let next = self.resolve(topic, partition, *start)?;
                        cursors.push(Cursor {
                            topic,
                            partition,
                            next,
                        });
                    }
                }
            }
            SubscribeSpec::Group {
                name,
                topics,
                reset,
            } => {
                group = Some(name.clone());
                for &topic in topics {
                    for partition in 0..self.partitions[idx(topic)] {
                        let next = match self.log.committed(name, topic.log_name(), partition)? {
                            // Retention may have passed the committed offset.
                            Some(o) => {
                                let (s, e) = (
                                    self.log.start_offset(topic.log_name(), partition)?,
                                    self.log.high_watermark(topic.log_name(), partition)?,
                                );
                                o.clamp(s, e)
                            }
                            None => self.resolve(topic, partition, *reset)?,
                        };
                        cursors.push(Cursor {
                            topic,
                            partition,
                            next,
                        });
                    }
                }
            }
        }
        if let Some(g) = &group
            && !self.groups.lock().insert(g.clone())
        {
            return Err(Error::GroupInUse(g.clone()));
        }
        Ok(Box::new(EmbeddedSubscription {
            log: self.log.clone(),
            partitions: self.partitions,
            cursors,
            group,
            groups: self.groups.clone(),
            wake: self.committed.subscribe(),
            rr: 0,
            deferred: None,
        }))
    }

    async fn watermarks(&self, topic: Topic, partition: u32) -> Result<(u64, u64)> {
        self.check_partition(topic, partition)?;
        let name = topic.log_name();
        Ok((
            self.log.start_offset(name, partition)?,
            self.log.high_watermark(name, partition)?,
        ))
    }

    async fn offset_for_time(&self, topic: Topic, partition: u32, ts: Timestamp) -> Result<u64> {
        self.check_partition(topic, partition)?;
        Ok(self
            .log
            .offset_for_timestamp(topic.log_name(), partition, ts.as_nanos())?)
    }

    async fn sync(&self) -> Result<()> {
        let log = self.log.clone();
        tokio::task::spawn_blocking(move || log.sync())
            .await
            .map_err(|_| Error::Closed)??;
        Ok(())
    }
}

#[derive(Debug)]
struct EmbeddedSubscription {
    log: Arc<Log>,
    partitions: [u32; 3],
    cursors: Vec<Cursor>,
    group: Option<String>,
    groups: Arc<Mutex<HashSet<String>>>,
    wake: watch::Receiver<u64>,
    rr: usize,
    /// An error met after other partitions had delivered records: those
    /// records go out first, the error with the next call.
    deferred: Option<Error>,
}

impl Drop for EmbeddedSubscription {
    fn drop(&mut self) {
        if let Some(g) = &self.group {
            self.groups.lock().remove(g);
        }
    }
}

impl EmbeddedSubscription {
    fn read_available(&mut self, max: usize) -> Result<Vec<Delivery>> {
        let mut out = Vec::new();
        let n = self.cursors.len();
        for k in 0..n {
            if out.len() >= max {
                break;
            }
            let i = (self.rr + k) % n;
            let c = self.cursors[i];
            let mut skipped = 0u64;
            let read = self.log.read(
                c.topic.log_name(),
                c.partition,
                c.next,
                max - out.len(),
                4 << 20,
                |r| match delivery(c.topic, c.partition, &r) {
                    Some(d) => out.push(d),
                    None => skipped += 1,
                },
            );
            if skipped > 0 {
                tracing::warn!(topic = %c.topic, partition = c.partition, skipped, "skipped records with an invalid key or encoding header");
            }
            let error = match read {
                Ok(outcome) => {
                    self.cursors[i].next = outcome.next_offset;
                    continue;
                }
                Err(mdhub_log::Error::Corrupt { .. }) => {
                    // Damage on disk: step past it and say so (a log read
                    // delivers nothing when it fails).
                    let resume = self
                        .log
                        .skip_damaged(c.topic.log_name(), c.partition, c.next)
                        .map_err(|e| map_log_err(c.topic, e))?;
                    self.cursors[i].next = resume;
                    Error::Damaged {
                        topic: c.topic,
                        partition: c.partition,
                        from: c.next,
                        resume,
                    }
                }
                Err(e) => map_log_err(c.topic, e),
            };
            self.rr = self.rr.wrapping_add(1);
            if out.is_empty() {
                return Err(error);
            }
            self.deferred = Some(error);
            return Ok(out);
        }
        self.rr = self.rr.wrapping_add(1);
        Ok(out)
    }
}

fn delivery(topic: Topic, partition: u32, r: &mdhub_log::RecordView<'_>) -> Option<Delivery> {
    let symbol = std::str::from_utf8(r.key)
        .ok()
        .and_then(|k| Symbol::new(k).ok())?;
    let encoding = match r.header(ENCODING_HEADER) {
        Some(v) => Encoding::parse(std::str::from_utf8(v).ok()?).ok()?,
        None => Encoding::Json,
    };
    Some(Delivery {
        position: Position {
            topic,
            partition,
            offset: r.offset,
        },
        symbol,
        timestamp: Timestamp::from_nanos(r.timestamp),
        encoding,
        value: Bytes::copy_from_slice(r.value),
    })
}

#[async_trait::async_trait]
impl Subscription for EmbeddedSubscription {
    async fn next_batch(&mut self, max: usize, wait: Duration) -> Result<Vec<Delivery>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            // Mark the current commit as seen before reading, so a commit that
            // lands during the read wakes the wait below.
            self.wake.borrow_and_update();
            if let Some(e) = self.deferred.take() {
                return Err(e);
            }
            let out = self.read_available(max.max(1))?;
            if !out.is_empty() {
                return Ok(out);
            }
            match tokio::time::timeout_at(deadline, self.wake.changed()).await {
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(Error::Closed),
                Err(_) => return Ok(Vec::new()),
            }
        }
    }

    async fn commit(&mut self, positions: &[Position]) -> Result<()> {
        let Some(group) = self.group.clone() else {
            return Err(Error::NotAGroup);
        };
        let log = self.log.clone();
        // Only the highest position per partition matters.
        let upto = highest_per_partition(positions);
        tokio::task::spawn_blocking(move || -> Result<()> {
            for ((topic, partition), offset) in upto {
                log.commit(&group, topic.log_name(), partition, offset + 1)?;
            }
            Ok(())
        })
        .await
        .map_err(|_| Error::Closed)?
    }

    async fn seek(&mut self, topic: Topic, partition: u32, offset: u64) -> Result<()> {
        check_partition(self.partitions, topic, partition)?;
        check_offset(&self.log, topic, partition, offset)?;
        set_cursor(&mut self.cursors, topic, partition, offset);
        Ok(())
    }

    fn positions(&self) -> Vec<Position> {
        crate::cursor::positions(&self.cursors)
    }
}

/// A publish that appended `positions` and then failed on `e`: the appended
/// records stay in the log's buffers (a failed flush keeps them and the next
/// flush writes them), so they must not be appended again.
fn partial(positions: Vec<Position>, e: mdhub_log::Error) -> Error {
    Error::Partial {
        positions,
        source: Box::new(Error::Log(e)),
    }
}
