//! The SQLite engine: the embedded default store (WAL mode, one file in the data directory) and
//! the throw-away in-memory store. The SQL it runs is shared with PostgreSQL (`store::sql`); this
//! module holds its connections, transactions and faults.
//!
//! Durability: `synchronous=FULL`, so an acknowledged write survives a crash of the process and of
//! the machine. Writers take the write lock up front (`BEGIN IMMEDIATE`) so that concurrent
//! writers — in this process or another one on the same file — queue on `busy_timeout` instead of
//! failing on a lock upgrade.
//!
//! Faults: write transactions are [`WriteTx`], which never hands a connection back to the pool in
//! the middle of a transaction (see there why sqlx's own transactions are not enough); errors that
//! pass by themselves (full disk, lock held too long, I/O) are classified by [`fault`]. Opening a
//! file runs `PRAGMA quick_check` first and refuses a damaged or truncated database; a check
//! that outlasts its start-up budget goes on in the background and, if it finds damage, stops
//! writes and readiness.

use anyhow::{bail, Context, Result};
use async_trait::async_trait;
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqliteJournalMode, SqlitePool, SqlitePoolOptions,
    SqliteSynchronous,
};
use sqlx::Sqlite;
use std::collections::BTreeSet;
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Health, Unavailable};

pub(crate) struct SqliteEngine {
    pub(super) pool: SqlitePool,
    /// A file database: a connection in doubt can be closed (another opens on demand). The
    /// in-memory database lives in its one connection, which must never be closed.
    file_backed: bool,
    health: Arc<Health>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

pub const DB_FILE: &str = "securescore.db";

/// How long start-up waits for the integrity check. A database too large to check in this time
/// (about a million assessments) is served at once while the check goes on in the background; if
/// that finds damage, the store stops taking writes and `/readyz` answers 503 from then on.
const QUICK_CHECK_BUDGET: Duration = Duration::from_secs(2);

impl SqliteEngine {
    /// Open the file database; `check`: refuse a damaged file up front (servers). `verify`
    /// opens without it, to run the full check and report what is damaged.
    pub async fn open(
        data_dir: &Path,
        busy_timeout: Duration,
        health: Arc<Health>,
        check: bool,
    ) -> Result<Self> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("cannot create the data directory {}", data_dir.display()))?;
        let path = data_dir.join(DB_FILE);
        refuse_empty_file(&path, data_dir)?;
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .busy_timeout(busy_timeout)
            .foreign_keys(true)
            // A batch of thousands of writes dirties more pages than SQLite's default 2 MiB
            // cache: it then spills them to the WAL mid-transaction and reads them back. 32 MiB
            // per connection holds a 5 000-write batch (measured in docs/PERFORMANCE.md); pages
            // are only cached once touched, so an idle connection stays small.
            .pragma("cache_size", "-32768")
            // Statement journals (multi-row upserts) in memory rather than temporary files.
            .pragma("temp_store", "memory");
        // An embedded file does not go away under us: skip the per-acquire ping (measurable on reads).
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .test_before_acquire(false)
            .connect_with(options)
            .await
            .map_err(|e| damaged_or(e, &path, data_dir))?;
        if check {
            quick_check(&pool, &path, data_dir, &health, QUICK_CHECK_BUDGET).await?;
        }
        Self::migrated(pool, true, health).await
    }

    pub async fn memory(health: Arc<Health>) -> Result<Self> {
        // One connection that never closes: each in-memory connection is its own database.
        let options = SqliteConnectOptions::from_str("sqlite::memory:")?.foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options)
            .await?;
        Self::migrated(pool, false, health).await
    }

    async fn migrated(pool: SqlitePool, file_backed: bool, health: Arc<Health>) -> Result<Self> {
        MIGRATOR.run(&pool).await.context("cannot migrate the SQLite database")?;
        Ok(SqliteEngine { pool, file_backed, health })
    }

    pub(super) async fn write_tx(&self) -> Result<WriteTx> {
        WriteTx::begin(self, "BEGIN IMMEDIATE").await
    }

    /// A read transaction (`BEGIN`): one consistent snapshot while others keep writing. End it
    /// with [`WriteTx::finish_read`]; it goes through the same type so that a failure inside it
    /// gets the same careful cleanup.
    pub(super) async fn read_tx(&self) -> Result<WriteTx> {
        WriteTx::begin(self, "BEGIN").await
    }
}

/// How to tell the operator about a damaged database file.
fn damaged(path: &Path, data_dir: &Path, what: &str) -> anyhow::Error {
    damage_report(path, data_dir, what, "the server does not start on it")
}

/// The same, with what the server does about it.
fn damage_report(path: &Path, data_dir: &Path, what: &str, consequence: &str) -> anyhow::Error {
    anyhow::anyhow!(
        "the database {} is damaged ({what}); {consequence}. \
         Run `securescore verify --data-dir {}` for a full check, then restore the file from a \
         backup or move it aside to start anew",
        path.display(),
        data_dir.display()
    )
}

/// An open error: "damaged" when SQLite says the file is corrupt or not a database.
fn damaged_or(e: sqlx::Error, path: &Path, data_dir: &Path) -> anyhow::Error {
    match sqlite_code(&e) {
        Some(code) if is_corruption(code) => damaged(path, data_dir, &e.to_string()),
        _ => anyhow::Error::new(e)
            .context(format!("cannot open the SQLite database {}", path.display())),
    }
}

/// SQLITE_CORRUPT (11) and SQLITE_NOTADB (26), with their extended codes.
fn is_corruption(code: i32) -> bool {
    matches!(code & 0xff, 11 | 26)
}

/// A zero-byte database file is what a truncation (or a mistaken `> securescore.db`) leaves: it
/// would silently become a new, empty database, hiding the loss.
fn refuse_empty_file(path: &Path, data_dir: &Path) -> Result<()> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() && m.len() == 0 => bail!(
            "the database {} is an empty (zero-byte) file: its data was lost or it was never a \
             securescore database; the server does not start on it. Restore it from a backup, or \
             remove it to start with a new database (`securescore verify --data-dir {}` checks a \
             restored file)",
            path.display(),
            data_dir.display()
        ),
        _ => Ok(()),
    }
}

/// `PRAGMA quick_check`: a damaged file is refused when the check ends within `budget`;
/// otherwise (a zero budget: at once) it goes on in the background and reports to `health`.
async fn quick_check(
    pool: &SqlitePool,
    path: &Path,
    data_dir: &Path,
    health: &Arc<Health>,
    budget: Duration,
) -> Result<()> {
    let mut conn = pool.acquire().await?;
    if !budget.is_zero() {
        let deadline = Instant::now() + budget;
        // SQLite calls this every 1000 virtual machine steps; false interrupts the check.
        conn.lock_handle().await?.set_progress_handler(1000, move || Instant::now() < deadline);
        let result = check_once(&mut conn).await;
        conn.lock_handle().await?.remove_progress_handler();
        match result {
            Ok(None) => return Ok(()),
            Ok(Some(found)) => return Err(damaged(path, data_dir, &found)),
            // SQLITE_INTERRUPT: the budget ran out.
            Err(e) if sqlite_code(&e).is_some_and(|c| c & 0xff == 9) => {}
            Err(e) => return Err(damaged_or(e, path, data_dir)),
        }
    }
    tracing::info!(
        path = %path.display(),
        "the integrity check takes longer than {budget:?}: serving while it goes on"
    );
    let (health, path, data_dir) = (health.clone(), path.to_owned(), data_dir.to_owned());
    tokio::spawn(async move {
        let found = match check_once(&mut conn).await {
            Ok(found) => found,
            Err(e) if sqlite_code(&e).is_some_and(is_corruption) => Some(e.to_string()),
            Err(e) => {
                tracing::warn!(error = %e, "the integrity check could not finish; run `securescore verify`");
                return;
            }
        };
        match found {
            None => tracing::info!(path = %path.display(), "the integrity check found no damage"),
            Some(found) => {
                let e = damage_report(
                    &path,
                    &data_dir,
                    &found,
                    "the server takes no more writes and is not ready",
                );
                tracing::error!(error = format!("{e:#}"), "the integrity check found damage");
                health.found_damage(format!("{e:#}"));
            }
        }
    });
    Ok(())
}

/// One `PRAGMA quick_check`: `None` when the file is sound, else what SQLite found.
async fn check_once(conn: &mut sqlx::SqliteConnection) -> Result<Option<String>, sqlx::Error> {
    let rows: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(20)").fetch_all(conn).await?;
    Ok((rows.len() != 1 || rows[0] != "ok").then(|| format!("quick_check: {}", rows.join("; "))))
}

/// The SQLite (extended) result code of an error, if it came from SQLite.
fn sqlite_code(e: &sqlx::Error) -> Option<i32> {
    match e {
        sqlx::Error::Database(d) => d.code().and_then(|c| c.parse().ok()),
        _ => None,
    }
}

/// Errors that pass by themselves: the disk fills up and is freed, another writer holds the lock
/// longer than `busy_timeout`, the storage has an I/O hiccup, the pool has no connection to spare.
pub(super) fn fault(e: &sqlx::Error) -> Option<Unavailable> {
    match e {
        sqlx::Error::Io(_) => Some(Unavailable::Io),
        sqlx::Error::PoolTimedOut => Some(Unavailable::Busy),
        _ => match sqlite_code(e)? & 0xff {
            // SQLITE_BUSY, SQLITE_LOCKED
            5 | 6 => Some(Unavailable::Busy),
            // SQLITE_FULL
            13 => Some(Unavailable::Full),
            // SQLITE_NOMEM, SQLITE_READONLY (e.g. a file system remounted read-only), SQLITE_IOERR,
            // SQLITE_CANTOPEN (e.g. out of file descriptors)
            7 | 8 | 10 | 14 => Some(Unavailable::Io),
            _ => None,
        },
    }
}

/// A write transaction (`BEGIN IMMEDIATE`) on a connection taken out of the pool.
///
/// Why not sqlx's `Transaction`: when its COMMIT fails it only queues a ROLLBACK for later, and
/// when SQLite has already rolled back by itself (it does on SQLITE_FULL and I/O errors), that
/// ROLLBACK fails too, sqlx keeps counting the connection as inside a transaction and the pool
/// hands it out again: every later `BEGIN IMMEDIATE` on it fails ("attempted to call begin_with
/// at non-zero transaction depth") until the process restarts. Here a transaction that does not
/// commit is rolled back explicitly, and the connection of a failed one is closed — never
/// reused — on a file database (a fresh connection opens on demand).
pub(super) struct WriteTx {
    conn: Option<PoolConnection<Sqlite>>,
    file_backed: bool,
    health: Arc<Health>,
}

impl WriteTx {
    async fn begin(engine: &SqliteEngine, statement: &'static str) -> Result<WriteTx> {
        if let Some(what) = engine.health.damage() {
            if statement != "BEGIN" {
                bail!("{what}");
            }
        }
        let conn = engine.pool.acquire().await.inspect_err(|_| engine.health.suspect())?;
        // Owned by the transaction before BEGIN is sent: if this future is dropped while SQLite
        // still works on the BEGIN (a client went away), the drop rolls it back; a connection
        // must never return to the pool inside a transaction nobody owns.
        let mut tx = WriteTx {
            conn: Some(conn),
            file_backed: engine.file_backed,
            health: engine.health.clone(),
        };
        if engine.health.page_limit_set.load(Ordering::Acquire) {
            // SQLite keeps this per connection; 0 means "no limit" here, SQLite's own maximum.
            let pages = match engine.health.page_limit.load(Ordering::Acquire) {
                0 => u32::MAX - 1,
                n => n,
            };
            let pragma = format!("PRAGMA max_page_count = {pages}");
            if let Err(e) = sqlx::query(&pragma).execute(&mut *tx).await {
                tx.release();
                return Err(e.into());
            }
        }
        if let Err(e) = sqlx::query(statement).execute(&mut *tx).await {
            // Nothing started (typically SQLITE_BUSY): the connection is as clean as before.
            tx.health.suspect();
            tx.release();
            return Err(e.into());
        }
        Ok(tx)
    }

    /// Give the connection back to the pool: only when no transaction is open on it.
    fn release(&mut self) {
        drop(self.conn.take());
    }

    /// End a read transaction: nothing was written, so nothing about the store's health is learnt.
    /// The ROLLBACK runs with the connection still owned, as COMMIT does (see there).
    pub(super) async fn finish_read(mut self) -> Result<()> {
        match sqlx::query("ROLLBACK").execute(&mut *self).await {
            Ok(_) => {
                self.release();
                Ok(())
            }
            Err(e) => {
                if let Some(conn) = self.conn.take() {
                    finish_failed(conn, self.file_backed).await;
                }
                Err(e.into())
            }
        }
    }

    pub(super) async fn commit(mut self) -> Result<()> {
        // COMMIT runs with the connection still owned by the transaction, so that a drop during
        // it (the request was cancelled) still ends in a rollback attempt, never in the pool.
        let result = sqlx::query("COMMIT").execute(&mut *self).await;
        match result {
            Ok(_) => {
                self.release();
                self.health.wrote();
                Ok(())
            }
            Err(e) => {
                self.health.suspect();
                if let Some(conn) = self.conn.take() {
                    finish_failed(conn, self.file_backed).await;
                }
                Err(e.into())
            }
        }
    }
}

/// End a transaction that did not commit: roll back (SQLite may have done so already) and close
/// the connection of a file database, whose state is now in doubt.
async fn finish_failed(mut conn: PoolConnection<Sqlite>, file_backed: bool) {
    let rollback = sqlx::query("ROLLBACK").execute(&mut *conn).await;
    if file_backed {
        // Closing also ends any transaction SQLite still holds open on the connection.
        if let Err(e) = conn.close().await {
            tracing::debug!(error = %e, "closing a connection after a failed transaction");
        }
    } else if let Err(e) = rollback {
        // "no transaction is active" when SQLite rolled back by itself: the connection is clean.
        tracing::debug!(error = %e, "rollback of a failed transaction");
    }
}

impl Drop for WriteTx {
    /// The transaction was abandoned: an error inside it (`?`), or its request was cancelled.
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        self.health.suspect();
        let file_backed = self.file_backed;
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(finish_failed(conn, file_backed));
            }
            Err(_) => {
                // No runtime to roll back on (process exit), and a pooled connection cannot even
                // be dropped without one. Closing a file database's connection rolls back (its
                // worker thread closes it); an in-memory database ends with the process anyway.
                if file_backed {
                    drop(conn.detach());
                } else {
                    std::mem::forget(conn);
                }
            }
        }
    }
}

impl std::ops::Deref for WriteTx {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.conn.as_deref().expect("a live transaction has its connection")
    }
}

impl std::ops::DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn.as_deref_mut().expect("a live transaction has its connection")
    }
}

/// The shared SQL code (`store::sql`) runs on this engine through these.
#[async_trait]
impl super::sql::SqlBackend for SqliteEngine {
    type Tx = WriteTx;
    async fn write_tx(&self) -> Result<WriteTx> {
        SqliteEngine::write_tx(self).await
    }
    fn reader(&self) -> super::sql::Conn<'_> {
        super::sql::Conn::SqlitePool(&self.pool)
    }
    async fn read_tx(&self) -> Result<WriteTx> {
        SqliteEngine::read_tx(self).await
    }
    async fn rewrite_tx(&self) -> Result<WriteTx> {
        // The write lock, taken up front, excludes every other writer.
        SqliteEngine::write_tx(self).await
    }
    async fn integrity_check(&self) -> Result<Vec<String>> {
        let lines: Vec<String> =
            sqlx::query_scalar("PRAGMA integrity_check").fetch_all(&self.pool).await?;
        Ok(if lines.len() == 1 && lines[0] == "ok" { Vec::new() } else { lines })
    }
    const GROUP_ORDER: &'static str = "rowid";
    async fn generation(&self) -> Result<i64> {
        Ok(sqlx::query_scalar("SELECT value FROM generation WHERE id = 1")
            .fetch_one(&self.pool)
            .await?)
    }
    async fn checkpoint(&self) -> Result<()> {
        // TRUNCATE waits (busy handler) for writers, but a reader of an older snapshot (another
        // process, a server's read) makes it give up at once: try again a few times, briefly.
        for attempt in 0..20 {
            let (busy, _, _): (i64, i64, i64) =
                sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(&self.pool).await?;
            if busy == 0 {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(25 << attempt.min(3))).await;
        }
        tracing::debug!("the WAL checkpoint could not complete: readers or writers stayed busy");
        Ok(())
    }
}

#[async_trait]
impl super::sql::WriteTx for WriteTx {
    fn conn(&mut self) -> super::sql::Conn<'_> {
        super::sql::Conn::Sqlite(self)
    }
    async fn lock_subscriptions(&mut self, ids: Vec<String>) -> Result<BTreeSet<String>> {
        // The transaction holds the database's write lock already (BEGIN IMMEDIATE): this only
        // finds which exist, each id once however many writes name it.
        let ids: Vec<String> = ids.into_iter().collect::<BTreeSet<_>>().into_iter().collect();
        let mut found = BTreeSet::new();
        for chunk in ids.chunks(super::sql::ROWS_PER_STATEMENT) {
            let sql = format!(
                "SELECT id FROM subscriptions WHERE id IN {}",
                super::sql::value_rows(1, chunk.len(), 1)
            );
            let statement = super::sql::query_scalar::<String>(sql).bind_all(chunk);
            found.extend(statement.fetch_all(super::sql::WriteTx::conn(self)).await?);
        }
        Ok(found)
    }
    async fn announce(&mut self) -> Result<()> {
        bump_generation(self).await
    }
    async fn exclusive(&mut self, _name: &str) -> Result<()> {
        Ok(()) // BEGIN IMMEDIATE holds the database's one write lock
    }
    async fn commit(self) -> Result<()> {
        WriteTx::commit(self).await
    }
    async fn finish_read(self) -> Result<()> {
        WriteTx::finish_read(self).await
    }
}

pub(super) async fn bump_generation(tx: &mut WriteTx) -> Result<()> {
    sqlx::query("UPDATE generation SET value = value + 1 WHERE id = 1").execute(&mut **tx).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A check that outlasts its start-up budget goes on in the background; the damage it finds
    /// then stops writes (and readiness, `Store::ready`), with the message that names the file.
    #[tokio::test]
    async fn damage_found_after_start_up_stops_writes() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SqliteEngine::open(dir.path(), Duration::from_secs(1), Arc::default(), true)
            .await
            .unwrap();
        for sql in [
            "CREATE TABLE bulk (x BLOB)",
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 400) \
             INSERT INTO bulk SELECT randomblob(3000) FROM n",
            "PRAGMA wal_checkpoint(TRUNCATE)",
        ] {
            sqlx::query(sql).execute(&engine.pool).await.unwrap();
        }
        engine.pool.close().await;
        let file = dir.path().join(DB_FILE);
        let mut bytes = std::fs::read(&file).unwrap();
        let middle = (bytes.len() / 2) / 4096 * 4096;
        bytes[middle..middle + 4 * 4096].fill(0xa5);
        std::fs::write(&file, bytes).unwrap();

        let health = Arc::new(Health::default());
        let pool =
            SqlitePool::connect_with(SqliteConnectOptions::new().filename(&file)).await.unwrap();
        quick_check(&pool, &file, dir.path(), &health, Duration::ZERO).await.unwrap();
        let engine = SqliteEngine { pool, file_backed: true, health: health.clone() };
        for _ in 0..600 {
            if health.damage().is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let what = health.damage().expect("the background check reports the damage");
        assert!(what.contains("damaged") && what.contains(DB_FILE), "{what}");
        let refused = engine.write_tx().await.err().expect("no writes into a damaged file");
        assert!(format!("{refused:#}").contains("damaged"), "{refused:#}");
    }
    use crate::store::engine::Engine;

    /// Transactions dropped without COMMIT (an error with `?`, a cancelled request) are rolled
    /// back, and no pooled connection is left inside one: every later write works.
    async fn abandoned_transactions_leave_no_trace(engine: SqliteEngine) {
        for i in 0..3 {
            let mut tx = engine.write_tx().await.unwrap();
            sqlx::query("INSERT INTO meta (key, value) VALUES (?1, 'x')")
                .bind(format!("abandoned{i}"))
                .execute(&mut *tx)
                .await
                .unwrap();
            drop(tx);
        }
        assert!(engine.health.in_doubt_for_tests(), "abandoned writes put health in doubt");
        for i in 0..8 {
            engine
                .set_meta_if_absent(&format!("k{i}"), "v")
                .await
                .expect("every connection writes");
        }
        for i in 0..3 {
            assert_eq!(engine.meta(&format!("abandoned{i}")).await.unwrap(), None);
        }
        assert!(!engine.health.in_doubt_for_tests(), "a committed write clears the doubt");
        engine.health.suspect();
        engine.probe_write().await.unwrap();
        assert!(!engine.health.in_doubt_for_tests(), "so does a probe");
    }

    #[tokio::test]
    async fn abandoned_transactions_on_a_file_leave_no_trace() {
        let dir = tempfile::tempdir().unwrap();
        let engine =
            SqliteEngine::open(dir.path(), Duration::from_millis(300), Arc::default(), true)
                .await
                .unwrap();
        abandoned_transactions_leave_no_trace(engine).await;
    }

    /// A write whose request goes away while it waits for another process's lock: once the
    /// lock is free, its BEGIN succeeds in the background and must be rolled back, not left
    /// holding the write lock in the pool.
    #[tokio::test]
    async fn a_write_cancelled_while_waiting_for_the_lock_leaves_no_transaction() {
        use sqlx::Connection;
        let dir = tempfile::tempdir().unwrap();
        let engine = SqliteEngine::open(dir.path(), Duration::from_secs(2), Arc::default(), true)
            .await
            .unwrap();
        let options = SqliteConnectOptions::new().filename(dir.path().join(DB_FILE));
        let mut other = SqliteConnection::connect_with(&options).await.unwrap();
        sqlx::query("BEGIN IMMEDIATE").execute(&mut other).await.unwrap();
        let cancelled =
            tokio::time::timeout(Duration::from_millis(200), engine.set_meta_if_absent("a", "b"));
        assert!(cancelled.await.is_err(), "the write waits for the lock");
        sqlx::query("ROLLBACK").execute(&mut other).await.unwrap();
        // Let the abandoned BEGIN take the free lock before anyone else competes for it.
        tokio::time::sleep(Duration::from_millis(500)).await;
        for i in 0..8 {
            engine.set_meta_if_absent(&format!("k{i}"), "v").await.expect("no lock left behind");
        }
        assert_eq!(engine.meta("a").await.unwrap(), None, "the cancelled write did not happen");
    }

    #[tokio::test]
    async fn abandoned_transactions_in_memory_leave_no_trace() {
        abandoned_transactions_leave_no_trace(SqliteEngine::memory(Arc::default()).await.unwrap())
            .await;
    }
}
