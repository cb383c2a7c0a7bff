//! The distribution gateway: log → WebSocket and REST clients.
//!
//! Data comes in from the [`Bus`] (the hub follows every partition from the
//! log's end) and from the [`Cache`] (snapshots), and goes out to clients over
//! `GET /v1/ws` (protocol in `docs/protocol.md`), the REST endpoints of
//! [`rest`], and the browser UI at `/` with its JavaScript client
//! (`docs/web.md`). Every update carries its log position; a client that reconnects
//! — to this or any other gateway on the same log — and hands its positions
//! back gets exactly the updates it missed, in order, or a `reset` and a fresh
//! snapshot when the log no longer holds them.
//!
//! Queues: each connection has a bounded queue (`gateway.queue_capacity`);
//! the hub never waits on it, and a connection whose queue is full is closed
//! with code 4008 to resume elsewhere. Connections are limited by a permit
//! taken before `accept`. Shutdown closes every socket with 1001.

pub mod auth;
mod config;
mod conflate;
mod conn;
pub mod history;
mod hub;
mod listener;
pub mod metrics;
pub mod rest;
mod server;
mod tls;
mod web;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{RawQuery, State, WebSocketUpgrade};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mdhub_bus::Bus;
use mdhub_cache::Cache;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use auth::{AuthConfig, AuthError, AuthMode, Authenticator, mint_hs256, new_key};
pub use config::GatewayConfig;
pub use history::{Cursor, HistoryFailure, HistoryKind, HistoryRequest, HistorySource, RowFormat};
pub use metrics::{GatewayMetrics, MetricsSource};
pub use tls::{TlsError, server_config as tls_server_config};

/// Something that reports its state in `/v1/status` (feeds, the ingest stage).
pub trait StatusSource: Send + Sync + std::fmt::Debug {
    /// The section name in the status document (`feeds`, `ingest`).
    fn section(&self) -> &str;
    /// The section's content.
    fn status(&self) -> serde_json::Value;
}

/// Something whose failures `/readyz` reports (the supervisor's stages).
pub trait HealthSource: Send + Sync + std::fmt::Debug {
    /// What is not working now.
    fn problems(&self) -> Vec<Problem>;
}

/// One part of the process that is not working (see [`HealthSource`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// Its name (a stage's name, e.g. `pg-writer`).
    pub name: String,
    /// Its state (`retrying`, `restarting`, `failed`).
    pub state: String,
    /// Its last error.
    pub error: Option<String>,
    /// Whether it makes the process not ready (503) rather than degraded.
    pub critical: bool,
}

#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) bus: Arc<dyn Bus>,
    pub(crate) cache: Arc<dyn Cache>,
    pub(crate) hub: Arc<hub::Hub>,
    pub(crate) cfg: GatewayConfig,
    pub(crate) metrics: Arc<GatewayMetrics>,
    pub(crate) shutdown: CancellationToken,
    pub(crate) next_id: AtomicU64,
    pub(crate) epoch: String,
    pub(crate) status: Vec<Arc<dyn StatusSource>>,
    pub(crate) extra_metrics: Vec<Arc<dyn MetricsSource>>,
    pub(crate) health: Vec<Arc<dyn HealthSource>>,
    /// Answers `/v1/history/*`, when this process has history.
    pub(crate) history: Option<Arc<dyn HistorySource>>,
    pub(crate) started: Instant,
    /// The WebSocket connections' tasks: axum's graceful shutdown does not
    /// wait for upgraded connections, so `serve` waits for these.
    pub(crate) connections: tokio_util::task::TaskTracker,
    /// Checks credentials (`[gateway.auth]`).
    pub(crate) auth: Authenticator,
    /// Connections per user.
    pub(crate) users: Arc<auth::Users>,
    /// History requests running now, in all and per user.
    pub(crate) queries: Arc<history::QueryPermits>,
    /// Resume replays running now (`max_replays`).
    pub(crate) replays: Arc<tokio::sync::Semaphore>,
}

/// The gateway: build it, add status and metrics sources, then [`Gateway::serve`].
#[derive(Debug)]
pub struct Gateway {
    bus: Arc<dyn Bus>,
    cache: Arc<dyn Cache>,
    cfg: GatewayConfig,
    status: Vec<Arc<dyn StatusSource>>,
    extra_metrics: Vec<Arc<dyn MetricsSource>>,
    health: Vec<Arc<dyn HealthSource>>,
    history: Option<Arc<dyn HistorySource>>,
    auth: Option<Authenticator>,
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Gateway {
    /// A gateway over `bus` (updates) and `cache` (snapshots).
    pub fn new(bus: Arc<dyn Bus>, cache: Arc<dyn Cache>, cfg: GatewayConfig) -> Self {
        Gateway {
            bus,
            cache,
            cfg,
            status: Vec::new(),
            extra_metrics: Vec::new(),
            health: Vec::new(),
            history: None,
            auth: None,
            tls: None,
        }
    }

    /// Check credentials with `auth` (built from `[gateway.auth]` by the
    /// caller, who knows whether the address is public). Without it the
    /// gateway serves everyone.
    pub fn with_auth(mut self, auth: Authenticator) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Serve HTTPS and `wss://` with `tls` (see [`tls_server_config`]).
    pub fn with_tls(mut self, tls: Arc<rustls::ServerConfig>) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Add a section to `/v1/status`.
    pub fn with_status(mut self, s: Arc<dyn StatusSource>) -> Self {
        self.status.push(s);
        self
    }

    /// Answer `GET /v1/history/trades|quotes|bars` with `h` (without one
    /// they answer 503).
    pub fn with_history(mut self, h: Arc<dyn HistorySource>) -> Self {
        self.history = Some(h);
        self
    }

    /// Report `h`'s problems in `/readyz`: a critical one makes it 503, any
    /// other makes it degraded.
    pub fn with_health(mut self, h: Arc<dyn HealthSource>) -> Self {
        self.health.push(h);
        self
    }

    /// Add metrics to `/metrics`.
    pub fn with_metrics(mut self, m: Arc<dyn MetricsSource>) -> Self {
        self.extra_metrics.push(m);
        self
    }

    /// Serve on `listener` until `shutdown` is cancelled, then close every
    /// client socket with 1001 and return once they are closed.
    pub async fn serve(
        self,
        listener: TcpListener,
        shutdown: CancellationToken,
    ) -> std::io::Result<()> {
        let metrics = Arc::new(GatewayMetrics::default());
        let hub = Arc::new(hub::Hub::new(&*self.bus, metrics.clone()));
        let queries =
            history::QueryPermits::new(self.cfg.history_queries, self.cfg.history_queries_per_user);
        let replays = Arc::new(tokio::sync::Semaphore::new(self.cfg.max_replays));
        let shared = Arc::new(Shared {
            epoch: self.bus.epoch(),
            bus: self.bus,
            cache: self.cache,
            hub: hub.clone(),
            cfg: self.cfg,
            metrics,
            shutdown: shutdown.clone(),
            next_id: AtomicU64::new(1),
            status: self.status,
            extra_metrics: self.extra_metrics,
            health: self.health,
            history: self.history,
            started: Instant::now(),
            connections: tokio_util::task::TaskTracker::new(),
            auth: match self.auth {
                Some(a) => a,
                None => open_gateway(),
            },
            users: Arc::default(),
            queries,
            replays,
        });
        let hub_task = tokio::spawn(hub.run(shared.bus.clone(), shutdown.clone()));
        let app = router(shared.clone());
        let listener = listener::LimitedListener::new(listener, shared.cfg.max_connections);
        let limits = server::ServeLimits {
            header_timeout: Duration::from_millis(shared.cfg.header_timeout_ms),
            per_ip: shared.cfg.max_connections_per_ip,
            tls: self.tls.map(tokio_rustls::TlsAcceptor::from),
        };
        server::serve(
            listener,
            app,
            limits,
            shared.metrics.clone(),
            shutdown.clone(),
        )
        .await;
        // Every client is being sent 1001; let those frames go out before
        // the process moves on (bounded: a client that does not read gets
        // its socket closed when the process exits).
        shared.connections.close();
        if tokio::time::timeout(SHUTDOWN_CLOSE_WAIT, shared.connections.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                open = shared.connections.len(),
                "client connections still closing at shutdown"
            );
        }
        hub_task.abort();
        Ok(())
    }
}

/// A gateway with authentication off.
fn open_gateway() -> Authenticator {
    let off = AuthConfig {
        mode: AuthMode::Off,
        ..AuthConfig::default()
    };
    // Off needs nothing configured, so it cannot fail.
    Authenticator::new(&off, false).unwrap_or_else(|e| unreachable!("{e}"))
}

/// The grant of a WebSocket upgrade: everything when auth is off; the
/// credential's grant and a connection slot when one was presented (401 or
/// 429 when refused); `None` when the client must authenticate in a frame.
fn upgrade_grant(
    shared: &Arc<Shared>,
    headers: &axum::http::HeaderMap,
    query: Option<&str>,
) -> Result<Option<(auth::Grant, Option<auth::UserSlot>)>, Box<Response>> {
    if !shared.auth.required() {
        return Ok(Some((auth::Grant::open(), None)));
    }
    if auth::presented(headers, query).is_none() {
        return Ok(None);
    }
    let grant = rest::grant(shared, headers, query)?;
    match shared.users.acquire(&grant) {
        Some(slot) => Ok(Some((grant, Some(slot)))),
        None => Err(Box::new(rest::error(
            axum::http::StatusCode::TOO_MANY_REQUESTS,
            "too_many_connections",
            format!("{} holds its limit of connections", grant.user),
        ))),
    }
}

/// The request's `Origin` when an allow-list is set and does not have it.
fn refused_origin(allowed: &[String], headers: &axum::http::HeaderMap) -> Option<String> {
    let origin = headers.get(axum::http::header::ORIGIN)?;
    let origin = String::from_utf8_lossy(origin.as_bytes());
    let ok = allowed.is_empty()
        || allowed
            .iter()
            .any(|a| a.trim_end_matches('/').eq_ignore_ascii_case(&origin));
    (!ok).then(|| origin.into_owned())
}

/// How long `serve` waits at shutdown for client sockets to close.
const SHUTDOWN_CLOSE_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/ws", get(ws_upgrade))
        .merge(rest::routes())
        .with_state(shared)
}

async fn ws_upgrade(
    State(shared): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    RawQuery(query): RawQuery,
    ws: WebSocketUpgrade,
) -> Response {
    if let Some(origin) = refused_origin(&shared.cfg.allowed_origins, &headers) {
        let body =
            format!("origin {origin:?} may not open WebSockets here (gateway.allowed_origins)\n");
        return (axum::http::StatusCode::FORBIDDEN, body).into_response();
    }
    let grant = match upgrade_grant(&shared, &headers, query.as_deref()) {
        Ok(g) => g,
        Err(refused) => return *refused,
    };
    // A small read buffer keeps an idle connection cheap; writes are buffered
    // (a batch of frames goes out in one write) up to 64 KiB. Frames above four times the
    // protocol limit end the connection (smaller oversize frames get an error).
    let limit = shared.cfg.max_message_bytes.saturating_mul(4);
    ws.read_buffer_size(1024)
        .write_buffer_size(64 * 1024)
        .max_message_size(limit)
        .max_frame_size(limit)
        .on_upgrade(move |socket| {
            let tracker = shared.connections.clone();
            tracker.track_future(conn::serve(socket, shared, grant))
        })
}
