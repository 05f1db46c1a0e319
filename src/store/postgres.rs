//! The PostgreSQL engine: one database shared by any number of stateless server replicas (and the
//! CLI), on this machine or others.
//!
//! It keeps the SQLite engine's schema and encodings (migrations/postgres), so both run the same
//! SQL (`store::sql`); this module holds what differs: connections, transactions, locking,
//! announcements and the classification of faults.
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
//! The change feed (module `feed`) turns them into [`Change`]s.
//!
//! Faults: a pool without a free connection within [`ACQUIRE_TIMEOUT`], a lost connection, a full
//! disk, a deadlock or too many connections are [`Unavailable`] (503); see [`fault`].

use anyhow::{Context, Result};
use async_trait::async_trait;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgDatabaseError, PgPool, PgPoolOptions};
use sqlx::Postgres;
use std::collections::BTreeSet;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::engine::Change;
use super::{Health, Unavailable};

mod feed;

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
    const GROUP_ORDER: &'static str = "created_seq";
    const SHARED: bool = true;
    async fn generation(&self) -> Result<i64> {
        // The sequence's current value, as any session sees it (no nextval: a read). Before its
        // first nextval a sequence reports last_value 1 with is_called false: that is 0 writes.
        Ok(sqlx::query_scalar(
            "SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM generation",
        )
        .fetch_one(&self.pool)
        .await?)
    }
    async fn change_feed(&self) -> Result<Option<tokio::sync::mpsc::Receiver<Change>>> {
        feed::start(&self.pool).await.map(Some)
    }
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
    fn everything(&mut self) {
        WriteTx::everything(self)
    }
    async fn exclusive(&mut self, name: &str) -> Result<()> {
        // A transaction-scoped advisory lock: released by COMMIT or ROLLBACK, whichever comes.
        sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
            .bind(name)
            .execute(&mut **self)
            .await?;
        Ok(())
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

/// What only PostgreSQL has: the feed's reconnection and its faults. Run when
/// `SECURESCORE_TEST_POSTGRES` names a server (see `store::conformance`).
#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::conformance::fresh_postgres;
    use crate::store::engine::{Engine, Subscription};
    use sqlx::Connection;
    use uuid::Uuid;

    fn subscription(id: Uuid) -> Subscription {
        Subscription {
            id,
            display_name: "s".into(),
            tenant_id: Uuid::nil(),
            state: "Enabled".into(),
        }
    }

    /// The longest a test waits for something that should come at once; a bound, not a measure.
    const PATIENCE: Duration = Duration::from_secs(20);

    async fn next(feed: &mut tokio::sync::mpsc::Receiver<Change>) -> Change {
        tokio::time::timeout(PATIENCE, feed.recv())
            .await
            .expect("the feed says something")
            .expect("the feed is open")
    }

    /// Another process's commits arrive as the subscription and its version; when the listening
    /// connection is killed, the feed says "everything" (notifications may have been missed) and
    /// then goes on with the next commits.
    #[tokio::test]
    async fn the_feed_reports_commits_and_survives_a_lost_connection() {
        let Some(url) = fresh_postgres().await else { return };
        let listener = PgEngine::open(&url, Duration::from_secs(5), Arc::default()).await.unwrap();
        let writer = PgEngine::open(&url, Duration::from_secs(5), Arc::default()).await.unwrap();
        let mut feed = listener.change_feed().await.unwrap().expect("PostgreSQL has a feed");
        let id = Uuid::new_v4();
        writer.put_subscription(&subscription(id)).await.unwrap();
        assert_eq!(next(&mut feed).await, Change::Everything, "a new subscription: everything");
        writer.put_custom_metadata(id, "m", &serde_json::json!({})).await.unwrap();
        let Change::Subscription { id: got, version: v1 } = next(&mut feed).await else {
            panic!("a write to one subscription names it")
        };
        assert_eq!(got, id);
        writer.delete_custom_metadata(id, "m").await.unwrap();
        assert_eq!(next(&mut feed).await, Change::Subscription { id, version: v1 + 1 });

        // Kill the listening session (it is the one waiting in LISTEN on our database).
        let mut admin = sqlx::PgConnection::connect(&url).await.unwrap();
        let killed: Vec<bool> = sqlx::query_scalar(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        )
        .fetch_all(&mut admin)
        .await
        .unwrap();
        assert_eq!(killed, vec![true], "one listening session");
        assert_eq!(next(&mut feed).await, Change::Everything, "a lost connection: everything");
        // Back again: later commits are heard (a write may race the re-LISTEN, so write until
        // one is heard, each time a new version).
        let mut heard = None;
        for _ in 0..50 {
            writer.put_custom_metadata(id, "m", &serde_json::json!({})).await.unwrap();
            match tokio::time::timeout(Duration::from_millis(200), feed.recv()).await {
                Ok(Some(Change::Subscription { id: got, .. })) => {
                    heard = Some(got);
                    break;
                }
                Ok(Some(Change::Everything)) | Err(_) => continue,
                Ok(None) => panic!("the feed ended"),
            }
        }
        assert_eq!(heard, Some(id), "the feed listens again after the reconnection");
    }

    /// A writer that waits longer than its lock timeout for another one (here: a session holding
    /// the subscription's row) fails with a passing fault, which the API answers 503.
    #[tokio::test]
    async fn a_lock_held_too_long_is_a_passing_fault() {
        let Some(url) = fresh_postgres().await else { return };
        let engine =
            PgEngine::open(&url, Duration::from_millis(200), Arc::default()).await.unwrap();
        let id = Uuid::new_v4();
        engine.put_subscription(&subscription(id)).await.unwrap();
        let mut other = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query("BEGIN").execute(&mut other).await.unwrap();
        sqlx::query("SELECT id FROM subscriptions WHERE id = $1 FOR UPDATE")
            .bind(id.to_string())
            .execute(&mut other)
            .await
            .unwrap();
        let err = engine.put_custom_metadata(id, "m", &serde_json::json!({})).await.unwrap_err();
        assert_eq!(Unavailable::of(&err), Some(Unavailable::Busy), "{err:#}");
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        engine.put_custom_metadata(id, "m", &serde_json::json!({})).await.expect("free again");
    }
}
