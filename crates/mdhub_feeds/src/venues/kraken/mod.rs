//! Kraken spot, WebSocket API v2 (`wss://ws.kraken.com/v2`): the `trade` and
//! `ticker` channels.
//!
//! Documented payloads (Kraken "Spot WebSocket v2"; kept in `fixtures/`):
//!
//! ```json
//! {"channel":"trade","type":"update","data":[{"symbol":"MATIC/USD","side":"buy",
//!  "price":0.5117,"qty":40.0,"ord_type":"market","trade_id":4665906,
//!  "timestamp":"2023-09-25T07:49:37.708706Z"}]}
//! {"channel":"ticker","type":"snapshot","data":[{"symbol":"ALGO/USD","bid":0.10025,
//!  "bid_qty":740.0,"ask":0.10036,"ask_qty":1361.44813783, …}]}
//! ```
//!
//! Mapping to mdhub's model:
//! - Prices and sizes arrive as **JSON numbers**; each is parsed exactly from
//!   its source text (`40.0` stays `40.0`, `1.5e-3` is `0.0015`), never as f64.
//! - trade: `side` is the taker's (the aggressor); `timestamp` (RFC 3339) →
//!   `ts_exchange`; `data` may carry several trades (a snapshot of recent
//!   trades after subscribing).
//! - ticker: best bid/ask and quantities → a quote. The ticker carries no
//!   timestamp, so `ts_exchange` is the receipt time.
//! - Symbols: `BTC/USD` → `BTC-USD` and back.
//! - Trade ids are sequential per book: the decoder remembers the newest per
//!   symbol across reconnects, sends none twice (the snapshot after a
//!   reconnect repeats recent trades) and reports skipped ids as a gap.
//! - Subscribe replies (`"method":"subscribe"`, `success` true or false),
//!   `heartbeat` and `status` carry no data.

use std::borrow::Cow;

use mdhub_types::{Event, Quote, Side, Symbol, Timestamp, Trade, Venue};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{DecodeError, Frame, TradeIds, VenueDecoder, decimal, gap_event};

mod config;
pub use config::KrakenSection;

/// This venue in the registry ([`crate::venues::registry`]).
pub static SPEC: crate::venues::registry::VenueSpec = crate::venues::registry::VenueSpec {
    id: "kraken",
    description: "Kraken spot: trades and ticker over WebSocket v2",
    decoder: default_decoder,
    env: &[],
    configure: crate::venues::registry::configure::<KrakenSection>,
};

fn default_decoder() -> Box<dyn crate::venues::VenueDecoder> {
    Box::new(Decoder::default())
}

mod feed;
pub use feed::{KrakenConfig, KrakenFeed};

/// The Kraken v2 decoder; keeps the newest trade id per symbol.
#[derive(Debug)]
pub struct Decoder {
    venue: Venue,
    ids: TradeIds,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            venue: Venue::new("kraken").unwrap_or_else(|_| unreachable!("valid venue id")),
            ids: TradeIds::default(),
        }
    }
}

#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(borrow, default)]
    channel: Option<&'a str>,
    #[serde(borrow, default)]
    method: Option<&'a str>,
    #[serde(default)]
    success: Option<bool>,
    #[serde(borrow, default)]
    error: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    data: Vec<Item<'a>>,
}

#[derive(Deserialize)]
struct Item<'a> {
    #[serde(borrow, default)]
    symbol: Option<&'a str>,
    #[serde(borrow, default)]
    side: Option<&'a str>,
    #[serde(borrow, default)]
    price: Option<&'a RawValue>,
    #[serde(borrow, default)]
    qty: Option<&'a RawValue>,
    #[serde(default)]
    trade_id: Option<u64>,
    #[serde(borrow, default)]
    timestamp: Option<&'a str>,
    #[serde(borrow, default)]
    bid: Option<&'a RawValue>,
    #[serde(borrow, default)]
    bid_qty: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ask: Option<&'a RawValue>,
    #[serde(borrow, default)]
    ask_qty: Option<&'a RawValue>,
}

/// `BTC/USD` → `BTC-USD`.
pub fn canonical(native: &str) -> Result<Symbol, DecodeError> {
    native
        .split_once('/')
        .and_then(|(b, q)| Symbol::pair(b, q).ok())
        .ok_or_else(|| DecodeError::UnknownSymbol(native.to_string()))
}

/// `BTC-USD` → `BTC/USD`.
pub fn native(symbol: &Symbol) -> String {
    symbol.as_str().replacen('-', "/", 1)
}

impl Decoder {
    fn trades(
        &mut self,
        items: &[Item<'_>],
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        let mut gaps = Vec::new();
        let mut sent = 0;
        for it in items {
            let name = it.symbol.ok_or(DecodeError::Missing("symbol"))?;
            let id = it.trade_id.ok_or(DecodeError::Missing("trade_id"))?;
            // A repeat (the snapshot after a reconnect) costs no decoding.
            if self.ids.newest(name).is_some_and(|last| id <= last) {
                continue;
            }
            let trade = Trade {
                venue: self.venue.clone(),
                symbol: canonical(name)?,
                ts_exchange: Timestamp::parse_rfc3339(
                    it.timestamp.ok_or(DecodeError::Missing("timestamp"))?,
                )
                .map_err(|e| DecodeError::BadNumber {
                    field: "timestamp",
                    reason: e.to_string(),
                })?,
                ts_received,
                price: decimal("price", it.price.ok_or(DecodeError::Missing("price"))?)?,
                size: decimal("qty", it.qty.ok_or(DecodeError::Missing("qty"))?)?,
                side: match it.side {
                    Some("buy") => Side::Buy,
                    Some("sell") => Side::Sell,
                    _ => Side::Unknown,
                },
                trade_id: Some(id.to_string()),
            };
            match self.ids.see(name, id) {
                None => continue, // already sent
                Some(Some(gap)) => {
                    gaps.push(format!("{name}: {gap}"));
                    out.push(gap_event(
                        &self.venue,
                        trade.symbol.clone(),
                        trade.ts_exchange,
                        ts_received,
                        gap,
                    ));
                }
                Some(None) => {}
            }
            out.push(Event::Trade(trade));
            sent += 1;
        }
        Ok(if !gaps.is_empty() {
            Frame::Gap(gaps.join("; "))
        } else if sent == 0 && !items.is_empty() {
            Frame::Ignored("trades already sent".into())
        } else {
            Frame::Data
        })
    }

    fn tickers(
        &self,
        items: &[Item<'_>],
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        for it in items {
            let need = |v: Option<&RawValue>, f: &'static str| {
                v.ok_or(DecodeError::Missing(f)).and_then(|r| decimal(f, r))
            };
            out.push(Event::Quote(Quote {
                venue: self.venue.clone(),
                symbol: canonical(it.symbol.ok_or(DecodeError::Missing("symbol"))?)?,
                ts_exchange: ts_received,
                ts_received,
                bid_price: need(it.bid, "bid")?,
                bid_size: need(it.bid_qty, "bid_qty")?,
                ask_price: need(it.ask, "ask")?,
                ask_size: need(it.ask_qty, "ask_qty")?,
            }));
        }
        Ok(Frame::Data)
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
        let m: Msg<'_> = serde_json::from_str(super::text(frame)?)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        match (m.channel, m.method) {
            (Some("trade"), _) => self.trades(&m.data, ts_received, out),
            (Some("ticker"), _) => self.tickers(&m.data, ts_received, out),
            (Some(other), _) => Ok(Frame::Ignored(format!("{other} message"))),
            (None, Some(method)) if m.success == Some(true) => Ok(Frame::Ack(method.to_string())),
            (None, Some(method)) => Ok(Frame::Refused(format!(
                "{method}: {}",
                m.error.as_deref().unwrap_or("refused")
            ))),
            (None, None) => Err(DecodeError::Malformed(
                "neither a channel message nor a reply".into(),
            )),
        }
    }
}

#[cfg(test)]
mod tests;
