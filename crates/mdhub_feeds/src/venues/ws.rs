//! A venue's WebSocket connection, kept alive: connect, send the venue's
//! subscribe messages, read frames into events, reconnect — the part every
//! WebSocket venue shares. The venue supplies its URL, its subscribe
//! messages and its decoder.
//!
//! - Every frame's `ts_received` is taken as it is read, before decoding.
//! - Server pings are answered by tungstenite with their payload; the
//!   connection also pings every `ping_secs`, so a quiet one (illiquid
//!   symbols) still shows it is alive, and one with no frame at all for
//!   `stale_secs` is dropped and reopened (watchdog).
//! - A connection is renewed after `max_connection_secs` (Binance cuts at 24 h).
//! - Reconnects back off exponentially with full jitter (0.5 s doubling to
//!   30 s, reset after a minute connected); a 429 or 418 on the handshake
//!   waits at least its `Retry-After`. After every reconnect the subscribe
//!   messages are sent again; the decoder is kept, so gap detection spans
//!   reconnects.
//! - Connection attempts of all of a venue's connections draw on one
//!   [`ConnectBudget`], so a mass reconnect stays within the venue's limits.
//! - Undecodable frames are counted and logged; refusals and gaps are logged.
//! - Feed status as data: once subscribed, a `connected` event for each of
//!   the connection's symbols; when an established connection is lost, a
//!   `disconnected` event for each (with the reason, also at shutdown). Gap
//!   events come from
//!   the decoder. All go down the same channel as prices.

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mdhub_types::{Event, FeedStatusKind, Symbol, Timestamp};
use rand::Rng;
use tokio_tungstenite::tungstenite::{self, Message};

use crate::venues::{Frame, VenueDecoder};
use crate::{FeedContext, FeedError, FeedState};

/// Connection-keeping settings.
#[derive(Debug, Clone)]
pub(crate) struct WsSettings {
    /// Send a ping this often (seconds).
    pub(crate) ping_secs: u64,
    /// Drop a connection that sent nothing for this long (seconds).
    pub(crate) stale_secs: u64,
    /// Renew a connection after this long (seconds).
    pub(crate) max_connection_secs: u64,
}

/// One connection's job: where, what to send after connecting, how to read.
pub(crate) struct WsJob {
    /// The venue id, for messages.
    pub(crate) venue: &'static str,
    /// The URL.
    pub(crate) url: String,
    /// The canonical symbols this connection carries (feed-status events).
    pub(crate) symbols: Vec<Symbol>,
    /// This connection's number within the venue (raw captures).
    pub(crate) conn: u32,
    /// Text messages sent after every (re)connect (subscriptions).
    pub(crate) subscribe: Vec<String>,
    /// The decoder, kept across reconnects so sequence state (gap
    /// detection) spans them.
    pub(crate) decoder: Box<dyn VenueDecoder>,
    /// Keep-alive settings.
    pub(crate) settings: WsSettings,
}

/// Run a venue that carries all its symbols on one connection (Coinbase,
/// Kraken, Alpaca): `subscribe` sent after every (re)connect, renewed daily.
/// With no symbols there is no job, and [`run_all`] reports it.
pub(crate) async fn run_single(
    venue: &'static str,
    url: &str,
    symbols: &[Symbol],
    subscribe: Vec<String>,
    decoder: Box<dyn VenueDecoder>,
    (ping_secs, stale_secs): (u64, u64),
    ctx: FeedContext,
) -> Result<(), FeedError> {
    let jobs = (!symbols.is_empty())
        .then(|| WsJob {
            venue,
            url: url.to_string(),
            symbols: symbols.to_vec(),
            conn: 0,
            subscribe,
            decoder,
            settings: WsSettings {
                ping_secs,
                stale_secs,
                max_connection_secs: 24 * 3600,
            },
        })
        .into_iter()
        .collect();
    run_all(venue, jobs, ctx).await
}

/// A venue's shared budget for connection attempts: a token bucket every
/// connection of the venue draws from before it dials, so hundreds of
/// connections that drop at once reconnect at the rate the venue tolerates
/// instead of all at once (Binance bans IPs past 300 connection attempts per
/// 5 minutes). Default: bursts of 10, then one per second.
#[derive(Debug)]
pub(crate) struct ConnectBudget {
    burst: f64,
    every: Duration,
    state: parking_lot::Mutex<(f64, tokio::time::Instant)>,
}

impl ConnectBudget {
    pub(crate) fn new(burst: u32, every: Duration) -> Self {
        ConnectBudget {
            burst: f64::from(burst.max(1)),
            every: every.max(Duration::from_millis(1)),
            state: parking_lot::Mutex::new((f64::from(burst.max(1)), tokio::time::Instant::now())),
        }
    }

    /// Wait for a token.
    pub(crate) async fn acquire(&self) {
        loop {
            let wait = {
                let mut st = self.state.lock();
                let now = tokio::time::Instant::now();
                let refill = now.duration_since(st.1).as_secs_f64() / self.every.as_secs_f64();
                st.0 = (st.0 + refill).min(self.burst);
                st.1 = now;
                if st.0 >= 1.0 {
                    st.0 -= 1.0;
                    return;
                }
                self.every.mul_f64(1.0 - st.0)
            };
            tokio::time::sleep(wait).await;
        }
    }
}

/// How one connection ended.
enum End {
    Shutdown,
    /// Reconnect after at least this long.
    Retry(Duration, String),
}

/// One connection from dial to end; `live` is set once it is subscribed.
async fn connection(
    job: &mut WsJob,
    budget: &ConnectBudget,
    ctx: &FeedContext,
    live: &mut bool,
) -> Result<End, FeedError> {
    let url = job.url.clone();
    let url = url.as_str();
    let cfg = job.settings.clone();
    tokio::select! {
        _ = ctx.shutdown.cancelled() => return Ok(End::Shutdown),
        _ = budget.acquire() => {}
    }
    let connect = tokio::select! {
        _ = ctx.shutdown.cancelled() => return Ok(End::Shutdown),
        c = tokio::time::timeout(Duration::from_secs(10), tokio_tungstenite::connect_async_with_config(url, Some(ws_config()), true)) => c,
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
    for m in &job.subscribe {
        if let Err(e) = ws.send(Message::text(m.clone())).await {
            return Ok(End::Retry(Duration::ZERO, format!("subscribe failed: {e}")));
        }
    }
    ctx.status.set_state(FeedState::Live);
    tracing::info!(venue = job.venue, url, "connected");
    *live = true;
    ctx.send_status(
        &job.symbols,
        FeedStatusKind::Connected,
        None,
        Timestamp::now(),
    )
    .await?;

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
        if let Ok(Some(Ok(Message::Text(t)))) = &msg {
            ctx.record_raw(job.conn, ts_received, t.as_bytes()).await;
        }
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
                    format!("closed by the venue: {c:?}"),
                ));
            }
            // Pings are answered by tungstenite; pongs and binary frames only show liveness.
            Ok(Some(Ok(_))) => continue,
        };
        events.clear();
        match job
            .decoder
            .decode(frame.as_bytes(), ts_received, &mut events)
        {
            Ok(Frame::Data) => {}
            Ok(Frame::Refused(m)) => {
                tracing::warn!(venue = job.venue, reason = %m, "the venue refused a request")
            }
            Ok(Frame::Gap(what)) => {
                tracing::warn!(venue = job.venue, gap = %what, "the venue's stream has a gap");
            }
            Ok(_) => {}
            Err(e) => {
                ctx.status.record_drop();
                tracing::warn!(venue = job.venue, error = %e, "dropped a frame");
            }
        }
        // The ingest stage was idle: let it publish these (woken by the send,
        // it usually runs on this worker) before this task reads the socket
        // again. Under load the channel holds a backlog, which the stage
        // takes in batches without this.
        let ingest_idle = ctx.out.capacity() == ctx.out.max_capacity();
        let sent = !events.is_empty();
        for e in events.drain(..) {
            ctx.send(e).await?;
        }
        if sent && ingest_idle {
            tokio::task::yield_now().await;
        }
    }
}

/// The WebSocket settings of a venue connection. tungstenite zero-fills
/// `read_buffer_size` bytes of its read buffer before every socket read
/// (128 KiB by default: 2–3 µs per frame at low rates, where each read
/// returns one frame). 16 KiB still takes dozens of frames per read in a
/// burst; a larger frame is read in several.
fn ws_config() -> tungstenite::protocol::WebSocketConfig {
    tungstenite::protocol::WebSocketConfig::default().read_buffer_size(16 << 10)
}

/// One connection's lifetime, reconnecting until shutdown.
async fn run(
    mut job: WsJob,
    budget: Arc<ConnectBudget>,
    ctx: FeedContext,
) -> Result<(), FeedError> {
    let url = job.url.clone();
    let mut backoff = Duration::from_millis(500);
    loop {
        let started = tokio::time::Instant::now();
        ctx.status.set_state(FeedState::Connecting);
        let mut live = false;
        match connection(&mut job, &budget, &ctx, &mut live).await? {
            End::Shutdown => {
                if live {
                    let ts = Timestamp::now();
                    let why = Some("mdhub is shutting down");
                    ctx.send_status(&job.symbols, FeedStatusKind::Disconnected, why, ts)
                        .await?;
                }
                return Ok(());
            }
            End::Retry(at_least, why) => {
                if live {
                    let ts = Timestamp::now();
                    ctx.send_status(&job.symbols, FeedStatusKind::Disconnected, Some(&why), ts)
                        .await?;
                }
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_millis(500);
                }
                // Full jitter: many connections reconnecting at once spread out.
                let jitter = rand::rng().random_range(0..=backoff.as_millis() as u64);
                let wait = at_least.max(Duration::from_millis(jitter));
                tracing::warn!(venue = job.venue, url, reason = %why, retry_in_ms = wait.as_millis() as u64, "disconnected");
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

/// Run a venue's connections until shutdown: one task per job, each
/// reconnecting by itself. Fails at once when the venue has no symbols, and
/// when the pipeline closes.
pub(crate) async fn run_all(
    venue: &'static str,
    jobs: Vec<WsJob>,
    ctx: FeedContext,
) -> Result<(), FeedError> {
    if jobs.is_empty() {
        return Err(FeedError::Config {
            venue: venue.into(),
            message: "no symbols configured".into(),
        });
    }
    // wss:// goes through rustls; give it its crypto provider once.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let budget = Arc::new(ConnectBudget::new(10, Duration::from_secs(1)));
    let mut tasks = tokio::task::JoinSet::new();
    for (i, mut job) in jobs.into_iter().enumerate() {
        job.conn = i as u32;
        tasks.spawn(run(job, budget.clone(), ctx.clone()));
    }
    while let Some(r) = tasks.join_next().await {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => tracing::error!(venue, error = %e, "connection task failed"),
        }
    }
    ctx.status.set_state(FeedState::Stopped);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_connect_budget_spreads_a_burst_of_reconnects() {
        let b = ConnectBudget::new(3, Duration::from_secs(1));
        let t0 = tokio::time::Instant::now();
        for _ in 0..3 {
            b.acquire().await;
        }
        assert_eq!(t0.elapsed(), Duration::ZERO, "the burst goes at once");
        for _ in 0..4 {
            b.acquire().await;
        }
        let waited = t0.elapsed();
        assert!(
            waited >= Duration::from_secs(4) && waited < Duration::from_millis(4100),
            "then one per second: {waited:?}"
        );
    }
}
