//! Identity: an Entra ID-compatible authority, authentication of every ARM request, and RBAC.
//!
//! | module | owns |
//! |---|---|
//! | [`authority`] | the authority's HTTP endpoints on the server's own host and port: OpenID configuration, token endpoint (client credentials, password), JWKS, the implicit-flow sign-in page, `/metadata/endpoints` |
//! | [`keys`] | the RS256 signing keys in the data directory (0600), rotation |
//! | [`token`] | the access tokens the authority issues (claims, lifetime, audiences) |
//! | [`secret`] | client secrets and passwords: generation, salted hashes |
//! | [`authn`] | authentication: bearer token validation exactly as docs/ARM.md says, each failure's 401 |
//! | [`external`] | trusted external authorities (`--trust-issuer`): discovery and a JWKS cache |
//! | [`authz`] | authorization: Azure's roles and actions, what each request needs, the 403 |
//! | [`admin`] | the extension API to manage principals, role assignments and keys |
//! | [`demo`] | the demo principal of `serve --demo` and its credentials file |
//!
//! [`Identity`] holds the state (keys, trusted issuers, a short-lived cache of role assignments);
//! [`authorize`] is the one call the ARM dispatcher makes before any handler runs, and
//! [`guard_ext`] the layer in front of the extension API. Authentication is apart from
//! authorization: `authn` says who, `authz` says what they may do.

pub mod admin;
pub mod authn;
pub mod authority;
pub mod authz;
pub mod demo;
pub mod external;
pub mod keys;
pub mod secret;
pub mod token;

use anyhow::Result;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method, Uri};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::api::{AppState, Endpoint};
use crate::arm::{parse_subscription_id, ApiError, ApiResult};
use crate::server::AuthMode;
use crate::store::{RoleAssignment, Store, Subscription};
use authn::AuthFailure;
use authz::Need;

/// How long a principal's role assignments are cached. Writes through this server clear the cache
/// at once; writes by another process (the CLI on the data directory) are seen within this time.
const ASSIGNMENT_CACHE_TTL: Duration = Duration::from_secs(1);

/// A principal's role assignments and when they were read.
type CachedAssignments = (Instant, Arc<Vec<RoleAssignment>>);

pub struct Identity {
    pub mode: AuthMode,
    pub keys: keys::KeyRing,
    pub trusted: Vec<external::TrustedIssuer>,
    pub store: Store,
    pub https: bool,
    pub default_tenant: Uuid,
    cache: Mutex<HashMap<String, CachedAssignments>>,
}

impl Identity {
    /// The identity state of a server: keys from `key_dir` (or in memory), trusted issuers.
    pub async fn open(
        store: Store,
        mode: AuthMode,
        key_dir: Option<&Path>,
        trust: &[String],
        https: bool,
    ) -> Result<Identity> {
        let keys = match key_dir {
            Some(dir) => keys::KeyRing::open(dir)?,
            None => keys::KeyRing::ephemeral()?,
        };
        let trusted =
            trust.iter().map(|t| external::TrustedIssuer::new(t)).collect::<Result<Vec<_>>>()?;
        let default_tenant = crate::server::default_tenant(&store).await?;
        Ok(Identity {
            mode,
            keys,
            trusted,
            store,
            https,
            default_tenant,
            cache: Mutex::new(HashMap::new()),
        })
    }

    /// Fetch the trusted issuers' keys in the background (start-up must not wait on the network).
    pub fn prefetch(self: &Arc<Self>) {
        for i in 0..self.trusted.len() {
            let me = self.clone();
            tokio::spawn(async move { me.trusted[i].refresh().await });
        }
    }

    pub async fn assignments(&self, object_id: &str) -> ApiResult<Arc<Vec<RoleAssignment>>> {
        if let Some((at, a)) = self.cache.lock().unwrap_or_else(|e| e.into_inner()).get(object_id) {
            if at.elapsed() < ASSIGNMENT_CACHE_TTL {
                return Ok(a.clone());
            }
        }
        let list = Arc::new(self.store.role_assignments(Some(object_id)).await?);
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() > 10_000 {
            cache.clear();
        }
        cache.insert(object_id.to_string(), (Instant::now(), list.clone()));
        Ok(list)
    }

    /// Forget cached assignments (after a write through this server).
    pub fn invalidate(&self) {
        self.cache.lock().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The `WWW-Authenticate` challenge of a 401.
    fn challenge(
        &self,
        headers: &HeaderMap,
        uri: Option<&Uri>,
        tenant: Uuid,
        failure: &AuthFailure,
    ) -> String {
        let description = failure.description.replace(['"', '\\'], "'");
        format!(
            "Bearer authorization_uri=\"{}/{tenant}\", error=\"invalid_token\", error_description=\"{description}\"",
            crate::arm::request_base(self.https, headers, uri)
        )
    }

    fn unauthenticated(
        &self,
        headers: &HeaderMap,
        uri: Option<&Uri>,
        tenant: Uuid,
        f: AuthFailure,
    ) -> ApiError {
        let challenge = self.challenge(headers, uri, tenant, &f);
        ApiError::Unauthenticated { code: f.code, message: f.message, challenge }
    }

    /// Who sent the request (no authorization yet).
    pub async fn authenticate(&self, headers: &HeaderMap) -> Result<Principal, AuthFailure> {
        let raw = headers.get(header::AUTHORIZATION).map(|v| v.to_str().unwrap_or("\u{0}"));
        let token = authn::bearer(raw)?;
        match self.mode {
            AuthMode::Any => {
                if !authn::well_formed(token) {
                    return Err(AuthFailure {
                        code: "InvalidAuthenticationToken",
                        message: authn::INVALID_TOKEN_MESSAGE.into(),
                        description: "The access token is not a JWT (three dot-separated base64url segments).".into(),
                    });
                }
                let claims = authn::unverified_claims(token).unwrap_or_default();
                let get = |n: &str| claims.get(n).and_then(|v| v.as_str()).map(str::to_string);
                Ok(Principal {
                    object_id: get("oid").unwrap_or_else(|| Uuid::nil().to_string()),
                    tenant: None,
                    client: get("appid").or_else(|| get("upn")).unwrap_or_else(|| "any".into()),
                    issuer: get("iss").unwrap_or_default(),
                    access: Access::Full,
                })
            }
            AuthMode::Strict => {
                let who = authn::validate(self, token).await?;
                let assignments = self.assignments(&who.object_id).await.map_err(|_| AuthFailure {
                    code: "AuthenticationFailed",
                    message: "Authentication failed: the principal's role assignments could not be read.".into(),
                    description: "The server could not read role assignments.".into(),
                })?;
                Ok(Principal {
                    object_id: who.object_id,
                    tenant: Uuid::parse_str(&who.tenant).ok(),
                    client: who.client,
                    issuer: who.issuer,
                    access: Access::Assignments(assignments),
                })
            }
        }
    }
}

#[derive(Debug, Clone)]
enum Access {
    /// `--auth any`: everything.
    Full,
    Assignments(Arc<Vec<RoleAssignment>>),
}

/// An authenticated caller and what it may do.
#[derive(Debug, Clone)]
pub struct Principal {
    /// Object id (`oid`/`puid`/`altsecid`), lowercase.
    pub object_id: String,
    /// The token's tenant (`None` under `--auth any`: no tenant checks).
    pub tenant: Option<Uuid>,
    /// What ARM's 403 calls the client: `appid` or `upn`.
    pub client: String,
    /// The token's `iss`.
    pub issuer: String,
    access: Access,
}

impl Principal {
    /// `action` over `subscription` (`None`: over `/`).
    pub fn can(&self, action: &str, subscription: Option<Uuid>) -> bool {
        match &self.access {
            Access::Full => true,
            Access::Assignments(a) => authz::granted(a, action, subscription),
        }
    }

    /// Does `GET /subscriptions` show it: a role on it, and (for a token) the token's tenant.
    pub fn sees(&self, sub: &Subscription) -> bool {
        match &self.access {
            Access::Full => true,
            Access::Assignments(a) => {
                self.tenant == Some(sub.tenant_id)
                    && a.iter().any(|x| authz::covers(&x.scope, Some(sub.id)))
            }
        }
    }

    fn forbidden(&self, action: &str, scope: &str) -> ApiError {
        ApiError::AuthorizationFailed {
            client: self.client.clone(),
            object_id: self.object_id.clone(),
            action: action.to_string(),
            scope: scope.to_string(),
        }
    }
}

/// Authenticate and authorize one ARM request, before its handler runs. 401s come before 404s;
/// a request on a subscription that does not exist is left to the handler's 404.
pub async fn authorize(
    state: &AppState,
    headers: &HeaderMap,
    uri: &Uri,
    endpoint: &Endpoint,
    method: &Method,
) -> ApiResult<Principal> {
    let identity = &state.identity;
    let need = authz::need(endpoint, method, uri.path());
    // From the cached read model: authorization must not cost a database read per request.
    let view = match &need {
        Need::Action { subscription, .. } => state.store.view(*subscription).await?,
        _ => None,
    };
    let subscription = view.as_ref().map(|v| &v.subscription);
    let challenge_tenant = subscription.map_or(identity.default_tenant, |s| s.tenant_id);
    let principal = match identity.authenticate(headers).await {
        Ok(p) => p,
        Err(f) => return Err(identity.unauthenticated(headers, Some(uri), challenge_tenant, f)),
    };
    let Need::Action { action, subscription: sub_id, scope } = need else { return Ok(principal) };
    let Some(sub) = subscription else { return Ok(principal) };
    if let Some(tid) = principal.tenant {
        if tid != sub.tenant_id {
            let base = crate::arm::request_base(identity.https, headers, Some(uri));
            let f = AuthFailure::wrong_tenant(&principal.issuer, &sub.tenant_id.to_string(), &base);
            return Err(identity.unauthenticated(headers, Some(uri), sub.tenant_id, f));
        }
    }
    if principal.can(action, Some(sub_id)) {
        Ok(principal)
    } else {
        Err(principal.forbidden(action, &scope))
    }
}

/// Authenticate a request of the extension API and require `action` over `subscription` (or `/`).
pub async fn require(
    state: &AppState,
    headers: &HeaderMap,
    action: &str,
    subscription: Option<Uuid>,
) -> ApiResult<Principal> {
    let identity = &state.identity;
    let principal = identity
        .authenticate(headers)
        .await
        .map_err(|f| identity.unauthenticated(headers, None, identity.default_tenant, f))?;
    if principal.can(action, subscription) {
        Ok(principal)
    } else {
        let scope = subscription.map_or_else(|| "/".to_string(), |s| format!("/subscriptions/{s}"));
        Err(principal.forbidden(action, &scope))
    }
}

/// The layer in front of the extension API's existing routes: reads of one subscription need read
/// access to it; everything else is administration (Owner at `/`).
pub async fn guard_ext(
    State(state): State<AppState>,
    mut request: Request,
    next: Next,
) -> Response {
    // Owned parts: a request body is not Sync, so no reference to the request may cross an await.
    let (method, uri, headers) =
        (request.method().clone(), request.uri().clone(), request.headers().clone());
    match ext_principal(&state, &method, &uri, &headers).await {
        Ok(p) => {
            request.extensions_mut().insert(p);
            next.run(request).await
        }
        Err(e) => e.into_response(),
    }
}

async fn ext_principal(
    state: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> ApiResult<Principal> {
    let path = uri.path().trim_end_matches('/');
    let rest = path.strip_prefix(crate::api::ext::PREFIX).unwrap_or(path);
    let segs: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    if *method != Method::GET {
        return require(state, headers, authz::ADMIN_ACTION, None).await;
    }
    match segs.as_slice() {
        ["subscriptions"] => require(state, headers, authz::SUBSCRIPTION_READ, None).await,
        ["subscriptions", id] => {
            require(state, headers, authz::SUBSCRIPTION_READ, Some(parse_subscription_id(id)?))
                .await
        }
        ["subscriptions", id, "history"] => {
            require(state, headers, authz::SCORE_READ, Some(parse_subscription_id(id)?)).await
        }
        ["aggregate"] => {
            let ids = crate::api::ext::aggregate_subscriptions(state, uri.query()).await?;
            let principal =
                require(state, headers, authz::SCORE_READ, ids.first().copied()).await?;
            for id in ids {
                if !principal.can(authz::SCORE_READ, Some(id)) {
                    return Err(
                        principal.forbidden(authz::SCORE_READ, &format!("/subscriptions/{id}"))
                    );
                }
            }
            Ok(principal)
        }
        _ => require(state, headers, authz::ADMIN_ACTION, None).await,
    }
}

/// The identity routes: the authority (no token needed) and the identity extension API.
pub fn router() -> axum::Router<AppState> {
    authority::router().merge(admin::router())
}
