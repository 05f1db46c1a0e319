//! `POST /providers/Microsoft.ResourceGraph/resources` (api-versions 2021-03-01 and 2022-10-01):
//! Azure Resource Graph queries over the `securityresources` table. This module owns the HTTP
//! side: the request body, the scope (subscriptions the caller may read), the rows of each table
//! (rendered by the same functions as the GET handlers), paging with `$top`/`$skip`/`$skipToken`,
//! the two result formats and facets. The language itself lives in [`crate::graph`].

use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::VecDeque;
use uuid::Uuid;

use super::assessments::{self, Expand};
use super::auth::{ASSESSMENTS_READ, SCORE_CONTROLS_READ};
use super::scores::{control_value, secure_score_value};
use super::{ok, Ctx};
use crate::arm::api_version::V2025_05_04;
use crate::arm::{ApiError, ApiResult, ResourceId};
use crate::graph::kql::{self, Expr};
use crate::graph::table::{self, Kind, RESOURCE_CONTAINERS, SECURITY_RESOURCES};
use crate::graph::{eval, QueryError, Table};
use crate::identity::{authz, Principal};
use crate::store::Subscription;

/// The most rows one page may hold (`$top`'s maximum in the spec).
const MAX_TOP: usize = 1000;
/// Assessments read from the store per round trip while building the table.
const ASSESSMENT_BATCH: usize = 1000;
/// Facet rows when the facet request does not say.
const DEFAULT_FACET_TOP: usize = 10;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct QueryRequest {
    subscriptions: Option<Vec<String>>,
    management_groups: Option<Vec<String>>,
    query: Option<String>,
    options: Option<QueryOptions>,
    facets: Option<Vec<FacetRequest>>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct QueryOptions {
    #[serde(rename = "$top")]
    top: Option<i64>,
    #[serde(rename = "$skip")]
    skip: Option<i64>,
    #[serde(rename = "$skipToken")]
    skip_token: Option<String>,
    result_format: Option<String>,
    /// Accepted; every scope here is whole, so there is nothing to allow.
    #[allow(dead_code)]
    allow_partial_scopes: Option<bool>,
}

#[derive(Deserialize)]
struct FacetRequest {
    expression: Option<String>,
    options: Option<FacetOptions>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct FacetOptions {
    sort_by: Option<String>,
    sort_order: Option<String>,
    filter: Option<String>,
    #[serde(rename = "$top")]
    top: Option<i64>,
}

#[derive(Serialize)]
struct QueryResponse {
    #[serde(rename = "totalRecords")]
    total_records: usize,
    count: usize,
    /// A string in the spec ("true"/"false"). Every result here can be paged, so never truncated.
    #[serde(rename = "resultTruncated")]
    result_truncated: &'static str,
    #[serde(rename = "$skipToken", skip_serializing_if = "Option::is_none")]
    skip_token: Option<String>,
    data: Value,
    facets: Vec<Value>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Format {
    ObjectArray,
    Table,
}

/// Where a page starts and how long it is, as a `$skipToken` carries it. The digest ties the
/// token to its query and scope: a token from another query, or an edited one, is refused.
#[derive(Serialize, Deserialize)]
struct Token {
    skip: usize,
    top: usize,
    digest: String,
}

fn digest(query: &str, scope: &[Uuid]) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    h.update(query.as_bytes());
    for s in scope {
        h.update(s.as_bytes());
    }
    h.finalize().iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn bad_token() -> ApiError {
    ApiError::BadRequest {
        target: Some("options.$skipToken".into()),
        message: "The $skipToken is invalid: pass the one the previous page returned, with the same query and scope.".into(),
    }
}

fn decode_token(text: &str, want: &str) -> ApiResult<Token> {
    let bytes = URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).map_err(|_| bad_token())?;
    let token: Token = serde_json::from_slice(&bytes).map_err(|_| bad_token())?;
    if token.digest != want || token.top == 0 {
        return Err(bad_token());
    }
    // The digest is not a secret: a hand-made token still gets at most a page.
    Ok(Token { top: token.top.min(MAX_TOP), ..token })
}

fn encode_token(token: &Token) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(token).unwrap_or_default())
}

/// A query the language refuses: ARG's `BadRequest` whose details say `InvalidQuery` and then
/// what, and where (line from 1; `characterPositionInLine` from 0, as ARG counts).
fn invalid_query(e: QueryError) -> ApiError {
    ApiError::InvalidQuery {
        message: format!(
            "The query is invalid: {} at line {}, column {}. docs/RESOURCE_GRAPH.md lists the KQL this server supports.",
            e.message, e.pos.line, e.pos.column
        ),
        details: vec![
            json!({"code": "InvalidQuery", "message": "The query is invalid; correct it and send it again."}),
            json!({
                "code": e.kind.code(),
                "message": e.message,
                "line": e.pos.line,
                "characterPositionInLine": e.pos.column.saturating_sub(1),
                "token": e.token,
            }),
        ],
    }
}

fn invalid_field(target: &str, message: impl Into<String>) -> ApiError {
    ApiError::invalid_field(target, message)
}

/// The subscriptions below the query's management groups (nested groups included); an unknown
/// group is ARM's 404.
async fn management_group_subscriptions(ctx: &Ctx<'_>, groups: &[String]) -> ApiResult<Vec<Uuid>> {
    let mut out = Vec::new();
    for g in groups {
        match ctx.state.store.subscriptions_below(g).await? {
            Some(subs) => out.extend(subs),
            None => return Err(ApiError::ManagementGroupNotFound(g.clone())),
        }
    }
    Ok(out)
}

/// A subscription in the query's scope, with the management groups above it (roles assigned
/// there apply to it too).
struct Scoped {
    sub: Subscription,
    groups: Vec<String>,
}

impl std::ops::Deref for Scoped {
    type Target = Subscription;
    fn deref(&self) -> &Subscription {
        &self.sub
    }
}

/// May the caller perform `action` in `s`: a role that grants it there (or on a management group
/// above it), and (for a token) the subscription's tenant.
fn may(principal: &Principal, s: &Scoped, action: &str) -> bool {
    let target = authz::Target { subscription: Some(s.sub.id), groups: &s.groups };
    principal.tenant.is_none_or(|t| t == s.sub.tenant_id) && principal.can_at(action, &target)
}

/// The subscriptions in the query's scope: those listed (or all), in a stable order.
async fn scope(ctx: &Ctx<'_>, request: &QueryRequest) -> ApiResult<Vec<Scoped>> {
    let mut wanted: Option<Vec<Uuid>> = None;
    // An empty list is no list: the tenant's subscriptions, as when it is absent.
    if let Some(list) = request.subscriptions.as_ref().filter(|l| !l.is_empty()) {
        let ids = list
            .iter()
            .map(|s| {
                Uuid::parse_str(s.trim()).map_err(|_| {
                    invalid_field(
                        "subscriptions",
                        format!("'{s}' is not a subscription id (a GUID)."),
                    )
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        wanted = Some(ids);
    }
    if let Some(groups) = request.management_groups.as_ref().filter(|g| !g.is_empty()) {
        let ids = management_group_subscriptions(ctx, groups).await?;
        wanted.get_or_insert_with(Vec::new).extend(ids);
    }
    let mut subs: Vec<Subscription> = ctx
        .state
        .store
        .subscriptions()
        .await?
        .into_iter()
        .filter(|s| wanted.as_ref().is_none_or(|w| w.contains(&s.id)))
        .collect();
    subs.sort_by_key(|s| s.id);
    let mut scoped = Vec::with_capacity(subs.len());
    for sub in subs {
        let groups = ctx.state.store.ancestors_of_subscription(sub.id).await?;
        scoped.push(Scoped { sub, groups });
    }
    Ok(scoped)
}

/// The rows of one table over `subs`, only those the caller may read. What the query tells
/// about the rows it needs spares rendering others: its types (the first `where type == …`) and
/// its limit (a leading `take N`).
async fn build(ctx: &Ctx<'_>, subs: &[Scoped], source: &eval::Source) -> ApiResult<Table> {
    let principal = &ctx.principal;
    let types = source.types.as_deref();
    let limit = source.limit.unwrap_or(usize::MAX);
    let mut t = table::empty();
    match source.table.as_str() {
        RESOURCE_CONTAINERS => {
            let hierarchy = ctx.state.store.hierarchy().await?;
            for s in subs.iter().filter(|s| may(principal, s, authz::SUBSCRIPTION_READ)) {
                let chain: Vec<(String, String)> = s
                    .groups
                    .iter()
                    .filter_map(|g| hierarchy.info(g))
                    .map(|i| (i.name, i.display_name))
                    .collect();
                let row =
                    table::subscription_row(s.id, &s.display_name, &s.state, s.tenant_id, &chain);
                t.rows.push(row);
            }
        }
        SECURITY_RESOURCES => {
            for s in subs {
                if t.rows.len() >= limit {
                    break;
                }
                let Some(view) = ctx.state.store.view(s.id).await? else { continue };
                if Kind::SecureScore.wanted(types) && may(principal, s, authz::SCORE_READ) {
                    let at = format!("/subscriptions/{}", s.id);
                    t.rows.push(table::security_row(
                        secure_score_value(&view),
                        s.id,
                        s.tenant_id,
                        &at,
                    ));
                }
                if Kind::Control.wanted(types) && may(principal, s, SCORE_CONTROLS_READ.name) {
                    let at = format!("/subscriptions/{}", s.id);
                    for c in &view.controls {
                        t.rows.push(table::security_row(
                            control_value(&view, c),
                            s.id,
                            s.tenant_id,
                            &at,
                        ));
                    }
                }
                if Kind::Assessment.wanted(types) && may(principal, s, ASSESSMENTS_READ.name) {
                    let scope = ResourceId::parse(&format!("/subscriptions/{}", s.id))?;
                    let mut after: Option<(String, String)> = None;
                    loop {
                        let want = ASSESSMENT_BATCH.min(limit.saturating_sub(t.rows.len()));
                        if want == 0 {
                            break;
                        }
                        let batch =
                            ctx.state.store.assessments(&scope, after.as_ref(), want).await?;
                        // The newest stable rendering, with metadata, as the export has it.
                        let expand = Expand { links: false, metadata: true };
                        for a in &batch {
                            let rendered = serde_json::to_value(assessments::render(
                                a,
                                V2025_05_04,
                                expand,
                                &view,
                            ))
                            .map_err(|e| ApiError::Internal(e.into()))?;
                            t.rows.push(table::security_row(
                                rendered,
                                s.id,
                                s.tenant_id,
                                &a.resource_id,
                            ));
                        }
                        if t.rows.len() > eval::MAX_ROWS {
                            return Err(ApiError::BadRequest {
                                target: Some("subscriptions".into()),
                                message: format!(
                                    "The scope holds more than {} rows: query fewer subscriptions at a time.",
                                    eval::MAX_ROWS
                                ),
                            });
                        }
                        match batch.last() {
                            Some(a) if batch.len() == want => {
                                after = Some((
                                    a.resource_id.to_ascii_lowercase(),
                                    a.name.to_ascii_lowercase(),
                                ))
                            }
                            _ => break,
                        }
                    }
                }
            }
        }
        // `resources` (`table::RESOURCES`): Azure's resources themselves, none of which this
        // server holds. `table::check_table` refused every other name already.
        _ => {}
    }
    Ok(t)
}

fn format_of(options: &QueryOptions) -> ApiResult<Format> {
    match options.result_format.as_deref() {
        None => Ok(Format::ObjectArray),
        Some(f) if f.eq_ignore_ascii_case("objectArray") => Ok(Format::ObjectArray),
        Some(f) if f.eq_ignore_ascii_case("table") => Ok(Format::Table),
        Some(f) => Err(invalid_field(
            "options.resultFormat",
            format!("The result format '{f}' is not one of 'objectArray', 'table'."),
        )),
    }
}

/// `data` in the requested format: rows `range` of `table`.
fn data(table: &Table, range: std::ops::Range<usize>, format: Format) -> Value {
    match format {
        Format::ObjectArray => Value::Array(table.objects(range)),
        Format::Table => {
            let types = table.column_types(&table::declared_type);
            let columns: Vec<Value> = table
                .columns
                .iter()
                .zip(types)
                .map(|(name, t)| json!({"name": name, "type": t}))
                .collect();
            json!({"columns": columns, "rows": table.rows[range].to_vec()})
        }
    }
}

pub async fn query(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let body = ctx.json_body()?;
    let request: QueryRequest = serde_json::from_value(body)
        .map_err(|e| invalid_field("", format!("The request content is invalid: {e}.")))?;
    let Some(text) = request.query.as_deref() else {
        return Err(invalid_field("query", "The request has no 'query'."));
    };
    let options = request.options.as_ref();
    let default_options = QueryOptions::default();
    let options = options.unwrap_or(&default_options);
    let format = format_of(options)?;
    let top = match options.top {
        None => None,
        Some(n) if (1..=MAX_TOP as i64).contains(&n) => usize::try_from(n).ok(),
        Some(n) => {
            return Err(invalid_field(
                "options.$top",
                format!("$top is {n}; it must be between 1 and {MAX_TOP}."),
            ))
        }
    };
    let skip = match options.skip {
        None => None,
        Some(n) if n >= 0 => usize::try_from(n).ok(),
        Some(n) => {
            return Err(invalid_field(
                "options.$skip",
                format!("$skip is {n}; it must be 0 or more."),
            ))
        }
    };

    let subs = scope(ctx, &request).await?;
    let ids: Vec<Uuid> = subs.iter().map(|s| s.id).collect();
    let want = digest(text, &ids);
    let token = match options.skip_token.as_deref().filter(|t| !t.is_empty()) {
        Some(t) => Some(decode_token(t, &want)?),
        None => None,
    };

    let query = kql::parse(text).map_err(invalid_query)?;
    let sources = eval::sources(&query);
    let mut tables = VecDeque::new();
    for source in &sources {
        table::check_table(&source.table, source.pos).map_err(invalid_query)?;
        tables.push_back(build(ctx, &subs, source).await?);
    }
    let result = eval::run(&query, &mut tables).map_err(invalid_query)?;

    let page_size =
        top.or(token.as_ref().map(|t| t.top)).unwrap_or_else(|| ctx.page_size().clamp(1, MAX_TOP));
    let start = skip.or(token.as_ref().map(|t| t.skip)).unwrap_or(0).min(result.rows.len());
    let end = start.saturating_add(page_size).min(result.rows.len());
    let skip_token = (end < result.rows.len())
        .then(|| encode_token(&Token { skip: end, top: page_size, digest: want }));
    let facets = request
        .facets
        .as_deref()
        .unwrap_or_default()
        .iter()
        .map(|f| facet(&result, f, format))
        .collect();
    ok(&QueryResponse {
        total_records: result.rows.len(),
        count: end - start,
        result_truncated: "false",
        skip_token,
        data: data(&result, start..end, format),
        facets,
    })
}

/// A facet: the query result's rows counted by an expression's value (after the facet's own
/// filter), sorted by count unless told otherwise, in the query's format. A facet that cannot be
/// computed is a `FacetError`, as ARG answers, and does not fail the query.
fn facet(result: &Table, request: &FacetRequest, format: Format) -> Value {
    let expression = request.expression.clone().unwrap_or_default();
    let error = |code: &str, message: String| {
        json!({
            "expression": expression,
            "resultType": "FacetError",
            "errors": [{"code": code, "message": message}],
        })
    };
    let options = request.options.as_ref();
    let parsed = kql::parse_expression(&expression).map_err(|e| e.to_string());
    let expr: Expr = match parsed {
        // A dynamic path names the result column the query projected it to
        // (`properties.a.b` is the column `properties_a_b`), as in ARG.
        Ok(e) => match e.default_name().filter(|n| result.columns.contains(n)) {
            Some(column) if matches!(e, Expr::Member(..) | Expr::Index(..)) => {
                Expr::Column(column, Default::default())
            }
            _ => e,
        },
        Err(m) => return error("InvalidFacetExpression", m),
    };
    let filter = match options.and_then(|o| o.filter.as_deref()) {
        Some(f) => match kql::parse_expression(f) {
            Ok(e) => Some(e),
            Err(e) => return error("InvalidFacetFilter", e.to_string()),
        },
        None => None,
    };
    let sort_by = match options.and_then(|o| o.sort_by.as_deref()) {
        Some(s) => match kql::parse_expression(s) {
            Ok(e) => Some(e),
            Err(e) => return error("InvalidFacetSortBy", e.to_string()),
        },
        None => None,
    };
    let desc = match options.and_then(|o| o.sort_order.as_deref()) {
        None => true,
        Some(o) if o.eq_ignore_ascii_case("desc") => true,
        Some(o) if o.eq_ignore_ascii_case("asc") => false,
        Some(o) => return error("InvalidFacetSortOrder", format!("'{o}' is not 'asc' or 'desc'")),
    };
    let top = options.and_then(|o| o.top).map_or(DEFAULT_FACET_TOP, |n| {
        usize::try_from(n).unwrap_or(DEFAULT_FACET_TOP).clamp(1, MAX_TOP)
    });
    let name = expr.default_name().unwrap_or_else(|| "Column1".into());
    // Reuse the query engine: where, summarize count() by, order by, over the result.
    let mut ops = Vec::new();
    if let Some(f) = filter {
        ops.push(kql::Operator::Where(f));
    }
    ops.push(kql::Operator::Summarize {
        aggregates: vec![kql::Aggregate {
            name: Some("count".into()),
            expr: Expr::Agg(kql::AggFunc::Count, Vec::new()),
        }],
        by: vec![kql::Named { name: Some(name), expr }],
    });
    let key = sort_by.unwrap_or(Expr::Column("count".into(), Default::default()));
    ops.push(kql::Operator::Sort(vec![kql::SortKey { expr: key, desc, nulls_first: None }]));
    let q = kql::Query { table: "result".into(), table_pos: Default::default(), ops };
    let mut tables = VecDeque::from([result.clone()]);
    match eval::run(&q, &mut tables) {
        Ok(t) => {
            let total = t.rows.len();
            let shown = total.min(top);
            json!({
                "expression": expression,
                "resultType": "FacetResult",
                "totalRecords": total,
                "count": shown,
                "data": data(&t, 0..shown, format),
            })
        }
        Err(e) => error("InvalidColumnNames", e.to_string()),
    }
}
