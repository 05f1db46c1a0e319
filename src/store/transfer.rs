//! Moving up (`securescore migrate`): copy an embedded store — its SQLite file — into a
//! PostgreSQL database, table by table, in one PostgreSQL transaction, and check the row counts.
//!
//! Both engines keep the same tables and columns (their migrations live side by side), so the
//! copy needs no knowledge of what a table holds: each value is read with the type SQLite stored
//! it as and cast, in the INSERT, to the type of the target column (`$1::uuid`, `$1::jsonb`, …).
//! A new table is copied without a change here. Counters, tallies and history are copied as they
//! are, not recomputed: `securescore verify` against the target checks them afterwards.

use anyhow::{bail, Context, Result};
use futures::TryStreamExt;
use sqlx::postgres::{PgConnection, Postgres};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{Connection, QueryBuilder, Row, TypeInfo, ValueRef};
use std::collections::HashMap;
use std::path::Path;

/// One table of the copy: its rows in the source, and in the target once copied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableCount {
    pub table: String,
    pub source: u64,
    pub target: u64,
}

/// Tables that are the engines' own bookkeeping, not the store's content. `generation` (a table
/// in SQLite, a sequence in PostgreSQL) only has to move forward: the target's goes on from where
/// it is.
fn bookkeeping(table: &str) -> bool {
    table.starts_with("sqlite_") || table == "_sqlx_migrations" || table == "generation"
}

/// The tables holding what a user put in: a target with rows in any of them is not empty.
const CONTENT_TABLES: &[&str] = &["subscriptions", "assessments", "principals"];

/// What the copy will do: the source's tables (in creation order, so parents come before the
/// tables whose foreign keys point at them) with their row counts.
pub struct Plan {
    source: SqliteConnection,
    target: PgConnection,
    tables: Vec<(String, u64)>,
    /// Per target table: column name → PostgreSQL type name (`udt_name`).
    columns: HashMap<String, HashMap<String, String>>,
}

impl Plan {
    /// Open both databases (the target must already carry the schema: open it as a store first)
    /// and refuse a target holding content unless `force`.
    pub async fn new(db_file: &Path, url: &str, force: bool) -> Result<Plan> {
        let options = SqliteConnectOptions::new().filename(db_file).read_only(true);
        let mut source = SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("cannot open {}", db_file.display()))?;
        let mut target =
            PgConnection::connect(url).await.context("cannot connect to the target")?;
        let names: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY rowid",
        )
        .fetch_all(&mut source)
        .await?;
        let mut tables = Vec::new();
        for name in names.into_iter().filter(|n| !bookkeeping(n)) {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{name}\""))
                .fetch_one(&mut source)
                .await?;
            tables.push((name, u64::try_from(n).unwrap_or(0)));
        }
        let rows: Vec<(String, String, String)> = sqlx::query_as(
            "SELECT table_name::text, column_name::text, udt_name::text \
             FROM information_schema.columns WHERE table_schema = current_schema()",
        )
        .fetch_all(&mut target)
        .await?;
        let mut columns: HashMap<String, HashMap<String, String>> = HashMap::new();
        for (table, column, udt) in rows {
            columns.entry(table).or_default().insert(column, udt);
        }
        if let Some((missing, _)) = tables.iter().find(|(t, _)| !columns.contains_key(t)) {
            bail!("the target has no table '{missing}': its schema is not this version's (start a server of this version on it once, or let `migrate` create it)");
        }
        if !force {
            for table in CONTENT_TABLES.iter().filter(|t| columns.contains_key(**t)) {
                let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
                    .fetch_one(&mut target)
                    .await?;
                if n > 0 {
                    bail!("the target database is not empty ({n} rows in '{table}'); pass --force to replace its content with the data directory's");
                }
            }
        }
        Ok(Plan { source, target, tables, columns })
    }

    /// The rows to copy, all tables together (for a progress bar).
    pub fn total_rows(&self) -> u64 {
        self.tables.iter().map(|(_, n)| n).sum()
    }

    /// Replace the target's content with the source's, in one transaction; `progress` hears the
    /// number of rows copied so far. Then count both sides.
    pub async fn run(mut self, progress: impl Fn(u64)) -> Result<Vec<TableCount>> {
        let mut tx = self.target.begin().await?;
        let list =
            self.tables.iter().map(|(t, _)| format!("\"{t}\"")).collect::<Vec<_>>().join(", ");
        if !list.is_empty() {
            // Whatever opening the target wrote (its bookkeeping rows) gives way to the source's.
            sqlx::query(&format!("TRUNCATE {list} CASCADE")).execute(&mut *tx).await?;
        }
        let mut done = 0u64;
        for (table, _) in &self.tables {
            let target_columns = &self.columns[table];
            let source_columns: Vec<String> =
                sqlx::query_scalar(&format!("SELECT name FROM pragma_table_info('{table}')"))
                    .fetch_all(&mut self.source)
                    .await?;
            let cols: Vec<(String, String)> = source_columns
                .into_iter()
                .filter_map(|c| target_columns.get(&c).map(|t| (c, t.clone())))
                .collect();
            if cols.is_empty() {
                continue;
            }
            let names = cols.iter().map(|(c, _)| format!("\"{c}\"")).collect::<Vec<_>>().join(", ");
            // PostgreSQL takes at most 65,535 parameters per statement.
            let per_insert = (60_000 / cols.len()).clamp(1, 1000);
            let select = format!("SELECT {names} FROM \"{table}\"");
            let mut rows = sqlx::query(&select).fetch(&mut self.source);
            let mut batch = Vec::with_capacity(per_insert);
            while let Some(row) = rows.try_next().await? {
                batch.push(values(&row, cols.len())?);
                if batch.len() == per_insert {
                    insert(&mut tx, table, &names, &cols, &batch).await?;
                    done += batch.len() as u64;
                    progress(done);
                    batch.clear();
                }
            }
            if !batch.is_empty() {
                insert(&mut tx, table, &names, &cols, &batch).await?;
                done += batch.len() as u64;
                progress(done);
            }
            drop(rows);
            restart_sequences(&mut tx, table).await?;
        }
        tx.commit().await?;
        let mut counts = Vec::new();
        for (table, source) in &self.tables {
            let n: i64 = sqlx::query_scalar(&format!("SELECT COUNT(*) FROM \"{table}\""))
                .fetch_one(&mut self.target)
                .await?;
            counts.push(TableCount {
                table: table.clone(),
                source: *source,
                target: u64::try_from(n).unwrap_or(0),
            });
        }
        Ok(counts)
    }
}

/// A value as SQLite stored it (its storage class).
enum Value {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

fn values(row: &sqlx::sqlite::SqliteRow, n: usize) -> Result<Vec<Value>> {
    (0..n)
        .map(|i| {
            let raw = row.try_get_raw(i)?;
            if raw.is_null() {
                return Ok(Value::Null);
            }
            let class = raw.type_info().name().to_owned();
            Ok(match class.as_str() {
                "INTEGER" => Value::Integer(row.try_get(i)?),
                "REAL" => Value::Real(row.try_get(i)?),
                "BLOB" => Value::Blob(row.try_get(i)?),
                _ => Value::Text(row.try_get(i)?),
            })
        })
        .collect()
}

async fn insert(
    tx: &mut sqlx::Transaction<'_, Postgres>,
    table: &str,
    names: &str,
    cols: &[(String, String)],
    batch: &[Vec<Value>],
) -> Result<()> {
    // Identity columns (`GENERATED ALWAYS`) take the copied ids as they are.
    let mut q = QueryBuilder::<Postgres>::new(format!(
        "INSERT INTO \"{table}\" ({names}) OVERRIDING SYSTEM VALUE "
    ));
    q.push_values(batch, |mut b, row| {
        for (value, (_, udt)) in row.iter().zip(cols) {
            // SQLite keeps booleans as integers; PostgreSQL has no bigint → boolean cast.
            match (value, udt.as_str()) {
                (Value::Integer(v), "bool") => b.push_bind(*v != 0),
                (Value::Null, _) => b.push_bind(None::<String>),
                (Value::Integer(v), _) => b.push_bind(*v),
                (Value::Real(v), _) => b.push_bind(*v),
                (Value::Text(v), _) => b.push_bind(v.clone()),
                (Value::Blob(v), _) => b.push_bind(v.clone()),
            };
            b.push_unseparated(format!("::{udt}"));
        }
    });
    q.build().execute(&mut **tx).await.with_context(|| format!("copying into '{table}'"))?;
    Ok(())
}

/// Identity columns continue after the copied ids.
async fn restart_sequences(tx: &mut sqlx::Transaction<'_, Postgres>, table: &str) -> Result<()> {
    let serial: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns WHERE table_schema = current_schema() \
         AND table_name = $1 AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')",
    )
    .bind(table)
    .fetch_all(&mut **tx)
    .await?;
    for column in serial {
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence('\"{table}\"', '{column}'), \
             COALESCE((SELECT MAX(\"{column}\") FROM \"{table}\"), 0) + 1, false)"
        ))
        .execute(&mut **tx)
        .await?;
    }
    Ok(())
}
