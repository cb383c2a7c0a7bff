//! Prometheus text exposition of the gateway's counters, and a hook for
//! other parts of the process to add theirs (`/metrics`).
//!
//! Hand-rolled on atomics: recording is one relaxed add on the hot path.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Something that appends Prometheus text to `/metrics`.
pub trait MetricsSource: Send + Sync + std::fmt::Debug {
    /// Append `# HELP`/`# TYPE` lines and samples.
    fn render(&self, out: &mut String);
}

/// Upper bounds (microseconds) of the latency histogram buckets.
const BUCKETS_US: [u64; 16] = [
    25, 50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000,
    1_000_000, 5_000_000,
];

/// A fixed-bucket histogram of microseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; 16],
    overflow: AtomicU64,
    sum_us: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Record one observation.
    pub fn observe_us(&self, us: u64) {
        match BUCKETS_US.iter().position(|&b| us <= b) {
            Some(i) => self.buckets[i].fetch_add(1, Ordering::Relaxed),
            None => self.overflow.fetch_add(1, Ordering::Relaxed),
        };
        self.sum_us.fetch_add(us, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
    }

    fn render(&self, name: &str, help: &str, out: &mut String) {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} histogram");
        let mut cum = 0;
        for (i, b) in BUCKETS_US.iter().enumerate() {
            cum += self.buckets[i].load(Ordering::Relaxed);
            let _ = writeln!(out, "{name}_bucket{{le=\"{}\"}} {cum}", *b as f64 / 1e6);
        }
        cum += self.overflow.load(Ordering::Relaxed);
        let _ = writeln!(out, "{name}_bucket{{le=\"+Inf\"}} {cum}");
        let _ = writeln!(
            out,
            "{name}_sum {}",
            self.sum_us.load(Ordering::Relaxed) as f64 / 1e6
        );
        let _ = writeln!(out, "{name}_count {}", self.count.load(Ordering::Relaxed));
    }
}

/// The gateway's counters.
#[derive(Debug, Default)]
pub struct GatewayMetrics {
    /// Open WebSocket connections.
    pub connections: AtomicU64,
    /// Connections accepted since start.
    pub connections_total: AtomicU64,
    /// Client frames received.
    pub client_messages_total: AtomicU64,
    /// Error frames sent.
    pub client_errors_total: AtomicU64,
    /// Log records fanned out by the hub.
    pub updates_total: AtomicU64,
    /// Data frames written to sockets (updates, replays, snapshots).
    pub deliveries_total: AtomicU64,
    /// Frames replayed to resuming clients.
    pub replayed_total: AtomicU64,
    /// Resets sent (position expired or epoch changed).
    pub resets_total: AtomicU64,
    /// Connections closed because their writes made no progress
    /// (`slow_client_timeout_ms`), even conflated.
    pub lagged_total: AtomicU64,
    /// Switches of a connection to conflated delivery (its queue filled).
    pub conflated_total: AtomicU64,
    /// Updates replaced by a newer one of the same stream while conflated.
    pub skipped_total: AtomicU64,
    /// Connections closed for missing heartbeats.
    pub timeouts_total: AtomicU64,
    /// Connections closed at once: too many from one address.
    pub refused_per_ip_total: AtomicU64,
    /// `ts_received` → socket write, per delivered update.
    pub latency: Histogram,
}

impl GatewayMetrics {
    /// Render the gateway's metrics plus two gauges of the moment: frames
    /// waiting in connection queues, and connections in conflated delivery.
    pub fn render(&self, (queued, conflated): (u64, u64), out: &mut String) {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let rows: [(&str, &str, &str, u64); 15] = [
            (
                "connections",
                "gauge",
                "Open WebSocket connections.",
                l(&self.connections),
            ),
            (
                "connections_total",
                "counter",
                "WebSocket connections accepted.",
                l(&self.connections_total),
            ),
            (
                "client_messages_total",
                "counter",
                "Frames received from clients.",
                l(&self.client_messages_total),
            ),
            (
                "client_errors_total",
                "counter",
                "Error frames sent to clients.",
                l(&self.client_errors_total),
            ),
            (
                "updates_total",
                "counter",
                "Log records fanned out.",
                l(&self.updates_total),
            ),
            (
                "deliveries_total",
                "counter",
                "Data frames written to client sockets.",
                l(&self.deliveries_total),
            ),
            (
                "replayed_total",
                "counter",
                "Frames replayed to resuming clients.",
                l(&self.replayed_total),
            ),
            (
                "resets_total",
                "counter",
                "Resets sent to clients.",
                l(&self.resets_total),
            ),
            (
                "conflated_total",
                "counter",
                "Switches of a connection to conflated delivery (its queue was full).",
                l(&self.conflated_total),
            ),
            (
                "conflated_skipped_total",
                "counter",
                "Updates skipped by conflation (slow client or max_rate_ms): a newer one of the stream was sent instead.",
                l(&self.skipped_total),
            ),
            (
                "lagged_disconnects_total",
                "counter",
                "Connections closed because even conflated writes made no progress.",
                l(&self.lagged_total),
            ),
            (
                "heartbeat_timeouts_total",
                "counter",
                "Connections closed for silence.",
                l(&self.timeouts_total),
            ),
            (
                "refused_per_ip_total",
                "counter",
                "Connections closed at accept: too many open from one address (gateway.max_connections_per_ip).",
                l(&self.refused_per_ip_total),
            ),
            (
                "queued_frames",
                "gauge",
                "Frames waiting in connection queues.",
                queued,
            ),
            (
                "connections_conflated",
                "gauge",
                "Connections in conflated delivery now.",
                conflated,
            ),
        ];
        for (name, kind, help, v) in rows {
            let _ = writeln!(
                out,
                "# HELP mdhub_gateway_{name} {help}\n# TYPE mdhub_gateway_{name} {kind}\nmdhub_gateway_{name} {v}"
            );
        }
        self.latency.render(
            "mdhub_gateway_delivery_latency_seconds",
            "From ts_received (read off the venue socket) to the write to the client socket.",
            out,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_is_cumulative() {
        let h = Histogram::default();
        for us in [10, 40, 90, 2_000_000_000] {
            h.observe_us(us);
        }
        let mut s = String::new();
        h.render("x", "help", &mut s);
        assert!(s.contains("x_bucket{le=\"0.000025\"} 1\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"0.0001\"} 3\n"), "{s}");
        assert!(s.contains("x_bucket{le=\"+Inf\"} 4\n"), "{s}");
        assert!(s.contains("x_count 4\n"), "{s}");
    }
}
