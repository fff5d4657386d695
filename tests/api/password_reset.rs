//! The password reset, end to end: API, outbox, RabbitMQ, worker, email.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

const NEW_PASSWORD: &str = "Brand-New-Pangolin-Sky-77";
const RESET_SUBJECT: &str = "Reset your password";

#[tokio::test]
async fn a_reset_link_sets_the_password_and_ends_every_session() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;
    let before = app.login_user(&user).await;

    let response = app
        .client
        .post(app.url("/api/v1/auth/password-reset/request"))
        .header("x-correlation-id", "reset-flow-1")
        .json(&json!({"email": user.email.to_uppercase()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    let email = app.emails_to(&user.email, RESET_SUBJECT, 1).await.remove(0);
    assert_eq!(email.header("X-Correlation-ID"), Some("reset-flow-1"));
    assert!(email.header("Message-ID").is_some());
    let link = format!("{}/reset-password?token=", app.config.public_url);
    assert!(email.raw.contains(&link), "{}", email.raw);
    assert!(email.raw.contains("30 minutes"));
    assert!(email.raw.contains("text/html"));
    let token = email.reset_token().unwrap();
    assert_eq!(token.len(), 43);

    assert_eq!(app.confirm_reset(&token, NEW_PASSWORD).await.status(), 204);

    // Every session ends, every earlier access token stops working.
    assert_eq!(app.me(&before.access).await.status(), 401);
    assert_eq!(app.refresh(Some(&before.refresh)).await.status(), 401);
    assert_eq!(app.login(&user.email, &user.password).await.status(), 401);
    assert_eq!(app.login(&user.email, NEW_PASSWORD).await.status(), 200);
    // The token works once.
    let again = app.confirm_reset(&token, "Another-Fresh-Walrus-81").await;
    assert_problem(again, 400, "invalid-reset-token").await;
    // And the user hears about it.
    app.emails_to(&user.email, "Your password was reset", 1)
        .await;
}

#[tokio::test]
async fn an_unknown_email_gets_the_same_answer_and_no_job() {
    let app = spawn_app().await;
    let user = app.register_user().await;

    let known = app.request_reset(&user.email).await;
    let unknown = app.request_reset("nobody-here@example.com").await;

    assert_eq!(known.status(), 202);
    assert_eq!(unknown.status(), 202);
    assert_eq!(known.bytes().await.unwrap(), unknown.bytes().await.unwrap());
    let jobs: i64 = app
        .database()
        .await
        .query_one(
            "SELECT count(*) FROM outbox WHERE queue = 'email.password_reset'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1, "only the known email causes a job");
}

#[tokio::test]
async fn a_malformed_email_is_a_422() {
    let app = spawn_app().await;
    for body in [
        json!({"email": "not-an-email"}),
        json!({}),
        json!({"email": 5}),
    ] {
        let response = app
            .post_json("/api/v1/auth/password-reset/request", &body)
            .await;
        assert_problem(response, 422, "validation-error").await;
    }
}

#[tokio::test]
async fn reset_requests_are_limited_per_email_known_or_not() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    for email in [user.email.as_str(), "ghost-reset@example.com"] {
        for _ in 0..3 {
            assert_eq!(app.request_reset(email).await.status(), 202);
        }
        let response = app.request_reset(email).await;
        let retry_after: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=3600).contains(&retry_after));
        assert_problem(response, 429, "too-many-requests").await;
    }
}

#[tokio::test]
async fn a_new_request_supersedes_the_earlier_link() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;

    let first = app.reset_token_for(&user).await;
    assert_eq!(app.request_reset(&user.email).await.status(), 202);
    let emails = app.emails_to(&user.email, RESET_SUBJECT, 2).await;
    let second = emails
        .iter()
        .filter_map(|e| e.reset_token())
        .find(|t| *t != first)
        .expect("a second, different token");

    assert_problem(
        app.confirm_reset(&first, NEW_PASSWORD).await,
        400,
        "invalid-reset-token",
    )
    .await;
    assert_eq!(app.confirm_reset(&second, NEW_PASSWORD).await.status(), 204);
}

#[tokio::test]
async fn an_expired_token_is_a_400() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;
    let token = app.reset_token_for(&user).await;

    app.database()
        .await
        .execute(
            "UPDATE password_reset_tokens SET created_at = now() - interval '2 hours', \
             expires_at = now() - interval '1 second'",
            &[],
        )
        .await
        .unwrap();

    assert_problem(
        app.confirm_reset(&token, NEW_PASSWORD).await,
        400,
        "invalid-reset-token",
    )
    .await;
}

#[tokio::test]
async fn a_weak_password_is_a_422_and_leaves_the_token_usable() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;
    let token = app.reset_token_for(&user).await;

    let weak = app.confirm_reset(&token, "password1234").await;

    let problem = assert_problem(weak, 422, "validation-error").await;
    assert_eq!(problem["errors"][0]["field"], "new_password");
    assert_eq!(app.confirm_reset(&token, NEW_PASSWORD).await.status(), 204);
}

#[tokio::test]
async fn unknown_and_malformed_tokens_are_a_400() {
    let app = spawn_app().await;
    for token in ["", "short", &"A".repeat(43), &"!".repeat(43)] {
        let response = app.confirm_reset(token, NEW_PASSWORD).await;
        assert_problem(response, 400, "invalid-reset-token").await;
    }
}

#[tokio::test]
async fn a_password_change_and_a_refresh_reuse_each_send_one_notice() {
    let app = spawn_app_with(|vars| {
        vars.insert("REFRESH_REUSE_GRACE_SECONDS".into(), "0".into());
    })
    .await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;

    assert_eq!(
        app.change_password(&tokens.access, &user.password, NEW_PASSWORD)
            .await
            .status(),
        204
    );
    app.emails_to(&user.email, "Your password was changed", 1)
        .await;

    let rotated = tokens_of(app.refresh(Some(&tokens.refresh)).await).await;
    assert_eq!(app.refresh(Some(&tokens.refresh)).await.status(), 401);
    app.emails_to(&user.email, "A session of yours was ended", 1)
        .await;
    // Presenting tokens of the now revoked session sends nothing more.
    assert_eq!(app.refresh(Some(&rotated.refresh)).await.status(), 401);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let notices = read_emails(app.mail_dir())
        .into_iter()
        .filter(|e| e.subject().contains("A session of yours was ended"))
        .count();
    assert_eq!(notices, 1);
}

#[tokio::test]
async fn a_reset_link_cannot_be_rebuilt_from_the_secret_and_the_message_id() {
    use hmac::{Hmac, KeyInit, Mac};
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;
    assert_eq!(app.request_reset(&user.email).await.status(), 202);
    let email = app
        .emails_to(&user.email, "Reset your password", 1)
        .await
        .remove(0);
    let job_id = email
        .header("Message-ID")
        .and_then(|id| id.trim_matches(['<', '>']).split('@').next())
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
        .expect("the Message-ID names the job");

    // What the signing secret and a mail log used to be enough for.
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(app.config.jwt_secret.expose().as_bytes())
            .unwrap();
    mac.update(b"portcullis password-reset token v1\0");
    mac.update(job_id.as_bytes());
    use base64::Engine;
    let forged =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());

    let response = app.confirm_reset(&forged, OTHER_STRONG_PASSWORD).await;

    assert_problem(response, 400, "invalid-reset-token").await;
    let real = email.reset_token().expect("the email holds a link");
    assert_ne!(real, forged);
    assert_eq!(
        app.confirm_reset(&real, OTHER_STRONG_PASSWORD)
            .await
            .status(),
        204
    );
}
