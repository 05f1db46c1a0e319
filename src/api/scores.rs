//! The six secure score operations of api-version 2020-01-01: secure scores, their controls and
//! the control definitions — all rendered from the subscription's [`ScoreView`].

use axum::response::Response;
use bytes::Bytes;
use serde::Serialize;
use std::sync::{Arc, OnceLock};
use uuid::Uuid;

use super::{memoized, ok, Ctx};
use crate::arm::paging::page_of;
use crate::arm::{ApiError, ApiResult};
use crate::catalog::{self, ControlDef, ASC_SCORE, ASC_SCORE_DISPLAY_NAME};
use crate::score::{ScoreDetails, SecureScore};
use crate::store::{ControlView, Scope, ScoreView};

#[derive(Serialize)]
struct Resource<P: Serialize> {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    properties: P,
}

#[derive(Serialize)]
pub(super) struct ScoreJson {
    max: i64,
    current: f64,
    percentage: f64,
}

impl From<ScoreDetails> for ScoreJson {
    fn from(s: ScoreDetails) -> Self {
        ScoreJson { max: s.max, current: s.current, percentage: s.percentage }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecureScoreProperties {
    display_name: &'static str,
    score: ScoreJson,
    weight: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ControlProperties<'a> {
    display_name: &'a str,
    healthy_resource_count: i64,
    unhealthy_resource_count: i64,
    not_applicable_resource_count: i64,
    score: ScoreJson,
    weight: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    definition: Option<Resource<DefinitionProperties<'a>>>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct DefinitionProperties<'a> {
    source: Source<'a>,
    display_name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    max_score: i64,
    assessment_definitions: Vec<Link>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Source<'a> {
    source_type: &'a str,
}

#[derive(Serialize)]
struct Link {
    id: String,
}

/// The subscription's view, or ARM's 404 for an unknown subscription.
pub(super) async fn view(ctx: &Ctx<'_>, sub: Uuid) -> ApiResult<Arc<ScoreView>> {
    ctx.state.store.view(sub).await?.ok_or_else(|| ApiError::SubscriptionNotFound(sub.to_string()))
}

/// The one secure score this server computes; names match case-insensitively.
fn check_score_name(sub: Uuid, name: &str) -> ApiResult<()> {
    if name.eq_ignore_ascii_case(ASC_SCORE) {
        Ok(())
    } else {
        Err(ApiError::ResourceNotFound {
            resource_type: "secureScores".into(),
            name: name.to_string(),
            subscription: sub.to_string(),
        })
    }
}

fn secure_score(view: &ScoreView) -> Resource<SecureScoreProperties> {
    secure_score_at(&format!("/subscriptions/{}", view.subscription.id), &view.secure_score)
}

/// A secure score at the scope whose id is `scope`.
fn secure_score_at(scope: &str, score: &SecureScore) -> Resource<SecureScoreProperties> {
    Resource {
        id: format!("{scope}/providers/Microsoft.Security/secureScores/{ASC_SCORE}"),
        name: ASC_SCORE.to_string(),
        kind: "Microsoft.Security/secureScores",
        properties: SecureScoreProperties {
            display_name: ASC_SCORE_DISPLAY_NAME,
            score: score.score.into(),
            weight: score.weight,
        },
    }
}

/// A secure score as its GET answers it (continuous export renders its events with this).
pub(super) fn score_json(sub: Uuid, score: &SecureScore) -> serde_json::Value {
    serde_json::to_value(secure_score_at(&format!("/subscriptions/{sub}"), score))
        .unwrap_or_default()
}

/// A control as the controls list answers it, without `$expand` (continuous export).
pub(super) fn control_json(sub: Uuid, c: &ControlView) -> serde_json::Value {
    serde_json::to_value(control(sub, c, false)).unwrap_or_default()
}

fn definition<'a>(
    def: &'a ControlDef,
    with_description: bool,
) -> Resource<DefinitionProperties<'a>> {
    Resource {
        id: format!("/providers/Microsoft.Security/secureScoreControlDefinitions/{}", def.name),
        name: def.name.clone(),
        kind: "Microsoft.Security/secureScoreControlDefinitions",
        properties: DefinitionProperties {
            source: Source { source_type: &def.source_type },
            display_name: &def.display_name,
            description: with_description.then_some(def.description.as_str()),
            max_score: def.max_score,
            assessment_definitions: def
                .assessment_definitions
                .iter()
                .map(|a| Link {
                    id: format!("/providers/Microsoft.Security/assessmentMetadata/{a}"),
                })
                .collect(),
        },
    }
}
fn control<'a>(sub: Uuid, c: &'a ControlView, expand: bool) -> Resource<ControlProperties<'a>> {
    control_at(&format!("/subscriptions/{sub}"), c, expand)
}

/// A control of a view whose scope's id is `scope`.
fn control_at<'a>(
    scope: &str,
    c: &'a ControlView,
    expand: bool,
) -> Resource<ControlProperties<'a>> {
    Resource {
        id: format!(
            "{scope}/providers/Microsoft.Security/secureScores/{ASC_SCORE}/secureScoreControls/{}",
            c.def.name
        ),
        name: c.def.name.clone(),
        kind: "Microsoft.Security/secureScores/secureScoreControls",
        properties: ControlProperties {
            display_name: &c.def.display_name,
            healthy_resource_count: c.counts.healthy,
            unhealthy_resource_count: c.counts.unhealthy,
            not_applicable_resource_count: c.counts.not_applicable,
            score: c.score.score.into(),
            weight: c.score.weight,
            // The official example embeds the definition without its description.
            definition: expand.then(|| definition(c.def, false)),
        },
    }
}

/// The secure score of a view as its GET renders it, as JSON (Resource Graph's rows).
pub(super) fn secure_score_value(view: &ScoreView) -> serde_json::Value {
    serde_json::to_value(secure_score(view)).unwrap_or_default()
}

/// A control as `$expand=definition` renders it, as JSON (Resource Graph's rows carry the
/// definition, which Microsoft's published queries read).
pub(super) fn control_value(view: &ScoreView, c: &ControlView) -> serde_json::Value {
    serde_json::to_value(control(view.subscription.id, c, true)).unwrap_or_default()
}

/// Bodies memoized in a [`ScoreView`]: a view's bodies never change, a write replaces the view.
#[derive(Clone, Copy)]
enum Memo {
    Score = 0,
    Scores = 1,
    Controls = 2,
    ControlsExpanded = 3,
}

/// Definitions are the same for every subscription and request (when they fit on one page).
static DEFINITIONS: OnceLock<Bytes> = OnceLock::new();

pub async fn get_score(ctx: &Ctx<'_>, sub: Uuid, name: &str) -> ApiResult<Response> {
    let view = view(ctx, sub).await?;
    check_score_name(sub, name)?;
    memoized(&view.memo[Memo::Score as usize], || Ok(secure_score(&view)))
}

pub async fn list_scores(ctx: &Ctx<'_>, sub: Uuid) -> ApiResult<Response> {
    let view = view(ctx, sub).await?;
    let cursor = ctx.cursor()?;
    // One initiative today (ascScore); the list pages like every other list.
    let views = std::slice::from_ref(&*view);
    let page =
        || page_of(views, cursor.as_ref(), ctx.page_size(), |c| ctx.next_link(c), secure_score);
    if cursor.is_none() {
        return memoized(&view.memo[Memo::Scores as usize], page);
    }
    ok(&page()?)
}

/// SecureScoreControls_List and _ListBySecureScore (`score` = the secure score name).
pub async fn list_controls(ctx: &Ctx<'_>, sub: Uuid, score: Option<&str>) -> ApiResult<Response> {
    let view = view(ctx, sub).await?;
    if let Some(name) = score {
        check_score_name(sub, name)?;
    }
    let expand = ctx.expand(&["definition"])?.contains(&"definition");
    let cursor = ctx.cursor()?;
    let id = view.subscription.id;
    let page = || {
        page_of(
            &view.controls,
            cursor.as_ref(),
            ctx.page_size(),
            |c| ctx.next_link(c),
            |c| control(id, c, expand),
        )
    };
    if cursor.is_none() && view.controls.len() <= ctx.page_size() {
        let memo = if expand { Memo::ControlsExpanded } else { Memo::Controls };
        return memoized(&view.memo[memo as usize], page);
    }
    ok(&page()?)
}

/// SecureScoreControlDefinitions_List (tenant) and _ListBySubscription.
pub async fn list_definitions(ctx: &Ctx<'_>, sub: Option<Uuid>) -> ApiResult<Response> {
    if let Some(sub) = sub {
        view(ctx, sub).await?;
    }
    let cursor = ctx.cursor()?;
    let defs = catalog::builtin().controls();
    let page = || {
        page_of(
            defs,
            cursor.as_ref(),
            ctx.page_size(),
            |c| ctx.next_link(c),
            |d| definition(d, true),
        )
    };
    if cursor.is_none() && defs.len() <= ctx.page_size() {
        return memoized(&DEFINITIONS, page);
    }
    ok(&page()?)
}

// Scores at a resource group or management group: the same shapes, the scope's id in front.
// These views are not memoized: their ids echo the scope as requested.

/// The read model of a resource group or management group and its id, or ARM's 404.
async fn scoped_view(ctx: &Ctx<'_>, scope: &Scope) -> ApiResult<(Arc<ScoreView>, String)> {
    let store = &ctx.state.store;
    let view = store.score_view_at(scope).await?;
    match scope {
        Scope::Subscription(s) | Scope::ResourceGroup(s, _) => {
            let view = view.ok_or_else(|| ApiError::SubscriptionNotFound(s.to_string()))?;
            let id = match scope {
                Scope::ResourceGroup(_, rg) => format!("/subscriptions/{s}/resourceGroups/{rg}"),
                _ => format!("/subscriptions/{s}"),
            };
            Ok((view, id))
        }
        Scope::ManagementGroup(g) => {
            let view = view.ok_or_else(|| ApiError::ManagementGroupNotFound(g.clone()))?;
            let name = store.hierarchy().await?.info(g).map_or_else(|| g.clone(), |i| i.name);
            Ok((view, format!("/providers/Microsoft.Management/managementGroups/{name}")))
        }
    }
}

/// The one secure score name, at a scope that may have no subscription.
fn check_scoped_name(scope: &Scope, name: &str) -> ApiResult<()> {
    match scope {
        Scope::Subscription(s) | Scope::ResourceGroup(s, _) => check_score_name(*s, name),
        Scope::ManagementGroup(_) if name.eq_ignore_ascii_case(ASC_SCORE) => Ok(()),
        Scope::ManagementGroup(_) => Err(ApiError::TenantResourceNotFound {
            resource_type: "secureScores".into(),
            name: name.to_string(),
        }),
    }
}

pub async fn get_score_at(ctx: &Ctx<'_>, scope: &Scope, name: &str) -> ApiResult<Response> {
    let (view, id) = scoped_view(ctx, scope).await?;
    check_scoped_name(scope, name)?;
    ok(&secure_score_at(&id, &view.secure_score))
}

pub async fn list_scores_at(ctx: &Ctx<'_>, scope: &Scope) -> ApiResult<Response> {
    let (view, id) = scoped_view(ctx, scope).await?;
    let cursor = ctx.cursor()?;
    let views = std::slice::from_ref(&*view);
    ok(&page_of(
        views,
        cursor.as_ref(),
        ctx.page_size(),
        |c| ctx.next_link(c),
        |v| secure_score_at(&id, &v.secure_score),
    )?)
}

pub async fn list_controls_at(
    ctx: &Ctx<'_>,
    scope: &Scope,
    score: Option<&str>,
) -> ApiResult<Response> {
    let (view, id) = scoped_view(ctx, scope).await?;
    if let Some(name) = score {
        check_scoped_name(scope, name)?;
    }
    let expand = ctx.expand(&["definition"])?.contains(&"definition");
    let cursor = ctx.cursor()?;
    ok(&page_of(
        &view.controls,
        cursor.as_ref(),
        ctx.page_size(),
        |c| ctx.next_link(c),
        |c| control_at(&id, c, expand),
    )?)
}
