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
    let dir = tempfile::tempdir().unwrap();
    let bus = bus(&dir.path().join("log"));
    let lake = Lake::open(dir.path().join("lake").to_str().unwrap()).unwrap();
    bus.publish(&events(0, n)).await.unwrap();
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
        let fast = history.bars(&aapl, width, from, to).await.unwrap();
        let ticks = history
            .bars_from_ticks(&aapl, width, from, to)
            .await
            .unwrap();
        assert_eq!(fast, ticks, "{secs} s bars: footers + hot rows = ticks");
        want.push(fast);
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
            history.bars(&aapl, width, from, to).await.unwrap(),
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
            history.bars(&aapl, width, from, to).await.unwrap(),
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
