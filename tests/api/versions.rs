//! Assessments and assessment metadata at every api-version clients send (2019-01-01-preview,
//! 2020-01-01, 2021-06-01, 2025-05-04): each answer has exactly its version's model, each request
//! is read with its version's model, compared with that version's official examples.

use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use securescore::catalog;

const P19: &str = "preview/2019-01-01-preview";
const N25: &str = "Security/stable/2025-05-04";
const EP_VMSS: &str = "21300918-b2e3-0346-785f-c77ff57d243b";
const ALL: [&str; 4] = ["2019-01-01-preview", "2020-01-01", "2021-06-01", "2025-05-04"];

/// An official example of another api-version than 2020-01-01 (see the fixtures' PROVENANCE.md).
fn versioned(dir: &str, rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/azure-spec/security/resource-manager/Microsoft.Security")
        .join(dir)
        .join("examples")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The 2019-01-01-preview examples answer `Source`/`Id` where the schema says `source`/`id`.
fn lower_resource_details(mut doc: Value) -> Value {
    if let Some(Value::Object(d)) = doc.pointer_mut("/properties/resourceDetails") {
        *d = std::mem::take(d).into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect();
    }
    doc
}

/// A PUT body carrying what an example answered (read-only fields are ignored by the server).
fn body_of(answer: &Value) -> Value {
    let mut props = answer["properties"].clone();
    let p = props.as_object_mut().unwrap();
    p.remove("displayName");
    p.remove("links");
    json!({ "properties": props })
}

fn catalogue_name(name: &str) -> Value {
    json!(catalog::builtin().assessment(name).unwrap().display_name())
}

fn status_dates(a: &Value) -> [bool; 2] {
    ["statusChangeDate", "firstEvaluationDate"].map(|k| a["properties"]["status"].get(k).is_some())
}

fn metadata_path(sub: &str, name: &str, version: &str) -> String {
    format!("/subscriptions/{sub}/providers/Microsoft.Security/assessmentMetadata/{name}?api-version={version}")
}

/// Custom metadata so that an example's custom assessment key can be written.
async fn custom_metadata(app: &TestApp, sub: &str, name: &str, display_name: &Value) {
    let meta = json!({"properties": {"displayName": display_name, "severity": "Medium", "assessmentType": "CustomerManaged"}});
    let r = app.put(&metadata_path(sub, name, "2020-01-01"), &meta).await;
    assert_eq!(r.status, 200, "{}", r.text);
}

#[tokio::test]
async fn preview_2019_assessments_answer_their_own_model() {
    let app = spawn_app().await;
    let v = "2019-01-01-preview";

    // GET with $expand=links: the example's data in, the example out.
    let doc = versioned(P19, "Assessments/GetAssessmentWithExpand_example.json");
    let want = lower_resource_details(doc["responses"]["200"]["body"].clone());
    let resource = format!("/{}", doc["parameters"]["resourceId"].as_str().unwrap());
    let name = doc["parameters"]["assessmentName"].as_str().unwrap();
    let path = assessment_path(&resource, name, v);
    let r = app.put(&path, &body_of(&want)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let got = app.get(&format!("{path}&$expand=links")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let mut expected = want.clone();
    expected["properties"]["displayName"] = catalogue_name(name);
    // The portal link is ours; the example's host is a feature-flagged portal address.
    let uri = got.body["properties"]["links"]["azurePortalUri"].as_str().unwrap().to_string();
    assert!(uri.ends_with(&format!("assessmentKey/{name}")), "{uri}");
    expected["properties"]["links"]["azurePortalUri"] = json!(uri);
    assert_eq!(got.body, expected, "no status dates, nothing the 2019 model lacks");

    // $expand=metadata is accepted, but the 2019 model has no `metadata`; 2020-01-01 has it.
    let m19 = app.get(&format!("{path}&$expand=metadata")).await;
    assert_eq!(m19.status, 200);
    assert!(m19.body["properties"].get("metadata").is_none(), "{}", m19.text);
    let m20 = app
        .get(&format!("{}&$expand=metadata", assessment_path(&resource, name, "2020-01-01")))
        .await;
    assert_eq!(m20.body["properties"]["metadata"]["assessmentType"], "BuiltIn");
    // The same stored assessment: no status dates at 2019-01-01-preview, dates at 2021-06-01 and
    // 2025-05-04 (2020-01-01's dates are decided apart, with the example of that version).
    for (version, dates) in [(v, false), ("2021-06-01", true), ("2025-05-04", true)] {
        let a = app.get(&assessment_path(&resource, name, version)).await;
        assert_eq!(status_dates(&a.body), [dates; 2], "{version}: {}", a.text);
    }

    // partnersData is not in the 2019 request model: ignored there, checked from 2020-01-01 on.
    let partner = json!({"properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Healthy"}, "partnersData": {"partnerName": "Contoso"}}});
    assert_eq!(app.put(&path, &partner).await.status, 200);
    let r = app.put(&assessment_path(&resource, name, "2020-01-01"), &partner).await;
    assert_eq!(
        (r.status, r.body["error"]["target"].as_str()),
        (400, Some("properties.partnersData.secret"))
    );
    let mut with_secret = partner.clone();
    with_secret["properties"]["partnersData"]["secret"] = json!("s3cret");
    assert_eq!(
        app.put(&assessment_path(&resource, name, "2020-01-01"), &with_secret).await.status,
        200
    );
    let a20 = app.get(&assessment_path(&resource, name, "2020-01-01")).await;
    assert_eq!(a20.body["properties"]["partnersData"], json!({"partnerName": "Contoso"}));
    let a19 = app.get(&path).await;
    assert!(a19.body["properties"].get("partnersData").is_none(), "{}", a19.text);
    assert!(!a19.text.contains("s3cret"));

    // List at subscription scope: the example's two assessments.
    let doc = versioned(P19, "Assessments/ListAssessments_example.json");
    let items: Vec<Value> = doc["responses"]["200"]["body"]["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| lower_resource_details(i.clone()))
        .collect();
    for item in &items {
        let rid = item["properties"]["resourceDetails"]["id"].as_str().unwrap();
        let r =
            app.put(&assessment_path(rid, item["name"].as_str().unwrap(), v), &body_of(item)).await;
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    let scope = doc["parameters"]["scope"].as_str().unwrap();
    let (got, _) = app
        .get_all(&format!("/{scope}/providers/Microsoft.Security/assessments?api-version={v}"))
        .await;
    for want in &items {
        let have =
            got.iter().find(|a| a["id"] == want["id"]).unwrap_or_else(|| panic!("{}", want["id"]));
        let mut expected = want.clone();
        expected["properties"]["displayName"] = catalogue_name(want["name"].as_str().unwrap());
        assert_eq!(have, &expected);
    }

    // PUT: the example's custom key needs its metadata first. The example answers with another
    // resource (vmss1) than it writes (vmss2): compare with the resource written.
    let doc = versioned(P19, "Assessments/PutAssessment_example.json");
    let name = doc["parameters"]["assessmentName"].as_str().unwrap();
    let want = &doc["responses"]["201"]["body"];
    custom_metadata(&app, DEMO, name, &want["properties"]["displayName"]).await;
    let resource = format!("/{}", doc["parameters"]["resourceId"].as_str().unwrap());
    let path = assessment_path(&resource, name, v);
    let created = app.put(&path, &doc["parameters"]["assessment"]).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let expected = json!({
        "id": format!("{resource}/providers/Microsoft.Security/assessments/{name}"),
        "name": want["name"],
        "type": want["type"],
        "properties": {
            "resourceDetails": {"source": "Azure", "id": resource},
            "displayName": want["properties"]["displayName"],
            "status": want["properties"]["status"],
        },
    });
    assert_eq!(created.body, expected);
    let replaced = app.put(&path, &doc["parameters"]["assessment"]).await;
    assert_eq!((replaced.status, &replaced.body), (200, &expected));

    // DELETE: 200 as the example, then nothing left.
    let doc = versioned(P19, "Assessments/DeleteAssessment_example.json");
    assert!(doc["responses"]["200"].is_object());
    assert_eq!(app.delete(&path).await.status, 200);
    assert_eq!(app.delete(&path).await.status, 204);
    assert_eq!(app.get(&path).await.status, 404);
}

#[tokio::test]
async fn v2025_assessments_answer_their_own_model() {
    let app = spawn_app().await;
    let v = "2025-05-04";

    // GET: the example's data in (its `risk` is a valid 2025-05-04 request field), read back.
    let doc = versioned(N25, "Assessments/GetAssessment_example.json");
    let want = &doc["responses"]["200"]["body"];
    let resource = format!("/{}", doc["parameters"]["resourceId"].as_str().unwrap());
    let name = doc["parameters"]["assessmentName"].as_str().unwrap();
    let path = assessment_path(&resource, name, v);
    let r = app.put(&path, &body_of(want)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let mut got = app.get(&path).await.body;
    assert_eq!(status_dates(&got), [true, true], "2025-05-04 has the status dates");
    for k in ["statusChangeDate", "firstEvaluationDate"] {
        got["properties"]["status"].as_object_mut().unwrap().remove(k);
    }
    let mut expected = want.clone();
    expected["properties"]["displayName"] = catalogue_name(name);
    // The server computes no risk, so it answers none (documented in docs/ARM.md).
    expected["properties"].as_object_mut().unwrap().remove("risk");
    assert_eq!(got, expected);
    let m = app.get(&format!("{path}&$expand=metadata")).await;
    assert_eq!(m.body["properties"]["metadata"]["assessmentType"], "BuiltIn", "{}", m.text);

    // `risk` is read with the 2025-05-04 schema; older versions have no such field.
    let mut bad = body_of(want);
    bad["properties"]["risk"]["level"] = json!("Extreme");
    let r = app.put(&path, &bad).await;
    assert_eq!(
        (r.status, r.body["error"]["target"].as_str()),
        (400, Some("properties.risk.level"))
    );
    bad["properties"]["risk"]["level"] = json!("High");
    bad["properties"]["risk"]["paths"][0]["edges"] = json!([{"id": "e1", "sourceId": "a"}]);
    let r = app.put(&path, &bad).await;
    assert_eq!(
        (r.status, r.body["error"]["target"].as_str()),
        (400, Some("properties.risk.paths[0].edges[0].targetId"))
    );
    assert_eq!(app.put(&assessment_path(&resource, name, "2021-06-01"), &bad).await.status, 200);

    // List at subscription scope.
    let doc = versioned(N25, "Assessments/ListAssessments_example.json");
    let items = doc["responses"]["200"]["body"]["value"].as_array().unwrap();
    for item in items {
        let rid = item["properties"]["resourceDetails"]["id"].as_str().unwrap();
        let r =
            app.put(&assessment_path(rid, item["name"].as_str().unwrap(), v), &body_of(item)).await;
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    let scope = doc["parameters"]["scope"].as_str().unwrap();
    let (got, _) = app
        .get_all(&format!("/{scope}/providers/Microsoft.Security/assessments?api-version={v}"))
        .await;
    for want in items {
        let mut have = got.iter().find(|a| a["id"] == want["id"]).unwrap().clone();
        assert_eq!(status_dates(&have), [true, true]);
        for k in ["statusChangeDate", "firstEvaluationDate"] {
            have["properties"]["status"].as_object_mut().unwrap().remove(k);
        }
        let mut expected = want.clone();
        expected["properties"]["displayName"] = catalogue_name(want["name"].as_str().unwrap());
        assert_eq!(have, expected);
    }

    // PUT of a custom key: the example's 201 and 200 answers (plus the status dates).
    let doc = versioned(N25, "Assessments/PutAssessment_example.json");
    let name = doc["parameters"]["assessmentName"].as_str().unwrap();
    custom_metadata(
        &app,
        DEMO,
        name,
        &doc["responses"]["201"]["body"]["properties"]["displayName"],
    )
    .await;
    let resource = format!("/{}", doc["parameters"]["resourceId"].as_str().unwrap());
    let path = assessment_path(&resource, name, v);
    for status in [201, 200] {
        let r = app.put(&path, &doc["parameters"]["assessment"]).await;
        assert_eq!(r.status, status, "{}", r.text);
        let mut got = r.body.clone();
        assert_eq!(status_dates(&got), [true, true]);
        for k in ["statusChangeDate", "firstEvaluationDate"] {
            got["properties"]["status"].as_object_mut().unwrap().remove(k);
        }
        assert_eq!(got, doc["responses"][status.to_string()]["body"]);
    }

    // DELETE.
    let doc = versioned(N25, "Assessments/DeleteAssessment_example.json");
    assert!(doc["responses"]["200"].is_object() && doc["responses"]["204"].is_object());
    assert_eq!(app.delete(&path).await.status, 200);
    assert_eq!(app.delete(&path).await.status, 204);
}

#[tokio::test]
async fn metadata_answers_each_version_its_model() {
    let app = spawn_with(Options { page_size: 1000, ..Options::default() }).await;

    // Built-in metadata at 2019-01-01-preview and 2025-05-04, against their examples.
    for (dir, version) in [(P19, "2019-01-01-preview"), (N25, "2025-05-04")] {
        let doc = versioned(dir, "AssessmentsMetadata/GetAssessmentsMetadata_example.json");
        let want = &doc["responses"]["200"]["body"];
        let r = app
            .get(&format!(
                "/providers/Microsoft.Security/assessmentMetadata/{EP_VMSS}?api-version={version}"
            ))
            .await;
        assert_eq!(r.status, 200, "{version}: {}", r.text);
        for k in ["id", "name", "type"] {
            assert_eq!(r.body[k], want[k], "{version} {k}");
        }
        let (have, want) = (&r.body["properties"], &want["properties"]);
        for k in ["policyDefinitionId", "assessmentType"] {
            assert_eq!(have[k], want[k], "{version} {k}");
        }
        if version == "2019-01-01-preview" {
            let model = [
                "displayName",
                "policyDefinitionId",
                "description",
                "remediationDescription",
                "categories",
                "severity",
                "userImpact",
                "implementationEffort",
                "threats",
                "preview",
                "assessmentType",
            ];
            let keys = have.as_object().unwrap().keys();
            assert!(keys.clone().all(|k| model.contains(&k.as_str())), "{keys:?}");
        }
        // The catalogue follows newer evidence than the example on the severity.
        assert!(want["severity"].is_string() && have["severity"].is_string(), "{version}");
        // The 2019 example writes `category`; its schema (and the server) `categories`.
        let categories = want.get("categories").unwrap_or(&want["category"]);
        assert_eq!(&have["categories"], categories, "{version}");
        let (all, _) = app
            .get_all(&format!(
                "/providers/Microsoft.Security/assessmentMetadata?api-version={version}"
            ))
            .await;
        assert_eq!(all.len(), catalog::builtin().assessments().len());
    }

    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let sub = sub.to_string();

    // Custom metadata at 2019-01-01-preview: the official create example (`category` in it).
    let doc =
        versioned(P19, "AssessmentsMetadata/CreateAssessmentsMetadata_subscription_example.json");
    let name = doc["parameters"]["assessmentMetadataName"].as_str().unwrap();
    let request = &doc["parameters"]["assessmentMetadata"]["properties"];
    let r = app
        .put(
            &metadata_path(&sub, name, "2019-01-01-preview"),
            &doc["parameters"]["assessmentMetadata"],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["id"], doc["responses"]["200"]["body"]["id"]);
    assert_eq!(r.body["properties"]["categories"], request["category"]);
    for k in [
        "displayName",
        "description",
        "severity",
        "userImpact",
        "implementationEffort",
        "threats",
        "assessmentType",
    ] {
        assert_eq!(r.body["properties"][k], request[k], "{k}");
    }
    assert!(
        r.body["properties"].get("policyDefinitionId").is_none(),
        "read-only, not taken from a request"
    );

    // Custom metadata at 2025-05-04: the official create example answers exactly.
    let doc =
        versioned(N25, "AssessmentsMetadata/CreateAssessmentsMetadata_subscription_example.json");
    let name = doc["parameters"]["assessmentMetadataName"].as_str().unwrap();
    let path = metadata_path(&sub, name, "2025-05-04");
    let r = app.put(&path, &doc["parameters"]["assessmentMetadata"]).await;
    assert_eq!((r.status, &r.body), (200, &doc["responses"]["200"]["body"]), "{}", r.text);
    assert_eq!(app.get(&path).await.body, doc["responses"]["200"]["body"]);

    // The subscription list at 2025-05-04 has the built-ins and the custom one.
    let doc =
        versioned(N25, "AssessmentsMetadata/ListAssessmentsMetadata_subscription_example.json");
    let (all, _) = app
        .get_all(&format!("/subscriptions/{sub}/providers/Microsoft.Security/assessmentMetadata?api-version=2025-05-04"))
        .await;
    assert_eq!(all.len(), catalog::builtin().assessments().len() + 1);
    let first = &doc["responses"]["200"]["body"]["value"][0];
    let have = all.iter().find(|m| m["id"] == first["id"]).unwrap();
    assert_eq!((&have["name"], &have["type"]), (&first["name"], &first["type"]));
    assert!(all.iter().any(|m| m["name"] == name));

    // What 2025-05-04 (and 2021-06-01) add to custom metadata; older versions do not show it.
    let name = "0b4fd4cb-5a3f-4a1e-9d7e-3c2a1f6b8e11";
    let newer = json!({"properties": {
        "displayName": "Critical custom check", "severity": "Critical", "assessmentType": "CustomerManaged",
        "categories": ["Container", "AppServices"],
        "publishDates": {"GA": "06/01/2021", "public": "06/01/2021"},
        "plannedDeprecationDate": "03/2027",
        "tactics": ["credentialAccess", "Defense Evasion"],
        "techniques": ["Brute Force"],
    }});
    let r = app.put(&metadata_path(&sub, name, "2025-05-04"), &newer).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["properties"]["tactics"], json!(["Credential Access", "Defense Evasion"]));
    assert_eq!(
        r.body["properties"]["publishDates"],
        json!({"GA": "06/01/2021", "public": "06/01/2021"})
    );
    let extras = ["publishDates", "plannedDeprecationDate", "tactics", "techniques"];
    for version in ALL {
        let got = app.get(&metadata_path(&sub, name, version)).await;
        assert_eq!(got.status, 200, "{version}");
        let p = &got.body["properties"];
        let shown = version >= "2021-06-01";
        for k in extras {
            assert_eq!(p.get(k).is_some(), shown, "{version} {k}: {}", got.text);
        }
        assert_eq!(p["severity"], "Critical", "{version}: values are shown as stored");
    }
    // 2021-06-01 has the extras but not the wider enums.
    let r = app.put(&metadata_path(&sub, name, "2021-06-01"), &newer).await;
    assert_eq!(
        (r.status, r.body["error"]["target"].as_str()),
        (400, Some("properties.categories"))
    );
    let mut critical = newer.clone();
    critical["properties"]["categories"] = json!(["Compute"]);
    let r = app.put(&metadata_path(&sub, name, "2021-06-01"), &critical).await;
    assert_eq!((r.status, r.body["error"]["target"].as_str()), (400, Some("properties.severity")));
    // Bad extras are refused where the model has them, ignored where it does not.
    for (field, value, target) in [
        (
            "publishDates",
            json!({"GA": "2021-06-01", "public": "06/01/2021"}),
            "properties.publishDates.GA",
        ),
        ("publishDates", json!({"GA": "06/01/2021"}), "properties.publishDates.public"),
        ("plannedDeprecationDate", json!("2027-03"), "properties.plannedDeprecationDate"),
        ("tactics", json!(["Sneaking"]), "properties.tactics"),
        ("techniques", json!([7]), "properties.techniques"),
    ] {
        let mut body = critical.clone();
        body["properties"]["severity"] = json!("High");
        body["properties"][field] = value;
        let r = app.put(&metadata_path(&sub, name, "2025-05-04"), &body).await;
        assert_eq!((r.status, r.body["error"]["target"].as_str()), (400, Some(target)), "{field}");
        let r = app.put(&metadata_path(&sub, name, "2020-01-01"), &body).await;
        assert_eq!(r.status, 200, "{field} is not in the 2020-01-01 model: {}", r.text);
        assert!(r.body["properties"].get(field).is_none());
    }
}

#[tokio::test]
async fn unknown_versions_name_the_four_supported_ones() {
    let app = spawn_app().await;
    for path in [
        format!("/subscriptions/{DEMO}/providers/Microsoft.Security/assessments"),
        "/providers/Microsoft.Security/assessmentMetadata".to_string(),
        format!("/subscriptions/{DEMO}/providers/Microsoft.Security/assessmentMetadata/{EP_VMSS}"),
    ] {
        for version in ["2019-01-01", "2025-05-01", "2024-01-01-preview"] {
            let r = app.get(&format!("{path}?api-version={version}")).await;
            assert_eq!(
                (r.status, r.body["error"]["code"].as_str()),
                (400, Some("InvalidResourceType"))
            );
            let message = r.body["error"]["message"].as_str().unwrap();
            assert!(message.contains(&format!("'{version}'")), "{message}");
            assert!(
                message.contains("'2025-05-04,2021-06-01,2020-01-01,2019-01-01-preview'"),
                "{message}"
            );
        }
        for version in ALL {
            let r = app.get(&format!("{path}?api-version={version}")).await;
            assert_eq!(r.status, 200, "{path} {version}: {}", r.text);
        }
    }
}

/// An answer without the status dates (their values are the server's clock), for comparisons.
fn without_status_dates(mut doc: Value) -> Value {
    if let Some(status) = doc.pointer_mut("/properties/status").and_then(Value::as_object_mut) {
        status.remove("statusChangeDate");
        status.remove("firstEvaluationDate");
    }
    doc
}

/// The official examples the tests above do not compare field by field, replayed at their own
/// api-version: the metadata examples of every version (built-in list, subscription get, delete)
/// and the assessments examples of 2021-06-01. The request an example makes gets the status it
/// shows, and the answer is the example's (the server's clock and catalogue aside).
#[tokio::test]
async fn the_remaining_official_examples_replay() {
    let app = spawn_with(Options { page_size: 1000, ..Options::default() }).await;
    let base = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/azure-spec/security/resource-manager/Microsoft.Security");
    for (dir, v) in
        [(P19, "2019-01-01-preview"), ("stable/2021-06-01", "2021-06-01"), (N25, "2025-05-04")]
    {
        // The built-in list holds the example's built-in resources. (The example also lists a
        // custom key and marks a built-in `CustomPolicy`; it is illustrative, the catalogue's
        // provenance says why its values are not taken.)
        let doc = versioned(dir, "AssessmentsMetadata/ListAssessmentsMetadata_example.json");
        let (all, _) = app
            .get_all(&format!("/providers/Microsoft.Security/assessmentMetadata?api-version={v}"))
            .await;
        let listed = doc["responses"]["200"]["body"]["value"].as_array().unwrap();
        let builtin = listed.iter().filter(|m| m["properties"]["assessmentType"] == "BuiltIn");
        for want in builtin {
            let have = all
                .iter()
                .find(|m| m["id"] == want["id"])
                .unwrap_or_else(|| panic!("{v}: {}", want["id"]));
            assert_eq!((&have["name"], &have["type"]), (&want["name"], &want["type"]), "{v}");
            // The display name is the catalogue's newest (the examples carry an older one).
            assert!(have["properties"]["displayName"].is_string(), "{v}");
        }

        // A built-in read through a subscription: the same resource as at tenant level.
        let doc =
            versioned(dir, "AssessmentsMetadata/GetAssessmentsMetadata_subscription_example.json");
        let sub: Uuid = doc["parameters"]["subscriptionId"].as_str().unwrap().parse().unwrap();
        app.add_subscription(sub).await;
        let name = doc["parameters"]["assessmentMetadataName"].as_str().unwrap();
        let r = app.get(&metadata_path(&sub.to_string(), name, v)).await;
        let want = &doc["responses"]["200"]["body"];
        assert_eq!(r.status, 200, "{v}: {}", r.text);
        for k in ["id", "name", "type"] {
            assert_eq!(r.body[k], want[k], "{v} {k}");
        }
        assert_eq!(
            r.body["properties"]["policyDefinitionId"], want["properties"]["policyDefinitionId"],
            "{v}"
        );

        // Delete of custom metadata: 200, and 200 again (the spec lists no 204 here), then gone.
        // 2019-01-01-preview's delete example is not published; the operation is the same.
        let delete = base.join(dir).join(
            "examples/AssessmentsMetadata/DeleteAssessmentsMetadata_subscription_example.json",
        );
        let name = if delete.exists() {
            let doc = versioned(
                dir,
                "AssessmentsMetadata/DeleteAssessmentsMetadata_subscription_example.json",
            );
            assert!(doc["responses"]["200"].is_object(), "{v}");
            doc["parameters"]["assessmentMetadataName"].as_str().unwrap().to_string()
        } else {
            "ca039e75-a276-4175-aebc-bcd41e4b14b7".to_string()
        };
        let path = metadata_path(&sub.to_string(), &name, v);
        custom_metadata(&app, &sub.to_string(), &name, &json!("To be deleted")).await;
        assert_eq!(app.delete(&path).await.status, 200, "{v}");
        assert_eq!(app.delete(&path).await.status, 200, "{v}");
        assert_eq!(app.get(&path).await.status, 404, "{v}");
    }

    // 2021-06-01 assessments: GET (the example's data in, the example out), with $expand=links,
    // the list, PUT (201, then 200) and DELETE (200, then 204).
    let v = "2021-06-01";
    let dir = "stable/2021-06-01";
    let doc = versioned(dir, "Assessments/GetAssessment_example.json");
    let want = &doc["responses"]["200"]["body"];
    let resource = format!("/{}", doc["parameters"]["resourceId"].as_str().unwrap());
    let name = doc["parameters"]["assessmentName"].as_str().unwrap();
    let path = assessment_path(&resource, name, v);
    let r = app.put(&path, &body_of(want)).await;
    assert_eq!(r.status, 201, "{}", r.text);
    let got = app.get(&path).await.body;
    assert_eq!(status_dates(&got), [true, true], "2021-06-01 has the status dates");
    let mut expected = without_status_dates(want.clone());
    expected["properties"]["displayName"] = catalogue_name(name);
    assert_eq!(without_status_dates(got), expected);

    let doc = versioned(dir, "Assessments/GetAssessmentWithExpand_example.json");
    let want = &doc["responses"]["200"]["body"];
    let got = app.get(&format!("{path}&$expand=links")).await.body;
    let link_keys = |doc: &Value| {
        doc["properties"]["links"].as_object().map(|l| l.keys().cloned().collect::<Vec<_>>())
    };
    assert_eq!(link_keys(&got), link_keys(want), "{got}");
    for k in ["id", "name", "type"] {
        assert_eq!(got[k], want[k], "{k}");
    }
    assert_eq!(got["properties"]["status"]["code"], want["properties"]["status"]["code"]);

    let doc = versioned(dir, "Assessments/ListAssessments_example.json");
    let items = doc["responses"]["200"]["body"]["value"].as_array().unwrap();
    for item in items {
        let rid = item["properties"]["resourceDetails"]["id"].as_str().unwrap();
        let r =
            app.put(&assessment_path(rid, item["name"].as_str().unwrap(), v), &body_of(item)).await;
        assert!(r.status == 200 || r.status == 201, "{}", r.text);
    }
    let scope = doc["parameters"]["scope"].as_str().unwrap();
    let (got, _) = app
        .get_all(&format!("/{scope}/providers/Microsoft.Security/assessments?api-version={v}"))
        .await;
    for want in items {
        let have = got.iter().find(|a| a["id"] == want["id"]).unwrap();
        let mut expected = without_status_dates(want.clone());
        expected["properties"]["displayName"] = catalogue_name(want["name"].as_str().unwrap());
        assert_eq!(without_status_dates(have.clone()), expected);
    }

    // The example's PUT answers name vmss1 while its request names vmss2 (an upstream slip): the
    // server answers for the resource it was asked about, so the id is compared apart.
    let doc = versioned(dir, "Assessments/PutAssessment_example.json");
    let name = doc["parameters"]["assessmentName"].as_str().unwrap();
    custom_metadata(
        &app,
        DEMO,
        name,
        &doc["responses"]["201"]["body"]["properties"]["displayName"],
    )
    .await;
    let resource = format!("/{}", doc["parameters"]["resourceId"].as_str().unwrap());
    let path = assessment_path(&resource, name, v);
    for status in [201, 200] {
        let r = app.put(&path, &doc["parameters"]["assessment"]).await;
        assert_eq!(r.status, status, "{}", r.text);
        let want = &doc["responses"][status.to_string()]["body"];
        let mut got = without_status_dates(r.body.clone());
        assert!(got["id"].as_str().unwrap().eq_ignore_ascii_case(&format!(
            "{resource}/providers/Microsoft.Security/assessments/{name}"
        )));
        got["id"] = want["id"].clone();
        let mut want = without_status_dates(want.clone());
        want["properties"]["resourceDetails"] = got["properties"]["resourceDetails"].clone();
        assert_eq!(got, want);
    }
    let doc = versioned(dir, "Assessments/DeleteAssessment_example.json");
    assert!(doc["responses"]["200"].is_object() && doc["responses"]["204"].is_object());
    assert_eq!(app.delete(&path).await.status, 200);
    assert_eq!(app.delete(&path).await.status, 204);
}
