//! The admin API (CONTRACT.md, "Admin API"): its own listener, named keys
//! (none, revoked, read-only), every endpoint and its refusals, the events
//! that name the key, and disabling racing a login and a refresh.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

/// An admin key of the app, and requests made with it on the admin
/// listener.
struct Admin {
    client: reqwest::Client,
    base: String,
    key: String,
}

impl Admin {
    async fn of(app: &TestApp, name: &str, read_only: bool) -> Self {
        app.wait_until_ready().await;
        let pool = portcullis::db::create_pool(&app.config).unwrap();
        let client = pool.get().await.unwrap();
        let key = portcullis::services::admin_keys::create(&client, name, read_only)
            .await
            .unwrap();
        Self {
            client: app.client.clone(),
            base: app.admin_address.clone(),
            key,
        }
    }

    async fn send(&self, method: Method, path: &str, body: Option<Value>) -> reqwest::Response {
        let mut request = self
            .client
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        request.send().await.unwrap()
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.send(Method::GET, path, None).await
    }

    async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.send(Method::POST, path, Some(body)).await
    }

    async fn delete(&self, path: &str) -> reqwest::Response {
        self.send(Method::DELETE, path, None).await
    }

    async fn disable(&self, user_id: &str) -> reqwest::Response {
        self.post(
            &format!("/admin/v1/users/{user_id}/disable"),
            json!({"reason": "compromised"}),
        )
        .await
    }

    /// The user's events, newest first, as the admin sees them.
    async fn events(&self, user_id: &str) -> Vec<Value> {
        let response = self
            .get(&format!("/admin/v1/users/{user_id}/events?limit=100"))
            .await;
        assert_eq!(response.status(), 200);
        json_body(response).await["events"]
            .as_array()
            .unwrap()
            .clone()
    }
}

/// Every write of the admin API, on a user id.
fn writes(id: &str) -> Vec<(Method, String, Option<Value>)> {
    vec![
        (
            Method::POST,
            "/admin/v1/users".into(),
            Some(json!({"email": "invitee@example.com"})),
        ),
        (
            Method::POST,
            format!("/admin/v1/users/{id}/disable"),
            Some(json!({"reason": "x"})),
        ),
        (Method::POST, format!("/admin/v1/users/{id}/enable"), None),
        (Method::POST, format!("/admin/v1/users/{id}/logout"), None),
        (Method::DELETE, format!("/admin/v1/users/{id}/mfa"), None),
        (
            Method::POST,
            format!("/admin/v1/users/{id}/password-reset"),
            None,
        ),
        (Method::DELETE, format!("/admin/v1/users/{id}/limits"), None),
        (Method::DELETE, format!("/admin/v1/users/{id}"), None),
    ]
}

#[tokio::test]
async fn requests_need_a_live_key_and_a_read_only_key_only_reads() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let admin = Admin::of(&app, "ops", false).await;
    let reader = Admin::of(&app, "auditor", true).await;

    for key in [
        None,
        Some("not-a-key"),
        Some(&*format!("pcadm_{}", "A".repeat(43))),
    ] {
        let mut request = app
            .client
            .get(format!("{}/admin/v1/users", app.admin_address));
        if let Some(key) = key {
            request = request.bearer_auth(key);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_problem(response, 401, "unauthorized").await;
    }

    assert_eq!(reader.get("/admin/v1/users").await.status(), 200);
    assert_eq!(
        reader
            .get(&format!("/admin/v1/users/{}", user.id))
            .await
            .status(),
        200
    );
    for (method, path, body) in writes(&user.id) {
        let response = reader.send(method.clone(), &path, body).await;
        assert_problem(response, 403, "read-only-key").await;
    }
    // Nothing a refused write asked for happened.
    assert!(!app.login_user(&user).await.access.is_empty());

    // A revoked key stops working at once.
    assert_eq!(admin.get("/admin/v1/users").await.status(), 200);
    let pool = portcullis::db::create_pool(&app.config).unwrap();
    portcullis::services::admin_keys::revoke(&pool.get().await.unwrap(), "ops")
        .await
        .unwrap();
    assert_problem(admin.get("/admin/v1/users").await, 401, "unauthorized").await;
}

#[tokio::test]
async fn the_admin_api_lives_on_its_own_listener_only() {
    let app = spawn_app().await;
    let admin = Admin::of(&app, "ops", false).await;
    // The public listener has no admin path, key or not.
    for path in [
        "/admin/v1/users",
        "/admin/v1/users/00000000-0000-0000-0000-000000000000",
    ] {
        let response = app
            .client
            .get(app.url(path))
            .bearer_auth(&admin.key)
            .send()
            .await
            .unwrap();
        assert_problem(response, 404, "not-found").await;
    }
    // The admin listener has none of the public API.
    let response = admin.get("/api/v1/users/me").await;
    assert_problem(response, 404, "not-found").await;
    // Its own document and Swagger UI, and the conventions of the public one.
    let document = app
        .client
        .get(format!("{}/openapi.json", app.admin_address))
        .send()
        .await
        .unwrap();
    assert_eq!(document.status(), 200);
    let document = json_body(document).await;
    assert!(document["paths"]["/admin/v1/users"].is_object());
    assert!(document["paths"].get("/api/v1/auth/login").is_none());
    let docs = app
        .client
        .get(format!("{}/docs", app.admin_address))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), 200);
    let response = app
        .client
        .get(format!("{}/admin/v1/users", app.admin_address))
        .header("x-correlation-id", "admin-trace-1")
        .bearer_auth(&admin.key)
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-correlation-id"], "admin-trace-1");
    assert_eq!(response.headers()["x-content-type-options"], "nosniff");
    let public_doc = json_body(app.get("/openapi.json").await).await;
    assert!(
        public_doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .all(|path| !path.starts_with("/admin"))
    );
    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"route="/admin/v1/users""#),
        "the admin listener's requests are counted"
    );
}

#[tokio::test]
async fn users_are_found_by_prefix_and_state_a_page_at_a_time() {
    let app = spawn_app().await;
    let admin = Admin::of(&app, "ops", false).await;
    let tag = &uuid::Uuid::new_v4().simple().to_string()[..8];
    let mut ids = Vec::new();
    for n in 0..5 {
        let email = format!("find-{tag}-{n}@example.com");
        let response = app
            .register(&json!({"email": email, "password": STRONG_PASSWORD}))
            .await;
        assert_eq!(response.status(), 201);
        ids.push(json_body(response).await["id"].as_str().unwrap().to_owned());
    }
    // Someone else, whose address a LIKE wildcard would match.
    let other = app
        .register(&json!({"email": format!("findx{tag}@example.com"), "password": STRONG_PASSWORD}))
        .await;
    assert_eq!(other.status(), 201);
    let verified = TestUser {
        id: ids[1].clone(),
        email: format!("find-{tag}-1@example.com"),
        password: STRONG_PASSWORD.into(),
    };
    app.mark_verified(&verified).await;
    assert_eq!(admin.disable(&ids[3]).await.status(), 204);

    // Newest first, two a page, no user twice; case does not matter.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = format!("/admin/v1/users?email=FIND-{tag}&limit=2");
        if let Some(cursor) = &cursor {
            path.push_str(&format!("&cursor={cursor}"));
        }
        let page = json_body(admin.get(&path).await).await;
        let users = page["users"].as_array().unwrap();
        assert!(users.len() <= 2);
        seen.extend(users.iter().map(|u| u["id"].as_str().unwrap().to_owned()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, newest_first);

    let ids_of = |page: Value| -> Vec<String> {
        page["users"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let only = |path: String| {
        let admin = &admin;
        async move { ids_of(json_body(admin.get(&path).await).await) }
    };
    assert_eq!(
        only(format!("/admin/v1/users?email=find-{tag}&verified=true")).await,
        [ids[1].clone()]
    );
    assert_eq!(
        only(format!("/admin/v1/users?email=find-{tag}&disabled=true")).await,
        [ids[3].clone()]
    );
    assert_eq!(
        only(format!("/admin/v1/users?email=find-{tag}&mfa=true")).await,
        Vec::<String>::new()
    );
    assert_eq!(
        only(format!("/admin/v1/users?email=find_{tag}")).await,
        Vec::<String>::new()
    );
    let page = json_body(
        admin
            .get(&format!("/admin/v1/users?email=find-{tag}-3"))
            .await,
    )
    .await;
    let user = &page["users"][0];
    assert_eq!(user["disabled"], true);
    assert_eq!(user["disabled_reason"], "compromised");
    assert_eq!(user["active_sessions"], 0);
    assert_eq!(user["last_login_at"], Value::Null);

    for query in [
        "limit=0",
        "limit=101",
        "limit=ten",
        "verified=maybe",
        "cursor=garbage",
        "email=a%00b",
        "email=%1F",
    ] {
        let response = admin.get(&format!("/admin/v1/users?{query}")).await;
        assert_problem(response, 422, "validation-error").await;
    }
}

#[tokio::test]
async fn a_user_is_shown_with_sessions_and_factors_and_an_unknown_id_is_404() {
    let app = spawn_app().await;
    let admin = Admin::of(&app, "ops", false).await;
    let enrolled = app.enrolled_user().await;
    let user = &enrolled.user;
    let detail = json_body(admin.get(&format!("/admin/v1/users/{}", user.id)).await).await;
    assert_eq!(detail["email"], user.email);
    assert_eq!(detail["mfa_enabled"], true);
    assert_eq!(detail["factors"]["totp"], true);
    assert_eq!(detail["factors"]["passkeys"], 0);
    assert_eq!(detail["factors"]["recovery_codes_left"], 10);
    // The enrolling session is the live one; its login was recorded.
    assert_eq!(detail["active_sessions"], 1);
    assert_eq!(detail["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(detail["sessions"][0]["current"], false);
    assert!(detail["last_login_at"].is_string());

    for path in [
        "/admin/v1/users/00000000-0000-0000-0000-000000000000",
        "/admin/v1/users/not-a-uuid",
        "/admin/v1/users/00000000-0000-0000-0000-000000000000/events",
    ] {
        assert_problem(admin.get(path).await, 404, "not-found").await;
    }
    let unknown = "00000000-0000-0000-0000-000000000000";
    for (method, path, body) in writes(unknown).into_iter().skip(1) {
        let response = admin.send(method, &path, body).await;
        assert_problem(response, 404, "not-found").await;
    }
}

#[tokio::test]
async fn an_invitation_sets_the_first_password_and_verifies_the_address() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let admin = Admin::of(&app, "onboarding", false).await;
    let email = app.unique_email();
    let response = admin
        .post(
            "/admin/v1/users",
            json!({"email": format!("  {}  ", email.to_uppercase()), "full_name": "New Colleague"}),
        )
        .await;
    assert_eq!(response.status(), 201);
    let invited = json_body(response).await;
    assert_eq!(invited["email"], email);
    assert_eq!(invited["full_name"], "New Colleague");
    assert_eq!(invited["email_verified"], false);
    let id = invited["id"].as_str().unwrap().to_owned();

    // No password yet: a guess is a wrong password.
    assert_problem(
        app.login(&email, STRONG_PASSWORD).await,
        401,
        "invalid-credentials",
    )
    .await;
    // The address is taken, compared as at registration.
    let again = admin.post("/admin/v1/users", json!({"email": email})).await;
    assert_problem(again, 409, "email-taken").await;
    for body in [
        json!({"email": "not an email"}),
        json!({}),
        json!({"email": email, "role": "x"}),
    ] {
        assert_problem(
            admin.post("/admin/v1/users", body).await,
            422,
            "validation-error",
        )
        .await;
    }

    let invitation = &app.emails_to(&email, "You are invited", 1).await[0];
    assert!(
        invitation
            .raw
            .contains("An administrator made a Portcullis account")
    );
    assert!(
        invitation.raw.contains("72 hours"),
        "the invitation lives INVITE_TTL_SECONDS"
    );
    let token = invitation.reset_token().unwrap();
    assert_eq!(
        app.confirm_reset(&token, STRONG_PASSWORD).await.status(),
        204
    );
    let tokens = app.login(&email, STRONG_PASSWORD).await;
    let tokens = tokens_of(tokens).await;
    assert_eq!(jwt_claims(&tokens.access)["email_verified"], true);
    assert_eq!(
        app.confirm_reset(&token, OTHER_STRONG_PASSWORD)
            .await
            .status(),
        400
    );

    let events = admin.events(&id).await;
    let registered = events
        .iter()
        .find(|e| e["type"] == "account.registered")
        .unwrap();
    assert_eq!(
        registered["actor"],
        json!({"kind": "admin", "name": "onboarding"})
    );
    assert_eq!(registered["details"]["invited"], true);
    assert!(events.iter().any(|e| e["type"] == "account.email_verified"));
    // Accepting sends no "your password was reset" warning.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        read_emails(app.mail_dir())
            .iter()
            .all(|e| !e.subject().contains("password was reset")),
        "an accepted invitation is not a reset"
    );
}

#[tokio::test]
async fn a_disabled_account_keeps_no_session_and_signs_in_nowhere() {
    let app = spawn_app().await;
    let admin = Admin::of(&app, "security", false).await;
    let user = app.register_verified_user().await;
    let first = app.login_user(&user).await;
    let second = app.login_user(&user).await;

    assert_eq!(admin.disable(&user.id).await.status(), 204);
    for tokens in [&first, &second] {
        assert_eq!(app.me(&tokens.access).await.status(), 401);
        assert_eq!(app.refresh(Some(&tokens.refresh)).await.status(), 401);
    }
    // The right password: 403, after the same Argon2 work; a wrong one: 401.
    let refused = app.login(&user.email, &user.password).await;
    assert!(refresh_cookie_of(&refused).is_none());
    assert_problem(refused, 403, "account-disabled").await;
    assert_problem(
        app.login(&user.email, OTHER_STRONG_PASSWORD).await,
        401,
        "invalid-credentials",
    )
    .await;
    // No link is mailed: the request is answered as for anyone, and no job
    // is written.
    assert_eq!(app.request_reset(&user.email).await.status(), 202);
    assert_eq!(app.request_verification(&user.email).await.status(), 202);
    let jobs: i64 = app
        .database()
        .await
        .query_one(
            "SELECT count(*) FROM outbox WHERE queue IN ('email.password_reset', 'email.verification')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(jobs, 1, "only the registration's verification link");
    assert_problem(
        admin
            .post(
                &format!("/admin/v1/users/{}/password-reset", user.id),
                json!({}),
            )
            .await,
        409,
        "account-disabled",
    )
    .await;
    // Disabling again is allowed and keeps the first reason.
    let again = admin
        .post(
            &format!("/admin/v1/users/{}/disable", user.id),
            json!({"reason": "second"}),
        )
        .await;
    assert_eq!(again.status(), 204);
    for body in [
        json!({}),
        json!({"reason": ""}),
        json!({"reason": "x".repeat(501)}),
    ] {
        let response = admin
            .post(&format!("/admin/v1/users/{}/disable", user.id), body)
            .await;
        assert_problem(response, 422, "validation-error").await;
    }

    let enabled = admin
        .post(&format!("/admin/v1/users/{}/enable", user.id), json!({}))
        .await;
    assert_eq!(enabled.status(), 204);
    let after = app.login_user(&user).await;
    assert_eq!(app.me(&after.access).await.status(), 200);

    let events = admin.events(&user.id).await;
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "account.disabled").count(),
        1
    );
    let disabled = events
        .iter()
        .find(|e| e["type"] == "account.disabled")
        .unwrap();
    assert_eq!(disabled["details"]["reason"], "compromised");
    assert_eq!(
        disabled["actor"],
        json!({"kind": "admin", "name": "security"})
    );
    assert!(types.contains(&"account.enabled"));
    let failed = events
        .iter()
        .find(|e| e["type"] == "session.login_failed" && e["details"]["reason"] == "disabled");
    assert!(failed.is_some(), "{types:?}");
}

/// A login that checked the password before the account was disabled, and
/// refreshes racing the disabling, end with no session that works.
#[tokio::test]
async fn disabling_while_a_login_and_refreshes_are_in_flight_leaves_no_usable_session() {
    let app = spawn_app().await;
    let admin = Admin::of(&app, "security", false).await;
    let user = app.register_verified_user().await;
    let tokens = app.login_user(&user).await;

    let (paused, release) = hold_login_after_password_check(&user.email);
    let login = {
        let client = app.client.clone();
        let url = app.url("/api/v1/auth/login");
        let body = json!({"email": user.email, "password": user.password});
        tokio::spawn(async move { client.post(url).json(&body).send().await.unwrap() })
    };
    tokio::time::timeout(Duration::from_secs(10), paused.notified())
        .await
        .expect("the login reached its password check");

    // Refreshes of the live session race the disabling.
    let refreshes: Vec<_> = (0..8)
        .map(|_| {
            let client = app.client.clone();
            let url = app.url("/api/v1/auth/refresh");
            let cookie = format!("refresh_token={}", tokens.refresh);
            tokio::spawn(async move {
                client
                    .post(url)
                    .header("cookie", cookie)
                    .send()
                    .await
                    .unwrap()
            })
        })
        .collect();
    assert_eq!(admin.disable(&user.id).await.status(), 204);
    release.notify_one();

    let mut issued = Vec::new();
    let login = login.await.unwrap();
    assert!(
        matches!(login.status().as_u16(), 401 | 403),
        "{}",
        login.status()
    );
    assert!(refresh_cookie_of(&login).is_none());
    for refresh in refreshes {
        let response = refresh.await.unwrap();
        if response.status() == 200 {
            issued.push(tokens_of(response).await);
        }
    }
    issued.push(tokens);
    for tokens in &issued {
        assert_eq!(app.me(&tokens.access).await.status(), 401);
        assert_eq!(app.refresh(Some(&tokens.refresh)).await.status(), 401);
    }
    let live: i64 = app
        .database()
        .await
        .query_one(
            "SELECT count(*) FROM sessions WHERE revoked_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(live, 0);
}

#[tokio::test]
async fn logout_factors_reset_link_limits_and_deletion_act_as_the_user_would() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let admin = Admin::of(&app, "helpdesk", false).await;
    let enrolled = app.enrolled_user().await;
    let user = enrolled.user.clone();
    let id = user.id.clone();

    // Log out everywhere.
    let access = {
        let token = app.mfa_token(&user).await;
        let body = json!({"mfa_token": token, "recovery_code": enrolled.recovery_codes[0]});
        tokens_of(app.login_mfa(body).await).await.access
    };
    assert_eq!(app.me(&access).await.status(), 200);
    let response = admin
        .post(&format!("/admin/v1/users/{id}/logout"), json!({}))
        .await;
    assert_eq!(response.status(), 204);
    assert_eq!(app.me(&access).await.status(), 401);

    // Remove the factor: the password alone signs in, with a notice.
    assert_eq!(
        admin
            .delete(&format!("/admin/v1/users/{id}/mfa"))
            .await
            .status(),
        204
    );
    let tokens = app.login_user(&user).await;
    assert_eq!(jwt_claims(&tokens.access)["amr"], json!(["pwd"]));
    app.emails_to(&user.email, "Two-step sign-in was turned off", 1)
        .await;

    // A reset link, outside the per-email limit.
    for _ in 0..4 {
        let response = admin
            .post(&format!("/admin/v1/users/{id}/password-reset"), json!({}))
            .await;
        assert_eq!(response.status(), 202);
    }
    app.emails_to(&user.email, "Reset your password", 4).await;

    // Clear the failure count of a locked account.
    for _ in 0..10 {
        app.login(&user.email, OTHER_STRONG_PASSWORD).await;
    }
    assert_eq!(app.login(&user.email, &user.password).await.status(), 429);
    assert_eq!(
        admin
            .delete(&format!("/admin/v1/users/{id}/limits"))
            .await
            .status(),
        204
    );
    assert_eq!(app.login(&user.email, &user.password).await.status(), 200);

    let events = admin.events(&id).await;
    for kind in [
        "session.logged_out_all",
        "mfa.disabled",
        "account.password_reset_requested",
        "limit.cleared",
    ] {
        let event = events.iter().find(|e| e["type"] == kind);
        assert!(event.is_some(), "{kind} missing");
        assert_eq!(
            event.unwrap()["actor"],
            json!({"kind": "admin", "name": "helpdesk"}),
            "{kind}"
        );
    }

    // Delete: the account and its sessions are gone; the address may
    // register again.
    assert_eq!(
        admin
            .delete(&format!("/admin/v1/users/{id}"))
            .await
            .status(),
        204
    );
    assert_eq!(app.me(&tokens.access).await.status(), 401);
    assert_problem(
        admin.get(&format!("/admin/v1/users/{id}")).await,
        404,
        "not-found",
    )
    .await;
    app.emails_to(&user.email, "Your account was deleted", 1)
        .await;
    let deleted: Value = app
        .database()
        .await
        .query_one(
            "SELECT to_jsonb(e) FROM security_events e WHERE type = 'account.deleted'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(deleted["actor_kind"], "admin");
    assert_eq!(deleted["actor_name"], "helpdesk");
    let again = app
        .register(&json!({"email": user.email, "password": STRONG_PASSWORD}))
        .await;
    assert_eq!(again.status(), 201);
}
