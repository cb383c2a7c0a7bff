//! FIX messages in `fixtures/` (SOH-separated, as on the wire) and edge
//! cases (`|`-separated, as in logs).

use std::collections::BTreeMap;

use mdhub_types::{Decimal, Event, Side, Symbol, Timestamp};

use super::{Decoder, SymbolMap};
use crate::venues::test_support::{RECEIVED, decode};
use crate::venues::{DecodeError, Frame};

fn fixture(name: &str) -> String {
    crate::venues::test_support::fixture("fix", name)
}

fn ts(rfc: &str) -> Timestamp {
    Timestamp::parse_rfc3339(rfc).unwrap()
}

fn dec(s: &str) -> Decimal {
    Decimal::parse(s).unwrap()
}

#[test]
fn snapshot_sets_the_top_of_book() {
    let mut d = Decoder::default();
    let (r, out) = decode(&mut d, &fixture("snapshot.fix"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Quote(q)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(q.venue.as_str(), "fix");
    assert_eq!(q.symbol.as_str(), "BTC-USD");
    assert_eq!(q.bid_price.to_string(), "95000.10", "the venue's text");
    assert_eq!(q.bid_size.to_string(), "1.5");
    assert_eq!(q.ask_price.to_string(), "95000.20");
    assert_eq!(q.ask_size.to_string(), "0.25");
    assert_eq!(
        q.ts_exchange,
        ts("2026-11-26T11:59:59.750Z"),
        "the newest entry's 272+273"
    );
    assert_eq!(q.ts_received, RECEIVED);
    // The snapshot's trade entry is the venue's last trade, not a new one.
    assert!(out.iter().all(|e| matches!(e, Event::Quote(_))));
}

#[test]
fn incremental_updates_the_bid_and_carries_a_trade() {
    let mut d = Decoder::default();
    assert_eq!(decode(&mut d, &fixture("snapshot.fix")).0, Ok(Frame::Data));
    let (r, out) = decode(&mut d, &fixture("incremental.fix"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Trade(t), Event::Quote(q)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(t.symbol.as_str(), "BTC-USD");
    assert_eq!(t.price, dec("95000.20"));
    assert_eq!(t.size.to_string(), "0.01");
    assert_eq!(t.side, Side::Buy, "AggressorSide(2446)=1");
    assert_eq!(t.trade_id.as_deref(), Some("T1"), "TradeID(1003)");
    assert_eq!(
        t.ts_exchange,
        ts("2026-11-26T12:00:00.987654321Z"),
        "nanoseconds kept"
    );
    assert_eq!(q.bid_price.to_string(), "95000.15");
    assert_eq!(q.bid_size.to_string(), "2");
    assert_eq!(q.ask_price.to_string(), "95000.20", "the ask is kept");
    assert_eq!(
        q.ts_exchange,
        ts("2026-11-26T12:00:01Z"),
        "no entry time: SendingTime(52)"
    );
}

#[test]
fn several_entries_and_symbols_in_one_message() {
    let mut d = Decoder::default();
    assert_eq!(decode(&mut d, &fixture("snapshot.fix")).0, Ok(Frame::Data));
    let (r, out) = decode(&mut d, &fixture("incremental_multi.fix"));
    assert_eq!(r, Ok(Frame::Data));
    assert_eq!(out.len(), 3, "{out:?}");
    let Event::Trade(t) = &out[0] else { panic!() };
    assert_eq!(
        t.symbol.as_str(),
        "BTC-USD",
        "Symbol(55) of the entry before"
    );
    assert_eq!(t.side, Side::Sell, "Side(54)=2");
    assert_eq!(t.trade_id.as_deref(), Some("E77"), "MDEntryID(278)");
    let Event::Quote(btc) = &out[1] else { panic!() };
    assert_eq!(btc.ask_price.to_string(), "95000.30");
    assert_eq!(btc.bid_price.to_string(), "95000.10");
    let Event::Quote(eth) = &out[2] else { panic!() };
    assert_eq!(eth.symbol.as_str(), "ETH-USD");
    assert_eq!(eth.bid_price.to_string(), "3500.1");
    assert_eq!(eth.ask_size.to_string(), "12");
    // The same top again changes nothing, so no quote.
    let (_, again) = decode(&mut d, &fixture("incremental_multi.fix"));
    assert!(
        again.iter().all(|e| matches!(e, Event::Trade(_))),
        "{again:?}"
    );
}

#[test]
fn one_side_only_gives_no_quote_until_both_are_known() {
    let mut d = Decoder::default();
    let bid = "8=FIX.4.4|9=1|35=X|34=2|52=20261126-12:00:00.000|268=1|279=0|269=0|55=BTC/USD|270=1.1|271=3|10=000|";
    let (r, out) = decode(&mut d, bid);
    assert_eq!(r, Ok(Frame::Data));
    assert!(out.is_empty());
    let ask = bid
        .replace("269=0|", "269=1|")
        .replace("270=1.1", "270=1.2");
    let (_, out) = decode(&mut d, &ask);
    assert_eq!(out.len(), 1);
    // Deleting the bid leaves a one-sided book: nothing to send.
    let del =
        "8=FIX.4.4|9=1|35=X|34=3|52=20261126-12:00:00.000|268=1|279=2|269=0|55=BTC/USD|10=000|";
    let (r, out) = decode(&mut d, del);
    assert_eq!(r, Ok(Frame::Data));
    assert!(out.is_empty());
}

#[test]
fn more_digits_than_f64_holds_are_exact() {
    let (r, out) = decode(&mut Decoder::default(), &fixture("long_decimals.fix"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Trade(t)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(t.price.to_string(), "95000.123456789012345678");
    assert_eq!(
        t.size.to_string(),
        "12345678901234567890.123456789012345678"
    );
    assert_eq!(t.side, Side::Unknown, "no aggressor given");
    assert_eq!(t.trade_id, None);
    assert_eq!(
        t.ts_exchange,
        ts("2026-11-26T12:00:03.5Z"),
        "MDEntryTime(273) on SendingTime's date"
    );
}

#[test]
fn a_reject_names_the_request_and_the_reason() {
    let (r, out) = decode(&mut Decoder::default(), &fixture("reject.fix"));
    assert_eq!(
        r,
        Ok(Frame::Refused(
            "MarketDataRequest mdhub-XYZ/USD rejected: unknown symbol (0): Unknown symbol: XYZ/USD"
                .into()
        ))
    );
    // The rejected symbol's feed status says it gets nothing.
    assert!(
        matches!(&out[..], [Event::Status(s)] if s.symbol.as_str() == "XYZ-USD"
            && s.status == mdhub_types::FeedStatusKind::Disconnected
            && s.detail.as_deref().is_some_and(|d| d.contains("unknown symbol"))),
        "{out:?}"
    );
}

#[test]
fn session_messages_are_ignored() {
    let mut d = Decoder::default();
    assert_eq!(
        decode(&mut d, &fixture("heartbeat.fix")).0,
        Ok(Frame::Ignored("Heartbeat".into()))
    );
    assert_eq!(
        decode(&mut d, &fixture("logon.fix")).0,
        Ok(Frame::Ignored("Logon".into()))
    );
}

#[test]
fn pipes_and_soh_decode_the_same() {
    let soh = fixture("incremental.fix");
    let pipes = soh.replace('\u{1}', "|");
    let (mut a, mut b) = (Decoder::default(), Decoder::default());
    let (ra, ea) = decode(&mut a, &soh);
    let (rb, eb) = decode(&mut b, &pipes);
    assert_eq!(ra, rb);
    assert_eq!(ea, eb);
    assert_eq!(ea.len(), 1, "a trade; the bid alone makes no quote");
}

#[test]
fn unknown_symbols_are_errors_and_change_nothing() {
    let map = SymbolMap::new([(Symbol::new("BTC-USD").unwrap(), "XBT/USD".to_string())]);
    let mut d = Decoder::new(map.clone());
    assert_eq!(map.venue(&Symbol::new("BTC-USD").unwrap()), "XBT/USD");
    assert_eq!(map.canonical("XBT/USD").unwrap().as_str(), "BTC-USD");
    let (r, out) = decode(&mut d, &fixture("snapshot.fix"));
    assert_eq!(r, Err(DecodeError::UnknownSymbol("BTC/USD".into())));
    assert!(out.is_empty());
    let (r, out) = decode(
        &mut d,
        &fixture("snapshot.fix").replace("BTC/USD", "XBT/USD"),
    );
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Quote(q)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(q.symbol.as_str(), "BTC-USD");
    // A message with one unknown symbol among known ones is dropped whole.
    let mixed = fixture("incremental_multi.fix").replace("BTC/USD", "XBT/USD");
    let (r, out) = decode(&mut d, &mixed);
    assert_eq!(r, Err(DecodeError::UnknownSymbol("ETH/USD".into())));
    assert!(out.is_empty());
    // Default mapping: venue symbols that cannot be canonical.
    assert!(SymbolMap::default().canonical("btc usd").is_err());
    assert_eq!(
        SymbolMap::new(BTreeMap::new())
            .canonical("AAPL")
            .unwrap()
            .as_str(),
        "AAPL"
    );
}

#[test]
fn bad_messages_are_errors_never_panics() {
    let mut d = Decoder::default();
    let text = fixture("edge_cases.txt");
    let mut n = 0;
    for line in text.lines() {
        let (r, out) = decode(&mut d, line);
        assert!(r.is_err(), "{line}: {r:?}");
        assert!(out.is_empty(), "{line}");
        n += 1;
    }
    assert_eq!(n, 10);
    // Truncations of a good message never panic.
    let good = fixture("incremental.fix");
    for i in 0..good.len() {
        if good.is_char_boundary(i) {
            let _ = decode(&mut Decoder::default(), &good[..i]);
        }
    }
}

/// Found by the fuzzer (fuzz/corpus/fix/regression-oom-268-count): a group
/// count of 66,666,663 used to reserve gigabytes before the entries were
/// counted. Now it is an error about the count, with no allocation to speak of.
#[test]
fn a_huge_group_count_is_an_error_not_an_allocation() {
    let msg = "8=FIX.4.4|9=231|35=W|49=VE3hub-BTC/USD|55=BTC/USD|268=66666663|269=0|270=950=1|270=9500600|";
    let (r, out) = decode(&mut Decoder::default(), msg);
    assert!(r.is_err(), "{r:?}");
    assert!(out.is_empty());
}
