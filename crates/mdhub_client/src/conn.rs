//! The connection task: one session per connection, reconnects in between.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use mdhub_types::Topic;
use mdhub_types::protocol::{ClientMessage, ErrorCode, ResetReason, ServerMessage};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::frame::{Frame, decode};
use crate::state::Streams;
use crate::{ClientConfig, ClientEvent, Command, RequestId, Stats, full_jitter};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How a session ended.
enum End {
    /// The application closed the client (or dropped it).
    Closed,
    /// The connection failed or died; `healthy` when it got as far as
    /// delivering data, which resets the backoff.
    Lost { reason: String, healthy: bool },
}

/// What the server's `closing` frame advised.
#[derive(Debug, Clone, Copy)]
enum Advice {
    /// Reconnect, but not before this.
    RetryAfter(Duration),
    /// Don't reconnect.
    Stop,
}

/// State that lives across connections.
struct Task {
    cfg: ClientConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ClientEvent>,
    stats: Arc<Stats>,
    streams: Streams,
    /// Requests of the application awaiting their ack: id → streams they
    /// added, to drop again when the server refuses them.
    pending: HashMap<u64, Vec<(String, Vec<Topic>)>>,
    /// Ids of the client's own resubscriptions: from `u64::MAX` down, far
    /// from the application's, which count up from 1 ([`INTERNAL_IDS`]).
    next_internal: u64,
    /// Symbols a resubscription found unknown: a hub that just started has
    /// not seen every symbol yet, so they are asked for again (`retry_at`,
    /// backing off to 30 s) instead of being dropped.
    retry: BTreeSet<String>,
    retry_at: Option<Instant>,
    retry_delay: Duration,
    /// The advice of the last `closing` frame, for the next reconnect.
    advice: Option<Advice>,
}

const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

pub(crate) async fn run(
    cfg: ClientConfig,
    commands: mpsc::Receiver<Command>,
    events: mpsc::Sender<ClientEvent>,
    stats: Arc<Stats>,
) {
    let mut task = Task {
        cfg,
        commands,
        events,
        stats,
        streams: Streams::default(),
        pending: HashMap::new(),
        next_internal: u64::MAX,
        retry: BTreeSet::new(),
        retry_at: None,
        retry_delay: RETRY_FIRST,
        advice: None,
    };
    let mut attempt = 0u32;
    for turn in 0usize.. {
        let url = task.cfg.urls[turn % task.cfg.urls.len()].clone();
        let (reason, healthy) = match task.session(&url).await {
            End::Closed => return,
            End::Lost { reason, healthy } => (reason, healthy),
        };
        attempt = if healthy { 1 } else { attempt + 1 };
        let mut retry_in = full_jitter(task.cfg.backoff_base, task.cfg.backoff_cap, attempt);
        match task.advice.take() {
            Some(Advice::Stop) => {
                let _ = task.events.send(ClientEvent::Stopped { reason }).await;
                return;
            }
            Some(Advice::RetryAfter(d)) => retry_in = retry_in.max(d),
            None => {}
        }
        tracing::debug!(%url, %reason, attempt, ?retry_in, "mdhub connection lost");
        let ev = ClientEvent::Disconnected {
            url,
            reason,
            attempt,
            retry_in,
        };
        if task.events.send(ev).await.is_err() || !task.wait(retry_in).await {
            return;
        }
    }
}

impl Task {
    /// Sleep `d` while still taking the application's requests (they change
    /// the set the next connection subscribes). False when it closed.
    async fn wait(&mut self, d: Duration) -> bool {
        let until = Instant::now() + d;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(until) => return true,
                cmd = self.commands.recv() => match cmd {
                    None | Some(Command::Close) => return false,
                    Some(Command::Subscribe { symbols, channels, .. }) => {
                        self.streams.want(&symbols, &channels);
                    }
                    Some(Command::Unsubscribe { symbols, channels, .. }) => {
                        self.streams.unwant(&symbols, &channels);
                    }
                },
            }
        }
    }

    async fn session(&mut self, url: &str) -> End {
        let limit = self.cfg.connect_timeout;
        let opened = tokio::time::timeout(
            limit,
            open(url, self.cfg.token.as_deref(), self.cfg.ca_file.as_deref()),
        )
        .await;
        let (mut ws, epoch, heartbeat) = match opened {
            Ok(Ok(v)) => v,
            Ok(Err(Refused(reason))) => {
                // Retrying the same credential cannot help.
                self.advice = Some(Advice::Stop);
                return lost(reason);
            }
            Ok(Err(Failed(reason))) => return lost(reason),
            Err(_) => return lost(format!("no welcome from {url} within {limit:?}")),
        };
        // Requests sent on the old connection will never be answered.
        self.pending.clear();
        self.advice = None;
        (self.retry, self.retry_at, self.retry_delay) = (BTreeSet::new(), None, RETRY_FIRST);
        let epoch_changed = self.streams.set_epoch(&epoch).is_some();
        // Positions of another log mean nothing here: every stream restarts
        // from a snapshot, as the server would say with a reset of its own.
        let dropped = if epoch_changed {
            self.streams.clear_positions()
        } else {
            Vec::new()
        };
        let resumed = self.streams.resumable();
        if let Err(e) = self
            .send_internal(&mut ws, self.streams.resubscribe())
            .await
        {
            return lost(e);
        }
        Stats::add(&self.stats.connects, 1);
        let connected = ClientEvent::Connected {
            url: url.to_string(),
            epoch,
            resumed,
            epoch_changed,
        };
        if self.events.send(connected).await.is_err() {
            return End::Closed;
        }
        for (symbol, channel) in dropped {
            Stats::add(&self.stats.resets, 1);
            let reason = ResetReason::EpochChanged;
            let reset = ClientEvent::Reset {
                symbol,
                channel,
                reason,
            };
            if self.events.send(reset).await.is_err() {
                return End::Closed;
            }
        }
        let dead_after = self.cfg.dead_after.unwrap_or(heartbeat * 2);
        self.pump(&mut ws, dead_after).await
    }

    /// Read frames and take requests until the connection ends.
    async fn pump(&mut self, ws: &mut Ws, dead_after: Duration) -> End {
        let mut healthy = false;
        let mut last_rx = Instant::now();
        let end = |reason: String, healthy| End::Lost { reason, healthy };
        loop {
            tokio::select! {
                // Frames first: after a pause in the application, buffered
                // frames must not look like a silent connection.
                biased;
                msg = ws.next() => {
                    last_rx = Instant::now();
                    let text = match msg {
                        Some(Ok(Message::Text(t))) => t,
                        Some(Ok(Message::Close(frame))) => {
                            let why = frame
                                .map(|f| format!("{} {}", u16::from(f.code), f.reason))
                                .unwrap_or_else(|| "no code".into());
                            return end(format!("server closed the connection ({why})"), healthy);
                        }
                        Some(Ok(_)) => continue,
                        Some(Err(e)) => return end(format!("connection lost: {e}"), healthy),
                        None => return end("connection closed".into(), healthy),
                    };
                    match self.on_frame(text.as_str()).await {
                        Ok(delivered) => healthy |= delivered,
                        Err(Closed) => return End::Closed,
                    }
                }
                cmd = self.commands.recv() => {
                    let Some(msg) = self.on_command(cmd) else {
                        let _ = ws.close(None).await;
                        return End::Closed;
                    };
                    if let Err(e) = ws.send(Message::text(msg)).await {
                        return end(format!("send failed: {e}"), healthy);
                    }
                }
                _ = tokio::time::sleep_until(last_rx + dead_after) => {
                    let ms = dead_after.as_millis();
                    return end(format!("nothing received for {ms} ms"), healthy);
                }
                _ = sleep_until_some(self.retry_at) => {
                    let retry = std::mem::take(&mut self.retry);
                    self.retry_at = None;
                    let msgs = self.streams.resubscribe_only(|s| retry.contains(s));
                    if let Err(reason) = self.send_internal(ws, msgs).await {
                        return end(reason, healthy);
                    }
                }
            }
        }
    }

    /// Send the client's own subscribe requests.
    async fn send_internal(&mut self, ws: &mut Ws, msgs: Vec<ClientMessage>) -> Result<(), String> {
        for msg in msgs {
            let id = self.next_internal;
            self.next_internal -= 1;
            ws.send(Message::text(with_id(msg, id)))
                .await
                .map_err(|e| format!("send failed: {e}"))?;
        }
        Ok(())
    }

    /// Apply a request to the wanted set and return the frame to send; `None`
    /// when the application closed.
    fn on_command(&mut self, cmd: Option<Command>) -> Option<String> {
        match cmd? {
            Command::Close => None,
            Command::Subscribe {
                id,
                symbols,
                channels,
            } => {
                let added = self.newly_wanted(&symbols, &channels);
                self.streams.want(&symbols, &channels);
                self.pending.insert(id.0, added);
                let chans: BTreeSet<Topic> = channels.into_iter().collect();
                let msg = self.streams.subscribe_message(symbols, &chans);
                Some(with_id(msg, id.0))
            }
            Command::Unsubscribe {
                id,
                symbols,
                channels,
            } => {
                self.streams.unwant(&symbols, &channels);
                self.pending.insert(id.0, Vec::new());
                let msg = ClientMessage::Unsubscribe {
                    symbols,
                    channels: Some(channels.iter().map(|c| c.channel().to_string()).collect()),
                    id: None,
                };
                Some(with_id(msg, id.0))
            }
        }
    }

    /// The streams of a subscribe request that are not wanted yet.
    fn newly_wanted(&self, symbols: &[String], channels: &[Topic]) -> Vec<(String, Vec<Topic>)> {
        let wanted = self.streams.wanted();
        symbols
            .iter()
            .map(|s| {
                let have = wanted.get(s);
                let new = channels
                    .iter()
                    .filter(|c| !have.is_some_and(|h| h.contains(c)))
                    .copied()
                    .collect();
                (s.clone(), new)
            })
            .collect()
    }

    /// Handle one text frame; `Ok(true)` when it delivered data.
    async fn on_frame(&mut self, text: &str) -> Result<bool, Closed> {
        let ev = match decode(text) {
            Ok(Frame::Data(d)) => {
                let sym = d.event.symbol().as_str();
                let all = self.streams.wanted();
                let has = |name: &str| all.get(name).is_some_and(|c| c.contains(&d.pos.topic));
                // Wanted as the symbol (every venue) or as SYMBOL@venue.
                // Frames of a stream just unsubscribed can still be in flight.
                if !has(sym) && !has(&format!("{sym}@{}", d.event.venue())) {
                    return Ok(false);
                }
                if !self.streams.accept(sym, d.pos) {
                    Stats::add(&self.stats.duplicates, 1);
                    return Ok(false);
                }
                Stats::add(&self.stats.delivered, 1);
                ClientEvent::Data(d)
            }
            Ok(Frame::Control(msg)) => match self.on_control(msg) {
                Some(ev) => ev,
                None => return Ok(false),
            },
            Ok(Frame::Unknown(kind)) => {
                tracing::debug!(kind, "skipping a frame of an unknown type");
                return Ok(false);
            }
            Err(e) => {
                Stats::add(&self.stats.bad_frames, 1);
                tracing::warn!(error = %e, "skipping a bad frame");
                return Ok(false);
            }
        };
        let data = matches!(ev, ClientEvent::Data(_));
        self.events.send(ev).await.map_err(|_| Closed)?;
        Ok(data)
    }

    fn on_control(&mut self, msg: ServerMessage) -> Option<ClientEvent> {
        match msg {
            ServerMessage::Reset {
                symbol,
                channel,
                reason,
            } => {
                Stats::add(&self.stats.resets, 1);
                self.streams.reset(&symbol, channel);
                Some(ClientEvent::Reset {
                    symbol,
                    channel,
                    reason,
                })
            }
            ServerMessage::Ack {
                id, subscriptions, ..
            } => {
                let request = user_request(id.as_ref())?;
                self.pending.remove(&request.0);
                Some(ClientEvent::Ack {
                    request,
                    subscriptions,
                })
            }
            ServerMessage::Error {
                code,
                message,
                symbols,
                id,
            } => {
                let request = user_request(id.as_ref());
                let added = request.and_then(|r| self.pending.remove(&r.0));
                self.drop_refused(request.is_none(), added, code, &symbols);
                if code == ErrorCode::UnknownSymbol && request.is_none() {
                    return None; // asked for again later (drop_refused)
                }
                Some(ClientEvent::Rejected {
                    request,
                    code,
                    message,
                    symbols,
                })
            }
            ServerMessage::Closing {
                reconnect,
                retry_after_ms,
                ..
            } => {
                self.advice = Some(if reconnect {
                    Advice::RetryAfter(Duration::from_millis(retry_after_ms))
                } else {
                    Advice::Stop
                });
                None
            }
            ServerMessage::Welcome { .. }
            | ServerMessage::Heartbeat { .. }
            | ServerMessage::Pong { .. } => None,
        }
    }

    /// Take refused symbols out of the wanted set, so the next reconnect
    /// does not ask for them again.
    /// `added`: the streams the refused request added to the set.
    fn drop_refused(
        &mut self,
        internal: bool,
        added: Option<Vec<(String, Vec<Topic>)>>,
        code: ErrorCode,
        symbols: &[String],
    ) {
        match code {
            // Nothing of the request was applied.
            ErrorCode::TooManySymbols => {
                for (sym, chans) in added.unwrap_or_default() {
                    self.streams.unwant(&[sym], &chans);
                }
            }
            // A resubscription: the hub may not have seen the symbol yet.
            ErrorCode::UnknownSymbol if internal => {
                self.retry.extend(symbols.iter().cloned());
                self.retry_at = Some(Instant::now() + self.retry_delay);
                self.retry_delay = (self.retry_delay * 2).min(RETRY_MAX);
            }
            ErrorCode::InvalidSymbol | ErrorCode::UnknownSymbol => {
                let all = [Topic::Quotes, Topic::Trades, Topic::Status];
                self.streams.unwant(symbols, &all);
            }
            _ => {}
        }
    }
}

/// The application is gone.
struct Closed;

/// Ids at and above this are the client's own resubscriptions.
const INTERNAL_IDS: u64 = 1 << 63;

/// The application's request an `id` echoed by the server belongs to.
fn user_request(id: Option<&serde_json::Value>) -> Option<RequestId> {
    id.and_then(serde_json::Value::as_u64)
        .filter(|&i| i < INTERNAL_IDS)
        .map(RequestId)
}

/// Sleep until `at`; forever when there is nothing to wait for.
async fn sleep_until_some(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

fn lost(reason: String) -> End {
    End::Lost {
        reason,
        healthy: false,
    }
}

/// Why a connection could not be opened.
enum OpenError {
    /// The gateway refused the credential (or its absence): final.
    Refused(String),
    /// Anything else: try again later.
    Failed(String),
}
use OpenError::{Failed, Refused};

/// A TLS client trusting the webpki roots and the certificates in `path`
/// (a private CA, or a gateway's self-signed certificate).
fn tls_with_ca(path: &std::path::Path) -> Result<std::sync::Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let why = |e: &dyn std::fmt::Display| format!("ca_file {}: {e}", path.display());
    let mut roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut added = 0;
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| why(&e))? {
        roots.add(cert.map_err(|e| why(&e))?).map_err(|e| why(&e))?;
        added += 1;
    }
    if added == 0 {
        return Err(why(&"no CERTIFICATE in the file"));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| why(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(std::sync::Arc::new(config))
}

/// Connect (with the credential, if any) and read the `welcome`: the
/// connection, the epoch and the heartbeat interval.
async fn open(
    url: &str,
    token: Option<&str>,
    ca_file: Option<&std::path::Path>,
) -> Result<(Ws, String, Duration), OpenError> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut connector = None;
    if url.starts_with("wss://") {
        // Several rustls providers are linked into the tree; pick one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        if let Some(path) = ca_file {
            let tls = tls_with_ca(path).map_err(Refused)?;
            connector = Some(tokio_tungstenite::Connector::Rustls(tls));
        }
    }
    let mut req = url
        .into_client_request()
        .map_err(|e| Refused(format!("bad URL {url}: {e}")))?;
    if let Some(t) = token {
        let value = format!("Bearer {t}")
            .parse()
            .map_err(|_| Refused("the token is not a valid header value".into()))?;
        req.headers_mut().insert("Authorization", value);
    }
    // tungstenite zero-fills `read_buffer_size` bytes before every read
    // (128 KiB by default); 16 KiB keeps that cheap and still takes a burst
    // of updates in one read.
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(16 << 10);
    let connecting =
        tokio_tungstenite::connect_async_tls_with_config(req, Some(config), true, connector);
    let mut ws = match connecting.await {
        Ok((ws, _)) => ws,
        Err(WsError::Http(r)) if matches!(r.status().as_u16(), 401 | 403) => {
            let body = r
                .body()
                .as_deref()
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            return Err(Refused(format!(
                "{url} refused the credential ({}): {body}",
                r.status()
            )));
        }
        Err(e) => return Err(Failed(format!("cannot connect to {url}: {e}"))),
    };
    loop {
        let text = match ws.next().await {
            Some(Ok(Message::Text(t))) => t,
            Some(Ok(Message::Close(f))) => {
                return Err(Failed(format!("closed before welcome: {f:?}")));
            }
            Some(Ok(_)) => continue,
            Some(Err(e)) => return Err(Failed(format!("connection lost before welcome: {e}"))),
            None => return Err(Failed("connection closed before welcome".into())),
        };
        return match decode(text.as_str()) {
            Ok(Frame::Control(ServerMessage::Welcome {
                auth_required: true,
                ..
            })) if token.is_none() => Err(Refused(format!(
                "{url} requires a credential: set ClientConfig::token"
            ))),
            Ok(Frame::Control(ServerMessage::Welcome {
                epoch,
                heartbeat_ms,
                ..
            })) => Ok((ws, epoch, Duration::from_millis(heartbeat_ms.max(1)))),
            _ => Err(Failed(format!("expected welcome, got {}", text.as_str()))),
        };
    }
}

/// The JSON of a request with `id` set.
fn with_id(mut msg: ClientMessage, n: u64) -> String {
    let id = Some(serde_json::Value::from(n));
    match &mut msg {
        ClientMessage::Subscribe { id: slot, .. }
        | ClientMessage::Unsubscribe { id: slot, .. }
        | ClientMessage::Auth { id: slot, .. }
        | ClientMessage::Ping { id: slot } => *slot = id,
    }
    serde_json::to_string(&msg).unwrap_or_default()
}
