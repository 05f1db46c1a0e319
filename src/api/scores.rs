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
use crate::store::{ControlView, ScoreView};

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
    score_resource(view.subscription.id, &view.secure_score)
}

fn score_resource(sub: Uuid, score: &SecureScore) -> Resource<SecureScoreProperties> {
    Resource {
        id: format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScores/{ASC_SCORE}"),
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
    serde_json::to_value(score_resource(sub, score)).unwrap_or_default()
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
    Resource {
        id: format!(
            "/subscriptions/{sub}/providers/Microsoft.Security/secureScores/{ASC_SCORE}/secureScoreControls/{}",
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
