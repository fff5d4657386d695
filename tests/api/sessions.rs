//! /api/v1/users/me/sessions: list and delete.

use crate::helpers::*;

#[tokio::test]
async fn sessions_lists_live_sessions_and_marks_the_current_one() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let mine = app.login_user(&user).await;
    let other = app.login_user(&user).await;
    let ended = app.login_user(&user).await;
    assert_eq!(app.logout(&ended.access, None).await.status(), 204);

    let response = app.sessions(&mine.access).await;

    assert_eq!(response.status(), 200);
    let sessions = json_body(response).await;
    let sessions = sessions.as_array().expect("a bare array");
    assert_eq!(sessions.len(), 2);
    let mine_sid = jwt_claims(&mine.access)["sid"].clone();
    let other_sid = jwt_claims(&other.access)["sid"].clone();
    for session in sessions {
        assert_eq!(session["current"], session["id"] == mine_sid);
        assert!(session["created_at"].is_string());
        assert!(session["last_used_at"].is_string());
        assert!(session.get("user_agent").is_some());
    }
    assert!(sessions.iter().any(|s| s["id"] == other_sid));
}

#[tokio::test]
async fn deleting_a_session_ends_its_tokens_at_once() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let mine = app.login_user(&user).await;
    let other = app.login_user(&user).await;
    let other_sid = jwt_claims(&other.access)["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    let response = app.delete_session(&mine.access, &other_sid).await;

    assert_eq!(response.status(), 204);
    assert_eq!(app.me(&other.access).await.status(), 401);
    assert_eq!(app.refresh(Some(&other.refresh)).await.status(), 401);
    assert_eq!(app.me(&mine.access).await.status(), 200);
    // It is gone: a second delete finds nothing.
    assert_problem(
        app.delete_session(&mine.access, &other_sid).await,
        404,
        "not-found",
    )
    .await;
}

#[tokio::test]
async fn another_users_session_or_a_bad_id_is_a_404() {
    let app = spawn_app().await;
    let alice = app.register_user().await;
    let bob = app.register_user().await;
    let alice_tokens = app.login_user(&alice).await;
    let bob_tokens = app.login_user(&bob).await;
    let bob_sid = jwt_claims(&bob_tokens.access)["sid"]
        .as_str()
        .unwrap()
        .to_owned();

    for id in [
        bob_sid.as_str(),
        "not-a-uuid",
        "00000000-0000-0000-0000-000000000000",
    ] {
        assert_problem(
            app.delete_session(&alice_tokens.access, id).await,
            404,
            "not-found",
        )
        .await;
    }
    assert_eq!(app.me(&bob_tokens.access).await.status(), 200);
}

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
