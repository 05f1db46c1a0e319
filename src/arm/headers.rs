//! The one outer layer of every request (docs/ARM.md): it gives each request its id, refuses
//! request heads over our limits (URI, headers) before anything else runs, collapses the leading
//! slashes of the path before routing (clients build URLs such as
//! `https://host//metadata/endpoints` from a base with a trailing slash), answers a CloudError for
//! what goes wrong outside any handler (a panic, a request over its time limit), and adds the
//! headers ARM sends on every response.
//!
//! A request answered without reading its body (a 404, 401 or 403 decided from the head) has the
//! rest of its body drained before the answer leaves, within [`LINGER`] and the body limit: a
//! socket closed with unread bytes is reset by the kernel, and the client — still uploading —
//! loses the answer (Python's `requests` reports an SSL EOF instead of the 404). A body that
//! cannot be drained in time gets `Connection: close`, so a keep-alive client does not reuse a
//! connection the server is about to drop.
//!
//! The head limits are below hyper's own (whose refusals have empty bodies), so that ours answer
//! first: see [`MAX_URI_BYTES`] and [`MAX_HEADER_BYTES`].
//!
//! Hand-written rather than three `from_fn` layers: each of those boxes a future and clones the
//! inner service per request, which the benchmark showed to cost microseconds on the hot path.

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, Version};
use axum::response::{IntoResponse, Response};
use futures::future::BoxFuture;
use futures::FutureExt;
use hyper::body::{Body as HttpBody, Frame, SizeHint};
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use time::OffsetDateTime;
use tower::{Layer, Service};
use uuid::Uuid;

use super::error::ApiError;

/// The region part of `x-ms-routing-request-id`.
const REGION: &str = "LOCAL";

static REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-request-id");
static CORRELATION_ID: HeaderName = HeaderName::from_static("x-ms-correlation-request-id");
static ROUTING_ID: HeaderName = HeaderName::from_static("x-ms-routing-request-id");
static CLIENT_REQUEST_ID: HeaderName = HeaderName::from_static("x-ms-client-request-id");
static RETURN_CLIENT_REQUEST_ID: HeaderName =
    HeaderName::from_static("x-ms-return-client-request-id");

/// Longest request target (path and query) we answer normally; longer is a 414 CloudError.
/// hyper's HTTP/1 parser refuses URIs over 64 KiB itself (empty 414), so ours fires first.
pub const MAX_URI_BYTES: usize = 8 * 1024;
/// Largest request head (all header names and values, `": "` and CRLF included); larger is a
/// 431 CloudError. hyper must accept more than this (HTTP/1 `max_buf_size`, HTTP/2
/// `max_header_list_size`) so that ours answers first.
pub const MAX_HEADER_BYTES: usize = 32 * 1024;
/// Most header fields we answer normally. hyper's HTTP/1 default is 100: it must be raised above
/// this for ours to answer first.
pub const MAX_HEADER_COUNT: usize = 100;

/// How long an answered request's unread body is drained before the connection is given up.
pub const LINGER: Duration = Duration::from_secs(2);

/// The request id of a request, available to handlers and logs as an extension.
#[derive(Debug, Clone, Copy)]
pub struct RequestId(pub Uuid);

#[derive(Debug, Clone, Copy)]
pub struct ArmLayer {
    /// Served over HTTPS: adds `Strict-Transport-Security`.
    pub https: bool,
    /// Longest a request may take before it is answered 408.
    pub timeout: Duration,
    /// The one body limit of every route (`--max-body-bytes`), handed to the body extractor.
    pub max_body: usize,
}

impl<S> Layer<S> for ArmLayer {
    type Service = ArmService<S>;
    fn layer(&self, inner: S) -> ArmService<S> {
        ArmService { inner, config: *self }
    }
}

#[derive(Debug, Clone)]
pub struct ArmService<S> {
    inner: S,
    config: ArmLayer,
}

/// Wrapped around the `Router` (not added with `Router::layer`, which runs after routing), so the
/// path is normalised before any route is matched. Accepts any body (hyper's, tests').
impl<S, B> Service<axum::http::Request<B>> for ArmService<S>
where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: axum::body::HttpBody<Data = bytes::Bytes> + Send + 'static,
    B::Error: Into<axum::BoxError>,
{
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: axum::http::Request<B>) -> Self::Future {
        let read = Arc::new(AtomicBool::new(false));
        let has_body = !request.body().is_end_stream();
        let http1 = request.version() <= Version::HTTP_11;
        // Only an HTTP/1 body can be drained (see the module's opening).
        let (unread_tx, unread) = if has_body && http1 {
            let (tx, rx) = tokio::sync::oneshot::channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let mut request = request.map(|body| {
            let inner = Some(axum::body::Body::new(body));
            axum::body::Body::new(Tracked { inner, read: read.clone(), unread: unread_tx })
        });
        // The service that was polled ready serves this request; a clone takes its place.
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let config = self.config;
        let request_id = Uuid::new_v4();
        let correlation =
            request.headers().get(&CORRELATION_ID).filter(|v| v.len() <= 128).cloned();
        let client_request_id = echo_client_request_id(request.headers());
        request.extensions_mut().insert(RequestId(request_id));
        request.extensions_mut().insert(super::extract::BodyLimit(config.max_body));
        let refused = head_limits(&request).err();
        if refused.is_none() {
            collapse_slashes(&mut request);
        }
        Box::pin(async move {
            let mut response = match refused {
                Some(e) => e.into_response(),
                None => {
                    let handled =
                        AssertUnwindSafe(async move { inner.call(request).await }).catch_unwind();
                    match tokio::time::timeout(config.timeout, handled).await {
                        Ok(Ok(Ok(response))) => response,
                        Ok(Ok(Err(never))) => match never {},
                        Ok(Err(_panic)) => {
                            ApiError::Internal(anyhow::anyhow!("a request handler panicked"))
                                .into_response()
                        }
                        Err(_) => ApiError::Timeout(config.timeout.as_secs()).into_response(),
                    }
                }
            };
            // HTTP/2 has no connection header: a stream is reset instead.
            if http1 && has_body && !read.load(Ordering::Acquire) {
                // The body comes back once the handler has dropped it (not while a streaming
                // handler still reads it).
                let drained = match unread.map(|mut rx| rx.try_recv()) {
                    Some(Ok(body)) => drain(body, config.max_body).await,
                    _ => false,
                };
                if !drained {
                    response
                        .headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
            }
            add_headers(
                response.headers_mut(),
                config.https,
                request_id,
                correlation,
                client_request_id,
            );
            Ok(response)
        })
    }
}

/// The request head within our limits, or the 414/431 that says which limit it broke.
fn head_limits(request: &Request) -> Result<(), ApiError> {
    let uri = request.uri();
    let length = uri.path_and_query().map_or(uri.path().len(), |pq| pq.as_str().len());
    if length > MAX_URI_BYTES {
        return Err(ApiError::UriTooLong { length, limit: MAX_URI_BYTES });
    }
    let headers = request.headers();
    if headers.len() > MAX_HEADER_COUNT {
        return Err(ApiError::HeadersTooLarge {
            what: format!("{} header fields", headers.len()),
            limit: MAX_HEADER_COUNT,
        });
    }
    let bytes: usize = headers.iter().map(|(k, v)| k.as_str().len() + v.len() + 4).sum();
    if bytes > MAX_HEADER_BYTES {
        return Err(ApiError::HeadersTooLarge {
            what: format!("{bytes} bytes of header fields"),
            limit: MAX_HEADER_BYTES,
        });
    }
    Ok(())
}

/// Reads and discards what is left of a request body, up to `limit` bytes and [`LINGER`]:
/// whether it reached the end.
async fn drain(mut body: axum::body::Body, limit: usize) -> bool {
    if body.size_hint().lower() > limit as u64 {
        return false;
    }
    use http_body_util::BodyExt;
    let discard = async {
        let mut seen = 0usize;
        while let Some(frame) = body.frame().await {
            let Ok(frame) = frame else { return false };
            seen += frame.data_ref().map_or(0, |d| d.len());
            if seen > limit {
                return false;
            }
        }
        true
    };
    tokio::time::timeout(LINGER, discard).await.unwrap_or(false)
}

/// A request body that records whether it was read to its end, and hands itself back to the
/// outer layer when dropped unread (see [`drain`]).
struct Tracked {
    inner: Option<axum::body::Body>,
    read: Arc<AtomicBool>,
    unread: Option<tokio::sync::oneshot::Sender<axum::body::Body>>,
}

impl Drop for Tracked {
    fn drop(&mut self) {
        if self.read.load(Ordering::Acquire) {
            return;
        }
        if let (Some(tx), Some(body)) = (self.unread.take(), self.inner.take()) {
            let _ = tx.send(body);
        }
    }
}

impl HttpBody for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<bytes::Bytes>, axum::Error>>> {
        let Some(inner) = self.inner.as_mut() else { return Poll::Ready(None) };
        let polled = Pin::new(&mut *inner).poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => inner.is_end_stream(),
            _ => false,
        };
        if ended {
            self.read.store(true, Ordering::Release);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.as_ref().is_none_or(HttpBody::is_end_stream)
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.as_ref().map_or_else(|| SizeHint::with_exact(0), HttpBody::size_hint)
    }
}

/// `//a/b` → `/a/b`: a client that joins a base URL ending in `/` with a path starting with one
/// (az asks for `https://host//metadata/endpoints`; SDKs put a resource id that starts with `/`
/// after the root) still reaches the route. Only the leading run is collapsed: a `//` further on
/// stands for an empty name, and dropping it would shift the names after it into other places of
/// the id, so the router refuses it instead.
fn collapse_slashes(request: &mut Request) {
    let uri = request.uri();
    if !uri.path().starts_with("//") {
        return;
    }
    let path = format!("/{}", uri.path().trim_start_matches('/'));
    let path_and_query = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path,
    };
    let mut parts = uri.clone().into_parts();
    if let Ok(pq) = path_and_query.parse() {
        parts.path_and_query = Some(pq);
        if let Ok(collapsed) = axum::http::Uri::from_parts(parts) {
            *request.uri_mut() = collapsed;
        }
    }
}

fn add_headers(
    h: &mut HeaderMap,
    https: bool,
    request_id: Uuid,
    correlation: Option<HeaderValue>,
    client_request_id: Option<HeaderValue>,
) {
    let mut buf = Uuid::encode_buffer();
    let id = request_id.hyphenated().encode_lower(&mut buf);
    let id_value = HeaderValue::from_str(id).expect("a GUID is a header value");
    let now = OffsetDateTime::now_utc();
    let routing = format!(
        "{REGION}:{:04}{:02}{:02}T{:02}{:02}{:02}Z:{id}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    );
    h.reserve(10);
    h.insert(CORRELATION_ID.clone(), correlation.unwrap_or_else(|| id_value.clone()));
    h.insert(REQUEST_ID.clone(), id_value);
    if let Ok(v) = HeaderValue::from_str(&routing) {
        h.insert(ROUTING_ID.clone(), v);
    }
    if let Some(v) = client_request_id {
        h.insert(CLIENT_REQUEST_ID.clone(), v);
    }
    h.insert(axum::http::header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(axum::http::header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(axum::http::header::EXPIRES, HeaderValue::from_static("-1"));
    h.insert(axum::http::header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if https {
        h.insert(
            axum::http::header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use tower::ServiceExt;

    async fn answer<F, Fut>(handler: F, timeout: Duration) -> Response
    where
        F: FnMut(Request) -> Fut + Clone + Send + 'static,
        Fut: std::future::Future<Output = Result<Response, Infallible>> + Send + 'static,
    {
        let service =
            ArmLayer { https: true, timeout, max_body: 4096 }.layer(tower::service_fn(handler));
        service.oneshot(Request::new(Body::empty())).await.unwrap()
    }

    #[tokio::test]
    async fn panics_and_timeouts_are_cloud_errors_with_arm_headers() {
        let panicked = answer(|_| async { panic!("boom") }, Duration::from_secs(5)).await;
        assert_eq!(panicked.status(), 500);
        assert!(panicked.headers().contains_key("x-ms-request-id"));
        assert_eq!(panicked.headers()["content-type"], "application/json; charset=utf-8");
        let slow = answer(
            |_| async {
                tokio::time::sleep(Duration::from_secs(5)).await;
                Ok("late".into_response())
            },
            Duration::from_millis(20),
        )
        .await;
        assert_eq!(slow.status(), 408);
        let ok = answer(|_| async { Ok("ok".into_response()) }, Duration::from_secs(5)).await;
        let mut request = Request::new(Body::empty());
        *request.uri_mut() = "///metadata//endpoints/?api-version=1".parse().unwrap();
        collapse_slashes(&mut request);
        assert_eq!(request.uri(), "/metadata//endpoints/?api-version=1");
        assert_eq!(
            ok.headers()["strict-transport-security"],
            "max-age=31536000; includeSubDomains"
        );
        assert_eq!(ok.headers()["x-ms-correlation-request-id"], ok.headers()["x-ms-request-id"]);
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Leading slashes collapse into one; the rest of the path (its inner `//`, which
            /// the router refuses as empty names) and the query are left as they are.
            #[test]
            fn a_leading_run_of_slashes_collapses_and_nothing_else_changes(
                leading in 1usize..5,
                rest in prop::collection::vec("[A-Za-z0-9._~%-]{0,6}", 0..6),
                query in proptest::option::of("[A-Za-z0-9=&/-]{0,12}"),
            ) {
                // The rest keeps any inner `//` (an empty name, which the router refuses).
                let rest = rest.join("/");
                let path = format!("{}{rest}", "/".repeat(leading));
                let full = match &query {
                    Some(q) => format!("{path}?{q}"),
                    None => path.clone(),
                };
                let mut request = Request::new(Body::empty());
                *request.uri_mut() = full.parse().map_err(|e| TestCaseError::fail(format!("{full}: {e}")))?;
                collapse_slashes(&mut request);
                let want = format!("/{}", rest.trim_start_matches('/'));
                prop_assert_eq!(request.uri().path(), want.as_str(), "{}", full);
                prop_assert_eq!(request.uri().query(), query.as_deref());
            }
        }
    }
}
