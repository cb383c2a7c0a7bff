//! What a WebSocket client may send the gateway: any text must parse into a
//! request or a rejection, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = mdhub_types::protocol::parse_client_message(text);
    }
});
