//! The documented payloads in `fixtures/`, exact JSON numbers, and trade ids.

use mdhub_types::{Decimal, Event, FeedStatusKind, Side, Symbol, Timestamp};

use super::{Decoder, canonical, native};
use crate::venues::Frame;

use crate::venues::test_support::{RECEIVED, decode};

fn fixture(name: &str) -> String {
    crate::venues::test_support::fixture("kraken", name)
}

#[test]
fn documented_trade_with_json_numbers_parsed_exactly() {
    let (r, out) = decode(&mut Decoder::default(), &fixture("trade.json"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Trade(t)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(t.venue.as_str(), "kraken");
    assert_eq!(t.symbol.as_str(), "MATIC-USD");
    assert_eq!(t.price.to_string(), "0.5117");
    assert_eq!(t.size.to_string(), "40.0", "the venue's text, not an f64's");
    assert_eq!(t.side, Side::Buy, "Kraken's side is the taker's");
    assert_eq!(t.trade_id.as_deref(), Some("4665906"));
    assert_eq!(
        t.ts_exchange,
        Timestamp::parse_rfc3339("2023-09-25T07:49:37.708706Z").unwrap()
    );
}

#[test]
fn snapshots_carry_several_trades_and_exponents() {
    let (r, out) = decode(&mut Decoder::default(), &fixture("trade_snapshot.json"));
    assert_eq!(r, Ok(Frame::Data));
    assert_eq!(out.len(), 2);
    let Event::Trade(t) = &out[1] else { panic!() };
    assert_eq!(t.size, Decimal::parse("0.0015").unwrap());
    assert_eq!(t.size.to_string(), "0.0015");
}

#[test]
fn documented_ticker() {
    let (r, out) = decode(&mut Decoder::default(), &fixture("ticker.json"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Quote(q)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(q.symbol.as_str(), "ALGO-USD");
    assert_eq!(q.bid_price.to_string(), "0.10025");
    assert_eq!(q.ask_size.to_string(), "1361.44813783");
    assert_eq!(q.ts_exchange, RECEIVED, "the ticker carries no time");
}

#[test]
fn replies_heartbeats_and_status() {
    let mut d = Decoder::default();
    assert_eq!(
        decode(&mut d, &fixture("subscribe_ack.json")).0,
        Ok(Frame::Ack("subscribe".into()))
    );
    assert_eq!(
        decode(&mut d, &fixture("subscribe_error.json")).0,
        Ok(Frame::Refused(
            "subscribe: Currency pair not supported XYZ/USD".into()
        ))
    );
    assert_eq!(
        decode(&mut d, &fixture("heartbeat.json")).0,
        Ok(Frame::Ignored("heartbeat message".into()))
    );
    assert_eq!(
        decode(&mut d, &fixture("status.json")).0,
        Ok(Frame::Ignored("status message".into()))
    );
}

#[test]
fn repeated_trades_are_sent_once_and_skips_are_gaps() {
    let mut d = Decoder::default();
    let snap = fixture("trade_snapshot.json");
    assert_eq!(decode(&mut d, &snap).1.len(), 2);
    // The snapshot a reconnect brings repeats trades already sent.
    let (r, out) = decode(&mut d, &snap);
    assert_eq!(r, Ok(Frame::Ignored("trades already sent".into())));
    assert!(out.is_empty());
    let next = snap
        .replace("81234567", "81234571")
        .replace("81234568", "81234572");
    let (r, out) = decode(&mut d, &next);
    assert_eq!(
        r,
        Ok(Frame::Gap(
            "BTC/USD: trades 81234569..=81234570 missed (2 trades)".into()
        ))
    );
    assert_eq!(out.len(), 3, "a gap event before the trade that showed it");
    assert!(
        matches!(&out[0], Event::Status(g) if g.status == FeedStatusKind::Gap
            && g.symbol.as_str() == "BTC-USD"
            && g.detail.as_deref() == Some("trades 81234569..=81234570 missed (2 trades)")),
        "{out:?}"
    );
}

#[test]
fn symbols_map_both_ways_and_bad_frames_are_errors() {
    assert_eq!(canonical("BTC/USD").unwrap().as_str(), "BTC-USD");
    assert_eq!(native(&Symbol::new("ETH-EUR").unwrap()), "ETH/EUR");
    assert!(canonical("BTCUSD").is_err());
    let mut d = Decoder::default();
    for frame in [
        "{",
        "{}",
        r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":"x","qty":1,"trade_id":1,"timestamp":"2023-09-25T07:49:37Z"}]}"#,
        r#"{"channel":"trade","type":"update","data":[{"symbol":"BTC/USD","side":"buy","price":1,"qty":1,"timestamp":"2023-09-25T07:49:37Z"}]}"#,
        r#"{"channel":"ticker","type":"update","data":[{"symbol":"BTC/USD","bid":1}]}"#,
    ] {
        let (r, out) = decode(&mut d, frame);
        assert!(r.is_err(), "{frame}: {r:?}");
        assert!(out.is_empty() || frame.contains("ticker"));
    }
}
