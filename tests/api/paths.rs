//! The identity of a resource is exactly its path: no two spellings that decode differently name
//! the same resource, and nothing that cannot be a name is stored under one. Some requests here
//! are written byte by byte over TCP, because HTTP clients normalise URLs (`..`) before sending.

use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;

const EP_VMSS: &str = "21300918-b2e3-0346-785f-c77ff57d243b";

/// A response read off a raw connection.
#[derive(Debug)]
pub struct Raw {
    pub status: u16,
    /// Lowercase names.
    pub headers: HashMap<String, String>,
    pub body: Value,
    pub text: String,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

/// Write `request` on a new connection and read one response. The server must answer without the
/// client sending anything more (the bound only keeps a broken server from hanging the suite).
/// A line `Authorization: Bearer {ANY_TOKEN}` is replaced by the credentials the harness's own
/// requests carry, so raw requests follow the harness's authentication mode.
pub async fn raw(app: &TestApp, request: &[u8]) -> Raw {
    let placeholder = format!("Authorization: Bearer {ANY_TOKEN}\r\n").into_bytes();
    let request = match request.windows(placeholder.len()).position(|w| w == placeholder) {
        Some(at) => {
            let line = format!("Authorization: {}\r\n", harness_authorization(app).await);
            [&request[..at], line.as_bytes(), &request[at + placeholder.len()..]].concat()
        }
        None => request.to_vec(),
    };
    let addr = app.base.trim_start_matches("http://").to_string();
    let mut stream = TcpStream::connect(&addr).await.expect("connect");
    stream.write_all(&request).await.expect("write the request");
    tokio::time::timeout(std::time::Duration::from_secs(20), read_response(&mut stream))
        .await
        .expect("the server answers without waiting for more of the request")
}

/// The `Authorization` header the harness sends: one request of `app.request` to a listener of
/// ours, which reads it off the request.
async fn harness_authorization(app: &TestApp) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("an address"));
    let capture = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.expect("accept");
        let mut head = Vec::new();
        let mut chunk = [0u8; 4096];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = stream.read(&mut chunk).await.expect("read");
            assert!(n > 0, "the harness closed its request");
            head.extend_from_slice(&chunk[..n]);
        }
        let reply = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        stream.write_all(reply).await.expect("reply");
        String::from_utf8_lossy(&head)
            .split("\r\n")
            .find_map(|l| {
                l.split_once(": ").filter(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            })
            .map(|(_, v)| v.to_string())
            .expect("the harness sends credentials")
    });
    app.get(&url).await;
    capture.await.expect("the capture")
}

async fn read_response(stream: &mut TcpStream) -> Raw {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(
            n > 0,
            "the connection closed before a response: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let status: u16 = lines.next().unwrap().split(' ').nth(1).unwrap().parse().unwrap();
    let headers: HashMap<String, String> = lines
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_ascii_lowercase(), v.to_string()))
        .collect();
    let length: usize = headers.get("content-length").map_or(0, |l| l.parse().unwrap());
    let mut body = buf[head_end..].to_vec();
    while body.len() < length {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "the connection closed inside the body");
        body.extend_from_slice(&chunk[..n]);
    }
    let text = String::from_utf8_lossy(&body[..length.min(body.len())]).to_string();
    Raw { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::Null), text }
}

/// A raw GET with the test token.
pub async fn raw_get(app: &TestApp, target: &str) -> Raw {
    let token = &app.token;
    let request =
        format!("GET {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n");
    raw(app, request.as_bytes()).await
}

fn assert_invalid_name(status: u16, code: &str, content_type: Option<&str>, text: &str) {
    assert_eq!((status, code), (400, "InvalidResourceName"), "{text}");
    assert_eq!(content_type, Some("application/json; charset=utf-8"));
}

fn rg_resource(rg: &str, vm: &str) -> String {
    format!("/subscriptions/{DEMO}/resourceGroups/{rg}/providers/Microsoft.Compute/virtualMachines/{vm}")
}

async fn assessment_count(app: &TestApp) -> usize {
    let (items, _) = app
        .get_all(&format!(
            "/subscriptions/{DEMO}/providers/Microsoft.Security/assessments?api-version=2021-06-01"
        ))
        .await;
    items.len()
}

#[tokio::test]
async fn an_encoded_slash_never_splits_or_joins_names() {
    let app = spawn_app().await;
    let before = assessment_count(&app).await;
    // In the resource group, in the resource name, in the assessment name: each would have given
    // an id that lists under another resource group, or one that cannot be read back.
    for path in [
        assessment_path(&rg_resource("rg%2Fother", "vm"), EP_VMSS, "2021-06-01"),
        assessment_path(&rg_resource("rg", "vm%2fx"), EP_VMSS, "2021-06-01"),
        assessment_path(&rg_resource("rg", "vm"), &format!("x%2F{EP_VMSS}"), "2021-06-01"),
    ] {
        let r = app.put(&path, &assessment_body("Unhealthy")).await;
        assert_invalid_name(r.status, r.code(), r.header("content-type"), &r.text);
        assert!(r.message().contains("%2"), "the message names the segment: {}", r.message());
        let r = app.get(&path).await;
        assert_eq!(r.code(), "InvalidResourceName");
        let r = app.delete(&path).await;
        assert_eq!(r.code(), "InvalidResourceName");
    }
    assert_eq!(assessment_count(&app).await, before, "nothing was written");
}

#[tokio::test]
async fn names_that_are_not_utf8_are_refused_not_merged() {
    let app = spawn_app().await;
    // Decoded lossily, both of these were the same resource and the second PUT overwrote the first.
    for vm in ["alias%FFb", "alias%FEb", "caf%C3"] {
        let path = assessment_path(&rg_resource("rg", vm), EP_VMSS, "2021-06-01");
        let r = app.put(&path, &assessment_body("Healthy")).await;
        assert_invalid_name(r.status, r.code(), r.header("content-type"), &r.text);
        assert!(r.message().contains(vm), "{}", r.message());
    }
    // Valid UTF-8, percent-encoded: decoded once, the same resource as its plain spelling.
    let encoded = assessment_path(&rg_resource("my%2Drg", "caf%C3%A9"), EP_VMSS, "2021-06-01");
    let created = app.put(&encoded, &assessment_body("Healthy")).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let plain =
        app.get(&assessment_path(&rg_resource("my-rg", "café"), EP_VMSS, "2021-06-01")).await;
    assert_eq!(plain.status, 200, "{}", plain.text);
    assert_eq!(plain.body["id"], created.body["id"]);
    assert!(plain.body["id"].as_str().unwrap().contains("/resourceGroups/my-rg/"));
    // Decoded once only: `%252D` is the three characters `%2D`, which a name may not hold.
    let twice = app
        .put(
            &assessment_path(&rg_resource("my%252Drg", "vm"), EP_VMSS, "2021-06-01"),
            &assessment_body("Healthy"),
        )
        .await;
    assert_eq!(twice.status, 400, "{}", twice.text);
}

#[tokio::test]
async fn dot_segments_and_control_characters_are_not_names() {
    let app = spawn_app().await;
    let token = &app.token;
    let before = assessment_count(&app).await;
    for name in ["..", ".", "%2E%2E", "%2e", "a%00b", "tab%09", "bell%07"] {
        // Raw, so that no client resolves the dot segments first.
        let target = assessment_path(&rg_resource("rg", name), EP_VMSS, "2021-06-01");
        let body = assessment_body("Unhealthy").to_string();
        let request = format!(
            "PUT {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let r = raw(&app, request.as_bytes()).await;
        assert_invalid_name(r.status, r.code(), r.header("content-type"), &r.text);
        assert!(r.header("x-ms-request-id").is_some());
        // The scope of a list too.
        let r = raw_get(
            &app,
            &format!("/subscriptions/{DEMO}/resourceGroups/{name}/providers/Microsoft.Security/assessments?api-version=2021-06-01"),
        )
        .await;
        assert_eq!(r.code(), "InvalidResourceName", "{name}: {}", r.text);
    }
    // `..` in place of a fixed segment is refused too, never resolved.
    let r = raw_get(&app, &format!("/subscriptions/{DEMO}/providers/Microsoft.Security/secureScores/../secureScores/ascScore?api-version=2020-01-01")).await;
    assert_eq!((r.status, r.code()), (400, "InvalidResourceName"), "{}", r.text);
    assert_eq!(assessment_count(&app).await, before);
}

#[tokio::test]
async fn over_long_names_and_ids_are_refused() {
    let app = spawn_app().await;
    let long = "n".repeat(261);
    let r = app
        .put(
            &assessment_path(&rg_resource("rg", &long), EP_VMSS, "2021-06-01"),
            &assessment_body("Healthy"),
        )
        .await;
    assert_invalid_name(r.status, r.code(), r.header("content-type"), &r.text);
    // 260 bytes is still a name.
    let ok = "n".repeat(260);
    let r = app
        .put(
            &assessment_path(&rg_resource("rg", &ok), EP_VMSS, "2021-06-01"),
            &assessment_body("Healthy"),
        )
        .await;
    assert_eq!(r.status, 201, "{}", r.text);
    // Each name short, the id over 2048 bytes.
    let nested: String = (0..40).map(|i| format!("/children/child{i:040}")).collect();
    let resource = format!("{}{nested}", rg_resource("rg", "vm"));
    let r = app
        .put(&assessment_path(&resource, EP_VMSS, "2021-06-01"), &assessment_body("Healthy"))
        .await;
    assert_eq!((r.status, r.code()), (400, "BadRequest"), "{}", r.text);
    assert_eq!(r.body["error"]["target"], "resourceId");
}

#[tokio::test]
async fn custom_metadata_names_are_guids() {
    let app = spawn_app().await;
    let meta = json!({"properties": {"displayName": "Mine", "severity": "Low", "assessmentType": "CustomerManaged"}});
    let path = |name: &str| {
        format!("/subscriptions/{DEMO}/providers/Microsoft.Security/assessmentMetadata/{name}?api-version=2021-06-01")
    };
    for name in [
        "my-check",
        "ca039e75a2764175aebcbcd41e4b14b7",
        "%7Bca039e75-a276-4175-aebc-bcd41e4b14b7%7D",
        "x%2Fy",
    ] {
        let r = app.put(&path(name), &meta).await;
        assert_invalid_name(r.status, r.code(), r.header("content-type"), &r.text);
        assert_eq!(app.get(&path(name)).await.status / 100, 4, "nothing was created as {name}");
    }
    let guid = "ca039e75-a276-4175-aebc-bcd41e4b14b7";
    assert_eq!(app.put(&path(guid), &meta).await.status, 200);
    assert_eq!(app.get(&path(&guid.to_uppercase())).await.body["name"], guid);
}

#[tokio::test]
async fn extension_and_identity_paths_answer_cloud_errors_for_bad_segments() {
    let app = spawn_app().await;
    let body = json!({"displayName": "x"});
    let r = app.put("/securescore/v1/subscriptions/%FF", &body).await;
    assert_invalid_name(r.status, r.code(), r.header("content-type"), &r.text);
    for path in ["/securescore/v1/principals/%FF%FE", "/securescore/v1/principals/x%C3"] {
        let r = app.get(path).await;
        assert_invalid_name(r.status, r.code(), r.header("content-type"), &r.text);
    }
    // A subscription id that is not one stays what it is.
    let r = app.get("/securescore/v1/subscriptions/%FF").await;
    assert_eq!((r.status, r.code()), (400, "InvalidSubscriptionId"));
    // The token endpoint answers in OAuth's shape.
    let r = app
        .request(
            Method::POST,
            "/%FF/oauth2/v2.0/token",
            Some("grant_type=client_credentials".into()),
            &[],
        )
        .await;
    assert_eq!(r.status, 400, "{}", r.text);
    assert_eq!(r.body["error"], "invalid_request");
    assert!(r.body["error_description"].as_str().unwrap().contains("UTF-8"));
}

#[tokio::test]
async fn leading_slashes_are_collapsed_but_an_empty_name_is_refused() {
    let app = spawn_app().await;
    // A base URL ending in '/' joined with an absolute path: served.
    assert_eq!(app.get(&format!("/{}", score_path(DEMO))).await.status, 200);
    assert_eq!(app.get("//metadata/endpoints?api-version=2022-09-01").await.status, 200);
    // Inside the path, '//' is an empty name: skipping it would read `providers` as the resource
    // group's name and store the assessment under another id.
    let resource = format!(
        "/subscriptions/{DEMO}/resourceGroups//providers/Microsoft.Compute/virtualMachines/vm"
    );
    let r = app
        .put(&assessment_path(&resource, EP_VMSS, "2021-06-01"), &assessment_body("Healthy"))
        .await;
    assert_invalid_name(r.status, r.code(), r.header("content-type"), &r.text);
    // A trailing slash is still fine.
    assert_eq!(app.get(&score_path(DEMO).replace("?", "/?")).await.status, 200);
}
