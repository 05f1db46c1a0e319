//! Exemptions (issue 11): the score moves while one is in force, exempt assessments read as
//! NotApplicable/Exempt on every api-version, deleting or expiring it restores the exact previous
//! state (no restart), who may exempt, validation errors, and `verify` agreeing throughout.

use serde_json::{json, Value};
use std::time::Duration;
use uuid::Uuid;

use super::improvements::{put_status, vm, EP, MFA};
use super::management_groups::{place, put_group};
use super::*;

const VERSIONS: [&str; 4] = ["2019-01-01-preview", "2020-01-01", "2021-06-01", "2025-05-04"];

fn exemption_path(name: &str) -> String {
    format!("/securescore/v1/exemptions/{name}")
}

fn body(scope: &str, assessment: &str, expires_on: Option<String>) -> Value {
    let mut props = json!({"scope": scope, "assessment": assessment, "category": "Waiver",
                           "description": "Accepted until the VM is retired"});
    if let Some(t) = expires_on {
        props["expiresOn"] = json!(t);
    }
    json!({ "properties": props })
}

/// Everything a client can read that an exemption may change: the secure score, the controls,
/// and the assessments at every api-version.
async fn observable(app: &TestApp, sub: Uuid, resources: &[String]) -> Vec<Value> {
    let mut out = vec![
        app.get(&score_path(&sub.to_string())).await.body,
        app.get(&format!(
            "/subscriptions/{sub}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01"
        ))
        .await
        .body,
    ];
    for v in VERSIONS {
        for r in resources {
            out.push(app.get(&assessment_path(r, EP, v)).await.body);
        }
    }
    out
}

async fn assert_verifies(app: &TestApp) {
    let report = app.store.verify().await.unwrap();
    assert!(report.is_clean(), "{report:?}");
}

fn score_of(v: &Value) -> Value {
    v["properties"]["score"].clone()
}

#[tokio::test]
async fn an_exemption_moves_the_score_and_deleting_it_restores_everything() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let (vm1, vm2) = (vm(sub, "rg", "vm1"), vm(sub, "rg", "vm2"));
    put_status(&app, &vm1, EP, "Unhealthy").await;
    put_status(&app, &vm2, EP, "Healthy").await;
    put_status(&app, &vm1, MFA, "Unhealthy").await;
    let resources = [vm1.clone(), vm2.clone()];
    let before = observable(&app, sub, &resources).await;
    assert_eq!(score_of(&before[0])["current"], 1.0, "endpoint protection: 1 of 2 healthy");

    let r = app.put(&exemption_path("vm1-ep"), &body(&vm1, EP, None)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["name"], "vm1-ep");
    assert_eq!(r.body["type"], "Microsoft.Security/exemptions");
    assert_eq!(r.body["id"], format!("{vm1}/providers/Microsoft.Security/exemptions/vm1-ep"));
    assert_eq!(r.body["properties"]["state"], "Active");
    assert_eq!(r.body["properties"]["category"], "Waiver");

    // The score moves: vm1 no longer counts in endpoint protection (1 of 1 healthy).
    let during = observable(&app, sub, &resources).await;
    assert_eq!(score_of(&during[0])["current"], 2.0);
    assert_ne!(during[1], before[1], "the control counts moved");
    for (i, v) in VERSIONS.iter().enumerate() {
        let a = &during[2 + 2 * i];
        assert_eq!(a["properties"]["status"]["code"], "NotApplicable", "{v}: {a}");
        assert_eq!(a["properties"]["status"]["cause"], "Exempt", "{v}");
        let d = a["properties"]["status"]["description"].as_str().unwrap();
        assert!(d.contains("Waiver") && d.contains("Accepted until"), "{d}");
        assert_eq!(during[3 + 2 * i], before[3 + 2 * i], "{v}: vm2 is not exempt");
    }
    // The MFA assessment of vm1 is another recommendation: not exempt.
    let mfa = app.get(&assessment_path(&vm1, MFA, "2021-06-01")).await;
    assert_eq!(mfa.body["properties"]["status"]["code"], "Unhealthy");
    // The list renders the same.
    let (listed, _) = app
        .get_all(&format!("{vm1}/providers/Microsoft.Security/assessments?api-version=2021-06-01"))
        .await;
    let ep = listed.iter().find(|a| a["name"] == EP).unwrap();
    assert_eq!(ep["properties"]["status"]["cause"], "Exempt");
    // The history marks why the score moved; the change log has the effective transition.
    let h = app.get(&format!("/securescore/v1/subscriptions/{sub}/history")).await;
    let last = h.body["value"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "exemption");
    assert_eq!(last["score"], score_of(&during[0]));
    let c = app.get(&format!("/securescore/v1/subscriptions/{sub}/changes")).await;
    let newest = &c.body["value"][0];
    assert_eq!(
        json!([newest["resourceId"], newest["oldStatus"], newest["newStatus"], newest["cause"]]),
        json!([vm1, "Unhealthy", "NotApplicable", "exemption"])
    );
    assert_eq!(newest["scoreAfter"], score_of(&during[0]));
    // Improvements no longer list vm1 for endpoint protection.
    let imp = app.get(&format!("/securescore/v1/subscriptions/{sub}/improvements")).await;
    assert!(!imp.text.contains(EP), "{}", imp.text);
    assert_verifies(&app).await;

    // Listed, read back, and deleted: everything is as before, exactly.
    let (all, _) = app.get_all("/securescore/v1/exemptions").await;
    assert_eq!(all.len(), 1);
    assert_eq!(app.get(&exemption_path("VM1-EP")).await.body["name"], "vm1-ep");
    let r = app.delete(&exemption_path("vm1-ep")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let after = observable(&app, sub, &resources).await;
    assert_eq!(after, before);
    assert_eq!(app.delete(&exemption_path("vm1-ep")).await.status, 204);
    assert_eq!(app.get(&exemption_path("vm1-ep")).await.status, 404);
    assert_verifies(&app).await;
}

async fn code(app: &TestApp, resource: &str) -> Value {
    let r = app.get(&assessment_path(resource, EP, "2020-01-01")).await;
    r.body["properties"]["status"]["code"].clone()
}

#[tokio::test]
async fn a_wider_scope_exempts_everything_below_it_and_a_replacement_moves_it() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let (a, b, c) = (vm(sub, "rg1", "vm1"), vm(sub, "rg1", "vm2"), vm(sub, "rg2", "vm3"));
    for r in [&a, &b, &c] {
        put_status(&app, r, EP, "Unhealthy").await;
    }
    put_status(&app, &vm(sub, "rg3", "ok"), EP, "Healthy").await;
    let before = app.get(&score_path(&sub.to_string())).await.body;
    let rg1 = format!("/subscriptions/{sub}/resourceGroups/rg1");
    assert_eq!(app.put(&exemption_path("rg"), &body(&rg1, EP, None)).await.status, 201);
    assert_eq!(
        [code(&app, &a).await, code(&app, &b).await, code(&app, &c).await],
        [json!("NotApplicable"), json!("NotApplicable"), json!("Unhealthy")]
    );
    // Writes of exempt assessments keep them exempt, and step with effective statuses.
    let exempt_score = app.get(&score_path(&sub.to_string())).await.body;
    put_status(&app, &a, EP, "Healthy").await;
    put_status(&app, &b, EP, "NotApplicable").await;
    let r = app.delete(&assessment_path(&b, EP, "2020-01-01")).await;
    assert_eq!(r.status, 200);
    put_status(&app, &b, EP, "Unhealthy").await;
    assert_eq!(code(&app, &a).await, json!("NotApplicable"));
    assert_eq!(app.get(&score_path(&sub.to_string())).await.body, exempt_score);
    put_status(&app, &a, EP, "Unhealthy").await;
    assert_verifies(&app).await;
    // Filtered lists: the group, and a resource the group's exemption covers.
    let (listed, _) = app.get_all(&format!("/securescore/v1/exemptions?scope={a}")).await;
    assert_eq!(listed.len(), 1);
    let (listed, _) = app
        .get_all(&format!(
            "/securescore/v1/exemptions?scope=/subscriptions/{sub}/resourceGroups/rg2"
        ))
        .await;
    assert!(listed.is_empty());
    // Replaced by one on rg2: rg1 counts again, rg2 does not.
    let rg2 = format!("/subscriptions/{sub}/resourceGroups/rg2");
    assert_eq!(app.put(&exemption_path("rg"), &body(&rg2, EP, None)).await.status, 200);
    assert_eq!(
        [code(&app, &a).await, code(&app, &b).await, code(&app, &c).await],
        [json!("Unhealthy"), json!("Unhealthy"), json!("NotApplicable")]
    );
    assert_verifies(&app).await;
    // Two exemptions over the same assessment: deleting one leaves the other in force.
    let whole = format!("/subscriptions/{sub}");
    assert_eq!(app.put(&exemption_path("all"), &body(&whole, EP, None)).await.status, 201);
    assert_eq!(app.delete(&exemption_path("rg")).await.status, 200);
    assert_eq!(code(&app, &c).await, json!("NotApplicable"));
    assert_verifies(&app).await;
    assert_eq!(app.delete(&exemption_path("all")).await.status, 200);
    assert_eq!(app.get(&score_path(&sub.to_string())).await.body, before);
    assert_verifies(&app).await;
}

#[tokio::test]
async fn an_exemption_expires_on_time_without_a_restart() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let vm1 = vm(sub, "rg", "vm1");
    put_status(&app, &vm1, EP, "Unhealthy").await;
    put_status(&app, &vm(sub, "rg", "vm2"), EP, "Healthy").await;
    let before = app.get(&score_path(&sub.to_string())).await.body;
    let soon = time::OffsetDateTime::now_utc() + time::Duration::seconds(2);
    let r = app
        .put(&exemption_path("brief"), &body(&vm1, EP, Some(securescore::arm::format_time(soon))))
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_ne!(app.get(&score_path(&sub.to_string())).await.body, before);
    // Poll with a bounded deadline: the expiry timer restores the score by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let now = app.get(&score_path(&sub.to_string())).await.body;
        if now == before {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the exemption did not expire: {now}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let a = app.get(&assessment_path(&vm1, EP, "2021-06-01")).await;
    assert_eq!(a.body["properties"]["status"]["code"], "Unhealthy");
    let e = app.get(&exemption_path("brief")).await;
    assert_eq!(e.body["properties"]["state"], "Expired");
    let (expired, _) = app.get_all("/securescore/v1/exemptions?state=expired").await;
    assert_eq!(expired.len(), 1);
    let (active, _) = app.get_all("/securescore/v1/exemptions?state=Active").await;
    assert!(active.is_empty());
    assert_eq!(app.get("/securescore/v1/exemptions?state=gone").await.status, 400);
    let h = app.get(&format!("/securescore/v1/subscriptions/{sub}/history")).await;
    let last = h.body["value"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["reason"], "exemption");
    assert_verifies(&app).await;
}

async fn as_principal(
    app: &TestApp,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<&Value>,
) -> (u16, Value) {
    let mut r = app.http.request(method, format!("{}{path}", app.base)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(b);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn only_security_admin_contributor_or_owner_may_exempt() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let vm1 = vm(sub, "rg", "vm1");
    put_status(&app, &vm1, EP, "Unhealthy").await;
    let before = app.get(&score_path(&sub.to_string())).await.body;
    let exemption = body(&vm1, EP, None);
    use reqwest::Method as M;

    let reader = token_with_role_at(&app, sub, "Reader").await;
    let (status, err) =
        as_principal(&app, &reader, M::PUT, &exemption_path("r"), Some(&exemption)).await;
    assert_eq!(status, 403, "{err}");
    assert_eq!(err["error"]["code"], "AuthorizationFailed");
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Microsoft.Security/exemptions/write"));
    assert_eq!(app.get(&score_path(&sub.to_string())).await.body, before, "nothing moved");
    let assessment_contributor =
        token_with_role_at(&app, sub, "Security Assessment Contributor").await;
    let (status, _) =
        as_principal(&app, &assessment_contributor, M::PUT, &exemption_path("r"), Some(&exemption))
            .await;
    assert_eq!(status, 403);

    let admin = token_with_role_at(&app, sub, "Security Admin").await;
    let (status, created) =
        as_principal(&app, &admin, M::PUT, &exemption_path("a"), Some(&exemption)).await;
    assert_eq!(status, 201, "{created}");
    // A Reader reads it, but may not delete it; a principal of another subscription sees nothing.
    let (status, _) = as_principal(&app, &reader, M::GET, &exemption_path("a"), None).await;
    assert_eq!(status, 200);
    let (status, _) = as_principal(&app, &reader, M::DELETE, &exemption_path("a"), None).await;
    assert_eq!(status, 403);
    let elsewhere = Uuid::new_v4();
    app.add_subscription(elsewhere).await;
    let stranger = token_with_role_at(&app, elsewhere, "Owner").await;
    let (status, _) = as_principal(&app, &stranger, M::GET, &exemption_path("a"), None).await;
    assert_eq!(status, 403);
    let (status, list) =
        as_principal(&app, &stranger, M::GET, "/securescore/v1/exemptions", None).await;
    assert_eq!(status, 200);
    assert_eq!(list["value"], json!([]));
    let contributor = token_with_role_at(&app, sub, "Contributor").await;
    let (status, _) = as_principal(&app, &contributor, M::DELETE, &exemption_path("a"), None).await;
    assert_eq!(status, 200);
    // No token: 401.
    let r = app.http.get(format!("{}/securescore/v1/exemptions", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn invalid_exemptions_are_400s_naming_the_field() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let vm1 = vm(sub, "rg", "vm1");
    let ok = body(&vm1, EP, None);
    let with = |field: &str, value: Value| {
        let mut b = ok.clone();
        b["properties"][field] = value;
        b
    };
    for (b, target) in [
        (json!({"nope": 1}), "properties"),
        (with("scope", json!("/nowhere")), "properties.scope"),
        (with("scope", json!(null)), "properties.scope"),
        (
            with("assessment", json!("00000000-0000-0000-0000-00000000beef")),
            "properties.assessment",
        ),
        (with("category", json!("Accepted")), "properties.category"),
        (with("expiresOn", json!("soon")), "properties.expiresOn"),
        (with("expiresOn", json!("2001-01-01T00:00:00Z")), "properties.expiresOn"),
        (with("description", json!("")), "properties.description"),
        (with("description", json!(42)), "properties.description"),
    ] {
        let r = app.put(&exemption_path("x"), &b).await;
        assert_eq!(r.status, 400, "{b}: {}", r.text);
        assert_eq!(r.body["error"]["target"], target, "{b}: {}", r.text);
    }
    // A management group that does not exist: ARM's 404.
    let at_group = with("scope", json!("/providers/Microsoft.Management/managementGroups/mg1"));
    let r = app.put(&exemption_path("x"), &at_group).await;
    assert_eq!((r.status, r.code()), (404, "NotFound"), "{}", r.text);
    let r = app.put(&exemption_path("bad name!"), &ok).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let unknown = body(&vm(Uuid::new_v4(), "rg", "vm1"), EP, None);
    let r = app.put(&exemption_path("x"), &unknown).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "SubscriptionNotFound");
    let r = app
        .get(
            "/securescore/v1/exemptions?scope=/providers/Microsoft.Management/managementGroups/mg1",
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NotFound"), "{}", r.text);
    let (all, _) = app.get_all("/securescore/v1/exemptions").await;
    assert!(all.is_empty(), "nothing was created");
}

#[tokio::test]
async fn exemptions_page_by_name() {
    let app = spawn_with(Options { page_size: 2, ..Options::default() }).await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let vm1 = vm(sub, "rg", "vm1");
    for name in ["e", "a", "c", "d", "b"] {
        assert_eq!(app.put(&exemption_path(name), &body(&vm1, EP, None)).await.status, 201);
    }
    let (all, pages) = app.get_all("/securescore/v1/exemptions").await;
    assert_eq!(pages, 3);
    let names: Vec<&str> = all.iter().map(|e| e["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["a", "b", "c", "d", "e"]);
    assert_verifies(&app).await;
}

/// An exemption that ran out while no server was running ends when a server starts on the data.
#[tokio::test]
async fn an_exemption_that_expired_while_down_ends_at_start_up() {
    let dir = tempfile::tempdir().unwrap();
    let sub = Uuid::new_v4();
    let vm1 = vm(sub, "rg", "vm1");
    {
        // Written through a store alone: no server, so no expiry timer runs.
        let store = securescore::store::Store::open(&securescore::store::StoreConfig::Sqlite {
            data_dir: dir.path().to_path_buf(),
        })
        .await
        .unwrap();
        store
            .put_subscription(&securescore::store::Subscription {
                id: sub,
                display_name: "down".into(),
                tenant_id: store.default_tenant().await.unwrap(),
                state: "Enabled".into(),
            })
            .await
            .unwrap();
        let write = securescore::store::Write::Put(securescore::store::AssessmentInput {
            resource: securescore::arm::ResourceId::parse(&vm1).unwrap(),
            name: EP.into(),
            status: securescore::score::Status::Unhealthy,
            cause: None,
            description: None,
            resource_details: json!({"source": "Azure"}),
            additional_data: None,
            partner_name: None,
        });
        store.apply(&[write]).await.unwrap();
        let now = time::OffsetDateTime::now_utc();
        let exemption = securescore::store::Exemption {
            name: "lapsed".into(),
            scope: securescore::arm::AnyScope::Arm(
                securescore::arm::ResourceId::parse(&vm1).unwrap(),
            ),
            assessment: EP.into(),
            category: securescore::store::Category::Mitigated,
            expires_on: Some(now + time::Duration::milliseconds(300)),
            description: "d".into(),
            created_at: now,
            updated_at: now,
            active: true,
        };
        store.put_exemption(&exemption).await.unwrap();
        let exempt = store.view(sub).await.unwrap().unwrap().secure_score;
        assert_eq!(exempt.score.max, 0, "vm1 does not count while exempt");
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(store.exemption("lapsed").await.unwrap().unwrap().active, "nobody ended it");
    }
    let app = spawn_sqlite(dir.path()).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let e = app.get(&exemption_path("lapsed")).await;
        if e.body["properties"]["state"] == "Expired" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "not ended at start-up: {}", e.text);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let score = app.get(&score_path(&sub.to_string())).await;
    assert_eq!(score.body["properties"]["score"]["max"], 2, "{}", score.text);
    let a = app.get(&assessment_path(&vm1, EP, "2021-06-01")).await;
    assert_eq!(a.body["properties"]["status"]["code"], "Unhealthy");
    assert_verifies(&app).await;
}

/// A token for a new service principal with `role` over the subscription.
async fn token_with_role_at(app: &TestApp, sub: Uuid, role: &str) -> String {
    token_with_roles(app, &[(role, &format!("/subscriptions/{sub}"))]).await
}

const GROUPS: &str = "/providers/Microsoft.Management/managementGroups";

/// An exemption at a management group reaches every subscription below it, nested groups
/// included, as the hierarchy places them now: moving a subscription out restores it, moving it
/// in exempts it; the group's own score moves; it lists at the group and at every scope it
/// covers; it needs a role at the group (or above); deleting it restores everything exactly.
#[tokio::test]
async fn an_exemption_at_a_management_group_reaches_every_subscription_below_it() {
    let app = spawn_app().await;
    let (a, b, c) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    put_group(&app, "prod", "Production", None).await;
    put_group(&app, "team", "Team", Some("prod")).await;
    for (sub, group) in [(a, Some("team")), (b, Some("prod")), (c, None)] {
        app.add_subscription(sub).await;
        put_status(&app, &vm(sub, "rg", "vm1"), EP, "Unhealthy").await;
        put_status(&app, &vm(sub, "rg", "vm2"), EP, "Healthy").await;
        if let Some(g) = group {
            assert_eq!(place(&app, g, &sub.to_string()).await.status, 200);
        }
    }
    let seen = |sub: Uuid| {
        let app = &app;
        async move { observable(app, sub, &[vm(sub, "rg", "vm1"), vm(sub, "rg", "vm2")]).await }
    };
    let before = [seen(a).await, seen(b).await, seen(c).await];
    let group_score = || async {
        let path = format!("{GROUPS}/prod/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01");
        score_of(&app.get(&path).await.body)
    };
    let group_before = group_score().await;

    // Only a role at the group (or above it) may exempt there: one at a subscription below
    // is not enough.
    let exemption = body(&format!("{GROUPS}/Prod"), EP, None);
    let below = token_with_role_at(&app, b, "Security Admin").await;
    use reqwest::Method as M;
    let (status, err) =
        as_principal(&app, &below, M::PUT, &exemption_path("central"), Some(&exemption)).await;
    assert_eq!(status, 403, "{err}");
    let admin = token_with_roles(&app, &[("Security Admin", &format!("{GROUPS}/prod"))]).await;
    let (status, created) =
        as_principal(&app, &admin, M::PUT, &exemption_path("central"), Some(&exemption)).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(
        created["id"],
        format!("{GROUPS}/prod/providers/Microsoft.Security/exemptions/central"),
        "the group as it is named"
    );
    assert_eq!(created["properties"]["scope"], format!("{GROUPS}/prod"));

    // Every endpoint-protection assessment of a (nested) and b reads exempt, so that control
    // is no longer assessed there; c is untouched.
    let all_exempt = |now: &[Value]| {
        assert_eq!(score_of(&now[0])["max"], 0, "{}", now[0]);
        for vm in &now[2..] {
            assert_eq!(vm["properties"]["status"]["code"], "NotApplicable", "{vm}");
            assert_eq!(vm["properties"]["status"]["cause"], "Exempt");
        }
    };
    all_exempt(&seen(a).await);
    all_exempt(&seen(b).await);
    assert_eq!(seen(c).await, before[2]);
    assert_ne!(group_score().await, group_before, "the group's score moves with its subscriptions");
    assert_verifies(&app).await;

    // Listed at the group, at a subscription it covers, and to a reader of the group; not at a
    // subscription outside it, nor to a reader of that subscription alone.
    let names = |v: &Value| -> Vec<String> {
        v["value"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let list = |scope: String| {
        let app = &app;
        async move { app.get(&format!("/securescore/v1/exemptions?scope={scope}")).await }
    };
    assert_eq!(names(&list(format!("{GROUPS}/prod")).await.body), ["central"]);
    assert_eq!(names(&list(format!("{GROUPS}/team")).await.body), ["central"]);
    assert_eq!(
        names(&list(format!("/subscriptions/{a}/resourceGroups/rg")).await.body),
        ["central"]
    );
    assert!(names(&list(format!("/subscriptions/{c}")).await.body).is_empty());
    let reader = token_with_roles(&app, &[("Reader", &format!("{GROUPS}/team"))]).await;
    let (status, all) =
        as_principal(&app, &reader, M::GET, "/securescore/v1/exemptions", None).await;
    assert_eq!(status, 200);
    assert!(names(&all).is_empty(), "a reader of a group below sees no exemption above it: {all}");
    let (status, _) = as_principal(&app, &reader, M::GET, &exemption_path("central"), None).await;
    assert_eq!(status, 403);
    let reader = token_with_roles(&app, &[("Reader", &format!("{GROUPS}/prod"))]).await;
    let (_, all) = as_principal(&app, &reader, M::GET, "/securescore/v1/exemptions", None).await;
    assert_eq!(names(&all), ["central"]);
    let outsider = token_with_role_at(&app, c, "Owner").await;
    let (_, all) = as_principal(&app, &outsider, M::GET, "/securescore/v1/exemptions", None).await;
    assert!(names(&all).is_empty(), "{all}");

    // Moved out of the group, a subscription is as before; moved in, it is exempt.
    let r = app.delete(&group_path_of(&format!("team/subscriptions/{a}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(seen(a).await, before[0]);
    assert_eq!(place(&app, "prod", &c.to_string()).await.status, 200);
    all_exempt(&seen(c).await);
    assert_verifies(&app).await;

    // Deleted: every subscription is exactly as before it.
    let r = app.delete(&exemption_path("central")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!([seen(a).await, seen(b).await, seen(c).await], before);
    assert_eq!(group_score().await, group_before);
    assert_verifies(&app).await;
}

fn group_path_of(rest: &str) -> String {
    format!("{GROUPS}/{rest}?api-version=2021-04-01")
}
