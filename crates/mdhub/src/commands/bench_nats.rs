//! The peer of `mdhub bench fanout --peer nats`: the same fan-out on a
//! `nats-server` (Debian's package) started on loopback with WebSocket on.
//! The same number of WebSocket clients, each subscribed to the same number
//! of subjects (one per symbol), get messages of mdhub's update-frame shape
//! and size, published at the same rate over NATS's TCP protocol by one
//! publisher that stamps `ts_received` when it sends; latency is measured
//! exactly as for mdhub: from that stamp to receipt.
//!
//! The NATS protocol is small enough to speak directly: `INFO` from the
//! server, `CONNECT`, `SUB <subject> <sid>`, `PUB <subject> <len>`,
//! `MSG <subject> <sid> [reply] <len>`, `PING`/`PONG`, lines ending in CRLF.

use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use mdhub_types::Timestamp;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio_tungstenite::tungstenite::Message;

use super::bench::{FanoutArgs, rss_kib, ts_received};

/// A loopback port free now.
fn free_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// What the NATS side measured.
#[derive(Debug)]
pub(crate) struct NatsOutcome {
    pub(crate) elapsed: f64,
    pub(crate) published: u64,
    pub(crate) delivered: u64,
    pub(crate) lat: Vec<u32>,
    /// nats-server's RSS (KiB) before and after the idle connections.
    pub(crate) rss: (Option<u64>, Option<u64>),
    pub(crate) closed: u64,
}

const CONNECT: &str = "CONNECT {\"verbose\":false,\"pedantic\":false,\"lang\":\"rust\",\"version\":\"0\",\"protocol\":1,\"headers\":false}\r\n";

/// A `nats-server` on loopback, stopped on drop.
struct Server {
    child: std::process::Child,
    dir: super::bench::tempfile_dir::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = &self.dir;
    }
}

/// Starts `nats-server` with its client port and a WebSocket port.
async fn start_server() -> anyhow::Result<(Server, u16, u16)> {
    let (port, ws) = (free_port()?, free_port()?);
    let dir = super::bench::tempfile_dir::TempDir::new("nats")?;
    let conf = dir.path().join("nats.conf");
    // max_pending: a subscriber connection may fall this far behind before
    // the server cuts it (NATS's slow-consumer rule), as large as a hub's queue.
    std::fs::write(
        &conf,
        format!(
            "listen: 127.0.0.1:{port}\nmax_pending: 64MB\nwrite_deadline: \"10s\"\nwebsocket {{\n  listen: \"127.0.0.1:{ws}\"\n  no_tls: true\n}}\n"
        ),
    )?;
    let child = std::process::Command::new("nats-server")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("starting nats-server (Debian package nats-server)")?;
    let server = Server { child, dir };
    let t0 = Instant::now();
    while tokio::net::TcpStream::connect(("127.0.0.1", ws))
        .await
        .is_err()
    {
        if t0.elapsed() > Duration::from_secs(10) {
            bail!("nats-server did not listen on {ws} within 10 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok((server, port, ws))
}

/// An update frame as mdhub sends it, for `symbol`, stamped now.
fn payload(symbol: &str, n: u64) -> String {
    let now = Timestamp::now().as_nanos();
    format!(
        "{{\"type\":\"update\",\"channel\":\"quotes\",\"pos\":\"quotes:3:{n}\",\"data\":{{\"type\":\"quote\",\"venue\":\"bench\",\"symbol\":\"{symbol}\",\"ts_exchange\":{now},\"ts_received\":{now},\"bid_price\":\"51.23\",\"bid_size\":\"100\",\"ask_price\":\"51.24\",\"ask_size\":\"100\"}}}}"
    )
}

/// Publishes `rate` messages per second round-robin over `symbols` until
/// `stop`; the count published.
async fn publish(
    port: u16,
    symbols: Vec<String>,
    rate: f64,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<u64> {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port)).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    lines
        .next_line()
        .await?
        .context("no INFO from nats-server")?;
    write.write_all(CONNECT.as_bytes()).await?;
    // Answer the server's pings while publishing.
    let pongs = tokio::spawn(async move {
        while let Ok(Some(l)) = lines.next_line().await {
            if l == "PING" {
                return true; // the 2-minute ping is past any run; stop reading
            }
        }
        false
    });
    let tick = Duration::from_millis(1);
    let t0 = Instant::now();
    let (mut sent, mut buf) = (0u64, String::new());
    while !stop.load(Ordering::Relaxed) {
        let due = (t0.elapsed().as_secs_f64() * rate) as u64;
        buf.clear();
        while sent < due {
            let s = &symbols[sent as usize % symbols.len()];
            let p = payload(s, sent);
            buf.push_str(&format!("PUB {s} {}\r\n{p}\r\n", p.len()));
            sent += 1;
        }
        if !buf.is_empty() {
            write.write_all(buf.as_bytes()).await?;
        }
        tokio::time::sleep(tick).await;
    }
    pongs.abort();
    Ok(sent)
}

/// Splits the server's byte stream into `MSG` payloads and `PING`s.
#[derive(Debug, Default)]
struct Parser {
    buf: Vec<u8>,
}

enum Item<'a> {
    Msg(&'a [u8]),
    Ping,
}

impl Parser {
    /// Feeds bytes; calls `on` for every complete message or ping.
    fn feed(&mut self, data: &[u8], mut on: impl FnMut(Item<'_>)) {
        self.buf.extend_from_slice(data);
        let mut pos = 0;
        while let Some(eol) = self.buf[pos..].windows(2).position(|w| w == b"\r\n") {
            let line = &self.buf[pos..pos + eol];
            if let Some(rest) = line.strip_prefix(b"MSG ") {
                let size: usize = std::str::from_utf8(rest)
                    .ok()
                    .and_then(|r| r.split(' ').next_back()?.parse().ok())
                    .unwrap_or(0);
                let start = pos + eol + 2;
                if self.buf.len() < start + size + 2 {
                    break; // the payload has not all arrived
                }
                on(Item::Msg(&self.buf[start..start + size]));
                pos = start + size + 2;
            } else {
                if line == b"PING" {
                    on(Item::Ping);
                }
                pos += eol + 2;
            }
        }
        self.buf.drain(..pos);
    }
}

/// One WebSocket subscriber; the latencies it read while counting.
async fn subscriber(
    mut ws: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    subjects: Vec<String>,
    counters: [Arc<AtomicBool>; 2],
    delivered: Arc<AtomicU64>,
    closed: Arc<AtomicU64>,
) -> Vec<u32> {
    let [counting, stop] = counters;
    let mut lat = Vec::new();
    let mut hello = String::from(CONNECT);
    for (sid, s) in subjects.iter().enumerate() {
        hello.push_str(&format!("SUB {s} {sid}\r\n"));
    }
    hello.push_str("PING\r\n");
    if ws.send(Message::binary(hello.into_bytes())).await.is_err() {
        return lat;
    }
    let mut parser = Parser::default();
    while !stop.load(Ordering::Relaxed) {
        let msg = match tokio::time::timeout(Duration::from_millis(200), ws.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(m))) => m,
            Ok(_) => {
                closed.fetch_add(1, Ordering::Relaxed);
                break;
            }
        };
        let data = match &msg {
            Message::Binary(b) => &b[..],
            Message::Text(t) => t.as_bytes(),
            _ => continue,
        };
        let mut ping = false;
        let now = Timestamp::now().as_nanos();
        let count = counting.load(Ordering::Relaxed);
        parser.feed(data, |item| match item {
            Item::Ping => ping = true,
            Item::Msg(p) if count => {
                if let Some(ts) = std::str::from_utf8(p).ok().and_then(ts_received) {
                    lat.push(((now - ts).max(0) / 1000).min(u32::MAX as i64) as u32);
                }
                delivered.fetch_add(1, Ordering::Relaxed);
            }
            Item::Msg(_) => {}
        });
        if ping
            && ws
                .send(Message::binary(b"PONG\r\n".to_vec()))
                .await
                .is_err()
        {
            break;
        }
    }
    let _ = ws.close(None).await;
    lat
}

/// Runs the fan-out of `a` on nats-server: `symbols` subjects, `a.clients`
/// subscribers of `a.per_client` subjects each.
pub(crate) async fn run(a: &FanoutArgs, symbols: &[String]) -> anyhow::Result<NatsOutcome> {
    let (server, port, ws_port) = start_server().await?;
    let pid = server.child.id();
    let url = format!("ws://127.0.0.1:{ws_port}");
    let per = a.per_client.min(symbols.len());
    let rss_before = rss_kib(pid);
    let mut conns = Vec::with_capacity(a.clients);
    for i in 0..a.clients {
        let (mut ws, _) = tokio_tungstenite::connect_async(&url)
            .await
            .with_context(|| format!("NATS client {i}: connect"))?;
        // The server's INFO comes first.
        let _ = tokio::time::timeout(Duration::from_secs(5), ws.next()).await;
        conns.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let rss_after = rss_kib(pid);
    let (counting, stop) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicBool::new(false)),
    );
    let (delivered, closed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut tasks = Vec::with_capacity(a.clients);
    for (i, ws) in conns.into_iter().enumerate() {
        let mine: Vec<String> = (0..per)
            .map(|k| symbols[(i * per + k) % symbols.len()].clone())
            .collect();
        let counters = [counting.clone(), stop.clone()];
        tasks.push(tokio::spawn(subscriber(
            ws,
            mine,
            counters,
            delivered.clone(),
            closed.clone(),
        )));
    }
    let publisher = tokio::spawn(publish(port, symbols.to_vec(), a.rate, stop.clone()));
    tokio::time::sleep(Duration::from_secs_f64(a.warmup)).await;
    counting.store(true, Ordering::Relaxed);
    let start = Instant::now();
    tokio::time::sleep(Duration::from_secs_f64(a.duration)).await;
    counting.store(false, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let published = publisher.await.context("publisher")??;
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap_or_default());
    }
    drop(server);
    Ok(NatsOutcome {
        elapsed,
        published,
        delivered: delivered.load(Ordering::Relaxed),
        lat,
        rss: (rss_before, rss_after),
        closed: closed.load(Ordering::Relaxed),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_messages_split_anywhere() {
        let stream =
            b"INFO {}\r\nMSG S0001 1 5\r\nhello\r\nPING\r\nMSG S0002 2 _INBOX.x 3\r\nabc\r\n";
        for cut in 0..stream.len() {
            let mut p = Parser::default();
            let mut got = Vec::new();
            let mut pings = 0;
            for part in [&stream[..cut], &stream[cut..]] {
                p.feed(part, |i| match i {
                    Item::Msg(m) => got.push(m.to_vec()),
                    Item::Ping => pings += 1,
                });
            }
            assert_eq!(
                got,
                vec![b"hello".to_vec(), b"abc".to_vec()],
                "cut at {cut}"
            );
            assert_eq!(pings, 1);
        }
    }

    #[test]
    fn payload_has_the_update_shape() {
        let p = payload("S0001", 7);
        assert!(p.starts_with("{\"type\":\"update\""));
        assert!(ts_received(&p).is_some());
    }
}
