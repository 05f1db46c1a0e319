//! The built-in authority's HTTP endpoints, Entra ID-compatible, on the server's own host and port
//! (docs/CLIENTS.md): OpenID configuration for any tenant segment, the token endpoint (client
//! credentials with the secret in the body or in Basic auth, the password grant, and the
//! authorization code with PKCE of `code_flow`), the JWKS, the sign-in page (implicit flow, and
//! the authorization-code flow MSAL.js and the dashboard use), and `GET /metadata/endpoints` for
//! `az cloud register`.
//! None of them needs a token. Errors are AADSTS-style JSON, as Entra's.
//!
//! Security note: secrets and passwords are compared with their salted hashes only and never
//! logged; the sign-in page redirects tokens and codes only to loopback addresses or to this
//! server's public URL (a token must not be sent to a page an attacker names; the dashboard's
//! client only to its own registered page), is not frameable, and escapes
//! everything it echoes. Every URL handed out (issuer, endpoints) is built from the configured
//! public URL, never from the request's `Host`.

use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;
use uuid::Uuid;

use super::code_flow::{self, Pending, DASHBOARD_CLIENT_ID};
use super::token::{self, normalise_audience, Grant, DEFAULT_AUDIENCE};
use super::{secret, Identity, IdentityState};
use crate::arm::extract::{Body, Path};
use crate::arm::format_time;
use crate::arm::json as json_response;
use crate::arm::ApiError;
use crate::store::{PrincipalKey, PrincipalKind, PrincipalRecord};

pub fn router() -> Router<IdentityState> {
    Router::new()
        .route("/metadata/endpoints", get(metadata_endpoints))
        .route("/{tenant}/v2.0/.well-known/openid-configuration", get(openid_configuration))
        .route("/{tenant}/.well-known/openid-configuration", get(openid_configuration))
        .route("/{tenant}/oauth2/v2.0/token", axum::routing::post(token_endpoint))
        .route("/{tenant}/oauth2/token", axum::routing::post(token_endpoint))
        .route("/{tenant}/discovery/v2.0/keys", get(jwks))
        .route("/{tenant}/discovery/keys", get(jwks))
        .route("/{tenant}/oauth2/v2.0/authorize", get(authorize_page).post(authorize_submit))
        .route("/{tenant}/oauth2/authorize", get(authorize_page).post(authorize_submit))
}

/// A tenant segment: a GUID, or one of Entra's aliases.
fn tenant_segment(t: &str) -> Option<Option<Uuid>> {
    if ["common", "organizations", "consumers"].iter().any(|a| a.eq_ignore_ascii_case(t)) {
        return Some(None);
    }
    Uuid::parse_str(t).ok().map(Some)
}

/// An Entra-style error: `{"error", "error_description": "AADSTS{code}: ...", "error_codes", ...}`.
pub fn aad_error(status: StatusCode, error: &str, code: u32, description: &str) -> Response {
    let trace = Uuid::new_v4();
    let correlation = Uuid::new_v4();
    let now = format_time(time::OffsetDateTime::now_utc());
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {description} Trace ID: {trace} Correlation ID: {correlation} Timestamp: {now}"),
        "error_codes": [code],
        "timestamp": now,
        "trace_id": trace,
        "correlation_id": correlation,
    });
    json_response(status, &body)
}

/// A request the OAuth endpoints cannot read (its path or body): RFC 6749's `invalid_request`,
/// with the status the same failure has everywhere else (400, or 413 for a body over the limit).
fn invalid_request(e: &ApiError) -> Response {
    json_response(
        e.status(),
        &json!({"error": "invalid_request", "error_description": e.to_string()}),
    )
}

fn tenant_not_found(t: &str) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "invalid_tenant",
        90002,
        &format!("Tenant '{t}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud."),
    )
}

async fn openid_configuration(
    State(state): State<IdentityState>,
    Path(tenant): Path<String>,
) -> Response {
    let Some(id) = tenant_segment(&tenant) else { return tenant_not_found(&tenant) };
    let base = state.identity.public_url.as_str();
    let issuer_tenant = id.map_or_else(|| "{tenantid}".to_string(), |t| t.to_string());
    let host = state.identity.public_url.authority();
    json_response(
        StatusCode::OK,
        &json!({
            "token_endpoint": format!("{base}/{tenant}/oauth2/v2.0/token"),
            "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic", "none"],
            "jwks_uri": format!("{base}/{tenant}/discovery/v2.0/keys"),
            "response_modes_supported": ["query", "fragment"],
            "subject_types_supported": ["pairwise"],
            "id_token_signing_alg_values_supported": ["RS256"],
            "response_types_supported": ["code", "token"],
            "code_challenge_methods_supported": ["S256"],
            "scopes_supported": ["openid", "profile", "email", "offline_access"],
            "issuer": format!("{base}/{issuer_tenant}/v2.0"),
            "request_uri_parameter_supported": false,
            "authorization_endpoint": format!("{base}/{tenant}/oauth2/v2.0/authorize"),
            "grant_types_supported": ["authorization_code", "client_credentials", "password", "implicit"],
            "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "oid", "tid", "appid", "azp", "scp", "roles", "upn", "ver"],
            "tenant_region_scope": null,
            "cloud_instance_name": host,
            "cloud_graph_host_name": host,
            "msgraph_host": host,
        }),
    )
}

async fn jwks(State(state): State<IdentityState>, Path(tenant): Path<String>) -> Response {
    if tenant_segment(&tenant).is_none() {
        return tenant_not_found(&tenant);
    }
    json_response(StatusCode::OK, &state.identity.keys.jwks())
}

/// `GET /metadata/endpoints`: this server as a cloud, for `az cloud register --endpoint-resource-manager`.
/// az asks for `https://HOST//metadata/endpoints`; the outer layer collapses the double slash.
async fn metadata_endpoints(State(state): State<IdentityState>) -> Response {
    let root = format!("{}/", state.identity.public_url);
    json_response(
        StatusCode::OK,
        &json!({
            "portal": root,
            "authentication": {
                "loginEndpoint": root,
                "audiences": ["https://management.azure.com/", "https://management.core.windows.net/"],
                "tenant": "common",
                "identityProvider": "AAD",
            },
            "media": "https://rest.media.azure.net",
            "graphAudience": "https://graph.windows.net/",
            "graph": "https://graph.windows.net/",
            "name": "securescore",
            "suffixes": {
                "azureDataLakeStoreFileSystem": "azuredatalakestore.net",
                "acrLoginServer": "azurecr.io",
                "sqlServerHostname": "database.windows.net",
                "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.net",
                "keyVaultDns": "vault.azure.net",
                "storage": "core.windows.net",
                "azureFrontDoorEndpointSuffix": "azurefd.net",
                "storageSyncEndpointSuffix": "afs.azure.net",
                "mhsmDns": "managedhsm.azure.net",
                "mysqlServerEndpoint": "mysql.database.azure.com",
                "postgresqlServerEndpoint": "postgres.database.azure.com",
                "mariadbServerEndpoint": "mariadb.database.azure.com",
                "synapseAnalytics": "dev.azuresynapse.net",
                "attestationEndpoint": "attest.azure.net",
            },
            "batch": "https://batch.core.windows.net/",
            "resourceManager": root,
            "vmImageAliasDoc": "https://raw.githubusercontent.com/Azure/azure-rest-api-specs/main/arm-compute/quickstart-templates/aliases.json",
            "activeDirectoryDataLake": "https://datalake.azure.net/",
            "sqlManagement": "https://management.core.windows.net:8443/",
            "microsoftGraphResourceId": "https://graph.microsoft.com/",
            "appInsightsResourceId": "https://api.applicationinsights.io",
            "appInsightsTelemetryChannelResourceId": "https://dc.applicationinsights.azure.com/v2/track",
            "attestationResourceId": "https://attest.azure.net",
            "synapseAnalyticsResourceId": "https://dev.azuresynapse.net",
            "logAnalyticsResourceId": "https://api.loganalytics.io",
            "ossrDbmsResourceId": "https://ossrdbms-aad.database.windows.net",
        }),
    )
}

fn form(body: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(body).into_owned().collect()
}

fn field<'f>(form: &'f [(String, String)], name: &str) -> Option<&'f str> {
    form.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str()).filter(|v| !v.is_empty())
}

/// The audience a token request asks for: `scope` (v2: `{resource}/.default`, az's
/// `https://management.azure.com//.default`, `{resource}/user_impersonation`) or `resource` (v1).
fn requested_audience(form: &[(String, String)]) -> Result<&'static str, Box<Response>> {
    let invalid = |r: &str| {
        Box::new(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_resource",
            500011,
            &format!(
                "The resource principal named {r} was not found in the tenant. This server issues tokens for \
                 Azure Resource Manager only: https://management.azure.com/.default or https://management.core.windows.net/.default."
            ),
        ))
    };
    if let Some(scope) = field(form, "scope") {
        let resources: Vec<&str> = scope
            .split_whitespace()
            .filter(|s| !["openid", "profile", "offline_access", "email"].contains(s))
            .collect();
        let [one] = resources.as_slice() else {
            return Err(Box::new(aad_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70011,
                &format!("The provided value for the input parameter 'scope' is not valid. The scope {scope} is not valid."),
            )));
        };
        let resource = one
            .strip_suffix("/.default")
            .or_else(|| one.strip_suffix("/user_impersonation"))
            .unwrap_or(one);
        return normalise_audience(resource).ok_or_else(|| invalid(resource));
    }
    match field(form, "resource") {
        Some(resource) => normalise_audience(resource).ok_or_else(|| invalid(resource)),
        None => Err(Box::new(aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'scope'.",
        ))),
    }
}

fn token_response(token: &str, expires_in: i64) -> Response {
    json_response(
        StatusCode::OK,
        &json!({"token_type": "Bearer", "expires_in": expires_in, "access_token": token}),
    )
}

/// `POST /{tenant}/oauth2/v2.0/token`. `client_info` and `claims` (az's CAE request) are accepted
/// and ignored.
async fn token_endpoint(
    State(state): State<IdentityState>,
    tenant: Result<Path<String>, ApiError>,
    headers: HeaderMap,
    body: Result<Body, ApiError>,
) -> Response {
    let (Path(tenant), Body(body)) = match (tenant, body) {
        (Ok(t), Ok(b)) => (t, b),
        (Err(e), _) | (_, Err(e)) => return invalid_request(&e),
    };
    let Some(tenant_id) = tenant_segment(&tenant) else { return tenant_not_found(&tenant) };
    let mut form = form(&body);
    // client_secret_basic: the credentials in an Authorization: Basic header.
    if let Some((id, secret)) = basic_credentials(&headers) {
        form.push(("client_id".into(), id));
        form.push(("client_secret".into(), secret));
    }
    let identity = &state.identity;
    let authority = identity.public_url.as_str();
    match field(&form, "grant_type") {
        Some("client_credentials") => client_credentials(identity, &form, tenant_id, &tenant, authority).await,
        Some("password") => password_grant(identity, &form, tenant_id, authority).await,
        Some("authorization_code") => authorization_code(identity, &form, tenant_id, authority).await,
        Some(other) => aad_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            &format!("The app requested an unsupported grant type '{other}'. This server supports authorization_code, client_credentials and password."),
        ),
        None => aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'grant_type'.",
        ),
    }
}

fn basic_credentials(headers: &HeaderMap) -> Option<(String, String)> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, encoded) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("Basic") {
        return None;
    }
    let decoded = String::from_utf8(STANDARD.decode(encoded.trim()).ok()?).ok()?;
    let (id, secret) = decoded.split_once(':')?;
    let un = |s: &str| percent_encoding::percent_decode_str(s).decode_utf8_lossy().into_owned();
    Some((un(id), un(secret)))
}

fn app_not_found(client_id: &str, tenant: &str) -> Response {
    aad_error(
        StatusCode::BAD_REQUEST,
        "unauthorized_client",
        700016,
        &format!(
            "Application with identifier '{client_id}' was not found in the directory '{tenant}'. This can happen if the \
             application has not been installed by the administrator of the tenant or consented to by any user in the tenant."
        ),
    )
}

/// A failure of the server (500), or of storage that is expected to pass (503 with Retry-After).
fn server_error(e: anyhow::Error) -> Response {
    tracing::error!(error = format!("{e:#}"), "token endpoint failed");
    let passing = crate::store::Unavailable::of(&e).is_some();
    let status =
        if passing { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::INTERNAL_SERVER_ERROR };
    let mut response =
        aad_error(status, "temporarily_unavailable", 50000, "There was an error issuing a token.");
    if passing {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
    }
    response
}

async fn client_credentials(
    identity: &Identity,
    form: &[(String, String)],
    tenant_id: Option<Uuid>,
    tenant: &str,
    authority: &str,
) -> Response {
    let Some(client_id) = field(form, "client_id") else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    let audience = match requested_audience(form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let principal = match Uuid::parse_str(client_id) {
        Ok(id) => match identity.store.principal(PrincipalKey::AppId(id)).await {
            Ok(p) => p,
            Err(e) => return server_error(e),
        },
        Err(_) => None,
    };
    let Some(principal) = principal.filter(|p| p.kind == PrincipalKind::ServicePrincipal) else {
        return app_not_found(client_id, tenant);
    };
    if tenant_id.is_some_and(|t| t != principal.tenant_id) {
        return app_not_found(client_id, tenant);
    }
    let Some(secret) = field(form, "client_secret") else {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000218,
            "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
        );
    };
    if !secret::verify(secret, &principal.secret_hash) {
        return aad_error(
            StatusCode::UNAUTHORIZED,
            "invalid_client",
            7000215,
            &format!(
                "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, \
                 not the client secret ID, for a secret added to app '{client_id}'."
            ),
        );
    }
    issue(identity, &principal, authority, audience, None)
}

fn issue(
    identity: &Identity,
    principal: &PrincipalRecord,
    authority: &str,
    audience: &str,
    client_id: Option<Uuid>,
) -> Response {
    let grant = Grant { principal, authority, audience, client_id, tenant: None };
    match token::issue(&identity.keys, &grant) {
        Ok((token, expires_in)) => token_response(&token, expires_in),
        Err(e) => server_error(e),
    }
}

/// A user by name and password; `None` when either is wrong (the caller says which message).
async fn check_user(
    identity: &Identity,
    user: &str,
    password: &str,
) -> anyhow::Result<Option<PrincipalRecord>> {
    let found = identity.store.principal(PrincipalKey::UserName(user)).await?;
    Ok(found.filter(|p| p.kind == PrincipalKind::User && secret::verify(password, &p.secret_hash)))
}

async fn password_grant(
    identity: &Identity,
    form: &[(String, String)],
    tenant_id: Option<Uuid>,
    authority: &str,
) -> Response {
    let audience = match requested_audience(form) {
        Ok(a) => a,
        Err(r) => return *r,
    };
    let (Some(user), Some(password)) = (field(form, "username"), field(form, "password")) else {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameters: 'username' and 'password'.",
        );
    };
    let client = field(form, "client_id").and_then(|c| Uuid::parse_str(c).ok());
    match check_user(identity, user, password).await {
        Ok(Some(p)) if tenant_id.is_none_or(|t| t == p.tenant_id) => {
            issue(identity, &p, authority, audience, client)
        }
        Ok(_) => aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_grant",
            50126,
            "Error validating credentials due to invalid username or password.",
        ),
        Err(e) => server_error(e),
    }
}

/// `grant_type=authorization_code`: a code of `code_flow` and its PKCE verifier (public clients: no
/// secret). Every failure of the code itself is `invalid_grant`; missing parameters `invalid_request`.
async fn authorization_code(
    identity: &Identity,
    form: &[(String, String)],
    tenant_id: Option<Uuid>,
    authority: &str,
) -> Response {
    let missing = |name: &str| {
        aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            &format!("The request body must contain the following parameter: '{name}'."),
        )
    };
    let Some(code) = field(form, "code") else { return missing("code") };
    let Some(client_id) = field(form, "client_id") else { return missing("client_id") };
    let Some(redirect) = field(form, "redirect_uri") else { return missing("redirect_uri") };
    let Some(verifier) = field(form, "code_verifier") else { return missing("code_verifier") };
    if !code_flow::valid_verifier(verifier) {
        return aad_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            501481,
            "The code_verifier must be 43 to 128 characters of [A-Za-z0-9-._~].",
        );
    }
    let grant_error =
        |description: &str| aad_error(StatusCode::BAD_REQUEST, "invalid_grant", 70008, description);
    let pending = match identity.codes.redeem(code, client_id, redirect, verifier).await {
        Ok(Ok(p)) => p,
        Ok(Err(refusal)) => return grant_error(refusal.description()),
        Err(e) => return server_error(e),
    };
    let principal = match identity.store.principal(PrincipalKey::Id(pending.principal_id)).await {
        Ok(Some(p)) if tenant_id.is_none_or(|t| t == p.tenant_id) => p,
        Ok(_) => {
            return grant_error(
                "The user of this authorization code is not in this tenant any more.",
            )
        }
        Err(e) => return server_error(e),
    };
    let client = Uuid::parse_str(&pending.client_id).ok();
    let grant = Grant {
        principal: &principal,
        authority,
        audience: pending.audience,
        client_id: client,
        tenant: None,
    };
    let (access, expires_in) = match token::issue(&identity.keys, &grant) {
        Ok(t) => t,
        Err(e) => return server_error(e),
    };
    let id_token = match id_token(identity, &principal, authority, &pending) {
        Ok(t) => t,
        Err(e) => return server_error(e),
    };
    let mut body = json!({
        "token_type": "Bearer",
        "scope": format!("{}user_impersonation", pending.audience),
        "expires_in": expires_in,
        "access_token": access,
        "id_token": id_token,
    });
    // MSAL asks for `client_info=1`: the account's ids, as Entra returns them.
    if field(form, "client_info") == Some("1") {
        let info = json!({"uid": principal.id, "utid": principal.tenant_id}).to_string();
        if let Some(map) = body.as_object_mut() {
            map.insert("client_info".into(), json!(URL_SAFE_NO_PAD.encode(info)));
        }
    }
    json_response(StatusCode::OK, &body)
}

/// An OpenID Connect id_token for the client: who signed in (and the request's nonce).
fn id_token(
    identity: &Identity,
    p: &PrincipalRecord,
    authority: &str,
    pending: &Pending,
) -> anyhow::Result<String> {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut claims = json!({
        "iss": format!("{}/{}/v2.0", authority.trim_end_matches('/'), p.tenant_id),
        "aud": pending.client_id,
        "sub": p.id.to_string(),
        "oid": p.id.to_string(),
        "tid": p.tenant_id.to_string(),
        "name": p.display_name,
        "preferred_username": p.user_name.clone().unwrap_or_default(),
        "iat": now,
        "nbf": now,
        "exp": now + token::TOKEN_LIFETIME_SECS,
        "ver": "2.0",
    });
    if let (Some(nonce), Some(map)) = (&pending.nonce, claims.as_object_mut()) {
        map.insert("nonce".into(), json!(nonce));
    }
    identity.keys.current()?.sign_claims(&claims)
}

fn escape(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '&' => "&amp;".to_string(),
            '<' => "&lt;".to_string(),
            '>' => "&gt;".to_string(),
            '"' => "&quot;".to_string(),
            '\'' => "&#39;".to_string(),
            c => c.to_string(),
        })
        .collect()
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    h.insert(
        "content-security-policy",
        HeaderValue::from_static("default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'"),
    );
    r
}

/// May the sign-in page send a token to `redirect_uri`? Loopback (any port) or this server's host.
fn redirect_allowed(redirect_uri: &str, base: &str) -> bool {
    let Ok(uri) = redirect_uri.parse::<Uri>() else { return false };
    if !matches!(uri.scheme_str(), Some("http" | "https")) {
        return false;
    }
    let Some(host) = uri.host() else { return false };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_matches(['[', ']'])
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let own = base.split("://").nth(1).is_some_and(|authority| {
        uri.authority().is_some_and(|a| a.as_str().eq_ignore_ascii_case(authority))
    });
    loopback || own
}

fn sign_in_page(params: &[(String, String)], error: Option<&str>) -> String {
    let hidden: String = params
        .iter()
        .filter(|(k, _)| !["username", "password"].contains(&k.as_str()))
        .map(|(k, v)| {
            format!("<input type=\"hidden\" name=\"{}\" value=\"{}\">", escape(k), escape(v))
        })
        .collect();
    let error = error.map(|e| format!("<p class=\"err\">{}</p>", escape(e))).unwrap_or_default();
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in - securescore</title>\
         <meta name=\"viewport\" content=\"width=device-width\"><style>body{{font-family:sans-serif;max-width:24em;margin:4em auto}}\
         input{{display:block;width:100%;margin:.4em 0 1em;padding:.4em}}.err{{color:#a00}}</style></head><body>\
         <h1>Sign in</h1><p>securescore's built-in authority: sign in as a user of this server to get an access token \
         for Azure Resource Manager.</p>{error}<form method=\"post\">{hidden}\
         <label>User name<input name=\"username\" autocomplete=\"username\" required></label>\
         <label>Password<input name=\"password\" type=\"password\" autocomplete=\"current-password\" required></label>\
         <button type=\"submit\">Sign in</button></form></body></html>"
    )
}

fn error_page(status: StatusCode, message: &str) -> Response {
    html(
        status,
        format!(
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>Sign in - securescore</title></head>\
             <body><h1>Sorry, we can't sign you in</h1><p>{}</p></body></html>",
            escape(message)
        ),
    )
}

/// What an authorization request asks for once checked.
struct AuthorizeRequest {
    redirect: String,
    audience: &'static str,
    /// `Some` for `response_type=code`: what the code is bound to.
    code: Option<CodeRequest>,
}

struct CodeRequest {
    client_id: String,
    challenge: String,
    nonce: Option<String>,
    /// `response_mode=fragment` puts the code in the fragment; the default is the query.
    fragment: bool,
}

fn bad_authorize(message: &str) -> Box<Response> {
    Box::new(error_page(StatusCode::BAD_REQUEST, message))
}

/// The code-flow parts of an authorization request: a client, an S256 challenge, a response mode.
fn code_request(params: &[(String, String)]) -> Result<CodeRequest, Box<Response>> {
    let Some(client_id) = field(params, "client_id") else {
        return Err(bad_authorize(
            "AADSTS900144: The request must contain the parameter 'client_id'.",
        ));
    };
    let Some(challenge) = field(params, "code_challenge") else {
        return Err(bad_authorize(
            "AADSTS9002325: Proof Key for Code Exchange is required: send code_challenge and code_challenge_method=S256.",
        ));
    };
    // RFC 7636 makes `plain` the default when the method is absent; this authority refuses it.
    if field(params, "code_challenge_method") != Some("S256") {
        return Err(bad_authorize(
            "AADSTS501491: code_challenge_method must be S256; the plain method is not supported.",
        ));
    }
    if !code_flow::valid_challenge(challenge) {
        return Err(bad_authorize(
            "AADSTS501491: code_challenge must be the base64url SHA-256 of the code_verifier (43 characters).",
        ));
    }
    let fragment = match field(params, "response_mode") {
        None | Some("query") => false,
        Some("fragment") => true,
        Some(other) => {
            return Err(bad_authorize(&format!(
                "AADSTS900144: response_mode '{other}' is not supported: use query or fragment."
            )))
        }
    };
    Ok(CodeRequest {
        client_id: client_id.to_string(),
        challenge: challenge.to_string(),
        nonce: field(params, "nonce").map(str::to_string),
        fragment,
    })
}

/// May `client_id` receive a code or token at `redirect`? The dashboard only at its registered
/// page; any other client at loopback or this server (as the implicit flow always allowed).
fn redirect_registered(client_id: Option<&str>, redirect: &str, base: &str) -> bool {
    let dashboard =
        client_id.and_then(|c| Uuid::parse_str(c).ok()).is_some_and(|c| c == DASHBOARD_CLIENT_ID);
    if dashboard {
        return code_flow::dashboard_redirect_uris(base).iter().any(|r| r == redirect);
    }
    redirect_allowed(redirect, base)
}

/// Checks shared by the page and its submission: response type, redirect URI, audience, PKCE.
fn authorize_request(
    params: &[(String, String)],
    base: &str,
) -> Result<AuthorizeRequest, Box<Response>> {
    let response_type = field(params, "response_type").unwrap_or("");
    let types: Vec<&str> = response_type.split_whitespace().collect();
    let code = if types.contains(&"code") {
        Some(code_request(params)?)
    } else if types.contains(&"token") {
        None
    } else {
        return Err(bad_authorize(
            "AADSTS700054: response_type must be 'code' (with PKCE) or 'token' (implicit flow).",
        ));
    };
    let Some(redirect) = field(params, "redirect_uri") else {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            "AADSTS900144: The request must contain the parameter 'redirect_uri'.",
        )));
    };
    if !redirect_registered(field(params, "client_id"), redirect, base) {
        return Err(Box::new(error_page(
            StatusCode::BAD_REQUEST,
            &format!(
                "AADSTS50011: The redirect URI '{redirect}' is not allowed: tokens are sent only to loopback addresses or to {base}."
            ),
        )));
    }
    let audience = if field(params, "scope").is_some() || field(params, "resource").is_some() {
        match requested_audience(params) {
            Ok(a) => a,
            Err(_) => {
                return Err(Box::new(error_page(
                    StatusCode::BAD_REQUEST,
                    "AADSTS500011: this server issues tokens for Azure Resource Manager only (https://management.azure.com/.default).",
                )))
            }
        }
    } else {
        DEFAULT_AUDIENCE
    };
    Ok(AuthorizeRequest { redirect: redirect.to_string(), audience, code })
}

/// `GET /{tenant}/oauth2[/v2.0]/authorize?response_type=token&client_id=..&redirect_uri=..&scope|resource=..`
async fn authorize_page(
    State(state): State<IdentityState>,
    Path(tenant): Path<String>,
    uri: Uri,
) -> Response {
    if tenant_segment(&tenant).is_none() {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    }
    let params = form(uri.query().unwrap_or("").as_bytes());
    let base = state.identity.public_url.as_str();
    if let Err(r) = authorize_request(&params, base) {
        return *r;
    }
    html(StatusCode::OK, sign_in_page(&params, None))
}

/// The sign-in form's submission: on success, a redirect with the token in the fragment.
async fn authorize_submit(
    State(state): State<IdentityState>,
    tenant: Result<Path<String>, ApiError>,
    uri: Uri,
    body: Result<Body, ApiError>,
) -> Response {
    let (Path(tenant), Body(body)) = match (tenant, body) {
        (Ok(t), Ok(b)) => (t, b),
        (Err(e), _) | (_, Err(e)) => return invalid_request(&e),
    };
    let Some(tenant_id) = tenant_segment(&tenant) else {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("AADSTS90002: Tenant '{tenant}' not found."),
        );
    };
    // Parameters come in the query (as the page was requested) and the form (hidden fields).
    let mut params = form(uri.query().unwrap_or("").as_bytes());
    for (k, v) in form(&body) {
        params.retain(|(pk, _)| *pk != k);
        params.push((k, v));
    }
    let base = state.identity.public_url.as_str();
    let request = match authorize_request(&params, base) {
        Ok(r) => r,
        Err(r) => return *r,
    };
    let (redirect, audience) = (request.redirect.clone(), request.audience);
    let (user, password) =
        (field(&params, "username").unwrap_or(""), field(&params, "password").unwrap_or(""));
    let identity = &state.identity;
    let principal = match check_user(identity, user, password).await {
        Ok(Some(p)) if tenant_id.is_none_or(|t| t == p.tenant_id) => p,
        Ok(_) => {
            return html(
                StatusCode::UNAUTHORIZED,
                sign_in_page(&params, Some("Your user name or password is incorrect.")),
            )
        }
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "sign-in failed");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not sign you in. Please retry.",
            );
        }
    };
    if let Some(code) = &request.code {
        let pending = Pending::new(
            &code.client_id,
            &redirect,
            &code.challenge,
            principal.id,
            audience,
            code.nonce.as_deref(),
        );
        let issued = match identity.codes.issue(pending).await {
            Ok(code) => code,
            Err(e) => {
                tracing::error!(error = format!("{e:#}"), "cannot keep an authorization code");
                let mut page = error_page(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "The server could not sign you in. Please retry in a few seconds.",
                );
                page.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
                return page;
            }
        };
        let mut answer = form_urlencoded::Serializer::new(String::new());
        answer.append_pair("code", &issued);
        if let Some(s) = field(&params, "state") {
            answer.append_pair("state", s);
        }
        let answer = answer.finish();
        let without_fragment = redirect.split('#').next().unwrap_or(&redirect);
        let location = if code.fragment {
            format!("{without_fragment}#{answer}")
        } else if without_fragment.contains('?') {
            format!("{without_fragment}&{answer}")
        } else {
            format!("{without_fragment}?{answer}")
        };
        return found(&location);
    }
    let client = field(&params, "client_id").and_then(|c| Uuid::parse_str(c).ok());
    let grant =
        Grant { principal: &principal, authority: base, audience, client_id: client, tenant: None };
    let (token, expires_in) = match token::issue(&identity.keys, &grant) {
        Ok(t) => t,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "cannot sign a token");
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                "The server could not sign you in. Please retry.",
            );
        }
    };
    let mut fragment = form_urlencoded::Serializer::new(String::new());
    fragment.append_pair("access_token", &token);
    fragment.append_pair("token_type", "Bearer");
    fragment.append_pair("expires_in", &expires_in.to_string());
    fragment.append_pair("scope", "user_impersonation");
    if let Some(s) = field(&params, "state") {
        fragment.append_pair("state", s);
    }
    let location =
        format!("{}#{}", redirect.split('#').next().unwrap_or(&redirect), fragment.finish());
    found(&location)
}

/// A 302 to `location`, or the error page when it cannot be a header.
fn found(location: &str) -> Response {
    let mut r = StatusCode::FOUND.into_response();
    match HeaderValue::from_str(location) {
        Ok(v) => {
            r.headers_mut().insert(header::LOCATION, v);
            r
        }
        Err(_) => {
            error_page(StatusCode::BAD_REQUEST, "AADSTS50011: The redirect URI is not a valid URI.")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirects_go_to_loopback_or_home_only() {
        let base = "https://127.0.0.1:8443";
        assert!(redirect_allowed("http://localhost:3000/cb", base));
        assert!(redirect_allowed("https://127.0.0.1:8443/app", base));
        assert!(redirect_allowed("http://[::1]:9/x", base));
        assert!(!redirect_allowed("https://evil.example/cb", base));
        assert!(!redirect_allowed("javascript:alert(1)", base));
        assert!(!redirect_allowed("https://127.0.0.1.evil.example/", base));
    }

    #[test]
    fn the_dashboard_gets_codes_at_its_own_page_only() {
        let base = "https://127.0.0.1:8443";
        let dashboard = DASHBOARD_CLIENT_ID.to_string();
        let dashboard = Some(dashboard.as_str());
        assert!(redirect_registered(dashboard, "https://127.0.0.1:8443/", base));
        assert!(!redirect_registered(dashboard, "https://127.0.0.1:8443/other", base));
        assert!(!redirect_registered(dashboard, "http://localhost:3000/", base));
        assert!(!redirect_registered(dashboard, "https://evil.example/", base));
        // Other clients: loopback or this server, as in the implicit flow.
        assert!(redirect_registered(Some("app"), "http://localhost:3000/cb", base));
        assert!(redirect_registered(None, "https://127.0.0.1:8443/x", base));
        assert!(!redirect_registered(Some("app"), "https://evil.example/", base));
    }

    #[test]
    fn scopes_are_normalised_including_az_double_slash() {
        let f = |s: &str| vec![("scope".to_string(), s.to_string())];
        assert_eq!(
            requested_audience(&f("https://management.azure.com//.default")).ok(),
            Some("https://management.azure.com/")
        );
        assert_eq!(
            requested_audience(&f("https://management.azure.com/.default")).ok(),
            Some("https://management.azure.com/")
        );
        assert_eq!(
            requested_audience(&f(
                "https://management.core.windows.net//.default offline_access openid profile"
            ))
            .ok(),
            Some("https://management.core.windows.net/")
        );
        assert!(requested_audience(&f("https://graph.microsoft.com/.default")).is_err());
        assert!(requested_audience(&[("resource".into(), "https://management.azure.com".into())])
            .is_ok());
    }
}
