//! Connection limits: slow-header clients, stuck TLS handshakes and idle connections are closed,
//! the connection cap sheds idle connections instead of locking out real clients, request heads
//! within the outer layer's limits reach it, and SIGTERM / SIGINT drain a request in flight.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::*;
use securescore::server::{ConnectionLimits, TlsMode};

/// Bounds every wait so that a server that never closes fails the test instead of hanging it.
const PATIENCE: Duration = Duration::from_secs(20);

fn addr(app: &TestApp) -> String {
    app.base.trim_start_matches("http://").trim_start_matches("https://").to_string()
}

/// Read until the peer closes the connection (EOF or reset); false if it is still open after
/// `within`.
async fn closed_by_peer(stream: &mut TcpStream, within: Duration) -> bool {
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // A response the server may write before closing (e.g. an error status).
            Ok(Ok(_)) => continue,
        }
    }
}

fn short(limits: ConnectionLimits) -> Options {
    Options { limits, ..Options::default() }
}

#[tokio::test]
async fn slow_header_clients_are_dropped_while_others_are_served() {
    let app = spawn_with(short(ConnectionLimits {
        header_read_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }))
    .await;
    let target = addr(&app);
    let mut trickling = Vec::new();
    for i in 0..60 {
        let target = target.clone();
        trickling.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(&target).await.unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
            // One header byte at a time, never the blank line that ends the head.
            let mut buf = [0u8; 256];
            let deadline = tokio::time::Instant::now() + PATIENCE;
            loop {
                if s.write_all(format!("X-{i}: a\r\n").as_bytes()).await.is_err() {
                    return true;
                }
                match tokio::time::timeout(Duration::from_millis(200), s.read(&mut buf)).await {
                    Ok(Ok(0)) | Ok(Err(_)) => return true,
                    Ok(Ok(_)) | Err(_) => {}
                }
                if tokio::time::Instant::now() > deadline {
                    return false;
                }
            }
        }));
    }
    // Meanwhile a client that sends whole requests is served.
    let r = tokio::time::timeout(PATIENCE, app.get("/healthz")).await.expect("served in time");
    assert_eq!(r.status, 200);
    for t in trickling {
        assert!(t.await.unwrap(), "a client trickling header bytes is disconnected");
    }
    let r = app.get("/healthz").await;
    assert_eq!(r.status, 200, "the server still answers after dropping them");
    app.stop().await;
}

#[tokio::test]
async fn tls_handshakes_that_never_complete_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(Options {
        tls: TlsMode::Local(dir.path().to_path_buf()),
        limits: ConnectionLimits {
            tls_handshake_timeout: Duration::from_secs(1),
            ..ConnectionLimits::default()
        },
        ..Options::default()
    })
    .await;
    let target = addr(&app);
    let mut stuck = Vec::new();
    for _ in 0..20 {
        let mut s = TcpStream::connect(&target).await.unwrap();
        // The start of a TLS record (handshake, TLS 1.0 framing) that never arrives in full.
        s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01]).await.unwrap();
        stuck.push(s);
    }
    // An idle socket that never says anything is a stuck handshake too.
    stuck.push(TcpStream::connect(&target).await.unwrap());
    for s in &mut stuck {
        assert!(closed_by_peer(s, PATIENCE).await, "a stuck TLS handshake is closed");
    }
    assert_eq!(app.get("/healthz").await.status, 200, "complete handshakes are served");
    app.stop().await;
}

#[tokio::test]
async fn idle_connections_are_closed_after_the_idle_timeout() {
    let app = spawn_with(short(ConnectionLimits {
        idle_timeout: Duration::from_secs(1),
        ..ConnectionLimits::default()
    }))
    .await;
    let target = addr(&app);
    // One that never sent a request, one that did and then kept the connection open.
    let mut silent = TcpStream::connect(&target).await.unwrap();
    let mut kept = TcpStream::connect(&target).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut buf = [0u8; 512];
    let n = kept.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    assert!(closed_by_peer(&mut silent, PATIENCE).await, "a silent connection idles out");
    assert!(closed_by_peer(&mut kept, PATIENCE).await, "a kept-alive connection idles out");
    app.stop().await;
}

#[tokio::test]
async fn at_the_cap_the_oldest_idle_connections_make_room_for_real_requests() {
    const CAP: usize = 16;
    let app = spawn_with(Options { max_connections: CAP, ..Options::default() }).await;
    let target = addr(&app);
    let mut idle = Vec::new();
    for _ in 0..CAP + 8 {
        idle.push(TcpStream::connect(&target).await.unwrap());
    }
    // A real request needs a connection: one of the idle ones gives way.
    let r = tokio::time::timeout(PATIENCE, app.get("/healthz"))
        .await
        .expect("a real request is served although idle connections fill the cap");
    assert_eq!(r.status, 200);
    let r = tokio::time::timeout(PATIENCE, app.get(&score_path(DEMO))).await.expect("served");
    assert_eq!(r.status, 200, "{}", r.text);
    // The first ones opened were shed; the newest still stands.
    assert!(closed_by_peer(&mut idle[0], PATIENCE).await, "the oldest idle connection is closed");
    let newest = idle.last_mut().unwrap();
    assert!(
        !closed_by_peer(newest, Duration::from_millis(300)).await,
        "the newest idle connection is kept while older ones can go"
    );
    app.stop().await;
}

#[tokio::test]
async fn request_heads_within_the_outer_layers_limits_reach_it() {
    let app = spawn_app().await;
    // A 40 KiB header block: over the layer's 32 KiB (a CloudError 431 there) but not hyper's
    // limit, which would answer a bare 431 without a CloudError body.
    let big = "a".repeat(40 * 1024);
    let r = app.request(Method::GET, "/healthz", None, &[("x-padding", big.as_str())]).await;
    assert!(
        r.status == 200 || (r.status == 431 && !r.code().is_empty()),
        "answered by the server, not by hyper: {} {}",
        r.status,
        r.text
    );
    let long_uri = format!("{}&pad={}", score_path(DEMO), "b".repeat(9 * 1024));
    let r = app.get(&long_uri).await;
    assert!(!r.code().is_empty() || r.status == 200, "a long URI reaches the router: {}", r.status);
    app.stop().await;
}

/// The real binary serving plain HTTP from memory with `extra` flags, and its base URL.
async fn start_binary(extra: &[&str]) -> (std::process::Child, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_securescore"))
        .args(["serve", "--insecure-http", "--memory", "--demo", "--auth", "any"])
        .args(["--listen", "127.0.0.1:0", "--no-throttle", "--data-dir"])
        .arg(dir.path())
        .args(extra)
        .env("SECURESCORE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    let stdout = child.stdout.take().unwrap();
    // Keep reading after the address: a closed pipe would fail the server's later prints.
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(url) = line.strip_prefix("securescore listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(url.trim().to_string());
                }
            }
        }
    });
    let base = tokio::time::timeout(PATIENCE, rx)
        .await
        .expect("the server prints its address")
        .expect("the server printed its address");
    (child, base, dir)
}

#[tokio::test]
async fn the_serve_flags_set_the_timeouts() {
    let (mut child, base, _dir) =
        start_binary(&["--header-read-timeout", "1", "--idle-timeout", "1"]).await;
    let target = base.trim_start_matches("http://");
    let mut slow = TcpStream::connect(target).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut silent = TcpStream::connect(target).await.unwrap();
    assert!(closed_by_peer(&mut slow, PATIENCE).await, "--header-read-timeout applies");
    assert!(closed_by_peer(&mut silent, PATIENCE).await, "--idle-timeout applies");
    let _ = child.kill();
    let _ = child.wait();
}

/// Start the real binary, send a request that stays in flight, signal, and check the request
/// completes and the process exits 0.
async fn signal_drains_a_request_in_flight(signal: &str) {
    let (mut child, base, _dir) = start_binary(&[]).await;
    let mut s = TcpStream::connect(base.trim_start_matches("http://")).await.unwrap();
    let resource =
        format!("/subscriptions/{DEMO}/resourceGroups/drain/providers/Microsoft.Web/sites/a");
    let path = assessment_path(&resource, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01");
    let body = assessment_body("Healthy").to_string();
    let (first, rest) = body.as_bytes().split_at(body.len() / 2);
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {ANY_TOKEN}\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).await.unwrap();
    // "100 Continue" comes when the handler starts reading the body: the request is in flight.
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(PATIENCE, s.read(&mut buf)).await.unwrap().unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 100"), "interim response");
    s.write_all(first).await.unwrap();
    let status =
        Command::new("kill").args([&format!("-{signal}"), &child.id().to_string()]).status();
    assert!(status.unwrap().success());
    tokio::time::sleep(Duration::from_millis(200)).await;
    s.write_all(rest).await.unwrap();
    let mut response = Vec::new();
    tokio::time::timeout(PATIENCE, s.read_to_end(&mut response))
        .await
        .expect("the response comes and the connection closes")
        .unwrap();
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 201"), "the request in flight completes: {response}");
    let exit = tokio::task::spawn_blocking(move || {
        let deadline = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    })
    .await
    .unwrap()
    .expect("the server exits after draining");
    assert!(exit.success(), "SIG{signal} ends the server cleanly: {exit:?}");
}

#[tokio::test]
async fn sigterm_drains_requests_in_flight_and_exits_0() {
    signal_drains_a_request_in_flight("TERM").await;
}

#[tokio::test]
async fn sigint_drains_requests_in_flight_and_exits_0() {
    signal_drains_a_request_in_flight("INT").await;
}

#[test]
fn serve_help_explains_every_limit() {
    let out = Command::new(env!("CARGO_BIN_EXE_securescore")).args(["serve", "--help"]).output();
    let help = String::from_utf8_lossy(&out.unwrap().stdout).to_string();
    for flag in [
        "--max-connections",
        "--header-read-timeout",
        "--tls-handshake-timeout",
        "--idle-timeout",
        "--store-busy-timeout-ms",
    ] {
        let line = help.lines().skip_while(|l| !l.contains(flag)).nth(1).unwrap_or_default();
        assert!(!line.trim().is_empty(), "{flag} has help text:\n{help}");
    }
}

/// `securescore serve | head -1`: once the reader of its output is gone, the server goes on
/// serving (its banner is one write whose failure is ignored, not a panic).
#[tokio::test]
async fn a_closed_stdout_does_not_stop_the_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_securescore"))
        .args(["serve", "--insecure-http", "--memory", "--demo", "--no-throttle"])
        .args(["--listen", &format!("127.0.0.1:{port}"), "--data-dir"])
        .arg(dir.path())
        .env("SECURESCORE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("the binary starts");
    // Close the pipe's reading end before the server has written anything.
    drop(child.stdout.take());
    let url = format!("http://127.0.0.1:{port}/healthz");
    let http = reqwest::Client::new();
    let deadline = std::time::Instant::now() + PATIENCE;
    let mut answered = false;
    while std::time::Instant::now() < deadline {
        if let Ok(r) = http.get(&url).send().await {
            answered = r.status() == 200;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let still_running = child.try_wait().expect("the child's state").is_none();
    let _ = child.kill();
    let _ = child.wait();
    assert!(answered, "the server answers /healthz with its stdout closed");
    assert!(still_running, "the server is still running");
}

fn assessment_path_in(sub: &str) -> String {
    format!("/subscriptions/{sub}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/providers/Microsoft.Security/assessments/4fb67663-9ab9-475d-b026-8c544cced439")
}

/// Read one HTTP/1.1 response (head and a Content-Length body) from `stream`: (head, body).
async fn read_response(stream: &mut TcpStream) -> (String, String) {
    let mut bytes = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&bytes).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let head = text[..end].to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .map_or(0, |v| v.trim().parse::<usize>().unwrap());
            if bytes.len() >= end + 4 + length {
                return (head, text[end + 4..end + 4 + length].to_string());
            }
        }
        let n = tokio::time::timeout(PATIENCE, stream.read(&mut buf)).await.unwrap().unwrap();
        assert!(n > 0, "the server closed the connection before answering: {text}");
        bytes.extend_from_slice(&buf[..n]);
    }
}

/// A request refused from its head alone (a path no route serves, a missing token) still has its
/// body read, so the client — still uploading — gets the answer instead of a reset connection,
/// and the connection stays usable. A body over the limit is not read: 413 and the connection
/// closes.
#[tokio::test]
async fn an_answer_given_before_the_body_is_read_reaches_the_client() {
    let app = spawn_app().await;
    let target = addr(&app);
    // An encoded `/` keeps the resource id one segment: no route has that shape.
    let path = format!(
        "/subscriptions%2F{}%2FresourceGroups%2Frg/providers/Microsoft.Security/assessments/4fb67663-9ab9-475d-b026-8c544cced439?api-version=2020-01-01",
        Uuid::new_v4()
    );
    let body = format!(
        r#"{{"properties":{{"status":{{"code":"Healthy"}},"pad":"{}"}}}}"#,
        "x".repeat(600_000)
    );
    let mut s = TcpStream::connect(&target).await.unwrap();
    let served = format!("{}?api-version=2020-01-01", assessment_path_in(DEMO));
    let bearer = format!("Authorization: Bearer {}\r\n", app.token);
    for (round, path, auth, status, code) in [
        (0, &path, bearer.as_str(), 404, "NotFound"),
        (1, &served, "", 401, "AuthenticationFailed"),
        (2, &path, bearer.as_str(), 404, "NotFound"),
    ] {
        let head = format!(
            "PUT {path} HTTP/1.1\r\nHost: {target}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        s.write_all(head.as_bytes()).await.unwrap();
        s.write_all(body.as_bytes())
            .await
            .unwrap_or_else(|e| panic!("round {round}: upload cut: {e}"));
        let (head, answer) = read_response(&mut s).await;
        assert!(head.starts_with(&format!("http/1.1 {status}")), "round {round}: {head}");
        assert!(answer.contains(code), "round {round}: {answer}");
        assert!(!head.contains("connection: close"), "the connection stays usable: {head}");
    }

    // Declared over the limit: refused unread, and the connection is given up.
    let head = format!(
        "PUT {served} HTTP/1.1\r\nHost: {target}\r\n{bearer}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        1usize << 30
    );
    s.write_all(head.as_bytes()).await.unwrap();
    let (head, _) = read_response(&mut s).await;
    assert!(head.starts_with("http/1.1 413") && head.contains("connection: close"), "{head}");
    assert!(closed_by_peer(&mut s, PATIENCE).await);
    app.stop().await;
}
