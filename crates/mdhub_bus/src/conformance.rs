//! The conformance suite for [`Bus`] implementations.
//!
//! [`run_all`] exercises every promise of the [`Bus`] and [`Subscription`]
//! contracts. It works on a log that already holds data (a shared Kafka
//! cluster): each run uses fresh symbols and group names and reads from the
//! watermarks it observed. Each check panics with a message naming the broken
//! promise.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mdhub_types::{
    Decimal, Encoding, Event, FeedEvent, FeedStatusKind, Position, Quote, Side, Symbol, Timestamp,
    Topic, Trade, Venue,
};

use crate::{Bus, Delivery, Error, Start, SubscribeSpec, Subscription, partition_for_key};

const WAIT: Duration = Duration::from_secs(10);

/// Run every check against `bus`.
pub async fn run_all(bus: Arc<dyn Bus>) {
    run_except(bus, &[]).await;
}

/// The names of the checks, in the order they run.
pub const CHECKS: [&str; 11] = [
    "partitioner",
    "direct_reads",
    "feed_status",
    "per_symbol_order",
    "latest",
    "seek_and_offset",
    "time_start",
    "groups",
    "out_of_range",
    "empty_wait",
    "concurrent_publishers",
];

/// Run every check but those named in `skip` — only for a stand-in that
/// lacks a feature by design (librdkafka's mock cluster has no time index);
/// every real implementation runs [`run_all`].
pub async fn run_except(bus: Arc<dyn Bus>, skip: &[&str]) {
    let run = unique_tag();
    for name in CHECKS {
        if skip.contains(&name) {
            continue;
        }
        match name {
            "partitioner" => positions_follow_the_java_partitioner(&*bus, &run).await,
            "direct_reads" => direct_reads_return_what_was_published(&*bus, &run).await,
            "feed_status" => feed_status_goes_to_its_own_topic_as_json(&*bus, &run).await,
            "per_symbol_order" => per_symbol_order_is_kept(&*bus, &run).await,
            "latest" => latest_sees_only_new_records(&*bus, &run).await,
            "seek_and_offset" => seek_and_offset_start_replay_exactly(&*bus, &run).await,
            "time_start" => time_start_finds_first_record_at_or_after(&*bus, &run).await,
            "groups" => groups_resume_after_commit(&*bus, &run).await,
            "out_of_range" => out_of_range_offsets_are_reported(&*bus).await,
            "empty_wait" => empty_wait_times_out(&*bus).await,
            _ => concurrent_publishers_get_distinct_positions(bus.clone(), &run).await,
        }
    }
    bus.sync().await.expect("sync");
}

fn unique_tag() -> String {
    let n = Timestamp::now().as_nanos() as u64;
    format!(
        "{:X}",
        (n ^ u64::from(std::process::id()).rotate_left(40)) % 0xFFFF_FFFF
    )
}

fn sym(run: &str, name: &str) -> Symbol {
    Symbol::new(&format!("{name}-{run}")).expect("valid test symbol")
}

/// A trade with values derived from `n`, including hard decimals.
pub fn trade(symbol: &Symbol, n: i64) -> Event {
    Event::Trade(Trade {
        venue: Venue::new("conformance").expect("venue"),
        symbol: symbol.clone(),
        ts_exchange: Timestamp::from_nanos(1_700_000_000_000_000_000 + n),
        ts_received: Timestamp::now(),
        price: Decimal::parse("12345678901.12345678").expect("decimal"),
        size: Decimal::from_parts(845 + i128::from(n), 8).expect("decimal"),
        side: if n % 2 == 0 { Side::Buy } else { Side::Sell },
        trade_id: Some(n.to_string()),
    })
}

/// A quote with values derived from `n`.
pub fn quote(symbol: &Symbol, n: i64) -> Event {
    Event::Quote(Quote {
        venue: Venue::new("conformance").expect("venue"),
        symbol: symbol.clone(),
        ts_exchange: Timestamp::from_nanos(1_700_000_000_000_000_000 + n),
        ts_received: Timestamp::now(),
        bid_price: Decimal::from_parts(100_000 + i128::from(n), 3).expect("decimal"),
        bid_size: Decimal::parse("0.123456789012345678").expect("decimal"),
        ask_price: Decimal::from_parts(100_001 + i128::from(n), 3).expect("decimal"),
        ask_size: Decimal::from(7),
    })
}

/// Read from `positions` (one per partition, the next offset wanted) until
/// `count` records of `symbols` arrived; other records are ignored.
async fn collect(
    bus: &dyn Bus,
    start: &[Position],
    symbols: &[Symbol],
    count: usize,
) -> Vec<Delivery> {
    let topics: Vec<Topic> = {
        let mut t: Vec<Topic> = start.iter().map(|p| p.topic).collect();
        t.sort();
        t.dedup();
        t
    };
    let mut sub = bus
        .subscribe(SubscribeSpec::Direct {
            topics,
            start: Start::Latest,
        })
        .await
        .expect("subscribe direct");
    for p in start {
        sub.seek(p.topic, p.partition, p.offset)
            .await
            .expect("seek to observed watermark");
    }
    read_until(&mut *sub, symbols, count).await
}

/// Read until `count` records of `symbols` arrived (others are ignored);
/// panics after [`WAIT`].
async fn read_until(sub: &mut dyn Subscription, symbols: &[Symbol], count: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while got.len() < count {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out: got {} of {count} records",
            got.len()
        );
        for d in sub
            .next_batch(1000, Duration::from_millis(200))
            .await
            .expect("next_batch")
        {
            if symbols.contains(&d.symbol) && got.len() < count {
                got.push(d);
            }
        }
    }
    got
}

async fn ends(bus: &dyn Bus, topic: Topic, symbols: &[Symbol]) -> Vec<Position> {
    let mut out = Vec::new();
    for s in symbols {
        let partition = partition_for_key(s.as_str().as_bytes(), bus.partitions(topic));
        if out.iter().any(|p: &Position| p.partition == partition) {
            continue;
        }
        let (_, end) = bus.watermarks(topic, partition).await.expect("watermarks");
        out.push(Position {
            topic,
            partition,
            offset: end,
        });
    }
    out
}

async fn positions_follow_the_java_partitioner(bus: &dyn Bus, run: &str) {
    for name in ["AAPL", "BTC-USDT", "EUR-USD", "MSFT", "X"] {
        let s = sym(run, name);
        let pos = bus
            .publish(&[quote(&s, 1), trade(&s, 2)])
            .await
            .expect("publish");
        assert_eq!(pos.len(), 2, "one position per event");
        assert_eq!(pos[0].topic, Topic::Quotes, "quotes go to price-quotes");
        assert_eq!(pos[1].topic, Topic::Trades, "trades go to price-trades");
        for p in &pos {
            let want = partition_for_key(s.as_str().as_bytes(), bus.partitions(p.topic));
            assert_eq!(
                p.partition, want,
                "partition of {s} must be murmur2(key) % partitions"
            );
        }
    }
}

async fn direct_reads_return_what_was_published(bus: &dyn Bus, run: &str) {
    let s = sym(run, "READ");
    let start = ends(bus, Topic::Trades, std::slice::from_ref(&s)).await;
    let events: Vec<Event> = (0..20).map(|i| trade(&s, i)).collect();
    let pos = bus.publish(&events).await.expect("publish");
    let got = collect(bus, &start, std::slice::from_ref(&s), 20).await;
    for ((d, e), p) in got.iter().zip(&events).zip(&pos) {
        assert_eq!(
            d.position, *p,
            "delivered position must equal the published one"
        );
        assert_eq!(
            &d.decode().expect("decode"),
            e,
            "delivered event must equal the published one, exactly"
        );
        assert_eq!(d.encoding, bus.encoding(), "encoding header");
        assert_eq!(
            d.timestamp,
            e.ts_received(),
            "record timestamp is ts_received"
        );
    }
    for w in pos.windows(2) {
        assert_eq!(
            w[1].offset,
            w[0].offset + 1,
            "one publisher, one partition: contiguous offsets"
        );
    }
}

/// A feed-status event with values derived from `n`.
pub fn status(symbol: &Symbol, n: i64) -> Event {
    Event::Status(FeedEvent {
        venue: Venue::new("conformance").expect("venue"),
        symbol: symbol.clone(),
        ts_exchange: Timestamp::from_nanos(1_700_000_000_000_000_000 + n),
        ts_received: Timestamp::now(),
        status: if n % 2 == 0 {
            FeedStatusKind::Disconnected
        } else {
            FeedStatusKind::Gap
        },
        detail: Some(format!("check \"{n}\"\nline two")),
    })
}

async fn feed_status_goes_to_its_own_topic_as_json(bus: &dyn Bus, run: &str) {
    let s = sym(run, "STATUS");
    let start = ends(bus, Topic::Status, std::slice::from_ref(&s)).await;
    let events = vec![status(&s, 0), trade(&s, 1), status(&s, 2)];
    let pos = bus.publish(&events).await.expect("publish");
    assert_eq!(
        pos[0].topic,
        Topic::Status,
        "status events go to feed-status"
    );
    assert_eq!(pos[1].topic, Topic::Trades);
    assert_eq!(
        pos[0].partition,
        partition_for_key(s.as_str().as_bytes(), bus.partitions(Topic::Status)),
        "feed-status is keyed by symbol like the price topics"
    );
    let got = collect(bus, &start, std::slice::from_ref(&s), 2).await;
    for (d, e) in got.iter().zip([&events[0], &events[2]]) {
        assert_eq!(
            d.encoding,
            Encoding::Json,
            "feed-status records are JSON whatever the bus encoding"
        );
        assert_eq!(&d.decode().expect("decode"), e, "status event round trip");
    }
}

async fn per_symbol_order_is_kept(bus: &dyn Bus, run: &str) {
    let syms: Vec<Symbol> = (0..6).map(|i| sym(run, &format!("ORD{i}"))).collect();
    let start = ends(bus, Topic::Quotes, &syms).await;
    let mut events = Vec::new();
    for n in 0..50 {
        for s in &syms {
            events.push(quote(s, n));
        }
    }
    for chunk in events.chunks(37) {
        bus.publish(chunk).await.expect("publish");
    }
    let got = collect(bus, &start, &syms, events.len()).await;
    let mut next: HashMap<Symbol, i64> = HashMap::new();
    for d in got {
        let Event::Quote(q) = d.decode().expect("decode") else {
            panic!("quote expected")
        };
        let n = next.entry(q.symbol.clone()).or_default();
        assert_eq!(
            q.ts_exchange.as_nanos() - 1_700_000_000_000_000_000,
            *n,
            "per-symbol order broken for {}",
            q.symbol
        );
        *n += 1;
    }
}

async fn latest_sees_only_new_records(bus: &dyn Bus, run: &str) {
    let s = sym(run, "LATEST");
    bus.publish(&[trade(&s, 0)]).await.expect("publish");
    let mut sub = bus
        .subscribe(SubscribeSpec::Direct {
            topics: vec![Topic::Trades],
            start: Start::Latest,
        })
        .await
        .expect("subscribe");
    bus.publish(&[trade(&s, 1)]).await.expect("publish");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "a Latest subscriber never saw the new record"
        );
        let batch = sub
            .next_batch(100, Duration::from_millis(200))
            .await
            .expect("next_batch");
        let mine: Vec<_> = batch.into_iter().filter(|d| d.symbol == s).collect();
        if let Some(d) = mine.first() {
            assert_eq!(
                d.decode().expect("decode"),
                trade(&s, 1).with_ts(d.timestamp),
                "Latest must skip older records"
            );
            break;
        }
    }
}

trait WithTs {
    fn with_ts(self, ts: Timestamp) -> Self;
}
impl WithTs for Event {
    fn with_ts(mut self, ts: Timestamp) -> Self {
        match &mut self {
            Event::Quote(q) => q.ts_received = ts,
            Event::Trade(t) => t.ts_received = ts,
            Event::Status(f) => f.ts_received = ts,
        }
        self
    }
}

async fn seek_and_offset_start_replay_exactly(bus: &dyn Bus, run: &str) {
    let s = sym(run, "SEEK");
    let events: Vec<Event> = (0..10).map(|i| trade(&s, i)).collect();
    let pos = bus.publish(&events).await.expect("publish");
    // Resume after the 4th: exactly the last six, in order.
    let from = Position {
        offset: pos[3].offset + 1,
        ..pos[3]
    };
    let got = collect(bus, &[from], std::slice::from_ref(&s), 6).await;
    let offsets: Vec<u64> = got.iter().map(|d| d.position.offset).collect();
    let want: Vec<u64> = pos[4..].iter().map(|p| p.offset).collect();
    assert_eq!(
        offsets, want,
        "resume from a position must deliver exactly the missed records"
    );
    let mut sub = bus
        .subscribe(SubscribeSpec::Direct {
            topics: vec![Topic::Trades],
            start: Start::Offset(pos[9].offset + 1),
        })
        .await;
    // Start::Offset applies to every partition; partitions with fewer records reject it.
    if let Ok(sub) = sub.as_mut() {
        let p = sub
            .positions()
            .into_iter()
            .find(|p| p.partition == pos[9].partition)
            .expect("partition");
        assert_eq!(p.offset, pos[9].offset + 1);
    }
}

async fn time_start_finds_first_record_at_or_after(bus: &dyn Bus, run: &str) {
    let s = sym(run, "TIME");
    let first = bus.publish(&[trade(&s, 0)]).await.expect("publish")[0];
    tokio::time::sleep(Duration::from_millis(20)).await;
    let cut = Timestamp::now();
    tokio::time::sleep(Duration::from_millis(20)).await;
    let second = bus.publish(&[trade(&s, 1)]).await.expect("publish")[0];
    let off = bus
        .offset_for_time(Topic::Trades, second.partition, cut)
        .await
        .expect("offset_for_time");
    assert!(
        off > first.offset && off <= second.offset,
        "offset_for_time({cut}) = {off}, want in ({}, {}]",
        first.offset,
        second.offset
    );
}

async fn groups_resume_after_commit(bus: &dyn Bus, run: &str) {
    let s = sym(run, "GROUP");
    let group = format!("conformance-{run}");
    let events: Vec<Event> = (0..10).map(|i| trade(&s, i)).collect();
    let partition = partition_for_key(s.as_str().as_bytes(), bus.partitions(Topic::Trades));
    let (_, end) = bus
        .watermarks(Topic::Trades, partition)
        .await
        .expect("watermarks");
    let pos = bus.publish(&events).await.expect("publish");
    let read_mine = |max: usize| {
        let s = s.clone();
        let group = group.clone();
        async move {
            let mut sub = bus
                .subscribe(SubscribeSpec::Group {
                    name: group,
                    topics: vec![Topic::Trades],
                    reset: Start::Earliest,
                })
                .await
                .expect("subscribe group");
            let mine = read_until(&mut *sub, std::slice::from_ref(&s), max).await;
            (sub, mine)
        }
    };
    let (mut sub, first) = read_mine(4).await;
    assert_eq!(
        first[0].position, pos[0],
        "a new group starts at reset=Earliest (offset {end} or before)"
    );
    sub.commit(&[first[3].position]).await.expect("commit");
    drop(sub);
    let (_sub, rest) = read_mine(6).await;
    let got: Vec<Position> = rest.iter().map(|d| d.position).collect();
    assert_eq!(
        got,
        pos[4..].to_vec(),
        "after commit, the group resumes exactly after the committed record"
    );
}

async fn out_of_range_offsets_are_reported(bus: &dyn Bus) {
    let (_, end) = bus.watermarks(Topic::Quotes, 0).await.expect("watermarks");
    let mut sub = bus
        .subscribe(SubscribeSpec::Direct {
            topics: vec![Topic::Quotes],
            start: Start::Latest,
        })
        .await
        .expect("subscribe");
    match sub.seek(Topic::Quotes, 0, end + 1_000_000).await {
        Err(Error::OffsetOutOfRange { requested, .. }) => assert_eq!(requested, end + 1_000_000),
        other => panic!("seek past the end must be OffsetOutOfRange, got {other:?}"),
    }
    match sub
        .seek(Topic::Quotes, bus.partitions(Topic::Quotes), 0)
        .await
    {
        Err(Error::NoSuchPartition { .. }) => {}
        other => panic!("seek to a missing partition must be NoSuchPartition, got {other:?}"),
    }
}

async fn empty_wait_times_out(bus: &dyn Bus) {
    let s = Symbol::new("NEVER-PUBLISHED").expect("symbol");
    let mut sub = bus
        .subscribe(SubscribeSpec::Direct {
            topics: vec![Topic::Trades],
            start: Start::Latest,
        })
        .await
        .expect("subscribe");
    let t0 = tokio::time::Instant::now();
    let batch = sub
        .next_batch(10, Duration::from_millis(150))
        .await
        .expect("next_batch");
    assert!(batch.iter().all(|d| d.symbol != s));
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "next_batch must return by its wait bound"
    );
}

async fn concurrent_publishers_get_distinct_positions(bus: Arc<dyn Bus>, run: &str) {
    let s = sym(run, "CONC");
    let start = ends(&*bus, Topic::Trades, std::slice::from_ref(&s)).await;
    let mut tasks = Vec::new();
    for t in 0..4i64 {
        let bus = bus.clone();
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            let mut pos = Vec::new();
            for i in 0..25 {
                pos.extend(
                    bus.publish(&[trade(&s, t * 1000 + i)])
                        .await
                        .expect("publish"),
                );
            }
            pos
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("task"));
    }
    let mut sorted = all.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(
        sorted.len(),
        100,
        "concurrent publishers must never share a position"
    );
    let got = collect(&*bus, &start, std::slice::from_ref(&s), 100).await;
    let mut per_task: HashMap<i64, i64> = HashMap::new();
    for d in got {
        let Event::Trade(t) = d.decode().expect("decode") else {
            panic!("trade expected")
        };
        let n = t.ts_exchange.as_nanos() - 1_700_000_000_000_000_000;
        let last = per_task.entry(n / 1000).or_insert(-1);
        assert!(
            n % 1000 > *last,
            "each publisher's records must stay in its order"
        );
        *last = n % 1000;
    }
}
