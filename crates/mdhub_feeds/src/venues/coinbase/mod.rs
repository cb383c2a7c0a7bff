//! Coinbase Exchange: the `matches`, `ticker` and `heartbeat` channels of
//! `wss://ws-feed.exchange.coinbase.com`.
//!
//! Documented payloads (Coinbase Exchange "WebSocket Channels"; kept in
//! `fixtures/`):
//!
//! ```json
//! {"type":"match","trade_id":10,"sequence":50,"time":"2014-11-07T08:19:27.028459Z",
//!  "product_id":"BTC-USD","size":"5.23512","price":"400.23","side":"sell", …}
//! {"type":"heartbeat","sequence":90,"last_trade_id":20,"product_id":"BTC-USD", …}
//! ```
//!
//! Mapping to mdhub's model:
//! - `match` (and `last_match`, the newest trade, sent after subscribing):
//!   in a match, `side` is the **maker** order's side, so the aggressor is the
//!   other side — `"sell"` means the taker bought (`buy`). `time` (RFC 3339,
//!   microseconds) → `ts_exchange`.
//! - `ticker`: best bid/ask and their sizes → a quote (`side` there is the
//!   taker's, unused).
//! - Product ids (`BTC-USD`) are already canonical symbols.
//! - **Gaps**: trade ids are consecutive per product. The decoder remembers
//!   the newest trade id of each product across reconnects; a match that
//!   skips ids, a heartbeat whose `last_trade_id` is ahead of what arrived, or
//!   a `last_match` after a reconnect that is ahead, is reported as
//!   [`Frame::Gap`] naming the missed ids. A trade id at or below the newest
//!   (a replay) is not sent again.
//! - `subscriptions` acknowledges the subscribe; `error` refuses it.

use std::borrow::Cow;

use mdhub_types::{Event, Quote, Side, Symbol, Timestamp, Trade, Venue};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{DecodeError, Frame, TradeIds, VenueDecoder, decimal, gap_event};

mod config;
pub use config::CoinbaseSection;

/// This venue in the registry ([`crate::venues::registry`]).
pub static SPEC: crate::venues::registry::VenueSpec = crate::venues::registry::VenueSpec {
    id: "coinbase",
    description: "Coinbase Exchange: matches and ticker over one WebSocket",
    decoder: default_decoder,
    env: &[],
    configure: crate::venues::registry::configure::<CoinbaseSection>,
};

fn default_decoder() -> Box<dyn crate::venues::VenueDecoder> {
    Box::new(Decoder::default())
}

mod feed;
pub use feed::{CoinbaseConfig, CoinbaseFeed};

/// The Coinbase Exchange decoder; keeps the newest trade id per product.
#[derive(Debug)]
pub struct Decoder {
    venue: Venue,
    ids: TradeIds,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            venue: Venue::new("coinbase").unwrap_or_else(|_| unreachable!("valid venue id")),
            ids: TradeIds::default(),
        }
    }
}

#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(borrow, rename = "type")]
    kind: &'a str,
    #[serde(borrow, default)]
    product_id: Option<&'a str>,
    #[serde(default)]
    trade_id: Option<u64>,
    #[serde(default)]
    last_trade_id: Option<u64>,
    #[serde(borrow, default)]
    time: Option<&'a str>,
    #[serde(borrow, default)]
    price: Option<&'a RawValue>,
    #[serde(borrow, default)]
    size: Option<&'a RawValue>,
    #[serde(borrow, default)]
    side: Option<&'a str>,
    #[serde(borrow, default)]
    best_bid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    best_bid_size: Option<&'a RawValue>,
    #[serde(borrow, default)]
    best_ask: Option<&'a RawValue>,
    #[serde(borrow, default)]
    best_ask_size: Option<&'a RawValue>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reason: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    channels: Option<&'a RawValue>,
}

impl Decoder {
    fn symbol(m: &Msg<'_>) -> Result<Symbol, DecodeError> {
        let p = m.product_id.ok_or(DecodeError::Missing("product_id"))?;
        Symbol::new(p).map_err(|_| DecodeError::UnknownSymbol(p.to_string()))
    }

    fn time(m: &Msg<'_>) -> Result<Timestamp, DecodeError> {
        let t = m.time.ok_or(DecodeError::Missing("time"))?;
        Timestamp::parse_rfc3339(t).map_err(|e| DecodeError::BadNumber {
            field: "time",
            reason: e.to_string(),
        })
    }

    fn trade(
        &mut self,
        m: &Msg<'_>,
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        let symbol = Self::symbol(m)?;
        let id = m.trade_id.ok_or(DecodeError::Missing("trade_id"))?;
        let product = m.product_id.unwrap_or_default();
        // A repeat (after a reconnect) costs no decoding.
        if self.ids.newest(product).is_some_and(|last| id <= last) {
            return Ok(Frame::Ignored(format!(
                "{} trade {id} already sent",
                m.kind
            )));
        }
        let side = match m.side {
            // The maker's side: the aggressor took the other one.
            Some("sell") => Side::Buy,
            Some("buy") => Side::Sell,
            _ => Side::Unknown,
        };
        let trade = Trade {
            venue: self.venue.clone(),
            symbol,
            ts_exchange: Self::time(m)?,
            ts_received,
            price: decimal("price", m.price.ok_or(DecodeError::Missing("price"))?)?,
            size: decimal("size", m.size.ok_or(DecodeError::Missing("size"))?)?,
            side,
            trade_id: Some(id.to_string()),
        };
        let Some(gap) = self.ids.see(product, id) else {
            return Ok(Frame::Ignored(format!(
                "{} trade {id} already sent",
                m.kind
            )));
        };
        let frame = match gap {
            Some(gap) => {
                out.push(gap_event(
                    &self.venue,
                    trade.symbol.clone(),
                    trade.ts_exchange,
                    ts_received,
                    gap.clone(),
                ));
                Frame::Gap(format!("{product}: {gap}"))
            }
            None => Frame::Data,
        };
        out.push(Event::Trade(trade));
        Ok(frame)
    }
}

impl VenueDecoder for Decoder {
    fn venue(&self) -> &str {
        self.venue.as_str()
    }

    fn decode(
        &mut self,
        frame: &[u8],
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        let text = super::text(frame)?;
        let m: Msg<'_> =
            serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))?;
        match m.kind {
            "match" | "last_match" => self.trade(&m, ts_received, out),
            "ticker" => {
                let q = Quote {
                    venue: self.venue.clone(),
                    symbol: Self::symbol(&m)?,
                    ts_exchange: Self::time(&m)?,
                    ts_received,
                    bid_price: decimal(
                        "best_bid",
                        m.best_bid.ok_or(DecodeError::Missing("best_bid"))?,
                    )?,
                    bid_size: decimal(
                        "best_bid_size",
                        m.best_bid_size
                            .ok_or(DecodeError::Missing("best_bid_size"))?,
                    )?,
                    ask_price: decimal(
                        "best_ask",
                        m.best_ask.ok_or(DecodeError::Missing("best_ask"))?,
                    )?,
                    ask_size: decimal(
                        "best_ask_size",
                        m.best_ask_size
                            .ok_or(DecodeError::Missing("best_ask_size"))?,
                    )?,
                };
                out.push(Event::Quote(q));
                Ok(Frame::Data)
            }
            "heartbeat" => {
                let product = m.product_id.ok_or(DecodeError::Missing("product_id"))?;
                let last = m
                    .last_trade_id
                    .ok_or(DecodeError::Missing("last_trade_id"))?;
                if last == 0 {
                    return Ok(Frame::Ignored("heartbeat".into()));
                }
                match self.ids.newest(product) {
                    Some(k) if last > k => {
                        self.ids.set(product, last);
                        let what = format!(
                            "trades {}..={last} missed ({} trades, seen in a heartbeat)",
                            k + 1,
                            last - k
                        );
                        let ts = Self::time(&m).unwrap_or(ts_received);
                        let symbol = Self::symbol(&m)?;
                        out.push(gap_event(
                            &self.venue,
                            symbol,
                            ts,
                            ts_received,
                            what.clone(),
                        ));
                        Ok(Frame::Gap(format!("{product}: {what}")))
                    }
                    Some(_) => Ok(Frame::Ignored("heartbeat".into())),
                    None => {
                        self.ids.set(product, last);
                        Ok(Frame::Ignored("heartbeat".into()))
                    }
                }
            }
            "subscriptions" => Ok(Frame::Ack(
                m.channels.map(|c| c.get().to_string()).unwrap_or_default(),
            )),
            "error" => Ok(Frame::Refused(format!(
                "{}: {}",
                m.message.as_deref().unwrap_or("error"),
                m.reason.as_deref().unwrap_or("")
            ))),
            other => Ok(Frame::Ignored(format!("{other} message"))),
        }
    }
}

#[cfg(test)]
mod tests;
