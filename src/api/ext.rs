//! The extension API: what Azure lacks, under `/securescore/v1/`, apart from the Azure surface and
//! described in `docs/extension-openapi.json`. Errors are CloudErrors like everywhere else.
//!
//! - subscriptions administration (list, create/update, delete with all data)
//! - `POST /import`: NDJSON bulk ingest (see `import`)
//! - `GET /subscriptions/{id}/history`: every change of the secure score, or a daily series
//! - `GET /aggregate`: a score over several subscriptions, with its formula

use axum::extract::{RawQuery, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::TryStreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use time::{Duration, OffsetDateTime, Time};
use uuid::Uuid;

use super::scores::ScoreJson;
use super::{json, AppState};
use crate::arm::extract::{Body, Path};
use crate::arm::{format_time, parse_subscription_id, parse_time, query_map, ApiError, ApiResult};
use crate::catalog::ASC_SCORE;
use crate::score;
use crate::store::{HistoryReason, Subscription};

pub const PREFIX: &str = "/securescore/v1";

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/securescore/v1/subscriptions", get(list_subscriptions))
        .route(
            "/securescore/v1/subscriptions/{id}",
            get(get_subscription).put(put_subscription).delete(delete_subscription),
        )
        .route("/securescore/v1/subscriptions/{id}/history", get(history))
        .route("/securescore/v1/aggregate", get(aggregate))
        .route("/securescore/v1/import", post(import))
}

/// A subscription as the extension API shows and accepts it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SubscriptionBody {
    #[serde(default)]
    pub subscription_id: Option<Uuid>,
    pub display_name: String,
    #[serde(default)]
    pub tenant_id: Option<Uuid>,
    #[serde(default)]
    pub state: Option<String>,
}

impl SubscriptionBody {
    fn of(s: &Subscription) -> Self {
        SubscriptionBody {
            subscription_id: Some(s.id),
            display_name: s.display_name.clone(),
            tenant_id: Some(s.tenant_id),
            state: Some(s.state.clone()),
        }
    }

    pub fn into_subscription(self) -> Subscription {
        Subscription {
            id: self.subscription_id.unwrap_or_default(),
            display_name: self.display_name,
            tenant_id: self.tenant_id.unwrap_or_default(),
            state: self.state.unwrap_or_else(|| "Enabled".into()),
        }
    }
}

async fn list_subscriptions(State(state): State<AppState>) -> ApiResult<Response> {
    let subs = state.store.subscriptions().await?;
    let value: Vec<_> = subs.iter().map(SubscriptionBody::of).collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "value": value })))
}

async fn get_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_subscription_id(&id)?;
    let sub = state
        .store
        .subscription(id)
        .await?
        .ok_or_else(|| ApiError::SubscriptionNotFound(id.to_string()))?;
    Ok(json(StatusCode::OK, &SubscriptionBody::of(&sub)))
}

async fn put_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Body(body): Body,
) -> ApiResult<Response> {
    let id = parse_subscription_id(&id)?;
    let body: SubscriptionBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::invalid_field(
            "",
            format!("Expected {{\"displayName\": string, \"tenantId\"?: GUID}}: {e}."),
        )
    })?;
    if body.display_name.trim().is_empty() {
        return Err(ApiError::invalid_field("displayName", "'displayName' must not be empty."));
    }
    let tenant = match body.tenant_id {
        Some(t) => t,
        None => state.identity.default_tenant,
    };
    let sub = Subscription {
        id,
        display_name: body.display_name,
        tenant_id: tenant,
        state: body.state.unwrap_or_else(|| "Enabled".into()),
    };
    let created = state.store.put_subscription(&sub).await?;
    Ok(json(
        if created { StatusCode::CREATED } else { StatusCode::OK },
        &SubscriptionBody::of(&sub),
    ))
}

async fn delete_subscription(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let id = parse_subscription_id(&id)?;
    if state.store.remove_subscription(id).await? {
        Ok(StatusCode::OK.into_response())
    } else {
        Err(ApiError::SubscriptionNotFound(id.to_string()))
    }
}

/// The body is streamed, never held whole (the importer reads it line by line, each line under its
/// own limit), so the request body limit does not apply here.
async fn import(State(state): State<AppState>, body: axum::body::Body) -> ApiResult<Response> {
    let stream = body.into_data_stream().map_err(|e| std::io::Error::other(BodyReadError(e)));
    let reader = tokio::io::BufReader::new(tokio_util::io::StreamReader::new(stream));
    match crate::import::import_lines(&state.store, reader, 500, |_| {}).await {
        Ok(report) => Ok(json(StatusCode::OK, &report)),
        // The client's body broke off (a bad chunked encoding, a reset): its mistake, not ours.
        Err(e) if e.chain().any(is_body_read_error) => Err(ApiError::BadRequest {
            target: None,
            message: format!("The request body could not be read: {e:#}."),
        }),
        Err(e) => Err(e.into()),
    }
}

/// A failure to read the request body, told apart from the store's failures.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BodyReadError(axum::Error);

fn is_body_read_error(e: &(dyn std::error::Error + 'static)) -> bool {
    e.is::<BodyReadError>()
        || e.downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .is_some_and(|inner| inner.is::<BodyReadError>())
}

#[derive(Serialize)]
struct Point {
    #[serde(skip_serializing_if = "Option::is_none")]
    at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    date: Option<String>,
    score: ScoreJson,
    weight: i64,
    /// Why the point was recorded when no assessment write did it (`catalogChange`, `repair`).
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

fn time_param(q: &HashMap<String, String>, name: &str) -> ApiResult<Option<OffsetDateTime>> {
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

/// `GET /securescore/v1/subscriptions/{id}/history?from=&to=[&interval=day][&initiative=ascScore]`
async fn history(
    State(state): State<AppState>,
    Path(id): Path<String>,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = query_map(q);
    let id = parse_subscription_id(&id)?;
    state
        .store
        .subscription(id)
        .await?
        .ok_or_else(|| ApiError::SubscriptionNotFound(id.to_string()))?;
    let initiative = q.get("initiative").map_or(ASC_SCORE, String::as_str);
    if !initiative.eq_ignore_ascii_case(ASC_SCORE) {
        return Err(ApiError::ResourceNotFound {
            resource_type: "secureScores".into(),
            name: initiative.into(),
            subscription: id.to_string(),
        });
    }
    let to = time_param(&q, "to")?.unwrap_or_else(OffsetDateTime::now_utc);
    let from = time_param(&q, "from")?.unwrap_or(to - Duration::days(30));
    if from > to {
        return Err(ApiError::BadRequest {
            target: Some("from".into()),
            message: "'from' must not be after 'to'.".into(),
        });
    }
    let value: Vec<Point> = match q.get("interval").map(String::as_str) {
        None | Some("") => state
            .store
            .history(id, ASC_SCORE, from, to)
            .await?
            .into_iter()
            .map(|p| Point {
                at: Some(format_time(p.at)),
                date: None,
                score: p.score.into(),
                weight: p.weight,
                reason: p.reason.map(HistoryReason::as_str),
            })
            .collect(),
        Some(i) if i.eq_ignore_ascii_case("day") => {
            if to - from > Duration::days(3660) {
                return Err(ApiError::BadRequest { target: Some("from".into()), message: "A daily series spans at most 10 years.".into() });
            }
            // The score in force at the end of each day (UTC), from the first day with a score.
            let mut out = Vec::new();
            let mut day = from.date();
            while day <= to.date() {
                let end = day.with_time(Time::MAX).assume_utc().min(to);
                if let Some(p) = state.store.history_before(id, ASC_SCORE, end).await? {
                    out.push(Point { at: None, date: Some(day.to_string()), score: p.score.into(), weight: p.weight, reason: None });
                }
                day = match day.next_day() {
                    Some(d) => d,
                    None => break,
                };
            }
            out
        }
        Some(other) => {
            return Err(ApiError::BadRequest {
                target: Some("interval".into()),
                message: format!("The interval '{other}' is not supported; use 'day' or leave it out for every change."),
            })
        }
    };
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "subscriptionId": id,
            "initiative": ASC_SCORE,
            "from": format_time(from),
            "to": format_time(to),
            "value": value,
        }),
    ))
}

/// `GET /securescore/v1/aggregate[?subscriptions=a,b]`: one score over several subscriptions.
/// The subscriptions an aggregate covers: `?subscriptions=a,b`, or all of them.
pub(crate) async fn aggregate_subscriptions(
    state: &AppState,
    query: Option<&str>,
) -> ApiResult<Vec<Uuid>> {
    let q = query_map(query.map(str::to_string));
    match q.get("subscriptions").filter(|s| !s.is_empty()) {
        Some(list) => list.split(',').map(|s| parse_subscription_id(s.trim())).collect(),
        None => Ok(state.store.subscriptions().await?.into_iter().map(|s| s.id).collect()),
    }
}

async fn aggregate(State(state): State<AppState>, RawQuery(q): RawQuery) -> ApiResult<Response> {
    let ids = aggregate_subscriptions(&state, q.as_deref()).await?;
    let mut scores = Vec::new();
    let mut per = Vec::new();
    for id in ids {
        let view = state
            .store
            .view(id)
            .await?
            .ok_or_else(|| ApiError::SubscriptionNotFound(id.to_string()))?;
        scores.push(view.secure_score);
        per.push(serde_json::json!({
            "subscriptionId": id,
            "displayName": view.subscription.display_name,
            "score": ScoreJson::from(view.secure_score.score),
            "weight": view.secure_score.weight,
        }));
    }
    let agg = score::aggregate(&scores);
    Ok(json(
        StatusCode::OK,
        &serde_json::json!({
            "initiative": ASC_SCORE,
            "percentage": agg.percentage,
            "weight": agg.weight,
            "formula": "percentage = round4(sum(percentage_i * weight_i) / sum(weight_i)) (Microsoft's management-group formula); 0 when the weights sum to 0",
            "resourceGraph": {
                "weightedCurrent": agg.weighted_current,
                "formula": "sum over subscriptions of round2(weight_i * current_i / max_i), a weight of 0 counted as 1 (Microsoft's Resource Graph sample)",
            },
            "subscriptions": per,
        }),
    ))
}

/// 405 for every non-ARM route, as a CloudError; the router adds the route's own `Allow`.
pub async fn method_not_allowed(method: Method) -> Response {
    ApiError::MethodNotAllowed { method, allow: None }.into_response()
}

#[cfg(test)]
mod tests {
    /// The extension API's OpenAPI document describes every route the router serves.
    #[test]
    fn openapi_document_lists_every_route() {
        let doc: serde_json::Value =
            serde_json::from_str(include_str!("../../docs/extension-openapi.json"))
                .expect("the document parses");
        let paths = doc["paths"].as_object().expect("paths");
        let source = [include_str!("ext.rs"), include_str!("../identity/admin.rs")].concat();
        for line in source.lines().filter(|l| {
            l.trim_start().starts_with(".route(\"")
                || l.trim_start().starts_with("\"/securescore/v1")
        }) {
            let path = line.split('"').nth(1).expect("a quoted path");
            assert!(paths.contains_key(path), "{path} is not documented");
        }
        assert_eq!(paths.len(), 12);
    }
}
