//! Binance's raw messages as both JSON parsers see them: one set of serde
//! structs, generic over how a value is kept raw (`&RawValue` for serde_json,
//! [`SonicRaw`] for sonic-rs), so the two decoders cannot drift apart.

use std::borrow::Cow;

use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;
use sonic_rs::LazyValue;

use crate::venues::DecodeError;

/// A JSON value kept as its source text (a price stays `"0.001"`, quotes
/// included, until the payload type says what it is).
pub(super) trait RawJson {
    /// The value's JSON text.
    fn json(&self) -> &str;
}

impl RawJson for &RawValue {
    fn json(&self) -> &str {
        self.get()
    }
}

/// A value's source text as sonic-rs's [`LazyValue`] finds it, kept slim:
/// a `LazyValue` is several times the size of the text's reference, and every
/// raw field of [`Msg`] pays for that in the moves of the struct. Borrowed
/// from the frame, except a string with escapes (sonic-rs copies those).
pub(super) struct SonicRaw<'a>(Cow<'a, str>);

impl<'de: 'a, 'a> Deserialize<'de> for SonicRaw<'a> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        LazyValue::deserialize(d).map(|v| SonicRaw(v.as_raw_cow()))
    }
}

impl RawJson for SonicRaw<'_> {
    fn json(&self) -> &str {
        &self.0
    }
}

/// A JSON parser the decoder can run on: serde_json or sonic-rs.
pub(super) trait Json {
    /// How this parser keeps a value raw, borrowing from the frame.
    type Raw<'a>: RawJson + Deserialize<'a>;

    /// Deserialize `text`, borrowing strings from it.
    fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError>;
}

/// serde_json.
#[derive(Debug)]
pub(super) enum SerdeJson {}

impl Json for SerdeJson {
    type Raw<'a> = &'a RawValue;

    fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError> {
        serde_json::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

/// sonic-rs. The frame is checked as UTF-8 before (std's check), so sonic-rs
/// parses a `&str` and need not check again.
#[derive(Debug)]
pub(super) enum SonicRs {}

impl Json for SonicRs {
    type Raw<'a> = SonicRaw<'a>;

    fn parse<'a, T: Deserialize<'a>>(text: &'a str) -> Result<T, DecodeError> {
        sonic_rs::from_str(text).map_err(|e| DecodeError::Malformed(e.to_string()))
    }
}

/// Every field of every frame we read, borrowed from the frame. Fields whose
/// meaning differs between payloads (`b`, `a`: order ids in a trade, prices in
/// a bookTicker) stay raw until the payload type is known.
#[derive(Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
pub(super) struct Msg<'a, R> {
    #[serde(borrow, default)]
    pub(super) stream: Option<&'a str>,
    #[serde(default)]
    pub(super) data: Option<R>,
    #[serde(borrow, default, rename = "e")]
    pub(super) event: Option<&'a str>,
    #[serde(default, rename = "E")]
    pub(super) event_time: Option<i64>,
    #[serde(borrow, default, rename = "s")]
    pub(super) symbol: Option<&'a str>,
    #[serde(default, rename = "t")]
    pub(super) trade_id: Option<u64>,
    #[serde(default, rename = "p")]
    pub(super) price: Option<R>,
    #[serde(default, rename = "q")]
    pub(super) size: Option<R>,
    #[serde(default, rename = "T")]
    pub(super) trade_time: Option<i64>,
    #[serde(default, rename = "m")]
    pub(super) buyer_is_maker: Option<bool>,
    #[serde(default, rename = "u")]
    pub(super) update_id: Option<u64>,
    #[serde(default, rename = "b")]
    pub(super) b: Option<R>,
    #[serde(default, rename = "B")]
    pub(super) bid_size: Option<R>,
    #[serde(default, rename = "a")]
    pub(super) a: Option<R>,
    #[serde(default, rename = "A")]
    pub(super) ask_size: Option<R>,
    #[serde(default)]
    pub(super) result: Option<R>,
    #[serde(default)]
    pub(super) id: Option<R>,
    #[serde(default)]
    pub(super) code: Option<i64>,
    #[serde(borrow, default)]
    pub(super) msg: Option<Cow<'a, str>>,
}

/// A combined-stream frame, payload parsed in the same pass.
#[derive(Deserialize)]
#[serde(bound(deserialize = "R: Deserialize<'de>"))]
pub(super) struct Envelope<'a, R> {
    #[serde(borrow, default)]
    pub(super) stream: Option<&'a str>,
    #[serde(borrow, default)]
    pub(super) data: Option<Msg<'a, R>>,
}
