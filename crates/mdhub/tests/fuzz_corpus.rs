//! The fuzz corpora (`fuzz/corpus/<target>/`, committed) replayed through the
//! same code the fuzz targets drive (`fuzz/fuzz_targets/`): the inputs the
//! fuzzer kept for their coverage, and every crash it found once fixed, stay
//! tests on stable Rust. A panic here is a regression.

use std::path::PathBuf;

use mdhub_types::Timestamp;

fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|f| {
            let path = f.unwrap().path();
            (path.display().to_string(), std::fs::read(&path).unwrap())
        })
        .collect();
    out.sort();
    assert!(!out.is_empty(), "empty corpus {}", dir.display());
    out
}

#[test]
fn the_client_protocol_corpus_parses_or_is_rejected() {
    for (_, data) in corpus("client_protocol") {
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = mdhub_types::protocol::parse_client_message(text);
        }
    }
}

#[test]
fn the_server_frames_corpus_decodes_or_errs() {
    for (_, data) in corpus("server_frames") {
        if let Ok(text) = std::str::from_utf8(&data) {
            let _ = mdhub_client::decode(text);
        }
    }
}

#[test]
fn every_venue_corpus_decodes_without_panics() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus");
    let mut replayed = 0;
    for venue in mdhub_feeds::venues::registry::ids() {
        if !root.join(venue).is_dir() {
            // A new venue before its first fuzzing run (docs/contributing.md).
            eprintln!("no fuzz corpus for {venue} yet");
            continue;
        }
        replayed += 1;
        for (_, data) in corpus(venue) {
            let mut decoder = mdhub_feeds::venues::decoder(venue).unwrap();
            let mut events = Vec::new();
            for (i, frame) in data.split(|b| *b == b'\n').enumerate() {
                events.clear();
                let ts = Timestamp::from_nanos(1_764_162_000_000_000_000 + i as i64);
                let _ = decoder.decode(frame, ts, &mut events);
            }
        }
    }
    assert!(replayed > 0, "no venue corpus under {}", root.display());
}
