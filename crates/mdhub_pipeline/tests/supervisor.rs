//! The supervisor's contract: ordered shutdown, one failure policy, health.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use mdhub_pipeline::{Phase, Stage, StageState, Supervisor, SupervisorError};
use parking_lot::Mutex;

/// A stage that runs until stopped, then records its name (after `linger`).
fn until_stopped(name: &'static str, phase: Phase, log: Arc<Mutex<Vec<&'static str>>>) -> Stage {
    Stage::new(name, phase, move |ctx| {
        let log = log.clone();
        async move {
            ctx.stop.cancelled().await;
            tokio::time::sleep(Duration::from_millis(20)).await;
            log.lock().push(name);
            Ok::<(), std::io::Error>(())
        }
    })
}

fn quick() -> Supervisor {
    Supervisor::new().with_restart_backoff(Duration::from_millis(10), Duration::from_millis(20))
}

#[tokio::test]
async fn phases_stop_in_order_whatever_order_stages_were_added() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut s = quick();
    s.add(until_stopped("gateway", Phase::Gateway, log.clone()));
    s.add(until_stopped("archiver", Phase::Consumers, log.clone()));
    s.add(until_stopped("log", Phase::Log, log.clone()));
    s.add(until_stopped("ingest", Phase::Ingest, log.clone()));
    s.add(until_stopped("feed-a", Phase::Feeds, log.clone()));
    s.add(until_stopped("feed-b", Phase::Feeds, log.clone()));
    let report = s.report();
    s.run(async { "test".to_string() }, Duration::from_secs(5))
        .await
        .unwrap();
    let order = log.lock().clone();
    let pos = |n| order.iter().position(|x| *x == n).unwrap();
    assert!(pos("feed-a") < pos("ingest") && pos("feed-b") < pos("ingest"));
    assert!(pos("ingest") < pos("log"));
    assert!(pos("log") < pos("archiver"));
    assert!(pos("archiver") < pos("gateway"));
    assert!(
        report
            .stages()
            .iter()
            .all(|s| s.state() == StageState::Stopped)
    );
}

#[tokio::test]
async fn a_restartable_stage_is_restarted_with_its_failures_counted() {
    let runs = Arc::new(AtomicU32::new(0));
    let mut s = quick();
    let r = runs.clone();
    let health = s.add(
        Stage::new("flaky", Phase::Consumers, move |ctx| {
            let n = r.fetch_add(1, Ordering::SeqCst);
            async move {
                if n < 3 {
                    return Err(std::io::Error::other(format!("attempt {n} failed")));
                }
                ctx.stop.cancelled().await;
                Ok(())
            }
        })
        .restart(),
    );
    let stop = {
        let runs = runs.clone();
        async move {
            while runs.load(Ordering::SeqCst) < 4 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            "done".to_string()
        }
    };
    s.run(stop, Duration::from_secs(5)).await.unwrap();
    assert_eq!(health.failures(), 3);
    assert_eq!(health.restarts(), 3);
    assert_eq!(health.last_error().as_deref(), Some("attempt 2 failed"));
    assert_eq!(health.state(), StageState::Stopped);
}

#[tokio::test]
async fn an_exit_stage_failing_stops_everything_in_order_and_names_itself() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut s = quick();
    s.add(until_stopped("feed", Phase::Feeds, log.clone()));
    s.add(until_stopped("gateway", Phase::Gateway, log.clone()));
    let health = s.add(Stage::new("ingest", Phase::Ingest, |_ctx| async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        Err::<(), _>(std::io::Error::other("disk on fire"))
    }));
    let err = s
        .run(std::future::pending(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "stage `ingest` failed: disk on fire");
    assert!(matches!(err, SupervisorError::Stage { .. }));
    assert_eq!(health.state(), StageState::Failed);
    assert_eq!(*log.lock(), vec!["feed", "gateway"]);
}

#[tokio::test]
async fn returning_early_or_panicking_is_a_failure() {
    let mut s = quick();
    s.add(Stage::new("quitter", Phase::Consumers, |_ctx| async {
        Ok::<(), std::io::Error>(())
    }));
    let err = s
        .run(std::future::pending(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage `quitter` failed: stopped unexpectedly"
    );

    let mut s = quick();
    s.add(Stage::new("boom", Phase::Gateway, |_ctx| async {
        if true {
            panic!("index out of bounds");
        }
        Ok::<(), std::io::Error>(())
    }));
    let err = s
        .run(std::future::pending(), Duration::from_secs(5))
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "stage `boom` failed: panicked: index out of bounds"
    );
}

#[tokio::test]
async fn the_process_stops_when_the_finishing_phase_is_done() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut s = quick();
    s.stop_when_finished(Phase::Feeds);
    for (name, ms) in [("capture-1", 10u64), ("capture-2", 40)] {
        s.add(
            Stage::new(name, Phase::Feeds, move |_ctx| async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                Ok::<(), std::io::Error>(())
            })
            .finishes(),
        );
    }
    s.add(until_stopped("ingest", Phase::Ingest, log.clone()));
    let report = s.report();
    s.run(std::future::pending(), Duration::from_secs(5))
        .await
        .unwrap();
    assert_eq!(*log.lock(), vec!["ingest"]);
    let states: Vec<_> = report.stages().iter().map(|s| s.state()).collect();
    assert_eq!(
        states,
        vec![
            StageState::Finished,
            StageState::Finished,
            StageState::Stopped
        ]
    );
}

#[tokio::test]
async fn a_stage_retrying_in_place_is_unhealthy_until_it_recovers() {
    let mut s = quick();
    let health = s.add(Stage::new("pg", Phase::Consumers, |ctx| async move {
        ctx.health.retrying(&"connection refused");
        tokio::time::sleep(Duration::from_millis(50)).await;
        ctx.health.recovered();
        ctx.stop.cancelled().await;
        Ok::<(), std::io::Error>(())
    }));
    let report = s.report();
    let probe = {
        let health = health.clone();
        let report = report.clone();
        async move {
            while health.state() != StageState::Retrying {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert_eq!(report.unhealthy().len(), 1);
            while health.state() != StageState::Running {
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            assert!(report.unhealthy().is_empty());
            "probed".to_string()
        }
    };
    s.run(probe, Duration::from_secs(5)).await.unwrap();
    assert_eq!(health.failures(), 1);
    assert_eq!(health.last_error().as_deref(), Some("connection refused"));
}

#[tokio::test]
async fn a_shutdown_over_budget_names_what_is_still_running() {
    let mut s = quick();
    s.add(Stage::new("stuck", Phase::Consumers, |_ctx| async {
        std::future::pending::<()>().await;
        Ok::<(), std::io::Error>(())
    }));
    let err = s
        .run(async { "now".to_string() }, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stuck"), "{err}");
}
