//! The CLI of issue 11 (`improvements`, `changes`, `exemptions list|create|delete`): the real
//! binary against a server with small pages prints, with `-o json`, what the API answers.

use serde_json::Value;
use std::process::Command;

use super::*;

/// Run the CLI against `app` (its token, no `SECURESCORE_*` environment, an empty directory).
fn cli(app: &TestApp, args: &[&str]) -> Value {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_prints_improvements_changes_and_manages_exemptions() {
    let app = spawn_with(Options { page_size: 2, ..Options::default() }).await;
    let sub = ["--subscription", DEMO];
    let path = format!("/securescore/v1/subscriptions/{DEMO}/improvements");
    let (want, pages) = app.get_all(&path).await;
    assert!(pages >= 2, "the demo has several pages of improvements");
    let printed = cli(&app, &[&["improvements"][..], &sub[..]].concat());
    assert_eq!(printed, Value::Array(want.clone()), "every page, in order");

    let first = &want[0];
    let assessment = first["recommendations"][0]["name"].as_str().unwrap();
    let scope = format!("/subscriptions/{DEMO}");
    let created = cli(
        &app,
        &[
            "exemptions",
            "create",
            "cli-waiver",
            "--scope",
            &scope,
            "--assessment",
            assessment,
            "--category",
            "waiver",
            "--description",
            "from the CLI",
        ],
    );
    assert_eq!(created["name"], "cli-waiver");
    assert_eq!(created["properties"]["category"], "Waiver");
    let listed = cli(&app, &["exemptions", "list", "--scope", &scope]);
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    // The exempted recommendation no longer counts: the control's points changed or it is gone.
    let after = cli(&app, &[&["improvements"][..], &sub[..]].concat());
    assert_ne!(after, Value::Array(want));

    let (changes, _) = app
        .get_all(&format!("/securescore/v1/subscriptions/{DEMO}/changes?$orderby=at%20asc"))
        .await;
    let printed = cli(&app, &[&["changes", "--order", "asc"][..], &sub[..]].concat());
    assert_eq!(printed, Value::Array(changes.clone()));
    assert_eq!(changes.last().unwrap()["cause"], "exemption");

    let deleted = cli(&app, &["exemptions", "delete", "cli-waiver"]);
    assert_eq!(deleted["deleted"], true);
    let again = cli(&app, &["exemptions", "delete", "cli-waiver"]);
    assert_eq!(again["deleted"], false);
    assert_eq!(cli(&app, &["exemptions", "list"]), serde_json::json!([]));
}
