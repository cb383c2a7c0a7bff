//! What [`RedisCache`](super::RedisCache) stores and where: key names under
//! the prefix, the bytes of a stored event, and decoding them back with every
//! surprise reported as [`Error::Corrupt`].

use std::collections::BTreeMap;

use mdhub_types::{Positioned, Symbol, Timestamp, Topic, Venue, json};
use serde::Deserialize;

use crate::{Error, Latest, Result, SymbolInfo, VenueOffsets};

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

    /// `{prefix}latest:{SYMBOL}`: the hash of one symbol's latest quote and
    /// trade on every venue.
    pub(crate) fn latest(&self, symbol: &Symbol) -> String {
        let mut k = String::with_capacity(self.latest.len() + symbol.as_str().len());
        k.push_str(&self.latest);
        k.push_str(symbol.as_str());
        k
    }

    /// `{prefix}symbols`: the directory hash, `SYMBOL@venue` → [`DirEntry`] JSON.
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

/// The two slots of an instrument, by their field names in a latest hash:
/// `quote:{venue}` and `trade:{venue}` hold the values, `quote_off:{venue}`,
/// `quote_ts:{venue}` (and the same for `trade`) the offset and
/// `ts_received` beside them for the put script. A hash written before
/// instruments were keyed by venue holds one `quote` and one `trade` field
/// (and `quote_off`, `quote_ts`, `quote_venue`, …); those are still read,
/// as entries of the venue their event names.
pub(crate) const QUOTE: &str = "quote";
pub(crate) const TRADE: &str = "trade";

/// What a field of a latest hash is.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Field<'a> {
    /// A slot's value: `quote:{venue}` / `trade:{venue}`, or a legacy
    /// `quote` / `trade` (venue `None`).
    Value(Topic, Option<&'a str>),
    /// A slot's offset, `quote_off:{venue}` / `trade_off:{venue}`.
    Offset(Topic, &'a str),
    /// Anything else (timestamps, legacy helper fields).
    Other,
}

/// Classify a field name of a latest hash.
pub(crate) fn field(name: &[u8]) -> Field<'_> {
    let Ok(name) = std::str::from_utf8(name) else {
        return Field::Other;
    };
    let (head, venue) = match name.split_once(':') {
        Some((h, v)) => (h, Some(v)),
        None => (name, None),
    };
    match (head, venue) {
        (QUOTE, v) => Field::Value(Topic::Quotes, v),
        (TRADE, v) => Field::Value(Topic::Trades, v),
        ("quote_off", Some(v)) => Field::Offset(Topic::Quotes, v),
        ("trade_off", Some(v)) => Field::Offset(Topic::Trades, v),
        _ => Field::Other,
    }
}

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

/// Decode a slot value of `symbol`'s latest hash (field `name`), checking
/// that it holds an event of that symbol, kind and (when the field names
/// one) venue.
pub(crate) fn decode_slot(
    symbol: &Symbol,
    name: &str,
    want: Topic,
    venue: Option<&str>,
    bytes: &[u8],
) -> Result<Positioned> {
    let p: Positioned = serde_json::from_slice(bytes).map_err(|e| {
        corrupt(
            symbol.as_str(),
            format!("field `{name}` is not a positioned event: {e}"),
        )
    })?;
    if p.event.topic() != want || p.position.topic != want {
        return Err(corrupt(
            symbol.as_str(),
            format!(
                "field `{name}` holds a {} at {}",
                p.event.topic().channel(),
                p.position
            ),
        ));
    }
    if p.event.symbol() != symbol {
        return Err(corrupt(
            symbol.as_str(),
            format!(
                "field `{name}` holds an event of {}",
                p.event.symbol().as_str()
            ),
        ));
    }
    if venue.is_some_and(|v| v != p.event.venue().as_str()) {
        return Err(corrupt(
            symbol.as_str(),
            format!(
                "field `{name}` holds an event of venue {}",
                p.event.venue().as_str()
            ),
        ));
    }
    Ok(p)
}

/// Every venue's latest state from the fields of a latest hash, sorted by
/// venue; empty when the symbol was never put. Where a legacy slot and a
/// per-venue slot hold the same venue and kind, the higher offset wins.
pub(crate) fn decode_latest(symbol: &Symbol, pairs: &[(&[u8], &[u8])]) -> Result<Vec<Latest>> {
    let mut by_venue: BTreeMap<Venue, Latest> = BTreeMap::new();
    for (name, value) in pairs {
        let Field::Value(topic, venue) = field(name) else {
            continue;
        };
        let name = String::from_utf8_lossy(name);
        let p = decode_slot(symbol, &name, topic, venue, value)?;
        let v = p.event.venue().clone();
        let l = by_venue
            .entry(v.clone())
            .or_insert_with(|| Latest::empty(v, symbol.clone()));
        let slot = if topic == Topic::Quotes {
            &mut l.quote
        } else {
            &mut l.trade
        };
        if slot
            .as_ref()
            .is_none_or(|cur| p.position.offset > cur.position.offset)
        {
            *slot = Some(p);
        }
    }
    Ok(by_venue.into_values().collect())
}

/// Every venue's slot offsets from the fields of a latest hash, sorted by
/// venue (legacy fields are not counted: their entries are read by
/// [`decode_latest`] when a symbol is fetched whole).
pub(crate) fn decode_offsets(
    symbol: &Symbol,
    pairs: &[(&[u8], &[u8])],
) -> Result<Vec<VenueOffsets>> {
    let mut by_venue: BTreeMap<Venue, [Option<u64>; 2]> = BTreeMap::new();
    for (name, value) in pairs {
        let Field::Offset(topic, venue) = field(name) else {
            continue;
        };
        let bad = |why: &str| {
            corrupt(
                symbol.as_str(),
                format!("field `{}` {why}", String::from_utf8_lossy(name)),
            )
        };
        let venue = Venue::new(venue).map_err(|_| bad("does not name a venue"))?;
        let offset: u64 = std::str::from_utf8(value)
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or_else(|| bad("is not a number"))?;
        by_venue.entry(venue).or_default()[usize::from(topic == Topic::Trades)] = Some(offset);
    }
    Ok(by_venue.into_iter().collect())
}

/// A directory value, `{"venue":"sim-fx","last_update":1700000000000000120}`
/// (written by the put script).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DirEntry {
    venue: Venue,
    last_update: Timestamp,
}

/// One directory line from its hash field, `SYMBOL@venue` (or `SYMBOL`,
/// written before instruments were keyed by venue), and value.
pub(crate) fn decode_dir_entry(field: &[u8], value: &[u8]) -> Result<SymbolInfo> {
    let text = String::from_utf8_lossy(field);
    let (sym, venue) = match text.split_once('@') {
        Some((s, v)) => (s, Some(v)),
        None => (&*text, None),
    };
    let symbol = Symbol::new(sym)
        .map_err(|e| corrupt(&text, format!("directory field is not an instrument: {e}")))?;
    let entry: DirEntry = serde_json::from_slice(value)
        .map_err(|e| corrupt(&text, format!("directory entry is not valid: {e}")))?;
    if venue.is_some_and(|v| v != entry.venue.as_str()) {
        return Err(corrupt(&text, "directory entry names another venue"));
    }
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

    #[test]
    fn stored_form_is_serde_json_of_positioned_and_round_trips() {
        for p in [
            quote("AAPL", "sim-nasdaq", 10, 1),
            trade("BTC-USDT", "binance", u64::MAX, -5),
        ] {
            let mut out = Vec::new();
            encode(&p, &mut out);
            assert_eq!(out, serde_json::to_vec(&p).unwrap());
            let topic = p.event.topic();
            let venue = Some(p.event.venue().as_str());
            let back = decode_slot(p.event.symbol(), "f", topic, venue, &out).unwrap();
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
        let q = Topic::Quotes;
        let err = decode_slot(&aapl, "f", Topic::Trades, None, &out).unwrap_err();
        assert!(err.to_string().contains("holds a quotes"), "{err}");
        let err = decode_slot(&msft, "f", q, None, &out)
            .unwrap_err()
            .to_string();
        assert!(err.contains("holds an event of AAPL"), "{err}");
        let err = decode_slot(&aapl, "f", q, Some("kraken"), &out).unwrap_err();
        assert!(err.to_string().contains("of venue sim-nasdaq"), "{err}");
        let err = decode_slot(&aapl, "f", q, None, b"\xff{").unwrap_err();
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
    fn field_names() {
        assert_eq!(
            field(b"quote:kraken"),
            Field::Value(Topic::Quotes, Some("kraken"))
        );
        assert_eq!(field(b"trade"), Field::Value(Topic::Trades, None));
        assert_eq!(
            field(b"trade_off:sim-a"),
            Field::Offset(Topic::Trades, "sim-a")
        );
        for other in [&b"quote_ts:x"[..], b"quote_off", b"quote_venue", b"\xff"] {
            assert_eq!(field(other), Field::Other);
        }
    }

    #[test]
    fn legacy_and_per_venue_slots_merge_by_offset() {
        let enc = |p: &Positioned| {
            let mut out = Vec::new();
            encode(p, &mut out);
            out
        };
        let old = enc(&quote("BTC-USD", "kraken", 10, 1));
        let new = enc(&quote("BTC-USD", "kraken", 12, 2));
        let other = enc(&trade("BTC-USD", "coinbase", 11, 3));
        let pairs: Vec<(&[u8], &[u8])> = vec![
            (b"quote", &old),
            (b"quote_venue", b"kraken"),
            (b"quote:kraken", &new),
            (b"quote_off:kraken", b"12"),
            (b"trade:coinbase", &other),
            (b"trade_off:coinbase", b"11"),
        ];
        let sym = Symbol::new("BTC-USD").unwrap();
        let got = decode_latest(&sym, &pairs).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].venue.as_str(), "coinbase");
        assert_eq!(got[1].quote.as_ref().unwrap().position.offset, 12);
        let offs = decode_offsets(&sym, &pairs).unwrap();
        let v = |s: &str| Venue::new(s).unwrap();
        assert_eq!(
            offs,
            [
                (v("coinbase"), [None, Some(11)]),
                (v("kraken"), [Some(12), None])
            ]
        );
    }

    #[test]
    fn directory_entries() {
        let i = decode_dir_entry(
            b"EUR-USD@sim-fx",
            br#"{"venue":"sim-fx","last_update":1700000000000000120}"#,
        )
        .unwrap();
        assert_eq!((i.symbol.as_str(), i.venue.as_str()), ("EUR-USD", "sim-fx"));
        assert!(
            decode_dir_entry(b"EUR-USD@other", br#"{"venue":"sim-fx","last_update":1}"#).is_err()
        );
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
