//! Verification in either SQL engine (the decisions are [`crate::store::verify`]'s): one
//! consistent snapshot per subscription, and the rewrite of its tallies, counters and history, in
//! one transaction for the whole database.

use anyhow::Result;
use async_trait::async_trait;
use time::OffsetDateTime;
use uuid::Uuid;

use super::exemptions::assessment_statuses;
use super::{query, query_as, query_scalar, SqlBackend, WriteTx};
use crate::catalog;
use crate::score::{ScoreDetails, SecureScore};
use crate::store::engine::HistoryReason;
use crate::store::rows::{parse_status, ControlCountsRow, CountsRow, ScoreRow};
use crate::store::verify::{
    compare, derive, plan, Derived, MaintenanceEngine, Mismatch, Reconcile, Reconciled,
    RecordedScore, Snapshot, CATALOG_VERSION_KEY,
};

#[derive(sqlx::FromRow)]
struct TallyRow {
    control: String,
    resource_key: String,
    #[sqlx(flatten)]
    counts: CountsRow,
}

async fn snapshot(tx: &mut impl WriteTx, subscription: Uuid) -> Result<Snapshot> {
    let id = subscription.to_string();
    let statuses = assessment_statuses(tx, subscription)
        .await?
        .into_iter()
        .map(|row| Ok((row.resource_key, row.name_key, parse_status(&row.status)?)))
        .collect::<Result<_>>()?;
    let tallies = query_as::<TallyRow>(
        "SELECT control, resource_key, healthy, unhealthy, not_applicable FROM resource_tallies \
         WHERE subscription_id = $1",
    )
    .bind(&id)
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(|row| ((row.control, row.resource_key), row.counts.into()))
    .collect();
    let counts = query_as::<ControlCountsRow>(
        "SELECT control, healthy, unhealthy, not_applicable FROM control_counts \
         WHERE subscription_id = $1",
    )
    .bind(&id)
    .fetch_all(tx.conn())
    .await?
    .into_iter()
    .map(|row| (row.control, row.counts.into()))
    .collect();
    let last = query_as::<ScoreRow>(
        "SELECT current, max, percentage, weight FROM score_history \
         WHERE subscription_id = $1 AND initiative = $2 ORDER BY seq DESC LIMIT 1",
    )
    .bind(&id)
    .bind(catalog::ASC_SCORE)
    .fetch_optional(tx.conn())
    .await?
    .map(|row| {
        let d: ScoreDetails = row.details();
        RecordedScore {
            current: d.current,
            max: d.max,
            percentage: d.percentage,
            weight: row.weight,
        }
    });
    Ok(Snapshot { statuses, tallies, counts, last })
}

/// Replace a subscription's tallies and counters with the derived ones.
async fn write_state(tx: &mut impl WriteTx, id: &str, derived: &Derived) -> Result<()> {
    for table in ["resource_tallies", "control_counts"] {
        query(format!("DELETE FROM {table} WHERE subscription_id = $1"))
            .bind(id)
            .execute(tx.conn())
            .await?;
    }
    for ((control, resource), t) in &derived.tallies {
        query(
            "INSERT INTO resource_tallies (subscription_id, control, resource_key, healthy, \
             unhealthy, not_applicable) VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(control)
        .bind(resource)
        .bind(t.healthy)
        .bind(t.unhealthy)
        .bind(t.not_applicable)
        .execute(tx.conn())
        .await?;
    }
    for (control, c) in &derived.counts {
        query(
            "INSERT INTO control_counts (subscription_id, control, healthy, unhealthy, \
             not_applicable) VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(id)
        .bind(control)
        .bind(c.healthy)
        .bind(c.unhealthy)
        .bind(c.not_applicable)
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

async fn append_history(
    tx: &mut impl WriteTx,
    id: &str,
    score: SecureScore,
    reason: HistoryReason,
    now: OffsetDateTime,
) -> Result<()> {
    query(
        "INSERT INTO score_history (subscription_id, initiative, at, current, max, percentage, \
         weight, reason) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(id)
    .bind(catalog::ASC_SCORE)
    .bind(crate::arm::format_time(now))
    .bind(score.score.current)
    .bind(score.score.max)
    .bind(score.score.percentage)
    .bind(score.weight)
    .bind(reason.as_str())
    .execute(tx.conn())
    .await?;
    Ok(())
}

#[async_trait]
impl<B: SqlBackend> MaintenanceEngine for B {
    async fn integrity_check(&self) -> Result<Vec<String>> {
        SqlBackend::integrity_check(self).await
    }

    async fn reconcile(&self, mode: Reconcile, now: OffsetDateTime) -> Result<Reconciled> {
        let builtin = catalog::version();
        if mode == Reconcile::Catalog {
            // The common case, every open: a read, without queueing for the write lock.
            let recorded: Option<String> = query_scalar("SELECT value FROM meta WHERE key = $1")
                .bind(CATALOG_VERSION_KEY)
                .fetch_optional(self.reader())
                .await?;
            if recorded.as_deref() == Some(builtin) {
                return Ok(Reconciled {
                    recorded_catalog: recorded,
                    subscriptions: 0,
                    mismatches: Vec::new(),
                    history_points: Vec::new(),
                    committed: false,
                });
            }
        }
        // Check: a read transaction is one consistent snapshot while a server keeps writing.
        // Otherwise the write lock is taken up front, so no write slips between read and rewrite.
        let mut tx = match mode {
            Reconcile::Check => self.read_tx().await?,
            Reconcile::Repair | Reconcile::Catalog => self.rewrite_tx().await?,
        };
        let recorded: Option<String> = query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(CATALOG_VERSION_KEY)
            .fetch_optional(tx.conn())
            .await?;
        let ids: Vec<String> =
            query_scalar("SELECT id FROM subscriptions ORDER BY id").fetch_all(tx.conn()).await?;
        let mut out = Reconciled {
            recorded_catalog: recorded.clone(),
            subscriptions: ids.len(),
            mismatches: Vec::new(),
            history_points: Vec::new(),
            committed: false,
        };
        // A database without subscriptions has no counters to have been computed with anything.
        let catalog_changed =
            recorded.as_deref() != Some(builtin) && (recorded.is_some() || !ids.is_empty());
        if mode == Reconcile::Catalog && recorded.as_deref() == Some(builtin) {
            tx.finish_read().await?;
            return Ok(out);
        }
        if catalog_changed {
            out.mismatches.push(Mismatch::Catalog {
                recorded: recorded.clone(),
                builtin: builtin.to_owned(),
            });
        }
        let total = ids.len();
        for (done, id) in ids.iter().enumerate() {
            let subscription = Uuid::parse_str(id)?;
            let stored = snapshot(&mut tx, subscription).await?;
            let derived = derive(&stored.statuses);
            let found = compare(subscription, &stored, &derived);
            let todo = plan(mode, catalog_changed, &stored, &derived, &found);
            if todo.rewrite_counters {
                write_state(&mut tx, id, &derived).await?;
            }
            if let Some(reason) = todo.history_point {
                append_history(&mut tx, id, derived.score, reason, now).await?;
                out.history_points.push(subscription);
            }
            if mode == Reconcile::Catalog {
                tracing::info!(
                    %subscription,
                    done = done + 1,
                    total,
                    "rebuilding the counters for the built-in catalogue"
                );
            }
            out.mismatches.extend(found);
            // Resource group counters (management groups' module): checked, and rewritten
            // when they differ or the catalogue changed, beside the subscription's.
            let rewrite = mode != Reconcile::Check;
            let rg = super::resource_groups::reconcile_resource_groups(
                &mut tx,
                subscription,
                &stored.statuses,
                rewrite,
            )
            .await?;
            out.mismatches.extend(rg);
        }
        let changed = mode == Reconcile::Catalog || !out.mismatches.is_empty();
        if mode != Reconcile::Check && changed {
            query(
                "INSERT INTO meta (key, value) VALUES ($1, $2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            )
            .bind(CATALOG_VERSION_KEY)
            .bind(builtin)
            .execute(tx.conn())
            .await?;
            tx.announce().await?;
            tx.commit().await?;
            out.committed = true;
        } else {
            tx.finish_read().await?;
        }
        Ok(out)
    }
}
