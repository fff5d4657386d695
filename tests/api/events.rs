//! CONTRACT.md, "Security events and webhooks": each action writes its
//! event, read back through `GET /api/v1/users/me/events`.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;

impl TestApp {
    async fn events_page(&self, access: &str, query: &str) -> reqwest::Response {
        self.client
            .get(self.url(&format!("/api/v1/users/me/events{query}")))
            .bearer_auth(access)
            .send()
            .await
            .unwrap()
    }

    /// Every event of the caller, page by page.
    async fn all_events(&self, access: &str) -> Vec<Value> {
        let mut events = Vec::new();
        let mut query = "?limit=100".to_owned();
        loop {
            let response = self.events_page(access, &query).await;
            assert_eq!(response.status(), 200);
            let page = json_body(response).await;
            events.extend(page["events"].as_array().unwrap().iter().cloned());
            match page["next_cursor"].as_str() {
                Some(cursor) => query = format!("?limit=100&cursor={cursor}"),
                None => return events,
            }
        }
    }
}

fn types_of(events: &[Value]) -> HashSet<String> {
    events
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn each_action_writes_its_event_and_the_owner_reads_it_back() {
    let app = spawn_app_with(|vars| {
        vars.insert("REFRESH_REUSE_GRACE_SECONDS".into(), "0".into());
    })
    .await;
    let _worker = app.spawn_worker().await;
    let mut user = app.register_user().await;
    let token = app.verify_token(&user.email, VERIFY_SUBJECT, 1).await;
    assert_eq!(app.confirm_verification(&token).await.status(), 204);
    assert_eq!(
        app.login(&user.email, "not the password at all")
            .await
            .status(),
        401
    );
    let first = app.login_user(&user).await;

    // A session revoked, a reused refresh token, a logout.
    let second = app.login_user(&user).await;
    let sessions = json_body(app.sessions(&first.access).await).await;
    let other = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["current"] == false)
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.delete_session(&first.access, &other).await.status(),
        204
    );
    let third = app.login_user(&user).await;
    assert_eq!(app.refresh(Some(&third.refresh)).await.status(), 200);
    assert_eq!(app.refresh(Some(&third.refresh)).await.status(), 401);
    let _ = second;
    let fourth = app.login_user(&user).await;
    assert_eq!(app.logout(&fourth.access, None).await.status(), 204);

    // A new address, a new password, a reset.
    let new_email = app.unique_email();
    let moved = app
        .change_email(&first.access, &user.password, &new_email)
        .await;
    assert_eq!(moved.status(), 202);
    let token = app.verify_token(&new_email, CHANGE_SUBJECT, 1).await;
    assert_eq!(app.confirm_verification(&token).await.status(), 204);
    user.email = new_email;
    let changed = app
        .change_password(&first.access, &user.password, OTHER_STRONG_PASSWORD)
        .await;
    assert_eq!(changed.status(), 204);
    user.password = OTHER_STRONG_PASSWORD.to_owned();
    let token = app.reset_token_for(&user).await;
    assert_eq!(
        app.confirm_reset(&token, STRONG_PASSWORD).await.status(),
        204
    );
    user.password = STRONG_PASSWORD.to_owned();

    // A second factor: on, a wrong code, a recovery code, off.
    let access = app.login_user(&user).await.access;
    let enrolment = json_body(app.enrol(&access, &user.password).await).await;
    let secret = totp_rs::Secret::try_from_base32(enrolment["secret"].as_str().unwrap())
        .unwrap()
        .to_vec();
    let confirmed = json_body(app.confirm_mfa(&access, &code(&secret, now() - 30)).await).await;
    let recovery = confirmed["recovery_codes"][0].as_str().unwrap().to_owned();
    let mfa_token = app.mfa_token(&user).await;
    let wrong = app
        .login_mfa(json!({"mfa_token": mfa_token, "code": wrong_code(&secret)}))
        .await;
    assert_eq!(wrong.status(), 401);
    let by_recovery = app
        .login_mfa(json!({"mfa_token": app.mfa_token(&user).await, "recovery_code": recovery}))
        .await;
    let access = tokens_of(by_recovery).await.access;
    let disabled = app
        .bearer_json(
            reqwest::Method::DELETE,
            "/api/v1/users/me/mfa/totp",
            &access,
            json!({"current_password": user.password, "code": code(&secret, now())}),
        )
        .await;
    assert_eq!(disabled.status(), 204);
    assert_eq!(app.logout_all(&access).await.status(), 204);

    let access = app.login_user(&user).await.access;
    let events = app.all_events(&access).await;

    let expected = [
        "account.registered",
        "account.email_verified",
        "session.login_failed",
        "session.login_succeeded",
        "session.revoked",
        "session.reuse_detected",
        "session.logged_out",
        "account.email_change_requested",
        "account.email_changed",
        "account.password_changed",
        "account.password_reset_requested",
        "account.password_reset",
        "mfa.enabled",
        "mfa.recovery_code_used",
        "mfa.disabled",
        "session.logged_out_all",
    ];
    let seen = types_of(&events);
    for kind in expected {
        assert!(seen.contains(kind), "no {kind} in {seen:?}");
    }
    let reasons: HashSet<&str> = events
        .iter()
        .filter(|e| e["type"] == "session.login_failed")
        .map(|e| e["details"]["reason"].as_str().unwrap())
        .collect();
    assert_eq!(reasons, HashSet::from(["wrong_password", "wrong_code"]));
    let newest = &events[0];
    assert_eq!(newest["type"], "session.login_succeeded");
    assert_eq!(newest["outcome"], "success");
    assert_eq!(newest["user_id"], user.id.as_str());
    assert_eq!(newest["client"]["address"], "127.0.0.1");
    assert_eq!(newest["actor"], json!({"kind": "user", "name": null}));
    assert!(newest["session_id"].is_string());
    let occurred = newest["occurred_at"].as_str().unwrap();
    assert_eq!(
        occurred.len(),
        "2026-12-04T13:00:00.000000Z".len(),
        "{occurred}"
    );
    let dump = serde_json::to_string(&events).unwrap();
    for secret in [STRONG_PASSWORD, OTHER_STRONG_PASSWORD, &access, &recovery] {
        assert!(!dump.contains(secret), "a secret in the events");
    }
}

#[tokio::test]
async fn pages_are_newest_first_and_an_event_written_meanwhile_moves_none() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    for _ in 0..4 {
        app.login(&user.email, "not the password at all").await;
    }
    let access = app.login_user(&user).await.access;
    // registered, four failures, one login: six events.
    let first = json_body(app.events_page(&access, "?limit=4").await).await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    app.login(&user.email, "not the password at all").await;
    let second = json_body(
        app.events_page(&access, &format!("?limit=4&cursor={cursor}"))
            .await,
    )
    .await;

    let ids: Vec<&str> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["events"].as_array().unwrap())
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 6, "{ids:?}");
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        6,
        "no event twice"
    );
    assert!(second["next_cursor"].is_null(), "the last page");
    let times: Vec<&str> = first["events"]
        .as_array()
        .unwrap()
        .iter()
        .chain(second["events"].as_array().unwrap())
        .map(|e| e["occurred_at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    assert_eq!(times, sorted, "newest first");
    assert_eq!(
        second["events"].as_array().unwrap().last().unwrap()["type"],
        "account.registered"
    );
}

#[tokio::test]
async fn a_bad_limit_or_cursor_is_a_422_and_a_missing_token_a_401() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let access = app.login_user(&user).await.access;

    for query in [
        "?limit=0",
        "?limit=101",
        "?limit=ten",
        "?limit=-1",
        "?cursor=not-a-cursor",
        "?cursor=MTIzLm5vdC1hLXV1aWQ",
    ] {
        let response = app.events_page(&access, query).await;
        assert_problem(response, 422, "validation-error").await;
    }
    assert_eq!(app.events_page(&access, "?limit=100").await.status(), 200);
    let anonymous = app
        .client
        .get(app.url("/api/v1/users/me/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(anonymous.status(), 401);
}

#[tokio::test]
async fn a_user_sees_only_their_own_events_and_an_unknown_email_writes_none() {
    let app = spawn_app().await;
    let mine = app.register_user().await;
    let theirs = app.register_user().await;
    app.login(&theirs.email, "not the password at all").await;
    app.login(&app.unique_email(), "not the password at all")
        .await;
    let access = app.login_user(&mine).await.access;

    let events = app.all_events(&access).await;

    assert_eq!(
        types_of(&events),
        HashSet::from([
            "account.registered".to_owned(),
            "session.login_succeeded".to_owned()
        ])
    );
    let total: i64 = app
        .database()
        .await
        .query_one("SELECT count(*) FROM security_events", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        total, 4,
        "two registrations, a failure, a login; none for the unknown email"
    );
}

#[tokio::test]
async fn the_wrong_guess_that_locks_the_account_writes_limit_account_locked_once_then_failures_are_locked()
 {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "3".into());
    })
    .await;
    let user = app.register_user().await;
    let access = app.login_user(&user).await.access;
    // A wrong re-check, a wrong login, then the wrong login that fills the
    // count; the refused one after it locks nothing more.
    let wrong = app
        .change_password(&access, "not the password at all", OTHER_STRONG_PASSWORD)
        .await;
    assert_eq!(wrong.status(), 400);
    for _ in 0..2 {
        app.login(&user.email, "not the password at all").await;
    }
    assert_eq!(app.login(&user.email, &user.password).await.status(), 429);

    let rows: Vec<(String, Option<String>)> = app
        .database()
        .await
        .query(
            "SELECT type, details->>'reason' FROM security_events \
             WHERE type LIKE 'limit.%' OR type = 'session.login_failed' ORDER BY occurred_at",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    let failed = |reason: &str| ("session.login_failed".to_owned(), Some(reason.to_owned()));
    assert_eq!(
        rows,
        [
            failed("wrong_password"),
            failed("wrong_password"),
            ("limit.account_locked".to_owned(), None),
            failed("locked"),
        ]
    );
}

#[tokio::test]
async fn deleting_the_account_leaves_one_event_that_holds_no_address() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let access = app.login_user(&user).await.access;
    app.login(&user.email, "not the password at all").await;

    let deleted = app.delete_account(&access, &user.password).await;
    assert_eq!(deleted.status(), 204);

    let id: uuid::Uuid = user.id.parse().unwrap();
    let rows = app
        .database()
        .await
        .query(
            "SELECT type, details::text, coalesce(user_agent, '') FROM security_events WHERE user_id = $1",
            &[&id],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let (kind, details): (String, String) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(kind, "account.deleted");
    assert!(!details.contains(&user.email), "{details}");
}

#[tokio::test]
async fn every_event_type_is_counted_from_zero() {
    let app = spawn_app().await;
    let metrics = app.get("/metrics").await.text().await.unwrap();
    for kind in [
        "account.registered",
        "session.login_failed",
        "limit.cleared",
    ] {
        for outcome in ["success", "failure"] {
            let series = format!(r#"security_events_total{{type="{kind}",outcome="{outcome}"}} 0"#);
            assert!(metrics.contains(&series), "{series} missing");
        }
    }
}

/// A flood of attempts at a locked account writes one `locked` failure,
/// not a row per attempt: refusals cost the attacker nothing, so they must
/// cost the table nothing either.
#[tokio::test]
async fn a_flood_at_a_locked_account_writes_one_locked_failure() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "2".into());
    })
    .await;
    let user = app.register_user().await;
    for _ in 0..2 {
        app.login(&user.email, "not the password at all").await;
    }

    let statuses =
        statuses_of((0..30).map(|_| app.login(&user.email, "a guess at the password"))).await;

    assert_eq!(count_of(&statuses, 429), 30, "{statuses:?}");
    let locked: i64 = app
        .database()
        .await
        .query_one(
            "SELECT count(*) FROM security_events WHERE details->>'reason' = 'locked'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(locked, 1);
}
