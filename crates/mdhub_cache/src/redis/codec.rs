//! What [`RedisCache`](super::RedisCache) stores and where: key names under
//! the prefix, the bytes of a stored event, and decoding them back with every
//! surprise reported as [`Error::Corrupt`].

use mdhub_types::{Positioned, Symbol, Timestamp, Topic, Venue, json};
use serde::Deserialize;

use crate::{Error, Latest, Result, SymbolInfo};

/// Key names of one prefix.
#[derive(Debug, Clone)]
pub(crate) struct Keys {
    latest: String,
    symbols: String,
}

impl Keys {
    pub(crate) fn new(prefix: &str) -> Self {
        Keys {
            latest: format!("{prefix}latest:"),
            symbols: format!("{prefix}symbols"),
        }
    }

    /// `{prefix}latest:{SYMBOL}`: the hash of one symbol's latest quote and trade.
    pub(crate) fn latest(&self, symbol: &Symbol) -> String {
        let mut k = String::with_capacity(self.latest.len() + symbol.as_str().len());
        k.push_str(&self.latest);
        k.push_str(symbol.as_str());
        k
    }

    /// `{prefix}symbols`: the directory hash, SYMBOL → [`DirEntry`] JSON.
    pub(crate) fn symbols(&self) -> &str {
        &self.symbols
    }

    /// A SCAN pattern matching every latest hash (glob characters of the
    /// prefix escaped).
    pub(crate) fn latest_pattern(&self) -> String {
        let mut p = String::with_capacity(self.latest.len() + 4);
        for c in self.latest.chars() {
            if matches!(c, '*' | '?' | '[' | ']' | '\\') {
                p.push('\\');
            }
            p.push(c);
        }
        p.push('*');
        p
    }

    /// Is `key` one of this prefix's latest hashes? A key that merely starts
    /// the same way (another environment's prefix `{prefix}latest:x:`) is not:
    /// what follows must be a canonical symbol, which never holds `:`.
    pub(crate) fn is_latest_key(&self, key: &[u8]) -> bool {
        key.strip_prefix(self.latest.as_bytes())
            .and_then(|rest| std::str::from_utf8(rest).ok())
            .is_some_and(|s| Symbol::new(s).is_ok())
    }
}

/// Hash fields of the two slots of a latest hash; each slot's offset,
/// `ts_received` and venue sit beside it in `{field}_off`, `{field}_ts`,
/// `{field}_venue` for the put script.
pub(crate) const QUOTE: &str = "quote";
pub(crate) const TRADE: &str = "trade";
/// The offset fields of the two slots (decimal text).
pub(crate) const QUOTE_OFF: &str = "quote_off";
pub(crate) const TRADE_OFF: &str = "trade_off";

/// Append the stored form of `p`: `{"position":"quotes:1:10","event":{…}}`,
/// byte for byte what `serde_json` writes for [`Positioned`], with the event
/// in mdhub's JSON encoding (exact decimal text, integer nanoseconds).
pub(crate) fn encode(p: &Positioned, out: &mut Vec<u8>) {
    use std::io::Write;
    out.extend_from_slice(b"{\"position\":\"");
    // Writing to a Vec cannot fail.
    let _ = write!(out, "{}", p.position);
    out.extend_from_slice(b"\",\"event\":");
    json::encode_event(&p.event, out);
    out.push(b'}');
}

fn corrupt(symbol: &str, reason: impl Into<String>) -> Error {
    Error::Corrupt {
        symbol: symbol.to_string(),
        reason: reason.into(),
    }
}

/// Decode the slot `field` of `symbol`'s latest hash, checking that it holds
/// an event of that symbol and kind.
pub(crate) fn decode_slot(symbol: &Symbol, field: &str, bytes: &[u8]) -> Result<Positioned> {
    let p: Positioned = serde_json::from_slice(bytes).map_err(|e| {
        corrupt(
            symbol.as_str(),
            format!("field `{field}` is not a positioned event: {e}"),
        )
    })?;
    let want = if field == QUOTE {
        Topic::Quotes
    } else {
        Topic::Trades
    };
    if p.event.topic() != want || p.position.topic != want {
        return Err(corrupt(
            symbol.as_str(),
            format!(
                "field `{field}` holds a {} at {}",
                p.event.topic().channel(),
                p.position
            ),
        ));
    }
    if p.event.symbol() != symbol {
        return Err(corrupt(
            symbol.as_str(),
            format!(
                "field `{field}` holds an event of {}",
                p.event.symbol().as_str()
            ),
        ));
    }
    Ok(p)
}

/// The latest state from the two slots of a latest hash; `None` when neither
/// is present (the symbol was never put).
pub(crate) fn decode_latest(
    symbol: &Symbol,
    quote: Option<&[u8]>,
    trade: Option<&[u8]>,
) -> Result<Option<Latest>> {
    if quote.is_none() && trade.is_none() {
        return Ok(None);
    }
    Ok(Some(Latest {
        symbol: symbol.clone(),
        quote: quote.map(|b| decode_slot(symbol, QUOTE, b)).transpose()?,
        trade: trade.map(|b| decode_slot(symbol, TRADE, b)).transpose()?,
    }))
}

/// A directory value, `{"venue":"sim-fx","last_update":1700000000000000120}`
/// (written by the put script).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirEntry {
    venue: Venue,
    last_update: Timestamp,
}

/// One directory line from its hash field and value.
pub(crate) fn decode_dir_entry(field: &[u8], value: &[u8]) -> Result<SymbolInfo> {
    let text = String::from_utf8_lossy(field);
    let symbol = Symbol::new(&text)
        .map_err(|e| corrupt(&text, format!("directory field is not a symbol: {e}")))?;
    let entry: DirEntry = serde_json::from_slice(value)
        .map_err(|e| corrupt(&text, format!("directory entry is not valid: {e}")))?;
    Ok(SymbolInfo {
        symbol,
        venue: entry.venue,
        last_update: entry.last_update,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{quote, trade};
    use mdhub_types::Event;

    #[test]
    fn stored_form_is_serde_json_of_positioned_and_round_trips() {
        for p in [
            quote("AAPL", "sim-nasdaq", 10, 1),
            trade("BTC-USDT", "binance", u64::MAX, -5),
        ] {
            let mut out = Vec::new();
            encode(&p, &mut out);
            assert_eq!(out, serde_json::to_vec(&p).unwrap());
            let field = match p.event {
                Event::Quote(_) => QUOTE,
                Event::Trade(_) => TRADE,
                Event::Status(_) => unreachable!("prices only"),
            };
            let back = decode_slot(p.event.symbol(), field, &out).unwrap();
            assert_eq!(back, p);
        }
    }

    #[test]
    fn slot_mismatches_are_corrupt() {
        let q = quote("AAPL", "sim-nasdaq", 10, 1);
        let mut out = Vec::new();
        encode(&q, &mut out);
        let aapl = Symbol::new("AAPL").unwrap();
        let msft = Symbol::new("MSFT").unwrap();
        let err = decode_slot(&aapl, TRADE, &out).unwrap_err().to_string();
        assert!(err.contains("holds a quotes"), "{err}");
        let err = decode_slot(&msft, QUOTE, &out).unwrap_err().to_string();
        assert!(err.contains("holds an event of AAPL"), "{err}");
        let err = decode_slot(&aapl, QUOTE, b"\xff{").unwrap_err();
        assert!(matches!(err, Error::Corrupt { ref symbol, .. } if symbol == "AAPL"));
    }

    #[test]
    fn keys_and_patterns() {
        let k = Keys::new("t[1]*:");
        let s = Symbol::new("BTC-USDT").unwrap();
        assert_eq!(k.latest(&s), "t[1]*:latest:BTC-USDT");
        assert_eq!(k.symbols(), "t[1]*:symbols");
        assert_eq!(k.latest_pattern(), "t\\[1\\]\\*:latest:*");
        assert!(k.is_latest_key(b"t[1]*:latest:BTC-USDT"));
        assert!(!k.is_latest_key(b"t[1]*:latest:x:latest:AAPL"));
        assert!(!k.is_latest_key(b"t[1]*:symbols"));
    }

    #[test]
    fn directory_entries() {
        let i = decode_dir_entry(
            b"EUR-USD",
            br#"{"venue":"sim-fx","last_update":1700000000000000120}"#,
        )
        .unwrap();
        assert_eq!(i.venue.as_str(), "sim-fx");
        assert_eq!(
            i.last_update,
            Timestamp::from_nanos(1_700_000_000_000_000_120)
        );
        assert!(decode_dir_entry(b"eur usd", b"{}").is_err());
        assert!(decode_dir_entry(b"EUR-USD", b"{\"venue\":\"X Y\"}").is_err());
    }
}
