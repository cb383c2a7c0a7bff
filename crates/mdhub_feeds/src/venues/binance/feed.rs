//! The live Binance spot connection: combined streams over WebSocket.
//!
//! Rules from Binance's documentation and how this feed keeps them:
//! - Streams are named in the URL (`/stream?streams=btcusdt@trade/…`), so no
//!   subscribe messages are sent and the 5-messages-per-second inbound limit
//!   is never at risk; at most 1,024 streams per connection
//!   (`max_streams_per_connection`; more symbols are split over connections).
//! - The server pings; tungstenite answers every ping with a pong carrying
//!   its payload. The feed also pings every `ping_secs` itself, so a quiet
//!   connection (illiquid symbols) still shows it is alive; a connection with
//!   no frame at all for `stale_secs` is dropped and reopened (watchdog).
//! - A connection lives at most 24 hours; the feed reconnects a little before.
//! - Reconnects back off exponentially with full jitter (0.5 s doubling to
//!   30 s); a 429 or 418 on the handshake waits at least its `Retry-After`.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mdhub_types::{Event, Symbol, Timestamp, Venue};
use rand::Rng;
use tokio_tungstenite::tungstenite::{self, Message};

use super::Decoder;
use crate::venues::{Frame, VenueDecoder};
use crate::{Feed, FeedContext, FeedError, FeedState};

/// Settings of a Binance feed.
#[derive(Debug, Clone)]
pub struct BinanceConfig {
    /// Base URL. Default `wss://stream.binance.com:9443`.
    pub url: String,
    /// Canonical symbols to stream (trades and best bid/ask of each).
    pub symbols: Vec<Symbol>,
    /// Streams per connection (Binance allows 1,024).
    pub max_streams_per_connection: usize,
    /// Send a ping this often (seconds).
    pub ping_secs: u64,
    /// Drop a connection that sent nothing for this long (seconds).
    pub stale_secs: u64,
    /// Reconnect after this long, before Binance's 24-hour cut (seconds).
    pub max_connection_secs: u64,
}

impl Default for BinanceConfig {
    fn default() -> Self {
        BinanceConfig {
            url: "wss://stream.binance.com:9443".into(),
            symbols: Vec::new(),
            max_streams_per_connection: 1024,
            ping_secs: 20,
            stale_secs: 60,
            max_connection_secs: 23 * 3600 + 50 * 60,
        }
    }
}

/// The Binance spot feed.
#[derive(Debug)]
pub struct BinanceFeed {
    venue: Venue,
    cfg: BinanceConfig,
}

impl BinanceFeed {
    /// A feed for `cfg.symbols`.
    pub fn new(cfg: BinanceConfig) -> Self {
        BinanceFeed {
            venue: Venue::new("binance").unwrap_or_else(|_| unreachable!("valid venue id")),
            cfg,
        }
    }

    /// The combined-stream URLs, one per connection.
    pub fn urls(&self) -> Vec<String> {
        let names = Decoder::default().symbols;
        let streams: Vec<String> = self
            .cfg
            .symbols
            .iter()
            .flat_map(|s| {
                let n = names.native(s);
                [format!("{n}@trade"), format!("{n}@bookTicker")]
            })
            .collect();
        streams
            .chunks(self.cfg.max_streams_per_connection.max(2))
            .map(|c| {
                format!(
                    "{}/stream?streams={}",
                    self.cfg.url.trim_end_matches('/'),
                    c.join("/")
                )
            })
            .collect()
    }
}

/// How one connection ended.
enum End {
    Shutdown,
    /// Reconnect after at least this long.
    Retry(Duration, String),
}

async fn connection(url: &str, cfg: &BinanceConfig, ctx: &FeedContext) -> Result<End, FeedError> {
    let venue = || "binance".to_string();
    let connect = tokio::select! {
        _ = ctx.shutdown.cancelled() => return Ok(End::Shutdown),
        c = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async(url)) => c,
    };
    let mut ws = match connect {
        Err(_) => return Ok(End::Retry(Duration::ZERO, "connect timed out".into())),
        Ok(Err(tungstenite::Error::Http(resp))) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs)
                .unwrap_or(Duration::ZERO);
            let wait = if matches!(status, 418 | 429) {
                retry_after.max(Duration::from_secs(1))
            } else {
                retry_after
            };
            return Ok(End::Retry(
                wait,
                format!("handshake refused with HTTP {status}"),
            ));
        }
        Ok(Err(e)) => return Ok(End::Retry(Duration::ZERO, e.to_string())),
        Ok(Ok((ws, _))) => ws,
    };
    ctx.status.set_state(FeedState::Live);
    tracing::info!(url, "binance connected");
    let mut decoder = Decoder::default();
    let mut events: Vec<Event> = Vec::with_capacity(4);
    let mut ping = tokio::time::interval(Duration::from_secs(cfg.ping_secs.max(1)));
    ping.tick().await;
    let stale = Duration::from_secs(cfg.stale_secs.max(1));
    let expire = tokio::time::sleep(Duration::from_secs(cfg.max_connection_secs.max(1)));
    tokio::pin!(expire);
    loop {
        let msg = tokio::select! {
            _ = ctx.shutdown.cancelled() => {
                let _ = ws.close(None).await;
                return Ok(End::Shutdown);
            }
            _ = &mut expire => {
                let _ = ws.close(None).await;
                return Ok(End::Retry(Duration::ZERO, "planned reconnect before the 24-hour cut".into()));
            }
            _ = ping.tick() => {
                if ws.send(Message::Ping(Vec::new().into())).await.is_err() {
                    return Ok(End::Retry(Duration::ZERO, "ping failed".into()));
                }
                continue;
            }
            m = tokio::time::timeout(stale, ws.next()) => m,
        };
        let ts_received = Timestamp::now();
        let frame = match msg {
            Err(_) => {
                return Ok(End::Retry(
                    Duration::ZERO,
                    format!("no frame for {}s (stale)", stale.as_secs()),
                ));
            }
            Ok(None) => return Ok(End::Retry(Duration::ZERO, "connection closed".into())),
            Ok(Some(Err(e))) => return Ok(End::Retry(Duration::ZERO, e.to_string())),
            Ok(Some(Ok(Message::Text(t)))) => t,
            Ok(Some(Ok(Message::Close(c)))) => {
                return Ok(End::Retry(
                    Duration::ZERO,
                    format!("closed by Binance: {c:?}"),
                ));
            }
            // Pings are answered by tungstenite; pongs and binary frames only show liveness.
            Ok(Some(Ok(_))) => continue,
        };
        events.clear();
        match decoder.decode(frame.as_bytes(), ts_received, &mut events) {
            Ok(Frame::Data) => {}
            Ok(Frame::Refused(m)) => tracing::warn!(reason = %m, "binance refused a request"),
            Ok(_) => {}
            Err(e) => {
                ctx.status.record_drop();
                tracing::warn!(error = %e, "dropped a Binance frame");
            }
        }
        for e in events.drain(..) {
            ctx.status.record_event(ts_received);
            if ctx.out.send(e).await.is_err() {
                return Err(FeedError::PipelineClosed { venue: venue() });
            }
        }
    }
}

/// One connection's lifetime, reconnecting until shutdown.
async fn run_connection(
    url: String,
    cfg: BinanceConfig,
    ctx: FeedContext,
) -> Result<(), FeedError> {
    let mut backoff = Duration::from_millis(500);
    loop {
        let started = tokio::time::Instant::now();
        ctx.status.set_state(FeedState::Connecting);
        match connection(&url, &cfg, &ctx).await? {
            End::Shutdown => return Ok(()),
            End::Retry(at_least, why) => {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(500);
                }
                // Full jitter: many connections reconnecting at once spread out.
                let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64);
                let wait = at_least.max(Duration::from_millis(jitter));
                tracing::warn!(url, reason = %why, retry_in_ms = wait.as_millis() as u64, "binance disconnected");
                ctx.status.set_state(FeedState::Backoff);
                ctx.status.record_reconnect();
                tokio::select! {
                    _ = ctx.shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(wait) => {}
                }
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

#[async_trait::async_trait]
impl Feed for BinanceFeed {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn symbols(&self) -> Vec<Symbol> {
        self.cfg.symbols.clone()
    }

    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        if self.cfg.symbols.is_empty() {
            return Err(FeedError::Config {
                venue: "binance".into(),
                message: "no symbols configured".into(),
            });
        }
        // wss:// goes through rustls; give it its crypto provider once.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let mut tasks = tokio::task::JoinSet::new();
        for url in self.urls() {
            tasks.spawn(run_connection(url, self.cfg.clone(), ctx.clone()));
        }
        while let Some(r) = tasks.join_next().await {
            match r {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e),
                Err(e) => tracing::error!(error = %e, "binance connection task failed"),
            }
        }
        ctx.status.set_state(FeedState::Stopped);
        Ok(())
    }
}
