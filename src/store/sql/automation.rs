//! Continuous export in either SQL engine (records and trait: [`crate::store::automation`]): the
//! automations table, the outbox written inside `apply`'s transaction ([`Changes`], [`record`]),
//! and the deliveries the worker makes (migration 0005).

use anyhow::{Context, Result};
use async_trait::async_trait;
use std::collections::BTreeSet;
use time::OffsetDateTime;
use uuid::Uuid;

use super::{
    query, query_as, query_scalar, value_rows, Query, SqlBackend, WriteTx, ROWS_PER_STATEMENT,
};
use crate::arm::format_time;
use crate::catalog;
use crate::score::ControlCounts;
use crate::store::automation::{
    assessment_payload, AutomationEngine, AutomationKey, AutomationRecord, Backlog, ChangeEvent,
    Delivery, EventKind, NewDelivery,
};
use crate::store::engine::{Assessment, Outcome};
use crate::store::rows::{CountsRow, ScoreRow};

/// What one write transaction changed that automations may export, for the subscriptions that
/// have automations; [`record`] writes it.
pub(in crate::store) struct Changes {
    /// The subscriptions written that have automations: for the others nothing is kept (a
    /// bulk import into a subscription without automations builds no payloads).
    watched: BTreeSet<String>,
    /// (subscription, resource key, change, payload)
    assessments: Vec<(String, String, &'static str, serde_json::Value)>,
    /// (subscription, control)
    controls: BTreeSet<(String, String)>,
    scores: Vec<String>,
}

impl Changes {
    /// Changes of these subscriptions (the transaction has locked them, so their automations
    /// do not change before it commits).
    pub(in crate::store) async fn watching<'s>(
        tx: &mut impl WriteTx,
        subscriptions: impl IntoIterator<Item = &'s String>,
    ) -> Result<Changes> {
        let subscriptions: Vec<&String> = subscriptions.into_iter().collect();
        let mut watched = BTreeSet::new();
        for chunk in subscriptions.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT DISTINCT subscription_id FROM automations WHERE subscription_id IN {}",
                value_rows(1, chunk.len(), 1)
            );
            let statement = query_scalar::<String>(sql).bind_all(chunk.iter().copied());
            watched.extend(statement.fetch_all(tx.conn()).await?);
        }
        Ok(Changes {
            watched,
            assessments: Vec::new(),
            controls: BTreeSet::new(),
            scores: Vec::new(),
        })
    }

    /// An assessment write or delete (`outcome`: the write's); nothing when the stored record
    /// did not change (a PUT of the same content).
    pub(in crate::store) fn assessment(
        &mut self,
        subscription: &str,
        resource_key: &str,
        before: Option<&Assessment>,
        outcome: Option<&Outcome>,
    ) {
        if !self.watched.contains(subscription) {
            return;
        }
        let after = match outcome {
            Some(Outcome::Created(a) | Outcome::Replaced(a)) => Some(a),
            _ => None,
        };
        let (change, record) = match (before, after) {
            (Some(b), Some(a)) if b == a => return,
            (Some(_), Some(a)) => ("updated", a),
            (None, Some(a)) => ("created", a),
            (Some(b), None) => ("deleted", b),
            (None, None) => return,
        };
        if before.map(|b| b.status) != after.map(|a| a.status) {
            for control in catalog::builtin().scored_controls(&record.name.to_ascii_lowercase()) {
                self.controls.insert((subscription.to_string(), control.clone()));
            }
        }
        // The assessment's own id: its lane, and what scopes are matched against.
        let key = format!(
            "{resource_key}/providers/microsoft.security/assessments/{}",
            record.name.to_ascii_lowercase()
        );
        self.assessments.push((subscription.to_string(), key, change, assessment_payload(record)));
    }

    /// The subscription's secure score changed (a history point was recorded).
    pub(in crate::store) fn score(&mut self, subscription: &str) {
        if !self.watched.contains(subscription) {
            return;
        }
        self.scores.push(subscription.to_string());
    }
}

fn score_key(subscription: &str) -> String {
    format!(
        "/subscriptions/{subscription}/providers/microsoft.security/securescores/{}",
        catalog::ASC_SCORE
    )
    .to_ascii_lowercase()
}

/// Write the outbox rows of one transaction's changes (subscriptions with automations only).
pub(in crate::store) async fn record(
    tx: &mut impl WriteTx,
    changes: Changes,
    now: OffsetDateTime,
) -> Result<()> {
    let mut rows: Vec<(String, EventKind, &'static str, String, serde_json::Value)> = Vec::new();
    for (sub, key, change, payload) in changes.assessments {
        rows.push((sub, EventKind::Assessment, change, key, payload));
    }
    for (sub, control) in changes.controls {
        let counts: ControlCounts = query_as::<CountsRow>(
            "SELECT healthy, unhealthy, not_applicable FROM control_counts \
             WHERE subscription_id = $1 AND control = $2",
        )
        .bind(&sub)
        .bind(&control)
        .fetch_optional(tx.conn())
        .await?
        .map(Into::into)
        .unwrap_or_default();
        let key =
            format!("{}/securescorecontrols/{}", score_key(&sub), control.to_ascii_lowercase());
        let payload = serde_json::json!({
            "control": control,
            "healthy": counts.healthy,
            "unhealthy": counts.unhealthy,
            "notApplicable": counts.not_applicable,
        });
        rows.push((sub, EventKind::SecureScoreControl, "updated", key, payload));
    }
    for sub in changes.scores {
        let Some(row) = query_as::<ScoreRow>(
            "SELECT current, max, percentage, weight FROM score_history \
             WHERE subscription_id = $1 AND initiative = $2 ORDER BY seq DESC LIMIT 1",
        )
        .bind(&sub)
        .bind(catalog::ASC_SCORE)
        .fetch_optional(tx.conn())
        .await?
        else {
            continue;
        };
        let d = row.details();
        let payload = serde_json::json!({
            "current": d.current, "max": d.max, "percentage": d.percentage, "weight": row.weight,
        });
        let key = score_key(&sub);
        rows.push((sub, EventKind::SecureScore, "updated", key, payload));
    }
    let at = format_time(now);
    for (sub, kind, change, key, payload) in rows {
        query(
            "INSERT INTO change_events (event_id, subscription_id, kind, change, resource_key, payload, at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(Uuid::new_v4().to_string())
        .bind(&sub)
        .bind(kind.as_str())
        .bind(change)
        .bind(&key)
        .bind(payload.to_string())
        .bind(&at)
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

/// One statement in a write transaction of its own. The generation is not bumped: nothing any
/// server caches depends on these tables, and a bump would drop every cached score view.
async fn plain_write<B: SqlBackend>(engine: &B, statement: Query<'_>) -> Result<u64> {
    let mut tx = engine.write_tx().await?;
    let done = statement.execute(tx.conn()).await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

const AUTOMATION_COLUMNS: &str =
    "subscription_id, resource_group, name, etag, spec, last_snapshot_at";

#[derive(sqlx::FromRow)]
struct AutomationRow {
    subscription_id: String,
    resource_group: String,
    name: String,
    etag: String,
    spec: String,
    last_snapshot_at: Option<i64>,
}

impl TryFrom<AutomationRow> for AutomationRecord {
    type Error = anyhow::Error;
    fn try_from(row: AutomationRow) -> Result<Self> {
        Ok(AutomationRecord {
            subscription: Uuid::parse_str(&row.subscription_id)?,
            spec: serde_json::from_str(&row.spec)
                .with_context(|| format!("stored automation '{}' is not JSON", row.name))?,
            resource_group: row.resource_group,
            name: row.name,
            etag: row.etag,
            last_snapshot_at: row.last_snapshot_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ChangeRow {
    seq: i64,
    event_id: String,
    subscription_id: String,
    kind: String,
    change: String,
    resource_key: String,
    payload: String,
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    seq: i64,
    event_id: String,
    subscription_id: String,
    automation_id: String,
    action_index: i64,
    lane: String,
    event_source: String,
    change: String,
    target: String,
    body: String,
    attempts: i64,
}

/// The ordering lane of a delivery: one automation action, one resource.
fn lane(d: &NewDelivery) -> String {
    format!("{}|{}|{}", d.automation_id.to_ascii_lowercase(), d.action_index, d.resource_key)
}

async fn insert_deliveries(
    tx: &mut impl WriteTx,
    deliveries: &[NewDelivery],
    now_ms: i64,
) -> Result<()> {
    for d in deliveries {
        query(
            "INSERT INTO deliveries (event_id, subscription_id, automation_key, automation_id, action_index, \
             lane, event_source, change, target, body, next_attempt_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(d.event_id.to_string())
        .bind(d.subscription.to_string())
        .bind(d.automation_id.to_ascii_lowercase())
        .bind(&d.automation_id)
        .bind(i64::try_from(d.action_index).unwrap_or(i64::MAX))
        .bind(lane(d))
        .bind(&d.event_source)
        .bind(&d.change)
        .bind(d.target.to_string())
        .bind(d.body.to_string())
        .bind(now_ms)
        .execute(tx.conn())
        .await?;
    }
    Ok(())
}

#[async_trait]
impl<B: SqlBackend> AutomationEngine for B {
    async fn put_automation(&self, r: &AutomationRecord) -> Result<Option<bool>> {
        let mut tx = self.write_tx().await?;
        let sub = r.subscription.to_string();
        if tx.lock_subscriptions(vec![sub.clone()]).await?.is_empty() {
            tx.finish_read().await?;
            return Ok(None);
        }
        let (g, n) = (r.resource_group.to_ascii_lowercase(), r.name.to_ascii_lowercase());
        let existed: Option<i64> = query_scalar(
            "SELECT CAST(1 AS BIGINT) FROM automations WHERE subscription_id = $1 AND resource_group_key = $2 AND name_key = $3",
        )
        .bind(&sub)
        .bind(&g)
        .bind(&n)
        .fetch_optional(tx.conn())
        .await?;
        query(
            "INSERT INTO automations (subscription_id, resource_group_key, name_key, resource_group, name, etag, spec, last_snapshot_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, NULL) \
             ON CONFLICT (subscription_id, resource_group_key, name_key) DO UPDATE SET etag = excluded.etag, spec = excluded.spec",
        )
        .bind(&sub)
        .bind(&g)
        .bind(&n)
        .bind(&r.resource_group)
        .bind(&r.name)
        .bind(&r.etag)
        .bind(r.spec.to_string())
        .execute(tx.conn())
        .await?;
        tx.commit().await?;
        Ok(Some(existed.is_none()))
    }

    async fn automation(
        &self,
        subscription: Uuid,
        group_key: &str,
        name_key: &str,
    ) -> Result<Option<AutomationRecord>> {
        query_as::<AutomationRow>(format!(
            "SELECT {AUTOMATION_COLUMNS} FROM automations \
             WHERE subscription_id = $1 AND resource_group_key = $2 AND name_key = $3"
        ))
        .bind(subscription.to_string())
        .bind(group_key)
        .bind(name_key)
        .fetch_optional(self.reader())
        .await?
        .map(AutomationRecord::try_from)
        .transpose()
    }

    async fn automations(
        &self,
        subscription: Uuid,
        group_key: Option<&str>,
        after: Option<&AutomationKey>,
        limit: usize,
    ) -> Result<Vec<AutomationRecord>> {
        let (after_group, after_name) = after.cloned().unwrap_or_default();
        query_as::<AutomationRow>(format!(
            "SELECT {AUTOMATION_COLUMNS} FROM automations WHERE subscription_id = $1 \
             AND ($2 IS NULL OR resource_group_key = $2) \
             AND (resource_group_key, name_key) > ($3, $4) \
             ORDER BY resource_group_key, name_key LIMIT $5"
        ))
        .bind(subscription.to_string())
        .bind(group_key)
        .bind(after_group)
        .bind(after_name)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.reader())
        .await?
        .into_iter()
        .map(AutomationRecord::try_from)
        .collect()
    }

    async fn all_automations(&self) -> Result<Vec<AutomationRecord>> {
        query_as::<AutomationRow>(format!(
            "SELECT {AUTOMATION_COLUMNS} FROM automations ORDER BY subscription_id, resource_group_key, name_key"
        ))
        .fetch_all(self.reader())
        .await?
        .into_iter()
        .map(AutomationRecord::try_from)
        .collect()
    }

    async fn delete_automation(
        &self,
        subscription: Uuid,
        group_key: &str,
        name_key: &str,
    ) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let sub = subscription.to_string();
        let done = query(
            "DELETE FROM automations WHERE subscription_id = $1 AND resource_group_key = $2 AND name_key = $3",
        )
        .bind(&sub)
        .bind(group_key)
        .bind(name_key)
        .execute(tx.conn())
        .await?;
        // Its waiting deliveries go with it (a trigger of migration 0005).
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }

    async fn set_snapshot_at(
        &self,
        subscription: Uuid,
        group_key: &str,
        name_key: &str,
        at_ms: i64,
    ) -> Result<()> {
        plain_write(
            self,
            query(
                "UPDATE automations SET last_snapshot_at = $4 \
                 WHERE subscription_id = $1 AND resource_group_key = $2 AND name_key = $3",
            )
            .bind(subscription.to_string())
            .bind(group_key)
            .bind(name_key)
            .bind(at_ms),
        )
        .await?;
        Ok(())
    }

    async fn change_events(&self, limit: usize) -> Result<Vec<ChangeEvent>> {
        let rows = query_as::<ChangeRow>(
            "SELECT seq, event_id, subscription_id, kind, change, resource_key, payload \
             FROM change_events ORDER BY seq LIMIT $1",
        )
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(ChangeEvent {
                    seq: r.seq,
                    event_id: Uuid::parse_str(&r.event_id)?,
                    subscription: Uuid::parse_str(&r.subscription_id)?,
                    kind: EventKind::parse(&r.kind)
                        .with_context(|| format!("stored event kind '{}' is unknown", r.kind))?,
                    change: r.change,
                    resource_key: r.resource_key,
                    payload: serde_json::from_str(&r.payload)?,
                })
            })
            .collect()
    }

    async fn route_changes(
        &self,
        seqs: &[i64],
        deliveries: &[NewDelivery],
        now_ms: i64,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_deliveries(&mut tx, deliveries, now_ms).await?;
        for seq in seqs {
            query("DELETE FROM change_events WHERE seq = $1").bind(seq).execute(tx.conn()).await?;
        }
        tx.commit().await
    }

    async fn enqueue(&self, deliveries: &[NewDelivery], now_ms: i64) -> Result<()> {
        let mut tx = self.write_tx().await?;
        insert_deliveries(&mut tx, deliveries, now_ms).await?;
        tx.commit().await
    }

    async fn due_deliveries(&self, now_ms: i64, limit: usize) -> Result<Vec<Delivery>> {
        // Only a lane's oldest row: a resource's later event waits for its earlier one.
        let rows = query_as::<DeliveryRow>(
            "SELECT d.seq, d.event_id, d.subscription_id, d.automation_id, d.action_index, d.lane, \
             d.event_source, d.change, d.target, d.body, d.attempts FROM deliveries d \
             WHERE d.next_attempt_at <= $1 \
             AND d.seq = (SELECT MIN(e.seq) FROM deliveries e WHERE e.lane = d.lane) \
             ORDER BY d.seq LIMIT $2",
        )
        .bind(now_ms)
        .bind(i64::try_from(limit).unwrap_or(i64::MAX))
        .fetch_all(self.reader())
        .await?;
        rows.into_iter()
            .map(|r| {
                let resource_key = r.lane.splitn(3, '|').nth(2).unwrap_or_default().to_string();
                Ok(Delivery {
                    seq: r.seq,
                    attempts: r.attempts,
                    new: NewDelivery {
                        event_id: Uuid::parse_str(&r.event_id)?,
                        subscription: Uuid::parse_str(&r.subscription_id)?,
                        automation_id: r.automation_id,
                        action_index: usize::try_from(r.action_index).unwrap_or_default(),
                        resource_key,
                        event_source: r.event_source,
                        change: r.change,
                        target: serde_json::from_str(&r.target)?,
                        body: serde_json::from_str(&r.body)?,
                    },
                })
            })
            .collect()
    }

    async fn delivered(&self, seq: i64) -> Result<()> {
        plain_write(self, query("DELETE FROM deliveries WHERE seq = $1").bind(seq)).await?;
        Ok(())
    }

    async fn retry_later(&self, seq: i64, next_attempt_ms: i64, error: &str) -> Result<()> {
        plain_write(
            self,
            query(
                "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = $2, last_error = $3 \
                 WHERE seq = $1",
            )
            .bind(seq)
            .bind(next_attempt_ms)
            .bind(error),
        )
        .await?;
        Ok(())
    }

    async fn backlog(&self) -> Result<Backlog> {
        let (changes, deliveries): (i64, i64) = query_as(
            "SELECT (SELECT COUNT(*) FROM change_events), (SELECT COUNT(*) FROM deliveries)",
        )
        .fetch_one(self.reader())
        .await?;
        Ok(Backlog { changes, deliveries })
    }
}
