//! The consumer driver against the embedded log: retries in place, commits
//! only what is durable, drains on stop, measures lag.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mdhub_bus::{Bus, EmbeddedBus, EmbeddedBusConfig, conformance};
use mdhub_log::{Log, LogConfig};
use mdhub_pipeline::{
    ConsumerStats, DriverConfig, GroupSink, SinkError, StageCtx, StageHealth, StageState, drive,
};
use mdhub_types::{Encoding, Position, Positioned, Symbol};
use parking_lot::Mutex;
use tokio_util::sync::CancellationToken;

fn open(dir: &std::path::Path) -> Arc<dyn Bus> {
    let log = Log::open(LogConfig {
        dir: dir.to_path_buf(),
        partitions: 2,
        ..LogConfig::default()
    })
    .expect("open log");
    Arc::new(
        EmbeddedBus::new(
            Arc::new(log),
            EmbeddedBusConfig {
                encoding: Encoding::Json,
            },
        )
        .expect("bus"),
    )
}

/// A sink that keeps what it persisted and fails its first `fail` persists.
#[derive(Debug, Default)]
struct Memory {
    pending: Vec<Positioned>,
    durable: Arc<Mutex<Vec<Position>>>,
    fail: usize,
    every: usize,
}

#[async_trait::async_trait]
impl GroupSink for Memory {
    fn group(&self) -> &'static str {
        "test-sink"
    }
    fn push(&mut self, records: Vec<Positioned>) -> Result<(), SinkError> {
        self.pending.extend(records);
        Ok(())
    }
    fn due(&self) -> bool {
        self.pending.len() >= self.every.max(1)
    }
    async fn persist(&mut self) -> Result<(), SinkError> {
        if self.fail > 0 {
            self.fail -= 1;
            return Err(SinkError::retry("target unreachable"));
        }
        self.durable
            .lock()
            .extend(self.pending.drain(..).map(|p| p.position));
        Ok(())
    }
    fn pending(&self) -> usize {
        self.pending.len()
    }
}

fn ctx() -> StageCtx {
    StageCtx {
        stop: CancellationToken::new(),
        health: StageHealth::detached("test-sink"),
    }
}

fn quick() -> DriverConfig {
    DriverConfig {
        tick: Duration::from_millis(20),
        retry_base: Duration::from_millis(5),
        retry_cap: Duration::from_millis(20),
        ..DriverConfig::default()
    }
}

async fn publish(bus: &dyn Bus, n: i64) {
    let s = Symbol::new("DRV").unwrap();
    let events: Vec<_> = (0..n)
        .flat_map(|i| [conformance::trade(&s, i), conformance::quote(&s, i)])
        .collect();
    bus.publish(&events).await.unwrap();
}

/// Run `sink` on the driver in a task of its own.
fn spawn_drive<S: GroupSink + 'static>(
    bus: &Arc<dyn Bus>,
    sink: S,
    stats: &Arc<ConsumerStats>,
    ctx: &StageCtx,
) -> tokio::task::JoinHandle<Result<(), mdhub_pipeline::DriveError>> {
    let (bus, stats, ctx) = (bus.clone(), stats.clone(), ctx.clone());
    tokio::spawn(async move { drive(bus, sink, &quick(), &stats, &ctx).await })
}

async fn wait_for(mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("condition not met in 5 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_in_place_then_commits_and_lag_falls_to_zero() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    publish(&*bus, 50).await;
    let durable = Arc::new(Mutex::new(Vec::new()));
    let sink = Memory {
        durable: durable.clone(),
        fail: 3,
        ..Memory::default()
    };
    let stats = ConsumerStats::new("test-sink");
    let ctx = ctx();
    let run = spawn_drive(&bus, sink, &stats, &ctx);
    wait_for(|| durable.lock().len() == 100).await;
    wait_for(|| stats.commits.load(std::sync::atomic::Ordering::Relaxed) > 0).await;
    mdhub_pipeline::measure_lag(&*bus, std::slice::from_ref(&stats)).await;
    assert_eq!(stats.total_lag(), 0);
    assert!(!stats.lag().is_empty());
    assert_eq!(ctx.health.failures(), 3);
    assert_eq!(ctx.health.state(), StageState::Running, "recovered");
    ctx.stop.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(stats.errors.load(std::sync::atomic::Ordering::Relaxed), 3);

    // A new run of the group reads only what came after its commits.
    publish(&*bus, 5).await;
    let again = Arc::new(Mutex::new(Vec::new()));
    let sink = Memory {
        durable: again.clone(),
        ..Memory::default()
    };
    let ctx2 = self::ctx();
    let run = spawn_drive(&bus, sink, &stats, &ctx2);
    wait_for(|| again.lock().len() == 10).await;
    ctx2.stop.cancel();
    run.await.unwrap().unwrap();
    let all: BTreeSet<_> = durable
        .lock()
        .iter()
        .chain(again.lock().iter())
        .copied()
        .collect();
    assert_eq!(all.len(), 110, "nothing twice, nothing lost");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_buffering_sink_is_persisted_and_committed_on_stop() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    publish(&*bus, 10).await;
    let durable = Arc::new(Mutex::new(Vec::new()));
    let sink = Memory {
        durable: durable.clone(),
        every: 1_000_000,
        ..Memory::default()
    };
    let stats = ConsumerStats::new("test-sink");
    let ctx = ctx();
    let run = spawn_drive(&bus, sink, &stats, &ctx);
    wait_for(|| stats.records.load(std::sync::atomic::Ordering::Relaxed) == 20).await;
    assert!(durable.lock().is_empty(), "not due yet");
    mdhub_pipeline::measure_lag(&*bus, std::slice::from_ref(&stats)).await;
    assert_eq!(stats.total_lag(), 20, "nothing committed yet");
    publish(&*bus, 3).await; // published before the stop: drained
    ctx.stop.cancel();
    run.await.unwrap().unwrap();
    assert_eq!(durable.lock().len(), 26);
    mdhub_pipeline::measure_lag(&*bus, std::slice::from_ref(&stats)).await;
    assert_eq!(stats.total_lag(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_while_the_target_is_down_commits_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    publish(&*bus, 10).await;
    let sink = Memory {
        fail: usize::MAX,
        ..Memory::default()
    };
    let stats = ConsumerStats::new("test-sink");
    let ctx = ctx();
    let run = spawn_drive(&bus, sink, &stats, &ctx);
    wait_for(|| ctx.health.state() == StageState::Retrying).await;
    ctx.stop.cancel();
    run.await.unwrap().unwrap();
    // The next run of the group starts from the beginning.
    let durable = Arc::new(Mutex::new(Vec::new()));
    let sink = Memory {
        durable: durable.clone(),
        ..Memory::default()
    };
    let ctx = self::ctx();
    let run = spawn_drive(&bus, sink, &stats, &ctx);
    wait_for(|| durable.lock().len() == 20).await;
    ctx.stop.cancel();
    run.await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_sink_error_ends_the_run_with_the_group_named() {
    #[derive(Debug)]
    struct Broken;
    #[async_trait::async_trait]
    impl GroupSink for Broken {
        fn group(&self) -> &'static str {
            "broken"
        }
        fn push(&mut self, _: Vec<Positioned>) -> Result<(), SinkError> {
            Err(SinkError::fatal("schema mismatch"))
        }
        async fn persist(&mut self) -> Result<(), SinkError> {
            Ok(())
        }
        fn pending(&self) -> usize {
            0
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path());
    publish(&*bus, 1).await;
    let stats = ConsumerStats::new("broken");
    let err = drive(bus, Broken, &quick(), &stats, &ctx())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "broken: schema mismatch");
}
