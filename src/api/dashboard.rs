//! The dashboard: the static assets of `web/`, embedded in the binary at compile time, served at
//! `/` (the page) and `/ui/{file}` (its scripts and styles), plus `/ui/config.json`, which tells
//! the page how this server signs users in. No asset is fetched from another host, so the page
//! works offline; every answer carries a strict Content-Security-Policy that also forbids it.
//!
//! Caching: each asset has a strong ETag (a SHA-256 of its bytes), answered with 304 on
//! `If-None-Match`; `no-cache` makes the browser revalidate, so a new binary's assets show at
//! once. The page itself needs no token: the data comes from the API, which checks the caller.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::LazyLock;

use super::AppState;
use crate::arm::extract::Path;
use crate::arm::ApiError;
use crate::identity::code_flow::{dashboard_redirect_uris, DASHBOARD_CLIENT_ID};
use crate::identity::AuthMode;

/// Scripts and styles from this origin only; no inline script; API calls to this origin only.
pub const CSP: &str =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// An embedded file: its name under `/ui/`, content type and bytes.
pub struct Asset {
    pub name: &'static str,
    pub content_type: &'static str,
    pub body: &'static [u8],
}

/// Every file of the dashboard. `index.html` is also the page at `/`.
pub const ASSETS: &[Asset] = &[
    Asset {
        name: "index.html",
        content_type: "text/html; charset=utf-8",
        body: include_bytes!("../../web/index.html"),
    },
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/api.js"),
    },
    Asset {
        name: "auth.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/auth.js"),
    },
    Asset {
        name: "chart.js",
        content_type: "text/javascript; charset=utf-8",
        body: include_bytes!("../../web/chart.js"),
    },
    Asset {
        name: "style.css",
        content_type: "text/css; charset=utf-8",
        body: include_bytes!("../../web/style.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        body: include_bytes!("../../web/favicon.svg"),
    },
];

/// The ETag of each asset, in the order of [`ASSETS`], computed once.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| format!("\"{}\"", URL_SAFE_NO_PAD.encode(&Sha256::digest(a.body)[..16])))
        .collect()
});

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(index))
        .route("/ui/config.json", get(config))
        .route("/ui/{file}", get(asset))
}

fn secure_headers(r: &mut Response) {
    let h = r.headers_mut();
    h.insert("content-security-policy", HeaderValue::from_static(CSP));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

fn serve(index: usize, headers: &HeaderMap) -> Response {
    let (asset, etag) = (&ASSETS[index], &ETAGS[index]);
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    let mut r = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut r = (StatusCode::OK, asset.body).into_response();
        r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
        r
    };
    let h = r.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    secure_headers(&mut r);
    r
}

async fn index(headers: HeaderMap) -> Response {
    serve(0, &headers)
}

async fn asset(Path(file): Path<String>, headers: HeaderMap, uri: Uri) -> Response {
    match ASSETS.iter().position(|a| a.name == file) {
        Some(i) => serve(i, &headers),
        // The same 404 as any other unknown path of this server.
        None => {
            let mut r = ApiError::NotFound(uri.path().to_string()).into_response();
            secure_headers(&mut r);
            r
        }
    }
}

/// How the page signs in: strict mode through the code flow on this server's authority, or no
/// sign-in under `--auth any`.
async fn config(State(state): State<AppState>) -> Response {
    let identity = &state.identity;
    let base = identity.public_url.as_str();
    let [redirect, _] = dashboard_redirect_uris(base);
    let body = json!({
        "auth": match identity.mode { AuthMode::Strict => "strict", AuthMode::Any => "any" },
        "authority": format!("{}/{}", base.trim_end_matches('/'), identity.default_tenant),
        "clientId": DASHBOARD_CLIENT_ID,
        "redirectUri": redirect,
        "scope": "https://management.azure.com/.default openid profile",
    });
    let mut r = crate::arm::json(StatusCode::OK, &body);
    r.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure_headers(&mut r);
    r
}
