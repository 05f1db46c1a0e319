//! What changed (extension API): `GET /securescore/v1/subscriptions/{id}/changes?from=&to=` —
//! every assessment status transition of a time window, with the subscription's secure score
//! just before and just after it, newest first unless `$orderby=at asc`; paged (`$top`,
//! `$skipToken` / `nextLink`). The log is written by the store in the transaction of each write
//! (`store::changes`); transitions older than the server's retention are gone.

use axum::extract::{RawQuery, State};
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use axum::routing::get;
use axum::Router;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use super::scope;
use super::scope::time_param;
use super::scores::ScoreJson;
use super::{json, AppState};
use crate::arm::extract::Path;
use crate::arm::paging::Cursor;
use crate::arm::{format_time, parse_subscription_id, query_map, ApiError, ApiResult};
use crate::catalog;
use crate::score::Status;
use crate::store::{ChangeCause, Order, StatusChange};

pub fn router() -> Router<AppState> {
    Router::new().route("/securescore/v1/subscriptions/{id}/changes", get(changes))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChangeJson {
    at: String,
    resource_id: String,
    assessment: String,
    display_name: String,
    /// `null`: the assessment was first written.
    old_status: Option<&'static str>,
    /// `null`: the assessment was deleted.
    new_status: Option<&'static str>,
    /// Absent for an assessment write; `exemption` when an exemption began or ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    cause: Option<&'static str>,
    score_before: ScoreJson,
    score_after: ScoreJson,
}

impl From<StatusChange> for ChangeJson {
    fn from(c: StatusChange) -> Self {
        let display_name = catalog::builtin()
            .assessment(&c.assessment)
            .map_or_else(|| c.assessment.clone(), |m| m.display_name());
        ChangeJson {
            at: format_time(c.at),
            resource_id: c.resource_id,
            assessment: c.assessment.to_ascii_lowercase(),
            display_name,
            old_status: c.old.map(Status::as_str),
            new_status: c.new.map(Status::as_str),
            cause: c.cause.map(ChangeCause::as_str),
            score_before: c.before.into(),
            score_after: c.after.into(),
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    subscription_id: uuid::Uuid,
    from: String,
    to: String,
    orderby: &'static str,
    value: Vec<ChangeJson>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_link: Option<String>,
}

fn order(q: &std::collections::HashMap<String, String>) -> ApiResult<Order> {
    let Some((_, v)) = q.iter().find(|(k, _)| k.eq_ignore_ascii_case("$orderby")) else {
        return Ok(Order::NewestFirst);
    };
    let words: Vec<String> = v.split_whitespace().map(str::to_ascii_lowercase).collect();
    match words.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["at", "desc"] => Ok(Order::NewestFirst),
        ["at"] | ["at", "asc"] => Ok(Order::OldestFirst),
        _ => Err(ApiError::BadRequest {
            target: Some("$orderby".into()),
            message: format!("'$orderby' must be 'at desc' (the default) or 'at asc', not '{v}'."),
        }),
    }
}

/// The next page: the same parameters with the window pinned (a defaulted `to` of "now" must not
/// move between pages) and a cursor after the last transition shown.
fn next_link(
    state: &AppState,
    uri: &Uri,
    from: OffsetDateTime,
    to: OffsetDateTime,
    seq: i64,
) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        if !["from", "to", "$skiptoken"].contains(&k.to_ascii_lowercase().as_str()) {
            query.append_pair(&k, &v);
        }
    }
    query.append_pair("from", &format_time(from));
    query.append_pair("to", &format_time(to));
    query.append_pair("$skipToken", &Cursor::After(seq.to_string(), String::new()).encode());
    format!("{}{}?{}", state.identity.public_url, uri.path(), query.finish())
}

#[utoipa::path(
    get,
    path = "/securescore/v1/subscriptions/{id}/changes",
    operation_id = "Changes_List",
    tag = "Changes",
    summary = "What changed: assessment status transitions with the score before and after each",
    description = "Every status transition of the subscription's assessments in the window (`from` and `to` included): an assessment write that changed its status (`oldStatus` null for a first write, `newStatus` null for a delete; bulk import included), or an exemption beginning or ending (`cause: exemption`, statuses as they count). Each carries the subscription's secure score just before and just after it. Newest first by default. Transitions older than the server's retention (`serve --changes-retention-days`, 90 by default) are gone.",
    params(
        ("id" = Uuid, Path, description = "The subscription id"),
        ("from" = Option<String>, Query, format = DateTime, description = "Default: 30 days before `to`"),
        ("to" = Option<String>, Query, format = DateTime, description = "Default: now"),
        ("$orderby" = Option<String>, Query, description = "`at desc` (default, newest first) or `at asc`"),
        ("$top" = Option<u32>, Query, description = "Page size, 1 to 1000; default: the server's"),
        ("$skipToken" = Option<String>, Query, description = "From a nextLink"),
    ),
    responses(
        (status = 200, description = "The transitions", body = crate::wire::schema::Changes),
        (status = "default", response = crate::wire::schema::responses::CloudError),
    )
)]
async fn changes(
    State(state): State<AppState>,
    Path(id): Path<String>,
    uri: Uri,
    RawQuery(q): RawQuery,
) -> ApiResult<Response> {
    let q = query_map(q);
    let sub = parse_subscription_id(&id)?;
    state
        .store
        .subscription(sub)
        .await?
        .ok_or_else(|| ApiError::SubscriptionNotFound(sub.to_string()))?;
    let to = time_param(&q, "to")?.unwrap_or_else(OffsetDateTime::now_utc);
    let from = time_param(&q, "from")?.unwrap_or(to - Duration::days(30));
    if from > to {
        return Err(ApiError::BadRequest {
            target: Some("from".into()),
            message: "'from' must not be after 'to'.".into(),
        });
    }
    let order = order(&q)?;
    let size = scope::top(&q, state.config.page_size)?;
    let after = scope::after_key(scope::cursor(&q)?)?
        .map(|k| k.parse::<i64>().map_err(|_| scope::foreign_token()))
        .transpose()?;
    let mut rows = state.store.changes(sub, from, to, order, after, size + 1).await?;
    let more = rows.len() > size;
    rows.truncate(size);
    let next_link =
        if more { rows.last().map(|c| next_link(&state, &uri, from, to, c.seq)) } else { None };
    let answer = Answer {
        subscription_id: sub,
        from: format_time(from),
        to: format_time(to),
        orderby: match order {
            Order::NewestFirst => "at desc",
            Order::OldestFirst => "at asc",
        },
        value: rows.into_iter().map(ChangeJson::from).collect(),
        next_link,
    };
    Ok(json(StatusCode::OK, &answer))
}
