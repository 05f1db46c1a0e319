//! The extractors of every non-ARM route (extension, identity administration, authority), and the
//! one body reader every route uses, ARM's included. Each rejection is an [`ApiError`], so no route
//! can answer axum's plain-text rejections: the routes render it as a CloudError, and the token
//! endpoint as an OAuth error (`Result<Body, ApiError>`).
//!
//! There is one body limit, `ApiConfig::max_body` (`--max-body-bytes`): a body declared larger is
//! refused before a byte of it is read, and a body that turns out larger stops being read there.

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use hyper::body::Body as _;
use serde::de::DeserializeOwned;

use super::ApiError;

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

/// The one body limit of the server (`--max-body-bytes`). The outer layer puts it on every
/// request, so every route family reads bodies under the same limit whatever its state type.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimit(pub usize);

/// Used only when a request did not pass the outer layer (in-process tests of a bare router).
pub const DEFAULT_BODY_LIMIT: usize = 4 << 20;

impl BodyLimit {
    pub fn of<B>(request: &axum::http::Request<B>) -> usize {
        request.extensions().get::<BodyLimit>().map_or(DEFAULT_BODY_LIMIT, |l| l.0)
    }
}

/// The request body, read whole under the one limit.
pub struct Body(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Body {
    type Rejection = ApiError;

    async fn from_request(request: Request, _: &S) -> Result<Self, ApiError> {
        let limit = BodyLimit::of(&request);
        read_body(request.into_body(), limit).await.map(Body)
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
