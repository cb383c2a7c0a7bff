//! The accept loop: a connection permit taken before `accept`
//! ([`LimitedListener`]), a cap on connections from one address, the TLS
//! handshake when configured, a deadline for it and for every request head
//! (against slowloris: a socket that trickles its handshake or headers, or
//! says nothing at all, is closed and gives its permit back), and a
//! graceful end that lets requests in flight finish.
//!
//! `axum::serve` sets no timer on hyper, so hyper's header-read timeout
//! never fires there; this loop sets one.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::serve::Listener;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::listener::LimitedListener;
use crate::metrics::GatewayMetrics;

/// How long requests in flight may take to finish once shutdown starts.
const DRAIN: Duration = Duration::from_secs(10);

/// The accept loop's limits.
#[derive(Clone)]
pub(crate) struct ServeLimits {
    /// A request head (the WebSocket upgrade included) must arrive within
    /// this, counted from when the connection is ready for one: the
    /// accept, or the end of the previous response (an idle keep-alive
    /// connection is closed after it too).
    pub(crate) header_timeout: Duration,
    /// Connections at once from one IP address; 0: no cap.
    pub(crate) per_ip: usize,
    /// TLS, when the gateway terminates it itself.
    pub(crate) tls: Option<tokio_rustls::TlsAcceptor>,
}

/// Serves `app` on `listener` until `shutdown`.
pub(crate) async fn serve(
    mut listener: LimitedListener,
    app: Router,
    limits: ServeLimits,
    metrics: Arc<GatewayMetrics>,
    shutdown: CancellationToken,
) {
    let per_ip = PerIp::new(limits.per_ip);
    let closing = CancellationToken::new();
    let tracker = TaskTracker::new();
    let mut refused_log = RateLimitedLog::default();
    loop {
        let (stream, peer): (_, SocketAddr) = tokio::select! {
            _ = shutdown.cancelled() => break,
            c = listener.accept() => c,
        };
        let Some(slot) = per_ip.admit(peer.ip()) else {
            metrics.refused_per_ip_total.fetch_add(1, Ordering::Relaxed);
            refused_log.warn(peer.ip(), limits.per_ip);
            drop(stream); // its permit goes back at once
            continue;
        };
        let service = TowerToHyperService::new(app.clone());
        let closed = closing.clone();
        let (tls, header_timeout) = (limits.tls.clone(), limits.header_timeout);
        tracker.spawn(async move {
            let _slot = slot;
            let Some(tls) = tls else {
                return serve_connection(stream, service, header_timeout, closed, peer).await;
            };
            // The handshake is part of the request head's time.
            match tokio::time::timeout(header_timeout, tls.accept(stream)).await {
                Ok(Ok(stream)) => {
                    serve_connection(stream, service, header_timeout, closed, peer).await;
                }
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%peer, "TLS handshake too slow"),
            }
        });
    }
    drop(listener); // new connections are refused by the kernel from here
    closing.cancel();
    tracker.close();
    if tokio::time::timeout(DRAIN, tracker.wait()).await.is_err() {
        tracing::warn!(
            open = tracker.len(),
            "HTTP requests still running at shutdown"
        );
    }
}

/// HTTP/1.1 (with upgrades) on one connection until it ends or `closed`.
async fn serve_connection<I>(
    io: I,
    service: TowerToHyperService<Router>,
    header_timeout: Duration,
    closed: CancellationToken,
    peer: SocketAddr,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    let conn = builder
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "connection ended");
            }
        }
        _ = closed.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = conn.await;
        }
    }
}

/// Connections per address.
#[derive(Debug)]
struct PerIp {
    max: usize,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

/// One connection's place in its address's count.
#[derive(Debug)]
struct IpSlot {
    ip: IpAddr,
    open: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl PerIp {
    fn new(max: usize) -> PerIp {
        PerIp {
            max,
            open: Arc::default(),
        }
    }

    /// A slot for one more connection from `ip`; `None` at the cap.
    fn admit(&self, ip: IpAddr) -> Option<Option<IpSlot>> {
        if self.max == 0 {
            return Some(None);
        }
        let mut open = self.open.lock();
        let n = open.entry(ip).or_insert(0);
        if *n >= self.max {
            return None;
        }
        *n += 1;
        Some(Some(IpSlot {
            ip,
            open: self.open.clone(),
        }))
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.open.lock();
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// At most one warning a minute about refused addresses.
#[derive(Debug, Default)]
struct RateLimitedLog {
    last: Option<std::time::Instant>,
    since: u64,
}

impl RateLimitedLog {
    fn warn(&mut self, ip: IpAddr, max: usize) {
        self.since += 1;
        if self
            .last
            .is_none_or(|t| t.elapsed() >= Duration::from_secs(60))
        {
            tracing::warn!(%ip, max_connections_per_ip = max, refused = self.since,
                "connections refused: too many from one address (gateway.max_connections_per_ip)");
            self.last = Some(std::time::Instant::now());
            self.since = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_ip_caps_each_address_and_frees_on_drop() {
        let per = PerIp::new(2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let one = per.admit(a).unwrap();
        let _two = per.admit(a).unwrap();
        assert!(per.admit(a).is_none(), "a third from one address");
        assert!(per.admit(b).is_some(), "another address is not affected");
        drop(one);
        assert!(per.admit(a).is_some(), "a closed connection frees its slot");
        assert!(PerIp::new(0).admit(a).is_some(), "0: no cap");
    }
}
