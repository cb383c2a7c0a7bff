//! The archiver against a real embedded log and a local lake: every row once
//! across a crash in the middle of a flush and a restart, hot rows queryable
//! before they are written and never counted twice, and bars from SQL.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::{Int64Type, UInt32Type, UInt64Type};
use mdhub_bus::{Bus, EmbeddedBus, EmbeddedBusConfig, Start, SubscribeSpec};
use mdhub_history::archive::{self, ArchiveConfig, ArchiveStats, Archiver, HotTier};
use mdhub_history::query::History;
use mdhub_history::{Lake, TableKind, encode_parquet, plan_files};
use mdhub_log::{Log, LogConfig};
use mdhub_types::{
    Decimal, Encoding, Event, Positioned, Quote, Side, Symbol, Timestamp, Trade, Venue,
};
use object_store::ObjectStoreExt;
use tokio_util::sync::CancellationToken;

/// 2024-05-01T23:59:00Z: the events run over midnight into 2024-05-02.
const T0: i64 = 1_714_607_940_000_000_000;

fn bus(dir: &std::path::Path) -> Arc<dyn Bus> {
    let log = Log::open(LogConfig {
        dir: dir.to_path_buf(),
        partitions: 4,
        ..LogConfig::default()
    })
    .expect("open log");
    Arc::new(
        EmbeddedBus::new(
            Arc::new(log),
            EmbeddedBusConfig {
                encoding: Encoding::Json,
            },
        )
        .unwrap(),
    )
}

/// `n` events: trades and quotes of three symbols, one every 50 ms from
/// `start` (so 2400 of them cross midnight), prices with 18 decimals.
fn events(start: usize, n: usize) -> Vec<Event> {
    let symbols = ["AAPL", "BTC-USD", "EUR-USD"];
    (start..start + n)
        .map(|i| {
            let symbol = Symbol::new(symbols[i % 3]).unwrap();
            let ts = Timestamp::from_nanos(T0 + i as i64 * 50_000_000);
            let price = Decimal::parse(&format!("{}.{:018}", 100 + i % 7, i)).unwrap();
            if i % 2 == 0 {
                Event::Trade(Trade {
                    venue: Venue::new("sim-nasdaq").unwrap(),
                    symbol,
                    ts_exchange: ts,
                    ts_received: ts.add_nanos(1_000),
                    price,
                    size: Decimal::parse(&format!("{}", 1 + i % 5)).unwrap(),
                    side: if i % 4 == 0 { Side::Buy } else { Side::Sell },
                    trade_id: Some(i.to_string()),
                })
            } else {
                Event::Quote(Quote {
                    venue: Venue::new("sim-nasdaq").unwrap(),
                    symbol,
                    ts_exchange: ts,
                    ts_received: ts.add_nanos(1_000),
                    bid_price: price,
                    bid_size: Decimal::parse("10").unwrap(),
                    ask_price: price.checked_add(Decimal::parse("0.01").unwrap()).unwrap(),
                    ask_size: Decimal::parse("12.5").unwrap(),
                })
            }
        })
        .collect()
}

/// Every `(partition, offset)` of `table` the queries see, in order, with duplicates.
async fn positions(history: &History, table: TableKind) -> Vec<(u32, u64)> {
    let (_, batches) = history
        .sql(&format!(
            "SELECT log_partition, log_offset FROM {table} ORDER BY 1, 2"
        ))
        .await
        .unwrap();
    let mut out = Vec::new();
    for b in &batches {
        let (p, o) = (
            b.column(0).as_primitive::<UInt32Type>(),
            b.column(1).as_primitive::<UInt64Type>(),
        );
        out.extend((0..b.num_rows()).map(|r| (p.value(r), o.value(r))));
    }
    out
}

/// Every position the log holds for `table`.
async fn log_positions(bus: &dyn Bus, table: TableKind) -> Vec<(u32, u64)> {
    let mut out = Vec::new();
    for p in 0..bus.partitions(table.topic()) {
        let (start, end) = bus.watermarks(table.topic(), p).await.unwrap();
        out.extend((start..end).map(|o| (p, o)));
    }
    out
}

async fn read_all(bus: &dyn Bus) -> Vec<Positioned> {
    let mut sub = bus
        .subscribe(SubscribeSpec::Direct {
            topics: mdhub_types::Topic::PRICES.to_vec(),
            start: Start::Earliest,
        })
        .await
        .unwrap();
    let mut out = Vec::new();
    loop {
        let b = sub
            .next_batch(10_000, Duration::from_millis(300))
            .await
            .unwrap();
        if b.is_empty() {
            return out;
        }
        out.extend(b.iter().map(|d| d.positioned().unwrap()));
    }
}

fn archiver(lake: &Lake, flush: Duration) -> (Archiver, Arc<HotTier>, Arc<ArchiveStats>) {
    let hot = HotTier::new();
    let stats = Arc::new(ArchiveStats::default());
    let a = Archiver::new(
        lake.clone(),
        ArchiveConfig {
            flush_interval: flush,
            max_buffered_rows: 1_000_000,
            read_batch: 1000,
        },
        hot.clone(),
        stats.clone(),
    );
    (a, hot, stats)
}

/// A log holding `events(0, n)`, an empty lake next to it, and the log's records.
async fn setup(n: usize) -> (tempfile::TempDir, Arc<dyn Bus>, Lake, Vec<Positioned>) {
    setup_with(&events(0, n)).await
}

/// A log holding `events`, an empty lake next to it, and the log's records.
async fn setup_with(events: &[Event]) -> (tempfile::TempDir, Arc<dyn Bus>, Lake, Vec<Positioned>) {
    let dir = tempfile::tempdir().unwrap();
    let bus = bus(&dir.path().join("log"));
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap()).unwrap();
    bus.publish(events).await.unwrap();
    let rows = read_all(&*bus).await;
    (dir, bus, lake, rows)
}

/// Start the archiver, let it read, stop it (it drains to the log's end and flushes).
async fn run_once(bus: &Arc<dyn Bus>, lake: &Lake) -> Arc<ArchiveStats> {
    let (a, _, stats) = archiver(lake, Duration::from_secs(3600));
    let stop = CancellationToken::new();
    let task = tokio::spawn(archive::run(bus.clone(), a, stop.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.cancel();
    task.await.unwrap().unwrap();
    stats
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_row_once_across_a_crash_mid_flush_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let bus = bus(&dir.path().join("log"));
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap()).unwrap();
    bus.publish(&events(0, 3000)).await.unwrap();

    // A previous archiver crashed in the middle of a flush: some files of
    // its batch are in the lake, its offsets were never committed.
    let rows = read_all(&*bus).await;
    let trades: Vec<Positioned> = rows
        .iter()
        .filter(|r| matches!(r.event, Event::Trade(_)))
        .cloned()
        .collect();
    let planned = plan_files(TableKind::Trades, &trades[..1000]).unwrap();
    assert!(planned.len() > 3, "several files: {}", planned.len());
    let crashed: usize = planned[..3].iter().map(|f| f.rows.len()).sum();
    for f in &planned[..3] {
        lake.put(
            &f.key.path(),
            encode_parquet(TableKind::Trades, &f.rows).unwrap(),
        )
        .await
        .unwrap();
    }

    let stats = run_once(&bus, &lake).await;
    assert_eq!(
        stats.rows_already_archived.load(Ordering::Relaxed),
        crashed as u64
    );
    assert_eq!(
        stats.rows_written.load(Ordering::Relaxed),
        3000 - crashed as u64
    );
    // A file per table, date and symbol (a symbol is in one partition),
    // but for the three groups the crashed flush wrote completely.
    assert_eq!(stats.files_written.load(Ordering::Relaxed), 2 * 2 * 3 - 3);

    // More data and a clean restart: the group resumes after its commit.
    bus.publish(&events(3000, 600)).await.unwrap();
    let stats = run_once(&bus, &lake).await;
    assert_eq!(stats.rows_written.load(Ordering::Relaxed), 600);
    assert_eq!(stats.rows_already_archived.load(Ordering::Relaxed), 0);

    let history = History::new(lake.clone(), None);
    for table in TableKind::ALL {
        assert_eq!(
            positions(&history, table).await,
            log_positions(&*bus, table).await,
            "{table}: the lake holds exactly the log's rows"
        );
    }
    // The lake keeps the exact decimals and the rows' dates.
    let (_, b) = history
        .sql("SELECT CAST(price AS VARCHAR) AS p FROM trades WHERE trade_id = '2998'")
        .await
        .unwrap();
    let text = datafusion::arrow::compute::cast(
        b[0].column(0),
        &datafusion::arrow::datatypes::DataType::Utf8,
    )
    .unwrap();
    assert_eq!(text.as_string::<i32>().value(0), "102.000000000000002998");
    let days = lake
        .files(TableKind::Quotes, &Default::default())
        .await
        .unwrap();
    let dates: BTreeSet<String> = days.iter().map(|f| f.key.date()).collect();
    assert_eq!(
        dates,
        BTreeSet::from(["2024-05-01".to_string(), "2024-05-02".to_string()])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hot_rows_are_queryable_and_never_counted_twice() {
    let (_dir, _bus, lake, rows) = setup(900).await;

    let (mut a, hot, _) = archiver(&lake, Duration::from_secs(3600));
    a.push(rows.clone()).unwrap();
    let history = History::new(lake.clone(), Some(hot.clone()));
    let count = |h: History| async move {
        let (_, b) = h.sql("SELECT count(*) FROM trades").await.unwrap();
        b[0].column(0).as_primitive::<Int64Type>().value(0)
    };
    assert_eq!(
        count(history.clone()).await,
        450,
        "hot rows, before any file"
    );

    // Files written while the hot tier still holds their rows (a flush in
    // progress): each row is counted once.
    let trades: Vec<Positioned> = rows
        .iter()
        .filter(|r| matches!(r.event, Event::Trade(_)))
        .cloned()
        .collect();
    for f in plan_files(TableKind::Trades, &trades[..200]).unwrap() {
        lake.put(
            &f.key.path(),
            encode_parquet(TableKind::Trades, &f.rows).unwrap(),
        )
        .await
        .unwrap();
    }
    assert_eq!(count(history.clone()).await, 450, "during a flush");
    let r = a.flush().await.unwrap();
    assert_eq!((r.rows, r.already_archived), (700, 200));
    assert_eq!(hot.rows(), 0);
    assert_eq!(
        count(history.clone()).await,
        450,
        "after the flush, from the lake"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_from_hot_and_cold_rows() {
    let (_dir, _bus, lake, rows) = setup(3000).await;
    let (mut a, hot, _) = archiver(&lake, Duration::from_secs(3600));
    a.push(rows[..2000].to_vec()).unwrap();
    a.flush().await.unwrap();
    a.push(rows[2000..].to_vec()).unwrap();
    let history = History::new(lake, Some(hot));

    let aapl = Symbol::new("AAPL").unwrap();
    let bars = history
        .bars(
            &aapl,
            None,
            Duration::from_secs(60),
            Timestamp::from_nanos(T0),
            Timestamp::from_nanos(T0 + 3_600_000_000_000),
        )
        .await
        .unwrap();
    // AAPL trades are events 0, 6, 12, …: one every 300 ms, 500 of them,
    // from 23:59:00 to 00:01:29.7 — bars at 23:59, 00:00 and 00:01.
    let counts: Vec<u64> = bars.iter().map(|b| b.trades).collect();
    assert_eq!(counts, vec![200, 200, 100]);
    let first = &bars[0];
    assert_eq!(first.ts, Timestamp::from_nanos(T0));
    assert_eq!(first.open.to_string(), "100"); // event 0: 100.000…000
    // Exact check of the first bar against the events themselves.
    let mine: Vec<&Trade> = rows
        .iter()
        .filter_map(|r| match &r.event {
            Event::Trade(t)
                if t.symbol == aapl && t.ts_exchange.as_nanos() < T0 + 60_000_000_000 =>
            {
                Some(t)
            }
            _ => None,
        })
        .collect();
    assert_eq!(mine.len(), 200);
    let max = mine.iter().map(|t| t.price).max().unwrap();
    let min = mine.iter().map(|t| t.price).min().unwrap();
    assert_eq!(
        (first.high, first.low),
        (max.normalized(), min.normalized())
    );
    assert_eq!(first.close, mine.last().unwrap().price.normalized());
    let volume = mine
        .iter()
        .fold(Decimal::ZERO, |v, t| v.checked_add(t.size).unwrap());
    assert_eq!(first.volume, volume.normalized());
    assert!(first.vwap.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compaction_merges_small_files_and_survives_an_interrupted_run() {
    use mdhub_history::compact::{CompactPolicy, compact};
    let (_dir, bus, lake, rows) = setup(3000).await;
    let (mut a, hot, _) = archiver(&lake, Duration::from_secs(3600));
    for chunk in rows.chunks(500) {
        a.push(chunk.to_vec()).unwrap();
        a.flush().await.unwrap();
    }
    let history = History::new(lake.clone(), Some(hot));
    let before = lake
        .files(TableKind::Trades, &Default::default())
        .await
        .unwrap();
    assert!(
        before.len() >= 12,
        "several files per group: {}",
        before.len()
    );
    let source = &before[0];
    let source_bytes = lake
        .store()
        .get(&source.key.path())
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();

    let r = compact(
        &lake,
        TableKind::Trades,
        &Default::default(),
        &CompactPolicy::default(),
    )
    .await
    .unwrap();
    let after = lake
        .files(TableKind::Trades, &Default::default())
        .await
        .unwrap();
    assert_eq!(after.len(), 6, "one file per date and symbol: {after:?}");
    assert_eq!(
        (r.files_merged, r.files_written, r.rows),
        (before.len(), 6, 1500)
    );
    assert_eq!(
        positions(&history, TableKind::Trades).await,
        log_positions(&*bus, TableKind::Trades).await
    );

    // A compaction killed after its write and before its deletes leaves a
    // source behind: readers skip it, the next compaction deletes it.
    lake.put(&source.key.path(), source_bytes).await.unwrap();
    assert_eq!(
        positions(&history, TableKind::Trades).await,
        log_positions(&*bus, TableKind::Trades).await
    );
    let r = compact(
        &lake,
        TableKind::Trades,
        &Default::default(),
        &CompactPolicy::default(),
    )
    .await
    .unwrap();
    assert_eq!((r.files_deleted, r.files_merged), (1, 0));

    // The archiver goes on above the compacted files.
    bus.publish(&events(3000, 300)).await.unwrap();
    let more: Vec<Positioned> = read_all(&*bus)
        .await
        .into_iter()
        .filter(|r| r.event.ts_exchange().as_nanos() >= T0 + 3000 * 50_000_000)
        .collect();
    assert_eq!(more.len(), 300);
    a.push(more).unwrap();
    let f = a.flush().await.unwrap();
    assert_eq!((f.rows, f.already_archived), (300, 0));
    for table in TableKind::ALL {
        assert_eq!(
            positions(&history, table).await,
            log_positions(&*bus, table).await
        );
    }
}

/// Compact every file of `table` with the default policy.
async fn compact_all(lake: &Lake, table: TableKind) {
    use mdhub_history::compact::{CompactPolicy, compact};
    compact(lake, table, &Default::default(), &CompactPolicy::default())
        .await
        .unwrap();
}

/// `symbol`'s bars of every venue, `width` wide, as [`History::bars`] gives
/// them (from the footers and hot rows when it can), checked equal to those
/// computed from the ticks.
async fn bars_both_ways(
    history: &History,
    symbol: &Symbol,
    width: Duration,
    from: Timestamp,
    to: Timestamp,
) -> Vec<mdhub_history::query::Bar> {
    let fast = history.bars(symbol, None, width, from, to).await.unwrap();
    let ticks = history
        .bars_from_ticks(symbol, None, width, from, to)
        .await
        .unwrap();
    assert_eq!(fast, ticks, "{width:?} bars: footers + hot rows = ticks");
    fast
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minute_bars_from_footers_match_the_ticks_through_compaction_and_retention() {
    use mdhub_history::compact::{CompactPolicy, compact};
    use mdhub_history::retention::{self, RetentionPolicy};
    let (_dir, _bus, lake, rows) = setup(3000).await;
    let (mut a, hot, _) = archiver(&lake, Duration::from_secs(3600));
    for part in [&rows[..1000], &rows[1000..2000]] {
        a.push(part.to_vec()).unwrap();
        a.flush().await.unwrap();
    }
    a.push(rows[2000..].to_vec()).unwrap(); // in the hot tier only
    let history = History::new(lake.clone(), Some(hot));
    let aapl = Symbol::new("AAPL").unwrap();
    let (from, to) = (
        Timestamp::from_nanos(T0),
        Timestamp::from_nanos(T0 + 3_600_000_000_000),
    );
    let mut want = Vec::new();
    for secs in [60, 120, 3600] {
        let width = Duration::from_secs(secs);
        want.push(bars_both_ways(&history, &aapl, width, from, to).await);
    }
    assert_eq!(want[0].len(), 3);
    for table in TableKind::ALL {
        compact(&lake, table, &Default::default(), &CompactPolicy::default())
            .await
            .unwrap();
    }
    for (i, secs) in [60, 120, 3600].into_iter().enumerate() {
        let width = Duration::from_secs(secs);
        assert_eq!(
            history.bars(&aapl, None, width, from, to).await.unwrap(),
            want[i],
            "after compaction"
        );
    }

    // Drop the raw ticks of 2024-05-01 (T0's day): its minute bars stay.
    let day2 = (T0 + 86_400_000_000_000).div_euclid(86_400_000_000_000);
    let r = retention::apply(&lake, &RetentionPolicy { raw_days: Some(0) }, day2)
        .await
        .unwrap();
    assert_eq!(r.files_thinned, 2 * 3, "trades and quotes of three symbols");
    // (The hot tier still holds some of that day's rows: the lake alone.)
    let (_, b) = History::new(lake.clone(), None)
        .sql(&format!(
            "SELECT count(*) FROM trades WHERE ts_exchange < to_timestamp_nanos({})",
            T0 + 60_000_000_000
        ))
        .await
        .unwrap();
    assert_eq!(
        b[0].column(0).as_primitive::<Int64Type>().value(0),
        0,
        "raw ticks dropped"
    );
    for (i, secs) in [60, 120, 3600].into_iter().enumerate() {
        let width = Duration::from_secs(secs);
        assert_eq!(
            history.bars(&aapl, None, width, from, to).await.unwrap(),
            want[i],
            "after retention"
        );
    }
    // Thinned files keep their names: the archiver does not write those rows again.
    let again = a.flush().await.unwrap();
    assert_eq!(again.already_archived, 0);
    let (mut b2, _, _) = archiver(&lake, Duration::from_secs(3600));
    b2.push(rows[..1000].to_vec()).unwrap();
    assert_eq!(b2.flush().await.unwrap().rows, 0);
}

/// The PostgreSQL server the hot-tier test writes to
/// (`MDHUB_TEST_DATABASE_URL`, default the machine's own on 5432).
fn database_url() -> String {
    std::env::var("MDHUB_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_hot_tier_exactly_once_with_day_partitions_and_retention() {
    use mdhub_history::pg::{self, PgSink, PgStats};
    let base = database_url();
    // A schema of its own, so runs never see each other's tables.
    let schema = format!(
        "mdhub_test_{}_{}",
        std::process::id(),
        Timestamp::now().as_nanos()
    );
    let (admin, conn) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "PostgreSQL at {base} ({e}): the hot-tier test needs it (scripts/test.sh checks it)"
            )
        });
    tokio::spawn(conn);
    admin
        .batch_execute(&format!("CREATE SCHEMA {schema}"))
        .await
        .unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}options=-csearch_path%3D{schema}");

    let (_dir, bus, _lake, rows) = setup(3000).await;
    let stats = Arc::new(PgStats::default());
    let stop = CancellationToken::new();
    let task = tokio::spawn(pg::run(
        bus.clone(),
        url.clone(),
        0,
        stats.clone(),
        stop.clone(),
    ));
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while stats.inserted.load(Ordering::Relaxed) < 3000 {
        assert!(
            std::time::Instant::now() < deadline,
            "inserted {}",
            stats.inserted.load(Ordering::Relaxed)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.cancel();
    task.await.unwrap().unwrap();

    let mut sink = PgSink::connect(&url).await.unwrap();
    assert!(
        !sink.is_timescale(),
        "this machine's PostgreSQL has no TimescaleDB"
    );
    let (reader, conn) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    let q = |sql: String| {
        let client = &reader;
        async move { client.query_one(&sql, &[]).await.unwrap() }
    };
    let n: i64 = q("SELECT count(*) FROM mdhub_trades".into()).await.get(0);
    assert_eq!(n, 1500);
    let row = q(
        "SELECT price::text, ts_exchange_ns, log_offset FROM mdhub_trades WHERE trade_id = '2998'"
            .into(),
    )
    .await;
    assert_eq!(row.get::<_, String>(0), "102.000000000000002998");
    assert_eq!(row.get::<_, i64>(1), T0 + 2998 * 50_000_000);
    let parts: i64 = q("SELECT count(*) FROM pg_inherits i JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'mdhub_quotes' AND p.relnamespace = current_schema()::regnamespace".into())
        .await
        .get(0);
    assert_eq!(parts, 2, "a partition per day");

    // A replay inserts nothing: the log position is the key.
    for table in TableKind::ALL {
        assert_eq!(sink.write(table, &rows).await.unwrap(), 0);
    }
    // Retention: keep 1 day before 2024-05-03 → 2024-05-01 goes, 05-02 stays.
    let may3 = Timestamp::from_nanos(T0 + 2 * 86_400_000_000_000);
    assert_eq!(
        sink.retention(1, may3).await.unwrap(),
        2,
        "one day of each table"
    );
    let left: i64 = q(format!(
        "SELECT count(*) FROM mdhub_trades WHERE ts_exchange_ns < {}",
        T0 + 60_000_000_000
    ))
    .await
    .get(0);
    assert_eq!(left, 0);
    let kept: i64 = q("SELECT count(*) FROM mdhub_trades".into()).await.get(0);
    assert_eq!(kept, 1500 - 600, "the 2024-05-02 trades stay");
    drop(sink);
    admin
        .batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

/// 2024-05-01T12:00:00Z: the two-venue events' start.
const V0: i64 = 1_714_564_800_000_000_000;

/// Trades and quotes of `BTC-USDT` on two venues at clearly different
/// prices — `sim-a` near 67000, `sim-b` near 60000 — interleaved, one every
/// 700 ms from [`V0`] for `n` events; prices to the cent, sizes to the
/// thousandth (so the test's own sums fit an i128).
fn two_venue_events(n: usize) -> Vec<Event> {
    let symbol = Symbol::new("BTC-USDT").unwrap();
    (0..n)
        .map(|i| {
            let (venue, base) = if i % 3 == 0 {
                ("sim-b", 60_000)
            } else {
                ("sim-a", 67_000)
            };
            let venue = Venue::new(venue).unwrap();
            let ts = Timestamp::from_nanos(V0 + i as i64 * 700_000_000);
            let price =
                Decimal::parse(&format!("{}.{:02}", base + (i * 37) % 90, i % 100)).unwrap();
            let size = Decimal::parse(&format!("0.{:03}", 1 + (i * 7919) % 997)).unwrap();
            if i % 4 != 3 {
                Event::Trade(Trade {
                    venue,
                    symbol: symbol.clone(),
                    // Some trades share a time: the log offset orders them.
                    ts_exchange: Timestamp::from_nanos(
                        ts.as_nanos() - (i as i64 % 5 == 1) as i64 * 700_000_000,
                    ),
                    ts_received: ts.add_nanos(1_000),
                    price,
                    size,
                    side: Side::Buy,
                    trade_id: Some(i.to_string()),
                })
            } else {
                Event::Quote(Quote {
                    venue,
                    symbol: symbol.clone(),
                    ts_exchange: ts,
                    ts_received: ts.add_nanos(1_000),
                    bid_price: price,
                    bid_size: size,
                    ask_price: price.checked_add(Decimal::parse("0.5").unwrap()).unwrap(),
                    ask_size: size,
                })
            }
        })
        .collect()
}

/// The exact bars of `venue`'s trades among `rows`, `width` wide, computed
/// here from the rows alone: integers at the rows' scales (cents ×
/// thousandths), VWAP rounded half away from zero to 18 places.
fn expected_bars(rows: &[Positioned], venue: &str, width: i64) -> Vec<(i64, [String; 6], u64)> {
    use std::collections::BTreeMap;
    let scaled = |d: Decimal, places: u8| d.rescaled(places).unwrap().mantissa();
    let mut groups: BTreeMap<i64, Vec<(i64, u64, Decimal, Decimal)>> = BTreeMap::new();
    for r in rows {
        if let Event::Trade(t) = &r.event
            && t.venue.as_str() == venue
        {
            let ts = t.ts_exchange.as_nanos();
            groups.entry(ts - ts.rem_euclid(width)).or_default().push((
                ts,
                r.position.offset,
                t.price,
                t.size,
            ));
        }
    }
    groups
        .into_iter()
        .map(|(start, mut trades)| {
            trades.sort_by_key(|t| (t.0, t.1));
            let notional: i128 = trades.iter().map(|t| scaled(t.2, 2) * scaled(t.3, 3)).sum();
            let volume: i128 = trades.iter().map(|t| scaled(t.3, 3)).sum();
            // Σ p·s has 5 places, Σ s 3: the quotient to 18 places.
            let (n, d) = (notional * 10i128.pow(16), volume);
            let (q, r) = (n / d, n % d);
            let vwap = q + i128::from(2 * r >= d);
            let text = |d: Decimal| d.normalized().to_string();
            let prices = trades.iter().map(|t| t.2);
            (
                start,
                [
                    text(trades[0].2),
                    text(prices.clone().max().unwrap()),
                    text(prices.min().unwrap()),
                    text(trades[trades.len() - 1].2),
                    text(Decimal::from_parts(volume, 3).unwrap()),
                    text(Decimal::from_parts(vwap, 18).unwrap()),
                ],
                trades.len() as u64,
            )
        })
        .collect()
}

/// `bars` in the shape of [`expected_bars`].
fn shape(bars: &[mdhub_history::query::Bar]) -> Vec<(i64, [String; 6], u64)> {
    bars.iter()
        .map(|b| {
            (
                b.ts.as_nanos(),
                [
                    b.open.to_string(),
                    b.high.to_string(),
                    b.low.to_string(),
                    b.close.to_string(),
                    b.volume.to_string(),
                    b.vwap.unwrap().to_string(),
                ],
                b.trades,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_trades_and_quotes_per_venue() {
    use mdhub_history::retention::{self, RetentionPolicy};
    let (_dir, _bus, lake, rows) = setup_with(&two_venue_events(600)).await;
    // The first half in the lake (two flushes: two files per group), the
    // rest in the hot tier.
    let (mut a, hot, _) = archiver(&lake, Duration::from_secs(3600));
    for part in [&rows[..150], &rows[150..300]] {
        a.push(part.to_vec()).unwrap();
        a.flush().await.unwrap();
    }
    a.push(rows[300..].to_vec()).unwrap();
    let history = History::new(lake.clone(), Some(hot));
    let btc = Symbol::new("BTC-USDT").unwrap();
    let (sim_a, sim_b) = (Venue::new("sim-a").unwrap(), Venue::new("sim-b").unwrap());
    let (from, to) = (
        Timestamp::from_nanos(V0 - 60_000_000_000),
        Timestamp::from_nanos(V0 + 3_600_000_000_000),
    );

    let check_bars = |history: History, when: &'static str| {
        let (btc, sim_a, sim_b, rows) = (btc.clone(), sim_a.clone(), sim_b.clone(), rows.clone());
        async move {
            for secs in [60u64, 120, 7] {
                let width = Duration::from_secs(secs);
                let all = bars_both_ways(&history, &btc, width, from, to).await;
                let mut together = Vec::new();
                for (venue, lo, hi) in [(&sim_a, "67000", "67100"), (&sim_b, "60000", "60100")] {
                    let mine = history
                        .bars(&btc, Some(venue), width, from, to)
                        .await
                        .unwrap();
                    assert!(mine.iter().all(|b| b.venue.as_ref() == Some(venue)));
                    assert_eq!(
                        shape(&mine),
                        expected_bars(&rows, venue.as_str(), width.as_nanos() as i64),
                        "{when}, {secs} s bars of {venue}: exactly its own trades"
                    );
                    let (lo, hi) = (Decimal::parse(lo).unwrap(), Decimal::parse(hi).unwrap());
                    assert!(
                        mine.iter().all(|b| b.low >= lo && b.high < hi),
                        "{venue}'s bars hold no other venue's prices"
                    );
                    together.extend(mine);
                }
                together.sort_by(|x, y| (x.ts, &x.venue).cmp(&(y.ts, &y.venue)));
                assert_eq!(all, together, "{when}: without a venue, every venue's bars");
            }
        }
    };
    check_bars(history.clone(), "hot and cold").await;

    // Trades and quotes of one venue, or of both.
    for table in TableKind::ALL {
        let count = |venue: Option<&Venue>| {
            rows.iter()
                .filter(|r| {
                    TableKind::of(&r.event) == Some(table)
                        && venue.is_none_or(|v| r.event.venue() == v)
                })
                .count()
        };
        for venue in [None, Some(&sim_a), Some(&sim_b)] {
            let (_, batches) = history
                .range(
                    table,
                    std::slice::from_ref(&btc),
                    venue,
                    from,
                    to,
                    None,
                    100_000,
                )
                .await
                .unwrap();
            let got: Vec<Positioned> = batches
                .iter()
                .flat_map(|b| mdhub_history::events(table, b).unwrap())
                .collect();
            assert_eq!(got.len(), count(venue), "{table} of {venue:?}");
            assert!(venue.is_none_or(|v| got.iter().all(|p| p.event.venue() == v)));
        }
    }

    // The last quote as of a time: of one venue, and of each.
    let at = Timestamp::from_nanos(V0 + 200 * 700_000_000);
    let last_of = |venue: &Venue| {
        rows.iter()
            .filter(|r| {
                matches!(r.event, Event::Quote(_))
                    && r.event.venue() == venue
                    && r.event.ts_exchange() <= at
            })
            .max_by_key(|r| (r.event.ts_exchange(), r.position.offset))
            .cloned()
            .unwrap()
    };
    for venue in [&sim_a, &sim_b] {
        let q = history.last_quote(&btc, Some(venue), at, 31).await.unwrap();
        assert_eq!(q, Some(last_of(venue)), "{venue}");
    }
    let each = history.last_quotes(&btc, at, 31).await.unwrap();
    assert_eq!(each, vec![last_of(&sim_a), last_of(&sim_b)]);
    let any = history
        .last_quote(&btc, None, at, 31)
        .await
        .unwrap()
        .unwrap();
    assert!(each.contains(&any));
    let before = Timestamp::from_nanos(V0 - 1);
    assert!(
        history
            .last_quotes(&btc, before, 31)
            .await
            .unwrap()
            .is_empty()
    );

    // Compaction and retention keep the bars per venue.
    for table in TableKind::ALL {
        compact_all(&lake, table).await;
    }
    check_bars(history.clone(), "after compaction").await;
    a.flush().await.unwrap();
    let next_day = V0.div_euclid(86_400_000_000_000) + 1;
    let r = retention::apply(&lake, &RetentionPolicy { raw_days: Some(0) }, next_day)
        .await
        .unwrap();
    assert!(
        r.files_thinned >= 2,
        "the trades and quotes of one symbol-day"
    );
    let cold = History::new(lake.clone(), None);
    for venue in [&sim_a, &sim_b] {
        let width = Duration::from_secs(60);
        assert_eq!(
            shape(&cold.bars(&btc, Some(venue), width, from, to).await.unwrap()),
            expected_bars(&rows, venue.as_str(), 60_000_000_000),
            "{venue}'s minute bars after retention dropped the ticks"
        );
    }
}

/// One trades file as a version before per-venue bars wrote it: its rows,
/// and `footer` (the twelve-field bars of all venues together) under
/// `mdhub.bars.1m`.
async fn put_legacy_file(lake: &Lake, rows: &[Positioned], footer: String, keep_rows: bool) {
    use parquet::arrow::ArrowWriter;
    use parquet::file::metadata::KeyValue;
    use parquet::file::properties::WriterProperties;
    let batch = mdhub_history::record_batch(TableKind::Trades, rows).unwrap();
    let batch = if keep_rows { batch } else { batch.slice(0, 0) };
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![KeyValue::new(
            mdhub_history::bars::BARS_KEY.to_owned(),
            footer,
        )]))
        .build();
    let mut w = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    let bytes = bytes::Bytes::from(w.into_inner().unwrap());
    let (first, last) = (rows[0].position, rows[rows.len() - 1].position);
    let key = mdhub_history::FileKey::new(
        TableKind::Trades,
        rows[0].event.ts_exchange(),
        rows[0].event.symbol().clone(),
        first,
        last,
    )
    .unwrap();
    lake.put(&key.path(), bytes).await.unwrap();
}

/// The footer a version before per-venue bars wrote for `rows`: every
/// venue's trades in one series.
fn legacy_footer(rows: &[Positioned]) -> String {
    let one = Venue::new("one").unwrap();
    let relabeled: Vec<Positioned> = rows
        .iter()
        .map(|r| {
            let mut r = r.clone();
            if let Event::Trade(t) = &mut r.event {
                t.venue = one.clone();
            }
            r
        })
        .collect();
    let text = mdhub_history::bars::to_json(&mdhub_history::bars::minute_bars(&relabeled).unwrap());
    let bars: Vec<Vec<serde_json::Value>> = serde_json::from_str(&text).unwrap();
    serde_json::to_string(
        &bars
            .into_iter()
            .map(|b| b[1..].to_vec())
            .collect::<Vec<_>>(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bars_of_files_written_before_bars_were_per_venue() {
    let (_dir, _bus, lake, rows) = setup_with(&two_venue_events(600)).await;
    let trades: Vec<Positioned> = rows
        .into_iter()
        .filter(|r| matches!(r.event, Event::Trade(_)))
        .collect();
    let partition = trades[0].position.partition;
    assert!(
        trades.iter().all(|r| r.position.partition == partition),
        "one symbol, one partition"
    );
    let (sim_a, sim_b) = (Venue::new("sim-a").unwrap(), Venue::new("sim-b").unwrap());
    let btc = Symbol::new("BTC-USDT").unwrap();
    let (from, to) = (
        Timestamp::from_nanos(V0 - 60_000_000_000),
        Timestamp::from_nanos(V0 + 3_600_000_000_000),
    );
    let minute = Duration::from_secs(60);
    let history = History::new(lake.clone(), None);

    // Two venues' rows with their bars together: computed from the rows.
    let (mixed, rest) = trades.split_at(150);
    put_legacy_file(&lake, mixed, legacy_footer(mixed), true).await;
    for venue in [&sim_a, &sim_b] {
        assert_eq!(
            shape(
                &history
                    .bars(&btc, Some(venue), minute, from, to)
                    .await
                    .unwrap()
            ),
            expected_bars(mixed, venue.as_str(), 60_000_000_000),
            "{venue}: from the rows of an old file with several venues"
        );
    }

    // One venue's rows (under another symbol, a group of their own): the
    // old footer is that venue's bars, used as it is — a footer that
    // differs from the rows shows which was read.
    let eth = Symbol::new("ETH-USDT").unwrap();
    let only_a: Vec<Positioned> = rest[..150]
        .iter()
        .filter(|r| r.event.venue() == &sim_a)
        .map(|r| {
            let mut r = r.clone();
            if let Event::Trade(t) = &mut r.event {
                t.symbol = eth.clone();
            }
            r
        })
        .collect();
    let mut doctored = only_a.clone();
    if let Event::Trade(t) = &mut doctored[0].event {
        t.price = Decimal::parse("99999").unwrap();
    }
    put_legacy_file(&lake, &only_a, legacy_footer(&doctored), true).await;
    let doctored_high = Decimal::parse("99999").unwrap();
    let bars = history
        .bars(&eth, Some(&sim_a), minute, from, to)
        .await
        .unwrap();
    assert!(
        bars.iter().any(|b| b.high == doctored_high),
        "the footer of a one-venue file answers without reading its rows"
    );
    let ticks = history
        .bars_from_ticks(&eth, Some(&sim_a), minute, from, to)
        .await
        .unwrap();
    assert!(!ticks.is_empty() && ticks.iter().all(|b| b.high < doctored_high));

    // Rows already dropped by an old retention: the bars stay, under no venue.
    let gone = &rest[150..];
    put_legacy_file(&lake, gone, legacy_footer(gone), false).await;
    let all = history.bars(&btc, None, minute, from, to).await.unwrap();
    let unknown: u64 = all
        .iter()
        .filter(|b| b.venue.is_none())
        .map(|b| b.trades)
        .sum();
    assert_eq!(
        unknown,
        gone.len() as u64,
        "every thinned trade counted, under no venue"
    );
    for venue in [&sim_a, &sim_b] {
        let mine = history
            .bars(&btc, Some(venue), minute, from, to)
            .await
            .unwrap();
        assert_eq!(
            shape(&mine),
            expected_bars(mixed, venue.as_str(), 60_000_000_000),
            "{venue}: never the bars that name no venue"
        );
    }
    // Compaction keeps them so, in the new footer.
    compact_all(&lake, TableKind::Trades).await;
    let of_btc = mdhub_history::FileFilter {
        symbol: Some(btc.clone()),
        days: None,
    };
    assert_eq!(
        lake.files(TableKind::Trades, &of_btc).await.unwrap().len(),
        1
    );
    assert_eq!(
        history.bars(&btc, None, minute, from, to).await.unwrap(),
        all
    );
}
