//! What changed (issue 11): every status transition of a sequence of writes and deletes, with
//! the exact score before and after each, in both orders, within window bounds and paged; bulk
//! import logs its transitions too.

use serde_json::{json, Value};
use uuid::Uuid;

use super::improvements::{put_status, vm, EP, MFA};
use super::*;

fn changes_path(sub: Uuid, query: &str) -> String {
    format!("/securescore/v1/subscriptions/{sub}/changes{query}")
}

fn score(current: f64, max: i64, percentage: f64) -> Value {
    json!({"max": max, "current": current, "percentage": percentage})
}

/// (resource, assessment, old, new, before, after) of each transition.
fn transitions(items: &[Value]) -> Vec<Value> {
    items
        .iter()
        .map(|c| {
            json!([
                c["resourceId"],
                c["assessment"],
                c["oldStatus"],
                c["newStatus"],
                c["scoreBefore"],
                c["scoreAfter"]
            ])
        })
        .collect()
}

#[tokio::test]
async fn every_transition_is_logged_with_the_score_before_and_after() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let vm1 = vm(sub, "rg", "vm1");
    let vm2 = vm(sub, "rg", "vm2");
    put_status(&app, &vm1, EP, "Unhealthy").await; // first write: null → Unhealthy, 0/0 → 0/2
    put_status(&app, &vm1, EP, "Unhealthy").await; // no transition
    put_status(&app, &vm2, EP, "Healthy").await; // null → Healthy, 0/2 → 1/2
    put_status(&app, &vm1, EP, "Healthy").await; // Unhealthy → Healthy, 1/2 → 2/2
    let r = app.delete(&assessment_path(&vm2, EP, "2020-01-01")).await;
    assert_eq!(r.status, 200);
    // Healthy → deleted: vm1 alone is still healthy, 2/2 → 2/2.

    let r = app.get(&changes_path(sub, "?$orderby=at asc")).await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert_eq!(r.body["orderby"], "at asc");
    let items = r.body["value"].as_array().unwrap().clone();
    let expected = vec![
        json!([vm1, EP, null, "Unhealthy", score(0.0, 0, 0.0), score(0.0, 2, 0.0)]),
        json!([vm2, EP, null, "Healthy", score(0.0, 2, 0.0), score(1.0, 2, 0.5)]),
        json!([vm1, EP, "Unhealthy", "Healthy", score(1.0, 2, 0.5), score(2.0, 2, 1.0)]),
        json!([vm2, EP, "Healthy", null, score(2.0, 2, 1.0), score(2.0, 2, 1.0)]),
    ];
    assert_eq!(transitions(&items), expected);
    assert!(items.iter().all(|c| c["displayName"].as_str().is_some_and(|d| !d.is_empty())));
    assert!(items.iter().all(|c| c.get("cause").is_none()), "writes have no cause");
    // The last transition's score is the score the API serves.
    let now = app.get(&score_path(&sub.to_string())).await;
    assert_eq!(items[3]["scoreAfter"], now.body["properties"]["score"]);

    // Newest first by default.
    let r = app.get(&changes_path(sub, "")).await;
    assert_eq!(r.body["orderby"], "at desc");
    let mut reversed = expected.clone();
    reversed.reverse();
    assert_eq!(transitions(r.body["value"].as_array().unwrap()), reversed);

    // A nextLink pins the window, so a defaulted `to` (now) does not move between pages.
    let first = app.get(&changes_path(sub, "?$top=1")).await;
    let link = first.body["nextLink"].as_str().expect("more pages");
    assert!(link.contains("from=") && link.contains("to="), "{link}");
    // Paged: $top=1 takes four pages, in order, each transition once.
    let (paged, pages) = app.get_all(&changes_path(sub, "?$top=1&$orderby=at%20asc")).await;
    assert_eq!(pages, 4);
    assert_eq!(transitions(&paged), expected);
    let (paged, _) = app.get_all(&changes_path(sub, "?$top=3")).await;
    assert_eq!(transitions(&paged), reversed);

    // Window bounds are inclusive at both ends.
    let at = |i: usize| items[i]["at"].as_str().unwrap().to_string();
    let window = format!("?$orderby=at asc&from={}&to={}", at(1), at(2));
    let (inside, _) = app.get_all(&changes_path(sub, &window.replace(' ', "%20"))).await;
    assert_eq!(transitions(&inside), expected[1..3].to_vec());
    let (later, _) = app.get_all(&changes_path(sub, &format!("?from={}", at(3)))).await;
    assert_eq!(transitions(&later), vec![expected[3].clone()]);

    // Mistakes are 400s naming the parameter; an unknown subscription is a 404.
    for (query, target) in [
        (format!("?from={}&to={}", at(2), at(1)), "from"),
        ("?from=yesterday".to_string(), "from"),
        ("?$orderby=name".to_string(), "$orderby"),
        ("?$top=0".to_string(), "$top"),
        ("?$skipToken=bm9wZQ".to_string(), "$skipToken"),
    ] {
        let r = app.get(&changes_path(sub, &query)).await;
        assert_eq!(r.status, 400, "{query}: {}", r.text);
        assert_eq!(r.body["error"]["target"], target, "{query}");
    }
    assert_eq!(app.get(&changes_path(Uuid::new_v4(), "")).await.status, 404);
}

#[tokio::test]
async fn bulk_import_logs_its_transitions() {
    let app = spawn_app().await;
    let sub = Uuid::new_v4();
    app.add_subscription(sub).await;
    let line = |resource: &str, name: &str, code: &str| {
        json!({"resourceId": resource, "name": name,
               "properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": code}}})
        .to_string()
    };
    let vm1 = vm(sub, "rg", "vm1");
    let body = [line(&vm1, EP, "Unhealthy"), line(&vm1, MFA, "Healthy")].join("\n");
    let r = app.request(reqwest::Method::POST, "/securescore/v1/import", Some(body), &[]).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (items, _) = app.get_all(&changes_path(sub, "?$orderby=at%20asc")).await;
    let got: Vec<Value> =
        items.iter().map(|c| json!([c["assessment"], c["oldStatus"], c["newStatus"]])).collect();
    assert_eq!(got, vec![json!([EP, null, "Unhealthy"]), json!([MFA, null, "Healthy"])]);
    // One batch, one transaction: the score after the last equals the score served.
    let now = app.get(&score_path(&sub.to_string())).await;
    assert_eq!(items[1]["scoreAfter"], now.body["properties"]["score"]);
    assert_eq!(items[0]["scoreAfter"], items[1]["scoreBefore"]);
}
