//! Conflated delivery for connections that read too slowly.
//!
//! Normally the hub `try_send`s each frame into the connection's bounded
//! queue. When that queue is full the connection switches to conflated
//! delivery: the hub keeps only the latest frame per venue, symbol and channel here,
//! counting the ones it replaced, and wakes the connection task. The task,
//! once it has written what was queued before, takes everything held (the
//! map empties and the connection is back on its queue) and sends each frame
//! with `"skipped":N` — the updates of that stream it will never see.
//! [`Frame::replace`] keeps that count, here and for `max_rate_ms`. Memory
//! is bounded by the connection's subscriptions, not by how far it is behind.
//!
//! Ordering: while conflated the hub never touches the queue, and the task
//! only drains the map when the queue is empty, and a drain leaves in log
//! order per partition, so the frames of a symbol and channel (every venue's)
//! leave in log order. The `active` flag is read without the lock on the hot path and
//! checked again under it, so a frame offered just as the task drains goes to
//! the queue, after the drained ones.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::ws::Utf8Bytes;
use mdhub_types::{Symbol, Topic, Venue};
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::hub::Frame;

/// The latest frames of a slow connection.
#[derive(Debug, Default)]
pub(crate) struct Conflator {
    active: AtomicBool,
    held: Mutex<HashMap<(Symbol, Topic, Venue), Frame>>,
    wake: Notify,
}

impl Conflator {
    /// Whether frames go here instead of the queue.
    pub(crate) fn is_active(&self) -> bool {
        self.active.load(Ordering::Acquire)
    }

    /// Hold `frame` if the connection is conflated; false when it is not (the
    /// caller queues the frame).
    pub(crate) fn offer(&self, frame: &Frame) -> bool {
        if !self.is_active() {
            return false;
        }
        let mut held = self.held.lock();
        if !self.is_active() {
            return false;
        }
        self.hold(&mut held, frame.clone());
        true
    }

    /// The queue is full: conflate from `frame` on. Returns true when this
    /// switched the connection (it was not conflated already).
    pub(crate) fn activate(&self, frame: Frame) -> bool {
        let mut held = self.held.lock();
        let switched = !self.active.swap(true, Ordering::AcqRel);
        self.hold(&mut held, frame);
        switched
    }

    fn hold(&self, held: &mut HashMap<(Symbol, Topic, Venue), Frame>, frame: Frame) {
        let key = (frame.symbol.clone(), frame.pos.topic, frame.venue.clone());
        match held.get_mut(&key) {
            Some(old) => old.replace(frame),
            None => {
                held.insert(key, frame);
            }
        }
        self.wake.notify_one();
    }

    /// Wait until frames are held.
    pub(crate) async fn ready(&self) {
        self.wake.notified().await;
    }

    /// Take every held frame (in log order per partition), each carrying
    /// its `skipped` count, and go back to queued delivery.
    pub(crate) fn drain(&self) -> Vec<Frame> {
        let taken = {
            let mut held = self.held.lock();
            self.active.store(false, Ordering::Release);
            std::mem::take(&mut *held)
        };
        let mut out: Vec<Frame> = taken.into_values().collect();
        out.sort_by_key(|f| f.pos);
        out
    }
}

impl Frame {
    /// Replace this held frame by a newer one of the same stream: this one
    /// and whatever it already stood in for become skipped.
    pub(crate) fn replace(&mut self, newer: Frame) {
        let skipped = self.skipped + 1 + newer.skipped;
        *self = newer;
        self.skipped = skipped;
    }

    /// The text to write: with `"skipped":N` when updates were skipped.
    pub(crate) fn wire_text(&self) -> Utf8Bytes {
        if self.skipped == 0 {
            return self.text.clone();
        }
        with_skipped(&self.text, self.skipped)
    }
}

/// `{"type":"update",…}` → `{"type":"update","skipped":N,…}`.
fn with_skipped(text: &str, skipped: u64) -> Utf8Bytes {
    const HEAD: &str = r#"{"type":"update","#;
    match text.strip_prefix(HEAD) {
        Some(rest) => Utf8Bytes::from(format!(r#"{HEAD}"skipped":{skipped},{rest}"#)),
        None => Utf8Bytes::from(text.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mdhub_types::{Position, Timestamp};

    fn frame(symbol: &str, offset: u64) -> Frame {
        venue_frame(symbol, "v", offset)
    }

    fn venue_frame(symbol: &str, venue: &str, offset: u64) -> Frame {
        let pos = Position {
            topic: Topic::Quotes,
            partition: 0,
            offset,
        };
        Frame {
            symbol: Symbol::new(symbol).unwrap(),
            venue: Venue::new(venue).unwrap(),
            pos,
            ts_received: Timestamp::from_nanos(offset as i64),
            text: Utf8Bytes::from(format!(
                r#"{{"type":"update","channel":"quotes","pos":"{pos}","data":{{}}}}"#
            )),
            skipped: 0,
        }
    }

    #[test]
    fn keeps_the_latest_per_stream_and_counts_the_rest() {
        let c = Conflator::default();
        assert!(!c.offer(&frame("AAPL", 1)), "not conflated yet: queue it");
        assert!(c.activate(frame("AAPL", 1)));
        assert!(!c.activate(frame("MSFT", 2)), "already conflated");
        for o in 3..=5 {
            assert!(c.offer(&frame("AAPL", o)));
        }
        let out = c.drain();
        assert!(!c.is_active());
        let texts: Vec<Utf8Bytes> = out.iter().map(Frame::wire_text).collect();
        assert_eq!(
            texts,
            [
                r#"{"type":"update","channel":"quotes","pos":"quotes:0:2","data":{}}"#,
                r#"{"type":"update","skipped":3,"channel":"quotes","pos":"quotes:0:5","data":{}}"#,
            ]
        );
        assert!(
            !c.offer(&frame("AAPL", 6)),
            "back on the queue after a drain"
        );
    }

    #[test]
    fn keeps_the_latest_of_each_venue_and_drains_in_log_order() {
        let c = Conflator::default();
        assert!(c.activate(venue_frame("BTC-USD", "b", 4)));
        for (v, o) in [("a", 5), ("b", 6), ("a", 7), ("b", 8), ("a", 9)] {
            assert!(c.offer(&venue_frame("BTC-USD", v, o)));
        }
        let out: Vec<(String, u64, u64)> = c
            .drain()
            .into_iter()
            .map(|f| (f.venue.to_string(), f.pos.offset, f.skipped))
            .collect();
        assert_eq!(
            out,
            [("b".to_string(), 8, 2), ("a".to_string(), 9, 2)],
            "one frame per venue, never one venue's in place of another's"
        );
    }
}
