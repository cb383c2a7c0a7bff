//! Binance spot: the `<symbol>@trade` and `<symbol>@bookTicker` streams,
//! raw (`/ws/…`) or combined (`/stream?streams=…`, each payload wrapped as
//! `{"stream":"…","data":{…}}`).
//!
//! Documented payloads (Binance spot API docs, "WebSocket Streams"; kept in
//! `fixtures/`):
//!
//! ```json
//! {"e":"trade","E":1672515782136,"s":"BNBBTC","t":12345,"p":"0.001","q":"100",
//!  "T":1672515782136,"m":true,"M":true}
//! {"u":400900217,"s":"BNBUSDT","b":"25.35190000","B":"31.21000000",
//!  "a":"25.36520000","A":"40.66000000"}
//! ```
//!
//! Mapping to mdhub's model:
//! - trade: `p` price, `q` size, `t` trade id, `T` trade time → `ts_exchange`.
//!   `m` is "is the buyer the market maker?": when true the buyer's order was
//!   resting, so the *seller* took liquidity — the aggressor side is `sell`;
//!   when false it is `buy`.
//! - bookTicker: `b`/`B` best bid price/size, `a`/`A` best ask. The spot
//!   payload carries no timestamp, so `ts_exchange` is the receipt time (an
//!   `E` or `T` field, as other Binance products send, is used when present).
//! - Prices and sizes arrive as strings and are parsed exactly; a JSON number
//!   is parsed from its source text too, never through f64.
//! - Timestamps are milliseconds, or microseconds when the connection asked
//!   for them (`timeUnit=MICROSECOND`; [`Decoder::micros`]).
//! - Symbols: `BNBUSDT` → `BNB-USDT` by splitting off a known quote asset
//!   (longest match first), unless the map has an explicit entry.
//! - `{"result":null,"id":1}` acknowledges a subscription; `{"code":…,"msg":…}`
//!   refuses a request; other event types (aggTrade, kline, …) are ignored
//!   with their name.

use std::borrow::Cow;
use std::collections::HashMap;

use mdhub_types::{Event, Quote, Side, Symbol, Timestamp, Trade, Venue};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::{DecodeError, Frame, VenueDecoder, decimal};

mod feed;
pub use feed::{BinanceConfig, BinanceFeed};

/// Quote assets Binance spot lists, longest first so `FDUSD` wins over `USD`.
const QUOTE_ASSETS: &[&str] = &[
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USDP", "DOGE", "BTC", "ETH", "BNB", "EUR", "TRY",
    "BRL", "GBP", "AUD", "JPY", "RUB", "UAH", "PLN", "RON", "ARS", "ZAR", "IDR", "MXN", "COP",
    "CZK", "DAI", "XRP", "TRX", "SOL", "USD",
];

/// Binance symbols ↔ canonical symbols.
#[derive(Debug, Default, Clone)]
pub struct SymbolMap {
    to_canonical: HashMap<String, Symbol>,
}

impl SymbolMap {
    /// Map `native` (`BTCUSDT`) to `canonical` explicitly, overriding the
    /// quote-asset rule.
    pub fn insert(&mut self, native: &str, canonical: Symbol) {
        self.to_canonical
            .insert(native.to_ascii_uppercase(), canonical);
    }

    /// The canonical symbol of a Binance symbol (`BNBUSDT` → `BNB-USDT`).
    pub fn canonical(&mut self, native: &str) -> Result<Symbol, DecodeError> {
        if let Some(s) = self.to_canonical.get(native) {
            return Ok(s.clone());
        }
        let upper = native.to_ascii_uppercase();
        let symbol = QUOTE_ASSETS
            .iter()
            .filter(|q| upper.len() > q.len() && upper.ends_with(*q))
            .find_map(|q| Symbol::pair(&upper[..upper.len() - q.len()], q).ok())
            .ok_or_else(|| DecodeError::UnknownSymbol(native.to_string()))?;
        self.to_canonical.insert(native.to_string(), symbol.clone());
        Ok(symbol)
    }

    /// The Binance symbol of a canonical one, lower-case as stream names
    /// want it (`BTC-USDT` → `btcusdt`).
    pub fn native(&self, canonical: &Symbol) -> String {
        self.to_canonical
            .iter()
            .find(|(_, c)| *c == canonical)
            .map(|(n, _)| n.to_ascii_lowercase())
            .unwrap_or_else(|| canonical.as_str().replace('-', "").to_ascii_lowercase())
    }
}

/// The Binance spot decoder.
#[derive(Debug)]
pub struct Decoder {
    venue: Venue,
    /// Symbol mapping (learned mappings are kept).
    pub symbols: SymbolMap,
    /// Timestamps are microseconds (`timeUnit=MICROSECOND`), not milliseconds.
    pub micros: bool,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            venue: Venue::new("binance").unwrap_or_else(|_| unreachable!("valid venue id")),
            symbols: SymbolMap::default(),
            micros: false,
        }
    }
}

/// Every field of every frame we read, borrowed from the frame. Fields whose
/// meaning differs between payloads (`b`, `a`: order ids in a trade, prices in
/// a bookTicker) stay raw until the payload type is known.
#[derive(Deserialize)]
struct Msg<'a> {
    #[serde(borrow, default)]
    stream: Option<&'a str>,
    #[serde(borrow, default)]
    data: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "e")]
    event: Option<&'a str>,
    #[serde(default, rename = "E")]
    event_time: Option<i64>,
    #[serde(borrow, default, rename = "s")]
    symbol: Option<&'a str>,
    #[serde(default, rename = "t")]
    trade_id: Option<u64>,
    #[serde(borrow, default, rename = "p")]
    price: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "q")]
    size: Option<&'a RawValue>,
    #[serde(default, rename = "T")]
    trade_time: Option<i64>,
    #[serde(default, rename = "m")]
    buyer_is_maker: Option<bool>,
    #[serde(default, rename = "u")]
    update_id: Option<u64>,
    #[serde(borrow, default, rename = "b")]
    b: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "B")]
    bid_size: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "a")]
    a: Option<&'a RawValue>,
    #[serde(borrow, default, rename = "A")]
    ask_size: Option<&'a RawValue>,
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(borrow, default)]
    id: Option<&'a RawValue>,
    #[serde(default)]
    code: Option<i64>,
    #[serde(borrow, default)]
    msg: Option<Cow<'a, str>>,
}

/// A combined-stream frame, payload parsed in the same pass.
#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    stream: Option<&'a str>,
    #[serde(borrow, default)]
    data: Option<Msg<'a>>,
}

fn malformed(e: serde_json::Error) -> DecodeError {
    DecodeError::Malformed(e.to_string())
}

impl Decoder {
    fn time(&self, t: i64) -> Timestamp {
        if self.micros {
            Timestamp::from_micros(t)
        } else {
            Timestamp::from_millis(t)
        }
    }

    fn quote(
        &mut self,
        m: &Msg<'_>,
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        let symbol = self
            .symbols
            .canonical(m.symbol.ok_or(DecodeError::Missing("s"))?)?;
        let ts_exchange = m
            .trade_time
            .or(m.event_time)
            .map_or(ts_received, |t| self.time(t));
        out.push(Event::Quote(Quote {
            venue: self.venue.clone(),
            symbol,
            ts_exchange,
            ts_received,
            bid_price: decimal("b", m.b.ok_or(DecodeError::Missing("b"))?)?,
            bid_size: decimal("B", m.bid_size.ok_or(DecodeError::Missing("B"))?)?,
            ask_price: decimal("a", m.a.ok_or(DecodeError::Missing("a"))?)?,
            ask_size: decimal("A", m.ask_size.ok_or(DecodeError::Missing("A"))?)?,
        }));
        Ok(Frame::Data)
    }

    fn payload(
        &mut self,
        m: &Msg<'_>,
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        match m.event {
            Some("trade") => {
                let symbol = self
                    .symbols
                    .canonical(m.symbol.ok_or(DecodeError::Missing("s"))?)?;
                let price = decimal("p", m.price.ok_or(DecodeError::Missing("p"))?)?;
                let size = decimal("q", m.size.ok_or(DecodeError::Missing("q"))?)?;
                let side = match m.buyer_is_maker {
                    Some(true) => Side::Sell,
                    Some(false) => Side::Buy,
                    None => Side::Unknown,
                };
                let ts = m
                    .trade_time
                    .or(m.event_time)
                    .ok_or(DecodeError::Missing("T"))?;
                out.push(Event::Trade(Trade {
                    venue: self.venue.clone(),
                    symbol,
                    ts_exchange: self.time(ts),
                    ts_received,
                    price,
                    size,
                    side,
                    trade_id: m.trade_id.map(|t| t.to_string()),
                }));
                Ok(Frame::Data)
            }
            // Spot book tickers are untagged; other Binance products tag them.
            Some("bookTicker") => self.quote(m, ts_received, out),
            None if m.update_id.is_some() && m.b.is_some() => self.quote(m, ts_received, out),
            Some(other) => Ok(Frame::Ignored(format!("{other} event"))),
            None if m.result.is_some() || m.id.is_some() && m.code.is_none() => Ok(Frame::Ack(
                m.id.map(|i| i.get().trim_matches('"').to_string())
                    .unwrap_or_default(),
            )),
            None if m.code.is_some() => Ok(Frame::Refused(format!(
                "code {}: {}",
                m.code.unwrap_or_default(),
                m.msg.as_deref().unwrap_or("")
            ))),
            None => Err(DecodeError::Malformed(
                "neither an event, a book ticker, nor a reply".into(),
            )),
        }
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
        // Combined streams start with the stream name (as Binance writes
        // them): parse wrapper and payload in one pass. Anything else, or a
        // wrapper with its keys in another order, takes the general path.
        if text.trim_start().starts_with("{\"stream\"") {
            let env: Envelope<'_> = serde_json::from_str(text).map_err(malformed)?;
            return match (env.stream, env.data) {
                (_, Some(inner)) => self.payload(&inner, ts_received, out),
                (stream, None) => Err(DecodeError::Malformed(format!(
                    "combined-stream frame of {} without `data`",
                    stream.unwrap_or("?")
                ))),
            };
        }
        let m: Msg<'_> = serde_json::from_str(text).map_err(malformed)?;
        match (m.stream, m.data) {
            (Some(_), Some(data)) => {
                let inner: Msg<'_> = serde_json::from_str(data.get()).map_err(malformed)?;
                self.payload(&inner, ts_received, out)
            }
            (Some(stream), None) => Err(DecodeError::Malformed(format!(
                "combined-stream frame of {stream} without `data`"
            ))),
            _ => self.payload(&m, ts_received, out),
        }
    }
}

#[cfg(test)]
mod tests;
