//! The Avro encoding of events: single-object encoding (spec 1.x, "Single
//! object encoding") of the schemas in `schemas/quote.avsc` and
//! `schemas/trade.avsc`.
//!
//! Each message is `C3 01`, the schema's 8-byte CRC-64-AVRO (Rabin)
//! fingerprint in little-endian order, then the Avro binary datum. Prices and
//! sizes use the `decimal` logical type (bytes, precision 38, scale 18), so
//! every reader — fastavro, Java, Spark — gets the exact value; timestamps use
//! `timestamp-nanos`. The reader picks the schema by fingerprint.

use std::sync::OnceLock;

use apache_avro::Schema;
use apache_avro::types::Value;

use crate::decimal::MAX_SCALE;
use crate::{Decimal, Event, Quote, Side, Symbol, Timestamp, Trade, Venue};

/// The quote schema's JSON text.
pub const QUOTE_SCHEMA: &str = include_str!("../../../schemas/quote.avsc");
/// The trade schema's JSON text.
pub const TRADE_SCHEMA: &str = include_str!("../../../schemas/trade.avsc");

/// Why an event could not be encoded or decoded as Avro.
#[derive(Debug, thiserror::Error)]
pub enum AvroError {
    /// The message does not start with the single-object marker `C3 01`.
    #[error("not an Avro single-object message (missing C3 01 marker)")]
    NotSingleObject,
    /// The fingerprint names no schema mdhub knows.
    #[error("unknown Avro schema fingerprint {0:016x}")]
    UnknownSchema(u64),
    /// A decimal does not fit `decimal(38, 18)`.
    #[error("decimal {0} does not fit Avro decimal(38,18)")]
    DecimalRange(Decimal),
    /// The datum does not match the schema, or a field is invalid.
    #[error("invalid Avro datum: {0}")]
    Invalid(String),
    /// Feed-status events have no Avro schema (logs write them as JSON).
    #[error("feed-status events have no Avro encoding (they are written as JSON)")]
    NoSchema,
    /// The Avro library reported an error.
    #[error("avro: {0}")]
    Library(#[from] Box<apache_avro::Error>),
}

struct Schemas {
    quote: Schema,
    trade: Schema,
    quote_fp: [u8; 8],
    trade_fp: [u8; 8],
}

fn schemas() -> &'static Schemas {
    static S: OnceLock<Schemas> = OnceLock::new();
    S.get_or_init(|| {
        // The schema texts are compiled in and parsed by a unit test.
        let quote = Schema::parse_str(QUOTE_SCHEMA).unwrap_or_else(|e| panic!("quote.avsc: {e}"));
        let trade = Schema::parse_str(TRADE_SCHEMA).unwrap_or_else(|e| panic!("trade.avsc: {e}"));
        let fp = |text: &str| {
            crate::avro_pcf::fingerprint(text).unwrap_or_else(|e| panic!("schema: {e}"))
        };
        Schemas {
            quote_fp: fp(QUOTE_SCHEMA),
            trade_fp: fp(TRADE_SCHEMA),
            quote,
            trade,
        }
    })
}

/// The 8-byte fingerprint a message of this kind starts with (after `C3 01`);
/// `None` for feed-status events, which are always JSON.
pub fn fingerprint(kind: crate::Topic) -> Option<[u8; 8]> {
    match kind {
        crate::Topic::Quotes => Some(schemas().quote_fp),
        crate::Topic::Trades => Some(schemas().trade_fp),
        crate::Topic::Status => None,
    }
}

fn dec(d: Decimal) -> Result<Value, AvroError> {
    let m = d
        .rescaled(MAX_SCALE)
        .ok_or(AvroError::DecimalRange(d))?
        .mantissa();
    // Minimal big-endian two's complement.
    let bytes = m.to_be_bytes();
    let mut start = 0;
    while start < 15 {
        let (b, next) = (bytes[start], bytes[start + 1]);
        if (b == 0x00 && next & 0x80 == 0) || (b == 0xff && next & 0x80 != 0) {
            start += 1;
        } else {
            break;
        }
    }
    Ok(Value::Decimal(apache_avro::Decimal::from(
        bytes[start..].to_vec(),
    )))
}

fn undec(v: &Value, field: &str) -> Result<Decimal, AvroError> {
    let bytes: Vec<u8> = match v {
        Value::Decimal(d) => {
            Vec::<u8>::try_from(d).map_err(|e| AvroError::Invalid(format!("{field}: {e}")))?
        }
        Value::Bytes(b) => b.clone(),
        other => {
            return Err(AvroError::Invalid(format!(
                "{field}: expected decimal, got {other:?}"
            )));
        }
    };
    if bytes.is_empty() || bytes.len() > 16 {
        return Err(AvroError::Invalid(format!(
            "{field}: decimal of {} bytes",
            bytes.len()
        )));
    }
    let fill = if bytes[0] & 0x80 != 0 { 0xff } else { 0x00 };
    let mut full = [fill; 16];
    full[16 - bytes.len()..].copy_from_slice(&bytes);
    Decimal::from_parts(i128::from_be_bytes(full), MAX_SCALE)
        .map(Decimal::normalized)
        .map_err(|e| AvroError::Invalid(format!("{field}: {e}")))
}

/// Append the single-object encoding of `event` to `out`.
pub fn encode(event: &Event, out: &mut Vec<u8>) -> Result<(), AvroError> {
    let s = schemas();
    let (schema, fp, value) = match event {
        Event::Quote(q) => (
            &s.quote,
            s.quote_fp,
            Value::Record(vec![
                ("venue".into(), Value::String(q.venue.to_string())),
                ("symbol".into(), Value::String(q.symbol.to_string())),
                (
                    "ts_exchange".into(),
                    Value::TimestampNanos(q.ts_exchange.as_nanos()),
                ),
                (
                    "ts_received".into(),
                    Value::TimestampNanos(q.ts_received.as_nanos()),
                ),
                ("bid_price".into(), dec(q.bid_price)?),
                ("bid_size".into(), dec(q.bid_size)?),
                ("ask_price".into(), dec(q.ask_price)?),
                ("ask_size".into(), dec(q.ask_size)?),
            ]),
        ),
        Event::Trade(t) => (
            &s.trade,
            s.trade_fp,
            Value::Record(vec![
                ("venue".into(), Value::String(t.venue.to_string())),
                ("symbol".into(), Value::String(t.symbol.to_string())),
                (
                    "ts_exchange".into(),
                    Value::TimestampNanos(t.ts_exchange.as_nanos()),
                ),
                (
                    "ts_received".into(),
                    Value::TimestampNanos(t.ts_received.as_nanos()),
                ),
                ("price".into(), dec(t.price)?),
                ("size".into(), dec(t.size)?),
                (
                    "side".into(),
                    Value::Enum(
                        match t.side {
                            Side::Buy => 0,
                            Side::Sell => 1,
                            Side::Unknown => 2,
                        },
                        t.side.as_str().to_string(),
                    ),
                ),
                (
                    "trade_id".into(),
                    match &t.trade_id {
                        Some(id) => Value::Union(1, Box::new(Value::String(id.clone()))),
                        None => Value::Union(0, Box::new(Value::Null)),
                    },
                ),
            ]),
        ),
        Event::Status(_) => return Err(AvroError::NoSchema),
    };
    out.extend_from_slice(&[0xC3, 0x01]);
    out.extend_from_slice(&fp);
    let datum = apache_avro::to_avro_datum(schema, value).map_err(Box::new)?;
    out.extend_from_slice(&datum);
    Ok(())
}

/// Decode one single-object message.
pub fn decode(bytes: &[u8]) -> Result<Event, AvroError> {
    if bytes.len() < 10 || bytes[0] != 0xC3 || bytes[1] != 0x01 {
        return Err(AvroError::NotSingleObject);
    }
    let s = schemas();
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[2..10]);
    let schema = if fp == s.quote_fp {
        &s.quote
    } else if fp == s.trade_fp {
        &s.trade
    } else {
        return Err(AvroError::UnknownSchema(u64::from_le_bytes(fp)));
    };
    let mut body = &bytes[10..];
    let value = apache_avro::from_avro_datum(schema, &mut body, None).map_err(Box::new)?;
    let Value::Record(fields) = value else {
        return Err(AvroError::Invalid("datum is not a record".into()));
    };
    let get = |name: &str| {
        fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v)
            .ok_or_else(|| AvroError::Invalid(format!("missing field {name}")))
    };
    let string = |name: &str| match get(name)? {
        Value::String(s) => Ok(s.as_str()),
        other => Err(AvroError::Invalid(format!(
            "{name}: expected string, got {other:?}"
        ))),
    };
    let ts = |name: &str| match get(name)? {
        Value::TimestampNanos(n) | Value::Long(n) => Ok(Timestamp::from_nanos(*n)),
        other => Err(AvroError::Invalid(format!(
            "{name}: expected timestamp, got {other:?}"
        ))),
    };
    let venue = Venue::new(string("venue")?).map_err(|e| AvroError::Invalid(e.to_string()))?;
    let symbol = Symbol::new(string("symbol")?).map_err(|e| AvroError::Invalid(e.to_string()))?;
    if fp == s.quote_fp {
        Ok(Event::Quote(Quote {
            venue,
            symbol,
            ts_exchange: ts("ts_exchange")?,
            ts_received: ts("ts_received")?,
            bid_price: undec(get("bid_price")?, "bid_price")?,
            bid_size: undec(get("bid_size")?, "bid_size")?,
            ask_price: undec(get("ask_price")?, "ask_price")?,
            ask_size: undec(get("ask_size")?, "ask_size")?,
        }))
    } else {
        let side = match get("side")? {
            Value::Enum(0, _) => Side::Buy,
            Value::Enum(1, _) => Side::Sell,
            Value::Enum(_, _) => Side::Unknown,
            other => return Err(AvroError::Invalid(format!("side: {other:?}"))),
        };
        let trade_id = match get("trade_id")? {
            Value::Union(_, v) => match v.as_ref() {
                Value::String(s) => Some(s.clone()),
                _ => None,
            },
            Value::String(s) => Some(s.clone()),
            _ => None,
        };
        Ok(Event::Trade(Trade {
            venue,
            symbol,
            ts_exchange: ts("ts_exchange")?,
            ts_received: ts("ts_received")?,
            price: undec(get("price")?, "price")?,
            size: undec(get("size")?, "size")?,
            side,
            trade_id,
        }))
    }
}
