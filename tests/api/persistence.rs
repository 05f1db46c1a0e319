//! Data survives a restart; HTTPS with the generated local CA.

use serde_json::json;

use super::*;
use securescore::server::TlsMode;
use securescore::store::StoreConfig;

#[tokio::test]
async fn writes_survive_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let resource =
        format!("/subscriptions/{DEMO}/resourceGroups/keep/providers/Microsoft.Web/sites/app1");
    let path = assessment_path(&resource, "21300918-b2e3-0346-785f-c77ff57d243b", "2021-06-01");
    let before = {
        let app = spawn_sqlite(dir.path()).await;
        assert_eq!(app.put(&path, &assessment_body("Healthy")).await.status, 201);
        let score = app.get(&score_path(DEMO)).await.body;
        app.stop().await;
        score
    };
    let app = spawn_sqlite(dir.path()).await;
    assert_eq!(app.get(&path).await.status, 200);
    assert_eq!(app.get(&score_path(DEMO)).await.body, before);
    assert_ne!(
        before["properties"]["score"],
        json!({"max": 39, "current": 23.53, "percentage": 0.6033})
    );
    let h = app.get(&format!("/securescore/v1/subscriptions/{DEMO}/history")).await;
    assert_eq!(h.body["value"].as_array().unwrap().len(), 2, "demo seed + one change");
}

#[tokio::test]
async fn https_with_the_generated_ca() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(Options {
        store: StoreConfig::Memory,
        tls: TlsMode::Local(dir.path().to_path_buf()),
        ..Options::default()
    })
    .await;
    assert!(app.base.starts_with("https://127.0.0.1:"));
    assert_eq!(app.ca.as_deref(), Some(dir.path().join("ca.pem").as_path()));
    let r = app.get(&score_path(DEMO)).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("strict-transport-security"), Some("max-age=31536000; includeSubDomains"));
    // By name too (subjectAltName DNS:localhost).
    let by_name = app.base.replace("127.0.0.1", "localhost");
    assert_eq!(app.get(&format!("{by_name}{}", score_path(DEMO))).await.status, 200);
    // A client that does not trust the CA is refused.
    let untrusting = reqwest::Client::builder().use_rustls_tls().build().unwrap();
    assert!(untrusting.get(format!("{}/healthz", app.base)).send().await.is_err());
    app.stop().await;
}

#[tokio::test]
async fn next_links_over_https_start_with_the_public_url() {
    let dir = tempfile::tempdir().unwrap();
    let app = spawn_with(Options {
        tls: TlsMode::Local(dir.path().to_path_buf()),
        page_size: 5,
        ..Options::default()
    })
    .await;
    let list = format!(
        "/subscriptions/{DEMO}/providers/Microsoft.Security/assessments?api-version=2021-06-01"
    );
    // Whatever name the client used, the links name the server's public URL, never the Host
    // header (which a client controls).
    for base in [app.base.clone(), app.base.replace("127.0.0.1", "localhost")] {
        let first = app.get(&format!("{base}{list}")).await;
        assert_eq!(first.status, 200, "{}", first.text);
        let next = first.body["nextLink"].as_str().expect("29 assessments in pages of 5");
        assert!(next.starts_with(&format!("{}/subscriptions/", app.base)), "{next}");
        assert!(next.starts_with("https://"), "{next}");
        // Followed as they are, the links lead through every assessment of the demo.
        let (items, pages) = app.get_all(&format!("{base}{list}")).await;
        assert_eq!((items.len(), pages), (29, 6));
    }
    app.stop().await;
}
