//! Client-side cost per update: decoding a data frame into a typed event.
//! `cargo bench -p mdhub_client --bench decode`.

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mdhub_client::{Frame, decode};
use std::hint::black_box;

/// The frames a client of the simulator receives: two quotes per trade.
fn frames() -> Vec<String> {
    (0..1000u64)
        .map(|i| {
            let ts = 1_764_162_000_123_456_789 + i * 1_000_003;
            if i % 3 == 0 {
                format!(
                    r#"{{"type":"update","channel":"trades","pos":"trades:1:{i}","data":{{"type":"trade","venue":"sim-crypto","symbol":"BTC-USDT","ts_exchange":{ts},"ts_received":{},"price":"63250.{:02}","size":"0.00845","side":"buy","trade_id":"{}"}}}}"#,
                    ts + 350_000,
                    i % 100,
                    3_374_563 + i
                )
            } else {
                format!(
                    r#"{{"type":"update","channel":"quotes","pos":"quotes:1:{i}","data":{{"type":"quote","venue":"sim-nasdaq","symbol":"AAPL","ts_exchange":{ts},"ts_received":{},"bid_price":"189.{:02}","bid_size":"300","ask_price":"189.{:02}","ask_size":"100"}}}}"#,
                    ts + 120_000,
                    i % 50,
                    i % 50 + 1
                )
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let frames = frames();
    let mut g = c.benchmark_group("client");
    g.throughput(Throughput::Elements(frames.len() as u64));
    g.bench_function("decode_data_frames", |b| {
        b.iter(|| {
            for f in &frames {
                let Ok(Frame::Data(d)) = decode(black_box(f)) else {
                    panic!("not a data frame")
                };
                black_box(d);
            }
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
