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
    /// An api-version a provider's resource type does not support.
    #[error("The resource type '{resource_type}' could not be found in the namespace '{namespace}' for api version '{version}'. The supported api-versions are '{}'.", supported.join(","))]
    UnsupportedApiVersion {
        namespace: &'static str,
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
    /// A path outside the ARM namespaces (`/subscriptions`, `/providers`, `/tenants`) that no
    /// route of this server serves.
    #[error("The requested path '{0}' was not found on this server.")]
    NotFound(String),
    /// A management group (`Microsoft.Management`) that does not exist, worded as that provider.
    #[error("'/providers/Microsoft.Management/managementGroups/{0}' not found")]
    ManagementGroupNotFound(String),
    /// A name segment of the path that cannot be a resource name; `reason` names the rule.
    #[error("Resource name '{name}' is invalid: {reason}")]
    InvalidResourceName { name: String, reason: &'static str },
    /// `allow` is `None` where the router itself adds the `Allow` header (the non-ARM routes).
    #[error("The requested resource does not support http method '{method}'.")]
    MethodNotAllowed { method: Method, allow: Option<&'static str> },
    /// A body or field a client sent is invalid; `target` names the field.
    #[error("{message}")]
    InvalidRequestContent { target: String, message: String },
    /// A query parameter or other request part is invalid.
    #[error("{message}")]
    BadRequest { target: Option<String>, message: String },
    /// A Resource Graph query that cannot run: ARG's `BadRequest` with `details` (the first one
    /// `InvalidQuery`, then what went wrong where).
    #[error("{message}")]
    InvalidQuery { message: String, details: Vec<serde_json::Value> },
    #[error("The request content was too large: the limit is {limit} bytes.")]
    PayloadTooLarge { limit: usize },
    #[error("The request URI is {length} bytes long; the limit is {limit} bytes.")]
    UriTooLong { length: usize, limit: usize },
    #[error("The request headers are too large: {what}; the limit is {limit}.")]
    HeadersTooLarge { what: String, limit: usize },
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
    /// A storage fault that passes by itself (full disk, database locked, I/O): retry later.
    #[error("The service is temporarily unavailable: {reason}. Please retry the request after {retry_after} seconds.")]
    ServiceUnavailable { reason: String, retry_after: u64 },
    /// A server fault: logged with its cause, answered without it.
    #[error("The server encountered an internal error. Please retry the request.")]
    Internal(#[source] anyhow::Error),
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
            | InvalidResourceName { .. }
            | InvalidRequestContent { .. }
            | BadRequest { .. }
            | InvalidQuery { .. } => StatusCode::BAD_REQUEST,
            SubscriptionNotFound(_)
            | ResourceNotFound { .. }
            | TenantResourceNotFound { .. }
            | UnknownResourceType { .. }
            | UnknownPath(_)
            | NotFound(_)
            | ManagementGroupNotFound(_) => StatusCode::NOT_FOUND,
            MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            PayloadTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            UriTooLong { .. } => StatusCode::URI_TOO_LONG,
            HeadersTooLarge { .. } => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Timeout(_) | ImportTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
            Unauthenticated { .. } => StatusCode::UNAUTHORIZED,
            AuthorizationFailed { .. } => StatusCode::FORBIDDEN,
            Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            ServiceUnavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
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
            NotFound(_) | ManagementGroupNotFound(_) => "NotFound",
            InvalidResourceName { .. } => "InvalidResourceName",
            MethodNotAllowed { .. } => "MethodNotAllowed",
            InvalidRequestContent { .. } => "InvalidRequestContent",
            BadRequest { .. } | InvalidQuery { .. } => "BadRequest",
            PayloadTooLarge { .. } => "RequestContentTooLarge",
            // Decisions: ARM's front door answers these without a documented code.
            UriTooLong { .. } => "RequestUriTooLong",
            HeadersTooLarge { .. } => "RequestHeaderFieldsTooLarge",
            Timeout(_) | ImportTimeout { .. } => "RequestTimeout",
            Unauthenticated { code, .. } => code,
            AuthorizationFailed { .. } => "AuthorizationFailed",
            Throttled { .. } => "SubscriptionRequestsThrottled",
            ServiceUnavailable { .. } => "ServiceUnavailable",
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
    #[serde(skip_serializing_if = "Option::is_none")]
    details: Option<&'a [serde_json::Value]>,
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
                details: match &self {
                    ApiError::InvalidQuery { details, .. } => Some(details.as_slice()),
                    _ => None,
                },
            },
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut response = (status, bytes).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
        match &self {
            ApiError::MethodNotAllowed { allow: Some(allow), .. } => {
                headers.insert(header::ALLOW, HeaderValue::from_static(allow));
            }
            ApiError::Throttled { retry_after, .. }
            | ApiError::ServiceUnavailable { retry_after, .. } => {
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

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::to_bytes;

    /// One error of every kind. The match below has no wildcard: a new variant does not compile
    /// until it is added here, and so checked against the response format and docs/ARM.md.
    fn one_of_each() -> Vec<ApiError> {
        let all = vec![
            ApiError::MissingApiVersion,
            ApiError::UnsupportedApiVersion {
                namespace: "Microsoft.Security",
                resource_type: "secureScores",
                version: "1".into(),
                supported: &["2020-01-01"],
            },
            ApiError::InvalidApiVersion { version: "1".into(), supported: &["2022-12-01"] },
            ApiError::InvalidSubscriptionId("x".into()),
            ApiError::SubscriptionNotFound("x".into()),
            ApiError::ResourceNotFound {
                resource_type: "assessments".into(),
                name: "n".into(),
                subscription: "s".into(),
            },
            ApiError::TenantResourceNotFound { resource_type: "t".into(), name: "n".into() },
            ApiError::UnknownResourceType {
                namespace: "Microsoft.Security".into(),
                resource_type: "alerts".into(),
                version: "1".into(),
            },
            ApiError::UnknownPath("/x".into()),
            ApiError::NotFound("/x".into()),
            ApiError::ManagementGroupNotFound("g".into()),
            ApiError::InvalidResourceName { name: "a%2Fb".into(), reason: "it contains '/'." },
            ApiError::UriTooLong { length: 9000, limit: 8192 },
            ApiError::HeadersTooLarge { what: "the header block".into(), limit: 32768 },
            ApiError::MethodNotAllowed { method: Method::POST, allow: Some("GET") },
            ApiError::invalid_field("properties.status.code", "bad"),
            ApiError::BadRequest { target: Some("$skipToken".into()), message: "bad".into() },
            ApiError::InvalidQuery {
                message: "bad query".into(),
                details: vec![serde_json::json!({"code": "InvalidQuery", "message": "m"})],
            },
            ApiError::PayloadTooLarge { limit: 10 },
            ApiError::Timeout(60),
            ApiError::ImportTimeout { seconds: 60, committed: "lines 1-500 were committed".into() },
            ApiError::Unauthenticated {
                code: "InvalidAuthenticationToken",
                message: "m".into(),
                challenge: "Bearer authorization_uri=\"x\"".into(),
            },
            ApiError::AuthorizationFailed {
                client: "c".into(),
                object_id: "o".into(),
                action: "a".into(),
                scope: "/".into(),
            },
            ApiError::Throttled { budget: "subscription reads", retry_after: 3 },
            ApiError::ServiceUnavailable { reason: "the storage is full".into(), retry_after: 2 },
            ApiError::Internal(anyhow::anyhow!("secret cause")),
        ];
        for e in &all {
            match e {
                ApiError::MissingApiVersion
                | ApiError::UnsupportedApiVersion { .. }
                | ApiError::InvalidApiVersion { .. }
                | ApiError::InvalidSubscriptionId(_)
                | ApiError::SubscriptionNotFound(_)
                | ApiError::ResourceNotFound { .. }
                | ApiError::TenantResourceNotFound { .. }
                | ApiError::UnknownResourceType { .. }
                | ApiError::UnknownPath(_)
                | ApiError::NotFound(_)
                | ApiError::ManagementGroupNotFound(_)
                | ApiError::InvalidResourceName { .. }
                | ApiError::UriTooLong { .. }
                | ApiError::HeadersTooLarge { .. }
                | ApiError::MethodNotAllowed { .. }
                | ApiError::InvalidRequestContent { .. }
                | ApiError::BadRequest { .. }
                | ApiError::InvalidQuery { .. }
                | ApiError::PayloadTooLarge { .. }
                | ApiError::Timeout(_)
                | ApiError::ImportTimeout { .. }
                | ApiError::Unauthenticated { .. }
                | ApiError::AuthorizationFailed { .. }
                | ApiError::Throttled { .. }
                | ApiError::ServiceUnavailable { .. }
                | ApiError::Internal(_) => {}
            }
        }
        all
    }

    #[tokio::test]
    async fn every_error_is_a_cloud_error_with_its_headers() {
        for e in one_of_each() {
            let (status, code) = (e.status(), e.code());
            let target = e.target().map(str::to_string);
            let response = e.into_response();
            assert_eq!(response.status(), status, "{code}");
            assert_eq!(response.headers()[header::CONTENT_TYPE], JSON_CONTENT_TYPE);
            let has = |h: header::HeaderName| response.headers().contains_key(h);
            assert_eq!(has(header::ALLOW), status == StatusCode::METHOD_NOT_ALLOWED, "{code}");
            let retry =
                matches!(status, StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE);
            assert_eq!(has(header::RETRY_AFTER), retry, "{code}");
            assert_eq!(has(header::WWW_AUTHENTICATE), status == StatusCode::UNAUTHORIZED, "{code}");
            let body = to_bytes(response.into_body(), 1 << 16).await.expect("a body");
            let body: serde_json::Value = serde_json::from_slice(&body).expect("JSON");
            assert_eq!(body["error"]["code"], code);
            assert!(body["error"]["message"].as_str().is_some_and(|m| !m.is_empty()), "{code}");
            assert_eq!(body["error"]["target"].as_str().map(str::to_string), target, "{code}");
            assert!(!body.to_string().contains("secret cause"), "causes are logged, not sent");
            // Only a server fault or a passing storage fault is a 5xx.
            let server_side = matches!(code, "InternalServerError" | "ServiceUnavailable");
            assert_eq!(status.is_server_error(), server_side, "{code}");
        }
    }

    /// docs/ARM.md lists every status and code the server answers; this keeps it true.
    #[test]
    fn docs_arm_md_lists_every_code_with_its_status() {
        let doc = include_str!("../../docs/ARM.md");
        for e in one_of_each() {
            let (status, code) = (e.status().as_u16(), e.code());
            let documented = doc.lines().any(|line| {
                line.starts_with(&format!("| {status} |")) && line.contains(&format!("`{code}`"))
            });
            assert!(documented, "docs/ARM.md has no row '| {status} | `{code}` ...'");
        }
    }
}
