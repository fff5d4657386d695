//! POST /api/v1/auth/refresh: rotation, reuse detection, the grace window,
//! and races between refreshes of one token.

use std::time::Duration;

use crate::helpers::*;

#[tokio::test]
async fn a_refresh_rotates_the_cookie_and_issues_a_working_access_token() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let first = app.login_user(&user).await;

    let response = app.refresh(Some(&first.refresh)).await;

    assert_eq!(response.headers()["cache-control"], "no-store");
    let second = tokens_of(response).await;
    assert_ne!(second.refresh, first.refresh);
    assert_ne!(second.access, first.access);
    assert_eq!(
        jwt_claims(&second.access)["sid"],
        jwt_claims(&first.access)["sid"]
    );
    assert_eq!(app.me(&second.access).await.status(), 200);
    // And the chain goes on.
    assert_eq!(app.refresh(Some(&second.refresh)).await.status(), 200);
}

#[tokio::test]
async fn a_missing_or_unknown_cookie_is_a_401() {
    let app = spawn_app().await;
    for cookie in [
        None,
        Some("garbage"),
        Some("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    ] {
        let response = app.refresh(cookie).await;
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
        assert_problem(response, 401, "invalid-refresh-token").await;
    }
}

#[tokio::test]
async fn an_expired_refresh_token_is_a_401() {
    let app = spawn_app_with(|vars| {
        vars.insert("REFRESH_TOKEN_TTL_SECONDS".into(), "1".into());
    })
    .await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;

    tokio::time::sleep(Duration::from_millis(1200)).await;

    assert_eq!(app.refresh(Some(&tokens.refresh)).await.status(), 401);
}

#[tokio::test]
async fn reuse_outside_the_grace_window_revokes_the_whole_family() {
    let app = spawn_app_with(|vars| {
        vars.insert("REFRESH_REUSE_GRACE_SECONDS".into(), "0".into());
    })
    .await;
    let user = app.register_user().await;
    let first = app.login_user(&user).await;
    let second = tokens_of(app.refresh(Some(&first.refresh)).await).await;
    let other_session = app.login_user(&user).await;

    let reuse = app.refresh(Some(&first.refresh)).await;

    assert_problem(reuse, 401, "invalid-refresh-token").await;
    // The newest token of that family and its access tokens are dead too.
    assert_eq!(app.refresh(Some(&second.refresh)).await.status(), 401);
    assert_eq!(app.me(&second.access).await.status(), 401);
    assert_eq!(app.me(&first.access).await.status(), 401);
    // Another session of the same user is untouched.
    assert_eq!(app.me(&other_session.access).await.status(), 200);
    assert_eq!(
        app.refresh(Some(&other_session.refresh)).await.status(),
        200
    );
}

#[tokio::test]
async fn reuse_within_the_grace_window_gets_a_token_of_the_same_family() {
    let app = spawn_app().await; // grace 10 s by default
    let user = app.register_user().await;
    let first = app.login_user(&user).await;
    let rotated = tokens_of(app.refresh(Some(&first.refresh)).await).await;

    let again = tokens_of(app.refresh(Some(&first.refresh)).await).await;

    assert_eq!(
        jwt_claims(&again.access)["sid"],
        jwt_claims(&first.access)["sid"]
    );
    // Both the first successor and the grace token stay valid.
    assert_eq!(app.me(&rotated.access).await.status(), 200);
    assert_eq!(app.refresh(Some(&rotated.refresh)).await.status(), 200);
    assert_eq!(app.refresh(Some(&again.refresh)).await.status(), 200);
}

#[tokio::test]
async fn reuse_after_the_grace_window_is_reuse() {
    let app = spawn_app_with(|vars| {
        vars.insert("REFRESH_REUSE_GRACE_SECONDS".into(), "1".into());
    })
    .await;
    let user = app.register_user().await;
    let first = app.login_user(&user).await;
    let rotated = tokens_of(app.refresh(Some(&first.refresh)).await).await;

    tokio::time::sleep(Duration::from_millis(1300)).await;

    assert_eq!(app.refresh(Some(&first.refresh)).await.status(), 401);
    assert_eq!(app.refresh(Some(&rotated.refresh)).await.status(), 401);
}

async fn race(app: &TestApp, token: &str, n: usize) -> Vec<reqwest::Response> {
    let refreshes = (0..n).map(|_| app.refresh(Some(token)));
    futures_util::future::join_all(refreshes).await
}

async fn outcome_count(app: &TestApp, outcome: &str) -> u64 {
    let text = app.get("/metrics").await.text().await.unwrap();
    let prefix = format!("auth_refresh_total{{outcome=\"{outcome}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .map_or(0, |v| v.trim().parse().unwrap())
}

#[tokio::test]
async fn racing_refreshes_with_grace_rotate_once_and_all_succeed() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    for _ in 0..10 {
        let tokens = app.login_user(&user).await;
        let success_before = outcome_count(&app, "success").await;
        let grace_before = outcome_count(&app, "grace").await;

        let responses = race(&app, &tokens.refresh, 6).await;

        let mut issued = Vec::new();
        for response in responses {
            issued.push(tokens_of(response).await);
        }
        assert_eq!(outcome_count(&app, "success").await - success_before, 1);
        assert_eq!(outcome_count(&app, "grace").await - grace_before, 5);
        // Every token issued stays usable.
        for tokens in &issued {
            assert_eq!(app.me(&tokens.access).await.status(), 200);
        }
    }
}

#[tokio::test]
async fn racing_refreshes_without_grace_rotate_once_and_revoke_the_family() {
    let app = spawn_app_with(|vars| {
        vars.insert("REFRESH_REUSE_GRACE_SECONDS".into(), "0".into());
    })
    .await;
    let user = app.register_user().await;
    for _ in 0..10 {
        let tokens = app.login_user(&user).await;

        let responses = race(&app, &tokens.refresh, 6).await;

        let mut winners = Vec::new();
        let mut losers = 0;
        for response in responses {
            match response.status().as_u16() {
                200 => winners.push(tokens_of(response).await),
                401 => losers += 1,
                other => panic!("unexpected status {other}"),
            }
        }
        assert_eq!(winners.len(), 1);
        assert_eq!(losers, 5);
        // The reuse revoked the family, the winner's successor included.
        assert_eq!(app.refresh(Some(&winners[0].refresh)).await.status(), 401);
        assert_eq!(app.me(&winners[0].access).await.status(), 401);
    }
}

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

#[tokio::test]
async fn a_refresh_updates_no_indexed_column_of_its_session() {
    // Every refresh moves its session's expiry and last use. With either
    // column in an index (as a key, an expression or a predicate), no such
    // update could be HOT: each refresh would add an entry to every index of
    // sessions and leave a dead row version behind.
    let app = spawn_app().await;
    app.register_user().await;
    let db = app.database().await;
    let indexed: Vec<String> = db
        .query(
            "SELECT i.indexrelid::regclass::text FROM pg_index i \
             WHERE i.indrelid = 'sessions'::regclass AND ( \
               EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = i.indrelid \
                 AND a.attnum = ANY (i.indkey) AND a.attname IN ('expires_at', 'last_used_at')) \
               OR pg_get_expr(i.indexprs, i.indrelid) ~ '(expires_at|last_used_at)' \
               OR pg_get_expr(i.indpred, i.indrelid) ~ '(^|[^x_])(expires_at|last_used_at)')",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert!(
        indexed.is_empty(),
        "indexes on what a refresh writes: {indexed:?}"
    );
}
