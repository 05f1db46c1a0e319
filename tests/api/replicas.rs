//! Scale-out on PostgreSQL: replicas on one database are one service (writes through both leave
//! exact counters and identical answers; tokens, rotations, role changes and dashboard sign-ins
//! hold everywhere), a replica rides out the database going away, `migrate` moves a data
//! directory up, and `verify` works there. These need a PostgreSQL server: `SECURESCORE_TEST_POSTGRES` names one (`.ci/run`
//! starts a private cluster); without it each test says loudly that it was skipped.

use reqwest::Method;
use serde_json::Value;
use std::process::Command;
use std::time::Duration;
use uuid::Uuid;

use super::verify::{cli, stderr, stdout};
use super::*;
use crate::dashboard;
use securescore::arm::PublicUrl;

/// How long a change may take to reach the other replica before a test gives up (they propagate
/// within a second; the margin is for a loaded CI machine, not a timing assertion).
const PATIENCE: Duration = Duration::from_secs(15);

/// A fresh database on the test server, or `None` (and a loud line) when there is none.
pub async fn fresh_database(test: &str) -> Option<String> {
    let Ok(base) = std::env::var("SECURESCORE_TEST_POSTGRES") else {
        skipped(test, "set SECURESCORE_TEST_POSTGRES=postgres://USER@HOST:PORT/DB to run it (`.ci/postgres.sh start` prints one)");
        return None;
    };
    use sqlx::Connection;
    let mut admin = sqlx::PgConnection::connect(&base).await.expect("the test PostgreSQL answers");
    let name = format!("securescore_{}", Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut admin).await.unwrap();
    let (head, _) =
        base.split('?').next().unwrap().rsplit_once('/').expect("a URL with a database");
    Some(format!("{head}/{name}"))
}

/// Say loudly that a PostgreSQL test did not run — straight to the terminal, which the test
/// harness does not capture — or fail it where PostgreSQL is required (`.ci/run`).
fn skipped(test: &str, why: &str) {
    assert!(
        std::env::var_os("SECURESCORE_REQUIRE_POSTGRES").is_none(),
        "{test}: SECURESCORE_REQUIRE_POSTGRES is set, but {why}"
    );
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "*** SKIPPED (PostgreSQL): {test} — {why} ***");
}

async fn replica(url: &str, public: &str) -> TestApp {
    spawn_with(Options {
        store: StoreConfig::Postgres { url: url.to_string() },
        demo: false,
        public_url: Some(public.parse::<PublicUrl>().unwrap()),
        ..Options::default()
    })
    .await
}

/// Poll until `check` holds, or fail after [`PATIENCE`] with what it last saw.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match check().await {
            Ok(()) => return,
            Err(last) if tokio::time::Instant::now() > deadline => {
                panic!("{what}: not within {PATIENCE:?}; last: {last}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn resource(sub: Uuid, n: usize) -> String {
    format!("/subscriptions/{sub}/resourceGroups/rg{}/providers/Microsoft.Compute/virtualMachines/vm{n}", n % 3)
}

const NAMES: [&str; 3] = [
    "21300918-b2e3-0346-785f-c77ff57d243b",
    "94290b00-4d0c-d7b4-7cea-064a9554e681",
    "e3de1cc0-f4dd-3b34-e496-8b5381ba2d70",
];
const CODES: [&str; 3] = ["Healthy", "Unhealthy", "NotApplicable"];

async fn status_as(app: &TestApp, path: &str, token: &str) -> u16 {
    app.http
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn two_replicas_on_one_database_are_one_service() {
    let Some(url) = fresh_database("two_replicas_on_one_database_are_one_service").await else {
        return;
    };
    let public = "http://127.0.0.1:7443";
    let a = replica(&url, public).await;
    let b = replica(&url, public).await;
    let subs = [Uuid::new_v4(), Uuid::new_v4()];
    for s in subs {
        a.add_subscription(s).await;
    }
    // Concurrent writes through both replicas, on the same resources.
    let mut tasks = Vec::new();
    for (r, app) in [&a, &b].into_iter().enumerate() {
        for w in 0..4usize {
            let (base, token, http) = (app.base.clone(), app.token.clone(), app.http.clone());
            tasks.push(tokio::spawn(async move {
                for i in 0..40usize {
                    let sub = subs[(i + w) % 2];
                    let n = (i * 7 + w * 3 + r) % 12;
                    let name = NAMES[(i + r) % 3];
                    let path = assessment_path(&resource(sub, n), name, "2020-01-01");
                    let response = if (i + w) % 9 == 8 {
                        http.delete(format!("{base}{path}"))
                            .bearer_auth(&token)
                            .send()
                            .await
                            .unwrap()
                    } else {
                        http.put(format!("{base}{path}"))
                            .bearer_auth(&token)
                            .json(&assessment_body(CODES[(i * 5 + w + r) % 3]))
                            .send()
                            .await
                            .unwrap()
                    };
                    let status = response.status().as_u16();
                    assert!(matches!(status, 200 | 201 | 204), "{path}: {status}");
                }
            }));
        }
    }
    for t in tasks {
        t.await.unwrap();
    }
    // The maintained counters equal a recomputation, whichever replica wrote.
    let report = a.store.verify().await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    // Both replicas answer the same bytes.
    for s in subs {
        let path = format!("/subscriptions/{s}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01&$expand=definition");
        eventually("identical controls lists", || {
            let (a, b, path) = (&a, &b, path.clone());
            async move {
                let (x, y) = (a.get(&path).await, b.get(&path).await);
                if x.status == 200 && x.text == y.text {
                    Ok(())
                } else {
                    Err(format!("{}\n{}", x.text, y.text))
                }
            }
        })
        .await;
    }
    // A write through one replica is seen through the other.
    let path = assessment_path(&resource(subs[0], 99), NAMES[0], "2020-01-01");
    assert_eq!(a.put(&path, &assessment_body("Unhealthy")).await.status, 201);
    eventually("a write through A read through B", || async {
        let r = b.get(&path).await;
        if r.status == 200 {
            Ok(())
        } else {
            Err(r.text)
        }
    })
    .await;

    // A token from one replica works on the other; a role removed through one is gone on both.
    let score = score_path(&subs[0].to_string());
    let reader = format!("/subscriptions/{}", subs[0]);
    let (principal, secret) = principal_with_roles(&a, &[("Reader", &reader)]).await;
    let token = client_token(&a, &principal, &secret).await;
    assert_eq!(status_as(&b, &score, &token).await, 200);
    let id = principal.id.to_string();
    for ra in a.store.role_assignments(Some(&id)).await.unwrap() {
        assert!(a.store.remove_role_assignment(ra.id).await.unwrap());
    }
    eventually("a role removed through A is gone on B", || async {
        match status_as(&b, &score, &token).await {
            403 => Ok(()),
            s => Err(s.to_string()),
        }
    })
    .await;

    // A key rotated on one replica signs tokens the other accepts.
    admin::assign(&a.store, &principal.id.to_string(), "Reader", "/").await.unwrap();
    let r = a.request(Method::POST, "/securescore/v1/keys/rotate", Some(String::new()), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let fresh = client_token(&a, &principal, &secret).await;
    eventually("a token signed with A's new key accepted by B", || async {
        match status_as(&b, &score, &fresh).await {
            200 => Ok(()),
            s => Err(s.to_string()),
        }
    })
    .await;

    // A sign-in on one replica is redeemed at the other (the dashboard behind a load balancer),
    // once: a second attempt, at either replica, finds no code.
    admin::create_principal(
        &a.store,
        admin::NewPrincipal {
            display_name: "Dana".into(),
            kind: securescore::store::PrincipalKind::User,
            user_name: Some(dashboard::USER.into()),
            password: Some(dashboard::PASSWORD.into()),
            tenant_id: Some(a.tenant),
        },
    )
    .await
    .unwrap();
    admin::assign(&a.store, dashboard::USER, "Reader", &reader).await.unwrap();
    let redirect = format!("{public}/");
    let location =
        dashboard::sign_in_to(&a, &redirect, dashboard::USER, dashboard::PASSWORD, &[]).await;
    let code = dashboard::code_of(&location);
    let (status, tokens) = dashboard::redeem_to(&b, &redirect, &code, &[]).await;
    assert_eq!(status, 200, "{tokens}");
    let (status, again) = dashboard::redeem_to(&a, &redirect, &code, &[]).await;
    assert_eq!((status, again["error"].as_str()), (400, Some("invalid_grant")), "{again}");
    let user_token = tokens["access_token"].as_str().unwrap();
    assert_eq!(status_as(&a, &score, user_token).await, 200);
    a.stop().await;
    b.stop().await;
}

/// A PostgreSQL cluster of the test's own — initdb into a temp dir, a free port, trust on
/// loopback — that the test may stop and start. As root (CI), the server runs as `postgres`.
pub struct Cluster {
    dir: tempfile::TempDir,
    port: u16,
    bin: std::path::PathBuf,
    as_postgres: bool,
}

impl Cluster {
    /// `None` (and a loud line) when PostgreSQL's server programs are not installed.
    pub fn start(test: &str) -> Option<Cluster> {
        let bin =
            std::env::var_os("SECURESCORE_PG_BIN").map(std::path::PathBuf::from).or_else(|| {
                let mut found: Vec<_> = std::fs::read_dir("/usr/lib/postgresql")
                    .ok()?
                    .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
                    .filter(|p| p.join("initdb").exists())
                    .collect();
                found.sort();
                found.pop()
            });
        let Some(bin) = bin else {
            skipped(test, "no PostgreSQL server programs (apt-get install postgresql)");
            return None;
        };
        let as_postgres =
            Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let cluster = Cluster { dir, port, bin, as_postgres };
        if as_postgres {
            let ok = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(cluster.dir.path())
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let data = cluster.dir.path().join("data");
        cluster.run(
            "initdb",
            &["-D", data.to_str().unwrap(), "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        );
        cluster.resume();
        Some(cluster)
    }

    fn run(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let out = cmd.args(args).output().unwrap();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stop at once, as a crash or a lost network would.
    pub fn stop(&self) {
        let data = self.dir.path().join("data");
        self.run("pg_ctl", &["-D", data.to_str().unwrap(), "-m", "immediate", "-w", "stop"]);
    }

    pub fn resume(&self) {
        let data = self.dir.path().join("data");
        let socket = self.dir.path().to_str().unwrap().to_string();
        let options =
            format!("-c listen_addresses=127.0.0.1 -p {} -k {socket} -c fsync=on", self.port);
        let log = self.dir.path().join("log");
        self.run(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-o",
                &options,
                "-l",
                log.to_str().unwrap(),
                "-w",
                "start",
            ],
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let _ = Command::new(if self.as_postgres { "runuser" } else { "true" }).status();
        let exe = self.bin.join("pg_ctl");
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        let _ = cmd.args(["-D", data.to_str().unwrap(), "-m", "immediate", "stop"]).output();
    }
}

#[tokio::test]
async fn a_replica_rides_out_the_database_going_away() {
    let Some(cluster) = Cluster::start("a_replica_rides_out_the_database_going_away") else {
        return;
    };
    let app = spawn_with(Options {
        store: StoreConfig::Postgres { url: cluster.url() },
        demo: false,
        ..Options::default()
    })
    .await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let put = |n: usize| assessment_path(&resource(sub, n), NAMES[0], "2020-01-01");
    assert_eq!(app.put(&put(0), &assessment_body("Unhealthy")).await.status, 201);

    cluster.stop();
    // Writes answer 503 with Retry-After (never 500, never a hang past the request timeout).
    let mut n = 1;
    eventually("writes answer 503 while the database is away", || {
        n += 1;
        let (app, path) = (&app, put(n));
        async move {
            let r = app.put(&path, &assessment_body("Healthy")).await;
            assert_ne!(r.status, 500, "{}", r.text);
            if r.status != 503 {
                return Err(format!("{} {}", r.status, r.text));
            }
            assert_eq!(r.code(), "ServiceUnavailable", "{}", r.text);
            let retry: u64 = r.header("retry-after").expect("Retry-After").parse().unwrap();
            assert!(retry > 0);
            Ok(())
        }
    })
    .await;
    eventually("/readyz answers 503", || async {
        match app.get("/readyz").await.status {
            503 => Ok(()),
            s => Err(s.to_string()),
        }
    })
    .await;

    cluster.resume();
    // Back without a restart.
    eventually("writes succeed again", || async {
        let r = app.put(&put(500), &assessment_body("Healthy")).await;
        if matches!(r.status, 200 | 201) {
            Ok(())
        } else {
            Err(format!("{} {}", r.status, r.text))
        }
    })
    .await;
    eventually("/readyz answers 200", || async {
        match app.get("/readyz").await.status {
            200 => Ok(()),
            s => Err(s.to_string()),
        }
    })
    .await;
    assert_eq!(app.get(&put(0)).await.status, 200, "the write acknowledged before the outage");
    let report = app.store.verify().await.unwrap();
    assert!(report.mismatches.is_empty(), "{:?}", report.mismatches);
    app.stop().await;
}

#[tokio::test]
async fn migrate_moves_a_data_directory_into_postgresql() {
    let Some(url) = fresh_database("migrate_moves_a_data_directory_into_postgresql").await else {
        return;
    };
    let public = "http://127.0.0.1:7444";
    let dir = tempfile::tempdir().unwrap();
    let options =
        |store| Options { store, public_url: Some(public.parse().unwrap()), ..Options::default() };
    // The demo estate, a management group and an exemption, served from a data directory.
    let app = spawn_with(options(StoreConfig::Sqlite { data_dir: dir.path().to_path_buf() })).await;
    let group = "/providers/Microsoft.Management/managementGroups/Moved?api-version=2021-04-01";
    assert_eq!(app.put(group, &serde_json::json!({"properties": {}})).await.status, 200);
    let exemption = serde_json::json!({"properties": {
        "scope": format!("/subscriptions/{DEMO}"),
        "assessment": NAMES[0],
        "category": "Waiver",
        "description": "moved along",
    }});
    let r = app.put("/securescore/v1/exemptions/moved", &exemption).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let controls = format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01&$expand=definition");
    let before = (app.get(&score_path(DEMO)).await.text, app.get(&controls).await.text);
    let token = app.token.clone();
    app.stop().await;

    let from = dir.path().to_str().unwrap();
    let out = cli(&["migrate", "--from-data-dir", from, "--to", &url, "-o", "json"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let report: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(report["ok"], true, "{report}");
    let assessments =
        report["tables"].as_array().unwrap().iter().find(|t| t["table"] == "assessments").unwrap();
    assert!(assessments["source"].as_u64().unwrap() > 0);
    assert_eq!(assessments["source"], assessments["target"]);
    // A second time, the target is not empty: refused unless --force.
    let out = cli(&["migrate", "--from-data-dir", from, "--to", &url]).await;
    assert!(!out.status.success());
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    let out = cli(&["migrate", "--from-data-dir", from, "--to", &url, "--force"]).await;
    assert!(out.status.success(), "{}", stderr(&out));

    // Served from PostgreSQL: the same answers, and a token of the data directory's key still valid.
    let pg =
        spawn_with(Options { demo: false, ..options(StoreConfig::Postgres { url: url.clone() }) })
            .await;
    let r = pg
        .http
        .get(format!("{}{}", pg.base, score_path(DEMO)))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), before.0);
    assert_eq!(pg.get(&controls).await.text, before.1);
    assert_eq!(pg.get("/securescore/v1/exemptions/moved").await.status, 200);
    pg.stop().await;
    let out = cli(&["verify", "--database-url", &url]).await;
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}
