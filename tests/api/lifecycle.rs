//! CONTRACT.md, "Email verification and the account's lifecycle".

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn registration_sends_a_link_that_verifies_the_address_once() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;
    let before = app.login_user(&user).await;
    assert_eq!(jwt_claims(&before.access)["email_verified"], false);

    let token = app.verify_token(&user.email, VERIFY_SUBJECT, 1).await;
    let email = &app.emails_to(&user.email, VERIFY_SUBJECT, 1).await[0];
    assert!(email.raw.contains("24 hours"), "the expiry in words");
    assert!(email.header("X-Correlation-ID").is_some());
    let confirmed = app.confirm_verification(&token).await;
    let again = app.confirm_verification(&token).await;

    assert_eq!(confirmed.status(), 204);
    assert_problem(again, 400, "invalid-verification-token").await;
    let me = json_body(app.me(&before.access).await).await;
    assert_eq!(me["email_verified"], true);
    // New tokens say so, refreshed ones too.
    let after = app.login_user(&user).await;
    assert_eq!(jwt_claims(&after.access)["email_verified"], true);
    let refreshed = tokens_of(app.refresh(Some(&after.refresh)).await).await;
    assert_eq!(jwt_claims(&refreshed.access)["email_verified"], true);
}

#[tokio::test]
async fn two_confirms_of_one_link_verify_once() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;
    let token = app.verify_token(&user.email, VERIFY_SUBJECT, 1).await;

    let statuses = statuses_of((0..8).map(|_| app.confirm_verification(&token))).await;

    assert_eq!(count_of(&statuses, 204), 1, "{statuses:?}");
    assert_eq!(count_of(&statuses, 400), 7, "{statuses:?}");
}

#[tokio::test]
async fn a_newer_link_supersedes_the_older_one() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;
    let older = app.verify_token(&user.email, VERIFY_SUBJECT, 1).await;

    assert_eq!(app.request_verification(&user.email).await.status(), 202);
    let newer = app.verify_token(&user.email, VERIFY_SUBJECT, 2).await;

    assert_ne!(older, newer);
    assert_problem(
        app.confirm_verification(&older).await,
        400,
        "invalid-verification-token",
    )
    .await;
    assert_eq!(app.confirm_verification(&newer).await.status(), 204);
}

#[tokio::test]
async fn unknown_malformed_and_expired_links_are_a_400() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;
    let token = app.verify_token(&user.email, VERIFY_SUBJECT, 1).await;
    app.database()
        .await
        .execute(
            "UPDATE email_tokens SET created_at = now() - interval '2 days', \
             expires_at = now() - interval '1 day'",
            &[],
        )
        .await
        .unwrap();

    for token in [token.as_str(), "short", &"A".repeat(43)] {
        let response = app.confirm_verification(token).await;
        assert_problem(response, 400, "invalid-verification-token").await;
    }
    let missing = app
        .post_json("/api/v1/auth/verify-email/confirm", &json!({}))
        .await;
    assert_problem(missing, 422, "validation-error").await;
}

#[tokio::test]
async fn asking_for_a_link_is_202_for_everyone_but_only_the_unverified_get_one() {
    let app = spawn_app_with(|vars| {
        vars.insert("VERIFY_MAX_REQUESTS_PER_EMAIL".into(), "2".into());
    })
    .await;
    let _worker = app.spawn_worker().await;
    let unverified = app.register_user().await;
    let verified = app.register_user().await;
    let token = app.verify_token(&verified.email, VERIFY_SUBJECT, 1).await;
    assert_eq!(app.confirm_verification(&token).await.status(), 204);
    app.emails_to(&unverified.email, VERIFY_SUBJECT, 1).await;

    let answers = [
        app.request_verification(&unverified.email).await,
        app.request_verification(&verified.email).await,
        app.request_verification("nobody-here@example.com").await,
    ];
    let bodies: Vec<_> = futures_util::future::join_all(answers.into_iter().map(|r| async {
        assert_eq!(r.status(), 202);
        r.bytes().await.unwrap()
    }))
    .await;

    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "one answer for all"
    );
    app.emails_to(&unverified.email, VERIFY_SUBJECT, 2).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let to_verified = read_emails(app.mail_dir())
        .into_iter()
        .filter(|e| e.to() == verified.email && e.subject() == VERIFY_SUBJECT)
        .count();
    assert_eq!(to_verified, 1, "a verified address gets no new link");
    assert_problem(
        app.request_verification("not an email").await,
        422,
        "validation-error",
    )
    .await;
    // The per-email limit: 2 an hour, then 429.
    assert_eq!(
        app.request_verification(&unverified.email).await.status(),
        202
    );
    let limited = app.request_verification(&unverified.email).await;
    assert!(limited.headers().contains_key("retry-after"));
    assert_problem(limited, 429, "too-many-requests").await;
}

#[tokio::test]
async fn with_verification_required_an_unverified_login_is_403_and_a_wrong_password_401() {
    let app = spawn_app_with(|vars| {
        vars.insert("REQUIRE_VERIFIED_EMAIL".into(), "true".into());
    })
    .await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;

    let unverified = app.login(&user.email, &user.password).await;
    let wrong = app.login(&user.email, "not the password at all").await;

    assert!(
        unverified.headers().get("set-cookie").is_none(),
        "no session"
    );
    assert_problem(unverified, 403, "email-not-verified").await;
    assert_problem(wrong, 401, "invalid-credentials").await;
    let token = app.verify_token(&user.email, VERIFY_SUBJECT, 1).await;
    assert_eq!(app.confirm_verification(&token).await.status(), 204);
    let tokens = app.login_user(&user).await;
    assert_eq!(jwt_claims(&tokens.access)["email_verified"], true);
}

#[tokio::test]
async fn changing_the_email_proves_the_new_address_and_retires_the_old_one() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_verified_user().await;
    let tokens = app.login_user(&user).await;
    let new_email = app.unique_email();
    // A reset link mailed to the old address before the change.
    let old_link = app.reset_token_for(&user).await;

    let requested = app
        .change_email(&tokens.access, &user.password, &new_email)
        .await;

    assert_eq!(requested.status(), 202);
    app.emails_to(&user.email, "Someone asked to change your email address", 1)
        .await;
    let token = app.verify_token(&new_email, CHANGE_SUBJECT, 1).await;
    let me = json_body(app.me(&tokens.access).await).await;
    assert_eq!(
        me["email"], user.email,
        "nothing changes before the link is opened"
    );

    assert_eq!(app.confirm_verification(&token).await.status(), 204);
    let me = json_body(app.me(&tokens.access).await).await;
    assert_eq!(me["email"], new_email);
    assert_eq!(me["email_verified"], true);
    app.emails_to(&user.email, "Your email address was changed", 1)
        .await;
    assert_eq!(app.login(&user.email, &user.password).await.status(), 401);
    assert_eq!(app.login(&new_email, &user.password).await.status(), 200);
    assert_problem(
        app.confirm_reset(&old_link, OTHER_STRONG_PASSWORD).await,
        400,
        "invalid-reset-token",
    )
    .await;
    // The old address no longer gets reset links.
    assert_eq!(app.request_reset(&user.email).await.status(), 202);
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
    assert_eq!(jobs, 1, "only the reset asked for before the change");
}

#[tokio::test]
async fn changing_the_email_refuses_a_wrong_password_a_taken_or_malformed_address() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_verified_user().await;
    let other = app.register_user().await;
    let tokens = app.login_user(&user).await;

    let wrong = app
        .change_email(
            &tokens.access,
            "not the password at all",
            &app.unique_email(),
        )
        .await;
    let taken = app
        .change_email(&tokens.access, &user.password, &other.email)
        .await;
    let malformed = app
        .change_email(&tokens.access, &user.password, "not an email")
        .await;
    let same = app
        .change_email(&tokens.access, &user.password, &user.email)
        .await;
    let anonymous = app
        .client
        .post(app.url("/api/v1/users/me/email"))
        .json(&json!({"current_password": user.password, "new_email": app.unique_email()}))
        .send()
        .await
        .unwrap();

    assert_problem(wrong, 400, "wrong-current-password").await;
    assert_problem(taken, 409, "email-taken").await;
    assert_problem(malformed, 422, "validation-error").await;
    assert_problem(same, 422, "validation-error").await;
    assert_eq!(anonymous.status(), 401);

    // Taken between the request and the link: 409 then, and the link
    // stays usable once the address is free again.
    let wanted = app.unique_email();
    assert_eq!(
        app.change_email(&tokens.access, &user.password, &wanted)
            .await
            .status(),
        202
    );
    let token = app.verify_token(&wanted, CHANGE_SUBJECT, 1).await;
    let squatter = app
        .register(&json!({"email": wanted, "password": STRONG_PASSWORD}))
        .await;
    assert_eq!(squatter.status(), 201);
    assert_problem(app.confirm_verification(&token).await, 409, "email-taken").await;
    let squatter_id = json_body(squatter).await["id"].as_str().unwrap().to_owned();
    app.database()
        .await
        .execute(
            "DELETE FROM users WHERE id = $1",
            &[&uuid::Uuid::parse_str(&squatter_id).unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(app.confirm_verification(&token).await.status(), 204);
}

#[tokio::test]
async fn deleting_the_account_ends_everything_and_frees_the_address() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    let other_device = app.login_user(&user).await;

    let wrong = app
        .delete_account(&tokens.access, "not the password at all")
        .await;
    assert_problem(wrong, 400, "wrong-current-password").await;
    let deleted = app.delete_account(&tokens.access, &user.password).await;

    assert_eq!(deleted.status(), 204);
    for access in [&tokens.access, &other_device.access] {
        assert_eq!(app.me(access).await.status(), 401);
        assert_eq!(app.logout_all(access).await.status(), 401);
    }
    assert_eq!(app.refresh(Some(&other_device.refresh)).await.status(), 401);
    let id = uuid::Uuid::parse_str(&user.id).unwrap();
    let db = app.database().await;
    for table in [
        "users WHERE id",
        "sessions WHERE user_id",
        "refresh_tokens WHERE user_id",
        "email_tokens WHERE user_id",
    ] {
        let left: i64 = db
            .query_one(&format!("SELECT count(*) FROM {table} = $1"), &[&id])
            .await
            .unwrap()
            .get(0);
        assert_eq!(left, 0, "{table}");
    }
    app.emails_to(&user.email, "Your account was deleted", 1)
        .await;
    let again = app
        .register(&json!({"email": user.email, "password": STRONG_PASSWORD}))
        .await;
    assert_eq!(again.status(), 201, "the address can register again");
}

#[tokio::test]
async fn a_job_of_a_deleted_account_still_queued_sends_nothing() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    // Queued while no worker runs: the verification link and a reset link.
    assert_eq!(app.request_reset(&user.email).await.status(), 202);
    assert_eq!(
        app.delete_account(&tokens.access, &user.password)
            .await
            .status(),
        204
    );

    let _worker = app.spawn_worker().await;

    app.emails_to(&user.email, "Your account was deleted", 1)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let emails = read_emails(app.mail_dir());
    assert_eq!(
        emails.len(),
        1,
        "only the deletion notice: {:?}",
        emails
            .iter()
            .map(|e| e.subject().to_owned())
            .collect::<Vec<_>>()
    );
    let skipped: i64 = app
        .database()
        .await
        .query_one(
            "SELECT count(*) FROM processed_jobs WHERE outcome = 'skipped'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(skipped, 2, "both jobs acked as done");
}

#[tokio::test]
async fn a_registration_while_the_broker_is_away_still_gets_its_link_once() {
    let proxy = TcpProxy::start(broker_address()).await;
    let port = proxy.port;
    let broker = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let app = spawn_app_with(|vars| {
        vars.insert("AMQP_URL".into(), broker.clone());
    })
    .await;
    app.wait_until_ready().await;
    let _worker = app
        .spawn_worker_with(|vars| {
            vars.insert("AMQP_URL".into(), broker.clone());
        })
        .await;

    proxy.cut();
    let user = app.register_user().await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    proxy.restore();

    let token = app.verify_token(&user.email, VERIFY_SUBJECT, 1).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let links = read_emails(app.mail_dir())
        .into_iter()
        .filter(|e| e.subject() == VERIFY_SUBJECT)
        .count();
    assert_eq!(links, 1, "one email");
    assert_eq!(app.confirm_verification(&token).await.status(), 204);
}
