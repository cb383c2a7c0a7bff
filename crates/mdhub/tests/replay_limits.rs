//! Replay quotas on the real binary: a connection may receive
//! `gateway.max_replay_bytes` of replayed frames; past them a resume gets a
//! `replay_limit` reset and a snapshot, never a silent gap, and a new
//! connection starts afresh.

mod common;

use std::time::Duration;

use common::Hub;
use common::ws::{connect, offset_of, request, symbol_of};
use serde_json::{Value, json};

fn kinds(frames: &[Value]) -> Vec<&str> {
    frames.iter().map(|f| f["type"].as_str().unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_past_its_replay_bytes_gets_a_reset_and_a_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let hub = Hub::start(
        dir.path(),
        &["--sim-rate", "2000", "--seed", "3"],
        &[("MDHUB_GATEWAY__MAX_REPLAY_BYTES", "20000")],
    );
    hub.wait_published(6_000);
    let resume_from_start = |epoch: &str, symbol: &str| {
        let p = mdhub_log::partition_for_key(symbol.as_bytes(), 8);
        json!({"action":"subscribe","symbols":[symbol],"channels":["quotes"],
               "resume":{"epoch": epoch, "positions":{symbol:{"quotes": format!("quotes:{p}:0")}}}})
    };
    let (mut ws, epoch) = connect(&hub).await;
    let frames = request(
        &mut ws,
        resume_from_start(&epoch, "AAPL"),
        Duration::from_secs(2),
    )
    .await;
    let k = kinds(&frames);
    let reset = k
        .iter()
        .position(|&t| t == "reset")
        .unwrap_or_else(|| panic!("{k:?}"));
    assert_eq!(frames[reset]["reason"], "replay_limit");
    let replayed: usize = frames[1..reset]
        .iter()
        .map(|f| serde_json::to_string(f).unwrap().len())
        .sum();
    assert!(reset > 10, "some updates were replayed first: {k:?}");
    assert!(replayed <= 20_000 + 2_000, "{replayed} bytes replayed");
    assert_eq!(k[reset + 1], "snapshot", "{k:?}");
    // The offsets before the reset are in order; the snapshot is newer.
    let before: Vec<u64> = frames[1..reset].iter().map(offset_of).collect();
    assert!(before.windows(2).all(|w| w[0] < w[1]), "{before:?}");
    assert!(offset_of(&frames[reset + 1]) > *before.last().unwrap());

    // The budget is spent: the next resume on this connection is reset at
    // once (AAPL's live updates go on around it).
    let frames: Vec<Value> = request(
        &mut ws,
        resume_from_start(&epoch, "MSFT"),
        Duration::from_millis(800),
    )
    .await
    .into_iter()
    .filter(|f| f["type"] == "ack" || symbol_of(f) == Some("MSFT"))
    .collect();
    let k = kinds(&frames);
    assert_eq!(k[1], "reset", "{k:?}");
    assert_eq!(frames[1]["reason"], "replay_limit");
    assert_eq!(k[2], "snapshot", "{k:?}");

    // A new connection has its own budget.
    let (mut fresh, _) = connect(&hub).await;
    let frames = request(
        &mut fresh,
        resume_from_start(&epoch, "MSFT"),
        Duration::from_millis(800),
    )
    .await;
    assert_eq!(frames[1]["type"], "update", "{:?}", kinds(&frames));
    assert!(common::metric(&hub.addr, "mdhub_gateway_resets_total") >= 2);
    drop((ws, fresh));
    assert!(hub.stop().success());
}
