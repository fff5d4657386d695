use crate::helpers::*;

#[tokio::test]
async fn healthz_answers_ok() {
    let app = spawn_app().await;

    let response = app.get("/healthz").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "application/json");
    assert_eq!(
        json_body(response).await,
        serde_json::json!({"status": "ok"})
    );
}

#[tokio::test]
async fn readyz_is_ok_when_every_dependency_answers() {
    let app = spawn_app().await;
    app.wait_until_ready().await;

    let response = app.get("/readyz").await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["postgres"], "ok");
    assert_eq!(body["checks"]["redis"], "ok");
    assert_eq!(body["checks"]["rabbitmq"], "ok");
}

#[tokio::test]
async fn readyz_names_redis_when_it_does_not_answer() {
    let port = closed_port();
    let app = spawn_app_with(|vars| {
        vars.insert("REDIS_URL".into(), format!("redis://127.0.0.1:{port}"));
    })
    .await;

    let response = app.get("/readyz").await;

    let body = assert_problem(response, 503, "not-ready").await;
    assert_eq!(body["checks"]["redis"], "unavailable");
    assert_eq!(body["checks"]["postgres"], "ok");
    assert!(body["detail"].as_str().unwrap().contains("redis"));
}

#[tokio::test]
async fn the_api_serves_while_rabbitmq_is_down_and_readyz_names_it() {
    let port = closed_port();
    let app = spawn_app_with(|vars| {
        vars.insert(
            "AMQP_URL".into(),
            format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        );
    })
    .await;
    assert_eq!(app.get("/healthz").await.status(), 200);

    let response = app.get("/readyz").await;

    let body = assert_problem(response, 503, "not-ready").await;
    assert_eq!(body["checks"]["rabbitmq"], "unavailable");
    assert_eq!(body["checks"]["redis"], "ok");
    assert!(body["detail"].as_str().unwrap().contains("rabbitmq"));
}
