//! Identity (issue 4): the built-in authority, strict token validation (every attack answered with
//! its documented 401), RBAC with Azure's 403, key rotation, trusted external issuers, `--auth any`.
//! Each test runs its own server on 127.0.0.1:0 with `--auth strict` and a fresh in-memory store.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use std::sync::Arc;
use tokio::sync::oneshot;
use uuid::Uuid;

use securescore::api::ApiConfig;
use securescore::identity::admin::{self, NewPrincipal};
use securescore::identity::demo::DemoCredentials;
use securescore::identity::Identity;
use securescore::server::{Application, AuthMode, ServeOptions, TlsMode};
use securescore::store::{PrincipalKind, Store, StoreConfig};

const SUB: &str = "20ff7fc3-e762-44dd-bd96-b71116dcdc23";
const ARM: &str = "https://management.azure.com/";

struct IdApp {
    base: String,
    http: reqwest::Client,
    store: Store,
    identity: Arc<Identity>,
    creds: DemoCredentials,
    _dir: Option<tempfile::TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
}

impl Drop for IdApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

struct Resp {
    status: u16,
    headers: HeaderMap,
    body: Value,
}

impl Resp {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
    fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }
    fn header(&self, name: &str) -> &str {
        self.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
    }
}

async fn spawn(auth: AuthMode, trust: Vec<String>, data_dir: bool) -> IdApp {
    spawn_api(auth, ApiConfig { trust_issuers: trust, ..ApiConfig::default() }, data_dir).await
}

async fn spawn_api(auth: AuthMode, api: ApiConfig, data_dir: bool) -> IdApp {
    let dir = data_dir.then(|| tempfile::tempdir().unwrap());
    let store = match &dir {
        Some(d) => StoreConfig::Sqlite { data_dir: d.path().to_path_buf() },
        None => StoreConfig::Memory,
    };
    let options = ServeOptions {
        listen: "127.0.0.1:0".parse().unwrap(),
        store,
        tls: TlsMode::Insecure,
        auth,
        demo: true,
        api,
        throttle: None,
        max_connections: 100,
        limits: Default::default(),
        store_busy_timeout: securescore::store::DEFAULT_BUSY_TIMEOUT,
        export: Default::default(),
    };
    let app = Application::build(options).await.expect("the server starts");
    let base = app.base_url().to_string();
    let store = app.store().clone();
    let identity = app.identity().clone();
    let creds = app.demo_credentials().cloned().expect("--demo makes a demo principal");
    let (tx, rx) = oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = app
            .run_until(async {
                let _ = rx.await;
            })
            .await;
    });
    let http =
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    IdApp { base, http, store, identity, creds, _dir: dir, shutdown: Some(tx) }
}

async fn strict() -> IdApp {
    spawn(AuthMode::Strict, Vec::new(), false).await
}

fn score_path() -> String {
    format!("/subscriptions/{SUB}/providers/Microsoft.Security/secureScores/ascScore?api-version=2020-01-01")
}

fn assessment_path(name: &str) -> String {
    format!(
        "/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1/providers/Microsoft.Security/assessments/{name}?api-version=2021-06-01"
    )
}

const ASSESSMENT_BODY: &str = r#"{"properties":{"resourceDetails":{"source":"Azure"},"status":{"code":"Unhealthy","cause":"c","description":"d"}}}"#;

impl IdApp {
    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&str>,
    ) -> Resp {
        let mut r = self.http.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        if let Some(b) = body {
            r = r.header("content-type", "application/json").body(b.to_string());
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        Resp { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }

    async fn get(&self, path: &str, token: &str) -> Resp {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn token_request(&self, tenant: &str, form: &[(&str, &str)]) -> Resp {
        let resp = self
            .http
            .post(format!("{}/{tenant}/oauth2/v2.0/token", self.base))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        Resp { status, headers, body: resp.json().await.unwrap_or(Value::Null) }
    }

    /// A token from the token endpoint (client credentials).
    async fn token_for(&self, client_id: &str, secret: &str) -> String {
        let r = self
            .token_request(
                &self.creds.tenant_id.to_string(),
                &[
                    ("grant_type", "client_credentials"),
                    ("client_id", client_id),
                    ("client_secret", secret),
                    ("scope", "https://management.azure.com//.default"),
                ],
            )
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        r.body["access_token"].as_str().unwrap().to_string()
    }

    async fn demo_token(&self) -> String {
        self.token_for(&self.creds.client_id.to_string(), &self.creds.client_secret).await
    }

    /// A new service principal with `role` at `scope` (or none); (object id, client id, token).
    async fn principal_with(&self, role: Option<(&str, &str)>) -> (String, String, String) {
        let (p, secret) = admin::create_principal(
            &self.store,
            NewPrincipal {
                display_name: "tester".into(),
                kind: PrincipalKind::ServicePrincipal,
                user_name: None,
                password: None,
                tenant_id: Some(self.creds.tenant_id),
            },
        )
        .await
        .unwrap();
        if let Some((role, scope)) = role {
            admin::assign(&self.store, &p.id.to_string(), role, scope).await.unwrap();
        }
        let app_id = p.app_id.unwrap().to_string();
        let token = self.token_for(&app_id, &secret).await;
        (p.id.to_string(), app_id, token)
    }

    /// Claims like the authority's for the demo principal, to tamper with.
    async fn claims(&self) -> Value {
        let token = self.demo_token().await;
        let payload = token.split('.').nth(1).unwrap();
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap()
    }

    /// Sign `claims` with the server's current key (as a holder of the key would).
    fn sign(&self, claims: &Value) -> String {
        let key = self.identity.keys.current().unwrap();
        let header = json!({"typ": "JWT", "alg": "RS256", "kid": key.kid});
        let input = format!("{}.{}", b64(&header), b64(claims));
        let sig = key.sign(input.as_bytes()).unwrap();
        format!("{input}.{sig}")
    }
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

fn assert_401(r: &Resp, code: &str) {
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert_eq!(r.code(), code, "{:?}", r.body);
    let challenge = r.header("www-authenticate");
    assert!(challenge.starts_with("Bearer authorization_uri=\""), "{challenge}");
    assert!(challenge.contains("error=\"invalid_token\", error_description=\""), "{challenge}");
    assert!(r.header("content-type").starts_with("application/json"));
}

#[tokio::test]
async fn strict_mode_refuses_requests_without_a_valid_token() {
    let app = strict().await;
    let r = app.call(Method::GET, &score_path(), None, None).await;
    assert_401(&r, "AuthenticationFailed");
    assert_eq!(r.message(), "Authentication failed. The 'Authorization' header is missing.");
    assert!(r.header("www-authenticate").starts_with(&format!(
        "Bearer authorization_uri=\"{}/{}\"",
        app.base, app.creds.tenant_id
    )));
    let r = app.get(&score_path(), "garbage").await;
    assert_401(&r, "InvalidAuthenticationToken");
    assert_eq!(r.message(), "The access token is invalid.");
    // The operations endpoints and the authority need no token.
    let r = app.call(Method::GET, "/healthz", None, None).await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn the_token_endpoint_issues_entra_like_tokens_that_the_api_accepts() {
    let app = strict().await;
    let tenant = app.creds.tenant_id.to_string();
    let client = app.creds.client_id.to_string();
    let r = app
        .token_request(
            &tenant,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client),
                ("client_secret", &app.creds.client_secret),
                ("scope", "https://management.azure.com//.default"),
                ("client_info", "1"),
                ("claims", r#"{"access_token":{"xms_cc":{"values":["CP1"]}}}"#),
            ],
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let keys: Vec<&String> = r.body.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["token_type", "expires_in", "access_token"]);
    assert_eq!(r.body["token_type"], "Bearer");
    assert_eq!(r.body["expires_in"], 3599);
    let token = r.body["access_token"].as_str().unwrap();
    let header: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').next().unwrap()).unwrap())
            .unwrap();
    assert_eq!(header["alg"], "RS256");
    assert_eq!(header["kid"], app.identity.keys.current().unwrap().kid.as_str());
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap())
            .unwrap();
    assert_eq!(claims["aud"], ARM);
    assert_eq!(claims["iss"], format!("{}/{tenant}/v2.0", app.base));
    assert_eq!(claims["tid"], tenant.as_str());
    assert_eq!(claims["appid"], client.as_str());
    assert_eq!(claims["ver"], "2.0");
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 3599);
    assert!(claims["oid"].is_string() && claims["roles"].is_array());

    let r = app.get(&score_path(), token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["properties"]["score"]["max"], 39);
    // The demo principal sees its subscription (az login needs it listed).
    let r = app.get("/subscriptions?api-version=2022-12-01", token).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["value"][0]["subscriptionId"], SUB);
    assert_eq!(r.body["value"][0]["tenantId"], tenant.as_str());

    // The JWKS publishes the key; discovery works for any tenant segment.
    let jwks = app.call(Method::GET, &format!("/{tenant}/discovery/v2.0/keys"), None, None).await;
    assert_eq!(jwks.body["keys"][0]["kid"], header["kid"]);
    for t in ["common", "organizations", tenant.as_str()] {
        let r = app
            .call(Method::GET, &format!("/{t}/v2.0/.well-known/openid-configuration"), None, None)
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(r.body["token_endpoint"], format!("{}/{t}/oauth2/v2.0/token", app.base));
        assert_eq!(
            r.body["authorization_endpoint"],
            format!("{}/{t}/oauth2/v2.0/authorize", app.base)
        );
    }
    let r = app.call(Method::GET, "/metadata/endpoints?api-version=2022-09-01", None, None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["resourceManager"], format!("{}/", app.base));
    assert_eq!(r.body["authentication"]["loginEndpoint"], format!("{}/", app.base));
}

#[tokio::test]
async fn token_endpoint_errors_are_aadsts_errors() {
    let app = strict().await;
    let tenant = app.creds.tenant_id.to_string();
    let client = app.creds.client_id.to_string();
    let scope = "https://management.azure.com/.default";
    // (form, status, error, description prefix)
    type Case<'a> = (Vec<(&'a str, &'a str)>, u16, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &client),
                ("client_secret", "wrong"),
                ("scope", scope),
            ],
            401,
            "invalid_client",
            "AADSTS7000215:",
        ),
        (
            vec![("grant_type", "client_credentials"), ("client_id", &client), ("scope", scope)],
            401,
            "invalid_client",
            "AADSTS7000218:",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", "6d5ba1c5-0000-4000-8000-000000000000"),
                ("client_secret", "x"),
                ("scope", scope),
            ],
            400,
            "unauthorized_client",
            "AADSTS700016:",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_id", &client),
                ("client_secret", &app.creds.client_secret),
                ("scope", "https://graph.microsoft.com/.default"),
            ],
            400,
            "invalid_resource",
            "AADSTS500011:",
        ),
        (vec![("client_id", &client)], 400, "invalid_request", "AADSTS900144:"),
        (
            vec![("grant_type", "urn:ietf:params:oauth:grant-type:device_code")],
            400,
            "unsupported_grant_type",
            "AADSTS70003:",
        ),
    ];
    for (form, status, error, prefix) in cases {
        let r = app.token_request(&tenant, &form).await;
        assert_eq!(r.status, status, "{form:?}: {:?}", r.body);
        assert_eq!(r.body["error"], error, "{form:?}");
        assert!(r.body["error_description"].as_str().unwrap().starts_with(prefix), "{:?}", r.body);
        assert!(r.body.get("access_token").is_none());
    }
    // Another tenant's directory does not know the client.
    let other = Uuid::new_v4().to_string();
    let r = app
        .token_request(
            &other,
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &client),
                ("client_secret", &app.creds.client_secret),
                ("scope", scope),
            ],
        )
        .await;
    assert_eq!(r.status, 400);
    let r = app.token_request("not-a-tenant", &[("grant_type", "client_credentials")]).await;
    assert_eq!(r.body["error"], "invalid_tenant");
}

#[tokio::test]
async fn attacks_get_their_documented_401() {
    let app = strict().await;
    let claims = app.claims().await;
    let path = score_path();

    // alg: none, no signature.
    let none = format!("{}.{}.", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims));
    assert_401(&app.get(&path, &none).await, "InvalidAuthenticationToken");
    let none = format!("{}.{}.c2ln", b64(&json!({"alg": "none", "typ": "JWT"})), b64(&claims));
    assert_401(&app.get(&path, &none).await, "InvalidAuthenticationToken");

    // HS256 signed with the public key (the classic key-confusion attack).
    let key = app.identity.keys.current().unwrap();
    for secret in [key.n.as_bytes().to_vec(), serde_json::to_vec(&key.jwk()).unwrap()] {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
        header.kid = Some(key.kid.clone());
        let forged = jsonwebtoken::encode(
            &header,
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(&secret),
        )
        .unwrap();
        let r = app.get(&path, &forged).await;
        assert_401(&r, "InvalidAuthenticationToken");
    }

    // A tampered payload under a genuine signature.
    let genuine = app.sign(&claims);
    let mut tampered_claims = claims.clone();
    tampered_claims["oid"] = json!(Uuid::new_v4().to_string());
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered = format!("{}.{}.{}", parts[0], b64(&tampered_claims), parts[2]);
    assert_401(&app.get(&path, &tampered).await, "InvalidAuthenticationToken");
    assert_eq!(app.get(&path, &genuine).await.status, 200, "the untampered token works");

    // An unknown kid (a key the server never published).
    let parts: Vec<&str> = genuine.split('.').collect();
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": "not-a-known-kid"});
    let unknown = format!("{}.{}.{}", b64(&header), parts[1], parts[2]);
    assert_401(&app.get(&path, &unknown).await, "InvalidAuthenticationToken");

    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        f(&mut c);
        app.sign(&c)
    };
    // Expired (beyond the 5 minutes of skew), and within the skew.
    let r = app.get(&path, &with(&|c| c["exp"] = json!(now() - 3600))).await;
    assert_401(&r, "ExpiredAuthenticationToken");
    assert!(r.message().starts_with("The access token expiry UTC time '"), "{}", r.message());
    assert!(r.message().contains("' is earlier than current UTC time '"));
    assert_eq!(app.get(&path, &with(&|c| c["exp"] = json!(now() - 60))).await.status, 200);
    // Not yet valid.
    let r = app.get(&path, &with(&|c| c["nbf"] = json!(now() + 3600))).await;
    assert_401(&r, "InvalidAuthenticationToken");
    assert!(r.message().contains("not yet valid"));
    // Wrong audience; the four allowed ones (trailing slash normalised) pass.
    let r = app.get(&path, &with(&|c| c["aud"] = json!("https://graph.microsoft.com/"))).await;
    assert_401(&r, "InvalidAuthenticationTokenAudience");
    assert!(r.message().starts_with("The access token has been obtained for wrong audience or resource 'https://graph.microsoft.com/'."));
    for aud in [
        "https://management.core.windows.net/",
        "https://management.core.windows.net",
        "https://management.azure.com",
    ] {
        assert_eq!(app.get(&path, &with(&|c| c["aud"] = json!(aud))).await.status, 200, "{aud}");
    }
    // Wrong tenant: the subscription belongs to another one.
    let other = Uuid::new_v4().to_string();
    let iss = format!("{}/{other}/v2.0", app.base);
    let r = app
        .get(
            &path,
            &with(&|c| {
                c["tid"] = json!(other);
                c["iss"] = json!(iss);
            }),
        )
        .await;
    assert_401(&r, "InvalidAuthenticationTokenTenant");
    assert!(
        r.message().starts_with(&format!("The access token is from the wrong issuer '{iss}'.")),
        "{}",
        r.message()
    );
    assert!(r.message().contains(&format!(
        "It must match the tenant 'https://sts.windows.net/{}/'",
        app.creds.tenant_id
    )));
    // Missing oid (and no puid/altsecid).
    let r = app
        .get(
            &path,
            &with(&|c| {
                c.as_object_mut().unwrap().remove("oid");
            }),
        )
        .await;
    assert_401(&r, "InvalidAuthenticationToken");
    // An issuer in neither of Entra's forms.
    let r = app.get(&path, &with(&|c| c["iss"] = json!("https://evil.example/"))).await;
    assert_401(&r, "InvalidAuthenticationTokenTenant");
    // The built-in authority issues the v2 form only: its key under Entra's v1 issuer is forged.
    let tid = app.creds.tenant_id;
    let r = app
        .get(&path, &with(&|c| c["iss"] = json!(format!("https://sts.windows.net/{tid}/"))))
        .await;
    assert_401(&r, "InvalidAuthenticationTokenTenant");
}

#[tokio::test]
async fn roles_are_enforced_with_azures_403() {
    let app = strict().await;
    let write = assessment_path("4fb67663-9ab9-475d-b026-8c544cced439");
    let sub_scope = format!("/subscriptions/{SUB}");

    // A reader reads but cannot write.
    let (oid, client, reader) = app.principal_with(Some(("Reader", &sub_scope))).await;
    assert_eq!(app.get(&score_path(), &reader).await.status, 200);
    let r = app.call(Method::PUT, &write, Some(&reader), Some(ASSESSMENT_BODY)).await;
    assert_eq!(r.status, 403, "{:?}", r.body);
    assert_eq!(r.code(), "AuthorizationFailed");
    let scope = write.split('?').next().unwrap();
    assert_eq!(
        r.message(),
        format!(
            "The client '{client}' with object id '{oid}' does not have authorization to perform action \
             'Microsoft.Security/assessments/write' over scope '{scope}' or the scope is invalid. If access was \
             recently granted, please refresh your credentials."
        )
    );
    let r = app.call(Method::DELETE, &write, Some(&reader), None).await;
    assert_eq!(r.status, 403);

    // A Security Assessment Contributor writes.
    let (_, _, writer) =
        app.principal_with(Some(("Security Assessment Contributor", &sub_scope))).await;
    let r = app.call(Method::PUT, &write, Some(&writer), Some(ASSESSMENT_BODY)).await;
    assert_eq!(r.status, 201, "{:?}", r.body);

    // No role: nothing listed, 403 on reads.
    let (_, _, nobody) = app.principal_with(None).await;
    let r = app.get("/subscriptions?api-version=2022-12-01", &nobody).await;
    assert_eq!(r.body["value"], json!([]));
    let r = app.get(&score_path(), &nobody).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "AuthorizationFailed");
    // The tenant-level catalogue needs only a valid token.
    let r = app
        .get(
            "/providers/Microsoft.Security/secureScoreControlDefinitions?api-version=2020-01-01",
            &nobody,
        )
        .await;
    assert_eq!(r.status, 200);

    // Assignments at / are inherited by every subscription.
    let (_, _, root_reader) =
        app.principal_with(Some(("acdd72a7-3385-48ef-bd42-f606fba81ae7", "/"))).await;
    assert_eq!(app.get(&score_path(), &root_reader).await.status, 200);
    let r = app.get("/subscriptions?api-version=2022-12-01", &root_reader).await;
    assert_eq!(r.body["value"][0]["subscriptionId"], SUB);
    assert_eq!(
        app.call(Method::PUT, &write, Some(&root_reader), Some(ASSESSMENT_BODY)).await.status,
        403
    );
}

#[tokio::test]
async fn the_extension_api_needs_owner_at_the_root() {
    let app = strict().await;
    let demo = app.demo_token().await;
    // The demo principal is Owner of its subscription only: it reads its history, administers nothing.
    let r = app.get(&format!("/securescore/v1/subscriptions/{SUB}/history"), &demo).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app.call(Method::GET, "/securescore/v1/principals", Some(&demo), None).await;
    assert_eq!(r.status, 403);
    assert!(
        r.message().contains("Microsoft.Authorization/roleAssignments/write"),
        "{}",
        r.message()
    );
    let other = Uuid::new_v4();
    let r = app
        .call(
            Method::PUT,
            &format!("/securescore/v1/subscriptions/{other}"),
            Some(&demo),
            Some(r#"{"displayName":"x"}"#),
        )
        .await;
    assert_eq!(r.status, 403);
    let r = app.call(Method::GET, "/securescore/v1/principals", None, None).await;
    assert_eq!(r.status, 401);

    // An Owner at / administers: creates a principal and assigns it a role through the API.
    let (_, _, admin_token) = app.principal_with(Some(("Owner", "/"))).await;
    let r = app
        .call(
            Method::POST,
            "/securescore/v1/principals",
            Some(&admin_token),
            Some(r#"{"displayName":"ci"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let client = r.body["appId"].as_str().unwrap().to_string();
    let secret = r.body["secret"].as_str().unwrap().to_string();
    let body = json!({"principalId": client, "role": "Security Reader", "scope": format!("/subscriptions/{SUB}")}).to_string();
    let r = app
        .call(Method::POST, "/securescore/v1/roleAssignments", Some(&admin_token), Some(&body))
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let token = app.token_for(&client, &secret).await;
    assert_eq!(app.get(&score_path(), &token).await.status, 200);
    let r = app
        .call(
            Method::PUT,
            "/securescore/v1/subscriptions/6a3f0c51-0000-4000-8000-000000000001",
            Some(&admin_token),
            Some(r#"{"displayName":"x"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

#[tokio::test]
async fn key_rotation_keeps_tokens_of_the_old_key_valid() {
    let app = spawn(AuthMode::Strict, Vec::new(), true).await;
    let old = app.demo_token().await;
    let old_kid = app.identity.keys.current().unwrap().kid.clone();
    let new_kid = app.identity.keys.rotate().await.unwrap();
    assert_ne!(old_kid, new_kid);
    assert_eq!(
        app.get(&score_path(), &old).await.status,
        200,
        "a token of the old key still works"
    );
    let new = app.demo_token().await;
    assert!(new.starts_with(&b64(&json!({"typ": "JWT", "alg": "RS256", "kid": new_kid}))));
    assert_eq!(app.get(&score_path(), &new).await.status, 200);
    let jwks = app.call(Method::GET, "/common/discovery/v2.0/keys", None, None).await;
    let kids: Vec<&str> =
        jwks.body["keys"].as_array().unwrap().iter().map(|k| k["kid"].as_str().unwrap()).collect();
    assert!(kids.contains(&old_kid.as_str()) && kids.contains(&new_kid.as_str()), "{kids:?}");
}

#[tokio::test]
async fn users_sign_in_on_the_implicit_flow_page() {
    let app = strict().await;
    let (user, password) = admin::create_principal(
        &app.store,
        NewPrincipal {
            display_name: "Alice".into(),
            kind: PrincipalKind::User,
            user_name: Some("alice@securescore.local".into()),
            password: Some("correct horse battery".into()),
            tenant_id: Some(app.creds.tenant_id),
        },
    )
    .await
    .unwrap();
    admin::assign(&app.store, "alice@securescore.local", "Reader", "/").await.unwrap();
    let query = "response_type=token&client_id=04b07795-8ddb-461a-bbee-02f9e1bf7b46&redirect_uri=http%3A%2F%2Flocalhost%3A3000%2Fcb&resource=https%3A%2F%2Fmanagement.azure.com%2F&state=xyz";
    let page =
        app.http.get(format!("{}/common/oauth2/authorize?{query}", app.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("<form method=\"post\"") && html.contains("name=\"password\""));

    let submit = |pw: &str| {
        app.http
            .post(format!("{}/common/oauth2/authorize?{query}", app.base))
            .form(&[("username", "alice@securescore.local"), ("password", pw)])
            .send()
    };
    assert_eq!(submit("wrong").await.unwrap().status(), 401);
    let r = submit(&password).await.unwrap();
    assert_eq!(r.status(), 302);
    let location = r.headers()["location"].to_str().unwrap().to_string();
    assert!(location.starts_with("http://localhost:3000/cb#access_token="), "{location}");
    assert!(
        location.contains("&token_type=Bearer&expires_in=3599") && location.ends_with("&state=xyz")
    );
    let token = location.split("access_token=").nth(1).unwrap().split('&').next().unwrap();
    let r = app.get(&score_path(), token).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    // A user's 403 names the user.
    let r = app.call(Method::PUT, &assessment_path("x1"), Some(token), Some(ASSESSMENT_BODY)).await;
    assert_eq!(r.status, 403);
    assert!(r.message().starts_with(&format!(
        "The client 'alice@securescore.local' with object id '{}'",
        user.id
    )));

    // Tokens go only to loopback or this server.
    let evil = "response_type=token&client_id=x&redirect_uri=https%3A%2F%2Fevil.example%2F";
    let r =
        app.http.get(format!("{}/common/oauth2/authorize?{evil}", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 400);
}

#[tokio::test]
async fn auth_any_accepts_any_well_formed_token_with_full_access() {
    let app = spawn(AuthMode::Any, Vec::new(), false).await;
    let any = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln";
    assert_eq!(app.get(&score_path(), any).await.status, 200);
    let r = app
        .call(
            Method::PUT,
            &assessment_path("4fb67663-9ab9-475d-b026-8c544cced439"),
            Some(any),
            Some(ASSESSMENT_BODY),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = app.get("/subscriptions?api-version=2022-12-01", any).await;
    assert_eq!(r.body["value"][0]["subscriptionId"], SUB);
    assert_401(&app.get(&score_path(), "not-a-jwt").await, "InvalidAuthenticationToken");
    assert_401(&app.call(Method::GET, &score_path(), None, None).await, "AuthenticationFailed");
}

/// A stand-in external authority (OpenID discovery + JWKS) on 127.0.0.1, counting JWKS fetches.
async fn external_authority(
    jwks: Arc<std::sync::Mutex<Value>>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
) -> (String, String) {
    external_authority_naming(None, jwks, fetches).await
}

/// An external authority whose OpenID configuration names the issuer `{issuer_base}/{tenant}/v2.0`
/// (`None`: its own URL); `(its configured URL, tenant)`.
async fn external_authority_naming(
    issuer_base: Option<&str>,
    jwks: Arc<std::sync::Mutex<Value>>,
    fetches: Arc<std::sync::atomic::AtomicUsize>,
) -> (String, String) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let tenant = Uuid::new_v4().to_string();
    let configured = format!("{base}/{tenant}/v2.0");
    let issuer = format!("{}/{tenant}/v2.0", issuer_base.unwrap_or(&base));
    let (iss, b) = (issuer.clone(), base.clone());
    let router = axum::Router::new()
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            axum::routing::get(move || {
                let (iss, b) = (iss.clone(), b.clone());
                async move { axum::Json(json!({"issuer": iss, "jwks_uri": format!("{b}/keys")})) }
            }),
        )
        .route(
            "/keys",
            axum::routing::get(move || {
                let (jwks, fetches) = (jwks.clone(), fetches.clone());
                async move {
                    fetches.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    let v = jwks.lock().unwrap().clone();
                    axum::Json(v)
                }
            }),
        );
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    (configured, tenant)
}

#[tokio::test]
async fn trusted_external_issuers_are_accepted_and_their_keys_cached() {
    // The external authority's key: another server's ring, used only to sign.
    let signer = securescore::identity::keys::KeyRing::ephemeral().unwrap();
    let key = signer.current().unwrap();
    let jwks = Arc::new(std::sync::Mutex::new(json!({"keys": []})));
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (issuer, ext_tenant) = external_authority(jwks.clone(), fetches.clone()).await;
    let app = spawn(AuthMode::Strict, vec![issuer.clone()], false).await;
    // Wait for the start-up fetch (empty JWKS).
    for _ in 0..50 {
        if fetches.load(std::sync::atomic::Ordering::SeqCst) >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1);

    // A subscription of the external tenant, and a role for the external principal.
    let sub = Uuid::new_v4();
    app.store
        .put_subscription(&securescore::store::Subscription {
            id: sub,
            display_name: "external".into(),
            tenant_id: Uuid::parse_str(&ext_tenant).unwrap(),
            state: "Enabled".into(),
        })
        .await
        .unwrap();
    let oid = Uuid::new_v4().to_string();
    admin::assign(&app.store, &oid, "Reader", &format!("/subscriptions/{sub}")).await.unwrap();
    let claims = json!({"aud": ARM, "iss": issuer, "tid": ext_tenant, "oid": oid, "appid": "ext-app",
        "iat": now(), "nbf": now(), "exp": now() + 3600, "ver": "2.0"});
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": key.kid});
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let token = format!("{input}.{}", key.sign(input.as_bytes()).unwrap());
    let path = format!(
        "/subscriptions/{sub}/providers/Microsoft.Security/secureScores?api-version=2020-01-01"
    );

    // The key is unknown and the last fetch is recent: refused without another fetch.
    *jwks.lock().unwrap() = json!({"keys": [key.jwk()]});
    let r = app.get(&path, &token).await;
    assert_401(&r, "InvalidAuthenticationToken");
    assert_eq!(fetches.load(std::sync::atomic::Ordering::SeqCst), 1, "at most one fetch a minute");

    // A minute later, concurrent requests share one fetch and all pass.
    app.identity.trusted[0].forget_last_fetch_for_tests();
    let calls = (0..8).map(|_| app.get(&path, &token));
    let results = futures::future::join_all(calls).await;
    for r in &results {
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "one fetch for concurrent requests"
    );

    // A failed refresh keeps the known keys.
    *jwks.lock().unwrap() = json!("not a jwks");
    app.identity.trusted[0].forget_last_fetch_for_tests();
    app.identity.trusted[0].refresh().await;
    assert_eq!(app.get(&path, &token).await.status, 200);
    // The external principal is not the subscription's tenant elsewhere: the demo subscription refuses it.
    assert_401(&app.get(&score_path(), &token).await, "InvalidAuthenticationTokenTenant");
}

/// A server whose clients reach it at `PUBLIC` (a load balancer's name, say), with one item per
/// page so that lists have nextLinks.
const PUBLIC: &str = "https://scores.example.test";

async fn behind_public_url() -> IdApp {
    let api = ApiConfig {
        public_url: Some(PUBLIC.parse().unwrap()),
        page_size: 1,
        ..ApiConfig::default()
    };
    spawn_api(AuthMode::Strict, api, false).await
}

impl IdApp {
    /// GET `path` with a `Host` header of the caller's choosing.
    async fn get_as_host(&self, host: &str, path: &str, token: Option<&str>) -> Resp {
        let mut r = self.http.get(format!("{}{path}", self.base)).header("host", host);
        if let Some(t) = token {
            r = r.header("authorization", format!("Bearer {t}"));
        }
        let resp = r.send().await.unwrap();
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let text = resp.text().await.unwrap();
        Resp { status, headers, body: serde_json::from_str(&text).unwrap_or(Value::String(text)) }
    }
}

fn payload(token: &str) -> Value {
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(token.split('.').nth(1).unwrap()).unwrap())
        .unwrap()
}

#[tokio::test]
async fn a_token_issued_for_another_host_is_refused() {
    let app = strict().await;
    let tid = app.creds.tenant_id;
    let claims = app.claims().await;
    assert_eq!(claims["iss"], format!("{}/{tid}/v2.0", app.base));
    // Signed with the server's own key, but naming a host the server is not reachable at: what a
    // token endpoint that trusted `Host: evil.example` would have issued.
    for iss in [
        format!("http://evil.example/{tid}/v2.0"),
        format!("https://evil.example/{tid}/v2.0"),
        format!("{}/{tid}/v2.0/", app.base),
        format!("{}/{tid}/v2.0", app.base.replace("127.0.0.1", "localhost")),
    ] {
        let mut c = claims.clone();
        c["iss"] = json!(iss);
        let r = app.get(&score_path(), &app.sign(&c)).await;
        assert_401(&r, "InvalidAuthenticationTokenTenant");
        assert!(r.message().contains(&format!("'{iss}'")), "{}", r.message());
    }
    assert_eq!(app.get(&score_path(), &app.sign(&claims)).await.status, 200);

    // Asking the token endpoint with `Host: evil.example` still gets a token of this server.
    let resp = app
        .http
        .post(format!("{}/{tid}/oauth2/v2.0/token", app.base))
        .header("host", "evil.example")
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &app.creds.client_id.to_string()),
            ("client_secret", &app.creds.client_secret),
            ("scope", "https://management.azure.com/.default"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let token = resp.json::<Value>().await.unwrap()["access_token"].as_str().unwrap().to_string();
    assert_eq!(payload(&token)["iss"], format!("{}/{tid}/v2.0", app.base));
    assert_eq!(app.get(&score_path(), &token).await.status, 200);
}

#[tokio::test]
async fn urls_handed_out_use_the_public_url_whatever_host_says() {
    let app = behind_public_url().await;
    let tid = app.creds.tenant_id;
    for host in ["evil.example", "127.0.0.1"] {
        let r = app
            .get_as_host(host, &format!("/{tid}/v2.0/.well-known/openid-configuration"), None)
            .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
        assert_eq!(r.body["issuer"], format!("{PUBLIC}/{tid}/v2.0"));
        assert_eq!(r.body["token_endpoint"], format!("{PUBLIC}/{tid}/oauth2/v2.0/token"));
        assert_eq!(
            r.body["authorization_endpoint"],
            format!("{PUBLIC}/{tid}/oauth2/v2.0/authorize")
        );
        assert_eq!(r.body["jwks_uri"], format!("{PUBLIC}/{tid}/discovery/v2.0/keys"));
        let r = app.get_as_host(host, "/metadata/endpoints?api-version=2022-09-01", None).await;
        assert_eq!(r.body["resourceManager"], format!("{PUBLIC}/"));
        assert_eq!(r.body["authentication"]["loginEndpoint"], format!("{PUBLIC}/"));
    }

    // Tokens name the public URL, and the server accepts them (several servers behind one load
    // balancer share it, so each accepts the others' tokens given the same keys).
    let token = app.demo_token().await;
    assert_eq!(payload(&token)["iss"], format!("{PUBLIC}/{tid}/v2.0"));
    let controls = format!(
        "/subscriptions/{SUB}/providers/Microsoft.Security/secureScoreControls?api-version=2020-01-01"
    );
    let r = app.get_as_host("evil.example", &controls, Some(&token)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let next = r.body["nextLink"].as_str().expect("one item per page leaves a next page");
    assert!(
        next.starts_with(&format!(
            "{PUBLIC}/subscriptions/{SUB}/providers/Microsoft.Security/secureScoreControls?"
        )),
        "{next}"
    );
    // A token of the listen address is not one of this server's any more.
    let mut claims = payload(&token);
    claims["iss"] = json!(format!("{}/{tid}/v2.0", app.base));
    assert_401(&app.get(&controls, &app.sign(&claims)).await, "InvalidAuthenticationTokenTenant");

    // A token of another tenant is told to get one from the public authority.
    let other = Uuid::new_v4();
    let mut claims = payload(&token);
    claims["tid"] = json!(other.to_string());
    claims["iss"] = json!(format!("{PUBLIC}/{other}/v2.0"));
    let r = app.get_as_host("evil.example", &score_path(), Some(&app.sign(&claims))).await;
    assert_401(&r, "InvalidAuthenticationTokenTenant");
    assert!(
        r.message().contains(&format!("Please use the authority (URL) '{PUBLIC}/{tid}'")),
        "{}",
        r.message()
    );

    // The 401 challenge sends clients to the public authority.
    let r = app.get_as_host("evil.example", &score_path(), None).await;
    assert_401(&r, "AuthenticationFailed");
    assert!(
        r.header("www-authenticate")
            .starts_with(&format!("Bearer authorization_uri=\"{PUBLIC}/{tid}\"")),
        "{}",
        r.header("www-authenticate")
    );

    // The sign-in page sends tokens to loopback or the public URL, not to the host a request names.
    let page = |redirect: &str| {
        let query = form_urlencoded::Serializer::new(String::new())
            .append_pair("response_type", "token")
            .append_pair("client_id", "04b07795-8ddb-461a-bbee-02f9e1bf7b46")
            .append_pair("redirect_uri", redirect)
            .finish();
        format!("/common/oauth2/v2.0/authorize?{query}")
    };
    let r = app.get_as_host("evil.example", &page("https://evil.example/cb"), None).await;
    assert_eq!(r.status, 400, "a redirect to the Host header's name is refused");
    let r = app.get_as_host("evil.example", &page(&format!("{PUBLIC}/app")), None).await;
    assert_eq!(r.status, 200);
}

/// `serve --auth any` on `listen`, otherwise as the command line's defaults give it.
fn any_on(listen: &str) -> ServeOptions {
    ServeOptions {
        listen: listen.parse().expect("a socket address"),
        store: StoreConfig::Memory,
        tls: TlsMode::Insecure,
        auth: AuthMode::Any,
        demo: false,
        api: ApiConfig::default(),
        throttle: None,
        max_connections: 10,
        limits: Default::default(),
        store_busy_timeout: securescore::store::DEFAULT_BUSY_TIMEOUT,
        export: Default::default(),
    }
}

#[tokio::test]
async fn auth_any_refuses_to_listen_beyond_loopback() {
    for listen in ["0.0.0.0:0", "[::]:0", "192.0.2.1:0"] {
        let options = any_on(listen);
        let err = match Application::build(options).await {
            Ok(_) => panic!("--auth any on {listen} must not start"),
            Err(e) => format!("{e:#}"),
        };
        assert!(err.contains("--auth any") && err.contains("loopback"), "{err}");
        assert!(err.contains("--listen 127.0.0.1:") && err.contains("--auth strict"), "{err}");
    }
    // Nor behind a proxy that makes it reachable under another name.
    let options = ServeOptions {
        api: ApiConfig { public_url: Some(PUBLIC.parse().unwrap()), ..ApiConfig::default() },
        ..any_on("127.0.0.1:0")
    };
    let err = match Application::build(options).await {
        Ok(_) => panic!("--auth any with a public URL of another host must not start"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("--auth any") && err.contains("--public-url"), "{err}");
    // A public URL that names this machine is fine.
    let options = ServeOptions {
        api: ApiConfig {
            public_url: Some("http://localhost:8080".parse().unwrap()),
            ..ApiConfig::default()
        },
        ..any_on("127.0.0.1:0")
    };
    let app = Application::build(options).await.expect("loopback with a loopback public URL");
    assert_eq!(app.public_url().as_str(), "http://localhost:8080");
    // Loopback is where the emulator belongs.
    let options = any_on("[::1]:0");
    if let Err(e) = Application::build(options).await {
        // A machine without IPv6 cannot bind [::1]; the check itself must not be what failed.
        assert!(!format!("{e:#}").contains("--auth any"), "{e:#}");
    }
}

#[tokio::test]
async fn auth_any_cannot_change_principals_roles_or_keys() {
    let app = spawn(AuthMode::Any, Vec::new(), false).await;
    let any = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln";
    let before = app.store.principals().await.unwrap();
    let kid = app.identity.keys.current().unwrap().kid.clone();
    let writes = [
        (Method::POST, "/securescore/v1/principals".to_string(), r#"{"displayName":"backdoor"}"#),
        (
            Method::POST,
            "/securescore/v1/roleAssignments".to_string(),
            r#"{"principalId":"6d5ba1c5-0000-4000-8000-000000000000","role":"Owner"}"#,
        ),
        (Method::POST, "/securescore/v1/keys/rotate".to_string(), ""),
        (Method::DELETE, format!("/securescore/v1/principals/{}", app.creds.client_id), ""),
    ];
    for (method, path, body) in writes {
        let r = app.call(method.clone(), &path, Some(any), Some(body)).await;
        assert_eq!(r.status, 400, "{method} {path}: {:?}", r.body);
        assert_eq!(r.code(), "BadRequest");
        assert!(r.message().contains("--auth strict"), "{}", r.message());
    }
    let r = app.call(Method::POST, "/securescore/v1/principals", None, Some("{}")).await;
    assert_401(&r, "AuthenticationFailed");
    assert_eq!(app.store.principals().await.unwrap(), before, "nothing was created or removed");
    assert!(app
        .store
        .role_assignments(Some("6d5ba1c5-0000-4000-8000-000000000000"))
        .await
        .unwrap()
        .is_empty());
    assert_eq!(app.identity.keys.current().unwrap().kid, kid);
    // Reads still work, and so does the rest of the extension API (the emulator's purpose).
    let r = app.call(Method::GET, "/securescore/v1/principals", Some(any), None).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .call(
            Method::PUT,
            "/securescore/v1/subscriptions/6a3f0c51-0000-4000-8000-000000000002",
            Some(any),
            Some(r#"{"displayName":"x"}"#),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
}

#[tokio::test]
async fn an_external_authority_naming_another_hosts_issuer_is_not_trusted() {
    let signer = securescore::identity::keys::KeyRing::ephemeral().unwrap();
    let key = signer.current().unwrap();
    let jwks = Arc::new(std::sync::Mutex::new(json!({"keys": [key.jwk()]})));
    let fetches = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let evil = "https://evil.example";
    let (configured, tenant) =
        external_authority_naming(Some(evil), jwks.clone(), fetches.clone()).await;
    let app = spawn(AuthMode::Strict, vec![configured], false).await;
    let sub = Uuid::new_v4();
    app.store
        .put_subscription(&securescore::store::Subscription {
            id: sub,
            display_name: "external".into(),
            tenant_id: Uuid::parse_str(&tenant).unwrap(),
            state: "Enabled".into(),
        })
        .await
        .unwrap();
    let oid = Uuid::new_v4().to_string();
    admin::assign(&app.store, &oid, "Reader", &format!("/subscriptions/{sub}")).await.unwrap();
    let claims = json!({"aud": ARM, "iss": format!("{evil}/{tenant}/v2.0"), "tid": tenant,
        "oid": oid, "iat": now(), "nbf": now(), "exp": now() + 3600, "ver": "2.0"});
    let header = json!({"typ": "JWT", "alg": "RS256", "kid": key.kid});
    let input = format!("{}.{}", b64(&header), b64(&claims));
    let token = format!("{input}.{}", key.sign(input.as_bytes()).unwrap());
    let path = format!(
        "/subscriptions/{sub}/providers/Microsoft.Security/secureScores?api-version=2020-01-01"
    );
    app.identity.trusted[0].forget_last_fetch_for_tests();
    assert_401(&app.get(&path, &token).await, "InvalidAuthenticationToken");
    assert_eq!(
        fetches.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the keys of a configuration naming another host are never fetched"
    );
}

#[tokio::test]
async fn odd_claims_under_a_genuine_signature_are_401s() {
    let app = strict().await;
    let claims = app.claims().await;
    let path = score_path();
    let with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims.clone();
        f(&mut c);
        app.sign(&c)
    };
    let remove = |name: &'static str| {
        with(&move |c: &mut Value| {
            c.as_object_mut().unwrap().remove(name);
        })
    };
    let r = app.get(&path, &remove("exp")).await;
    assert_401(&r, "InvalidAuthenticationToken");
    assert!(r.header("www-authenticate").contains("'exp'"), "{}", r.header("www-authenticate"));
    for token in [
        remove("tid"),
        remove("iss"),
        with(&|c| c["exp"] = json!("tomorrow")),
        with(&|c| c["nbf"] = json!({"not": "a time"})),
        with(&|c| c["iss"] = json!(42)),
        with(&|c| c["aud"] = json!(["https://graph.microsoft.com/"])),
    ] {
        let r = app.get(&path, &token).await;
        assert_eq!(r.status, 401, "{:?}", r.body);
        assert!(r.code().starts_with("InvalidAuthenticationToken"), "{:?}", r.body);
    }
    // A payload that is not JSON at all, under a genuine signature.
    let key = app.identity.keys.current().unwrap();
    let header = b64(&json!({"typ": "JWT", "alg": "RS256", "kid": key.kid}));
    let input = format!("{header}.{}", URL_SAFE_NO_PAD.encode(b"not json"));
    let token = format!("{input}.{}", key.sign(input.as_bytes()).unwrap());
    assert_401(&app.get(&path, &token).await, "InvalidAuthenticationToken");
    // The audience may come as a list (Entra does so for some clients).
    assert_eq!(app.get(&path, &with(&|c| c["aud"] = json!([ARM]))).await.status, 200);
}
