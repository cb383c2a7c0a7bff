//! What a gateway may send the Rust client: any text decodes into a frame or
//! an error, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mdhub_client::decode(text);
    }
});
