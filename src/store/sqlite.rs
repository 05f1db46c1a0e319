//! The SQLite engine: the embedded default store (WAL mode, one file in the data directory) and
//! the throw-away in-memory store.
//!
//! Durability: `synchronous=FULL`, so an acknowledged write survives a crash of the process and of
//! the machine. Writers take the write lock up front (`BEGIN IMMEDIATE`) so that concurrent
//! writers — in this process or another one on the same file — queue on `busy_timeout` instead of
//! failing on a lock upgrade.

use anyhow::{Context, Result};
use async_trait::async_trait;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

use super::engine::{
    Assessment, Engine, HistoryPoint, HistoryReason, Outcome, Subscription, Write,
};
use crate::arm::{format_time, parse_time, ResourceId, ScopeKind};
use crate::catalog;
use crate::score::{self, ControlCounts, ResourceTally, ScoreDetails, Status};

mod identity;
mod verify;

pub(crate) struct SqliteEngine {
    pub(super) pool: SqlitePool,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub const DB_FILE: &str = "securescore.db";

impl SqliteEngine {
    pub async fn open(data_dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let path = data_dir.join(DB_FILE);
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        // An embedded file does not go away under us: skip the per-acquire ping (measurable on reads).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot open the SQLite database {}", path.display()))?;
        Self::migrated(pool).await
    }

    pub async fn memory() -> Result<Self> {
        // One connection that never closes: each in-memory connection is its own database.
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool).await
    }

    async fn migrated(pool: SqlitePool) -> Result<Self> {
        MIGRATOR.run(&pool).await.context("cannot migrate the SQLite database")?;
        Ok(SqliteEngine { pool })
    }

    pub(super) async fn write_tx(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.pool.begin_with("BEGIN IMMEDIATE").await?)
    }
}

pub(super) async fn bump_generation(tx: &mut Transaction<'_, Sqlite>) -> Result<()> {
    sqlx::query("UPDATE generation SET value = value + 1 WHERE id = 1").execute(&mut **tx).await?;
    Ok(())
}

/// Row mapping: each query reads into a small `FromRow` struct of the stored column types, then
/// converts it into the record (parsing GUIDs, statuses, times and JSON) with its own errors.
#[derive(sqlx::FromRow)]
struct SubscriptionRow {
    id: String,
    display_name: String,
    tenant_id: String,
    state: String,
}

impl TryFrom<SubscriptionRow> for Subscription {
    type Error = anyhow::Error;
    fn try_from(row: SubscriptionRow) -> Result<Self> {
        Ok(Subscription {
            id: Uuid::parse_str(&row.id)?,
            display_name: row.display_name,
            tenant_id: Uuid::parse_str(&row.tenant_id)?,
            state: row.state,
        })
    }
}

pub(super) fn parse_status(s: &str) -> Result<Status> {
    Status::parse(s).with_context(|| format!("stored status '{s}' is not a status"))
}

#[derive(sqlx::FromRow)]
struct AssessmentRow {
    resource_id: String,
    name: String,
    status: String,
    cause: Option<String>,
    description: Option<String>,
    resource_details: Option<String>,
    additional_data: Option<String>,
    partner_name: Option<String>,
    first_evaluation_date: String,
    status_change_date: String,
}

impl TryFrom<AssessmentRow> for Assessment {
    type Error = anyhow::Error;
    fn try_from(row: AssessmentRow) -> Result<Self> {
        let json = |text: Option<String>| -> Result<Option<serde_json::Value>> {
            Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
        };
        let additional_data = match json(row.additional_data)? {
            Some(serde_json::Value::Object(map)) => Some(map),
            _ => None,
        };
        Ok(Assessment {
            resource_id: row.resource_id,
            name: row.name,
            status: parse_status(&row.status)?,
            cause: row.cause,
            description: row.description,
            resource_details: json(row.resource_details)?.unwrap_or(serde_json::Value::Null),
            additional_data,
            partner_name: row.partner_name,
            first_evaluation_date: parse_time(&row.first_evaluation_date)?,
            status_change_date: parse_time(&row.status_change_date)?,
        })
    }
}

/// The three counters of a `resource_tallies` or `control_counts` row.
#[derive(sqlx::FromRow)]
pub(super) struct CountsRow {
    healthy: i64,
    unhealthy: i64,
    not_applicable: i64,
}

impl From<CountsRow> for ControlCounts {
    fn from(row: CountsRow) -> Self {
        ControlCounts {
            healthy: row.healthy,
            unhealthy: row.unhealthy,
            not_applicable: row.not_applicable,
        }
    }
}

impl From<CountsRow> for ResourceTally {
    fn from(row: CountsRow) -> Self {
        ResourceTally {
            healthy: row.healthy,
            unhealthy: row.unhealthy,
            not_applicable: row.not_applicable,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct ControlCountsRow {
    pub(super) control: String,
    #[sqlx(flatten)]
    pub(super) counts: CountsRow,
}

/// A recorded secure score (`score_history` without its time).
#[derive(sqlx::FromRow)]
pub(super) struct ScoreRow {
    current: f64,
    max: i64,
    percentage: f64,
    pub(super) weight: i64,
}

impl ScoreRow {
    pub(super) fn details(&self) -> ScoreDetails {
        ScoreDetails { current: self.current, max: self.max, percentage: self.percentage }
    }
}

#[derive(sqlx::FromRow)]
pub(super) struct HistoryRow {
    at: String,
    #[sqlx(flatten)]
    score: ScoreRow,
    reason: Option<String>,
}

impl TryFrom<HistoryRow> for HistoryPoint {
    type Error = anyhow::Error;
    fn try_from(row: HistoryRow) -> Result<Self> {
        Ok(HistoryPoint {
            at: parse_time(&row.at)?,
            score: row.score.details(),
            weight: row.score.weight,
            reason: row.reason.as_deref().map(HistoryReason::parse).transpose()?,
        })
    }
}

pub(super) const HISTORY_COLUMNS: &str = "at, current, max, percentage, weight, reason";

/// What scoring needs of one stored assessment.
#[derive(sqlx::FromRow)]
pub(super) struct StatusRow {
    pub(super) resource_key: String,
    pub(super) name_key: String,
    pub(super) status: String,
}

/// The scoring inputs of a subscription's assessments, on any connection (pool or transaction).
pub(super) async fn assessment_statuses<'c>(
    conn: impl sqlx::Executor<'c, Database = Sqlite>,
    subscription: Uuid,
) -> Result<Vec<StatusRow>> {
    Ok(sqlx::query_as(
        "SELECT resource_key, name_key, status FROM assessments WHERE subscription_id = ?1",
    )
    .bind(subscription.to_string())
    .fetch_all(conn)
    .await?)
}

const ASSESSMENT_COLUMNS: &str =
    "resource_id, name, status, cause, description, resource_details, \
     additional_data, partner_name, first_evaluation_date, status_change_date";

/// One (control, resource) step of the maintained state, in SQL around `score::step`.
async fn step(
    tx: &mut Transaction<'_, Sqlite>,
    subscription: &str,
    control: &str,
    resource_key: &str,
    old: Option<Status>,
    new: Option<Status>,
) -> Result<()> {
    let mut tally: ResourceTally = sqlx::query_as::<_, CountsRow>(
        "SELECT healthy, unhealthy, not_applicable FROM resource_tallies \
         WHERE subscription_id = ?1 AND control = ?2 AND resource_key = ?3",
    )
    .bind(subscription)
    .bind(control)
    .bind(resource_key)
    .fetch_optional(&mut **tx)
    .await?
    .map(Into::into)
    .unwrap_or_default();
    let mut counts: ControlCounts = sqlx::query_as::<_, CountsRow>(
        "SELECT healthy, unhealthy, not_applicable FROM control_counts \
         WHERE subscription_id = ?1 AND control = ?2",
    )
    .bind(subscription)
    .bind(control)
    .fetch_optional(&mut **tx)
    .await?
    .map(Into::into)
    .unwrap_or_default();

    score::step(&mut tally, &mut counts, old, new);

    if tally.is_empty() {
        sqlx::query(
            "DELETE FROM resource_tallies WHERE subscription_id = ?1 AND control = ?2 AND resource_key = ?3",
        )
        .bind(subscription)
        .bind(control)
        .bind(resource_key)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO resource_tallies (subscription_id, control, resource_key, healthy, unhealthy, not_applicable) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) ON CONFLICT (subscription_id, control, resource_key) DO UPDATE SET \
             healthy = excluded.healthy, unhealthy = excluded.unhealthy, not_applicable = excluded.not_applicable",
        )
        .bind(subscription)
        .bind(control)
        .bind(resource_key)
        .bind(tally.healthy)
        .bind(tally.unhealthy)
        .bind(tally.not_applicable)
        .execute(&mut **tx)
        .await?;
    }
    if counts.is_assessed() {
        sqlx::query(
            "INSERT INTO control_counts (subscription_id, control, healthy, unhealthy, not_applicable) \
             VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT (subscription_id, control) DO UPDATE SET \
             healthy = excluded.healthy, unhealthy = excluded.unhealthy, not_applicable = excluded.not_applicable",
        )
        .bind(subscription)
        .bind(control)
        .bind(counts.healthy)
        .bind(counts.unhealthy)
        .bind(counts.not_applicable)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query("DELETE FROM control_counts WHERE subscription_id = ?1 AND control = ?2")
            .bind(subscription)
            .bind(control)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Record the subscription's secure score if it differs from the last recorded one.
async fn record_history(
    tx: &mut Transaction<'_, Sqlite>,
    subscription: &str,
    now: OffsetDateTime,
) -> Result<()> {
    let rows = sqlx::query_as::<_, ControlCountsRow>("SELECT control, healthy, unhealthy, not_applicable FROM control_counts WHERE subscription_id = ?1")
        .bind(subscription)
        .fetch_all(&mut **tx)
        .await?;
    let cat = catalog::builtin();
    let mut controls = Vec::with_capacity(rows.len());
    for row in rows {
        controls.push(score::control_score(cat.max_score(&row.control), &row.counts.into()));
    }
    let secure = score::secure_score(controls.iter());
    let last = sqlx::query_as::<_, ScoreRow>(
        "SELECT current, max, percentage, weight FROM score_history \
         WHERE subscription_id = ?1 AND initiative = ?2 ORDER BY seq DESC LIMIT 1",
    )
    .bind(subscription)
    .bind(catalog::ASC_SCORE)
    .fetch_optional(&mut **tx)
    .await?;
    let unchanged =
        last.is_some_and(|row| row.details() == secure.score && row.weight == secure.weight);
    if !unchanged {
        sqlx::query(
            "INSERT INTO score_history (subscription_id, initiative, at, current, max, percentage, weight) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        )
        .bind(subscription)
        .bind(catalog::ASC_SCORE)
        .bind(format_time(now))
        .bind(secure.score.current)
        .bind(secure.score.max)
        .bind(secure.score.percentage)
        .bind(secure.weight)
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}

#[async_trait]
impl Engine for SqliteEngine {
    async fn generation(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT value FROM generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await?)
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<String> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        let v = sqlx::query_scalar("SELECT value FROM meta WHERE key = ?1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let id = sub.id.to_string();
        let existed: Option<String> =
            sqlx::query_scalar("SELECT id FROM subscriptions WHERE id = ?1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO subscriptions (id, display_name, tenant_id, state, created_at) VALUES (?1, ?2, ?3, ?4, ?5) \
             ON CONFLICT (id) DO UPDATE SET display_name = excluded.display_name, \
             tenant_id = excluded.tenant_id, state = excluded.state",
        )
        .bind(&id)
        .bind(&sub.display_name)
        .bind(sub.tenant_id.to_string())
        .bind(&sub.state)
        .bind(format_time(OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(existed.is_none())
    }

    async fn subscription(&self, id: Uuid) -> Result<Option<Subscription>> {
        sqlx::query_as::<_, SubscriptionRow>(
            "SELECT id, display_name, tenant_id, state FROM subscriptions WHERE id = ?1",
        )
        .bind(id.to_string())
        .fetch_optional(&self.pool)
        .await?
        .map(Subscription::try_from)
        .transpose()
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        sqlx::query_as::<_, SubscriptionRow>(
            "SELECT id, display_name, tenant_id, state FROM subscriptions ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Subscription::try_from)
        .collect()
    }

    async fn remove_subscription(&self, id: Uuid) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let id = id.to_string();
        for table in [
            "assessments",
            "resource_tallies",
            "control_counts",
            "score_history",
            "custom_metadata",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE subscription_id = ?1"))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        let removed = sqlx::query("DELETE FROM subscriptions WHERE id = ?1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(removed.rows_affected() > 0)
    }

    async fn apply(&self, writes: &[Write], now: OffsetDateTime) -> Result<Vec<Outcome>> {
        let mut tx = self.write_tx().await?;
        let mut exists: HashMap<Uuid, bool> = HashMap::new();
        let mut touched: Vec<String> = Vec::new();
        let mut outcomes = Vec::with_capacity(writes.len());
        let now_text = format_time(now);
        let cat = catalog::builtin();
        for write in writes {
            let resource = write.resource();
            let sub = resource.subscription();
            let sub_text = sub.to_string();
            let known = match exists.get(&sub) {
                Some(&known) => known,
                None => {
                    let found: Option<String> =
                        sqlx::query_scalar("SELECT id FROM subscriptions WHERE id = ?1")
                            .bind(&sub_text)
                            .fetch_optional(&mut *tx)
                            .await?;
                    exists.insert(sub, found.is_some());
                    found.is_some()
                }
            };
            if !known {
                outcomes.push(Outcome::NoSubscription);
                continue;
            }
            let name = match write {
                Write::Put(a) => &a.name,
                Write::Delete { name, .. } => name,
            };
            let name_key = name.to_ascii_lowercase();
            let existing = sqlx::query_as::<_, AssessmentRow>(&format!(
                "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE resource_key = ?1 AND name_key = ?2"
            ))
            .bind(resource.key())
            .bind(&name_key)
            .fetch_optional(&mut *tx)
            .await?
            .map(Assessment::try_from)
            .transpose()?;
            let old = existing.as_ref().map(|a| a.status);
            let new = match write {
                Write::Put(input) => {
                    let (first_evaluation_date, status_change_date, resource_id, stored_name) =
                        match &existing {
                            Some(e) => (
                                e.first_evaluation_date,
                                if e.status == input.status { e.status_change_date } else { now },
                                e.resource_id.clone(),
                                e.name.clone(),
                            ),
                            None => {
                                (now, now, input.resource.as_str().to_string(), input.name.clone())
                            }
                        };
                    let additional = input
                        .additional_data
                        .as_ref()
                        .map(|m| serde_json::Value::Object(m.clone()).to_string());
                    sqlx::query(
                        "INSERT INTO assessments (resource_key, name_key, subscription_id, resource_id, name, status, cause, \
                         description, resource_details, additional_data, partner_name, first_evaluation_date, status_change_date) \
                         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
                         ON CONFLICT (resource_key, name_key) DO UPDATE SET status = excluded.status, cause = excluded.cause, \
                         description = excluded.description, resource_details = excluded.resource_details, \
                         additional_data = excluded.additional_data, partner_name = excluded.partner_name, \
                         status_change_date = excluded.status_change_date",
                    )
                    .bind(resource.key())
                    .bind(&name_key)
                    .bind(&sub_text)
                    .bind(&resource_id)
                    .bind(&stored_name)
                    .bind(input.status.as_str())
                    .bind(&input.cause)
                    .bind(&input.description)
                    .bind(input.resource_details.to_string())
                    .bind(additional)
                    .bind(&input.partner_name)
                    .bind(format_time(first_evaluation_date))
                    .bind(if status_change_date == now { now_text.clone() } else { format_time(status_change_date) })
                    .execute(&mut *tx)
                    .await?;
                    let stored = Assessment {
                        resource_id,
                        name: stored_name,
                        status: input.status,
                        cause: input.cause.clone(),
                        description: input.description.clone(),
                        resource_details: input.resource_details.clone(),
                        additional_data: input.additional_data.clone(),
                        partner_name: input.partner_name.clone(),
                        first_evaluation_date,
                        status_change_date,
                    };
                    outcomes.push(if existing.is_some() {
                        Outcome::Replaced(stored)
                    } else {
                        Outcome::Created(stored)
                    });
                    Some(input.status)
                }
                Write::Delete { .. } => {
                    if existing.is_some() {
                        sqlx::query(
                            "DELETE FROM assessments WHERE resource_key = ?1 AND name_key = ?2",
                        )
                        .bind(resource.key())
                        .bind(&name_key)
                        .execute(&mut *tx)
                        .await?;
                        outcomes.push(Outcome::Deleted);
                    } else {
                        outcomes.push(Outcome::Absent);
                    }
                    None
                }
            };
            if old != new {
                for control in cat.scored_controls(&name_key) {
                    step(&mut tx, &sub_text, control, resource.key(), old, new).await?;
                }
                if !touched.contains(&sub_text) {
                    touched.push(sub_text);
                }
            }
        }
        for sub in &touched {
            record_history(&mut tx, sub, now).await?;
        }
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn assessment(&self, resource_key: &str, name_key: &str) -> Result<Option<Assessment>> {
        sqlx::query_as::<_, AssessmentRow>(&format!("SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE resource_key = ?1 AND name_key = ?2"))
            .bind(resource_key)
            .bind(name_key)
            .fetch_optional(&self.pool)
            .await?
            .map(Assessment::try_from)
            .transpose()
    }

    async fn assessments(
        &self,
        scope: &ResourceId,
        after: Option<&(String, String)>,
        limit: usize,
    ) -> Result<Vec<Assessment>> {
        // The scope and everything below it: keys equal to the scope or starting with "scope/"
        // ('0' is the character after '/', so the range needs no LIKE escaping).
        let (after_resource, after_name) = after.cloned().unwrap_or_default();
        let sql = format!(
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE subscription_id = ?1 \
             AND (?2 OR resource_key = ?3 OR (resource_key >= ?4 AND resource_key < ?5)) \
             AND (resource_key, name_key) > (?6, ?7) ORDER BY resource_key, name_key LIMIT ?8"
        );
        sqlx::query_as::<_, AssessmentRow>(&sql)
            .bind(scope.subscription().to_string())
            .bind(scope.kind() == ScopeKind::Subscription)
            .bind(scope.key())
            .bind(format!("{}/", scope.key()))
            .bind(format!("{}0", scope.key()))
            .bind(after_resource)
            .bind(after_name)
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Assessment::try_from)
            .collect()
    }

    async fn control_counts(&self, subscription: Uuid) -> Result<Vec<(String, ControlCounts)>> {
        Ok(sqlx::query_as::<_, ControlCountsRow>("SELECT control, healthy, unhealthy, not_applicable FROM control_counts WHERE subscription_id = ?1")
            .bind(subscription.to_string())
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| (row.control, row.counts.into()))
            .collect())
    }

    async fn recompute_counts(
        &self,
        subscription: Uuid,
    ) -> Result<BTreeMap<String, ControlCounts>> {
        let rows = assessment_statuses(&self.pool, subscription).await?;
        let cat = catalog::builtin();
        let mut items: Vec<(String, Vec<&str>, Status)> = Vec::with_capacity(rows.len());
        for row in rows {
            let controls = cat.scored_controls(&row.name_key).iter().map(String::as_str).collect();
            items.push((row.resource_key, controls, parse_status(&row.status)?));
        }
        Ok(score::recompute(items.iter().map(|(r, c, s)| (r.as_str(), c.as_slice(), *s))))
    }

    async fn history(
        &self,
        subscription: Uuid,
        initiative: &str,
        from: OffsetDateTime,
        to: OffsetDateTime,
    ) -> Result<Vec<HistoryPoint>> {
        sqlx::query_as::<_, HistoryRow>(&format!(
            "SELECT {HISTORY_COLUMNS} FROM score_history \
             WHERE subscription_id = ?1 AND initiative = ?2 AND at >= ?3 AND at <= ?4 ORDER BY seq",
        ))
        .bind(subscription.to_string())
        .bind(initiative)
        .bind(format_time(from))
        .bind(format_time(to))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(HistoryPoint::try_from)
        .collect()
    }

    async fn history_before(
        &self,
        subscription: Uuid,
        initiative: &str,
        at: OffsetDateTime,
    ) -> Result<Option<HistoryPoint>> {
        sqlx::query_as::<_, HistoryRow>(&format!(
            "SELECT {HISTORY_COLUMNS} FROM score_history \
             WHERE subscription_id = ?1 AND initiative = ?2 AND at <= ?3 ORDER BY seq DESC LIMIT 1",
        ))
        .bind(subscription.to_string())
        .bind(initiative)
        .bind(format_time(at))
        .fetch_optional(&self.pool)
        .await?
        .map(HistoryPoint::try_from)
        .transpose()
    }

    async fn custom_metadata(
        &self,
        subscription: Uuid,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, properties FROM custom_metadata WHERE subscription_id = ?1 ORDER BY name_key")
            .bind(subscription.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.into_iter().map(|(name, props)| Ok((name, serde_json::from_str(&props)?))).collect()
    }

    async fn put_custom_metadata(
        &self,
        subscription: Uuid,
        name: &str,
        properties: &serde_json::Value,
    ) -> Result<()> {
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO custom_metadata (subscription_id, name_key, name, properties) VALUES (?1, ?2, ?3, ?4) \
             ON CONFLICT (subscription_id, name_key) DO UPDATE SET properties = excluded.properties",
        )
        .bind(subscription.to_string())
        .bind(name.to_ascii_lowercase())
        .bind(name)
        .bind(properties.to_string())
        .execute(&mut *tx)
        .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_custom_metadata(&self, subscription: Uuid, name: &str) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let done =
            sqlx::query("DELETE FROM custom_metadata WHERE subscription_id = ?1 AND name_key = ?2")
                .bind(subscription.to_string())
                .bind(name.to_ascii_lowercase())
                .execute(&mut *tx)
                .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}
