//! The harness itself: servers run `--auth strict` unless a test asks for `--auth any`, so every
//! other test in this binary is authenticated and authorized the way a user's request is.

use super::*;

#[tokio::test]
async fn test_servers_are_strict_and_the_harness_token_is_a_real_one() {
    let mut app = spawn_app().await;
    // The harness's token is accepted: signed by the server's key, Owner on `/`.
    assert_eq!(app.get(&score_path(DEMO)).await.status, 200);
    let subs = app.get("/subscriptions?api-version=2022-12-01").await;
    assert!(subs.body["value"].as_array().unwrap().iter().any(|s| s["subscriptionId"] == DEMO));
    // A token no key signed is not.
    app.token = ANY_TOKEN.to_string();
    let r = app.get(&score_path(DEMO)).await;
    assert_eq!((r.status, r.code()), (401, "InvalidAuthenticationToken"), "{}", r.text);
    app.stop().await;
}

#[tokio::test]
async fn auth_any_is_only_on_when_asked_for() {
    let app = spawn_with(Options { auth: AuthMode::Any, ..Options::default() }).await;
    assert_eq!(app.token, ANY_TOKEN);
    assert_eq!(app.get(&score_path(DEMO)).await.status, 200, "any well-formed token");
    app.stop().await;
}

#[tokio::test]
async fn a_subscription_of_another_tenant_refuses_the_harness_token() {
    let app = spawn_with(Options { demo: false, ..Options::default() }).await;
    let sub = Uuid::new_v4();
    app.store
        .put_subscription(&Subscription {
            id: sub,
            display_name: "elsewhere".into(),
            tenant_id: Uuid::new_v4(),
            state: "Enabled".into(),
        })
        .await
        .unwrap();
    let r = app.get(&score_path(&sub.to_string())).await;
    assert_eq!((r.status, r.code()), (401, "InvalidAuthenticationTokenTenant"), "{}", r.text);
    // The harness's own subscriptions are of the token's tenant.
    let mine = Uuid::new_v4();
    app.add_subscription(mine).await;
    assert_eq!(app.get(&score_path(&mine.to_string())).await.status, 200);
    app.stop().await;
}
