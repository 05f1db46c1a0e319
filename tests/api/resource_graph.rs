//! Resource Graph (`POST /providers/Microsoft.ResourceGraph/resources`): the queries Microsoft
//! publishes for secure score, controls and recommendations answer what the secure score,
//! controls and assessments APIs answer; paging, both result formats, RBAC filtering, the
//! errors of queries outside the subset, and the spec's own examples replayed.

use reqwest::Method;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use uuid::Uuid;

use super::{assessment_body, spawn_app, token_with_roles, Resp, TestApp, DEMO};

const PATH: &str = "/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01";

async fn graph(app: &TestApp, body: Value) -> Resp {
    app.request(Method::POST, PATH, Some(body.to_string()), &[]).await
}

/// The rows of a query that must succeed.
async fn rows(app: &TestApp, query: &str) -> Vec<Value> {
    let r = graph(app, json!({ "query": query })).await;
    assert_eq!(r.status, 200, "{query}: {}", r.text);
    r.body["data"].as_array().expect("objectArray data").clone()
}

// Published queries, kept as Microsoft wrote them (whitespace included).

/// Microsoft Defender for Cloud blog, "Querying your Secure Score Across Multiple Subscriptions
/// in Microsoft Defender for Cloud" (techcommunity.microsoft.com, October 2020): the percentage.
const BLOG_SCORE: &str = "SecurityResources \n| where type == 'microsoft.security/securescores' \n| extend current = properties.score.current, max = todouble(properties.score.max)\n| project subscriptionId, current, max, percentage = ((current / max)*100)";

/// Same post: every control with its unhealthy resources and points.
const BLOG_CONTROLS: &str = "SecurityResources \n| where type == 'microsoft.security/securescores/securescorecontrols' \n| extend SecureControl = properties.displayName, unhealthy = properties.unhealthyResourceCount, currentscore = properties.score.current, maxscore = properties.score.max\n| project SecureControl , unhealthy, currentscore, maxscore";

/// learn.microsoft.com, "Azure Resource Graph sample queries for Microsoft Defender for Cloud",
/// "Secure score per subscription".
const SAMPLE_SCORE: &str = "SecurityResources\r\n| where type == 'microsoft.security/securescores'\r\n| extend percentageScore=properties.score.percentage,\r\n  currentScore=properties.score.current,\r\n  maxScore=properties.score.max,\r\n  weight=properties.weight\r\n| project tenantId, subscriptionId, percentageScore, currentScore, maxScore, weight";

/// Same page, "Controls secure score per subscription".
const SAMPLE_CONTROLS: &str = "SecurityResources
| where type == 'microsoft.security/securescores/securescorecontrols'
| extend controlName=properties.displayName,
  controlId=properties.definition.name,
  notApplicableResourceCount=properties.notApplicableResourceCount,
  unhealthyResourceCount=properties.unhealthyResourceCount,
  healthyResourceCount=properties.healthyResourceCount,
  percentageScore=properties.score.percentage,
  currentScore=properties.score.current,
  maxScore=properties.definition.properties.maxScore,
  weight=properties.weight,
  controlType=properties.definition.properties.source.sourceType,
  controlRank=properties.definition.properties.maxScore * properties.unhealthyResourceCount
| project tenantId, subscriptionId, controlName, controlId, unhealthyResourceCount, healthyResourceCount, notApplicableResourceCount, percentageScore, currentScore, maxScore, weight, controlType, controlRank";

/// Same page, "Count healthy, unhealthy, and not applicable resources per recommendation".
const SAMPLE_PER_RECOMMENDATION: &str = "SecurityResources
| where type == 'microsoft.security/assessments'
| extend resourceId=id,
  recommendationId=name,
  resourceType=type,
  recommendationName=properties.displayName,
  source=properties.resourceDetails.Source,
  recommendationState=properties.status.code,
  description=properties.metadata.description,
  assessmentType=properties.metadata.assessmentType,
  remediationDescription=properties.metadata.remediationDescription,
  policyDefinitionId=properties.metadata.policyDefinitionId,
  implementationEffort=properties.metadata.implementationEffort,
  recommendationSeverity=properties.metadata.severity,
  category=properties.metadata.categories,
  userImpact=properties.metadata.userImpact,
  threats=properties.metadata.threats,
  portalLink=properties.links.azurePortal
| summarize numberOfResources=count() by tostring(recommendationName), tostring(recommendationState)";

/// Same page, "Secure score per management group": joins `ResourceContainers` and expands each
/// subscription's management group chain.
const SAMPLE_MANAGEMENT_GROUPS: &str = "SecurityResources
| where type == 'microsoft.security/securescores'
| project subscriptionId,
  subscriptionTotal = iff(properties.score.max == 0, 0.00, round(tolong(properties.weight) * todouble(properties.score.current)/tolong(properties.score.max),2)),
  weight = tolong(iff(properties.weight == 0, 1, properties.weight))
| join kind=leftouter (
  ResourceContainers
  | where type == 'microsoft.resources/subscriptions' and properties.state == 'Enabled'
  | project subscriptionId, mgChain=properties.managementGroupAncestorsChain )
  on subscriptionId
| mv-expand mg=mgChain
| summarize sum(subscriptionTotal), sum(weight) by mgId=tostring(mg.name), mgDisplayName=tostring(mg.displayName)
| extend secureScore = iff(tolong(sum_weight) == 0, 0.00, round(sum_subscriptionTotal/sum_weight*100,2))
| project mgDisplayName, mgId, sum_subscriptionTotal, sum_weight, secureScore
| order by secureScore asc";

fn score_path(sub: &str) -> String {
    format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01")
}

fn controls_path(sub: &str) -> String {
    format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01&$expand=definition")
}

#[tokio::test]
async fn published_secure_score_queries_answer_what_the_secure_score_api_says() {
    let app = spawn_app().await;
    let api = app.get(&score_path(DEMO)).await;
    assert_eq!(api.status, 200);
    let score = &api.body["properties"]["score"];

    let blog = rows(&app, BLOG_SCORE).await;
    assert_eq!(blog.len(), 1, "{blog:?}");
    let row = &blog[0];
    assert_eq!(
        row.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["subscriptionId", "current", "max", "percentage"]
    );
    assert_eq!(row["subscriptionId"], DEMO);
    assert_eq!(row["current"], score["current"]);
    assert_eq!(row["max"].as_f64(), score["max"].as_f64());
    let want = score["current"].as_f64().unwrap() / score["max"].as_f64().unwrap() * 100.0;
    assert!((row["percentage"].as_f64().unwrap() - want).abs() < 1e-9, "{row}");

    let sample = rows(&app, SAMPLE_SCORE).await;
    assert_eq!(sample.len(), 1);
    assert_eq!(sample[0]["tenantId"], app.tenant.to_string());
    assert_eq!(sample[0]["percentageScore"], score["percentage"]);
    assert_eq!(sample[0]["currentScore"], score["current"]);
    assert_eq!(sample[0]["maxScore"], score["max"]);
    assert_eq!(sample[0]["weight"], api.body["properties"]["weight"]);
    app.stop().await;
}

#[tokio::test]
async fn published_control_queries_answer_what_the_controls_api_says() {
    let app = spawn_app().await;
    let (controls, _) = app.get_all(&controls_path(DEMO)).await;
    assert!(!controls.is_empty());

    let sample = rows(&app, SAMPLE_CONTROLS).await;
    assert_eq!(sample.len(), controls.len());
    let by_id: BTreeMap<String, &Value> =
        sample.iter().map(|r| (r["controlId"].as_str().unwrap().to_string(), r)).collect();
    for c in &controls {
        let p = &c["properties"];
        let row = by_id[c["name"].as_str().unwrap()];
        assert_eq!(row["subscriptionId"], DEMO);
        assert_eq!(row["controlName"], p["displayName"]);
        assert_eq!(row["unhealthyResourceCount"], p["unhealthyResourceCount"]);
        assert_eq!(row["healthyResourceCount"], p["healthyResourceCount"]);
        assert_eq!(row["notApplicableResourceCount"], p["notApplicableResourceCount"]);
        assert_eq!(row["percentageScore"], p["score"]["percentage"]);
        assert_eq!(row["currentScore"], p["score"]["current"]);
        assert_eq!(row["maxScore"], p["definition"]["properties"]["maxScore"]);
        assert_eq!(row["weight"], p["weight"]);
        assert_eq!(row["controlType"], p["definition"]["properties"]["source"]["sourceType"]);
        let rank = p["definition"]["properties"]["maxScore"].as_i64().unwrap()
            * p["unhealthyResourceCount"].as_i64().unwrap();
        assert_eq!(row["controlRank"], rank);
    }

    let blog = rows(&app, BLOG_CONTROLS).await;
    let got: BTreeSet<String> = blog
        .iter()
        .map(|r| {
            format!(
                "{}|{}|{}|{}",
                r["SecureControl"], r["unhealthy"], r["currentscore"], r["maxscore"]
            )
        })
        .collect();
    let want: BTreeSet<String> = controls
        .iter()
        .map(|c| {
            let p = &c["properties"];
            format!(
                "{}|{}|{}|{}",
                p["displayName"],
                p["unhealthyResourceCount"],
                p["score"]["current"],
                p["score"]["max"]
            )
        })
        .collect();
    assert_eq!(got, want);
    app.stop().await;
}

#[tokio::test]
async fn assessment_rows_are_the_assessments_api_resources() {
    let app = spawn_app().await;
    let (listed, _) = app
        .get_all(&format!(
            "/subscriptions/{DEMO}/providers/Microsoft.Security/assessments?api-version=2025-05-04&$expand=metadata"
        ))
        .await;
    assert!(!listed.is_empty());
    let q = "securityresources | where type =~ 'Microsoft.Security/assessments' | project id, name, type, properties, resourceGroup";
    let r = graph(&app, json!({"query": q, "options": {"$top": 1000}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let data = r.body["data"].as_array().unwrap();
    assert_eq!(r.body["totalRecords"], listed.len());
    let by_id: BTreeMap<&str, &Value> =
        data.iter().map(|r| (r["id"].as_str().unwrap(), r)).collect();
    for a in &listed {
        let row = by_id[a["id"].as_str().unwrap()];
        assert_eq!(row["properties"], a["properties"], "{}", a["id"]);
        assert_eq!(row["name"], a["name"]);
        assert_eq!(row["type"], "microsoft.security/assessments");
        let id = a["id"].as_str().unwrap().to_ascii_lowercase();
        let rg = id.split("/resourcegroups/").nth(1).map(|s| s.split('/').next().unwrap());
        assert_eq!(row["resourceGroup"], rg.unwrap_or(""));
    }

    // The published per-recommendation count agrees with the API's statuses.
    let counts = rows(&app, SAMPLE_PER_RECOMMENDATION).await;
    let mut want: BTreeMap<(String, String), i64> = BTreeMap::new();
    for a in &listed {
        let p = &a["properties"];
        *want
            .entry((
                p["displayName"].as_str().unwrap().to_string(),
                p["status"]["code"].as_str().unwrap().to_string(),
            ))
            .or_default() += 1;
    }
    let got: BTreeMap<(String, String), i64> = counts
        .iter()
        .map(|r| {
            (
                (
                    r["recommendationName"].as_str().unwrap().to_string(),
                    r["recommendationState"].as_str().unwrap().to_string(),
                ),
                r["numberOfResources"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(got, want);

    // `take` after a type filter reads only what it needs, and takes the same rows.
    let all = rows(&app, "securityresources | where type == 'microsoft.security/assessments' | project id | take 1000").await;
    let three = rows(
        &app,
        "securityresources | where type == 'microsoft.security/assessments' | take 3 | project id",
    )
    .await;
    assert_eq!(three, all[..3]);
    let none = rows(&app, "securityresources | take 0").await;
    assert!(none.is_empty());

    // Every demo assessment was evaluated just now; none in the future.
    let q = "securityresources | where type == 'microsoft.security/assessments' | summarize recent = countif(todatetime(properties.status.statusChangeDate) > ago(1h)), future = countif(todatetime(properties.status.firstEvaluationDate) > now())";
    assert_eq!(rows(&app, q).await, [json!({"recent": listed.len(), "future": 0})]);

    // A write shows in the next query.
    let vm = format!("/subscriptions/{DEMO}/resourceGroups/Graph-RG/providers/Microsoft.Compute/virtualMachines/vm-graph");
    let name = "4fb67663-9ab9-475d-b026-8c544cced439";
    let put = app
        .put(&super::assessment_path(&vm, name, "2021-06-01"), &assessment_body("Unhealthy"))
        .await;
    assert!(put.status == 200 || put.status == 201, "{}", put.text);
    let q = "securityresources | where type == 'microsoft.security/assessments' and resourceGroup == 'graph-rg' | project id, code = tostring(properties.status.code)";
    let found = rows(&app, q).await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["code"], "Unhealthy");
    app.stop().await;
}

#[tokio::test]
async fn the_management_group_sample_runs_and_kql_operators_work_together() {
    let app = spawn_app().await;
    // Microsoft's published score per management group: every subscription lies below the
    // tenant root group, so one row, whose score is the one the management-group route answers.
    let r = graph(&app, json!({"query": SAMPLE_MANAGEMENT_GROUPS})).await;
    assert_eq!((r.status, r.body["totalRecords"].clone()), (200, json!(1)), "{}", r.text);
    let row = &r.body["data"][0];
    assert_eq!(row["mgId"], json!(app.tenant.to_string()), "{row}");
    assert_eq!(row["mgDisplayName"], "Tenant Root Group");
    let at_root = app
        .get(&format!(
            "/providers/Microsoft.Management/managementGroups/{}/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01",
            app.tenant
        ))
        .await;
    let percentage = at_root.body["properties"]["score"]["percentage"]
        .as_f64()
        .unwrap_or_else(|| panic!("{}", at_root.text));
    let from_graph = row["secureScore"].as_f64().unwrap();
    assert!((from_graph - percentage * 100.0).abs() < 0.006, "{from_graph} vs {percentage}");

    // summarize with several aggregates, by a computed key, then top.
    let q = "securityresources
        // one row per kind of resource
        | extend kind = case(type == 'microsoft.security/assessments', 'assessment', type endswith 'securescorecontrols', 'control', 'score')
        | summarize n = count(), subs = dcount(subscriptionId), names = make_set(name) by kind
        | top 2 by n desc";
    let got = rows(&app, q).await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[0]["kind"], "assessment");
    assert_eq!(got[1]["kind"], "control");
    assert_eq!(got[0]["subs"], 1);
    assert!(got[0]["n"].as_i64().unwrap() > got[1]["n"].as_i64().unwrap());

    // join inner on $left/$right: every control with its subscription's score.
    let q = "securityresources | where type == 'microsoft.security/securescores/securescorecontrols'
        | project subscriptionId, control = name, points = todouble(properties.score.current)
        | join kind=inner (securityresources | where type == 'microsoft.security/securescores' | project sid = subscriptionId, total = properties.score.current) on $left.subscriptionId == $right.sid
        | summarize controls = count(), sumOfPoints = round(sum(points), 2), total = take_any(total)";
    let got = rows(&app, q).await;
    let api = app.get(&score_path(DEMO)).await;
    assert_eq!(got[0]["total"], api.body["properties"]["score"]["current"]);
    let (controls, _) = app.get_all(&controls_path(DEMO)).await;
    assert_eq!(got[0]["controls"], controls.len());
    let sum: f64 =
        controls.iter().map(|c| c["properties"]["score"]["current"].as_f64().unwrap()).sum();
    assert!((got[0]["sumOfPoints"].as_f64().unwrap() - (sum * 100.0).round() / 100.0).abs() < 1e-9);
    app.stop().await;
}

#[tokio::test]
async fn table_format_has_typed_columns_and_the_same_rows() {
    let app = spawn_app().await;
    let q = "SECURITYRESOURCES | where type == 'microsoft.security/securescores' | project id, current = properties.score.current, max = properties.score.max, healthy = true, properties, sku";
    let objects = rows(&app, q).await;
    let r = graph(&app, json!({"query": q, "options": {"resultFormat": "table"}})).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let columns = r.body["data"]["columns"].as_array().unwrap();
    let typed: Vec<(String, String)> = columns
        .iter()
        .map(|c| (c["name"].as_str().unwrap().into(), c["type"].as_str().unwrap().into()))
        .collect();
    let want: Vec<(String, String)> = [
        ("id", "string"),
        ("current", "number"),
        ("max", "integer"),
        ("healthy", "boolean"),
        ("properties", "object"),
        ("sku", "object"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(typed, want);
    let table_rows = r.body["data"]["rows"].as_array().unwrap();
    assert_eq!(table_rows.len(), objects.len());
    for (row, obj) in table_rows.iter().zip(&objects) {
        for (i, (name, _)) in want.iter().enumerate() {
            assert_eq!(row[i], obj[name.as_str()], "{name}");
        }
    }
    assert_eq!(r.body["facets"], json!([]));
    assert_eq!(r.body["resultTruncated"], "false");
    app.stop().await;
}

#[tokio::test]
async fn pages_with_top_skip_and_skip_tokens_cover_the_result_once() {
    let app = spawn_app().await;
    let q = "securityresources | project id | order by id asc";
    let all: Vec<Value> = {
        let r = graph(&app, json!({"query": q, "options": {"$top": 1000}})).await;
        assert!(r.body.get("$skipToken").is_none());
        r.body["data"].as_array().unwrap().clone()
    };
    assert!(all.len() > 5);

    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut options = json!({"$top": 4});
        if let Some(t) = &token {
            options = json!({"$skipToken": t});
        }
        let r = graph(&app, json!({"query": q, "options": options})).await;
        assert_eq!(r.status, 200, "{}", r.text);
        assert_eq!(r.body["totalRecords"], all.len());
        let data = r.body["data"].as_array().unwrap();
        assert_eq!(r.body["count"], data.len());
        seen.extend(data.iter().cloned());
        pages += 1;
        match r.body["$skipToken"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(seen, all);
    assert_eq!(pages, all.len().div_ceil(4));

    // The table format pages the same way.
    let t1 =
        graph(&app, json!({"query": q, "options": {"$top": 3, "resultFormat": "table"}})).await;
    let token = t1.body["$skipToken"].as_str().unwrap();
    let t2 =
        graph(&app, json!({"query": q, "options": {"$skipToken": token, "resultFormat": "table"}}))
            .await;
    let ids: Vec<Value> = [&t1, &t2]
        .iter()
        .flat_map(|r| r.body["data"]["rows"].as_array().unwrap().iter().map(|row| row[0].clone()))
        .collect();
    let want: Vec<Value> = all[..6].iter().map(|o| o["id"].clone()).collect();
    assert_eq!(ids, want);

    // $skip and $top pick any window.
    let r = graph(&app, json!({"query": q, "options": {"$top": 2, "$skip": 3}})).await;
    assert_eq!(r.body["data"].as_array().unwrap(), &all[3..5]);
    assert!(r.body["$skipToken"].is_string());

    // A token is bound to its query; garbage and edited tokens are refused.
    let first = graph(&app, json!({"query": q, "options": {"$top": 2}})).await;
    let t = first.body["$skipToken"].as_str().unwrap();
    let other = graph(
        &app,
        json!({"query": "securityresources | project name", "options": {"$skipToken": t}}),
    )
    .await;
    assert_eq!((other.status, other.code()), (400, "BadRequest"), "{}", other.text);
    for bad in ["garbage!", "eyJza2lwIjoxfQ", &format!("{t}x")] {
        let r = graph(&app, json!({"query": q, "options": {"$skipToken": bad}})).await;
        assert_eq!((r.status, r.code()), (400, "BadRequest"), "{bad}: {}", r.text);
    }
    for options in [
        json!({"$top": 0}),
        json!({"$top": 1001}),
        json!({"$skip": -1}),
        json!({"resultFormat": "csv"}),
    ] {
        let r = graph(&app, json!({"query": q, "options": options})).await;
        assert_eq!((r.status, r.code()), (400, "InvalidRequestContent"), "{options}: {}", r.text);
    }
    app.stop().await;
}

async fn graph_as(app: &TestApp, token: &str, body: Value) -> (u16, Value) {
    let r = app
        .http
        .post(format!("{}{PATH}", app.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn rows_are_filtered_to_what_the_caller_may_read() {
    let app = spawn_app().await;
    let other = Uuid::new_v4();
    app.add_subscription(other).await;
    let vm = format!(
        "/subscriptions/{other}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    );
    let put = app
        .put(
            &super::assessment_path(&vm, "4fb67663-9ab9-475d-b026-8c544cced439", "2021-06-01"),
            &assessment_body("Healthy"),
        )
        .await;
    assert!(put.status < 300, "{}", put.text);
    let q = json!({"query": "securityresources | summarize n = count() by subscriptionId | order by subscriptionId asc"});

    // The owner sees both subscriptions.
    let r = graph(&app, q.clone()).await;
    let owner_data = r.body["data"].clone();
    let n_other = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["subscriptionId"] == other.to_string())
        .map(|x| x["n"].clone())
        .unwrap();
    // Its score and the assessment at least.
    assert!(n_other.as_i64().unwrap() >= 2);
    let subs: BTreeSet<String> = r.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["subscriptionId"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(subs, BTreeSet::from([DEMO.to_string(), other.to_string()]));

    // A Reader of the other subscription sees only its rows, also when it names the demo one.
    let scope = format!("/subscriptions/{other}");
    let reader = token_with(&app, Some(("Reader", &scope))).await;
    let (status, body) = graph_as(&app, &reader, q.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"], json!([{"subscriptionId": other.to_string(), "n": n_other}]));
    let mut named = q.clone();
    named["subscriptions"] = json!([DEMO, other.to_string()]);
    let (_, body) = graph_as(&app, &reader, named).await;
    assert_eq!(body["totalRecords"], 1);

    // No role: a valid query with no rows. No token: 401.
    let nobody = token_with(&app, None).await;
    let (status, body) = graph_as(&app, &nobody, q.clone()).await;
    assert_eq!((status, body["totalRecords"].clone()), (200, json!(0)), "{body}");
    let r = app.http.post(format!("{}{PATH}", app.base)).json(&q).send().await.unwrap();
    assert_eq!(r.status().as_u16(), 401);

    // An empty list is the whole tenant, as no list is.
    let mut empty = q.clone();
    empty["subscriptions"] = json!([]);
    assert_eq!(graph(&app, empty).await.body["data"], owner_data);

    // The owner can narrow the scope to one subscription.
    let mut one = q.clone();
    one["subscriptions"] = json!([DEMO]);
    let r = graph(&app, one).await;
    assert_eq!(r.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(r.body["data"][0]["subscriptionId"], DEMO);
    app.stop().await;
}

/// The detail that says what failed where.
fn failure(r: &Resp) -> &Value {
    assert_eq!((r.status, r.code()), (400, "BadRequest"), "{}", r.text);
    assert_eq!(r.body["error"]["details"][0]["code"], "InvalidQuery", "{}", r.text);
    &r.body["error"]["details"][1]
}

#[tokio::test]
async fn queries_outside_the_subset_are_400_naming_the_construct_and_its_position() {
    let app = spawn_app().await;
    let cases: &[(&str, &str, u64, u64, &str)] = &[
        // (query, detail code, line, characterPositionInLine (from 0), token)
        ("securityresources\r\n| union resources", "UnsupportedQueryConstruct", 2, 2, "union"),
        (
            "securityresources | where name matches regex 'x'",
            "UnsupportedQueryConstruct",
            1,
            31,
            "matches",
        ),
        ("securityresources\n| where foo == 1", "InvalidQueryContent", 2, 8, "foo"),
        ("securityresources | where", "ParserFailure", 1, 25, "<end of query>"),
        ("securityresources | project strcat(name", "ParserFailure", 1, 39, "<end of query>"),
        (
            "alertsmanagementresources | take 1",
            "InvalidQueryContent",
            1,
            0,
            "alertsmanagementresources",
        ),
        (
            "securityresources | extend x = percentile(1, 50)",
            "UnsupportedQueryConstruct",
            1,
            31,
            "percentile",
        ),
        ("securityresources | where name == 'unclosed", "ParserFailure", 1, 34, "'"),
        ("let x = 1; securityresources", "UnsupportedQueryConstruct", 1, 0, "let"),
        ("securityresources | where timestamp > ago(1y)", "UnsupportedQueryConstruct", 1, 42, "1y"),
    ];
    for (query, code, line, at, token) in cases {
        let r = graph(&app, json!({"query": query})).await;
        let d = failure(&r);
        assert_eq!(d["code"], *code, "{query}: {}", r.text);
        assert_eq!(d["line"], *line, "{query}: {}", r.text);
        assert_eq!(d["characterPositionInLine"], *at, "{query}: {}", r.text);
        assert_eq!(d["token"], *token, "{query}: {}", r.text);
        let message = r.message();
        assert!(message.contains(&format!("line {line}, column {}", at + 1)), "{message}");
    }

    // Not a query at all.
    for body in [json!({}), json!({"query": 5}), json!({"query": "x", "subscriptions": ["nope"]})] {
        let r = graph(&app, body.clone()).await;
        assert_eq!((r.status, r.code()), (400, "InvalidRequestContent"), "{body}: {}", r.text);
    }
    // A management group that does not exist: ARM's 404.
    let r =
        graph(&app, json!({"query": "securityresources", "managementGroups": ["ProductionMG"]}))
            .await;
    assert_eq!((r.status, r.code()), (404, "NotFound"), "{}", r.text);
    // Other verbs and versions.
    let r = app.get(PATH).await;
    assert_eq!(r.status, 405);
    let r = app
        .request(
            Method::POST,
            "/providers/Microsoft.ResourceGraph/resources?api-version=2019-04-01",
            Some("{}".into()),
            &[],
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceType"), "{}", r.text);
    assert!(r.message().contains("Microsoft.ResourceGraph"), "{}", r.text);
    let r = app
        .request(
            Method::POST,
            "/providers/Microsoft.ResourceGraph/resources?api-version=2022-10-01",
            Some(json!({"query": "securityresources | count"}).to_string()),
            &[],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    assert!(r.body["data"][0]["Count"].as_i64().unwrap() > 0);
    app.stop().await;
}

/// An example of the Resource Graph spec (copied to tests/fixtures, see its PROVENANCE.md).
fn rg_example(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/azure-spec/resourcegraph/resource-manager/Microsoft.ResourceGraph/stable/2021-03-01/examples")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

#[tokio::test]
async fn the_spec_examples_replay_with_their_shapes() {
    let app = spawn_app().await;
    for name in [
        "ResourcesBasicQuery.json",
        "ResourcesComplexQuery.json",
        "ResourcesFacetQuery.json",
        "ResourcesFilterQuery.json",
        "ResourcesFirstPageQuery.json",
        "ResourcesPropertiesQuery.json",
        "ResourcesRandomPageQuery.json",
        "ResourcesSummarizeQuery.json",
        "ResourcesTenantBasicQuery.json",
    ] {
        let example = rg_example(name);
        let mut request = example["parameters"]["query"].clone();
        let want = &example["responses"]["200"]["body"];
        // Its subscription is not ours: query them all, through the same request otherwise.
        request.as_object_mut().unwrap().remove("subscriptions");
        let r = graph(&app, request.clone()).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        // The `Resources` table (Azure's own resources) holds nothing here.
        assert_eq!(
            (r.body["totalRecords"].clone(), r.body["count"].clone()),
            (json!(0), json!(0)),
            "{name}"
        );
        for key in ["totalRecords", "count", "resultTruncated", "data", "facets"] {
            assert!(r.body.get(key).is_some(), "{name}: {key} missing");
        }
        assert_eq!(r.body["resultTruncated"], want["resultTruncated"], "{name}");
        assert_eq!(
            r.body["facets"].as_array().unwrap().len(),
            want["facets"].as_array().map_or(0, Vec::len),
            "{name}"
        );

        // The same query over securityresources: the columns are the example's.
        let query = request["query"]
            .as_str()
            .unwrap()
            .replace("Resources |", "securityresources |")
            .replace("Microsoft.Compute/virtualMachines", "microsoft.security/assessments");
        let mut ours = request.clone();
        ours["query"] = json!(query);
        ours.as_object_mut().unwrap().remove("options");
        let r = graph(&app, ours).await;
        assert_eq!(r.status, 200, "{name}: {}", r.text);
        let (Some(first), Some(example_first)) = (r.body["data"].get(0), want["data"].get(0))
        else {
            continue;
        };
        let keys = |v: &Value| v.as_object().unwrap().keys().cloned().collect::<BTreeSet<String>>();
        if name == "ResourcesPropertiesQuery.json" {
            // The example calls count()'s column `count`; KQL (and the complex example) `count_`.
            assert!(first.get("count_").is_some(), "{first}");
            continue;
        }
        assert_eq!(keys(first), keys(example_first), "{name}");
    }

    // The management group example, once its groups exist (the demo subscription below one of
    // them): its `resources` table holds nothing here, and `securityresources` at the same scope
    // is the subscription's.
    let mg = rg_example("ResourcesMgBasicQuery.json")["parameters"]["query"].clone();
    for g in mg["managementGroups"].as_array().unwrap() {
        let path = format!(
            "/providers/Microsoft.Management/managementGroups/{}?api-version=2021-04-01",
            g.as_str().unwrap()
        );
        let r = app.put(&path, &json!({"properties": {"displayName": g}})).await;
        assert_eq!(r.status, 200, "{}", r.text);
    }
    let r = app
        .put(&format!("/providers/Microsoft.Management/managementGroups/ProductionMG/subscriptions/{DEMO}?api-version=2021-04-01"), &json!({}))
        .await;
    assert_eq!(r.status, 200, "{}", r.text);
    let r = graph(&app, mg.clone()).await;
    assert_eq!((r.status, r.body["totalRecords"].clone()), (200, json!(0)), "{}", r.text);
    let mut scores = mg;
    scores["query"] = json!("securityresources | where type == 'microsoft.security/securescores' | project subscriptionId");
    let r = graph(&app, scores).await;
    assert_eq!(r.body["data"], json!([{"subscriptionId": DEMO}]), "{}", r.text);
    // The subscription's row in `resourcecontainers` names its groups, nearest first.
    let containers = json!({"query": "resourcecontainers | where subscriptionId == '20ff7fc3-e762-44dd-bd96-b71116dcdc23' | project chain = properties.managementGroupAncestorsChain"});
    let r = graph(&app, containers).await;
    let chain =
        r.body["data"][0]["chain"].as_array().unwrap_or_else(|| panic!("{}", r.text)).clone();
    assert_eq!(chain.first().map(|g| g["name"].clone()), Some(json!("ProductionMG")), "{chain:?}");
    assert_eq!(chain.first().map(|g| g["displayName"].clone()), Some(json!("ProductionMG")));
    assert_eq!(chain.last().map(|g| g["displayName"].clone()), Some(json!("Tenant Root Group")));

    // Facets: a result per expression, an error for a column that does not exist.
    let mut facet = rg_example("ResourcesFacetQuery.json")["parameters"]["query"].clone();
    facet["query"] =
        json!("securityresources | project id, name, type, resourceGroup, properties.status.code");
    // The example's second facet names a VM property; ours names the assessment's status.
    facet["facets"][1]["expression"] = json!("properties.status.code");
    facet.as_object_mut().unwrap().remove("subscriptions");
    let r = graph(&app, facet).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let facets = r.body["facets"].as_array().unwrap();
    assert_eq!(facets.len(), 5);
    assert_eq!(facets[2]["resultType"], "FacetError");
    assert_eq!(facets[2]["expression"], "nonExistingColumn");
    // `location` was not projected; `properties.status.code` was, as `properties_status_code`.
    assert_eq!(facets[0]["resultType"], "FacetError", "{}", facets[0]);
    let codes = &facets[1];
    assert_eq!(codes["resultType"], "FacetResult", "{codes}");
    assert!(codes["data"][0].get("properties_status_code").is_some(), "{codes}");
    // Sorted by tolower(resourceGroup) ascending, at most 3.
    let groups = facets[3]["data"].as_array().unwrap();
    assert!(groups.len() <= 3 && !groups.is_empty(), "{}", facets[3]);
    let names: Vec<String> =
        groups.iter().map(|g| g["resourceGroup"].as_str().unwrap().to_lowercase()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
    app.stop().await;
}

#[tokio::test]
async fn facets_count_the_result_by_an_expression() {
    let app = spawn_app().await;
    let body = json!({
        "query": "securityresources | where type == 'microsoft.security/assessments' | project id, status = tostring(properties.status.code)",
        "facets": [
            {"expression": "status", "options": {"sortOrder": "desc", "$top": 2}},
            {"expression": "status", "options": {"filter": "status == 'Healthy'"}},
        ]
    });
    let r = graph(&app, body).await;
    assert_eq!(r.status, 200, "{}", r.text);
    let (listed, _) = app
        .get_all(&format!(
            "/subscriptions/{DEMO}/providers/Microsoft.Security/assessments?api-version=2021-06-01"
        ))
        .await;
    let mut counts: BTreeMap<String, i64> = BTreeMap::new();
    for a in &listed {
        *counts
            .entry(a["properties"]["status"]["code"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    let f = &r.body["facets"][0];
    assert_eq!(f["resultType"], "FacetResult");
    assert_eq!(f["totalRecords"], counts.len());
    let top = f["data"].as_array().unwrap();
    assert!(top.len() <= 2);
    let most = counts.values().max().unwrap();
    assert_eq!(top[0]["count"], *most);
    assert_eq!(top[0]["count"], counts[top[0]["status"].as_str().unwrap()]);
    let healthy = &r.body["facets"][1];
    assert_eq!(healthy["data"], json!([{"status": "Healthy", "count": counts["Healthy"]}]));
    app.stop().await;
}

/// A token from the token endpoint for a new service principal with `role` at `scope`.
async fn token_with(app: &TestApp, role: Option<(&str, &str)>) -> String {
    token_with_roles(app, role.as_slice()).await
}
