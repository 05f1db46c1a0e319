//! The PostgreSQL engine: one database shared by any number of stateless server replicas (and the
//! CLI), on this machine or others.
//!
//! It keeps the SQLite engine's schema and encodings (migrations/postgres), so row mapping is
//! shared (`store::rows`); the SQL differs in placeholders, locking and a few functions.
//!
//! Concurrency: every write transaction that moves a subscription's maintained state first locks
//! the rows of the subscriptions it touches (`SELECT … FOR UPDATE`, in id order so that two
//! writers never wait for each other in a cycle), then does the same read-compute-write as SQLite
//! under its file lock. Row locks rather than SERIALIZABLE: writers of the same subscription queue
//! (they would conflict anyway, on the same counter rows) instead of failing and being retried,
//! writers of different subscriptions never wait for each other, and no write needs a retry loop.
//!
//! Change feed: each such write bumps its subscriptions' `version` and sends
//! `pg_notify('securescore_changes', '<id>:<version>')` inside the transaction (delivered on
//! commit only); writes not tied to one subscription (identity, management groups, …) send `*`.
//! [`PgEngine::change_feed`] turns them into [`Change`]s (module `feed`).
//!
//! Faults: a pool without a free connection within [`ACQUIRE_TIMEOUT`], a lost connection, a full
//! disk, a deadlock or too many connections are [`Unavailable`] (503); see [`fault`].

use anyhow::{Context, Result};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgPool, PgPoolOptions};
use sqlx::Postgres;
use std::collections::{BTreeMap, BTreeSet};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

use super::engine::{
    Assessment, Change, Engine, HistoryPoint, HistoryReason, Outcome, Subscription, Write,
};
pub(super) use super::rows::{
    parse_status, ControlCountsRow, CountsRow, ScoreRow, StatusRow, HISTORY_COLUMNS,
};
use super::rows::{AssessmentRow, HistoryRow, SubscriptionRow, ASSESSMENT_COLUMNS};
use super::{Health, Unavailable};
use crate::arm::{format_time, ResourceId, ScopeKind};
use crate::catalog;
use crate::score::{self, ControlCounts, ResourceTally, Status};

mod exemption_rows;
mod exemptions;
mod feed;
mod tracker;

/// The outbox of continuous export, shared by the SQL engines.
use super::sql::automation as outbox;

pub(crate) struct PgEngine {
    pub(super) pool: PgPool,
    health: Arc<Health>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

/// Connections per process: a replica's requests share them; PostgreSQL's default
/// `max_connections` (100) then holds several replicas and the CLI.
const MAX_CONNECTIONS: u32 = 16;

/// How long a request waits for a pooled connection (or for a new one to open) before its
/// request fails with 503 + Retry-After: long enough for a burst, short enough that a client
/// retries rather than hangs when the pool is exhausted or the server unreachable.
pub(super) const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(3);

/// The channel of the change feed.
pub(super) const CHANNEL: &str = "securescore_changes";

impl PgEngine {
    /// Connect to `url` and bring the schema up to date. `lock_timeout`: the longest a write
    /// waits for another writer's row lock (`serve --store-busy-timeout-ms`) before it fails
    /// with 503.
    pub async fn open(url: &str, lock_timeout: Duration, health: Arc<Health>) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)
            .context("--database-url is not a PostgreSQL URL (postgres://user@host:port/db)")?
            .application_name("securescore")
            .options([("lock_timeout", format!("{}ms", lock_timeout.as_millis().max(1)))]);
        let pool = PgPoolOptions::new()
            .max_connections(MAX_CONNECTIONS)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(url)))?;
        // Replicas may start together: migrations take PostgreSQL's advisory lock (sqlx), so one
        // migrates and the others wait and then find the schema current.
        MIGRATOR.run(&pool).await.context("cannot migrate the PostgreSQL database")?;
        Ok(PgEngine { pool, health })
    }

    pub(super) async fn write_tx(&self) -> Result<WriteTx> {
        let tx = self.pool.begin().await.inspect_err(|_| self.health.suspect())?;
        Ok(WriteTx {
            tx: Some(tx),
            health: self.health.clone(),
            touched: BTreeSet::new(),
            everything: false,
        })
    }

    /// One statement as a write transaction of its own, announced to other processes as a
    /// change of `subscription` (locked first, as every write of one), or of everything.
    pub(super) async fn write_one<'q>(
        &self,
        subscription: Option<Uuid>,
        statement: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    ) -> Result<u64> {
        let mut tx = self.write_tx().await?;
        match subscription {
            Some(id) => {
                tx.lock([id.to_string()]).await?;
            }
            None => tx.everything(),
        }
        let done = statement.execute(&mut *tx).await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected())
    }

    /// A read transaction: one consistent snapshot (REPEATABLE READ) while others keep writing.
    pub(super) async fn read_tx(&self) -> Result<WriteTx> {
        let tx = self
            .pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .inspect_err(|_| self.health.suspect())?;
        Ok(WriteTx {
            tx: Some(tx),
            health: self.health.clone(),
            touched: BTreeSet::new(),
            everything: false,
        })
    }
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    // scheme://user:password@host/...: hide what lies between the user's ':' and the '@'.
    let Some(start) = url.find("://").map(|i| i + 3) else { return url.to_owned() };
    let Some(at) = url[start..].find('@').map(|i| start + i) else { return url.to_owned() };
    match url[start..at].find(':') {
        Some(colon) => format!("{}:***{}", &url[..start + colon], &url[at..]),
        None => url.to_owned(),
    }
}

/// Errors that pass by themselves: the pool has no connection to spare (or none can be opened),
/// the connection was lost, PostgreSQL is short of disk, memory or connections, is shutting down
/// or starting, or two writers deadlocked / waited longer than `lock_timeout`.
pub(super) fn fault(e: &sqlx::Error) -> Option<Unavailable> {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::Tls(_) => Some(Unavailable::Io),
        sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed => Some(Unavailable::Busy),
        sqlx::Error::Database(d) => {
            let code = d.try_downcast_ref::<PgDatabaseError>()?.code();
            match code {
                // disk_full
                "53100" => Some(Unavailable::Full),
                // too_many_connections, serialization_failure, deadlock_detected,
                // lock_not_available (lock_timeout), query_canceled (statement_timeout)
                "53300" | "40001" | "40P01" | "55P03" | "57014" => Some(Unavailable::Busy),
                // out_of_memory, insufficient_resources, I/O, shutdown/startup, read-only standby,
                // connection exceptions
                "53200" | "53000" | "58030" | "57P01" | "57P02" | "57P03" | "25006" => {
                    Some(Unavailable::Io)
                }
                c if c.starts_with("08") => Some(Unavailable::Io),
                _ => None,
            }
        }
        _ => None,
    }
}

/// Is this error PostgreSQL's (so SQLite's codes must not be read into it)?
pub(super) fn is_postgres(e: &sqlx::Error) -> bool {
    matches!(e, sqlx::Error::Database(d) if d.try_downcast_ref::<PgDatabaseError>().is_some())
}

/// A transaction (sqlx's, which PostgreSQL rolls back cleanly when dropped) that reports to
/// [`Health`] and collects what its commit announces on the change feed.
pub(super) struct WriteTx {
    tx: Option<sqlx::Transaction<'static, Postgres>>,
    health: Arc<Health>,
    /// Subscriptions locked (and so written) by this transaction.
    touched: BTreeSet<String>,
    /// A write not tied to one subscription: announce `*`.
    everything: bool,
}

impl WriteTx {
    /// Lock the rows of these subscriptions for the rest of the transaction, in id order (see the
    /// module comment); the ones that exist. Their versions are bumped and announced on commit.
    pub(super) async fn lock<I, S>(&mut self, ids: I) -> Result<BTreeSet<String>>
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let ids: BTreeSet<String> = ids.into_iter().map(Into::into).collect();
        let ids: Vec<String> = ids.into_iter().collect();
        if ids.is_empty() {
            return Ok(BTreeSet::new());
        }
        let found: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM subscriptions WHERE id = ANY($1) ORDER BY id FOR UPDATE",
        )
        .bind(&ids)
        .fetch_all(&mut **self)
        .await?;
        self.touched.extend(found.iter().cloned());
        Ok(found.into_iter().collect())
    }

    /// This transaction changes what every server must drop (not one subscription's data).
    pub(super) fn everything(&mut self) {
        self.everything = true;
    }

    pub(super) async fn finish_read(mut self) -> Result<()> {
        if let Some(tx) = self.tx.take() {
            tx.rollback().await?;
        }
        Ok(())
    }

    pub(super) async fn commit(mut self) -> Result<()> {
        let tx = self.tx.take().expect("a live transaction");
        match tx.commit().await {
            Ok(()) => {
                self.health.wrote();
                Ok(())
            }
            Err(e) => {
                self.health.suspect();
                Err(e.into())
            }
        }
    }
}

impl Drop for WriteTx {
    /// Abandoned (an error inside it, or its request was cancelled): sqlx rolls it back before the
    /// connection is used again; whether writes work is in doubt until one commits.
    fn drop(&mut self) {
        if self.tx.is_some() {
            self.health.suspect();
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = PgConnection;
    fn deref(&self) -> &PgConnection {
        self.tx.as_deref().expect("a live transaction has its connection")
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.tx.as_deref_mut().expect("a live transaction has its connection")
    }
}

/// The shared SQL code (`store::sql`) runs on this engine through these.
#[async_trait]
impl super::sql::SqlBackend for PgEngine {
    type Tx = WriteTx;
    async fn write_tx(&self) -> Result<WriteTx> {
        PgEngine::write_tx(self).await
    }
    fn reader(&self) -> super::sql::Conn<'_> {
        super::sql::Conn::PgPool(&self.pool)
    }
    async fn read_tx(&self) -> Result<WriteTx> {
        PgEngine::read_tx(self).await
    }
    async fn rewrite_tx(&self) -> Result<WriteTx> {
        // Rewriters take turns (replicas starting together all want to adopt the catalogue), and
        // hold every subscription so that no write slips between read and rewrite; each
        // statement then reads what committed before it (READ COMMITTED).
        let mut tx = PgEngine::write_tx(self).await?;
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext('securescore.reconcile'))")
            .execute(&mut *tx)
            .await?;
        let all: Vec<String> =
            sqlx::query_scalar("SELECT id FROM subscriptions").fetch_all(&mut *tx).await?;
        tx.lock(all).await?;
        Ok(tx)
    }
    async fn integrity_check(&self) -> Result<Vec<String>> {
        // PostgreSQL checks its own pages (checksums, WAL replay); there is no file of ours to
        // check. What is left is that the server answers.
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(Vec::new())
    }
    async fn statuses(tx: &mut WriteTx, subscription: Uuid) -> Result<Vec<StatusRow>> {
        assessment_statuses(tx, subscription).await
    }
    const GROUP_ORDER: &'static str = "created_seq";
}

#[async_trait]
impl super::sql::WriteTx for WriteTx {
    fn conn(&mut self) -> super::sql::Conn<'_> {
        super::sql::Conn::Pg(self)
    }
    async fn lock_subscriptions(&mut self, ids: Vec<String>) -> Result<BTreeSet<String>> {
        self.lock(ids).await
    }
    async fn announce(&mut self) -> Result<()> {
        bump_generation(self).await
    }
    async fn commit(self) -> Result<()> {
        WriteTx::commit(self).await
    }
    async fn finish_read(self) -> Result<()> {
        WriteTx::finish_read(self).await
    }
}

/// The last statements of every write transaction that other processes must hear of: bump the
/// generation, bump the versions of the subscriptions it locked, and queue their notifications
/// (PostgreSQL delivers them on commit, and only then).
pub(super) async fn bump_generation(tx: &mut WriteTx) -> Result<()> {
    sqlx::query("SELECT nextval('generation')").execute(&mut **tx).await?;
    let mut payloads = Vec::new();
    if tx.everything || tx.touched.is_empty() {
        payloads.push("*".to_owned());
    }
    if !tx.everything {
        let touched: Vec<String> = tx.touched.iter().cloned().collect();
        let versions: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE subscriptions SET version = version + 1 WHERE id = ANY($1) RETURNING id, version",
        )
        .bind(&touched)
        .fetch_all(&mut **tx)
        .await?;
        payloads.extend(versions.into_iter().map(|(id, v)| format!("{id}:{v}")));
    }
    for payload in payloads {
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// The scoring inputs of a subscription's assessments: their *effective* statuses (an exempt
/// assessment counts as not applicable, `store::exemptions`), on any connection.
pub(super) async fn assessment_statuses(
    conn: &mut PgConnection,
    subscription: Uuid,
) -> Result<Vec<StatusRow>> {
    let rows: Vec<StatusRow> = sqlx::query_as(
        "SELECT resource_key, name_key, status FROM assessments WHERE subscription_id = $1",
    )
    .bind(subscription.to_string())
    .fetch_all(&mut *conn)
    .await?;
    exemptions::effective_rows(conn, subscription, rows).await
}

/// One (control, resource) step of the maintained state, in SQL around `score::step`; the
/// control's counts after it.
async fn step(
    tx: &mut WriteTx,
    subscription: &str,
    control: &str,
    resource_key: &str,
    old: Option<Status>,
    new: Option<Status>,
) -> Result<ControlCounts> {
    let mut tally: ResourceTally = sqlx::query_as::<_, CountsRow>(
        "SELECT healthy, unhealthy, not_applicable FROM resource_tallies \
         WHERE subscription_id = $1 AND control = $2 AND resource_key = $3",
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
         WHERE subscription_id = $1 AND control = $2",
    )
    .bind(subscription)
    .bind(control)
    .fetch_optional(&mut **tx)
    .await?
    .map(Into::into)
    .unwrap_or_default();

    let before = counts;
    score::step(&mut tally, &mut counts, old, new);
    // The resource's resource group (if any) moves with the subscription.
    super::sql::management_groups::step_resource_group(
        tx,
        subscription,
        control,
        resource_key,
        before,
        counts,
    )
    .await?;

    if tally.is_empty() {
        sqlx::query(
            "DELETE FROM resource_tallies WHERE subscription_id = $1 AND control = $2 AND resource_key = $3",
        )
        .bind(subscription)
        .bind(control)
        .bind(resource_key)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query(
            "INSERT INTO resource_tallies (subscription_id, control, resource_key, healthy, unhealthy, not_applicable) \
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (subscription_id, control, resource_key) DO UPDATE SET \
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
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (subscription_id, control) DO UPDATE SET \
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
        sqlx::query("DELETE FROM control_counts WHERE subscription_id = $1 AND control = $2")
            .bind(subscription)
            .bind(control)
            .execute(&mut **tx)
            .await?;
    }
    Ok(counts)
}

/// Record the subscription's secure score if it differs from the last recorded one; true when it did.
async fn record_history(tx: &mut WriteTx, subscription: &str, now: OffsetDateTime) -> Result<bool> {
    record_history_because(tx, subscription, now, None).await
}

/// [`record_history`], marking why when no assessment write moved the score.
async fn record_history_because(
    tx: &mut WriteTx,
    subscription: &str,
    now: OffsetDateTime,
    reason: Option<HistoryReason>,
) -> Result<bool> {
    let rows = sqlx::query_as::<_, ControlCountsRow>("SELECT control, healthy, unhealthy, not_applicable FROM control_counts WHERE subscription_id = $1")
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
         WHERE subscription_id = $1 AND initiative = $2 ORDER BY seq DESC LIMIT 1",
    )
    .bind(subscription)
    .bind(catalog::ASC_SCORE)
    .fetch_optional(&mut **tx)
    .await?;
    let unchanged =
        last.is_some_and(|row| row.details() == secure.score && row.weight == secure.weight);
    if !unchanged {
        sqlx::query(
            "INSERT INTO score_history (subscription_id, initiative, at, current, max, percentage, weight, reason) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(subscription)
        .bind(catalog::ASC_SCORE)
        .bind(format_time(now))
        .bind(secure.score.current)
        .bind(secure.score.max)
        .bind(secure.score.percentage)
        .bind(secure.weight)
        .bind(reason.map(HistoryReason::as_str))
        .execute(&mut **tx)
        .await?;
    }
    Ok(!unchanged)
}

#[async_trait]
impl Engine for PgEngine {
    async fn probe_write(&self) -> Result<()> {
        // A committed write (not a rolled-back one): on a full disk it is the commit that fails.
        let mut tx = self.write_tx().await?;
        sqlx::query(
            "INSERT INTO meta (key, value) VALUES ('write_probe', $1) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        )
        .bind(format_time(OffsetDateTime::now_utc()))
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    async fn generation(&self) -> Result<i64> {
        // The sequence's current value, as any session sees it (no nextval: a read).
        Ok(sqlx::query_scalar("SELECT last_value FROM generation").fetch_one(&self.pool).await?)
    }

    async fn change_feed(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>> {
        feed::start(&self.pool).await.map(Some)
    }

    fn shared(&self) -> bool {
        true
    }

    async fn meta(&self, key: &str) -> Result<Option<String>> {
        Ok(sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_optional(&self.pool)
            .await?)
    }

    async fn set_meta_if_absent(&self, key: &str, value: &str) -> Result<String> {
        let mut tx = self.write_tx().await?;
        sqlx::query("INSERT INTO meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING")
            .bind(key)
            .bind(value)
            .execute(&mut *tx)
            .await?;
        let v = sqlx::query_scalar("SELECT value FROM meta WHERE key = $1")
            .bind(key)
            .fetch_one(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(v)
    }

    async fn swap_meta(&self, key: &str, expected: &str, new: &str) -> Result<bool> {
        let statement = sqlx::query("UPDATE meta SET value = $3 WHERE key = $1 AND value = $2")
            .bind(key)
            .bind(expected)
            .bind(new);
        let mut tx = self.write_tx().await?;
        let done = statement.execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    async fn put_subscription(&self, sub: &Subscription) -> Result<bool> {
        let mut tx = self.write_tx().await?;
        let id = sub.id.to_string();
        let existed: Option<String> =
            sqlx::query_scalar("SELECT id FROM subscriptions WHERE id = $1")
                .bind(&id)
                .fetch_optional(&mut *tx)
                .await?;
        sqlx::query(
            "INSERT INTO subscriptions (id, display_name, tenant_id, state, created_at) VALUES ($1, $2, $3, $4, $5) \
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
        // A subscription appears in (or is renamed in) the hierarchy every server shows.
        tx.everything();
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(existed.is_none())
    }

    async fn subscription(&self, id: Uuid) -> Result<Option<Subscription>> {
        sqlx::query_as::<_, SubscriptionRow>(
            "SELECT id, display_name, tenant_id, state FROM subscriptions WHERE id = $1",
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
        // Wait for its writers to finish; it leaves every server's hierarchy.
        tx.lock([id.clone()]).await?;
        tx.everything();
        for table in [
            "assessments",
            "resource_tallies",
            "control_counts",
            "score_history",
            "custom_metadata",
            "sub_assessments",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE subscription_id = $1"))
                .bind(&id)
                .execute(&mut *tx)
                .await?;
        }
        let removed = sqlx::query("DELETE FROM subscriptions WHERE id = $1")
            .bind(&id)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(removed.rows_affected() > 0)
    }

    async fn apply(&self, writes: &[Write], now: OffsetDateTime) -> Result<Vec<Outcome>> {
        let mut tx = self.write_tx().await?;
        // Every subscription the batch writes is locked, in id order, before anything of it is
        // read: concurrent batches on one subscription run one after the other (module comment).
        let locked =
            tx.lock(writes.iter().map(|w| w.resource().subscription().to_string())).await?;
        let mut touched: Vec<String> = Vec::new();
        let mut outcomes = Vec::with_capacity(writes.len());
        let mut tracker = tracker::Tracker::default();
        let mut exported = outbox::Changes::default();
        let now_text = format_time(now);
        for write in writes {
            let resource = write.resource();
            let sub = resource.subscription();
            let sub_text = sub.to_string();
            let known = locked.contains(&sub_text);
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
                "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE resource_key = $1 AND name_key = $2"
            ))
            .bind(resource.key())
            .bind(&name_key)
            .fetch_optional(&mut *tx)
            .await?
            .map(Assessment::try_from)
            .transpose()?;
            let old = existing.as_ref().map(|a| a.status);
            let (logged_id, logged_name) = match &existing {
                Some(e) => (e.resource_id.clone(), e.name.clone()),
                None => (resource.as_str().to_owned(), name.clone()),
            };
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
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
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
                            "DELETE FROM assessments WHERE resource_key = $1 AND name_key = $2",
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
            exported.assessment(&sub_text, resource.key(), existing.as_ref(), outcomes.last());
            if old != new {
                // Counters move by effective status; the transition is logged (issue 11).
                let written = tracker::Written {
                    subscription: &sub_text,
                    resource_key: resource.key(),
                    resource_id: &logged_id,
                    name_key: &name_key,
                    name: &logged_name,
                    old,
                    new,
                };
                tracker.write(&mut tx, written, now).await?;
                if !touched.contains(&sub_text) {
                    touched.push(sub_text);
                }
            }
        }
        for sub in &touched {
            if record_history(&mut tx, sub, now).await? {
                exported.score(sub);
            }
        }
        outbox::record(&mut tx, exported, now).await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(outcomes)
    }

    async fn assessment(&self, resource_key: &str, name_key: &str) -> Result<Option<Assessment>> {
        sqlx::query_as::<_, AssessmentRow>(&format!("SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE resource_key = $1 AND name_key = $2"))
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
            "SELECT {ASSESSMENT_COLUMNS} FROM assessments WHERE subscription_id = $1 \
             AND ($2 OR resource_key = $3 OR (resource_key >= $4 AND resource_key < $5)) \
             AND (resource_key, name_key) > ($6, $7) ORDER BY resource_key, name_key LIMIT $8"
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
        Ok(sqlx::query_as::<_, ControlCountsRow>("SELECT control, healthy, unhealthy, not_applicable FROM control_counts WHERE subscription_id = $1")
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
        let mut conn = self.pool.acquire().await?;
        let rows = assessment_statuses(&mut conn, subscription).await?;
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
             WHERE subscription_id = $1 AND initiative = $2 AND at >= $3 AND at <= $4 ORDER BY seq",
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
             WHERE subscription_id = $1 AND initiative = $2 AND at <= $3 ORDER BY seq DESC LIMIT 1",
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
        let rows: Vec<(String, String)> = sqlx::query_as("SELECT name, properties FROM custom_metadata WHERE subscription_id = $1 ORDER BY name_key")
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
        self.write_one(
            Some(subscription),
            sqlx::query(
                "INSERT INTO custom_metadata (subscription_id, name_key, name, properties) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (subscription_id, name_key) DO UPDATE SET properties = excluded.properties",
            )
            .bind(subscription.to_string())
            .bind(name.to_ascii_lowercase())
            .bind(name)
            .bind(properties.to_string()),
        )
        .await?;
        Ok(())
    }

    async fn delete_custom_metadata(&self, subscription: Uuid, name: &str) -> Result<bool> {
        let done = self
            .write_one(
                Some(subscription),
                sqlx::query(
                    "DELETE FROM custom_metadata WHERE subscription_id = $1 AND name_key = $2",
                )
                .bind(subscription.to_string())
                .bind(name.to_ascii_lowercase()),
            )
            .await?;
        Ok(done > 0)
    }
}
