//! Every applicable row of the CloudError table of docs/ARM.md.

use reqwest::Method;
use uuid::Uuid;

use super::*;

fn assert_cloud_error(r: &Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text);
    assert_eq!(r.code(), code, "{}", r.text);
    assert!(!r.message().is_empty());
    assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
    assert!(r.header("retry-after").is_none(), "never Retry-After on a final error");
    assert!(r.header("x-ms-request-id").is_some());
}

#[tokio::test]
async fn api_version_rules() {
    let app = spawn_app().await;
    let base = format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScores/ascScore");
    let r = app.get(&base).await;
    assert_cloud_error(&r, 400, "MissingApiVersionParameter");
    assert_eq!(
        r.message(),
        "The api-version query parameter (?api-version=) is required for all requests."
    );
    let r = app.get(&format!("{base}?api-version=")).await;
    assert_cloud_error(&r, 400, "MissingApiVersionParameter");
    let r = app.get(&format!("{base}?api-version=2021-06-01")).await;
    assert_cloud_error(&r, 400, "InvalidResourceType");
    assert_eq!(
        r.message(),
        "The resource type 'secureScores' could not be found in the namespace 'Microsoft.Security' for api version '2021-06-01'. The supported api-versions are '2020-01-01,2020-01-01-preview'."
    );
    // Assessments accept both versions, and say so.
    let r = app
        .get(&format!(
            "/subscriptions/{DEMO}/providers/Microsoft.Security/assessments?api-version=2019-01-01"
        ))
        .await;
    assert_cloud_error(&r, 400, "InvalidResourceType");
    assert!(
        r.message().ends_with("The supported api-versions are '2021-06-01,2020-01-01'."),
        "{}",
        r.message()
    );
    // ARM-owned endpoints.
    let r = app.get("/subscriptions?api-version=1999-01-01").await;
    assert_cloud_error(&r, 400, "InvalidApiVersionParameter");
    assert!(r.message().starts_with(
        "The api-version '1999-01-01' is invalid. The supported versions are '2022-12-01,"
    ));
    assert_eq!(app.get("/subscriptions?api-version=2022-12-01").await.status, 200);
    // Missing api-version on an unknown path is still the missing api-version.
    assert_cloud_error(&app.get("/whatever").await, 400, "MissingApiVersionParameter");
}

#[tokio::test]
async fn subscription_errors() {
    let app = spawn_app().await;
    let r = app.get(&score_path("not-a-guid")).await;
    assert_cloud_error(&r, 400, "InvalidSubscriptionId");
    assert_eq!(
        r.message(),
        "The provided subscription identifier 'not-a-guid' is malformed or invalid."
    );
    let unknown = Uuid::new_v4();
    for path in [
        score_path(&unknown.to_string()),
        format!("/subscriptions/{unknown}/providers/Microsoft.Security/secureScores?api-version=2020-01-01"),
        format!("/subscriptions/{unknown}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01"),
        format!("/subscriptions/{unknown}/providers/Microsoft.Security/secureScoreControlDefinitions?api-version=2020-01-01"),
        format!("/subscriptions/{unknown}/providers/Microsoft.Security/assessments?api-version=2021-06-01"),
        format!("/subscriptions/{unknown}?api-version=2022-12-01"),
    ] {
        let r = app.get(&path).await;
        assert_cloud_error(&r, 404, "SubscriptionNotFound");
        assert_eq!(r.message(), format!("The subscription '{unknown}' could not be found."));
    }
}

#[tokio::test]
async fn unknown_resources() {
    let app = spawn_app().await;
    let r = app.get(&format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScores/nope?api-version=2020-01-01")).await;
    assert_cloud_error(&r, 404, "ResourceNotFound");
    assert_eq!(r.message(), format!("The Resource 'Microsoft.Security/secureScores/nope' under subscription '{DEMO}' was not found."));
    let r = app
        .get(&format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScores/nope/secureScoreControls?api-version=2020-01-01"))
        .await;
    assert_cloud_error(&r, 404, "ResourceNotFound");
    let resource = format!(
        "/subscriptions/{DEMO}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
    );
    let r = app
        .get(&assessment_path(&resource, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01"))
        .await;
    assert_cloud_error(&r, 404, "ResourceNotFound");
    assert!(r
        .message()
        .contains("Microsoft.Security/assessments/21300918-b2e3-0346-785f-c77ff57d243b"));
    let r = app
        .get("/providers/Microsoft.Security/assessmentMetadata/nope?api-version=2021-06-01")
        .await;
    assert_cloud_error(&r, 404, "ResourceNotFound");
}

#[tokio::test]
async fn unknown_paths_and_types() {
    let app = spawn_app().await;
    let r = app
        .get(&format!(
            "/subscriptions/{DEMO}/providers/Microsoft.Security/alerts?api-version=2020-01-01"
        ))
        .await;
    assert_cloud_error(&r, 404, "InvalidResourceType");
    assert!(r.message().contains("'alerts'"), "{}", r.message());
    let r = app.get(&format!("/subscriptions/{DEMO}/providers/Microsoft.Compute/virtualMachines?api-version=2020-01-01")).await;
    assert_cloud_error(&r, 404, "InvalidResourceType");
    assert_cloud_error(
        &app.get("/no/such/path?api-version=2020-01-01").await,
        404,
        "InvalidResourceType",
    );
}

#[tokio::test]
async fn wrong_methods_answer_405_with_allow() {
    let app = spawn_app().await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let r = app.request(method.clone(), &score_path(DEMO), Some("{}".into()), &[]).await;
        assert_cloud_error(&r, 405, "MethodNotAllowed");
        assert_eq!(r.header("allow"), Some("GET"));
        assert_eq!(
            r.message(),
            format!("The requested resource does not support http method '{method}'.")
        );
    }
    let resource = format!(
        "/subscriptions/{DEMO}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
    );
    let r =
        app.request(Method::POST, &assessment_path(&resource, "x", "2021-06-01"), None, &[]).await;
    assert_cloud_error(&r, 405, "MethodNotAllowed");
    assert_eq!(r.header("allow"), Some("GET, PUT, DELETE"));
    // Extension routes too.
    let r = app.request(Method::PATCH, "/securescore/v1/subscriptions", None, &[]).await;
    assert_cloud_error(&r, 405, "MethodNotAllowed");
}

#[tokio::test]
async fn bad_query_parameters() {
    let app = spawn_app().await;
    let r = app
        .get(&format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01&$expand=everything"))
        .await;
    assert_cloud_error(&r, 400, "BadRequest");
    assert_eq!(r.body["error"]["target"], "$expand");
    // Unknown query parameters are ignored.
    let r = app.get(&format!("{}&foo=bar", score_path(DEMO))).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn oversized_and_malformed_bodies() {
    let app = spawn_app().await;
    let resource = format!(
        "/subscriptions/{DEMO}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm"
    );
    let path = assessment_path(&resource, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01");
    let big = format!("{{\"properties\":{{\"x\":\"{}\"}}}}", "a".repeat(5 << 20));
    let r = app.request(Method::PUT, &path, Some(big), &[]).await;
    assert_cloud_error(&r, 413, "RequestContentTooLarge");
    let r = app.request(Method::PUT, &path, Some("{not json".into()), &[]).await;
    assert_cloud_error(&r, 400, "InvalidRequestContent");
    assert_eq!(app.get(&path).await.status, 404, "nothing was written");
}

#[tokio::test]
async fn budgets_throttle_with_retry_after_and_report_what_is_left() {
    use securescore::arm::throttle::{Budget, ThrottleConfig};
    let app = spawn_with(Options {
        throttle: Some(ThrottleConfig {
            reads: Budget { bucket: 3.0, per_second: 0.1 },
            writes: Budget { bucket: 200.0, per_second: 10.0 },
        }),
        ..Options::default()
    })
    .await;
    let remaining: Vec<Option<String>> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(
                app.get(&score_path(DEMO))
                    .await
                    .header("x-ms-ratelimit-remaining-subscription-reads")
                    .map(str::to_string),
            );
        }
        v
    };
    assert_eq!(remaining, vec![Some("2".into()), Some("1".into()), Some("0".into())]);
    let r = app.get(&score_path(DEMO)).await;
    assert_eq!((r.status, r.code()), (429, "SubscriptionRequestsThrottled"));
    assert_eq!(r.header("retry-after"), Some("10"));
    // Writes have their own budget.
    let resource = format!("/subscriptions/{DEMO}/resourceGroups/rg");
    let w = app
        .put(
            &assessment_path(&resource, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01"),
            &assessment_body("Healthy"),
        )
        .await;
    assert_eq!(w.status, 201);
    assert_eq!(w.header("x-ms-ratelimit-remaining-subscription-writes"), Some("199"));
}

#[tokio::test]
async fn operations_endpoints() {
    let app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.text, "ok");
    assert_eq!(app.get("/readyz").await.text, "ready");
    app.get(&score_path(DEMO)).await;
    let m = app.get("/metrics").await;
    assert_eq!(m.status, 200);
    assert!(
        m.text.contains("securescore_requests_total{endpoint=\"SecureScores_Get\",status=\"200\"}"),
        "{}",
        m.text
    );
    assert!(m.text.contains("securescore_request_duration_seconds"));
}
