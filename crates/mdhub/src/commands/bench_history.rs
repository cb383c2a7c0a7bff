//! `mdhub bench history`: the archiver's ingest rate, bytes per row on disk,
//! and the 1-minute bars query against DuckDB on the same files.
//!
//! 1. Archive ingest: `--ticks` simulator events (the default venues and
//!    symbols, received at the simulator's own pacing) positioned as a log
//!    with 8 partitions places them, written to a fresh local lake by one
//!    archiver flush — encode (all cores) and durable write; then the same
//!    events published to an embedded log and archived by the archiver as a
//!    consumer group, from the first read to the last commit.
//! 2. Bytes per trade and per quote of the lake that run wrote, and which
//!    columns dominate.
//! 3. Bars: `--bar-ticks` trades of one symbol over one day, written as the
//!    archiver writes them (files of 1M rows), then `--runs` times the 1-minute
//!    OHLCV + VWAP + count query through `mdhub`'s engine and through DuckDB
//!    (in its own process, warm, timed inside it) on the same files. Medians.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use mdhub_bus::{Bus, EmbeddedBus, EmbeddedBusConfig};
use mdhub_feeds::sim::{SimConfig, SimMarket};
use mdhub_history::archive::{self, ArchiveConfig, ArchiveStats, Archiver, HotTier};
use mdhub_history::query::History;
use mdhub_history::{Lake, TableKind, encode_parquet, plan_files};
use mdhub_log::{Log, LogConfig};
use mdhub_types::{
    Decimal, Encoding, Event, Position, Positioned, Side, Symbol, Timestamp, Topic, Trade, Venue,
};
use tokio_util::sync::CancellationToken;

/// Flags of `mdhub bench history`.
#[derive(Debug, Args)]
pub struct HistoryArgs {
    /// Simulator events (quotes and trades) archived.
    #[arg(long, default_value_t = 2_000_000)]
    pub ticks: usize,
    /// Trades of the one symbol-day the bars query reads.
    #[arg(long, default_value_t = 5_000_000)]
    pub bar_ticks: usize,
    /// Runs of each query; the median is reported.
    #[arg(long, default_value_t = 10)]
    pub runs: usize,
    /// A python with duckdb for the side-by-side (default: ./.venv/bin/python).
    #[arg(long, value_name = "PATH")]
    pub python: Option<PathBuf>,
    /// Log encoding for the end-to-end run.
    #[arg(long, default_value = "avro", value_parser = ["json", "avro"])]
    pub encoding: String,
    /// Keep the lakes written (their directory is printed) instead of deleting them.
    #[arg(long)]
    pub keep: bool,
}

const DAY: i64 = 86_400_000_000_000;
/// 2024-05-01T00:00:00Z.
const DAY1: i64 = 1_714_521_600_000_000_000;
const PARTITIONS: u32 = 8;

pub(crate) async fn run(a: HistoryArgs) -> anyhow::Result<()> {
    let dir = super::bench::tempfile_dir::TempDir::new("history")?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "mdhub bench history: {} simulator ticks, {} trades for bars, {cores} cores",
        a.ticks, a.bar_ticks
    );

    let rows = simulated(a.ticks);
    archive_in_memory(&rows, dir.path()).await?;
    archive_from_log(&a, &rows, dir.path()).await?;
    drop(rows);
    bars(&a, dir.path()).await?;
    if a.keep {
        println!("lakes kept in {}", dir.path().display());
        std::mem::forget(dir);
    }
    Ok(())
}

/// 1a and 2: rows in memory → lake in one flush, and the bytes per row.
async fn archive_in_memory(rows: &[Positioned], dir: &Path) -> anyhow::Result<()> {
    // 1a. Encode + write, one flush.
    let trades = rows
        .iter()
        .filter(|r| r.position.topic == Topic::Trades)
        .count();
    let quotes = rows.len() - trades;
    let lake_dir = dir.join("lake");
    let lake = Lake::open(lake_dir.to_str().context("path")?)?;
    let stats = Arc::new(ArchiveStats::default());
    let mut archiver = Archiver::new(
        lake.clone(),
        ArchiveConfig {
            max_buffered_rows: usize::MAX,
            flush_interval: Duration::from_secs(3600),
            ..ArchiveConfig::default()
        },
        HotTier::new(),
        stats.clone(),
    );
    let copy = rows.to_vec();
    let t0 = Instant::now();
    archiver.push(copy)?;
    let pushed = t0.elapsed();
    let r = archiver.flush().await?;
    let total = t0.elapsed();
    println!(
        "\narchive, rows in memory -> lake: {:.2} M ticks/s ({} rows, {} files, {:.1} MB; buffering {:.0} ms, encode+write {:.0} ms)",
        rows.len() as f64 / total.as_secs_f64() / 1e6,
        r.rows,
        r.files,
        r.bytes as f64 / 1e6,
        pushed.as_secs_f64() * 1e3,
        (total - pushed).as_secs_f64() * 1e3,
    );

    // 2. Bytes per row, by column.
    let (t_bytes, t_cols) = lake_bytes(&lake_dir.join("trades"))?;
    let (q_bytes, q_cols) = lake_bytes(&lake_dir.join("quotes"))?;
    println!(
        "bytes on disk: {:.2} B/trade ({trades} trades), {:.2} B/quote ({quotes} quotes); files of one symbol-day each",
        t_bytes as f64 / trades as f64,
        q_bytes as f64 / quotes as f64
    );
    let show = |name: &str, cols: &BTreeMap<String, i64>, n: usize| {
        let mut v: Vec<_> = cols.iter().collect();
        v.sort_by_key(|(_, b)| -**b);
        let parts: Vec<String> = v
            .iter()
            .map(|(c, b)| format!("{c} {:.2}", **b as f64 / n as f64))
            .collect();
        println!(
            "  {name} B/row by column (compressed): {}",
            parts.join(", ")
        );
    };
    show("trades", &t_cols, trades);
    show("quotes", &q_cols, quotes);

    Ok(())
}

/// 1b: the same rows end to end from an embedded log, as consumer group
/// `mdhub-archive` on the consumer driver.
async fn archive_from_log(a: &HistoryArgs, rows: &[Positioned], dir: &Path) -> anyhow::Result<()> {
    // 1b. End to end from an embedded log, as consumer group mdhub-archive.
    let encoding = if a.encoding == "json" {
        Encoding::Json
    } else {
        Encoding::Avro
    };
    let log = Log::open(LogConfig {
        dir: dir.join("log"),
        partitions: PARTITIONS,
        ..LogConfig::default()
    })?;
    let bus: Arc<dyn Bus> = Arc::new(EmbeddedBus::new(
        Arc::new(log),
        EmbeddedBusConfig { encoding },
    )?);
    let events: Vec<Event> = rows.iter().map(|r| r.event.clone()).collect();
    for chunk in events.chunks(4096) {
        bus.publish(chunk).await?;
    }
    bus.sync().await?;
    drop(events);
    let lake2 = Lake::open(dir.join("lake2").to_str().context("path")?)?;
    let stats = Arc::new(ArchiveStats::default());
    let archiver = Archiver::new(
        lake2,
        ArchiveConfig {
            max_buffered_rows: 1_000_000,
            flush_interval: Duration::from_secs(3600),
            read_batch: 20_000,
        },
        HotTier::new(),
        stats.clone(),
    );
    let stop = CancellationToken::new();
    let t0 = Instant::now();
    let task = tokio::spawn(archive::run(bus.clone(), archiver, stop.clone()));
    let n = rows.len() as u64;
    while stats.rows_written.load(Ordering::Relaxed) + stats.buffered.load(Ordering::Relaxed) < n {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    stop.cancel();
    task.await??;
    let e2e = t0.elapsed();
    println!(
        "archive, embedded log ({}) -> lake, consumer group: {:.2} M ticks/s ({} rows in {:.2} s, {} flushes)",
        a.encoding,
        n as f64 / e2e.as_secs_f64() / 1e6,
        stats.rows_written.load(Ordering::Relaxed),
        e2e.as_secs_f64(),
        stats.flushes.load(Ordering::Relaxed),
    );

    Ok(())
}

/// 3: 1-minute bars over one symbol-day, from the footers, from the ticks,
/// and DuckDB on the same files.
async fn bars(a: &HistoryArgs, dir: &Path) -> anyhow::Result<()> {
    // 3. Bars over one symbol-day.
    let bars_dir = dir.join("bars");
    let bars_lake = Lake::open(bars_dir.to_str().context("path")?)?;
    let symbol = Symbol::new("BTC-USDT")?;
    let day = one_day(&symbol, a.bar_ticks);
    for chunk in day.chunks(1_000_000) {
        for f in plan_files(TableKind::Trades, chunk)? {
            bars_lake
                .put(&f.key.path(), encode_parquet(TableKind::Trades, &f.rows)?)
                .await?;
        }
    }
    drop(day);
    let history = History::new(bars_lake, None);
    let (from, to) = (
        Timestamp::from_nanos(DAY1),
        Timestamp::from_nanos(DAY1 + DAY),
    );
    let (ours, lo, hi, bars) = time_bars(&history, &symbol, from, to, a.runs, false).await?;
    println!(
        "\n1-minute bars over one symbol-day of {} trades ({bars} bars):\n  mdhub, from the files' minute bars: median {ours:.2} ms (min {lo:.2}, max {hi:.2})",
        a.bar_ticks
    );
    let (ticks, lo, hi, _) = time_bars(&history, &symbol, from, to, a.runs, true).await?;
    println!(
        "  mdhub, from the ticks (DataFusion SQL): median {ticks:.1} ms (min {lo:.1}, max {hi:.1})"
    );
    let python = a
        .python
        .clone()
        .unwrap_or_else(|| PathBuf::from(".venv/bin/python"));
    match duckdb_bars(&python, &bars_dir, a.runs) {
        Ok((duck, duck_bars)) => println!(
            "  DuckDB on the same files (from the ticks): median {duck:.1} ms ({duck_bars} bars); mdhub / DuckDB = {:.4} from minute bars, {:.2} from the ticks",
            ours / duck,
            ticks / duck
        ),
        Err(e) => println!("  DuckDB side-by-side skipped: {e:#}"),
    }
    Ok(())
}

/// Median, min and max milliseconds of `runs` 1-minute bar queries (after
/// one warm-up), and the bar count; `ticks` forces the path over the ticks.
async fn time_bars(
    history: &History,
    symbol: &Symbol,
    from: Timestamp,
    to: Timestamp,
    runs: usize,
    ticks: bool,
) -> anyhow::Result<(f64, f64, f64, usize)> {
    let width = Duration::from_secs(60);
    let mut times = Vec::new();
    let mut bars = 0;
    for _ in 0..runs.max(1) + 1 {
        let t = Instant::now();
        bars = if ticks {
            history
                .bars_from_ticks(symbol, None, width, from, to)
                .await?
                .len()
        } else {
            history.bars(symbol, None, width, from, to).await?.len()
        };
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.remove(0);
    let m = median(&mut times);
    Ok((m, times[0], times[times.len() - 1], bars))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Total bytes of the Parquet files under `dir`, and compressed bytes per column.
fn lake_bytes(dir: &std::path::Path) -> anyhow::Result<(u64, BTreeMap<String, i64>)> {
    use parquet::file::reader::{FileReader, SerializedFileReader};
    let mut total = 0;
    let mut cols = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d)? {
            let p = e?.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                total += std::fs::metadata(&p)?.len();
                let r = SerializedFileReader::new(std::fs::File::open(&p)?)?;
                for rg in r.metadata().row_groups() {
                    for c in rg.columns() {
                        *cols.entry(c.column_path().string()).or_default() += c.compressed_size();
                    }
                }
            }
        }
    }
    Ok((total, cols))
}

/// Simulator events at the simulator's pacing, positioned as a log with
/// [`PARTITIONS`] partitions places them (by Kafka's hash of the symbol).
fn simulated(n: usize) -> Vec<Positioned> {
    let cfg = SimConfig::default();
    let mut market = SimMarket::new(&cfg, 7).expect("default simulator");
    let mut now = Timestamp::from_nanos(DAY1 + DAY / 2);
    let mut rng = Lcg(0x9E37_79B9_7F4A_7C15);
    let mut offsets: BTreeMap<(Topic, u32), u64> = BTreeMap::new();
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        let rate = cfg.rate * market.rate_multiplier(now);
        now = now.add_nanos((-rng.uniform().ln() / rate * 1e9) as i64);
        let event = market.next_event(now);
        let topic = event.topic();
        let partition =
            mdhub_bus::partition_for_key(event.symbol().as_str().as_bytes(), PARTITIONS);
        let offset = offsets.entry((topic, partition)).or_default();
        out.push(Positioned {
            position: Position {
                topic,
                partition,
                offset: *offset,
            },
            event,
        });
        *offset += 1;
    }
    out
}

/// `n` trades of `symbol` spread over 2024-05-01: a random walk on a 0.01
/// tick, sizes of 1 to 5 lots of 0.001, times a few microseconds apart with
/// jitter, `ts_received` 0.2–1.2 ms later.
fn one_day(symbol: &Symbol, n: usize) -> Vec<Positioned> {
    let mut rng = Lcg(42);
    let venue = Venue::new("binance").expect("venue");
    let step = DAY / n.max(1) as i64;
    let mut cents: i64 = 6_000_000; // 60000.00
    (0..n)
        .map(|i| {
            let ts = DAY1 + i as i64 * step + (rng.next() % step.max(1) as u64) as i64 / 2;
            cents += (rng.next() % 3) as i64 - 1;
            let size = 1 + rng.next() % 5;
            Positioned {
                position: Position {
                    topic: Topic::Trades,
                    partition: 0,
                    offset: i as u64,
                },
                event: Event::Trade(Trade {
                    venue: venue.clone(),
                    symbol: symbol.clone(),
                    ts_exchange: Timestamp::from_nanos(ts),
                    ts_received: Timestamp::from_nanos(
                        ts + 200_000 + (rng.next() % 1_000_000) as i64,
                    ),
                    price: Decimal::from_parts(i128::from(cents), 2).expect("price"),
                    size: Decimal::from_parts(i128::from(size), 3).expect("size"),
                    side: if rng.next().is_multiple_of(2) {
                        Side::Buy
                    } else {
                        Side::Sell
                    },
                    trade_id: Some((1_000_000_000 + i).to_string()),
                }),
            }
        })
        .collect()
}

/// A small deterministic generator for benchmark data (never prices).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn uniform(&mut self) -> f64 {
        ((self.next() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }
}

const DUCKDB_BARS: &str = r#"
import statistics, sys, time, duckdb
lake, runs = sys.argv[1], int(sys.argv[2])
con = duckdb.connect()
q = f"""
SELECT time_bucket(INTERVAL '1 minute', ts_exchange) AS ts,
  first(price ORDER BY ts_exchange, log_offset) AS open, max(price) AS high, min(price) AS low,
  last(price ORDER BY ts_exchange, log_offset) AS close, sum(size) AS volume,
  sum(price::DOUBLE * size::DOUBLE) / sum(size::DOUBLE) AS vwap, count(*) AS trades
FROM read_parquet('{lake}/trades/*/*/*.parquet', hive_partitioning = true)
WHERE symbol = 'BTC-USDT' AND ts_exchange >= TIMESTAMPTZ '2024-05-01 00:00:00+00'
  AND ts_exchange < TIMESTAMPTZ '2024-05-02 00:00:00+00'
GROUP BY 1 ORDER BY 1
"""
n = len(con.sql(q).fetchall())
times = []
for _ in range(runs):
    t = time.perf_counter()
    con.sql(q).fetchall()
    times.append((time.perf_counter() - t) * 1e3)
print(statistics.median(times), n)
"#;

/// DuckDB's median time (ms) for the same bars, and its bar count.
fn duckdb_bars(
    python: &std::path::Path,
    lake: &std::path::Path,
    runs: usize,
) -> anyhow::Result<(f64, usize)> {
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(DUCKDB_BARS)
        .arg(lake)
        .arg(runs.max(1).to_string())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    anyhow::ensure!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout)?;
    let mut it = text.split_whitespace();
    let ms: f64 = it.next().context("no time")?.parse()?;
    let n: usize = it.next().context("no count")?.parse()?;
    Ok((ms, n))
}
