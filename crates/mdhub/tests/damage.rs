//! Damage to the embedded log on disk, on the real binary: a flipped bit in
//! a closed segment costs the damaged records only and a resuming client is
//! told (`data_lost` reset), never a silent gap; cutting records that clients
//! may hold positions in changes the epoch (`epoch_changed` reset), so an old
//! position never names a new record.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::log::log_records;
use common::ws::{Ws, connect, offset_of, request};
use common::{Hub, http_get};
use mdhub_types::Topic;
use serde_json::{Value, json};

/// Small segments (a roll about every second per partition): damage in a
/// closed segment.
const SMALL_SEGMENTS: &str = "65536";
/// Segments that outlast a test (minutes per partition): the records a
/// client saw stay in the newest segment, whatever the timing.
const LARGE_SEGMENTS: &str = "8388608";

fn start(dir: &Path, segment_bytes: &str) -> Hub {
    Hub::start(
        dir,
        &["--sim-rate", "2000", "--seed", "5"],
        &[("MDHUB_LOG__SEGMENT_BYTES", segment_bytes)],
    )
}

/// Subscribes `symbol`'s quotes with `resume`; every frame for `wait`.
async fn subscribe(ws: &mut Ws, symbol: &str, resume: Value, wait: Duration) -> Vec<Value> {
    let msg =
        json!({"action":"subscribe","symbols":[symbol],"channels":["quotes"],"resume":resume});
    request(ws, msg, wait).await
}

fn partition_dir(dir: &Path, symbol: &str) -> (u32, PathBuf) {
    let p = mdhub_log::partition_for_key(symbol.as_bytes(), 8);
    let d = dir
        .join("log/topics")
        .join(Topic::Quotes.log_name())
        .join(p.to_string());
    (p, d)
}

fn segments(part: &Path) -> Vec<(u64, PathBuf)> {
    let mut v: Vec<(u64, PathBuf)> = std::fs::read_dir(part)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| (p.file_stem().unwrap().to_str().unwrap().parse().unwrap(), p))
        .collect();
    v.sort();
    v
}

/// Flips a byte inside the CRC-covered part of record `offset` of the
/// segment starting at `base` (records are walked by their length fields,
/// as the crate's README specifies them).
fn damage_record(segment: &Path, base: u64, offset: u64) {
    let mut bytes = std::fs::read(segment).unwrap();
    let mut pos = 0usize;
    for _ in base..offset {
        let len = u32::from_le_bytes(bytes[pos..pos + 4].try_into().unwrap()) as usize;
        pos += len + 4;
    }
    let at = u64::from_le_bytes(bytes[pos + 8..pos + 16].try_into().unwrap());
    assert_eq!(at, offset, "walked to the record");
    bytes[pos + 20] ^= 0x5a; // in the timestamp
    std::fs::write(segment, bytes).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_over_damaged_records_gets_a_data_lost_reset() {
    let dir = tempfile::tempdir().unwrap();
    let symbol = "AAPL";
    let (partition, part) = partition_dir(dir.path(), symbol);
    let hub = start(dir.path(), SMALL_SEGMENTS);
    common::wait_until(60, "closed segments", || {
        let n = std::fs::read_dir(&part).map(|d| d.count()).unwrap_or(0);
        (n >= 6, n) // three .log files, two closed with their .index
    });
    assert!(hub.stop().success());

    // Two records of the symbol in the first (closed) segment: resume from
    // the first, damage the second.
    let segs = segments(&part);
    let (base, first) = (segs[0].0, segs[0].1.clone());
    let end = segs[1].0;
    let records = log_records(dir.path(), Topic::Quotes, symbol);
    let mine: Vec<u64> = records.keys().copied().filter(|&o| o < end).collect();
    assert!(
        mine.len() >= 4,
        "the first segment holds {symbol} quotes: {mine:?}"
    );
    let (from, victim) = (mine[0], mine[mine.len() / 2]);
    damage_record(&first, base, victim);
    // The operator's tool finds it, by partition, segment and offset.
    let out = common::mdhub()
        .args(["log", "verify", "--data-dir", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "damage found: exit 1\n{text}");
    let line = format!(
        "damaged: price-quotes/{partition} {} byte ",
        first.display()
    );
    assert!(text.contains(&line), "{text}");
    let range = format!("offsets {victim}..{} unreadable", victim + 1);
    assert!(text.contains(&range), "{text}");
    assert!(text.contains("1 damaged ranges"), "{text}");

    let hub = start(dir.path(), SMALL_SEGMENTS);
    let (mut ws, epoch) = connect(&hub).await;
    let position = format!("quotes:{partition}:{from}");
    let resume = json!({"epoch": epoch, "positions": {symbol: {"quotes": position}}});
    let frames = subscribe(&mut ws, symbol, resume, Duration::from_secs(2)).await;
    let kinds: Vec<&str> = frames.iter().map(|f| f["type"].as_str().unwrap()).collect();
    let reset_at = kinds
        .iter()
        .position(|&k| k == "reset")
        .unwrap_or_else(|| panic!("no reset: {kinds:?}"));
    assert_eq!(frames[reset_at]["reason"], "data_lost");
    assert_eq!(kinds.iter().filter(|&&k| k == "reset").count(), 1);
    assert!(
        !kinds.contains(&"snapshot"),
        "a resume replays, it does not snapshot"
    );
    let before: Vec<u64> = frames[1..reset_at].iter().map(offset_of).collect();
    let after: Vec<u64> = frames[reset_at + 1..]
        .iter()
        .filter(|f| f["type"] == "update")
        .map(offset_of)
        .collect();
    // Exactly the log's records up to the damage, then from just after it.
    let want_before: Vec<u64> = records.range(from + 1..victim).map(|(o, _)| *o).collect();
    assert_eq!(before, want_before);
    // (The hub has published more since the restart: compare what both hold.)
    let want_after: Vec<u64> = records.range(victim + 1..).map(|(o, _)| *o).collect();
    let n = after.len().min(want_after.len());
    assert!(n > 0, "the replay goes on after the damage");
    assert_eq!(
        after[..n],
        want_after[..n],
        "nothing but the damaged record is missing"
    );
    // The scrub reports the damage; the hub stays ready, degraded.
    let scrub = common::wait_until(20, "the scrub finds the damage", || {
        let s = hub.status()["log_files"]["scrub"].clone();
        (s["damaged_ranges"] == 1, s)
    });
    assert_eq!(scrub["damage"][0]["offset"], victim, "{scrub}");
    assert_eq!(scrub["damage"][0]["partition"], partition, "{scrub}");
    assert_eq!(common::metric(&hub.addr, "mdhub_log_damaged_ranges"), 1);
    let (code, body) = http_get(&hub.addr, "/readyz");
    assert_eq!(code, 200, "{body}");
    let ready: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(ready["degraded"], true, "{body}");
    assert_eq!(ready["failing"][0]["name"], "log", "{body}");
    drop(ws);
    assert!(hub.stop().success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cutting_records_clients_have_seen_changes_the_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let symbol = "MSFT";
    let (partition, part) = partition_dir(dir.path(), symbol);
    let hub = start(dir.path(), LARGE_SEGMENTS);
    hub.wait_published(2_000);
    let (mut ws, epoch) = connect(&hub).await;
    let frames = subscribe(&mut ws, symbol, Value::Null, Duration::from_millis(800)).await;
    let seen = frames
        .iter()
        .filter(|f| f["pos"].is_string())
        .map(offset_of)
        .max()
        .unwrap();
    drop(ws);
    assert!(hub.stop().success());

    // Damage a record the client was given, in the newest segment: opening
    // the log cuts it and everything after.
    let (base, newest) = segments(&part).pop().unwrap();
    assert!(
        seen > base,
        "the client's position is in the newest segment"
    );
    damage_record(&newest, base, seen.max(base + 1) - 1);

    let hub = start(dir.path(), LARGE_SEGMENTS);
    let (mut ws, epoch2) = connect(&hub).await;
    assert_ne!(epoch2, epoch, "records clients saw were cut: a new epoch");
    let meta = std::fs::read_to_string(dir.path().join("log/meta")).unwrap();
    assert!(meta.contains(&format!("previous_epoch={epoch}")), "{meta}");
    let position = format!("quotes:{partition}:{seen}");
    let resume = json!({"epoch": epoch, "positions": {symbol: {"quotes": position}}});
    let frames = subscribe(&mut ws, symbol, resume, Duration::from_millis(800)).await;
    assert_eq!(frames[1]["type"], "reset", "{frames:?}");
    assert_eq!(frames[1]["reason"], "epoch_changed");
    assert_eq!(frames[2]["type"], "snapshot");
    drop(ws);
    assert!(hub.stop().success());
    // What was damaged is gone: the log checks clean, and a repair finds
    // nothing to do.
    let data = dir.path().to_str().unwrap();
    let out = common::mdhub_ok(&["log", "verify", "--data-dir", data]);
    assert!(out.contains(": no damage"), "{out}");
    let out = common::mdhub_ok(&["log", "repair", "--data-dir", data]);
    assert!(out.contains(": 0 damaged ranges found"), "{out}");
    assert!(out.contains(&format!("epoch kept: {epoch2}")), "{out}");
}
