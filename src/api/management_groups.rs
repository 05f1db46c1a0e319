//! Management groups as ARM serves them (`Microsoft.Management`, api-versions 2021-04-01 and
//! 2023-04-01): groups (create, update, get with `$expand`/`$recurse`, delete, list), the
//! subscriptions of a group, descendants, and the tenant root group (named by the tenant id).
//! Every answer is rendered from the store's cached [`Hierarchy`]; the store checks parents and
//! cycles. PUT and DELETE are long-running in the spec; this server finishes them at once and
//! answers as the spec's examples do when done (200 with the group; 204), which the SDKs' pollers
//! accept without polling.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Map, Value};
use uuid::Uuid;

use super::auth::{GROUPS_READ, GROUPS_WRITE};
use super::{ok, Ctx};
use crate::arm::paging::page_of;
use crate::arm::{format_time, ApiError, ApiResult};
use crate::identity::authz::{Target, ADMIN_ACTION, GROUP_SCOPE};
use crate::store::valid_group_name;
use crate::store::{Child, GroupInfo, Hierarchy, HierarchyError, Subscription};

const GROUP_TYPE: &str = "Microsoft.Management/managementGroups";
const SUBSCRIPTION_TYPE: &str = "Microsoft.Management/managementGroups/subscriptions";

fn group_id(name: &str) -> String {
    format!("{GROUP_SCOPE}{name}")
}

/// The group's key, or ARM's 404.
fn existing(tree: &Hierarchy, group: &str) -> ApiResult<String> {
    tree.key_of(group).ok_or_else(|| ApiError::ManagementGroupNotFound(group.to_string()))
}

/// A refused hierarchy change as ARM words it.
fn refused(e: HierarchyError) -> ApiError {
    let bad = |target: &str, message: String| ApiError::BadRequest {
        target: Some(target.to_string()),
        message,
    };
    match e {
        HierarchyError::NoGroup(g) => ApiError::ManagementGroupNotFound(g),
        HierarchyError::NoSubscription(s) => ApiError::SubscriptionNotFound(s.to_string()),
        HierarchyError::NoParent(p) => bad(
            "properties.details.parent.id",
            format!("The parent management group '{p}' does not exist."),
        ),
        HierarchyError::Cycle { group, parent } => bad(
            "properties.details.parent.id",
            format!(
                "The management group '{group}' cannot be moved below '{parent}': '{parent}' is \
                 '{group}' itself or one of its descendants."
            ),
        ),
        HierarchyError::HasChildren(g) => bad(
            "groupId",
            format!(
                "The management group '{g}' has children (management groups or subscriptions). \
                 Move or delete them before deleting the group."
            ),
        ),
        HierarchyError::Root => bad(
            "groupId",
            "The tenant root group cannot be created, changed or deleted.".to_string(),
        ),
        HierarchyError::NotInGroup { group, subscription } => {
            ApiError::ManagementGroupNotFound(format!("{group}/subscriptions/{subscription}"))
        }
    }
}

/// `{name, displayName}` of a group (for `path` and the ancestor chain).
fn name_and_display(tree: &Hierarchy, key: &str) -> Value {
    let info = tree.info(key);
    json!({
        "name": info.as_ref().map_or(key, |i| i.name.as_str()),
        "displayName": info.as_ref().map_or(key, |i| i.display_name.as_str()),
    })
}

/// A child entry of `$expand=children` (nested when `recurse`).
fn child_json(tree: &Hierarchy, child: &Child, recurse: bool) -> Value {
    match child {
        Child::Group(key) => {
            let info = tree.info(key);
            let name = info.as_ref().map_or(key.as_str(), |i| i.name.as_str());
            let mut out = json!({
                "id": group_id(name),
                "type": GROUP_TYPE,
                "name": name,
                "displayName": info.as_ref().map_or(key.as_str(), |i| i.display_name.as_str()),
            });
            let children = tree.children(key);
            if recurse && !children.is_empty() {
                out["children"] = children
                    .iter()
                    .map(|c| child_json(tree, c, recurse))
                    .collect::<Vec<_>>()
                    .into();
            }
            out
        }
        Child::Subscription(id) => json!({
            "id": format!("/subscriptions/{id}"),
            "type": "/subscriptions",
            "name": id.to_string(),
            "displayName": tree.subscription(*id).map(|s| s.display_name.as_str()),
        }),
    }
}

/// A group as `ManagementGroups_Get` answers it.
fn group_json(tree: &Hierarchy, info: &GroupInfo, expand: &[&str], recurse: bool) -> Value {
    let key = info.name.to_ascii_lowercase();
    let mut details = Map::new();
    details.insert("version".into(), info.version.into());
    if let Some(t) = info.updated_time {
        details.insert("updatedTime".into(), format_time(t).into());
    }
    if let Some(by) = &info.updated_by {
        details.insert("updatedBy".into(), by.clone().into());
    }
    if let Some(parent) = &info.parent {
        let p = name_and_display(tree, parent);
        details.insert(
            "parent".into(),
            json!({
                "id": group_id(p["name"].as_str().unwrap_or(parent)),
                "name": p["name"],
                "displayName": p["displayName"],
            }),
        );
    }
    let ancestors = tree.ancestors_of_group(&key);
    if expand.contains(&"path") {
        let path: Vec<Value> = ancestors.iter().rev().map(|a| name_and_display(tree, a)).collect();
        details.insert("path".into(), path.into());
    }
    if expand.contains(&"ancestors") {
        // The chain form, nearest first (the spec's examples use it, not the bare name list).
        let chain: Vec<Value> = ancestors.iter().map(|a| name_and_display(tree, a)).collect();
        details.insert("managementGroupAncestorsChain".into(), chain.into());
    }
    let mut properties = json!({
        "tenantId": tree.tenant.to_string(),
        "displayName": info.display_name,
        "details": details,
    });
    if expand.contains(&"children") {
        let children: Vec<Value> =
            tree.children(&key).iter().map(|c| child_json(tree, c, recurse)).collect();
        properties["children"] = children.into();
    }
    json!({ "id": group_id(&info.name), "type": GROUP_TYPE, "name": info.name, "properties": properties })
}

/// A subscription as the group-membership operations answer it.
fn subscription_json(tree: &Hierarchy, group: &str, sub: &Subscription) -> Value {
    let name = tree.info(group).map_or_else(|| group.to_string(), |i| i.name);
    // ARM's subscription state `Enabled` is `Active` in the management group API.
    let state = if sub.state.eq_ignore_ascii_case("Enabled") { "Active" } else { &sub.state };
    json!({
        "id": format!("{}/subscriptions/{}", group_id(&name), sub.id),
        "type": SUBSCRIPTION_TYPE,
        "name": sub.id.to_string(),
        "properties": {
            "displayName": sub.display_name,
            "parent": { "id": group_id(&name) },
            "state": state,
            "tenant": sub.tenant_id.to_string(),
        },
    })
}

/// Moving something below `parent` needs write access to the parent too (the request's own
/// need covers the group being changed): otherwise a caller could hang a group below another
/// owner's group.
async fn check_parent_write(ctx: &Ctx<'_>, parent: Option<&str>) -> ApiResult<()> {
    let Some(parent) = parent else { return Ok(()) };
    let tree = ctx.state.store.hierarchy().await?;
    let chain = tree.chain_of(parent);
    if ctx.principal.can_at(GROUPS_WRITE, &Target { subscription: None, groups: &chain }) {
        Ok(())
    } else {
        Err(ctx.principal.forbidden(GROUPS_WRITE, &group_id(parent)))
    }
}

/// Moving a subscription needs Owner on the subscription itself (as in Azure), beside write on
/// the group: otherwise an owner of a group could pull another's subscription below it and
/// inherit access to it.
async fn check_subscription_owner(ctx: &Ctx<'_>, sub: Uuid) -> ApiResult<()> {
    let groups = ctx.state.store.ancestors_of_subscription(sub).await?;
    if ctx.principal.can_at(ADMIN_ACTION, &Target { subscription: Some(sub), groups: &groups }) {
        Ok(())
    } else {
        Err(ctx.principal.forbidden(ADMIN_ACTION, &format!("/subscriptions/{sub}")))
    }
}

fn check_name(group: &str) -> ApiResult<()> {
    if valid_group_name(group) {
        Ok(())
    } else {
        Err(ApiError::InvalidResourceName {
            name: group.to_string(),
            reason: "a management group id has 1 to 90 letters, digits, '-', '_', '(', ')' or \
                     '.', and does not end with '.'.",
        })
    }
}

/// A parent given as a group id (`/providers/Microsoft.Management/managementGroups/{g}`) or a
/// bare name.
fn parent_name<'a>(id: &'a str, target: &str) -> ApiResult<&'a str> {
    let trimmed = id.trim().trim_end_matches('/');
    let name = match trimmed.get(..GROUP_SCOPE.len()) {
        Some(prefix) if prefix.eq_ignore_ascii_case(GROUP_SCOPE) => &trimmed[GROUP_SCOPE.len()..],
        _ if !trimmed.contains('/') => trimmed,
        _ => "",
    };
    if valid_group_name(name) {
        Ok(name)
    } else {
        Err(ApiError::invalid_field(
            target,
            format!("'{id}' is not a management group id ('{GROUP_SCOPE}{{groupId}}')."),
        ))
    }
}

fn expansion(ctx: &Ctx<'_>) -> ApiResult<(Vec<&'static str>, bool)> {
    let expand = ctx.expand(&["children", "path", "ancestors"])?;
    let recurse = match ctx.query("$recurse") {
        None => false,
        Some(v) if v.eq_ignore_ascii_case("true") => true,
        Some(v) if v.eq_ignore_ascii_case("false") => false,
        Some(v) => {
            return Err(ApiError::BadRequest {
                target: Some("$recurse".into()),
                message: format!("The $recurse value '{v}' is not a boolean."),
            })
        }
    };
    if recurse && !expand.contains(&"children") {
        return Err(ApiError::BadRequest {
            target: Some("$recurse".into()),
            message: "$recurse=true is only valid with $expand=children.".into(),
        });
    }
    Ok((expand, recurse))
}

/// ManagementGroups_List: the groups the caller may read (the root group included).
pub async fn list(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let tree = ctx.state.store.hierarchy().await?;
    let visible: Vec<GroupInfo> = tree
        .all()
        .into_iter()
        .filter(|g| {
            let chain = tree.chain_of(&g.name);
            ctx.principal.can_at(GROUPS_READ, &Target { subscription: None, groups: &chain })
        })
        .collect();
    let cursor = ctx.cursor()?;
    ok(&page_of(
        &visible,
        cursor.as_ref(),
        ctx.page_size(),
        |c| ctx.next_link(c),
        |g| {
            json!({
                "id": group_id(&g.name),
                "type": GROUP_TYPE,
                "name": g.name,
                "properties": { "tenantId": tree.tenant.to_string(), "displayName": g.display_name },
            })
        },
    )?)
}

pub async fn get(ctx: &Ctx<'_>, group: &str) -> ApiResult<Response> {
    let (expand, recurse) = expansion(ctx)?;
    let tree = ctx.state.store.hierarchy().await?;
    let key = existing(&tree, group)?;
    let info = tree.info(&key).ok_or_else(|| ApiError::ManagementGroupNotFound(group.into()))?;
    ok(&group_json(&tree, &info, &expand, recurse))
}

/// ManagementGroups_CreateOrUpdate: the body's `properties.displayName` and
/// `properties.details.parent.id` (absent: the root group).
pub async fn put(ctx: &Ctx<'_>, group: &str) -> ApiResult<Response> {
    check_name(group)?;
    let body = if ctx.body.is_empty() { json!({}) } else { ctx.json_body()? };
    let props = &body["properties"];
    let display = match &props["displayName"] {
        Value::Null => None,
        Value::String(s) if !s.trim().is_empty() && s.len() <= 90 => Some(s.as_str()),
        _ => {
            return Err(ApiError::invalid_field(
                "properties.displayName",
                "The display name must be a string of 1 to 90 characters.".to_string(),
            ))
        }
    };
    let parent = match &props["details"]["parent"]["id"] {
        Value::Null => None,
        Value::String(id) => Some(parent_name(id, "properties.details.parent.id")?),
        _ => {
            return Err(ApiError::invalid_field(
                "properties.details.parent.id",
                "The parent id must be a string.".to_string(),
            ))
        }
    };
    // A new group, or one that moves (no parent: to the root group), needs write access to
    // where it goes.
    let tree = ctx.state.store.hierarchy().await?;
    let target = parent.map_or_else(|| tree.root_key().to_string(), str::to_ascii_lowercase);
    let current = tree.info(group).and_then(|g| g.parent);
    if current.as_deref() != Some(target.as_str()) {
        check_parent_write(ctx, Some(&target)).await?;
    }
    let by = ctx.principal.object_id.clone();
    let (_, info) = ctx
        .state
        .store
        .put_management_group(group, display.or(Some(group)), Some(parent), &by)
        .await?
        .map_err(refused)?;
    let tree = ctx.state.store.hierarchy().await?;
    ok(&group_json(&tree, &info, &[], false))
}

/// ManagementGroups_Update: `displayName` and `parentGroupId`, each optional.
pub async fn patch(ctx: &Ctx<'_>, group: &str) -> ApiResult<Response> {
    let body = ctx.json_body()?;
    let tree = ctx.state.store.hierarchy().await?;
    existing(&tree, group)?;
    let display = match &body["displayName"] {
        Value::Null => None,
        Value::String(s) if !s.trim().is_empty() && s.len() <= 90 => Some(s.as_str()),
        _ => {
            return Err(ApiError::invalid_field(
                "displayName",
                "The display name must be a string of 1 to 90 characters.".to_string(),
            ))
        }
    };
    let parent = match &body["parentGroupId"] {
        Value::Null => None,
        Value::String(id) => Some(Some(parent_name(id, "parentGroupId")?)),
        _ => {
            return Err(ApiError::invalid_field(
                "parentGroupId",
                "The parent group id must be a string.".to_string(),
            ))
        }
    };
    let current = tree.info(group).and_then(|g| g.parent);
    if let Some(Some(p)) = parent {
        if current.as_deref() != Some(p.to_ascii_lowercase().as_str()) {
            check_parent_write(ctx, Some(p)).await?;
        }
    }
    let by = ctx.principal.object_id.clone();
    let (_, info) = ctx
        .state
        .store
        .put_management_group(group, display, parent, &by)
        .await?
        .map_err(refused)?;
    let tree = ctx.state.store.hierarchy().await?;
    ok(&group_json(&tree, &info, &[], false))
}

pub async fn delete(ctx: &Ctx<'_>, group: &str) -> ApiResult<Response> {
    match ctx.state.store.delete_management_group(group).await?.map_err(refused)? {
        true => Ok(StatusCode::NO_CONTENT.into_response()),
        false => Err(ApiError::ManagementGroupNotFound(group.to_string())),
    }
}

/// ManagementGroups_GetDescendants: every group and subscription below, depth first, paged
/// (`$top` shortens a page).
pub async fn descendants(ctx: &Ctx<'_>, group: &str) -> ApiResult<Response> {
    let tree = ctx.state.store.hierarchy().await?;
    let key = existing(&tree, group)?;
    let top = match ctx.query("$top") {
        None => None,
        Some(t) => Some(t.parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(|| {
            ApiError::BadRequest {
                target: Some("$top".into()),
                message: format!("The $top value '{t}' is not a positive integer."),
            }
        })?),
    };
    let size = top.map_or(ctx.page_size(), |t| t.min(ctx.page_size()));
    // 2021-04-01 names a subscription descendant `/subscriptions`; 2023-04-01 names it as a
    // subscription below a group.
    let sub_type =
        if ctx.api_version == "2021-04-01" { "/subscriptions" } else { SUBSCRIPTION_TYPE };
    let all: Vec<(Child, String)> = descendants_with_parents(&tree, &key);
    let cursor = ctx.cursor()?;
    ok(&page_of(
        &all,
        cursor.as_ref(),
        size,
        |c| ctx.next_link(c),
        |(child, parent)| {
            let parent_name = tree.info(parent).map_or_else(|| parent.clone(), |i| i.name);
            let parent = json!({ "id": group_id(&parent_name) });
            match child {
                Child::Group(g) => {
                    let info = tree.info(g);
                    let name = info.as_ref().map_or(g.as_str(), |i| i.name.as_str());
                    json!({
                        "id": group_id(name),
                        "type": GROUP_TYPE,
                        "name": name,
                        "properties": {
                            "displayName": info.as_ref().map_or(g.as_str(), |i| i.display_name.as_str()),
                            "parent": parent,
                        },
                    })
                }
                Child::Subscription(s) => json!({
                    "id": format!("/subscriptions/{s}"),
                    "type": sub_type,
                    "name": s.to_string(),
                    "properties": {
                        "displayName": tree.subscription(*s).map(|x| x.display_name.as_str()),
                        "parent": parent,
                    },
                }),
            }
        },
    )?)
}

/// Descendants with the key of each one's parent.
fn descendants_with_parents(tree: &Hierarchy, key: &str) -> Vec<(Child, String)> {
    let mut out = Vec::new();
    for child in tree.children(key) {
        let nested = match &child {
            Child::Group(g) => Some(g.clone()),
            Child::Subscription(_) => None,
        };
        out.push((child, key.to_string()));
        if let Some(g) = nested {
            out.extend(descendants_with_parents(tree, &g));
        }
    }
    out
}

/// ManagementGroupSubscriptions_GetSubscriptionsUnderManagementGroup: the direct ones.
pub async fn subscriptions(ctx: &Ctx<'_>, group: &str) -> ApiResult<Response> {
    let tree = ctx.state.store.hierarchy().await?;
    let key = existing(&tree, group)?;
    let subs: Vec<&Subscription> = tree
        .children(&key)
        .iter()
        .filter_map(|c| match c {
            Child::Subscription(s) => tree.subscription(*s),
            Child::Group(_) => None,
        })
        .collect();
    let cursor = ctx.cursor()?;
    ok(&page_of(
        &subs,
        cursor.as_ref(),
        ctx.page_size(),
        |c| ctx.next_link(c),
        |s| subscription_json(&tree, &key, s),
    )?)
}

pub async fn get_subscription(ctx: &Ctx<'_>, group: &str, sub: Uuid) -> ApiResult<Response> {
    let tree = ctx.state.store.hierarchy().await?;
    let key = existing(&tree, group)?;
    match tree.subscription(sub) {
        Some(s) if tree.group_of_subscription(sub) == key => ok(&subscription_json(&tree, &key, s)),
        _ => Err(refused(HierarchyError::NotInGroup { group: group.into(), subscription: sub })),
    }
}

/// ManagementGroupSubscriptions_Create: move the subscription into the group (no body).
pub async fn put_subscription(ctx: &Ctx<'_>, group: &str, sub: Uuid) -> ApiResult<Response> {
    check_subscription_owner(ctx, sub).await?;
    ctx.state.store.place_subscription(group, sub).await?.map_err(refused)?;
    let tree = ctx.state.store.hierarchy().await?;
    let key = existing(&tree, group)?;
    let s =
        tree.subscription(sub).ok_or_else(|| ApiError::SubscriptionNotFound(sub.to_string()))?;
    ok(&subscription_json(&tree, &key, s))
}

/// ManagementGroupSubscriptions_Delete: the subscription goes back below the root group.
pub async fn delete_subscription(ctx: &Ctx<'_>, group: &str, sub: Uuid) -> ApiResult<Response> {
    check_subscription_owner(ctx, sub).await?;
    ctx.state.store.unplace_subscription(group, sub).await?.map_err(refused)?;
    Ok(StatusCode::OK.into_response())
}

/// The subscriptions below a group, in id order, from the one a continuation's resource key
/// names on (ARM's 404 for an unknown group).
pub(super) async fn subscriptions_from(
    ctx: &Ctx<'_>,
    group: &str,
    after_key: Option<&String>,
) -> ApiResult<Vec<Uuid>> {
    let tree = ctx.state.store.hierarchy().await?;
    let key = existing(&tree, group)?;
    let from = after_key.and_then(|k| subscription_of_key(k));
    Ok(tree
        .subscriptions_below(&key)
        .into_iter()
        .filter(|s| from.is_none_or(|f| *s >= f))
        .collect())
}

/// The subscription of a lowercase resource key.
fn subscription_of_key(key: &str) -> Option<Uuid> {
    let rest = key.strip_prefix("/subscriptions/")?;
    Uuid::try_parse(rest.get(..36)?).ok()
}

/// Does a lowercase resource key lie in `sub`?
pub(super) fn key_in(key: &str, sub: Uuid) -> bool {
    subscription_of_key(key) == Some(sub)
}
