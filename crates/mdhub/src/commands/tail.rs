//! `mdhub tail SYMBOL...`: a terminal client that prints the live stream.
//!
//! It speaks the client protocol like any other client: subscribe, print
//! snapshots and updates, and after a dropped connection reconnect (capped
//! exponential backoff with full jitter) and resume from the last position of
//! each symbol and channel, so no update is missed or printed twice.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use futures_util::{SinkExt, StreamExt};
use mdhub_types::protocol::{ClientMessage, DataFrame, Resume};
use mdhub_types::{Event, Position};
use tokio_tungstenite::tungstenite::Message;

use crate::config::Config;

/// Flags of `mdhub tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Symbols to watch (canonical: AAPL, BTC-USDT, EUR-USD).
    #[arg(required = true, value_name = "SYMBOL")]
    pub symbols: Vec<String>,
    /// Gateway WebSocket URL. Default: ws://<server.listen>/v1/ws.
    #[arg(long, env = "MDHUB_URL")]
    pub url: Option<String>,
    /// Channels: quotes, trades, status (comma-separated). Default quotes,trades.
    #[arg(long, value_delimiter = ',')]
    pub channels: Option<Vec<String>>,
    /// Print the raw JSON frames instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Exit after this many data frames (snapshots and updates).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

/// Entry point.
pub fn main(cfg: Config, args: TailArgs) -> ExitCode {
    let url = args.url.clone().unwrap_or_else(|| {
        let mut a = cfg.server.listen;
        if a.ip().is_unspecified() {
            a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        format!("ws://{a}/v1/ws")
    });
    super::block_on(false, async {
        tokio::select! {
            code = tail(&url, &args) => code,
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        }
    })
}

async fn tail(url: &str, args: &TailArgs) -> ExitCode {
    let mut positions: BTreeMap<String, BTreeMap<String, Position>> = BTreeMap::new();
    let mut epoch: Option<String> = None;
    let mut printed = 0u64;
    let mut attempt = 0u32;
    loop {
        let before = printed;
        match session(url, args, &mut positions, &mut epoch, &mut printed).await {
            Ok(()) => return ExitCode::SUCCESS,
            Err(e) => {
                // A session that delivered data was healthy: start backing off afresh.
                attempt = if printed > before { 1 } else { attempt + 1 };
                let cap = Duration::from_millis(100 * 2u64.pow(attempt.min(6)))
                    .min(Duration::from_secs(5));
                let wait = cap.mul_f64(jitter());
                eprintln!("tail: {e}; reconnecting in {} ms", wait.as_millis());
                tokio::time::sleep(wait).await;
            }
        }
        if args.count.is_some_and(|n| printed >= n) {
            return ExitCode::SUCCESS;
        }
    }
}

/// A number in [0, 1) from the clock: enough to spread reconnects.
fn jitter() -> f64 {
    let n = mdhub_types::Timestamp::now().as_nanos() as u64;
    let x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11;
    x as f64 / (1u64 << 53) as f64
}

async fn session(
    url: &str,
    args: &TailArgs,
    positions: &mut BTreeMap<String, BTreeMap<String, Position>>,
    epoch: &mut Option<String>,
    printed: &mut u64,
) -> Result<(), String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| format!("cannot connect to {url}: {e}"))?;
    let resume = epoch.clone().map(|epoch| Resume {
        epoch,
        positions: positions.clone(),
    });
    let sub = ClientMessage::Subscribe {
        symbols: args.symbols.clone(),
        channels: args.channels.clone(),
        resume: resume.filter(|r| !r.positions.is_empty()),
        id: None,
    };
    let text = serde_json::to_string(&sub).map_err(|e| e.to_string())?;
    ws.send(Message::text(text))
        .await
        .map_err(|e| e.to_string())?;
    while let Some(msg) = ws.next().await {
        let msg = msg.map_err(|e| format!("connection lost: {e}"))?;
        let text = match msg {
            Message::Text(t) => t,
            Message::Close(frame) => {
                let why = frame
                    .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                    .unwrap_or_default();
                return Err(format!("server closed the connection ({why})"));
            }
            _ => continue,
        };
        let v: serde_json::Value = serde_json::from_str(text.as_str())
            .map_err(|e| format!("bad frame from server: {e}"))?;
        match v["type"].as_str() {
            Some("update" | "snapshot") => {
                let f: DataFrame =
                    serde_json::from_value(v).map_err(|e| format!("bad data frame: {e}"))?;
                positions
                    .entry(f.data.symbol().to_string())
                    .or_default()
                    .insert(f.channel.channel().to_string(), f.pos);
                if args.json {
                    println!("{}", text.as_str());
                } else {
                    println!("{}", line(&f));
                }
                *printed += 1;
                if args.count.is_some_and(|n| *printed >= n) {
                    let _ = ws.close(None).await;
                    return Ok(());
                }
            }
            Some("welcome") => {
                let e = v["epoch"].as_str().unwrap_or_default().to_string();
                if epoch.as_ref().is_some_and(|old| *old != e) {
                    eprintln!(
                        "tail: the hub's log changed (epoch {e}); starting from fresh snapshots"
                    );
                }
                *epoch = Some(e);
            }
            Some("error" | "reset") => eprintln!("tail: {}", text.as_str()),
            _ if args.json => println!("{}", text.as_str()),
            _ => {}
        }
    }
    Err("connection closed".into())
}

fn line(f: &DataFrame) -> String {
    let mark = if f.kind == "snapshot" { "*" } else { " " };
    match &f.data {
        Event::Quote(q) => format!(
            "{} {mark}{:<10} {:<11} quote {:>14} x {:<14} ({} x {})  {}",
            q.ts_received,
            q.symbol,
            q.venue,
            q.bid_price,
            q.ask_price,
            q.bid_size,
            q.ask_size,
            f.pos
        ),
        Event::Trade(t) => format!(
            "{} {mark}{:<10} {:<11} trade {:>14}   {:<14} {:<4} {}  {}",
            t.ts_received,
            t.symbol,
            t.venue,
            t.price,
            t.size,
            t.side.as_str(),
            t.trade_id
                .as_deref()
                .map(|i| format!("#{i}"))
                .unwrap_or_default(),
            f.pos
        ),
        Event::Status(st) => format!(
            "{} {mark}{:<10} {:<11} {:<6} {}  {}",
            st.ts_received,
            st.symbol,
            st.venue,
            st.status.as_str(),
            st.detail.as_deref().unwrap_or(""),
            f.pos
        ),
    }
}
