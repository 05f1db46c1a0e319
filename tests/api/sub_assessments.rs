//! Sub-assessments (api-version 2019-01-01-preview): the official examples replayed through the
//! extension PUT, lists at every scope and their paging, the cascades, the score left alone,
//! import lines and the refusals of bad input.

use serde_json::{json, Value};
use std::path::Path;
use uuid::Uuid;

use super::*;

const V: &str = "api-version=2019-01-01-preview";
const EP_VMSS: &str = "21300918-b2e3-0346-785f-c77ff57d243b";

/// An official sub-assessment example (copied under `tests/fixtures/azure-spec`).
fn sub_example(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "tests/fixtures/azure-spec/security/resource-manager/Microsoft.Security/preview/2019-01-01-preview/examples/SubAssessments",
    ).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn with_version(path: &str) -> String {
    format!("{path}?{V}")
}

/// Write every item of an example's answer through the extension PUT, at the item's own id.
async fn put_items(app: &TestApp, items: &[Value]) {
    for item in items {
        let id = item["id"].as_str().unwrap();
        let r = app.put(&with_version(id), &json!({"properties": item["properties"]})).await;
        assert_eq!(r.status, 201, "{id}: {}", r.text);
        assert_eq!(&r.body, item, "the PUT answers the stored sub-assessment");
    }
}

fn sub_path(resource: &str, assessment: &str, name: &str) -> String {
    format!(
        "{resource}/providers/Microsoft.Security/assessments/{assessment}/subAssessments/{name}?{V}"
    )
}

fn body(kind: &str, code: &str) -> Value {
    json!({"properties": {
        "displayName": "finding", "id": "1001",
        "status": {"code": code, "severity": "High"},
        "resourceDetails": {"source": "Azure"},
        "additionalData": {"assessedResourceType": kind, "type": "Vulnerability"}
    }})
}

#[tokio::test]
async fn every_official_example_replays_exactly() {
    // GET of one.
    let app = spawn_app().await;
    let ex = sub_example("GetSubAssessment_example.json");
    let want = &ex["responses"]["200"]["body"];
    put_items(&app, std::slice::from_ref(want)).await;
    let p = &ex["parameters"];
    let path = format!(
        "/{}/providers/Microsoft.Security/assessments/{}/subAssessments/{}?api-version={}",
        p["scope"].as_str().unwrap(),
        p["assessmentName"].as_str().unwrap(),
        p["subAssessmentName"].as_str().unwrap(),
        p["api-version"].as_str().unwrap(),
    );
    let r = app.get(&path).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(&r.body, want);
    // A second PUT of the same document replaces it: 200, same answer.
    let id = want["id"].as_str().unwrap();
    let again = app.put(&with_version(id), &json!({"properties": want["properties"]})).await;
    assert_eq!((again.status, &again.body), (200, want));

    // The two lists, each on a server of its own holding exactly the example's items.
    for (file, of_assessment) in [
        ("ListSubscriptionSubAssessments_example.json", false),
        ("ListSubAssessments_example.json", true),
    ] {
        let app = spawn_app().await;
        let ex = sub_example(file);
        let want = &ex["responses"]["200"]["body"];
        put_items(&app, want["value"].as_array().unwrap()).await;
        let p = &ex["parameters"];
        let scope = p["scope"].as_str().unwrap();
        let path = if of_assessment {
            format!(
                "/{scope}/providers/Microsoft.Security/assessments/{}/subAssessments?api-version={}",
                p["assessmentName"].as_str().unwrap(),
                p["api-version"].as_str().unwrap()
            )
        } else {
            format!(
                "/{scope}/providers/Microsoft.Security/subAssessments?api-version={}",
                p["api-version"].as_str().unwrap()
            )
        };
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "{file}: {}", r.text);
        assert_eq!(&r.body, want, "{file}");
    }
}

#[tokio::test]
async fn lists_cover_their_scope_and_only_it() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let s = format!("/subscriptions/{sub}");
    let vm = |rg: &str, n: &str| {
        format!("{s}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{n}")
    };
    let other = "4fb79f2d-8e5c-4d1b-9a64-4d35b2e4b0a1";
    for (resource, assessment, name, kind) in [
        (vm("rg1", "vm1"), EP_VMSS, "s1", "ServerVulnerabilityAssessment"),
        (vm("rg1", "vm1"), other, "s2", "SqlServerVulnerability"),
        (vm("rg1", "vm2"), EP_VMSS, "s3", "ContainerRegistryVulnerability"),
        (vm("rg10", "vm1"), EP_VMSS, "s4", "ServerVulnerability"),
        (format!("{s}/resourceGroups/rg2"), EP_VMSS, "s5", "SqlServerVulnerability"),
    ] {
        let r = app.put(&sub_path(&resource, assessment, name), &body(kind, "Unhealthy")).await;
        assert_eq!(r.status, 201, "{}", r.text);
        assert_eq!(r.body["properties"]["additionalData"]["assessedResourceType"], kind);
    }
    let names = |items: Vec<Value>| -> Vec<String> {
        items.iter().map(|i| i["name"].as_str().unwrap().to_string()).collect()
    };
    let all = |scope: &str| format!("{scope}/providers/Microsoft.Security/subAssessments?{V}");
    let of = |scope: &str, a: &str| {
        format!("{scope}/providers/Microsoft.Security/assessments/{a}/subAssessments?{V}")
    };
    assert_eq!(names(app.get_all(&all(&s)).await.0), ["s1", "s2", "s3", "s4", "s5"]);
    // rg1 must not take in rg10 (a prefix of its name), and the resource group scope covers
    // its resources.
    assert_eq!(
        names(app.get_all(&all(&format!("{s}/resourceGroups/rg1"))).await.0),
        ["s1", "s2", "s3"]
    );
    assert_eq!(names(app.get_all(&all(&format!("{s}/resourceGroups/RG2"))).await.0), ["s5"]);
    assert_eq!(names(app.get_all(&of(&s, EP_VMSS)).await.0), ["s1", "s3", "s4", "s5"]);
    assert_eq!(names(app.get_all(&of(&vm("rg1", "vm1"), other)).await.0), ["s2"]);
    assert_eq!(names(app.get_all(&all(&vm("rg3", "none"))).await.0), Vec::<String>::new());
    // Another subscription sees none of them.
    assert!(app.get_all(&all(&format!("/subscriptions/{DEMO}"))).await.0.is_empty());
    // Reads match names in any case and answer the casing of the first write.
    let r = app.get(&sub_path(&vm("RG1", "VM1"), &EP_VMSS.to_uppercase(), "S1")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["name"], "s1");
    assert!(r.body["id"].as_str().unwrap().contains("/resourceGroups/rg1/"));
}

#[tokio::test]
async fn lists_are_paged_and_every_item_comes_once() {
    let app = spawn_with(Options { page_size: 3, ..Options::default() }).await;
    let s = format!(
        "/subscriptions/{DEMO}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines"
    );
    for i in 0..8 {
        for name in ["a", "b"] {
            let r = app
                .put(
                    &sub_path(&format!("{s}/vm{i}"), EP_VMSS, name),
                    &body("SqlServerVulnerability", "Healthy"),
                )
                .await;
            assert_eq!(r.status, 201, "{}", r.text);
        }
    }
    let path = format!("/subscriptions/{DEMO}/providers/Microsoft.Security/subAssessments?{V}");
    let first = app.get(&path).await;
    assert_eq!(first.body["value"].as_array().unwrap().len(), 3);
    assert!(first.body["nextLink"].as_str().unwrap().contains("$skipToken="));
    let (items, pages) = app.get_all(&path).await;
    assert_eq!((items.len(), pages), (16, 6));
    let mut ids: Vec<&str> = items.iter().map(|i| i["id"].as_str().unwrap()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 16, "no item twice");
    // A token of another list is refused, not misread.
    let r = app.get(&format!("{path}&$skipToken=bzM")).await;
    assert_eq!((r.status, r.code()), (400, "BadRequest"));
}

#[tokio::test]
async fn deleting_an_assessment_or_a_subscription_deletes_its_sub_assessments() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let vm = format!(
        "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    );
    let r =
        app.put(&assessment_path(&vm, EP_VMSS, "2020-01-01"), &assessment_body("Unhealthy")).await;
    assert_eq!(r.status, 201, "{}", r.text);
    for name in ["s1", "s2"] {
        let r = app
            .put(&sub_path(&vm, EP_VMSS, name), &body("ServerVulnerabilityAssessment", "Unhealthy"))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    // DELETE of one sub-assessment: 200, then 204 and a 404 read.
    assert_eq!(app.delete(&sub_path(&vm, EP_VMSS, "s2")).await.status, 200);
    assert_eq!(app.delete(&sub_path(&vm, EP_VMSS, "s2")).await.status, 204);
    let r = app.get(&sub_path(&vm, EP_VMSS, "s2")).await;
    assert_eq!((r.status, r.code()), (404, "ResourceNotFound"));
    assert_eq!(app.get(&sub_path(&vm, EP_VMSS, "s1")).await.status, 200);
    // Deleting the assessment takes its sub-assessments with it.
    assert_eq!(app.delete(&assessment_path(&vm, EP_VMSS, "2020-01-01")).await.status, 200);
    assert_eq!(app.get(&sub_path(&vm, EP_VMSS, "s1")).await.status, 404);

    // Removing the subscription removes them too: once it is back, none is left.
    let r =
        app.put(&sub_path(&vm, EP_VMSS, "s3"), &body("SqlServerVulnerability", "Healthy")).await;
    assert_eq!(r.status, 201);
    assert!(app.store.remove_subscription(sub).await.unwrap());
    let r = app.get(&sub_path(&vm, EP_VMSS, "s3")).await;
    assert_eq!(r.status, 404);
    let r =
        app.put(&sub_path(&vm, EP_VMSS, "s4"), &body("SqlServerVulnerability", "Healthy")).await;
    assert_eq!((r.status, r.code()), (404, "SubscriptionNotFound"));
    app.add_subscription(sub).await;
    let list = format!("/subscriptions/{sub}/providers/Microsoft.Security/subAssessments?{V}");
    assert!(app.get_all(&list).await.0.is_empty());
}

#[tokio::test]
async fn sub_assessments_never_move_the_score() {
    let app = spawn_app().await;
    let before = app.get(&score_path(DEMO)).await;
    assert_eq!(before.status, 200);
    let vm = format!("/subscriptions/{DEMO}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/new-vm");
    for (i, code) in ["Unhealthy", "Healthy", "NotApplicable"].iter().enumerate() {
        let r = app
            .put(
                &sub_path(&vm, EP_VMSS, &format!("s{i}")),
                &body("ServerVulnerabilityAssessment", code),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    assert_eq!(app.delete(&sub_path(&vm, EP_VMSS, "s0")).await.status, 200);
    let after = app.get(&score_path(DEMO)).await;
    assert_eq!(after.body, before.body);
    let controls = format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01");
    let r = app.get(&controls).await;
    assert_eq!(r.status, 200);
    // No assessment appeared for the resource either.
    let r = app.get(&assessment_path(&vm, EP_VMSS, "2020-01-01")).await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn import_lines_carry_sub_assessments_in_azures_shape() {
    let app = spawn_app().await;
    let ex = sub_example("GetSubAssessment_example.json");
    let want = ex["responses"]["200"]["body"].clone();
    let vm = format!(
        "/subscriptions/{DEMO}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    );
    let lifted = json!({
        "id": format!("{vm}/providers/Microsoft.Security/assessments/{EP_VMSS}/subAssessments/lifted"),
        "name": "lifted",
        "displayName": "lifted finding",
        "status": {"code": "Healthy"},
        "additionalData": {"assessedResourceType": "SqlServerVulnerability", "query": "SELECT 1"}
    });
    let assessment = json!({
        "resourceId": vm, "name": EP_VMSS,
        "properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Healthy"}}
    });
    let bad_kind = json!({
        "id": format!("{vm}/providers/Microsoft.Security/assessments/{EP_VMSS}/subAssessments/bad"),
        "properties": {"additionalData": {"assessedResourceType": "Nope"}}
    });
    let bad_id = json!({"type": "Microsoft.Security/assessments/subAssessments", "id": format!("{vm}/subAssessments/x"), "properties": {}});
    let body = [want.clone(), assessment, lifted, bad_kind, bad_id]
        .iter()
        .map(Value::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let r = app
        .request(
            reqwest::Method::POST,
            "/securescore/v1/import",
            Some(body),
            &[("content-type", "application/x-ndjson")],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        (r.body["created"].as_u64(), r.body["failed"].as_u64()),
        (Some(3), Some(2)),
        "{}",
        r.text
    );
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(errors[0]["line"], 4);
    assert_eq!(errors[0]["target"], "properties.additionalData.assessedResourceType");
    assert_eq!((errors[1]["line"].as_u64(), errors[1]["target"].as_str()), (Some(5), Some("id")));
    // The example line reads back exactly as Azure listed it.
    let got = app.get(&with_version(want["id"].as_str().unwrap())).await;
    assert_eq!(got.body, want);
    let got = app.get(&sub_path(&vm, EP_VMSS, "lifted")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["properties"]["displayName"], "lifted finding");
    assert_eq!(got.body["properties"]["additionalData"]["query"], "SELECT 1");
    assert!(got.body["properties"].get("id").is_none(), "the ARM id is not a property");
}

#[tokio::test]
async fn bad_input_is_a_400_cloud_error_naming_the_field() {
    let app = spawn_app().await;
    let vm = format!(
        "/subscriptions/{DEMO}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    );
    let p = sub_path(&vm, EP_VMSS, "s1");
    for (body, target) in [
        (json!([1]), ""),
        (json!({"properties": 3}), "properties"),
        (json!({"properties": {"status": {"code": "Sideways"}}}), "properties.status.code"),
        (
            json!({"properties": {"status": {"severity": "Critical-ish"}}}),
            "properties.status.severity",
        ),
        (json!({"properties": {"timeGenerated": "soon"}}), "properties.timeGenerated"),
        (
            json!({"properties": {"additionalData": {"type": "x"}}}),
            "properties.additionalData.assessedResourceType",
        ),
        (
            json!({"properties": {"additionalData": {"assessedResourceType": "ContainerRegistryVulnerability", "cve": [{"title": 1}]}}}),
            "properties.additionalData.cve",
        ),
    ] {
        let r = app.put(&p, &body).await;
        assert_eq!((r.status, r.code()), (400, "InvalidRequestContent"), "{body}: {}", r.text);
        assert_eq!(r.body["error"]["target"], target, "{body}");
    }
    let r = app.request(reqwest::Method::PUT, &p, Some("{oops".into()), &[]).await;
    assert_eq!((r.status, r.code()), (400, "InvalidRequestContent"));
    // Nothing was stored by the refused writes.
    assert_eq!(app.get(&p).await.status, 404);
    // Other api-versions are not this family's.
    let r = app.get(&p.replace("2019-01-01-preview", "2020-01-01")).await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceType"));
    assert!(r.message().contains("2019-01-01-preview"), "{}", r.text);
    // A method the endpoint does not answer.
    let list = format!("/subscriptions/{DEMO}/providers/Microsoft.Security/subAssessments?{V}");
    let r = app.request(reqwest::Method::PUT, &list, Some("{}".into()), &[]).await;
    assert_eq!((r.status, r.code()), (405, "MethodNotAllowed"));
    // An unknown subscription.
    let r = app
        .get(&format!(
            "/subscriptions/{}/providers/Microsoft.Security/subAssessments?{V}",
            Uuid::new_v4()
        ))
        .await;
    assert_eq!((r.status, r.code()), (404, "SubscriptionNotFound"));
}

#[tokio::test]
async fn sub_assessments_survive_a_restart_on_disk_and_the_cascade_holds_there() {
    let dir = tempfile::tempdir().unwrap();
    let vm = format!(
        "/subscriptions/{DEMO}/resourceGroups/keep/providers/Microsoft.Compute/virtualMachines/vm1"
    );
    let p = sub_path(&vm, EP_VMSS, "kept");
    let written = {
        let app = spawn_sqlite(dir.path()).await;
        let r = app.put(&p, &body("ServerVulnerabilityAssessment", "Unhealthy")).await;
        assert_eq!(r.status, 201, "{}", r.text);
        // A replace keeps the first casing of the names and answers 200.
        let upper =
            sub_path(&vm.to_uppercase().replace("SUBSCRIPTIONS", "subscriptions"), EP_VMSS, "KEPT");
        let again = app.put(&upper, &body("ServerVulnerabilityAssessment", "Healthy")).await;
        assert_eq!(again.status, 200, "{}", again.text);
        assert_eq!(again.body["name"], "kept");
        assert_eq!(again.body["properties"]["status"]["code"], "Healthy");
        app.stop().await;
        again.body
    };
    let app = spawn_sqlite(dir.path()).await;
    let r = app.get(&p).await;
    assert_eq!((r.status, &r.body), (200, &written));
    let a = assessment_path(&vm, EP_VMSS, "2021-06-01");
    assert_eq!(app.put(&a, &assessment_body("Healthy")).await.status, 201);
    assert_eq!(app.delete(&a).await.status, 200);
    assert_eq!(app.get(&p).await.status, 404, "deleting the assessment deleted it");
    app.stop().await;
}
