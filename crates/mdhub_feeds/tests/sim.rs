//! The simulated exchanges, through their public API: generated data, the
//! configuration, and the real-time feeds.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use mdhub_feeds::sim::{SimConfig, SimMarket, SimSymbolConfig, sim_feeds};
use mdhub_feeds::{FeedContext, FeedError, FeedState, FeedStatus};
use mdhub_types::json::{decode_event, to_vec};
use mdhub_types::{Decimal, Event, Timestamp};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

const T0: i64 = 1_714_571_100_000_000_000;

fn generate(cfg: &SimConfig, seed: u64, n: i64) -> Vec<Event> {
    let mut m = SimMarket::new(cfg, seed).unwrap();
    (0..n)
        .map(|i| m.next_event(Timestamp::from_nanos(T0 + i * 1_000_000)))
        .collect()
}

/// `value` is a positive whole number of `unit`s, written with `unit`'s scale.
fn on_grid(value: Decimal, unit: Decimal) -> bool {
    value.scale() == unit.scale() && value.mantissa() > 0 && value.mantissa() % unit.mantissa() == 0
}

#[test]
fn same_seed_and_times_give_the_same_events() {
    let cfg = SimConfig::default();
    let a = generate(&cfg, 42, 10_000);
    let b = generate(&cfg, 42, 10_000);
    assert_eq!(
        a.iter().map(to_vec).collect::<Vec<_>>(),
        b.iter().map(to_vec).collect::<Vec<_>>()
    );
    assert_ne!(a, generate(&cfg, 43, 10_000));
}

#[test]
fn prices_and_sizes_are_on_the_grid_and_books_are_not_crossed() {
    let cfg = SimConfig::default();
    let mut grid = HashMap::new();
    for v in &cfg.venues {
        for s in &v.symbols {
            let (tick, lot) = (
                Decimal::parse(&s.tick_size).unwrap(),
                Decimal::parse(&s.lot_size).unwrap(),
            );
            grid.insert(s.symbol.clone(), (tick, lot));
        }
    }
    let (mut quotes, mut trades) = (0, 0);
    for e in generate(&cfg, 1, 50_000) {
        let (tick, lot) = grid[e.symbol().as_str()];
        match &e {
            Event::Quote(q) => {
                quotes += 1;
                assert!(
                    on_grid(q.bid_price, tick) && on_grid(q.ask_price, tick),
                    "{q:?}"
                );
                assert!(
                    on_grid(q.bid_size, lot) && on_grid(q.ask_size, lot),
                    "{q:?}"
                );
                assert!(q.bid_price < q.ask_price, "{q:?}");
            }
            Event::Trade(t) => {
                trades += 1;
                assert!(on_grid(t.price, tick) && on_grid(t.size, lot), "{t:?}");
                assert!(t.trade_id.is_some());
            }
            Event::Status(f) => panic!("the simulator's market emits no feed status: {f:?}"),
        }
        assert!(e.ts_exchange() <= e.ts_received(), "{e:?}");
    }
    let ratio = f64::from(trades) / f64::from(quotes + trades);
    assert!((0.25..0.35).contains(&ratio), "trade ratio {ratio}");
}

#[test]
fn every_default_symbol_appears_and_keeps_its_decimal_places() {
    let cfg = SimConfig::default();
    let events = generate(&cfg, 2, 20_000);
    let seen: HashSet<(String, String)> = events
        .iter()
        .map(|e| (e.venue().to_string(), e.symbol().to_string()))
        .collect();
    for v in &cfg.venues {
        for s in &v.symbols {
            assert!(
                seen.contains(&(v.venue.clone(), s.symbol.clone())),
                "{} {}",
                v.venue,
                s.symbol
            );
        }
    }
    let quote = |sym: &str| {
        events.iter().find_map(|e| match e {
            Event::Quote(q) if q.symbol.as_str() == sym => Some(q.bid_price.to_string()),
            _ => None,
        })
    };
    assert_eq!(quote("AAPL").unwrap().split_once('.').unwrap().1.len(), 2);
    assert_eq!(
        quote("EUR-USD").unwrap().split_once('.').unwrap().1.len(),
        5
    );
    assert_eq!(
        quote("USD-JPY").unwrap().split_once('.').unwrap().1.len(),
        3
    );
}

#[test]
fn json_round_trip_keeps_exact_values() {
    for e in generate(&SimConfig::default(), 3, 5000) {
        let bytes = to_vec(&e);
        let back = decode_event(&bytes).unwrap();
        assert_eq!(back, e);
        assert_eq!(to_vec(&back), bytes, "the same text, scale included");
    }
}

/// The message of validating `cfg` after `edit`.
fn invalid(edit: impl FnOnce(&mut SimConfig)) -> String {
    let mut cfg = SimConfig::default();
    edit(&mut cfg);
    let err = cfg.validate().unwrap_err();
    assert!(matches!(err, FeedError::Config { .. }), "{err:?}");
    assert!(SimMarket::new(&cfg, 1).is_err() && sim_feeds(&cfg).is_err());
    err.to_string()
}

type Edit = Box<dyn FnOnce(&mut SimConfig)>;

fn sym(c: &mut SimConfig, venue: usize, symbol: usize) -> &mut SimSymbolConfig {
    &mut c.venues[venue].symbols[symbol]
}

#[test]
fn validation_names_the_key_and_the_problem() {
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(|c| sym(c, 1, 0).tick_size = "0".into()),
            r#"sim.venues[1].symbols[0].tick_size: "0" must be > 0"#,
        ),
        (
            Box::new(|c| sym(c, 0, 0).tick_size = "abc".into()),
            "sim.venues[0].symbols[0].tick_size: not a decimal number",
        ),
        (
            Box::new(|c| sym(c, 0, 1).start_price = "189.505".into()),
            r#"sim.venues[0].symbols[1].start_price: "189.505" is not a multiple of tick_size "0.01""#,
        ),
        (
            Box::new(|c| sym(c, 2, 0).lot_size = "-1".into()),
            r#"sim.venues[2].symbols[0].lot_size: "-1" must be > 0"#,
        ),
        (
            Box::new(|c| sym(c, 0, 0).round_lot = Some("0.5".into())),
            r#"sim.venues[0].symbols[0].round_lot: "0.5" is not a multiple of lot_size "1""#,
        ),
        (
            Box::new(|c| sym(c, 0, 0).spread_ticks = 0),
            "sim.venues[0].symbols[0].spread_ticks: 0 must be at least 1",
        ),
        (
            Box::new(|c| sym(c, 0, 0).volatility = f64::NAN),
            "sim.venues[0].symbols[0].volatility: NaN",
        ),
        (
            Box::new(|c| sym(c, 1, 2).symbol = "usd/jpy".into()),
            "sim.venues[1].symbols[2].symbol: symbol \"usd/jpy\"",
        ),
        (
            Box::new(|c| sym(c, 1, 2).symbol = "EUR-USD".into()),
            "sim.venues[1].symbols[2].symbol: \"EUR-USD\" is listed twice",
        ),
        (
            Box::new(|c| c.venues[0].venue = "Sim-X".into()),
            "sim.venues[0].venue: venue \"Sim-X\" is not canonical",
        ),
        (
            Box::new(|c| c.venues[2].venue = "sim-fx".into()),
            "sim.venues[2].venue: \"sim-fx\" is listed twice",
        ),
        (
            Box::new(|c| c.venues[1].symbols.clear()),
            "sim.venues[1].symbols: must list at least one symbol",
        ),
        (
            Box::new(|c| c.venues.clear()),
            "sim.venues: must list at least one venue",
        ),
        (
            Box::new(|c| c.rate = 0.0),
            "sim.rate: 0 must be a number > 0",
        ),
        (
            Box::new(|c| c.trade_ratio = 1.5),
            "sim.trade_ratio: 1.5 must be between 0 and 1",
        ),
    ];
    for (edit, expected) in cases {
        let msg = invalid(edit);
        assert!(
            msg.starts_with("feed sim: bad configuration: sim."),
            "{msg}"
        );
        assert!(
            msg.contains(expected),
            "{msg:?} does not contain {expected:?}"
        );
    }
    assert!(SimConfig::default().validate().is_ok());
}

#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    sim: SimConfig,
}

const CUSTOM: &str = r#"
[sim]
seed = 42
rate = 1000
trade_ratio = 0.25

[[sim.venues]]
venue = "sim-lse"
latency_us = 400

[[sim.venues.symbols]]
symbol = "VOD"
start_price = "71.24"
tick_size = "0.02"
lot_size = "1"
round_lot = "100"
size = "5000"
volatility = 0.0002
spread_ticks = 2

[[sim.venues.symbols]]
symbol = "BP"
start_price = "455.1"
tick_size = "0.1"
"#;

#[test]
fn a_custom_toml_config_parses_and_runs() {
    let cfg = toml::from_str::<File>(CUSTOM).unwrap().sim;
    cfg.validate().unwrap();
    assert_eq!(
        (cfg.seed, cfg.rate, cfg.trade_ratio, cfg.regimes),
        (Some(42), 1000.0, 0.25, true)
    );
    assert_eq!(cfg.venues.len(), 1);
    let bp = &cfg.venues[0].symbols[1];
    assert_eq!(
        (bp.lot_size.as_str(), bp.spread_ticks),
        ("1", 1),
        "defaults fill the rest"
    );
    let events = generate(&cfg, 42, 2000);
    assert!(events.iter().all(|e| e.venue().as_str() == "sim-lse"));
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Quote(q) if q.symbol.as_str() == "BP"
        && q.bid_price.to_string().ends_with(|c: char| c.is_ascii_digit())
        && q.bid_price.scale() == 1))
    );

    let empty = toml::from_str::<File>("[sim]\n").unwrap().sim;
    assert_eq!(empty, SimConfig::default());
    let text = toml::to_string(&File2 {
        sim: SimConfig::default(),
    })
    .unwrap();
    assert_eq!(
        toml::from_str::<File>(&text).unwrap().sim,
        SimConfig::default()
    );

    let err = toml::from_str::<File>(&CUSTOM.replace("tick_size = \"0.1\"", "tick = \"0.1\""))
        .unwrap_err();
    assert!(err.to_string().contains("unknown field `tick`"), "{err}");
}

#[derive(serde::Serialize)]
struct File2 {
    sim: SimConfig,
}

// ---- the real-time feeds ----

struct Running {
    shutdown: CancellationToken,
    statuses: Vec<Arc<FeedStatus>>,
    tasks: Vec<JoinHandle<Result<(), FeedError>>>,
}

fn start(cfg: &SimConfig, capacity: usize) -> (Running, mpsc::Receiver<Event>) {
    let (tx, rx) = mpsc::channel(capacity);
    let shutdown = CancellationToken::new();
    let mut running = Running {
        shutdown: shutdown.clone(),
        statuses: Vec::new(),
        tasks: Vec::new(),
    };
    for feed in sim_feeds(cfg).unwrap() {
        let status = FeedStatus::new(feed.venue().clone());
        let ctx = FeedContext {
            out: tx.clone(),
            shutdown: shutdown.clone(),
            status: status.clone(),
            capture: None,
        };
        running.statuses.push(status);
        running
            .tasks
            .push(tokio::spawn(async move { feed.run(ctx).await }));
    }
    (running, rx)
}

impl Running {
    /// Cancel, and require every feed to return Ok within 100 ms.
    async fn stop(self) {
        self.shutdown.cancel();
        for t in self.tasks {
            let r = tokio::time::timeout(Duration::from_millis(100), t).await;
            r.expect("stopped within 100 ms").unwrap().unwrap();
        }
        for s in &self.statuses {
            assert_eq!(s.snapshot().state, FeedState::Stopped);
        }
    }
}

/// Count the events received for `secs` seconds.
async fn count_for(rx: &mut mpsc::Receiver<Event>, secs: f64) -> usize {
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(secs);
    let mut n = 0;
    while let Ok(Some(_)) = tokio::time::timeout_at(deadline, rx.recv()).await {
        n += 1;
    }
    n
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feeds_run_at_roughly_the_configured_rate_and_stop_on_cancel() {
    let cfg = SimConfig {
        seed: Some(5),
        rate: 1000.0,
        ..SimConfig::default()
    };
    let feeds = sim_feeds(&cfg).unwrap();
    let venues: Vec<_> = feeds.iter().map(|f| f.venue().to_string()).collect();
    assert_eq!(venues, ["sim-nasdaq", "sim-fx", "sim-crypto", "sim-dex"]);
    assert_eq!(feeds[1].symbols().len(), 3);

    let (running, mut rx) = start(&cfg, 10_000);
    let n = count_for(&mut rx, 1.0).await;
    assert!((500..=2000).contains(&n), "{n} events in 1 s at rate 1000");
    for s in &running.statuses {
        let snap = s.snapshot();
        assert_eq!(snap.state, FeedState::Live);
        assert!(snap.events > 0 && snap.last_event.is_some(), "{snap:?}");
    }
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn high_rates_are_emitted_in_batches() {
    let cfg = SimConfig {
        seed: Some(6),
        rate: 50_000.0,
        regimes: false,
        ..SimConfig::default()
    };
    let (running, mut rx) = start(&cfg, 65_536);
    let n = count_for(&mut rx, 1.0).await;
    // Far above one event per 1 ms tick; loose, as this may share the CPU.
    assert!(
        (12_500..=100_000).contains(&n),
        "{n} events in 1 s at rate 50000"
    );
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_channel_holds_the_feed_back_and_shutdown_still_works() {
    let cfg = SimConfig {
        seed: Some(7),
        rate: 10_000.0,
        ..SimConfig::default()
    };
    let (running, mut rx) = start(&cfg, 4);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let sent: u64 = running.statuses.iter().map(|s| s.snapshot().events).sum();
    assert!(sent <= 4, "{sent} events counted while the channel held 4");
    assert!(rx.recv().await.is_some());
    running.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_pipeline_stops_the_feed_with_an_error() {
    let cfg = SimConfig {
        seed: Some(8),
        ..SimConfig::default()
    };
    let (running, rx) = start(&cfg, 16);
    tokio::time::sleep(Duration::from_millis(50)).await;
    drop(rx);
    for t in running.tasks {
        let r = tokio::time::timeout(Duration::from_secs(1), t)
            .await
            .expect("stopped")
            .unwrap();
        assert!(matches!(r, Err(FeedError::PipelineClosed { .. })), "{r:?}");
    }
}
