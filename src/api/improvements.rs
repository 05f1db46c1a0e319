//! What to fix first (extension API): the controls of a scope that can still gain points, ranked
//! by what fixing them is worth, each with the recommendations to fix and their unhealthy
//! resources (paged).
//!
//! - `GET /securescore/v1/subscriptions/{id}/improvements[?scope=]`
//! - `GET /securescore/v1/subscriptions/{id}/improvements/{control}/recommendations/{name}/resources[?scope=]`
//!
//! The numbers are the scoring engine's: the read model's control scores at the scope — exactly
//! what `secureScoreControls` answers there, at a subscription, a resource group (the same formula
//! over the group's assessments) or a management group (the counts of every subscription below
//! it) — with effective statuses: exempt assessments count as not applicable.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Extension;
use axum::Router;
use serde::Serialize;
use std::collections::HashMap;
use uuid::Uuid;

use super::scope;
use super::scores::ScoreJson;
use super::{json, AppState};
use crate::arm::extract::Path;
use crate::arm::paging::{Cursor, Page};
use crate::arm::{
    parse_subscription_id, query_map, AnyScope, ApiError, ApiResult, ResourceId, ScopeKind,
};
use crate::catalog::{self, ControlDef};
use crate::identity::authz::{Target, SCORE_READ};
use crate::identity::Principal;
use crate::score::{round_dotnet, ControlCounts, ControlScore, ScoreDetails};
use crate::store::{self, resource_group_of};

/// How many unhealthy resource ids each recommendation carries inline; the rest are a link away.
pub const INLINE_RESOURCES: usize = 10;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/securescore/v1/subscriptions/{id}/improvements", get(improvements))
        .route(
            "/securescore/v1/subscriptions/{id}/improvements/{control}/recommendations/{name}/resources",
            get(resources),
        )
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Increase {
    points: f64,
    percentage: f64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResourceRef {
    id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Recommendation {
    name: String,
    display_name: String,
    severity: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    remediation_description: Option<String>,
    unhealthy_resource_count: i64,
    unhealthy_resources: Page<ResourceRef>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Improvement {
    control: String,
    display_name: String,
    potential_score_increase: Increase,
    current_score: f64,
    max_score: i64,
    healthy_resource_count: i64,
    unhealthy_resource_count: i64,
    not_applicable_resource_count: i64,
    recommendations: Vec<Recommendation>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    scope: String,
    /// The scope's secure score.
    score: ScoreJson,
    value: Vec<Improvement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

/// A control of the scope with its score, before ranking.
struct Ranked {
    def: &'static ControlDef,
    counts: ControlCounts,
    score: ControlScore,
    increase: Increase,
}

/// The potential increase of a control: points = max − current, and what they are of the
/// scope's maximum, in percent; both rounded as the scores are.
fn increase(score: &ScoreDetails, scope_max: i64) -> Increase {
    let points = round_dotnet(score.max as f64 - score.current, 2);
    let percentage =
        if scope_max > 0 { round_dotnet(points / scope_max as f64 * 100.0, 2) } else { 0.0 };
    Increase { points, percentage }
}

/// The controls that can still gain points, best first (ties by control name).
fn rank(
    controls: Vec<(&'static ControlDef, ControlCounts, ControlScore)>,
    scope_max: i64,
) -> Vec<Ranked> {
    let mut out: Vec<Ranked> = controls
        .into_iter()
        .map(|(def, counts, score)| Ranked {
            def,
            counts,
            increase: increase(&score.score, scope_max),
            score,
        })
        .filter(|r| r.increase.points > 0.0)
        .collect();
    out.sort_by(|a, b| {
        b.increase.points.total_cmp(&a.increase.points).then_with(|| a.def.name.cmp(&b.def.name))
    });
    out
}

/// Where an improvements request looks: the subscription or one of its resource groups, or a
/// management group above it.
enum At {
    Arm(ResourceId),
    Group {
        /// `/providers/Microsoft.Management/managementGroups/{name}`, with the group's own casing.
        id: String,
        name: String,
        /// The subscriptions below the group, nested groups included.
        subscriptions: Vec<Uuid>,
    },
}

impl At {
    fn id(&self) -> &str {
        match self {
            At::Arm(id) => id.as_str(),
            At::Group { id, .. } => id,
        }
    }

    /// What `?scope=` carries in links; `None` at the subscription (the default).
    fn scope_param(&self) -> Option<&str> {
        match self {
            At::Arm(id) if id.kind() == ScopeKind::Subscription => None,
            other => Some(other.id()),
        }
    }
}

/// The scope an improvements request is about: the subscription, or `?scope=` — one of its
/// resource groups, or a management group it lies below. A management group's numbers cover
/// subscriptions other than the one in the path, so the caller also needs read access at the
/// group itself (the route's guard checked the subscription).
async fn resolve(
    state: &AppState,
    principal: &Principal,
    sub: Uuid,
    q: &HashMap<String, String>,
) -> ApiResult<At> {
    let Some(text) = q.get("scope").filter(|s| !s.is_empty()) else {
        return Ok(At::Arm(ResourceId::subscription_scope(sub)));
    };
    match scope::parse(text, "scope", false)? {
        AnyScope::ManagementGroup(group) => {
            let subscriptions = scope::below_management_group(state, &group, "scope").await?;
            let tree = state.store.hierarchy().await?;
            let chain = tree.chain_of(&group);
            if !principal.can_at(SCORE_READ, &Target { subscription: None, groups: &chain }) {
                return Err(principal.forbidden(SCORE_READ, text));
            }
            if !subscriptions.contains(&sub) {
                return Err(ApiError::BadRequest {
                    target: Some("scope".into()),
                    message: format!("The management group '{group}' does not contain the subscription '{sub}': ask through one of the subscriptions below it."),
                });
            }
            let name = tree.info(&group).map_or(group, |g| g.name);
            let id = format!("/providers/Microsoft.Management/managementGroups/{name}");
            Ok(At::Group { id, name, subscriptions })
        }
        AnyScope::Arm(id) if id.subscription() != sub => Err(ApiError::BadRequest {
            target: Some("scope".into()),
            message: format!("The scope '{text}' is not within the subscription '{sub}'."),
        }),
        AnyScope::Arm(id) if id.kind() == ScopeKind::Resource => Err(ApiError::BadRequest {
            target: Some("scope".into()),
            message: "'scope' must be the subscription, one of its resource groups or a management group above it.".into(),
        }),
        AnyScope::Arm(id) => Ok(At::Arm(id)),
    }
}

/// The scope's controls and its maximum score, from the read model: the subscription's view, the
/// resource group's or the management group's (their counters are maintained with every write,
/// effective statuses included), so this costs no more below or above a subscription.
async fn controls_of(
    state: &AppState,
    sub: Uuid,
    at: &At,
) -> ApiResult<(Vec<(&'static ControlDef, ControlCounts, ControlScore)>, ScoreDetails)> {
    let scope = match at {
        At::Group { name, .. } => store::Scope::ManagementGroup(name.clone()),
        At::Arm(id) => match resource_group_of(id.key()) {
            Some(rg) if id.kind() == ScopeKind::ResourceGroup => {
                store::Scope::ResourceGroup(sub, rg.to_string())
            }
            _ => store::Scope::Subscription(sub),
        },
    };
    let view = state
        .store
        .score_view_at(&scope)
        .await?
        .ok_or_else(|| ApiError::SubscriptionNotFound(sub.to_string()))?;
    let controls = view.controls.iter().map(|c| (c.def, c.counts, c.score)).collect();
    Ok((controls, view.secure_score.score))
}

/// The number of effectively unhealthy assessments per assessment name at the scope.
async fn unhealthy_counts(state: &AppState, at: &At) -> ApiResult<HashMap<String, i64>> {
    Ok(match at {
        At::Arm(id) => state.store.unhealthy_counts(id).await?.into_iter().collect(),
        At::Group { subscriptions, .. } => {
            state.store.unhealthy_counts_across(subscriptions).await?.into_iter().collect()
        }
    })
}

/// The link to the unhealthy resources of one recommendation, after `cursor` when given.
fn resources_link(
    state: &AppState,
    sub: Uuid,
    control: &str,
    name: &str,
    at: &At,
    cursor: Option<&Cursor>,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(scope) = at.scope_param() {
        query.append_pair("scope", scope);
    }
    if let Some(c) = cursor {
        query.append_pair("$skipToken", &c.encode());
    }
    let query = query.finish();
    format!(
        "{}{}/subscriptions/{sub}/improvements/{control}/recommendations/{name}/resources{}{query}",
        state.identity.public_url,
        super::scope::PREFIX,
        if query.is_empty() { "" } else { "?" },
    )
}

/// One page of a recommendation's unhealthy resources, with the link to the next.
async fn resource_page(
    state: &AppState,
    name: &str,
    at: &At,
    after: Option<&str>,
    size: usize,
    link: impl FnOnce(&Cursor) -> String,
) -> ApiResult<Page<ResourceRef>> {
    let mut rows = match at {
        At::Arm(id) => state.store.unhealthy_resources(id, name, after, size + 1).await?,
        At::Group { subscriptions, .. } => {
            state.store.unhealthy_resources_across(subscriptions, name, after, size + 1).await?
        }
    };
    let more = rows.len() > size;
    rows.truncate(size);
    let next_link = if more {
        rows.last().map(|(key, _)| link(&Cursor::After(key.clone(), String::new())))
    } else {
        None
    };
    Ok(Page { value: rows.into_iter().map(|(_, id)| ResourceRef { id }).collect(), next_link })
}

#[utoipa::path(
    get,
    path = "/securescore/v1/subscriptions/{id}/improvements",
    operation_id = "Improvements_List",
    tag = "Improvements",
    summary = "What to fix first: the controls that can still gain points, best first",
    description = "One entry per control of the scope whose current score is below its maximum, sorted by `potentialScoreIncrease.points` descending (ties by control name). `points` = max − current; `percentage` = points / the scope's maximum score × 100; both rounded to 2 decimals. Each entry lists the recommendations with unhealthy resources (exempt assessments count as not applicable), with the first unhealthy resource ids and a link to the rest.",
    params(
        ("id" = Uuid, Path, description = "The subscription id"),
        ("scope" = Option<String>, Query, description = "The subscription (default) or `/subscriptions/{id}/resourceGroups/{name}`, or `/providers/Microsoft.Management/managementGroups/{groupId}` of a group the subscription lies below (its numbers cover every subscription below the group; needs read access at the group; an unknown group is 404)"),
        ("$skipToken" = Option<String>, Query, description = "From a nextLink"),
    ),
    responses(
        (status = 200, description = "The improvements", body = crate::wire::schema::Improvements),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn improvements(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = query_map(q);
    let sub = parse_subscription_id(&id)?;
    let at = resolve(&state, &principal, sub, &q).await?;
    let cursor = scope::cursor(&q)?;
    let (controls, scope_score) = controls_of(&state, sub, &at).await?;
    let ranked = rank(controls, scope_score.max);
    let start = match cursor {
        None => 0,
        Some(Cursor::Offset(n)) => n,
        Some(Cursor::After(..)) => return Err(scope::foreign_token()),
    };
    let end = start.saturating_add(state.config.page_size).min(ranked.len());
    let next_link =
        (end < ranked.len()).then(|| scope::next_link(&state, &uri, &Cursor::Offset(end)));
    let page = ranked.get(start..end).unwrap_or_default();
    let unhealthy = unhealthy_counts(&state, &at).await?;
    let cat = catalog::builtin();
    let mut value = Vec::with_capacity(page.len());
    for r in page {
        let mut recommendations = Vec::new();
        for name in &r.def.assessment_definitions {
            let key = name.to_ascii_lowercase();
            let Some(&count) = unhealthy.get(&key) else { continue };
            if !cat.scored_controls(&key).contains(&r.def.name) {
                continue;
            }
            let meta = cat.assessment(&key);
            let link = |c: &Cursor| resources_link(&state, sub, &r.def.name, &key, &at, Some(c));
            let resources = resource_page(&state, &key, &at, None, INLINE_RESOURCES, link).await?;
            recommendations.push(Recommendation {
                name: key.clone(),
                display_name: meta.map_or_else(|| name.clone(), |m| m.display_name()),
                severity: meta.map_or_else(|| "Unknown".into(), |m| m.severity.clone()),
                remediation_description: meta.and_then(|m| m.remediation_description.clone()),
                unhealthy_resource_count: count,
                unhealthy_resources: resources,
            });
        }
        recommendations.sort_by(|a, b| {
            b.unhealthy_resource_count
                .cmp(&a.unhealthy_resource_count)
                .then_with(|| a.name.cmp(&b.name))
        });
        value.push(Improvement {
            control: r.def.name.clone(),
            display_name: r.def.display_name.clone(),
            potential_score_increase: Increase {
                points: r.increase.points,
                percentage: r.increase.percentage,
            },
            current_score: r.score.score.current,
            max_score: r.score.score.max,
            healthy_resource_count: r.counts.healthy,
            unhealthy_resource_count: r.counts.unhealthy,
            not_applicable_resource_count: r.counts.not_applicable,
            recommendations,
        });
    }
    let answer = Answer { scope: at.id().to_owned(), score: scope_score.into(), value, next_link };
    Ok(json(StatusCode::OK, &answer))
}

#[utoipa::path(
    get,
    path = "/securescore/v1/subscriptions/{id}/improvements/{control}/recommendations/{name}/resources",
    operation_id = "Improvements_ListUnhealthyResources",
    tag = "Improvements",
    summary = "The unhealthy resources of one recommendation of a control (paged)",
    params(
        ("id" = Uuid, Path, description = "The subscription id"),
        ("control" = String, Path, description = "The control name"),
        ("name" = String, Path, description = "The recommendation (assessment metadata) name"),
        ("scope" = Option<String>, Query, description = "As for the improvements list"),
        ("$top" = Option<u32>, Query, description = "Page size, 1 to 1000; default: the server's"),
        ("$skipToken" = Option<String>, Query, description = "From a nextLink"),
    ),
    responses(
        (status = 200, description = "Resource ids, by id", body = crate::wire::schema::ResourceRefList),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn resources(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path((id, control, name)): Path<(String, String, String)>,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = query_map(q);
    let sub = parse_subscription_id(&id)?;
    let at = resolve(&state, &principal, sub, &q).await?;
    state.store.view(sub).await?.ok_or_else(|| ApiError::SubscriptionNotFound(sub.to_string()))?;
    let cat = catalog::builtin();
    let def = cat.control(&control).ok_or_else(|| ApiError::ResourceNotFound {
        resource_type: "secureScoreControls".into(),
        name: control.clone(),
        subscription: sub.to_string(),
    })?;
    let key = name.to_ascii_lowercase();
    if !cat.scored_controls(&key).contains(&def.name) {
        return Err(ApiError::ResourceNotFound {
            resource_type: format!("secureScoreControls/{}/recommendations", def.name),
            name,
            subscription: sub.to_string(),
        });
    }
    let after = scope::after_key(scope::cursor(&q)?)?;
    let size = scope::top(&q, state.config.page_size)?;
    let link = |c: &Cursor| scope::next_link(&state, &uri, c);
    let page = resource_page(&state, &key, &at, after.as_deref(), size, link).await?;
    Ok(json(StatusCode::OK, &page))
}

#[cfg(test)]
#[allow(clippy::float_cmp)]
mod tests {
    use super::*;

    #[test]
    fn the_increase_is_rounded_like_the_scores() {
        let s = ScoreDetails { max: 6, current: 3.33, percentage: 0.555 };
        let i = increase(&s, 47);
        assert_eq!(i.points, 2.67);
        assert_eq!(i.percentage, round_dotnet(2.67 / 47.0 * 100.0, 2));
        assert_eq!(increase(&s, 0).percentage, 0.0, "no maximum, no percentage");
    }

    #[test]
    fn controls_rank_by_points_then_name_and_full_ones_drop_out() {
        let cat = catalog::builtin();
        let defs: Vec<&'static ControlDef> = cat.controls().iter().take(3).collect();
        let c = |h, u| ControlCounts { healthy: h, unhealthy: u, not_applicable: 0 };
        let items = vec![
            (defs[0], c(1, 1), crate::score::control_score(4, &c(1, 1))),
            (defs[1], c(1, 1), crate::score::control_score(4, &c(1, 1))),
            (defs[2], c(2, 0), crate::score::control_score(4, &c(2, 0))),
        ];
        let ranked = rank(items, 12);
        assert_eq!(ranked.len(), 2, "a control at its maximum gains nothing");
        assert!(ranked[0].def.name < ranked[1].def.name, "ties by name");
        assert_eq!(ranked[0].increase.points, 2.0);
        assert_eq!(ranked[0].increase.percentage, 16.67);
    }
}
