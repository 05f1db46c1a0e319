//! `securescore verify [--repair]` as a user runs it (the real binary on a data directory), and the
//! rebuild of the counters when the built-in catalogue changes.
//!
//! Drift is made the way a bug or a hand edit would make it: direct SQL on `securescore.db`.

use serde_json::Value;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use std::path::Path;
use std::process::Output;
use std::time::Duration;

use super::*;

/// Run the real CLI.
pub async fn cli(args: &[&str]) -> Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_securescore"))
        .args(args)
        .env_remove("SECURESCORE_DATA_DIR")
        .env_remove("SECURESCORE_DATABASE_URL")
        .kill_on_drop(true)
        .output()
        .await
        .expect("the CLI runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// `verify` on a data directory, with extra arguments.
pub async fn verify(dir: &Path, extra: &[&str]) -> Output {
    let dir = dir.to_str().expect("a UTF-8 temp path");
    let mut args = vec!["verify", "--data-dir", dir];
    args.extend_from_slice(extra);
    cli(&args).await
}

/// A second connection to the data directory's database, as another process would have.
async fn db(dir: &Path) -> SqlitePool {
    let options = SqliteConnectOptions::new()
        .filename(dir.join("securescore.db"))
        .busy_timeout(Duration::from_secs(10));
    SqlitePoolOptions::new().max_connections(1).connect_with(options).await.expect("db opens")
}

/// Change a table behind the store's back, and bump the generation so servers notice.
async fn drift(pool: &SqlitePool, sql: &str) {
    let done = sqlx::query(sql).bind(DEMO).execute(pool).await.expect("drift");
    assert!(done.rows_affected() > 0, "{sql} changed nothing");
    sqlx::query("UPDATE generation SET value = value + 1").execute(pool).await.unwrap();
}

/// Some control of the demo subscription with counted resources.
async fn a_control(pool: &SqlitePool) -> String {
    sqlx::query_scalar(
        "SELECT control FROM control_counts WHERE subscription_id = ?1 ORDER BY control LIMIT 1",
    )
    .bind(DEMO)
    .fetch_one(pool)
    .await
    .expect("the demo subscription has counters")
}

/// The secure score once `done` holds for it (the server notices other processes' writes by
/// polling), or the last one seen after a bounded wait.
async fn score_when(app: &TestApp, done: impl Fn(&Value) -> bool) -> Value {
    let mut last = Value::Null;
    for _ in 0..100 {
        last = app.get(&score_path(DEMO)).await.body["properties"]["score"].clone();
        if done(&last) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    last
}

async fn history(app: &TestApp) -> Vec<Value> {
    let r = app.get(&format!("/securescore/v1/subscriptions/{DEMO}/history")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    r.body["value"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn verify_finds_drift_repair_fixes_it_and_the_api_serves_the_recomputed_score() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_sqlite(dir.path()).await;
    let resource =
        format!("/subscriptions/{DEMO}/resourceGroups/v/providers/Microsoft.Web/sites/app1");
    let path = assessment_path(&resource, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01");
    assert_eq!(app.put(&path, &assessment_body("Unhealthy")).await.status, 201);
    let truth = app.get(&score_path(DEMO)).await.body["properties"]["score"].clone();

    // A clean store verifies clean.
    let clean = verify(dir.path(), &[]).await;
    assert!(clean.status.success(), "{}{}", stdout(&clean), stderr(&clean));
    assert!(stdout(&clean).contains("match"), "{}", stdout(&clean));

    // Drift: a control's counters, one resource's tally, and the last history point.
    let pool = db(dir.path()).await;
    let control = a_control(&pool).await;
    drift(
        &pool,
        &format!(
            "UPDATE control_counts SET healthy = healthy + 5 \
             WHERE subscription_id = ?1 AND control = '{control}'"
        ),
    )
    .await;
    drift(
        &pool,
        "DELETE FROM resource_tallies WHERE rowid = \
         (SELECT min(rowid) FROM resource_tallies WHERE subscription_id = ?1)",
    )
    .await;
    drift(
        &pool,
        "UPDATE score_history SET current = current + 1 WHERE seq = \
         (SELECT max(seq) FROM score_history WHERE subscription_id = ?1)",
    )
    .await;
    let drifted = score_when(&app, |s| s != &truth).await;
    assert_ne!(drifted, truth, "the drift shows in the API");

    // verify: non-zero exit, the mismatches listed (table and JSON).
    let found = verify(dir.path(), &[]).await;
    assert!(!found.status.success(), "{}", stdout(&found));
    let table = stdout(&found);
    assert!(table.contains(&format!("counters of control {control}")), "{table}");
    assert!(table.contains("tallies of control"), "{table}");
    assert!(table.contains("history (last point)"), "{table}");
    assert!(table.contains(DEMO), "{table}");
    assert!(stderr(&found).contains("--repair"), "{}", stderr(&found));
    let json = verify(dir.path(), &["-o", "json"]).await;
    assert!(!json.status.success());
    let report: Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    let counts = report["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["kind"] == "counts")
        .expect("a counts mismatch")
        .clone();
    assert_eq!(counts["control"], control.as_str());
    assert_eq!(
        counts["stored"]["healthy"].as_i64().unwrap(),
        counts["recomputed"]["healthy"].as_i64().unwrap_or(0) + 5
    );
    assert!(report["mismatches"].as_array().unwrap().iter().any(|m| m["kind"] == "tallies"));
    assert!(report["mismatches"].as_array().unwrap().iter().any(|m| m["kind"] == "history"));

    // --repair, while the server runs: says what it changed.
    let repaired = verify(dir.path(), &["--repair"]).await;
    assert!(repaired.status.success(), "{}{}", stdout(&repaired), stderr(&repaired));
    let said = stdout(&repaired);
    assert!(said.contains("Repaired"), "{said}");
    assert!(said.contains(&format!("counters of control {control}")), "{said}");
    assert!(said.contains(&format!("Appended a history point to subscription {DEMO}")), "{said}");

    // verify: clean again; the API answers the recomputed score; the new point is marked.
    let after = verify(dir.path(), &[]).await;
    assert!(after.status.success(), "{}{}", stdout(&after), stderr(&after));
    assert_eq!(score_when(&app, |s| s == &truth).await, truth);
    let points = history(&app).await;
    let last = points.last().expect("history");
    assert_eq!(last["reason"], "repair", "{last}");
    assert_eq!(last["score"], truth);
    assert!(points[..points.len() - 1].iter().all(|p| p.get("reason").is_none()));

    // A second repair has nothing to do.
    let again = verify(dir.path(), &["--repair"]).await;
    assert!(again.status.success());
    assert!(stdout(&again).contains("Nothing to repair"), "{}", stdout(&again));
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn another_catalogue_rebuilds_the_counters_before_serving_and_marks_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let truth = {
        let app = spawn_sqlite(dir.path()).await;
        let score = app.get(&score_path(DEMO)).await.body["properties"]["score"].clone();
        app.stop().await;
        score
    };
    let pool = db(dir.path()).await;
    let recorded: String =
        sqlx::query_scalar("SELECT value FROM meta WHERE key = 'catalog_version'")
            .fetch_one(&pool)
            .await
            .expect("a new store records its catalogue");
    assert!(recorded.starts_with("sha256:"), "{recorded}");
    // Counters as an older catalogue would have left them.
    sqlx::query("UPDATE meta SET value = 'sha256:older' WHERE key = 'catalog_version'")
        .execute(&pool)
        .await
        .unwrap();
    let control = a_control(&pool).await;
    drift(
        &pool,
        &format!(
            "UPDATE control_counts SET unhealthy = unhealthy + 3 \
             WHERE subscription_id = ?1 AND control = '{control}'"
        ),
    )
    .await;

    // verify (which opens the store as it is) names the catalogue change.
    let found = verify(dir.path(), &[]).await;
    assert!(!found.status.success());
    assert!(stdout(&found).contains("catalogue version"), "{}", stdout(&found));
    assert!(stdout(&found).contains("sha256:older"), "{}", stdout(&found));

    // Reopening rebuilds before the server answers: the first answer is already right.
    let app = spawn_sqlite(dir.path()).await;
    assert_eq!(app.get(&score_path(DEMO)).await.body["properties"]["score"], truth);
    let sub = uuid::Uuid::parse_str(DEMO).unwrap();
    assert_eq!(
        app.store.maintained_counts(sub).await.unwrap(),
        app.store.recompute_counts(sub).await.unwrap()
    );
    let points = history(&app).await;
    let last = points.last().expect("history");
    assert_eq!(last["reason"], "catalogChange", "{last}");
    assert_eq!(last["score"], truth);
    let now: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'catalog_version'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(now, recorded, "the built-in version is recorded again");
    let clean = verify(dir.path(), &[]).await;
    assert!(clean.status.success(), "{}{}", stdout(&clean), stderr(&clean));
    app.stop().await;

    // No version recorded on a database with data (one written before versions existed): the
    // same rebuild, once.
    sqlx::query("DELETE FROM meta WHERE key = 'catalog_version'").execute(&pool).await.unwrap();
    let app = spawn_sqlite(dir.path()).await;
    let marked = history(&app).await.iter().filter(|p| p["reason"] == "catalogChange").count();
    assert_eq!(marked, 2, "one more marked point");
    app.stop().await;
    let app = spawn_sqlite(dir.path()).await;
    let marked = history(&app).await.iter().filter(|p| p["reason"] == "catalogChange").count();
    assert_eq!(marked, 2, "an unchanged catalogue rebuilds nothing");
    pool.close().await;
    app.stop().await;
}

#[tokio::test]
async fn a_damaged_database_file_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_sqlite(dir.path()).await;
    // A standalone copy (no WAL) to damage, so the running server is not involved.
    let copy = tempfile::tempdir().unwrap();
    let target = copy.path().join("securescore.db");
    let pool = db(dir.path()).await;
    sqlx::query("VACUUM INTO ?1")
        .bind(target.to_str().unwrap())
        .execute(&pool)
        .await
        .expect("a copy");
    pool.close().await;
    app.stop().await;
    assert!(verify(copy.path(), &[]).await.status.success(), "the copy is sound");

    // Zero the root page of an index of the assessments: the table still reads, the file is not
    // sound.
    let pool = db(copy.path()).await;
    let root: i64 = sqlx::query_scalar(
        "SELECT rootpage FROM sqlite_schema WHERE name = 'assessments_by_subscription'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size").fetch_one(&pool).await.unwrap();
    pool.close().await;
    let mut bytes = std::fs::read(&target).unwrap();
    let start = usize::try_from((root - 1) * page_size).unwrap();
    let end = start + usize::try_from(page_size).unwrap();
    bytes[start..end].fill(0);
    std::fs::write(&target, bytes).unwrap();

    for extra in [&[][..], &["--repair"][..]] {
        let out = verify(copy.path(), extra).await;
        assert!(!out.status.success(), "{extra:?}: {}", stdout(&out));
        let said = format!("{}{}", stdout(&out), stderr(&out)).to_lowercase();
        assert!(said.contains("damaged"), "{extra:?}: {said}");
    }
    let json = verify(copy.path(), &["-o", "json"]).await;
    let report: Value = serde_json::from_slice(&json.stdout).expect("JSON report");
    assert!(!report["integrity"].as_array().unwrap().is_empty(), "{report}");
    assert_eq!(report["countersChecked"], false);
}

#[tokio::test]
async fn database_url_and_missing_data_answer_clearly() {
    // Nothing listens on port 1: both commands name the database they cannot reach.
    let url = "postgres://127.0.0.1:1/x";
    let serve = cli(&["serve", "--database-url", url]).await;
    let check = cli(&["verify", "--database-url", url]).await;
    assert!(!check.status.success());
    assert_eq!(check.status.code(), serve.status.code(), "the same exit code as serve");
    for out in [&serve, &check] {
        assert!(
            stderr(out).contains(&format!("cannot connect to PostgreSQL at {url}")),
            "{}",
            stderr(out)
        );
    }
    // Also with a data directory in the environment (as the README suggests exporting).
    let with_env = tokio::process::Command::new(env!("CARGO_BIN_EXE_securescore"))
        .args(["verify", "--database-url", url])
        .env("SECURESCORE_DATA_DIR", "/nonexistent")
        .output()
        .await
        .unwrap();
    assert_eq!(with_env.status.code(), serve.status.code());
    assert!(stderr(&with_env).contains("cannot connect to PostgreSQL"), "{}", stderr(&with_env));
    // Another database's URL is refused before anything is tried.
    let other = cli(&["verify", "--database-url", "mysql://127.0.0.1/x"]).await;
    assert!(!other.status.success());
    assert!(stderr(&other).contains("must be a PostgreSQL URL"), "{}", stderr(&other));

    let dir = tempfile::tempdir().unwrap();
    let nowhere = dir.path().join("nothing-here");
    let out = verify(&nowhere, &[]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("holds no securescore database"), "{}", stderr(&out));
    assert!(!nowhere.exists(), "verify creates nothing");
}

#[tokio::test]
async fn repair_adopts_another_catalogue_and_marks_it_as_a_catalogue_change() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_sqlite(dir.path()).await;
    let truth = app.get(&score_path(DEMO)).await.body["properties"]["score"].clone();
    let pool = db(dir.path()).await;
    sqlx::query("UPDATE meta SET value = 'sha256:older' WHERE key = 'catalog_version'")
        .execute(&pool)
        .await
        .unwrap();

    // A running server does not rebuild (it adopted its catalogue when it opened); repair does,
    // and says why.
    let repaired = verify(dir.path(), &["--repair"]).await;
    assert!(repaired.status.success(), "{}{}", stdout(&repaired), stderr(&repaired));
    assert!(stdout(&repaired).contains("catalogue version"), "{}", stdout(&repaired));
    let now: String = sqlx::query_scalar("SELECT value FROM meta WHERE key = 'catalog_version'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(now.starts_with("sha256:") && now != "sha256:older", "{now}");
    let points = history(&app).await;
    let last = points.last().expect("history");
    assert_eq!(last["reason"], "catalogChange", "{last}");
    assert_eq!(last["score"], truth);
    assert!(verify(dir.path(), &[]).await.status.success());
    pool.close().await;
    app.stop().await;
}
