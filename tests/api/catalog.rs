//! The built-in catalogue as clients see it: every metadata answer carries a spec-valid severity,
//! no key with a public name answers a placeholder, and the preview states of the catalogue decide
//! which recommendations move the score.

use serde_json::Value;
use std::collections::BTreeSet;
use uuid::Uuid;

use super::*;
use securescore::catalog;

/// The api-versions the metadata family serves today.
const METADATA_VERSIONS: &[&str] = &["2020-01-01", "2021-06-01"];
const PLACEHOLDER: &str = "no public name known";
/// Named only by the December 2020 listing; "Enable enhanced security features".
const DEFENDER_FOR_KUBERNETES: &str = "86ea1a79-29d3-4eac-a9f4-3541ace4e718";
/// Preview in the listings (an AWS CIS key of "Enable MFA", max 10); it counted while unnamed.
const AWS_CONSOLE_MFA: &str = "1f24d55a-df0f-4772-9090-4629c2d6bfff";
const ENABLE_MFA: &str = "34a42fb3-e6db-409c-b56b-7b1db6b8aee0";

fn is_placeholder(item: &Value) -> bool {
    item["properties"]["displayName"].as_str().unwrap_or_default().contains(PLACEHOLDER)
}

#[tokio::test]
async fn every_builtin_metadata_answer_has_a_severity_and_named_keys_answer_their_name() {
    let app = spawn_with(Options { page_size: 1000, ..Options::default() }).await;
    let cat = catalog::builtin();
    for version in METADATA_VERSIONS {
        let (items, _) = app
            .get_all(&format!(
                "/providers/Microsoft.Security/assessmentMetadata?api-version={version}"
            ))
            .await;
        assert_eq!(items.len(), 557, "{version}");
        let mut placeholders = BTreeSet::new();
        for item in &items {
            let name = item["name"].as_str().unwrap();
            let severity = item["properties"]["severity"].as_str();
            assert!(
                matches!(severity, Some("Low" | "Medium" | "High")),
                "{version} {name}: severity {severity:?}"
            );
            let def = cat.assessment(name).unwrap();
            if let Some(known) = &def.display_name {
                assert_eq!(item["properties"]["displayName"].as_str(), Some(known.as_str()));
            }
            if is_placeholder(item) {
                placeholders.insert(name.to_string());
            }
        }
        // Only the keys no public source names answer a placeholder: 84 after the second pass.
        assert_eq!(placeholders.len(), 84, "{version}");
        assert!(placeholders.iter().all(|n| cat.assessment(n).unwrap().display_name.is_none()));
    }
}

#[tokio::test]
async fn a_formerly_unnamed_key_answers_its_listing_values_at_both_scopes() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    for version in METADATA_VERSIONS {
        for scope in [String::new(), format!("/subscriptions/{sub}")] {
            let r = app
                .get(&format!("{scope}/providers/Microsoft.Security/assessmentMetadata/{DEFENDER_FOR_KUBERNETES}?api-version={version}"))
                .await;
            assert_eq!(r.status, 200, "{}", r.text);
            let p = &r.body["properties"];
            assert_eq!(p["displayName"], "Azure Defender for Kubernetes should be enabled");
            assert_eq!(p["severity"], "High");
            assert_eq!(p["categories"], serde_json::json!(["Container"]), "the August 2021 value");
            assert_eq!(p["assessmentType"], "BuiltIn");
            assert!(!p["description"].as_str().unwrap().contains("No public description"));
        }
    }
}

#[tokio::test]
async fn preview_states_from_the_listings_decide_what_moves_the_score() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let s = sub.to_string();
    let vm = format!(
        "/subscriptions/{s}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
    );
    // A recommendation the listings mark preview: visible, but the score stays empty.
    let meta = app
        .get(&format!("/providers/Microsoft.Security/assessmentMetadata/{AWS_CONSOLE_MFA}?api-version=2021-06-01"))
        .await;
    assert_eq!(meta.body["properties"]["preview"], true);
    let r = app
        .put(&assessment_path(&vm, AWS_CONSOLE_MFA, "2021-06-01"), &assessment_body("Healthy"))
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let score = app.get(&score_path(&s)).await;
    assert_eq!(score.body["properties"]["score"]["max"], 0, "{}", score.text);
    let control = app
        .get(&format!("/subscriptions/{s}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01"))
        .await;
    let mfa = control.body["value"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == ENABLE_MFA)
        .map(|c| c["properties"]["healthyResourceCount"].clone());
    assert!(mfa.is_none() || mfa == Some(Value::from(0)), "preview moved Enable MFA: {mfa:?}");

    // A key still unnamed keeps counting (its preview state is unknown, as before).
    let unnamed = catalog::builtin()
        .assessments()
        .iter()
        .find(|a| {
            a.display_name.is_none()
                && a.controls.len() == 1
                && catalog::builtin().max_score(&a.controls[0]) > 0
        })
        .unwrap();
    assert!(unnamed.counts_toward_score());
    let r = app
        .put(&assessment_path(&vm, &unnamed.name, "2021-06-01"), &assessment_body("Healthy"))
        .await;
    assert!(r.status == 200 || r.status == 201, "{}", r.text);
    let score = app.get(&score_path(&s)).await;
    let max = score.body["properties"]["score"]["max"].as_i64().unwrap();
    assert_eq!(max, catalog::builtin().max_score(&unnamed.controls[0]), "{}", score.text);
}
