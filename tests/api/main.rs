//! The one integration test binary: the real server on 127.0.0.1:0, real HTTP, real SQLite.
//! `spawn_app()` gives each test a fresh in-memory store; `spawn_sqlite(dir)` a data directory.
//!
//! Servers run with `--auth strict`, as users run them: each test server gets a service principal
//! with Owner on `/`, and `request()` sends an RS256 token the server's own key signed for it.
//! Only tests about `--auth any` ask for it (`Options { auth: AuthMode::Any, .. }`).

mod assessments;
mod automations;
mod catalog;
mod changes;
mod cli_paging;
mod connections;
mod crash;
mod dashboard;
mod errors;
mod exemptions;
mod faults;
mod fidelity;
mod group_commit;
mod harness;
mod identity;
mod improvements;
mod ingest;
mod insights_cli;
mod management_groups;
mod openapi;
mod paths;
mod persistence;
mod replicas;
mod resource_graph;
mod scores;
mod sub_assessments;
mod verify;
mod versions;

use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokio::sync::oneshot;
use uuid::Uuid;

use securescore::api::ApiConfig;
use securescore::identity::admin::{self, NewPrincipal};
use securescore::identity::token::{self, Grant, DEFAULT_AUDIENCE};
use securescore::server::{Application, AuthMode, ServeOptions, TlsMode};
use securescore::store::{PrincipalKind, Store, StoreConfig, Subscription};

pub const DEMO: &str = "20ff7fc3-e762-44dd-bd96-b71116dcdc23";
/// A well-formed bearer token that no key signed: `--auth any` accepts it, `--auth strict` does not.
pub const ANY_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln";

pub struct TestApp {
    pub base: String,
    /// The bearer token `request()` sends (also for the CLI's `--token`).
    pub token: String,
    pub http: reqwest::Client,
    pub store: Store,
    pub ca: Option<PathBuf>,
    /// The tenant the server's principals and (by default) its subscriptions belong to.
    pub tenant: Uuid,
    shutdown: Option<oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<()>>,
}

#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    /// The CloudError code of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
}

pub struct Options {
    pub store: StoreConfig,
    pub tls: TlsMode,
    pub page_size: usize,
    pub demo: bool,
    pub throttle: Option<securescore::arm::throttle::ThrottleConfig>,
    /// `Strict` unless a test is about `--auth any`.
    pub auth: AuthMode,
    pub max_connections: usize,
    pub limits: securescore::server::ConnectionLimits,
    pub store_busy_timeout: std::time::Duration,
    pub export: securescore::automation::ExportConfig,
    /// `--public-url`: replicas behind one address share it.
    pub public_url: Option<securescore::arm::PublicUrl>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            store: StoreConfig::Memory,
            tls: TlsMode::Insecure,
            page_size: 100,
            demo: true,
            throttle: None,
            auth: AuthMode::Strict,
            max_connections: 1000,
            limits: Default::default(),
            store_busy_timeout: securescore::store::DEFAULT_BUSY_TIMEOUT,
            export: Default::default(),
            public_url: None,
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(Options::default()).await
}

pub async fn spawn_sqlite(dir: &Path) -> TestApp {
    spawn_with(Options {
        store: StoreConfig::Sqlite { data_dir: dir.to_path_buf() },
        ..Options::default()
    })
    .await
}

pub async fn spawn_with(o: Options) -> TestApp {
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        store: o.store,
        tls: o.tls,
        auth: o.auth,
        demo: o.demo,
        api: ApiConfig { page_size: o.page_size, public_url: o.public_url, ..ApiConfig::default() },
        throttle: o.throttle,
        max_connections: o.max_connections,
        limits: o.limits,
        store_busy_timeout: o.store_busy_timeout,
        export: o.export,
    };
    let app = Application::build(options).await.expect("the server starts");
    let base = app.base_url().to_string();
    let store = app.store().clone();
    let ca = app.ca_path().cloned();
    let tenant = app.identity().default_tenant;
    let token = match o.auth {
        AuthMode::Strict => owner_token(&app, app.public_url().as_str()).await,
        AuthMode::Any => ANY_TOKEN.to_string(),
    };
    let mut http = reqwest::Client::builder().use_rustls_tls();
    if let Some(ca) = &ca {
        http = http.add_root_certificate(
            reqwest::Certificate::from_pem(&std::fs::read(ca).unwrap()).unwrap(),
        );
    }
    let (tx, rx) = oneshot::channel::<()>();
    let handle = tokio::spawn(async move {
        app.run_until(async {
            let _ = rx.await;
        })
        .await
        .unwrap();
    });
    TestApp {
        base,
        token,
        tenant,
        http: http.build().unwrap(),
        store,
        ca,
        shutdown: Some(tx),
        handle: Some(handle),
    }
}

/// A new service principal of the server's tenant with Owner on `/`, and a token for it signed
/// with the server's current key, as the token endpoint would issue it.
async fn owner_token(app: &Application, authority: &str) -> String {
    let store = app.store();
    let (principal, _secret) = admin::create_principal(
        store,
        NewPrincipal {
            display_name: "integration tests".into(),
            kind: PrincipalKind::ServicePrincipal,
            user_name: None,
            password: None,
            tenant_id: Some(app.identity().default_tenant),
        },
    )
    .await
    .expect("a principal");
    admin::assign(store, &principal.id.to_string(), "Owner", "/").await.expect("Owner on /");
    let grant = Grant {
        principal: &principal,
        authority,
        audience: DEFAULT_AUDIENCE,
        client_id: None,
        tenant: None,
    };
    token::issue(&app.identity().keys, &grant).expect("a signed token").0
}

impl TestApp {
    /// Stop serving and wait until the server let go of its resources.
    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(h) = self.handle.take() {
            let _ = h.await;
        }
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        body: Option<String>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let url = if path.starts_with("http") {
            path.to_string()
        } else {
            format!("{}{path}", self.base)
        };
        let mut r = self.http.request(method, url).bearer_auth(&self.token);
        for (k, v) in headers {
            r = r.header(*k, *v);
        }
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b);
        }
        let response = r.send().await.expect("the server answers");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, text, body }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.request(Method::GET, path, None, &[]).await
    }
    pub async fn put(&self, path: &str, body: &Value) -> Resp {
        self.request(Method::PUT, path, Some(body.to_string()), &[]).await
    }
    pub async fn delete(&self, path: &str) -> Resp {
        self.request(Method::DELETE, path, None, &[]).await
    }

    pub async fn add_subscription(&self, id: Uuid) {
        self.store
            .put_subscription(&Subscription {
                id,
                display_name: format!("test {id}"),
                tenant_id: self.tenant,
                state: "Enabled".into(),
            })
            .await
            .unwrap();
    }

    /// Follow nextLinks, collecting every item; returns the items and the number of pages.
    pub async fn get_all(&self, path: &str) -> (Vec<Value>, usize) {
        let mut items = Vec::new();
        let mut pages = 0;
        let mut next = Some(path.to_string());
        while let Some(url) = next {
            let r = self.get(&url).await;
            assert_eq!(r.status, 200, "{url}: {}", r.text);
            pages += 1;
            items.extend(
                r.body["value"].as_array().expect("value is always present").iter().cloned(),
            );
            next = r.body["nextLink"].as_str().map(str::to_string);
        }
        (items, pages)
    }
}

/// A new service principal of the server's tenant holding every (role, scope) of `roles`, and
/// its secret.
pub async fn principal_with_roles(
    app: &TestApp,
    roles: &[(&str, &str)],
) -> (securescore::store::PrincipalRecord, String) {
    let (p, secret) = admin::create_principal(
        &app.store,
        NewPrincipal {
            display_name: "test principal".into(),
            kind: PrincipalKind::ServicePrincipal,
            user_name: None,
            password: None,
            tenant_id: Some(app.tenant),
        },
    )
    .await
    .unwrap();
    for (role, scope) in roles {
        admin::assign(&app.store, &p.id.to_string(), role, scope).await.unwrap();
    }
    (p, secret)
}

/// A token from the server's token endpoint for a service principal (client credentials).
pub async fn client_token(
    app: &TestApp,
    p: &securescore::store::PrincipalRecord,
    secret: &str,
) -> String {
    let r = app
        .http
        .post(format!("{}/{}/oauth2/v2.0/token", app.base, app.tenant))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &p.app_id.expect("a service principal").to_string()),
            ("client_secret", secret),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "the token endpoint");
    let body: Value = r.json().await.unwrap();
    body["access_token"].as_str().expect("a token").to_string()
}

/// A token for a new service principal holding every (role, scope) of `roles`.
pub async fn token_with_roles(app: &TestApp, roles: &[(&str, &str)]) -> String {
    let (p, secret) = principal_with_roles(app, roles).await;
    client_token(app, &p, &secret).await
}

pub fn score_path(sub: &str) -> String {
    format!("/subscriptions/{sub}/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01")
}

pub fn assessment_path(resource: &str, name: &str, version: &str) -> String {
    format!("{resource}/providers/Microsoft.Security/assessments/{name}?api-version={version}")
}

/// An official example document of the spec, from the copies in `tests/fixtures/azure-spec`
/// (see its PROVENANCE.md).
pub fn example(rel: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/azure-spec/security/resource-manager/Microsoft.Security/stable/2020-01-01/examples")
        .join(rel);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// A body for PUT assessment.
pub fn assessment_body(code: &str) -> Value {
    serde_json::json!({"properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": code}}})
}
