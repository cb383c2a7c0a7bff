//! What the client must remember across connections: the subscription set it
//! wants, the epoch of the log its positions belong to, and the last position
//! delivered per symbol and channel.
//!
//! Invariant: for every (symbol, channel) the application receives positions
//! with strictly growing offsets, until a `reset` says the stream starts over.
//! [`Streams::accept`] enforces it, so a duplicate can never reach the
//! application, whatever the server or a reconnect race sends.

use std::collections::{BTreeMap, BTreeSet};

use mdhub_types::protocol::{ClientMessage, Resume};
use mdhub_types::{Position, Topic};

/// Subscriptions and positions.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    /// symbol → channels the application asked for.
    wanted: BTreeMap<String, BTreeSet<Topic>>,
    /// symbol → channel → last delivered position.
    positions: BTreeMap<String, BTreeMap<Topic, Position>>,
    /// The epoch the positions belong to.
    epoch: Option<String>,
}

impl Streams {
    /// Add `channels` of `symbols` to the wanted set.
    pub(crate) fn want(&mut self, symbols: &[String], channels: &[Topic]) {
        for s in symbols {
            self.wanted.entry(s.clone()).or_default().extend(channels);
        }
    }

    /// Remove `channels` of `symbols`, and forget their positions: a later
    /// subscribe starts from a fresh snapshot, not from where it left off.
    pub(crate) fn unwant(&mut self, symbols: &[String], channels: &[Topic]) {
        for s in symbols {
            if let Some(set) = self.wanted.get_mut(s) {
                for c in channels {
                    set.remove(c);
                }
                if set.is_empty() {
                    self.wanted.remove(s);
                }
            }
            if let Some(pos) = self.positions.get_mut(s) {
                for c in channels {
                    pos.remove(c);
                }
                if pos.is_empty() {
                    self.positions.remove(s);
                }
            }
        }
    }

    /// The symbols wanted now, with their channels.
    pub(crate) fn wanted(&self) -> &BTreeMap<String, BTreeSet<Topic>> {
        &self.wanted
    }

    /// Record the epoch of a new connection's `welcome`. Returns the old one
    /// when it differs (the log was replaced; the server will reset every
    /// resumed stream).
    pub(crate) fn set_epoch(&mut self, epoch: &str) -> Option<String> {
        let old = self.epoch.replace(epoch.to_string());
        old.filter(|o| o != epoch)
    }

    /// Forget every position (the log they belong to is gone) and return
    /// the streams that had one.
    pub(crate) fn clear_positions(&mut self) -> Vec<(String, Topic)> {
        let all = std::mem::take(&mut self.positions);
        all.into_iter()
            .flat_map(|(sym, chans)| chans.into_keys().map(move |c| (sym.clone(), c)))
            .collect()
    }

    /// Whether a data frame at `pos` for `symbol` is new: its offset is past
    /// the last one delivered on the same partition. A new one becomes the
    /// stream's position.
    pub(crate) fn accept(&mut self, symbol: &str, pos: Position) -> bool {
        let streams = match self.positions.get_mut(symbol) {
            Some(s) => s,
            None => self.positions.entry(symbol.to_string()).or_default(),
        };
        match streams.get_mut(&pos.topic) {
            Some(last) if last.partition == pos.partition && last.offset >= pos.offset => false,
            Some(last) => {
                *last = pos;
                true
            }
            None => {
                streams.insert(pos.topic, pos);
                true
            }
        }
    }

    /// The server could not resume this stream; what follows starts afresh.
    pub(crate) fn reset(&mut self, symbol: &str, channel: Topic) {
        if let Some(s) = self.positions.get_mut(symbol) {
            s.remove(&channel);
        }
    }

    /// How many streams have a position to resume from.
    pub(crate) fn resumable(&self) -> usize {
        self.positions.values().map(BTreeMap::len).sum()
    }

    /// The subscribe requests that restore the whole wanted set on a new
    /// connection, with `resume` for every stream that has a position. One
    /// request per distinct channel set, since a request's channels apply to
    /// all its symbols.
    pub(crate) fn resubscribe(&self) -> Vec<ClientMessage> {
        self.resubscribe_only(|_| true)
    }

    /// [`Streams::resubscribe`] for the wanted symbols that pass `keep`.
    pub(crate) fn resubscribe_only(&self, keep: impl Fn(&str) -> bool) -> Vec<ClientMessage> {
        let mut groups: BTreeMap<&BTreeSet<Topic>, Vec<String>> = BTreeMap::new();
        for (sym, chans) in self.wanted.iter().filter(|(s, _)| keep(s)) {
            groups.entry(chans).or_default().push(sym.clone());
        }
        groups
            .into_iter()
            .map(|(chans, symbols)| self.subscribe_message(symbols, chans))
            .collect()
    }

    /// A subscribe request for `symbols` on `channels`, resuming those
    /// streams that have a position.
    pub(crate) fn subscribe_message(
        &self,
        symbols: Vec<String>,
        channels: &BTreeSet<Topic>,
    ) -> ClientMessage {
        let mut positions: BTreeMap<String, BTreeMap<String, Position>> = BTreeMap::new();
        for name in &symbols {
            // Positions are per symbol and channel, also for a subscription
            // narrowed to a venue (`BTC-USD@kraken`): frames name the symbol.
            let sym = name.split_once('@').map_or(name.as_str(), |(s, _)| s);
            for (topic, pos) in self.positions.get(sym).into_iter().flatten() {
                if channels.contains(topic) {
                    positions
                        .entry(sym.to_string())
                        .or_default()
                        .insert(topic.channel().to_string(), *pos);
                }
            }
        }
        let resume = match (&self.epoch, positions.is_empty()) {
            (Some(epoch), false) => Some(Resume {
                epoch: epoch.clone(),
                positions,
            }),
            _ => None,
        };
        ClientMessage::Subscribe {
            symbols,
            channels: Some(channels.iter().map(|c| c.channel().to_string()).collect()),
            resume,
            max_rate_ms: None,
            id: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_and_older_positions_are_refused() {
        let mut s = Streams::default();
        assert!(s.accept("AAPL", Position::new(Topic::Quotes, 1, 10)));
        assert!(!s.accept("AAPL", Position::new(Topic::Quotes, 1, 10)));
        assert!(!s.accept("AAPL", Position::new(Topic::Quotes, 1, 9)));
        assert!(s.accept("AAPL", Position::new(Topic::Quotes, 1, 11)));
        assert!(
            s.accept("AAPL", Position::new(Topic::Trades, 1, 3)),
            "own stream"
        );
        assert!(
            s.accept("MSFT", Position::new(Topic::Quotes, 1, 5)),
            "own stream"
        );
        s.reset("AAPL", Topic::Quotes);
        assert!(
            s.accept("AAPL", Position::new(Topic::Quotes, 1, 2)),
            "after a reset"
        );
    }

    #[test]
    fn a_subscription_narrowed_to_a_venue_resumes_from_its_symbols_position() {
        let mut s = Streams::default();
        s.want(&["BTC-USD@kraken".into()], &[Topic::Quotes]);
        s.set_epoch("e1");
        assert!(s.accept("BTC-USD", Position::new(Topic::Quotes, 2, 40)));
        let msgs = s.resubscribe();
        let json = serde_json::to_value(&msgs[0]).unwrap();
        assert_eq!(json["symbols"], serde_json::json!(["BTC-USD@kraken"]));
        assert_eq!(
            json["resume"]["positions"],
            serde_json::json!({"BTC-USD": {"quotes": "quotes:2:40"}})
        );
    }

    #[test]
    fn resubscribe_groups_by_channels_and_resumes_known_streams() {
        let mut s = Streams::default();
        s.want(
            &["AAPL".into(), "MSFT".into()],
            &[Topic::Quotes, Topic::Trades],
        );
        s.want(&["BTC-USDT".into()], &[Topic::Trades]);
        assert_eq!(s.resubscribe().len(), 2);
        assert!(
            s.resubscribe()
                .iter()
                .all(|m| matches!(m, ClientMessage::Subscribe { resume: None, .. })),
            "no epoch yet: nothing to resume"
        );
        s.set_epoch("e1");
        s.accept("AAPL", Position::new(Topic::Quotes, 1, 7));
        let json = serde_json::to_string(&s.resubscribe()).unwrap();
        assert_eq!(
            json,
            r#"[{"action":"subscribe","symbols":["AAPL","MSFT"],"channels":["quotes","trades"],"resume":{"epoch":"e1","positions":{"AAPL":{"quotes":"quotes:1:7"}}}},{"action":"subscribe","symbols":["BTC-USDT"],"channels":["trades"]}]"#
        );
    }

    #[test]
    fn unsubscribe_forgets_positions() {
        let mut s = Streams::default();
        s.want(&["AAPL".into()], &[Topic::Quotes, Topic::Trades]);
        s.set_epoch("e1");
        s.accept("AAPL", Position::new(Topic::Quotes, 1, 7));
        s.accept("AAPL", Position::new(Topic::Trades, 1, 3));
        s.unwant(&["AAPL".into()], &[Topic::Quotes]);
        assert_eq!(s.resumable(), 1);
        assert_eq!(s.wanted()["AAPL"].len(), 1);
        s.unwant(&["AAPL".into()], &[Topic::Trades]);
        assert!(s.wanted().is_empty());
        assert_eq!(s.resumable(), 0);
        assert_eq!(s.set_epoch("e1"), None);
        assert_eq!(s.set_epoch("e2"), Some("e1".into()));
    }
}
