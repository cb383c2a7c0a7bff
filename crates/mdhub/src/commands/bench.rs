//! `mdhub bench`: load generators that measure a running hub from outside.
//!
//! `mdhub bench fanout` starts `mdhub run` as a child process (or targets
//! `--url`), connects N WebSocket clients from this process, each subscribed
//! to K of the hub's S symbols, and reports deliveries per second, latency
//! from `ts_received` (taken by the hub when the event arrived) to receipt by
//! the client, and the hub's resident memory per idle connection.

use std::io::Write as _;
use std::process::{ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use futures_util::{SinkExt, StreamExt};
use mdhub_types::Timestamp;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;

/// `mdhub bench` scenarios.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Benchmark scenarios.
#[derive(Debug, Subcommand)]
pub enum Scenario {
    /// N WebSocket clients × K symbols each against a hub: deliveries/s, latency, RSS per connection.
    Fanout(FanoutArgs),
    /// Produce/consume throughput and latency of the embedded log and Kafka (`--kafka`), side by side.
    Bus(super::bench_bus::BusArgs),
    /// Redis cache: cache-writer and put throughput, 100-symbol snapshot latency.
    Cache(super::bench_cache::CacheArgs),
    /// Socket read -> publish latency of a venue feed (Binance protocol over loopback) into the embedded log.
    Feed(super::bench_feed::FeedArgs),
    /// Archiver ingest rate, bytes per row in the lake, and 1-minute bars over a symbol-day against DuckDB.
    History(super::bench_history::HistoryArgs),
    /// Ingest rate of a hub while heavy SQL queries run on it, against the same hub idle.
    Queries(super::bench_queries::QueriesArgs),
}

/// Flags of `mdhub bench fanout`.
#[derive(Debug, Args)]
pub struct FanoutArgs {
    /// Target an already running gateway (ws://HOST:PORT/v1/ws) instead of starting one.
    #[arg(long)]
    pub url: Option<String>,
    /// PID of the target hub, to read its memory (with --url).
    #[arg(long)]
    pub hub_pid: Option<u32>,
    /// Client connections.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Symbols each client subscribes to.
    #[arg(long, default_value_t = 10)]
    pub per_client: usize,
    /// Symbols the started hub simulates.
    #[arg(long, default_value_t = 100)]
    pub symbols: usize,
    /// Events per second the started hub's simulator produces (quotes + trades).
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Seconds measured (after the warm-up).
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of warm-up before measuring.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Extra clients that subscribe to every symbol and never read: the
    /// gateway must conflate, then close them, without slowing the others.
    #[arg(long, default_value_t = 0)]
    pub stalled: usize,
    /// Subscription changes per second across all clients (each one an
    /// unsubscribe of one symbol and a subscribe of another).
    #[arg(long, default_value_t = 0.0)]
    pub churn: f64,
    /// Run the same fan-out on a peer too, after mdhub, and print both side
    /// by side: `nats` starts a nats-server (WebSocket on) on loopback.
    #[arg(long, value_parser = ["nats"])]
    pub peer: Option<String>,
}

/// Entry point.
pub fn main(args: BenchArgs) -> ExitCode {
    super::block_on(true, async {
        let r = match args.scenario {
            Scenario::Fanout(f) => fanout(f).await,
            Scenario::Bus(b) => super::bench_bus::run(b).await,
            Scenario::Cache(c) => super::bench_cache::run(c).await,
            Scenario::Feed(f) => super::bench_feed::run(f).await,
            Scenario::History(h) => super::bench_history::run(h).await,
            Scenario::Queries(q) => super::bench_queries::run(q).await,
        };
        match r {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// A hub started for the benchmark; stopped on drop.
pub(crate) struct Child {
    child: std::process::Child,
    _dir: tempfile_dir::TempDir,
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let _ = self.child.wait();
    }
}

pub(crate) mod tempfile_dir {
    /// A directory removed on drop.
    pub(crate) struct TempDir(pub(crate) std::path::PathBuf);

    impl TempDir {
        /// A fresh `mdhub-bench-<what>-…` directory under the system's temp dir.
        pub(crate) fn new(what: &str) -> std::io::Result<TempDir> {
            let d = std::env::temp_dir().join(format!(
                "mdhub-bench-{what}-{}-{}",
                std::process::id(),
                mdhub_types::Timestamp::now().as_nanos()
            ));
            std::fs::create_dir_all(&d)?;
            Ok(TempDir(d))
        }

        /// Its path.
        pub(crate) fn path(&self) -> &std::path::Path {
            &self.0
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// The configuration of a benchmark hub: `symbols` simulated symbols of one
/// venue at `rate` events/s, with `extra` TOML sections after.
pub(crate) fn bench_config(rate: f64, symbols: usize, extra: &str) -> String {
    let mut cfg = format!(
        "[sim]\nseed = 1\nrate = {rate}\nregimes = false\n\n[ingest]\nstatus_interval_secs = 0\n\n{extra}\n[[sim.venues]]\nvenue = \"bench\"\nlatency_us = 200\n"
    );
    for i in 0..symbols {
        cfg.push_str(&format!(
            "\n[[sim.venues.symbols]]\nsymbol = \"S{i:04}\"\nstart_price = \"{}.00\"\ntick_size = \"0.01\"\nlot_size = \"1\"\nsize = \"100\"\n",
            50 + i
        ));
    }
    cfg
}

fn start_hub(a: &FanoutArgs) -> anyhow::Result<(Child, String)> {
    let extra = format!(
        "[gateway]\nmax_connections = {}\nmax_connections_per_ip = 0\n",
        a.clients + 100
    );
    start_hub_with(&bench_config(a.rate, a.symbols, &extra))
}

/// Starts `mdhub run` with configuration `cfg` in a fresh directory; the
/// child (stopped on drop) and its address.
pub(crate) fn start_hub_with(cfg: &str) -> anyhow::Result<(Child, String)> {
    let dir = std::env::temp_dir().join(format!("mdhub-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("bench.toml");
    std::fs::write(&file, cfg)?;
    let mut child = std::process::Command::new(std::env::current_exe()?)
        .arg("--config")
        .arg(&file)
        .args(["run", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&dir)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting mdhub run")?;
    let mut line = String::new();
    let stdout = child.stdout.take().context("child stdout")?;
    let mut reader = std::io::BufReader::new(stdout);
    std::io::BufRead::read_line(&mut reader, &mut line)?;
    std::thread::spawn(move || std::io::copy(&mut reader, &mut std::io::sink()));
    let addr = line
        .strip_prefix("mdhub running: http://")
        .and_then(|r| r.split_whitespace().next())
        .with_context(|| format!("unexpected output from mdhub run: {line:?}"))?
        .to_string();
    Ok((
        Child {
            child,
            _dir: tempfile_dir::TempDir(dir),
        },
        addr,
    ))
}

pub(crate) async fn http_get(addr: &str, path: &str) -> anyhow::Result<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut raw = String::new();
    s.read_to_string(&mut raw).await?;
    let (_, body) = raw.split_once("\r\n\r\n").context("bad HTTP response")?;
    Ok(body.to_string())
}

pub(crate) fn rss_kib(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|l| {
            l.strip_prefix(name)
                .and_then(|v| v.trim().parse::<f64>().ok())
        })
        .unwrap_or(0.0) as u64
}

/// `ts_received` of a data frame, read from its text without a full parse.
pub(crate) fn ts_received(text: &str) -> Option<i64> {
    let i = text.find("\"ts_received\":")? + "\"ts_received\":".len();
    let digits: &str = &text[i..text[i..]
        .find(|c: char| !c.is_ascii_digit())
        .map_or(text.len(), |e| i + e)];
    digits.parse().ok()
}

async fn fanout(a: FanoutArgs) -> anyhow::Result<()> {
    if a.clients == 0 || a.per_client == 0 {
        bail!("--clients and --per-client must be at least 1");
    }
    let (hub, addr, pid) = match &a.url {
        Some(u) => {
            let addr = u
                .trim_start_matches("ws://")
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            (None, addr, a.hub_pid)
        }
        None => {
            let (child, addr) = start_hub(&a)?;
            let pid = child.child.id();
            (Some(child), addr, Some(pid))
        }
    };
    let url = a
        .url
        .clone()
        .unwrap_or_else(|| format!("ws://{addr}/v1/ws"));
    let symbols = hub_symbols(&addr, a.symbols, a.url.is_some()).await?;
    let per = a.per_client.min(symbols.len());
    eprintln!(
        "hub {addr}: {} symbols; connecting {} clients × {per} symbols",
        symbols.len(),
        a.clients
    );

    // Idle connections first, for the memory figure.
    let rss_before = pid.and_then(rss_kib);
    let mut conns = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        let (ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("client {i}: connect"))?;
        conns.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_after = pid.and_then(rss_kib);

    let stalled = stall(&addr, &url, &symbols, a.stalled).await?;
    // Each client changes a subscription every `churn_every` (spread over
    // all clients, `--churn` changes per second in total).
    let churn_every = (a.churn > 0.0).then(|| Duration::from_secs_f64(a.clients as f64 / a.churn));
    let churned = Arc::new(AtomicU64::new(0));
    let counting = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let delivered = Arc::new(AtomicU64::new(0));
    let closed = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(a.clients);
    for (i, ws) in conns.into_iter().enumerate() {
        let mine: Vec<&String> = (0..per)
            .map(|k| &symbols[(i * per + k) % symbols.len()])
            .collect();
        let sub = serde_json::json!({"action":"subscribe","symbols":mine});
        let (counting, stop, delivered, closed, churned) = (
            counting.clone(),
            stop.clone(),
            delivered.clone(),
            closed.clone(),
            churned.clone(),
        );
        let phase = i as f64 / a.clients as f64;
        let spare: Vec<String> = (0..per)
            .map(|k| symbols[(i * per + k + per) % symbols.len()].clone())
            .collect();
        let mine: Vec<String> = mine.into_iter().cloned().collect();
        let counters = Counters {
            counting,
            stop,
            delivered,
            closed,
            churned,
        };
        let plan = Churn {
            every: churn_every,
            phase,
            mine,
            spare,
        };
        tasks.push(tokio::spawn(client(ws, sub, plan, counters)));
    }
    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
    let m0 = http_get(&addr, "/metrics").await.unwrap_or_default();
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let m1 = http_get(&addr, "/metrics").await.unwrap_or_default();
    stop.store(true, Ordering::Relaxed);
    let mut lat: Vec<u32> = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    let outcome = Outcome {
        per,
        symbols: symbols.len(),
        elapsed,
        lat,
        delivered: delivered.load(Ordering::Relaxed),
        metrics: (m0, m1),
        rss: (rss_before, rss_after),
        closed: closed.load(Ordering::Relaxed),
        churned: churned.load(Ordering::Relaxed),
    };
    let mdhub = print_fanout(&a, outcome)?;
    drop(stalled);
    drop(hub);
    if a.peer.is_some() {
        let nats = super::bench_nats::run(&a, &symbols).await?;
        print_side_by_side(&a, &mdhub, nats)?;
    }
    Ok(())
}

/// `n` stalled clients: they subscribe to every symbol, then never read again.
async fn stall(
    addr: &str,
    url: &str,
    symbols: &[String],
    n: usize,
) -> anyhow::Result<Vec<impl Sized + use<>>> {
    let mut stalled = Vec::with_capacity(n);
    for i in 0..n {
        // A small fixed receive buffer, so that the backlog piles up in the
        // hub, where its policy applies, and not in this process.
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.set_recv_buffer_size(4096)?;
        let stream = sock.connect(addr.parse()?).await?;
        let (mut ws, _) = tokio_tungstenite::client_async(url, stream)
            .await
            .with_context(|| format!("stalled client {i}: connect"))?;
        let sub = serde_json::json!({"action":"subscribe","symbols":symbols});
        ws.send(Message::text(sub.to_string())).await?;
        stalled.push(ws);
    }
    Ok(stalled)
}

/// What a fanout run measured.
#[derive(Debug)]
struct Outcome {
    per: usize,
    symbols: usize,
    elapsed: f64,
    lat: Vec<u32>,
    delivered: u64,
    /// `/metrics` before and after the measured window.
    metrics: (String, String),
    /// The hub's RSS (KiB) before and after the idle connections.
    rss: (Option<u64>, Option<u64>),
    closed: u64,
    churned: u64,
}

/// The figures compared with a peer.
#[derive(Debug)]
struct Summary {
    deliveries: f64,
    p50: u32,
    p99: u32,
    p999: u32,
    bytes_per_conn: Option<f64>,
    closed: u64,
}

/// The `p` quantile of sorted latencies.
fn quantile(lat: &[u32], p: f64) -> u32 {
    lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
        .copied()
        .unwrap_or(0)
}

/// Bytes of RSS per idle connection.
fn per_conn((before, after): (Option<u64>, Option<u64>), clients: usize) -> Option<f64> {
    Some(after?.saturating_sub(before?) as f64 * 1024.0 / clients as f64)
}

/// Prints mdhub's and the peer's figures in one table, with their ratio.
fn print_side_by_side(
    a: &FanoutArgs,
    m: &Summary,
    nats: super::bench_nats::NatsOutcome,
) -> anyhow::Result<()> {
    let mut lat = nats.lat;
    lat.sort_unstable();
    let n = Summary {
        deliveries: nats.delivered as f64 / nats.elapsed,
        p50: quantile(&lat, 0.5),
        p99: quantile(&lat, 0.99),
        p999: quantile(&lat, 0.999),
        bytes_per_conn: per_conn(nats.rss, a.clients),
        closed: nats.closed,
    };
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "\nside by side: {} WebSocket clients × {} subjects, {:.0} messages/s published ({} by the NATS publisher)",
        a.clients, a.per_client, a.rate, nats.published
    )?;
    writeln!(
        out,
        "  {:<24} {:>14} {:>14} {:>10}",
        "", "mdhub", "nats-server", "mdhub/nats"
    )?;
    let ratio = |x: f64, y: f64| {
        if y > 0.0 {
            format!("{:.2}", x / y)
        } else {
            "-".into()
        }
    };
    let rows: [(&str, f64, f64); 4] = [
        ("deliveries /s", m.deliveries, n.deliveries),
        ("latency p50 µs", m.p50.into(), n.p50.into()),
        ("latency p99 µs", m.p99.into(), n.p99.into()),
        ("latency p99.9 µs", m.p999.into(), n.p999.into()),
    ];
    for (name, x, y) in rows {
        writeln!(out, "  {name:<24} {x:>14.0} {y:>14.0} {:>10}", ratio(x, y))?;
    }
    if let (Some(x), Some(y)) = (m.bytes_per_conn, n.bytes_per_conn) {
        writeln!(
            out,
            "  {:<24} {x:>14.0} {y:>14.0} {:>10}",
            "bytes per idle conn",
            ratio(x, y)
        )?;
    }
    writeln!(
        out,
        "  {:<24} {:>14} {:>14}",
        "connections cut", m.closed, n.closed
    )?;
    Ok(())
}

/// Print a fanout run's figures; what a side-by-side table needs of them.
fn print_fanout(a: &FanoutArgs, o: Outcome) -> anyhow::Result<Summary> {
    let mut lat = o.lat;
    lat.sort_unstable();
    let q = |p: f64| quantile(&lat, p);
    let n = o.delivered;
    let updates_in = metric(&o.metrics.1, "mdhub_gateway_updates_total ")
        - metric(&o.metrics.0, "mdhub_gateway_updates_total ");
    let lagged = metric(&o.metrics.1, "mdhub_gateway_lagged_disconnects_total ");
    let conflated = metric(&o.metrics.1, "mdhub_gateway_conflated_total ");
    let skipped = metric(&o.metrics.1, "mdhub_gateway_conflated_skipped_total ");
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "fanout: {} clients × {} of {} symbols, {:.1} s measured",
        a.clients, o.per, o.symbols, o.elapsed
    )?;
    writeln!(
        out,
        "  updates into the gateway   {:>12.0} /s",
        updates_in as f64 / o.elapsed
    )?;
    writeln!(
        out,
        "  deliveries to clients      {:>12.0} /s",
        n as f64 / o.elapsed
    )?;
    writeln!(
        out,
        "  latency ts_received→client p50 {} µs  p99 {} µs  p99.9 {} µs  max {} µs  ({} samples)",
        q(0.5),
        q(0.99),
        q(0.999),
        lat.last().copied().unwrap_or(0),
        lat.len()
    )?;
    if let (Some(b), Some(af)) = o.rss {
        let per_conn = per_conn(o.rss, a.clients).unwrap_or(0.0);
        writeln!(
            out,
            "  hub RSS {b} KiB -> {af} KiB with {} idle connections: {per_conn:.0} bytes per connection",
            a.clients
        )?;
    }
    writeln!(
        out,
        "  connections closed by the hub {} (lagged disconnects counted by the hub: {lagged})",
        o.closed
    )?;
    if a.stalled > 0 {
        writeln!(
            out,
            "  stalled clients {}: switched to conflated delivery {conflated} times, {skipped} updates skipped, {lagged} closed (4008)",
            a.stalled
        )?;
    }
    if a.churn > 0.0 {
        writeln!(
            out,
            "  subscription changes {:.0} /s (unsubscribe + subscribe)",
            o.churned as f64 / (o.elapsed + a.warmup)
        )?;
    }
    Ok(Summary {
        deliveries: n as f64 / o.elapsed,
        p50: q(0.5),
        p99: q(0.99),
        p999: q(0.999),
        bytes_per_conn: per_conn(o.rss, a.clients),
        closed: o.closed,
    })
}

/// Wait (at most 30 s) until the hub lists `want` symbols (any, for a hub
/// given by `--url`); the symbols.
async fn hub_symbols(addr: &str, want: usize, any: bool) -> anyhow::Result<Vec<String>> {
    let mut symbols: Vec<String> = Vec::new();
    let t0 = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        if let Ok(body) = http_get(addr, "/v1/symbols").await {
            let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            symbols = v["symbols"]
                .as_array()
                .map(|l| {
                    l.iter()
                        .filter_map(|s| s["symbol"].as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            if any || symbols.len() >= want {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if symbols.is_empty() {
        bail!("the hub at {addr} lists no symbols");
    }
    Ok(symbols)
}

/// What the fanout clients share with the driver.
#[derive(Debug)]
struct Counters {
    counting: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    delivered: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
    churned: Arc<AtomicU64>,
}

/// A client's subscription changes: every `every`, starting at `phase` of
/// the period, swap one of `mine` for the same slot of `spare` and back.
#[derive(Debug)]
struct Churn {
    every: Option<Duration>,
    phase: f64,
    mine: Vec<String>,
    spare: Vec<String>,
}

/// One fanout client: subscribe, churn, read until stopped; the latencies
/// (µs from `ts_received`) of the updates it read while counting.
async fn client(
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    sub: serde_json::Value,
    plan: Churn,
    c: Counters,
) -> Vec<u32> {
    let Churn {
        every: churn_every,
        phase,
        mine,
        spare,
    } = plan;
    let per = mine.len().max(1);
    let Counters {
        counting,
        stop,
        delivered,
        closed,
        churned,
    } = c;
    let mut lat: Vec<u32> = Vec::new();
    if ws.send(Message::text(sub.to_string())).await.is_err() {
        return lat;
    }
    // Client i changes first at i/N of the period, so changes
    // spread evenly instead of coming in waves.
    let mut next_churn = churn_every.map(|e| Instant::now() + e.mul_f64(phase));
    let mut flip = 0usize;
    while !stop.load(Ordering::Relaxed) {
        if let (Some(at), Some(every)) = (next_churn, churn_every)
            && Instant::now() >= at
        {
            let k = flip % per;
            let (out, inn) = if (flip / per).is_multiple_of(2) {
                (&mine[k], &spare[k])
            } else {
                (&spare[k], &mine[k])
            };
            let un = serde_json::json!({"action":"unsubscribe","symbols":[out]});
            let sub = serde_json::json!({"action":"subscribe","symbols":[inn]});
            let sent = ws.send(Message::text(un.to_string())).await.is_ok()
                && ws.send(Message::text(sub.to_string())).await.is_ok();
            if sent {
                churned.fetch_add(1, Ordering::Relaxed);
            }
            flip += 1;
            next_churn = Some(at + every);
        }
        let msg = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(msg))) => msg,
            Ok(_) => {
                closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        let Message::Text(t) = msg else { continue };
        if !counting.load(Ordering::Relaxed) || !t.as_str().starts_with("{\"type\":\"update\"") {
            continue;
        }
        if let Some(ts) = ts_received(t.as_str()) {
            let us = (Timestamp::now().as_nanos() - ts).max(0) / 1000;
            lat.push(us.min(u32::MAX as i64) as u32);
        }
        delivered.fetch_add(1, Ordering::Relaxed);
    }
    let _ = ws.close(None).await;
    lat
}

#[cfg(test)]
mod tests {
    #[test]
    fn reads_ts_received() {
        let t = r#"{"type":"update","channel":"quotes","pos":"quotes:1:2","data":{"type":"quote","ts_exchange":5,"ts_received":1795699162807908185,"x":1}}"#;
        assert_eq!(super::ts_received(t), Some(1_795_699_162_807_908_185));
    }
}
