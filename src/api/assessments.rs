//! `Microsoft.Security/assessments` (api-versions 2019-01-01-preview, 2020-01-01, 2021-06-01 and
//! 2025-05-04): create or replace, get, list at any scope, delete. Every accepted write moves the
//! scores in the same transaction. One stored model; `render` shows what the requested version's
//! response model has (`arm::api_version::AssessmentModel` says which parts).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value};
use std::borrow::Cow;

use super::metadata::{self, MetadataJson};
use super::scores::view;
use super::{json, ok, page_memo, Ctx};
use crate::arm::api_version::AssessmentModel;
use crate::arm::paging::{Cursor, Page};
use crate::arm::{format_time, ApiError, ApiResult, ResourceId};
use crate::assessment::parse_input_at;
use crate::store::{
    effective_status, exempting, Assessment, Outcome, ScoreView, Write, EXEMPT_CAUSE,
};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct StatusJson<'a> {
    code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<Cow<'a, str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_change_date: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    first_evaluation_date: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Links {
    azure_portal_uri: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PartnersJson<'a> {
    partner_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AssessmentProperties<'a> {
    resource_details: Value,
    display_name: String,
    status: StatusJson<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    additional_data: Option<&'a Map<String, Value>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    links: Option<Links>,
    #[serde(skip_serializing_if = "Option::is_none")]
    metadata: Option<MetadataJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    partners_data: Option<PartnersJson<'a>>,
}

#[derive(Serialize)]
pub struct AssessmentJson<'a> {
    id: String,
    name: String,
    #[serde(rename = "type")]
    kind: &'static str,
    properties: AssessmentProperties<'a>,
}

#[derive(Default, Clone, Copy)]
pub struct Expand {
    pub links: bool,
    pub metadata: bool,
}

pub fn render<'a>(
    a: &'a Assessment,
    api_version: &str,
    expand: Expand,
    view: &ScoreView,
) -> AssessmentJson<'a> {
    let mut details = a.resource_details.clone();
    if let Value::Object(map) = &mut details {
        if map.get("source").and_then(Value::as_str) == Some("Azure") {
            map.insert("id".into(), Value::String(a.resource_id.clone()));
        }
    }
    let model = AssessmentModel::of(api_version);
    let dates = model.status_dates();
    let meta = metadata::lookup(&a.name, Some(view));
    // ARM answers assessment keys in lower case, whatever casing the writer used.
    let name = a.name.to_ascii_lowercase();
    // An exempt assessment reads as Defender shows it (`store::exemptions`); its stored status
    // is kept for when the exemption ends.
    let (code, cause, description) =
        match exempting(&view.exemptions, &a.resource_id.to_ascii_lowercase(), &name) {
            Some(rule) => (
                effective_status(Some(a.status), true).map_or(a.status, |s| s).as_str(),
                Some(EXEMPT_CAUSE),
                Some(Cow::Owned(rule.status_description())),
            ),
            None => {
                (a.status.as_str(), a.cause.as_deref(), a.description.as_deref().map(Cow::Borrowed))
            }
        };
    AssessmentJson {
        id: format!("{}/providers/Microsoft.Security/assessments/{name}", a.resource_id),
        name,
        kind: "Microsoft.Security/assessments",
        properties: AssessmentProperties {
            resource_details: details,
            display_name: meta.as_ref().map_or_else(|| a.name.clone(), |m| m.display_name()),
            status: StatusJson {
                code,
                cause,
                description,
                status_change_date: dates.then(|| format_time(a.status_change_date)),
                first_evaluation_date: dates.then(|| format_time(a.first_evaluation_date)),
            },
            additional_data: a.additional_data.as_ref(),
            links: expand.links.then(|| Links {
                azure_portal_uri: format!(
                    "https://portal.azure.com/#blade/Microsoft_Azure_Security/RecommendationsBlade/assessmentKey/{}",
                    a.name
                ),
            }),
            metadata: if expand.metadata && model.embedded_metadata() {
                meta.map(|m| m.properties_at(model))
            } else {
                None
            },
            partners_data: a
                .partner_name
                .as_deref()
                .filter(|_| model.partner_data())
                .map(|partner_name| PartnersJson { partner_name }),
        },
    }
}

fn expand(ctx: &Ctx<'_>) -> ApiResult<Expand> {
    let values = ctx.expand(&["links", "metadata"])?;
    Ok(Expand { links: values.contains(&"links"), metadata: values.contains(&"metadata") })
}

fn not_found(resource: &ResourceId, name: &str) -> ApiError {
    ApiError::ResourceNotFound {
        resource_type: "assessments".into(),
        name: name.to_string(),
        subscription: resource.subscription().to_string(),
    }
}

pub async fn get(ctx: &Ctx<'_>, resource: &ResourceId, name: &str) -> ApiResult<Response> {
    let view = view(ctx, resource.subscription()).await?;
    let expand = expand(ctx)?;
    let a = ctx
        .state
        .store
        .assessment(resource, name)
        .await?
        .ok_or_else(|| not_found(resource, name))?;
    ok(&render(&a, ctx.api_version, expand, &view))
}

pub async fn put(ctx: &Ctx<'_>, resource: &ResourceId, name: &str) -> ApiResult<Response> {
    let view = view(ctx, resource.subscription()).await?;
    let body = ctx.json_body()?;
    let input = parse_input_at(resource, name, &body, &view, AssessmentModel::of(ctx.api_version))?;
    // Group commit: acknowledged once the transaction holding it (and concurrent writes) commits.
    let outcome = ctx.state.store.apply_one(Write::Put(input)).await?;
    let (status, stored) = match outcome {
        Outcome::Created(a) => (StatusCode::CREATED, a),
        Outcome::Replaced(a) => (StatusCode::OK, a),
        Outcome::NoSubscription => {
            return Err(ApiError::SubscriptionNotFound(resource.subscription().to_string()))
        }
        other => {
            return Err(ApiError::Internal(anyhow::anyhow!(
                "unexpected outcome of a put: {other:?}"
            )))
        }
    };
    Ok(json(status, &render(&stored, ctx.api_version, Expand::default(), &view)))
}

pub async fn delete(ctx: &Ctx<'_>, resource: &ResourceId, name: &str) -> ApiResult<Response> {
    view(ctx, resource.subscription()).await?;
    let write = Write::Delete { resource: resource.clone(), name: name.to_string() };
    match ctx.state.store.apply_one(write).await? {
        Outcome::Deleted => Ok(StatusCode::OK.into_response()),
        Outcome::Absent => Ok(StatusCode::NO_CONTENT.into_response()),
        Outcome::NoSubscription => {
            Err(ApiError::SubscriptionNotFound(resource.subscription().to_string()))
        }
        other => {
            Err(ApiError::Internal(anyhow::anyhow!("unexpected outcome of a delete: {other:?}")))
        }
    }
}

pub async fn list(ctx: &Ctx<'_>, scope: &ResourceId) -> ApiResult<Response> {
    let view = view(ctx, scope.subscription()).await?;
    let expand = expand(ctx)?;
    if let Some(page) = page_memo::get(&view, ctx.uri) {
        return Ok(page);
    }
    let after = match ctx.cursor()? {
        None => None,
        Some(Cursor::After(r, n)) => Some((r, n)),
        Some(Cursor::Offset(_)) => {
            return Err(ApiError::BadRequest {
                target: Some("$skipToken".into()),
                message: "The $skipToken does not belong to this list.".into(),
            })
        }
    };
    let size = ctx.page_size();
    // One more than a page tells whether another page follows.
    let mut rows = ctx.state.store.assessments(scope, after.as_ref(), size + 1).await?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next_link = if more {
        rows.last().map(|a| {
            ctx.next_link(&Cursor::After(
                a.resource_id.to_ascii_lowercase(),
                a.name.to_ascii_lowercase(),
            ))
        })
    } else {
        None
    };
    let value = rows.iter().map(|a| render(a, ctx.api_version, expand, &view)).collect();
    page_memo::put(&view, ctx.uri, &Page { value, next_link })
}

/// Assessments_List at a management group: the assessments of every subscription below it,
/// nested groups included, in (subscription, resource, name) order, so that one continuation
/// runs across subscriptions.
pub async fn list_in_group(ctx: &Ctx<'_>, group: &str) -> ApiResult<Response> {
    let expand = expand(ctx)?;
    let after = match ctx.cursor()? {
        None => None,
        Some(Cursor::After(r, n)) => Some((r, n)),
        Some(Cursor::Offset(_)) => {
            return Err(ApiError::BadRequest {
                target: Some("$skipToken".into()),
                message: "The $skipToken does not belong to this list.".into(),
            })
        }
    };
    let subscriptions =
        super::management_groups::subscriptions_from(ctx, group, after.as_ref().map(|a| &a.0))
            .await?;
    let size = ctx.page_size();
    let mut value: Vec<(Assessment, std::sync::Arc<ScoreView>)> = Vec::new();
    let mut more = false;
    for sub in subscriptions {
        let Some(view) = ctx.state.store.view(sub).await? else { continue };
        let scope = ResourceId::subscription_scope(sub);
        let resume = after.as_ref().filter(|(r, _)| super::management_groups::key_in(r, sub));
        // One more than a page, over all subscriptions, tells whether another page follows.
        let rows = ctx.state.store.assessments(&scope, resume, size + 1 - value.len()).await?;
        for a in rows {
            if value.len() == size {
                more = true;
                break;
            }
            value.push((a, view.clone()));
        }
        if more {
            break;
        }
    }
    let next_link = value.last().filter(|_| more).map(|(a, _)| {
        ctx.next_link(&Cursor::After(
            a.resource_id.to_ascii_lowercase(),
            a.name.to_ascii_lowercase(),
        ))
    });
    let value = value.iter().map(|(a, v)| render(a, ctx.api_version, expand, v)).collect();
    ok(&Page { value, next_link })
}
