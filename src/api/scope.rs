//! What the extension API's routers share (`api::ext` and the improvements, changes and
//! exemptions routers it mounts): its path prefix, its query parameters (times, `$skipToken`), and
//! the scopes improvements and exemptions name (`?scope=`, an exemption's `properties.scope`): an
//! ARM resource id (subscription, resource group or resource), or a management group. What lies
//! below a management group is decided in ONE place, [`below_management_group`].

use axum::http::Uri;
use uuid::Uuid;

use super::AppState;
use crate::arm::paging::Cursor;
use crate::arm::parse_time;
use crate::arm::{AnyScope, ApiError, ApiResult};
use std::collections::HashMap;
use time::OffsetDateTime;

/// Where the extension API lives.
pub const PREFIX: &str = "/securescore/v1";

/// A time query parameter (RFC 3339), or a 400 naming it.
pub fn time_param(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<OffsetDateTime>> {
    q.get(name)
        .map(|v| {
            parse_time(v).map_err(|_| ApiError::BadRequest {
                target: Some(name.into()),
                message: format!(
                    "'{name}' must be an RFC 3339 time such as 2026-11-27T00:00:00Z, not '{v}'."
                ),
            })
        })
        .transpose()
}

/// Parse a scope (`AnyScope`); errors name `field` (a query parameter, or with `body` a body
/// field).
pub fn parse(text: &str, field: &str, body: bool) -> ApiResult<AnyScope> {
    AnyScope::parse(text).map_err(|e| {
        let message = format!(
            "'{field}' must be a subscription, resource group or resource id, or \
             /providers/Microsoft.Management/managementGroups/{{groupId}}: {e}"
        );
        if body {
            ApiError::invalid_field(field, message)
        } else {
            ApiError::BadRequest { target: Some(field.into()), message }
        }
    })
}

/// THE answer to "which subscriptions lie below this management group" for the extension API
/// (the store's hierarchy, nested groups included); an unknown group is ARM's 404.
pub async fn below_management_group(
    state: &AppState,
    group: &str,
    _field: &str,
) -> ApiResult<Vec<Uuid>> {
    state
        .store
        .subscriptions_below(group)
        .await?
        .ok_or_else(|| ApiError::ManagementGroupNotFound(group.to_string()))
}

/// `$skipToken` of an extension list, when there is one.
pub fn cursor(q: &HashMap<String, String>) -> ApiResult<Option<Cursor>> {
    q.iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("$skipToken"))
        .map(|(_, v)| Cursor::decode(v))
        .transpose()
}

/// A keyset cursor's key, or a 400 for a token of another list.
pub fn after_key(cursor: Option<Cursor>) -> ApiResult<Option<String>> {
    match cursor {
        None => Ok(None),
        Some(Cursor::After(key, _)) => Ok(Some(key)),
        Some(Cursor::Offset(_)) => Err(foreign_token()),
    }
}

pub fn foreign_token() -> ApiError {
    ApiError::BadRequest {
        target: Some("$skipToken".into()),
        message: "The $skipToken does not belong to this list.".into(),
    }
}

/// `$top`: a page size from 1 to 1000, else the server's page size.
pub fn top(q: &HashMap<String, String>, default: usize) -> ApiResult<usize> {
    match q.iter().find(|(k, _)| k.eq_ignore_ascii_case("$top")) {
        None => Ok(default),
        Some((_, v)) => {
            v.parse::<usize>().ok().filter(|n| (1..=1000).contains(n)).ok_or_else(|| {
                ApiError::BadRequest {
                    target: Some("$top".into()),
                    message: format!("'$top' must be a whole number from 1 to 1000, not '{v}'."),
                }
            })
        }
    }
}

/// The next page's link of the list at `uri`.
pub fn next_link(state: &AppState, uri: &Uri, cursor: &Cursor) -> String {
    super::next_link(&state.identity.public_url, uri, cursor)
}
