//! Exchange connectors: where market data enters mdhub.
//!
//! A [`Feed`] holds the connection(s) to one venue, normalizes what arrives
//! into [`mdhub_types::Event`]s and sends them down a bounded channel
//! ([`FeedContext::out`]) to the ingest stage, which publishes them to the log.
//! Generics stop here: after normalization everything is one concrete event
//! enum. The simulated exchanges ([`sim`]) implement the same trait and are the
//! default feed when no real venue is configured. [`venues`] holds the real
//! venues' wire formats, one folder each with the venue's payloads as fixtures.

pub mod capture;
mod feed;
pub mod sim;
pub mod venues;

pub use feed::{
    Feed, FeedContext, FeedError, FeedState, FeedStatus, FeedStatusSnapshot, SymbolStatus,
};
