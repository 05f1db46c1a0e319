//! Bulk NDJSON import and subscription administration, over the extension API and the CLI.

use serde_json::json;
use std::process::Command;
use uuid::Uuid;

use super::*;

const EP_VMSS: &str = "21300918-b2e3-0346-785f-c77ff57d243b";

fn line(sub: &str, vm: &str, code: &str) -> String {
    json!({
        "resourceId": format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/{vm}"),
        "name": EP_VMSS,
        "properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": code}}
    })
    .to_string()
}

async fn import(app: &TestApp, body: String) -> Resp {
    app.request(
        reqwest::Method::POST,
        "/securescore/v1/import",
        Some(body),
        &[("content-type", "application/x-ndjson")],
    )
    .await
}

#[tokio::test]
async fn import_applies_valid_lines_reports_bad_ones_and_is_idempotent() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let s = sub.to_string();
    let mut lines: Vec<String> = (0..1200)
        .map(|i| line(&s, &format!("vm{i}"), if i % 3 == 0 { "Unhealthy" } else { "Healthy" }))
        .collect();
    lines.insert(10, "{not json".into());
    lines.insert(20, json!({"resourceId": "/subscriptions/x", "name": EP_VMSS}).to_string());
    lines.insert(30, line(&s, "bad", "Sideways"));
    lines.insert(40, String::new());
    let body = lines.join("\n");
    let r = import(&app, body.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["created"], 1200);
    assert_eq!(r.body["failed"], 3);
    let errors = r.body["errors"].as_array().unwrap();
    assert_eq!(
        errors.iter().map(|e| e["line"].as_u64().unwrap()).collect::<Vec<_>>(),
        vec![11, 21, 31]
    );
    assert_eq!(errors[0]["code"], "InvalidRequestContent");
    assert_eq!(errors[1]["code"], "InvalidSubscriptionId");
    assert_eq!(errors[2]["target"], "properties.status.code");
    let score = app.get(&score_path(&s)).await.body;
    assert_eq!(
        score["properties"]["score"],
        json!({"max": 2, "current": 1.33, "percentage": 0.665})
    );
    // Idempotent: the same file again replaces, the score stays.
    let again = import(&app, body).await;
    assert_eq!(
        (again.body["created"].as_u64(), again.body["replaced"].as_u64()),
        (Some(0), Some(1200))
    );
    assert_eq!(app.get(&score_path(&s)).await.body, score);
    assert_eq!(
        app.store.maintained_counts(sub).await.unwrap(),
        app.store.recompute_counts(sub).await.unwrap()
    );
}

#[tokio::test]
async fn subscriptions_administration_over_the_extension_api() {
    let app = spawn_app().await;
    let id = Uuid::new_v4();
    let path = format!("/securescore/v1/subscriptions/{id}");
    let r = app.put(&path, &json!({"displayName": "Prod"})).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(app.put(&path, &json!({"displayName": "Production"})).await.status, 200);
    let arm = app.get(&format!("/subscriptions/{id}?api-version=2022-12-01")).await;
    assert_eq!(arm.body["displayName"], "Production");
    assert_eq!(arm.body["subscriptionId"], id.to_string());
    assert_eq!(arm.body["state"], "Enabled");
    let list = app.get("/subscriptions?api-version=2022-12-01").await;
    assert!(list.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .any(|s| s["id"] == format!("/subscriptions/{id}")));
    let tenants = app.get("/tenants?api-version=2022-12-01").await;
    assert!(!tenants.body["value"].as_array().unwrap().is_empty());
    app.put(
        &assessment_path(&format!("/subscriptions/{id}/resourceGroups/rg"), EP_VMSS, "2021-06-01"),
        &assessment_body("Healthy"),
    )
    .await;
    assert_eq!(app.delete(&path).await.status, 200);
    assert_eq!(app.get(&score_path(&id.to_string())).await.code(), "SubscriptionNotFound");
    assert_eq!(app.delete(&path).await.status, 404);
    let bad = app.put(&path, &json!({"name": 1})).await;
    assert_eq!(bad.status, 400);
}

fn cli(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_securescore")).args(args).output().expect("the binary runs")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_works_on_a_data_directory_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_sqlite(dir.path()).await;
    let d = dir.path().to_str().unwrap();
    let id = Uuid::new_v4().to_string();
    let out = cli(&["subscriptions", "add", "--id", &id, "--name", "From CLI", "--data-dir", d]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["subscriptions", "list", "--data-dir", d, "-o", "json"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(list.as_array().unwrap().iter().any(|s| s["subscriptionId"] == id.as_str()));
    let table = String::from_utf8(cli(&["subscriptions", "list", "--data-dir", d]).stdout).unwrap();
    assert!(table.contains("From CLI") && table.contains("Subscription"));

    // Import a file with the CLI on the data directory; the running server sees it within a second.
    let file = dir.path().join("a.ndjson");
    std::fs::write(&file, [line(&id, "vm1", "Healthy"), line(&id, "vm2", "Unhealthy")].join("\n"))
        .unwrap();
    let out = cli(&["import", file.to_str().unwrap(), "--data-dir", d, "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["created"], 2);
    let mut seen = false;
    for _ in 0..40 {
        let r = app.get(&score_path(&id)).await;
        if r.status == 200 && r.body["properties"]["score"]["current"] == 1.0 {
            seen = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(seen, "the server notices writes of other processes");

    // Import against the server's endpoint.
    std::fs::write(&file, [line(&id, "vm3", "Healthy"), "garbage".to_string()].join("\n")).unwrap();
    let out = cli(&[
        "import",
        file.to_str().unwrap(),
        "--endpoint",
        &app.base,
        "--token",
        &app.token,
        "-o",
        "json",
    ]);
    assert!(!out.status.success(), "a rejected line fails the command");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((report["created"].as_u64(), report["failed"].as_u64()), (Some(1), Some(1)));
    assert_eq!(report["errors"][0]["line"], 2);

    // Remove through the endpoint, then through the data directory.
    let out = cli(&[
        "subscriptions",
        "remove",
        "--id",
        &id,
        "--endpoint",
        &app.base,
        "--token",
        &app.token,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let out = cli(&["subscriptions", "remove", "--id", &id, "--data-dir", d]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("does not exist"));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_commands_print_tables_and_json() {
    let app = spawn_app().await;
    let common = ["--endpoint", app.base.as_str(), "--token", &app.token, "--subscription", DEMO];
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&common);
        let out = cli(&all);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let shown: serde_json::Value =
        serde_json::from_str(&run(&["scores", "show", "-o", "json"])).unwrap();
    assert_eq!(shown["properties"]["score"]["current"], 23.53);
    assert!(run(&["scores", "list"]).contains("60.33%"));
    let controls: serde_json::Value =
        serde_json::from_str(&run(&["controls", "-o", "json"])).unwrap();
    let names: Vec<&str> = controls
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["properties"]["displayName"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "Apply system updates", "sorted by potential increase (6)");
    assert!(run(&["controls"]).contains("Potential increase"));
    assert!(run(&["definitions"]).contains("Enable MFA"));
    let assessments: serde_json::Value =
        serde_json::from_str(&run(&["assessments", "-o", "json"])).unwrap();
    assert_eq!(
        assessments.as_array().unwrap().len(),
        29,
        "one per assessed resource of the example"
    );
    assert!(run(&["history"]).contains("23.53"));
    assert!(run(&["aggregate"]).contains("(weighted)"));
    let out = cli(&[
        "scores",
        "show",
        "nope",
        "--endpoint",
        &app.base,
        "--token",
        &app.token,
        "--subscription",
        DEMO,
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("(ResourceNotFound)"));
}
