//! Alpaca's real-time stock market data (v2): authenticated streaming of US
//! equities trades and quotes (`wss://stream.data.alpaca.markets/v2/iex`, or
//! `/v2/sip` with a SIP subscription).
//!
//! The session (Alpaca "Real-time stock data", kept in `fixtures/`): the
//! server greets with `[{"T":"success","msg":"connected"}]`; the client sends
//! `{"action":"auth","key":…,"secret":…}` and gets `authenticated` (or
//! `[{"T":"error","code":402,"msg":"auth failed"}]`), then
//! `{"action":"subscribe","trades":[…],"quotes":[…]}`, answered with a
//! `subscription` message. Every frame is a JSON **array** of messages:
//!
//! ```json
//! [{"T":"t","i":96921,"S":"AAPL","x":"D","p":126.55,"s":1,
//!   "t":"2021-02-22T15:51:44.208Z","c":["@","I"],"z":"C"}]
//! [{"T":"q","S":"AMD","bx":"U","bp":87.66,"bs":1,"ax":"Q","ap":87.68,"as":4,
//!   "t":"2021-02-22T15:51:45.335689322Z","c":["R"],"z":"C"}]
//! ```
//!
//! Mapping: `p`/`s` trade price/size, `bp`/`bs`/`ap`/`as` quote; prices are
//! JSON numbers parsed exactly from their text; `t` (RFC 3339, up to
//! nanoseconds) → `ts_exchange`; `i` → trade id. The consolidated feed does
//! not say which side was the aggressor: `side` is `unknown`. Symbols are
//! listing tickers (`AAPL`), already canonical. Bars, statuses and other
//! message types are ignored; an `error` is a refusal (bad keys, too many
//! connections, symbol limit).

use mdhub_types::{Event, Quote, Side, Symbol, Timestamp, Trade, Venue};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{DecodeError, Frame, VenueDecoder, decimal};

mod config;
pub use config::AlpacaSection;

/// This venue in the registry ([`crate::venues::registry`]).
pub static SPEC: crate::venues::registry::VenueSpec = crate::venues::registry::VenueSpec {
    id: "alpaca",
    description: "Alpaca US equities (IEX or SIP feed): trades and quotes over an authenticated WebSocket",
    decoder: default_decoder,
    env: &[
        ("key", "APCA_API_KEY_ID"),
        ("secret", "APCA_API_SECRET_KEY"),
    ],
    configure: crate::venues::registry::configure::<AlpacaSection>,
};

fn default_decoder() -> Box<dyn crate::venues::VenueDecoder> {
    Box::new(Decoder::default())
}

mod feed;
pub use feed::{AlpacaConfig, AlpacaFeed};

/// The Alpaca stock data decoder.
#[derive(Debug)]
pub struct Decoder {
    venue: Venue,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            venue: Venue::new("alpaca").unwrap_or_else(|_| unreachable!("valid venue id")),
        }
    }
}

#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(borrow, rename = "T")]
    kind: &'a str,
    #[serde(borrow, default, rename = "S")]
    symbol: Option<&'a str>,
    #[serde(default, rename = "i")]
    id: Option<u64>,
    #[serde(borrow, default, rename = "p")]
    price: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "s")]
    size: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "bp")]
    bid_price: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "bs")]
    bid_size: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "ap")]
    ask_price: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "as")]
    ask_size: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "t")]
    time: Option<&'a str>,
    #[serde(borrow, default)]
    msg: Option<&'a str>,
    #[serde(default)]
    code: Option<i64>,
}

fn need<'a>(v: Option<&'a RawValue>, field: &'static str) -> Result<&'a RawValue, DecodeError> {
    v.ok_or(DecodeError::Missing(field))
}

impl Decoder {
    fn one(
        &self,
        m: &Msg<'_>,
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Option<Frame>, DecodeError> {
        let symbol = || -> Result<Symbol, DecodeError> {
            let s = m.symbol.ok_or(DecodeError::Missing("S"))?;
            Symbol::new(s).map_err(|_| DecodeError::UnknownSymbol(s.to_string()))
        };
        let time = || -> Result<Timestamp, DecodeError> {
            Timestamp::parse_rfc3339(m.time.ok_or(DecodeError::Missing("t"))?).map_err(|e| {
                DecodeError::BadNumber {
                    field: "t",
                    reason: e.to_string(),
                }
            })
        };
        match m.kind {
            "t" => {
                out.push(Event::Trade(Trade {
                    venue: self.venue.clone(),
                    symbol: symbol()?,
                    ts_exchange: time()?,
                    ts_received,
                    price: decimal("p", need(m.price, "p")?)?,
                    size: decimal("s", need(m.size, "s")?)?,
                    side: Side::Unknown,
                    trade_id: m.id.map(|i| i.to_string()),
                }));
                Ok(None)
            }
            "q" => {
                out.push(Event::Quote(Quote {
                    venue: self.venue.clone(),
                    symbol: symbol()?,
                    ts_exchange: time()?,
                    ts_received,
                    bid_price: decimal("bp", need(m.bid_price, "bp")?)?,
                    bid_size: decimal("bs", need(m.bid_size, "bs")?)?,
                    ask_price: decimal("ap", need(m.ask_price, "ap")?)?,
                    ask_size: decimal("as", need(m.ask_size, "as")?)?,
                }));
                Ok(None)
            }
            "success" => Ok(Some(Frame::Ack(m.msg.unwrap_or("success").to_string()))),
            "subscription" => Ok(Some(Frame::Ack("subscription".into()))),
            "error" => Ok(Some(Frame::Refused(format!(
                "code {}: {}",
                m.code.unwrap_or_default(),
                m.msg.unwrap_or("error")
            )))),
            other => Ok(Some(Frame::Ignored(format!("{other} message")))),
        }
    }
}

impl VenueDecoder for Decoder {
    fn venue(&self) -> &str {
        self.venue.as_str()
    }

    /// A frame holds several messages: their events are all appended; the
    /// first refusal, else the first acknowledgement, else `Data`/`Ignored`
    /// describes the frame. A bad message fails the frame after the good
    /// ones before it were appended.
    fn decode(
        &mut self,
        frame: &[u8],
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        let msgs: Vec<Msg<'_>> = serde_json::from_str(super::text(frame)?)
            .map_err(|e| DecodeError::Malformed(e.to_string()))?;
        let before = out.len();
        let mut control: Option<Frame> = None;
        for m in &msgs {
            if let Some(f) = self.one(m, ts_received, out)? {
                control = match (control, f) {
                    (Some(Frame::Refused(r)), _) => Some(Frame::Refused(r)),
                    (_, Frame::Refused(r)) => Some(Frame::Refused(r)),
                    (Some(Frame::Ack(a)), _) => Some(Frame::Ack(a)),
                    (_, f) => Some(f),
                };
            }
        }
        Ok(match control {
            Some(f @ (Frame::Refused(_) | Frame::Ack(_))) => f,
            _ if out.len() > before => Frame::Data,
            Some(f) => f,
            None => Frame::Ignored("empty frame".into()),
        })
    }
}

#[cfg(test)]
mod tests;
