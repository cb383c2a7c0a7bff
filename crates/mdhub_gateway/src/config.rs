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
    /// Frames queued per connection before it counts as too slow. When the
    /// queue is full the connection is closed with code 4008 ("lagged"); the
    /// client reconnects and resumes from its positions without a gap.
    /// Default 8192.
    pub queue_capacity: usize,
    /// Most simultaneous client connections; the permit is taken before
    /// `accept`, so connection number N+1 waits in the kernel's backlog.
    /// Default 10000.
    pub max_connections: usize,
    /// Most symbols one connection may subscribe. Default 1000.
    pub max_symbols: usize,
    /// Largest client frame accepted, in bytes (larger: error
    /// `message_too_large`). Default 65536.
    pub max_message_bytes: usize,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        GatewayConfig {
            heartbeat_ms: 20_000,
            client_timeout_ms: 60_000,
            queue_capacity: 8192,
            max_connections: 10_000,
            max_symbols: 1000,
            max_message_bytes: 65_536,
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
            ("max_connections", self.max_connections),
            ("max_symbols", self.max_symbols),
            ("max_message_bytes", self.max_message_bytes),
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
