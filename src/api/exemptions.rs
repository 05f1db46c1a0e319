//! Exemptions (extension API; Defender's "exempt" action):
//! `PUT/GET/DELETE /securescore/v1/exemptions/{name}` and `GET /securescore/v1/exemptions[?scope=]`.
//!
//! An ARM-like resource (`id`, `name`, `type`, `properties`). While one is active, the assessments
//! it matches read as `NotApplicable` with cause `Exempt` and count as not applicable
//! (`store::exemptions`). Its scope is a resource id or a management group, which reaches every
//! subscription below it. Writing needs `Microsoft.Security/exemptions/write` (Security Admin,
//! Contributor, Owner) at the scope (a role at its subscription, or at a group above), reading
//! `.../read` (any role there); the guard in front of these routes only authenticates, since the
//! scope of a PUT is in its body.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use serde::Serialize;
use time::OffsetDateTime;
use uuid::Uuid;

use super::scope;
use super::{json, AppState};
use crate::arm::extract::{Body, Path};
use crate::arm::paging::Cursor;
use crate::arm::ResourceId;
use crate::arm::{format_time, parse_time, query_map, AnyScope, ApiError, ApiResult};
use crate::catalog;
use crate::identity::authz::Target;
use crate::identity::Principal;
use crate::store::{Category, Child, Exemption, ExemptionFilter};

pub const READ: &str = "Microsoft.Security/exemptions/read";
pub const WRITE: &str = "Microsoft.Security/exemptions/write";
pub const DELETE: &str = "Microsoft.Security/exemptions/delete";

/// The longest exemption name and description.
const MAX_NAME: usize = 128;
const MAX_DESCRIPTION: usize = 4096;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/securescore/v1/exemptions", get(list))
        .route("/securescore/v1/exemptions/{name}", get(get_one).put(put).delete(delete))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ExemptionProperties {
    /// A subscription, resource group or resource id, or a management group.
    scope: String,
    /// The assessment metadata name.
    assessment: String,
    /// The recommendation's display name (built-in metadata), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    assessment_display_name: Option<String>,
    /// `Waiver` or `Mitigated`.
    category: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    expires_on: Option<String>,
    description: String,
    /// `Active` while it takes effect, `Expired` once its time is up.
    state: &'static str,
    created_on: String,
    last_modified_on: String,
}

#[derive(Serialize)]
pub struct ExemptionJson {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    properties: ExemptionProperties,
}

impl From<&Exemption> for ExemptionJson {
    fn from(e: &Exemption) -> Self {
        ExemptionJson {
            id: format!("{}/providers/Microsoft.Security/exemptions/{}", e.scope.id(), e.name),
            name: e.name.clone(),
            kind: "Microsoft.Security/exemptions",
            properties: ExemptionProperties {
                scope: e.scope.id(),
                assessment: e.assessment.to_ascii_lowercase(),
                assessment_display_name: catalog::builtin()
                    .assessment(&e.assessment)
                    .map(catalog::AssessmentDef::display_name),
                category: e.category.as_str(),
                expires_on: e.expires_on.map(format_time),
                description: e.description.clone(),
                state: if e.active { "Active" } else { "Expired" },
                created_on: format_time(e.created_at),
                last_modified_on: format_time(e.updated_at),
            },
        }
    }
}

fn check_name(name: &str) -> ApiResult<()> {
    let invalid = |reason| Err(ApiError::InvalidResourceName { name: name.to_owned(), reason });
    if name.is_empty() || name.len() > MAX_NAME {
        return invalid("an exemption name has 1 to 128 characters.");
    }
    if !name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
        return invalid("an exemption name has only letters, digits, '-', '_' and '.'.");
    }
    if name.ends_with('.') {
        return invalid("an exemption name does not end with '.'.");
    }
    Ok(())
}

fn not_found(name: &str) -> ApiError {
    ApiError::TenantResourceNotFound { resource_type: "exemptions".into(), name: name.to_owned() }
}

/// A 403 unless the principal may do `action` at the exemption's scope: a role at its
/// subscription or a management group above it; at a group, a role there or above it.
async fn allow(
    state: &AppState,
    principal: &Principal,
    action: &str,
    scope: &AnyScope,
) -> ApiResult<()> {
    if may(state, principal, action, scope).await? {
        Ok(())
    } else {
        Err(principal.forbidden(action, &scope.id()))
    }
}

async fn may(
    state: &AppState,
    principal: &Principal,
    action: &str,
    scope: &AnyScope,
) -> ApiResult<bool> {
    let (subscription, groups) = match scope {
        AnyScope::Arm(id) => {
            let sub = id.subscription();
            (Some(sub), state.store.ancestors_of_subscription(sub).await?)
        }
        AnyScope::ManagementGroup(g) => (None, state.store.hierarchy().await?.chain_of(g)),
    };
    Ok(principal.can_at(action, &Target { subscription, groups: &groups }))
}

/// The PUT body, validated: every error names its field.
fn parse_body(
    body: &[u8],
    now: OffsetDateTime,
) -> ApiResult<(AnyScope, String, Category, Option<OffsetDateTime>, String)> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::invalid_field("", format!("The request content is not valid JSON: {e}."))
    })?;
    let props = value
        .get("properties")
        .and_then(serde_json::Value::as_object)
        .ok_or_else(|| ApiError::invalid_field("properties", "'properties' must be an object."))?;
    let text = |field: &str| -> ApiResult<Option<&str>> {
        match props.get(field) {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::String(s)) => Ok(Some(s.as_str())),
            Some(_) => Err(ApiError::invalid_field(
                format!("properties.{field}"),
                format!("'properties.{field}' must be a string."),
            )),
        }
    };
    let required = |field: &str| -> ApiResult<&str> {
        text(field)?.filter(|s| !s.trim().is_empty()).ok_or_else(|| {
            ApiError::invalid_field(
                format!("properties.{field}"),
                format!("'properties.{field}' is required."),
            )
        })
    };
    let scope = scope::parse(required("scope")?, "properties.scope", true)?;
    let assessment = required("assessment")?;
    let category_text = required("category")?;
    let category = Category::parse(category_text).ok_or_else(|| {
        ApiError::invalid_field(
            "properties.category",
            format!(
                "'properties.category' must be 'Waiver' or 'Mitigated', not '{category_text}'."
            ),
        )
    })?;
    let expires_on = match text("expiresOn")? {
        None => None,
        Some(t) => {
            let at = parse_time(t).map_err(|_| {
                ApiError::invalid_field(
                    "properties.expiresOn",
                    format!("'properties.expiresOn' must be an RFC 3339 time such as 2027-01-31T00:00:00Z, not '{t}'."),
                )
            })?;
            if at <= now {
                return Err(ApiError::invalid_field(
                    "properties.expiresOn",
                    format!("'properties.expiresOn' ({t}) must be in the future."),
                ));
            }
            Some(at)
        }
    };
    let description = required("description")?;
    if description.len() > MAX_DESCRIPTION {
        return Err(ApiError::invalid_field(
            "properties.description",
            format!("'properties.description' has at most {MAX_DESCRIPTION} bytes."),
        ));
    }
    Ok((scope, assessment.to_owned(), category, expires_on, description.to_owned()))
}

#[utoipa::path(
    put,
    path = "/securescore/v1/exemptions/{name}",
    operation_id = "Exemptions_CreateOrUpdate",
    tag = "Exemptions",
    summary = "Create (201) or replace (200) an exemption",
    description = "While it is active, the assessments of `assessment` at or below `scope` read as NotApplicable with cause Exempt and count as not applicable: the scores move at once, in one transaction with a history point of reason `exemption`. Their stored status is kept, so deleting the exemption or letting it expire restores them exactly. Needs Microsoft.Security/exemptions/write (Security Admin, Contributor or Owner) over the scope.",
    params(("name" = String, Path, description = "The exemption name: letters, digits, '-', '_', '.'")),
    request_body = crate::wire::schema::ExemptionBody,
    responses(
        (status = 200, description = "Replaced", body = crate::wire::schema::Exemption),
        (status = 201, description = "Created", body = crate::wire::schema::Exemption),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn put(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    check_name(&name)?;
    let now = OffsetDateTime::now_utc();
    let (scope, assessment, category, expires_on, description) = parse_body(&body, now)?;
    // Which subscriptions' custom metadata may name the assessment; a group as it is named.
    let (scope, subscriptions) = match scope {
        AnyScope::Arm(id) => {
            let sub = id.subscription();
            if state.store.subscription(sub).await?.is_none() {
                return Err(ApiError::SubscriptionNotFound(sub.to_string()));
            }
            (AnyScope::Arm(id), vec![sub])
        }
        AnyScope::ManagementGroup(group) => {
            let below = scope::below_management_group(&state, &group, "properties.scope").await?;
            let h = state.store.hierarchy().await?;
            let name = h.info(&group).map_or(group, |info| info.name);
            (AnyScope::ManagementGroup(name), below)
        }
    };
    allow(&state, &principal, WRITE, &scope).await?;
    let previous = state.store.exemption(&name).await?;
    if let Some(p) = &previous {
        allow(&state, &principal, WRITE, &p.scope).await?;
    }
    let key = assessment.to_ascii_lowercase();
    let mut known = catalog::builtin().assessment(&assessment).is_some();
    for sub in &subscriptions {
        if known {
            break;
        }
        known = state.store.view(*sub).await?.is_some_and(|v| v.custom_metadata.contains_key(&key));
    }
    if !known {
        return Err(ApiError::invalid_field(
            "properties.assessment",
            format!("'properties.assessment': no assessment metadata is named '{assessment}' (built-in, or custom in a subscription of {}).", scope.id()),
        ));
    }
    let exemption = Exemption {
        name: previous.as_ref().map_or_else(|| name.clone(), |p| p.name.clone()),
        scope,
        assessment,
        category,
        expires_on,
        description,
        created_at: previous.as_ref().map_or(now, |p| p.created_at),
        updated_at: now,
        active: true,
    };
    let created = state.store.put_exemption(&exemption).await?;
    let stored = state.store.exemption(&name).await?.ok_or_else(|| not_found(&name))?;
    Ok(json(
        if created { StatusCode::CREATED } else { StatusCode::OK },
        &ExemptionJson::from(&stored),
    ))
}

#[utoipa::path(
    get,
    path = "/securescore/v1/exemptions/{name}",
    operation_id = "Exemptions_Get",
    tag = "Exemptions",
    summary = "Get an exemption",
    params(("name" = String, Path, description = "The exemption name")),
    responses(
        (status = 200, description = "The exemption", body = crate::wire::schema::Exemption),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn get_one(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let e = state.store.exemption(&name).await?.ok_or_else(|| not_found(&name))?;
    allow(&state, &principal, READ, &e.scope).await?;
    Ok(json(StatusCode::OK, &ExemptionJson::from(&e)))
}

#[utoipa::path(
    delete,
    path = "/securescore/v1/exemptions/{name}",
    operation_id = "Exemptions_Delete",
    tag = "Exemptions",
    summary = "Delete an exemption (200), or nothing to delete (204)",
    description = "The assessments it exempted count with their stored status again, in one transaction with a history point of reason `exemption`.",
    params(("name" = String, Path, description = "The exemption name")),
    responses(
        (status = 200, description = "Deleted"),
        (status = 204, description = "There was no such exemption"),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let Some(e) = state.store.exemption(&name).await? else {
        return Ok(StatusCode::NO_CONTENT.into_response());
    };
    allow(&state, &principal, DELETE, &e.scope).await?;
    match state.store.delete_exemption(&name).await? {
        Some(_) => Ok(StatusCode::OK.into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListAnswer {
    value: Vec<ExemptionJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

#[utoipa::path(
    get,
    path = "/securescore/v1/exemptions",
    operation_id = "Exemptions_List",
    tag = "Exemptions",
    summary = "List exemptions (paged, by name)",
    description = "The exemptions of the subscriptions and management groups the caller may read; with `scope`, those at or below it and those above it that cover it.",
    params(
        ("scope" = Option<String>, Query, description = "A subscription, resource group or resource id, or a management group"),
        ("state" = Option<String>, Query, description = "`Active` (in force) or `Expired`; default: both"),
        ("$skipToken" = Option<String>, Query, description = "From a nextLink"),
    ),
    responses(
        (status = 200, description = "The exemptions", body = crate::wire::schema::ExemptionList),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = query_map(q);
    let mut filter = ExemptionFilter::default();
    let h = state.store.hierarchy().await?;
    match q.get("scope").filter(|s| !s.is_empty()) {
        // Those at or below the scope, and those above it that cover it.
        Some(text) => {
            let at = scope::parse(text, "scope", false)?;
            match &at {
                AnyScope::Arm(id) => {
                    allow(&state, &principal, READ, &at).await?;
                    filter.groups = Some(h.ancestors_of_subscription(id.subscription()));
                    filter.scope = Some(id.clone());
                }
                AnyScope::ManagementGroup(group) => {
                    let below = scope::below_management_group(&state, group, "scope").await?;
                    allow(&state, &principal, READ, &at).await?;
                    let mut groups = h.chain_of(group);
                    groups.extend(h.descendants(group).into_iter().filter_map(|c| match c {
                        Child::Group(g) => Some(g.to_ascii_lowercase()),
                        Child::Subscription(_) => None,
                    }));
                    filter.groups = Some(groups);
                    filter.subscriptions = Some(below);
                }
            }
        }
        // Everything the caller may read.
        None => {
            let mut readable: Vec<Uuid> = Vec::new();
            for sub in state.store.subscriptions().await? {
                if may(
                    &state,
                    &principal,
                    READ,
                    &AnyScope::Arm(ResourceId::subscription_scope(sub.id)),
                )
                .await?
                {
                    readable.push(sub.id);
                }
            }
            let mut groups = Vec::new();
            for g in h.all() {
                if may(&state, &principal, READ, &AnyScope::ManagementGroup(g.name.clone())).await?
                {
                    groups.push(g.name.to_ascii_lowercase());
                }
            }
            filter.subscriptions = Some(readable);
            filter.groups = Some(groups);
        }
    }
    filter.active = match q.get("state").map(|s| s.to_ascii_lowercase()) {
        None => None,
        Some(s) if s == "active" => Some(true),
        Some(s) if s == "expired" => Some(false),
        Some(other) => {
            return Err(ApiError::BadRequest {
                target: Some("state".into()),
                message: format!("'state' must be 'Active' or 'Expired', not '{other}'."),
            })
        }
    };
    let after = scope::after_key(scope::cursor(&q)?)?;
    let size = state.config.page_size;
    let mut rows = state.store.exemptions(&filter, after.as_deref(), size + 1).await?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next_link = if more {
        rows.last().map(|e| {
            scope::next_link(
                &state,
                &uri,
                &Cursor::After(e.name.to_ascii_lowercase(), String::new()),
            )
        })
    } else {
        None
    };
    let value = rows.iter().map(ExemptionJson::from).collect();
    Ok(json(StatusCode::OK, &ListAnswer { value, next_link }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target_of(body: &str) -> String {
        match parse_body(body.as_bytes(), OffsetDateTime::now_utc()) {
            Err(ApiError::InvalidRequestContent { target, .. }) => target,
            other => panic!("{body}: {:?}", other.map(|_| ())),
        }
    }

    #[test]
    fn every_invalid_field_is_named() {
        let sub = "/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23";
        let ok = |extra: &str| {
            format!(
                r#"{{"properties":{{"scope":"{sub}","assessment":"a","category":"Waiver","description":"d"{extra}}}}}"#
            )
        };
        assert!(parse_body(ok("").as_bytes(), OffsetDateTime::now_utc()).is_ok());
        assert_eq!(target_of("[]"), "properties");
        assert_eq!(target_of(r#"{"properties":{}}"#), "properties.scope");
        assert_eq!(target_of(r#"{"properties":{"scope":"nope"}}"#), "properties.scope");
        assert_eq!(
            target_of(&format!(r#"{{"properties":{{"scope":"{sub}"}}}}"#)),
            "properties.assessment"
        );
        assert_eq!(
            target_of(&format!(
                r#"{{"properties":{{"scope":"{sub}","assessment":"a","category":"Accepted"}}}}"#
            )),
            "properties.category"
        );
        assert_eq!(target_of(&ok(r#","expiresOn":"tomorrow""#)), "properties.expiresOn");
        assert_eq!(
            target_of(&ok(r#","expiresOn":"2001-01-01T00:00:00Z""#)),
            "properties.expiresOn"
        );
        assert_eq!(
            target_of(&format!(
                r#"{{"properties":{{"scope":"{sub}","assessment":"a","category":"Waiver"}}}}"#
            )),
            "properties.description"
        );
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("allow-vm1_2.x").is_ok());
        for bad in ["", "a/b", "a b", "dot.", &"n".repeat(129)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }
}
