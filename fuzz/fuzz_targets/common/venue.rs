//! Shared by the venue targets: the input is a session of raw frames, one
//! per line, fed to one decoder, so that its state (sequence numbers, trade
//! ids, books) is exercised too. Decoding must never panic.

use mdhub_types::Timestamp;

pub fn run(venue: &str, data: &[u8]) {
    let Some(mut decoder) = mdhub_feeds::venues::decoder(venue) else {
        panic!("unknown venue {venue}");
    };
    let mut events = Vec::new();
    for (i, frame) in data.split(|b| *b == b'\n').enumerate() {
        events.clear();
        let ts = Timestamp::from_nanos(1_764_162_000_000_000_000 + i as i64);
        let _ = decoder.decode(frame, ts, &mut events);
    }
}
