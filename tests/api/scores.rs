//! The six secure score operations against the demo data and the official examples.

use serde_json::{json, Value};
use uuid::Uuid;

use super::*;
use securescore::catalog;
use securescore::demo::writes_for_counts;

fn membership(def: &catalog::ControlDef) -> Value {
    def.assessment_definitions
        .iter()
        .map(|a| json!({"id": format!("/providers/Microsoft.Security/assessmentMetadata/{a}")}))
        .collect()
}

#[tokio::test]
async fn demo_answers_the_documented_sample_exactly() {
    let app = spawn_app().await;
    let r = app.get(&score_path(DEMO)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
    // Byte for byte, in meaning and order.
    assert_eq!(
        r.text,
        r#"{"id":"/subscriptions/20ff7fc3-e762-44dd-bd96-b71116dcdc23/providers/Microsoft.Security/secureScores/ascScore","name":"ascScore","type":"Microsoft.Security/secureScores","properties":{"displayName":"ASC score","score":{"max":39,"current":23.53,"percentage":0.6033},"weight":67}}"#
    );
    let expected = example("secureScores/GetSecureScoresSingle_example.json");
    assert_eq!(r.body, expected["responses"]["200"]["body"]);
}

#[tokio::test]
async fn list_secure_scores_matches_the_example() {
    let app = spawn_app().await;
    let r = app.get(&format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScores?api-version=2020-01-01")).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        example("secureScores/ListSecureScores_example.json")["responses"]["200"]["body"]
    );
    assert!(r.body.get("nextLink").is_none());
}

/// Feed the counts of an official controls example into a fresh subscription and compare.
async fn controls_conformance(example_file: &str, by_score: bool, expand: bool) {
    let app = spawn_with(Options { demo: false, ..Options::default() }).await;
    let doc = example(example_file);
    let expected = doc["responses"]["200"]["body"]["value"].as_array().unwrap().clone();
    let sub = Uuid::parse_str(doc["parameters"]["subscriptionId"].as_str().unwrap()).unwrap();
    app.add_subscription(sub).await;
    let counts: Vec<(String, usize, usize, usize)> = expected
        .iter()
        .map(|c| {
            let p = &c["properties"];
            let n = |k: &str| p[k].as_u64().unwrap() as usize;
            (
                c["name"].as_str().unwrap().to_string(),
                n("healthyResourceCount"),
                n("unhealthyResourceCount"),
                n("notApplicableResourceCount"),
            )
        })
        .collect();
    let borrowed: Vec<(&str, usize, usize, usize)> =
        counts.iter().map(|(c, h, u, na)| (c.as_str(), *h, *u, *na)).collect();
    app.store.apply(&writes_for_counts(sub, &borrowed).unwrap()).await.unwrap();

    let path =
        if by_score { "secureScores/ascScore/secureScoreControls" } else { "secureScoreControls" };
    let q = if expand { "&$expand=definition" } else { "" };
    let r = app
        .get(&format!(
            "/subscriptions/{sub}/providers/Microsoft.Security/{path}?api-version=2020-01-01{q}"
        ))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let got = r.body["value"].as_array().unwrap();
    assert_eq!(got.len(), expected.len());
    for want in &expected {
        let have = got
            .iter()
            .find(|c| c["name"] == want["name"])
            .unwrap_or_else(|| panic!("missing {}", want["name"]));
        assert_eq!(have["id"], want["id"]);
        assert_eq!(have["type"], want["type"]);
        let (hp, wp) = (&have["properties"], &want["properties"]);
        for k in [
            "healthyResourceCount",
            "unhealthyResourceCount",
            "notApplicableResourceCount",
            "weight",
        ] {
            assert_eq!(hp[k], wp[k], "{k} of {}", want["name"]);
        }
        // Numbers compare by value (the example writes 10 where we write 10.0).
        for k in ["max", "current", "percentage"] {
            assert_eq!(
                hp["score"][k].as_f64(),
                wp["score"][k].as_f64(),
                "score.{k} of {}",
                want["name"]
            );
        }
        assert!(hp["score"]["max"].is_u64(), "max is an integer");
        // Display names are the catalogue's current ones (one control was renamed since the example).
        let def = catalog::builtin().control(want["name"].as_str().unwrap()).unwrap();
        assert_eq!(hp["displayName"], def.display_name.as_str());
        if expand {
            let (hd, wd) = (&hp["definition"], &wp["definition"]);
            assert_eq!(
                hd["id"].as_str().unwrap().to_lowercase(),
                wd["id"].as_str().unwrap().to_lowercase()
            );
            assert_eq!(hd["type"], "Microsoft.Security/secureScoreControlDefinitions");
            assert_eq!(hd["properties"]["maxScore"], wd["properties"]["maxScore"]);
            assert_eq!(hd["properties"]["source"], wd["properties"]["source"]);
            // Memberships are the catalogue's (the 2021 recording), not the example's abridged list.
            assert_eq!(hd["properties"]["assessmentDefinitions"], membership(def));
        } else {
            assert!(hp.get("definition").is_none());
        }
    }
    // The secure score of the example data is the documented sample.
    let s = app.get(&score_path(&sub.to_string())).await;
    assert_eq!(
        s.body["properties"]["score"],
        json!({"max": 39, "current": 23.53, "percentage": 0.6033})
    );
    assert_eq!(s.body["properties"]["weight"], 67);
}

#[tokio::test]
async fn controls_list_conforms_to_the_example() {
    controls_conformance("secureScores/ListSecureScoreControls_example.json", false, false).await;
}

#[tokio::test]
async fn controls_by_score_conform_to_the_example() {
    controls_conformance(
        "secureScores/ListSecureScoreControlsForName_builtin_example.json",
        true,
        false,
    )
    .await;
}

#[tokio::test]
async fn controls_with_expand_conform_to_the_example() {
    controls_conformance(
        "secureScores/ListSecureScoreControlsForNameWithExpand_builtin_example.json",
        true,
        true,
    )
    .await;
}

#[tokio::test]
async fn control_property_order_is_azures() {
    let app = spawn_app().await;
    let r = app
        .get(&format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01&$expand=definition"))
        .await;
    let first = &r.text[r.text.find("\"properties\"").unwrap()..];
    let order = [
        "displayName",
        "healthyResourceCount",
        "unhealthyResourceCount",
        "notApplicableResourceCount",
        "score",
        "weight",
        "definition",
    ];
    let positions: Vec<usize> =
        order.iter().map(|k| first.find(&format!("\"{k}\"")).unwrap()).collect();
    assert!(positions.windows(2).all(|w| w[0] < w[1]), "{positions:?}");
    assert!(r.text.contains(r#""score":{"max":0,"current":0.0,"percentage":0.0}"#));
    assert!(r.text.contains(r#""score":{"max":10,"current":10.0,"percentage":1.0}"#));
}

#[tokio::test]
async fn definitions_at_both_scopes_conform_to_the_examples() {
    let app = spawn_app().await;
    for (file, path) in [
        ("secureScoreControlDefinitions/ListSecureScoreControlDefinitions_example.json", "/providers/Microsoft.Security/secureScoreControlDefinitions?api-version=2020-01-01".to_string()),
        (
            "secureScoreControlDefinitions/ListSecureScoreControlDefinitions_subscription_example.json",
            format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScoreControlDefinitions?api-version=2020-01-01"),
        ),
    ] {
        let r = app.get(&path).await;
        assert_eq!(r.status, 200);
        let got = r.body["value"].as_array().unwrap();
        assert_eq!(got.len(), 16, "all built-in controls");
        for want in example(file)["responses"]["200"]["body"]["value"].as_array().unwrap() {
            let have = got.iter().find(|d| d["name"] == want["name"]).unwrap();
            // Tenant-level ids even under a subscription (the tenant example capitalises the type).
            assert_eq!(have["id"].as_str().unwrap().to_lowercase(), want["id"].as_str().unwrap().to_lowercase());
            assert!(have["id"].as_str().unwrap().starts_with("/providers/Microsoft.Security/secureScoreControlDefinitions/"));
            assert_eq!(have["properties"]["maxScore"], want["properties"]["maxScore"]);
            assert_eq!(have["properties"]["source"], want["properties"]["source"]);
            assert!(have["properties"]["description"].is_string());
            let def = catalog::builtin().control(want["name"].as_str().unwrap()).unwrap();
            assert_eq!(have["properties"]["assessmentDefinitions"], membership(def));
        }
        let total: i64 = got.iter().map(|d| d["properties"]["maxScore"].as_i64().unwrap()).sum();
        assert_eq!(total, 58);
    }
}

#[tokio::test]
async fn paths_match_case_insensitively_and_with_trailing_slashes() {
    let app = spawn_app().await;
    for p in [
        format!("/SUBSCRIPTIONS/{DEMO}/PROVIDERS/microsoft.security/SECURESCORES/ascscore?api-version=2020-01-01"),
        format!("/subscriptions/{}/providers/Microsoft.Security/secureScores/ascScore/?api-version=2020-01-01", DEMO.to_uppercase()),
        format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScores/ascScore?API-VERSION=2020-01-01"),
    ] {
        let r = app.get(&p).await;
        assert_eq!(r.status, 200, "{p}: {}", r.text);
        // Canonical casing is echoed.
        assert_eq!(r.body["id"], format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScores/ascScore"));
        assert_eq!(r.body["name"], "ascScore");
    }
    let r = app.get(&format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01-preview")).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn lists_page_with_next_links_that_keep_parameters() {
    let app = spawn_with(Options { page_size: 5, ..Options::default() }).await;
    let path = format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01&$expand=definition");
    let first = app.get(&path).await;
    assert_eq!(first.body["value"].as_array().unwrap().len(), 5);
    let next = first.body["nextLink"].as_str().unwrap();
    assert!(next.starts_with(&app.base), "absolute on the host used: {next}");
    assert!(next.contains("$expand=definition") && next.contains("api-version=2020-01-01"));
    let token = next.split("$skipToken=").nth(1).unwrap();
    assert!(
        token.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'),
        "URL-safe: {token}"
    );
    let (all, pages) = app.get_all(&path).await;
    assert_eq!(all.len(), 12);
    assert_eq!(pages, 3);
    assert!(all.iter().all(|c| c["properties"]["definition"].is_object()));
    // Clients replace api-version in the nextLink with their own: still valid.
    let swapped = next.replace("api-version=2020-01-01", "api-version=2020-01-01-preview");
    assert_eq!(app.get(&swapped).await.status, 200);
    // Definitions page too.
    let (defs, pages) = app
        .get_all(
            "/providers/Microsoft.Security/secureScoreControlDefinitions?api-version=2020-01-01",
        )
        .await;
    assert_eq!((defs.len(), pages), (16, 4));
    // A forged token is a 400.
    let r = app.get(&format!("{path}&$skipToken=not-a-token!")).await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn empty_subscription_lists_have_a_value_array() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let r = app.get(&format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01")).await;
    assert_eq!(r.text, r#"{"value":[]}"#);
    let r = app.get(&score_path(&sub.to_string())).await;
    assert_eq!(r.body["properties"]["score"], json!({"max": 0, "current": 0.0, "percentage": 0.0}));
    assert_eq!(r.body["properties"]["weight"], 0);
}

#[tokio::test]
async fn arm_response_headers_are_present() {
    let app = spawn_app().await;
    let r = app
        .request(
            reqwest::Method::GET,
            &score_path(DEMO),
            None,
            &[
                ("x-ms-client-request-id", "client-1"),
                ("x-ms-return-client-request-id", "true"),
                ("x-ms-correlation-request-id", "corr-1"),
            ],
        )
        .await;
    let id = r.header("x-ms-request-id").unwrap();
    assert!(Uuid::parse_str(id).is_ok());
    assert_eq!(r.header("x-ms-correlation-request-id"), Some("corr-1"));
    assert_eq!(r.header("x-ms-client-request-id"), Some("client-1"));
    let routing = r.header("x-ms-routing-request-id").unwrap();
    assert!(routing.ends_with(id) && routing.split(':').count() == 3, "{routing}");
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("pragma"), Some("no-cache"));
    assert_eq!(r.header("expires"), Some("-1"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // Without the client's correlation id, the request id is used; errors carry the headers too.
    let e = app.get("/nowhere?api-version=2020-01-01").await;
    assert_eq!(e.header("x-ms-correlation-request-id"), e.header("x-ms-request-id"));
    assert!(e.header("x-ms-client-request-id").is_none());
}
