//! The CLI's list commands read every page: against a server cutting lists into pages of 2, the
//! real binary (`--endpoint … -o json`) prints every item the API holds, across all nextLinks;
//! the extension API's lists (subscriptions, principals, roles, keys) go through the same client.

use serde_json::Value;
use std::collections::BTreeSet;
use std::process::Command;

use super::*;

/// Run the CLI against `app` with its token, from an empty directory and without the
/// `SECURESCORE_*` environment, so nothing but the arguments decides where it goes.
fn cli_json(app: &TestApp, args: &[&str]) -> Value {
    let cwd = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_securescore"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("SECURESCORE_") {
            cmd.env_remove(key);
        }
    }
    let out = cmd
        .current_dir(cwd.path())
        .args(args)
        .args(["--endpoint", &app.base, "--token", &app.token, "-o", "json"])
        .output()
        .expect("the binary runs");
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("-o json prints JSON")
}

fn ids(items: &[Value], key: &str) -> BTreeSet<String> {
    items.iter().map(|i| i[key].as_str().expect("every item has its key").to_string()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_lists_follow_next_links_to_the_last_page() {
    let app = spawn_with(Options { page_size: 2, ..Options::default() }).await;
    let sub = ["--subscription", DEMO];
    let base = format!("/subscriptions/{DEMO}/providers/Microsoft.Security");
    for (args, path) in [
        (&["assessments"][..], format!("{base}/assessments?api-version=2021-06-01")),
        (&["controls"][..], format!("{base}/secureScoreControls?api-version=2020-01-01")),
        (
            &["controls", "--score", "ascScore"][..],
            format!("{base}/secureScores/ascScore/secureScoreControls?api-version=2020-01-01"),
        ),
        (
            &["definitions"][..],
            format!("{base}/secureScoreControlDefinitions?api-version=2020-01-01"),
        ),
    ] {
        // What the API holds, read page by page over HTTP: several pages of 2.
        let (want, pages) = app.get_all(&path).await;
        assert!(pages >= 3 && want.len() > 4, "{path}: {} items in {pages} pages", want.len());
        let printed = cli_json(&app, &[args, &sub[..]].concat());
        let printed = printed.as_array().expect("a list prints a JSON array");
        assert_eq!(printed.len(), want.len(), "{args:?} prints every item of every page");
        assert_eq!(ids(printed, "id"), ids(&want, "id"), "{args:?}");
    }
    // Tenant-level definitions, without a subscription.
    let (want, _) = app
        .get_all(
            "/providers/Microsoft.Security/secureScoreControlDefinitions?api-version=2020-01-01",
        )
        .await;
    let printed = cli_json(&app, &["definitions"]);
    assert_eq!(printed.as_array().map(Vec::len), Some(want.len()));
    assert_eq!(want.len(), 16, "every built-in control definition");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_assessments_at_a_scope_read_every_page() {
    let app = spawn_with(Options { page_size: 2, demo: false, ..Options::default() }).await;
    let sub = uuid::Uuid::new_v4();
    app.add_subscription(sub).await;
    let rg = format!("/subscriptions/{sub}/resourceGroups/rg");
    let mut written = BTreeSet::new();
    for n in 0..7 {
        let resource = format!("{rg}/providers/Microsoft.Compute/virtualMachines/vm{n}");
        let path = assessment_path(&resource, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01");
        let r = app
            .put(&path, &assessment_body(if n % 2 == 0 { "Healthy" } else { "Unhealthy" }))
            .await;
        assert_eq!(r.status, 201, "{}", r.text);
        written.insert(r.body["id"].as_str().unwrap().to_string());
    }
    // One more outside the scope, which the scoped list must not print.
    let other = format!(
        "/subscriptions/{sub}/resourceGroups/other/providers/Microsoft.Compute/virtualMachines/x"
    );
    let r = app
        .put(
            &assessment_path(&other, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01"),
            &assessment_body("Healthy"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);

    let printed = cli_json(&app, &["assessments", "--scope", &rg]);
    assert_eq!(ids(printed.as_array().unwrap(), "id"), written, "all 7, over 4 pages");
    let whole = cli_json(&app, &["assessments", "--subscription", &sub.to_string()]);
    assert_eq!(whole.as_array().map(Vec::len), Some(8));
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_extension_lists_print_every_item() {
    let app = spawn_with(Options { page_size: 2, ..Options::default() }).await;
    // Subscriptions: the demo one and three more.
    let mut want = BTreeSet::from([DEMO.to_string()]);
    for _ in 0..3 {
        let id = uuid::Uuid::new_v4();
        app.add_subscription(id).await;
        want.insert(id.to_string());
    }
    let subs = cli_json(&app, &["subscriptions", "list"]);
    assert_eq!(ids(subs.as_array().unwrap(), "subscriptionId"), want);
    // Principals: the demo principal and the harness's own, with their role assignments.
    let principals = cli_json(&app, &["principals", "list"]);
    let names: BTreeSet<&str> =
        principals.as_array().unwrap().iter().filter_map(|p| p["displayName"].as_str()).collect();
    assert!(names.contains("securescore-demo") && names.contains("integration tests"), "{names:?}");
    let roles = cli_json(&app, &["roles", "list"]);
    let scopes: BTreeSet<&str> =
        roles.as_array().unwrap().iter().filter_map(|r| r["scope"].as_str()).collect();
    assert_eq!(scopes, BTreeSet::from(["/", &*format!("/subscriptions/{DEMO}")]), "{roles}");
    let keys = cli_json(&app, &["keys", "list"]);
    assert_eq!(keys.as_array().map(Vec::len), Some(1), "{keys}");
    app.stop().await;
}
