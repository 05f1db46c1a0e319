//! Stored exemptions as rows: the columns, the row type and the active rules of a subscription.
//! A leaf below both the exemption writes (`sql::exemptions`) and the counter steps
//! (`sql::tracker`), which both read the rules in force.

use anyhow::{Context, Result};

use super::{query_as, Conn, WriteTx};
use crate::arm::{parse_time, ResourceId};
use crate::store::exemptions::{Category, Exemption, ExemptionRule};

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
            scope: ResourceId::parse(&row.scope)
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

pub(super) async fn rules_of(conn: Conn<'_>, subscription: &str) -> Result<Vec<ExemptionRule>> {
    query_as::<Row>(format!(
        "SELECT {COLUMNS} FROM exemptions WHERE subscription_id = $1 AND active ORDER BY name_key"
    ))
    .bind(subscription)
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| Exemption::try_from(row).map(|e| e.rule()))
    .collect()
}
