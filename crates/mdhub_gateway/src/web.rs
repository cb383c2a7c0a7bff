//! The browser UI and the JavaScript client, embedded in the binary.
//!
//! - `GET /` — the trading UI (`web/index.html`)
//! - `GET /mdhub.js` — the client module third-party pages import
//! - `GET /web/{file}` — the UI's scripts, styles and vendored libraries,
//!   and its web app manifest and icons (so a phone can install it)
//!
//! Every answer carries a strong `ETag` (a hash of the content) and
//! `Cache-Control: no-cache`, so browsers revalidate and get a 304 until the
//! binary serves something new. The files are public and static, so any
//! origin may load them (module scripts are fetched with CORS).

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::Path;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::Shared;

/// An embedded file: its path under `web/` and its bytes.
struct Asset {
    path: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal) => {
        Asset {
            path: $path,
            body: include_bytes!(concat!("../web/", $path)),
        }
    };
}

static ASSETS: &[Asset] = &[
    asset!("index.html"),
    asset!("app.css"),
    asset!("app.js"),
    asset!("board.js"),
    asset!("chart.js"),
    asset!("mdhub.js"),
    asset!("tape.js"),
    asset!("manifest.webmanifest"),
    asset!("icon.svg"),
    asset!("icon-192.png"),
    asset!("icon-512.png"),
    asset!("vendor/lightweight-charts.standalone.production.mjs"),
    asset!("vendor/lightweight-charts.LICENSE"),
];

/// The ETag of each asset, in the order of [`ASSETS`].
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{:016x}\"", fnv1a(a.body)))
        .collect()
});

pub(crate) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { serve("index.html", &h) }),
        )
        .route(
            "/mdhub.js",
            get(|h: HeaderMap| async move { serve("mdhub.js", &h) }),
        )
        .route(
            "/web/{*file}",
            get(|Path(file): Path<String>, h: HeaderMap| async move { serve(&file, &h) }),
        )
}

fn serve(path: &str, request: &HeaderMap) -> Response {
    let Some(i) = ASSETS.iter().position(|a| a.path == path) else {
        return crate::rest::error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no file {path:?} in the web UI"),
        );
    };
    let etag = ETAGS[i].as_str();
    let headers = [
        (header::CONTENT_TYPE, content_type(path)),
        (header::ETAG, etag),
        (header::CACHE_CONTROL, "no-cache"),
        (header::ACCESS_CONTROL_ALLOW_ORIGIN, "*"),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    if matches_etag(request, etag) {
        return (StatusCode::NOT_MODIFIED, headers).into_response();
    }
    (headers, ASSETS[i].body).into_response()
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit_once('.').map_or("", |(_, ext)| ext) {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "webmanifest" => "application/manifest+json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        _ => "text/plain; charset=utf-8",
    }
}

/// Whether `If-None-Match` names `etag` (or is `*`).
fn matches_etag(request: &HeaderMap, etag: &str) -> bool {
    request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == etag || tag == "*")
}

/// FNV-1a, 64 bits: a content fingerprint for ETags (not a security hash).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_asset_has_a_type_and_distinct_tags() {
        assert_eq!(content_type("index.html"), "text/html; charset=utf-8");
        assert_eq!(
            content_type("manifest.webmanifest"),
            "application/manifest+json"
        );
        assert_eq!(content_type("icon-192.png"), "image/png");
        assert_eq!(
            content_type("vendor/lightweight-charts.standalone.production.mjs"),
            "text/javascript; charset=utf-8"
        );
        let mut tags = ETAGS.clone();
        tags.sort();
        tags.dedup();
        assert_eq!(tags.len(), ASSETS.len());
    }

    #[test]
    fn if_none_match_lists_are_understood() {
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, "\"a\", \"b\"".parse().unwrap());
        assert!(matches_etag(&h, "\"b\""));
        assert!(!matches_etag(&h, "\"c\""));
        h.insert(header::IF_NONE_MATCH, "*".parse().unwrap());
        assert!(matches_etag(&h, "\"c\""));
    }
}
