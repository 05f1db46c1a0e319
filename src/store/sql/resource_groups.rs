//! The per-resource-group counters in either SQL engine (migration 0006): moved by
//! [`step_resource_group`] in the same transaction as the subscription counters, checked and
//! rebuilt by [`reconcile_resource_groups`]. A leaf below the counter steps (`sql::tracker`) and
//! verification (`sql::verify`).

use anyhow::Result;
use std::collections::BTreeMap;
use uuid::Uuid;

use super::{query, query_as, WriteTx};
use crate::catalog;
use crate::score::{self, ControlCounts, Status};
use crate::store::management_groups::resource_group_of;
use crate::store::rows::CountsRow;
use crate::store::verify::Mismatch;

#[derive(sqlx::FromRow)]
pub(super) struct RgCountsRow {
    pub resource_group: String,
    pub control: String,
    #[sqlx(flatten)]
    pub counts: CountsRow,
}

/// Move the counts of `control` in one resource group by `delta` (the net change a transaction's
/// resources in the group made); a row left empty is dropped, as control_counts drops its own.
pub(in crate::store) async fn step_resource_group(
    tx: &mut impl WriteTx,
    subscription: &str,
    resource_group: &str,
    control: &str,
    delta: ControlCounts,
) -> Result<()> {
    if delta == ControlCounts::default() {
        return Ok(());
    }
    query(
        "INSERT INTO resource_group_counts (subscription_id, resource_group, control, healthy, \
         unhealthy, not_applicable) VALUES ($1, $2, $3, $4, $5, $6) \
         ON CONFLICT (subscription_id, resource_group, control) DO UPDATE SET \
         healthy = resource_group_counts.healthy + excluded.healthy, \
         unhealthy = resource_group_counts.unhealthy + excluded.unhealthy, \
         not_applicable = resource_group_counts.not_applicable + excluded.not_applicable",
    )
    .bind(subscription)
    .bind(resource_group)
    .bind(control)
    .bind(delta.healthy)
    .bind(delta.unhealthy)
    .bind(delta.not_applicable)
    .execute(tx.conn())
    .await?;
    // Only a decrease can empty a row: an empty row is dropped, as control_counts drops its own.
    if delta.healthy >= 0 && delta.unhealthy >= 0 && delta.not_applicable >= 0 {
        return Ok(());
    }
    query(
        "DELETE FROM resource_group_counts WHERE subscription_id = $1 AND resource_group = $2 \
         AND control = $3 AND healthy = 0 AND unhealthy = 0 AND not_applicable = 0",
    )
    .bind(subscription)
    .bind(resource_group)
    .bind(control)
    .execute(tx.conn())
    .await?;
    Ok(())
}

/// (resource key, scored controls, status) of one assessment.
type Scored<'a> = (&'a str, Vec<&'a str>, Status);

/// Per (resource group, control) counts as the assessments give them (the scoring engine's
/// reference recomputation, run per group).
pub(super) fn derive_resource_groups(
    statuses: &[(String, String, Status)],
) -> BTreeMap<(String, String), ControlCounts> {
    let cat = catalog::builtin();
    let mut per_group: BTreeMap<&str, Vec<Scored<'_>>> = BTreeMap::new();
    for (resource, name, status) in statuses {
        if let Some(rg) = resource_group_of(resource) {
            let controls = cat.scored_controls(name).iter().map(String::as_str).collect();
            per_group.entry(rg).or_default().push((resource.as_str(), controls, *status));
        }
    }
    let mut out = BTreeMap::new();
    for (rg, items) in per_group {
        let counts = score::recompute(items.iter().map(|(r, c, s)| (*r, c.as_slice(), *s)));
        for (control, c) in counts {
            out.insert((rg.to_string(), control), c);
        }
    }
    out
}

/// The hook of verification: compare a subscription's resource group counters with the
/// assessments; with `rewrite`, replace them when they differ. The mismatches found.
pub(super) async fn reconcile_resource_groups(
    tx: &mut impl WriteTx,
    subscription: Uuid,
    statuses: &[(String, String, Status)],
    rewrite: bool,
) -> Result<Vec<Mismatch>> {
    let id = subscription.to_string();
    let stored: BTreeMap<(String, String), ControlCounts> = query_as::<RgCountsRow>(
        "SELECT resource_group, control, healthy, unhealthy, not_applicable \
         FROM resource_group_counts WHERE subscription_id = $1",
    )
    .bind(&id)
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(|row| ((row.resource_group, row.control), row.counts.into()))
    .collect();
    let derived = derive_resource_groups(statuses);
    let keys: std::collections::BTreeSet<&(String, String)> =
        stored.keys().chain(derived.keys()).collect();
    let mut found = Vec::new();
    for key in keys {
        let (s, d) = (stored.get(key), derived.get(key));
        if s != d {
            found.push(Mismatch::ResourceGroupCounts {
                subscription,
                resource_group: key.0.clone(),
                control: key.1.clone(),
                stored: s.copied().map(Into::into),
                recomputed: d.copied().map(Into::into),
            });
        }
    }
    if rewrite && !found.is_empty() {
        query("DELETE FROM resource_group_counts WHERE subscription_id = $1")
            .bind(&id)
            .execute(tx.conn())
            .await?;
        for ((rg, control), c) in &derived {
            query(
                "INSERT INTO resource_group_counts (subscription_id, resource_group, control, \
                 healthy, unhealthy, not_applicable) VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(&id)
            .bind(rg)
            .bind(control)
            .bind(c.healthy)
            .bind(c.unhealthy)
            .bind(c.not_applicable)
            .execute(tx.conn())
            .await?;
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arm::ResourceId;
    use crate::store::engine::{AssessmentInput, Engine, Subscription, Write};
    use crate::store::rows::parse_status;
    use crate::store::sql::exemptions::assessment_statuses;
    use crate::store::sql::query_scalar;
    use crate::store::sqlite::SqliteEngine;
    use std::sync::Arc;
    use time::OffsetDateTime;

    /// Migration 0006 fills the resource group counters of a data directory written before it,
    /// from the resource tallies: they must be what the assessments give, exactly.
    #[tokio::test]
    async fn the_migrations_backfill_equals_the_recomputation() {
        let engine = SqliteEngine::memory(Arc::default()).await.unwrap();
        let sub = Uuid::new_v4();
        engine
            .put_subscription(&Subscription {
                id: sub,
                display_name: "s".into(),
                tenant_id: Uuid::nil(),
                state: "Enabled".into(),
            })
            .await
            .unwrap();
        let cat = catalog::builtin();
        let names: Vec<&String> = cat
            .controls()
            .iter()
            .filter_map(|c| c.assessment_definitions.first())
            .filter(|a| !cat.scored_controls(&a.to_ascii_lowercase()).is_empty())
            .take(4)
            .collect();
        let statuses = [Status::Healthy, Status::Unhealthy, Status::NotApplicable];
        let mut writes = Vec::new();
        for i in 0..24usize {
            let resource = match i % 4 {
                0 => format!("/subscriptions/{sub}/resourceGroups/One/providers/Microsoft.Compute/virtualMachines/vm{i}"),
                1 => format!("/subscriptions/{sub}/resourceGroups/two/providers/Microsoft.Web/sites/s{}", i % 3),
                2 => format!("/subscriptions/{sub}/resourceGroups/two"),
                _ => format!("/subscriptions/{sub}"),
            };
            writes.push(Write::Put(AssessmentInput {
                resource: ResourceId::parse(&resource).unwrap(),
                name: names[(i / 3) % names.len()].clone(),
                status: statuses[(i * 7) % 3],
                cause: None,
                description: None,
                resource_details: serde_json::json!({"source": "Azure"}),
                additional_data: None,
                partner_name: None,
            }));
        }
        engine.apply(&writes, OffsetDateTime::now_utc()).await.unwrap();
        let mut tx = engine.write_tx().await.unwrap();
        let statuses: Vec<(String, String, Status)> = assessment_statuses(&mut tx, sub)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.resource_key, r.name_key, parse_status(&r.status).unwrap()))
            .collect();
        let derived = derive_resource_groups(&statuses);
        assert!(derived.len() > 3, "several groups and controls: {derived:?}");
        // What the write path maintained is the recomputation.
        assert!(reconcile_resource_groups(&mut tx, sub, &statuses, false)
            .await
            .unwrap()
            .is_empty());
        assert_eq!(derive_resource_groups(&statuses).len(), {
            let n: i64 = query_scalar("SELECT count(*) FROM resource_group_counts")
                .fetch_one(tx.conn())
                .await
                .unwrap();
            n as usize
        });
        // The migration's statement rebuilds the same rows from the tallies alone.
        let migration = include_str!("../../../migrations/sqlite/0006_management_groups.sql");
        let backfill = &migration[migration.find("INSERT INTO resource_group_counts").unwrap()..];
        query("DELETE FROM resource_group_counts").execute(tx.conn()).await.unwrap();
        query(backfill).execute(tx.conn()).await.unwrap();
        let found = reconcile_resource_groups(&mut tx, sub, &statuses, false).await.unwrap();
        assert!(found.is_empty(), "{found:?}");
    }
}
