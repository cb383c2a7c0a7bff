//! The documented payloads in `fixtures/`, sides, and gap detection.

use mdhub_types::{Event, FeedStatusKind, Side, Timestamp};

use super::Decoder;
use crate::venues::Frame;

use crate::venues::test_support::decode;

fn fixture(name: &str) -> String {
    crate::venues::test_support::fixture("coinbase", name)
}

fn matched(id: u64) -> String {
    fixture("match.json").replace("\"trade_id\":10", &format!("\"trade_id\":{id}"))
}

#[test]
fn documented_match() {
    let (r, out) = decode(&mut Decoder::default(), &fixture("match.json"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Trade(t)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(t.venue.as_str(), "coinbase");
    assert_eq!(t.symbol.as_str(), "BTC-USD");
    assert_eq!(t.price.to_string(), "400.23");
    assert_eq!(t.size.to_string(), "5.23512");
    // "side":"sell" is the maker's order: the taker bought.
    assert_eq!(t.side, Side::Buy);
    assert_eq!(t.trade_id.as_deref(), Some("10"));
    assert_eq!(
        t.ts_exchange,
        Timestamp::parse_rfc3339("2014-11-07T08:19:27.028459Z").unwrap()
    );
}

#[test]
fn documented_ticker() {
    let (r, out) = decode(&mut Decoder::default(), &fixture("ticker.json"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Quote(q)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(q.symbol.as_str(), "ETH-USD");
    assert_eq!(q.bid_price.to_string(), "1285.04");
    assert_eq!(q.bid_size.to_string(), "0.46688654");
    assert_eq!(q.ask_price.to_string(), "1285.27");
    assert_eq!(q.ask_size.to_string(), "1.56637040");
}

#[test]
fn replies() {
    let mut d = Decoder::default();
    assert!(matches!(
        decode(&mut d, &fixture("subscriptions.json")).0,
        Ok(Frame::Ack(_))
    ));
    let (r, _) = decode(&mut d, &fixture("error.json"));
    assert_eq!(
        r,
        Ok(Frame::Refused(
            "Failed to subscribe: ETH-XYZ is not a valid product".into()
        ))
    );
    assert_eq!(
        decode(&mut d, r#"{"type":"l2update","product_id":"BTC-USD"}"#).0,
        Ok(Frame::Ignored("l2update message".into()))
    );
}

#[test]
fn gaps_in_trade_ids_are_reported() {
    let mut d = Decoder::default();
    // The first heartbeat sets the baseline; nothing is missed yet.
    assert_eq!(
        decode(
            &mut d,
            &fixture("heartbeat.json").replace("\"last_trade_id\":20", "\"last_trade_id\":9")
        )
        .0,
        Ok(Frame::Ignored("heartbeat".into()))
    );
    assert_eq!(decode(&mut d, &matched(10)).0, Ok(Frame::Data));
    // 11 and 12 never arrive.
    let (r, out) = decode(&mut d, &matched(13));
    assert_eq!(
        r,
        Ok(Frame::Gap(
            "BTC-USD: trades 11..=12 missed (2 trades)".into()
        ))
    );
    assert_eq!(out.len(), 2, "a gap event, then the trade that showed it");
    let Event::Status(gap) = &out[0] else {
        panic!("{out:?}")
    };
    assert_eq!(
        (gap.symbol.as_str(), gap.status),
        ("BTC-USD", FeedStatusKind::Gap)
    );
    assert_eq!(
        gap.detail.as_deref(),
        Some("trades 11..=12 missed (2 trades)")
    );
    assert_eq!(
        gap.ts_exchange,
        out[1].ts_exchange(),
        "the venue's time of the trade"
    );
    assert!(matches!(&out[1], Event::Trade(t) if t.trade_id.as_deref() == Some("13")));
    // A replayed trade is not sent twice.
    let (r, out) = decode(&mut d, &matched(12));
    assert!(matches!(r, Ok(Frame::Ignored(_))) && out.is_empty());
    // A heartbeat ahead of what arrived: trades were missed in between.
    let (r, out) = decode(&mut d, &fixture("heartbeat.json"));
    assert_eq!(
        r,
        Ok(Frame::Gap(
            "BTC-USD: trades 14..=20 missed (7 trades, seen in a heartbeat)".into()
        ))
    );
    assert!(
        matches!(&out[..], [Event::Status(g)] if g.status == FeedStatusKind::Gap),
        "{out:?}"
    );
    assert_eq!(decode(&mut d, &matched(21)).0, Ok(Frame::Data));
}

#[test]
fn bad_frames_are_errors_not_panics() {
    let mut d = Decoder::default();
    for (frame, want) in [
        ("{", "malformed"),
        ("{\"type\":\"match\"}", "missing field `product_id`"),
        (
            "{\"type\":\"match\",\"product_id\":\"BTC-USD\",\"trade_id\":1,\"time\":\"yesterday\",\"price\":\"1\",\"size\":\"1\"}",
            "field `time`",
        ),
        (
            "{\"type\":\"match\",\"product_id\":\"btc/usd\",\"trade_id\":1}",
            "unknown symbol",
        ),
        (
            "{\"type\":\"ticker\",\"product_id\":\"BTC-USD\",\"time\":\"2022-10-19T23:28:22.061769Z\",\"best_bid\":\"1\"}",
            "missing field `best_bid_size`",
        ),
    ] {
        let (r, out) = decode(&mut d, frame);
        let e = r.expect_err(frame).to_string();
        assert!(e.contains(want), "{frame}: {e}");
        assert!(out.is_empty());
    }
}
