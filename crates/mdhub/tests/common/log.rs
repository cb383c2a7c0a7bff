//! What the log holds, to check deliveries against: every update a client
//! got must be exactly the log's records of its stream, no gap, no duplicate.

use std::collections::BTreeMap;
use std::path::Path;

use mdhub_log::{Log, LogConfig};
use mdhub_types::{Encoding, Event, Topic};

/// The embedded log's records of `symbol` on `topic`, by offset (open it
/// only once the hub has stopped).
pub fn log_records(dir: &Path, topic: Topic, symbol: &str) -> BTreeMap<u64, Event> {
    let log = Log::open(LogConfig {
        dir: dir.join("log"),
        ..LogConfig::default()
    })
    .expect("open log");
    let parts = log.partitions(topic.log_name()).unwrap();
    let p = mdhub_log::partition_for_key(symbol.as_bytes(), parts);
    let mut out = BTreeMap::new();
    let end = log.high_watermark(topic.log_name(), p).unwrap();
    let mut next = log.start_offset(topic.log_name(), p).unwrap();
    while next < end {
        next = log
            .read(topic.log_name(), p, next, 100_000, 64 << 20, |r| {
                if r.key == symbol.as_bytes() {
                    let enc = Encoding::parse(
                        std::str::from_utf8(r.header("mdhub-encoding").unwrap()).unwrap(),
                    )
                    .unwrap();
                    out.insert(r.offset, enc.decode(r.value).unwrap());
                }
            })
            .unwrap()
            .next_offset;
    }
    out
}

/// Check that `got` (offset, event), in delivery order, is exactly `log`'s
/// records from the first delivered offset to the last one.
pub fn assert_exactly(log: &BTreeMap<u64, Event>, got: &[(u64, &Event)], what: &str) {
    assert!(!got.is_empty(), "{what}: nothing delivered");
    let (first, last) = (got[0].0, got[got.len() - 1].0);
    let want: Vec<(u64, &Event)> = log.range(first..=last).map(|(o, e)| (*o, e)).collect();
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} delivered for {} log records in {first}..={last}",
        got.len(),
        want.len()
    );
    assert!(got == want, "{what}: deliveries differ from the log");
}

/// [`assert_exactly`] venue by venue: a symbol's records of every venue
/// share its partition, and a venue's snapshot stands for that venue's older
/// records only, so each venue's deliveries are checked against that venue's
/// records over their own range.
#[allow(dead_code)] // not every test binary checks venues
pub fn assert_exactly_per_venue(log: &BTreeMap<u64, Event>, got: &[(u64, &Event)], what: &str) {
    let mut venues: BTreeMap<&str, Vec<(u64, &Event)>> = BTreeMap::new();
    for (o, e) in got {
        venues.entry(e.venue().as_str()).or_default().push((*o, *e));
    }
    assert!(!venues.is_empty(), "{what}: nothing delivered");
    for (venue, list) in venues {
        let mine: BTreeMap<u64, Event> = log
            .iter()
            .filter(|(_, e)| e.venue().as_str() == venue)
            .map(|(o, e)| (*o, e.clone()))
            .collect();
        assert_exactly(&mine, &list, &format!("{what} on {venue}"));
    }
}
