//! Operations endpoints: `/healthz` (the process answers), `/readyz` (the store can read and
//! write) and Prometheus `/metrics` (requests by endpoint and status, and their latency).

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use std::time::Duration;

use super::AppState;

/// The process-wide recorder (metrics are global; several servers in one test process share it).
fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let recorder = PrometheusBuilder::new()
            .set_buckets(&[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0])
            .expect("static buckets are valid")
            .build_recorder();
        let handle = recorder.handle();
        // Another recorder may already be installed (embedding applications): then we only render ours.
        let _ = metrics::set_global_recorder(recorder);
        handle
    })
}

pub fn router() -> Router<AppState> {
    prometheus();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(render))
}

/// Record one ARM request.
pub fn record(endpoint: &'static str, status: StatusCode, elapsed: Duration) {
    metrics::counter!("securescore_requests_total", "endpoint" => endpoint, "status" => status_label(status))
        .increment(1);
    metrics::histogram!("securescore_request_duration_seconds", "endpoint" => endpoint)
        .record(elapsed.as_secs_f64());
}

/// The status as a static label (no allocation on the request path).
fn status_label(status: StatusCode) -> &'static str {
    match status.as_u16() {
        200 => "200",
        201 => "201",
        204 => "204",
        400 => "400",
        401 => "401",
        403 => "403",
        404 => "404",
        405 => "405",
        408 => "408",
        409 => "409",
        413 => "413",
        429 => "429",
        500 => "500",
        503 => "503",
        _ => "other",
    }
}

async fn render() -> Response {
    let mut r = prometheus().render().into_response();
    r.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4"));
    r
}

/// 503 while the store cannot serve: unreachable, or writes failing (full disk, a lock held by
/// another process, I/O errors) until a probe write commits again.
async fn readyz(State(state): State<AppState>) -> Response {
    match state.store.ready().await {
        Ok(()) => "ready".into_response(),
        Err(not_ready) => {
            tracing::warn!(reason = not_ready.reason, "store not ready");
            let what = match not_ready.fault {
                Some(fault) => fault.to_string(),
                None => "the store does not answer".to_string(),
            };
            let mut r =
                (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {what}\n")).into_response();
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            r
        }
    }
}
