//! Continuous export: `Microsoft.Security/automations` as both spec versions' examples show it,
//! validation, RBAC, and delivery to a real webhook on 127.0.0.1 (receiver up, down, back; server
//! restarts; rule sets; event ids; order per resource; export files; snapshots; metrics).

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use uuid::Uuid;

use super::*;
use securescore::automation::ExportConfig;
use securescore::store::AutomationRecord;

const V19: &str = "2019-01-01-preview";
const V23: &str = "2023-12-01-preview";

fn automation_example(version: &str, file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/azure-spec/security/resource-manager/Microsoft.Security/preview")
        .join(version)
        .join("examples/Automations")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn automation_path(sub: &str, group: &str, name: &str, version: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Security/automations/{name}?api-version={version}")
}

/// An answer made comparable with an example's: the etag is the server's own, the 201 examples
/// spell the type `SecurityAutomations`, and the 2019 disable example adds an undocumented
/// `properties.metadata`.
fn comparable(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("etag");
        if let Some(Value::String(t)) = o.get_mut("type") {
            *t = t.replace("SecurityAutomations", "automations");
        }
        if let Some(Value::String(id)) = o.get_mut("id") {
            *id = id.replace("/SecurityAutomations/", "/automations/");
        }
        if let Some(p) = o.get_mut("properties").and_then(Value::as_object_mut) {
            p.remove("metadata");
        }
    }
    v
}

fn move_scopes(v: &mut Value, from: &str, to: &str) {
    *v = serde_json::from_str(&v.to_string().replace(from, to)).unwrap();
}

/// The example's request parameters: (subscription, group, name, body).
fn params(ex: &Value) -> (String, String, String, Value) {
    let p = &ex["parameters"];
    (
        p["subscriptionId"].as_str().unwrap().to_string(),
        p["resourceGroupName"].as_str().unwrap().to_string(),
        p["automationName"].as_str().unwrap_or_default().to_string(),
        p["Automation"].clone(),
    )
}

#[tokio::test]
async fn every_put_example_of_both_versions_is_answered_as_documented() {
    let app = spawn_app().await;
    let cases = [
        (V19, "PutAutomationAllAssessments_example.json"),
        (V19, "PutAutomationHighSeverityAssessments_example.json"),
        (V19, "PutAutomation_example.json"),
        (V19, "PutDisableAutomation_example.json"),
        (V23, "PutAutomationAllAssessments_example.json"),
        (V23, "PutAutomationHighSeverityAssessments_example.json"),
        (V23, "PutDisableAutomation_example.json"),
    ];
    for (version, file) in cases {
        let mut ex = automation_example(version, file);
        let (sub, group, _, _) = params(&ex);
        app.add_subscription(sub.parse().unwrap()).await;
        // A fresh name per case: the first PUT creates (201), the second replaces (200).
        let name = format!("{}-{}", version, file.trim_end_matches("_example.json"));
        let path = automation_path(&sub, &group, &name, version);
        let scope_sub = "212f9889-769e-45ae-ab43-6da33674bd26";
        if ex.to_string().contains(scope_sub) {
            // The example's scope is in another subscription than the automation: refused.
            let r = app.put(&path, &ex["parameters"]["Automation"]).await;
            assert_eq!(r.status, 400, "{file}: {}", r.text);
            assert_eq!(r.code(), "InvalidRequestContent");
            assert_eq!(r.body["error"]["target"], "properties.scopes[0].scopePath", "{}", r.text);
            move_scopes(&mut ex, scope_sub, &sub);
        }
        let (_, _, example_name, body) = params(&ex);
        let expect = |status: &str| {
            let mut want = comparable(ex["responses"][status]["body"].clone());
            want["name"] = json!(name);
            let id = want["id"]
                .as_str()
                .unwrap()
                .replace(&format!("/{example_name}"), &format!("/{name}"));
            want["id"] = json!(id);
            want
        };
        let created = app.put(&path, &body).await;
        assert_eq!(created.status, 201, "{version} {file}: {}", created.text);
        let want_201 = if ex["responses"]["201"].is_null() { expect("200") } else { expect("201") };
        assert_eq!(comparable(created.body.clone()), want_201, "{version} {file} (201)");
        assert!(!created.body["etag"].as_str().unwrap_or_default().is_empty());
        let replaced = app.put(&path, &body).await;
        assert_eq!(replaced.status, 200, "{version} {file}: {}", replaced.text);
        assert_eq!(comparable(replaced.body.clone()), expect("200"), "{version} {file} (200)");
        assert_ne!(replaced.body["etag"], created.body["etag"], "every write has a new etag");
        let got = app.get(&path).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, replaced.body, "GET answers what the PUT answered");
        assert!(!got.text.contains("exampleTriggerUri1"), "the uri is write-only: {}", got.text);
    }
}

/// The GET and list examples describe stored automations: stored as they are (through the
/// store, since two of them have scopes a PUT refuses) and read back through the API.
#[tokio::test]
async fn get_and_list_examples_read_back_what_is_stored() {
    for version in [V19, V23] {
        for file in [
            "GetAutomationResourceGroup_example.json",
            "GetAutomationsResourceGroup_example.json",
            "GetAutomationsSubscription_example.json",
        ] {
            let app = spawn_app().await;
            let ex = automation_example(version, file);
            let body = &ex["responses"]["200"]["body"];
            let items: Vec<Value> = match body["value"].as_array() {
                Some(v) => v.clone(),
                None => vec![body.clone()],
            };
            // The subscription the answer's ids name (one 2023 list example asks another; note 7).
            let sub = items[0]["id"].as_str().unwrap().split('/').nth(2).unwrap().to_string();
            app.add_subscription(sub.parse().unwrap()).await;
            for item in &items {
                let id = item["id"].as_str().unwrap();
                let parts: Vec<&str> = id.split('/').collect();
                let record = AutomationRecord {
                    subscription: sub.parse().unwrap(),
                    resource_group: parts[4].to_string(),
                    name: item["name"].as_str().unwrap().to_string(),
                    etag: item["etag"].as_str().unwrap().to_string(),
                    spec: json!({"location": item["location"], "tags": item["tags"], "properties": item["properties"]}),
                    last_snapshot_at: None,
                };
                assert_eq!(app.store.put_automation(&record).await.unwrap(), Some(true));
            }
            let path = match ex["parameters"]["automationName"].as_str() {
                Some(name) => automation_path(&sub, ex["parameters"]["resourceGroupName"].as_str().unwrap(), name, version),
                None => match ex["parameters"]["resourceGroupName"].as_str() {
                    Some(g) => format!("/subscriptions/{sub}/resourceGroups/{g}/providers/Microsoft.Security/automations?api-version={version}"),
                    None => format!("/subscriptions/{sub}/providers/Microsoft.Security/automations?api-version={version}"),
                },
            };
            let r = app.get(&path).await;
            assert_eq!(r.status, 200, "{version} {file}: {}", r.text);
            let strip = |v: &Value| -> Value {
                let mut v = v.clone();
                if let Some(p) = v["properties"].as_object_mut() {
                    p.remove("metadata");
                }
                v
            };
            match body["value"].as_array() {
                Some(want) => {
                    let got: Vec<Value> = r.body["value"].as_array().unwrap().to_vec();
                    assert_eq!(got, want.iter().map(strip).collect::<Vec<_>>(), "{version} {file}");
                    assert!(r.body.get("nextLink").is_none());
                }
                None => assert_eq!(r.body, strip(body), "{version} {file}"),
            }
            app.stop().await;
        }
    }
}

#[tokio::test]
async fn validate_delete_and_patch_examples() {
    let app = spawn_app().await;
    for version in [V19, V23] {
        let mut ex = automation_example(version, "ValidateAutomation_example.json");
        let (sub, group, name, body) = params(&ex);
        app.add_subscription(sub.parse().unwrap()).await;
        let path = format!("/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Security/automations/{name}/validate?api-version={version}");
        let scope_sub = "212f9889-769e-45ae-ab43-6da33674bd26";
        let r = app.request(Method::POST, &path, Some(body.to_string()), &[]).await;
        assert_eq!(r.status, 200, "{}", r.text);
        if body.to_string().contains(scope_sub) {
            assert_eq!(r.body["isValid"], false, "{}", r.text);
            assert!(r.body["message"].as_str().unwrap().contains("properties.scopes[0].scopePath"));
            move_scopes(&mut ex, scope_sub, &sub);
            let body = &ex["parameters"]["Automation"];
            let r = app.request(Method::POST, &path, Some(body.to_string()), &[]).await;
            assert_eq!(r.body, ex["responses"]["200"]["body"], "{version}");
        } else {
            assert_eq!(r.body, ex["responses"]["200"]["body"], "{version}");
        }
        // Validation stores nothing.
        assert_eq!(app.get(&automation_path(&sub, &group, &name, version)).await.status, 404);
        // An invalid body: isValid false, naming the property.
        let mut bad = ex["parameters"]["Automation"].clone();
        bad["properties"]["actions"][0]["actionType"] = json!("Email");
        let r = app.request(Method::POST, &path, Some(bad.to_string()), &[]).await;
        assert_eq!(r.body["isValid"], false);
        assert!(
            r.body["message"].as_str().unwrap().contains("properties.actions[0].actionType"),
            "{}",
            r.text
        );

        let ex = automation_example(version, "DeleteAutomation_example.json");
        let (sub, group, name, _) = params(&ex);
        app.add_subscription(sub.parse().unwrap()).await;
        let path = automation_path(&sub, &group, &name, version);
        assert_eq!(app.delete(&path).await.status, 204, "absent");
        let put = automation_example(version, "PutAutomationAllAssessments_example.json");
        let mut body = put["parameters"]["Automation"].clone();
        move_scopes(&mut body, "a5caac9c-5c04-49af-b3d0-e204f40345d5", &sub);
        assert_eq!(app.put(&path, &body).await.status, 201);
        assert_eq!(app.delete(&path).await.status, 204, "deleted");
        assert_eq!(app.get(&path).await.status, 404);
    }

    // PATCH (2023-12-01-preview): merges over the stored automation.
    let ex = automation_example(V23, "PatchAutomation_example.json");
    let (sub, group, name, patch) = params(&ex);
    let path = automation_path(&sub, &group, &name, V23);
    let patch_404 = app.request(Method::PATCH, &path, Some(patch.to_string()), &[]).await;
    assert_eq!(patch_404.status, 404, "{}", patch_404.text);
    let put = automation_example(V23, "PutAutomationHighSeverityAssessments_example.json");
    assert_eq!(app.put(&path, &put["parameters"]["Automation"]).await.status, 201);
    let r = app.request(Method::PATCH, &path, Some(patch.to_string()), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(comparable(r.body.clone()), comparable(ex["responses"]["200"]["body"].clone()));
    assert_eq!(app.get(&path).await.body, r.body);
    // 2019-01-01-preview has no PATCH.
    let r = app
        .request(
            Method::PATCH,
            &automation_path(&sub, &group, &name, V19),
            Some(patch.to_string()),
            &[],
        )
        .await;
    assert_eq!(r.status, 405, "{}", r.text);
}

fn rule(path: &str, kind: &str, value: &str, op: &str) -> Value {
    json!({"propertyJPath": path, "propertyType": kind, "expectedValue": value, "operator": op})
}

fn automation_body(
    sub: &str,
    scope: &str,
    source: &str,
    rule_sets: Value,
    actions: Value,
) -> Value {
    json!({
        "location": "West Europe",
        "properties": {
            "isEnabled": true,
            "scopes": [{"scopePath": format!("/subscriptions/{sub}{scope}")}],
            "sources": [{"eventSource": source, "ruleSets": rule_sets}],
            "actions": actions,
        }
    })
}

fn logic_app(uri: &str) -> Value {
    json!([{"actionType": "LogicApp", "logicAppResourceId": "/subscriptions/x/resourceGroups/y/providers/Microsoft.Logic/workflows/z", "uri": uri}])
}

/// A change to a good body that makes it invalid.
type Mutation = Box<dyn Fn(&mut Value)>;

#[tokio::test]
async fn invalid_bodies_are_400s_naming_the_property() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4().to_string();
    app.add_subscription(sub.parse().unwrap()).await;
    let path = automation_path(&sub, "rg", "a", V23);
    let good =
        automation_body(&sub, "", "Assessments", json!([]), logic_app("https://example.com/hook"));
    let cases: Vec<(&str, Mutation)> = vec![
        (
            "properties.actions[0].actionType",
            Box::new(|b| b["properties"]["actions"][0]["actionType"] = json!("Sms")),
        ),
        (
            "properties.sources[0].eventSource",
            Box::new(|b| b["properties"]["sources"][0]["eventSource"] = json!("Nothing")),
        ),
        (
            "properties.sources[0].ruleSets[0].rules[0].operator",
            Box::new(|b| {
                b["properties"]["sources"][0]["ruleSets"] =
                    json!([{"rules": [rule("a", "String", "x", "Matches")]}])
            }),
        ),
        (
            "properties.sources[0].ruleSets[0].rules[0].propertyType",
            Box::new(|b| {
                b["properties"]["sources"][0]["ruleSets"] =
                    json!([{"rules": [rule("a", "Date", "x", "Equals")]}])
            }),
        ),
        (
            "properties.sources[0].ruleSets[0].rules[0].propertyJPath",
            Box::new(|b| {
                b["properties"]["sources"][0]["ruleSets"] =
                    json!([{"rules": [rule("a[", "String", "x", "Equals")]}])
            }),
        ),
        (
            "properties.sources[0].ruleSets[0].rules[0].expectedValue",
            Box::new(|b| {
                b["properties"]["sources"][0]["ruleSets"] =
                    json!([{"rules": [rule("a", "Number", "high", "Equals")]}])
            }),
        ),
        (
            "properties.scopes[0].scopePath",
            Box::new(|b| {
                b["properties"]["scopes"][0]["scopePath"] =
                    json!(format!("/subscriptions/{}", Uuid::new_v4()))
            }),
        ),
        (
            "properties.actions",
            Box::new(|b| {
                b["properties"].as_object_mut().unwrap().remove("actions");
            }),
        ),
        (
            "location",
            Box::new(|b| {
                b.as_object_mut().unwrap().remove("location");
            }),
        ),
    ];
    for (target, mutate) in cases {
        let mut body = good.clone();
        mutate(&mut body);
        let r = app.put(&path, &body).await;
        assert_eq!(r.status, 400, "{target}: {}", r.text);
        assert_eq!(r.code(), "InvalidRequestContent");
        assert_eq!(r.body["error"]["target"], target, "{}", r.text);
    }
    assert_eq!(app.get(&path).await.status, 404, "nothing was stored");
    let r = app.request(Method::PUT, &path, Some("{not json".into()), &[]).await;
    assert_eq!(r.status, 400);
    let r = app.put(&automation_path(&Uuid::new_v4().to_string(), "rg", "a", V23), &good).await;
    assert_eq!(r.code(), "SubscriptionNotFound");
    let r = app
        .get(&format!(
            "/subscriptions/{sub}/providers/Microsoft.Security/automations?api-version=2020-01-01"
        ))
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceType"));
}

async fn call(app: &TestApp, method: Method, path: &str, token: &str, body: Option<&Value>) -> u16 {
    let mut r = app.http.request(method, format!("{}{path}", app.base)).bearer_auth(token);
    if let Some(b) = body {
        r = r.json(b);
    }
    r.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn readers_read_and_security_admins_contributors_and_owners_write() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4().to_string();
    app.add_subscription(sub.parse().unwrap()).await;
    let body =
        automation_body(&sub, "", "Assessments", json!([]), logic_app("https://example.com/hook"));
    let path = automation_path(&sub, "rg", "a", V23);
    let list =
        format!("/subscriptions/{sub}/providers/Microsoft.Security/automations?api-version={V23}");
    assert_eq!(app.put(&path, &body).await.status, 201);
    for role in ["Reader", "Security Reader"] {
        let token = token_with_role_at(&app, role, &sub).await;
        assert_eq!(call(&app, Method::GET, &path, &token, None).await, 200, "{role}");
        assert_eq!(call(&app, Method::GET, &list, &token, None).await, 200, "{role}");
        assert_eq!(call(&app, Method::PUT, &path, &token, Some(&body)).await, 403, "{role}");
        assert_eq!(call(&app, Method::PATCH, &path, &token, Some(&json!({}))).await, 403, "{role}");
        assert_eq!(call(&app, Method::DELETE, &path, &token, None).await, 403, "{role}");
    }
    for (i, role) in ["Security Admin", "Contributor", "Owner"].into_iter().enumerate() {
        let token = token_with_role_at(&app, role, &sub).await;
        let own = automation_path(&sub, "rg", &format!("w{i}"), V23);
        assert_eq!(call(&app, Method::PUT, &own, &token, Some(&body)).await, 201, "{role}");
        assert_eq!(call(&app, Method::DELETE, &own, &token, None).await, 204, "{role}");
    }
    let token = token_with_role_at(&app, "Security Assessment Contributor", &sub).await;
    assert_eq!(call(&app, Method::PUT, &path, &token, Some(&body)).await, 403, "assessments only");
}

#[tokio::test]
async fn lists_page_with_next_links() {
    let app = spawn_with(Options { page_size: 2, ..Options::default() }).await;
    let sub = Uuid::new_v4().to_string();
    app.add_subscription(sub.parse().unwrap()).await;
    let body =
        automation_body(&sub, "", "Assessments", json!([]), logic_app("https://example.com/hook"));
    for (g, n) in [("rg1", "a"), ("rg1", "b"), ("rg1", "c"), ("rg2", "a"), ("rg2", "d")] {
        assert_eq!(app.put(&automation_path(&sub, g, n, V19), &body).await.status, 201);
    }
    let (all, pages) = app
        .get_all(&format!(
            "/subscriptions/{sub}/providers/Microsoft.Security/automations?api-version={V19}"
        ))
        .await;
    let ids: Vec<&str> = all.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!((ids.len(), pages), (5, 3), "{ids:?}");
    assert!(
        ids.windows(2).all(|w| w[0].to_lowercase() < w[1].to_lowercase()),
        "ordered, no repeats"
    );
    let (rg1, _) = app
        .get_all(&format!("/subscriptions/{sub}/resourceGroups/RG1/providers/Microsoft.Security/automations?api-version={V19}"))
        .await;
    assert_eq!(rg1.len(), 3);
}

// ---------------------------------------------------------------------------------------------
// Delivery

/// A webhook receiver on 127.0.0.1: records every request (attempts that it fails too) and
/// answers `status` (settable: 503 plays a receiver that is down).
#[derive(Clone)]
struct Receiver {
    url: String,
    seen: Arc<Mutex<Vec<(HeaderMap, Value, u16)>>>,
    status: Arc<AtomicU16>,
    stop: Arc<tokio::sync::Notify>,
}

impl Receiver {
    async fn start(status: u16) -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        Self::serve(listener, status).await
    }

    async fn serve(listener: tokio::net::TcpListener, status: u16) -> Receiver {
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let r = Receiver {
            url,
            seen: Arc::default(),
            status: Arc::new(AtomicU16::new(status)),
            stop: Arc::default(),
        };
        let state = r.clone();
        let app =
            axum::Router::new().route("/hook", axum::routing::post(receive)).with_state(state);
        let stop = r.stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.notified().await })
                .await
                .unwrap();
        });
        r
    }

    fn set_status(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }

    /// The bodies of the requests it answered 2xx.
    fn delivered(&self) -> Vec<(HeaderMap, Value)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, _, s)| (200..300).contains(s))
            .map(|(h, b, _)| (h.clone(), b.clone()))
            .collect()
    }

    fn attempts(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

async fn receive(
    State(r): State<Receiver>,
    headers: HeaderMap,
    body: axum::Json<Value>,
) -> StatusCode {
    let status = r.status.load(Ordering::SeqCst);
    r.seen.lock().unwrap().push((headers, body.0, status));
    StatusCode::from_u16(status).unwrap()
}

fn fast_export() -> ExportConfig {
    ExportConfig {
        poll_interval: Duration::from_millis(20),
        backoff_initial: Duration::from_millis(20),
        backoff_max: Duration::from_millis(200),
        ..ExportConfig::default()
    }
}

async fn fast_app() -> TestApp {
    spawn_with(Options { export: fast_export(), ..Options::default() }).await
}

/// Poll `check` until it holds; panics after a bounded wait (no assertion on how long it took).
async fn eventually<F: FnMut() -> bool>(what: &str, mut check: F) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !check() {
        assert!(std::time::Instant::now() < deadline, "gave up waiting: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Wait until the outbox and the deliveries are empty.
async fn drained(app: &TestApp) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let b = app.store.export_backlog().await.unwrap();
        if b.changes == 0 && b.deliveries == 0 {
            return;
        }
        assert!(std::time::Instant::now() < deadline, "the export backlog never drained: {b:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

const SCORED: &str = "21300918-b2e3-0346-785f-c77ff57d243b";

fn vm(sub: &str, n: usize) -> String {
    format!(
        "/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{n}"
    )
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

async fn new_sub(app: &TestApp) -> String {
    let sub = Uuid::new_v4().to_string();
    app.add_subscription(sub.parse().unwrap()).await;
    sub
}

#[tokio::test]
async fn an_assessment_change_arrives_as_its_get_shows_it() {
    let app = fast_app().await;
    let hook = Receiver::start(200).await;
    let sub = new_sub(&app).await;
    let body =
        automation_body(&sub, "/resourceGroups/rg", "Assessments", json!([]), logic_app(&hook.url));
    assert_eq!(app.put(&automation_path(&sub, "rg", "export", V23), &body).await.status, 201);
    let path = assessment_path(&vm(&sub, 1), SCORED, "2021-06-01");
    assert_eq!(app.put(&path, &assessment_body("Unhealthy")).await.status, 201);
    // Outside the scope: another resource group.
    let other = format!(
        "/subscriptions/{sub}/resourceGroups/other/providers/Microsoft.Compute/virtualMachines/x"
    );
    assert_eq!(
        app.put(&assessment_path(&other, SCORED, "2021-06-01"), &assessment_body("Unhealthy"))
            .await
            .status,
        201
    );
    eventually("the assessment event", || !hook.delivered().is_empty()).await;
    drained(&app).await;
    let got = hook.delivered();
    assert_eq!(got.len(), 1, "one event, the out-of-scope write sent nothing: {got:?}");
    let (headers, event) = &got[0];
    let want = app.get(&format!("{path}&$expand=metadata")).await.body;
    assert_eq!(event, &want, "the event is the GET with metadata");
    assert_eq!(header(headers, "x-securescore-event-source"), "Assessments");
    assert_eq!(header(headers, "x-securescore-change"), "created");
    assert!(Uuid::parse_str(header(headers, "x-securescore-event-id")).is_ok());
    assert!(header(headers, "x-securescore-automation").ends_with("/automations/export"));

    // A PUT of the same content changes nothing and sends nothing; a delete sends the last state.
    assert_eq!(app.put(&path, &assessment_body("Unhealthy")).await.status, 200);
    assert_eq!(app.delete(&path).await.status, 200);
    eventually("the delete event", || hook.delivered().len() == 2).await;
    drained(&app).await;
    let got = hook.delivered();
    assert_eq!(got.len(), 2, "{got:?}");
    assert_eq!(header(&got[1].0, "x-securescore-change"), "deleted");
    assert_eq!(got[1].1["id"], want["id"]);
}

/// The README's alert example, as written there: a webhook when the secure score drops below 60%.
#[tokio::test]
async fn the_readme_alert_example_fires_when_the_score_drops_below_the_threshold() {
    let app = fast_app().await;
    let hook = Receiver::start(200).await;
    let sub = new_sub(&app).await;
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let start = readme.find("<!-- alert-example -->").expect("the README has the alert example");
    let block = &readme[start..];
    let json_start = block.find("```json").unwrap() + "```json".len();
    let json_end = json_start + block[json_start..].find("```").unwrap();
    let text = block[json_start..json_end]
        .replace("00000000-0000-0000-0000-000000000000", &sub)
        .replace("https://hooks.example.com/score-dropped", &hook.url);
    let body: Value = serde_json::from_str(&text).expect("the README's example is JSON");
    let path = automation_path(&sub, "alerts", "score-below-60", "2023-12-01-preview");
    assert_eq!(app.put(&path, &body).await.status, 201, "as the README's `az rest` call does");

    // Healthy: the score is 100% — an event the rule filters out.
    let a = assessment_path(&vm(&sub, 1), SCORED, "2021-06-01");
    assert_eq!(app.put(&a, &assessment_body("Healthy")).await.status, 201);
    drained(&app).await;
    // Unhealthy: 0% — below 60%, the webhook gets the secure score.
    assert_eq!(app.put(&a, &assessment_body("Unhealthy")).await.status, 200);
    eventually("the alert", || !hook.delivered().is_empty()).await;
    drained(&app).await;
    let got = hook.delivered();
    assert_eq!(got.len(), 1, "only the drop fired: {got:?}");
    assert_eq!(got[0].1, app.get(&score_path(&sub)).await.body, "the event is the score's GET");
    assert_eq!(got[0].1["properties"]["score"]["percentage"], json!(0.0));
    assert_eq!(header(&got[0].0, "x-securescore-event-source"), "SecureScores");
}

#[tokio::test]
async fn rule_sets_filter_controls_and_assessments() {
    let app = fast_app().await;
    let hook = Receiver::start(200).await;
    let sub = new_sub(&app).await;
    // Unhealthy assessments, or any control event (two sources, two automations).
    let unhealthy =
        json!([{"rules": [rule("properties.status.code", "String", "Unhealthy", "Equals")]}]);
    let body = automation_body(&sub, "", "Assessments", unhealthy, logic_app(&hook.url));
    assert_eq!(app.put(&automation_path(&sub, "rg", "unhealthy", V19), &body).await.status, 201);
    let controls = json!([{"rules": [rule("properties.unhealthyResourceCount", "Integer", "2", "GreaterThanOrEqualTo")]}]);
    let body = automation_body(&sub, "", "SecureScoreControls", controls, logic_app(&hook.url));
    assert_eq!(app.put(&automation_path(&sub, "rg", "controls", V19), &body).await.status, 201);

    assert_eq!(
        app.put(&assessment_path(&vm(&sub, 1), SCORED, "2021-06-01"), &assessment_body("Healthy"))
            .await
            .status,
        201
    );
    assert_eq!(
        app.put(
            &assessment_path(&vm(&sub, 2), SCORED, "2021-06-01"),
            &assessment_body("Unhealthy")
        )
        .await
        .status,
        201
    );
    assert_eq!(
        app.put(
            &assessment_path(&vm(&sub, 3), SCORED, "2021-06-01"),
            &assessment_body("Unhealthy")
        )
        .await
        .status,
        201
    );
    eventually("three events", || hook.delivered().len() >= 3).await;
    drained(&app).await;
    let got = hook.delivered();
    let assessments: Vec<&Value> = got
        .iter()
        .filter(|(h, _)| header(h, "x-securescore-event-source") == "Assessments")
        .map(|(_, b)| b)
        .collect();
    let controls: Vec<&Value> = got
        .iter()
        .filter(|(h, _)| header(h, "x-securescore-event-source") == "SecureScoreControls")
        .map(|(_, b)| b)
        .collect();
    assert_eq!(assessments.len(), 2, "the healthy one is filtered out");
    assert!(assessments.iter().all(|a| a["properties"]["status"]["code"] == "Unhealthy"));
    assert_eq!(controls.len(), 1, "only the control with two unhealthy resources: {controls:?}");
    assert_eq!(controls[0]["properties"]["unhealthyResourceCount"], 2);
    let listed = app.get(&format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01")).await;
    assert!(
        listed.body["value"].as_array().unwrap().contains(controls[0]),
        "the event is the control as listed"
    );
}

#[tokio::test]
async fn a_receiver_that_is_down_gets_the_events_when_it_comes_back_with_stable_ids_in_order() {
    let app = fast_app().await;
    // Nothing listens on this port yet: connections are refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hook");
    let sub = new_sub(&app).await;
    let body = automation_body(&sub, "", "Assessments", json!([]), logic_app(&url));
    assert_eq!(app.put(&automation_path(&sub, "rg", "a", V23), &body).await.status, 201);
    let path = assessment_path(&vm(&sub, 1), SCORED, "2021-06-01");
    for code in ["Healthy", "Unhealthy", "NotApplicable"] {
        let mut b = assessment_body(code);
        if code == "NotApplicable" {
            b["properties"]["status"]["cause"] = json!("OffByPolicy");
        }
        assert!(app.put(&path, &b).await.status < 300);
    }
    // All three are waiting for the receiver (the first attempts were refused).
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let b = app.store.export_backlog().await.unwrap();
        if b.changes == 0 && b.deliveries == 3 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "{b:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // It comes back, failing its first answer once more (503), then fine.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap();
    let hook = Receiver::serve(listener, 503).await;
    eventually("an attempt on the 503 receiver", || hook.attempts() > 0).await;
    hook.set_status(200);
    eventually("all three events", || hook.delivered().len() == 3).await;
    drained(&app).await;
    let seen = hook.seen.lock().unwrap().clone();
    let delivered: Vec<(String, String)> = seen
        .iter()
        .filter(|(_, _, s)| *s == 200)
        .map(|(h, b, _)| {
            (
                header(h, "x-securescore-event-id").to_string(),
                b["properties"]["status"]["code"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let order: Vec<&str> = delivered.iter().map(|(_, c)| c.as_str()).collect();
    assert_eq!(order, ["Healthy", "Unhealthy", "NotApplicable"], "a resource's events in order");
    // The refused attempts (503) carried the same id as the delivery that followed: stable ids.
    let (first_id, _) = &delivered[0];
    let failed: Vec<&str> = seen
        .iter()
        .filter(|(_, _, s)| *s == 503)
        .map(|(h, _, _)| header(h, "x-securescore-event-id"))
        .collect();
    assert!(!failed.is_empty());
    assert!(
        failed.iter().all(|id| id == first_id),
        "only the lane's head was attempted, under one id"
    );
    let ids: std::collections::BTreeSet<&str> =
        delivered.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 3, "each event its own id");
    let attempts: Vec<u32> = seen
        .iter()
        .filter(|(h, _, _)| header(h, "x-securescore-event-id") == first_id)
        .map(|(h, _, _)| header(h, "x-securescore-delivery-attempt").parse().unwrap())
        .collect();
    assert!(attempts.windows(2).all(|w| w[1] == w[0] + 1) && attempts.len() >= 2, "{attempts:?}");

    let metrics =
        app.http.get(format!("{}/metrics", app.base)).send().await.unwrap().text().await.unwrap();
    for name in [
        "securescore_export_deliveries_total",
        "securescore_export_failures_total",
        "securescore_export_retries_total",
        "securescore_export_backlog",
    ] {
        assert!(metrics.contains(name), "{name} missing from /metrics");
    }
}

#[tokio::test]
async fn pending_events_survive_a_server_restart() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(503).await;
    let options = || Options {
        store: securescore::store::StoreConfig::Sqlite { data_dir: dir.path().to_path_buf() },
        export: fast_export(),
        ..Options::default()
    };
    let app = spawn_with(options()).await;
    let sub = new_sub(&app).await;
    let body = automation_body(&sub, "", "Assessments", json!([]), logic_app(&hook.url));
    assert_eq!(app.put(&automation_path(&sub, "rg", "a", V19), &body).await.status, 201);
    let path = assessment_path(&vm(&sub, 1), SCORED, "2021-06-01");
    assert_eq!(app.put(&path, &assessment_body("Unhealthy")).await.status, 201);
    eventually("a refused attempt", || hook.attempts() > 0).await;
    let first_id = header(&hook.seen.lock().unwrap()[0].0, "x-securescore-event-id").to_string();
    app.stop().await;

    hook.set_status(200);
    let app = spawn_with(options()).await;
    eventually("the event after the restart", || !hook.delivered().is_empty()).await;
    drained(&app).await;
    let got = hook.delivered();
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        header(&got[0].0, "x-securescore-event-id"),
        first_id,
        "the same event, the same id"
    );
    assert_eq!(got[0].1, app.get(&format!("{path}&$expand=metadata")).await.body);
    app.stop().await;
}

#[tokio::test]
async fn workspace_and_event_hub_actions_append_log_analytics_records_to_files() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(Options {
        store: securescore::store::StoreConfig::Sqlite { data_dir: dir.path().to_path_buf() },
        export: fast_export(),
        ..Options::default()
    })
    .await;
    let sub = new_sub(&app).await;
    let actions = json!([
        {"actionType": "Workspace", "workspaceResourceId": "/subscriptions/x/resourceGroups/y/providers/Microsoft.OperationalInsights/workspaces/w"},
        {"actionType": "EventHub", "eventHubResourceId": "/subscriptions/x/resourceGroups/y/providers/Microsoft.EventHub/namespaces/n/eventhubs/h",
         "connectionString": "Endpoint=sb://n.servicebus.windows.net/;SharedAccessKeyName=sender;SharedAccessKey=secret;EntityPath=h"}
    ]);
    let mut body = automation_body(&sub, "", "Assessments", json!([]), actions);
    body["properties"]["sources"] =
        json!([{"eventSource": "Assessments"}, {"eventSource": "SecureScores"}]);
    let r = app.put(&automation_path(&sub, "RG", "Export", V23), &body).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.body["properties"]["actions"][1]["sasPolicyName"], "sender");
    assert!(!r.text.contains("secret"), "the connection string is write-only");
    let path = assessment_path(&vm(&sub, 1), SCORED, "2021-06-01");
    assert_eq!(app.put(&path, &assessment_body("Unhealthy")).await.status, 201);
    drained(&app).await;
    let folder = dir.path().join("exports").join(format!("{sub}.rg.export"));
    for index in 0..2 {
        let text = std::fs::read_to_string(folder.join(format!("{index}.ndjson"))).unwrap();
        let records: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        let rec = records
            .iter()
            .find(|r| r["Type"] == "SecurityRecommendation")
            .expect("a recommendation record");
        assert_eq!(rec["RecommendationState"], "Unhealthy");
        assert_eq!(rec["RecommendationName"], SCORED);
        assert_eq!(rec["AssessedResourceId"], vm(&sub, 1));
        assert_eq!(rec["IsSnapshot"], false);
        let score = records.iter().find(|r| r["Type"] == "SecureScores").expect("a score record");
        assert_eq!(score["PercentageScore"], json!(0.0));
        assert_eq!(score["SecureScoresSubscriptionId"], sub);
        assert!(Uuid::parse_str(rec["EventId"].as_str().unwrap()).is_ok());
    }
    app.stop().await;
}

#[tokio::test]
async fn snapshot_sources_send_everything_in_scope_when_created() {
    let app = fast_app().await;
    let hook = Receiver::start(200).await;
    let sub = new_sub(&app).await;
    for n in 0..3 {
        assert_eq!(
            app.put(
                &assessment_path(&vm(&sub, n), SCORED, "2021-06-01"),
                &assessment_body("Unhealthy")
            )
            .await
            .status,
            201
        );
    }
    let mut body =
        automation_body(&sub, "", "SecureScoresSnapshot", json!([]), logic_app(&hook.url));
    body["properties"]["sources"] =
        json!([{"eventSource": "SecureScoresSnapshot"}, {"eventSource": "AssessmentsSnapshot"}]);
    assert_eq!(app.put(&automation_path(&sub, "rg", "weekly", V23), &body).await.status, 201);
    eventually("the snapshot", || hook.delivered().len() == 4).await;
    drained(&app).await;
    let got = hook.delivered();
    assert_eq!(got.len(), 4, "one score and three assessments: {got:?}");
    assert!(got.iter().all(|(h, _)| header(h, "x-securescore-change") == "snapshot"));
    let score = got
        .iter()
        .find(|(h, _)| header(h, "x-securescore-event-source") == "SecureScoresSnapshot")
        .unwrap();
    assert_eq!(score.1, app.get(&score_path(&sub)).await.body);
}

#[tokio::test]
async fn deleting_an_automation_or_its_subscription_drops_its_waiting_deliveries() {
    let app = fast_app().await;
    let hook = Receiver::start(503).await;
    for remove_subscription in [false, true] {
        let sub = new_sub(&app).await;
        let body = automation_body(&sub, "", "Assessments", json!([]), logic_app(&hook.url));
        let path = automation_path(&sub, "rg", "a", V23);
        assert_eq!(app.put(&path, &body).await.status, 201);
        let a = assessment_path(&vm(&sub, 1), SCORED, "2021-06-01");
        assert_eq!(app.put(&a, &assessment_body("Unhealthy")).await.status, 201);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while app.store.export_backlog().await.unwrap().deliveries == 0 {
            assert!(std::time::Instant::now() < deadline, "the delivery never waited");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        if remove_subscription {
            assert!(app.store.remove_subscription(sub.parse().unwrap()).await.unwrap());
        } else {
            assert_eq!(app.delete(&path).await.status, 204);
        }
        let b = app.store.export_backlog().await.unwrap();
        assert_eq!(b.deliveries, 0, "remove_subscription: {remove_subscription}");
    }
    assert!(hook.delivered().is_empty());
}

#[tokio::test]
async fn a_disabled_automation_sends_nothing_until_a_patch_enables_it() {
    let app = fast_app().await;
    let hook = Receiver::start(200).await;
    let sub = new_sub(&app).await;
    let mut body = automation_body(&sub, "", "Assessments", json!([]), logic_app(&hook.url));
    body["properties"]["isEnabled"] = json!(false);
    let path = automation_path(&sub, "rg", "a", V23);
    assert_eq!(app.put(&path, &body).await.status, 201);
    let a = assessment_path(&vm(&sub, 1), SCORED, "2021-06-01");
    assert_eq!(app.put(&a, &assessment_body("Unhealthy")).await.status, 201);
    drained(&app).await;
    assert!(hook.delivered().is_empty(), "disabled");
    let patch = json!({"properties": {"isEnabled": true}});
    let r = app.request(Method::PATCH, &path, Some(patch.to_string()), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["properties"]["isEnabled"], true);
    assert_eq!(
        r.body["properties"]["scopes"], body["properties"]["scopes"],
        "PATCH keeps the rest"
    );
    assert_eq!(app.put(&a, &assessment_body("Healthy")).await.status, 200);
    eventually("the event after enabling", || hook.delivered().len() == 1).await;
    drained(&app).await;
    assert_eq!(hook.delivered()[0].1["properties"]["status"]["code"], "Healthy");
}

/// Many writes to several resources at once: every event arrives once, each resource's in the
/// order written.
#[tokio::test]
async fn concurrent_writes_keep_each_resources_order() {
    let app = fast_app().await;
    let hook = Receiver::start(200).await;
    let sub = new_sub(&app).await;
    let body = automation_body(&sub, "", "Assessments", json!([]), logic_app(&hook.url));
    assert_eq!(app.put(&automation_path(&sub, "rg", "a", V23), &body).await.status, 201);
    let statuses = ["Unhealthy", "Healthy", "Unhealthy", "Healthy"];
    let writers = (0..5).map(|n| {
        let app = &app;
        let sub = sub.clone();
        async move {
            let path = assessment_path(&vm(&sub, n), SCORED, "2021-06-01");
            for code in statuses {
                assert!(app.put(&path, &assessment_body(code)).await.status < 300);
            }
        }
    });
    futures::future::join_all(writers).await;
    eventually("twenty events", || hook.delivered().len() >= 20).await;
    drained(&app).await;
    let got = hook.delivered();
    assert_eq!(got.len(), 20);
    let ids: std::collections::BTreeSet<&str> =
        got.iter().map(|(h, _)| header(h, "x-securescore-event-id")).collect();
    assert_eq!(ids.len(), 20, "each event once");
    for n in 0..5 {
        let id = format!("{}/providers/Microsoft.Security/assessments/{SCORED}", vm(&sub, n));
        let seen: Vec<&str> = got
            .iter()
            .filter(|(_, b)| b["id"] == id.as_str())
            .map(|(_, b)| b["properties"]["status"]["code"].as_str().unwrap())
            .collect();
        assert_eq!(seen, statuses, "vm{n}");
    }
}

#[tokio::test]
async fn a_controls_snapshot_sends_every_assessed_control_as_listed() {
    let app = fast_app().await;
    let hook = Receiver::start(200).await;
    let sub = new_sub(&app).await;
    assert_eq!(
        app.put(
            &assessment_path(&vm(&sub, 1), SCORED, "2021-06-01"),
            &assessment_body("Unhealthy")
        )
        .await
        .status,
        201
    );
    let listed = app
        .get(&format!(
            "/subscriptions/{sub}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01"
        ))
        .await
        .body["value"]
        .as_array()
        .unwrap()
        .clone();
    assert!(!listed.is_empty());
    let body =
        automation_body(&sub, "", "SecureScoreControlsSnapshot", json!([]), logic_app(&hook.url));
    assert_eq!(app.put(&automation_path(&sub, "rg", "c", V19), &body).await.status, 201);
    eventually("the controls", || hook.delivered().len() == listed.len()).await;
    drained(&app).await;
    let got: Vec<Value> = hook.delivered().into_iter().map(|(_, b)| b).collect();
    assert_eq!(got, listed);
}

/// A write by another process on the same data directory (the CLI's `import --data-dir`) is in
/// the outbox too: the running server delivers it.
#[tokio::test]
async fn writes_of_another_process_on_the_data_directory_are_exported() {
    let dir = tempfile::tempdir().unwrap();
    let hook = Receiver::start(200).await;
    let app = spawn_with(Options {
        store: securescore::store::StoreConfig::Sqlite { data_dir: dir.path().to_path_buf() },
        export: fast_export(),
        ..Options::default()
    })
    .await;
    let sub = new_sub(&app).await;
    let body = automation_body(&sub, "", "Assessments", json!([]), logic_app(&hook.url));
    assert_eq!(app.put(&automation_path(&sub, "rg", "a", V23), &body).await.status, 201);
    let other = securescore::store::Store::open(&securescore::store::StoreConfig::Sqlite {
        data_dir: dir.path().to_path_buf(),
    })
    .await
    .unwrap();
    let write = securescore::store::Write::Put(securescore::store::AssessmentInput {
        resource: securescore::arm::ResourceId::parse(&vm(&sub, 7)).unwrap(),
        name: SCORED.into(),
        status: securescore::score::Status::Unhealthy,
        cause: None,
        description: None,
        resource_details: json!({"source": "Azure"}),
        additional_data: None,
        partner_name: None,
    });
    other.apply(&[write]).await.unwrap();
    eventually("the other process's write", || !hook.delivered().is_empty()).await;
    let path = assessment_path(&vm(&sub, 7), SCORED, "2021-06-01");
    assert_eq!(hook.delivered()[0].1, app.get(&format!("{path}&$expand=metadata")).await.body);
    app.stop().await;
}

/// A bulk write larger than the worker's batches (routing 200, delivery 32) arrives whole: the
/// backlog is read from the database in batches, not held in memory.
#[tokio::test]
async fn a_backlog_larger_than_a_batch_is_delivered_whole() {
    let app = fast_app().await;
    let hook = Receiver::start(200).await;
    let sub = new_sub(&app).await;
    let body = automation_body(&sub, "", "Assessments", json!([]), logic_app(&hook.url));
    assert_eq!(app.put(&automation_path(&sub, "rg", "a", V23), &body).await.status, 201);
    let writes: Vec<securescore::store::Write> = (0..450)
        .map(|n| {
            securescore::store::Write::Put(securescore::store::AssessmentInput {
                resource: securescore::arm::ResourceId::parse(&vm(&sub, n)).unwrap(),
                name: SCORED.into(),
                status: securescore::score::Status::Unhealthy,
                cause: None,
                description: None,
                resource_details: json!({"source": "Azure"}),
                additional_data: None,
                partner_name: None,
            })
        })
        .collect();
    app.store.apply(&writes).await.unwrap();
    eventually("450 events", || hook.delivered().len() >= 450).await;
    drained(&app).await;
    let got = hook.delivered();
    let ids: std::collections::BTreeSet<String> =
        got.iter().map(|(_, b)| b["id"].as_str().unwrap().to_string()).collect();
    assert_eq!((got.len(), ids.len()), (450, 450), "each assessment once");
}

/// A token for a new service principal holding `role` on the subscription.
async fn token_with_role_at(app: &TestApp, role: &str, sub: &str) -> String {
    token_with_roles(app, &[(role, &format!("/subscriptions/{sub}"))]).await
}
