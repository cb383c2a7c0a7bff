//! REST endpoints on the gateway's listener.
//!
//! - `GET /v1/snapshot?symbols=AAPL,BTC-USD@kraken` — latest quote and trade per symbol and venue, with positions
//! - `GET /v1/symbols` — the instrument directory (symbol, venue, last update)
//! - `GET /v1/status` — log epoch and watermarks, clients, and the sections
//!   other parts add (feeds, ingest)
//! - `GET /v1/history/trades|quotes|bars?symbol=&from=&to=` — history (see [`crate::history`])
//! - `GET /healthz` — the process is up
//! - `GET /readyz` — 200 when the gateway follows the log, the cache answers and no
//!   critical stage is failing, else 503 (`failing` lists what is not working);
//!   `"degraded": true` while the shared cache (Redis) is down and snapshots come from
//!   the gateway's own view
//! - `GET /metrics` — Prometheus text
//! - `GET /`, `/mdhub.js`, `/web/{file}` — the browser UI and the JavaScript
//!   client (see [`crate::web`])

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use axum::Json;
use axum::Router;
use axum::extract::{Query, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use mdhub_types::{ChannelSet, Instrument, Symbol, Topic};
use serde_json::json;

use crate::Shared;

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v1/snapshot", get(snapshot))
        .route("/v1/symbols", get(symbols))
        .route("/v1/status", get(status))
        .route("/v1/history/{kind}", get(crate::history::handler))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .merge(crate::web::routes())
}

/// What a data request may read: everything when auth is off, else the
/// grant of the credential it presents (`Authorization: Bearer …` or
/// `?token=`), or a 401 to answer with.
pub(crate) fn grant(
    s: &Shared,
    headers: &axum::http::HeaderMap,
    query: Option<&str>,
) -> Result<crate::auth::Grant, Box<Response>> {
    if !s.auth.required() {
        return Ok(crate::auth::Grant::open());
    }
    let credential = crate::auth::presented(headers, query).unwrap_or_default();
    s.auth.verify(&credential).map_err(|e| {
        Box::new(error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            e.to_string(),
        ))
    })
}

pub(crate) fn error(status: StatusCode, code: &str, message: String) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message}})),
    )
        .into_response()
}

async fn snapshot(
    State(s): State<Arc<Shared>>,
    headers: axum::http::HeaderMap,
    RawQuery(raw): RawQuery,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let grant = match grant(&s, &headers, raw.as_deref()) {
        Ok(g) => g,
        Err(refused) => return *refused,
    };
    let Some(list) = q.get("symbols").filter(|l| !l.trim().is_empty()) else {
        return error(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "give ?symbols=AAPL,MSFT".into(),
        );
    };
    let mut wanted = Vec::new();
    let mut invalid = Vec::new();
    let mut unentitled = Vec::new();
    // The channels of the snapshot the credential may see (as on the
    // WebSocket): a quotes-only grant gets quotes, never trades.
    let quotes = grant.channels(ChannelSet::of(Topic::Quotes)) == ChannelSet::of(Topic::Quotes);
    let trades = grant.channels(ChannelSet::of(Topic::Trades)) == ChannelSet::of(Topic::Trades);
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        match Instrument::parse(name) {
            Ok(inst) if (quotes || trades) && grant.allows(inst.symbol.as_str()) => {
                wanted.push((name, inst))
            }
            Ok(_) => unentitled.push(name.to_string()),
            Err(_) => invalid.push(name.to_string()),
        }
    }
    if wanted.len() > s.cfg.max_symbols {
        return error(
            StatusCode::BAD_REQUEST,
            "too_many_symbols",
            format!("at most {} symbols", s.cfg.max_symbols),
        );
    }
    let symbols: Vec<Symbol> = wanted.iter().map(|(_, i)| i.symbol.clone()).collect();
    let latest = match s.cache.get_many(&symbols).await {
        Ok(l) => l,
        Err(e) => {
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "cache_unavailable",
                e.to_string(),
            );
        }
    };
    let mut data = serde_json::Map::new();
    let mut unknown = Vec::new();
    let entry = |p: Option<mdhub_types::Positioned>| {
        p.map(|p| json!({"pos": p.position, "data": p.event}))
            .unwrap_or(serde_json::Value::Null)
    };
    for ((name, inst), venues) in wanted.into_iter().zip(latest) {
        let mut found = false;
        let by_venue = data
            .entry(inst.symbol.to_string())
            .or_insert_with(|| json!({}));
        for l in venues
            .into_iter()
            .filter(|l| inst.matches(l.venue.as_str()))
        {
            found = true;
            let mut one = serde_json::Map::new();
            if quotes {
                one.insert("quote".into(), entry(l.quote));
            }
            if trades {
                one.insert("trade".into(), entry(l.trade));
            }
            by_venue[l.venue.as_str()] = serde_json::Value::Object(one);
        }
        if !found {
            unknown.push(name.to_string());
        }
    }
    data.retain(|_, v| v.as_object().is_some_and(|m| !m.is_empty()));
    Json(json!({
        "epoch": s.epoch,
        "symbols": data,
        "unknown": unknown,
        "invalid": invalid,
        "unentitled": unentitled,
    }))
    .into_response()
}

async fn symbols(State(s): State<Arc<Shared>>) -> Response {
    match s.cache.symbols().await {
        Ok(list) => Json(json!({"symbols": list})).into_response(),
        Err(e) => error(
            StatusCode::SERVICE_UNAVAILABLE,
            "cache_unavailable",
            e.to_string(),
        ),
    }
}

async fn status(State(s): State<Arc<Shared>>) -> Response {
    let mut log = serde_json::Map::new();
    for topic in Topic::ALL {
        let mut parts = Vec::new();
        for p in 0..s.bus.partitions(topic) {
            let (start, end) = s.bus.watermarks(topic, p).await.unwrap_or((0, 0));
            parts.push(json!({"partition": p, "start": start, "end": end}));
        }
        log.insert(
            topic.log_name().to_string(),
            serde_json::Value::Array(parts),
        );
    }
    let mut doc = json!({
        "server": concat!("mdhub/", env!("CARGO_PKG_VERSION")),
        "uptime_secs": s.started.elapsed().as_secs(),
        "epoch": s.epoch,
        "encoding": s.bus.encoding(),
        "ready": s.hub.is_ready(),
        "log": log,
        "clients": {
            "connections": s.metrics.connections.load(Ordering::Relaxed),
            "queued_frames": s.hub.queued(),
        },
    });
    for src in &s.status {
        doc[src.section()] = src.status();
    }
    Json(doc).into_response()
}

async fn readyz(State(s): State<Arc<Shared>>) -> Response {
    let cache = s.cache.health().await;
    // A degraded cache (Redis down, snapshots from this gateway's own view)
    // still serves: ready, and says so. So does a failing background stage
    // (the archiver, a writer): the log keeps its records meanwhile.
    let degraded = match &cache {
        Ok(()) => s.cache.degraded().await,
        Err(_) => None,
    };
    let problems: Vec<crate::Problem> = s.health.iter().flat_map(|h| h.problems()).collect();
    let critical = problems.iter().any(|p| p.critical);
    let ready = s.hub.is_ready() && cache.is_ok() && !critical;
    let body = json!({
        "ready": ready,
        "degraded": degraded.is_some() || !problems.is_empty(),
        "log": if s.hub.is_ready() { "following" } else { "not following" },
        "cache": match (&cache, &degraded) {
            (Err(e), _) => e.to_string(),
            (Ok(()), Some(why)) => format!("degraded: {why}"),
            (Ok(()), None) => "ok".to_string(),
        },
        "failing": problems,
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(s): State<Arc<Shared>>) -> Response {
    let mut out = String::with_capacity(4096);
    s.metrics.render(s.hub.queued(), &mut out);
    let _ = std::fmt::Write::write_fmt(
        &mut out,
        format_args!(
            "# HELP mdhub_gateway_auth_refused_total Credentials refused (unknown key, bad or expired token).\n# TYPE mdhub_gateway_auth_refused_total counter\nmdhub_gateway_auth_refused_total {}\n",
            s.auth.refused()
        ),
    );
    for m in &s.extra_metrics {
        m.render(&mut out);
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}
