//! The dashboard: its embedded assets (content types, CSP, ETags, nothing from another host), its
//! sign-in settings, and the authorization-code flow with PKCE it signs in with — including every
//! way a code redemption fails.

use reqwest::redirect::Policy;
use serde_json::Value;

use securescore::api::dashboard::{ASSETS, CSP};
use securescore::identity::admin::{self, NewPrincipal};
use securescore::identity::code_flow::{s256, DASHBOARD_CLIENT_ID};
use securescore::server::AuthMode;
use securescore::store::PrincipalKind;

use crate::{score_path, spawn_app, spawn_with, Options, TestApp, DEMO};

const VERIFIER: &str = "M25iVXpKU3puUjFaYWg3T1NDTDQtcW1ROUY5YXlwalNoc0hhakxifmZHag";
pub(crate) const USER: &str = "dana@securescore.local";
pub(crate) const PASSWORD: &str = "a long enough password";

/// A client that shows redirects instead of following them.
fn browser() -> reqwest::Client {
    reqwest::Client::builder().redirect(Policy::none()).build().unwrap()
}

pub(crate) async fn reader(app: &TestApp) {
    admin::create_principal(
        &app.store,
        NewPrincipal {
            display_name: "Dana".into(),
            kind: PrincipalKind::User,
            user_name: Some(USER.into()),
            password: Some(PASSWORD.into()),
            tenant_id: Some(app.tenant),
        },
    )
    .await
    .unwrap();
    admin::assign(&app.store, USER, "Reader", &format!("/subscriptions/{DEMO}")).await.unwrap();
}

fn authorize_query(app: &TestApp, extra: &[(&str, &str)]) -> String {
    authorize_query_to(&format!("{}/", app.base), extra)
}

/// The dashboard's authorization request, its code to be sent to `redirect`.
fn authorize_query_to(redirect: &str, extra: &[(&str, &str)]) -> String {
    let redirect = redirect.to_string();
    let challenge = s256(VERIFIER);
    let client = DASHBOARD_CLIENT_ID.to_string();
    let mut params: Vec<(&str, &str)> = vec![
        ("client_id", &client),
        ("response_type", "code"),
        ("redirect_uri", &redirect),
        ("scope", "https://management.azure.com/.default openid profile"),
        ("state", "st4te"),
        ("nonce", "n0nce"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    for (k, v) in extra {
        params.retain(|(pk, _)| pk != k);
        if !v.is_empty() {
            params.push((k, v));
        }
    }
    let mut s = form_urlencoded::Serializer::new(String::new());
    for (k, v) in params {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Sign in on the page; the redirect's `Location`.
async fn sign_in(app: &TestApp, extra: &[(&str, &str)]) -> String {
    sign_in_as(app, USER, PASSWORD, extra).await
}

async fn sign_in_as(app: &TestApp, user: &str, password: &str, extra: &[(&str, &str)]) -> String {
    sign_in_to(app, &format!("{}/", app.base), user, password, extra).await
}

/// Sign in on `app`'s page for a code sent to `redirect` (the dashboard on the public URL).
pub(crate) async fn sign_in_to(
    app: &TestApp,
    redirect: &str,
    user: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> String {
    let query = authorize_query_to(redirect, extra);
    let url = format!("{}/common/oauth2/v2.0/authorize?{query}", app.base);
    let page = browser().get(&url).send().await.unwrap();
    assert_eq!(page.status(), 200, "{}", page.text().await.unwrap());
    let r = browser()
        .post(&url)
        .form(&[("username", user), ("password", password)])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 302);
    r.headers()["location"].to_str().unwrap().to_string()
}

pub(crate) fn code_of(location: &str) -> String {
    let query = location.split(['?', '#']).nth(1).unwrap();
    form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "code")
        .map(|(_, v)| v.into_owned())
        .unwrap()
}

async fn redeem(app: &TestApp, code: &str, fields: &[(&str, &str)]) -> (u16, Value) {
    redeem_to(app, &format!("{}/", app.base), code, fields).await
}

/// Redeem a code at `app`'s token endpoint, for `redirect`.
pub(crate) async fn redeem_to(
    app: &TestApp,
    redirect: &str,
    code: &str,
    fields: &[(&str, &str)],
) -> (u16, Value) {
    let redirect = redirect.to_string();
    let client = DASHBOARD_CLIENT_ID.to_string();
    let mut form: Vec<(&str, &str)> = vec![
        ("grant_type", "authorization_code"),
        ("client_id", &client),
        ("code", code),
        ("redirect_uri", &redirect),
        ("code_verifier", VERIFIER),
    ];
    for (k, v) in fields {
        form.retain(|(fk, _)| fk != k);
        if !v.is_empty() {
            form.push((k, v));
        }
    }
    let r = browser()
        .post(format!("{}/common/oauth2/v2.0/token", app.base))
        .form(&form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn claims(jwt: &str) -> Value {
    use base64::Engine as _;
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(part).unwrap())
        .unwrap()
}

#[tokio::test]
async fn a_user_signs_in_with_code_and_pkce_and_reads_the_score_once_per_code() {
    let app = spawn_app().await;
    reader(&app).await;
    let location = sign_in(&app, &[]).await;
    assert!(location.starts_with(&format!("{}/?code=", app.base)), "{location}");
    assert!(location.ends_with("&state=st4te"), "{location}");
    let code = code_of(&location);

    let (status, body) = redeem(&app, &code, &[]).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();
    let access = claims(token);
    assert_eq!(access["upn"], USER);
    assert_eq!(access["appid"], DASHBOARD_CLIENT_ID.to_string());
    let id = claims(body["id_token"].as_str().unwrap());
    assert_eq!(
        (id["aud"].as_str(), id["nonce"].as_str()),
        (Some(&*DASHBOARD_CLIENT_ID.to_string()), Some("n0nce"))
    );
    assert_eq!(id["preferred_username"], USER);

    // The token is the user's: the score reads (Reader), a write is refused.
    let read =
        |path: String| browser().get(format!("{}{path}", app.base)).bearer_auth(token).send();
    let r = read(score_path(DEMO)).await.unwrap();
    assert_eq!(r.status(), 200);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["properties"]["score"]["current"], 23.53);
    let assessment = format!(
        "/subscriptions/{DEMO}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm/providers/Microsoft.Security/assessments/4fb67663-9ab9-475d-b026-8c544cced439?api-version=2020-01-01"
    );
    let r = browser()
        .put(format!("{}{assessment}", app.base))
        .bearer_auth(token)
        .json(&serde_json::json!({"properties": {"resourceDetails": {"source": "Azure"}, "status": {"code": "Healthy"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a Reader cannot write");

    // A code works once.
    let (status, body) = redeem(&app, &code, &[]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
}

#[tokio::test]
async fn a_code_is_refused_with_another_verifier_redirect_or_client_and_is_burnt_by_the_attempt() {
    let app = spawn_app().await;
    reader(&app).await;
    let other_verifier = "x".repeat(43);
    let other_redirect = format!("{}/elsewhere", app.base);
    let other_client = uuid::Uuid::new_v4().to_string();
    for wrong in [
        ("code_verifier", other_verifier.as_str()),
        ("redirect_uri", other_redirect.as_str()),
        ("client_id", other_client.as_str()),
    ] {
        let code = code_of(&sign_in(&app, &[]).await);
        let (status, body) = redeem(&app, &code, &[wrong]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{wrong:?}: {body}"
        );
        // The failed attempt used the code up: the right request fails too.
        let (status, _) = redeem(&app, &code, &[]).await;
        assert_eq!(status, 400, "{wrong:?}");
    }
    let (status, body) = redeem(&app, "no-such-code", &[]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")));
}

#[tokio::test]
async fn token_requests_missing_a_parameter_are_invalid_requests() {
    let app = spawn_app().await;
    reader(&app).await;
    for missing in ["code", "code_verifier", "redirect_uri", "client_id"] {
        let code = code_of(&sign_in(&app, &[]).await);
        let (status, body) = redeem(&app, &code, &[(missing, "")]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{missing}: {body}"
        );
        assert!(body["error_description"].as_str().unwrap().contains(missing), "{body}");
    }
    // A verifier RFC 7636 does not allow (too short) is a malformed request, not a guess.
    let code = code_of(&sign_in(&app, &[]).await);
    let (status, body) = redeem(&app, &code, &[("code_verifier", "short")]).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test]
async fn the_authorize_page_refuses_plain_pkce_no_challenge_and_foreign_redirects() {
    let app = spawn_app().await;
    let evil = "https://evil.example/";
    let loopback_elsewhere = "http://127.0.0.1:1/cb";
    let cases: [&[(&str, &str)]; 5] = [
        &[("code_challenge_method", "plain"), ("code_challenge", VERIFIER)],
        &[("code_challenge_method", "")],
        &[("code_challenge", "")],
        &[("redirect_uri", evil)],
        // The dashboard's client gets codes at its own page only, not at any loopback address.
        &[("redirect_uri", loopback_elsewhere)],
    ];
    for extra in cases {
        let url =
            format!("{}/common/oauth2/v2.0/authorize?{}", app.base, authorize_query(&app, extra));
        let r = browser().get(&url).send().await.unwrap();
        assert_eq!(r.status(), 400, "{extra:?}");
        assert!(r.headers().get("location").is_none());
        let text = r.text().await.unwrap();
        assert!(text.contains("AADSTS"), "{extra:?}: {text}");
        // Submitting the form anyway changes nothing.
        let r = browser()
            .post(&url)
            .form(&[("username", USER), ("password", PASSWORD)])
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{extra:?}");
    }
}

#[tokio::test]
async fn response_mode_fragment_puts_the_code_in_the_fragment() {
    let app = spawn_app().await;
    reader(&app).await;
    let location = sign_in(&app, &[("response_mode", "fragment")]).await;
    assert!(location.starts_with(&format!("{}/#code=", app.base)), "{location}");
    // MSAL's `client_info=1` gets the account's ids back.
    let (status, body) = redeem(&app, &code_of(&location), &[("client_info", "1")]).await;
    assert_eq!(status, 200);
    use base64::Engine as _;
    let info = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(body["client_info"].as_str().unwrap())
        .unwrap();
    let info: Value = serde_json::from_slice(&info).unwrap();
    assert_eq!(info["uid"], claims(body["access_token"].as_str().unwrap())["oid"]);
}

#[tokio::test]
async fn openid_configuration_advertises_the_code_flow_with_s256_only() {
    let app = spawn_app().await;
    let c: Value = browser()
        .get(format!("{}/common/v2.0/.well-known/openid-configuration", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(c["response_types_supported"].as_array().unwrap().contains(&"code".into()));
    assert!(c["grant_types_supported"].as_array().unwrap().contains(&"authorization_code".into()));
    assert_eq!(c["code_challenge_methods_supported"], serde_json::json!(["S256"]));
}

#[tokio::test]
async fn the_dashboard_is_served_with_content_types_csp_and_etags() {
    let app = spawn_app().await;
    let http = browser();
    // The page needs no token (its data does).
    let page = http.get(format!("{}/", app.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert_eq!(page.headers()["content-security-policy"], CSP);
    assert_eq!(page.headers()["x-frame-options"], "DENY");
    let etag = page.headers()["etag"].to_str().unwrap().to_string();
    assert!(page.text().await.unwrap().contains("<script type=\"module\" src=\"/ui/app.js\">"));

    let again =
        http.get(format!("{}/", app.base)).header("if-none-match", &etag).send().await.unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"], etag.as_str());
    assert!(again.bytes().await.unwrap().is_empty());
    let stale =
        http.get(format!("{}/", app.base)).header("if-none-match", "\"old\"").send().await.unwrap();
    assert_eq!(stale.status(), 200);

    for (file, content_type) in [
        ("app.js", "text/javascript; charset=utf-8"),
        ("api.js", "text/javascript; charset=utf-8"),
        ("auth.js", "text/javascript; charset=utf-8"),
        ("chart.js", "text/javascript; charset=utf-8"),
        ("style.css", "text/css; charset=utf-8"),
        ("favicon.svg", "image/svg+xml"),
    ] {
        let r = http.get(format!("{}/ui/{file}", app.base)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{file}");
        assert_eq!(r.headers()["content-type"], content_type, "{file}");
        assert_eq!(r.headers()["x-content-type-options"], "nosniff");
        assert_eq!(r.headers()["content-security-policy"], CSP);
        assert_ne!(r.headers()["etag"], etag.as_str(), "{file} has its own ETag");
    }
    let r = http.get(format!("{}/ui/../Cargo.toml", app.base)).send().await.unwrap();
    assert_eq!(r.status(), 404);
    let r = app.get("/ui/secret.js").await;
    assert_eq!((r.status, r.code()), (404, "NotFound"), "an unknown asset is a CloudError 404");
    // The page is read-only.
    let r = app.request(reqwest::Method::POST, "/", Some("{}".into()), &[]).await;
    assert_eq!(r.status, 405);
}

#[test]
fn the_csp_allows_this_origin_only_and_no_inline_script() {
    assert!(CSP.contains("default-src 'none'"));
    assert!(CSP.contains("script-src 'self';"));
    assert!(CSP.contains("connect-src 'self';"));
    assert!(
        !CSP.contains("unsafe-inline") && !CSP.contains("unsafe-eval") && !CSP.contains("http")
    );
}

#[test]
fn no_asset_refers_to_another_host() {
    // The SVG namespace is a name, never fetched; anything else absolute would break offline use.
    const SVG_NAMESPACE: &str = "http://www.w3.org/2000/svg";
    for asset in ASSETS {
        let text = std::str::from_utf8(asset.body).unwrap().replace(SVG_NAMESPACE, "");
        for scheme in ["http://", "https://", "//cdn", "url(//", "src=\"//", "href=\"//"] {
            assert!(!text.contains(scheme), "{} mentions {scheme}", asset.name);
        }
        if asset.name == "index.html" {
            assert!(
                !text.contains("<script>") && !text.contains(" style="),
                "no inline script or style"
            );
        }
    }
}

#[tokio::test]
async fn the_page_learns_how_to_sign_in_from_its_config() {
    let app = spawn_app().await;
    let c: Value = browser()
        .get(format!("{}/ui/config.json", app.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["auth"], "strict");
    assert_eq!(c["clientId"], DASHBOARD_CLIENT_ID.to_string());
    assert_eq!(c["redirectUri"], format!("{}/", app.base));
    assert_eq!(c["authority"], format!("{}/{}", app.base, app.tenant));

    let any = spawn_with(Options { auth: AuthMode::Any, ..Options::default() }).await;
    let c: Value = browser()
        .get(format!("{}/ui/config.json", any.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(c["auth"], "any");
}

#[tokio::test]
async fn the_demo_user_signs_in_to_the_dashboard_as_a_reader_of_the_demo_subscription() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let creds = securescore::identity::demo::ensure(&app.store, app.tenant, Some(dir.path()))
        .await
        .unwrap();
    assert_eq!(creds.user_name, "demo@securescore.local");
    // The password is kept in the credentials file: a restart signs in with the same one.
    let again = securescore::identity::demo::ensure(&app.store, app.tenant, Some(dir.path()))
        .await
        .unwrap();
    assert_eq!(again.user_password, creds.user_password);

    let location = sign_in_as(&app, &creds.user_name, &creds.user_password, &[]).await;
    let (status, body) = redeem(&app, &code_of(&location), &[]).await;
    assert_eq!(status, 200, "{body}");
    let token = body["access_token"].as_str().unwrap();
    let subs: Value = browser()
        .get(format!("{}/subscriptions?api-version=2022-12-01", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = subs["value"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["subscriptionId"].as_str())
        .collect();
    assert_eq!(ids, [DEMO], "the demo user sees the demo subscription");
    // Reader: the extension API's administration is out of reach.
    let r = browser()
        .get(format!("{}/securescore/v1/principals", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn a_credentials_file_from_before_the_demo_user_gains_one() {
    let app = spawn_app().await;
    let dir = tempfile::tempdir().unwrap();
    let first = securescore::identity::demo::ensure(&app.store, app.tenant, Some(dir.path()))
        .await
        .unwrap();
    // The file as older versions wrote it: no user fields.
    let old = serde_json::json!({
        "tenantId": first.tenant_id, "clientId": first.client_id,
        "clientSecret": first.client_secret, "subscriptionId": first.subscription_id,
    });
    let file = dir.path().join(securescore::identity::demo::CREDENTIALS_FILE);
    std::fs::write(&file, serde_json::to_vec(&old).unwrap()).unwrap();
    let now = securescore::identity::demo::ensure(&app.store, app.tenant, Some(dir.path()))
        .await
        .unwrap();
    assert_eq!(now.client_secret, first.client_secret);
    assert!(now.user_password.len() >= 20);
    let kept = securescore::identity::demo::read(dir.path()).unwrap().unwrap();
    assert_eq!(kept.user_password, now.user_password);
    let location = sign_in_as(&app, &now.user_name, &now.user_password, &[]).await;
    assert!(location.contains("code="));
}
