//! The response headers ARM sends on every response (docs/ARM.md), added by one outer layer so
//! that errors raised before any handler carry them too.

use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use time::OffsetDateTime;
use uuid::Uuid;

/// The region part of `x-ms-routing-request-id`.
const REGION: &str = "LOCAL";

static REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");
static CORRELATION_ID: HeaderName = HeaderName::from_static("x-ms-correlation-request-id");
static ROUTING_ID: HeaderName = HeaderName::from_static("x-ms-routing-request-id");
static CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-client-request-id");
static RETURN_CLIENT_REQUEST_ID: HeaderName =
    HeaderName::from_static("x-ms-return-client-request-id");

/// The request id of a request, available to handlers and logs as an extension.
#[derive(Debug, Clone, Copy)]
pub struct RequestId(pub Uuid);

#[derive(Debug, Clone, Copy)]
pub struct HeaderConfig {
    pub https: bool,
}

pub async fn arm_headers(
    State(config): State<HeaderConfig>,
    mut request: Request,
    next: Next,
) -> Response {
    let request_id = Uuid::new_v4();
    let correlation = request.headers().get(&CORRELATION_ID).filter(|v| v.len() <= 128).cloned();
    let client_request_id = echo_client_request_id(request.headers());
    request.extensions_mut().insert(RequestId(request_id));

    let mut response = next.run(request).await;

    let id_value =
        HeaderValue::from_str(&request_id.to_string()).expect("a GUID is a header value");
    let now = OffsetDateTime::now_utc();
    let routing = format!(
        "{REGION}:{:04}{:02}{:02}T{:02}{:02}{:02}Z:{request_id}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    let h = response.headers_mut();
    h.insert(CORRELATION_ID.clone(), correlation.unwrap_or_else(|| id_value.clone()));
    h.insert(REQUEST_ID.clone(), id_value);
    if let Ok(v) = HeaderValue::from_str(&routing) {
        h.insert(ROUTING_ID.clone(), v);
    }
    if let Some(v) = client_request_id {
        h.insert(CLIENT_REQUEST_ID.clone(), v);
    }
    h.insert("cache-control", HeaderValue::from_static("no-cache"));
    h.insert("pragma", HeaderValue::from_static("no-cache"));
    h.insert("expires", HeaderValue::from_static("-1"));
    h.insert("x-content-type-options", HeaderValue::from_static("nosniff"));
    if config.https {
        h.insert(
            "strict-transport-security",
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    response
}

fn echo_client_request_id(headers: &HeaderMap) -> Option<HeaderValue> {
    let wanted = headers
        .get(&RETURN_CLIENT_REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
    if wanted {
        headers.get(&CLIENT_REQUEST_ID).cloned()
    } else {
        None
    }
}
