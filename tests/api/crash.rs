//! A crash under load: the real binary is killed with SIGKILL while concurrent writers PUT
//! assessments. After a restart every acknowledged write is there with its status, and `verify`
//! finds the counters in step with the assessments — on a data directory, and on PostgreSQL (a
//! replica killed; another started on the same database).

use reqwest::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use super::verify::{cli, stderr, stdout};
use super::*;

/// Where the server keeps its data: a data directory, or PostgreSQL (with a data directory for
/// its demo credentials).
struct Where<'a> {
    dir: &'a Path,
    database_url: Option<&'a str>,
}

impl Where<'_> {
    fn args(&self) -> Vec<String> {
        let mut args = vec!["--data-dir".to_string(), self.dir.to_str().unwrap().to_string()];
        if let Some(url) = self.database_url {
            args.extend(["--database-url".to_string(), url.to_string()]);
        }
        args
    }
}

async fn verify(at: &Where<'_>, extra: &[&str]) -> std::process::Output {
    let mut args = vec!["verify".to_string()];
    match at.database_url {
        Some(url) => args.extend(["--database-url".to_string(), url.to_string()]),
        None => args.extend(["--data-dir".to_string(), at.dir.to_str().unwrap().to_string()]),
    }
    args.extend(extra.iter().map(|s| s.to_string()));
    cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).await
}

const WRITERS: usize = 4;
/// Each writer's bound: it stops earlier when the server dies.
const MAX_WRITES: usize = 1000;
/// Kill once this many writes were acknowledged, or after `KILL_AFTER` once any was (a slow
/// machine), with the writers still running; `GIVE_UP` bounds the wait.
const KILL_AT_ACKS: usize = 120;
const KILL_AFTER: Duration = Duration::from_secs(8);
const GIVE_UP: Duration = Duration::from_secs(60);
const RESOURCES: usize = 5;
const STATUSES: [&str; 3] = ["Unhealthy", "Healthy", "NotApplicable"];

struct Server {
    child: Child,
    base: String,
    token: String,
}

/// `serve` on `at` (any free port, read back from the banner), and a token of the demo principal.
async fn start(at: &Where<'_>) -> Server {
    let mut child = Command::new(env!("CARGO_BIN_EXE_securescore"))
        .args(["serve", "--insecure-http", "--demo", "--no-throttle", "--listen", "127.0.0.1:0"])
        .args(at.args())
        .env_remove("SECURESCORE_DATA_DIR")
        .env_remove("SECURESCORE_AUTH")
        .env("SECURESCORE_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("the server starts");
    let mut lines = BufReader::new(child.stdout.take().expect("piped stdout")).lines();
    let base = loop {
        let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
            .await
            .expect("the banner within a minute")
            .expect("stdout reads")
            .expect("the server prints its address before exiting");
        if let Some(url) = line.strip_prefix("securescore listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep draining stdout so the server never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let mut args = vec!["token".to_string(), "--authority".to_string(), base.clone()];
    args.extend(at.args());
    let out = cli(&args.iter().map(String::as_str).collect::<Vec<_>>()).await;
    assert!(out.status.success(), "token: {}", stderr(&out));
    let token = stdout(&out).lines().last().expect("a token").trim().to_string();
    Server { child, base, token }
}

/// One PUT as a writer made it: what, and whether the server acknowledged it.
struct Attempt {
    key: usize,
    status: &'static str,
    acked: bool,
}

fn resource(writer: usize, key: usize) -> String {
    format!(
        "/subscriptions/{DEMO}/resourceGroups/crash/providers/Microsoft.Compute/virtualMachines/w{writer}-vm{}",
        key % RESOURCES
    )
}

/// Built-in assessments that move the score, so the counters have work to do.
fn names() -> Vec<String> {
    securescore::catalog::builtin()
        .assessments()
        .iter()
        .filter(|a| a.counts_toward_score() && !a.controls.is_empty())
        .take(3)
        .map(|a| a.name.clone())
        .collect()
}

fn path(writer: usize, key: usize, names: &[String]) -> String {
    assessment_path(&resource(writer, key), &names[key / RESOURCES], "2021-06-01")
}

async fn writer(
    id: usize,
    http: reqwest::Client,
    server: (String, String),
    names: Arc<Vec<String>>,
    acks: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
) -> Vec<Attempt> {
    let (base, token) = server;
    let keys = RESOURCES * names.len();
    let mut attempts = Vec::new();
    for i in 0..MAX_WRITES {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        // Every key is rewritten, with another status each round.
        let key = i % keys;
        let status = STATUSES[(i / keys) % STATUSES.len()];
        let sent = http
            .put(format!("{base}{}", path(id, key, &names)))
            .bearer_auth(&token)
            .json(&assessment_body(status))
            .send()
            .await;
        match sent {
            Ok(r) => {
                let code = r.status();
                assert!(
                    code == StatusCode::OK || code == StatusCode::CREATED,
                    "a valid write failed: {code} {}",
                    r.text().await.unwrap_or_default()
                );
                attempts.push(Attempt { key, status, acked: true });
                acks.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                // The server died with this write in flight: it may or may not have committed.
                attempts.push(Attempt { key, status, acked: false });
                break;
            }
        }
    }
    attempts
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_and_verify_passes() {
    let dir = tempfile::tempdir().unwrap();
    crash_and_check(&Where { dir: dir.path(), database_url: None }).await;
}

#[tokio::test]
async fn acknowledged_writes_survive_kill_9_of_a_replica_on_postgresql() {
    let test = "acknowledged_writes_survive_kill_9_of_a_replica_on_postgresql";
    let Some(url) = super::replicas::fresh_database(test).await else { return };
    let dir = tempfile::tempdir().unwrap();
    crash_and_check(&Where { dir: dir.path(), database_url: Some(&url) }).await;
}

async fn crash_and_check(at: &Where<'_>) {
    let mut server = start(at).await;
    let names = Arc::new(names());
    assert_eq!(names.len(), 3);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap();
    let acks = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..WRITERS)
        .map(|id| {
            tokio::spawn(writer(
                id,
                http.clone(),
                (server.base.clone(), server.token.clone()),
                names.clone(),
                acks.clone(),
                stop.clone(),
            ))
        })
        .collect();

    // Under load, verify reads one consistent snapshot (no false alarm) and repair finds nothing.
    let started = tokio::time::Instant::now();
    while acks.load(Ordering::Relaxed) < WRITERS * 5 {
        assert!(started.elapsed() < GIVE_UP, "no writes acknowledged");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let during = verify(at, &[]).await;
    assert!(during.status.success(), "{}{}", stdout(&during), stderr(&during));
    let repair = verify(at, &["--repair"]).await;
    assert!(repair.status.success(), "{}{}", stdout(&repair), stderr(&repair));
    assert!(stdout(&repair).contains("Nothing to repair"), "{}", stdout(&repair));
    let acks_at_verify = acks.load(Ordering::Relaxed);

    // Kill while the writers run.
    let started = tokio::time::Instant::now();
    loop {
        let (n, waited) = (acks.load(Ordering::Relaxed), started.elapsed());
        if n >= KILL_AT_ACKS || (n > 0 && waited >= KILL_AFTER) || waited >= GIVE_UP {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.child.start_kill().expect("SIGKILL");
    let killed = server.child.wait().await.expect("the server exits");
    assert!(!killed.success(), "killed, not exited");
    stop.store(true, Ordering::Relaxed);
    let mut by_writer = Vec::new();
    for t in tasks {
        by_writer.push(t.await.expect("a writer"));
    }
    let acked: usize = by_writer.iter().flatten().filter(|a| a.acked).count();
    let in_flight = by_writer.iter().flatten().filter(|a| !a.acked).count();
    eprintln!(
        "crash: {acked} writes acknowledged ({acks_at_verify} when verify ran), \
         {in_flight} in flight at the kill"
    );
    assert!(acked > 0, "some writes were acknowledged before the kill");

    // Restart on the same data.
    let mut server = start(at).await;
    let mut checked = 0;
    for (id, attempts) in by_writer.iter().enumerate() {
        // Per key: the status of its last acknowledged write, or of a later write that was in
        // flight at the kill (committed but not acknowledged is allowed).
        let mut expected: HashMap<usize, Vec<&str>> = HashMap::new();
        for a in attempts {
            if a.acked {
                expected.insert(a.key, vec![a.status]);
            } else if let Some(allowed) = expected.get_mut(&a.key) {
                allowed.push(a.status);
            }
        }
        for (key, allowed) in expected {
            let r = http
                .get(format!("{}{}", server.base, path(id, key, &names)))
                .bearer_auth(&server.token)
                .send()
                .await
                .expect("the restarted server answers");
            assert_eq!(
                r.status(),
                StatusCode::OK,
                "writer {id} key {key}: acknowledged, then lost"
            );
            let body: Value = r.json().await.unwrap();
            let got = body["properties"]["status"]["code"].as_str().unwrap_or_default().to_string();
            assert!(
                allowed.contains(&got.as_str()),
                "writer {id} key {key}: {got}, want {allowed:?}"
            );
            checked += 1;
        }
    }
    assert!(checked > 0);

    // The counters are in step with what survived (checked while the server runs).
    let v = verify(at, &[]).await;
    assert!(v.status.success(), "{}{}", stdout(&v), stderr(&v));
    let _ = server.child.start_kill();
    let _ = server.child.wait().await;
}
