//! Raw alpaca frames, one per line, through one decoder.
#![no_main]

#[path = "common/venue.rs"]
mod venue;

libfuzzer_sys::fuzz_target!(|data: &[u8]| venue::run("alpaca", data));
