//! Every applicable row of the CloudError table of docs/ARM.md.

use reqwest::Method;
use uuid::Uuid;

use super::paths::{raw, raw_get};
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
    // Assessments accept their four versions, and say so.
    let r = app
        .get(&format!(
            "/subscriptions/{DEMO}/providers/Microsoft.Security/assessments?api-version=2019-01-01"
        ))
        .await;
    assert_cloud_error(&r, 400, "InvalidResourceType");
    assert!(
        r.message().ends_with(
            "The supported api-versions are '2025-05-04,2021-06-01,2020-01-01,2019-01-01-preview'."
        ),
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
    // Missing api-version on an unknown ARM path is still the missing api-version.
    assert_cloud_error(
        &app.get(&format!("/subscriptions/{DEMO}/whatever")).await,
        400,
        "MissingApiVersionParameter",
    );
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
        &app.get(&format!("/subscriptions/{DEMO}/no/such/path?api-version=2020-01-01")).await,
        404,
        "InvalidResourceType",
    );
    assert_cloud_error(&app.get("/no/such/path?api-version=2020-01-01").await, 404, "NotFound");
}

#[tokio::test]
async fn wrong_methods_answer_405_with_allow() {
    let app = spawn_app().await;
    for method in [Method::POST, Method::PUT, Method::DELETE, Method::PATCH] {
        let r = app.request(method.clone(), &score_path(DEMO), Some("{}".into()), &[]).await;
        assert_cloud_error(&r, 405, "MethodNotAllowed");
        assert_eq!(r.header("allow"), Some("GET, HEAD"));
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
    assert_eq!(r.header("allow"), Some("GET, HEAD, PUT, DELETE"));
    // Every other route says exactly what it serves.
    for (method, path, allowed) in [
        (Method::PATCH, "/securescore/v1/subscriptions", &["GET", "HEAD"][..]),
        (
            Method::POST,
            &format!("/securescore/v1/subscriptions/{DEMO}"),
            &["GET", "HEAD", "PUT", "DELETE"],
        ),
        (Method::GET, "/securescore/v1/import", &["POST"]),
        (Method::DELETE, "/securescore/v1/principals", &["GET", "HEAD", "POST"]),
        (Method::GET, "/securescore/v1/keys/rotate", &["POST"]),
        (Method::GET, "/common/oauth2/v2.0/token", &["POST"]),
        (Method::PUT, "/healthz", &["GET", "HEAD"]),
    ] {
        let r = app.request(method, path, None, &[]).await;
        assert_cloud_error(&r, 405, "MethodNotAllowed");
        let mut got: Vec<&str> =
            r.header("allow").unwrap_or("").split(',').map(str::trim).collect();
        got.sort_unstable();
        let mut want = allowed.to_vec();
        want.sort_unstable();
        assert_eq!(got, want, "{path}");
    }
}

#[tokio::test]
async fn head_is_served_wherever_get_is() {
    let app = spawn_app().await;
    for path in [
        score_path(DEMO),
        "/providers/Microsoft.Security/assessmentMetadata?api-version=2021-06-01".to_string(),
        "/securescore/v1/subscriptions".to_string(),
        format!("/securescore/v1/subscriptions/{DEMO}/history"),
        "/healthz".to_string(),
        "/metadata/endpoints?api-version=2022-09-01".to_string(),
    ] {
        let get = app.get(&path).await;
        assert_eq!(get.status, 200, "{path}: {}", get.text);
        let head = app.request(Method::HEAD, &path, None, &[]).await;
        assert_eq!(head.status, 200, "{path}");
        assert_eq!(head.text, "", "{path}: no body");
        assert_eq!(head.header("content-type"), get.header("content-type"), "{path}");
        assert_eq!(
            head.header("content-length"),
            Some(get.text.len().to_string().as_str()),
            "{path}"
        );
        assert!(head.header("x-ms-request-id").is_some());
    }
    // Errors too: the status and headers of the GET.
    let head = app.request(Method::HEAD, &score_path("not-a-guid"), None, &[]).await;
    assert_eq!((head.status, head.text.as_str()), (400, ""));
}

#[tokio::test]
async fn unknown_paths_outside_arm_are_404_not_found() {
    let app = spawn_app().await;
    for path in ["/whatever", "/securescore/v1/nope", "/securescore/v2/subscriptions", "/healthz/x"]
    {
        for method in [Method::GET, Method::POST] {
            let r = app.request(method, path, Some("{}".into()), &[]).await;
            assert_cloud_error(&r, 404, "NotFound");
            assert!(r.message().contains(path), "{}", r.message());
        }
    }
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
    // Malformed bodies of the other route families are CloudErrors as well.
    let path = format!("/securescore/v1/subscriptions/{}", Uuid::new_v4());
    let r = app.request(Method::PUT, &path, Some("{not json".into()), &[]).await;
    assert_cloud_error(&r, 400, "InvalidRequestContent");
}

/// A request head declaring a body of `length` bytes, of which none is sent.
fn declared(app: &TestApp, method: &str, target: &str, length: u64, extra: &str) -> String {
    let token = &app.token;
    format!(
        "{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{extra}Content-Length: {length}\r\n\r\n"
    )
}

#[tokio::test]
async fn a_declared_body_over_the_limit_is_refused_at_once_on_every_route() {
    let app = spawn_app().await;
    let resource = format!("/subscriptions/{DEMO}/resourceGroups/rg");
    let targets = [
        ("PUT", assessment_path(&resource, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01")),
        ("PUT", format!("/securescore/v1/subscriptions/{DEMO}")),
    ];
    for (method, target) in &targets {
        // Nothing but the head is sent: a server waiting for the body would never answer.
        let r = raw(&app, declared(&app, method, target, 10_000_000_000, "").as_bytes()).await;
        assert_eq!((r.status, r.code()), (413, "RequestContentTooLarge"), "{target}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
        assert_eq!(r.header("connection"), Some("close"), "{target}: the body was never read");
        assert!(r.header("x-ms-request-id").is_some());
    }
    // The limit is the configured one (4 MiB by default), not axum's 2 MiB.
    let three_mib = 3 << 20;
    let body = format!("{{\"displayName\":\"{}\"}}", "d".repeat(three_mib));
    let r = app
        .request(
            Method::PUT,
            &format!("/securescore/v1/subscriptions/{}", Uuid::new_v4()),
            Some(body),
            &[],
        )
        .await;
    assert_eq!(r.status, 201, "{}", &r.text[..r.text.len().min(300)]);
    // The token endpoint answers in OAuth's shape.
    let r = raw(
        &app,
        declared(
            &app,
            "POST",
            "/common/oauth2/v2.0/token",
            10_000_000_000,
            "Content-Type: application/x-www-form-urlencoded\r\n",
        )
        .as_bytes(),
    )
    .await;
    assert_eq!(r.status, 413, "{}", r.text);
    assert_eq!(r.body["error"], "invalid_request");
    assert!(r.body["error_description"].as_str().unwrap().contains("limit"));
    assert_eq!(r.header("connection"), Some("close"));
}

#[tokio::test]
async fn extension_and_admin_routes_authenticate_before_reading_the_body() {
    let app = spawn_app().await;
    // No token, a body declared but never sent: the 401 comes at once.
    for (method, target) in [
        ("PUT", format!("/securescore/v1/subscriptions/{}", Uuid::new_v4())),
        ("GET", "/securescore/v1/principals".to_string()),
        ("GET", "/securescore/v1/keys".to_string()),
    ] {
        let head = format!("{method} {target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n");
        let r = raw(&app, head.as_bytes()).await;
        assert_eq!((r.status, r.code()), (401, "AuthenticationFailed"), "{target}: {}", r.text);
        assert!(r.header("www-authenticate").is_some());
        assert_eq!(r.header("connection"), Some("close"));
    }
}

#[tokio::test]
async fn a_broken_chunked_body_is_a_400_not_a_500() {
    let app = spawn_app().await;
    let token = &app.token;
    let resource = format!("/subscriptions/{DEMO}/resourceGroups/rg");
    for (method, target) in [
        ("PUT", assessment_path(&resource, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01")),
        ("PUT", format!("/securescore/v1/subscriptions/{DEMO}")),
        ("POST", "/securescore/v1/import".to_string()),
    ] {
        let request = format!(
            "{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{{\"a\":\r\nzz-not-a-size\r\n\r\n"
        );
        let r = raw(&app, request.as_bytes()).await;
        assert_eq!((r.status, r.code()), (400, "BadRequest"), "{target}: {}", r.text);
        assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
    }
}

#[tokio::test]
async fn request_heads_over_the_limits_are_cloud_errors() {
    let app = spawn_app().await;
    // A URI over 8 KiB.
    let long = format!("/subscriptions?api-version=2022-12-01&pad={}", "p".repeat(9000));
    let r = raw_get(&app, &long).await;
    assert_eq!((r.status, r.code()), (414, "RequestUriTooLong"), "{}", r.text);
    assert_eq!(r.header("content-type"), Some("application/json; charset=utf-8"));
    assert!(
        r.header("x-ms-request-id").is_some() && r.header("x-ms-correlation-request-id").is_some()
    );
    // Just under the limit is served.
    let fits = format!("/subscriptions?api-version=2022-12-01&pad={}", "p".repeat(8000));
    assert_eq!(raw_get(&app, &fits).await.status, 200);
    // Headers over 32 KiB in total, each of them small.
    let padding: String = (0..40).map(|i| format!("x-pad-{i}: {}\r\n", "h".repeat(1000))).collect();
    let token = &app.token;
    let request = format!("GET /subscriptions?api-version=2022-12-01 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n{padding}\r\n");
    let r = raw(&app, request.as_bytes()).await;
    assert_eq!((r.status, r.code()), (431, "RequestHeaderFieldsTooLarge"), "{}", r.text);
    assert!(r.header("x-ms-request-id").is_some());
}

#[tokio::test]
async fn connection_close_exactly_when_the_body_cannot_be_drained() {
    let app = spawn_app().await;
    let resource = format!("/subscriptions/{DEMO}/resourceGroups/rg");
    let path = assessment_path(&resource, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01");
    let body = assessment_body("Healthy").to_string();
    let token = &app.token;
    let put = |target: &str| {
        format!(
            "PUT {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
    };
    // Refused before the body is read (an unsupported api-version): the body is drained, and the
    // connection stays open.
    let r = raw(&app, put(&path.replace("2021-06-01", "1999-01-01")).as_bytes()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), None);
    // A body declared over the limit is not drained: the connection is closed.
    let huge = format!(
        "PUT {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        path.replace("2021-06-01", "1999-01-01"),
        1usize << 30
    );
    let r = raw(&app, huge.as_bytes()).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), Some("close"));
    // The body was read: the connection stays open, for errors as for successes.
    let r = raw(&app, put(&path).as_bytes()).await;
    assert_eq!(r.status, 201, "{}", r.text);
    assert_eq!(r.header("connection"), None);
    let unknown = assessment_path(&resource, "00000000-0000-0000-0000-000000000001", "2021-06-01");
    let r = raw(&app, put(&unknown).as_bytes()).await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.header("connection"), None);
    // No body at all: nothing to close for.
    let r = raw_get(&app, &score_path("not-a-guid")).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.header("connection"), None);
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
