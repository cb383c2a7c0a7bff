//! Event encode/decode throughput: `cargo bench -p mdhub_types --bench codec`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdhub_types::{Decimal, Event, Quote, Side, Symbol, Timestamp, Trade, Venue, avro, json};
use std::hint::black_box;

fn events() -> Vec<Event> {
    let d = |s: &str| Decimal::parse(s).unwrap();
    (0..1000)
        .map(|i: i64| {
            let ts = Timestamp::from_nanos(1_714_571_100_000_000_000 + i * 1_000_003);
            if i % 3 == 0 {
                Event::Trade(Trade {
                    venue: Venue::new("sim-crypto").unwrap(),
                    symbol: Symbol::new("BTC-USDT").unwrap(),
                    ts_exchange: ts,
                    ts_received: ts.add_nanos(350_000),
                    price: Decimal::from_parts(6_325_001 + i128::from(i), 2).unwrap(),
                    size: d("0.00845"),
                    side: Side::Buy,
                    trade_id: Some(format!("{}", 3_374_563 + i)),
                })
            } else {
                Event::Quote(Quote {
                    venue: Venue::new("sim-nasdaq").unwrap(),
                    symbol: Symbol::new("AAPL").unwrap(),
                    ts_exchange: ts,
                    ts_received: ts.add_nanos(120_000),
                    bid_price: Decimal::from_parts(18_952 + i128::from(i % 50), 2).unwrap(),
                    bid_size: d("300"),
                    ask_price: Decimal::from_parts(18_953 + i128::from(i % 50), 2).unwrap(),
                    ask_size: d("100"),
                })
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let evs = events();
    let encoded: Vec<Vec<u8>> = evs.iter().map(json::to_vec).collect();
    let mut g = c.benchmark_group("json");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.bench_function("encode", |b| {
        let mut buf = Vec::with_capacity(512);
        b.iter(|| {
            for e in &evs {
                buf.clear();
                json::encode_event(black_box(e), &mut buf);
                black_box(&buf);
            }
        })
    });
    g.bench_function("encode_serde", |b| {
        let mut buf = Vec::with_capacity(512);
        b.iter(|| {
            for e in &evs {
                buf.clear();
                serde_json::to_writer(&mut buf, black_box(e)).unwrap();
                black_box(&buf);
            }
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            for bytes in &encoded {
                black_box(json::decode_event(black_box(bytes)).unwrap());
            }
        })
    });
    g.finish();

    let avro_encoded: Vec<Vec<u8>> = evs
        .iter()
        .map(|e| {
            let mut v = Vec::new();
            avro::encode(e, &mut v).unwrap();
            v
        })
        .collect();
    let mut g = c.benchmark_group("avro");
    g.throughput(Throughput::Elements(evs.len() as u64));
    g.bench_function("encode", |b| {
        let mut buf = Vec::with_capacity(512);
        b.iter(|| {
            for e in &evs {
                buf.clear();
                avro::encode(black_box(e), &mut buf).unwrap();
            }
        })
    });
    g.bench_function("decode", |b| {
        b.iter(|| {
            for bytes in &avro_encoded {
                black_box(avro::decode(black_box(bytes)).unwrap());
            }
        })
    });
    g.finish();

    let texts: Vec<String> = ["0.00000845", "12345678901.12345678", "189.52", "63250.01"]
        .map(String::from)
        .to_vec();
    let mut g = c.benchmark_group("decimal");
    g.throughput(Throughput::Elements(texts.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            for t in &texts {
                black_box(Decimal::parse(black_box(t)).unwrap());
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
