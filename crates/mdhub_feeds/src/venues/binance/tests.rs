//! The documented payloads in `fixtures/` and edge cases, decoded.

use mdhub_types::{Decimal, Event, Side, Symbol, Timestamp};

use super::{Decoder, SymbolMap};
use crate::venues::{DecodeError, Frame, VenueDecoder};

use crate::venues::test_support::RECEIVED;

fn fixture(name: &str) -> String {
    crate::venues::test_support::fixture("binance", name)
}

fn decode(frame: &str) -> (Result<Frame, DecodeError>, Vec<Event>) {
    crate::venues::test_support::decode(&mut Decoder::default(), frame)
}

fn dec(s: &str) -> Decimal {
    Decimal::parse(s).unwrap()
}

#[test]
fn documented_trade() {
    let (r, out) = decode(&fixture("trade.json"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Trade(t)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(t.venue.as_str(), "binance");
    assert_eq!(t.symbol.as_str(), "BNB-BTC");
    assert_eq!(t.price, dec("0.001"));
    assert_eq!(t.price.to_string(), "0.001", "the venue's text is kept");
    assert_eq!(t.size.to_string(), "100");
    // "m": true — the buyer was the maker, so the seller was the aggressor.
    assert_eq!(t.side, Side::Sell);
    assert_eq!(t.trade_id.as_deref(), Some("12345"));
    assert_eq!(t.ts_exchange, Timestamp::from_millis(1_672_515_782_136));
    assert_eq!(t.ts_received, RECEIVED);
}

#[test]
fn documented_book_ticker() {
    let (r, out) = decode(&fixture("book_ticker.json"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Quote(q)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(q.symbol.as_str(), "BNB-USDT");
    assert_eq!(q.bid_price.to_string(), "25.35190000");
    assert_eq!(q.bid_size.to_string(), "31.21000000");
    assert_eq!(q.ask_price.to_string(), "25.36520000");
    assert_eq!(q.ask_size.to_string(), "40.66000000");
    assert_eq!(q.ts_exchange, RECEIVED, "spot book tickers carry no time");
}

#[test]
fn combined_stream_wrappers() {
    let (r, out) = decode(&fixture("combined_trade.json"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Trade(t)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(t.symbol.as_str(), "BTC-USDT");
    assert_eq!(t.price.to_string(), "91234.56000000");
    assert_eq!(t.side, Side::Buy, "m=false: the buyer took liquidity");
    assert_eq!(t.ts_exchange, Timestamp::from_millis(1_732_615_200_122));

    let (r, out) = decode(&fixture("combined_book_ticker.json"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Quote(q)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(q.symbol.as_str(), "ETH-USDT");
    assert_eq!(q.ask_size.to_string(), "0.00310000");
}

#[test]
fn replies_and_other_streams() {
    assert_eq!(
        decode(&fixture("subscribe_ack.json")),
        (Ok(Frame::Ack("1".into())), vec![])
    );
    let (r, out) = decode(&fixture("error.json"));
    assert!(
        matches!(r, Ok(Frame::Refused(ref m)) if m.starts_with("code 2: Invalid request")),
        "{r:?}"
    );
    assert!(out.is_empty());
    assert_eq!(
        decode(&fixture("agg_trade.json")),
        (Ok(Frame::Ignored("aggTrade event".into())), vec![])
    );
}

#[test]
fn edge_cases_are_errors_or_exact_values_never_panics() {
    let lines: Vec<String> = fixture("edge_cases.jsonl")
        .lines()
        .map(str::to_string)
        .collect();
    let results: Vec<_> = lines.iter().map(|l| decode(l)).collect();
    // More digits than mdhub's 18-digit scale: refused, with the field.
    assert!(
        matches!(
            &results[0].0,
            Err(DecodeError::BadNumber { field: "p", .. })
        ),
        "{:?}",
        results[0]
    );
    // A JSON number with an exponent and more digits than f64 holds: exact.
    let Event::Trade(t) = &results[1].1[0] else {
        panic!("{:?}", results[1])
    };
    assert_eq!(t.price, dec("91234.567890123456789"));
    assert_eq!(results[2].0, Err(DecodeError::Missing("p")));
    assert!(matches!(
        &results[3].0,
        Err(DecodeError::BadNumber { field: "p", .. })
    ));
    // Unknown fields are ignored.
    assert_eq!(results[4].0, Ok(Frame::Data));
    assert_eq!(results[5].0, Ok(Frame::Ignored("kline event".into())));
    assert!(matches!(&results[6].0, Err(DecodeError::Malformed(_))));
    assert!(matches!(&results[7].0, Err(DecodeError::Malformed(_))));
    assert_eq!(
        results[8].0,
        Err(DecodeError::UnknownSymbol("ZZZZZZ".into()))
    );
}

#[test]
fn garbage_never_panics() {
    let samples: &[&[u8]] = &[
        b"",
        b"{",
        b"[]",
        b"null",
        b"{\"stream\":1}",
        b"{\"e\":\"trade\",\"s\":5}",
        b"{\"e\":\"trade\",\"s\":\"BTCUSDT\",\"p\":{},\"q\":\"1\",\"T\":1}",
        b"{\"u\":1,\"s\":\"BTCUSDT\",\"b\":\"1\"}",
        b"\xff\xfe",
    ];
    for s in samples {
        let mut out = Vec::new();
        let r = Decoder::default().decode(s, RECEIVED, &mut out);
        assert!(r.is_err() || out.is_empty(), "{s:?} -> {r:?}");
    }
}

#[test]
fn microsecond_timestamps() {
    let mut d = Decoder {
        micros: true,
        ..Decoder::default()
    };
    let mut out = Vec::new();
    d.decode(
        br#"{"e":"trade","E":1732615200123456,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1732615200123455,"m":true}"#,
        RECEIVED,
        &mut out,
    )
    .unwrap();
    assert_eq!(
        out[0].ts_exchange(),
        Timestamp::from_micros(1_732_615_200_123_455)
    );
}

#[test]
fn symbols_map_both_ways() {
    let mut m = SymbolMap::default();
    for (native, canonical) in [
        ("BTCUSDT", "BTC-USDT"),
        ("ETHBTC", "ETH-BTC"),
        ("BTCFDUSD", "BTC-FDUSD"),
        ("SOLUSDC", "SOL-USDC"),
        ("DOGETRY", "DOGE-TRY"),
        ("PEPEEUR", "PEPE-EUR"),
    ] {
        let s = m.canonical(native).unwrap();
        assert_eq!(s.as_str(), canonical);
        assert_eq!(m.native(&s), native.to_ascii_lowercase());
    }
    // An explicit entry wins over the quote-asset rule.
    m.insert("WBTCBTC", Symbol::new("WBTC-BTC").unwrap());
    assert_eq!(m.canonical("WBTCBTC").unwrap().as_str(), "WBTC-BTC");
    assert_eq!(m.native(&Symbol::new("LTC-USDT").unwrap()), "ltcusdt");
    assert!(
        m.canonical("USDT").is_err(),
        "a quote asset alone is not a pair"
    );
}
