//! POST /api/v1/auth/logout and /logout-all.

use crate::helpers::*;

#[tokio::test]
async fn logout_ends_the_session_and_clears_the_cookie() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    let other = app.login_user(&user).await;

    let response = app.logout(&tokens.access, None).await;

    assert_eq!(response.status(), 204);
    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(cookie.starts_with("refresh_token=;"), "{cookie}");
    assert!(cookie.contains("Max-Age=0"));
    assert!(cookie.contains("Path=/api/v1/auth"));
    assert_eq!(app.me(&tokens.access).await.status(), 401);
    assert_eq!(app.refresh(Some(&tokens.refresh)).await.status(), 401);
    // Other sessions live on.
    assert_eq!(app.me(&other.access).await.status(), 200);
}

#[tokio::test]
async fn every_access_token_of_the_session_dies_at_logout() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let first = app.login_user(&user).await;
    let second = tokens_of(app.refresh(Some(&first.refresh)).await).await;

    assert_eq!(app.logout(&second.access, None).await.status(), 204);

    assert_eq!(app.me(&first.access).await.status(), 401);
    assert_eq!(app.me(&second.access).await.status(), 401);
}

#[tokio::test]
async fn logout_also_ends_the_family_of_the_cookie_sent() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let bearer_session = app.login_user(&user).await;
    let cookie_session = app.login_user(&user).await;

    let response = app
        .logout(&bearer_session.access, Some(&cookie_session.refresh))
        .await;

    assert_eq!(response.status(), 204);
    assert_eq!(
        app.refresh(Some(&cookie_session.refresh)).await.status(),
        401
    );
    assert_eq!(app.me(&cookie_session.access).await.status(), 401);
}

#[tokio::test]
async fn logout_ignores_a_cookie_of_another_user() {
    let app = spawn_app().await;
    let alice = app.register_user().await;
    let bob = app.register_user().await;
    let alice_tokens = app.login_user(&alice).await;
    let bob_tokens = app.login_user(&bob).await;

    assert_eq!(
        app.logout(&alice_tokens.access, Some(&bob_tokens.refresh))
            .await
            .status(),
        204
    );

    assert_eq!(app.me(&bob_tokens.access).await.status(), 200);
    assert_eq!(app.refresh(Some(&bob_tokens.refresh)).await.status(), 200);
}

#[tokio::test]
async fn logout_all_ends_every_session_and_a_new_login_works_at_once() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let sessions = [
        app.login_user(&user).await,
        app.login_user(&user).await,
        app.login_user(&user).await,
    ];

    assert_eq!(app.logout_all(&sessions[0].access).await.status(), 204);

    for tokens in &sessions {
        assert_eq!(app.me(&tokens.access).await.status(), 401);
        assert_eq!(app.refresh(Some(&tokens.refresh)).await.status(), 401);
    }
    // Issued just after the mark, in the same second: it keeps working.
    let fresh = app.login_user(&user).await;
    assert_eq!(app.me(&fresh.access).await.status(), 200);
    assert_eq!(app.refresh(Some(&fresh.refresh)).await.status(), 200);
}

#[tokio::test]
async fn logout_all_leaves_other_users_alone() {
    let app = spawn_app().await;
    let alice = app.register_user().await;
    let bob = app.register_user().await;
    let alice_tokens = app.login_user(&alice).await;
    let bob_tokens = app.login_user(&bob).await;

    assert_eq!(app.logout_all(&alice_tokens.access).await.status(), 204);

    assert_eq!(app.me(&bob_tokens.access).await.status(), 200);
}
