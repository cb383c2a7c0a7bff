//! Encoding tests: exact decimals through JSON and Avro, the fast JSON encoder
//! against serde, and both encodings checked by independent Python decoders
//! (fastavro, jsonschema) from `$MDHUB_TEST_PYTHON`.

use std::io::Write;
use std::process::{Command, Stdio};

use mdhub_types::{
    Decimal, Encoding, Event, FeedEvent, FeedStatusKind, Quote, Side, Symbol, Timestamp, Topic,
    Trade, Venue, avro, json,
};
use proptest::prelude::*;

const HARD_VALUES: [&str; 6] = [
    "0.00000845",
    "12345678901.12345678",
    "0.123456789012345678",
    "63250.01",
    "-37.63",
    "0",
];

fn d(s: &str) -> Decimal {
    Decimal::parse(s).unwrap()
}

fn quote(bid: &str, ask: &str) -> Event {
    Event::Quote(Quote {
        venue: Venue::new("sim-nasdaq").unwrap(),
        symbol: Symbol::new("AAPL").unwrap(),
        ts_exchange: Timestamp::from_nanos(1_714_571_100_123_456_789),
        ts_received: Timestamp::from_nanos(1_714_571_100_123_500_001),
        bid_price: d(bid),
        bid_size: d("300"),
        ask_price: d(ask),
        ask_size: d("0.00000845"),
    })
}

fn trade(price: &str, size: &str, id: Option<&str>) -> Event {
    Event::Trade(Trade {
        venue: Venue::new("binance").unwrap(),
        symbol: Symbol::new("BTC-USDT").unwrap(),
        ts_exchange: Timestamp::from_nanos(1_714_571_100_123_000_000),
        ts_received: Timestamp::from_nanos(1_714_571_100_124_000_000),
        price: d(price),
        size: d(size),
        side: Side::Buy,
        trade_id: id.map(str::to_string),
    })
}

fn sample_events() -> Vec<Event> {
    let mut v = Vec::new();
    for x in HARD_VALUES {
        v.push(quote(x, x));
        v.push(trade(x, x, Some("3374563")));
    }
    v.push(trade("1", "2", None));
    v.push(trade("1", "2", Some("id with \"quotes\", \\ and \u{1} \n")));
    v
}

fn status_events() -> Vec<Event> {
    let kinds = [
        FeedStatusKind::Connected,
        FeedStatusKind::Disconnected,
        FeedStatusKind::Gap,
        FeedStatusKind::Resync,
    ];
    kinds
        .into_iter()
        .enumerate()
        .map(|(i, status)| {
            Event::Status(FeedEvent {
                venue: Venue::new("coinbase").unwrap(),
                symbol: Symbol::new("BTC-USD").unwrap(),
                ts_exchange: Timestamp::from_nanos(1_714_571_100_200_000_000 + i as i64),
                ts_received: Timestamp::from_nanos(1_714_571_100_200_000_001 + i as i64),
                status,
                detail: (i % 2 == 0).then(|| format!("trade ids 101..=10{i} missed, \"quoted\"\n")),
            })
        })
        .collect()
}

#[test]
fn feed_status_events_are_json_only() {
    for e in status_events() {
        assert_eq!(e.topic(), Topic::Status);
        let bytes = json::to_vec(&e);
        assert_eq!(
            bytes,
            serde_json::to_vec(&e).unwrap(),
            "fast encoder = serde"
        );
        assert_eq!(json::decode_event(&bytes).unwrap(), e);
        assert_eq!(Encoding::Avro.for_event(&e), Encoding::Json);
        assert!(matches!(
            avro::encode(&e, &mut Vec::new()),
            Err(avro::AvroError::NoSchema)
        ));
    }
    let text = String::from_utf8(json::to_vec(&status_events()[2])).unwrap();
    assert!(
        text.starts_with(r#"{"type":"status","venue":"coinbase","symbol":"BTC-USD""#),
        "{text}"
    );
    assert!(
        text.contains(r#""status":"gap","detail":"trade ids"#),
        "{text}"
    );
    let missing = br#"{"type":"status","venue":"x","symbol":"A","ts_exchange":1,"ts_received":1}"#;
    let err = json::decode_event(missing).unwrap_err().to_string();
    assert!(err.contains("status"), "{err}");
}

#[test]
fn hard_decimals_survive_json_exactly() {
    for e in sample_events() {
        let bytes = json::to_vec(&e);
        let back = json::decode_event(&bytes).unwrap();
        assert_eq!(back, e);
        // Same text, not just the same value.
        assert_eq!(json::to_vec(&back), bytes);
    }
    let text = String::from_utf8(json::to_vec(&quote(
        "12345678901.12345678",
        "0.123456789012345678",
    )))
    .unwrap();
    assert!(
        text.contains(r#""bid_price":"12345678901.12345678""#),
        "{text}"
    );
    assert!(
        text.contains(r#""ask_price":"0.123456789012345678""#),
        "{text}"
    );
}

#[test]
fn fast_encoder_matches_serde() {
    for e in sample_events() {
        assert_eq!(json::to_vec(&e), serde_json::to_vec(&e).unwrap(), "{e:?}");
        let via_serde: Event = serde_json::from_slice(&json::to_vec(&e)).unwrap();
        assert_eq!(via_serde, e);
    }
}

#[test]
fn hard_decimals_survive_avro() {
    for e in sample_events() {
        let mut buf = Vec::new();
        avro::encode(&e, &mut buf).unwrap();
        assert_eq!(&buf[..2], &[0xC3, 0x01]);
        assert_eq!(avro::decode(&buf).unwrap(), e);
    }
}

#[test]
fn json_decoder_rejects_bad_events_with_reasons() {
    let cases: [(&str, &str); 6] = [
        ("{", "malformed"),
        (r#"{"type":"bar"}"#, "missing field"),
        (
            r#"{"type":"bar","venue":"x","symbol":"A","ts_exchange":1,"ts_received":1}"#,
            "unknown event type",
        ),
        (
            r#"{"type":"trade","venue":"x","symbol":"A","ts_exchange":1,"ts_received":1,"size":"1"}"#,
            "missing field `price`",
        ),
        (
            r#"{"type":"trade","venue":"X","symbol":"A","ts_exchange":1,"ts_received":1,"price":"1","size":"1"}"#,
            "venue \"X\"",
        ),
        (
            r#"{"type":"trade","venue":"x","symbol":"A","ts_exchange":1,"ts_received":1,"price":1.5,"size":"1"}"#,
            "binary float",
        ),
    ];
    for (input, want) in cases {
        let err = json::decode_event(input.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains(want), "{input}: {err}");
    }
}

#[test]
fn encoding_header_values() {
    assert_eq!(Encoding::parse("json").unwrap(), Encoding::Json);
    assert_eq!(Encoding::parse("avro").unwrap(), Encoding::Avro);
    assert!(Encoding::parse("protobuf").is_err());
    let e = quote("1.5", "1.6");
    for enc in [Encoding::Json, Encoding::Avro] {
        let mut b = Vec::new();
        enc.encode(&e, &mut b).unwrap();
        assert_eq!(enc.decode(&b).unwrap(), e);
    }
}

fn arb_decimal() -> impl Strategy<Value = Decimal> {
    (any::<i128>(), 0u8..=18).prop_map(|(m, s)| {
        let m = m % 10i128.pow(38);
        Decimal::from_parts(m, s).unwrap()
    })
}

proptest! {
    #[test]
    fn decimal_text_round_trip(x in arb_decimal()) {
        let text = x.to_string();
        let back = Decimal::parse(&text).unwrap();
        prop_assert_eq!(back.mantissa(), x.mantissa());
        prop_assert_eq!(back.scale(), x.scale());
        let via_json: Decimal = serde_json::from_str(&serde_json::to_string(&x).unwrap()).unwrap();
        prop_assert_eq!(via_json.to_string(), text);
    }

    #[test]
    fn decimal_order_matches_rescaled_integers(a in arb_decimal(), b in arb_decimal()) {
        // Compare through a common scale when it fits; the type's answer must agree.
        let s = a.scale().max(b.scale());
        if let (Some(x), Some(y)) = (a.rescaled(s), b.rescaled(s)) {
            prop_assert_eq!(a.cmp(&b), x.mantissa().cmp(&y.mantissa()));
        }
    }

    #[test]
    fn events_round_trip_both_encodings(p in arb_decimal(), s in arb_decimal(), ts in any::<i64>(), id in proptest::option::of("[ -~]{0,20}")) {
        let e = Event::Trade(Trade {
            venue: Venue::new("sim-fx").unwrap(),
            symbol: Symbol::new("EUR-USD").unwrap(),
            ts_exchange: Timestamp::from_nanos(ts),
            ts_received: Timestamp::from_nanos(ts.wrapping_add(1)),
            price: p, size: s, side: Side::Sell, trade_id: id,
        });
        prop_assert_eq!(json::decode_event(&json::to_vec(&e)).unwrap(), e.clone());
        // Avro's decimal(38,18) holds at most 20 integer digits.
        if p.rescaled(18).is_some() && s.rescaled(18).is_some() {
            let mut b = Vec::new();
            avro::encode(&e, &mut b).unwrap();
            prop_assert_eq!(avro::decode(&b).unwrap(), e);
        }
    }
}

/// The interpreter with fastavro and jsonschema (`scripts/test.sh` makes `.venv`).
fn python() -> String {
    std::env::var("MDHUB_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

fn run_python(script: &str, input: &str) -> String {
    let mut child = Command::new(python())
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot start {} ({e}); run scripts/test.sh, which creates .venv",
                python()
            )
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "python failed (missing fastavro/jsonschema? run scripts/test.sh, which installs them into .venv):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

const FASTAVRO_DECODER: &str = r#"
import sys, json, io
from fastavro import parse_schema, schemaless_reader
from fastavro.schema import fingerprint, to_parsing_canonical_form
schemas = {}
for name in ("quote", "trade"):
    s = parse_schema(json.load(open(sys.argv[1] + "/" + name + ".avsc")))
    schemas[fingerprint(to_parsing_canonical_form(s), "CRC-64-AVRO")] = s
for line in sys.stdin:
    msg = bytes.fromhex(line.strip())
    assert msg[:2] == b"\xc3\x01", "single-object marker"
    fp = msg[2:10].hex()
    rec = schemaless_reader(io.BytesIO(msg[10:]), schemas[fp])
    print(json.dumps({k: (str(v) if not isinstance(v, (int, type(None))) else v) for k, v in rec.items()}, sort_keys=True))
"#;

#[test]
fn fastavro_decodes_our_single_object_messages() {
    let events = sample_events();
    let mut input = String::new();
    for e in &events {
        let mut b = Vec::new();
        avro::encode(e, &mut b).unwrap();
        input.extend(b.iter().map(|x| format!("{x:02x}")));
        input.push('\n');
    }
    let schemas_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../schemas");
    let script = format!("import sys; sys.argv=['x', {schemas_dir:?}]\n{FASTAVRO_DECODER}");
    let out = run_python(&script, &input);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), events.len());
    for (e, line) in events.iter().zip(lines) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        // fastavro gives Python Decimals with scale 18; compare numerically.
        let dec = |k: &str| d(v[k].as_str().unwrap());
        match e {
            Event::Quote(q) => {
                assert_eq!(dec("bid_price"), q.bid_price, "{line}");
                assert_eq!(dec("ask_size"), q.ask_size, "{line}");
                assert_eq!(v["ts_exchange"].as_i64().unwrap(), q.ts_exchange.as_nanos());
                assert_eq!(v["symbol"], "AAPL");
            }
            Event::Trade(t) => {
                assert_eq!(dec("price"), t.price, "{line}");
                assert_eq!(dec("size"), t.size, "{line}");
                assert_eq!(v["ts_received"].as_i64().unwrap(), t.ts_received.as_nanos());
                assert_eq!(v["side"], "buy");
                assert_eq!(v["trade_id"].as_str(), t.trade_id.as_deref());
            }
            Event::Status(_) => unreachable!("sample_events holds prices only"),
        }
    }
}

#[test]
fn json_events_validate_against_the_published_schema() {
    let mut input = String::new();
    for e in sample_events().into_iter().chain(status_events()) {
        input.push_str(std::str::from_utf8(&json::to_vec(&e)).unwrap());
        input.push('\n');
    }
    let schema = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../schemas/event.schema.json"
    );
    let script = format!(
        "import sys, json, jsonschema\nschema = json.load(open({schema:?}))\nv = jsonschema.Draft202012Validator(schema)\nn = 0\nfor line in sys.stdin:\n    v.validate(json.loads(line)); n += 1\nbad = dict(type='quote', venue='x', symbol='A', ts_exchange=1, ts_received=1, bid_price=1.5, bid_size='1', ask_price='1', ask_size='1')\nassert not v.is_valid(bad), 'a float price must fail the schema'\nprint(n)"
    );
    let out = run_python(&script, &input);
    assert_eq!(
        out.trim(),
        (sample_events().len() + status_events().len()).to_string()
    );
}

#[test]
fn peek_venue_reads_the_venue_of_every_encoded_event() {
    for e in sample_events().into_iter().chain(status_events()) {
        let bytes = json::to_vec(&e);
        assert_eq!(json::peek_venue(&bytes), Some(e.venue().as_str()));
    }
    assert_eq!(json::peek_venue(b"{}"), None);
    assert_eq!(json::peek_venue(br#"{"venue":"Not A Venue"}"#), None);
    assert_eq!(json::peek_venue(br#"{"venue":"unterminated"#), None);
}
