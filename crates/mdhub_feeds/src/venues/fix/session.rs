//! The glue between hotfix's session layer and mdhub: the
//! [`hotfix::Application`] that hands verified application messages to the
//! [`Decoder`](super::Decoder), the MarketDataRequest (V) mdhub sends, and
//! the file message store that keeps sequence numbers across restarts.

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use hotfix::Application;
use hotfix::application::{InboundDecision, OutboundDecision};
use hotfix::message::{OutboundMessage, Part, RepeatingGroup};
use hotfix::session::Status;
use hotfix::store::{FileStore, MessageStore};
use hotfix::{Message, fix44};
use mdhub_types::{FeedStatusKind, Timestamp};
use parking_lot::Mutex;
use tokio::sync::watch;

use super::Decoder;
use super::protocol::seq_num;
use crate::FeedContext;
use crate::venues::{Frame, VenueDecoder};

/// How many receipt stamps wait for their message to be decoded (the
/// session holds at most its inbound queue; a resend backlog beyond this
/// falls back to the time of decoding).
const MAX_STAMPS: usize = 4096;

/// What mdhub sends on the application level.
#[derive(Debug, Clone)]
pub(crate) enum Outbound {
    /// MarketDataRequest (V): snapshot + updates (263=1), top of book
    /// (264=1), incremental refresh (265=1), bid, offer and trade entries.
    Subscribe {
        /// MDReqID(262).
        req_id: String,
        /// Symbol(55), the venue's.
        symbol: String,
    },
}

impl OutboundMessage for Outbound {
    fn write(&self, msg: &mut Message) {
        match self {
            Outbound::Subscribe { req_id, symbol } => {
                msg.set(fix44::MD_REQ_ID, req_id.as_str());
                msg.set(fix44::SUBSCRIPTION_REQUEST_TYPE, "1");
                msg.set(fix44::MARKET_DEPTH, "1");
                msg.set(fix44::MD_UPDATE_TYPE, "1");
                msg.set(fix44::NO_MD_ENTRY_TYPES, "3");
                let types = ["0", "1", "2"]
                    .into_iter()
                    .map(|t| {
                        let mut g =
                            RepeatingGroup::new(fix44::NO_MD_ENTRY_TYPES, fix44::MD_ENTRY_TYPE);
                        g.set(fix44::MD_ENTRY_TYPE, t);
                        g
                    })
                    .collect();
                // Only fails for an empty list.
                let _ = msg.set_groups(types);
                msg.set(fix44::NO_RELATED_SYM, "1");
                let mut g = RepeatingGroup::new(fix44::NO_RELATED_SYM, fix44::SYMBOL);
                g.set(fix44::SYMBOL, symbol.as_str());
                let _ = msg.set_groups(vec![g]);
            }
        }
    }

    fn message_type(&self) -> &str {
        "V"
    }
}

/// What the session reports to the feed's connection loop.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct SessionView {
    /// Logons completed since start (each one needs the subscriptions sent).
    pub(crate) logons: u64,
    /// Whether the session is logged on now.
    pub(crate) active: bool,
}

/// State shared by the application (called from hotfix's session task) and
/// the feed's connection loop.
pub(crate) struct Shared {
    decoder: Mutex<Decoder>,
    ctx: FeedContext,
    stamps: Mutex<VecDeque<(u64, Timestamp)>>,
    rejects: Arc<Mutex<Vec<String>>>,
    pipeline_closed: AtomicBool,
    view: watch::Sender<SessionView>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

impl Shared {
    pub(crate) fn new(
        decoder: Decoder,
        ctx: FeedContext,
        rejects: Arc<Mutex<Vec<String>>>,
    ) -> (Arc<Self>, watch::Receiver<SessionView>) {
        let (view, rx) = watch::channel(SessionView::default());
        let shared = Shared {
            decoder: Mutex::new(decoder),
            ctx,
            stamps: Mutex::new(VecDeque::with_capacity(256)),
            rejects,
            pipeline_closed: AtomicBool::new(false),
            view,
        };
        (Arc::new(shared), rx)
    }

    /// Remember when message `seq` came off the socket.
    pub(crate) fn stamp(&self, raw: &[u8], ts: Timestamp) {
        let Some(seq) = seq_num(raw) else { return };
        let mut s = self.stamps.lock();
        if s.len() >= MAX_STAMPS {
            s.pop_front();
        }
        s.push_back((seq, ts));
    }

    fn take_stamp(&self, seq: Option<u64>) -> Timestamp {
        let mut s = self.stamps.lock();
        if let Some(seq) = seq
            && let Some(i) = s.iter().position(|(n, _)| *n == seq)
            && let Some((_, ts)) = s.remove(i)
        {
            return ts;
        }
        // Evicted (a very long resend backlog): the best we still know.
        Timestamp::now()
    }

    /// Forget receipt stamps (a new connection).
    pub(crate) fn clear_stamps(&self) {
        self.stamps.lock().clear();
    }

    /// Whether the pipeline stopped taking events.
    pub(crate) fn pipeline_closed(&self) -> bool {
        self.pipeline_closed.load(Ordering::Relaxed)
    }

    fn venue(&self) -> String {
        self.decoder.lock().venue().to_string()
    }
}

/// The hotfix application of a FIX feed.
pub(crate) struct App {
    pub(crate) shared: Arc<Shared>,
}

#[async_trait::async_trait]
impl Application for App {
    type Outbound = Outbound;

    async fn on_outbound_message(&self, _msg: &Outbound) -> OutboundDecision {
        OutboundDecision::Send
    }

    async fn on_inbound_message(&self, msg: &Message) -> InboundDecision {
        let sh = &self.shared;
        // hotfix hands over a parsed message; its wire form goes through the
        // same decoder as `mdhub normalize` and the fixtures.
        let raw = match msg
            .clone()
            .encode(&hotfix_message::message::Config::default())
        {
            Ok(raw) => raw,
            Err(e) => {
                sh.ctx.status.record_drop();
                tracing::warn!(venue = super::VENUE, error = %e, "dropped a message hotfix could not re-encode");
                return InboundDecision::Accept;
            }
        };
        let ts_received = sh.take_stamp(seq_num(&raw));
        let mut events = Vec::new();
        let result = sh.decoder.lock().decode(&raw, ts_received, &mut events);
        match result {
            Ok(Frame::Refused(why)) => {
                tracing::warn!(venue = super::VENUE, reason = %why, "the venue refused a request");
                sh.rejects.lock().push(why);
            }
            Ok(Frame::Gap(what)) => {
                tracing::warn!(venue = super::VENUE, gap = %what, "the venue's stream has a gap");
            }
            Ok(_) => {}
            Err(e) => {
                sh.ctx.status.record_drop();
                tracing::warn!(venue = super::VENUE, error = %e, "dropped a message");
            }
        }
        for e in events {
            if sh.ctx.send(e).await.is_err() {
                sh.pipeline_closed.store(true, Ordering::Relaxed);
                return InboundDecision::TerminateSession;
            }
        }
        InboundDecision::Accept
    }

    async fn on_logout(&mut self, reason: &str) {
        tracing::info!(venue = super::VENUE, reason, "logged out");
    }

    async fn on_logon(&mut self) {
        tracing::info!(venue = super::VENUE, "logged on");
        self.shared.view.send_modify(|v| {
            v.logons += 1;
            v.active = true;
        });
    }

    async fn on_state_change(&self, from: &Status, to: &Status) {
        tracing::debug!(venue = %self.shared.venue(), ?from, ?to, "FIX session state");
        if matches!(from, Status::AwaitingLogon) && matches!(to, Status::AwaitingResend { .. }) {
            // hotfix 0.13 calls `on_logon` only for a Logon reply without a
            // sequence gap; one with a gap goes straight to AwaitingResend.
            // The venue has accepted the Logon either way: subscribe.
            tracing::info!(
                venue = super::VENUE,
                "logged on (catching up a sequence gap)"
            );
            self.shared.view.send_modify(|v| {
                v.logons += 1;
                v.active = true;
            });
        }
        if let Status::AwaitingResend { begin, end, .. } = to {
            // hotfix has sent a ResendRequest for the missing range. What
            // the venue resends arrives; market data is usually gap-filled
            // instead, so every symbol may have missed updates: a gap event each.
            tracing::warn!(
                venue = super::VENUE,
                begin,
                end,
                "sequence gap: ResendRequest sent"
            );
            let symbols = self.shared.decoder.lock().symbols.symbols();
            let what = format!("FIX MsgSeqNum {begin}..={end} missed; ResendRequest sent");
            let sent = self
                .shared
                .ctx
                .send_status(&symbols, FeedStatusKind::Gap, Some(&what), Timestamp::now())
                .await;
            if sent.is_err() {
                self.shared.pipeline_closed.store(true, Ordering::Relaxed);
            }
        }
        if !matches!(to, Status::Active | Status::AwaitingResend { .. }) {
            self.shared.view.send_modify(|v| v.active = false);
        }
    }
}

/// The session's file store in `dir`, named after the session's comp ids.
///
/// hotfix-store 0.1.1 truncates the `.seqnums` file when it opens a store and
/// writes it again only at the next sequence number change, so a process
/// that stopped in between would come back at 1. Writing the numbers just
/// read back at once closes that window.
pub(crate) async fn open_store(
    dir: &Path,
    sender: &str,
    target: &str,
) -> Result<FileStore, hotfix::store::StoreError> {
    let mut store = FileStore::new(dir, &format!("{sender}-{target}"))?;
    let target_seq = store.next_target_seq_number().saturating_sub(1);
    store.set_target_seq_number(target_seq).await?;
    Ok(store)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn market_data_request_on_the_wire() {
        let req = Outbound::Subscribe {
            req_id: "mdhub-BTC/USD".into(),
            symbol: "BTC/USD".into(),
        };
        let raw = hotfix::message::generate_message("FIX.4.4", "MDHUB", "VENUE", 7, req).unwrap();
        let text = String::from_utf8(raw).unwrap().replace('\u{1}', "|");
        assert!(text.starts_with("8=FIX.4.4|9="), "{text}");
        for part in [
            "|35=V|",
            "|34=7|",
            "|262=mdhub-BTC/USD|263=1|264=1|265=1|267=3|269=0|269=1|269=2|146=1|55=BTC/USD|10=",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        assert_eq!(seq_num(text.replace('|', "\u{1}").as_bytes()), Some(7));
    }
}
