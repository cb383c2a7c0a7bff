//! The embedded bus against the conformance suite and embedded-only behaviour.

use std::sync::Arc;

use mdhub_bus::{Bus, EmbeddedBus, EmbeddedBusConfig, Error, Start, SubscribeSpec, conformance};
use mdhub_log::{Log, LogConfig};
use mdhub_types::{Encoding, Symbol, Topic};

fn open(dir: &std::path::Path, encoding: Encoding) -> Arc<EmbeddedBus> {
    let log = Log::open(LogConfig {
        dir: dir.to_path_buf(),
        partitions: 4,
        ..LogConfig::default()
    })
    .expect("open log");
    Arc::new(EmbeddedBus::new(Arc::new(log), EmbeddedBusConfig { encoding }).expect("bus"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_json() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(open(dir.path(), Encoding::Json)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_avro() {
    let dir = tempfile::tempdir().unwrap();
    conformance::run_all(open(dir.path(), Encoding::Avro)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_on_a_log_with_history_and_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let epoch = {
        let bus = open(dir.path(), Encoding::Json);
        conformance::run_all(bus.clone()).await;
        bus.epoch()
    };
    let bus = open(dir.path(), Encoding::Json);
    assert_eq!(bus.epoch(), epoch, "the epoch survives a reopen");
    conformance::run_all(bus).await;
}

#[tokio::test]
async fn one_member_per_group() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path(), Encoding::Json);
    let spec = SubscribeSpec::Group {
        name: "g".into(),
        topics: vec![Topic::Trades],
        reset: Start::Earliest,
    };
    let first = bus.subscribe(spec.clone()).await.expect("first member");
    assert!(matches!(
        bus.subscribe(spec.clone()).await,
        Err(Error::GroupInUse(_))
    ));
    drop(first);
    bus.subscribe(spec)
        .await
        .expect("the group is free again after drop");
}

#[tokio::test]
async fn direct_subscriptions_cannot_commit() {
    let dir = tempfile::tempdir().unwrap();
    let bus = open(dir.path(), Encoding::Json);
    let mut sub = bus
        .subscribe(SubscribeSpec::Direct {
            topics: vec![Topic::Quotes],
            start: Start::Earliest,
        })
        .await
        .unwrap();
    assert!(matches!(sub.commit(&[]).await, Err(Error::NotAGroup)));
    let _ = Symbol::new("AAPL").unwrap();
}
