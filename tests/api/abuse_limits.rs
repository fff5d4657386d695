//! CONTRACT.md, "Abuse limits and retention": floods, limits dodged by
//! address, crafted passwords, cross-site login forms, and the purge.

use std::time::{Duration, Instant};

use crate::helpers::*;

/// Sends a request as if from `address` through a trusted proxy.
async fn post_from(
    app: &TestApp,
    address: &str,
    path: &str,
    body: &serde_json::Value,
) -> reqwest::Response {
    app.client
        .post(app.url(path))
        .header("x-forwarded-for", address)
        .json(body)
        .send()
        .await
        .expect("request sent")
}

fn behind_a_proxy(vars: &mut std::collections::HashMap<String, String>) {
    vars.insert("TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
}

// A flood of registrations must not starve other requests.

#[tokio::test]
async fn a_flood_of_registrations_leaves_other_requests_answering() {
    let app = spawn_app_with(|vars| {
        vars.insert("REGISTER_MAX_PER_ADDRESS".into(), "100000".into());
        vars.insert("ARGON2_MAX_QUEUE".into(), "64".into());
    })
    .await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;

    let flood = {
        let client = app.client.clone();
        let url = app.url("/api/v1/auth/register");
        tokio::spawn(async move {
            let requests = (0..300).map(|i| {
                let client = client.clone();
                let url = url.clone();
                async move {
                    let body = serde_json::json!({
                        "email": format!("flood-{i}-{}@example.com", uuid::Uuid::new_v4().simple()),
                        "password": STRONG_PASSWORD,
                    });
                    let response = client.post(url).json(&body).send().await.unwrap();
                    let retry_after = response.headers().get("retry-after").is_some();
                    (response.status().as_u16(), retry_after)
                }
            });
            futures_util::future::join_all(requests).await
        })
    };
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    while !flood.is_finished() {
        let started = Instant::now();
        let response = app.me(&tokens.access).await;
        assert_eq!(response.status(), 200, "/users/me during the flood");
        slowest = slowest.max(started.elapsed());
        probes += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let answers = flood.await.unwrap();

    assert!(probes >= 5, "the flood lasted long enough to probe");
    assert!(
        slowest < Duration::from_millis(1000),
        "/users/me took {slowest:?} during the flood"
    );
    for (status, retry_after) in &answers {
        assert!(
            *status == 201 || (*status == 503 && *retry_after),
            "a registration got {status}"
        );
    }
    assert!(
        answers.iter().any(|(status, _)| *status == 503),
        "the bounded queue turned some away"
    );
}

// Per-address limits, IPv6 per /64, and the retention that ends them.

#[tokio::test]
async fn ipv6_login_failures_count_per_64() {
    let app = spawn_app_with(|vars| {
        behind_a_proxy(vars);
        vars.insert("LOGIN_MAX_FAILURES_PER_ADDRESS".into(), "3".into());
    })
    .await;
    for address in ["2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:aaaa::3"] {
        let body = serde_json::json!({"email": app.unique_email(), "password": "wrong password 1"});
        let response = post_from(&app, address, "/api/v1/auth/login", &body).await;
        assert_eq!(response.status(), 401);
    }
    let body = serde_json::json!({"email": app.unique_email(), "password": "wrong password 1"});

    let same_64 = post_from(&app, "2001:db8:1:2:ffff::9", "/api/v1/auth/login", &body).await;
    let next_64 = post_from(&app, "2001:db8:1:3::1", "/api/v1/auth/login", &body).await;

    assert_eq!(same_64.status(), 429);
    assert!(same_64.headers().contains_key("retry-after"));
    assert_eq!(next_64.status(), 401);
}

#[tokio::test]
async fn registrations_are_limited_per_address() {
    let app = spawn_app_with(|vars| {
        behind_a_proxy(vars);
        vars.insert("REGISTER_MAX_PER_ADDRESS".into(), "2".into());
    })
    .await;
    let app = &app;
    let register = |address: &'static str| {
        let body = serde_json::json!({"email": app.unique_email(), "password": STRONG_PASSWORD});
        async move { post_from(app, address, "/api/v1/auth/register", &body).await }
    };
    assert_eq!(register("2001:db8::1").await.status(), 201);
    assert_eq!(register("2001:db8::2").await.status(), 201);

    let refused = register("2001:db8::3").await;
    let elsewhere = register("192.0.2.7").await;

    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, 429, "too-many-requests").await;
    assert_eq!(elsewhere.status(), 201);
}

#[tokio::test]
async fn reset_requests_are_limited_per_address_across_emails() {
    let app = spawn_app_with(|vars| {
        behind_a_proxy(vars);
        vars.insert("EMAIL_REQUESTS_MAX_PER_ADDRESS".into(), "3".into());
    })
    .await;
    for _ in 0..3 {
        let body = serde_json::json!({"email": app.unique_email()});
        let response = post_from(
            &app,
            "198.51.100.4",
            "/api/v1/auth/password-reset/request",
            &body,
        )
        .await;
        assert_eq!(response.status(), 202);
    }
    let body = serde_json::json!({"email": app.unique_email()});

    let refused = post_from(
        &app,
        "198.51.100.4",
        "/api/v1/auth/password-reset/request",
        &body,
    )
    .await;
    let elsewhere = post_from(
        &app,
        "198.51.100.5",
        "/api/v1/auth/password-reset/request",
        &body,
    )
    .await;

    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, 429, "too-many-requests").await;
    assert_eq!(elsewhere.status(), 202);
}

#[tokio::test]
async fn the_purge_deletes_what_the_retention_has_passed_and_keeps_the_rest() {
    let app = spawn_app_with(|vars| {
        vars.insert("RETENTION_SECONDS".into(), "3600".into());
        vars.insert("PURGE_INTERVAL_SECONDS".into(), "1".into());
    })
    .await;
    let user = app.register_user().await;
    let fresh = app.login_user(&user).await;
    let old = app.login_user(&user).await;
    let expired = app.login_user(&user).await;
    let ended = app.login_user(&user).await;
    let db = app.database().await;
    let user_id = uuid::Uuid::parse_str(&user.id).unwrap();
    let sid = |tokens: &Tokens| {
        uuid::Uuid::parse_str(jwt_claims(&tokens.access)["sid"].as_str().unwrap()).unwrap()
    };
    let (old_sid, expired_sid, ended_sid, fresh_sid) =
        (sid(&old), sid(&expired), sid(&ended), sid(&fresh));
    let (old_request, fresh_request) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let (old_job, fresh_job) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    db.batch_execute(&format!(
        "UPDATE sessions SET revoked_at = now() - interval '2 hours', revoked_reason = 'logout', \
             created_at = now() - interval '3 hours' WHERE id = '{old_sid}';
         UPDATE refresh_tokens SET created_at = now() - interval '3 hours' WHERE session_id = '{old_sid}';
         -- Past its sliding expiry (the session's and its newest token's),
         -- and past its absolute end with its sliding expiry ahead.
         UPDATE sessions SET expires_at = now() - interval '2 hours' WHERE id = '{expired_sid}';
         UPDATE refresh_tokens SET created_at = now() - interval '3 hours', expires_at = now() - interval '2 hours' \
             WHERE session_id = '{expired_sid}';
         UPDATE sessions SET max_expires_at = now() - interval '2 hours' WHERE id = '{ended_sid}';
         -- A used token of the live session, long expired.
         INSERT INTO refresh_tokens (token_hash, session_id, user_id, created_at, expires_at, used_at) VALUES
             (decode(repeat('cc', 32), 'hex'), '{fresh_sid}', '{user_id}', now() - interval '4 hours',
              now() - interval '2 hours', now() - interval '3 hours');
         INSERT INTO password_reset_requests (id, user_id, correlation_id, requested_at) VALUES
             ('{old_request}', '{user_id}', 'c', now() - interval '3 hours'),
             ('{fresh_request}', '{user_id}', 'c', now());
         INSERT INTO password_reset_tokens (token_hash, request_id, user_id, created_at, expires_at, used_at) VALUES
             (decode(repeat('aa', 32), 'hex'), '{old_request}', '{user_id}', now() - interval '3 hours',
              now() - interval '150 minutes', now() - interval '170 minutes'),
             (decode(repeat('bb', 32), 'hex'), '{fresh_request}', '{user_id}', now(),
              now() + interval '30 minutes', NULL);
         INSERT INTO processed_jobs (job_id, queue, outcome, processed_at) VALUES
             ('{old_job}', 'email.password_reset', 'sent', now() - interval '2 hours'),
             ('{fresh_job}', 'email.password_reset', 'sent', now());
         INSERT INTO outbox (id, queue, payload, correlation_id, created_at, published_at) VALUES
             ('{old_job}', 'email.password_reset', '{{}}', 'c', now() - interval '3 hours', now() - interval '2 hours'),
             ('{fresh_job}', 'email.password_reset', '{{}}', 'c', now(), now()),
             (gen_random_uuid(), 'email.password_reset', '{{}}', 'c', now() - interval '3 hours', NULL);"
    ))
    .await
    .unwrap();

    let count = |sql: &'static str| {
        let db = &db;
        async move { db.query_one(sql, &[]).await.unwrap().get::<_, i64>(0) }
    };
    let mut purged = false;
    for _ in 0..100 {
        if count("SELECT count(*) FROM processed_jobs").await == 1
            && count("SELECT count(*) FROM password_reset_requests").await == 1
        {
            purged = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(purged, "the purge ran");
    let sessions: Vec<uuid::Uuid> = db
        .query("SELECT id FROM sessions", &[])
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        sessions,
        [fresh_sid],
        "revoked, expired and ended sessions go"
    );
    assert_eq!(
        count("SELECT count(*) FROM refresh_tokens WHERE expires_at < now()").await,
        0,
        "the expired token of the live session goes"
    );
    assert_eq!(count("SELECT count(*) FROM password_reset_tokens").await, 1);
    assert_eq!(
        count("SELECT count(*) FROM outbox WHERE created_at < now() - interval '1 hour'").await,
        1,
        "the old unpublished row stays, the old published one goes"
    );
    let fresh_outbox: i64 = db
        .query_one("SELECT count(*) FROM outbox WHERE id = $1", &[&fresh_job])
        .await
        .unwrap()
        .get(0);
    assert_eq!(fresh_outbox, 1, "the fresh published row stays");
    // The session that was kept still works.
    assert_eq!(app.me(&fresh.access).await.status(), 200);
    assert_eq!(app.refresh(Some(&fresh.refresh)).await.status(), 200);
}

// The strength estimate runs off the executor.

#[tokio::test]
async fn crafted_slow_passwords_do_not_stall_the_server() {
    let app = spawn_app_with(|vars| {
        vars.insert("REGISTER_MAX_PER_ADDRESS".into(), "100000".into());
    })
    .await;
    // Every character has l33t readings: the estimator explores them all.
    let crafted: String = "4@8({[<3=6&1!|7+%$5724"
        .repeat(6)
        .chars()
        .take(128)
        .collect();
    let cores = std::thread::available_parallelism().map_or(2, usize::from);
    let flood = {
        let client = app.client.clone();
        let url = app.url("/api/v1/auth/register");
        tokio::spawn(async move {
            let requests = (0..4 * cores).map(|_| {
                let body = serde_json::json!({
                    "email": format!("slow-{}@example.com", uuid::Uuid::new_v4().simple()),
                    "password": crafted,
                });
                let request = client.post(url.clone()).json(&body).send();
                async move { request.await.unwrap().status().as_u16() }
            });
            futures_util::future::join_all(requests).await
        })
    };
    let mut slowest = Duration::ZERO;
    while !flood.is_finished() {
        let started = Instant::now();
        assert_eq!(app.get("/healthz").await.status(), 200);
        slowest = slowest.max(started.elapsed());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let statuses = flood.await.unwrap();

    assert!(
        statuses.iter().all(|s| *s == 201 || *s == 503),
        "{statuses:?}"
    );
    // On the executor, 4 x cores estimates of ~0.4 s each would hold
    // /healthz for well over a second.
    assert!(
        slowest < Duration::from_millis(800),
        "/healthz took {slowest:?} while the estimator ran"
    );
}

// Login CSRF.

async fn form_login(app: &TestApp, user: &TestUser, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut request = app.client.post(app.url("/api/v1/auth/login")).form(&[
        ("username", user.email.as_str()),
        ("password", user.password.as_str()),
    ]);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("request sent")
}

#[tokio::test]
async fn a_form_login_from_another_site_is_refused() {
    let app = spawn_app_with(|vars| {
        vars.insert(
            "PUBLIC_URL".into(),
            "https://app.example.com/account".into(),
        );
    })
    .await;
    let user = app.register_user().await;
    let own = format!("http://127.0.0.1:{}", app.port);

    for headers in [
        vec![("sec-fetch-site", "cross-site")],
        vec![("sec-fetch-site", "same-site")],
        vec![("origin", "https://evil.example")],
        vec![("origin", "null")],
        vec![
            ("sec-fetch-site", "same-origin"),
            ("origin", "https://app.example.com.evil.example"),
        ],
    ] {
        let response = form_login(&app, &user, &headers).await;
        assert!(
            response.headers().get("set-cookie").is_none(),
            "{headers:?}"
        );
        assert_problem(response, 403, "cross-site-login").await;
    }
    for headers in [
        vec![],
        vec![("origin", "https://app.example.com")],
        vec![("sec-fetch-site", "same-origin"), ("origin", own.as_str())],
        vec![("sec-fetch-site", "none")],
    ] {
        let response = form_login(&app, &user, &headers).await;
        assert_eq!(response.status(), 200, "{headers:?}");
    }
    // JSON logins cannot be sent by a plain cross-site form.
    let json = app
        .client
        .post(app.url("/api/v1/auth/login"))
        .header("sec-fetch-site", "cross-site")
        .json(&serde_json::json!({"email": user.email, "password": user.password}))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 200);
}
