//! The Rust client of mdhub's WebSocket protocol (`docs/protocol.md`).
//!
//! A [`Client`] holds one logical subscription across any number of
//! connections. It connects, subscribes, hands the application typed
//! [`ClientEvent`]s, and when the connection dies — the server restarts, a
//! load balancer drops it, or nothing arrives for two heartbeat intervals —
//! it reconnects (exponential backoff with full jitter, rotating through the
//! configured gateway URLs) and resumes every stream from the last position
//! it delivered. The application sees each update exactly once and in log
//! order per symbol and channel, or an explicit [`ClientEvent::Reset`]
//! followed by a fresh snapshot when the server no longer holds what was
//! missed.
//!
//! ```no_run
//! use mdhub_client::{Client, ClientConfig, ClientEvent};
//! use mdhub_types::{Event, Topic};
//!
//! # async fn demo() -> Result<(), mdhub_client::ClientError> {
//! let mut client = Client::connect(ClientConfig::new("ws://127.0.0.1:8080/v1/ws"))?;
//! client.subscribe(["AAPL", "BTC-USDT"], &[Topic::Trades]).await?;
//! while let Some(ev) = client.next().await {
//!     match ev {
//!         ClientEvent::Data(d) => {
//!             if let Event::Trade(t) = &d.event {
//!                 println!("{} {} @ {}", t.symbol, t.size, t.price);
//!             }
//!         }
//!         ClientEvent::Reset { symbol, channel, reason } => {
//!             eprintln!("{symbol} {channel}: history lost ({reason:?}); a snapshot follows");
//!         }
//!         other => eprintln!("{other:?}"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! Queues: events wait for the application in a bounded queue
//! ([`ClientConfig::event_capacity`]). When it is full the client stops
//! reading the socket; the server's own bounded queue then fills and the
//! server closes the connection (4008), and the client reconnects and
//! resumes — a slow application loses nothing, it only falls behind.

mod conn;
mod frame;
mod state;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use mdhub_types::Topic;
use mdhub_types::protocol::{ErrorCode, ResetReason};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use frame::{Data, DecodeError, Frame, Kind, decode};

/// How a [`Client`] connects and reconnects.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Gateway URLs (`ws://host:port/v1/ws`). Reconnects rotate through
    /// them, so a client moves to another instance when one goes away.
    pub urls: Vec<String>,
    /// First reconnect delay cap; doubles per failed attempt.
    pub backoff_base: Duration,
    /// Largest reconnect delay cap. The delay is uniform in `[0, cap]`
    /// ("full jitter"), so a restart does not bring every client back at once.
    pub backoff_cap: Duration,
    /// Limit for the TCP connect, the WebSocket handshake and the `welcome`.
    pub connect_timeout: Duration,
    /// A connection on which nothing arrived for this long is dead. `None`:
    /// two of the server's heartbeat intervals (from its `welcome`).
    pub dead_after: Option<Duration>,
    /// Events held for the application before the client stops reading.
    pub event_capacity: usize,
    /// An API key or JWT, sent as `Authorization: Bearer …` when the
    /// gateway requires one. A refused credential stops the client
    /// ([`ClientEvent::Stopped`]) instead of retrying.
    pub token: Option<String>,
    /// A PEM file of certificates to trust for `wss://` besides the usual
    /// root authorities: a private CA, or a gateway's self-signed
    /// certificate (`server.tls_cert_file`).
    pub ca_file: Option<std::path::PathBuf>,
}

impl ClientConfig {
    /// Defaults for one gateway URL: backoff 100 ms doubling to 5 s, connect
    /// timeout 10 s, dead after two heartbeats, 65,536 queued events.
    pub fn new(url: impl Into<String>) -> ClientConfig {
        ClientConfig {
            urls: vec![url.into()],
            backoff_base: Duration::from_millis(100),
            backoff_cap: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(10),
            dead_after: None,
            event_capacity: 65_536,
            token: None,
            ca_file: None,
        }
    }

    /// Defaults for several gateways of the same log, tried in turn.
    pub fn with_urls(urls: impl IntoIterator<Item = impl Into<String>>) -> ClientConfig {
        let mut c = ClientConfig::new(String::new());
        c.urls = urls.into_iter().map(Into::into).collect();
        c
    }
}

/// Identifies a subscribe or unsubscribe request in its [`ClientEvent::Ack`]
/// or [`ClientEvent::Rejected`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(pub u64);

/// What the client tells the application.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// A connection is up and the subscription set was sent again.
    Connected {
        /// The gateway.
        url: String,
        /// The log's epoch.
        epoch: String,
        /// Streams (symbol × channel) asked to resume from a position.
        resumed: usize,
        /// The log is not the one the positions came from: every resumed
        /// stream gets a [`ClientEvent::Reset`] and a snapshot.
        epoch_changed: bool,
    },
    /// A snapshot or update, each exactly once, in order per symbol and
    /// channel.
    Data(Data),
    /// The server cannot replay what this stream missed; a snapshot follows
    /// and the stream continues from there. With
    /// [`ResetReason::DataLost`] no snapshot follows: records were damaged on
    /// the server's disk and the replay goes on with the ones after them.
    Reset {
        /// Symbol.
        symbol: String,
        /// Channel.
        channel: Topic,
        /// Why.
        reason: ResetReason,
    },
    /// The server carried out a request sent on a live connection. (A
    /// request made while disconnected is sent with the resubscription and
    /// acknowledged only through [`ClientEvent::Connected`].)
    Ack {
        /// The request.
        request: RequestId,
        /// The whole subscription set after it: symbol → channels.
        subscriptions: BTreeMap<String, Vec<Topic>>,
    },
    /// The server refused a request or part of it; the refused symbols are
    /// dropped from the subscription set.
    Rejected {
        /// The request, or `None` for a resubscription after a reconnect.
        request: Option<RequestId>,
        /// Stable code.
        code: ErrorCode,
        /// The server's words.
        message: String,
        /// The symbols concerned.
        symbols: Vec<String>,
    },
    /// The server closed the connection and advised against reconnecting
    /// (a `closing` frame with `reconnect: false`); the client has stopped.
    Stopped {
        /// The server's words.
        reason: String,
    },
    /// The connection is gone; the client reconnects after `retry_in`.
    Disconnected {
        /// The gateway.
        url: String,
        /// Why, in words.
        reason: String,
        /// Failed attempts in a row (1 after a healthy connection).
        attempt: u32,
        /// The delay before the next attempt.
        retry_in: Duration,
    },
}

/// Errors of the client's API.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No URL, or one that is not `ws://` or `wss://`.
    #[error("bad gateway URL {0:?}: expected ws://host:port/v1/ws or wss://…")]
    BadUrl(String),
    /// The client was closed.
    #[error("the client is closed")]
    Closed,
}

/// Counters of a client, for metrics and tests.
#[derive(Debug, Default)]
pub struct Stats {
    /// Connections that reached `welcome`.
    pub connects: AtomicU64,
    /// Data events handed to the application.
    pub delivered: AtomicU64,
    /// Data frames dropped because their position was already delivered.
    pub duplicates: AtomicU64,
    /// Resets received.
    pub resets: AtomicU64,
    /// Frames that could not be decoded (skipped).
    pub bad_frames: AtomicU64,
}

impl Stats {
    fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Requests from the API to the connection task.
#[derive(Debug)]
pub(crate) enum Command {
    Subscribe {
        id: RequestId,
        symbols: Vec<String>,
        channels: Vec<Topic>,
    },
    Unsubscribe {
        id: RequestId,
        symbols: Vec<String>,
        channels: Vec<Topic>,
    },
    Close,
}

/// A resuming client of one hub (see the crate documentation).
#[derive(Debug)]
pub struct Client {
    commands: mpsc::Sender<Command>,
    events: mpsc::Receiver<ClientEvent>,
    task: JoinHandle<()>,
    stats: Arc<Stats>,
    next_id: u64,
}

impl Client {
    /// Start the client. It connects in the background and keeps
    /// reconnecting until [`Client::close`] or drop; call inside a Tokio
    /// runtime.
    pub fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        if config.urls.is_empty() {
            return Err(ClientError::BadUrl(String::new()));
        }
        if let Some(bad) = config
            .urls
            .iter()
            .find(|u| !(u.starts_with("ws://") || u.starts_with("wss://")))
        {
            return Err(ClientError::BadUrl(bad.clone()));
        }
        let (cmd_tx, cmd_rx) = mpsc::channel(1024);
        let (ev_tx, ev_rx) = mpsc::channel(config.event_capacity.max(1));
        let stats = Arc::new(Stats::default());
        let task = tokio::spawn(conn::run(config, cmd_rx, ev_tx, stats.clone()));
        Ok(Client {
            commands: cmd_tx,
            events: ev_rx,
            task,
            stats,
            next_id: 0,
        })
    }

    /// Subscribe `symbols` on `channels` (empty: quotes and trades). Each
    /// new stream starts with a snapshot; a stream already held continues.
    pub async fn subscribe<S: Into<String>>(
        &mut self,
        symbols: impl IntoIterator<Item = S>,
        channels: &[Topic],
    ) -> Result<RequestId, ClientError> {
        let id = self.request_id();
        self.send(Command::Subscribe {
            id,
            symbols: symbols.into_iter().map(Into::into).collect(),
            channels: default_channels(channels),
        })
        .await?;
        Ok(id)
    }

    /// Drop `channels` (empty: all) of `symbols`. Their positions are
    /// forgotten: subscribing again starts from a snapshot.
    pub async fn unsubscribe<S: Into<String>>(
        &mut self,
        symbols: impl IntoIterator<Item = S>,
        channels: &[Topic],
    ) -> Result<RequestId, ClientError> {
        let id = self.request_id();
        let channels = if channels.is_empty() {
            vec![Topic::Quotes, Topic::Trades, Topic::Status]
        } else {
            channels.to_vec()
        };
        self.send(Command::Unsubscribe {
            id,
            symbols: symbols.into_iter().map(Into::into).collect(),
            channels,
        })
        .await?;
        Ok(id)
    }

    /// The next event; `None` once the client is closed.
    pub async fn next(&mut self) -> Option<ClientEvent> {
        self.events.recv().await
    }

    /// The client's counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Close the connection (a WebSocket close, code 1000) and stop.
    pub async fn close(self) {
        let _ = self.commands.send(Command::Close).await;
        drop(self.events);
        let _ = self.task.await;
    }

    fn request_id(&mut self) -> RequestId {
        self.next_id += 1;
        RequestId(self.next_id)
    }

    async fn send(&self, cmd: Command) -> Result<(), ClientError> {
        self.commands
            .send(cmd)
            .await
            .map_err(|_| ClientError::Closed)
    }
}

fn default_channels(channels: &[Topic]) -> Vec<Topic> {
    if channels.is_empty() {
        vec![Topic::Quotes, Topic::Trades]
    } else {
        channels.to_vec()
    }
}

/// The delay before reconnect attempt `attempt` (1-based): uniform in
/// `[0, min(cap, base × 2^(attempt-1))]`.
pub fn full_jitter(base: Duration, cap: Duration, attempt: u32) -> Duration {
    let ceiling = base
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(20))
        .min(cap);
    ceiling.mul_f64(rand::random::<f64>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_under_its_cap() {
        let (base, cap) = (Duration::from_millis(100), Duration::from_secs(5));
        for attempt in 1..40 {
            let ceiling = (base * 2u32.pow((attempt - 1).min(20))).min(cap);
            for _ in 0..50 {
                assert!(full_jitter(base, cap, attempt) <= ceiling);
            }
        }
        assert!(full_jitter(base, cap, 0) <= base);
    }

    #[test]
    fn urls_are_checked() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(matches!(
                Client::connect(ClientConfig::new("http://x")),
                Err(ClientError::BadUrl(_))
            ));
            assert!(matches!(
                Client::connect(ClientConfig::with_urls(Vec::<String>::new())),
                Err(ClientError::BadUrl(_))
            ));
        });
    }
}
