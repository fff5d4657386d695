//! POST /api/v1/auth/login: tokens, cookie, claims, enumeration safety and
//! the brute-force limits.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn login_returns_a_bearer_token_and_a_refresh_cookie() {
    let app = spawn_app_with(|vars| {
        vars.remove("COOKIE_SECURE");
    })
    .await;
    let user = app.register_user().await;

    let response = app.login(&user.email, &user.password).await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let attributes: Vec<&str> = cookie.split("; ").collect();
    assert!(attributes[0].starts_with("refresh_token="));
    let token = &attributes[0]["refresh_token=".len()..];
    assert_eq!(token.len(), 43, "256 bits as unpadded base64url");
    assert!(
        token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    for attribute in [
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/api/v1/auth",
        "Max-Age=1209600",
    ] {
        assert!(attributes.contains(&attribute), "{attribute} in {cookie}");
    }
    let body = json_body(response).await;
    assert_eq!(body["token_type"], "bearer");
    assert_eq!(body["expires_in"], 900);
    assert!(body.get("refresh_token").is_none(), "never in a body");
}

#[tokio::test]
async fn cookie_secure_false_leaves_out_the_secure_attribute() {
    let app = spawn_app().await; // the harness sets COOKIE_SECURE=false
    let user = app.register_user().await;

    let response = app.login(&user.email, &user.password).await;

    let cookie = response.headers()["set-cookie"].to_str().unwrap();
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly"));
}

#[tokio::test]
async fn the_access_token_carries_the_contract_claims() {
    let app = spawn_app().await;
    let user = app.register_user().await;

    let tokens = app.login_user(&user).await;

    let claims = jwt_claims(&tokens.access);
    assert_eq!(claims["sub"], user.id.as_str());
    assert!(uuid::Uuid::parse_str(claims["jti"].as_str().unwrap()).is_ok());
    assert!(uuid::Uuid::parse_str(claims["sid"].as_str().unwrap()).is_ok());
    assert_eq!(claims["iss"], "portcullis");
    assert_eq!(claims["aud"], "portcullis");
    let (iat, exp) = (
        claims["iat"].as_i64().unwrap(),
        claims["exp"].as_i64().unwrap(),
    );
    assert_eq!(exp - iat, 900);
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    assert!((now - iat).abs() <= 5);
    assert_eq!(claims["amr"], serde_json::json!(["pwd"]));
    assert_eq!(claims["email_verified"], false);
    let header = jwt_header(&tokens.access);
    assert_eq!(header["alg"], "EdDSA");
    // The kid names the published key that verifies the token.
    let jwks = json_body(app.get("/.well-known/jwks.json").await).await;
    let kid = header["kid"].as_str().expect("a kid");
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .any(|k| k["kid"] == kid)
    );
}

fn jwt_header(token: &str) -> serde_json::Value {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.split('.').next().unwrap())
        .unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn the_oauth2_password_form_logs_in_and_ignores_other_fields() {
    let app = spawn_app().await;
    let user = app.register_user().await;

    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .form(&[
            ("grant_type", "password"),
            ("username", user.email.as_str()),
            ("password", user.password.as_str()),
            ("scope", ""),
            ("client_id", "swagger"),
        ])
        .send()
        .await
        .unwrap();

    let tokens = tokens_of(response).await;
    assert_eq!(app.me(&tokens.access).await.status(), 200);
}

#[tokio::test]
async fn a_form_without_a_password_is_a_422() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .form(&[("username", "a@example.com")])
        .send()
        .await
        .unwrap();

    assert_problem(response, 422, "validation-error").await;
}

#[tokio::test]
async fn an_unknown_email_and_a_wrong_password_get_the_same_answer() {
    let app = spawn_app().await;
    let user = app.register_user().await;

    let wrong_password = app.login(&user.email, OTHER_STRONG_PASSWORD).await;
    let unknown_email = app.login("nobody@example.com", OTHER_STRONG_PASSWORD).await;
    let malformed_email = app.login("not an email", OTHER_STRONG_PASSWORD).await;

    let mut bodies = Vec::new();
    for response in [wrong_password, unknown_email, malformed_email] {
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        let mut body = assert_problem(response, 401, "invalid-credentials").await;
        body.as_object_mut().unwrap().remove("correlation_id");
        bodies.push(body);
    }
    assert_eq!(bodies[0], bodies[1]);
    assert_eq!(bodies[0], bodies[2]);
}

#[tokio::test]
async fn login_email_is_matched_case_and_space_insensitively() {
    let app = spawn_app().await;
    let user = app.register_user().await;

    let response = app
        .login(
            &format!("  {}  ", user.email.to_uppercase()),
            &user.password,
        )
        .await;

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn too_many_failures_lock_the_account_even_with_the_right_password() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "3".into());
    })
    .await;
    let user = app.register_user().await;
    for _ in 0..3 {
        assert_eq!(
            app.login(&user.email, OTHER_STRONG_PASSWORD).await.status(),
            401
        );
    }

    let response = app.login(&user.email, &user.password).await;

    let retry_after: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=900).contains(&retry_after), "{retry_after}");
    assert_problem(response, 429, "too-many-requests").await;
    // Another spelling of the same email is the same account.
    let shouted = app.login(&user.email.to_uppercase(), &user.password).await;
    assert_eq!(shouted.status(), 429);
}

#[tokio::test]
async fn unknown_emails_are_limited_like_known_ones() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "2".into());
    })
    .await;
    for _ in 0..2 {
        assert_eq!(
            app.login("ghost@example.com", OTHER_STRONG_PASSWORD)
                .await
                .status(),
            401
        );
    }

    assert_eq!(
        app.login("ghost@example.com", OTHER_STRONG_PASSWORD)
            .await
            .status(),
        429
    );
}

#[tokio::test]
async fn a_successful_login_resets_the_account_counter() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "3".into());
    })
    .await;
    let user = app.register_user().await;
    for _ in 0..2 {
        assert_eq!(
            app.login(&user.email, OTHER_STRONG_PASSWORD).await.status(),
            401
        );
    }
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);

    for _ in 0..2 {
        assert_eq!(
            app.login(&user.email, OTHER_STRONG_PASSWORD).await.status(),
            401
        );
    }
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
}

#[tokio::test]
async fn the_window_passing_lifts_the_limit() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "1".into());
        vars.insert("LOGIN_FAILURE_WINDOW_SECONDS".into(), "1".into());
    })
    .await;
    let user = app.register_user().await;
    assert_eq!(
        app.login(&user.email, OTHER_STRONG_PASSWORD).await.status(),
        401
    );
    assert_eq!(app.login(&user.email, &user.password).await.status(), 429);

    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;

    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);
}

#[tokio::test]
async fn parallel_failures_cannot_overshoot_the_limit() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "5".into());
    })
    .await;
    let user = app.register_user().await;

    let attempts = (0..20).map(|_| app.login(&user.email, OTHER_STRONG_PASSWORD));
    let statuses = statuses_of(attempts).await;

    assert_eq!(count_of(&statuses, 401), 5, "{statuses:?}");
    assert_eq!(count_of(&statuses, 429), 15, "{statuses:?}");
}

#[tokio::test]
async fn too_many_failures_from_one_address_lock_that_address() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ADDRESS".into(), "3".into());
    })
    .await;
    let user = app.register_user().await;
    for i in 0..3 {
        let response = app
            .login(&format!("victim-{i}@example.com"), OTHER_STRONG_PASSWORD)
            .await;
        assert_eq!(response.status(), 401);
    }

    let response = app.login(&user.email, &user.password).await;

    assert_problem(response, 429, "too-many-requests").await;
}

async fn login_from(app: &TestApp, forwarded_for: &str, email: &str) -> u16 {
    app.client
        .post(app.url("/api/v1/auth/login"))
        .header("x-forwarded-for", forwarded_for)
        .json(&json!({"email": email, "password": OTHER_STRONG_PASSWORD}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn x_forwarded_for_is_ignored_from_an_untrusted_peer() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ADDRESS".into(), "2".into());
    })
    .await;

    // Rotating the header does not escape the limit on the real peer.
    assert_eq!(login_from(&app, "203.0.113.1", "a1@example.com").await, 401);
    assert_eq!(login_from(&app, "203.0.113.2", "a2@example.com").await, 401);
    assert_eq!(login_from(&app, "203.0.113.3", "a3@example.com").await, 429);
}

#[tokio::test]
async fn x_forwarded_for_is_believed_from_a_trusted_proxy() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ADDRESS".into(), "2".into());
        vars.insert("TRUSTED_PROXIES".into(), "127.0.0.0/8,::1/128".into());
    })
    .await;

    assert_eq!(login_from(&app, "203.0.113.1", "b1@example.com").await, 401);
    assert_eq!(login_from(&app, "203.0.113.1", "b2@example.com").await, 401);
    assert_eq!(login_from(&app, "203.0.113.1", "b3@example.com").await, 429);
    // Another client behind the same proxy has its own count.
    assert_eq!(
        login_from(&app, "198.51.100.7, 203.0.113.1", "b4@example.com").await,
        429
    );
    assert_eq!(
        login_from(&app, "198.51.100.7", "b5@example.com").await,
        401
    );
}

#[tokio::test]
async fn login_fails_closed_when_redis_is_unreachable() {
    let port = closed_port();
    let app = spawn_app_with(|vars| {
        vars.insert("REDIS_URL".into(), format!("redis://127.0.0.1:{port}"));
    })
    .await;
    let user = app.insert_user_with_old_hash().await;

    let response = app.login(&user.email, &user.password).await;

    assert_problem(response, 503, "dependency-unavailable").await;
}

#[tokio::test]
async fn parallel_correct_logins_are_not_refused() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "3".into());
    })
    .await;
    let user = app.register_user().await;

    let attempts = (0..12).map(|_| app.login(&user.email, &user.password));
    let statuses = statuses_of(attempts).await;

    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
}

#[tokio::test]
async fn a_login_that_verified_a_replaced_password_gets_no_session() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let owner = app.login_user(&user).await;

    // The attacker's login stops right after its password check until the
    // owner's password change has committed.
    let (paused, release) = hold_login_after_password_check(&user.email);
    let attacker = {
        let client = app.client.clone();
        let url = app.url("/api/v1/auth/login");
        let body = serde_json::json!({"email": user.email, "password": user.password});
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap() })
    };
    tokio::time::timeout(Duration::from_secs(10), paused.notified())
        .await
        .expect("the attacker's login reached its password check");

    let changed = app
        .change_password(&owner.access, &user.password, OTHER_STRONG_PASSWORD)
        .await;
    assert_eq!(changed.status(), 204);
    release.notify_one();
    let response = attacker.await.unwrap();

    assert_problem(response, 401, "invalid-credentials").await;
    let db = app.database().await;
    let id = uuid::Uuid::parse_str(&user.id).unwrap();
    let live: i64 = db
        .query_one(
            "SELECT count(*) FROM sessions WHERE user_id = $1 AND revoked_at IS NULL",
            &[&id],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 1, "only the owner's own session is left");
}

#[tokio::test]
async fn a_login_upgrades_a_hash_made_with_older_parameters() {
    let app = spawn_app().await;
    let user = app.insert_user_with_old_hash().await;
    assert!(
        app.password_hash_of(&user)
            .await
            .starts_with("$argon2id$v=19$m=8192,t=1,p=1$")
    );

    tokens_of(app.login(&user.email, &user.password).await).await;

    let upgraded = app.password_hash_of(&user).await;
    assert!(
        upgraded.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{upgraded}"
    );
    tokens_of(app.login(&user.email, &user.password).await).await;
    assert_eq!(
        app.login(&user.email, "not the password at all")
            .await
            .status(),
        401
    );
}
