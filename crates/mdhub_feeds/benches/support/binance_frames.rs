//! Binance combined-stream frames as Binance sends them, shared by the
//! criterion bench (`benches/venues.rs`) and the callgrind driver
//! (`examples/binance_decode_loop.rs`) so both measure the same bytes.

/// 1,000 `@trade` frames over a few symbols.
pub(crate) fn trades() -> Vec<Vec<u8>> {
    let symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "BNBBTC"];
    (0..1000u64)
        .map(|i| {
            let s = symbols[i as usize % symbols.len()];
            format!(
                r#"{{"stream":"{}@trade","data":{{"e":"trade","E":{},"s":"{s}","t":{},"p":"{}.{:08}","q":"0.{:08}","T":{},"m":{},"M":true}}}}"#,
                s.to_ascii_lowercase(),
                1_732_615_200_000 + i,
                4_213_387_917 + i,
                91_000 + i % 500,
                i * 7919 % 100_000_000,
                i * 104_729 % 100_000_000,
                1_732_615_199_999 + i,
                i % 2 == 0
            )
            .into_bytes()
        })
        .collect()
}

/// 1,000 `@bookTicker` frames of one symbol.
pub(crate) fn book_tickers() -> Vec<Vec<u8>> {
    (0..1000u64)
        .map(|i| {
            format!(
                r#"{{"stream":"btcusdt@bookTicker","data":{{"u":{},"s":"BTCUSDT","b":"{}.{:02}000000","B":"{}.{:08}","a":"{}.{:02}000000","A":"0.{:08}"}}}}"#,
                51_842_296_101 + i,
                91_000 + i % 100,
                i % 100,
                i % 20,
                i * 31 % 100_000_000,
                91_000 + i % 100,
                (i + 1) % 100,
                i * 17 % 100_000_000
            )
            .into_bytes()
        })
        .collect()
}
