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
    // A management group: unknown, ARM's 404; one the subscription is not below, 400.
    let at_group = "/providers/Microsoft.Management/managementGroups/mg1";
    let r = app.get(&improvements_path(sub, Some(at_group))).await;
    assert_eq!((r.status, r.code()), (404, "NotFound"), "{}", r.text);
    let group = format!("{at_group}?api-version=2021-04-01");
    assert_eq!(app.put(&group, &serde_json::json!({"properties": {}})).await.status, 200);
    let r = app.get(&improvements_path(sub, Some(at_group))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.message().contains("does not contain the subscription"), "{}", r.text);
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

#[tokio::test]
async fn improvements_at_a_management_group_sum_the_subscriptions_below_it() {
    use super::management_groups::{get_as, place, put_group, token_with_roles};
    let app = spawn_app().await;
    let (a, b, outside) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for s in [a, b, outside] {
        app.add_subscription(s).await;
    }
    put_group(&app, "Parent", "Parent", None).await;
    put_group(&app, "Child", "Child", Some("Parent")).await;
    assert_eq!(place(&app, "Parent", &a.to_string()).await.status, 200);
    assert_eq!(place(&app, "Child", &b.to_string()).await.status, 200);
    seed_group(&app, a, "rg1").await;
    seed_group(&app, b, "rg2").await;
    // Outside the group: must not count.
    put_status(&app, &vm(outside, "rg", "vm9"), EP, "Unhealthy").await;
    put_status(&app, &vm(b, "rg2", "vm4"), EP, "Unhealthy").await;

    let group = "/providers/Microsoft.Management/managementGroups/parent";
    let r = app.get(&improvements_path(b, Some(group))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["scope"], "/providers/Microsoft.Management/managementGroups/Parent");
    // The same numbers as the group's secureScoreControls and secure score.
    let arm =
        "/providers/Microsoft.Management/managementGroups/Parent/providers/Microsoft.Security";
    let controls = app.get(&format!("{arm}/secureScoreControls?api-version=2020-01-01")).await;
    assert_eq!(controls.status, 200, "{}", controls.text);
    let score = app.get(&format!("{arm}/secureScores/ascScore?api-version=2020-01-01")).await;
    assert_eq!(r.body["score"], score.body["properties"]["score"], "{}", r.text);
    let scope_max = score.body["properties"]["score"]["max"].as_f64().unwrap();
    let by_name: BTreeMap<String, &Value> = controls.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c))
        .collect();
    let entries = r.body["value"].as_array().unwrap();
    assert!(!entries.is_empty());
    let mut last = f64::INFINITY;
    for e in entries {
        let c = by_name[e["control"].as_str().unwrap()];
        let p = &c["properties"];
        let points = round_dotnet(
            p["score"]["max"].as_f64().unwrap() - p["score"]["current"].as_f64().unwrap(),
            2,
        );
        assert_eq!(e["potentialScoreIncrease"]["points"].as_f64().unwrap(), points, "{e}");
        assert_eq!(
            e["potentialScoreIncrease"]["percentage"].as_f64().unwrap(),
            round_dotnet(points / scope_max * 100.0, 2)
        );
        assert_eq!(e["unhealthyResourceCount"], p["unhealthyResourceCount"]);
        assert!(points <= last, "best first");
        last = points;
    }
    // Endpoint protection: vm1 and vm3 of each subscription, and vm4 of b, across both.
    let ep = entries
        .iter()
        .flat_map(|e| e["recommendations"].as_array().unwrap())
        .find(|rec| rec["name"] == EP)
        .expect("endpoint protection is a recommendation");
    assert_eq!(ep["unhealthyResourceCount"], 5);
    let mut want = vec![
        vm(a, "rg1", "vm1"),
        vm(a, "rg1", "vm3"),
        vm(b, "rg2", "vm1"),
        vm(b, "rg2", "vm3"),
        vm(b, "rg2", "vm4"),
    ];
    want.sort_by_key(|s| s.to_ascii_lowercase());
    let inline: Vec<&str> = ep["unhealthyResources"]["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["id"].as_str().unwrap())
        .collect();
    assert_eq!(inline, want);
    // Paged across the subscriptions, every id once, in key order.
    let control = entries
        .iter()
        .find(|e| e["recommendations"].as_array().unwrap().iter().any(|x| x["name"] == EP))
        .unwrap()["control"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!(
        "/securescore/v1/subscriptions/{a}/improvements/{control}/recommendations/{EP}/resources?$top=2&scope={group}"
    );
    let (paged, pages) = app.get_all(&path).await;
    assert_eq!(pages, 3);
    let paged: Vec<String> = paged.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(paged, want);
    // The subscription outside the group cannot ask about it.
    let r = app.get(&improvements_path(outside, Some(group))).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Read access to a subscription below the group is not read access to the group.
    let sub_reader = token_with_roles(&app, &[("Reader", &format!("/subscriptions/{b}"))]).await;
    let (status, body) = get_as(&app, &improvements_path(b, Some(group)), &sub_reader).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = get_as(&app, &improvements_path(b, None), &sub_reader).await;
    assert_eq!(status, 200);
    let group_reader = token_with_roles(&app, &[("Reader", group)]).await;
    let (status, body) = get_as(&app, &improvements_path(b, Some(group)), &group_reader).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["value"], r_value(&app, b, group).await);
}

async fn r_value(app: &TestApp, sub: Uuid, scope: &str) -> Value {
    app.get(&improvements_path(sub, Some(scope))).await.body["value"].clone()
}
