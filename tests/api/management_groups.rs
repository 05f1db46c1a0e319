//! Management groups (`Microsoft.Management`) and the scopes around a subscription: every
//! official management group example replayed, the hierarchy's rules (nesting, moves, cycles,
//! deleting a group with children), role assignments inherited from a group, and secure scores
//! plus assessment and sub-assessment lists at resource-group and management-group scope.

use reqwest::Method;
use serde_json::{json, Value};
use std::path::Path;
use uuid::Uuid;

use super::verify::{stdout, verify};
use super::*;
use securescore::catalog;

const V21: &str = "api-version=2021-04-01";
/// The tenant of the management group examples (its root group is named by it).
const EXAMPLE_TENANT: &str = "20000000-0000-0000-0000-000000000000";
const ROOT_NAME: &str = "Tenant Root Group";

fn group_path(rest: &str) -> String {
    let sep = if rest.contains('?') { '&' } else { '?' };
    format!("/providers/Microsoft.Management/managementGroups/{rest}{sep}{V21}")
}

/// An official management group example (2021-04-01, or 2023-04-01 when `rel` says so). One of
/// them is not strict JSON upstream (a trailing comma): that comma is dropped before parsing.
fn mg_example(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/azure-spec/managementgroups/resource-manager/Microsoft.Management/stable")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut lenient = String::with_capacity(text.len());
    let chars: Vec<char> = text.chars().collect();
    for (i, c) in chars.iter().enumerate() {
        if *c == ',' {
            let next = chars[i + 1..].iter().find(|c| !c.is_whitespace());
            if matches!(next, Some(']') | Some('}')) {
                continue;
            }
        }
        lenient.push(*c);
    }
    serde_json::from_str(&lenient).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Compare an answer with an example: the same keys and values, where a `null` in the example is
/// an absent key, `id`/`name` strings compare without case (the examples spell some GUIDs in
/// capitals) and the keys in `loose` need only be present.
fn same(actual: &Value, expected: &Value, loose: &[&str], at: &str) {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => {
            let keys_a: std::collections::BTreeSet<&String> =
                a.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect();
            let keys_e: std::collections::BTreeSet<&String> =
                e.iter().filter(|(_, v)| !v.is_null()).map(|(k, _)| k).collect();
            assert_eq!(keys_a, keys_e, "keys at {at}: {actual} vs {expected}");
            for k in keys_e {
                if loose.contains(&k.as_str()) {
                    continue;
                }
                let (x, y) = (&a[k], &e[k]);
                if (k == "id" || k == "name") && x.is_string() && y.is_string() {
                    assert!(
                        x.as_str().unwrap().eq_ignore_ascii_case(y.as_str().unwrap()),
                        "{at}.{k}: {x} vs {y}"
                    );
                } else {
                    same(x, y, loose, &format!("{at}.{k}"));
                }
            }
        }
        (Value::Array(a), Value::Array(e)) => {
            assert_eq!(a.len(), e.len(), "length at {at}: {actual} vs {expected}");
            for (i, (x, y)) in a.iter().zip(e).enumerate() {
                same(x, y, loose, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "at {at}"),
    }
}

/// The same document with every number as a float (an example writes `0` where the server
/// writes `0.0`).
fn numbers_as_floats(v: &Value) -> Value {
    match v {
        Value::Number(n) => json!(n.as_f64().unwrap()),
        Value::Array(a) => Value::Array(a.iter().map(numbers_as_floats).collect()),
        Value::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), numbers_as_floats(v))).collect())
        }
        other => other.clone(),
    }
}

/// A server whose tenant (and so its root group) is `tenant`, on a data directory, without the
/// demo data.
async fn spawn_in_tenant(tenant: &str) -> (tempfile::TempDir, TestApp) {
    let dir = tempfile::tempdir().unwrap();
    let config = StoreConfig::Sqlite { data_dir: dir.path().to_path_buf() };
    {
        let store = Store::open(&config).await.unwrap();
        store.meta_or_init("default_tenant", || tenant.to_string()).await.unwrap();
    }
    let app = spawn_with(Options { store: config, demo: false, ..Options::default() }).await;
    assert_eq!(app.tenant.to_string(), tenant);
    (dir, app)
}

async fn add_named_subscription(app: &TestApp, id: &str, name: &str, tenant: Uuid) {
    app.store
        .put_subscription(&Subscription {
            id: Uuid::parse_str(id).unwrap(),
            display_name: name.into(),
            tenant_id: tenant,
            state: "Enabled".into(),
        })
        .await
        .unwrap();
}

/// PUT a group with a display name below a parent (`None`: the root group).
pub(crate) async fn put_group(
    app: &TestApp,
    name: &str,
    display: &str,
    parent: Option<&str>,
) -> Resp {
    let mut body = json!({"properties": {"displayName": display}});
    if let Some(p) = parent {
        body["properties"]["details"] = json!({"parent": {"id": format!("/providers/Microsoft.Management/managementGroups/{p}")}});
    }
    let r = app.put(&group_path(name), &body).await;
    assert_eq!(r.status, 200, "PUT {name}: {}", r.text);
    r
}

async fn patch_group(app: &TestApp, name: &str, body: Value) -> Resp {
    app.request(Method::PATCH, &group_path(name), Some(body.to_string()), &[]).await
}

pub(crate) async fn place(app: &TestApp, group: &str, sub: &str) -> Resp {
    app.request(Method::PUT, &group_path(&format!("{group}/subscriptions/{sub}")), None, &[]).await
}

const LOOSE_TIME: &[&str] = &["updatedTime", "updatedBy"];

#[tokio::test]
async fn put_get_patch_and_delete_replay_their_examples() {
    let (_dir, app) = spawn_in_tenant(EXAMPLE_TENANT).await;
    put_group(&app, "RootGroup", "RootGroup", None).await;

    let ex = mg_example("2021-04-01/examples/PutManagementGroup.json");
    let name = ex["parameters"]["groupId"].as_str().unwrap();
    let r = app.put(&group_path(name), &ex["parameters"]["createManagementGroupRequest"]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    same(&r.body, &ex["responses"]["200"]["body"], LOOSE_TIME, "PUT");
    // The writer is recorded by object id, the time as ARM writes times.
    assert!(r.body["properties"]["details"]["updatedTime"].as_str().unwrap().ends_with('Z'));
    assert!(!r.body["properties"]["details"]["updatedBy"].as_str().unwrap().is_empty());

    let ex = mg_example("2021-04-01/examples/GetManagementGroup.json");
    let name = ex["parameters"]["groupId"].as_str().unwrap();
    put_group(&app, name, "Group 1 Tenant 2", Some("RootGroup")).await;
    let r = app.get(&group_path(name)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    same(&r.body, &ex["responses"]["200"]["body"], LOOSE_TIME, "GET");

    let ex = mg_example("2021-04-01/examples/PatchManagementGroup.json");
    put_group(&app, "AlternateRootGroup", "AlternateRootGroup", None).await;
    let name = ex["parameters"]["groupId"].as_str().unwrap();
    let r = patch_group(&app, name, ex["parameters"]["patchGroupRequest"].clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    same(&r.body, &ex["responses"]["200"]["body"], LOOSE_TIME, "PATCH");
    assert_eq!(r.body["properties"]["details"]["version"], 2, "a change bumps the version");

    let ex = mg_example("2021-04-01/examples/DeleteManagementGroup.json");
    let name = ex["parameters"]["groupId"].as_str().unwrap();
    put_group(&app, name, name, None).await;
    let r = app.delete(&group_path(name)).await;
    assert!(ex["responses"].get(r.status.to_string()).is_some(), "{}: {}", r.status, r.text);
    assert_eq!(r.status, 204);
    let r = app.get(&group_path(name)).await;
    assert_eq!((r.status, r.code()), (404, "NotFound"), "{}", r.text);
    assert!(r.message().contains(&format!("managementGroups/{name}")), "{}", r.message());
    assert_eq!(app.delete(&group_path(name)).await.status, 404);
}

#[tokio::test]
async fn expand_children_with_and_without_recursion_replays_the_examples() {
    let (_dir, app) = spawn_in_tenant(EXAMPLE_TENANT).await;
    let ex = mg_example("2021-04-01/examples/GetManagementGroupWithExpand.json");
    let name = ex["parameters"]["groupId"].as_str().unwrap();
    put_group(&app, name, "Group 1 Tenant 2", None).await;
    for child in &ex["responses"]["200"]["body"]["properties"]["children"].as_array().unwrap()[..] {
        let (id, display) =
            (child["name"].as_str().unwrap(), child["displayName"].as_str().unwrap());
        if child["type"] == "/subscriptions" {
            add_named_subscription(&app, id, display, app.tenant).await;
            assert_eq!(place(&app, name, id).await.status, 200);
        } else {
            put_group(&app, id, display, Some(name)).await;
        }
    }
    let r = app.get(&group_path(&format!("{name}?$expand=children"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The root group's display name is Azure's "Tenant Root Group" (the example shows its id).
    let mut want = ex["responses"]["200"]["body"].clone();
    want["properties"]["details"]["parent"]["displayName"] = json!(ROOT_NAME);
    same(&r.body, &want, LOOSE_TIME, "expand");

    let (_dir, app) = spawn_in_tenant(EXAMPLE_TENANT).await;
    let ex = mg_example("2021-04-01/examples/GetManagementGroupWithExpandAndRecurse.json");
    put_group(&app, "RootGroup", "RootGroup", None).await;
    put_group(&app, "Child", "Child", Some("RootGroup")).await;
    put_group(&app, "AnotherChild", "Leaf", Some("RootGroup")).await;
    put_group(&app, "Leaf", "Leaf", Some("Child")).await;
    let sub = "728bcbe4-8d56-4510-86c2-4921b8beefbc";
    add_named_subscription(&app, sub, "Pay-As-You-Go", app.tenant).await;
    assert_eq!(place(&app, "Leaf", sub).await.status, 200);
    let r = app.get(&group_path("RootGroup?$expand=children&$recurse=true")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut want = ex["responses"]["200"]["body"].clone();
    want["properties"]["details"]["parent"]["displayName"] = json!(ROOT_NAME);
    same(&r.body, &want, &["updatedTime", "updatedBy", "version"], "recurse");
    // Without $recurse only the direct children show; $recurse needs $expand=children.
    let r = app.get(&group_path("RootGroup?$expand=children")).await;
    assert!(r.body["properties"]["children"][0].get("children").is_none(), "{}", r.text);
    let r = app.get(&group_path("RootGroup?$recurse=true")).await;
    assert_eq!((r.status, r.code()), (400, "BadRequest"), "{}", r.text);
    let r = app.get(&group_path("RootGroup?$expand=everything")).await;
    assert_eq!(r.status, 400, "{}", r.text);
}

#[tokio::test]
async fn ancestors_and_path_replay_their_examples() {
    let (_dir, app) = spawn_in_tenant(EXAMPLE_TENANT).await;
    let ex = mg_example("2021-04-01/examples/GetManagementGroupWithAncestors.json");
    let body = &ex["responses"]["200"]["body"];
    let name = body["name"].as_str().unwrap();
    let parent = &body["properties"]["details"]["parent"];
    put_group(&app, parent["name"].as_str().unwrap(), "Parent display name", None).await;
    put_group(&app, name, "Group 1 Tenant 2", parent["name"].as_str()).await;

    let r = app.get(&group_path(&format!("{name}?$expand=ancestors"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut want = body.clone();
    want["properties"]["details"]["managementGroupAncestorsChain"][1]["displayName"] =
        json!(ROOT_NAME);
    same(&r.body, &want, LOOSE_TIME, "ancestors");

    let ex = mg_example("2021-04-01/examples/GetManagementGroupWithPath.json");
    let r = app.get(&group_path(&format!("{name}?$expand=path"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut want = ex["responses"]["200"]["body"].clone();
    want["properties"]["details"]["path"][0]["displayName"] = json!(ROOT_NAME);
    same(&r.body, &want, LOOSE_TIME, "path");
}

#[tokio::test]
async fn the_list_of_groups_replays_its_example_after_the_root_group() {
    let (_dir, app) = spawn_in_tenant(EXAMPLE_TENANT).await;
    let ex = mg_example("2021-04-01/examples/ListManagementGroups.json");
    let want = &ex["responses"]["200"]["body"];
    for g in want["value"].as_array().unwrap() {
        put_group(
            &app,
            g["name"].as_str().unwrap(),
            g["properties"]["displayName"].as_str().unwrap(),
            None,
        )
        .await;
    }
    let r = app.get(&group_path("").replace("managementGroups/?", "managementGroups?")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let mut got = r.body.clone();
    let items = got["value"].as_array_mut().unwrap();
    // The tenant root group is a group like the others, listed first.
    let root = items.remove(0);
    assert_eq!(root["name"], EXAMPLE_TENANT);
    assert_eq!(root["properties"]["displayName"], ROOT_NAME);
    assert_eq!(root["properties"]["tenantId"], EXAMPLE_TENANT);
    same(&got, want, &[], "list");
    // The root group itself reads like a group without a parent.
    let r = app.get(&group_path(EXAMPLE_TENANT)).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["properties"]["displayName"], ROOT_NAME);
    assert!(r.body["properties"]["details"].get("parent").is_none(), "{}", r.text);
}

#[tokio::test]
async fn subscriptions_of_a_group_replay_their_examples() {
    let (_dir, app) = spawn_in_tenant(EXAMPLE_TENANT).await;
    let add = mg_example("2021-04-01/examples/AddManagementGroupSubscription.json");
    let all = mg_example("2021-04-01/examples/GetAllSubscriptionsFromManagementGroup.json");
    let sub = add["parameters"]["subscriptionId"].as_str().unwrap();
    let group = add["parameters"]["groupId"].as_str().unwrap();
    let tenant =
        Uuid::parse_str(add["responses"]["200"]["body"]["properties"]["tenant"].as_str().unwrap())
            .unwrap();
    let item = &all["responses"]["200"]["body"]["value"][0];
    add_named_subscription(&app, sub, item["properties"]["displayName"].as_str().unwrap(), tenant)
        .await;
    put_group(&app, group, group, None).await;

    let r = place(&app, group, sub).await;
    assert_eq!(r.status, 200, "{}", r.text);
    // The example's id starts with a space and its parent and display name are placeholders:
    // those fields are compared by presence, the others exactly.
    let want = &add["responses"]["200"]["body"];
    same(&r.body, want, &["id", "displayName", "parent"], "add");
    assert_eq!(r.body["id"].as_str().unwrap(), want["id"].as_str().unwrap().trim());
    assert_eq!(r.body["properties"]["parent"]["id"], want["properties"]["parent"]["id"]);

    let r = app.get(&group_path(&format!("{group}/subscriptions"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    same(&r.body, &all["responses"]["200"]["body"], &[], "list");
    let r = app.get(&group_path(&format!("{group}/subscriptions/{sub}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);
    same(&r.body, item, &[], "get");

    let remove = mg_example("2021-04-01/examples/RemoveManagementGroupSubscription.json");
    let r = app.delete(&group_path(&format!("{group}/subscriptions/{sub}"))).await;
    assert!(remove["responses"].get(r.status.to_string()).is_some(), "{}", r.status);
    let r = app.get(&group_path(&format!("{group}/subscriptions"))).await;
    assert_eq!(r.body["value"], json!([]));
    assert_eq!(app.get(&group_path(&format!("{group}/subscriptions/{sub}"))).await.status, 404);
    // Back below the root group.
    let r = app.get(&group_path(&format!("{EXAMPLE_TENANT}/subscriptions/{sub}"))).await;
    assert_eq!(r.status, 200, "{}", r.text);

    // Unknown subscription, unknown group, a malformed id.
    let r = place(&app, group, &Uuid::new_v4().to_string()).await;
    assert_eq!((r.status, r.code()), (404, "SubscriptionNotFound"), "{}", r.text);
    let r = place(&app, "nope", sub).await;
    assert_eq!((r.status, r.code()), (404, "NotFound"), "{}", r.text);
    let r = place(&app, group, "not-a-guid").await;
    assert_eq!((r.status, r.code()), (400, "InvalidSubscriptionId"), "{}", r.text);
}

#[tokio::test]
async fn descendants_replay_the_example_and_page() {
    let (_dir, app) = spawn_in_tenant(EXAMPLE_TENANT).await;
    let ex = mg_example("2023-04-01/examples/GetDescendants.json");
    let want = &ex["responses"]["200"]["body"];
    put_group(&app, want["value"][0]["name"].as_str().unwrap(), "Group 1", None).await;
    add_named_subscription(
        &app,
        want["value"][1]["name"].as_str().unwrap(),
        "Subscription 4",
        app.tenant,
    )
    .await;
    let r = app
        .get(&format!(
            "/providers/Microsoft.Management/managementGroups/{EXAMPLE_TENANT}/descendants?api-version=2023-04-01"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    same(&r.body, want, &[], "descendants");

    // Deeper trees, depth first, paged by $top.
    put_group(&app, "Deep", "Deep", Some("20000000-0001-0000-0000-000000000000")).await;
    let (items, pages) = app
        .get_all(&format!(
            "/providers/Microsoft.Management/managementGroups/{EXAMPLE_TENANT}/descendants?api-version=2023-04-01&$top=1"
        ))
        .await;
    assert_eq!(pages, 3);
    let names: Vec<&str> = items.iter().map(|i| i["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["20000000-0001-0000-0000-000000000000", "Deep", "20000000-0004-0000-0000-000000000000"]
    );
    assert_eq!(items[1]["properties"]["parent"]["id"], want["value"][0]["id"]);
    // At 2021-04-01 a subscription descendant's type is "/subscriptions".
    let r = app.get(&group_path(&format!("{EXAMPLE_TENANT}/descendants"))).await;
    assert_eq!(r.body["value"][2]["type"], "/subscriptions", "{}", r.text);
}

#[tokio::test]
async fn nesting_moves_cycles_and_deletes_follow_arms_rules() {
    let app = spawn_with(Options { demo: false, ..Options::default() }).await;
    let s = Uuid::new_v4();
    app.add_subscription(s).await;
    put_group(&app, "A", "A", None).await;
    put_group(&app, "B", "B", Some("A")).await;
    put_group(&app, "C", "C", Some("b")).await;
    assert_eq!(place(&app, "C", &s.to_string()).await.status, 200);

    let children = |r: &Resp| -> Vec<String> {
        r.body["properties"]["children"]
            .as_array()
            .map(|a| a.iter().map(|c| c["name"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default()
    };
    let r = app.get(&group_path("A?$expand=children&$recurse=true")).await;
    let leaf = &r.body["properties"]["children"][0]["children"][0]["children"][0];
    assert_eq!(leaf["name"], s.to_string(), "{}", r.text);
    let r = app.get(&group_path("C?$expand=ancestors")).await;
    let chain: Vec<&str> = r.body["properties"]["details"]["managementGroupAncestorsChain"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(chain, ["B", "A", &app.tenant.to_string()]);

    // A cycle is refused in every spelling: PATCH, PUT, itself; nothing changes.
    for r in [
        patch_group(&app, "A", json!({"parentGroupId": "/providers/Microsoft.Management/managementGroups/C"})).await,
        patch_group(&app, "a", json!({"parentGroupId": "A"})).await,
        app.put(&group_path("A"), &json!({"properties": {"details": {"parent": {"id": "/providers/Microsoft.Management/managementGroups/b"}}}})).await,
    ] {
        assert_eq!((r.status, r.code()), (400, "BadRequest"), "{}", r.text);
        assert!(r.message().contains("descendants"), "{}", r.message());
    }
    let r = app.get(&group_path("A?$expand=children")).await;
    assert_eq!(children(&r), ["B"]);

    // A move: C from B to A, subscriptions stay with their group.
    let r = patch_group(
        &app,
        "C",
        json!({"parentGroupId": "/providers/Microsoft.Management/managementGroups/A"}),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["properties"]["details"]["parent"]["name"], "A");
    let r = app.get(&group_path("A?$expand=children")).await;
    assert_eq!(children(&r), ["B", "C"]);
    let r = app.get(&group_path("B?$expand=children")).await;
    assert!(children(&r).is_empty());

    // A group with children is not deleted (groups or subscriptions); an empty one is.
    let r = app.delete(&group_path("A")).await;
    assert_eq!((r.status, r.code()), (400, "BadRequest"), "{}", r.text);
    assert!(r.message().contains("children"), "{}", r.message());
    let r = app.delete(&group_path("C")).await;
    assert_eq!(r.status, 400, "C holds a subscription: {}", r.text);
    assert_eq!(app.delete(&group_path("B")).await.status, 204);
    assert_eq!(app.get(&group_path("B")).await.status, 404);
    // Moving the subscription elsewhere empties C.
    assert_eq!(place(&app, "A", &s.to_string()).await.status, 200);
    assert_eq!(app.delete(&group_path("C")).await.status, 204);

    // The root group cannot be changed; parents must exist; names are checked.
    let root = app.tenant.to_string();
    let r = app.delete(&group_path(&root)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = app.put(&group_path(&root), &json!({"properties": {"displayName": "x"}})).await;
    assert_eq!(r.status, 400, "{}", r.text);
    let r = app.put(&group_path("D"), &json!({"properties": {"details": {"parent": {"id": "/providers/Microsoft.Management/managementGroups/nope"}}}})).await;
    assert_eq!((r.status, r.code()), (400, "BadRequest"), "{}", r.text);
    let r = app.put(&group_path("bad%20name"), &json!({})).await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceName"), "{}", r.text);
    let r = patch_group(&app, "nope", json!({"displayName": "x"})).await;
    assert_eq!((r.status, r.code()), (404, "NotFound"), "{}", r.text);
    let r =
        app.get("/providers/Microsoft.Management/managementGroups/A?api-version=2020-01-01").await;
    assert_eq!((r.status, r.code()), (400, "InvalidApiVersionParameter"), "{}", r.text);
    // PUT with no parent puts a group (back) below the root.
    let r = app.put(&group_path("A"), &json!({"properties": {"displayName": "A again"}})).await;
    assert_eq!(r.body["properties"]["details"]["parent"]["name"], root.as_str(), "{}", r.text);
    assert_eq!(r.body["properties"]["displayName"], "A again");
}

/// A token of a new service principal with `role` at `scope` (or no role), from the token
/// endpoint.
async fn token_with(app: &TestApp, role: Option<(&str, &str)>) -> String {
    token_with_roles(app, role.as_slice()).await
}

/// A token of a new service principal with every (role, scope) of `roles`.
pub(crate) async fn token_with_roles(app: &TestApp, roles: &[(&str, &str)]) -> String {
    use securescore::identity::admin::{self, NewPrincipal};
    let (p, secret) = admin::create_principal(
        &app.store,
        NewPrincipal {
            display_name: "mg tester".into(),
            kind: securescore::store::PrincipalKind::ServicePrincipal,
            user_name: None,
            password: None,
            tenant_id: Some(app.tenant),
        },
    )
    .await
    .unwrap();
    for (role, scope) in roles {
        admin::assign(&app.store, &p.id.to_string(), role, scope).await.unwrap();
    }
    let r = app
        .http
        .post(format!("{}/{}/oauth2/v2.0/token", app.base, app.tenant))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &p.app_id.unwrap().to_string()),
            ("client_secret", &secret),
            ("scope", "https://management.azure.com//.default"),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = r.json().await.unwrap();
    body["access_token"].as_str().expect("a token").to_string()
}

pub(crate) async fn get_as(app: &TestApp, path: &str, token: &str) -> (u16, Value) {
    let r = app.http.get(format!("{}{path}", app.base)).bearer_auth(token).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_role_at_a_group_applies_to_everything_below_it_and_nothing_else() {
    let app = spawn_app().await;
    let s = Uuid::new_v4();
    app.add_subscription(s).await;
    put_group(&app, "Parent", "Parent", None).await;
    put_group(&app, "Child", "Child", Some("Parent")).await;
    put_group(&app, "Sibling", "Sibling", None).await;
    assert_eq!(place(&app, "Child", &s.to_string()).await.status, 200);
    let vm = format!(
        "/subscriptions/{s}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
    );
    let name = "4fb67663-9ab9-475d-b026-8c544cced439";
    assert_eq!(
        app.put(&assessment_path(&vm, name, "2021-06-01"), &assessment_body("Unhealthy"))
            .await
            .status,
        201
    );

    let group_scope = |g: &str| format!("/providers/Microsoft.Management/managementGroups/{g}");
    let reader = token_with(&app, Some(("Reader", &group_scope("Parent")))).await;
    let sibling = token_with(&app, Some(("Reader", &group_scope("Sibling")))).await;
    let nobody = token_with(&app, None).await;
    let rg_score = format!("/subscriptions/{s}/resourceGroups/rg/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01");
    let child_score = "/providers/Microsoft.Management/managementGroups/Child/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01";
    let reads = [
        score_path(&s.to_string()),
        assessment_path(&vm, name, "2021-06-01"),
        rg_score.clone(),
        child_score.to_string(),
        group_path("Child"),
    ];

    // The reader at the parent reads the subscription two levels down, its resource groups and
    // resources, and the groups in between.
    for path in &reads {
        let (status, body) = get_as(&app, path, &reader).await;
        assert_eq!(status, 200, "{path}: {body}");
    }
    let (_, subs) = get_as(&app, "/subscriptions?api-version=2022-12-01", &reader).await;
    let listed: Vec<&str> = subs["value"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["subscriptionId"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [s.to_string().as_str()], "only the subscription below the group");
    // ... but may not write, nor read what lies elsewhere (the demo subscription, the sibling).
    let r = app
        .http
        .put(format!("{}{}", app.base, assessment_path(&vm, name, "2021-06-01")))
        .bearer_auth(&reader)
        .json(&assessment_body("Healthy"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    for path in [score_path(DEMO), group_path("Sibling")] {
        let (status, body) = get_as(&app, &path, &reader).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (403, Some("AuthorizationFailed")),
            "{path}"
        );
    }
    let (_, groups) =
        get_as(&app, &group_path("").replace("managementGroups/?", "managementGroups?"), &reader)
            .await;
    let names: Vec<&str> =
        groups["value"].as_array().unwrap().iter().map(|v| v["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Parent", "Child"], "the list shows the groups the caller may read");

    // Nobody else reads any of it.
    for token in [&sibling, &nobody] {
        for path in &reads {
            let (status, body) = get_as(&app, path, token).await;
            assert_eq!(status, 403, "{path}: {body}");
        }
    }

    // Moving the subscription out of the group takes the inherited access away at once.
    assert_eq!(app.delete(&group_path(&format!("Child/subscriptions/{s}"))).await.status, 200);
    let (status, _) = get_as(&app, &score_path(&s.to_string()), &reader).await;
    assert_eq!(status, 403);
    // ... and placing it below the sibling gives it to the sibling's reader.
    assert_eq!(place(&app, "Sibling", &s.to_string()).await.status, 200);
    let (status, _) = get_as(&app, &score_path(&s.to_string()), &sibling).await;
    assert_eq!(status, 200);
    // The extension API inherits the same way.
    let (status, _) =
        get_as(&app, &format!("/securescore/v1/subscriptions/{s}/history"), &sibling).await;
    assert_eq!(status, 200);
    let (status, _) =
        get_as(&app, &format!("/securescore/v1/aggregate?subscriptions={s}"), &sibling).await;
    assert_eq!(status, 200);
    let (status, _) =
        get_as(&app, &format!("/securescore/v1/aggregate?subscriptions={s},{DEMO}"), &sibling)
            .await;
    assert_eq!(status, 403);

    // Owning a group is not enough to pull someone else's subscription below it, nor to hang
    // the group below a group the caller cannot write.
    let group_owner = token_with(&app, Some(("Owner", &group_scope("Parent")))).await;
    let send = |method: Method, path: String, body: Option<Value>, token: String| {
        let app = &app;
        async move {
            let mut r = app.http.request(method, format!("{}{path}", app.base)).bearer_auth(token);
            if let Some(b) = body {
                r = r.json(&b);
            }
            r.send().await.unwrap().status().as_u16()
        }
    };
    let pull = group_path(&format!("Parent/subscriptions/{DEMO}"));
    assert_eq!(send(Method::PUT, pull.clone(), None, group_owner.clone()).await, 403);
    let climb = json!({"parentGroupId": "Sibling"});
    assert_eq!(
        send(Method::PATCH, group_path("Child"), Some(climb), group_owner.clone()).await,
        403
    );
    let mine = json!({"properties": {"details": {"parent": {"id": "/providers/Microsoft.Management/managementGroups/Parent"}}}});
    let put = |name: &str, body: &Value| {
        send(Method::PUT, group_path(name), Some(body.clone()), group_owner.clone())
    };
    assert_eq!(put("Mine", &mine).await, 200, "a new group below a group the caller owns");
    let at_root = json!({"properties": {"displayName": "x"}});
    assert_eq!(put("Loose", &at_root).await, 403, "a new group at the root needs write there");
    assert_eq!(put("Mine", &at_root).await, 403, "moving to the root needs write there");
    assert_eq!(put("Mine", &mine).await, 200, "an update in place");
    let (status, _) = get_as(&app, &group_path("Loose"), &group_owner).await;
    assert_eq!(status, 403, "nothing was created (checked at the root)");
    assert_eq!(app.get(&group_path("Loose")).await.status, 404);
    assert_eq!(
        send(
            Method::PATCH,
            group_path("Child"),
            Some(json!({"displayName": "renamed"})),
            group_owner.clone()
        )
        .await,
        200
    );
    // With Owner on the subscription too, the move is allowed.
    let both = token_with_roles(
        &app,
        &[("Owner", &group_scope("Parent")), ("Owner", &format!("/subscriptions/{DEMO}"))],
    )
    .await;
    assert_eq!(send(Method::PUT, pull.clone(), None, both.clone()).await, 200);
    assert_eq!(send(Method::DELETE, pull, None, both).await, 200);
    // An assignment at a group scope is refused when the scope is not one.
    use securescore::identity::admin;
    let err = admin::assign(
        &app.store,
        &Uuid::new_v4().to_string(),
        "Reader",
        "/providers/Microsoft.Management/managementGroups/a b",
    )
    .await;
    assert!(err.is_err());
}

/// Assessment names of scored controls (one per control, several controls).
fn scored_assessments(n: usize) -> Vec<String> {
    let cat = catalog::builtin();
    cat.controls()
        .iter()
        .filter(|c| c.max_score > 0)
        .filter_map(|c| c.assessment_definitions.first().cloned())
        .take(n)
        .collect()
}

/// A tiny deterministic generator (no randomness in tests, but varied sequences).
struct Lcg(u64);
impl Lcg {
    fn next(&mut self, n: usize) -> usize {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((self.0 >> 33) % n as u64) as usize
    }
}

fn strip_prefix_ids(v: &Value, prefix: &str) -> Value {
    let text = v.to_string().replace(prefix, "{scope}");
    serde_json::from_str(&text).unwrap()
}

async fn scores_at(app: &TestApp, scope: &str) -> (Value, Value, Value) {
    let base = format!("{scope}/providers/Microsoft.Security");
    let score = app.get(&format!("{base}/secureScores/ascScore?api-version=2020-01-01")).await;
    assert_eq!(score.status, 200, "{scope}: {}", score.text);
    let controls = app
        .get(&format!("{base}/secureScoreControls?api-version=2020-01-01&$expand=definition"))
        .await;
    assert_eq!(controls.status, 200, "{}", controls.text);
    let by_name = app
        .get(&format!("{base}/secureScores/ascScore/secureScoreControls?api-version=2020-01-01"))
        .await;
    assert_eq!(by_name.status, 200, "{}", by_name.text);
    (
        strip_prefix_ids(&score.body, scope),
        strip_prefix_ids(&controls.body, scope),
        strip_prefix_ids(&by_name.body, scope),
    )
}

#[tokio::test]
async fn resource_group_scores_equal_a_recomputation_from_that_groups_assessments() {
    let app = spawn_with(Options { demo: false, ..Options::default() }).await;
    // `s` gets writes in rg1, rg2 and at subscription level; `oracle` gets exactly rg1's, so its
    // subscription score is rg1's score by the same formula.
    let (s, oracle) = (Uuid::new_v4(), Uuid::new_v4());
    app.add_subscription(s).await;
    app.add_subscription(oracle).await;
    let names = scored_assessments(4);
    let statuses = ["Healthy", "Unhealthy", "NotApplicable"];
    let resource = |sub: Uuid, place: usize, i: usize| {
        match place {
        0 => format!("/subscriptions/{sub}/resourceGroups/RG1/providers/Microsoft.Compute/virtualMachines/vm{i}"),
        1 => format!("/subscriptions/{sub}/resourceGroups/rg2/providers/Microsoft.Compute/virtualMachines/vm{i}"),
        _ => format!("/subscriptions/{sub}"),
    }
    };
    let rg1 = format!("/subscriptions/{s}/resourceGroups/RG1");
    let mut rng = Lcg(7);
    let empty = scores_at(&app, &rg1).await;
    assert_eq!(
        empty.0["properties"]["score"],
        json!({"max": 0, "current": 0.0, "percentage": 0.0})
    );
    for round in 0..4 {
        for _ in 0..12 {
            let (place, i, n) = (rng.next(3), rng.next(4), &names[rng.next(names.len())]);
            let delete = round > 0 && rng.next(4) == 0;
            for sub in [s, oracle] {
                if sub == oracle && place != 0 {
                    continue;
                }
                let path = assessment_path(&resource(sub, place, i), n, "2021-06-01");
                let r = if delete {
                    app.delete(&path).await
                } else {
                    app.put(&path, &assessment_body(statuses[rng.0 as usize % 3])).await
                };
                assert!(r.status < 300 || r.status == 204, "{path}: {}", r.text);
            }
        }
        let got = scores_at(&app, &rg1).await;
        let want = scores_at(&app, &format!("/subscriptions/{oracle}")).await;
        assert_eq!(got, want, "round {round}");
        assert!(got.0["properties"]["score"]["max"].as_i64().unwrap() > 0 || round == 0);
    }
    // Ids carry the resource group scope; the casing of the request is kept.
    let r = app.get(&format!("/subscriptions/{s}/resourceGroups/rg1/providers/Microsoft.Security/secureScores?api-version=2020-01-01")).await;
    assert_eq!(r.body["value"][0]["id"], format!("/subscriptions/{s}/resourceGroups/rg1/providers/Microsoft.Security/secureScores/ascScore"));
    assert_eq!(r.body["value"][0]["type"], "Microsoft.Security/secureScores");
    // Errors as at subscription scope.
    let r = app.get(&format!("/subscriptions/{s}/resourceGroups/rg1/providers/Microsoft.Security/secureScores/other?api-version=2020-01-01")).await;
    assert_eq!((r.status, r.code()), (404, "ResourceNotFound"));
    let r = app.get(&format!("/subscriptions/{}/resourceGroups/rg1/providers/Microsoft.Security/secureScores?api-version=2020-01-01", Uuid::new_v4())).await;
    assert_eq!((r.status, r.code()), (404, "SubscriptionNotFound"));
    let r = app.get(&format!("/subscriptions/{s}/resourceGroups/rg1/providers/Microsoft.Security/secureScores?api-version=2021-06-01")).await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceType"), "{}", r.text);
}

#[tokio::test]
async fn the_official_management_group_score_examples_replay_exactly() {
    // The demo subscription carries the counts of the examples; alone in a group, the group's
    // score is its score and its controls are its controls.
    let app = spawn_app().await;
    put_group(&app, "groupId", "groupId", None).await;
    assert_eq!(place(&app, "groupId", DEMO).await.status, 200);
    let scope =
        "/providers/Microsoft.Management/managementGroups/groupId/providers/Microsoft.Security";
    let r = app.get(&format!("{scope}/secureScores/ascScore?api-version=2020-01-01")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(
        r.body,
        example("secureScores/GetSecureScoresSingleForManagementGroup_example.json")["responses"]
            ["200"]["body"]
    );
    let r = app.get(&format!("{scope}/secureScores?api-version=2020-01-01")).await;
    assert_eq!(
        r.body,
        example("secureScores/ListSecureScoresForManagementGroup_example.json")["responses"]["200"]
            ["body"]
    );
    // The controls example lists the same controls in another order, and predates the
    // catalogue's current display name of one control: compared by name, numbers as numbers.
    let r = app.get(&format!("{scope}/secureScoreControls?api-version=2020-01-01")).await;
    let mut want = example("secureScores/ListSecureScoreControlsForManagementGroup_example.json")
        ["responses"]["200"]["body"]["value"]
        .as_array()
        .unwrap()
        .clone();
    for c in &mut want {
        let def = catalog::builtin().control(c["name"].as_str().unwrap()).unwrap();
        c["properties"]["displayName"] = json!(def.display_name);
    }
    let mut got = r.body["value"].as_array().unwrap().clone();
    let by_name = |v: &mut Vec<Value>| v.sort_by_key(|c| c["name"].as_str().unwrap().to_string());
    by_name(&mut want);
    by_name(&mut got);
    assert_eq!(numbers_as_floats(&json!(got)), numbers_as_floats(&json!(want)));
    assert!(r.body.get("nextLink").is_none());
    // Unknown groups and names.
    let r = app.get("/providers/Microsoft.Management/managementGroups/nope/providers/Microsoft.Security/secureScores?api-version=2020-01-01").await;
    assert_eq!((r.status, r.code()), (404, "NotFound"));
    let r = app.get(&format!("{scope}/secureScores/other?api-version=2020-01-01")).await;
    assert_eq!((r.status, r.code()), (404, "ResourceNotFound"));
}

#[tokio::test]
async fn management_group_scores_are_the_aggregate_of_every_subscription_below() {
    let app = spawn_app().await;
    let (a, b, outside) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for s in [a, b, outside] {
        app.add_subscription(s).await;
    }
    put_group(&app, "Top", "Top", None).await;
    put_group(&app, "Nested", "Nested", Some("Top")).await;
    assert_eq!(place(&app, "Top", &a.to_string()).await.status, 200);
    assert_eq!(place(&app, "Nested", &b.to_string()).await.status, 200);
    assert_eq!(place(&app, "Nested", DEMO).await.status, 200);
    let names = scored_assessments(5);
    let mut rng = Lcg(11);
    for s in [a, b, outside] {
        for i in 0..10 {
            let vm = format!("/subscriptions/{s}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{}", i % 4);
            let status = ["Healthy", "Unhealthy", "Unhealthy", "NotApplicable"][rng.next(4)];
            let r = app
                .put(
                    &assessment_path(&vm, &names[rng.next(names.len())], "2021-06-01"),
                    &assessment_body(status),
                )
                .await;
            assert!(r.status < 300, "{}", r.text);
        }
    }
    let check = |below: Vec<Uuid>, group: &'static str| {
        let app = &app;
        async move {
            let list: Vec<String> = below.iter().map(|s| s.to_string()).collect();
            let agg = app
                .get(&format!("/securescore/v1/aggregate?subscriptions={}", list.join(",")))
                .await;
            assert_eq!(agg.status, 200, "{}", agg.text);
            let scope = format!("/providers/Microsoft.Management/managementGroups/{group}");
            let (score, controls, _) = scores_at(app, &scope).await;
            let p = &score["properties"];
            assert_eq!(p["score"]["percentage"], agg.body["percentage"], "{group}");
            assert_eq!(p["weight"], agg.body["weight"], "{group}");
            assert_eq!(score["id"], "{scope}/providers/Microsoft.Security/secureScores/ascScore");
            // Controls: counts summed over the subscriptions below, scored by the control formula.
            let mut sums: std::collections::BTreeMap<String, [i64; 3]> = Default::default();
            for s in &below {
                let r = app.get(&format!("/subscriptions/{s}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01")).await;
                for c in r.body["value"].as_array().unwrap() {
                    let e = sums.entry(c["name"].as_str().unwrap().to_string()).or_default();
                    for (k, key) in [
                        "healthyResourceCount",
                        "unhealthyResourceCount",
                        "notApplicableResourceCount",
                    ]
                    .iter()
                    .enumerate()
                    {
                        e[k] += c["properties"][key].as_i64().unwrap();
                    }
                }
            }
            let mut got: std::collections::BTreeMap<String, [i64; 3]> = Default::default();
            let mut max = 0;
            for c in controls["value"].as_array().unwrap() {
                let p = &c["properties"];
                got.insert(
                    c["name"].as_str().unwrap().to_string(),
                    [
                        p["healthyResourceCount"].as_i64().unwrap(),
                        p["unhealthyResourceCount"].as_i64().unwrap(),
                        p["notApplicableResourceCount"].as_i64().unwrap(),
                    ],
                );
                max += p["score"]["max"].as_i64().unwrap();
                let def = catalog::builtin().control(c["name"].as_str().unwrap()).unwrap();
                let (h, u) = (
                    p["healthyResourceCount"].as_i64().unwrap(),
                    p["unhealthyResourceCount"].as_i64().unwrap(),
                );
                let want_max = if h + u > 0 { def.max_score } else { 0 };
                assert_eq!(p["score"]["max"], want_max);
                assert_eq!(p["weight"], h + u);
                assert!(c["properties"]["definition"].is_object(), "$expand=definition");
            }
            assert_eq!(got, sums, "{group}");
            assert_eq!(score["properties"]["score"]["max"], max);
        }
    };
    check(vec![a, b, Uuid::parse_str(DEMO).unwrap()], "Top").await;
    check(vec![b, Uuid::parse_str(DEMO).unwrap()], "Nested").await;
    // A write below moves the group's score (cached views are dropped).
    let before = app.get("/providers/Microsoft.Management/managementGroups/Nested/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01").await.body;
    let vm = format!(
        "/subscriptions/{b}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/new"
    );
    app.put(&assessment_path(&vm, &names[0], "2021-06-01"), &assessment_body("Unhealthy")).await;
    let after = app.get("/providers/Microsoft.Management/managementGroups/Nested/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01").await.body;
    assert_ne!(before, after);
    check(vec![b, Uuid::parse_str(DEMO).unwrap()], "Nested").await;
    // A move regroups: `a` into Nested.
    assert_eq!(place(&app, "Nested", &a.to_string()).await.status, 200);
    check(vec![a, b, Uuid::parse_str(DEMO).unwrap()], "Nested").await;
}

#[tokio::test]
async fn assessments_and_sub_assessments_list_at_a_management_group_across_subscriptions() {
    let app = spawn_with(Options { demo: false, page_size: 2, ..Options::default() }).await;
    let (a, b, outside) = (Uuid::new_v4(), Uuid::new_v4(), Uuid::new_v4());
    for s in [a, b, outside] {
        app.add_subscription(s).await;
    }
    put_group(&app, "G", "G", None).await;
    put_group(&app, "H", "H", Some("G")).await;
    assert_eq!(place(&app, "G", &a.to_string()).await.status, 200);
    assert_eq!(place(&app, "H", &b.to_string()).await.status, 200);
    let names = scored_assessments(3);
    let mut want = Vec::new();
    for s in [a, b, outside] {
        for (i, n) in names.iter().enumerate() {
            let vm = format!("/subscriptions/{s}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm{i}");
            assert_eq!(
                app.put(&assessment_path(&vm, n, "2021-06-01"), &assessment_body("Unhealthy"))
                    .await
                    .status,
                201
            );
            let sub_body = json!({"properties": {
                "displayName": "finding", "id": "1001",
                "status": {"code": "Unhealthy", "severity": "High"},
                "resourceDetails": {"source": "Azure"},
                "additionalData": {"assessedResourceType": "ServerVulnerability", "type": "Vulnerability"}
            }});
            let sub_path = format!("{vm}/providers/Microsoft.Security/assessments/{n}/subAssessments/f{i}?api-version=2019-01-01-preview");
            let r = app.put(&sub_path, &sub_body).await;
            assert!(r.status < 300, "{}", r.text);
            if s != outside {
                want.push(
                    format!("{vm}/providers/Microsoft.Security/assessments/{n}")
                        .to_ascii_lowercase(),
                );
            }
        }
    }
    want.sort();
    let (items, pages) = app.get_all("/providers/Microsoft.Management/managementGroups/G/providers/Microsoft.Security/assessments?api-version=2021-06-01").await;
    assert_eq!(pages, 3, "6 assessments, 2 a page, one continuation across subscriptions");
    let got: Vec<String> =
        items.iter().map(|i| i["id"].as_str().unwrap().to_ascii_lowercase()).collect();
    assert_eq!(got, want);
    let (items, _) = app.get_all("/providers/Microsoft.Management/managementGroups/H/providers/Microsoft.Security/assessments?api-version=2021-06-01").await;
    assert!(
        items.iter().all(|i| i["id"].as_str().unwrap().contains(&b.to_string()))
            && items.len() == 3
    );

    let (items, pages) = app.get_all("/providers/Microsoft.Management/managementGroups/G/providers/Microsoft.Security/subAssessments?api-version=2019-01-01-preview").await;
    assert_eq!((items.len(), pages), (6, 3));
    assert!(items.iter().all(|i| !i["id"].as_str().unwrap().contains(&outside.to_string())));
    assert_eq!(items[0]["type"], "Microsoft.Security/assessments/subAssessments");
    // Of one assessment: one finding per subscription below the group.
    let one = format!("/providers/Microsoft.Management/managementGroups/G/providers/Microsoft.Security/assessments/{}/subAssessments?api-version=2019-01-01-preview", names[1]);
    let (items, pages) = app.get_all(&one).await;
    assert_eq!((items.len(), pages), (2, 1));
    assert!(items.iter().all(|i| i["id"].as_str().unwrap().contains(&names[1])));

    let r = app.get("/providers/Microsoft.Management/managementGroups/nope/providers/Microsoft.Security/assessments?api-version=2021-06-01").await;
    assert_eq!((r.status, r.code()), (404, "NotFound"));
    let r = app.get("/providers/Microsoft.Management/managementGroups/G/providers/Microsoft.Security/assessments?api-version=2021-06-01&$skipToken=bzE").await;
    assert_eq!(r.status, 400, "an offset token is not this list's: {}", r.text);
}

#[tokio::test]
async fn verify_checks_and_repairs_the_resource_group_counters() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_sqlite(dir.path()).await;
    let vm = format!(
        "/subscriptions/{DEMO}/resourceGroups/mgrg/providers/Microsoft.Compute/virtualMachines/vm"
    );
    let name = &scored_assessments(1)[0];
    assert_eq!(
        app.put(&assessment_path(&vm, name, "2021-06-01"), &assessment_body("Unhealthy"))
            .await
            .status,
        201
    );
    let rg_score = format!("/subscriptions/{DEMO}/resourceGroups/mgrg/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01");
    let truth = app.get(&rg_score).await.body;
    app.stop().await;

    let clean = verify(dir.path(), &[]).await;
    assert!(clean.status.success(), "{}", stdout(&clean));

    let options =
        sqlx::sqlite::SqliteConnectOptions::new().filename(dir.path().join("securescore.db"));
    let pool = sqlx::sqlite::SqlitePoolOptions::new()
        .max_connections(1)
        .connect_with(options)
        .await
        .unwrap();
    let done = sqlx::query(
        "UPDATE resource_group_counts SET healthy = healthy + 3 WHERE resource_group = 'mgrg'",
    )
    .execute(&pool)
    .await
    .unwrap();
    assert!(done.rows_affected() > 0);
    sqlx::query("INSERT INTO resource_group_counts VALUES (?1, 'ghost', 'x', 1, 0, 0)")
        .bind(DEMO)
        .execute(&pool)
        .await
        .unwrap();
    pool.close().await;

    let found = verify(dir.path(), &["-o", "json"]).await;
    assert!(!found.status.success());
    let report: Value = serde_json::from_slice(&found.stdout).unwrap();
    let kinds: Vec<(&str, &str)> = report["mismatches"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["kind"] == "resourceGroupCounts")
        .map(|m| (m["resourceGroup"].as_str().unwrap(), m["subscription"].as_str().unwrap()))
        .collect();
    assert_eq!(kinds.len(), 2, "{report}");
    assert!(kinds.contains(&("ghost", DEMO)) && kinds.iter().any(|k| k.0 == "mgrg"));
    let table = verify(dir.path(), &[]).await;
    assert!(stdout(&table).contains("resource group mgrg"), "{}", stdout(&table));

    let repaired = verify(dir.path(), &["--repair"]).await;
    assert!(repaired.status.success(), "{}", stdout(&repaired));
    let again = verify(dir.path(), &[]).await;
    assert!(again.status.success(), "{}", stdout(&again));
    let app = spawn_sqlite(dir.path()).await;
    assert_eq!(app.get(&rg_score).await.body, truth, "the repaired counters serve the same score");
}

#[tokio::test]
async fn the_cli_manages_groups_on_a_data_directory_and_against_a_server() {
    use super::verify::{cli, stderr};
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_sqlite(dir.path()).await;
    let d = dir.path().to_str().unwrap().to_string();
    let on_dir = |rest: &[&str]| {
        let mut a: Vec<String> = vec!["management-groups".into()];
        a.extend(rest.iter().map(|s| s.to_string()));
        a.extend(["--data-dir".to_string(), d.clone()]);
        a
    };
    let on_server = |rest: &[&str]| {
        let mut a: Vec<String> = vec!["management-groups".into()];
        a.extend(rest.iter().map(|s| s.to_string()));
        a.extend([
            "--endpoint".to_string(),
            app.base.clone(),
            "--token".to_string(),
            app.token.clone(),
        ]);
        a
    };
    async fn run(args: Vec<String>) -> std::process::Output {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(&args).await
    }
    let o =
        run(on_dir(&["create", "--name", "Prod", "--display-name", "Production", "-o", "json"]))
            .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let created: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(created[0]["displayName"], "Production");
    assert_eq!(created[0]["parent"], app.tenant.to_string());
    let o = run(on_dir(&["create", "--name", "Web", "--parent", "Prod"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(on_dir(&["add-subscription", "--group", "Web", "--subscription", DEMO])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    // A cycle and a delete with children are refused, with the reason.
    let o = run(on_dir(&["create", "--name", "Prod", "--parent", "Web"])).await;
    assert!(!o.status.success() && stderr(&o).contains("ancestor"), "{}", stderr(&o));
    let o = run(on_dir(&["delete", "--name", "Prod"])).await;
    assert!(!o.status.success() && stderr(&o).contains("children"), "{}", stderr(&o));

    // The server sees the CLI's writes (generation poll), the CLI reads the server's answers.
    let mut seen = Value::Null;
    for _ in 0..50 {
        seen = app.get(&group_path("Web?$expand=children")).await.body;
        if seen["properties"]["children"][0]["name"] == DEMO {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(seen["properties"]["children"][0]["name"], DEMO, "{seen}");
    let o = run(on_server(&["list", "-o", "json"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let rows: Value = serde_json::from_slice(&o.stdout).unwrap();
    let web = rows.as_array().unwrap().iter().find(|r| r["name"] == "Web").unwrap();
    assert_eq!(web["parent"], "Prod");
    assert_eq!(web["subscriptions"], json!([DEMO]));
    let o =
        run(on_server(&["remove-subscription", "--group", "Web", "--subscription", DEMO])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(on_server(&["delete", "--name", "Web"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(on_server(&["create", "--name", "Dev", "--parent", "Prod"])).await;
    assert!(o.status.success(), "{}", stderr(&o));
    // Role assignments take a management group scope, on the data directory as through the API.
    let o =
        cli(&["principals", "add", "--data-dir", &d, "--name", "mg-reader", "-o", "json"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    let p: Value = serde_json::from_slice(&o.stdout).unwrap();
    let app_id = p["appId"].as_str().unwrap();
    let scope = "/providers/Microsoft.Management/managementGroups/Prod";
    let o = cli(&[
        "roles",
        "assign",
        "--data-dir",
        &d,
        "--principal",
        app_id,
        "--role",
        "Reader",
        "--scope",
        scope,
    ])
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    let o = cli(&["roles", "list", "--data-dir", &d, "-o", "json"]).await;
    assert!(
        stdout(&o)
            .to_ascii_lowercase()
            .contains("/providers/microsoft.management/managementgroups/prod"),
        "{}",
        stdout(&o)
    );
    let o = cli(&[
        "roles",
        "assign",
        "--data-dir",
        &d,
        "--principal",
        app_id,
        "--role",
        "Reader",
        "--scope",
        "/providers/Microsoft.Management/managementGroups/a b",
    ])
    .await;
    assert!(
        !o.status.success() && stderr(&o).contains("managementGroups/{group}"),
        "{}",
        stderr(&o)
    );
    let o = run(on_dir(&["list"])).await;
    let table = stdout(&o);
    assert!(
        table.contains("Production") && table.contains("Dev") && !table.contains("Web"),
        "{table}"
    );
    assert!(table.contains("Tenant Root Group"), "{table}");
}

#[tokio::test]
async fn concurrent_moves_never_close_a_cycle() {
    let app = spawn_with(Options { demo: false, ..Options::default() }).await;
    for round in 0..5 {
        let (a, b) = (format!("A{round}"), format!("B{round}"));
        put_group(&app, &a, &a, None).await;
        put_group(&app, &b, &b, None).await;
        // Each below the other, at the same time: one wins, the other is a cycle.
        let (x, y) = tokio::join!(
            patch_group(&app, &a, json!({ "parentGroupId": b })),
            patch_group(&app, &b, json!({ "parentGroupId": a })),
        );
        let mut statuses = [x.status, y.status];
        statuses.sort();
        assert_eq!(statuses, [200, 400], "{} / {}", x.text, y.text);
        let r = app.get(&group_path(&format!("{a}?$expand=ancestors"))).await;
        let chain = r.body["properties"]["details"]["managementGroupAncestorsChain"].clone();
        assert!(chain.as_array().unwrap().len() <= 2, "{chain}");
    }
}
