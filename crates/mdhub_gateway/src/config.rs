//! `[gateway]`: limits and timings of the WebSocket service.

use serde::{Deserialize, Serialize};

/// Gateway settings. Every field has a default suited to Heroku and to a
/// trading UI on a laptop alike.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GatewayConfig {
    /// Interval between server heartbeats, in milliseconds: a WebSocket ping
    /// and a `{"type":"heartbeat"}` frame (browsers cannot see pings). Well
    /// under Heroku's 55 s idle cut. Default 20000.
    pub heartbeat_ms: u64,
    /// A client from which nothing (not even a pong) arrived for this many
    /// milliseconds is closed (code 4002). Default 60000 (three heartbeats).
    pub client_timeout_ms: u64,
    /// Frames queued per connection. When the queue is full the connection
    /// switches to conflated delivery — the latest update per symbol and
    /// channel, with `"skipped":N` — until it has caught up. Default 8192.
    pub queue_capacity: usize,
    /// A connection whose socket accepts nothing for this many milliseconds
    /// (the client stopped reading; even conflated delivery cannot drain) is
    /// closed with code 4008; it may reconnect and resume. Default 15000.
    pub slow_client_timeout_ms: u64,
    /// On shutdown each client is told to wait a random delay up to this
    /// many milliseconds before reconnecting (the `closing` frame), so a
    /// restart does not bring every client back at once. Default 2000.
    pub reconnect_spread_ms: u64,
    /// Most simultaneous client connections; the permit is taken before
    /// `accept`, so connection number N+1 waits in the kernel's backlog.
    /// Default 10000.
    pub max_connections: usize,
    /// Most connections at once from one IP address; more are closed at
    /// accept. 0: no cap — set it behind a reverse proxy or router whose
    /// few addresses carry every client (Heroku's router, nginx on the same
    /// machine). Default 500.
    pub max_connections_per_ip: usize,
    /// A request head (a WebSocket upgrade included) must arrive within
    /// this many milliseconds of the connection being ready for one, or the
    /// connection is closed and its permit freed (slowloris). Default 10000.
    pub header_timeout_ms: u64,
    /// Most symbols one connection may subscribe. Default 1000.
    pub max_symbols: usize,
    /// Largest client frame accepted, in bytes (larger: error
    /// `message_too_large`). Default 65536.
    pub max_message_bytes: usize,
    /// Client frames per second a connection may send, sustained (a token
    /// bucket); more are dropped with error `rate_limited`. Default 20.
    pub client_messages_per_sec: u32,
    /// Frames a connection may send in a burst above that rate. Default 50.
    pub client_message_burst: u32,
    /// Web pages (`Origin` header, e.g. `https://desk.example.com`) allowed
    /// to open WebSockets; a browser connection from any other origin gets
    /// 403. Empty (default): any. Clients that send no `Origin` (bots,
    /// SDKs) are not affected.
    pub allowed_origins: Vec<String>,
    /// History requests (`/v1/history/*`) running at once in this process;
    /// one more is refused at once with 429 `too_many_queries`. Default 4.
    pub history_queries: usize,
    /// History requests one authenticated user may run at once (anonymous
    /// clients of a gateway without auth share only `history_queries`).
    /// Default 2.
    pub history_queries_per_user: usize,
    /// Resume replays running at once in this process; a resume that finds
    /// none free within 10 s gets a `replay_limit` reset and a snapshot
    /// instead. Default 64.
    pub max_replays: usize,
    /// Bytes of replayed frames one connection may receive in all; past
    /// it, the stream being replayed gets a `replay_limit` reset and a
    /// snapshot, and so does every later resume of the connection (a new
    /// connection starts afresh). Default 268435456 (256 MiB).
    pub max_replay_bytes: u64,
    /// Who may connect and what they may see (`[gateway.auth]`).
    pub auth: crate::auth::AuthConfig,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            heartbeat_ms: 20_000,
            client_timeout_ms: 60_000,
            queue_capacity: 8192,
            slow_client_timeout_ms: 15_000,
            reconnect_spread_ms: 2_000,
            max_connections: 10_000,
            max_connections_per_ip: 500,
            header_timeout_ms: 10_000,
            max_symbols: 1000,
            max_message_bytes: 65_536,
            client_messages_per_sec: 20,
            client_message_burst: 50,
            allowed_origins: Vec::new(),
            history_queries: 4,
            history_queries_per_user: 2,
            max_replays: 64,
            max_replay_bytes: 256 << 20,
            auth: crate::auth::AuthConfig::default(),
        }
    }
}

impl GatewayConfig {
    /// Range checks, naming the key.
    pub fn validate(&self) -> Result<(), String> {
        let positive = [
            ("heartbeat_ms", self.heartbeat_ms as usize),
            ("client_timeout_ms", self.client_timeout_ms as usize),
            ("queue_capacity", self.queue_capacity),
            (
                "slow_client_timeout_ms",
                self.slow_client_timeout_ms as usize,
            ),
            ("max_connections", self.max_connections),
            ("header_timeout_ms", self.header_timeout_ms as usize),
            ("max_symbols", self.max_symbols),
            ("max_message_bytes", self.max_message_bytes),
            (
                "client_messages_per_sec",
                self.client_messages_per_sec as usize,
            ),
            ("client_message_burst", self.client_message_burst as usize),
            ("history_queries", self.history_queries),
            ("history_queries_per_user", self.history_queries_per_user),
            ("max_replays", self.max_replays),
        ];
        for (k, v) in positive {
            if v == 0 {
                return Err(format!("gateway.{k}: must be greater than 0"));
            }
        }
        if self.client_timeout_ms <= self.heartbeat_ms {
            return Err(format!(
                "gateway.client_timeout_ms: {} must be longer than gateway.heartbeat_ms ({})",
                self.client_timeout_ms, self.heartbeat_ms
            ));
        }
        Ok(())
    }
}
