//! FIX 4.4 market data, the institutional path: a FIX session (Logon,
//! Heartbeat, TestRequest, ResendRequest, SequenceReset, Logout) run by the
//! [`hotfix`] engine, MarketDataRequest (V) per symbol, and the venue's
//! snapshot (W), incremental refresh (X) and request reject (Y) decoded here.
//!
//! Messages as a venue sends them (FIX 4.4 "Market Data" messages; `|`
//! stands for SOH; kept in `fixtures/`):
//!
//! ```text
//! 8=FIX.4.4|9=…|35=W|34=3|49=VENUE|52=20261126-12:00:00.000|56=MDHUB|262=md-BTC/USD|
//!   55=BTC/USD|268=2|269=0|270=95000.10|271=1.5|269=1|270=95000.20|271=0.25|10=…
//! 8=FIX.4.4|9=…|35=X|34=4|49=VENUE|52=20261126-12:00:01.000|56=MDHUB|262=md-BTC/USD|268=2|
//!   279=1|269=0|55=BTC/USD|270=95000.15|271=2|
//!   279=0|269=2|55=BTC/USD|270=95000.20|271=0.01|272=20261126|273=12:00:00.987|1003=T1|2446=1|10=…
//! 8=FIX.4.4|9=…|35=Y|34=5|49=VENUE|52=20261126-12:00:02.000|56=MDHUB|262=md-XYZ/USD|281=0|58=Unknown symbol|10=…
//! ```
//!
//! Mapping to mdhub's model:
//! - Prices and sizes (MDEntryPx(270), MDEntrySize(271)) are parsed exactly
//!   from their text, never through f64.
//! - Quote: the top of book per symbol from MDEntryType 0 (bid) and 1 (offer).
//!   W replaces a symbol's top (the best bid and lowest offer it lists); X
//!   entries with MDUpdateAction 0/1/5 set a side, 2/3/4 clear it. After each
//!   message, a symbol whose top changed and has both sides gives one Quote.
//! - Trade: MDEntryType 2 in X. The side is the aggressor's from
//!   AggressorSide(2446) or, failing that, Side(54), else
//!   [`Side::Unknown`]; the trade id is TradeID(1003), else MDEntryID(278).
//!   Trade entries of a W snapshot (the venue's last trade, repeated on every
//!   subscription) are not sent as trades.
//! - `ts_exchange`: the entry's MDEntryDate(272)+MDEntryTime(273) (a time
//!   without a date takes SendingTime's date), else SendingTime(52).
//! - Reject (Y): [`Frame::Refused`] with MDReqID(262), MDReqRejReason(281)
//!   and Text(58).
//! - Symbols: a configured [`SymbolMap`] (canonical ↔ venue); without one,
//!   `BTC/USD` ↔ `BTC-USD` and plain tickers as they are.
//! - A message is decoded whole or not at all: an entry with a bad number or
//!   an unknown symbol makes the message an error, and no book changes.
//! - Session messages (Logon, Heartbeat, …) are [`Frame::Ignored`]: the
//!   engine handles them.

use std::collections::{BTreeMap, HashMap};

use mdhub_types::{
    Decimal, Event, FeedEvent, FeedStatusKind, Quote, Side, Symbol, Timestamp, Trade, Venue,
};

use super::{DecodeError, Frame, VenueDecoder};
use protocol::*;

mod config;
pub use config::FixSection;

/// This venue in the registry ([`crate::venues::registry`]).
pub static SPEC: crate::venues::registry::VenueSpec = crate::venues::registry::VenueSpec {
    id: "fix",
    description: "A FIX 4.4 market-data session: snapshots and incremental refreshes",
    decoder: default_decoder,
    env: &[],
    configure: crate::venues::registry::configure::<FixSection>,
};

fn default_decoder() -> Box<dyn crate::venues::VenueDecoder> {
    Box::new(Decoder::default())
}

mod feed;
pub(crate) mod protocol;
mod session;

pub use feed::{FixBackoff, FixFeed, FixSettings};

/// The venue id FIX events carry.
pub const VENUE: &str = "fix";

/// Canonical ↔ venue symbols of a FIX venue.
#[derive(Debug, Clone, Default)]
pub struct SymbolMap {
    to_canonical: HashMap<String, Symbol>,
    to_venue: BTreeMap<Symbol, String>,
}

impl SymbolMap {
    /// From `(canonical, venue symbol)` pairs. An empty map falls back to
    /// `BTC/USD` ↔ `BTC-USD`.
    pub fn new(pairs: impl IntoIterator<Item = (Symbol, String)>) -> Self {
        let mut m = SymbolMap::default();
        for (canonical, venue) in pairs {
            m.to_canonical.insert(venue.clone(), canonical.clone());
            m.to_venue.insert(canonical, venue);
        }
        m
    }

    /// The canonical symbol of a venue symbol.
    pub fn canonical(&self, venue: &str) -> Result<Symbol, DecodeError> {
        if self.to_venue.is_empty() {
            return Symbol::new(&venue.replacen('/', "-", 1))
                .map_err(|_| DecodeError::UnknownSymbol(venue.to_string()));
        }
        self.to_canonical
            .get(venue)
            .cloned()
            .ok_or_else(|| DecodeError::UnknownSymbol(venue.to_string()))
    }

    /// The venue symbol of a canonical symbol.
    pub fn venue(&self, symbol: &Symbol) -> String {
        self.to_venue
            .get(symbol)
            .cloned()
            .unwrap_or_else(|| symbol.as_str().replacen('-', "/", 1))
    }

    /// The canonical symbols configured, in order.
    pub fn symbols(&self) -> Vec<Symbol> {
        self.to_venue.keys().cloned().collect()
    }
}

/// One side of the top of book: price and size.
type Level = (Decimal, Decimal);

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct Top {
    bid: Option<Level>,
    ask: Option<Level>,
}

/// The FIX market-data decoder; keeps the top of book per symbol so
/// incremental refreshes (X) become quotes.
#[derive(Debug)]
pub struct Decoder {
    venue: Venue,
    symbols: SymbolMap,
    tops: HashMap<Symbol, Top>,
}

impl Default for Decoder {
    fn default() -> Self {
        Decoder::new(SymbolMap::default())
    }
}

/// One MDEntry, checked and mapped, not yet applied.
struct Entry<'a> {
    action: u8,
    kind: u8,
    symbol: Symbol,
    px: Option<Decimal>,
    size: Option<Decimal>,
    ts: Timestamp,
    side: Side,
    trade_id: Option<&'a str>,
}

/// Raw fields of one MDEntry.
#[derive(Default)]
struct RawEntry<'a> {
    action: Option<&'a str>,
    kind: Option<&'a str>,
    symbol: Option<&'a str>,
    px: Option<&'a str>,
    size: Option<&'a str>,
    date: Option<&'a str>,
    time: Option<&'a str>,
    entry_id: Option<&'a str>,
    trade_id: Option<&'a str>,
    side: Option<&'a str>,
    aggressor: Option<&'a str>,
}

/// A FIX `float` (Price, Qty): digits with an optional point and sign, no
/// exponent (FIX 4.4 Vol. 1 "Data types").
fn number(field: &'static str, v: Option<&str>) -> Result<Option<Decimal>, DecodeError> {
    v.map(|t| {
        let digits = t.strip_prefix('-').unwrap_or(t);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
            return Err(DecodeError::BadNumber {
                field,
                reason: format!("not a FIX float: {t:?}"),
            });
        }
        Decimal::parse(t).map_err(|e| DecodeError::BadNumber {
            field,
            reason: e.to_string(),
        })
    })
    .transpose()
}

fn side(v: Option<&str>) -> Option<Side> {
    match v {
        Some("1") => Some(Side::Buy),
        Some("2") => Some(Side::Sell),
        _ => None,
    }
}

/// MDReqRejReason(281) in words.
fn rej_reason(code: &str) -> &'static str {
    match code {
        "0" => "unknown symbol",
        "1" => "duplicate MDReqID",
        "2" => "insufficient bandwidth",
        "3" => "insufficient permissions",
        "4" => "unsupported SubscriptionRequestType",
        "5" => "unsupported MarketDepth",
        "6" => "unsupported MDUpdateType",
        "7" => "unsupported AggregatedBook",
        "8" => "unsupported MDEntryType",
        "9" => "unsupported TradingSessionID",
        "A" => "unsupported Scope",
        "B" => "unsupported OpenCloseSettlFlag",
        "C" => "unsupported MDImplicitDelete",
        _ => "other",
    }
}

/// Session-layer message types, by MsgType(35).
fn session_message(msg_type: &str) -> Option<&'static str> {
    Some(match msg_type {
        "0" => "Heartbeat",
        "1" => "TestRequest",
        "2" => "ResendRequest",
        "3" => "Reject",
        "4" => "SequenceReset",
        "5" => "Logout",
        "A" => "Logon",
        "j" => "BusinessMessageReject",
        _ => return None,
    })
}

impl Decoder {
    /// A decoder mapping venue symbols through `symbols`.
    pub fn new(symbols: SymbolMap) -> Self {
        Decoder {
            venue: Venue::new(VENUE).unwrap_or_else(|_| unreachable!("valid venue id")),
            symbols,
            tops: HashMap::new(),
        }
    }

    /// The entries of a W or X message, checked, before any state changes.
    fn entries<'a>(
        &self,
        fields: &Fields<'a>,
        incremental: bool,
    ) -> Result<Vec<Entry<'a>>, DecodeError> {
        let sending_time = header_field(fields, SENDING_TIME)
            .map(|t| utc_timestamp("SendingTime(52)", t))
            .transpose()?;
        let body_symbol = header_field(fields, SYMBOL);
        let start = fields
            .iter()
            .position(|(t, _)| *t == NO_MD_ENTRIES)
            .ok_or(DecodeError::Missing("NoMDEntries(268)"))?;
        let count: usize = fields[start]
            .1
            .parse()
            .map_err(|_| DecodeError::Malformed(format!("NoMDEntries(268)={}", fields[start].1)))?;
        // The count is the venue's word, not a size to trust: a group can't
        // hold more entries than the fields that follow it (found by the
        // fuzzer: 268=66666663 asked for gigabytes).
        let mut raw: Vec<RawEntry<'a>> = Vec::with_capacity(count.min(fields.len() - start));
        for &(tag, v) in &fields[start + 1..] {
            // A new entry starts at the group's first field: MDUpdateAction
            // in X (or MDEntryType when a venue leaves the action out), and
            // MDEntryType in W.
            let starts = match tag {
                MD_UPDATE_ACTION => incremental,
                MD_ENTRY_TYPE => !incremental || raw.last().is_none_or(|e| e.kind.is_some()),
                _ => false,
            };
            if starts {
                raw.push(RawEntry::default());
            }
            let Some(e) = raw.last_mut() else {
                continue; // fields between 268 and the first entry: none are defined
            };
            let slot = match tag {
                MD_UPDATE_ACTION => &mut e.action,
                MD_ENTRY_TYPE => &mut e.kind,
                SYMBOL => &mut e.symbol,
                MD_ENTRY_PX => &mut e.px,
                MD_ENTRY_SIZE => &mut e.size,
                MD_ENTRY_DATE => &mut e.date,
                MD_ENTRY_TIME => &mut e.time,
                MD_ENTRY_ID => &mut e.entry_id,
                TRADE_ID => &mut e.trade_id,
                SIDE => &mut e.side,
                AGGRESSOR_SIDE => &mut e.aggressor,
                _ => continue,
            };
            *slot = Some(v);
        }
        if raw.len() != count {
            return Err(DecodeError::Malformed(format!(
                "NoMDEntries(268)={count} but {} entries",
                raw.len()
            )));
        }
        let mut out = Vec::with_capacity(raw.len());
        let mut prev_symbol = body_symbol;
        for e in raw {
            // In X an entry without Symbol(55) is for the previous entry's.
            let name = e
                .symbol
                .or(prev_symbol)
                .ok_or(DecodeError::Missing("Symbol(55)"))?;
            prev_symbol = Some(name);
            let ts = match (e.date, e.time) {
                (Some(d), Some(t)) => date_time("MDEntryDate(272)/MDEntryTime(273)", d, t)?,
                (None, Some(t)) => {
                    let day = sending_time.ok_or(DecodeError::Missing("SendingTime(52)"))?;
                    date_time("MDEntryTime(273)", &day.date_string().replace('-', ""), t)?
                }
                _ => sending_time.ok_or(DecodeError::Missing("SendingTime(52)"))?,
            };
            let kind = e
                .kind
                .and_then(|k| k.bytes().next())
                .ok_or(DecodeError::Missing("MDEntryType(269)"))?;
            let action = match e.action {
                Some(a) => a
                    .bytes()
                    .next()
                    .ok_or(DecodeError::Missing("MDUpdateAction(279)"))?,
                None => b'0',
            };
            out.push(Entry {
                action,
                kind,
                symbol: self.symbols.canonical(name)?,
                px: number("MDEntryPx(270)", e.px)?,
                size: number("MDEntrySize(271)", e.size)?,
                ts,
                side: side(e.aggressor).or(side(e.side)).unwrap_or(Side::Unknown),
                trade_id: e.trade_id.or(e.entry_id),
            });
        }
        // Entries that set a price need one (checked before any change).
        for e in &out {
            let sets =
                matches!(e.kind, b'0' | b'1' | b'2') && matches!(e.action, b'0' | b'1' | b'5');
            if sets && e.px.is_none() {
                return Err(DecodeError::Missing("MDEntryPx(270)"));
            }
            if sets && e.size.is_none() {
                return Err(DecodeError::Missing("MDEntrySize(271)"));
            }
        }
        Ok(out)
    }

    fn market_data(
        &mut self,
        fields: &Fields<'_>,
        incremental: bool,
        ts_received: Timestamp,
        out: &mut Vec<Event>,
    ) -> Result<Frame, DecodeError> {
        let entries = self.entries(fields, incremental)?;
        // Symbols whose top was touched, in order, with the newest entry time.
        let mut touched: Vec<(Symbol, Top, Timestamp)> = Vec::new();
        for e in entries {
            let i = match touched.iter().position(|t| t.0 == e.symbol) {
                Some(i) => i,
                None => {
                    let known = self.tops.get(&e.symbol).cloned();
                    // W replaces the book: start from empty. A W for a book
                    // already known (after a reconnect or a gap) rebuilds it.
                    if !incremental && known.is_some() {
                        out.push(Event::Status(FeedEvent {
                            venue: self.venue.clone(),
                            symbol: e.symbol.clone(),
                            ts_exchange: e.ts,
                            ts_received,
                            status: FeedStatusKind::Resync,
                            detail: Some("book rebuilt from a full refresh (W)".into()),
                        }));
                    }
                    if !incremental {
                        self.tops.insert(e.symbol.clone(), Top::default());
                    }
                    touched.push((e.symbol.clone(), known.unwrap_or_default(), e.ts));
                    touched.len() - 1
                }
            };
            let level = e.px.zip(e.size);
            match (e.kind, incremental) {
                (b'0' | b'1', _) => {
                    let top = self.tops.entry(e.symbol).or_default();
                    let slot = if e.kind == b'0' {
                        &mut top.bid
                    } else {
                        &mut top.ask
                    };
                    match e.action {
                        b'0' | b'1' | b'5' => {
                            // In a snapshot with depth, keep the best level.
                            let better = |old: &Level, new: &Level| {
                                if e.kind == b'0' {
                                    new.0 > old.0
                                } else {
                                    new.0 < old.0
                                }
                            };
                            if incremental
                                || slot.is_none_or(|old| level.is_some_and(|l| better(&old, &l)))
                            {
                                *slot = level;
                            }
                        }
                        _ => *slot = None,
                    }
                    touched[i].2 = touched[i].2.max(e.ts);
                }
                (b'2', true) if e.action == b'0' => {
                    let (Some(price), Some(size)) = (e.px, e.size) else {
                        continue;
                    };
                    out.push(Event::Trade(Trade {
                        venue: self.venue.clone(),
                        symbol: e.symbol,
                        ts_exchange: e.ts,
                        ts_received,
                        price,
                        size,
                        side: e.side,
                        trade_id: e.trade_id.map(str::to_string),
                    }));
                }
                _ => {} // snapshot trades, other entry types
            }
        }
        for (symbol, before, ts) in touched {
            let Some(now) = self.tops.get(&symbol) else {
                continue;
            };
            if *now == before {
                continue;
            }
            if let (Some(bid), Some(ask)) = (now.bid, now.ask) {
                out.push(Event::Quote(Quote {
                    venue: self.venue.clone(),
                    symbol,
                    ts_exchange: ts,
                    ts_received,
                    bid_price: bid.0,
                    bid_size: bid.1,
                    ask_price: ask.0,
                    ask_size: ask.1,
                }));
            }
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
        let fields = split(frame)?;
        let msg_type =
            header_field(&fields, MSG_TYPE).ok_or(DecodeError::Missing("MsgType(35)"))?;
        match msg_type {
            "W" => self.market_data(&fields, false, ts_received, out),
            "X" => self.market_data(&fields, true, ts_received, out),
            "Y" => {
                let req = header_field(&fields, MD_REQ_ID).unwrap_or("?");
                let code = header_field(&fields, MD_REQ_REJ_REASON).unwrap_or("-");
                let text = header_field(&fields, TEXT).unwrap_or("");
                let why = format!(
                    "MarketDataRequest {req} rejected: {} ({code}){}{text}",
                    rej_reason(code),
                    if text.is_empty() { "" } else { ": " }
                );
                // mdhub's requests are `mdhub-<venue symbol>`: the symbol
                // gets no data from here, which is feed status too.
                if let Some(symbol) = req
                    .strip_prefix("mdhub-")
                    .and_then(|v| self.symbols.canonical(v).ok())
                {
                    let ts = header_field(&fields, SENDING_TIME)
                        .and_then(|t| utc_timestamp("SendingTime(52)", t).ok())
                        .unwrap_or(ts_received);
                    out.push(Event::Status(FeedEvent {
                        venue: self.venue.clone(),
                        symbol,
                        ts_exchange: ts,
                        ts_received,
                        status: FeedStatusKind::Disconnected,
                        detail: Some(why.clone()),
                    }));
                }
                Ok(Frame::Refused(why))
            }
            other => Ok(Frame::Ignored(match session_message(other) {
                Some(name) => name.to_string(),
                None => format!("MsgType {other}"),
            })),
        }
    }
}

#[cfg(test)]
mod tests;
