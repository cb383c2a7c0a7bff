//! What the venue protocol tests share: a feed context wired to a channel.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use mdhub_feeds::{FeedContext, FeedStatus};
use mdhub_types::{Event, FeedEvent, FeedStatusKind, Venue};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// A running feed's context, the receiving end of its events, its status and
/// its shutdown switch.
pub struct Harness {
    pub ctx: FeedContext,
    pub events: mpsc::Receiver<Event>,
    pub status: Arc<FeedStatus>,
    pub shutdown: CancellationToken,
}

pub fn harness(venue: &str) -> Harness {
    let (tx, events) = mpsc::channel(64);
    let status = FeedStatus::new(Venue::new(venue).unwrap());
    let shutdown = CancellationToken::new();
    Harness {
        ctx: FeedContext {
            out: tx,
            shutdown: shutdown.clone(),
            status: status.clone(),
            capture: None,
        },
        events,
        status,
        shutdown,
    }
}

/// Move the feed-status events still queued into `statuses`; data after the
/// feed stopped is a failure (it would have been sent twice).
pub fn drain_statuses(rx: &mut mpsc::Receiver<Event>, statuses: &mut Vec<FeedEvent>) {
    while let Ok(e) = rx.try_recv() {
        match e {
            Event::Status(f) => statuses.push(f),
            e => panic!("nothing sent twice: {e:?}"),
        }
    }
}

/// Feed status as data for one symbol whose connection dropped mid-stream:
/// connected, lost, connected again, the gap the trade ids show (with
/// `gap_detail`), and the shutdown.
pub fn assert_reconnect_with_gap(statuses: &[FeedEvent], symbol: &str, gap_detail: &str) {
    use FeedStatusKind::{Connected, Disconnected, Gap};
    let story: Vec<_> = statuses.iter().map(|f| f.status).collect();
    assert_eq!(
        story,
        [Connected, Disconnected, Connected, Gap, Disconnected],
        "{statuses:?}"
    );
    assert_eq!(statuses[3].detail.as_deref(), Some(gap_detail));
    assert!(statuses.iter().all(|f| f.symbol.as_str() == symbol));
}
