//! The HTTP surface: the ARM routes (parsed into an [`Endpoint`] by [`route`], then one handler
//! module per resource family; `operations` is the provider's operations list), the extension API
//! and the health endpoints (`ops`).
//!
//! Every response leaves through [`router`]'s outer layers: ARM headers, the CloudError shape for
//! failures raised before a handler (panics, timeouts, request heads over the limits), and request
//! logging. Bodies are read, under one limit, by [`crate::arm::extract`], whose extractors also
//! turn every rejection of the non-ARM routes into a CloudError.

pub mod assessments;
mod auth;
pub mod automations;
mod changes;
pub mod dashboard;
mod exemptions;
pub mod ext;
mod improvements;
mod management_groups;
mod metadata;
pub mod openapi;
mod operations;
mod ops;
mod resource_graph;
pub mod route;
mod scope;
mod scores;
mod sub_assessments;
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
    /// The URL clients reach the server at (`--public-url`), as given; `None`: the listen
    /// address. The resolved URL is `Identity::public_url`.
    pub public_url: Option<crate::arm::PublicUrl>,
    /// How long status transitions (`/securescore/v1/.../changes`) are kept
    /// (`--changes-retention-days`); `None`: for ever.
    pub changes_retention: Option<Duration>,
}

/// How long status transitions are kept unless told otherwise: 90 days.
pub const DEFAULT_CHANGES_RETENTION: Duration = Duration::from_secs(90 * 24 * 3600);

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            page_size: 100,
            max_body: crate::arm::extract::DEFAULT_BODY_LIMIT,
            https: false,
            request_timeout: Duration::from_secs(60),
            trust_issuers: Vec::new(),
            public_url: None,
            changes_retention: Some(DEFAULT_CHANGES_RETENTION),
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

    /// The request body as JSON; anything else is a 400 `InvalidRequestContent`.
    pub fn json_body(&self) -> ApiResult<serde_json::Value> {
        serde_json::from_slice(&self.body).map_err(|e| {
            ApiError::invalid_field("", format!("The request content is not valid JSON: {e}."))
        })
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
        next_link(&self.state.identity.public_url, self.uri, cursor)
    }

    /// `$expand`, checked against the values this endpoint documents.
    pub fn expand(&self, allowed: &[&'static str]) -> ApiResult<Vec<&'static str>> {
        let Some(raw) = self.query("$expand") else { return Ok(Vec::new()) };
        // `$expand=` asks for nothing nameable: ARM refuses it rather than read it as absent.
        if raw.trim().is_empty() {
            return Err(ApiError::BadRequest {
                target: Some("$expand".into()),
                message: format!(
                    "The $expand parameter is empty. Supported values: '{}'.",
                    allowed.join("', '")
                ),
            });
        }
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

/// The absolute URL of the next page of the list at `uri`: the public URL, same path and
/// parameters, a new `$skipToken`.
pub fn next_link(base: impl std::fmt::Display, uri: &Uri, cursor: &Cursor) -> String {
    let mut query: Vec<&str> = uri
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
    format!("{base}{}?{}", uri.path(), query.join("&"))
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
    Ok(json_bytes(bytes))
}

/// How many pages of lists one subscription's view keeps rendered: the first pages of the
/// few shapes clients ask for (api-versions, `$expand`), not every page of a large list. A page
/// is 20–100 KB, so this bounds the memory to a few hundred KB per subscription read.
const PAGES_PER_VIEW: usize = 4;

/// Rendered list pages kept in a subscription's read model ([`crate::store::ScoreView::pages`]):
/// a list that reads the database and renders rows on every request (the assessments list: about
/// 350 µs for 20 KB) is rendered once per version of the subscription instead. The page is keyed
/// by the request's path and query, which decide it entirely (scope, api-version, `$expand`,
/// `$skipToken`; the caller's identity only decides whether it may read, before this).
pub mod page_memo {
    use super::*;
    use crate::store::ScoreView;

    /// The page rendered earlier for this request, if any.
    pub fn get(view: &ScoreView, uri: &Uri) -> Option<Response> {
        let key = uri.path_and_query().map_or("", |p| p.as_str());
        let bytes = view.pages.lock().unwrap_or_else(|e| e.into_inner()).get(key).cloned()?;
        Some(json_bytes(bytes))
    }

    /// Render `body` and keep it for the next request of the same page (while there is room).
    pub fn put<T: Serialize>(view: &ScoreView, uri: &Uri, body: &T) -> ApiResult<Response> {
        let bytes =
            Bytes::from(serde_json::to_vec(body).map_err(|e| ApiError::Internal(e.into()))?);
        let key = uri.path_and_query().map_or("", |p| p.as_str());
        let mut pages = view.pages.lock().unwrap_or_else(|e| e.into_inner());
        if pages.len() < PAGES_PER_VIEW {
            pages.insert(key.into(), bytes.clone());
        }
        Ok(json_bytes(bytes))
    }
}

/// A 200 response of JSON bytes rendered earlier.
fn json_bytes(bytes: Bytes) -> Response {
    let mut r = (StatusCode::OK, bytes).into_response();
    r.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(JSON_CONTENT_TYPE));
    r
}

/// The service: the router, inside the one outer layer (which must see requests before routing).
pub fn router(state: AppState) -> ArmService<Router> {
    let outer = ArmLayer {
        https: state.config.https,
        timeout: state.config.request_timeout,
        max_body: state.config.max_body,
    };
    let router = Router::new()
        .merge(ops::router())
        .merge(
            ext::router()
                .route_layer(axum::middleware::from_fn_with_state(state.clone(), auth::guard_ext)),
        )
        .merge(crate::identity::router(state.identity.clone()))
        .merge(openapi::router())
        .merge(dashboard::router())
        .method_not_allowed_fallback(ext::method_not_allowed)
        .fallback(arm)
        // Routes read bodies through `arm::extract`; should one use axum's own extractors, the limit is
        // still the one limit.
        .layer(axum::extract::DefaultBodyLimit::max(state.config.max_body))
        .with_state(state);
    outer.layer(router)
}

/// The ARM surface: parse, check method and api-version, then dispatch. Everything that needs no
/// body (routing, api-version, authentication, budgets) is decided before the body is read.
async fn arm(State(state): State<AppState>, request: Request) -> Response {
    let started = std::time::Instant::now();
    let request_id = request.extensions().get::<RequestId>().map(|r| r.0);
    if !route::is_arm_path(request.uri().path()) {
        return ApiError::NotFound(request.uri().path().to_string()).into_response();
    }
    let (mut parts, body) = request.into_parts();
    // HEAD is a GET without the body: routed, authorized and answered as one.
    let head = parts.method == Method::HEAD;
    if head {
        parts.method = Method::GET;
    }
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
        return ApiError::MethodNotAllowed { method: parts.method, allow: Some(endpoint.allow()) }
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
    // A Resource Graph query is a POST that only reads.
    let reads = parts.method == Method::GET || endpoint == Endpoint::ResourceGraph;
    let kind = if reads { Kind::Read } else { Kind::Write };
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
    let body = match crate::arm::extract::read_body(body, state.config.max_body).await {
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
    let budget_header = kind.header(endpoint.subscription());
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
        Endpoint::Operations => operations::list(&ctx).await,
        Endpoint::SubAssessmentsAll { scope } => sub_assessments::list(&ctx, &scope, None).await,
        Endpoint::SubAssessments { scope, assessment } => {
            sub_assessments::list(&ctx, &scope, Some(&assessment)).await
        }
        Endpoint::SubAssessment { resource, assessment, name } => match ctx.method {
            Method::PUT => sub_assessments::put(&ctx, &resource, &assessment, &name).await,
            Method::DELETE => sub_assessments::delete(&ctx, &resource, &assessment, &name).await,
            _ => sub_assessments::get(&ctx, &resource, &assessment, &name).await,
        },
        Endpoint::Automations { sub, group } => {
            automations::list(&ctx, sub, group.as_deref()).await
        }
        Endpoint::Automation { sub, group, name } => match ctx.method {
            Method::PUT | Method::PATCH => automations::put(&ctx, sub, &group, &name).await,
            Method::DELETE => automations::delete(&ctx, sub, &group, &name).await,
            _ => automations::get(&ctx, sub, &group, &name).await,
        },
        Endpoint::AutomationValidate { sub, .. } => automations::validate(&ctx, sub).await,
        Endpoint::ResourceGraph => resource_graph::query(&ctx).await,
        // Management groups and the scopes around them.
        Endpoint::ManagementGroups => management_groups::list(&ctx).await,
        Endpoint::ManagementGroup { group } => match ctx.method {
            Method::PUT => management_groups::put(&ctx, &group).await,
            Method::PATCH => management_groups::patch(&ctx, &group).await,
            Method::DELETE => management_groups::delete(&ctx, &group).await,
            _ => management_groups::get(&ctx, &group).await,
        },
        Endpoint::ManagementGroupDescendants { group } => {
            management_groups::descendants(&ctx, &group).await
        }
        Endpoint::ManagementGroupSubscriptions { group } => {
            management_groups::subscriptions(&ctx, &group).await
        }
        Endpoint::ManagementGroupSubscription { group, sub } => match ctx.method {
            Method::PUT => management_groups::put_subscription(&ctx, &group, sub).await,
            Method::DELETE => management_groups::delete_subscription(&ctx, &group, sub).await,
            _ => management_groups::get_subscription(&ctx, &group, sub).await,
        },
        Endpoint::ScopedSecureScores { scope } => scores::list_scores_at(&ctx, &scope).await,
        Endpoint::ScopedSecureScore { scope, name } => {
            scores::get_score_at(&ctx, &scope, &name).await
        }
        Endpoint::ScopedControls { scope, score } => {
            scores::list_controls_at(&ctx, &scope, score.as_deref()).await
        }
        Endpoint::GroupAssessments { group } => assessments::list_in_group(&ctx, &group).await,
        Endpoint::GroupSubAssessments { group, assessment } => {
            sub_assessments::list_in_group(&ctx, &group, assessment.as_deref()).await
        }
    };
    let mut response = result.unwrap_or_else(IntoResponse::into_response);
    if let Some(remaining) = remaining {
        response.headers_mut().insert(budget_header, HeaderValue::from(remaining));
    }
    if head {
        without_body(&mut response);
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

/// A HEAD answer: the GET's headers (its length included), no body.
fn without_body(response: &mut Response) {
    use hyper::body::Body as _;
    if let Some(length) = response.body().size_hint().exact() {
        response.headers_mut().insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    }
    *response.body_mut() = Body::empty();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::AuthMode;
    use crate::store::{StoreConfig, Subscription};
    use proptest::prelude::*;
    use proptest::test_runner::{Config, TestRunner};
    use tower::ServiceExt;
    use uuid::Uuid;

    const SUB: &str = "20ff7fc3-e762-44dd-bd96-b71116dcdc23";

    async fn state() -> AppState {
        let store = Store::open(&StoreConfig::Memory).await.expect("a memory store");
        store
            .put_subscription(&Subscription {
                id: Uuid::parse_str(SUB).expect("a GUID"),
                display_name: "fuzz".into(),
                tenant_id: Uuid::nil(),
                state: "Enabled".into(),
            })
            .await
            .expect("a subscription");
        let identity = crate::identity::Identity::open(
            store.clone(),
            AuthMode::Any,
            None,
            &[],
            "http://127.0.0.1".parse().expect("a URL"),
        )
        .await
        .expect("identity");
        AppState {
            store,
            config: Arc::new(ApiConfig { max_body: 4096, ..ApiConfig::default() }),
            throttle: Arc::new(Throttle::new(None)),
            identity: Arc::new(identity),
        }
    }

    /// Path segments: the words routes are made of, names that must be refused, and noise.
    fn segment() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "subscriptions",
                SUB,
                "providers",
                "Microsoft.Security",
                "secureScores",
                "ascScore",
                "secureScoreControls",
                "secureScoreControlDefinitions",
                "assessments",
                "assessmentMetadata",
                "resourceGroups",
                "rg",
                "Microsoft.Compute",
                "vm",
                "tenants",
                "21300918-b2e3-0346-785f-c77ff57d243b",
                "securescore",
                "v1",
                "import",
                "history",
                "aggregate",
                "principals",
                "roleAssignments",
                "keys",
                "rotate",
                "resetSecret",
                "common",
                "oauth2",
                "v2.0",
                "token",
                "authorize",
                "discovery",
                "metadata",
                "endpoints",
                "healthz",
                "..",
                ".",
                "%2F",
                "%2f",
                "%FF",
                "%00",
                "%C3",
                "%2E%2E",
                "",
            ])
            .prop_map(str::to_string),
            "[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}",
        ]
    }

    /// A name: a good one, one that must be refused, or noise.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec![
                "ascScore",
                "21300918-b2e3-0346-785f-c77ff57d243b",
                "rg",
                "vm",
                "common",
                "ca039e75-a276-4175-aebc-bcd41e4b14b7",
                "..",
                ".",
                "%2E",
                "a%2Fb",
                "%FF",
                "a%00",
                "%C3",
                "caf%C3%A9",
                "%252F",
                "",
            ])
            .prop_map(str::to_string),
            "[A-Za-z0-9._~%!$&'()*+,;=:@-]{0,12}",
            Just("n".repeat(300)),
        ]
    }

    /// A path: a route's template with its holes filled, or segments thrown together.
    fn path() -> impl Strategy<Value = String> {
        let templates = prop::sample::select(vec![
            "/subscriptions/{s}/providers/Microsoft.Security/secureScores/{n}",
            "/subscriptions/{s}/providers/Microsoft.Security/secureScores/{n}/secureScoreControls",
            "/subscriptions/{s}/providers/Microsoft.Security/secureScoreControls",
            "/subscriptions/{s}/providers/Microsoft.Security/secureScoreControlDefinitions",
            "/subscriptions/{s}/resourceGroups/{n}/providers/Microsoft.Compute/virtualMachines/{n}/providers/Microsoft.Security/assessments/{n}",
            "/subscriptions/{s}/resourceGroups/{n}/providers/Microsoft.Security/assessments",
            "/subscriptions/{s}/providers/Microsoft.Security/assessmentMetadata/{n}",
            "/providers/Microsoft.Security/assessmentMetadata/{n}",
            "/providers/Microsoft.Security/operations",
            "/providers/Microsoft.ResourceGraph/resources",
            "/providers/Microsoft.Management/managementGroups/{n}",
            "/providers/Microsoft.Management/managementGroups/{n}/subscriptions/{s}",
            "/providers/Microsoft.Management/managementGroups/{n}/descendants",
            "/providers/Microsoft.Management/managementGroups/{n}/providers/Microsoft.Security/secureScores/{n}",
            "/subscriptions/{s}/resourceGroups/{n}/providers/Microsoft.Security/secureScoreControls",
            "/subscriptions/{s}",
            "/SUBSCRIPTIONS//{s}/",
            "/securescore/v1/subscriptions/{s}",
            "/securescore/v1/subscriptions/{s}/history",
            "/securescore/v1/principals/{n}",
            "/securescore/v1/principals/{n}/resetSecret",
            "/securescore/v1/roleAssignments/{n}",
            "/securescore/v1/{n}",
            "/{n}/oauth2/v2.0/token",
            "/{n}/oauth2/token",
            "/{n}/discovery/v2.0/keys",
            "/{n}/v2.0/.well-known/openid-configuration",
        ]);
        let sub = prop_oneof![
            Just(SUB.to_string()),
            Just("00000000-0000-0000-0000-000000000001".to_string()),
            name(),
        ];
        let filled =
            (templates, sub, prop::collection::vec(name(), 3)).prop_map(|(t, s, names)| {
                let mut out = t.replace("{s}", &s);
                for n in names {
                    out = out.replacen("{n}", &n, 1);
                }
                out
            });
        let thrown =
            prop::collection::vec(segment(), 0..10).prop_map(|s| format!("/{}", s.join("/")));
        prop_oneof![3 => filled, 1 => thrown]
    }

    fn query() -> impl Strategy<Value = Option<String>> {
        prop::option::weighted(
            0.9,
            prop_oneof![
                prop::sample::select(vec![
                    "api-version=2020-01-01",
                    "api-version=2021-06-01",
                    "api-version=2022-12-01",
                    "api-version=2020-01-01&$expand=definition",
                    "api-version=2021-06-01&$skipToken=%FF%FE",
                    "api-version=2021-06-01&$expand=links,metadata",
                    "api-version=2015-06-01-preview",
                    "api-version=2021-03-01",
                    "api-version=2021-06-01&$expand=",
                    "api-version=2021-04-01&$expand=children&$recurse=true",
                    "api-version=2023-04-01&$top=0",
                    "from=2020-01-01T00:00:00Z&to=1999-01-01T00:00:00Z&interval=day",
                    "subscriptions=nope",
                ])
                .prop_map(str::to_string),
                "[A-Za-z0-9$=&%,.-]{0,24}",
            ],
        )
    }

    fn body() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(Vec::new()),
            prop::sample::select(vec![
                r#"{"properties":{"resourceDetails":{"source":"Azure"},"status":{"code":"Healthy"}}}"#,
                r#"{"properties":{"displayName":"x","severity":"Low","assessmentType":"CustomerManaged"}}"#,
                r#"{"displayName":"x"}"#,
                r#"{"principalId":"x","role":"Reader"}"#,
                r#"{"query":"securityresources | summarize count() by type | top 2 by count_"}"#,
                r#"{"query":"securityresources | where x","options":{"$skipToken":"%FF"}}"#,
                r#"{"query":"resources","subscriptions":["x"],"options":{"$top":0}}"#,
                "grant_type=client_credentials&client_id=x&client_secret=y&scope=https://management.azure.com/.default",
                "{\"a\":",
                "[]",
                "null",
            ])
            .prop_map(|s| s.as_bytes().to_vec()),
            prop::collection::vec(any::<u8>(), 0..64),
            // Over the limit configured above.
            Just(vec![b'x'; 5000]),
        ]
    }

    /// No request, however odd, gets a 5xx or an error that is not JSON.
    #[test]
    fn the_router_answers_every_request_with_json_and_never_a_5xx() {
        let rt =
            tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let router = router(rt.block_on(state()));
        let methods = prop::sample::select(vec![
            Method::GET,
            Method::HEAD,
            Method::PUT,
            Method::POST,
            Method::DELETE,
            Method::PATCH,
            Method::OPTIONS,
        ]);
        let strategy = (methods, path(), any::<bool>(), query(), body(), any::<bool>());
        let mut runner =
            TestRunner::new(Config { cases: 400, failure_persistence: None, ..Config::default() });
        runner
            .run(&strategy, |(method, path, trailing, query, body, token)| {
                let mut target = path;
                if trailing {
                    target.push('/');
                }
                if let Some(q) = &query {
                    target = format!("{target}?{q}");
                }
                let Ok(uri) = target.parse::<Uri>() else { return Ok(()) };
                let mut request = Request::builder().method(method.clone()).uri(uri);
                if token {
                    request = request
                        .header(header::AUTHORIZATION, "Bearer eyJhbGciOiJSUzI1NiJ9.e30.c2ln");
                }
                let request = request.body(Body::from(body)).expect("a request");
                let response = rt.block_on(router.clone().oneshot(request)).expect("infallible");
                let status = response.status();
                let content_type = response
                    .headers()
                    .get(header::CONTENT_TYPE)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string();
                let bytes = rt
                    .block_on(axum::body::to_bytes(response.into_body(), usize::MAX))
                    .expect("a body");
                prop_assert!(!status.is_server_error(), "{method} {target}: {status} {bytes:?}");
                // The sign-in page is a page for browsers: its errors are HTML by design.
                let sign_in = target.to_ascii_lowercase().contains("/authorize");
                if status.is_client_error() && !sign_in {
                    prop_assert!(
                        content_type.starts_with("application/json"),
                        "{method} {target}: {status} {content_type}"
                    );
                    if method == Method::HEAD {
                        prop_assert!(bytes.is_empty());
                    } else {
                        let json: serde_json::Value = serde_json::from_slice(&bytes)
                            .map_err(|e| TestCaseError::fail(format!("{method} {target}: {e}")))?;
                        let code = json["error"]["code"].as_str().or(json["error"].as_str());
                        prop_assert!(code.is_some_and(|c| !c.is_empty()), "{json}");
                    }
                }
                Ok(())
            })
            .expect("every request gets a JSON answer");
    }
}
