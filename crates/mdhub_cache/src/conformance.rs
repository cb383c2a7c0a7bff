//! The conformance suite for [`Cache`] implementations.
//!
//! Every implementation runs [`run_all`] against a fresh, empty instance (for
//! a shared server, one with a unique key prefix). Each check panics with a
//! message naming the broken promise.

use mdhub_types::{
    Decimal, Event, FeedEvent, FeedStatusKind, Position, Positioned, Quote, Side, Symbol,
    Timestamp, Topic, Trade, Venue,
};

use crate::Cache;

/// Run every check. The cache must start empty; it is cleared at the end.
pub async fn run_all(cache: &dyn Cache) {
    cache.health().await.expect("health on a working cache");
    empty_cache_has_nothing(cache).await;
    latest_quote_and_trade_are_kept(cache).await;
    feed_status_is_ignored(cache).await;
    older_positions_never_replace_newer(cache).await;
    batches_apply_in_order(cache).await;
    directory_lists_venue_and_last_update(cache).await;
    get_many_keeps_order(cache).await;
    offsets_match_entries(cache).await;
    exact_values_survive(cache).await;
    clear_forgets_everything(cache).await;
}

fn sym(s: &str) -> Symbol {
    Symbol::new(s).expect("valid test symbol")
}

/// A quote with distinct values derived from `n`.
pub fn quote(symbol: &str, venue: &str, offset: u64, n: i64) -> Positioned {
    Positioned {
        position: Position {
            topic: Topic::Quotes,
            partition: 1,
            offset,
        },
        event: Event::Quote(Quote {
            venue: Venue::new(venue).expect("valid test venue"),
            symbol: sym(symbol),
            ts_exchange: Timestamp::from_nanos(1_700_000_000_000_000_000 + n),
            ts_received: Timestamp::from_nanos(1_700_000_000_000_000_100 + n),
            bid_price: Decimal::from_parts(10_000 + i128::from(n), 2).expect("decimal"),
            bid_size: Decimal::from(100),
            ask_price: Decimal::from_parts(10_001 + i128::from(n), 2).expect("decimal"),
            ask_size: Decimal::from(200),
        }),
    }
}

/// A trade with distinct values derived from `n`.
pub fn trade(symbol: &str, venue: &str, offset: u64, n: i64) -> Positioned {
    Positioned {
        position: Position {
            topic: Topic::Trades,
            partition: 2,
            offset,
        },
        event: Event::Trade(Trade {
            venue: Venue::new(venue).expect("valid test venue"),
            symbol: sym(symbol),
            ts_exchange: Timestamp::from_nanos(1_700_000_000_000_000_000 + n),
            ts_received: Timestamp::from_nanos(1_700_000_000_000_000_100 + n),
            price: Decimal::from_parts(10_000 + i128::from(n), 2).expect("decimal"),
            size: Decimal::from(5),
            side: Side::Sell,
            trade_id: Some(format!("t{n}")),
        }),
    }
}

async fn empty_cache_has_nothing(cache: &dyn Cache) {
    assert_eq!(
        cache.get(&sym("NOPE")).await.expect("get"),
        None,
        "a symbol never put must be None"
    );
    assert!(
        cache.symbols().await.expect("symbols").is_empty(),
        "a fresh cache must list no symbols"
    );
}

async fn latest_quote_and_trade_are_kept(cache: &dyn Cache) {
    let q1 = quote("AAPL", "sim-nasdaq", 10, 1);
    let q2 = quote("AAPL", "sim-nasdaq", 11, 2);
    let t1 = trade("AAPL", "sim-nasdaq", 5, 3);
    cache.put(&[q1]).await.expect("put");
    cache.put(&[q2.clone(), t1.clone()]).await.expect("put");
    let l = cache
        .get(&sym("AAPL"))
        .await
        .expect("get")
        .expect("AAPL present after put");
    assert_eq!(l.symbol, sym("AAPL"));
    assert_eq!(l.quote, Some(q2), "the newest quote must win");
    assert_eq!(l.trade, Some(t1), "quote and trade are kept separately");
    cache.clear().await.expect("clear");
}

async fn feed_status_is_ignored(cache: &dyn Cache) {
    let status = |symbol: &str, offset: u64| Positioned {
        position: Position {
            topic: Topic::Status,
            partition: 1,
            offset,
        },
        event: Event::Status(FeedEvent {
            venue: Venue::new("sim-nasdaq").expect("valid test venue"),
            symbol: sym(symbol),
            ts_exchange: Timestamp::from_nanos(1_700_000_000_000_000_900),
            ts_received: Timestamp::from_nanos(1_700_000_000_000_000_900),
            status: FeedStatusKind::Disconnected,
            detail: None,
        }),
    };
    let q = quote("IBM", "sim-nasdaq", 10, 1);
    cache
        .put(&[q.clone(), status("IBM", 99), status("ONLYSTATUS", 3)])
        .await
        .expect("put with feed-status entries");
    let l = cache
        .get(&sym("IBM"))
        .await
        .expect("get")
        .expect("IBM present");
    assert_eq!(
        l.quote,
        Some(q),
        "a feed-status entry must not touch prices"
    );
    assert_eq!(l.trade, None, "a feed-status entry is not a trade");
    assert_eq!(
        cache.get(&sym("ONLYSTATUS")).await.expect("get"),
        None,
        "a symbol with only feed-status entries has no cache entry"
    );
    assert_eq!(cache.symbols().await.expect("symbols").len(), 1);
    cache.clear().await.expect("clear");
}

async fn older_positions_never_replace_newer(cache: &dyn Cache) {
    let new = quote("MSFT", "sim-nasdaq", 100, 2);
    cache.put(std::slice::from_ref(&new)).await.expect("put");
    cache
        .put(&[quote("MSFT", "sim-nasdaq", 99, 1)])
        .await
        .expect("put");
    let mut same_offset = quote("MSFT", "sim-nasdaq", 100, 7);
    same_offset.position.offset = 100;
    cache.put(&[same_offset]).await.expect("put");
    let l = cache
        .get(&sym("MSFT"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        l.quote,
        Some(new),
        "an older or equal position must not replace a newer one"
    );
    cache.clear().await.expect("clear");
}

async fn batches_apply_in_order(cache: &dyn Cache) {
    let batch: Vec<Positioned> = (0..50)
        .map(|i| trade("BTC-USDT", "sim-crypto", 1000 + i, i as i64))
        .collect();
    cache.put(&batch).await.expect("put");
    let l = cache
        .get(&sym("BTC-USDT"))
        .await
        .expect("get")
        .expect("present");
    assert_eq!(
        l.trade.as_ref(),
        batch.last(),
        "the last of a batch must win"
    );
    assert_eq!(l.quote, None);
    cache.clear().await.expect("clear");
}

async fn directory_lists_venue_and_last_update(cache: &dyn Cache) {
    cache
        .put(&[
            quote("EUR-USD", "sim-fx", 1, 10),
            trade("EUR-USD", "other-fx", 1, 20),
            quote("AAPL", "sim-nasdaq", 1, 5),
        ])
        .await
        .expect("put");
    let dir = cache.symbols().await.expect("symbols");
    let names: Vec<&str> = dir.iter().map(|i| i.symbol.as_str()).collect();
    assert_eq!(names, ["AAPL", "EUR-USD"], "directory sorted by symbol");
    assert_eq!(
        dir[1].venue.as_str(),
        "other-fx",
        "venue of the newest event"
    );
    assert_eq!(
        dir[1].last_update,
        Timestamp::from_nanos(1_700_000_000_000_000_120)
    );
    cache.clear().await.expect("clear");
}

async fn get_many_keeps_order(cache: &dyn Cache) {
    cache
        .put(&[
            quote("AAPL", "sim-nasdaq", 1, 1),
            quote("NVDA", "sim-nasdaq", 2, 2),
        ])
        .await
        .expect("put");
    let got = cache
        .get_many(&[sym("NVDA"), sym("ZZZ"), sym("AAPL")])
        .await
        .expect("get_many");
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].as_ref().map(|l| l.symbol.as_str()), Some("NVDA"));
    assert!(got[1].is_none());
    assert_eq!(got[2].as_ref().map(|l| l.symbol.as_str()), Some("AAPL"));
    cache.clear().await.expect("clear");
}

async fn offsets_match_entries(cache: &dyn Cache) {
    cache
        .put(&[
            quote("AAPL", "sim-nasdaq", 7, 1),
            trade("AAPL", "sim-nasdaq", 9, 2),
            trade("MSFT", "sim-nasdaq", 4, 3),
            quote("AAPL", "sim-nasdaq", 3, 4),
        ])
        .await
        .expect("put");
    let got = cache
        .offsets(&[sym("MSFT"), sym("ZZZ"), sym("AAPL")])
        .await
        .expect("offsets");
    assert_eq!(
        got,
        vec![[None, Some(4)], [None, None], [Some(7), Some(9)]],
        "offsets are those of the entries kept, in the order asked"
    );
    cache.clear().await.expect("clear");
}

async fn exact_values_survive(cache: &dyn Cache) {
    let mut t = trade("ETH-USDT", "sim-crypto", 7, 1);
    if let Event::Trade(tr) = &mut t.event {
        tr.price = Decimal::parse("12345678901.12345678").expect("decimal");
        tr.size = Decimal::parse("0.123456789012345678").expect("decimal");
    }
    cache.put(&[t.clone()]).await.expect("put");
    let l = cache
        .get(&sym("ETH-USDT"))
        .await
        .expect("get")
        .expect("present");
    let Some(Event::Trade(got)) = l.trade.map(|p| p.event) else {
        panic!("trade missing")
    };
    assert_eq!(
        got.price.to_string(),
        "12345678901.12345678",
        "decimal text must survive the cache"
    );
    assert_eq!(got.size.to_string(), "0.123456789012345678");
    cache.clear().await.expect("clear");
}

async fn clear_forgets_everything(cache: &dyn Cache) {
    cache
        .put(&[quote("AAPL", "sim-nasdaq", 1, 1)])
        .await
        .expect("put");
    cache.clear().await.expect("clear");
    assert_eq!(
        cache.get(&sym("AAPL")).await.expect("get"),
        None,
        "clear must forget symbols"
    );
    assert!(cache.symbols().await.expect("symbols").is_empty());
}
