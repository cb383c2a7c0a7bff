//! A deterministic loop for instruction counts: decode the bench's 1,000
//! Binance frames `passes` times with one decoder, nothing else.
//!
//! ```text
//! cargo build --release -p mdhub_feeds --example binance_decode_loop
//! valgrind --tool=callgrind target/release/examples/binance_decode_loop trade serde_json 20
//! ```
//!
//! Arguments: `trade` or `book_ticker`; the parser (`scan`, `serde_json` or `sonic_rs`); passes.

use std::hint::black_box;

use mdhub_feeds::venues::{VenueDecoder, binance};
use mdhub_types::Timestamp;

#[path = "../benches/support/binance_frames.rs"]
mod binance_frames;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let kind = args.get(1).map_or("trade", String::as_str);
    let parser = args.get(2).map_or("serde_json", String::as_str);
    let passes: usize = args.get(3).and_then(|p| p.parse().ok()).unwrap_or(20);
    let frames = match kind {
        "trade" => binance_frames::trades(),
        "book_ticker" => binance_frames::book_tickers(),
        other => {
            eprintln!("unknown frames {other:?}: trade or book_ticker");
            std::process::exit(2);
        }
    };
    let mut d: Box<dyn VenueDecoder> = match parser {
        "scan" => Box::new(binance::Decoder::with_parser(binance::Parser::Scan)),
        "serde_json" => Box::new(binance::Decoder::with_parser(binance::Parser::SerdeJson)),
        "sonic_rs" => Box::new(binance::Decoder::with_parser(binance::Parser::SonicRs)),
        other => {
            eprintln!("unknown parser {other:?}: serde_json or sonic_rs");
            std::process::exit(2);
        }
    };
    let ts = Timestamp::from_nanos(1_732_615_200_000_000_000);
    let mut out = Vec::with_capacity(frames.len());
    let mut events = 0;
    for _ in 0..passes {
        out.clear();
        for f in &frames {
            let _ = black_box(d.decode(black_box(f), ts, &mut out));
        }
        events += black_box(out.len());
    }
    println!("{events} events from {} frames", passes * frames.len());
}
