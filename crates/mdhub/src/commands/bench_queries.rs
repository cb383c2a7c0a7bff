//! `mdhub bench queries`: what heavy history queries cost the stream. Starts
//! `mdhub run` with a simulator at `--rate` events/s, measures how many
//! events its ingest stage publishes per second for `--duration` seconds
//! idle, then for as long again while `--clients` loops send a heavy SQL
//! query to `/v1/history/sql` (by default a cross join that runs into the
//! query time limit), and prints both rates, their ratio and how the
//! queries were answered. Queries run on their own runtime with memory,
//! time and concurrency limits (docs/security.md): the ratio shows they
//! leave ingest alone.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::bench::{bench_config, http_get, start_hub_with};

/// Flags of `mdhub bench queries`.
#[derive(Debug, Args)]
pub struct QueriesArgs {
    /// Events per second the hub's simulator produces.
    #[arg(long, default_value_t = 5000.0)]
    pub rate: f64,
    /// Seconds measured idle, and again under queries.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Query loops running at once (the gateway runs at most
    /// gateway.history_queries; more are refused with 429).
    #[arg(long, default_value_t = 4)]
    pub clients: usize,
    /// The SQL each loop sends.
    #[arg(
        long,
        default_value = "SELECT sum(a.value * b.value) FROM generate_series(1, 30000) a, generate_series(1, 30000) b"
    )]
    pub sql: String,
    /// history.query_timeout_secs of the started hub.
    #[arg(long, default_value_t = 5)]
    pub query_timeout_secs: u64,
}

/// Published events per second over `secs`, read from `/v1/status`.
async fn ingest_rate(addr: &str, secs: f64) -> anyhow::Result<f64> {
    let published = |body: String| -> anyhow::Result<u64> {
        let v: serde_json::Value = serde_json::from_str(&body)?;
        v["ingest"]["published"]
            .as_u64()
            .context("no ingest.published in /v1/status")
    };
    let (t0, n0) = (
        Instant::now(),
        published(http_get(addr, "/v1/status").await?)?,
    );
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    let n1 = published(http_get(addr, "/v1/status").await?)?;
    Ok((n1 - n0) as f64 / t0.elapsed().as_secs_f64())
}

/// One GET; the HTTP status code.
async fn status_of(addr: &str, path: &str) -> anyhow::Result<u16> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await?;
    let text = String::from_utf8_lossy(&head);
    text.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .context("no HTTP status")
}

pub(crate) async fn run(a: QueriesArgs) -> anyhow::Result<()> {
    let extra = format!("[history]\nquery_timeout_secs = {}\n", a.query_timeout_secs);
    let (_hub, addr) = start_hub_with(&bench_config(a.rate, 100, &extra))?;
    tokio::time::sleep(Duration::from_secs(3)).await; // warm-up
    let idle = ingest_rate(&addr, a.duration).await?;
    eprintln!("idle: {idle:.0} events/s published");

    let answers: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let stop = tokio_util::sync::CancellationToken::new();
    let path = format!(
        "/v1/history/sql?q={}",
        url::form_urlencoded::byte_serialize(a.sql.as_bytes()).collect::<String>()
    );
    let mut loops = Vec::new();
    for _ in 0..a.clients {
        let (addr, path, answers, stop) =
            (addr.clone(), path.clone(), answers.clone(), stop.clone());
        loops.push(tokio::spawn(async move {
            while !stop.is_cancelled() {
                let code = match status_of(&addr, &path).await {
                    Ok(c) => c.to_string(),
                    Err(e) => format!("error: {e}"),
                };
                *answers.lock().entry(code.clone()).or_default() += 1;
                if code == "429" {
                    // Refused at once: try again shortly, not in a spin.
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let loaded = ingest_rate(&addr, a.duration).await?;
    stop.cancel();
    for l in loops {
        let _ = tokio::time::timeout(Duration::from_secs(a.query_timeout_secs + 5), l).await;
    }
    let answers = answers.lock().clone();
    println!("simulator rate      {:>10.0} events/s", a.rate);
    println!("ingest, idle        {idle:>10.0} events/s");
    println!(
        "ingest, {} queries  {loaded:>10.0} events/s ({:.1}% of idle)",
        a.clients,
        100.0 * loaded / idle.max(1.0)
    );
    println!("query answers       {answers:?}");
    println!("query               {}", a.sql);
    Ok(())
}
