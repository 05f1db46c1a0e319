//! ARM's finer points a real Azure client notices: the provider's operations list, canonical
//! assessment ids, the status dates at every version that has them, the budget header of
//! tenant-level reads, `$expand` with nothing in it, and definition descriptions within the
//! spec's limit.

use serde_json::Value;
use std::collections::BTreeSet;

use super::*;

const OPERATIONS: &str = "/providers/Microsoft.Security/operations";
const EP_VMSS: &str = "21300918-b2e3-0346-785f-c77ff57d243b"; // built-in, control "Enable endpoint protection"

/// What this server serves of Microsoft.Security, as RBAC names it.
const SERVED: [&str; 17] = [
    "Microsoft.Security/secureScores/read",
    "Microsoft.Security/secureScores/secureScoreControls/read",
    "Microsoft.Security/secureScoreControls/read",
    "Microsoft.Security/secureScoreControlDefinitions/read",
    "Microsoft.Security/assessments/read",
    "Microsoft.Security/assessments/write",
    "Microsoft.Security/assessments/delete",
    "Microsoft.Security/assessmentMetadata/read",
    "Microsoft.Security/assessmentMetadata/write",
    "Microsoft.Security/assessmentMetadata/delete",
    "Microsoft.Security/assessments/subAssessments/read",
    "Microsoft.Security/assessments/subAssessments/write",
    "Microsoft.Security/assessments/subAssessments/delete",
    "Microsoft.Security/automations/read",
    "Microsoft.Security/automations/write",
    "Microsoft.Security/automations/delete",
    "Microsoft.Security/operations/read",
];

fn names(items: &[Value]) -> BTreeSet<String> {
    items
        .iter()
        .map(|o| o["name"].as_str().expect("every operation has a name").to_string())
        .collect()
}

#[tokio::test]
async fn the_operations_list_names_exactly_what_is_served_at_every_version_clients_send() {
    let app = spawn_app().await;
    let want: BTreeSet<String> = SERVED.iter().map(|s| s.to_string()).collect();
    // 2015-06-01-preview is what the Python SDK's `operations.list()` sends; the others are the
    // spec's later versions, whose model (ARM's common Operation) adds `isDataAction`.
    for (version, data_action) in [
        ("2015-06-01-preview", None),
        ("2024-10-01-preview", Some(false)),
        ("2025-10-01-preview", Some(false)),
    ] {
        let r = app.get(&format!("{OPERATIONS}?api-version={version}")).await;
        assert_eq!(r.status, 200, "{version}: {}", r.text);
        let items = r.body["value"].as_array().expect("a value array");
        assert_eq!(names(items), want, "{version}");
        assert_eq!(items.len(), SERVED.len(), "{version}: no duplicates");
        for op in items {
            let display = &op["display"];
            assert_eq!(display["provider"], "Microsoft Security", "{op}");
            for field in ["resource", "operation", "description"] {
                assert!(display[field].as_str().is_some_and(|s| !s.is_empty()), "{field}: {op}");
            }
            assert_eq!(op["origin"], "user,system", "{op}");
            assert_eq!(
                op.get("isDataAction").and_then(Value::as_bool),
                data_action,
                "{version}: {op}"
            );
        }
    }
    // Any casing of the path and the version, a trailing slash: the same list.
    let r =
        app.get("/PROVIDERS/microsoft.security/Operations/?api-version=2015-06-01-PREVIEW").await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(names(r.body["value"].as_array().unwrap()), want);

    // Other versions are refused as ARM refuses them, naming the ones that work.
    let r = app.get(&format!("{OPERATIONS}?api-version=2020-01-01")).await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceType"), "{}", r.text);
    assert!(r.message().contains("2015-06-01-preview"), "{}", r.message());
    let r = app.get(OPERATIONS).await;
    assert_eq!((r.status, r.code()), (400, "MissingApiVersionParameter"));
    // A list is read-only.
    let r = app
        .request(
            Method::PUT,
            &format!("{OPERATIONS}?api-version=2015-06-01-preview"),
            Some("{}".into()),
            &[],
        )
        .await;
    assert_eq!(r.status, 405);
}

#[tokio::test]
async fn the_operations_list_is_paged_like_every_list() {
    let app = spawn_with(Options { page_size: 4, ..Options::default() }).await;
    let (items, pages) = app.get_all(&format!("{OPERATIONS}?api-version=2024-10-01-preview")).await;
    assert_eq!(pages, SERVED.len().div_ceil(4), "{} operations, 4 a page", SERVED.len());
    assert_eq!(names(&items).len(), SERVED.len(), "every operation once over the pages");
    let first = app.get(&format!("{OPERATIONS}?api-version=2024-10-01-preview")).await;
    let next = first.body["nextLink"].as_str().expect("a nextLink");
    assert!(
        next.starts_with(&app.base) && next.contains("api-version=2024-10-01-preview"),
        "{next}"
    );
    // A token that is not one of ours is the client's mistake.
    let r =
        app.get(&format!("{OPERATIONS}?api-version=2024-10-01-preview&$skipToken=%FF%FE")).await;
    assert_eq!((r.status, r.code()), (400, "BadRequest"), "{}", r.text);
    // HEAD answers as GET does, without the body.
    let head = app
        .request(Method::HEAD, &format!("{OPERATIONS}?api-version=2015-06-01-preview"), None, &[])
        .await;
    assert_eq!((head.status, head.text.as_str()), (200, ""));
}

/// A resource the tests write assessments for.
fn vm(sub: &str, rg: &str, name: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{name}")
}

#[tokio::test]
async fn assessment_ids_use_arms_keywords_a_lower_case_guid_and_key_whatever_the_caller_wrote() {
    let app = spawn_app().await;
    let shouted = format!(
        "/SUBSCRIPTIONS/{}/RESOURCEGROUPS/MyRg/PROVIDERS/Microsoft.Compute/virtualMachines/Vm1",
        DEMO.to_ascii_uppercase()
    );
    let canonical = vm(DEMO, "MyRg", "Vm1");
    let want_id = format!("{canonical}/providers/Microsoft.Security/assessments/{EP_VMSS}");
    let created = app
        .put(
            &assessment_path(&shouted, &EP_VMSS.to_ascii_uppercase(), "2021-06-01"),
            &assessment_body("Unhealthy"),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    assert_eq!(created.body["id"], want_id.as_str());
    assert_eq!(created.body["name"], EP_VMSS);
    assert_eq!(created.body["properties"]["resourceDetails"]["id"], canonical.as_str());
    // The key in capitals is still the built-in recommendation.
    let builtin = securescore::catalog::builtin().assessment(EP_VMSS).expect("a built-in key");
    assert_eq!(created.body["properties"]["displayName"], builtin.display_name().as_str());

    // A later writer with ARM's spelling and other name casing finds the same assessment; the
    // names keep the casing they were created with.
    let again = app
        .put(
            &assessment_path(&vm(DEMO, "myrg", "vm1"), EP_VMSS, "2020-01-01"),
            &assessment_body("Healthy"),
        )
        .await;
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["id"], want_id.as_str());

    // Reads at every scope answer the canonical id.
    for path in [
        assessment_path(&shouted, EP_VMSS, "2021-06-01"),
        assessment_path(&canonical, &EP_VMSS.to_ascii_uppercase(), "2020-01-01"),
    ] {
        let got = app.get(&path).await;
        assert_eq!((got.status, &got.body["id"]), (200, &Value::from(want_id.as_str())), "{path}");
    }
    let list = app
        .get(&format!(
            "/subscriptions/{}/resourceGroups/MYRG/providers/Microsoft.Security/assessments?api-version=2021-06-01",
            DEMO.to_ascii_uppercase()
        ))
        .await;
    assert_eq!(list.status, 200, "{}", list.text);
    let ids: Vec<&str> =
        list.body["value"].as_array().unwrap().iter().filter_map(|a| a["id"].as_str()).collect();
    assert_eq!(ids, vec![want_id.as_str()]);
}

#[tokio::test]
async fn status_dates_are_answered_at_2020_01_01_as_in_its_official_example() {
    let app = spawn_app().await;
    let resource = vm(DEMO, "rg", "dated");
    let path = assessment_path(&resource, EP_VMSS, "2020-01-01");
    assert_eq!(app.put(&path, &assessment_body("Unhealthy")).await.status, 201);
    let got = app.get(&format!("{path}&$expand=links")).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let doc = example("Assessments/GetAssessmentWithExpand_example.json");
    let keys = |status: &Value| -> BTreeSet<String> {
        status.as_object().unwrap().keys().filter(|k| k.ends_with("Date")).cloned().collect()
    };
    let want = keys(&doc["responses"]["200"]["body"]["properties"]["status"]);
    assert_eq!(want.len(), 2, "the example carries both dates");
    assert_eq!(keys(&got.body["properties"]["status"]), want);
    for k in &want {
        let date = got.body["properties"]["status"][k].as_str().unwrap();
        assert!(date.ends_with('Z') && date.contains('T'), "{k}: {date}");
    }
    // The same dates at 2021-06-01.
    let newer = app.get(&assessment_path(&resource, EP_VMSS, "2021-06-01")).await;
    for k in &want {
        assert_eq!(newer.body["properties"]["status"][k], got.body["properties"]["status"][k]);
    }
}

#[tokio::test]
async fn tenant_level_reads_report_the_tenant_budget_and_subscription_reads_theirs() {
    use securescore::arm::throttle::{Budget, ThrottleConfig};
    let app = spawn_with(Options {
        throttle: Some(ThrottleConfig {
            reads: Budget { bucket: 50.0, per_second: 0.1 },
            writes: Budget { bucket: 50.0, per_second: 0.1 },
        }),
        ..Options::default()
    })
    .await;
    for path in [
        format!("{OPERATIONS}?api-version=2015-06-01-preview"),
        "/providers/Microsoft.Security/secureScoreControlDefinitions?api-version=2020-01-01"
            .to_string(),
        "/providers/Microsoft.Security/assessmentMetadata?api-version=2021-06-01".to_string(),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status, 200, "{path}: {}", r.text);
        assert!(r.header("x-ms-ratelimit-remaining-tenant-reads").is_some(), "{path}");
        assert!(r.header("x-ms-ratelimit-remaining-subscription-reads").is_none(), "{path}");
    }
    let r = app.get(&score_path(DEMO)).await;
    assert_eq!(r.status, 200);
    assert!(r.header("x-ms-ratelimit-remaining-subscription-reads").is_some());
    assert!(r.header("x-ms-ratelimit-remaining-tenant-reads").is_none());
}

#[tokio::test]
async fn an_empty_expand_is_a_400_naming_the_parameter() {
    let app = spawn_app().await;
    let resource = vm(DEMO, "rg", "expand");
    let one = assessment_path(&resource, EP_VMSS, "2021-06-01");
    assert_eq!(app.put(&one, &assessment_body("Healthy")).await.status, 201);
    let list =
        format!("{resource}/providers/Microsoft.Security/assessments?api-version=2021-06-01");
    let controls = format!(
        "/subscriptions/{DEMO}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01"
    );
    for path in [&one, &list, &controls] {
        for empty in ["$expand=", "$expand=%20", "%24EXPAND="] {
            let r = app.get(&format!("{path}&{empty}")).await;
            assert_eq!((r.status, r.code()), (400, "BadRequest"), "{path}&{empty}: {}", r.text);
            assert_eq!(r.body["error"]["target"], "$expand");
        }
        // Without the parameter, the same request is fine.
        assert_eq!(app.get(path).await.status, 200, "{path}");
    }
}

#[tokio::test]
async fn control_definition_descriptions_fit_the_specs_limit() {
    let app = spawn_app().await;
    let (defs, _) = app
        .get_all(
            "/providers/Microsoft.Security/secureScoreControlDefinitions?api-version=2020-01-01",
        )
        .await;
    assert_eq!(defs.len(), 16);
    for d in &defs {
        if let Some(text) = d["properties"]["description"].as_str() {
            assert!(
                text.chars().count() <= 256,
                "{}: {} characters",
                d["name"],
                text.chars().count()
            );
            assert!(!text.trim().is_empty());
        }
    }
    // The two that were too long still say what they are about.
    for (name, about) in [
        ("12136bd9-dc24-44f2-9587-7be3af6aac14", "endpoint detection and response"),
        ("61702b76-1fab-41f2-bcbc-50b7870dcf38", "unpatched vulnerabilities"),
    ] {
        let d = defs.iter().find(|d| d["name"] == name).expect("a built-in control");
        assert!(d["properties"]["description"].as_str().unwrap().contains(about), "{d}");
    }
}
