//! The assessments and assessment metadata APIs, and scores moving with every write.

use proptest::prelude::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use uuid::Uuid;

use super::*;
use securescore::arm::ResourceId;
use securescore::catalog;
use securescore::demo::writes_for_counts;
use securescore::score::Status;
use securescore::store::{AssessmentInput, Write};

const EP_VMSS: &str = "21300918-b2e3-0346-785f-c77ff57d243b"; // built-in, control "Enable endpoint protection"
const ENDPOINT_PROTECTION: &str = "12136bd9-dc24-44f2-9587-7be3af6aac14";

fn vm(sub: &str, rg: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}")
}

async fn control(app: &TestApp, sub: &str, control: &str) -> Option<Value> {
    let (all, _) = app.get_all(&format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01")).await;
    all.into_iter().find(|c| c["name"] == control)
}

#[tokio::test]
async fn put_get_list_delete_round_trip_and_move_scores() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let s = sub.to_string();
    let r1 = vm(&s, "rg1", "vm1");
    let path = assessment_path(&r1, EP_VMSS, "2021-06-01");

    let created = app.put(&path, &assessment_body("Unhealthy")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(
        created.body["id"],
        format!("{r1}/providers/Microsoft.Security/assessments/{EP_VMSS}")
    );
    assert_eq!(created.body["type"], "Microsoft.Security/assessments");
    assert_eq!(created.body["properties"]["resourceDetails"], json!({"source": "Azure", "id": r1}));
    assert_eq!(
        created.body["properties"]["displayName"],
        "Endpoint protection should be installed on virtual machine scale sets"
    );
    assert_eq!(created.body["properties"]["status"]["code"], "Unhealthy");
    assert!(
        created.body["properties"]["status"]["firstEvaluationDate"].is_string(),
        "2021-06-01 adds the dates"
    );
    let c = control(&app, &s, ENDPOINT_PROTECTION).await.unwrap();
    assert_eq!(c["properties"]["unhealthyResourceCount"], 1);
    assert_eq!(c["properties"]["score"]["max"], 2);
    assert_eq!(
        app.get(&score_path(&s)).await.body["properties"]["score"],
        json!({"max": 2, "current": 0.0, "percentage": 0.0})
    );

    let replaced = app.put(&path, &assessment_body("Healthy")).await;
    assert_eq!(replaced.status, 200);
    assert_eq!(
        replaced.body["properties"]["status"]["firstEvaluationDate"],
        created.body["properties"]["status"]["firstEvaluationDate"]
    );
    let c = control(&app, &s, ENDPOINT_PROTECTION).await.unwrap();
    assert_eq!(
        (
            c["properties"]["healthyResourceCount"].as_i64(),
            c["properties"]["unhealthyResourceCount"].as_i64()
        ),
        (Some(1), Some(0))
    );
    assert_eq!(
        app.get(&score_path(&s)).await.body["properties"]["score"],
        json!({"max": 2, "current": 2.0, "percentage": 1.0})
    );

    // 2020-01-01 answers with the dates too, as Azure does.
    let got = app.get(&assessment_path(&r1, EP_VMSS, "2020-01-01")).await;
    assert_eq!(got.status, 200);
    assert_eq!(
        got.body["properties"]["status"]["firstEvaluationDate"],
        created.body["properties"]["status"]["firstEvaluationDate"]
    );
    // Case-insensitive lookup; the stored id keeps the casing of the first write.
    let shouty = assessment_path(
        &r1.to_uppercase().replace("SUBSCRIPTIONS", "subscriptions"),
        &EP_VMSS.to_uppercase(),
        "2021-06-01",
    );
    let got = app.get(&shouty).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["id"], format!("{r1}/providers/Microsoft.Security/assessments/{EP_VMSS}"));

    let list = app
        .get(&format!(
            "/subscriptions/{s}/providers/Microsoft.Security/assessments?api-version=2021-06-01"
        ))
        .await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 1);

    assert_eq!(app.delete(&path).await.status, 200);
    assert_eq!(app.delete(&path).await.status, 204);
    assert_eq!(app.get(&path).await.status, 404);
    assert!(
        control(&app, &s, ENDPOINT_PROTECTION).await.is_none(),
        "no resource assessed any more"
    );
    assert_eq!(app.get(&score_path(&s)).await.body["properties"]["score"]["max"], 0);
}

#[tokio::test]
async fn pushing_the_worked_example_through_the_api_yields_the_documented_sample() {
    let app = spawn_with(Options { demo: false, ..Options::default() }).await;
    let sub = Uuid::parse_str(DEMO).unwrap();
    app.add_subscription(sub).await;
    for w in writes_for_counts(sub, securescore::demo::EXAMPLE).unwrap() {
        let Write::Put(a) = w else { unreachable!() };
        let r = app
            .put(
                &assessment_path(a.resource.as_str(), &a.name, "2021-06-01"),
                &assessment_body(a.status.as_str()),
            )
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
    }
    let r = app.get(&score_path(DEMO)).await;
    assert_eq!(
        r.body,
        example("secureScores/GetSecureScoresSingle_example.json")["responses"]["200"]["body"]
    );
}

/// An assessment without its status dates: the server sends them at 2020-01-01 (as Azure does),
/// while most of the 2020-01-01 examples leave them out.
fn without_dates(mut assessment: Value) -> Value {
    if let Some(status) = assessment["properties"]["status"].as_object_mut() {
        status.remove("statusChangeDate");
        status.remove("firstEvaluationDate");
    }
    assessment
}

#[tokio::test]
async fn official_assessment_examples_round_trip() {
    let app = spawn_app().await;
    // Get: feed the example's data in, read it back.
    let doc = example("Assessments/GetAssessment_example.json");
    let want = &doc["responses"]["200"]["body"];
    let resource = format!("/{}", doc["parameters"]["resourceId"].as_str().unwrap());
    let name = doc["parameters"]["assessmentName"].as_str().unwrap();
    let mut body = json!({"properties": want["properties"].clone()});
    body["properties"].as_object_mut().unwrap().remove("displayName");
    assert_eq!(app.put(&assessment_path(&resource, name, "2020-01-01"), &body).await.status, 201);
    let got = without_dates(app.get(&assessment_path(&resource, name, "2020-01-01")).await.body);
    let mut expected = want.clone();
    // The display name is the catalogue's current one for this key.
    expected["properties"]["displayName"] =
        json!(catalog::builtin().assessment(name).unwrap().display_name());
    assert_eq!(got, expected);

    // With $expand=links (and the 2021-06-01 dates).
    let doc = example("Assessments/GetAssessmentWithExpand_example.json");
    let got =
        app.get(&format!("{}&$expand=links", assessment_path(&resource, name, "2021-06-01"))).await;
    assert_eq!(got.status, 200);
    let uri = got.body["properties"]["links"]["azurePortalUri"].as_str().unwrap();
    assert!(uri.ends_with(&format!("assessmentKey/{name}")));
    for k in ["statusChangeDate", "firstEvaluationDate"] {
        assert!(doc["responses"]["200"]["body"]["properties"]["status"][k].is_string());
        assert!(got.body["properties"]["status"][k].as_str().unwrap().ends_with('Z'));
    }
    let meta = app
        .get(&format!("{}&$expand=metadata", assessment_path(&resource, name, "2021-06-01")))
        .await;
    assert_eq!(meta.body["properties"]["metadata"]["assessmentType"], "BuiltIn");

    // List: both assessments of the example, at resource-group scope.
    let doc = example("Assessments/ListAssessments_example.json");
    let items = doc["responses"]["200"]["body"]["value"].as_array().unwrap();
    for item in items {
        let rid = item["properties"]["resourceDetails"]["id"].as_str().unwrap();
        let mut body = json!({"properties": item["properties"].clone()});
        body["properties"].as_object_mut().unwrap().remove("displayName");
        let r = app
            .put(&assessment_path(rid, item["name"].as_str().unwrap(), "2020-01-01"), &body)
            .await;
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    let list = app.get(&format!("/subscriptions/{DEMO}/resourceGroups/myRg/providers/Microsoft.Security/assessments?api-version=2020-01-01")).await;
    let got = list.body["value"].as_array().unwrap();
    assert_eq!(got.len(), items.len());
    for want in items {
        let have = got.iter().find(|a| a["id"] == want["id"]).unwrap();
        assert_eq!(
            without_dates(have.clone())["properties"]["status"],
            want["properties"]["status"]
        );
        assert_eq!(have["properties"]["resourceDetails"], want["properties"]["resourceDetails"]);
        assert_eq!(
            have["properties"].get("additionalData"),
            want["properties"].get("additionalData")
        );
    }
    // Resource scope lists only that resource's assessments.
    let vmss1 = items[0]["properties"]["resourceDetails"]["id"].as_str().unwrap();
    let one = app
        .get(&format!("{vmss1}/providers/Microsoft.Security/assessments?api-version=2020-01-01"))
        .await;
    assert_eq!(one.body["value"].as_array().unwrap().len(), 1);

    // Put: the example's custom recommendation must exist first (as custom metadata).
    let doc = example("Assessments/PutAssessment_example.json");
    let name = doc["parameters"]["assessmentName"].as_str().unwrap();
    let want = &doc["responses"]["201"]["body"];
    let meta = json!({"properties": {"displayName": want["properties"]["displayName"], "severity": "Medium", "assessmentType": "CustomerManaged"}});
    assert_eq!(app.put(&format!("/subscriptions/{DEMO}/providers/Microsoft.Security/assessmentMetadata/{name}?api-version=2020-01-01"), &meta).await.status, 200);
    let resource = format!("/{}", doc["parameters"]["resourceId"].as_str().unwrap());
    let path = assessment_path(&resource, name, "2020-01-01");
    let before = app.get(&score_path(DEMO)).await.body;
    let created = app.put(&path, &doc["parameters"]["assessment"]).await;
    assert_eq!(created.status, 201);
    assert_eq!(created.body["name"], want["name"]);
    assert_eq!(created.body["type"], want["type"]);
    assert_eq!(created.body["properties"]["displayName"], want["properties"]["displayName"]);
    assert_eq!(
        without_dates(created.body.clone())["properties"]["status"],
        want["properties"]["status"]
    );
    assert_eq!(created.body["properties"]["resourceDetails"]["source"], "Azure");
    assert_eq!(app.put(&path, &doc["parameters"]["assessment"]).await.status, 200);
    assert_eq!(
        app.get(&score_path(DEMO)).await.body,
        before,
        "custom recommendations never move the score"
    );

    // Delete.
    assert_eq!(app.delete(&path).await.status, 200);
    assert_eq!(app.delete(&path).await.status, 204);
}

#[tokio::test]
async fn invalid_writes_are_rejected_with_their_target_and_write_nothing() {
    let app = spawn_app().await;
    let r1 = vm(DEMO, "rg", "vm1");
    let path = assessment_path(&r1, EP_VMSS, "2021-06-01");
    let before = app.get(&score_path(DEMO)).await.body;
    let cases: Vec<(Value, &str)> = vec![
        (json!([]), ""),
        (json!({}), "properties"),
        (json!({"properties": 5}), "properties"),
        (json!({"properties": {"status": {"code": "Healthy"}}}), "properties.resourceDetails"),
        (
            json!({"properties": {"resourceDetails": {}, "status": {"code": "Healthy"}}}),
            "properties.resourceDetails.source",
        ),
        (
            json!({"properties": {"resourceDetails": {"source": "Mars"}, "status": {"code": "Healthy"}}}),
            "properties.resourceDetails.source",
        ),
        (
            json!({"properties": {"resourceDetails": {"source": "OnPremise", "workspaceId": "w", "vmuuid": "v", "sourceComputerId": "s"}, "status": {"code": "Healthy"}}}),
            "properties.resourceDetails.machineName",
        ),
        (
            json!({"properties": {"resourceDetails": {"source": "OnPremiseSql", "workspaceId": "w", "vmuuid": "v", "sourceComputerId": "s", "machineName": "m", "serverName": "x"}, "status": {"code": "Healthy"}}}),
            "properties.resourceDetails.databaseName",
        ),
        (json!({"properties": {"resourceDetails": {"source": "Azure"}}}), "properties.status"),
        (
            json!({"properties": {"resourceDetails": {"source": "Azure"}, "status": {}}}),
            "properties.status.code",
        ),
        (
            json!({"properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Broken"}}}),
            "properties.status.code",
        ),
        (
            json!({"properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Healthy", "cause": 5}}}),
            "properties.status.cause",
        ),
        (
            json!({"properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Healthy"}, "additionalData": {"k": 1}}}),
            "properties.additionalData.k",
        ),
        (
            json!({"properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Healthy"}, "partnersData": {"partnerName": "p"}}}),
            "properties.partnersData.secret",
        ),
    ];
    for (body, target) in cases {
        let r = app.put(&path, &body).await;
        assert_eq!(r.status, 400, "{body}: {}", r.text);
        assert_eq!(r.code(), "InvalidRequestContent");
        assert_eq!(r.body["error"]["target"], target, "{body}");
    }
    // Unknown assessment name, unknown subscription, malformed resource id.
    let r = app
        .put(
            &assessment_path(&r1, "00000000-0000-0000-0000-000000000000", "2021-06-01"),
            &assessment_body("Healthy"),
        )
        .await;
    assert_eq!((r.status, r.body["error"]["target"].as_str()), (400, Some("name")));
    let other = Uuid::new_v4().to_string();
    let r = app
        .put(
            &assessment_path(&vm(&other, "rg", "vm"), EP_VMSS, "2021-06-01"),
            &assessment_body("Healthy"),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "SubscriptionNotFound"));
    let r = app
        .put(&format!("/subscriptions/{DEMO}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/providers/Microsoft.Security/assessments/{EP_VMSS}?api-version=2021-06-01"), &assessment_body("Healthy"))
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    // OnPremise details are accepted and echoed.
    let ok = json!({"properties": {"resourceDetails": {"source": "OnPremise", "workspaceId": "w", "vmuuid": "v", "sourceComputerId": "s", "machineName": "m"}, "status": {"code": "NotApplicable"}, "partnersData": {"partnerName": "p", "secret": "s3cret"}}});
    let other_vm = vm(DEMO, "rg", "onprem");
    let r = app.put(&assessment_path(&other_vm, EP_VMSS, "2021-06-01"), &ok).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["properties"]["resourceDetails"]["machineName"], "m");
    assert!(!r.text.contains("s3cret"), "secrets are write-only");
    app.delete(&assessment_path(&other_vm, EP_VMSS, "2021-06-01")).await;

    assert_eq!(app.get(&path).await.status, 404, "nothing written");
    assert_eq!(app.get(&score_path(DEMO)).await.body, before);
}

#[tokio::test]
async fn assessment_lists_page_by_key() {
    let app = spawn_with(Options { page_size: 3, ..Options::default() }).await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let s = sub.to_string();
    for i in 0..7 {
        let r = app
            .put(
                &assessment_path(&vm(&s, "rg-a", &format!("vm{i}")), EP_VMSS, "2021-06-01"),
                &assessment_body("Healthy"),
            )
            .await;
        assert_eq!(r.status, 201);
    }
    app.put(
        &assessment_path(&vm(&s, "rg-b", "vm0"), EP_VMSS, "2021-06-01"),
        &assessment_body("Healthy"),
    )
    .await;
    let (all, pages) = app
        .get_all(&format!(
            "/subscriptions/{s}/providers/Microsoft.Security/assessments?api-version=2021-06-01"
        ))
        .await;
    assert_eq!((all.len(), pages), (8, 3));
    let (rg, _) = app.get_all(&format!("/subscriptions/{s}/resourceGroups/RG-A/providers/Microsoft.Security/assessments?api-version=2021-06-01")).await;
    assert_eq!(rg.len(), 7);
}

#[tokio::test]
async fn metadata_builtin_and_custom() {
    let app = spawn_with(Options { page_size: 1000, ..Options::default() }).await;
    let r =
        app.get("/providers/Microsoft.Security/assessmentMetadata?api-version=2021-06-01").await;
    assert_eq!(r.body["value"].as_array().unwrap().len(), 557);
    let r = app
        .get(&format!(
            "/providers/Microsoft.Security/assessmentMetadata/{EP_VMSS}?api-version=2020-01-01"
        ))
        .await;
    assert_eq!(r.status, 200);
    let want = &example("AssessmentsMetadata/GetAssessmentsMetadata_example.json")["responses"]
        ["200"]["body"];
    assert_eq!(r.body["id"], want["id"]);
    assert_eq!(r.body["type"], want["type"]);
    assert_eq!(
        r.body["properties"]["policyDefinitionId"],
        want["properties"]["policyDefinitionId"]
    );
    assert_eq!(r.body["properties"]["categories"], want["properties"]["category"]);
    assert_eq!(r.body["properties"]["assessmentType"], "BuiltIn");
    // An unnamed key says so instead of inventing a name.
    let unnamed =
        catalog::builtin().assessments().iter().find(|a| a.display_name.is_none()).unwrap();
    let r = app
        .get(&format!(
            "/providers/Microsoft.Security/assessmentMetadata/{}?api-version=2021-06-01",
            unnamed.name
        ))
        .await;
    assert!(r.body["properties"]["displayName"].as_str().unwrap().contains("no public name known"));

    // Custom metadata in a subscription: the official create example.
    let doc = example("AssessmentsMetadata/CreateAssessmentsMetadata_subscription_example.json");
    let sub = doc["parameters"]["subscriptionId"].as_str().unwrap();
    app.add_subscription(Uuid::parse_str(sub).unwrap()).await;
    let name = doc["parameters"]["assessmentMetadataName"].as_str().unwrap();
    let path = format!("/subscriptions/{sub}/providers/Microsoft.Security/assessmentMetadata/{name}?api-version=2020-01-01");
    let r = app.put(&path, &doc["parameters"]["assessmentMetadata"]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], format!("/providers/Microsoft.Security/assessmentMetadata/{name}"));
    assert_eq!(r.body["properties"]["assessmentType"], "CustomerManaged");
    assert_eq!(r.body["properties"]["categories"], json!(["Compute"]));
    assert_eq!(app.get(&path).await.body, r.body);
    let list = app.get(&format!("/subscriptions/{sub}/providers/Microsoft.Security/assessmentMetadata?api-version=2020-01-01")).await;
    assert_eq!(list.body["value"].as_array().unwrap().len(), 558);
    // Invalid custom metadata.
    let bad = app.put(&path, &json!({"properties": {"displayName": "x", "severity": "Extreme", "assessmentType": "CustomerManaged"}})).await;
    assert_eq!(
        (bad.status, bad.body["error"]["target"].as_str()),
        (400, Some("properties.severity"))
    );
    let builtin = app.put(&format!("/subscriptions/{sub}/providers/Microsoft.Security/assessmentMetadata/{EP_VMSS}?api-version=2020-01-01"), &doc["parameters"]["assessmentMetadata"]).await;
    assert_eq!(builtin.status, 400);
    // Assessments of the custom recommendation appear but never move the score.
    let before = app.get(&score_path(sub)).await.body;
    let r = app
        .put(
            &assessment_path(&vm(sub, "rg", "vm"), name, "2021-06-01"),
            &assessment_body("Unhealthy"),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(
        r.body["properties"]["displayName"],
        "Install endpoint protection solution on virtual machine scale sets"
    );
    assert_eq!(app.get(&score_path(sub)).await.body, before);
    assert_eq!(app.delete(&path).await.status, 200);
    assert_eq!(app.get(&path).await.status, 404);
}

#[tokio::test]
async fn preview_recommendations_never_move_the_score() {
    let app = spawn_app().await;
    let preview =
        catalog::builtin().assessments().iter().find(|a| a.preview == Some(true)).unwrap();
    let before = app.get(&score_path(DEMO)).await.body;
    let r = app
        .put(
            &assessment_path(&vm(DEMO, "rg", "pv"), &preview.name, "2021-06-01"),
            &assessment_body("Unhealthy"),
        )
        .await;
    assert_eq!(r.status, 201);
    assert_eq!(app.get(&score_path(DEMO)).await.body, before);
}

#[tokio::test]
async fn history_records_every_change() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let s = sub.to_string();
    let path = assessment_path(&vm(&s, "rg", "vm"), EP_VMSS, "2021-06-01");
    app.put(&path, &assessment_body("Unhealthy")).await;
    app.put(&path, &assessment_body("Unhealthy")).await; // no change of score: not recorded
    app.put(&path, &assessment_body("Healthy")).await;
    let h = app.get(&format!("/securescore/v1/subscriptions/{s}/history")).await;
    assert_eq!(h.status, 200, "{}", h.text);
    let points = h.body["value"].as_array().unwrap();
    assert_eq!(points.len(), 2);
    assert_eq!(points[0]["score"], json!({"max": 2, "current": 0.0, "percentage": 0.0}));
    assert_eq!(points[1]["score"], json!({"max": 2, "current": 2.0, "percentage": 1.0}));
    let daily = app
        .get(&format!(
            "/securescore/v1/subscriptions/{s}/history?interval=day&from=2020-01-01T00:00:00Z"
        ))
        .await;
    let days = daily.body["value"].as_array().unwrap();
    assert_eq!(days.len(), 1, "only days with a score: {}", daily.text);
    assert_eq!(days[0]["score"]["current"], 2.0);
    let empty = app.get(&format!("/securescore/v1/subscriptions/{s}/history?from=2020-01-01T00:00:00Z&to=2020-02-01T00:00:00Z")).await;
    assert_eq!(empty.body["value"], json!([]));
    let bad = app.get(&format!("/securescore/v1/subscriptions/{s}/history?from=yesterday")).await;
    assert_eq!((bad.status, bad.code()), (400, "BadRequest"));
    let unknown =
        app.get(&format!("/securescore/v1/subscriptions/{}/history", Uuid::new_v4())).await;
    assert_eq!(unknown.code(), "SubscriptionNotFound");
}

#[tokio::test]
async fn aggregate_over_subscriptions_states_its_formula() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let s = sub.to_string();
    app.put(
        &assessment_path(&vm(&s, "rg", "vm"), EP_VMSS, "2021-06-01"),
        &assessment_body("Healthy"),
    )
    .await;
    let r = app.get(&format!("/securescore/v1/aggregate?subscriptions={DEMO},{s}")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // (0.6033 * 67 + 1.0 * 2) / 69
    let expected = ((0.6033 * 67.0 + 2.0) / 69.0 * 10000.0_f64).round() / 10000.0;
    assert_eq!(r.body["percentage"].as_f64().unwrap(), expected);
    assert!(r.body["formula"].as_str().unwrap().contains("weight"));
    assert_eq!(r.body["subscriptions"].as_array().unwrap().len(), 2);
}

/// Random writes across resources, controls and subscriptions leave maintained == recomputed.
fn scored_names() -> Vec<String> {
    // Recommendations of a few controls, including some that belong to several controls.
    let cat = catalog::builtin();
    let mut multi: Vec<String> = cat
        .assessments()
        .iter()
        .filter(|a| a.counts_toward_score() && a.controls.len() > 1)
        .take(3)
        .map(|a| a.name.clone())
        .collect();
    multi.extend(
        cat.assessments()
            .iter()
            .filter(|a| a.counts_toward_score() && a.controls.len() == 1)
            .take(4)
            .map(|a| a.name.clone()),
    );
    multi.push(cat.assessments().iter().find(|a| a.preview == Some(true)).unwrap().name.clone());
    multi
}

#[derive(Debug, Clone)]
enum Op {
    Put { sub: usize, resource: usize, name: usize, status: usize },
    Delete { sub: usize, resource: usize, name: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..2usize, 0..4usize, 0..8usize, 0..3usize).prop_map(|(sub, resource, name, status)| Op::Put { sub, resource, name, status }),
        1 => (0..2usize, 0..4usize, 0..8usize).prop_map(|(sub, resource, name)| Op::Delete { sub, resource, name }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, .. ProptestConfig::default() })]
    #[test]
    fn maintained_state_equals_recomputation(ops in proptest::collection::vec(op(), 1..40), batch in 1..6usize) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let app = spawn_with(Options { demo: false, ..Options::default() }).await;
            let subs = [Uuid::new_v4(), Uuid::new_v4()];
            for s in subs { app.add_subscription(s).await; }
            let names = scored_names();
            let statuses = [Status::Healthy, Status::Unhealthy, Status::NotApplicable];
            let writes: Vec<Write> = ops.iter().map(|op| match *op {
                Op::Put { sub, resource, name, status } => Write::Put(AssessmentInput {
                    resource: ResourceId::parse(&vm(&subs[sub].to_string(), "rg", &format!("vm{resource}"))).unwrap(),
                    name: names[name].clone(),
                    status: statuses[status],
                    cause: None, description: None,
                    resource_details: json!({"source": "Azure"}),
                    additional_data: None, partner_name: None,
                }),
                Op::Delete { sub, resource, name } => Write::Delete {
                    resource: ResourceId::parse(&vm(&subs[sub].to_string(), "rg", &format!("vm{resource}"))).unwrap(),
                    name: names[name].clone(),
                },
            }).collect();
            for chunk in writes.chunks(batch) {
                app.store.apply(chunk).await.unwrap();
            }
            for s in subs {
                let maintained: BTreeMap<_, _> = app.store.maintained_counts(s).await.unwrap();
                let recomputed = app.store.recompute_counts(s).await.unwrap();
                prop_assert_eq!(&maintained, &recomputed);
                // And what the API serves is the maintained state.
                let (controls, _) = app.get_all(&format!("/subscriptions/{s}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01")).await;
                prop_assert_eq!(controls.len(), recomputed.len());
            }
            app.stop().await;
            Ok(())
        })?;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_keep_maintained_equal_to_recomputed() {
    let dir = tempfile::tempdir().unwrap();
    let app = std::sync::Arc::new(spawn_sqlite(dir.path()).await);
    let names = scored_names();
    let mut tasks = Vec::new();
    for w in 0..6 {
        let app = app.clone();
        let names = names.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..25usize {
                let resource = vm(DEMO, "conc", &format!("vm{}", (i * 7 + w) % 5));
                let name = &names[(i + w) % names.len()];
                let path = assessment_path(&resource, name, "2021-06-01");
                let r = if (i + w) % 5 == 0 {
                    app.delete(&path).await
                } else {
                    app.put(
                        &path,
                        &assessment_body(["Healthy", "Unhealthy", "NotApplicable"][(i * w) % 3]),
                    )
                    .await
                };
                assert!(matches!(r.status, 200 | 201 | 204), "{}", r.text);
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let sub = Uuid::parse_str(DEMO).unwrap();
    assert_eq!(
        app.store.maintained_counts(sub).await.unwrap(),
        app.store.recompute_counts(sub).await.unwrap()
    );
}

/// A list page is kept rendered until the next write to its subscription (api::page_memo): the
/// same request answers the same bytes, and after a PUT or a DELETE the write shows at once.
#[tokio::test]
async fn a_kept_list_page_never_outlives_a_write() {
    let app = spawn_app().await;
    let list = format!(
        "/subscriptions/{DEMO}/providers/Microsoft.Security/assessments?api-version=2021-06-01"
    );
    let first = app.get(&list).await;
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(app.get(&list).await.text, first.text, "the same page, the same bytes");
    let count = |r: &Resp| r.body["value"].as_array().map_or(0, Vec::len);
    let resource = vm(DEMO, "memo", "vm1");
    let path = assessment_path(&resource, EP_VMSS, "2021-06-01");
    assert_eq!(app.put(&path, &assessment_body("Unhealthy")).await.status, 201);
    let after_put = app.get(&list).await;
    assert!(
        after_put.text.to_ascii_lowercase().contains("/resourcegroups/memo/"),
        "{}",
        after_put.text
    );
    assert_eq!(count(&after_put), count(&first) + 1, "the new assessment is listed");
    assert_eq!(app.delete(&path).await.status, 200);
    assert_eq!(app.get(&list).await.text, first.text, "back to the first page");
}
