//! Decode + normalize throughput of venue frames:
//! `cargo bench -p mdhub_feeds --bench venues`.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdhub_feeds::venues::{VenueDecoder, binance, coinbase, fix, kraken};
use mdhub_types::Timestamp;

#[path = "support/binance_frames.rs"]
mod binance_frames;

/// Coinbase `match` frames, consecutive trade ids.
fn coinbase_matches() -> Vec<Vec<u8>> {
    (0..1000u64)
        .map(|i| {
            format!(
                r#"{{"type":"match","trade_id":{},"sequence":{},"maker_order_id":"ac928c66-ca53-498f-9c13-a110027a60e8","taker_order_id":"132fb6ae-456b-4654-b4e0-d681ac05cea1","time":"2026-11-26T12:00:00.{:06}Z","product_id":"BTC-USD","size":"0.{:08}","price":"95{:03}.{:02}","side":"{}"}}"#,
                10_000 + i,
                50_000 + i,
                i * 997 % 1_000_000,
                i * 7919 % 100_000_000,
                i % 1000,
                i % 100,
                if i % 2 == 0 { "buy" } else { "sell" }
            )
            .into_bytes()
        })
        .collect()
}

/// Kraken v2 `trade` frames, one trade each, prices as JSON numbers.
fn kraken_trades() -> Vec<Vec<u8>> {
    (0..1000u64)
        .map(|i| {
            format!(
                r#"{{"channel":"trade","type":"update","data":[{{"symbol":"BTC/USD","side":"{}","price":95{:03}.{},"qty":0.{:08},"ord_type":"limit","trade_id":{},"timestamp":"2026-11-26T12:00:00.{:06}Z"}}]}}"#,
                if i % 2 == 0 { "buy" } else { "sell" },
                i % 1000,
                i % 10,
                i * 7919 % 100_000_000,
                81_000_000 + i,
                i * 997 % 1_000_000
            )
            .into_bytes()
        })
        .collect()
}

/// FIX 4.4 incremental refreshes (X), SOH-separated: a bid change and a
/// trade per message, as a venue streams them.
fn fix_incrementals() -> Vec<Vec<u8>> {
    (0..1000u64)
        .map(|i| {
            format!(
                "8=FIX.4.4\x019=250\x0135=X\x0149=VENUE\x0156=MDHUB\x0134={}\x0152=20261126-12:00:00.{:03}\x01262=mdhub-BTC/USD\x01268=2\x01279=1\x01269=0\x0155=BTC/USD\x01270=95{:03}.{:02}\x01271=0.{:08}\x01279=0\x01269=2\x0155=BTC/USD\x01270=95{:03}.{:02}\x01271=0.{:08}\x01272=20261126\x01273=12:00:00.{:06}\x011003={}\x012446={}\x0110=000\x01",
                10 + i,
                i % 1000,
                i % 1000,
                i % 100,
                i * 7919 % 100_000_000,
                i % 1000,
                (i + 1) % 100,
                i * 104_729 % 100_000_000,
                i * 997 % 1_000_000,
                81_000_000 + i,
                1 + i % 2
            )
            .into_bytes()
        })
        .collect()
}

fn run_decoder(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    frames: &[Vec<u8>],
    make: fn() -> Box<dyn VenueDecoder>,
) {
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function(name, |b| {
        let mut out = Vec::with_capacity(frames.len());
        let ts = Timestamp::from_nanos(1_732_615_200_000_000_000);
        b.iter(|| {
            // A fresh decoder per pass: trade-id state would otherwise
            // turn every later pass into "already sent".
            let mut d = make();
            out.clear();
            for f in frames {
                let _ = black_box(d.decode(f, ts, &mut out));
            }
            black_box(out.len())
        })
    });
}

fn bench_others(c: &mut Criterion) {
    let mut g = c.benchmark_group("venues");
    run_decoder(&mut g, "coinbase_match", &coinbase_matches(), || {
        Box::new(coinbase::Decoder::default())
    });
    run_decoder(&mut g, "kraken_trade", &kraken_trades(), || {
        Box::new(kraken::Decoder::default())
    });
    run_decoder(&mut g, "fix_incremental", &fix_incrementals(), || {
        Box::new(fix::Decoder::default())
    });
    g.finish();
}

/// Binance frames through both JSON parsers, side by side on the same bytes:
/// `binance_trade/serde_json`, `binance_trade/sonic_rs`, and the same for
/// `binance_book_ticker`.
fn bench(c: &mut Criterion) {
    for (group, frames) in [
        ("binance_trade", binance_frames::trades()),
        ("binance_book_ticker", binance_frames::book_tickers()),
    ] {
        let mut g = c.benchmark_group(group);
        g.throughput(Throughput::Elements(frames.len() as u64));
        for (name, parser) in [
            ("scan", binance::Parser::Scan),
            ("serde_json", binance::Parser::SerdeJson),
            ("sonic_rs", binance::Parser::SonicRs),
        ] {
            g.bench_function(name, |b| {
                let mut d = binance::Decoder::with_parser(parser);
                let mut out = Vec::with_capacity(frames.len());
                let ts = Timestamp::from_nanos(1_732_615_200_000_000_000);
                b.iter(|| {
                    out.clear();
                    for f in &frames {
                        let _ = black_box(d.decode(f, ts, &mut out));
                    }
                    black_box(out.len())
                })
            });
        }
        g.finish();
    }
}

criterion_group!(benches, bench, bench_others);
criterion_main!(benches);
