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
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{Row, Sqlite, Transaction};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

use super::engine::{Assessment, Engine, HistoryPoint, Outcome, Subscription, Write};
use crate::arm::{format_time, parse_time, ResourceId, ScopeKind};
use crate::catalog;
use crate::score::{self, ControlCounts, ResourceTally, ScoreDetails, Status};

mod identity;

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

fn subscription_from_row(row: &SqliteRow) -> Result<Subscription> {
    Ok(Subscription {
        id: Uuid::parse_str(row.try_get("id")?)?,
        display_name: row.try_get("display_name")?,
        tenant_id: Uuid::parse_str(row.try_get("tenant_id")?)?,
        state: row.try_get("state")?,
    })
}

fn parse_status(s: &str) -> Result<Status> {
    Status::parse(s).with_context(|| format!("stored status '{s}' is not a status"))
}

fn assessment_from_row(row: &SqliteRow) -> Result<Assessment> {
    let json = |col: &str| -> Result<Option<serde_json::Value>> {
        let text: Option<String> = row.try_get(col)?;
        Ok(text.map(|t| serde_json::from_str(&t)).transpose()?)
    };
    let additional_data = match json("additional_data")? {
        Some(serde_json::Value::Object(map)) => Some(map),
        _ => None,
    };
    Ok(Assessment {
        resource_id: row.try_get("resource_id")?,
        name: row.try_get("name")?,
        status: parse_status(row.try_get("status")?)?,
        cause: row.try_get("cause")?,
        description: row.try_get("description")?,
        resource_details: json("resource_details")?.unwrap_or(serde_json::Value::Null),
        additional_data,
        partner_name: row.try_get("partner_name")?,
        first_evaluation_date: parse_time(row.try_get("first_evaluation_date")?)?,
        status_change_date: parse_time(row.try_get("status_change_date")?)?,
    })
}

fn counts_from_row(row: &SqliteRow) -> Result<ControlCounts> {
    Ok(ControlCounts {
        healthy: row.try_get("healthy")?,
        unhealthy: row.try_get("unhealthy")?,
        not_applicable: row.try_get("not_applicable")?,
    })
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
    let mut tally = sqlx::query(
        "SELECT healthy, unhealthy, not_applicable FROM resource_tallies \
         WHERE subscription_id = ?1 AND control = ?2 AND resource_key = ?3",
    )
    .bind(subscription)
    .bind(control)
    .bind(resource_key)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| counts_from_row(&row))
    .transpose()?
    .map_or_else(ResourceTally::default, |c| ResourceTally {
        healthy: c.healthy,
        unhealthy: c.unhealthy,
        not_applicable: c.not_applicable,
    });
    let mut counts = sqlx::query(
        "SELECT healthy, unhealthy, not_applicable FROM control_counts \
         WHERE subscription_id = ?1 AND control = ?2",
    )
    .bind(subscription)
    .bind(control)
    .fetch_optional(&mut **tx)
    .await?
    .map(|row| counts_from_row(&row))
    .transpose()?
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
    let rows = sqlx::query("SELECT control, healthy, unhealthy, not_applicable FROM control_counts WHERE subscription_id = ?1")
        .bind(subscription)
        .fetch_all(&mut **tx)
        .await?;
    let cat = catalog::builtin();
    let mut controls = Vec::with_capacity(rows.len());
    for row in &rows {
        let control: String = row.try_get("control")?;
        controls.push(score::control_score(cat.max_score(&control), &counts_from_row(row)?));
    }
    let secure = score::secure_score(controls.iter());
    let last = sqlx::query(
        "SELECT current, max, percentage, weight FROM score_history \
         WHERE subscription_id = ?1 AND initiative = ?2 ORDER BY seq DESC LIMIT 1",
    )
    .bind(subscription)
    .bind(catalog::ASC_SCORE)
    .fetch_optional(&mut **tx)
    .await?;
    let unchanged = match &last {
        Some(row) => {
            let prev = ScoreDetails {
                current: row.try_get("current")?,
                max: row.try_get("max")?,
                percentage: row.try_get("percentage")?,
            };
            let weight: i64 = row.try_get("weight")?;
            prev == secure.score && weight == secure.weight
        }
        None => false,
    };
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

fn history_from_row(row: &SqliteRow) -> Result<HistoryPoint> {
    Ok(HistoryPoint {
        at: parse_time(row.try_get("at")?)?,
        score: ScoreDetails {
            current: row.try_get("current")?,
            max: row.try_get("max")?,
            percentage: row.try_get("percentage")?,
        },
        weight: row.try_get("weight")?,
    })
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
        sqlx::query("SELECT id, display_name, tenant_id, state FROM subscriptions WHERE id = ?1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| subscription_from_row(&row))
            .transpose()
    }

    async fn subscriptions(&self) -> Result<Vec<Subscription>> {
        sqlx::query("SELECT id, display_name, tenant_id, state FROM subscriptions ORDER BY id")
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(subscription_from_row)
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
            let existing = sqlx::query(&format!(
                "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE resource_key = ?1 AND name_key = ?2"
            ))
            .bind(resource.key())
            .bind(&name_key)
            .fetch_optional(&mut *tx)
            .await?
            .map(|row| assessment_from_row(&row))
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
        sqlx::query(&format!("SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE resource_key = ?1 AND name_key = ?2"))
            .bind(resource_key)
            .bind(name_key)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| assessment_from_row(&row))
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
        sqlx::query(&sql)
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
            .iter()
            .map(assessment_from_row)
            .collect()
    }

    async fn control_counts(&self, subscription: Uuid) -> Result<Vec<(String, ControlCounts)>> {
        sqlx::query("SELECT control, healthy, unhealthy, not_applicable FROM control_counts WHERE subscription_id = ?1")
            .bind(subscription.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| Ok((row.try_get("control")?, counts_from_row(row)?)))
            .collect()
    }

    async fn recompute_counts(
        &self,
        subscription: Uuid,
    ) -> Result<BTreeMap<String, ControlCounts>> {
        let rows = sqlx::query(
            "SELECT resource_key, name_key, status FROM assessments WHERE subscription_id = ?1",
        )
        .bind(subscription.to_string())
        .fetch_all(&self.pool)
        .await?;
        let cat = catalog::builtin();
        let mut items: Vec<(String, Vec<&str>, Status)> = Vec::with_capacity(rows.len());
        for row in &rows {
            let name: String = row.try_get("name_key")?;
            let controls = cat.scored_controls(&name).iter().map(String::as_str).collect();
            items.push((
                row.try_get("resource_key")?,
                controls,
                parse_status(row.try_get("status")?)?,
            ));
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
        sqlx::query(
            "SELECT at, current, max, percentage, weight FROM score_history \
             WHERE subscription_id = ?1 AND initiative = ?2 AND at >= ?3 AND at <= ?4 ORDER BY seq",
        )
        .bind(subscription.to_string())
        .bind(initiative)
        .bind(format_time(from))
        .bind(format_time(to))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(history_from_row)
        .collect()
    }

    async fn history_before(
        &self,
        subscription: Uuid,
        initiative: &str,
        at: OffsetDateTime,
    ) -> Result<Option<HistoryPoint>> {
        sqlx::query(
            "SELECT at, current, max, percentage, weight FROM score_history \
             WHERE subscription_id = ?1 AND initiative = ?2 AND at <= ?3 ORDER BY seq DESC LIMIT 1",
        )
        .bind(subscription.to_string())
        .bind(initiative)
        .bind(format_time(at))
        .fetch_optional(&self.pool)
        .await?
        .map(|row| history_from_row(&row))
        .transpose()
    }

    async fn custom_metadata(
        &self,
        subscription: Uuid,
    ) -> Result<Vec<(String, serde_json::Value)>> {
        let rows = sqlx::query("SELECT name, properties FROM custom_metadata WHERE subscription_id = ?1 ORDER BY name_key")
            .bind(subscription.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                let props: String = row.try_get("properties")?;
                Ok((row.try_get("name")?, serde_json::from_str(&props)?))
            })
            .collect()
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
