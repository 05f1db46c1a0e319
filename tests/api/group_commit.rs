//! Group commit of assessment writes: many concurrent PUTs and DELETEs through the real HTTP API
//! into a file data directory, batched into shared transactions by the server. Every write
//! acknowledged is readable afterwards, each answer (201 / 200 / 204) is the one its write had in
//! order, and the maintained counters equal a recomputation (and `securescore verify`).

use std::collections::BTreeMap;
use std::sync::Arc;
use uuid::Uuid;

use super::*;

const WRITERS: usize = 32;
const WRITES_EACH: usize = 12;

fn vm(name: &str) -> String {
    format!("/subscriptions/{DEMO}/resourceGroups/gc/providers/Microsoft.Compute/virtualMachines/{name}")
}

/// Recommendations that count toward the score (so counters move with every write).
fn scored() -> Vec<String> {
    securescore::catalog::builtin()
        .assessments()
        .iter()
        .filter(|a| a.counts_toward_score())
        .take(4)
        .map(|a| a.name.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writes_are_acknowledged_after_commit_with_their_own_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let app = Arc::new(spawn_sqlite(dir.path()).await);
    let names = Arc::new(scored());
    let statuses = ["Healthy", "Unhealthy", "NotApplicable"];

    // Every writer owns its resources (a sequence of writes whose final state it knows) and
    // also writes one assessment that all writers share, all at once.
    let shared = assessment_path(&vm("shared"), &names[0], "2021-06-01");
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let (app, names, shared) = (app.clone(), names.clone(), shared.clone());
        tasks.push(tokio::spawn(async move {
            let mut last: BTreeMap<String, Option<&'static str>> = BTreeMap::new();
            let mut shared_answers = Vec::new();
            for i in 0..WRITES_EACH {
                let path = assessment_path(
                    &vm(&format!("w{w}-vm{}", i % 3)),
                    &names[i % names.len()],
                    "2021-06-01",
                );
                let existed = last.get(&path).copied().flatten().is_some();
                if i % 5 == 4 {
                    let r = app.delete(&path).await;
                    let expected = if existed { 200 } else { 204 };
                    assert_eq!(r.status, expected, "DELETE {path}: {}", r.text);
                    last.insert(path, None);
                } else {
                    let status = statuses[(i + w) % 3];
                    let r = app.put(&path, &assessment_body(status)).await;
                    let expected = if existed { 200 } else { 201 };
                    assert_eq!(r.status, expected, "PUT {path}: {}", r.text);
                    last.insert(path, Some(status));
                }
                let r = app.put(&shared, &assessment_body(statuses[w % 3])).await;
                assert!(matches!(r.status, 200 | 201), "{}", r.text);
                shared_answers.push(r.status);
            }
            (last, shared_answers)
        }));
    }
    let mut expected = BTreeMap::new();
    let mut created = 0;
    for t in tasks {
        let (last, shared_answers) = t.await.unwrap();
        expected.extend(last);
        created += shared_answers.iter().filter(|&&s| s == 201).count();
    }
    // The shared assessment was created once, however its writes were batched.
    assert_eq!(created, 1, "exactly one PUT of the shared assessment created it");

    // Every acknowledged write is what a read returns.
    for (path, status) in &expected {
        let r = app.get(path).await;
        match status {
            Some(code) => {
                assert_eq!(r.status, 200, "{path}: {}", r.text);
                assert_eq!(r.body["properties"]["status"]["code"], *code, "{path}");
            }
            None => assert_eq!(r.status, 404, "{path} was deleted: {}", r.text),
        }
    }
    let sub = Uuid::parse_str(DEMO).unwrap();
    assert_eq!(
        app.store.maintained_counts(sub).await.unwrap(),
        app.store.recompute_counts(sub).await.unwrap()
    );
    Arc::into_inner(app).expect("no other handle").stop().await;

    // What is on disk verifies, as a user would check it.
    let report = super::verify::verify(dir.path(), &[]).await;
    assert!(report.status.success(), "{}", super::verify::stdout(&report));
}
