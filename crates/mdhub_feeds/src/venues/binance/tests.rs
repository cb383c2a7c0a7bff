//! The documented payloads in `fixtures/` and edge cases, decoded.

use mdhub_types::{Decimal, Event, Side, Symbol, Timestamp};

use super::{Decoder, Parser, SymbolMap};
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

/// Every fixture line, the edge cases, garbage, and frames the other paths
/// take (keys in another order, `null`s, escapes, duplicates) through both
/// parsers: the same outcome and the same events, error kind and all.
#[test]
fn both_parsers_decode_every_frame_alike() {
    let mut frames: Vec<String> = [
        "agg_trade.json",
        "book_ticker.json",
        "combined_book_ticker.json",
        "combined_trade.json",
        "edge_cases.jsonl",
        "error.json",
        "subscribe_ack.json",
        "trade.json",
    ]
    .iter()
    .flat_map(|name| {
        fixture(name)
            .lines()
            .map(str::to_string)
            .collect::<Vec<_>>()
    })
    .collect();
    frames.extend(
        [
            // `data` before `stream`: the two-pass path.
            r#"{"data":{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"1.5","q":"2","T":2,"m":false},"stream":"btcusdt@trade"}"#,
            r#"  {"stream":"btcusdt@trade","data":{"e":"trade","E":1,"s":"BTCUSDT","t":7,"p":"1.5","q":"2","T":2}}"#,
            r#"{"stream":"btcusdt@trade"}"#,
            r#"{"stream":"btcusdt@trade","data":null}"#,
            r#"{"data":{"e":"trade"}}"#,
            r#"{"stream":"x","data":{"u":1,"s":"BTCUSDT","b":"1","B":"2","a":"3","A":"4","E":5}}"#,
            r#"{"e":"bookTicker","u":1,"s":"BTCUSDT","b":"1","B":"2","a":"3","A":"4","T":6}"#,
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":null,"q":"1","T":1}"#,
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1\u002e5","q":"1","T":1}"#,
            r#"{"e":"trade","E":1,"s":"BTC\u0055SDT","t":1,"p":"1","q":"1","T":1}"#,
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","p":"2","q":"1","T":1}"#,
            r#"{"e":"trade","E":1.5,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1}"#,
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":-1,"p":"1","q":"1","T":1}"#,
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":18446744073709551616,"p":"1","q":"1","T":1}"#,
            r#"{"e":"trade","E":1,"s":"BTCUSDT","p":1e400,"q":"1","T":1}"#,
            r#"{"e":"trade","s":"BTCUSDT","p":"1","q":"1"}"#,
            r#"{"e":"trade","E":1,"s":"BTCUSDT","p":"-0.5","q":"1","T":1,"m":"yes"}"#,
            r#"{"result":null,"id":"abc"}"#,
            r#"{"id":3}"#,
            r#"{"code":-1121,"msg":"Invalid symbol \"X\"."}"#,
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1} trailing"#,
            r#"{"e":"trade","E":1,"s":"BTCUSDT","t":1,"p":"1","q":"1","T":1,}"#,
            "{\"e\":\"trade\",\"s\":\"BTCUSDT\",\"p\":\"1\"",
            "",
            "[]",
            "null",
            "{}",
        ]
        .map(str::to_string),
    );
    // Trade frames in the exact layout the scanner reads, with awkward values.
    let trade = |sym: &str, t: &str, p: &str, q: &str, m: &str| {
        format!(
            r#"{{"stream":"x@trade","data":{{"e":"trade","E":1732615200123,"s":"{sym}","t":{t},"p":"{p}","q":"{q}","T":1732615200122,"m":{m},"M":true}}}}"#
        )
    };
    for (sym, t, p, q, m) in [
        (
            "BTCUSDT",
            "1",
            "91234.567890123456789",
            "0.00000001",
            "true",
        ),
        ("ETHBTC", "999999999999999999", "1e-8", "1", "false"),
        ("NOPE", "1", "1", "1", "true"),
        ("BTCUSDT", "1", "-0.5", "", "false"),
        ("BTCUSDT", "1", "1.2.3", "1", "true"),
        (
            "BTCUSDT",
            "1",
            "123456789012345678901234567890123456789",
            "1",
            "true",
        ),
    ] {
        let f = trade(sym, t, p, q, m);
        frames.push(f.clone());
        frames.push(f[f.find("{\"e\"").unwrap()..f.len() - 1].to_string());
    }
    for frame in &frames {
        let mut serde = Decoder::with_parser(Parser::SerdeJson);
        let (a, a_out) = crate::venues::test_support::decode(&mut serde, frame);
        for other in [Parser::SonicRs, Parser::Scan] {
            let mut d = Decoder::with_parser(other);
            let (b, b_out) = crate::venues::test_support::decode(&mut d, frame);
            assert_eq!(a_out, b_out, "{other:?}: {frame}");
            match (&a, &b) {
                // The parsers word syntax errors differently; the kind is the contract.
                (Err(DecodeError::Malformed(_)), Err(DecodeError::Malformed(_))) => {}
                _ => assert_eq!(a, b, "{other:?}: {frame}"),
            }
        }
    }
    // Not UTF-8: refused before any parser runs.
    for parser in [Parser::SerdeJson, Parser::SonicRs, Parser::Scan] {
        let r = Decoder::with_parser(parser).decode(b"{\"s\":\"\xff\"}", RECEIVED, &mut Vec::new());
        assert!(matches!(r, Err(DecodeError::Malformed(_))), "{r:?}");
    }
}
