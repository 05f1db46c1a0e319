//! Stored exemptions as rows: the columns, the row type and the active rules of a subscription.
//! A leaf below both the exemption writes (`sql::exemptions`) and the counter steps
//! (`sql::tracker`), which both read the rules in force.
//!
//! A row is resource-scoped (`subscription_id` set) or lies at a management group (`group_key`
//! set: a group's lowercase name, the tenant id for the root group). Which group rules reach a
//! subscription is decided here, in SQL, from the hierarchy as the transaction sees it: those of
//! the group the subscription is placed in and of every group above it, and the root group's.

use anyhow::{Context, Result};

use super::{query_as, Conn, WriteTx};
use crate::arm::{parse_time, AnyScope};
use crate::store::exemptions::{Category, Exemption, ExemptionRule};
use crate::store::identity::TENANT_META;

pub(super) const COLUMNS: &str =
    "name, scope, assessment, category, expires_on, description, created_at, \
                       updated_at, active";

#[derive(sqlx::FromRow)]
pub(super) struct Row {
    name: String,
    scope: String,
    assessment: String,
    category: String,
    expires_on: Option<String>,
    description: String,
    created_at: String,
    updated_at: String,
    active: bool,
}

impl TryFrom<Row> for Exemption {
    type Error = anyhow::Error;
    fn try_from(row: Row) -> Result<Self> {
        Ok(Exemption {
            scope: AnyScope::parse(&row.scope)
                .map_err(|e| anyhow::anyhow!("stored exemption scope '{}': {e}", row.scope))?,
            category: Category::parse(&row.category)
                .with_context(|| format!("stored category '{}' is not a category", row.category))?,
            expires_on: row.expires_on.as_deref().map(parse_time).transpose()?,
            created_at: parse_time(&row.created_at)?,
            updated_at: parse_time(&row.updated_at)?,
            name: row.name,
            assessment: row.assessment,
            description: row.description,
            active: row.active,
        })
    }
}

/// The active exemptions of a subscription, on the transaction's connection.
pub(super) async fn active_rules(
    tx: &mut impl WriteTx,
    subscription: &str,
) -> Result<Vec<ExemptionRule>> {
    rules_of(tx.conn(), subscription).await
}

/// The active rules that reach a subscription: its own exemptions and those of the management
/// groups above it.
pub(super) async fn rules_of(conn: Conn<'_>, subscription: &str) -> Result<Vec<ExemptionRule>> {
    query_as::<Row>(format!(
        "WITH RECURSIVE up(k) AS ( \
           SELECT group_key FROM management_group_subscriptions WHERE subscription_id = $1 \
           UNION SELECT g.parent_key FROM management_groups g JOIN up ON g.name_key = up.k \
           WHERE g.parent_key IS NOT NULL) \
         SELECT {COLUMNS} FROM exemptions WHERE active AND (subscription_id = $1 \
           OR group_key IN (SELECT k FROM up) \
           OR group_key = (SELECT value FROM meta WHERE key = $2)) \
         ORDER BY name_key"
    ))
    .bind(subscription)
    .bind(TENANT_META)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| Exemption::try_from(row).map(|e| e.rule_in(subscription)))
    .collect()
}
