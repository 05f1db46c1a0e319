//! The extension API's OpenAPI document: served without a token, the same as the committed
//! file, and true to the server: every documented operation answers with a documented status
//! and a body of the documented shape (no undocumented field, no missing required one).

use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::*;

const DOC_PATH: &str = "/securescore/v1/openapi.json";

/// The document as the server serves it.
async fn served_document(app: &TestApp) -> Value {
    // Deliberately without the Authorization header the helpers add.
    let r = app.http.get(format!("{}{DOC_PATH}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let content_type = r.headers()["content-type"].to_str().unwrap().to_string();
    assert!(content_type.starts_with("application/json"), "{content_type}");
    serde_json::from_str(&r.text().await.unwrap()).expect("the document is JSON")
}

#[tokio::test]
async fn the_document_is_served_without_a_token_and_matches_the_committed_file() {
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    // Documentation needs no token; the API it documents does.
    let r =
        app.http.get(format!("{}/securescore/v1/subscriptions", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 401);

    let committed: Value = serde_json::from_str(include_str!("../../docs/extension-openapi.json"))
        .expect("the committed document is JSON");
    assert!(
        doc == committed,
        "docs/extension-openapi.json is not what the server serves; regenerate it with \
         `UPDATE_OPENAPI=1 cargo test --lib openapi`"
    );
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert_eq!(doc["info"]["title"], "securescore extension API");
    // Only the documented methods of a path are allowed.
    let r = app.request(Method::POST, "/securescore/v1/aggregate", None, &[]).await;
    assert_eq!(r.status, 405);
    assert!(doc["paths"]["/securescore/v1/aggregate"].get("post").is_none());
}

/// Problems of `value` against `schema` (references into `doc` resolved): wrong types, missing
/// required properties, properties the schema does not name.
fn problems(doc: &Value, schema: &Value, value: &Value, at: &str, out: &mut Vec<String>) {
    if let Some(target) = schema["$ref"].as_str() {
        let resolved = doc.pointer(target.trim_start_matches('#')).expect("the reference resolves");
        return problems(doc, resolved, value, at, out);
    }
    if let Some(parts) = schema["allOf"].as_array() {
        // Merge the parts' properties, so that each part does not see the others' as unknown.
        let mut merged = json!({"type": "object", "properties": {}, "required": []});
        for part in parts {
            let part = match part["$ref"].as_str() {
                Some(t) => doc.pointer(t.trim_start_matches('#')).expect("resolves"),
                None => part,
            };
            if let Some(props) = part["properties"].as_object() {
                for (k, v) in props {
                    merged["properties"][k] = v.clone();
                }
            }
            if let Some(required) = part["required"].as_array() {
                merged["required"].as_array_mut().unwrap().extend(required.iter().cloned());
            }
        }
        return problems(doc, &merged, value, at, out);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => Vec::new(),
    };
    let actual = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    let fits = types.is_empty()
        || types.contains(&actual)
        || (actual == "integer" && types.contains(&"number"));
    if !fits {
        out.push(format!("{at}: a {actual}, documented as {types:?}"));
        return;
    }
    if let (Some(allowed), Value::String(s)) = (schema["enum"].as_array(), value) {
        if !allowed.iter().any(|a| a == s) {
            out.push(format!("{at}: '{s}' is not one of {allowed:?}"));
        }
    }
    match value {
        Value::Object(map) => {
            let props = schema["properties"].as_object().cloned().unwrap_or_default();
            for key in map.keys().filter(|k| !props.contains_key(*k)) {
                out.push(format!("{at}.{key}: not documented"));
            }
            for key in schema["required"].as_array().into_iter().flatten() {
                let key = key.as_str().unwrap();
                if !map.contains_key(key) {
                    out.push(format!("{at}.{key}: required but absent"));
                }
            }
            for (key, v) in map {
                if let Some(s) = props.get(key) {
                    problems(doc, s, v, &format!("{at}.{key}"), out);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                problems(doc, &schema["items"], item, &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Call a documented operation and check the answer against the document: its status is one
/// the operation lists (or an error, answered by the default CloudError response), and its body
/// has the documented shape.
async fn call(
    app: &TestApp,
    doc: &Value,
    method: Method,
    template: &str,
    path: &str,
    body: Option<String>,
) -> Resp {
    let operation = &doc["paths"][template][method.as_str().to_lowercase()];
    assert!(operation.is_object(), "{method} {template} is not documented");
    let r = app.request(method.clone(), path, body, &[]).await;
    let status = r.status.to_string();
    let response = match operation["responses"].get(&status) {
        Some(response) => response,
        None if r.status >= 400 => &operation["responses"]["default"],
        None => panic!("{method} {path} answered {status}, which is not documented: {}", r.text),
    };
    let response = match response["$ref"].as_str() {
        Some(target) => doc.pointer(target.trim_start_matches('#')).expect("resolves"),
        None => response,
    };
    match response["content"]["application/json"]["schema"].as_object() {
        Some(schema) => {
            let mut found = Vec::new();
            problems(doc, &Value::Object(schema.clone()), &r.body, "body", &mut found);
            assert!(found.is_empty(), "{method} {path} ({status}): {found:#?}\n{}", r.text);
        }
        None => assert!(r.text.is_empty(), "{method} {path}: an undocumented body {}", r.text),
    }
    r
}

#[tokio::test]
async fn every_operation_answers_as_documented() {
    use Method as M;
    let app = spawn_app().await;
    let doc = served_document(&app).await;
    let mut covered = std::collections::BTreeSet::new();
    let mut op = |method: &M, template: &str| {
        covered.insert(format!("{method} {template}"));
    };

    let subs = "/securescore/v1/subscriptions";
    let one = "/securescore/v1/subscriptions/{id}";
    let new = Uuid::new_v4();
    call(&app, &doc, M::GET, subs, subs, None).await;
    op(&M::GET, subs);
    call(&app, &doc, M::GET, one, &format!("{subs}/{DEMO}"), None).await;
    let r = call(&app, &doc, M::GET, one, &format!("{subs}/{new}"), None).await;
    assert_eq!(r.status, 404);
    op(&M::GET, one);
    let body = json!({"displayName": "documented"}).to_string();
    let r = call(&app, &doc, M::PUT, one, &format!("{subs}/{new}"), Some(body.clone())).await;
    assert_eq!(r.status, 201);
    assert_eq!(
        call(&app, &doc, M::PUT, one, &format!("{subs}/{new}"), Some(body)).await.status,
        200
    );
    let r = call(&app, &doc, M::PUT, one, &format!("{subs}/{new}"), Some("{}".into())).await;
    assert_eq!(r.status, 400);
    op(&M::PUT, one);

    let import = "/securescore/v1/import";
    let line = json!({
        "resourceId": format!("/subscriptions/{new}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"),
        "name": "21300918-b2e3-0346-785f-c77ff57d243b",
        "properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Unhealthy"}}
    });
    let lines = format!("{line}\n{{not json\n");
    let r = call(&app, &doc, M::POST, import, import, Some(lines)).await;
    assert_eq!((r.body["created"].as_u64(), r.body["failed"].as_u64()), (Some(1), Some(1)));
    op(&M::POST, import);

    let history = "/securescore/v1/subscriptions/{id}/history";
    for query in ["", "?interval=day", "?from=not-a-time"] {
        call(&app, &doc, M::GET, history, &format!("{subs}/{new}/history{query}"), None).await;
    }
    op(&M::GET, history);
    let aggregate = "/securescore/v1/aggregate";
    let r = call(
        &app,
        &doc,
        M::GET,
        aggregate,
        &format!("{aggregate}?subscriptions={DEMO},{new}"),
        None,
    )
    .await;
    assert_eq!(r.body["subscriptions"].as_array().map(Vec::len), Some(2));
    call(&app, &doc, M::GET, aggregate, aggregate, None).await;
    op(&M::GET, aggregate);

    let principals = "/securescore/v1/principals";
    let principal = "/securescore/v1/principals/{id}";
    let sp = call(
        &app,
        &doc,
        M::POST,
        principals,
        principals,
        Some(json!({"displayName": "ci"}).to_string()),
    )
    .await;
    assert_eq!(sp.status, 201);
    let user = json!({"displayName": "Alice", "kind": "User", "userName": "alice@example.test"});
    let user = call(&app, &doc, M::POST, principals, principals, Some(user.to_string())).await;
    assert_eq!(user.status, 201);
    op(&M::POST, principals);
    let listed = call(&app, &doc, M::GET, principals, principals, None).await;
    assert!(listed.body["value"].as_array().is_some_and(|v| v.len() >= 2));
    op(&M::GET, principals);
    let sp_id = sp.body["id"].as_str().unwrap().to_string();
    call(&app, &doc, M::GET, principal, &format!("{principals}/{sp_id}"), None).await;
    call(&app, &doc, M::GET, principal, &format!("{principals}/nobody"), None).await;
    op(&M::GET, principal);
    let reset = "/securescore/v1/principals/{id}/resetSecret";
    call(&app, &doc, M::POST, reset, &format!("{principals}/alice@example.test/resetSecret"), None)
        .await;
    op(&M::POST, reset);

    let assignments = "/securescore/v1/roleAssignments";
    let assignment = "/securescore/v1/roleAssignments/{id}";
    let grant =
        json!({"principalId": sp_id, "role": "Reader", "scope": format!("/subscriptions/{new}")});
    let a = call(&app, &doc, M::POST, assignments, assignments, Some(grant.to_string())).await;
    assert_eq!(a.status, 201);
    assert_eq!(
        call(&app, &doc, M::POST, assignments, assignments, Some(grant.to_string())).await.status,
        200
    );
    op(&M::POST, assignments);
    call(&app, &doc, M::GET, assignments, &format!("{assignments}?principalId={sp_id}"), None)
        .await;
    op(&M::GET, assignments);
    let a_id = a.body["id"].as_str().unwrap();
    assert_eq!(
        call(&app, &doc, M::DELETE, assignment, &format!("{assignments}/{a_id}"), None)
            .await
            .status,
        200
    );
    assert_eq!(
        call(&app, &doc, M::DELETE, assignment, &format!("{assignments}/{a_id}"), None)
            .await
            .status,
        404
    );
    op(&M::DELETE, assignment);

    let keys = "/securescore/v1/keys";
    call(&app, &doc, M::GET, keys, keys, None).await;
    op(&M::GET, keys);
    let rotate = "/securescore/v1/keys/rotate";
    let r = call(&app, &doc, M::POST, rotate, rotate, None).await;
    assert!(r.body["value"].as_array().is_some_and(|v| v.iter().any(|k| !k["retired"].is_null())));
    op(&M::POST, rotate);

    assert_eq!(
        call(&app, &doc, M::DELETE, principal, &format!("{principals}/{sp_id}"), None).await.status,
        200
    );
    op(&M::DELETE, principal);
    assert_eq!(call(&app, &doc, M::DELETE, one, &format!("{subs}/{new}"), None).await.status, 200);
    op(&M::DELETE, one);

    // Issue 11: what to fix first, what changed, exemptions (on the demo subscription).
    let improvements = "/securescore/v1/subscriptions/{id}/improvements";
    let r =
        call(&app, &doc, M::GET, improvements, &format!("{subs}/{DEMO}/improvements"), None).await;
    let first = r.body["value"][0].clone();
    assert!(first["recommendations"][0]["name"].is_string(), "{}", r.text);
    let rg = format!("/subscriptions/{DEMO}/resourceGroups/nope");
    call(&app, &doc, M::GET, improvements, &format!("{subs}/{DEMO}/improvements?scope={rg}"), None)
        .await;
    call(&app, &doc, M::GET, improvements, &format!("{subs}/{DEMO}/improvements?scope=x"), None)
        .await;
    op(&M::GET, improvements);
    let resources =
        "/securescore/v1/subscriptions/{id}/improvements/{control}/recommendations/{name}/resources";
    let path = format!(
        "{subs}/{DEMO}/improvements/{}/recommendations/{}/resources?$top=1",
        first["control"].as_str().unwrap(),
        first["recommendations"][0]["name"].as_str().unwrap()
    );
    call(&app, &doc, M::GET, resources, &path, None).await;
    op(&M::GET, resources);
    let changes = "/securescore/v1/subscriptions/{id}/changes";
    let r = call(&app, &doc, M::GET, changes, &format!("{subs}/{DEMO}/changes?$top=2"), None).await;
    assert!(r.body["value"].as_array().is_some_and(|v| !v.is_empty()), "{}", r.text);
    call(&app, &doc, M::GET, changes, &format!("{subs}/{DEMO}/changes?from=x"), None).await;
    op(&M::GET, changes);
    let exemptions = "/securescore/v1/exemptions";
    let exemption = "/securescore/v1/exemptions/{name}";
    let assessment = first["recommendations"][0]["name"].as_str().unwrap();
    let put = json!({"properties": {"scope": format!("/subscriptions/{DEMO}"), "assessment": assessment,
        "category": "Mitigated", "description": "documented", "expiresOn": "2999-01-01T00:00:00Z"}});
    let r =
        call(&app, &doc, M::PUT, exemption, &format!("{exemptions}/doc"), Some(put.to_string()))
            .await;
    assert_eq!(r.status, 201);
    let r =
        call(&app, &doc, M::PUT, exemption, &format!("{exemptions}/doc"), Some(put.to_string()))
            .await;
    assert_eq!(r.status, 200);
    call(&app, &doc, M::PUT, exemption, &format!("{exemptions}/doc"), Some("{}".into())).await;
    op(&M::PUT, exemption);
    call(&app, &doc, M::GET, exemption, &format!("{exemptions}/doc"), None).await;
    call(&app, &doc, M::GET, exemption, &format!("{exemptions}/none"), None).await;
    op(&M::GET, exemption);
    let r = call(&app, &doc, M::GET, exemptions, exemptions, None).await;
    assert_eq!(r.body["value"].as_array().map(Vec::len), Some(1));
    op(&M::GET, exemptions);
    let r = call(&app, &doc, M::GET, changes, &format!("{subs}/{DEMO}/changes?$top=1"), None).await;
    assert_eq!(r.body["value"][0]["cause"], "exemption", "{}", r.text);
    // The history point the exemption recorded carries its reason, as documented.
    let r = call(&app, &doc, M::GET, history, &format!("{subs}/{DEMO}/history"), None).await;
    let reasons: Vec<&Value> =
        r.body["value"].as_array().unwrap().iter().map(|p| &p["reason"]).collect();
    assert!(reasons.contains(&&json!("exemption")), "{}", r.text);
    assert_eq!(
        call(&app, &doc, M::DELETE, exemption, &format!("{exemptions}/doc"), None).await.status,
        200
    );
    assert_eq!(
        call(&app, &doc, M::DELETE, exemption, &format!("{exemptions}/doc"), None).await.status,
        204
    );
    op(&M::DELETE, exemption);

    // Every documented operation was exercised above.
    let mut documented = std::collections::BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_uppercase()));
        }
    }
    assert_eq!(documented, covered);
}

/// The shape check above can fail: it notices undocumented, missing and mistyped fields.
#[test]
fn the_shape_check_catches_what_the_document_does_not_say() {
    let doc: Value =
        serde_json::from_str(include_str!("../../docs/extension-openapi.json")).unwrap();
    let schema = json!({"$ref": "#/components/schemas/Aggregate"});
    let check = |value: Value| {
        let mut found = Vec::new();
        problems(&doc, &schema, &value, "body", &mut found);
        found
    };
    let good = json!({
        "initiative": "ascScore", "percentage": 0.5, "weight": 3, "formula": "f",
        "resourceGraph": {"weightedCurrent": 1.5, "formula": "g"},
        "subscriptions": [{"subscriptionId": DEMO, "displayName": "d",
            "score": {"max": 3, "current": 1.5, "percentage": 0.5}, "weight": 3}],
    });
    assert_eq!(check(good.clone()), Vec::<String>::new());
    let mut extra = good.clone();
    extra["subscriptions"][0]["score"]["bonus"] = json!(1);
    assert_eq!(check(extra), ["body.subscriptions[0].score.bonus: not documented"]);
    let mut missing = good.clone();
    missing.as_object_mut().unwrap().remove("weight");
    assert_eq!(check(missing), ["body.weight: required but absent"]);
    let mut mistyped = good;
    mistyped["percentage"] = json!("half");
    assert_eq!(check(mistyped), ["body.percentage: a string, documented as [\"number\"]"]);
}
