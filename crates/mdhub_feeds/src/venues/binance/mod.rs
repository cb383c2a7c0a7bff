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

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use mdhub_types::{Event, Quote, Side, Symbol, Timestamp, Trade, Venue};

use protocol::{Envelope, Json, Msg, RawJson, SerdeJson, SonicRs};

use super::{DecodeError, Frame, VenueDecoder, decimal_text};

mod config;
pub use config::BinanceSection;

/// This venue in the registry ([`crate::venues::registry`]).
pub static SPEC: crate::venues::registry::VenueSpec = crate::venues::registry::VenueSpec {
    id: "binance",
    description: "Binance spot: trades and best bid/offer over combined WebSocket streams",
    decoder: default_decoder,
    env: &[],
    configure: crate::venues::registry::configure::<BinanceSection>,
};

fn default_decoder() -> Box<dyn crate::venues::VenueDecoder> {
    Box::new(Decoder::default())
}

mod feed;
mod protocol;
mod scan;
pub use feed::{BinanceConfig, BinanceFeed};

/// Quote assets Binance spot lists, longest first so `FDUSD` wins over `USD`.
const QUOTE_ASSETS: &[&str] = &[
    "FDUSD", "USDT", "USDC", "TUSD", "BUSD", "USDP", "DOGE", "BTC", "ETH", "BNB", "EUR", "TRY",
    "BRL", "GBP", "AUD", "JPY", "RUB", "UAH", "PLN", "RON", "ARS", "ZAR", "IDR", "MXN", "COP",
    "CZK", "DAI", "XRP", "TRX", "SOL", "USD",
];

/// FNV-1a: the symbol map is looked up once per frame with a short key the
/// venue sent, where SipHash's setup costs more than the lookup it guards;
/// the keys are the venue's own few hundred symbols, not attacker-chosen.
#[derive(Debug, Clone, Copy)]
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
}

/// Binance symbols ↔ canonical symbols.
#[derive(Debug, Default, Clone)]
pub struct SymbolMap {
    to_canonical: HashMap<String, Symbol, BuildHasherDefault<Fnv>>,
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

/// Which JSON parser a [`Decoder`] runs. All give the same events and the
/// same errors (a test runs every fixture through each); they differ in speed
/// only (`docs/benchmarks.md`, "Venue decoding").
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Parser {
    /// A scanner for `@trade` frames in Binance's exact layout; serde_json
    /// for everything else (and for any trade frame the scanner declines).
    #[default]
    Scan,
    /// serde_json.
    SerdeJson,
    /// sonic-rs (SIMD).
    SonicRs,
}

/// The Binance spot decoder.
#[derive(Debug)]
pub struct Decoder {
    venue: Venue,
    /// Symbol mapping (learned mappings are kept).
    pub symbols: SymbolMap,
    /// Timestamps are microseconds (`timeUnit=MICROSECOND`), not milliseconds.
    pub micros: bool,
    /// The JSON parser.
    pub parser: Parser,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder {
            venue: Venue::new("binance").unwrap_or_else(|_| unreachable!("valid venue id")),
            symbols: SymbolMap::default(),
            micros: false,
            parser: Parser::default(),
        }
    }
}

impl Decoder {
    /// A decoder running `parser`, default settings otherwise.
    pub fn with_parser(parser: Parser) -> Self {
        Decoder {
            parser,
            ..Decoder::default()
        }
    }
}

impl Decoder {
    fn time(&self, t: i64) -> Timestamp {
        if self.micros {
            Timestamp::from_micros(t)
        } else {
            Timestamp::from_millis(t)
        }
    }

    fn quote<R: RawJson>(
        &mut self,
        m: &Msg<'_, R>,
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
            bid_price: raw_decimal("b", m.b.as_ref())?,
            bid_size: raw_decimal("B", m.bid_size.as_ref())?,
            ask_price: raw_decimal("a", m.a.as_ref())?,
            ask_size: raw_decimal("A", m.ask_size.as_ref())?,
        }));
        Ok(Frame::Data)
    }

    fn payload<R: RawJson>(
        &mut self,
        m: &Msg<'_, R>,
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        match m.event {
            Some("trade") => {
                let symbol = self
                    .symbols
                    .canonical(m.symbol.ok_or(DecodeError::Missing("s"))?)?;
                let price = raw_decimal("p", m.price.as_ref())?;
                let size = raw_decimal("q", m.size.as_ref())?;
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
                    trade_id: m.trade_id.map(|t| itoa::Buffer::new().format(t).to_owned()),
                }));
                Ok(Frame::Data)
            }
            // Spot book tickers are untagged; other Binance products tag them.
            Some("bookTicker") => self.quote(m, ts_received, out),
            None if m.update_id.is_some() && m.b.is_some() => self.quote(m, ts_received, out),
            Some(other) => Ok(Frame::Ignored(format!("{other} event"))),
            None if m.result.is_some() || m.id.is_some() && m.code.is_none() => Ok(Frame::Ack(
                m.id.as_ref()
                    .map(|i| i.json().trim_matches('"').to_string())
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
        match self.parser {
            Parser::Scan => match scan::trade(text) {
                Some(t) => self.scanned_trade(&t, ts_received, out),
                None => self.decode_with::<SerdeJson>(text, ts_received, out),
            },
            Parser::SerdeJson => self.decode_with::<SerdeJson>(text, ts_received, out),
            Parser::SonicRs => self.decode_with::<SonicRs>(text, ts_received, out),
        }
    }
}

impl Decoder {
    /// A trade the scanner read: the same event the serde path builds.
    fn scanned_trade(
        &mut self,
        t: &scan::RawTrade<'_>,
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        let symbol = self.symbols.canonical(t.symbol)?;
        let price = decimal_text("p", t.price)?;
        let size = decimal_text("q", t.size)?;
        out.push(Event::Trade(Trade {
            venue: self.venue.clone(),
            symbol,
            ts_exchange: self.time(t.trade_time),
            ts_received,
            price,
            size,
            side: if t.buyer_is_maker {
                Side::Sell
            } else {
                Side::Buy
            },
            trade_id: Some(itoa::Buffer::new().format(t.trade_id).to_owned()),
        }));
        Ok(Frame::Data)
    }

    fn decode_with<'a, J: Json>(
        &mut self,
        text: &'a str,
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        // Combined streams start with the stream name (as Binance writes
        // them): parse wrapper and payload in one pass. Anything else, or a
        // wrapper with its keys in another order, takes the general path.
        if text.trim_start().starts_with("{\"stream\"") {
            let env: Envelope<'a, J::Raw<'a>> = J::parse(text)?;
            return match (env.stream, env.data) {
                (_, Some(inner)) => self.payload(&inner, ts_received, out),
                (stream, None) => Err(DecodeError::Malformed(format!(
                    "combined-stream frame of {} without `data`",
                    stream.unwrap_or("?")
                ))),
            };
        }
        let m: Msg<'a, J::Raw<'a>> = J::parse(text)?;
        match (m.stream, &m.data) {
            (Some(_), Some(data)) => {
                let inner: Msg<'_, J::Raw<'_>> = J::parse(data.json())?;
                self.payload(&inner, ts_received, out)
            }
            (Some(stream), None) => Err(DecodeError::Malformed(format!(
                "combined-stream frame of {stream} without `data`"
            ))),
            _ => self.payload(&m, ts_received, out),
        }
    }
}

/// A price or size: present, and an exact decimal.
fn raw_decimal<R: RawJson>(
    field: &'static str,
    raw: Option<&R>,
) -> Result<mdhub_types::Decimal, DecodeError> {
    decimal_text(field, raw.ok_or(DecodeError::Missing(field))?.json())
}

#[cfg(test)]
mod tests;
