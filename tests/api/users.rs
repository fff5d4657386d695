//! /api/v1/users/me: read, rename, change password.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn patch_me_sets_and_clears_the_full_name() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;

    let renamed = app
        .patch_me(&tokens.access, &json!({"full_name": "  Ada King "}))
        .await;
    assert_eq!(renamed.status(), 200);
    assert_eq!(json_body(renamed).await["full_name"], "Ada King");
    assert_eq!(
        json_body(app.me(&tokens.access).await).await["full_name"],
        "Ada King"
    );

    let cleared = app
        .patch_me(&tokens.access, &json!({"full_name": null}))
        .await;
    assert_eq!(cleared.status(), 200);
    assert!(json_body(cleared).await["full_name"].is_null());
}

#[tokio::test]
async fn patch_me_refuses_bad_bodies_with_a_422() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    for body in [
        json!({}),
        json!({"full_name": 7}),
        json!({"full_name": ""}),
        json!({"full_name": "x".repeat(201)}),
        json!({"full_name": "Ada", "email": "evil@example.com"}),
        json!({"full_name": "nul\u{0}byte"}),
    ] {
        let response = app.patch_me(&tokens.access, &body).await;
        let problem = assert_problem(response, 422, "validation-error").await;
        assert!(!problem["errors"].as_array().unwrap().is_empty(), "{body}");
    }
}

#[tokio::test]
async fn change_password_with_a_wrong_current_password_is_a_400() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;

    let response = app
        .change_password(
            &tokens.access,
            OTHER_STRONG_PASSWORD,
            "Brand-New-Pangolin-Sky-77",
        )
        .await;

    assert_problem(response, 400, "wrong-current-password").await;
    assert_eq!(app.me(&tokens.access).await.status(), 200);
}

#[tokio::test]
async fn change_password_to_a_weak_one_is_a_422() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;

    let response = app
        .change_password(&tokens.access, &user.password, "password1234")
        .await;

    let problem = assert_problem(response, 422, "validation-error").await;
    assert_eq!(problem["errors"][0]["field"], "new_password");
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
}

#[tokio::test]
async fn change_password_ends_other_sessions_and_old_access_tokens_but_keeps_this_refresh() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let mine = app.login_user(&user).await;
    let other = app.login_user(&user).await;
    let new_password = "Brand-New-Pangolin-Sky-77";

    let response = app
        .change_password(&mine.access, &user.password, new_password)
        .await;

    assert_eq!(response.status(), 204);
    // Every access token issued before, the caller's included, stops working.
    assert_eq!(app.me(&mine.access).await.status(), 401);
    assert_eq!(app.me(&other.access).await.status(), 401);
    // Every other session is revoked.
    assert_eq!(app.refresh(Some(&other.refresh)).await.status(), 401);
    // The caller's refresh cookie keeps working and gets a working token.
    let renewed = tokens_of(app.refresh(Some(&mine.refresh)).await).await;
    assert_eq!(app.me(&renewed.access).await.status(), 200);
    // Only the new password logs in.
    assert_eq!(app.login(&user.email, &user.password).await.status(), 401);
    assert_eq!(app.login(&user.email, new_password).await.status(), 200);
}
