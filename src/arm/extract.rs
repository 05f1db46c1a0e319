//! The extractors of every non-ARM route (extension, identity administration, authority), and the
//! one body reader every route uses, ARM's included. Each rejection is an [`ApiError`], so no route
//! can answer axum's plain-text rejections: the routes render it as a CloudError, and the token
//! endpoint as an OAuth error (`Result<Body, ApiError>`).
//!
//! There is one body limit, `--max-body-bytes`: the outer layer puts it on every request as a
//! [`BodyLimit`], whatever router serves it. A body declared larger is refused before a byte of it
//! is read, and a body that turns out larger stops being read there.

use axum::body::Bytes;
use axum::extract::rejection::{FormRejection, PathRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use hyper::body::Body as _;
use serde::de::DeserializeOwned;

use super::ApiError;

/// The largest request body the server reads, on every route (`--max-body-bytes`).
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// The limit when none is configured.
pub const DEFAULT_BODY_LIMIT: usize = 4 << 20;

impl BodyLimit {
    /// The limit the outer layer put on `parts` (the default where a router runs without it).
    pub fn of(parts: &Parts) -> usize {
        parts.extensions.get::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |l| l.0)
    }
}

/// Path parameters, decoded once by axum (percent-decoding, UTF-8 checked); a rejection is a 400.
pub struct Path<T>(pub T);

impl<T, S> FromRequestParts<S> for Path<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Path::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Path(value)) => Ok(Path(value)),
            Err(rejection) => Err(path_rejection(&rejection)),
        }
    }
}

fn path_rejection(rejection: &PathRejection) -> ApiError {
    use axum::extract::path::ErrorKind;
    match rejection {
        PathRejection::FailedToDeserializePathParams(e) => match e.kind() {
            ErrorKind::InvalidUtf8InPathParam { key } => ApiError::InvalidResourceName {
                name: key.clone(),
                reason: "once percent-decoded it is not valid UTF-8.",
            },
            other => ApiError::BadRequest { target: None, message: format!("{other}.") },
        },
        // A route whose handler wants parameters its path does not have: our bug, not the client's.
        other => ApiError::Internal(anyhow::anyhow!("path extraction: {other}")),
    }
}

/// The request body, read whole under the one limit.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        read_body(body, BodyLimit::of(&parts)).await.map(Body)
    }
}

/// A JSON body, read under the one limit and parsed whatever its declared content type (ARM
/// clients do not all send one). Invalid JSON, or JSON of the wrong shape, is an
/// `InvalidRequestContent` naming where it went wrong.
pub struct Json<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Json<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let Body(bytes) = Body::from_request(request, state).await?;
        serde_json::from_slice(&bytes).map(Json).map_err(|e| {
            ApiError::invalid_field("", format!("The request content is not valid: {e}."))
        })
    }
}

/// An `application/x-www-form-urlencoded` body, read under the one limit.
pub struct Form<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for Form<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, ApiError> {
        let (parts, body) = request.into_parts();
        let bytes = read_body(body, BodyLimit::of(&parts)).await?;
        // axum's parser on the bytes already read: its own limit never comes into play.
        let request = Request::from_parts(parts, axum::body::Body::from(bytes));
        match axum::extract::Form::<T>::from_request(request, state).await {
            Ok(axum::extract::Form(value)) => Ok(Form(value)),
            Err(FormRejection::InvalidFormContentType(_)) => Err(ApiError::BadRequest {
                target: None,
                message: "The request content must be application/x-www-form-urlencoded.".into(),
            }),
            Err(e) => Err(ApiError::invalid_field("", format!("{}.", e.body_text()))),
        }
    }
}

/// Query parameters of a fixed shape; a query that does not fit is a 400 naming the problem.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(e) => {
                Err(ApiError::BadRequest { target: None, message: format!("{}.", e.body_text()) })
            }
        }
    }
}

/// Read a body up to `limit` bytes. Larger (declared or sent) is a 413 CloudError, answered as
/// soon as it is known; a body that cannot be read (a broken chunked encoding, a reset) is a 400.
pub async fn read_body(body: axum::body::Body, limit: usize) -> Result<Bytes, ApiError> {
    // A declared Content-Length is the body's exact size hint: refuse it without waiting for it.
    if body.size_hint().lower() > limit as u64 {
        return Err(ApiError::PayloadTooLarge { limit });
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let too_large = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
            || e.to_string().contains("length limit");
        if too_large {
            ApiError::PayloadTooLarge { limit }
        } else {
            ApiError::BadRequest {
                target: None,
                message: format!("The request body could not be read: {e}."),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{header, StatusCode};
    use axum::routing::post;
    use axum::Router;
    use std::collections::HashMap;
    use tower::ServiceExt;

    /// Every extractor of this module, each on its own route, behind the outer layer (which sets
    /// the limit).
    fn router() -> crate::arm::headers::ArmService<Router> {
        let outer = crate::arm::headers::ArmLayer {
            https: false,
            timeout: std::time::Duration::from_secs(30),
            max_body: DEFAULT_BODY_LIMIT,
        };
        let router = Router::new()
            .route("/path/{id}", post(|Path(id): Path<u32>| async move { id.to_string() }))
            .route(
                "/json",
                post(|Json(v): Json<HashMap<String, u32>>| async move { v.len().to_string() }),
            )
            .route(
                "/form",
                post(|Form(v): Form<HashMap<String, u32>>| async move { v.len().to_string() }),
            )
            .route(
                "/query",
                post(|Query(v): Query<HashMap<String, u32>>| async move { v.len().to_string() }),
            )
            .route("/body", post(|Body(b): Body| async move { b.len().to_string() }));
        tower::Layer::layer(&outer, router)
    }

    async fn send(
        app: &crate::arm::headers::ArmService<Router>,
        uri: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, String, String) {
        let request = Request::builder()
            .method("POST")
            .uri(uri)
            .header(header::CONTENT_TYPE, content_type)
            .body(axum::body::Body::from(body))
            .expect("a request");
        let response = app.clone().oneshot(request).await.expect("infallible");
        let status = response.status();
        let ct = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX).await.expect("body");
        let code = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["error"]["code"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&bytes).into_owned());
        (status, ct, code)
    }

    #[tokio::test]
    async fn every_rejection_is_a_cloud_error() {
        let app = router();
        let json = "application/json; charset=utf-8";
        let cases: Vec<(&str, &str, Vec<u8>, u16, &str)> = vec![
            ("/path/nope", "text/plain", vec![], 400, "BadRequest"),
            ("/path/%FF", "text/plain", vec![], 400, "InvalidResourceName"),
            ("/json", "application/json", b"{\"a\":".to_vec(), 400, "InvalidRequestContent"),
            ("/json", "application/json", b"{\"a\":\"x\"}".to_vec(), 400, "InvalidRequestContent"),
            ("/form", "text/plain", b"a=1".to_vec(), 400, "BadRequest"),
            (
                "/form",
                "application/x-www-form-urlencoded",
                b"a=x".to_vec(),
                400,
                "InvalidRequestContent",
            ),
            ("/query?a=x", "text/plain", vec![], 400, "BadRequest"),
            // The one limit (4 MiB by default), not axum's 2 MiB and not unlimited.
            ("/body", "text/plain", vec![b'x'; (4 << 20) + 1], 413, "RequestContentTooLarge"),
            ("/json", "application/json", vec![b' '; (4 << 20) + 1], 413, "RequestContentTooLarge"),
            (
                "/form",
                "application/x-www-form-urlencoded",
                vec![b'a'; (4 << 20) + 1],
                413,
                "RequestContentTooLarge",
            ),
        ];
        for (uri, content_type, body, status, code) in cases {
            let got = send(&app, uri, content_type, body).await;
            assert_eq!(
                (got.0.as_u16(), got.1.as_str(), got.2.as_str()),
                (status, json, code),
                "{uri}"
            );
        }
        let ok = send(&app, "/body", "text/plain", vec![b'x'; 3 << 20]).await;
        assert_eq!((ok.0, ok.2), (StatusCode::OK, (3 << 20).to_string()));
        let ok =
            send(&app, "/form?b=2", "application/x-www-form-urlencoded", b"a=1".to_vec()).await;
        assert_eq!((ok.0, ok.2.as_str()), (StatusCode::OK, "1"));
    }
}
