//! What the venue protocol tests share: a feed context wired to a channel.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use mdhub_feeds::{FeedContext, FeedStatus};
use mdhub_types::{Event, Venue};
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
        },
        events,
        status,
        shutdown,
    }
}
