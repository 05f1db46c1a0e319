//! `Microsoft.Security/automations` (api-versions 2019-01-01-preview and 2023-12-01-preview):
//! create or replace, update (PATCH, 2023-12-01-preview), get, delete, list per resource group
//! and per subscription, validate. What a valid body is: `crate::automation::model`.
//!
//! Also the rendering of export events ([`render_change`], [`Snapshot`]): the resource's JSON as
//! its GET answers it, through the same functions the GET handlers use.

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use super::assessments::{self, Expand};
use super::scores::{self, view};
use super::{json, ok, Ctx};
use crate::arm::api_version::{V2019_01_01_PREVIEW, V2021_06_01};
use crate::arm::paging::{Cursor, Page};
use crate::arm::{ApiError, ApiResult, ResourceId};
use crate::automation::model::{self, Spec};
use crate::catalog;
use crate::score::{self as scoring, ControlCounts, ScoreDetails, SecureScore};
use crate::store::automation::assessment_from_payload;
use crate::store::{AutomationRecord, ChangeEvent, ControlView, EventKind, Store};

fn not_found(sub: Uuid, name: &str) -> ApiError {
    ApiError::ResourceNotFound {
        resource_type: "automations".into(),
        name: name.to_string(),
        subscription: sub.to_string(),
    }
}

fn internal(e: anyhow::Error) -> ApiError {
    ApiError::Internal(e)
}

async fn stored(
    ctx: &Ctx<'_>,
    sub: Uuid,
    group: &str,
    name: &str,
) -> ApiResult<Option<(AutomationRecord, Spec)>> {
    let Some(record) = ctx.state.store.automation(sub, group, name).await? else {
        return Ok(None);
    };
    let spec = Spec::from_record(&record).map_err(internal)?;
    Ok(Some((record, spec)))
}

pub async fn get(ctx: &Ctx<'_>, sub: Uuid, group: &str, name: &str) -> ApiResult<Response> {
    view(ctx, sub).await?;
    let (record, spec) =
        stored(ctx, sub, group, name).await?.ok_or_else(|| not_found(sub, name))?;
    ok(&model::render(&record, &spec))
}

/// PUT (create or replace) and PATCH (merge over the stored automation).
pub async fn put(ctx: &Ctx<'_>, sub: Uuid, group: &str, name: &str) -> ApiResult<Response> {
    view(ctx, sub).await?;
    let body = ctx.json_body()?;
    let existing = stored(ctx, sub, group, name).await?;
    let spec = if ctx.method == Method::PATCH {
        if ctx.api_version == V2019_01_01_PREVIEW {
            return Err(ApiError::MethodNotAllowed {
                method: Method::PATCH,
                allow: Some("GET, HEAD, PUT, DELETE"),
            });
        }
        let (_, stored) = existing.as_ref().ok_or_else(|| not_found(sub, name))?;
        model::parse_patch(&body, stored, sub)?
    } else {
        model::parse_put(&body, sub)?
    };
    // A replace keeps the casing of the first write, like every resource here.
    let (group_name, automation_name) = match &existing {
        Some((r, _)) => (r.resource_group.clone(), r.name.clone()),
        None => (group.to_string(), name.to_string()),
    };
    let record = AutomationRecord {
        subscription: sub,
        resource_group: group_name,
        name: automation_name,
        etag: Uuid::new_v4().to_string(),
        spec: spec.to_value(),
        last_snapshot_at: None,
    };
    let created = ctx
        .state
        .store
        .put_automation(&record)
        .await?
        .ok_or_else(|| ApiError::SubscriptionNotFound(sub.to_string()))?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json(status, &model::render(&record, &spec)))
}

pub async fn delete(ctx: &Ctx<'_>, sub: Uuid, group: &str, name: &str) -> ApiResult<Response> {
    view(ctx, sub).await?;
    // Both versions document 204 for a delete; it answers the same whether the automation existed.
    ctx.state.store.delete_automation(sub, group, name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Check a body as a PUT would, without storing it: `isValid` and the first problem found.
pub async fn validate(ctx: &Ctx<'_>, sub: Uuid) -> ApiResult<Response> {
    view(ctx, sub).await?;
    let body = ctx.json_body()?;
    match model::parse_put(&body, sub) {
        Ok(_) => ok(&json!({"isValid": true, "message": "Validation Successful"})),
        Err(ApiError::InvalidRequestContent { target, message }) => {
            let message = if target.is_empty() { message } else { format!("{target}: {message}") };
            ok(&json!({"isValid": false, "message": message}))
        }
        Err(e) => Err(e),
    }
}

pub async fn list(ctx: &Ctx<'_>, sub: Uuid, group: Option<&str>) -> ApiResult<Response> {
    view(ctx, sub).await?;
    let after = match ctx.cursor()? {
        None => None,
        Some(Cursor::After(g, n)) => Some((g, n)),
        Some(Cursor::Offset(_)) => {
            return Err(ApiError::BadRequest {
                target: Some("$skipToken".into()),
                message: "The $skipToken does not belong to this list.".into(),
            })
        }
    };
    let size = ctx.page_size();
    let mut rows = ctx.state.store.automations(sub, group, after.as_ref(), size + 1).await?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next_link = if more {
        rows.last().map(|r| {
            ctx.next_link(&Cursor::After(
                r.resource_group.to_ascii_lowercase(),
                r.name.to_ascii_lowercase(),
            ))
        })
    } else {
        None
    };
    let value = rows
        .iter()
        .map(|r| Ok(model::render(r, &Spec::from_record(r).map_err(internal)?)))
        .collect::<ApiResult<Vec<Value>>>()?;
    ok(&Page { value, next_link })
}

/// The api-version export events render assessments at (with their metadata, as Defender's
/// continuous export sends them).
const EVENT_ASSESSMENT_VERSION: &str = V2021_06_01;
const EVENT_EXPAND: Expand = Expand { links: false, metadata: true };

/// An outbox row as the resource's GET shows it; `None` when its subscription is gone.
pub async fn render_change(store: &Store, ev: &ChangeEvent) -> anyhow::Result<Option<Value>> {
    let Some(view) = store.view(ev.subscription).await? else { return Ok(None) };
    let p = &ev.payload;
    Ok(match ev.kind {
        EventKind::Assessment => {
            let a = assessment_from_payload(p)?;
            Some(serde_json::to_value(assessments::render(
                &a,
                EVENT_ASSESSMENT_VERSION,
                EVENT_EXPAND,
                &view,
            ))?)
        }
        EventKind::SecureScore => {
            let score = SecureScore {
                score: ScoreDetails {
                    current: p["current"].as_f64().unwrap_or_default(),
                    max: p["max"].as_i64().unwrap_or_default(),
                    percentage: p["percentage"].as_f64().unwrap_or_default(),
                },
                weight: p["weight"].as_i64().unwrap_or_default(),
            };
            Some(scores::score_json(ev.subscription, &score))
        }
        EventKind::SecureScoreControl => {
            let name = p["control"].as_str().unwrap_or_default();
            catalog::builtin().control(name).map(|def| {
                let counts = ControlCounts {
                    healthy: p["healthy"].as_i64().unwrap_or_default(),
                    unhealthy: p["unhealthy"].as_i64().unwrap_or_default(),
                    not_applicable: p["notApplicable"].as_i64().unwrap_or_default(),
                };
                let c = ControlView {
                    def,
                    counts,
                    score: scoring::control_score(def.max_score, &counts),
                };
                scores::control_json(ev.subscription, &c)
            })
        }
    })
}

/// The resources of one `…Snapshot` source of an automation, page by page (bounded memory).
pub struct Snapshot {
    subscription: Uuid,
    source: String,
    /// Scopes still to walk (assessments), none inside another.
    scopes: Vec<ResourceId>,
    after: Option<(String, String)>,
    done: bool,
}

impl Snapshot {
    pub fn new(subscription: Uuid, spec: &Spec, source: &str) -> Snapshot {
        let mut scopes: Vec<ResourceId> = spec
            .properties
            .scopes
            .iter()
            .filter_map(|s| ResourceId::parse(&s.scope_path).ok())
            .collect();
        let inside = |a: &ResourceId, b: &ResourceId| {
            a.key() != b.key() && a.key().starts_with(&format!("{}/", b.key()))
        };
        let all = scopes.clone();
        scopes.retain(|s| !all.iter().any(|o| inside(s, o)));
        scopes.sort_by(|a, b| a.key().cmp(b.key()));
        scopes.dedup_by(|a, b| a.key() == b.key());
        Snapshot { subscription, source: source.to_string(), scopes, after: None, done: false }
    }

    /// The next page of (lowercase resource id, resource JSON); `None` at the end.
    pub async fn next_page(
        &mut self,
        store: &Store,
        limit: usize,
    ) -> anyhow::Result<Option<Vec<(String, Value)>>> {
        if self.done {
            return Ok(None);
        }
        let Some(view) = store.view(self.subscription).await? else { return Ok(None) };
        let sub = self.subscription;
        match self.source.as_str() {
            "SecureScoresSnapshot" => {
                self.done = true;
                let body = scores::score_json(sub, &view.secure_score);
                let key = body["id"].as_str().unwrap_or_default().to_ascii_lowercase();
                Ok(Some(vec![(key, body)]))
            }
            "SecureScoreControlsSnapshot" => {
                self.done = true;
                Ok(Some(
                    view.controls
                        .iter()
                        .map(|c| {
                            let body = scores::control_json(sub, c);
                            (body["id"].as_str().unwrap_or_default().to_ascii_lowercase(), body)
                        })
                        .collect(),
                ))
            }
            "AssessmentsSnapshot" => loop {
                let Some(scope) = self.scopes.first().cloned() else {
                    self.done = true;
                    return Ok(None);
                };
                let rows = store.assessments(&scope, self.after.as_ref(), limit).await?;
                if rows.len() < limit {
                    self.scopes.remove(0);
                    self.after = None;
                } else {
                    self.after = rows
                        .last()
                        .map(|a| (a.resource_id.to_ascii_lowercase(), a.name.to_ascii_lowercase()));
                }
                if rows.is_empty() {
                    continue;
                }
                let mut page = Vec::with_capacity(rows.len());
                for a in &rows {
                    let body = serde_json::to_value(assessments::render(
                        a,
                        EVENT_ASSESSMENT_VERSION,
                        EVENT_EXPAND,
                        &view,
                    ))?;
                    page.push((body["id"].as_str().unwrap_or_default().to_ascii_lowercase(), body));
                }
                return Ok(Some(page));
            },
            _ => {
                self.done = true;
                Ok(None)
            }
        }
    }
}
