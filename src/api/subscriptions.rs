//! ARM's own endpoints that clients call around the security API: `GET /subscriptions`
//! (`az login` needs the principal's subscriptions listed), `GET /subscriptions/{id}`, `GET /tenants`.

use axum::response::Response;
use serde::Serialize;
use uuid::Uuid;

use super::{ok, Ctx};
use crate::arm::{ApiError, ApiResult};
use crate::store::Subscription;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SubscriptionJson<'a> {
    id: String,
    authorization_source: &'static str,
    managed_by_tenants: [(); 0],
    subscription_id: String,
    tenant_id: String,
    display_name: &'a str,
    state: &'a str,
    subscription_policies: Policies,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Policies {
    location_placement_id: &'static str,
    quota_id: &'static str,
    spending_limit: &'static str,
}

fn render(s: &Subscription) -> SubscriptionJson<'_> {
    SubscriptionJson {
        id: format!("/subscriptions/{}", s.id),
        authorization_source: "RoleBased",
        managed_by_tenants: [],
        subscription_id: s.id.to_string(),
        tenant_id: s.tenant_id.to_string(),
        display_name: &s.display_name,
        state: &s.state,
        subscription_policies: Policies {
            location_placement_id: "Public_2014-09-01",
            quota_id: "PayAsYouGo_2014-09-01",
            spending_limit: "Off",
        },
    }
}

#[derive(Serialize)]
struct Count {
    #[serde(rename = "type")]
    kind: &'static str,
    value: usize,
}

#[derive(Serialize)]
struct List<T: Serialize> {
    value: Vec<T>,
    count: Count,
}

pub async fn list(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let subs = ctx.state.store.subscriptions().await?;
    let tree = ctx.state.store.hierarchy().await?;
    let value: Vec<_> = subs
        .iter()
        .filter(|s| ctx.principal.sees(s, &tree.ancestors_of_subscription(s.id)))
        .map(render)
        .collect();
    ok(&List { count: Count { kind: "Total", value: value.len() }, value })
}

pub async fn get(ctx: &Ctx<'_>, id: Uuid) -> ApiResult<Response> {
    let sub = ctx
        .state
        .store
        .subscription(id)
        .await?
        .ok_or_else(|| ApiError::SubscriptionNotFound(id.to_string()))?;
    ok(&render(&sub))
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TenantJson {
    id: String,
    tenant_id: String,
    tenant_category: &'static str,
    display_name: String,
}

pub async fn tenants(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let mut tenants: Vec<Uuid> =
        ctx.state.store.subscriptions().await?.iter().map(|s| s.tenant_id).collect();
    tenants.push(ctx.state.identity.default_tenant);
    tenants.sort();
    tenants.dedup();
    let value: Vec<_> = tenants
        .into_iter()
        .map(|t| TenantJson {
            id: format!("/tenants/{t}"),
            tenant_id: t.to_string(),
            tenant_category: "Home",
            display_name: format!("securescore tenant {t}"),
        })
        .collect();
    ok(&List { count: Count { kind: "Total", value: value.len() }, value })
}
