//! `GET /v1/history/trades|quotes|bars`: history over REST.
//!
//! The gateway parses and checks the request; a [`HistorySource`] (the
//! binary's query engine over the hot tier and the lake) answers it.
//!
//! Parameters:
//! - `symbol` (required): a canonical symbol; for trades and quotes over a
//!   range, up to [`MAX_SYMBOLS`] separated by commas (`AAPL,MSFT`): their
//!   rows merged in the one order;
//! - `venue`: a canonical venue id (`coinbase`, `sim-nasdaq`): only that
//!   venue's rows, bars or quote. Without it trades and quotes are every
//!   venue's (each row names its own), bars are one series per venue (each
//!   bar names its venue), and `at` answers every venue's last quote;
//! - `from`, `to`: RFC 3339 times (`2024-05-01T13:30:00Z`) or Unix
//!   nanoseconds; the range is `[from, to)` of `ts_exchange`. Default: the
//!   last hour up to now;
//! - `interval` (bars): `250ms`, `5s`, `1m`, `15m`, `1h`, `1d`; default `1m`;
//! - `limit` (trades, quotes): most rows, default 1000, at most 100000. A
//!   cut answer carries `"next"`, a token for the following page;
//! - `cursor` (trades, quotes): the `next` of the previous page (the same
//!   request otherwise): the rows after that page's last one;
//! - `at` (quotes): instead of a range, the last quote at or before it
//!   (`quote`), and the last of each venue (`quotes`);
//! - `format` (trades, quotes): `json` (default), `csv` or `arrow` (an
//!   Arrow IPC stream); or `Accept: text/csv` or
//!   `application/vnd.apache.arrow.stream`. CSV and Arrow answers carry
//!   `x-mdhub-truncated` and, when cut, `x-mdhub-next` (the cursor).
//!
//! `GET /v1/history/sql?q=SELECT…` runs one read-only SQL statement over the
//! tables `trades` and `quotes` (no DDL, DML, `COPY` or `SET`) and answers
//! `{"columns", "rows", "truncated"}`, decimals as exact text.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use mdhub_types::{ChannelSet, Symbol, Timestamp, Topic, Venue};
use serde_json::json;

use crate::Shared;

pub mod csv;
mod cursor;

pub use cursor::{Cursor, CursorError};

/// What is asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryKind {
    /// Trades in the range.
    Trades,
    /// Quotes in the range.
    Quotes,
    /// OHLCV bars of trades.
    Bars,
    /// The last quote at or before `at` (`/v1/history/quotes?…&at=`).
    LastQuote,
}

/// A checked history request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryRequest {
    /// What is asked for.
    pub kind: HistoryKind,
    /// The symbol (the first of `symbols`).
    pub symbol: Symbol,
    /// Every symbol asked for, sorted, without repeats (several only for
    /// trades and quotes over a range).
    pub symbols: Vec<Symbol>,
    /// Only this venue's data (`venue=`); every venue's when `None`.
    pub venue: Option<Venue>,
    /// Start of the range (inclusive), `ts_exchange`.
    pub from: Timestamp,
    /// End of the range (exclusive).
    pub to: Timestamp,
    /// Bar width (bars only).
    pub interval: Duration,
    /// Most rows (trades, quotes).
    pub limit: usize,
    /// Only the rows after this one (trades, quotes: `cursor=`).
    pub cursor: Option<Cursor>,
    /// The time of a [`HistoryKind::LastQuote`].
    pub at: Option<Timestamp>,
}

/// How a trades or quotes answer is encoded (`format=`, `Accept`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowFormat {
    /// A JSON document (the default).
    Json,
    /// CSV with a header row ([`csv`]).
    Csv,
    /// An Arrow IPC stream: the schema, then record batches.
    Arrow,
}

/// Why a history request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HistoryFailure {
    /// The request cannot be answered as asked (400).
    Invalid(String),
    /// The history store failed (500).
    Failed(String),
    /// The query hit a bound (`code`: `query_timeout`,
    /// `query_memory_exceeded`, `query_result_too_large`, `query_failed`).
    Limit(&'static str, String),
}

/// Answers history requests (implemented over the query engine).
#[async_trait::async_trait]
pub trait HistorySource: Send + Sync + std::fmt::Debug {
    /// The JSON document for `req`.
    async fn query(&self, req: HistoryRequest) -> Result<serde_json::Value, HistoryFailure>;
    /// `{"columns": [...], "rows": [...], "truncated": bool}` for one
    /// read-only SQL statement, at most `limit` rows.
    async fn sql(&self, sql: &str, limit: usize) -> Result<serde_json::Value, HistoryFailure>;
    /// A trades or quotes request's page as CSV or an Arrow IPC stream,
    /// and the cursor of the next page when the page was cut at `limit`.
    async fn rows(
        &self,
        req: HistoryRequest,
        format: RowFormat,
    ) -> Result<(Vec<u8>, Option<Cursor>), HistoryFailure> {
        let _ = (req, format);
        Err(HistoryFailure::Invalid(
            "this process answers history as JSON only".into(),
        ))
    }
    /// The same answer as an Arrow IPC stream (schema, then record
    /// batches), and whether it was truncated at `limit` rows.
    async fn sql_arrow(&self, sql: &str, limit: usize) -> Result<(Vec<u8>, bool), HistoryFailure> {
        let _ = (sql, limit);
        Err(HistoryFailure::Invalid(
            "this process answers SQL as JSON only".into(),
        ))
    }
}

/// The media type of an Arrow IPC stream.
pub const ARROW_STREAM: &str = "application/vnd.apache.arrow.stream";

/// Most rows one request may ask for.
pub const MAX_LIMIT: usize = 100_000;

/// Most symbols one trades or quotes request may name.
pub const MAX_SYMBOLS: usize = 32;

/// Why `grant` may not read this history, if it may not: free-form SQL
/// needs every symbol; the rest need the symbol and the channel.
fn refusal(grant: &crate::auth::Grant, kind: &str, symbol: Option<&String>) -> Option<String> {
    if kind == "sql" {
        return (!grant.allows_all())
            .then(|| "SQL reads every symbol: it needs a credential entitled to \"*\"".into());
    }
    let channel = if kind == "quotes" {
        Topic::Quotes
    } else {
        Topic::Trades
    };
    let channel_ok = !grant.channels(ChannelSet::of(channel)).is_empty();
    symbol?
        .split(',')
        .map(|s| s.trim().to_ascii_uppercase())
        .find(|sym| !(channel_ok && grant.allows(sym)))
        .map(|sym| format!("not entitled to the {kind} of {sym}"))
}

/// How many history requests run at once: in all, and per authenticated
/// user. A request over either bound is refused at once (no queue).
#[derive(Debug)]
pub(crate) struct QueryPermits {
    all: Arc<tokio::sync::Semaphore>,
    per_user: usize,
    users: parking_lot::Mutex<HashMap<String, usize>>,
}

/// A running history request's place; released on drop.
#[derive(Debug)]
pub(crate) struct QueryPermit {
    _all: tokio::sync::OwnedSemaphorePermit,
    user: Option<String>,
    permits: Arc<QueryPermits>,
}

impl QueryPermits {
    pub(crate) fn new(all: usize, per_user: usize) -> Arc<QueryPermits> {
        Arc::new(QueryPermits {
            all: Arc::new(tokio::sync::Semaphore::new(all)),
            per_user,
            users: Default::default(),
        })
    }

    /// A place for `grant`'s request, or why there is none.
    fn take(self: &Arc<Self>, grant: &crate::auth::Grant) -> Result<QueryPermit, String> {
        let all = self.all.clone().try_acquire_owned().map_err(|_| {
            "the server runs as many history requests as it allows; retry shortly".to_string()
        })?;
        let user = (grant.user != crate::auth::Grant::open().user).then(|| grant.user.clone());
        if let Some(u) = &user {
            let mut users = self.users.lock();
            let n = users.entry(u.clone()).or_default();
            if *n >= self.per_user {
                return Err(format!(
                    "{u} runs {n} history requests already (at most {} at once)",
                    self.per_user
                ));
            }
            *n += 1;
        }
        Ok(QueryPermit {
            _all: all,
            user,
            permits: self.clone(),
        })
    }
}

impl Drop for QueryPermit {
    fn drop(&mut self) {
        if let Some(u) = &self.user {
            let mut users = self.permits.users.lock();
            if let Some(n) = users.get_mut(u) {
                *n -= 1;
                if *n == 0 {
                    users.remove(u);
                }
            }
        }
    }
}

/// The answer to a failed history request, with its stable code.
fn failed(f: HistoryFailure) -> Response {
    match f {
        HistoryFailure::Invalid(m) => bad(m),
        HistoryFailure::Limit(code, m) => {
            let status = match code {
                "query_timeout" => StatusCode::GATEWAY_TIMEOUT,
                "query_failed" => StatusCode::INTERNAL_SERVER_ERROR,
                _ => StatusCode::UNPROCESSABLE_ENTITY,
            };
            tracing::warn!(code, error = %m, "history query stopped at a limit");
            crate::rest::error(status, code, m)
        }
        HistoryFailure::Failed(m) => {
            tracing::warn!(error = %m, "history query failed");
            crate::rest::error(StatusCode::INTERNAL_SERVER_ERROR, "history_failed", m)
        }
    }
}

fn bad(message: impl Into<String>) -> Response {
    crate::rest::error(StatusCode::BAD_REQUEST, "bad_request", message.into())
}

pub(crate) async fn handler(
    State(s): State<Arc<Shared>>,
    Path(kind): Path<String>,
    headers: axum::http::HeaderMap,
    axum::extract::RawQuery(raw): axum::extract::RawQuery,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let grant = match crate::rest::grant(&s, &headers, raw.as_deref()) {
        Ok(g) => g,
        Err(refused) => return *refused,
    };
    if let Some(why) = refusal(&grant, &kind, q.get("symbol")) {
        return crate::rest::error(StatusCode::FORBIDDEN, "not_entitled", why);
    }
    let _permit = match s.queries.take(&grant) {
        Ok(p) => p,
        Err(why) => {
            return crate::rest::error(StatusCode::TOO_MANY_REQUESTS, "too_many_queries", why);
        }
    };
    let kind = match kind.as_str() {
        "sql" => return sql(s, q, &headers).await,
        "trades" => HistoryKind::Trades,
        "quotes" => HistoryKind::Quotes,
        "bars" => HistoryKind::Bars,
        other => {
            return crate::rest::error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no history of {other:?}: use trades, quotes, bars or sql"),
            );
        }
    };
    let Some(source) = s.history.clone() else {
        return crate::rest::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_history",
            "this process serves no history (run the archiver, or set history.lake_url)".into(),
        );
    };
    let mut req = match parse(kind, &q, Timestamp::now()) {
        Ok(r) => r,
        Err(message) => return bad(message),
    };
    req.cursor = match parse_cursor(&req, &q) {
        Ok(c) => c,
        Err(e) => {
            return crate::rest::error(StatusCode::BAD_REQUEST, "bad_cursor", e.to_string());
        }
    };
    let format = match row_format(&req, &q, &headers) {
        Ok(f) => f,
        Err(message) => return bad(message),
    };
    if format != RowFormat::Json {
        let media = if format == RowFormat::Csv {
            csv::CSV
        } else {
            ARROW_STREAM
        };
        return match source.rows(req, format).await {
            Ok((bytes, next)) => encoded(media, bytes, next.is_some(), next.map(|c| c.token())),
            Err(f) => failed(f),
        };
    }
    match source.query(req).await {
        Ok(doc) => Json(doc).into_response(),
        Err(f) => failed(f),
    }
}

/// Check the query string of a history request.
pub fn parse(
    kind: HistoryKind,
    q: &HashMap<String, String>,
    now: Timestamp,
) -> Result<HistoryRequest, String> {
    let given = q.get("symbol").ok_or("give ?symbol=AAPL")?;
    let mut symbols = std::collections::BTreeSet::new();
    for s in given.split(',').map(str::trim) {
        if symbols.len() == MAX_SYMBOLS {
            return Err(format!("symbol=: at most {MAX_SYMBOLS} symbols"));
        }
        symbols.insert(Symbol::new(s).map_err(|e| format!("symbol {s:?}: {e}"))?);
    }
    let symbols: Vec<Symbol> = symbols.into_iter().collect();
    let Some(symbol) = symbols.first().cloned() else {
        return Err("give ?symbol=AAPL".into());
    };
    let ranged = matches!(kind, HistoryKind::Trades | HistoryKind::Quotes) && !q.contains_key("at");
    if symbols.len() > 1 && !ranged {
        return Err(format!(
            "symbol={given:?}: several symbols for trades and quotes over a range only"
        ));
    }
    let venue = q
        .get("venue")
        .map(|v| Venue::new(v.trim()).map_err(|e| format!("venue={v:?}: {e}")))
        .transpose()?;
    let time = |key: &str| -> Result<Option<Timestamp>, String> {
        q.get(key)
            .map(|v| parse_time(v).ok_or_else(|| format!("{key}={v:?}: expected an RFC 3339 time (2024-05-01T13:30:00Z) or Unix nanoseconds")))
            .transpose()
    };
    if kind == HistoryKind::Quotes
        && let Some(at) = time("at")?
    {
        return Ok(HistoryRequest {
            kind: HistoryKind::LastQuote,
            symbol,
            symbols,
            venue,
            from: at,
            to: at,
            interval: Duration::from_secs(60),
            limit: 1,
            cursor: None,
            at: Some(at),
        });
    }
    let to = time("to")?.unwrap_or(now);
    let from = time("from")?.unwrap_or(to.add_nanos(-3_600_000_000_000));
    if from >= to {
        return Err(format!("from ({from}) must be before to ({to})"));
    }
    let interval = match q.get("interval") {
        Some(v) => parse_interval(v).ok_or_else(|| {
            format!("interval={v:?}: expected a number and a unit: 250ms, 5s, 1m, 1h, 1d")
        })?,
        None => Duration::from_secs(60),
    };
    let limit = match q.get("limit") {
        Some(v) => match v.parse::<usize>() {
            Ok(n) if (1..=MAX_LIMIT).contains(&n) => n,
            _ => return Err(format!("limit={v:?}: expected 1 to {MAX_LIMIT}")),
        },
        None => 1000,
    };
    Ok(HistoryRequest {
        kind,
        symbol,
        symbols,
        venue,
        from,
        to,
        interval,
        limit,
        cursor: None,
        at: None,
    })
}

/// The `cursor=` of `q`, checked against the request it pages.
pub fn parse_cursor(
    req: &HistoryRequest,
    q: &HashMap<String, String>,
) -> Result<Option<Cursor>, CursorError> {
    let Some(token) = q.get("cursor") else {
        return Ok(None);
    };
    if !matches!(req.kind, HistoryKind::Trades | HistoryKind::Quotes) {
        return Err(CursorError::NotPaged);
    }
    Cursor::decode(token)?.within(req.from, req.to).map(Some)
}

/// The encoding `q` and `headers` ask for: `format=` first, then `Accept`.
/// Only trades and quotes over a range answer other than JSON.
fn row_format(
    req: &HistoryRequest,
    q: &HashMap<String, String>,
    headers: &axum::http::HeaderMap,
) -> Result<RowFormat, String> {
    let format = match q.get("format").map(String::as_str) {
        None if accepts(headers, ARROW_STREAM) => RowFormat::Arrow,
        None if accepts(headers, "text/csv") => RowFormat::Csv,
        None | Some("json") => RowFormat::Json,
        Some("csv") => RowFormat::Csv,
        Some("arrow") => RowFormat::Arrow,
        Some(other) => return Err(format!("format={other:?}: expected json, csv or arrow")),
    };
    let ranged = matches!(req.kind, HistoryKind::Trades | HistoryKind::Quotes);
    if format != RowFormat::Json && !ranged && q.contains_key("format") {
        return Err(
            "format=csv and format=arrow answer trades and quotes over a range; \
                    bars and at= answer JSON"
                .into(),
        );
    }
    Ok(if ranged { format } else { RowFormat::Json })
}

/// A CSV or Arrow answer: `bytes` as `media`, with `x-mdhub-truncated`
/// and, when there is a next page, `x-mdhub-next`.
fn encoded(media: &'static str, bytes: Vec<u8>, truncated: bool, next: Option<String>) -> Response {
    let mut response = (
        [
            (axum::http::header::CONTENT_TYPE, media),
            (
                axum::http::HeaderName::from_static("x-mdhub-truncated"),
                if truncated { "true" } else { "false" },
            ),
        ],
        bytes,
    )
        .into_response();
    if let Some(v) = next.and_then(|n| axum::http::HeaderValue::from_str(&n).ok()) {
        response
            .headers_mut()
            .insert(axum::http::HeaderName::from_static("x-mdhub-next"), v);
    }
    response
}

/// `GET /v1/history/sql?q=SELECT…[&limit=N][&format=json|arrow]` (or
/// `Accept: application/vnd.apache.arrow.stream`).
async fn sql(
    s: Arc<Shared>,
    q: HashMap<String, String>,
    headers: &axum::http::HeaderMap,
) -> Response {
    let Some(source) = s.history.clone() else {
        return crate::rest::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "no_history",
            "this process serves no history".into(),
        );
    };
    let Some(text) = q.get("q").filter(|t| !t.trim().is_empty()) else {
        return bad("give ?q=SELECT … (tables trades and quotes)");
    };
    let limit = match q.get("limit").map(|v| v.parse::<usize>()) {
        None => MAX_LIMIT,
        Some(Ok(n)) if (1..=MAX_LIMIT).contains(&n) => n,
        Some(_) => return bad(format!("limit: expected 1 to {MAX_LIMIT}")),
    };
    let arrow = match q.get("format").map(String::as_str) {
        None | Some("json") => accepts(headers, ARROW_STREAM),
        Some("arrow") => true,
        Some(other) => return bad(format!("format {other:?}: expected json or arrow")),
    };
    if arrow {
        return match source.sql_arrow(text, limit).await {
            Ok((bytes, truncated)) => encoded(ARROW_STREAM, bytes, truncated, None),
            Err(f) => failed(f),
        };
    }
    match source.sql(text, limit).await {
        Ok(doc) => Json(doc).into_response(),
        Err(f) => failed(f),
    }
}

/// Whether the client asked for `media` with `Accept`.
fn accepts(headers: &axum::http::HeaderMap, media: &str) -> bool {
    headers
        .get_all(axum::http::header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.split(',').any(|t| t.trim().starts_with(media)))
}

/// An RFC 3339 time or Unix nanoseconds.
pub fn parse_time(v: &str) -> Option<Timestamp> {
    let v = v.trim();
    if let Ok(n) = v.parse::<i64>() {
        return Some(Timestamp::from_nanos(n));
    }
    Timestamp::parse_rfc3339(v).ok()
}

/// `250ms`, `5s`, `1m`, `1h`, `1d` (a positive whole number and a unit).
pub fn parse_interval(v: &str) -> Option<Duration> {
    let v = v.trim();
    let split = v.find(|c: char| !c.is_ascii_digit())?;
    let (n, unit) = v.split_at(split);
    let n: u64 = n.parse().ok().filter(|n| *n > 0)?;
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" | "min" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms).map(Duration::from_millis)
}

/// The JSON of a request echoed back in an answer (`venue` only when the
/// request names one).
pub fn echo(req: &HistoryRequest) -> serde_json::Value {
    let mut doc = json!({
        "symbol": req.symbol,
        "from": req.from,
        "to": req.to,
    });
    if req.symbols.len() > 1 {
        let all: Vec<&str> = req.symbols.iter().map(|s| s.as_str()).collect();
        doc["symbol"] = json!(all.join(","));
        doc["symbols"] = json!(all);
    }
    if let Some(v) = &req.venue {
        doc["venue"] = json!(v);
    }
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parses_and_defaults() {
        let now = Timestamp::from_secs(1_714_600_000);
        let r = parse(
            HistoryKind::Bars,
            &q(&[("symbol", "AAPL"), ("interval", "5m")]),
            now,
        )
        .unwrap();
        assert_eq!((r.from, r.to), (now.add_nanos(-3_600_000_000_000), now));
        assert_eq!(r.interval, Duration::from_secs(300));
        assert_eq!(r.limit, 1000);
        let r = parse(
            HistoryKind::Trades,
            &q(&[
                ("symbol", "BTC-USD"),
                ("from", "2024-05-01T00:00:00Z"),
                ("to", "1714608000000000000"),
                ("limit", "5"),
            ]),
            now,
        )
        .unwrap();
        assert_eq!(r.from, Timestamp::from_secs(1_714_521_600));
        assert_eq!(r.to, Timestamp::from_secs(1_714_608_000));
        assert_eq!(r.limit, 5);
        let r = parse(
            HistoryKind::Quotes,
            &q(&[("symbol", "EUR-USD"), ("at", "2024-05-01T16:00:00Z")]),
            now,
        )
        .unwrap();
        assert_eq!(r.kind, HistoryKind::LastQuote);
        assert_eq!(r.at, Some(Timestamp::from_secs(1_714_579_200)));
        assert_eq!(r.venue, None);
        let r = parse(
            HistoryKind::Bars,
            &q(&[("symbol", "BTC-USDT"), ("venue", "sim-a")]),
            now,
        )
        .unwrap();
        assert_eq!(r.venue, Some(Venue::new("sim-a").unwrap()));
        assert_eq!(echo(&r)["venue"], "sim-a");
        assert_eq!(r.symbols, vec![r.symbol.clone()]);
        assert!(echo(&r).get("symbols").is_none());
        let r = parse(
            HistoryKind::Trades,
            &q(&[("symbol", "MSFT, AAPL,MSFT")]),
            now,
        )
        .unwrap();
        let names: Vec<&str> = r.symbols.iter().map(|s| s.as_str()).collect();
        assert_eq!((r.symbol.as_str(), names), ("AAPL", vec!["AAPL", "MSFT"]));
        assert_eq!(echo(&r)["symbol"], "AAPL,MSFT");
        assert_eq!(echo(&r)["symbols"], json!(["AAPL", "MSFT"]));
    }

    #[test]
    fn rejects_with_a_reason() {
        let now = Timestamp::from_secs(1_714_600_000);
        for (pairs, needle) in [
            (vec![], "symbol"),
            (vec![("symbol", "aapl")], "symbol"),
            (vec![("symbol", "AAPL"), ("from", "yesterday")], "from="),
            (
                vec![("symbol", "AAPL"), ("from", "10"), ("to", "5")],
                "before",
            ),
            (vec![("symbol", "AAPL"), ("interval", "0s")], "interval"),
            (vec![("symbol", "AAPL"), ("interval", "1w")], "interval"),
            (vec![("symbol", "AAPL"), ("limit", "0")], "limit"),
            (vec![("symbol", "AAPL"), ("venue", "Coinbase")], "venue="),
            (vec![("symbol", "AAPL"), ("venue", "")], "venue="),
        ] {
            let e = parse(HistoryKind::Bars, &q(&pairs), now).unwrap_err();
            assert!(e.contains(needle), "{pairs:?}: {e}");
        }
        for (kind, pairs) in [
            (HistoryKind::Bars, vec![("symbol", "AAPL,MSFT")]),
            (
                HistoryKind::Quotes,
                vec![("symbol", "AAPL,MSFT"), ("at", "5")],
            ),
            (HistoryKind::Trades, vec![("symbol", "AAPL,")]),
        ] {
            let e = parse(kind, &q(&pairs), now).unwrap_err();
            assert!(e.contains("symbol"), "{pairs:?}: {e}");
        }
        let many: Vec<String> = (0..=MAX_SYMBOLS).map(|i| format!("S{i}")).collect();
        let e = parse(HistoryKind::Trades, &q(&[("symbol", &many.join(","))]), now).unwrap_err();
        assert!(e.contains("at most"), "{e}");
        assert_eq!(parse_interval("250ms"), Some(Duration::from_millis(250)));
        assert_eq!(parse_interval("1d"), Some(Duration::from_secs(86_400)));
    }

    #[test]
    fn cursors_page_ranges_of_trades_and_quotes_only() {
        let now = Timestamp::from_secs(1_714_600_000);
        let range = [("symbol", "AAPL"), ("from", "100"), ("to", "200")];
        let with = |kind, cursor: &str| {
            let mut pairs = range.to_vec();
            pairs.push(("cursor", cursor));
            let q = q(&pairs);
            parse_cursor(&parse(kind, &q, now).unwrap(), &q)
        };
        let c = Cursor::after(Timestamp::from_nanos(150), 3, 7);
        assert_eq!(with(HistoryKind::Trades, &c.token()), Ok(Some(c)));
        assert_eq!(with(HistoryKind::Quotes, &c.token()), Ok(Some(c)));
        let q0 = q(&range);
        assert_eq!(
            parse_cursor(&parse(HistoryKind::Trades, &q0, now).unwrap(), &q0),
            Ok(None)
        );
        assert_eq!(
            with(HistoryKind::Bars, &c.token()),
            Err(CursorError::NotPaged)
        );
        assert!(matches!(
            with(HistoryKind::Trades, "150.3"),
            Err(CursorError::Malformed(_))
        ));
        assert!(matches!(
            with(HistoryKind::Trades, "250.3.7"),
            Err(CursorError::OutOfRange(_))
        ));
        let mut at = vec![("symbol", "AAPL"), ("at", "150")];
        at.push(("cursor", "150.3.7"));
        let at = q(&at);
        let req = parse(HistoryKind::Quotes, &at, now).unwrap();
        assert_eq!(parse_cursor(&req, &at), Err(CursorError::NotPaged));
    }

    #[test]
    fn every_symbol_of_a_request_must_be_entitled() {
        let grant = crate::auth::Grant::of_symbols(&["AAPL", "MSFT"]);
        let ask = |kind: &str, symbol: &str| refusal(&grant, kind, Some(&symbol.to_string()));
        assert_eq!(ask("trades", "AAPL,msft"), None);
        let why = ask("trades", "AAPL,TSLA,MSFT").unwrap();
        assert!(why.contains("TSLA"), "{why}");
        assert!(ask("quotes", "TSLA").is_some());
        assert!(ask("sql", "AAPL").is_some());
    }

    #[test]
    fn formats_from_the_query_then_accept() {
        use axum::http::{HeaderMap, HeaderValue, header::ACCEPT};
        let now = Timestamp::from_secs(1_714_600_000);
        let accept = |v: &'static str| {
            let mut h = HeaderMap::new();
            h.insert(ACCEPT, HeaderValue::from_static(v));
            h
        };
        let none = HeaderMap::new();
        let trades = parse(HistoryKind::Trades, &q(&[("symbol", "AAPL")]), now).unwrap();
        let bars = parse(HistoryKind::Bars, &q(&[("symbol", "AAPL")]), now).unwrap();
        for (pairs, headers, kind, want) in [
            (vec![], &none, &trades, Ok(RowFormat::Json)),
            (vec![("format", "csv")], &none, &trades, Ok(RowFormat::Csv)),
            (
                vec![("format", "arrow")],
                &none,
                &trades,
                Ok(RowFormat::Arrow),
            ),
            (
                vec![("format", "json")],
                &accept("text/csv"),
                &trades,
                Ok(RowFormat::Json),
            ),
            (vec![], &accept("text/csv"), &trades, Ok(RowFormat::Csv)),
            (
                vec![],
                &accept("text/html, application/vnd.apache.arrow.stream"),
                &trades,
                Ok(RowFormat::Arrow),
            ),
            (vec![], &accept("text/csv"), &bars, Ok(RowFormat::Json)),
        ] {
            assert_eq!(row_format(kind, &q(&pairs), headers), want, "{pairs:?}");
        }
        assert!(
            row_format(&trades, &q(&[("format", "xml")]), &none)
                .unwrap_err()
                .contains("xml")
        );
        assert!(
            row_format(&bars, &q(&[("format", "csv")]), &none)
                .unwrap_err()
                .contains("bars")
        );
    }
}
