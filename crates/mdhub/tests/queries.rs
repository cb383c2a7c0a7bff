//! Hostile history queries on the real binary: each gets a stable error
//! code (or a bounded answer), never an out-of-memory or a panic, and the
//! hub goes on streaming and answering.

mod common;

use std::time::Duration;

use common::{Hub, http_get_waiting, metric};
use serde_json::Value;

/// `GET /v1/history/sql?q=…&limit=…`: (status, body).
fn sql(hub: &Hub, q: &str, limit: Option<usize>) -> (u16, Value) {
    let mut path = format!("/v1/history/sql?q={}", encode(q));
    if let Some(l) = limit {
        path.push_str(&format!("&limit={l}"));
    }
    // Debug builds fill gigabytes slowly: wait as long as the query may run.
    let (code, _, body) = http_get_waiting(&hub.addr, &path, "", Duration::from_secs(180));
    let v = serde_json::from_str(&body).unwrap_or_else(|_| panic!("JSON body: {body}"));
    (code, v)
}

/// Percent-encode a query string value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn code(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("")
}

/// The hub still answers queries and is ready.
fn alive(hub: &Hub) {
    let (c, v) = sql(hub, "SELECT 1 AS one", None);
    assert_eq!((c, &v["rows"][0]["one"]), (200, &Value::from(1)), "{v}");
    assert_eq!(common::http_get(&hub.addr, "/readyz").0, 200);
}

#[test]
fn limits_of_memory_rows_result_and_engine_are_stable_errors() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MDHUB_INGEST__STATUS_INTERVAL_SECS", "0"),
        ("MDHUB_HISTORY__QUERY_MEMORY_MB", "16"),
        ("MDHUB_HISTORY__QUERY_RESULT_MB", "1"),
        ("MDHUB_HISTORY__QUERY_TIMEOUT_SECS", "120"),
    ];
    let hub = Hub::start(dir.path(), &["--sim-rate", "300"], &env);
    hub.wait_published(100);
    let rss = || metric(&hub.addr, "process_resident_memory_bytes");

    // The limit goes into the plan: a billion rows asked, ten read.
    let before = rss();
    let (c, v) = sql(
        &hub,
        "SELECT value FROM generate_series(1, 1000000000)",
        Some(10),
    );
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["rows"].as_array().unwrap().len(), 10);
    assert_eq!(v["truncated"], true);
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 200 << 20,
        "RSS grew by {} MiB for ten rows",
        grown >> 20
    );

    // A hash join's build side cannot spill: the memory pool says no.
    let join = "SELECT count(*) FROM generate_series(1, 3000000) a JOIN generate_series(1, 3000000) b ON a.value = b.value";
    let (c, v) = sql(&hub, join, None);
    assert_eq!((c, code(&v)), (422, "query_memory_exceeded"), "{v}");
    alive(&hub);

    // 5 MB of result against a 1 MiB bound.
    let (c, v) = sql(
        &hub,
        "SELECT repeat('x', 1000) AS s FROM generate_series(1, 5000)",
        None,
    );
    assert_eq!((c, code(&v)), (422, "query_result_too_large"), "{v}");
    alive(&hub);

    // A string column past Arrow's 2 GiB offsets panics inside the engine:
    // caught, answered, and the hub goes on.
    let (c, v) = sql(
        &hub,
        "SELECT repeat('x', 80000000) FROM generate_series(1, 30)",
        None,
    );
    assert_eq!((c, code(&v)), (500, "query_failed"), "{v}");
    alive(&hub);
    assert!(hub.stop().success());
}

#[test]
fn a_slow_query_times_out_and_concurrency_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let env = [
        ("MDHUB_INGEST__STATUS_INTERVAL_SECS", "0"),
        ("MDHUB_HISTORY__QUERY_TIMEOUT_SECS", "2"),
        ("MDHUB_GATEWAY__HISTORY_QUERIES", "1"),
    ];
    let hub = Hub::start(dir.path(), &["--sim-rate", "300"], &env);
    hub.wait_published(100);
    let slow = "SELECT count(*) FROM generate_series(1, 100000000000)";
    let (c, v) = sql(&hub, slow, None);
    assert_eq!((c, code(&v)), (504, "query_timeout"), "{v}");

    // One history request at a time: a second one meanwhile gets 429.
    std::thread::scope(|s| {
        // The slow request retries until it holds the one place (a probe
        // below may hold it for a moment).
        let first = s.spawn(|| {
            loop {
                let r = sql(&hub, slow, None);
                if r.0 != 429 {
                    return r;
                }
            }
        });
        let (c, v) = common::wait_until(10, "a second request refused", || {
            let (c, v) = sql(&hub, "SELECT 1", None);
            (c == 429, (c, v))
        });
        assert_eq!((c, code(&v)), (429, "too_many_queries"), "{v}");
        let (c, v) = first.join().unwrap();
        assert_eq!((c, code(&v)), (504, "query_timeout"), "{v}");
    });
    alive(&hub);
    assert!(hub.stop().success());
}
