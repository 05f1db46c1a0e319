//! What to fix first (issue 11): the improvements list agrees with the controls API (points,
//! ordering, percentage rounding) at subscription and resource-group scope, and pages through
//! unhealthy resources.

use serde_json::Value;
use std::collections::BTreeMap;
use uuid::Uuid;

use super::*;
use securescore::score::round_dotnet;

/// Endpoint protection only (control max 2).
pub const EP: &str = "21300918-b2e3-0346-785f-c77ff57d243b";
/// Enable MFA (control max 10).
pub const MFA: &str = "94290b00-4d0c-d7b4-7cea-064a9554e681";
/// A DDoS recommendation with remediation text (control max 2).
pub const DDOS: &str = "e3de1cc0-f4dd-3b34-e496-8b5381ba2d70";
/// In five controls.
pub const FIVE: &str = "08e628db-e2ed-4793-bc91-d13e684401c3";

pub fn vm(sub: Uuid, rg: &str, vm: &str) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}"
    )
}

pub async fn put_status(app: &TestApp, resource: &str, name: &str, code: &str) {
    let r = app.put(&assessment_path(resource, name, "2020-01-01"), &assessment_body(code)).await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
}

/// The estate of one resource group, written into `sub` under `rg`.
async fn seed_group(app: &TestApp, sub: Uuid, rg: &str) {
    put_status(app, &vm(sub, rg, "vm1"), EP, "Unhealthy").await;
    put_status(app, &vm(sub, rg, "vm2"), EP, "Healthy").await;
    put_status(app, &vm(sub, rg, "vm3"), EP, "Unhealthy").await;
    put_status(app, &vm(sub, rg, "vm1"), MFA, "Unhealthy").await;
    put_status(app, &vm(sub, rg, "vm2"), MFA, "Healthy").await;
    put_status(app, &vm(sub, rg, "vm2"), MFA, "Healthy").await;
    put_status(app, &vm(sub, rg, "vm1"), DDOS, "Healthy").await;
    put_status(app, &vm(sub, rg, "vm2"), FIVE, "Unhealthy").await;
    put_status(app, &vm(sub, rg, "vm3"), FIVE, "NotApplicable").await;
}

fn improvements_path(sub: Uuid, scope: Option<&str>) -> String {
    match scope {
        Some(s) => format!("/securescore/v1/subscriptions/{sub}/improvements?scope={s}"),
        None => format!("/securescore/v1/subscriptions/{sub}/improvements"),
    }
}

/// Check an improvements answer against a subscription's controls API: one entry per control
/// below its maximum, the same numbers, best first, ties by name.
async fn assert_agrees_with_controls(app: &TestApp, improvements: &Value, sub: Uuid) {
    let controls = app
        .get(&format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01"))
        .await;
    assert_eq!(controls.status, 200, "{}", controls.text);
    let score = app.get(&score_path(&sub.to_string())).await;
    let scope_max = score.body["properties"]["score"]["max"].as_i64().unwrap();
    assert_eq!(improvements["score"], score.body["properties"]["score"]);
    let mut expected: Vec<(f64, String, &Value)> = Vec::new();
    for c in controls.body["value"].as_array().unwrap() {
        let p = &c["properties"];
        let (current, max) =
            (p["score"]["current"].as_f64().unwrap(), p["score"]["max"].as_i64().unwrap());
        let points = round_dotnet(max as f64 - current, 2);
        if points > 0.0 {
            expected.push((points, c["name"].as_str().unwrap().to_string(), p));
        }
    }
    expected.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let got = improvements["value"].as_array().unwrap();
    assert_eq!(got.len(), expected.len(), "{improvements:#}");
    for (entry, (points, name, p)) in got.iter().zip(&expected) {
        assert_eq!(entry["control"], name.as_str());
        assert_eq!(entry["displayName"], p["displayName"]);
        assert_eq!(entry["potentialScoreIncrease"]["points"].as_f64(), Some(*points));
        assert_eq!(
            entry["potentialScoreIncrease"]["percentage"].as_f64(),
            Some(round_dotnet(points / scope_max as f64 * 100.0, 2))
        );
        assert_eq!(entry["currentScore"], p["score"]["current"]);
        assert_eq!(entry["maxScore"], p["score"]["max"]);
        assert_eq!(entry["unhealthyResourceCount"], p["unhealthyResourceCount"]);
        assert_eq!(entry["healthyResourceCount"], p["healthyResourceCount"]);
        assert_eq!(entry["notApplicableResourceCount"], p["notApplicableResourceCount"]);
    }
}

/// The numbers of an improvements answer that do not depend on where the scope lives.
fn numbers(v: &Value) -> Vec<Value> {
    v["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let recs: BTreeMap<String, i64> = e["recommendations"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["name"].as_str().unwrap().to_string(),
                        r["unhealthyResourceCount"].as_i64().unwrap(),
                    )
                })
                .collect();
            serde_json::json!([
                e["control"],
                e["potentialScoreIncrease"],
                e["currentScore"],
                e["maxScore"],
                e["healthyResourceCount"],
                e["unhealthyResourceCount"],
                e["notApplicableResourceCount"],
                recs
            ])
        })
        .collect()
}

#[tokio::test]
async fn improvements_equal_the_controls_api_at_subscription_and_resource_group_scope() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    seed_group(&app, sub, "rg1").await;
    put_status(&app, &vm(sub, "rg2", "vm9"), MFA, "Unhealthy").await;
    put_status(&app, &vm(sub, "rg2", "vm9"), EP, "Healthy").await;

    let r = app.get(&improvements_path(sub, None)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scope"], format!("/subscriptions/{sub}"));
    assert!(r.body.get("nextLink").is_none());
    assert_agrees_with_controls(&app, &r.body, sub).await;
    // MFA (max 10, 1 of 3 healthy) is worth the most; its recommendation lists both VMs.
    let first = &r.body["value"][0];
    assert_eq!(first["control"], "34a42fb3-e6db-409c-b56b-7b1db6b8aee0");
    let rec = &first["recommendations"][0];
    assert_eq!(rec["name"], MFA);
    assert_eq!(rec["severity"], "High");
    assert_eq!(rec["unhealthyResourceCount"], 2);
    let ids: Vec<&str> = rec["unhealthyResources"]["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [vm(sub, "rg1", "vm1"), vm(sub, "rg2", "vm9")]);
    // A recommendation of a control at its maximum is not listed; healthy ones neither.
    let listed: Vec<&str> = r.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| {
            e["recommendations"].as_array().unwrap().iter().map(|r| r["name"].as_str().unwrap())
        })
        .collect();
    assert!(!listed.contains(&DDOS), "{listed:?}");

    // Resource-group scope: the same formula over the group's assessments, i.e. what a
    // subscription holding exactly those assessments answers.
    let twin = Uuid::new_v4();
    app.add_subscription(twin).await;
    seed_group(&app, twin, "rg1").await;
    let whole = app.get(&improvements_path(twin, None)).await;
    assert_agrees_with_controls(&app, &whole.body, twin).await;
    let scope = format!("/subscriptions/{sub}/resourceGroups/rg1");
    let rg = app.get(&improvements_path(sub, Some(&scope))).await;
    assert_eq!(rg.status, 200, "{}", rg.text);
    assert_eq!(rg.body["scope"], scope);
    assert_eq!(rg.body["score"], whole.body["score"]);
    assert_eq!(numbers(&rg.body), numbers(&whole.body));
    assert_ne!(numbers(&rg.body), numbers(&r.body), "rg2 is not in the group");
    let mfa = rg.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["control"] == "34a42fb3-e6db-409c-b56b-7b1db6b8aee0")
        .map(|e| e["recommendations"][0]["unhealthyResources"]["value"].clone());
    assert_eq!(mfa, Some(serde_json::json!([{"id": vm(sub, "rg1", "vm1")}])));
}

#[tokio::test]
async fn improvements_refuse_scopes_they_cannot_answer() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let other = Uuid::new_v4();
    for (scope, want) in [
        (format!("/subscriptions/{other}/resourceGroups/rg"), "not within"),
        (vm(sub, "rg", "vm1"), "resource groups"),
        ("nonsense".to_string(), "scope"),
    ] {
        let r = app.get(&improvements_path(sub, Some(&scope))).await;
        assert_eq!(r.status, 400, "{scope}: {}", r.text);
        assert!(r.message().contains(want), "{scope}: {}", r.text);
        assert_eq!(r.body["error"]["target"], "scope");
    }
    // A management group: unknown, ARM's 404; known, not served here yet.
    let at_group = "/providers/Microsoft.Management/managementGroups/mg1";
    let r = app.get(&improvements_path(sub, Some(at_group))).await;
    assert_eq!((r.status, r.code()), (404, "NotFound"), "{}", r.text);
    let group = format!("{at_group}?api-version=2021-04-01");
    assert_eq!(app.put(&group, &serde_json::json!({"properties": {}})).await.status, 200);
    let r = app.get(&improvements_path(sub, Some(at_group))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.message().contains("not served yet"), "{}", r.text);
    let r = app.get(&improvements_path(Uuid::new_v4(), None)).await;
    assert_eq!(r.status, 404);
    assert_eq!(r.code(), "SubscriptionNotFound");
    // Nothing assessed: nothing to fix.
    let r = app.get(&improvements_path(sub, None)).await;
    assert_eq!(r.body["value"], serde_json::json!([]));
}

#[tokio::test]
async fn unhealthy_resources_page_through_every_id_once() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let mut all: Vec<String> = Vec::new();
    for i in 0..13 {
        let id = vm(sub, "rg", &format!("vm{i:02}"));
        put_status(&app, &id, EP, "Unhealthy").await;
        all.push(id);
    }
    put_status(&app, &vm(sub, "rg", "healthy"), EP, "Healthy").await;
    all.sort_by_key(|s| s.to_ascii_lowercase());
    let r = app.get(&improvements_path(sub, None)).await;
    let rec = &r.body["value"][0]["recommendations"][0];
    assert_eq!(rec["unhealthyResourceCount"], 13);
    let inline = rec["unhealthyResources"]["value"].as_array().unwrap();
    assert_eq!(inline.len(), 10, "the first page inline");
    let next = rec["unhealthyResources"]["nextLink"].as_str().expect("a link to the rest");
    let (rest, pages) = app.get_all(next).await;
    assert_eq!(pages, 1);
    let ids: Vec<String> =
        inline.iter().chain(&rest).map(|v| v["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(ids, all);
    // The endpoint pages with $top too, the link keeping the page size.
    let control = r.body["value"][0]["control"].as_str().unwrap();
    let path = format!(
        "/securescore/v1/subscriptions/{sub}/improvements/{control}/recommendations/{EP}/resources?$top=4"
    );
    let (paged, pages) = app.get_all(&path).await;
    assert_eq!(pages, 4);
    let paged: Vec<String> = paged.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(paged, all);
    // A recommendation that is not the control's, or a control that does not exist: 404.
    let r = app
        .get(&format!("/securescore/v1/subscriptions/{sub}/improvements/{control}/recommendations/{MFA}/resources"))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = app
        .get(&format!(
            "/securescore/v1/subscriptions/{sub}/improvements/nope/recommendations/{EP}/resources"
        ))
        .await;
    assert_eq!(r.status, 404, "{}", r.text);
    let r = app.get(&format!("{path}&$top=0")).await;
    assert_eq!(r.status, 400);
}
