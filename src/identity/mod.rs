//! Identity: an Entra ID-compatible authority, authentication of every ARM request, and RBAC.
//!
//! | module | owns |
//! |---|---|
//! | [`authority`] | the authority's HTTP endpoints on the server's own host and port: OpenID configuration, token endpoint (client credentials, password, authorization code), JWKS, the sign-in page (implicit flow and code flow), `/metadata/endpoints` |
//! | [`code_flow`] | the authorization-code flow with PKCE: the known public clients (the dashboard), pending codes in the store (as digests), their one-time redemption at any replica |
//! | [`keys`] | the RS256 signing keys in the data directory (0600), rotation |
//! | [`token`] | the access tokens the authority issues (claims, lifetime, audiences) |
//! | [`secret`] | client secrets and passwords: generation, salted hashes |
//! | [`authn`] | authentication: bearer token validation exactly as docs/ARM.md says, each failure's 401 |
//! | [`external`] | trusted external authorities (`--trust-issuer`): discovery and a JWKS cache |
//! | [`authz`] | authorization: Azure's roles and actions, what each request needs, the 403 |
//! | [`admin`] | the extension API to manage principals, role assignments and keys |
//! | [`demo`] | the demo principal of `serve --demo` and its credentials file |
//!
//! [`Identity`] holds the state (keys, trusted issuers, the public URL, a short-lived cache of role
//! assignments). The API, above this module, computes what a request needs ([`Need`]: an action
//! over a scope) and calls [`Identity::authorize`] (ARM) or [`Identity::require`] (extension API)
//! before any handler runs; [`router`] serves the authority and the identity extension API on
//! their own state. Nothing here depends on the API or the server. Authentication is apart from
//! authorization: `authn` says who, `authz` says what they may do.

pub mod admin;
pub mod authn;
pub mod authority;
pub mod authz;
pub mod code_flow;
pub mod demo;
pub mod external;
pub mod keys;
pub mod secret;
pub mod token;

use anyhow::Result;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use uuid::Uuid;

use crate::arm::{ApiError, ApiResult, PublicUrl};
use crate::store::{RoleAssignment, Store, Subscription};
use authn::AuthFailure;
pub use authz::Need;

/// How the server authenticates ARM requests (`serve --auth`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuthMode {
    /// Every ARM request needs a valid bearer token (the default).
    Strict,
    /// Emulator mode: any well-formed bearer token is accepted with full access. Loopback only.
    Any,
}

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
    /// The server's configured URL (`--public-url`): the built-in authority's issuer and every
    /// URL it hands out. Never taken from a request's `Host`.
    pub public_url: PublicUrl,
    pub default_tenant: Uuid,
    /// Pending authorization codes, in the shared store (`code_flow`).
    pub codes: code_flow::Codes,
    cache: Mutex<HashMap<String, CachedAssignments>>,
    /// Verified bearer tokens (`authn::TokenCache`).
    pub tokens: authn::TokenCache,
}

/// The state of the identity routes (the authority and the identity extension API).
#[derive(Clone)]
pub struct IdentityState {
    pub identity: Arc<Identity>,
    pub store: Store,
}

impl IdentityState {
    pub fn new(identity: Arc<Identity>) -> Self {
        let store = identity.store.clone();
        IdentityState { identity, store }
    }
}

impl Identity {
    /// The identity state of a server: keys from `key_dir` (or in memory), trusted issuers.
    pub async fn open(
        store: Store,
        mode: AuthMode,
        key_dir: Option<&Path>,
        trust: &[String],
        public_url: PublicUrl,
    ) -> Result<Identity> {
        let keys = keys::KeyRing::for_store(&store, key_dir).await?;
        let trusted =
            trust.iter().map(|t| external::TrustedIssuer::new(t)).collect::<Result<Vec<_>>>()?;
        let default_tenant = store.default_tenant().await?;
        Ok(Identity {
            mode,
            keys,
            trusted,
            codes: code_flow::Codes::new(store.clone()),
            store,
            public_url,
            default_tenant,
            cache: Mutex::new(HashMap::new()),
            tokens: authn::TokenCache::default(),
        })
    }

    /// On a shared store, adopt the signing keys other replicas rotate, within a second.
    pub fn watch_keys(self: &Arc<Self>) {
        if !self.store.is_shared() {
            return;
        }
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(keys::SHARED_REFRESH_EVERY);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let Some(me) = me.upgrade() else { return };
                match me.keys.refresh().await {
                    Ok(true) => {
                        tracing::info!("adopted the signing keys rotated by another server")
                    }
                    Ok(false) => {}
                    Err(e) => {
                        tracing::warn!(error = format!("{e:#}"), "cannot re-read the signing keys")
                    }
                }
            }
        });
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

    /// The `WWW-Authenticate` challenge of a 401: where to get a token for `tenant`.
    fn challenge(&self, tenant: Uuid, failure: &AuthFailure) -> String {
        let description = failure.description.replace(['"', '\\'], "'");
        format!(
            "Bearer authorization_uri=\"{}/{tenant}\", error=\"invalid_token\", error_description=\"{description}\"",
            self.public_url
        )
    }

    fn unauthenticated(&self, tenant: Uuid, f: AuthFailure) -> ApiError {
        let challenge = self.challenge(tenant, &f);
        ApiError::Unauthenticated { code: f.code, message: f.message, challenge }
    }

    /// Authenticate one ARM request and check what it `need`s, before its handler runs.
    /// `subscription` is the one the need names, when it exists: 401s come before 404s, and a
    /// request on a subscription that does not exist is left to the handler's 404. `groups`: the
    /// management groups the need's target lies below (nearest first; a group target first
    /// names itself), whose role assignments it inherits.
    pub async fn authorize(
        &self,
        headers: &HeaderMap,
        need: &Need,
        subscription: Option<&Subscription>,
        groups: &[String],
    ) -> ApiResult<Principal> {
        let challenge_tenant = subscription.map_or(self.default_tenant, |s| s.tenant_id);
        let principal = match self.authenticate(headers).await {
            Ok(p) => p,
            Err(f) => return Err(self.unauthenticated(challenge_tenant, f)),
        };
        if let Need::GroupAction { action, scope, .. } = need {
            let target = authz::Target { subscription: None, groups };
            return if principal.can_at(action, &target) {
                Ok(principal)
            } else {
                Err(principal.forbidden(action, scope))
            };
        }
        let Need::Action { action, subscription: sub_id, scope } = need else {
            return Ok(principal);
        };
        let Some(sub) = subscription else { return Ok(principal) };
        if let Some(tid) = principal.tenant {
            if tid != sub.tenant_id {
                let f = AuthFailure::wrong_tenant(
                    &principal.issuer,
                    &sub.tenant_id.to_string(),
                    self.public_url.as_str(),
                );
                return Err(self.unauthenticated(sub.tenant_id, f));
            }
        }
        if principal.can_at(action, &authz::Target { subscription: Some(*sub_id), groups }) {
            Ok(principal)
        } else {
            Err(principal.forbidden(action, scope))
        }
    }

    /// Authenticate a request outside ARM (the extension API) and require `action` over
    /// `subscription` (`None`: over `/`).
    pub async fn require(
        &self,
        headers: &HeaderMap,
        action: &str,
        subscription: Option<Uuid>,
    ) -> ApiResult<Principal> {
        let principal = self
            .authenticate(headers)
            .await
            .map_err(|f| self.unauthenticated(self.default_tenant, f))?;
        // A subscription inherits the assignments of the management groups above it (the
        // hierarchy is cached by the store: no read per request).
        let groups = match subscription {
            Some(s) if matches!(principal.access, Access::Assignments(_)) => {
                self.store.ancestors_of_subscription(s).await?
            }
            _ => Vec::new(),
        };
        if principal.can_at(action, &authz::Target { subscription, groups: &groups }) {
            Ok(principal)
        } else {
            let scope =
                subscription.map_or_else(|| "/".to_string(), |s| format!("/subscriptions/{s}"));
            Err(principal.forbidden(action, &scope))
        }
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
    /// `action` over `target` (a subscription or group and the groups above it): the one
    /// question of authorization, so that roles at a management group always apply below it.
    pub fn can_at(&self, action: &str, target: &authz::Target<'_>) -> bool {
        match &self.access {
            Access::Full => true,
            Access::Assignments(a) => authz::granted_at(a, action, target),
        }
    }

    /// Does `GET /subscriptions` show it: a role on it (or on a management group above it,
    /// `groups`), and (for a token) the token's tenant.
    pub fn sees(&self, sub: &Subscription, groups: &[String]) -> bool {
        match &self.access {
            Access::Full => true,
            Access::Assignments(a) => {
                let target = authz::Target { subscription: Some(sub.id), groups };
                self.tenant == Some(sub.tenant_id)
                    && a.iter().any(|x| authz::covers_target(&x.scope, &target))
            }
        }
    }

    /// The 403 of a principal that may not do `action` over `scope`.
    pub fn forbidden(&self, action: &str, scope: &str) -> ApiError {
        ApiError::AuthorizationFailed {
            client: self.client.clone(),
            object_id: self.object_id.clone(),
            action: action.to_string(),
            scope: scope.to_string(),
        }
    }
}

/// [`Identity::require`] for the identity routes' handlers.
pub async fn require(
    state: &IdentityState,
    headers: &HeaderMap,
    action: &str,
    subscription: Option<Uuid>,
) -> ApiResult<Principal> {
    state.identity.require(headers, action, subscription).await
}

/// Under `--auth any` every caller is Owner, so nothing it writes about identity could be trusted
/// later (a principal made Owner by an unsigned token would stay Owner under `--auth strict`):
/// principals, role assignments and keys are read-only through the API in that mode. The CLI on
/// the data directory (which needs access to the files) still manages them.
async fn read_only_under_auth_any(
    State(state): State<IdentityState>,
    request: Request,
    next: Next,
) -> Response {
    let read = matches!(*request.method(), Method::GET | Method::HEAD);
    if state.identity.mode == AuthMode::Any && !read {
        // A request without a well-formed token still gets its 401 first.
        if let Err(e) = state.identity.require(request.headers(), authz::ADMIN_ACTION, None).await {
            return e.into_response();
        }
        return ApiError::BadRequest {
            target: None,
            message: "Principals, role assignments and signing keys cannot be changed through the API while the \
                      server runs with --auth any (every caller is Owner there). Restart it with --auth strict, or \
                      use the CLI on the data directory: securescore principals|roles|keys ... --data-dir DIR."
                .into(),
        }
        .into_response();
    }
    next.run(request).await
}

/// The identity routes: the authority (no token needed) and the identity extension API, on their
/// own state, ready to merge into a router of any state.
pub fn router<S: Clone + Send + Sync + 'static>(identity: Arc<Identity>) -> axum::Router<S> {
    let state = IdentityState::new(identity);
    let admin = admin::router()
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), read_only_under_auth_any));
    authority::router().merge(admin).with_state(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{PrincipalKind, PrincipalRecord, StoreConfig};
    use time::OffsetDateTime;

    const READ: &str = "Microsoft.Security/secureScores/read";

    async fn identity(key_dir: Option<&Path>) -> Identity {
        let store = Store::open(&StoreConfig::Memory).await.unwrap();
        let url: PublicUrl = "http://127.0.0.1:1".parse().unwrap();
        Identity::open(store, AuthMode::Strict, key_dir, &[], url).await.unwrap()
    }

    fn principal() -> PrincipalRecord {
        PrincipalRecord {
            id: Uuid::new_v4(),
            kind: PrincipalKind::ServicePrincipal,
            display_name: "cache test".into(),
            app_id: Some(Uuid::new_v4()),
            user_name: None,
            tenant_id: Uuid::new_v4(),
            secret_hash: String::new(),
            created_at: OffsetDateTime::now_utc(),
        }
    }

    fn token(identity: &Identity, p: &PrincipalRecord) -> String {
        let grant = token::Grant {
            principal: p,
            authority: identity.public_url.as_str(),
            audience: token::DEFAULT_AUDIENCE,
            client_id: None,
            tenant: None,
        };
        token::issue(&identity.keys, &grant).unwrap().0
    }

    fn headers(token: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, format!("Bearer {token}").parse().unwrap());
        h
    }

    /// A token in the cache is still refused once its time is over: the hit is checked against
    /// the clock, and the full verification then gives ARM's expiry answer.
    #[tokio::test]
    async fn a_cached_token_still_expires_on_time() {
        let identity = identity(None).await;
        let p = principal();
        let live = token(&identity, &p);
        let who = authn::validate(&identity, &live).await.unwrap();
        assert_eq!(identity.tokens.len(), 1, "a verified token is cached");
        assert_eq!(authn::validate(&identity, &live).await.unwrap().object_id, who.object_id);

        // A token whose `exp` (plus the skew) has passed, made to look cached as if it had been
        // verified while still valid.
        let now = OffsetDateTime::now_utc().unix_timestamp();
        let exp = now - token::CLOCK_SKEW_SECS - 1;
        let key = identity.keys.current().unwrap();
        let claims = serde_json::json!({
            "aud": token::DEFAULT_AUDIENCE, "iss": format!("{}/{}/v2.0", identity.public_url, p.tenant_id),
            "exp": exp, "nbf": exp - 3599, "oid": p.id.to_string(), "tid": p.tenant_id.to_string(),
        });
        let expired = key.sign_claims(&claims).unwrap();
        identity.tokens.put_for_tests(&expired, &who, exp, identity.keys.generation());
        let failure = authn::validate(&identity, &expired).await.unwrap_err();
        assert_eq!(failure.code, "ExpiredAuthenticationToken");
        // The boundary is the one `jsonwebtoken` applies: `exp` + skew is the last valid second.
        assert!(identity.tokens.get_for_tests(&live, identity.keys.generation(), now).is_some());
        let gen = identity.keys.generation();
        identity.tokens.put_for_tests("t", &who, 1000, gen);
        assert!(identity.tokens.get_for_tests("t", gen, 1000 + token::CLOCK_SKEW_SECS).is_some());
        assert!(identity.tokens.get_for_tests("t", gen, 1001 + token::CLOCK_SKEW_SECS).is_none());
    }

    /// A cached token dies with its key: after a rotation it is verified again (still accepted,
    /// its key stays live for its tokens' lifetime), and once its key is retired for good — here
    /// by another process rewriting the key file — it is refused although it was cached.
    #[tokio::test]
    async fn a_cached_token_dies_with_its_key() {
        let dir = tempfile::tempdir().unwrap();
        let identity = identity(Some(dir.path())).await;
        let p = principal();
        let t = token(&identity, &p);
        let old_kid = identity.keys.current().unwrap().kid.clone();
        authn::validate(&identity, &t).await.unwrap();
        let before = identity.keys.generation();
        identity.keys.rotate().await.unwrap();
        assert_ne!(identity.keys.generation(), before, "a rotation changes the generation");
        authn::validate(&identity, &t).await.expect("the retired key stays live for its tokens");

        // Another process retires the old key for good: its retirement is older than any of
        // its tokens can live.
        let path = dir.path().join(keys::KEYS_FILE);
        let mut ring: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        let long_ago = OffsetDateTime::now_utc().unix_timestamp()
            - token::TOKEN_LIFETIME_SECS
            - token::CLOCK_SKEW_SECS
            - 60;
        for k in ring["keys"].as_array_mut().unwrap() {
            if k["kid"] == old_kid.as_str() {
                k["retired"] = long_ago.into();
            }
        }
        keys::write_private(&path, &serde_json::to_vec(&ring).unwrap()).unwrap();
        // What the server does when it next looks at the file (at most RELOAD_EVERY later).
        identity.keys.reload().unwrap();
        let failure = authn::validate(&identity, &t).await.unwrap_err();
        assert_eq!(failure.code, "InvalidAuthenticationToken");
        // A token of the new key is accepted.
        authn::validate(&identity, &token(&identity, &p)).await.unwrap();
    }

    /// The token cache holds who a caller is, never what it may do: removing a role takes effect
    /// on the next request, with the same (cached) token.
    #[tokio::test]
    async fn a_role_removal_takes_effect_at_once() {
        let identity = identity(None).await;
        let p = principal();
        let sub = Uuid::new_v4();
        let assignment = RoleAssignment {
            id: Uuid::new_v4(),
            principal_id: p.id.to_string(),
            role_definition_id: authz::READER,
            scope: format!("/subscriptions/{sub}"),
            created_at: OffsetDateTime::now_utc(),
        };
        identity.store.put_role_assignment(&assignment).await.unwrap();
        identity.invalidate();
        let t = token(&identity, &p);
        let target = authz::Target { subscription: Some(sub), groups: &[] };
        for _ in 0..2 {
            let caller = identity.authenticate(&headers(&t)).await.unwrap();
            assert!(caller.can_at(READ, &target));
        }
        // What the role-assignment handlers do: write, then drop the cached assignments.
        assert!(identity.store.remove_role_assignment(assignment.id).await.unwrap());
        identity.invalidate();
        let caller = identity.authenticate(&headers(&t)).await.unwrap();
        assert!(!caller.can_at(READ, &target), "the removed role no longer grants");
        assert_eq!(identity.tokens.len(), 1, "the token itself stayed cached");
    }
}
