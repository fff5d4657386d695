//! The attacker's side (CONTRACT.md, "Abuse limits and retention"): races,
//! floods, limits dodged by address, cross-site forms, links rebuilt from
//! what leaks, sessions that never end, and hashes that never improve.

use std::sync::{Arc, Mutex};
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

// 1. A login in progress must not survive a password change.

#[tokio::test]
async fn a_login_that_verified_a_replaced_password_gets_no_session() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let owner = app.login_user(&user).await;

    // The attacker's login stops right after its password check until the
    // owner's password change has committed.
    let paused = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let armed: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(Some(user.email.clone())));
    {
        let (paused, release, armed) = (paused.clone(), release.clone(), armed.clone());
        portcullis::services::seams::on_password_verified(move |email| {
            let hit = {
                let mut armed = armed.lock().unwrap();
                if armed.as_deref() == Some(email) {
                    armed.take()
                } else {
                    None
                }
            };
            let (paused, release) = (paused.clone(), release.clone());
            Box::pin(async move {
                if hit.is_some() {
                    paused.notify_one();
                    release.notified().await;
                }
            })
        });
    }
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

// 2. A flood of registrations must not starve other requests.

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

// 3 and 4. Per-address limits, IPv6 per /64.

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
    let db = app.database().await;
    let user_id = uuid::Uuid::parse_str(&user.id).unwrap();
    let old_sid = uuid::Uuid::parse_str(jwt_claims(&old.access)["sid"].as_str().unwrap()).unwrap();
    let (old_request, fresh_request) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let (old_job, fresh_job) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    db.batch_execute(&format!(
        "UPDATE sessions SET revoked_at = now() - interval '2 hours', revoked_reason = 'logout', \
             created_at = now() - interval '3 hours' WHERE id = '{old_sid}';
         UPDATE refresh_tokens SET created_at = now() - interval '3 hours' WHERE session_id = '{old_sid}';
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
    assert_eq!(count("SELECT count(*) FROM sessions").await, 1);
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

// 5. The strength estimate runs off the executor.

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

// 6. Login CSRF.

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

// 7. Reset links cannot be rebuilt from what leaks.

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

// 8. Deleting a session denylists it even when Redis failed the first try.

#[tokio::test]
async fn a_session_deleted_while_redis_refused_writes_dies_on_retry() {
    let redis = redis::Client::open(redis_url()).unwrap();
    let mut admin = redis.get_multiplexed_async_connection().await.unwrap();
    let acl_user = format!("portcullis-test-{}", uuid::Uuid::new_v4().simple());
    let _: () = redis::cmd("ACL")
        .arg(
            &[
                "SETUSER",
                &acl_user,
                "on",
                ">test-password",
                "~*",
                "&*",
                "+@all",
            ][..],
        )
        .query_async(&mut admin)
        .await
        .unwrap();
    let url = redis_url().replacen("redis://", &format!("redis://{acl_user}:test-password@"), 1);
    let app = spawn_app_with(|vars| {
        vars.insert("REDIS_URL".into(), url);
    })
    .await;
    let user = app.register_user().await;
    let mine = app.login_user(&user).await;
    let stolen = app.login_user(&user).await;
    let stolen_sid = jwt_claims(&stolen.access)["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    // Redis now answers reads (the per-request check) but refuses writes.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", &acl_user, "-setex"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    let failed = app.delete_session(&mine.access, &stolen_sid).await;
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", &acl_user, "+setex"][..])
        .query_async(&mut admin)
        .await
        .unwrap();
    let retried = app.delete_session(&mine.access, &stolen_sid).await;
    let stolen_me = app.me(&stolen.access).await;
    let _: () = redis::cmd("ACL")
        .arg(&["DELUSER", &acl_user][..])
        .query_async(&mut admin)
        .await
        .unwrap();

    assert_problem(failed, 503, "dependency-unavailable").await;
    assert_eq!(retried.status(), 204);
    assert_eq!(
        stolen_me.status(),
        401,
        "the deleted session's token is dead"
    );
}

// 9. Sessions end, however often they are refreshed.

#[tokio::test]
async fn refreshing_never_extends_a_session_past_its_lifetime() {
    let app = spawn_app_with(|vars| {
        vars.insert("SESSION_MAX_LIFETIME_SECONDS".into(), "3".into());
    })
    .await;
    let user = app.register_user().await;
    let mut tokens = app.login_user(&user).await;

    for _ in 0..2 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        tokens = tokens_of(app.refresh(Some(&tokens.refresh)).await).await;
    }
    let db = app.database().await;
    let capped: bool = db
        .query_one(
            "SELECT bool_and(t.expires_at <= s.created_at + interval '3 seconds') \
             FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    tokio::time::sleep(Duration::from_millis(3000)).await;
    let late = app.refresh(Some(&tokens.refresh)).await;

    assert!(capped, "no refresh token outlives its session's lifetime");
    assert_problem(late, 401, "invalid-refresh-token").await;
}

// 10. Old hashes are upgraded.

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
