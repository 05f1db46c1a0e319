//! The CloudError catalogue of docs/ARM.md: one enum that knows, for every failure, its ARM error
//! code, HTTP status, message, headers and body. Every error the server answers — from routing,
//! extraction, handlers, limits or panics — goes through [`ApiError::into_response`].

use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("The api-version query parameter (?api-version=) is required for all requests.")]
    MissingApiVersion,
    /// An api-version a Microsoft.Security resource type does not support.
    #[error("The resource type '{resource_type}' could not be found in the namespace 'Microsoft.Security' for api version '{version}'. The supported api-versions are '{}'.", supported.join(","))]
    UnsupportedApiVersion {
        resource_type: &'static str,
        version: String,
        supported: &'static [&'static str],
    },
    /// An api-version an ARM-owned endpoint (`/subscriptions`, `/tenants`) does not support.
    #[error("The api-version '{version}' is invalid. The supported versions are '{}'.", supported.join(","))]
    InvalidApiVersion { version: String, supported: &'static [&'static str] },
    #[error("The provided subscription identifier '{0}' is malformed or invalid.")]
    InvalidSubscriptionId(String),
    #[error("The subscription '{0}' could not be found.")]
    SubscriptionNotFound(String),
    /// `resource_type` is below the namespace, e.g. `secureScores` or `assessments`.
    #[error("The Resource 'Microsoft.Security/{resource_type}/{name}' under subscription '{subscription}' was not found.")]
    ResourceNotFound { resource_type: String, name: String, subscription: String },
    /// A tenant-level resource (no subscription) that does not exist.
    #[error("The Resource 'Microsoft.Security/{resource_type}/{name}' was not found.")]
    TenantResourceNotFound { resource_type: String, name: String },
    #[error("The resource type '{resource_type}' could not be found in the namespace '{namespace}' for api version '{version}'.")]
    UnknownResourceType { namespace: String, resource_type: String, version: String },
    #[error("The requested path '{0}' does not match any resource type of this server.")]
    UnknownPath(String),
    #[error("The requested resource does not support http method '{method}'.")]
    MethodNotAllowed { method: Method, allow: &'static str },
    /// A body or field a client sent is invalid; `target` names the field.
    #[error("{message}")]
    InvalidRequestContent { target: String, message: String },
    /// A query parameter or other request part is invalid.
    #[error("{message}")]
    BadRequest { target: Option<String>, message: String },
    #[error("The request content was too large: the limit is {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    #[error("The request did not complete within {0} seconds.")]
    Timeout(u64),
    /// An import that ran out of time: it says what was committed, since that stays.
    #[error("The import did not complete within {seconds} seconds: {committed}. Send the remaining lines again, or ask for a streamed answer (Accept: application/x-ndjson), which is not limited in time.")]
    ImportTimeout { seconds: u64, committed: String },
    /// Authentication failures carry their own ARM code and a `WWW-Authenticate` challenge.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String, challenge: String },
    #[error("The client '{client}' with object id '{object_id}' does not have authorization to perform action '{action}' over scope '{scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.")]
    AuthorizationFailed { client: String, object_id: String, action: String, scope: String },
    #[error("The request was throttled: the {budget} budget of this principal and subscription is exhausted. Retry after {retry_after} seconds.")]
    Throttled { budget: &'static str, retry_after: u64 },
    /// A server fault: logged with its cause, answered without it.
    #[error("The server encountered an internal error. Please retry the request.")]
    Internal(#[source] anyhow::Error),
}

impl From<anyhow::Error> for ApiError {
    fn from(e: anyhow::Error) -> Self {
        ApiError::Internal(e)
    }
}

impl ApiError {
    pub fn invalid_field(target: impl Into<String>, message: impl Into<String>) -> Self {
        ApiError::InvalidRequestContent { target: target.into(), message: message.into() }
    }

    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MissingApiVersion
            | UnsupportedApiVersion { .. }
            | InvalidApiVersion { .. }
            | InvalidSubscriptionId(_)
            | InvalidRequestContent { .. }
            | BadRequest { .. } => StatusCode::BAD_REQUEST,
            SubscriptionNotFound(_)
            | ResourceNotFound { .. }
            | TenantResourceNotFound { .. }
            | UnknownResourceType { .. }
            | UnknownPath(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Timeout(_) | ImportTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            AuthorizationFailed { .. } => StatusCode::FORBIDDEN,
            Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The ARM error code. Decisions of docs/ARM.md live here and nowhere else.
    pub fn code(&self) -> &'static str {
        use ApiError::*;
        match self {
            MissingApiVersion => "MissingApiVersionParameter",
            UnsupportedApiVersion { .. } => "InvalidResourceType",
            InvalidApiVersion { .. } => "InvalidApiVersionParameter",
            InvalidSubscriptionId(_) => "InvalidSubscriptionId",
            SubscriptionNotFound(_) => "SubscriptionNotFound",
            ResourceNotFound { .. } | TenantResourceNotFound { .. } => "ResourceNotFound",
            UnknownResourceType { .. } | UnknownPath(_) => "InvalidResourceType",
            MethodNotAllowed { .. } => "MethodNotAllowed",
            InvalidRequestContent { .. } => "InvalidRequestContent",
            BadRequest { .. } => "BadRequest",
            PayloadTooLarge { .. } => "RequestContentTooLarge",
            Timeout(_) | ImportTimeout { .. } => "RequestTimeout",
            Unauthenticated { code, .. } => code,
            AuthorizationFailed { .. } => "AuthorizationFailed",
            Throttled { .. } => "SubscriptionRequestsThrottled",
            Internal(_) => "InternalServerError",
        }
    }

    fn target(&self) -> Option<&str> {
        match self {
            ApiError::InvalidRequestContent { target, .. } => Some(target),
            ApiError::BadRequest { target, .. } => target.as_deref(),
            _ => None,
        }
    }
}

#[derive(Serialize)]
struct CloudError<'a> {
    error: CloudErrorBody<'a>,
}

#[derive(Serialize)]
struct CloudErrorBody<'a> {
    code: &'a str,
    message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    target: Option<&'a str>,
}

pub const JSON_CONTENT_TYPE: &str = "application/json; charset=utf-8";

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if let ApiError::Internal(cause) = &self {
            tracing::error!(error = format!("{cause:#}"), "internal error");
        }
        let body = CloudError {
            error: CloudErrorBody {
                code: self.code(),
                message: self.to_string(),
                target: self.target(),
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
        match &self {
            ApiError::MethodNotAllowed { allow, .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Throttled { retry_after, .. } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            }
            ApiError::Unauthenticated { challenge, .. } => {
                if let Ok(v) = HeaderValue::from_str(challenge) {
                    headers.insert(header::WWW_AUTHENTICATE, v);
                }
            }
            _ => {}
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
