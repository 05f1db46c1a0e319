//! `GET /providers/Microsoft.Security/operations`: the operations this server serves, in ARM's
//! operation shape, paged like every list. The entries come from the table RBAC decides with
//! ([`super::auth::OPERATIONS`]); this module only renders them.

use axum::response::Response;
use serde::Serialize;

use super::auth::{Operation, OPERATIONS};
use super::{ok, Ctx};
use crate::arm::api_version::V2015_06_01_PREVIEW;
use crate::arm::paging::page_of;
use crate::arm::ApiResult;

/// How the provider names itself in every entry's `display`.
const PROVIDER: &str = "Microsoft Security";
/// Users call every action; the platform too (ARM's value for such actions).
const ORIGIN: &str = "user,system";

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct OperationJson {
    name: &'static str,
    /// The 2015-06-01-preview model has no `isDataAction`; later versions (ARM's common type) do.
    #[serde(skip_serializing_if = "Option::is_none")]
    is_data_action: Option<bool>,
    display: Display,
    origin: &'static str,
}

#[derive(Serialize)]
struct Display {
    provider: &'static str,
    resource: &'static str,
    operation: &'static str,
    description: &'static str,
}

fn render(op: &Operation, api_version: &str) -> OperationJson {
    OperationJson {
        name: op.name,
        // Every operation here is a control-plane (ARM) operation.
        is_data_action: (api_version != V2015_06_01_PREVIEW).then_some(false),
        display: Display {
            provider: PROVIDER,
            resource: op.resource,
            operation: op.operation,
            description: op.description,
        },
        origin: ORIGIN,
    }
}

pub async fn list(ctx: &Ctx<'_>) -> ApiResult<Response> {
    let cursor = ctx.cursor()?;
    let page = page_of(
        OPERATIONS,
        cursor.as_ref(),
        ctx.page_size(),
        |c| ctx.next_link(c),
        |op| render(op, ctx.api_version),
    )?;
    ok(&page)
}
