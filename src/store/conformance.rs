//! One conformance suite, run against every engine: each test takes a fresh [`Store`] from every
//! entry of [`engines`]. A new engine (PostgreSQL) joins by adding itself there.

use serde_json::json;
use std::time::Duration;
use time::OffsetDateTime;
use uuid::Uuid;

use super::*;
use crate::score::Status;

struct Fixture {
    name: &'static str,
    store: Store,
    /// How to open another handle on the same data (another process would); `None` for the
    /// in-memory store, which lives in its one handle.
    config: Option<StoreConfig>,
    _dir: Option<tempfile::TempDir>,
}

async fn engines() -> Vec<Fixture> {
    let dir = tempfile::tempdir().expect("a temp dir");
    let sqlite_config = StoreConfig::Sqlite { data_dir: dir.path().to_path_buf() };
    let sqlite = Store::open(&sqlite_config).await.expect("sqlite opens");
    let memory = Store::open(&StoreConfig::Memory).await.expect("memory opens");
    let mut all = vec![
        Fixture { name: "sqlite", store: sqlite, config: Some(sqlite_config), _dir: Some(dir) },
        Fixture { name: "memory", store: memory, config: None, _dir: None },
    ];
    if let Some(url) = fresh_postgres().await {
        let config = StoreConfig::Postgres { url };
        let store = Store::open(&config).await.expect("postgres opens");
        all.push(Fixture { name: "postgres", store, config: Some(config), _dir: None });
    }
    all
}

/// The variable naming a PostgreSQL server for the conformance run (`.ci/postgres.sh start`
/// prints one), e.g. `postgres://postgres@127.0.0.1:5432/postgres`.
const POSTGRES_VAR: &str = "SECURESCORE_TEST_POSTGRES";

/// A new, empty database on the server of [`POSTGRES_VAR`] (a random name, so that tests running
/// in parallel never share one), as a URL; `None` when the variable is not set. The databases
/// are left behind: the server is a throw-away cluster (`.ci/postgres.sh stop` removes it all).
pub(super) async fn fresh_postgres() -> Option<String> {
    static SKIPPED: std::sync::Once = std::sync::Once::new();
    let Ok(admin) = std::env::var(POSTGRES_VAR) else {
        assert!(
            std::env::var_os("SECURESCORE_REQUIRE_POSTGRES").is_none(),
            "SECURESCORE_REQUIRE_POSTGRES is set but {POSTGRES_VAR} is not"
        );
        SKIPPED.call_once(|| {
            // Straight to the terminal: the test harness captures `eprintln!` of passing tests.
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "\n*** SKIPPED (PostgreSQL): the conformance run on PostgreSQL — {POSTGRES_VAR} is \
                 not set. Start a server with `.ci/postgres.sh start` and export its URL as \
                 {POSTGRES_VAR} to run every conformance test against the PostgreSQL engine too. ***\n"
            );
        });
        return None;
    };
    use sqlx::Connection;
    let name = format!("securescore_test_{}", Uuid::new_v4().simple());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .unwrap_or_else(|e| panic!("{POSTGRES_VAR}={admin}: cannot connect: {e}"));
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
    // Replace the database (the path) of the URL, keeping any query string.
    let (base, query) = admin.split_once('?').map_or((admin.as_str(), None), |(b, q)| (b, Some(q)));
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let host = match base[authority_end..].find('/') {
        Some(i) => &base[..authority_end + i],
        None => base,
    };
    Some(match query {
        Some(q) => format!("{host}/{name}?{q}"),
        None => format!("{host}/{name}"),
    })
}

const EP: &str = "21300918-b2e3-0346-785f-c77ff57d243b"; // "Enable endpoint protection" only

fn sub(id: Uuid) -> Subscription {
    Subscription { id, display_name: "t".into(), tenant_id: Uuid::nil(), state: "Enabled".into() }
}

fn put(resource: &str, name: &str, status: Status) -> Write {
    Write::Put(AssessmentInput {
        resource: ResourceId::parse(resource).expect("valid id"),
        name: name.into(),
        status,
        cause: None,
        description: None,
        resource_details: json!({"source": "Azure"}),
        additional_data: None,
        partner_name: None,
    })
}

fn del(resource: &str, name: &str) -> Write {
    Write::Delete { resource: ResourceId::parse(resource).expect("valid id"), name: name.into() }
}

#[tokio::test]
async fn subscriptions_crud() {
    for f in engines().await {
        let id = Uuid::new_v4();
        assert!(f.store.put_subscription(&sub(id)).await.unwrap(), "{}", f.name);
        assert!(!f
            .store
            .put_subscription(&Subscription { display_name: "u".into(), ..sub(id) })
            .await
            .unwrap());
        assert_eq!(f.store.subscription(id).await.unwrap().unwrap().display_name, "u");
        assert_eq!(f.store.subscriptions().await.unwrap().len(), 1);
        assert!(f.store.remove_subscription(id).await.unwrap());
        assert!(!f.store.remove_subscription(id).await.unwrap());
        assert!(f.store.view(id).await.unwrap().is_none());
    }
}

#[tokio::test]
async fn writes_report_outcomes_and_keep_first_casing() {
    for f in engines().await {
        let id = Uuid::new_v4();
        f.store.put_subscription(&sub(id)).await.unwrap();
        let r = format!(
            "/subscriptions/{id}/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines/VM1"
        );
        let out = f
            .store
            .apply(&[
                put(&r, EP, Status::Unhealthy),
                put(&r.to_lowercase(), &EP.to_uppercase(), Status::Healthy),
            ])
            .await
            .unwrap();
        assert!(matches!(out[0], Outcome::Created(_)), "{}", f.name);
        let Outcome::Replaced(a) = &out[1] else { panic!("{}: {:?}", f.name, out[1]) };
        assert_eq!(a.resource_id, r);
        assert_eq!(a.name, EP);
        assert_eq!(a.status, Status::Healthy);
        assert!(a.status_change_date >= a.first_evaluation_date);
        let out = f.store.apply(&[del(&r, EP), del(&r, EP)]).await.unwrap();
        assert_eq!(out, vec![Outcome::Deleted, Outcome::Absent]);
        let other = format!("/subscriptions/{}/resourceGroups/rg", Uuid::new_v4());
        assert_eq!(
            f.store.apply(&[put(&other, EP, Status::Healthy)]).await.unwrap(),
            vec![Outcome::NoSubscription]
        );
    }
}

#[tokio::test]
async fn scopes_list_in_key_order_with_cursors() {
    for f in engines().await {
        let id = Uuid::new_v4();
        f.store.put_subscription(&sub(id)).await.unwrap();
        let mut writes = Vec::new();
        for rg in ["a", "b", "a-b"] {
            for vm in 0..3 {
                writes.push(put(&format!("/subscriptions/{id}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/vm{vm}"), EP, Status::Healthy));
            }
        }
        f.store.apply(&writes).await.unwrap();
        let scope = |s: &str| ResourceId::parse(s).unwrap();
        let all =
            f.store.assessments(&scope(&format!("/subscriptions/{id}")), None, 100).await.unwrap();
        assert_eq!(all.len(), 9, "{}", f.name);
        let rg_a = f
            .store
            .assessments(&scope(&format!("/subscriptions/{id}/resourceGroups/A")), None, 100)
            .await
            .unwrap();
        assert_eq!(rg_a.len(), 3, "{}: the prefix 'a' must not match 'a-b'", f.name);
        let first =
            f.store.assessments(&scope(&format!("/subscriptions/{id}")), None, 4).await.unwrap();
        let last = first.last().unwrap();
        let cursor = (last.resource_id.to_ascii_lowercase(), last.name.to_ascii_lowercase());
        let rest = f
            .store
            .assessments(&scope(&format!("/subscriptions/{id}")), Some(&cursor), 100)
            .await
            .unwrap();
        assert_eq!(first.len() + rest.len(), 9);
        let keys: Vec<String> =
            first.iter().chain(&rest).map(|a| a.resource_id.to_ascii_lowercase()).collect();
        assert!(keys.windows(2).all(|w| w[0] < w[1]));
    }
}

#[tokio::test]
async fn counters_history_and_views_follow_writes() {
    for f in engines().await {
        let id = Uuid::new_v4();
        f.store.put_subscription(&sub(id)).await.unwrap();
        let r = format!("/subscriptions/{id}/resourceGroups/rg");
        f.store.apply(&[put(&r, EP, Status::Unhealthy)]).await.unwrap();
        let v = f.store.view(id).await.unwrap().unwrap();
        assert_eq!(v.secure_score.score.max, 2, "{}", f.name);
        assert_eq!(v.controls.len(), 1);
        f.store.apply(&[put(&r, EP, Status::Healthy)]).await.unwrap();
        assert_eq!(
            f.store.view(id).await.unwrap().unwrap().secure_score.score.current,
            2.0,
            "a write drops the view"
        );
        assert_eq!(
            f.store.maintained_counts(id).await.unwrap(),
            f.store.recompute_counts(id).await.unwrap()
        );
        let now = OffsetDateTime::now_utc();
        let h = f
            .store
            .history(id, "ascScore", now - time::Duration::hours(1), now + time::Duration::hours(1))
            .await
            .unwrap();
        assert_eq!(h.len(), 2);
        assert_eq!(h[1].score.current, 2.0);
        let at = f
            .store
            .history_before(id, "ascScore", now + time::Duration::hours(1))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(at, h[1]);
        assert!(f.store.remove_subscription(id).await.unwrap());
        assert!(f.store.recompute_counts(id).await.unwrap().is_empty());
        assert!(f.store.maintained_counts(id).await.unwrap().is_empty());
    }
}

#[tokio::test]
async fn custom_metadata_and_meta() {
    for f in engines().await {
        // Every write transaction moves the generation, the first one too.
        let g0 = f.store.generation().await.unwrap();
        f.store.put_subscription(&sub(Uuid::new_v4())).await.unwrap();
        assert!(f.store.generation().await.unwrap() > g0, "{}", f.name);
        let id = Uuid::new_v4();
        f.store.put_subscription(&sub(id)).await.unwrap();
        f.store.put_custom_metadata(id, "My-Check", &json!({"displayName": "x"})).await.unwrap();
        let v = f.store.view(id).await.unwrap().unwrap();
        assert!(v.custom_metadata.contains_key("my-check"), "{}", f.name);
        assert_eq!(f.store.custom_metadata(id).await.unwrap()[0].0, "My-Check");
        assert!(f.store.delete_custom_metadata(id, "my-check").await.unwrap());
        assert!(f.store.view(id).await.unwrap().unwrap().custom_metadata.is_empty());
        let a = f.store.meta_or_init("k", || "v1".into()).await.unwrap();
        let b = f.store.meta_or_init("k", || "v2".into()).await.unwrap();
        assert_eq!((a.as_str(), b.as_str()), ("v1", "v1"));
        // Compare-and-swap: only from the value in force.
        assert!(!f.store.swap_meta("k", "v2", "v3").await.unwrap(), "{}", f.name);
        assert!(f.store.swap_meta("k", "v1", "v3").await.unwrap(), "{}", f.name);
        assert_eq!(f.store.meta("k").await.unwrap().as_deref(), Some("v3"));
        assert!(!f.store.swap_meta("absent", "v1", "v3").await.unwrap(), "{}", f.name);
    }
}

#[tokio::test]
async fn another_handle_on_the_same_data_sees_writes_within_a_second() {
    for f in engines().await {
        let Some(config) = &f.config else { continue };
        let server = &f.store;
        let cli = Store::open(config).await.unwrap();
        let id = Uuid::new_v4();
        server.put_subscription(&sub(id)).await.unwrap();
        // SQLite: the generation poll; PostgreSQL: its LISTEN/NOTIFY feed.
        let _watch = server.watch_changes(Duration::from_millis(50));
        assert_eq!(server.view(id).await.unwrap().unwrap().secure_score.score.max, 0);
        cli.apply(&[put(&format!("/subscriptions/{id}/resourceGroups/rg"), EP, Status::Healthy)])
            .await
            .unwrap();
        let mut seen = false;
        for _ in 0..20 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            if server.view(id).await.unwrap().unwrap().secure_score.score.max == 2 {
                seen = true;
                break;
            }
        }
        assert!(seen, "{}", f.name);
    }
}

/// Two handles on one database (two replicas, or a server and the CLI) writing the same
/// resources at the same time, in batches that overlap in different orders, leave counters equal
/// to a recomputation from the assessments, and a clean verification.
#[tokio::test]
async fn concurrent_writers_on_one_database_keep_exact_counters() {
    let cat = crate::catalog::builtin();
    let names: Vec<String> = cat
        .assessments()
        .iter()
        .filter(|a| a.counts_toward_score())
        .take(4)
        .map(|a| a.name.clone())
        .collect();
    assert_eq!(names.len(), 4);
    for f in engines().await {
        let Some(config) = &f.config else { continue };
        let other = Store::open(config).await.unwrap();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        for id in [a, b] {
            f.store.put_subscription(&sub(id)).await.unwrap();
        }
        let resources: Vec<String> = (0..6)
            .flat_map(|i| {
                [a, b].map(|s| {
                    format!(
                        "/subscriptions/{s}/resourceGroups/rg{}/providers/Microsoft.Compute/virtualMachines/vm{i}",
                        i % 2
                    )
                })
            })
            .collect();
        let statuses = [Status::Healthy, Status::Unhealthy, Status::NotApplicable];
        let mut tasks = Vec::new();
        for (w, store) in [&f.store, &other, &f.store, &other].into_iter().enumerate() {
            let (store, resources, names) = (store.clone(), resources.clone(), names.clone());
            tasks.push(tokio::spawn(async move {
                // A small deterministic generator per writer: each writer's batches differ.
                let mut x: u64 = 0x9e37_79b9_7f4a_7c15 ^ (w as u64 + 1);
                let mut next = move |n: usize| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    (x % n as u64) as usize
                };
                for _ in 0..15 {
                    let mut batch = Vec::new();
                    for _ in 0..8 {
                        let r = &resources[next(resources.len())];
                        let n = &names[next(names.len())];
                        batch.push(match next(4) {
                            3 => del(r, n),
                            s => put(r, n, statuses[s]),
                        });
                    }
                    store.apply(&batch).await.expect("a concurrent batch commits");
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        for id in [a, b] {
            let maintained = f.store.maintained_counts(id).await.unwrap();
            let recomputed: BTreeMap<_, _> = f
                .store
                .recompute_counts(id)
                .await
                .unwrap()
                .into_iter()
                .filter(|(_, c)| c.is_assessed())
                .collect();
            assert!(!recomputed.is_empty(), "{}", f.name);
            assert_eq!(maintained, recomputed, "{}", f.name);
        }
        let report = f.store.verify().await.unwrap();
        assert!(report.is_clean(), "{}: {report:?}", f.name);
    }
}

#[tokio::test]
async fn verify_agrees_with_every_write_and_repair_changes_nothing() {
    let cat = crate::catalog::builtin();
    let multi = cat
        .assessments()
        .iter()
        .find(|a| a.counts_toward_score() && a.controls.len() > 1)
        .expect("an assessment in several controls")
        .name
        .clone();
    let unknown = "00000000-0000-0000-0000-000000000001";
    for f in engines().await {
        let (a, b, empty) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
        for id in [a, b, empty] {
            f.store.put_subscription(&sub(id)).await.unwrap();
        }
        let vm = |s: Uuid, n: usize| {
            format!("/subscriptions/{s}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}")
        };
        f.store
            .apply(&[
                put(&vm(a, 1), EP, Status::Unhealthy),
                put(&vm(a, 1), &multi, Status::Healthy),
                put(&vm(a, 2), &multi, Status::NotApplicable),
                put(&vm(a, 3), unknown, Status::Unhealthy),
                put(&vm(b, 1), EP, Status::Healthy),
            ])
            .await
            .unwrap();
        f.store
            .apply(&[
                put(&vm(a, 1), EP, Status::Healthy),
                del(&vm(a, 2), &multi),
                del(&vm(b, 1), EP),
            ])
            .await
            .unwrap();
        let report = f.store.verify().await.unwrap();
        assert!(report.is_clean(), "{}: {report:?}", f.name);
        assert!(report.counters_checked);
        assert_eq!(report.subscriptions, 3);
        assert_eq!(report.catalog.recorded.as_deref(), Some(crate::catalog::version()));
        let repaired = f.store.repair().await.unwrap();
        assert!(repaired.is_clean() && !repaired.repaired, "{}: {repaired:?}", f.name);
        let now = OffsetDateTime::now_utc();
        let h = f.store.history(a, "ascScore", now - time::Duration::hours(1), now).await.unwrap();
        assert!(h.iter().all(|p| p.reason.is_none()), "{}: writes record no reason", f.name);
    }
}

#[tokio::test]
async fn management_groups_placements_and_resource_group_counters() {
    for f in engines().await {
        let (s, t) = (Uuid::new_v4(), Uuid::new_v4());
        f.store.put_subscription(&sub(s)).await.unwrap();
        f.store.put_subscription(&sub(t)).await.unwrap();
        let root = f.store.default_tenant().await.unwrap().to_string();
        let (created, info) = f
            .store
            .put_management_group("Prod", Some("Production"), None, "me")
            .await
            .unwrap()
            .unwrap();
        assert!(created, "{}", f.name);
        assert_eq!((info.parent.as_deref(), info.version), (Some(root.as_str()), 1));
        f.store.put_management_group("Web", None, Some(Some("prod")), "me").await.unwrap().unwrap();
        f.store.place_subscription("web", s).await.unwrap().unwrap();
        assert_eq!(f.store.subscriptions_below("PROD").await.unwrap(), Some(vec![s]));
        assert_eq!(f.store.subscriptions_below("nope").await.unwrap(), None);
        assert_eq!(f.store.ancestors_of_subscription(s).await.unwrap(), ["web", "prod", &root]);
        assert_eq!(
            f.store.ancestors_of_subscription(t).await.unwrap(),
            std::slice::from_ref(&root)
        );
        // Refusals leave the tree as it was.
        let cycle =
            f.store.put_management_group("Prod", None, Some(Some("Web")), "me").await.unwrap();
        assert!(matches!(cycle, Err(HierarchyError::Cycle { .. })), "{}", f.name);
        let busy = f.store.delete_management_group("Prod").await.unwrap();
        assert!(matches!(busy, Err(HierarchyError::HasChildren(_))), "{}", f.name);
        // An update keeps the name's first casing and bumps the version.
        let (created, info) =
            f.store.put_management_group("PROD", Some("P"), None, "me").await.unwrap().unwrap();
        assert!(!created && info.name == "Prod" && info.version == 2, "{}: {info:?}", f.name);

        // Resource group counters move with the writes, and verify agrees with them.
        let rg = format!(
            "/subscriptions/{s}/resourceGroups/RG/providers/Microsoft.Compute/virtualMachines"
        );
        f.store
            .apply(&[
                put(&format!("{rg}/a"), EP, Status::Unhealthy),
                put(&format!("{rg}/b"), EP, Status::Healthy),
                put(&format!("/subscriptions/{s}"), EP, Status::Healthy),
            ])
            .await
            .unwrap();
        let counts =
            f.store.counts_at(&Scope::ResourceGroup(s, "rg".into())).await.unwrap().unwrap();
        let c = counts.values().next().copied().unwrap();
        assert_eq!((c.healthy, c.unhealthy, counts.len()), (1, 1, 1), "{}", f.name);
        f.store.apply(&[del(&format!("{rg}/a"), EP)]).await.unwrap();
        let counts =
            f.store.counts_at(&Scope::ResourceGroup(s, "RG".into())).await.unwrap().unwrap();
        assert_eq!(counts.values().next().map(|c| (c.healthy, c.unhealthy)), Some((1, 0)));
        assert_eq!(f.store.resource_groups(s).await.unwrap(), ["rg"]);
        assert!(f.store.verify().await.unwrap().is_clean(), "{}", f.name);
        // A group's counts are its subscriptions'.
        let group =
            f.store.counts_at(&Scope::ManagementGroup("prod".into())).await.unwrap().unwrap();
        assert_eq!(group, f.store.counts_at(&Scope::Subscription(s)).await.unwrap().unwrap());

        // Removing a subscription removes its placement and counters.
        assert!(f.store.remove_subscription(s).await.unwrap());
        assert_eq!(f.store.subscriptions_below("prod").await.unwrap(), Some(vec![]));
        assert!(f.store.resource_groups(s).await.unwrap().is_empty());
        f.store.delete_management_group("web").await.unwrap().unwrap();
        assert!(f.store.delete_management_group("prod").await.unwrap().unwrap());
    }
}

/// The engine itself refuses what would break the tree, whatever its caller checked before:
/// another process may change the hierarchy between a check and a write.
#[tokio::test]
async fn engines_refuse_cycles_orphans_and_busy_deletes_in_the_write() {
    for f in engines().await {
        let s = Uuid::new_v4();
        f.store.put_subscription(&sub(s)).await.unwrap();
        let group = |name: &str, parent: Option<&str>| ManagementGroup {
            name: name.into(),
            display_name: name.into(),
            parent: parent.map(str::to_string),
            version: 1,
            updated_time: OffsetDateTime::UNIX_EPOCH,
            updated_by: "t".into(),
        };
        let e = f.store.engine();
        let now = OffsetDateTime::now_utc();
        assert_eq!(e.put_management_group(&group("A", None)).await.unwrap(), Ok(true));
        assert_eq!(e.put_management_group(&group("B", Some("a"))).await.unwrap(), Ok(true));
        let cycle = e.put_management_group(&group("A", Some("b"))).await.unwrap();
        assert!(matches!(cycle, Err(HierarchyError::Cycle { .. })), "{}: {cycle:?}", f.name);
        let itself = e.put_management_group(&group("A", Some("a"))).await.unwrap();
        assert!(matches!(itself, Err(HierarchyError::Cycle { .. })), "{}", f.name);
        let orphan = e.put_management_group(&group("C", Some("nope"))).await.unwrap();
        assert!(matches!(orphan, Err(HierarchyError::NoParent(_))), "{}", f.name);
        let busy = e.delete_management_group("a").await.unwrap();
        assert!(matches!(busy, Err(HierarchyError::HasChildren(_))), "{}", f.name);
        assert_eq!(e.place_subscription(s, Some("b"), now).await.unwrap(), Ok(()));
        let busy = e.delete_management_group("b").await.unwrap();
        assert!(matches!(busy, Err(HierarchyError::HasChildren(_))), "{}", f.name);
        let gone = e.place_subscription(s, Some("nope"), now).await.unwrap();
        assert!(matches!(gone, Err(HierarchyError::NoGroup(_))), "{}", f.name);
        assert_eq!(e.placements().await.unwrap(), vec![(s, "b".to_string())]);
        assert_eq!(e.place_subscription(s, None, now).await.unwrap(), Ok(()));
        assert_eq!(e.delete_management_group("b").await.unwrap(), Ok(true));
        assert_eq!(e.delete_management_group("b").await.unwrap(), Ok(false));
    }
}

/// Exemptions (issue 11): the effective-status reads, the re-step of counters when one begins,
/// is replaced, expires or ends, the status log, and verification, alike on every engine.
#[tokio::test]
async fn exemptions_move_counters_and_restore_them() {
    for f in engines().await {
        let s = &f.store;
        let id = Uuid::new_v4();
        s.put_subscription(&sub(id)).await.unwrap();
        let group = format!("/subscriptions/{id}/resourceGroups/rg");
        let vm = |n: u32| format!("{group}/providers/Microsoft.Compute/virtualMachines/vm{n}");
        s.apply(&[put(&vm(1), EP, Status::Unhealthy), put(&vm(2), EP, Status::Unhealthy)])
            .await
            .unwrap();
        s.apply(&[put(&vm(3), EP, Status::Healthy)]).await.unwrap();
        let before = s.maintained_counts(id).await.unwrap();
        let now = OffsetDateTime::now_utc();
        let exemption = |name: &str, scope: &str, expires_on| Exemption {
            name: name.into(),
            scope: crate::arm::AnyScope::Arm(ResourceId::parse(scope).unwrap()),
            assessment: EP.into(),
            category: Category::Waiver,
            expires_on,
            description: "d".into(),
            created_at: now,
            updated_at: now,
            active: true,
        };
        assert!(s.put_exemption(&exemption("one", &vm(1), None)).await.unwrap(), "{}", f.name);
        let rg = ResourceId::parse(&group).unwrap();
        let counts: std::collections::BTreeMap<String, i64> =
            s.unhealthy_counts(&rg).await.unwrap().into_iter().collect();
        assert_eq!(counts.get(EP), Some(&1), "{}", f.name);
        let unhealthy = s.unhealthy_resources(&rg, EP, None, 10).await.unwrap();
        assert_eq!(unhealthy.len(), 1, "{}", f.name);
        assert_eq!(unhealthy[0].1, vm(2));
        let statuses = s.effective_statuses(&rg).await.unwrap();
        assert!(statuses
            .iter()
            .any(|(r, _, st)| *r == vm(1).to_ascii_lowercase() && *st == Status::NotApplicable));
        assert_ne!(s.maintained_counts(id).await.unwrap(), before, "{}", f.name);
        assert!(s.verify().await.unwrap().is_clean(), "{}", f.name);

        // Widened to the group (vm2 too), then expired: everything is as before.
        let soon = OffsetDateTime::now_utc() + time::Duration::milliseconds(300);
        assert!(!s.put_exemption(&exemption("one", &group, Some(soon))).await.unwrap());
        assert!(s.unhealthy_counts(&rg).await.unwrap().is_empty(), "{}", f.name);
        assert_eq!(
            s.next_exemption_expiry().await.unwrap().map(|t| t.unix_timestamp()),
            Some(soon.unix_timestamp())
        );
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(s.expire_exemptions().await.unwrap(), 1, "{}", f.name);
        assert_eq!(s.maintained_counts(id).await.unwrap(), before, "{}", f.name);
        assert!(!s.exemption("ONE").await.unwrap().unwrap().active);
        assert_eq!(s.next_exemption_expiry().await.unwrap(), None);
        assert!(s.verify().await.unwrap().is_clean(), "{}", f.name);

        // The log: three first writes, vm1 out, vm2 and vm3 out with the group, all back in.
        let log = s
            .changes(
                id,
                OffsetDateTime::UNIX_EPOCH,
                OffsetDateTime::now_utc(),
                Order::OldestFirst,
                None,
                100,
            )
            .await
            .unwrap();
        let causes: Vec<_> = log.iter().map(|c| (c.old, c.new, c.cause)).collect();
        let ex = Some(ChangeCause::Exemption);
        let (u, h, na) =
            (Some(Status::Unhealthy), Some(Status::Healthy), Some(Status::NotApplicable));
        assert_eq!(
            causes,
            [
                (None, u, None),
                (None, u, None),
                (None, Some(Status::Healthy), None),
                (u, na, ex),
                (u, na, ex),
                (h, na, ex),
                (na, u, ex),
                (na, u, ex),
                (na, h, ex),
            ],
            "{}",
            f.name
        );
        let newest = s
            .changes(
                id,
                OffsetDateTime::UNIX_EPOCH,
                OffsetDateTime::now_utc(),
                Order::NewestFirst,
                Some(log[8].seq),
                2,
            )
            .await
            .unwrap();
        assert_eq!(newest.iter().map(|c| c.seq).collect::<Vec<_>>(), [log[7].seq, log[6].seq]);
        assert!(s.delete_exemption("one").await.unwrap().is_some());
        assert!(s.delete_exemption("one").await.unwrap().is_none());
    }
}

/// Exemptions at management-group scope: they reach the subscriptions below the group as the
/// hierarchy places them now, so placing a subscription, moving a group and deleting one re-step
/// the counters in the same transaction; every step verifies clean, and undoing restores exactly.
#[tokio::test]
async fn group_exemptions_follow_the_hierarchy() {
    for f in engines().await {
        let s = &f.store;
        let (one, two) = (Uuid::new_v4(), Uuid::new_v4());
        let vm = |sub: Uuid| {
            format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm")
        };
        for id in [one, two] {
            s.put_subscription(&sub(id)).await.unwrap();
            s.apply(&[put(&vm(id), EP, Status::Unhealthy)]).await.unwrap();
        }
        let base =
            [s.maintained_counts(one).await.unwrap(), s.maintained_counts(two).await.unwrap()];
        let counts = || async {
            [s.maintained_counts(one).await.unwrap(), s.maintained_counts(two).await.unwrap()]
        };
        let clean = || async { assert!(s.verify().await.unwrap().is_clean(), "{}", f.name) };
        let exempt = |at: Uuid| async move {
            let rules = s.exemption_rules(at).await.unwrap();
            exempting(&rules, &vm(at).to_ascii_lowercase(), EP).is_some()
        };
        let by = "tester";
        s.put_management_group("G", None, None, by).await.unwrap().unwrap();
        s.put_management_group("H", None, Some(Some("G")), by).await.unwrap().unwrap();
        s.place_subscription("H", one).await.unwrap().unwrap();
        let now = OffsetDateTime::now_utc();
        let at_group = |name: &str, group: &str| Exemption {
            name: name.into(),
            scope: crate::arm::AnyScope::ManagementGroup(group.into()),
            assessment: EP.into(),
            category: Category::Mitigated,
            expires_on: None,
            description: "handled centrally".into(),
            created_at: now,
            updated_at: now,
            active: true,
        };
        assert!(s.put_exemption(&at_group("g", "G")).await.unwrap(), "{}", f.name);
        assert!(exempt(one).await && !exempt(two).await, "{}", f.name);
        let exempted = counts().await;
        assert_ne!(exempted[0], base[0], "{}", f.name);
        assert_eq!(exempted[1], base[1], "{}", f.name);
        clean().await;

        // A subscription placed below the group is exempt; taken out, it is as before.
        s.place_subscription("G", two).await.unwrap().unwrap();
        assert!(exempt(two).await, "{}", f.name);
        assert_eq!(counts().await[1], exempted[0], "the same assessment, exempt alike: {}", f.name);
        clean().await;
        s.unplace_subscription("G", two).await.unwrap().unwrap();
        assert_eq!(counts().await, exempted, "{}", f.name);

        // A group moved out from under the exempt group takes its subscription along.
        s.put_management_group("H", None, Some(None), by).await.unwrap().unwrap();
        assert_eq!(counts().await, base, "{}", f.name);
        clean().await;
        s.put_management_group("H", None, Some(Some("g")), by).await.unwrap().unwrap();
        assert_eq!(counts().await, exempted, "{}", f.name);

        // The root group's exemption reaches every subscription, and goes without a trace.
        let tenant = s.default_tenant().await.unwrap().to_string();
        assert!(s.put_exemption(&at_group("root", &tenant)).await.unwrap());
        assert!(exempt(one).await && exempt(two).await, "{}", f.name);
        clean().await;
        assert!(s.delete_exemption("root").await.unwrap().is_some());
        assert_eq!(counts().await, exempted, "{}", f.name);

        // Listed by group; an emptied group's deletion takes its exemptions with it.
        let listed = |groups: &[&str]| {
            let filter = ExemptionFilter {
                subscriptions: Some(Vec::new()),
                groups: Some(groups.iter().map(|g| g.to_string()).collect()),
                ..ExemptionFilter::default()
            };
            async move {
                s.exemptions(&filter, None, 10)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.name)
                    .collect::<Vec<_>>()
            }
        };
        assert_eq!(listed(&["g"]).await, ["g"], "{}", f.name);
        assert!(listed(&["h"]).await.is_empty(), "{}", f.name);
        s.unplace_subscription("H", one).await.unwrap().unwrap();
        assert_eq!(counts().await, base, "{}", f.name);
        s.delete_management_group("H").await.unwrap().unwrap();
        s.delete_management_group("G").await.unwrap().unwrap();
        assert_eq!(s.exemption("g").await.unwrap(), None, "{}", f.name);
        assert_eq!(counts().await, base, "{}", f.name);
        clean().await;
    }
}

/// Authorization codes: taken once, by whoever asks first; expired ones go with the next issue.
#[tokio::test]
async fn authorization_codes_are_taken_once() {
    for f in engines().await {
        // Whole seconds: stored times keep 100 ns, as ARM's do.
        let now = OffsetDateTime::from_unix_timestamp(OffsetDateTime::now_utc().unix_timestamp())
            .unwrap();
        let code = |hash: &str, expires_at| PendingCode {
            code_hash: hash.into(),
            client_id: "client".into(),
            redirect_uri: "https://h/".into(),
            challenge: "c".repeat(43),
            principal_id: Uuid::new_v4(),
            audience: "https://management.azure.com/".into(),
            nonce: Some("n".into()),
            expires_at,
        };
        let e = f.store.engine();
        let old = code("old", now - time::Duration::seconds(1));
        e.put_code(&old, now - time::Duration::seconds(2)).await.unwrap();
        let fresh = code("fresh", now + time::Duration::seconds(60));
        e.put_code(&fresh, now).await.unwrap();
        assert_eq!(e.take_code("old").await.unwrap(), None, "{}: swept", f.name);
        assert_eq!(e.take_code("fresh").await.unwrap(), Some(fresh), "{}", f.name);
        assert_eq!(e.take_code("fresh").await.unwrap(), None, "{}: once", f.name);
    }
}

/// The rest of an engine's surface: sub-assessments (and their cascade from a deleted
/// assessment), the export outbox written inside `apply` and the deliveries routed from it (one
/// lane at a time), and the status-transition log with its paging and retention.
#[tokio::test]
async fn sub_assessments_outbox_deliveries_and_the_change_log() {
    for f in engines().await {
        let id = Uuid::new_v4();
        f.store.put_subscription(&sub(id)).await.unwrap();
        let vm = format!(
            "/subscriptions/{id}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
        );
        let resource = ResourceId::parse(&vm).unwrap();

        // Sub-assessments: created, replaced, listed below a scope, gone with their assessment.
        f.store.apply(&[put(&vm, EP, Status::Unhealthy)]).await.unwrap();
        let finding = |name: &str, n: i64| SubAssessment {
            resource_id: vm.clone(),
            assessment: EP.into(),
            name: name.into(),
            properties: json!({"n": n}),
        };
        assert_eq!(
            f.store.put_sub_assessment(&resource, &finding("A", 1)).await.unwrap(),
            Some(true)
        );
        assert_eq!(
            f.store.put_sub_assessment(&resource, &finding("a", 2)).await.unwrap(),
            Some(false)
        );
        assert_eq!(
            f.store.put_sub_assessment(&resource, &finding("b", 3)).await.unwrap(),
            Some(true)
        );
        let rg = ResourceId::parse(&format!("/subscriptions/{id}/resourceGroups/rg")).unwrap();
        let listed = f.store.sub_assessments(&rg, Some(EP), None, 10).await.unwrap();
        assert_eq!(listed.len(), 2, "{}", f.name);
        assert_eq!((listed[0].name.as_str(), &listed[0].properties), ("A", &json!({"n": 2})));
        let orphan =
            ResourceId::parse(&format!("/subscriptions/{}/resourceGroups/x", Uuid::new_v4()))
                .unwrap();
        assert_eq!(f.store.put_sub_assessment(&orphan, &finding("c", 1)).await.unwrap(), None);
        assert!(f.store.delete_sub_assessment(&resource, EP, "B").await.unwrap());
        f.store.apply(&[del(&vm, EP)]).await.unwrap();
        assert!(
            f.store.sub_assessments(&rg, None, None, 10).await.unwrap().is_empty(),
            "{}",
            f.name
        );

        // The outbox: nothing without an automation; with one, the write's events in order.
        assert!(f.store.change_events(100).await.unwrap().is_empty(), "{}", f.name);
        let automation = AutomationRecord {
            subscription: id,
            resource_group: "rg".into(),
            name: "export".into(),
            etag: "e1".into(),
            spec: json!({"location": "westeurope", "properties": {}}),
            last_snapshot_at: None,
        };
        assert_eq!(f.store.put_automation(&automation).await.unwrap(), Some(true));
        f.store.apply(&[put(&vm, EP, Status::Healthy)]).await.unwrap();
        let events = f.store.change_events(100).await.unwrap();
        assert!(events.iter().any(|e| e.kind == EventKind::Assessment), "{}: {events:?}", f.name);
        assert!(events.windows(2).all(|w| w[0].seq < w[1].seq));
        let delivery = |n: usize| NewDelivery {
            event_id: events[0].event_id,
            subscription: id,
            automation_id:
                "/subscriptions/x/resourceGroups/rg/providers/Microsoft.Security/automations/export"
                    .into(),
            action_index: 0,
            resource_key: "lane".into(),
            event_source: "Assessments".into(),
            change: format!("c{n}"),
            target: json!({"uri": "https://example.invalid"}),
            body: json!({"n": n}),
        };
        let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
        f.store.route_changes(&seqs, &[delivery(1), delivery(2)], 0).await.unwrap();
        assert!(f.store.change_events(100).await.unwrap().is_empty(), "{}", f.name);
        let due = f.store.due_deliveries(1, 10).await.unwrap();
        assert_eq!(due.len(), 1, "{}: only a lane's oldest is due", f.name);
        assert_eq!(due[0].new.change, "c1");
        f.store.retry_later(due[0].seq, 1_000, "refused").await.unwrap();
        assert!(f.store.due_deliveries(1, 10).await.unwrap().is_empty(), "{}", f.name);
        let due = f.store.due_deliveries(1_000, 10).await.unwrap();
        assert_eq!((due[0].attempts, due[0].new.change.as_str()), (1, "c1"));
        f.store.delivered(due[0].seq).await.unwrap();
        assert_eq!(f.store.due_deliveries(1_000, 10).await.unwrap()[0].new.change, "c2");

        // The change log: every transition of this test, newest first, paged by seq.
        let (from, to) =
            (OffsetDateTime::UNIX_EPOCH, OffsetDateTime::now_utc() + time::Duration::hours(1));
        let log = f.store.changes(id, from, to, Order::NewestFirst, None, 10).await.unwrap();
        let statuses: Vec<_> = log.iter().map(|c| (c.old, c.new)).collect();
        assert_eq!(
            statuses,
            vec![
                (None, Some(Status::Healthy)),
                (Some(Status::Unhealthy), None),
                (None, Some(Status::Unhealthy))
            ],
            "{}",
            f.name
        );
        let page =
            f.store.changes(id, from, to, Order::OldestFirst, Some(log[2].seq), 10).await.unwrap();
        assert_eq!(page.len(), 2, "{}", f.name);
        // A chunk takes the oldest first; the store's prune takes the rest.
        assert_eq!(f.store.engine().prune_changes(to, 1).await.unwrap(), 1, "{}", f.name);
        let left = f.store.changes(id, from, to, Order::OldestFirst, None, 10).await.unwrap();
        assert_eq!(
            left.iter().map(|c| c.seq).collect::<Vec<_>>(),
            [log[1].seq, log[0].seq],
            "{}",
            f.name
        );
        assert_eq!(f.store.prune_changes(to).await.unwrap(), 2, "{}", f.name);
    }
}
