//! The extension API: what Azure lacks, under `/securescore/v1/`, apart from the Azure surface and
//! described by the OpenAPI document generated from the `#[utoipa::path]` annotations here
//! ([`super::openapi`], served at `/securescore/v1/openapi.json`, kept in
//! `docs/extension-openapi.json`). Errors are CloudErrors like everywhere else.
//!
//! - subscriptions administration (list, create/update, delete with all data)
//! - `POST /import`: NDJSON bulk ingest (the `ingest` service), streamed both ways
//! - `GET /subscriptions/{id}/history`: every change of the secure score, or a daily series
//! - `GET /aggregate`: a score over several subscriptions, with its formula

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use futures::TryStreamExt;
use serde::Serialize;
use time::{Duration, OffsetDateTime, Time};
use tokio::io::BufReader;
use tokio_util::io::StreamReader;
use uuid::Uuid;

use super::scores::ScoreJson;
use super::{json, AppState};
use crate::arm::extract::{Body, Path};
use crate::arm::{format_time, parse_subscription_id, query_map, ApiError, ApiResult};
use crate::catalog::ASC_SCORE;
use crate::ingest::{self, Options, Stop};
use crate::score;
use crate::store::{HistoryReason, Subscription};
use crate::wire::{ImportEvent, SubscriptionBody, NDJSON};

use super::scope::time_param;
pub use super::scope::PREFIX;

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
        // Issue 11: what to fix first, what changed, exemptions.
        .merge(super::improvements::router())
        .merge(super::changes::router())
        .merge(super::exemptions::router())
}

#[utoipa::path(
    get,
    path = "/securescore/v1/subscriptions",
    operation_id = "Subscriptions_List",
    tag = "Subscriptions",
    summary = "List subscriptions",
    responses(
        (status = 200, description = "The subscriptions", body = crate::wire::schema::SubscriptionList),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn list_subscriptions(State(state): State<AppState>) -> ApiResult<Response> {
    let subs = state.store.subscriptions().await?;
    let value: Vec<_> = subs.iter().map(SubscriptionBody::of).collect();
    Ok(json(StatusCode::OK, &serde_json::json!({ "value": value })))
}

#[utoipa::path(
    get,
    path = "/securescore/v1/subscriptions/{id}",
    operation_id = "Subscriptions_Get",
    tag = "Subscriptions",
    summary = "Get a subscription",
    params(
        ("id" = Uuid, Path, description = "The subscription id"),
    ),
    responses(
        (status = 200, description = "The subscription", body = SubscriptionBody),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
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

#[utoipa::path(
    put,
    path = "/securescore/v1/subscriptions/{id}",
    operation_id = "Subscriptions_CreateOrUpdate",
    tag = "Subscriptions",
    summary = "Create (201) or update (200) a subscription",
    params(
        ("id" = Uuid, Path, description = "The subscription id"),
    ),
    request_body = SubscriptionBody,
    responses(
        (status = 200, description = "Updated", body = SubscriptionBody),
        (status = 201, description = "Created", body = SubscriptionBody),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
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

#[utoipa::path(
    delete,
    path = "/securescore/v1/subscriptions/{id}",
    operation_id = "Subscriptions_Delete",
    tag = "Subscriptions",
    summary = "Remove a subscription and all its data (assessments, counters, history, custom metadata)",
    params(
        ("id" = Uuid, Path, description = "The subscription id"),
    ),
    responses(
        (status = 200, description = "Removed"),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
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

/// `POST /securescore/v1/import[?batchSize=N]`: NDJSON bulk ingest (the `ingest` service), read
/// as a stream and committed in batches.
///
/// With `Accept: application/x-ndjson` the answer streams: one progress object per committed
/// batch, then the report. Only the answer's head is under the outer time limit, so a streamed
/// import runs as long as its input flows (and stops when it stalls that long). Otherwise one
/// JSON report comes at the end; to answer before the outer time limit does, reading stops at
/// three quarters of it, and the answer (a 408) says which lines were committed.
#[utoipa::path(
    post,
    path = "/securescore/v1/import",
    operation_id = "Assessments_Import",
    tag = "Import",
    summary = "Bulk ingest of assessments, one per line (also Azure's export shape)",
    description = "Each line is an assessment's PUT body plus its `resourceId` and `name`, or an assessment as Azure lists it (`id`, `name`, `type`, `properties`). With `Accept: application/x-ndjson` the answer streams one progress object per committed batch, then the report. Lines are validated like a PUT, applied in batches and idempotent; invalid lines are reported with their numbers.",
    request_body(
        content = String,
        content_type = "application/x-ndjson",
        example = json!("{\"resourceId\":\"/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1\",\"name\":\"21300918-b2e3-0346-785f-c77ff57d243b\",\"properties\":{\"resourceDetails\":{\"source\":\"Azure\"},\"status\":{\"code\":\"Unhealthy\"}}}"),
    ),
    responses(
        (status = 200, description = "The import report", body = crate::wire::ImportReport),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn import(
    State(state): State<AppState>,
    headers: HeaderMap,
    RawQuery(q): RawQuery,
    body: axum::body::Body,
) -> ApiResult<Response> {
    let q = query_map(q);
    let batch_size = match q.get("batchSize") {
        None => ingest::DEFAULT_BATCH_SIZE,
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=ingest::MAX_BATCH_SIZE).contains(n))
            .ok_or_else(|| ApiError::BadRequest {
                target: Some("batchSize".into()),
                message: format!(
                    "'batchSize' must be a whole number from 1 to {}, not '{v}'.",
                    ingest::MAX_BATCH_SIZE
                ),
            })?,
    };
    let streamed = headers
        .get_all(header::ACCEPT)
        .iter()
        .any(|v| v.to_str().is_ok_and(|s| s.to_ascii_lowercase().contains(NDJSON)));
    let stream = body.into_data_stream().map_err(std::io::Error::other);
    let reader = BufReader::with_capacity(64 * 1024, StreamReader::new(stream));
    let store = state.store.clone();
    let limit = state.config.request_timeout;
    if streamed {
        let options = Options { batch_size, idle: Some(limit), ..Options::default() };
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<ImportEvent>();
        // Its own task: the import goes on (and is logged) whatever becomes of the answer.
        tokio::spawn(async move {
            let progress = tx.clone();
            let done = ingest::ingest(&store, reader, &options, move |p| {
                let _ = progress.send(ImportEvent::Progress(p.clone()));
            })
            .await;
            let _ = tx.send(ImportEvent::Report(done.report));
        });
        let lines = futures::stream::unfold(rx, |mut rx| async move {
            let event = rx.recv().await?;
            let mut line = serde_json::to_vec(&event).unwrap_or_default();
            line.push(b'\n');
            Some((Ok::<_, std::convert::Infallible>(Bytes::from(line)), rx))
        });
        let mut response = Response::new(axum::body::Body::from_stream(lines));
        response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(NDJSON));
        return Ok(response);
    }
    let deadline = tokio::time::Instant::now() + limit * 3 / 4;
    let options = Options { batch_size, deadline: Some(deadline), ..Options::default() };
    // Its own task, so that a client going away cannot cancel it between a commit and its log.
    let done = tokio::spawn(async move { ingest::ingest(&store, reader, &options, |_| {}).await })
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    answer(done, limit)
}

/// The one-document answer of an import: the report, or an error that says what was committed.
fn answer(done: ingest::Finished, limit: std::time::Duration) -> ApiResult<Response> {
    let committed = done.report.committed();
    match done.stop {
        None => Ok(json(StatusCode::OK, &done.report)),
        Some(Stop::Input(e)) => Err(ApiError::BadRequest {
            target: None,
            message: format!("The request body could not be read ({e}); {committed}."),
        }),
        Some(Stop::Deadline | Stop::Idle(_)) => {
            Err(ApiError::ImportTimeout { seconds: limit.as_secs(), committed })
        }
        Some(Stop::Store(e)) => Err(ApiError::Internal(e.context(committed))),
    }
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

#[utoipa::path(
    get,
    path = "/securescore/v1/subscriptions/{id}/history",
    operation_id = "History_Get",
    tag = "Scores",
    summary = "The secure score over time",
    description = "Every change of the secure score in a time range, or with `interval=day` the score in force at the end of each UTC day (from the first day with a score; at most 10 years).",
    params(
        ("id" = Uuid, Path, description = "The subscription id"),
        ("from" = Option<String>, Query, format = DateTime, description = "Default: 30 days before `to`"),
        ("to" = Option<String>, Query, format = DateTime, description = "Default: now"),
        ("interval" = Option<String>, Query, description = "`day` for a daily series; absent for every change"),
        ("initiative" = Option<String>, Query, description = "Only `ascScore` (the default)"),
    ),
    responses(
        (status = 200, description = "The history", body = crate::wire::schema::History),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
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

#[utoipa::path(
    get,
    path = "/securescore/v1/aggregate",
    operation_id = "Aggregate_Get",
    tag = "Scores",
    summary = "One score over several subscriptions (a management group's view), with the formula stated",
    params(
        ("subscriptions" = Option<String>, Query, description = "Comma-separated subscription ids; default: all"),
    ),
    responses(
        (status = 200, description = "The aggregate", body = crate::wire::schema::Aggregate),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
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
    use super::*;
    use crate::wire::ImportReport;

    /// An import cut short answers an error (never a 200, never a 500 for the client's doing)
    /// whose message says which lines stay committed.
    #[test]
    fn an_import_cut_short_says_what_was_committed() {
        let report = ImportReport {
            lines: 5,
            created: 4,
            failed: 1,
            batches: 2,
            last_line: 6,
            ..ImportReport::default()
        };
        let cut = |stop| {
            answer(
                ingest::Finished { report: report.clone(), stop: Some(stop) },
                std::time::Duration::from_secs(60),
            )
        };
        for (stop, status) in [
            (Stop::Deadline, StatusCode::REQUEST_TIMEOUT),
            (Stop::Input(std::io::Error::other("connection reset")), StatusCode::BAD_REQUEST),
            (Stop::Store(anyhow::anyhow!("disk full")), StatusCode::INTERNAL_SERVER_ERROR),
        ] {
            let e = cut(stop).expect_err("an error");
            assert_eq!(e.status(), status);
            if status != StatusCode::INTERNAL_SERVER_ERROR {
                let message = e.to_string();
                assert!(message.contains("lines 1 to 6 were read: 4 created, 0 replaced, 1 rejected, in 2 committed batches"), "{message}");
            }
        }
        let done =
            answer(ingest::Finished { report, stop: None }, std::time::Duration::from_secs(60));
        assert_eq!(done.map(|r| r.status()).ok(), Some(StatusCode::OK));
    }
}
