//! Managing identity: principals, role assignments and signing keys — the operations shared by
//! the CLI on a data directory and the extension API (`/securescore/v1/principals`,
//! `/securescore/v1/roleAssignments`, `/securescore/v1/keys`), which needs Owner at `/`.
//! Secrets are shown once, when created or reset, and stored only hashed.

use anyhow::{bail, Result};
use axum::extract::{FromRequestParts, RawQuery, State};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use uuid::Uuid;

use super::{authz, secret, IdentityState};
use crate::arm::extract::{Body, Path};
use crate::arm::{format_time, json as json_response, query_map, ApiError, ApiResult};
use crate::store::{PrincipalKey, PrincipalKind, PrincipalRecord, RoleAssignment, Store};

/// A principal, or a role assignment, as the CLI and the extension API show it (never a secret).
pub fn principal_json(p: &PrincipalRecord) -> Value {
    json!({
        "id": p.id,
        "kind": p.kind.as_str(),
        "displayName": p.display_name,
        "appId": p.app_id,
        "userName": p.user_name,
        "tenantId": p.tenant_id,
        "createdAt": format_time(p.created_at),
    })
}

/// A principal with the secret (or password) it was just given: the one answer that shows it.
pub fn principal_with_secret(p: &PrincipalRecord, secret: &str) -> Value {
    let mut v = principal_json(p);
    v["secret"] = json!(secret);
    v
}

pub fn assignment_json(a: &RoleAssignment) -> Value {
    json!({
        "id": a.id,
        "principalId": a.principal_id,
        "roleDefinitionId": a.role_definition_id,
        "roleName": authz::role_by_id(a.role_definition_id).map_or("(unknown)", |r| r.name),
        "scope": a.scope,
        "createdAt": format_time(a.created_at),
    })
}

/// A local principal by object id, client id or user name.
pub async fn resolve(store: &Store, who: &str) -> Result<Option<PrincipalRecord>> {
    if let Ok(id) = Uuid::parse_str(who.trim()) {
        if let Some(p) = store.principal(PrincipalKey::Id(id)).await? {
            return Ok(Some(p));
        }
        return store.principal(PrincipalKey::AppId(id)).await;
    }
    store.principal(PrincipalKey::UserName(who.trim())).await
}

/// What to create.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NewPrincipal {
    pub display_name: String,
    #[serde(default = "service_principal")]
    #[schema(value_type = crate::wire::schema::PrincipalKind, default = "ServicePrincipal")]
    pub kind: PrincipalKind,
    /// Users: the sign-in name (e.g. `alice@securescore.local`).
    #[serde(default)]
    pub user_name: Option<String>,
    /// Users: the password; generated when absent. Service principals always get a generated secret.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
}

fn service_principal() -> PrincipalKind {
    PrincipalKind::ServicePrincipal
}

/// Create a principal; returns it with its secret (or password), shown this once.
pub async fn create_principal(
    store: &Store,
    new: NewPrincipal,
) -> Result<(PrincipalRecord, String)> {
    if new.display_name.trim().is_empty() {
        bail!("the display name must not be empty");
    }
    let tenant = match new.tenant_id {
        Some(t) => t,
        None => store.default_tenant().await?,
    };
    let (app_id, user_name, secret) = match new.kind {
        PrincipalKind::ServicePrincipal => {
            if new.user_name.is_some() || new.password.is_some() {
                bail!("a service principal has a generated secret, not a user name or password");
            }
            (Some(Uuid::new_v4()), None, secret::generate())
        }
        PrincipalKind::User => {
            let Some(name) = new.user_name.filter(|n| !n.trim().is_empty()) else {
                bail!("a user needs a user name (e.g. alice@securescore.local)");
            };
            let password = new.password.unwrap_or_else(secret::generate);
            if password.len() < 8 {
                bail!("the password must have at least 8 characters");
            }
            (None, Some(name.trim().to_lowercase()), password)
        }
    };
    let p = PrincipalRecord {
        id: Uuid::new_v4(),
        kind: new.kind,
        display_name: new.display_name.trim().to_string(),
        app_id,
        user_name,
        tenant_id: tenant,
        secret_hash: secret::hash(&secret),
        created_at: OffsetDateTime::now_utc(),
    };
    store.insert_principal(&p).await?;
    Ok((p, secret))
}

/// A new secret (service principal) or generated password (user); the old one stops working.
pub async fn reset_secret(store: &Store, p: &PrincipalRecord) -> Result<String> {
    let s = secret::generate();
    store.set_secret_hash(p.id, &secret::hash(&s)).await?;
    Ok(s)
}

/// Assign `role` (name or GUID) at `scope` to `principal` (a local principal by any of its names,
/// or the object id of an external one). `(assignment, created)`.
pub async fn assign(
    store: &Store,
    principal: &str,
    role: &str,
    scope: &str,
) -> Result<(RoleAssignment, bool)> {
    let Some(def) = authz::role(role) else {
        let names: Vec<&str> = authz::ROLES.iter().map(|r| r.name).collect();
        bail!("unknown role '{role}'; roles: {}", names.join(", "));
    };
    let Some(scope) = authz::parse_scope(scope) else {
        bail!(
            "the scope must be '/', '/subscriptions/{{id}}' or \
             '/providers/Microsoft.Management/managementGroups/{{group}}', not '{scope}'"
        );
    };
    let object_id = match resolve(store, principal).await? {
        Some(p) => p.id.to_string(),
        None => match Uuid::parse_str(principal.trim()) {
            // The object id of a principal of a trusted external authority.
            Ok(id) => id.to_string(),
            Err(_) => {
                bail!("no principal '{principal}' (give an object id, client id or user name)")
            }
        },
    };
    store
        .put_role_assignment(&RoleAssignment {
            id: Uuid::new_v4(),
            principal_id: object_id,
            role_definition_id: def.id,
            scope,
            created_at: OffsetDateTime::now_utc(),
        })
        .await
}

pub fn router() -> Router<IdentityState> {
    Router::new()
        .route("/securescore/v1/principals", get(list_principals).post(post_principal))
        .route("/securescore/v1/principals/{id}", get(get_principal).delete(delete_principal))
        .route("/securescore/v1/principals/{id}/resetSecret", post(post_reset_secret))
        .route("/securescore/v1/roleAssignments", get(list_assignments).post(post_assignment))
        .route("/securescore/v1/roleAssignments/{id}", axum::routing::delete(delete_assignment))
        .route("/securescore/v1/keys", get(list_keys))
        .route("/securescore/v1/keys/rotate", post(rotate_keys))
}

/// An administrator (Owner at `/`). An extractor that reads only the request head, so the caller is
/// authenticated and authorized before any body is read.
struct Admin;

impl FromRequestParts<IdentityState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &IdentityState) -> ApiResult<Admin> {
        super::require(state, &parts.headers, authz::ADMIN_ACTION, None).await.map(|_| Admin)
    }
}

fn bad(e: anyhow::Error) -> ApiError {
    ApiError::BadRequest { target: None, message: format!("{e:#}.") }
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8], shape: &str) -> ApiResult<T> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::invalid_field("", format!("Expected {shape}: {e}.")))
}

async fn find(state: &IdentityState, id: &str) -> ApiResult<PrincipalRecord> {
    resolve(&state.store, id).await?.ok_or_else(|| ApiError::TenantResourceNotFound {
        resource_type: "principals".into(),
        name: id.into(),
    })
}

#[utoipa::path(
    get,
    path = "/securescore/v1/principals",
    operation_id = "Principals_List",
    tag = "Principals",
    summary = "List principals (never their secrets)",
    responses(
        (status = 200, description = "The principals", body = crate::wire::schema::PrincipalList),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn list_principals(State(state): State<IdentityState>, _: Admin) -> ApiResult<Response> {
    let value: Vec<Value> = state.store.principals().await?.iter().map(principal_json).collect();
    Ok(json_response(StatusCode::OK, &json!({ "value": value })))
}

#[utoipa::path(
    get,
    path = "/securescore/v1/principals/{id}",
    operation_id = "Principals_Get",
    tag = "Principals",
    summary = "Get a principal (never its secret)",
    params(
        ("id" = String, Path, description = "Object id, client id or user name"),
    ),
    responses(
        (status = 200, description = "The principal", body = crate::wire::schema::Principal),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn get_principal(
    State(state): State<IdentityState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    Ok(json_response(StatusCode::OK, &principal_json(&find(&state, &id).await?)))
}

#[utoipa::path(
    post,
    path = "/securescore/v1/principals",
    operation_id = "Principals_Create",
    tag = "Principals",
    summary = "Create a service principal (with a generated secret) or a user (password generated when absent); the secret is in this answer only",
    request_body = NewPrincipal,
    responses(
        (status = 201, description = "Created", body = crate::wire::schema::PrincipalWithSecret),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn post_principal(
    State(state): State<IdentityState>,
    _: Admin,
    Body(bytes): Body,
) -> ApiResult<Response> {
    let new: NewPrincipal = body(&bytes, "{\"displayName\", \"kind\"?: \"ServicePrincipal\"|\"User\", \"userName\"?, \"password\"?, \"tenantId\"?}")?;
    let (p, secret) = create_principal(&state.store, new).await.map_err(bad)?;
    let v = principal_with_secret(&p, &secret);
    Ok(json_response(StatusCode::CREATED, &v))
}

#[utoipa::path(
    delete,
    path = "/securescore/v1/principals/{id}",
    operation_id = "Principals_Delete",
    tag = "Principals",
    summary = "Delete a principal; its tokens stop working",
    params(
        ("id" = String, Path, description = "Object id, client id or user name"),
    ),
    responses(
        (status = 200, description = "Deleted"),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn delete_principal(
    State(state): State<IdentityState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let p = find(&state, &id).await?;
    state.store.remove_principal(p.id).await?;
    state.identity.invalidate();
    Ok(StatusCode::OK.into_response())
}

#[utoipa::path(
    post,
    path = "/securescore/v1/principals/{id}/resetSecret",
    operation_id = "Principals_ResetSecret",
    tag = "Principals",
    summary = "A new secret (service principal) or generated password (user); the old one stops working",
    params(
        ("id" = String, Path, description = "Object id, client id or user name"),
    ),
    responses(
        (status = 200, description = "The principal with its new secret", body = crate::wire::schema::PrincipalWithSecret),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn post_reset_secret(
    State(state): State<IdentityState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let p = find(&state, &id).await?;
    let secret = reset_secret(&state.store, &p).await?;
    let v = principal_with_secret(&p, &secret);
    Ok(json_response(StatusCode::OK, &v))
}

#[utoipa::path(
    get,
    path = "/securescore/v1/roleAssignments",
    operation_id = "RoleAssignments_List",
    tag = "Role assignments",
    summary = "List role assignments",
    params(
        ("principalId" = Option<String>, Query, description = "Only this principal's (object id, client id or user name)"),
    ),
    responses(
        (status = 200, description = "The role assignments", body = crate::wire::schema::RoleAssignmentList),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn list_assignments(
    State(state): State<IdentityState>,
    _: Admin,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = query_map(q);
    let principal = match q.get("principalId").filter(|p| !p.is_empty()) {
        Some(who) => Some(match resolve(&state.store, who).await? {
            Some(p) => p.id.to_string(),
            None => who.to_ascii_lowercase(),
        }),
        None => None,
    };
    let value: Vec<Value> = state
        .store
        .role_assignments(principal.as_deref())
        .await?
        .iter()
        .map(assignment_json)
        .collect();
    Ok(json_response(StatusCode::OK, &json!({ "value": value })))
}

/// A role to assign.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
struct NewAssignment {
    /// Object id, client id or user name of a local principal, or the object id of one of a
    /// trusted authority.
    principal_id: String,
    /// A role name (e.g. `Reader`) or an Azure role definition GUID.
    #[schema(example = "Reader")]
    role: String,
    /// `/` or `/subscriptions/{id}`; inherited below.
    #[serde(default = "root")]
    #[schema(default = "/")]
    scope: String,
}

fn root() -> String {
    "/".into()
}

#[utoipa::path(
    post,
    path = "/securescore/v1/roleAssignments",
    operation_id = "RoleAssignments_Create",
    tag = "Role assignments",
    summary = "Assign a role at / or /subscriptions/{id}; inherited below",
    request_body = NewAssignment,
    responses(
        (status = 200, description = "Already assigned", body = crate::wire::schema::RoleAssignment),
        (status = 201, description = "Created", body = crate::wire::schema::RoleAssignment),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn post_assignment(
    State(state): State<IdentityState>,
    _: Admin,
    Body(bytes): Body,
) -> ApiResult<Response> {
    let new: NewAssignment =
        body(&bytes, "{\"principalId\", \"role\", \"scope\"?: \"/\" or \"/subscriptions/{id}\"}")?;
    let (a, created) =
        assign(&state.store, &new.principal_id, &new.role, &new.scope).await.map_err(bad)?;
    state.identity.invalidate();
    Ok(json_response(
        if created { StatusCode::CREATED } else { StatusCode::OK },
        &assignment_json(&a),
    ))
}

#[utoipa::path(
    delete,
    path = "/securescore/v1/roleAssignments/{id}",
    operation_id = "RoleAssignments_Delete",
    tag = "Role assignments",
    summary = "Remove a role assignment",
    params(
        ("id" = Uuid, Path, description = "The role assignment id"),
    ),
    responses(
        (status = 200, description = "Removed"),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn delete_assignment(
    State(state): State<IdentityState>,
    _: Admin,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let not_found = || ApiError::TenantResourceNotFound {
        resource_type: "roleAssignments".into(),
        name: id.clone(),
    };
    let uuid = Uuid::parse_str(&id).map_err(|_| not_found())?;
    if !state.store.remove_role_assignment(uuid).await? {
        return Err(not_found());
    }
    state.identity.invalidate();
    Ok(StatusCode::OK.into_response())
}

pub fn keys_json(ring: &super::keys::KeyRing) -> Value {
    let current = ring.current().ok().map(|k| k.kid.clone());
    let value: Vec<Value> = ring
        .live()
        .iter()
        .map(|k| {
            json!({
                "kid": k.kid,
                "current": Some(&k.kid) == current.as_ref(),
                "created": OffsetDateTime::from_unix_timestamp(k.created).map(format_time).unwrap_or_default(),
                "retired": k.retired.and_then(|r| OffsetDateTime::from_unix_timestamp(r).ok()).map(format_time),
            })
        })
        .collect();
    json!({ "value": value })
}

#[utoipa::path(
    get,
    path = "/securescore/v1/keys",
    operation_id = "Keys_List",
    tag = "Signing keys",
    summary = "The signing keys published in the JWKS",
    responses(
        (status = 200, description = "The signing keys", body = crate::wire::schema::SigningKeyList),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn list_keys(State(state): State<IdentityState>, _: Admin) -> ApiResult<Response> {
    Ok(json_response(StatusCode::OK, &keys_json(&state.identity.keys)))
}

#[utoipa::path(
    post,
    path = "/securescore/v1/keys/rotate",
    operation_id = "Keys_Rotate",
    tag = "Signing keys",
    summary = "Sign new tokens with a new key; the old one stays published until its tokens expire",
    responses(
        (status = 200, description = "The signing keys after the rotation", body = crate::wire::schema::SigningKeyList),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn rotate_keys(State(state): State<IdentityState>, _: Admin) -> ApiResult<Response> {
    state.identity.keys.rotate().await?;
    Ok(json_response(StatusCode::OK, &keys_json(&state.identity.keys)))
}
