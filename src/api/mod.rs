//! The HTTP surface: the ARM routes (parsed into an [`Endpoint`] by [`route`], then one handler
//! module per resource family), the extension API and the operations endpoints.
//!
//! Every response leaves through [`router`]'s outer layers: ARM headers, the CloudError shape for
//! failures raised before a handler (panics, timeouts), and request logging.

pub mod assessments;
mod auth;
pub mod ext;
mod metadata;
mod ops;
pub mod route;
mod scores;
mod subscriptions;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use serde::Serialize;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use crate::arm::error::JSON_CONTENT_TYPE;
use crate::arm::headers::{ArmLayer, ArmService, RequestId};
use crate::arm::paging::Cursor;
use crate::arm::throttle::{Kind, Throttle};
use crate::arm::{ApiError, ApiResult};
use crate::store::Store;
pub use route::Endpoint;
use tower::Layer;

/// Settings of the API that come from the command line.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Items per page of every list (`--page-size`).
    pub page_size: usize,
    /// Largest accepted request body in bytes.
    pub max_body: usize,
    /// Served over HTTPS (adds HSTS; nextLinks use https).
    pub https: bool,
    pub request_timeout: Duration,
    /// External authorities whose tokens are accepted (`--trust-issuer`).
    pub trust_issuers: Vec<String>,
    /// The URL clients reach the server at (`--public-url`); `None`: the listen address.
    pub public_url: Option<crate::arm::PublicUrl>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            page_size: 100,
            max_body: 4 << 20,
            https: false,
            request_timeout: Duration::from_secs(60),
            trust_issuers: Vec::new(),
            public_url: None,
        }
    }
}

#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub config: Arc<ApiConfig>,
    pub throttle: Arc<Throttle>,
    pub identity: Arc<crate::identity::Identity>,
}

/// Everything a handler needs to know about one ARM request.
pub struct Ctx<'a> {
    pub state: &'a AppState,
    pub method: Method,
    pub uri: &'a Uri,
    pub headers: &'a HeaderMap,
    pub api_version: &'static str,
    pub query: Vec<(String, String)>,
    pub body: Bytes,
    /// The authenticated and authorized caller.
    pub principal: crate::identity::Principal,
}

impl Ctx<'_> {
    /// A query parameter, matched case-insensitively by name.
    pub fn query(&self, name: &str) -> Option<&str> {
        query_param(&self.query, name)
    }

    pub fn cursor(&self) -> ApiResult<Option<Cursor>> {
        self.query("$skipToken").map(Cursor::decode).transpose()
    }

    pub fn page_size(&self) -> usize {
        self.state.config.page_size
    }

    /// The absolute URL of the next page: the public URL, same path and parameters, a new
    /// `$skipToken`.
    pub fn next_link(&self, cursor: &Cursor) -> String {
        let base = &self.state.identity.public_url;
        let mut query: Vec<&str> = self
            .uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| {
                let key = pair.split('=').next().unwrap_or("");
                !pair.is_empty()
                    && !key.eq_ignore_ascii_case("$skipToken")
                    && !key.eq_ignore_ascii_case("%24skipToken")
            })
            .collect();
        let token = format!("$skipToken={}", cursor.encode());
        query.push(&token);
        format!("{base}{}?{}", self.uri.path(), query.join("&"))
    }

    /// `$expand`, checked against the values this endpoint documents.
    pub fn expand(&self, allowed: &[&'static str]) -> ApiResult<Vec<&'static str>> {
        let Some(raw) = self.query("$expand") else { return Ok(Vec::new()) };
        raw.split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| {
                allowed.iter().find(|a| a.eq_ignore_ascii_case(v)).copied().ok_or_else(|| {
                    ApiError::BadRequest {
                        target: Some("$expand".into()),
                        message: format!(
                        "The $expand value '{v}' is not supported here. Supported values: '{}'.",
                        allowed.join("', '")
                    ),
                    }
                })
            })
            .collect()
    }
}

pub fn query_param<'q>(query: &'q [(String, String)], name: &str) -> Option<&'q str> {
    query.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

pub use crate::arm::json;

pub fn ok<T: Serialize>(body: &T) -> ApiResult<Response> {
    Ok(json(StatusCode::OK, body))
}

/// A 200 JSON response whose body is rendered once into `memo` and then served as it is. Only for
/// bodies that cannot vary between requests (the caller makes sure: no paging, no per-request data).
pub fn memoized<T: Serialize>(
    memo: &OnceLock<Bytes>,
    render: impl FnOnce() -> ApiResult<T>,
) -> ApiResult<Response> {
    let bytes = match memo.get() {
        Some(b) => b.clone(),
        None => {
            let b = Bytes::from(
                serde_json::to_vec(&render()?).map_err(|e| ApiError::Internal(e.into()))?,
            );
            memo.get_or_init(|| b).clone()
        }
    };
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    Ok(r)
}

/// The service: the router, inside the one outer layer (which must see requests before routing).
pub fn router(state: AppState) -> ArmService<Router> {
    let outer = ArmLayer { https: state.config.https, timeout: state.config.request_timeout };
    let router = Router::new()
        .merge(ops::router())
        .merge(
            ext::router()
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard_ext)),
        )
        .merge(crate::identity::router(state.identity.clone()))
        .method_not_allowed_fallback(ext::method_not_allowed)
        .fallback(arm)
        .with_state(state);
    outer.layer(router)
}

/// The ARM surface: parse, check method and api-version, then dispatch.
async fn arm(State(state): State<AppState>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0);
    let (parts, body) = request.into_parts();
    let query: Vec<(String, String)> =
        form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()).into_owned().collect();
    let requested_version = query_param(&query, "api-version").map(str::to_string);
    let endpoint =
        match Endpoint::parse(parts.uri.path(), requested_version.as_deref().unwrap_or("")) {
            Ok(e) => e,
            Err(e) if requested_version.is_none() && e.status() == StatusCode::NOT_FOUND => {
                return ApiError::MissingApiVersion.into_response()
            }
            Err(e) => return e.into_response(),
        };
    if !endpoint.allows(&parts.method) {
        return ApiError::MethodNotAllowed { method: parts.method, allow: endpoint.allow() }
            .into_response();
    }
    let api_version = match endpoint.family().check(requested_version.as_deref()) {
        Ok(v) => v,
        Err(e) => return e.into_response(),
    };
    let principal =
        match auth::authorize(&state, &parts.headers, &parts.uri, &endpoint, &parts.method).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        };
    // The budget is per principal: its object id, or (under --auth any) its bearer credential.
    let kind = if parts.method == Method::GET { Kind::Read } else { Kind::Write };
    let remaining = if state.throttle.enabled() {
        let budget_key = match principal.tenant {
            Some(_) => principal.object_id.clone(),
            None => parts.headers.get(header::AUTHORIZATION).map(principal_key).unwrap_or_default(),
        };
        match state.throttle.take(&budget_key, endpoint.subscription(), kind) {
            Ok(r) => r,
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    let body = match read_body(body, state.config.max_body).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let ctx = Ctx {
        state: &state,
        method: parts.method.clone(),
        uri: &parts.uri,
        headers: &parts.headers,
        api_version,
        query,
        body,
        principal,
    };
    let label = endpoint.label();
    let result = match endpoint {
        Endpoint::SecureScores { sub } => scores::list_scores(&ctx, sub).await,
        Endpoint::SecureScore { sub, name } => scores::get_score(&ctx, sub, &name).await,
        Endpoint::SecureScoreControls { sub, score } => {
            scores::list_controls(&ctx, sub, Some(&score)).await
        }
        Endpoint::Controls { sub } => scores::list_controls(&ctx, sub, None).await,
        Endpoint::Definitions => scores::list_definitions(&ctx, None).await,
        Endpoint::SubscriptionDefinitions { sub } => {
            scores::list_definitions(&ctx, Some(sub)).await
        }
        Endpoint::Assessments { scope } => assessments::list(&ctx, &scope).await,
        Endpoint::Assessment { resource, name } => match ctx.method {
            Method::PUT => assessments::put(&ctx, &resource, &name).await,
            Method::DELETE => assessments::delete(&ctx, &resource, &name).await,
            _ => assessments::get(&ctx, &resource, &name).await,
        },
        Endpoint::MetadataList => metadata::list(&ctx, None).await,
        Endpoint::Metadata { name } => metadata::get(&ctx, None, &name).await,
        Endpoint::SubscriptionMetadataList { sub } => metadata::list(&ctx, Some(sub)).await,
        Endpoint::SubscriptionMetadata { sub, name } => match ctx.method {
            Method::PUT => metadata::put(&ctx, sub, &name).await,
            Method::DELETE => metadata::delete(&ctx, sub, &name).await,
            _ => metadata::get(&ctx, Some(sub), &name).await,
        },
        Endpoint::Subscriptions => subscriptions::list(&ctx).await,
        Endpoint::Subscription { sub } => subscriptions::get(&ctx, sub).await,
        Endpoint::Tenants => subscriptions::tenants(&ctx).await,
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(remaining) = remaining {
        response.headers_mut().insert(kind.header(), HeaderValue::from(remaining));
    }
    ops::record(label, response.status(), started.elapsed());
    tracing::debug!(request_id = ?request_id, endpoint = label, status = response.status().as_u16(), "request");
    response
}

/// A stable, non-reversible key of a credential (never keep or log tokens themselves).
fn principal_key(value: &HeaderValue) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(value.as_bytes());
    digest.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

/// Read a body up to `limit` bytes; larger bodies are a 413 CloudError.
async fn read_body(body: Body, limit: usize) -> ApiResult<Bytes> {
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
