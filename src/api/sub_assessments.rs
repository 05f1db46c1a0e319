//! `Microsoft.Security/assessments/subAssessments` (api-version 2019-01-01-preview): list at any
//! scope (all, or those of one assessment name), get one, and — an extension of this server, since
//! Azure's are written by Defender itself — create or replace and delete on the same path.
//! Sub-assessments never move the score: no write here touches a counter or the history.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;

use super::scores::view;
use super::{json, ok, Ctx};
use crate::arm::paging::{Cursor, Page};
use crate::arm::{ApiError, ApiResult, ResourceId};
use crate::store::SubAssessment;
use crate::sub_assessment::parse_input;

const TYPE: &str = "Microsoft.Security/assessments/subAssessments";

#[derive(Serialize)]
struct SubAssessmentJson<'a> {
    id: String,
    name: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    properties: &'a Value,
}

fn render(s: &SubAssessment) -> SubAssessmentJson<'_> {
    SubAssessmentJson {
        id: format!(
            "{}/providers/Microsoft.Security/assessments/{}/subAssessments/{}",
            s.resource_id, s.assessment, s.name
        ),
        name: &s.name,
        kind: TYPE,
        properties: &s.properties,
    }
}

fn not_found(resource: &ResourceId, name: &str) -> ApiError {
    ApiError::ResourceNotFound {
        resource_type: "subAssessments".into(),
        name: name.to_string(),
        subscription: resource.subscription().to_string(),
    }
}

pub async fn get(
    ctx: &Ctx<'_>,
    resource: &ResourceId,
    assessment: &str,
    name: &str,
) -> ApiResult<Response> {
    view(ctx, resource.subscription()).await?;
    let s = ctx
        .state
        .store
        .sub_assessment(resource, assessment, name)
        .await?
        .ok_or_else(|| not_found(resource, name))?;
    ok(&render(&s))
}

pub async fn put(
    ctx: &Ctx<'_>,
    resource: &ResourceId,
    assessment: &str,
    name: &str,
) -> ApiResult<Response> {
    view(ctx, resource.subscription()).await?;
    let body = ctx.json_body()?;
    let input = parse_input(resource, assessment, name, &body)?;
    let created = match ctx.state.store.put_sub_assessment(resource, &input).await? {
        Some(created) => created,
        None => return Err(ApiError::SubscriptionNotFound(resource.subscription().to_string())),
    };
    // Answer what is stored: a replace keeps the casing of the first write.
    let stored = ctx
        .state
        .store
        .sub_assessment(resource, assessment, name)
        .await?
        .ok_or_else(|| not_found(resource, name))?;
    let status = if created { StatusCode::CREATED } else { StatusCode::OK };
    Ok(json(status, &render(&stored)))
}

pub async fn delete(
    ctx: &Ctx<'_>,
    resource: &ResourceId,
    assessment: &str,
    name: &str,
) -> ApiResult<Response> {
    view(ctx, resource.subscription()).await?;
    if ctx.state.store.delete_sub_assessment(resource, assessment, name).await? {
        Ok(StatusCode::OK.into_response())
    } else {
        Ok(StatusCode::NO_CONTENT.into_response())
    }
}

/// Every sub-assessment at or below `scope`, or only those of the assessment named `assessment`.
pub async fn list(
    ctx: &Ctx<'_>,
    scope: &ResourceId,
    assessment: Option<&str>,
) -> ApiResult<Response> {
    view(ctx, scope.subscription()).await?;
    let invalid = || ApiError::BadRequest {
        target: Some("$skipToken".into()),
        message: "The $skipToken does not belong to this list.".into(),
    };
    // The cursor's second key is "assessment key/name key": names never contain '/'.
    let after = match ctx.cursor()? {
        None => None,
        Some(Cursor::After(r, rest)) => {
            let (a, n) = rest.split_once('/').ok_or_else(invalid)?;
            Some((r, a.to_string(), n.to_string()))
        }
        Some(Cursor::Offset(_)) => return Err(invalid()),
    };
    let size = ctx.page_size();
    // One more than a page tells whether another page follows.
    let mut rows =
        ctx.state.store.sub_assessments(scope, assessment, after.as_ref(), size + 1).await?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next_link = match rows.last() {
        Some(s) if more => Some(ctx.next_link(&Cursor::After(
            s.resource_id.to_ascii_lowercase(),
            format!("{}/{}", s.assessment.to_ascii_lowercase(), s.name.to_ascii_lowercase()),
        ))),
        _ => None,
    };
    let value = rows.iter().map(render).collect();
    ok(&Page { value, next_link })
}

/// SubAssessments_ListAll (and _List, of one `assessment`) at a management group: the
/// sub-assessments of every subscription below it, nested groups included, in (subscription,
/// resource, assessment, name) order, so that one continuation runs across subscriptions.
pub async fn list_in_group(
    ctx: &Ctx<'_>,
    group: &str,
    assessment: Option<&str>,
) -> ApiResult<Response> {
    let invalid = || ApiError::BadRequest {
        target: Some("$skipToken".into()),
        message: "The $skipToken does not belong to this list.".into(),
    };
    let after = match ctx.cursor()? {
        None => None,
        Some(Cursor::After(r, rest)) => {
            let (a, n) = rest.split_once('/').ok_or_else(invalid)?;
            Some((r, a.to_string(), n.to_string()))
        }
        Some(Cursor::Offset(_)) => return Err(invalid()),
    };
    let subscriptions =
        super::management_groups::subscriptions_from(ctx, group, after.as_ref().map(|a| &a.0))
            .await?;
    let size = ctx.page_size();
    let mut value: Vec<SubAssessment> = Vec::new();
    let mut more = false;
    for sub in subscriptions {
        let scope = ResourceId::subscription_scope(sub);
        let resume = after.as_ref().filter(|k| super::management_groups::key_in(&k.0, sub));
        let rows = ctx
            .state
            .store
            .sub_assessments(&scope, assessment, resume, size + 1 - value.len())
            .await?;
        for s in rows {
            if value.len() == size {
                more = true;
                break;
            }
            value.push(s);
        }
        if more {
            break;
        }
    }
    let next_link = value.last().filter(|_| more).map(|s| {
        ctx.next_link(&Cursor::After(
            s.resource_id.to_ascii_lowercase(),
            format!("{}/{}", s.assessment.to_ascii_lowercase(), s.name.to_ascii_lowercase()),
        ))
    });
    let value = value.iter().map(render).collect();
    ok(&Page { value, next_link })
}
