//! `mdhub tail SYMBOL...`: a terminal client that prints the live stream.
//!
//! Built on `mdhub_client`, like any bot: subscribe, print snapshots and
//! updates, and after a dropped connection reconnect (capped exponential
//! backoff with full jitter, rotating through the `--url`s) and resume from
//! the last position of each symbol and channel, so no update is missed or
//! printed twice.

use std::process::ExitCode;

use clap::Args;
use mdhub_client::{Client, ClientConfig, ClientEvent, Data, Kind};
use mdhub_types::{Event, Topic};

use crate::config::Config;

/// Flags of `mdhub tail`.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// Symbols to watch (canonical: AAPL, BTC-USDT, EUR-USD).
    #[arg(required = true, value_name = "SYMBOL")]
    pub symbols: Vec<String>,
    /// Gateway WebSocket URL; several (comma-separated) are tried in turn
    /// after a disconnect. Default: ws://<server.listen>/v1/ws.
    #[arg(long, env = "MDHUB_URL", value_delimiter = ',')]
    pub url: Vec<String>,
    /// Channels: quotes, trades, status (comma-separated). Default quotes,trades.
    #[arg(long, value_delimiter = ',', value_parser = parse_channel)]
    pub channels: Vec<Topic>,
    /// Print each event as a JSON data frame instead of a table.
    #[arg(long)]
    pub json: bool,
    /// API key or JWT, when the gateway requires one.
    #[arg(long, env = "MDHUB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// PEM certificates to trust for wss:// besides the usual authorities (a private CA, or a hub's self-signed server.tls_cert_file).
    #[arg(long, value_name = "PEM")]
    pub ca_file: Option<std::path::PathBuf>,
    /// Exit after this many data frames (snapshots and updates).
    #[arg(long, value_name = "N")]
    pub count: Option<u64>,
}

fn parse_channel(s: &str) -> Result<Topic, String> {
    Topic::from_channel(s).ok_or_else(|| format!("{s:?}: channels are quotes, trades, status"))
}

/// Entry point.
pub fn main(cfg: Config, args: TailArgs) -> ExitCode {
    let urls = if args.url.is_empty() {
        let mut a = cfg.server.listen;
        if a.ip().is_unspecified() {
            a.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        vec![format!("ws://{a}/v1/ws")]
    } else {
        args.url.clone()
    };
    super::block_on(false, async {
        tokio::select! {
            code = tail(urls, &args) => code,
            _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
        }
    })
}

async fn tail(urls: Vec<String>, args: &TailArgs) -> ExitCode {
    let mut config = ClientConfig::with_urls(urls);
    config.token = args.token.clone();
    config.ca_file = args.ca_file.clone();
    let mut client = match Client::connect(config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tail: {e}");
            return ExitCode::from(2);
        }
    };
    if client
        .subscribe(args.symbols.clone(), &args.channels)
        .await
        .is_err()
    {
        return ExitCode::FAILURE;
    }
    let mut printed = 0u64;
    while let Some(ev) = client.next().await {
        match ev {
            ClientEvent::Data(d) => {
                if args.json {
                    println!("{}", json_frame(&d));
                } else {
                    println!("{}", line(&d));
                }
                printed += 1;
                if args.count.is_some_and(|n| printed >= n) {
                    break;
                }
            }
            ClientEvent::Connected {
                epoch,
                epoch_changed: true,
                ..
            } => {
                eprintln!(
                    "tail: the hub's log changed (epoch {epoch}); starting from fresh snapshots"
                );
            }
            ClientEvent::Stopped { reason } => {
                eprintln!("tail: the server asked not to reconnect: {reason}");
                return ExitCode::FAILURE;
            }
            ClientEvent::Disconnected {
                reason, retry_in, ..
            } => eprintln!(
                "tail: {reason}; reconnecting in {} ms",
                retry_in.as_millis()
            ),
            ClientEvent::Reset {
                symbol,
                channel,
                reason,
            } => eprintln!("tail: {symbol} {channel}: reset ({reason:?}); a snapshot follows"),
            ClientEvent::Rejected {
                message, symbols, ..
            } => {
                eprintln!("tail: {message}: {}", symbols.join(", "));
            }
            _ => {}
        }
    }
    client.close().await;
    ExitCode::SUCCESS
}

/// The event as the data frame the gateway sent.
fn json_frame(d: &Data) -> String {
    let kind = match d.kind {
        Kind::Snapshot => mdhub_types::protocol::DataKind::Snapshot,
        Kind::Update => mdhub_types::protocol::DataKind::Update,
    };
    let event = serde_json::to_vec(&d.event).unwrap_or_default();
    let mut out = Vec::new();
    mdhub_types::protocol::data_frame(kind, d.pos, &event, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

fn line(f: &Data) -> String {
    let mark = if f.kind == Kind::Snapshot { "*" } else { " " };
    match &f.event {
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
