//! The live FIX 4.4 feed: one FIX session with the venue, run by hotfix's
//! session state machine over a TCP connection this module keeps.
//!
//! - hotfix does the session layer: Logon with HeartBtInt(108) and
//!   NextExpectedMsgSeqNum(789), Heartbeats, answering TestRequests and
//!   sending them when the venue goes quiet, ResendRequest on a sequence
//!   gap (reported as a `gap` feed-status event for every symbol),
//!   SequenceReset-GapFill when the venue asks for our messages again, and
//!   Logout on shutdown.
//! - Sequence numbers and sent messages live in hotfix's file store in
//!   `store_dir`: a reconnect, and a new process with the same directory,
//!   continue the numbering (FIX sessions do not reset at 1 on reconnect).
//! - This module owns the socket, not hotfix's own connector: hotfix 0.13's
//!   initiator reconnects at a fixed interval and reads the socket where no
//!   receipt time can be taken. Here reconnects back off exponentially with
//!   full jitter, and each message's `ts_received` is taken as its bytes are
//!   read, before hotfix parses it.
//! - hotfix 0.13.0 / hotfix-store 0.1.1 limits met, and what is done here:
//!   its `Initiator` reconnects every fixed `reconnect_interval` and owns the
//!   socket reader, so this module drives hotfix's session
//!   (`InternalSessionRef`, public under hotfix's default `test-utils`
//!   feature) with its own TCP connection, hotfix's `spawn_socket_writer`
//!   and its `Parser`; `FileStore::new` truncates the `.seqnums` file until
//!   the next number changes ([`open_store`](super::session) rewrites it at
//!   once); `Application::on_logon` is not called when the venue's Logon
//!   reply has a sequence gap (the session goes straight to resending), so a
//!   switch from AwaitingLogon to AwaitingResend also counts as logged on;
//!   the application gets a parsed message, which is encoded again for the
//!   decoder. hotfix checks repeating-group field order strictly: a venue
//!   that writes MD entries out of its dictionary's order gets a session
//!   Reject (3) and the entries never arrive (a venue dictionary can be
//!   given with `dictionary`).
//! - After every Logon, one MarketDataRequest (V) per symbol
//!   (MDReqID `mdhub-<venue symbol>`), so a reject (Y) of one symbol leaves
//!   the others flowing. Rejects are logged and kept ([`FixFeed::rejected`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hotfix::config::SessionConfig;
use hotfix::message::parser::Parser;
use hotfix::session::{InternalSessionRef, SessionHandle};
use hotfix::transport::socket_writer::spawn_socket_writer;
use mdhub_types::{Symbol, Timestamp, Venue};
use parking_lot::Mutex;
use rand::Rng;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::session::{App, Outbound, SessionView, Shared, open_store};
use super::{Decoder, SymbolMap, VENUE};
use crate::{Feed, FeedContext, FeedError, FeedState};
use mdhub_types::FeedStatusKind;

/// Reconnect backoff: capped exponential with full jitter.
#[derive(Debug, Clone)]
pub struct FixBackoff {
    /// The first wait's upper bound (milliseconds).
    pub initial_ms: u64,
    /// The cap on the wait's upper bound (milliseconds).
    pub max_ms: u64,
    /// A session that stayed logged on this long starts again from
    /// `initial_ms` (seconds).
    pub reset_after_secs: u64,
}

impl Default for FixBackoff {
    fn default() -> Self {
        FixBackoff {
            initial_ms: 500,
            max_ms: 30_000,
            reset_after_secs: 60,
        }
    }
}

/// Settings of a FIX 4.4 market-data feed.
#[derive(Debug, Clone)]
pub struct FixSettings {
    /// The venue's FIX host.
    pub host: String,
    /// The venue's FIX port.
    pub port: u16,
    /// SenderCompID(49): mdhub's id at the venue.
    pub sender_comp_id: String,
    /// TargetCompID(56): the venue's id.
    pub target_comp_id: String,
    /// HeartBtInt(108) proposed at Logon (seconds).
    pub heartbeat_secs: u64,
    /// Where the session's sequence numbers and sent messages are kept
    /// (hotfix's file store, one set of files per SenderCompID-TargetCompID).
    pub store_dir: PathBuf,
    /// Canonical symbol → the venue's Symbol(55).
    pub symbols: BTreeMap<Symbol, String>,
    /// Reconnect backoff.
    pub backoff: FixBackoff,
    /// Give up on a connection whose Logon is not answered within this
    /// (seconds).
    pub logon_timeout_secs: u64,
    /// Wait this long for the venue's Logout reply at shutdown (seconds).
    pub logout_timeout_secs: u64,
    /// A QuickFIX-format data dictionary (XML) for venues with custom tags;
    /// hotfix's built-in FIX 4.4 dictionary when unset.
    pub dictionary: Option<PathBuf>,
}

impl Default for FixSettings {
    fn default() -> Self {
        FixSettings {
            host: "127.0.0.1".into(),
            port: 9876,
            sender_comp_id: "MDHUB".into(),
            target_comp_id: "VENUE".into(),
            heartbeat_secs: 30,
            store_dir: PathBuf::from("mdhub-data/fix"),
            symbols: BTreeMap::new(),
            backoff: FixBackoff::default(),
            logon_timeout_secs: 10,
            logout_timeout_secs: 2,
            dictionary: None,
        }
    }
}

/// A FIX 4.4 market-data feed (see the module docs).
#[derive(Debug)]
pub struct FixFeed {
    venue: Venue,
    settings: FixSettings,
    rejected: Arc<Mutex<Vec<String>>>,
}

/// How one connection ended.
enum End {
    Shutdown,
    Retry {
        reason: String,
        logged_on_for: Duration,
    },
}

impl FixFeed {
    /// A feed with `settings`.
    pub fn new(settings: FixSettings) -> Self {
        FixFeed {
            venue: Venue::new(VENUE).unwrap_or_else(|_| unreachable!("valid venue id")),
            settings,
            rejected: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// MarketDataRequests the venue rejected (Y) during the last run, with
    /// its reason.
    pub fn rejected(&self) -> Vec<String> {
        self.rejected.lock().clone()
    }

    fn config_error(&self, message: String) -> FeedError {
        FeedError::Config {
            venue: VENUE.into(),
            message,
        }
    }

    fn session_config(&self) -> SessionConfig {
        let s = &self.settings;
        SessionConfig {
            begin_string: "FIX.4.4".into(),
            sender_comp_id: s.sender_comp_id.clone(),
            target_comp_id: s.target_comp_id.clone(),
            data_dictionary_path: s.dictionary.as_ref().map(|p| p.display().to_string()),
            connection_host: s.host.clone(),
            connection_port: s.port,
            tls_config: None,
            heartbeat_interval: s.heartbeat_secs.max(1),
            logon_timeout: s.logon_timeout_secs.max(1),
            logout_timeout: s.logout_timeout_secs.max(1),
            reconnect_interval: 1, // unused: this module reconnects
            reset_on_logon: false,
            schedule: None,
            validation: Default::default(),
        }
    }

    /// One TCP connection: Logon, subscribe after each Logon, feed the
    /// socket's messages to the session until it ends.
    async fn connection(
        &self,
        session: &InternalSessionRef<Outbound>,
        handle: &SessionHandle<Outbound>,
        shared: &Shared,
        view: &mut watch::Receiver<SessionView>,
        ctx: &FeedContext,
    ) -> Result<End, FeedError> {
        let s = &self.settings;
        let connect = tokio::select! {
            _ = ctx.shutdown.cancelled() => return Ok(End::Shutdown),
            c = tokio::time::timeout(Duration::from_secs(10), TcpStream::connect((s.host.as_str(), s.port))) => c,
        };
        let tcp = match connect {
            Err(_) => return Ok(retry("connect timed out", None)),
            Ok(Err(e)) => return Ok(retry(&format!("connect failed: {e}"), None)),
            Ok(Ok(tcp)) => tcp,
        };
        let _ = tcp.set_nodelay(true);
        let (mut rd, wr) = tokio::io::split(tcp);
        let (writer, mut writer_exit) = spawn_socket_writer(wr);
        shared.clear_stamps();
        view.borrow_and_update();
        if session.register_writer(writer).await.is_err() {
            return Err(self.config_error("the FIX session task stopped".into()));
        }
        tracing::info!(venue = VENUE, host = %s.host, port = s.port, "connected, Logon sent");

        let mut parser = Parser::default();
        let mut buf = Vec::with_capacity(64 * 1024);
        let logon_deadline = tokio::time::sleep(Duration::from_secs(s.logon_timeout_secs.max(1)));
        tokio::pin!(logon_deadline);
        let logout_deadline = tokio::time::sleep(Duration::from_secs(u64::from(u32::MAX)));
        tokio::pin!(logout_deadline);
        let mut logged_on_at: Option<tokio::time::Instant> = None;
        let mut shutting_down = false;
        // Whether `connected` was sent for this connection (once per
        // connection, though the session may log on again within it).
        let mut announced = false;
        let symbols: Vec<Symbol> = s.symbols.keys().cloned().collect();
        let reason = loop {
            tokio::select! {
                _ = ctx.shutdown.cancelled(), if !shutting_down => {
                    shutting_down = true;
                    tracing::info!(venue = VENUE, "shutting down: Logout");
                    if handle.shutdown(false).await.is_err() {
                        break "session gone".to_string();
                    }
                    logout_deadline.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(s.logout_timeout_secs.max(1) + 1));
                }
                _ = &mut logout_deadline, if shutting_down => break "no Logout reply".to_string(),
                _ = &mut logon_deadline, if logged_on_at.is_none() => break "no Logon reply".to_string(),
                _ = &mut writer_exit => break "the session closed the connection".to_string(),
                changed = view.changed() => {
                    if changed.is_err() {
                        break "session gone".to_string();
                    }
                    let v = view.borrow_and_update().clone();
                    if v.active && logged_on_at.is_none() && !shutting_down {
                        logged_on_at = Some(tokio::time::Instant::now());
                        self.subscribe(handle).await;
                        ctx.status.set_state(FeedState::Live);
                        if !announced {
                            announced = true;
                            ctx.send_status(&symbols, FeedStatusKind::Connected, None, Timestamp::now()).await?;
                        }
                    } else if !v.active && logged_on_at.is_some() {
                        logged_on_at = None;
                    }
                }
                read = rd.read_buf(&mut buf) => {
                    let ts_received = Timestamp::now();
                    match read {
                        Ok(0) => break "closed by the venue".to_string(),
                        Err(e) => break format!("read failed: {e}"),
                        Ok(_) => {}
                    }
                    for msg in parser.parse(&buf) {
                        ctx.record_raw(0, ts_received, msg.as_bytes()).await;
                        shared.stamp(msg.as_bytes(), ts_received);
                        if session.new_fix_message_received(msg).await.is_err() {
                            return Err(self.config_error("the FIX session task stopped".into()));
                        }
                    }
                    buf.clear();
                    if shared.pipeline_closed() {
                        return Err(FeedError::PipelineClosed { venue: VENUE.into() });
                    }
                }
            }
        };
        let _ = session.disconnect(reason.clone()).await;
        if announced {
            let why = if shutting_down {
                "mdhub is shutting down"
            } else {
                reason.as_str()
            };
            ctx.send_status(
                &symbols,
                FeedStatusKind::Disconnected,
                Some(why),
                Timestamp::now(),
            )
            .await?;
        }
        if shutting_down {
            return Ok(End::Shutdown);
        }
        Ok(retry(&reason, logged_on_at.map(|t| t.elapsed())))
    }

    /// One MarketDataRequest per symbol.
    async fn subscribe(&self, handle: &SessionHandle<Outbound>) {
        for venue_symbol in self.settings.symbols.values() {
            let req = Outbound::Subscribe {
                req_id: format!("mdhub-{venue_symbol}"),
                symbol: venue_symbol.clone(),
            };
            match handle.send(req).await {
                Ok(outcome) => {
                    tracing::info!(venue = VENUE, symbol = %venue_symbol, ?outcome, "MarketDataRequest sent")
                }
                Err(e) => {
                    tracing::warn!(venue = VENUE, symbol = %venue_symbol, error = %e, "MarketDataRequest not sent")
                }
            }
        }
    }
}

fn retry(reason: &str, logged_on_for: Option<Duration>) -> End {
    End::Retry {
        reason: reason.to_string(),
        logged_on_for: logged_on_for.unwrap_or_default(),
    }
}

#[async_trait::async_trait]
impl Feed for FixFeed {
    fn venue(&self) -> &Venue {
        &self.venue
    }

    fn symbols(&self) -> Vec<Symbol> {
        self.settings.symbols.keys().cloned().collect()
    }

    async fn run(&self, ctx: FeedContext) -> Result<(), FeedError> {
        let s = &self.settings;
        if s.symbols.is_empty() {
            return Err(self.config_error("no symbols configured".into()));
        }
        if s.sender_comp_id.is_empty() || s.target_comp_id.is_empty() {
            return Err(self.config_error("sender_comp_id and target_comp_id are required".into()));
        }
        let store = open_store(&s.store_dir, &s.sender_comp_id, &s.target_comp_id)
            .await
            .map_err(|e| self.config_error(format!("store_dir {}: {e}", s.store_dir.display())))?;
        self.rejected.lock().clear();
        let symbols = SymbolMap::new(s.symbols.iter().map(|(c, v)| (c.clone(), v.clone())));
        let (shared, mut view) =
            Shared::new(Decoder::new(symbols), ctx.clone(), self.rejected.clone());
        let session = InternalSessionRef::new(
            self.session_config(),
            App {
                shared: shared.clone(),
            },
            store,
        )
        .map_err(|e| self.config_error(format!("FIX session: {e}")))?;
        let handle: SessionHandle<Outbound> = session.clone().into();

        let cap = Duration::from_millis(s.backoff.max_ms.max(1));
        let initial = Duration::from_millis(s.backoff.initial_ms.max(1)).min(cap);
        let mut backoff = initial;
        loop {
            ctx.status.set_state(FeedState::Connecting);
            match self
                .connection(&session, &handle, &shared, &mut view, &ctx)
                .await?
            {
                End::Shutdown => break,
                End::Retry {
                    reason,
                    logged_on_for,
                } => {
                    if logged_on_for >= Duration::from_secs(s.backoff.reset_after_secs) {
                        backoff = initial;
                    }
                    // Full jitter: many sessions dropped at once spread out.
                    let wait = Duration::from_millis(
                        rand::rng().random_range(0..=backoff.as_millis() as u64),
                    );
                    tracing::warn!(venue = VENUE, reason = %reason, retry_in_ms = wait.as_millis() as u64, "disconnected");
                    ctx.status.set_state(FeedState::Backoff);
                    ctx.status.record_reconnect();
                    tokio::select! {
                        _ = ctx.shutdown.cancelled() => break,
                        _ = tokio::time::sleep(wait) => {}
                    }
                    backoff = (backoff * 2).min(cap);
                }
            }
        }
        ctx.status.set_state(FeedState::Stopped);
        Ok(())
    }
}
