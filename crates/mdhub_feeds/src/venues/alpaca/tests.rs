//! The documented session and data messages in `fixtures/`.

use mdhub_types::{Event, Side, Timestamp};

use super::Decoder;
use crate::venues::Frame;
use crate::venues::test_support::decode;

fn fixture(name: &str) -> String {
    crate::venues::test_support::fixture("alpaca", name)
}

#[test]
fn documented_trade_and_quote() {
    let mut d = Decoder::default();
    let (r, out) = decode(&mut d, &fixture("trade.json"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Trade(t)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(t.venue.as_str(), "alpaca");
    assert_eq!(t.symbol.as_str(), "AAPL");
    assert_eq!(t.price.to_string(), "126.55");
    assert_eq!(t.size.to_string(), "1");
    assert_eq!(
        t.side,
        Side::Unknown,
        "the consolidated tape has no aggressor"
    );
    assert_eq!(t.trade_id.as_deref(), Some("96921"));
    assert_eq!(
        t.ts_exchange,
        Timestamp::parse_rfc3339("2021-02-22T15:51:44.208Z").unwrap()
    );

    let (r, out) = decode(&mut d, &fixture("quote.json"));
    assert_eq!(r, Ok(Frame::Data));
    let [Event::Quote(q)] = out.as_slice() else {
        panic!("{out:?}")
    };
    assert_eq!(q.symbol.as_str(), "AMD");
    assert_eq!(q.bid_price.to_string(), "87.66");
    assert_eq!(q.ask_size.to_string(), "4");
    assert_eq!(
        q.ts_exchange,
        Timestamp::parse_rfc3339("2021-02-22T15:51:45.335689322Z").unwrap(),
        "nanoseconds kept"
    );
}

#[test]
fn a_frame_with_several_messages() {
    let (r, out) = decode(&mut Decoder::default(), &fixture("batch.json"));
    assert_eq!(r, Ok(Frame::Data));
    assert_eq!(out.len(), 2, "trade and quote; the bar is ignored");
    let Event::Trade(t) = &out[0] else { panic!() };
    assert_eq!(
        t.price.to_string(),
        "412.3300",
        "trailing zeros of the JSON number kept"
    );
}

#[test]
fn session_messages() {
    let mut d = Decoder::default();
    assert_eq!(
        decode(&mut d, &fixture("connected.json")).0,
        Ok(Frame::Ack("connected".into()))
    );
    assert_eq!(
        decode(&mut d, &fixture("authenticated.json")).0,
        Ok(Frame::Ack("authenticated".into()))
    );
    assert_eq!(
        decode(&mut d, &fixture("subscription.json")).0,
        Ok(Frame::Ack("subscription".into()))
    );
    assert_eq!(
        decode(&mut d, &fixture("auth_failed.json")).0,
        Ok(Frame::Refused("code 402: auth failed".into()))
    );
}

#[test]
fn bad_frames_are_errors() {
    let mut d = Decoder::default();
    for frame in [
        "{",
        r#"{"T":"t"}"#,
        r#"[{"T":"t","S":"AAPL","p":1,"t":"2021-02-22T15:51:44.208Z"}]"#,
        r#"[{"T":"q","S":"AAPL","bp":"x","bs":1,"ap":1,"as":1,"t":"2021-02-22T15:51:44.208Z"}]"#,
        r#"[{"T":"t","S":"aapl!","p":1,"s":1,"t":"2021-02-22T15:51:44.208Z"}]"#,
    ] {
        assert!(decode(&mut d, frame).0.is_err(), "{frame}");
    }
}
