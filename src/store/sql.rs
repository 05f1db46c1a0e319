//! What the SQL engines share: one way to run a statement on either database, and the parts of the
//! engine written once against it (submodules), which each engine gets through [`SqlBackend`].
//!
//! Both engines keep the same schema and encodings (text GUIDs and times, JSON as text), and
//! SQLite accepts PostgreSQL's numbered placeholders (`$1`), so most statements are the same
//! text. [`query`], [`query_as`] and [`query_scalar`] mirror sqlx's functions of those names but
//! run on a [`Conn`] of either engine; values are bound as [`Arg`]s and rows decode into types that
//! both drivers can decode (the shared row types of `store::rows`). Where the SQL differs (locking,
//! JSON functions, row order), the engines keep their own code.

use anyhow::Result;
use async_trait::async_trait;
use sqlx::postgres::{PgConnection, PgPool, PgRow};
use sqlx::sqlite::{SqliteConnection, SqlitePool, SqliteRow};
use sqlx::{Decode, FromRow, Postgres, Sqlite, Type};
use std::borrow::Cow;
use std::collections::BTreeSet;
use std::marker::PhantomData;

pub(super) mod automation;
pub(super) mod changes;
pub(super) mod core;
pub(super) mod exemption_rows;
pub(super) mod exemptions;
pub(super) mod identity;
pub(super) mod management_groups;
pub(super) mod resource_groups;
pub(super) mod sub_assessments;
pub(super) mod tracker;
pub(super) mod verify;

/// Where a statement runs: a connection (inside a transaction) or a pool (a read of its own).
pub(in crate::store) enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    SqlitePool(&'a SqlitePool),
    Pg(&'a mut PgConnection),
    PgPool(&'a PgPool),
}

/// A bound value: the column types the schema uses.
#[derive(Debug, Clone)]
pub(in crate::store) enum Arg {
    Text(Option<String>),
    Int(Option<i64>),
    Real(Option<f64>),
    Bool(Option<bool>),
}

macro_rules! arg_from {
    ($variant:ident: $($t:ty => $f:expr),* $(,)?) => {
        $(impl From<$t> for Arg {
            fn from(v: $t) -> Arg {
                #[allow(clippy::redundant_closure_call)]
                Arg::$variant(($f)(v))
            }
        })*
    };
}
arg_from!(Text:
    String => Some,
    &String => |v: &String| Some(v.clone()),
    &str => |v: &str| Some(v.to_owned()),
    Option<String> => |v| v,
    &Option<String> => |v: &Option<String>| v.clone(),
    Option<&str> => |v: Option<&str>| v.map(str::to_owned),
);
arg_from!(Int: i64 => Some, &i64 => |v: &i64| Some(*v), Option<i64> => |v| v);
arg_from!(Real: f64 => Some);
arg_from!(Bool: bool => Some, Option<bool> => |v| v);

/// A statement and its values, not yet run.
pub(in crate::store) struct Statement<'q> {
    sql: Cow<'q, str>,
    args: Vec<Arg>,
}

/// A row type both drivers decode.
pub(in crate::store) trait AnyRow:
    for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> AnyRow for T where
    T: for<'r> FromRow<'r, SqliteRow> + for<'r> FromRow<'r, PgRow> + Send + Unpin
{
}

/// A column type both drivers decode.
pub(in crate::store) trait AnyValue:
    for<'r> Decode<'r, Sqlite>
    + Type<Sqlite>
    + for<'r> Decode<'r, Postgres>
    + Type<Postgres>
    + Send
    + Unpin
{
}
impl<T> AnyValue for T where
    T: for<'r> Decode<'r, Sqlite>
        + Type<Sqlite>
        + for<'r> Decode<'r, Postgres>
        + Type<Postgres>
        + Send
        + Unpin
{
}

/// `sqlx::query`: a statement whose rows are not read.
pub(in crate::store) fn query<'q>(sql: impl Into<Cow<'q, str>>) -> Query<'q> {
    Query(Statement { sql: sql.into(), args: Vec::new() })
}

/// `sqlx::query_as`: rows into `T`.
pub(in crate::store) fn query_as<'q, T: AnyRow>(sql: impl Into<Cow<'q, str>>) -> QueryAs<'q, T> {
    QueryAs(Statement { sql: sql.into(), args: Vec::new() }, PhantomData)
}

/// `sqlx::query_scalar`: the first column of each row into `T`.
pub(in crate::store) fn query_scalar<'q, T: AnyValue>(
    sql: impl Into<Cow<'q, str>>,
) -> QueryScalar<'q, T> {
    QueryScalar(Statement { sql: sql.into(), args: Vec::new() }, PhantomData)
}

pub(in crate::store) struct Query<'q>(Statement<'q>);
pub(in crate::store) struct QueryAs<'q, T>(Statement<'q>, PhantomData<fn() -> T>);
pub(in crate::store) struct QueryScalar<'q, T>(Statement<'q>, PhantomData<fn() -> T>);

/// What a statement changed.
pub(in crate::store) struct Done(u64);

impl Done {
    pub(in crate::store) fn rows_affected(&self) -> u64 {
        self.0
    }
}

/// `bind` and `bind_all` of a statement builder (each wraps a [`Statement`] as its field 0).
macro_rules! binds {
    () => {
        pub(in crate::store) fn bind(mut self, v: impl Into<Arg>) -> Self {
            self.0.args.push(v.into());
            self
        }

        /// Bind each value in turn (the list of an `IN` written by [`value_rows`]).
        pub(in crate::store) fn bind_all<V: Into<Arg>>(
            mut self,
            values: impl IntoIterator<Item = V>,
        ) -> Self {
            self.0.args.extend(values.into_iter().map(Into::into));
            self
        }
    };
}

impl Query<'_> {
    binds!();

    pub(in crate::store) async fn execute(self, conn: Conn<'_>) -> Result<Done, sqlx::Error> {
        let Statement { sql, args } = self.0;
        let sql = sql.as_ref();
        Ok(Done(match conn {
            Conn::Sqlite(c) => {
                let sql = sqlite_text(sql, args.len());
                sqlx::query_with(&sql, sqlite_args(args)).execute(c).await?.rows_affected()
            }
            Conn::SqlitePool(p) => {
                let sql = sqlite_text(sql, args.len());
                sqlx::query_with(&sql, sqlite_args(args)).execute(p).await?.rows_affected()
            }
            Conn::Pg(c) => sqlx::query_with(sql, pg_args(args)).execute(c).await?.rows_affected(),
            Conn::PgPool(p) => {
                sqlx::query_with(sql, pg_args(args)).execute(p).await?.rows_affected()
            }
        }))
    }
}

/// The fetch methods of a statement whose rows decode as `$row` through sqlx's `$make`; each
/// runs sqlx's method of the same name on whichever connection it is given.
macro_rules! fetches {
    ($ty:ident, $bound:ident, $make:ident) => {
        impl<T: $bound> $ty<'_, T> {
            binds!();

            fetches!(@fetch $make, fetch_all, Vec<T>);
            fetches!(@fetch $make, fetch_optional, Option<T>);
            fetches!(@fetch $make, fetch_one, T);
        }
    };
    (@fetch $make:ident, $method:ident, $out:ty) => {
        pub(in crate::store) async fn $method(self, conn: Conn<'_>) -> Result<$out, sqlx::Error> {
            let Statement { sql, args } = self.0;
            match conn {
                Conn::Sqlite(c) => {
                    let sql = sqlite_text(&sql, args.len());
                    sqlx::$make::<Sqlite, T, _>(&sql, sqlite_args(args)).$method(c).await
                }
                Conn::SqlitePool(p) => {
                    let sql = sqlite_text(&sql, args.len());
                    sqlx::$make::<Sqlite, T, _>(&sql, sqlite_args(args)).$method(p).await
                }
                Conn::Pg(c) => sqlx::$make::<Postgres, T, _>(&sql, pg_args(args)).$method(c).await,
                Conn::PgPool(p) => sqlx::$make::<Postgres, T, _>(&sql, pg_args(args)).$method(p).await,
            }
        }
    };
}
fetches!(QueryAs, AnyRow, query_as_with);
fetches!(QueryScalar, AnyValue, query_scalar_with);

/// The statement as SQLite runs it. sqlx binds SQLite's values by asking the name of each
/// placeholder, and SQLite finds a numbered placeholder's name by a walk over all of them: binding
/// a multi-row statement's thousands of `$N` costs time quadratic in their number (the bulk of
/// an import's CPU in a profile). Anonymous `?` placeholders have no name to look up, so a
/// statement with many values whose placeholders are `$1`, `$2`, … each once and in that order
/// (as [`value_rows`] writes them) runs with `?` instead; any other statement runs as written.
fn sqlite_text(sql: &str, values: usize) -> Cow<'_, str> {
    /// Below this, the walk costs less than the scan that would avoid it.
    const MANY: usize = 32;
    if values < MANY {
        return Cow::Borrowed(sql);
    }
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let (mut next, mut copied, mut i) = (1usize, 0usize, 0usize);
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let digits = bytes[i + 1..].iter().take_while(|b| b.is_ascii_digit()).count();
            if digits == 0 || sql[i + 1..i + 1 + digits].parse::<usize>().ok() != Some(next) {
                return Cow::Borrowed(sql);
            }
            out.push_str(&sql[copied..i]);
            out.push('?');
            next += 1;
            i += 1 + digits;
            copied = i;
        } else {
            i += 1;
        }
    }
    out.push_str(&sql[copied..]);
    Cow::Owned(out)
}

/// The values as either driver binds them (moved, not copied).
fn arguments<A>(values: Vec<Arg>) -> A
where
    A: sqlx::Arguments<'static>,
    Option<String>: sqlx::Encode<'static, A::Database> + sqlx::Type<A::Database>,
    Option<i64>: sqlx::Encode<'static, A::Database> + sqlx::Type<A::Database>,
    Option<f64>: sqlx::Encode<'static, A::Database> + sqlx::Type<A::Database>,
    Option<bool>: sqlx::Encode<'static, A::Database> + sqlx::Type<A::Database>,
{
    let mut args = A::default();
    for a in values {
        // Encoding these owned values cannot fail; an error would surface at execution.
        let _ = match a {
            Arg::Text(v) => args.add(v),
            Arg::Int(v) => args.add(v),
            Arg::Real(v) => args.add(v),
            Arg::Bool(v) => args.add(v),
        };
    }
    args
}

fn sqlite_args(values: Vec<Arg>) -> sqlx::sqlite::SqliteArguments<'static> {
    arguments(values)
}

fn pg_args(values: Vec<Arg>) -> sqlx::postgres::PgArguments {
    arguments(values)
}

/// Rows per multi-row statement of a batched write: a statement's fixed cost is spread over
/// many rows while its parameters stay far below either engine's limit (SQLite 32 766,
/// PostgreSQL 65 535; the widest row, a logged transition, has 13).
pub(in crate::store) const ROWS_PER_STATEMENT: usize = 500;

/// `($1, $2), ($3, $4)`: the placeholders of `rows` rows of `columns` values each, numbered
/// from `$first` (the syntax both engines share for multi-row VALUES).
pub(in crate::store) fn value_rows(rows: usize, columns: usize, first: usize) -> String {
    let mut out = String::with_capacity(rows * columns * 6);
    for r in 0..rows {
        if r > 0 {
            out.push_str(", ");
        }
        out.push('(');
        for c in 0..columns {
            if c > 0 {
                out.push_str(", ");
            }
            out.push('$');
            out.push_str(&(first + r * columns + c).to_string());
        }
        out.push(')');
    }
    out
}

/// An engine's side of the shared code: its transactions and its pool. The engine traits
/// implemented in the submodules are implemented for every `SqlBackend`.
#[async_trait]
pub(in crate::store) trait SqlBackend: Send + Sync + 'static {
    type Tx: WriteTx;
    /// A write transaction (SQLite: holding the database's write lock from its start).
    async fn write_tx(&self) -> Result<Self::Tx>;
    /// Reads outside a transaction.
    fn reader(&self) -> Conn<'_>;
    /// A read-only transaction: one consistent snapshot while others keep writing.
    async fn read_tx(&self) -> Result<Self::Tx>;
    /// A transaction that rewrites maintained state from what it reads (verification's repair,
    /// a catalogue change): no other write may slip in between, and rewriters take turns.
    async fn rewrite_tx(&self) -> Result<Self::Tx>;
    /// The storage's own check of itself: what is damaged, nothing when sound.
    async fn integrity_check(&self) -> Result<Vec<String>>;
    /// The order management groups are listed in: the order they were created.
    const GROUP_ORDER: &'static str;
    /// Several server processes share the database (`Engine::shared`).
    const SHARED: bool = false;
    /// `Engine::generation`.
    async fn generation(&self) -> Result<i64>;
    /// `Engine::checkpoint`.
    async fn checkpoint(&self) -> Result<()> {
        Ok(())
    }
    /// `Engine::change_feed`.
    async fn change_feed(
        &self,
    ) -> Result<Option<tokio::sync::mpsc::Receiver<super::engine::Change>>> {
        Ok(None)
    }
}

/// A write transaction of either engine.
#[async_trait]
pub(in crate::store) trait WriteTx: Send {
    fn conn(&mut self) -> Conn<'_>;
    /// Lock these subscriptions against other writers for the rest of the transaction (SQLite's
    /// write lock already excludes them all); the ones that exist.
    async fn lock_subscriptions(&mut self, ids: Vec<String>) -> Result<BTreeSet<String>>;
    /// The commit changes what every server must drop, not only the locked subscriptions.
    fn everything(&mut self) {}
    /// Take turns with every other transaction that calls this with the same `name`, until the
    /// end of the transaction (SQLite's write lock already excludes all other writers).
    async fn exclusive(&mut self, name: &str) -> Result<()>;
    /// Tell other processes of the commit: the generation, and (PostgreSQL) the change feed —
    /// of the locked subscriptions, or of everything when none was locked.
    async fn announce(&mut self) -> Result<()>;
    async fn commit(self) -> Result<()>;
    /// End a transaction that wrote nothing.
    async fn finish_read(self) -> Result<()>;
}

/// One statement as a write transaction of its own, announced as a write of `subscription`
/// (locked first, as every write of one) or of everything: the number of rows it changed.
pub(in crate::store) async fn write_one<B: SqlBackend + ?Sized>(
    backend: &B,
    subscription: Option<String>,
    statement: Query<'_>,
) -> Result<u64> {
    let mut tx = backend.write_tx().await?;
    if let Some(id) = subscription {
        tx.lock_subscriptions(vec![id]).await?;
    }
    let done = statement.execute(tx.conn()).await?;
    tx.announce().await?;
    tx.commit().await?;
    Ok(done.rows_affected())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_numbered_placeholders_in_order_become_anonymous_for_sqlite() {
        let rows = value_rows(20, 2, 2);
        let sql = format!("SELECT x FROM t WHERE a = $1 AND (b, c) IN ({rows})");
        let text = sqlite_text(&sql, 41);
        assert_eq!(text.matches('?').count(), 41);
        assert!(!text.contains('$'));
        // Out of order, repeated, or few: as written.
        let repeated = format!("{sql} AND d = $1");
        assert_eq!(sqlite_text(&repeated, 41), repeated);
        assert_eq!(sqlite_text("SELECT $2, $1", 40), "SELECT $2, $1");
        assert_eq!(sqlite_text("SELECT $1", 1), "SELECT $1");
    }
}
