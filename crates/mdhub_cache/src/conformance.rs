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
    venues_never_overwrite_each_other(cache).await;
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

/// The only venue's entry of `symbol`; panics unless exactly one venue has it.
async fn one(cache: &dyn Cache, symbol: &str) -> crate::Latest {
    let mut got = cache.get(&sym(symbol)).await.expect("get");
    assert_eq!(got.len(), 1, "{symbol} must be held for exactly one venue");
    got.pop().expect("one entry")
}

async fn empty_cache_has_nothing(cache: &dyn Cache) {
    assert!(
        cache.get(&sym("NOPE")).await.expect("get").is_empty(),
        "a symbol never put has no entry"
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
    let l = one(cache, "AAPL").await;
    assert_eq!(l.symbol, sym("AAPL"));
    assert_eq!(l.venue.as_str(), "sim-nasdaq");
    assert_eq!(l.quote, Some(q2), "the newest quote must win");
    assert_eq!(l.trade, Some(t1), "quote and trade are kept separately");
    cache.clear().await.expect("clear");
}

async fn venues_never_overwrite_each_other(cache: &dyn Cache) {
    // Interleaved in one partition, as the log keeps them (the key is the symbol).
    let k1 = quote("BTC-USDT", "sim-b", 20, 1);
    let c1 = quote("BTC-USDT", "sim-a", 21, 2);
    let k2 = quote("BTC-USDT", "sim-b", 22, 3);
    let ct = trade("BTC-USDT", "sim-a", 8, 4);
    cache.put(&[k1, c1.clone()]).await.expect("put");
    cache.put(&[k2.clone(), ct.clone()]).await.expect("put");
    let got = cache.get(&sym("BTC-USDT")).await.expect("get");
    let venues: Vec<&str> = got.iter().map(|l| l.venue.as_str()).collect();
    assert_eq!(venues, ["sim-a", "sim-b"], "one entry per venue, sorted");
    assert_eq!(got[0].quote, Some(c1), "sim-a keeps its own quote");
    assert_eq!(got[0].trade, Some(ct));
    assert_eq!(got[1].quote, Some(k2), "sim-b keeps its newest quote");
    assert_eq!(
        got[1].trade, None,
        "a venue's trade never fills another's slot"
    );
    assert_eq!(cache.symbols().await.expect("symbols").len(), 2);
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
    let l = one(cache, "IBM").await;
    assert_eq!(
        l.quote,
        Some(q),
        "a feed-status entry must not touch prices"
    );
    assert_eq!(l.trade, None, "a feed-status entry is not a trade");
    assert!(
        cache.get(&sym("ONLYSTATUS")).await.expect("get").is_empty(),
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
    let l = one(cache, "MSFT").await;
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
    let l = one(cache, "BTC-USDT").await;
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
    cache
        .put(&[trade("EUR-USD", "sim-fx", 2, 30)])
        .await
        .expect("put");
    let dir = cache.symbols().await.expect("symbols");
    let lines: Vec<(&str, &str, i64)> = dir
        .iter()
        .map(|i| {
            (
                i.symbol.as_str(),
                i.venue.as_str(),
                i.last_update.as_nanos(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        [
            ("AAPL", "sim-nasdaq", 1_700_000_000_000_000_105),
            ("EUR-USD", "other-fx", 1_700_000_000_000_000_120),
            ("EUR-USD", "sim-fx", 1_700_000_000_000_000_130),
        ],
        "a line per instrument, sorted by symbol then venue, with its newest ts_received"
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
    let names: Vec<Vec<&str>> = got
        .iter()
        .map(|ls| ls.iter().map(|l| l.symbol.as_str()).collect())
        .collect();
    assert_eq!(names, [vec!["NVDA"], vec![], vec!["AAPL"]]);
    cache.clear().await.expect("clear");
}

async fn offsets_match_entries(cache: &dyn Cache) {
    cache
        .put(&[
            quote("AAPL", "sim-nasdaq", 7, 1),
            trade("AAPL", "sim-nasdaq", 9, 2),
            trade("MSFT", "sim-nasdaq", 4, 3),
            quote("AAPL", "sim-nasdaq", 3, 4),
            quote("AAPL", "other", 5, 5),
        ])
        .await
        .expect("put");
    let got = cache
        .offsets(&[sym("MSFT"), sym("ZZZ"), sym("AAPL")])
        .await
        .expect("offsets");
    let v = |s: &str| Venue::new(s).expect("venue");
    assert_eq!(
        got,
        vec![
            vec![(v("sim-nasdaq"), [None, Some(4)])],
            vec![],
            vec![
                (v("other"), [Some(5), None]),
                (v("sim-nasdaq"), [Some(7), Some(9)])
            ]
        ],
        "offsets are those of the entries kept, per venue, in the order asked"
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
    let l = one(cache, "ETH-USDT").await;
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
    assert!(
        cache.get(&sym("AAPL")).await.expect("get").is_empty(),
        "clear must forget symbols"
    );
    assert!(cache.symbols().await.expect("symbols").is_empty());
}
