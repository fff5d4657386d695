//! CONTRACT.md, "Second factor: TOTP and recovery codes".

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn enrolment_shows_the_secret_once_and_a_code_enables_it() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let user = app.register_verified_user().await;
    let access = app.login_user(&user).await.access;

    let wrong_password = app.enrol(&access, "not the password at all").await;
    assert_problem(wrong_password, 400, "wrong-current-password").await;
    let nothing_pending = app.confirm_mfa(&access, "123456").await;
    assert_problem(nothing_pending, 409, "mfa-not-pending").await;
    let enrolment = app.enrol(&access, &user.password).await;
    assert_eq!(enrolment.status(), 201);
    assert_eq!(enrolment.headers()["cache-control"], "no-store");
    let body = json_body(enrolment).await;
    let uri = body["otpauth_uri"].as_str().unwrap();
    assert!(uri.starts_with("otpauth://totp/Portcullis:"), "{uri}");
    assert!(uri.contains("issuer=Portcullis"), "{uri}");
    let secret = totp_rs::Secret::try_from_base32(body["secret"].as_str().unwrap())
        .unwrap()
        .to_vec();
    assert_eq!(
        json_body(app.me(&access).await).await["mfa_enabled"],
        false,
        "pending"
    );

    let wrong = app.confirm_mfa(&access, &wrong_code(&secret)).await;
    assert_problem(wrong, 400, "wrong-mfa-code").await;
    let confirmed = app.confirm_mfa(&access, &code(&secret, now())).await;

    assert_eq!(confirmed.status(), 200);
    let codes = json_body(confirmed).await["recovery_codes"].clone();
    assert_eq!(codes.as_array().unwrap().len(), 10);
    assert_eq!(json_body(app.me(&access).await).await["mfa_enabled"], true);
    assert_problem(
        app.enrol(&access, &user.password).await,
        409,
        "mfa-already-enabled",
    )
    .await;
    app.emails_to(&user.email, "Two-step sign-in was turned on", 1)
        .await;
    let anonymous = app
        .client
        .post(app.url("/api/v1/users/me/mfa/totp"))
        .json(&json!({"current_password": user.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_login_takes_a_code_after_the_password() {
    let app = spawn_app().await;
    let enrolled = app.enrolled_user().await;

    let response = app
        .login(&enrolled.user.email, &enrolled.user.password)
        .await;
    assert!(
        response.headers().get("set-cookie").is_none(),
        "no session yet"
    );
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body = assert_problem(response, 403, "mfa-required").await;
    assert_eq!(body["expires_in"], 300);
    let mfa_token = body["mfa_token"].as_str().unwrap();
    let done = app
        .login_mfa(json!({"mfa_token": mfa_token, "code": code(&enrolled.secret, now())}))
        .await;

    let tokens = tokens_of(done).await;
    assert_eq!(jwt_claims(&tokens.access)["amr"], json!(["pwd", "otp"]));
    let refreshed = tokens_of(app.refresh(Some(&tokens.refresh)).await).await;
    assert_eq!(jwt_claims(&refreshed.access)["amr"], json!(["pwd", "otp"]));
    // The token is spent.
    let again = app
        .login_mfa(json!({"mfa_token": mfa_token, "code": code(&enrolled.secret, now())}))
        .await;
    assert_problem(again, 401, "invalid-mfa").await;
    let neither = app.login_mfa(json!({"mfa_token": mfa_token})).await;
    assert_problem(neither, 422, "validation-error").await;
}

#[tokio::test]
async fn a_code_is_never_accepted_twice() {
    let app = spawn_app().await;
    let enrolled = app.enrolled_user().await;
    let current = code(&enrolled.secret, now());
    let first = app.mfa_token(&enrolled.user).await;
    tokens_of(
        app.login_mfa(json!({"mfa_token": first, "code": current}))
            .await,
    )
    .await;

    let second = app.mfa_token(&enrolled.user).await;
    let replayed = app
        .login_mfa(json!({"mfa_token": second, "code": current}))
        .await;

    assert_problem(replayed, 401, "invalid-mfa").await;
}

#[tokio::test]
async fn two_logins_racing_with_one_code_cannot_both_win() {
    let app = spawn_app().await;
    let enrolled = app.enrolled_user().await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(app.mfa_token(&enrolled.user).await);
    }
    let current = code(&enrolled.secret, now());

    let statuses = statuses_of(
        tokens
            .iter()
            .map(|t| app.login_mfa(json!({"mfa_token": t, "code": current}))),
    )
    .await;

    assert_eq!(count_of(&statuses, 200), 1, "{statuses:?}");
    assert_eq!(count_of(&statuses, 401), 5, "{statuses:?}");
}

#[tokio::test]
async fn a_recovery_code_works_once_even_when_raced() {
    let app = spawn_app().await;
    let enrolled = app.enrolled_user().await;
    let mut tokens = Vec::new();
    for _ in 0..6 {
        tokens.push(app.mfa_token(&enrolled.user).await);
    }
    // Typed as a person might: upper case, spaces for dashes.
    let recovery = enrolled.recovery_codes[0].to_uppercase().replace('-', " ");

    let statuses = statuses_of(
        tokens
            .iter()
            .map(|t| app.login_mfa(json!({"mfa_token": t, "recovery_code": recovery}))),
    )
    .await;

    assert_eq!(count_of(&statuses, 200), 1, "{statuses:?}");
    let later = app.mfa_token(&enrolled.user).await;
    let reused = app
        .login_mfa(json!({"mfa_token": later, "recovery_code": enrolled.recovery_codes[0]}))
        .await;
    assert_problem(reused, 401, "invalid-mfa").await;
    let another = app
        .login_mfa(json!({"mfa_token": later, "recovery_code": enrolled.recovery_codes[1]}))
        .await;
    assert_eq!(another.status(), 200);
}

#[tokio::test]
async fn five_wrong_codes_spend_the_token() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "100".into());
    })
    .await;
    let enrolled = app.enrolled_user().await;
    let mfa_token = app.mfa_token(&enrolled.user).await;
    let wrong = wrong_code(&enrolled.secret);

    for _ in 0..5 {
        let response = app
            .login_mfa(json!({"mfa_token": mfa_token, "code": wrong}))
            .await;
        assert_problem(response, 401, "invalid-mfa").await;
    }
    let right = app
        .login_mfa(json!({"mfa_token": mfa_token, "code": code(&enrolled.secret, now())}))
        .await;

    assert_problem(right, 401, "invalid-mfa").await;
}

#[tokio::test]
async fn wrong_codes_count_against_the_accounts_login_limit() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "3".into());
    })
    .await;
    let enrolled = app.enrolled_user().await;
    let wrong = wrong_code(&enrolled.secret);

    for _ in 0..3 {
        let mfa_token = app.mfa_token(&enrolled.user).await;
        let response = app
            .login_mfa(json!({"mfa_token": mfa_token, "code": wrong}))
            .await;
        assert_eq!(response.status(), 401);
    }

    let locked = app
        .login(&enrolled.user.email, &enrolled.user.password)
        .await;
    assert!(locked.headers().contains_key("retry-after"));
    assert_problem(locked, 429, "too-many-requests").await;
}

#[tokio::test]
async fn an_expired_or_unknown_mfa_token_is_a_401() {
    let app = spawn_app().await;
    let enrolled = app.enrolled_user().await;
    let mfa_token = app.mfa_token(&enrolled.user).await;
    app.database()
        .await
        .execute(
            "UPDATE mfa_challenges SET created_at = now() - interval '10 minutes', \
             expires_at = now() - interval '5 minutes'",
            &[],
        )
        .await
        .unwrap();

    for token in [mfa_token.as_str(), "short", &"A".repeat(43)] {
        let response = app
            .login_mfa(json!({"mfa_token": token, "code": code(&enrolled.secret, now())}))
            .await;
        assert_problem(response, 401, "invalid-mfa").await;
    }
}

#[tokio::test]
async fn disabling_takes_the_password_and_a_code() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let enrolled = app.enrolled_user().await;
    let disable = |password: &str, code: &str| {
        let body = json!({"current_password": password, "code": code});
        app.bearer_json(
            reqwest::Method::DELETE,
            "/api/v1/users/me/mfa/totp",
            &enrolled.access,
            body,
        )
    };

    let wrong_password = disable("not the password at all", &code(&enrolled.secret, now())).await;
    assert_problem(wrong_password, 400, "wrong-current-password").await;
    let wrong_code = disable(&enrolled.user.password, &wrong_code(&enrolled.secret)).await;
    assert_problem(wrong_code, 400, "wrong-mfa-code").await;
    let disabled = disable(&enrolled.user.password, &enrolled.recovery_codes[3]).await;

    assert_eq!(disabled.status(), 204);
    let again = disable(&enrolled.user.password, &enrolled.recovery_codes[4]).await;
    assert_problem(again, 409, "mfa-not-pending").await;
    app.emails_to(&enrolled.user.email, "Two-step sign-in was turned off", 1)
        .await;
    let tokens = tokens_of(
        app.login(&enrolled.user.email, &enrolled.user.password)
            .await,
    )
    .await;
    assert_eq!(jwt_claims(&tokens.access)["amr"], json!(["pwd"]));
}

#[tokio::test]
async fn no_secret_is_stored_in_clear() {
    let app = spawn_app().await;
    let enrolled = app.enrolled_user().await;
    let id = uuid::Uuid::parse_str(&enrolled.user.id).unwrap();
    let db = app.database().await;

    let sealed: Vec<u8> = db
        .query_one(
            "SELECT sealed_secret FROM mfa_totp WHERE user_id = $1",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    let base32 = portcullis::security::totp::base32(&enrolled.secret);

    assert!(
        !sealed
            .windows(enrolled.secret.len())
            .any(|w| w == enrolled.secret.as_slice())
    );
    assert!(!String::from_utf8_lossy(&sealed).contains(&base32));
    let dump: String = db
        .query_one(
            "SELECT string_agg(t::text, ' ') FROM (SELECT * FROM mfa_totp UNION ALL \
             SELECT user_id, code_hash, NULL, used_at, NULL FROM mfa_recovery_codes) t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(!dump.contains(&base32));
    for code in &enrolled.recovery_codes {
        assert!(!dump.contains(code.as_str()));
    }
}
