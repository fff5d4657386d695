//! Graceful shutdown: stop accepting, finish what is in flight.

use std::time::Duration;

use crate::helpers::*;
use crate::layers::spawn_test_server;

#[tokio::test]
async fn shutdown_lets_an_in_flight_request_finish_then_refuses_new_connections() {
    let server = spawn_test_server(Duration::from_secs(5)).await;
    let url = format!("{}/slow", server.address);
    let in_flight = tokio::spawn(async move { reqwest::get(url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;

    server.shutdown.cancel();
    let response = in_flight
        .await
        .unwrap()
        .expect("the in-flight request is answered");

    assert_eq!(response.status(), 204);
    tokio::time::timeout(Duration::from_secs(5), server.server)
        .await
        .expect("the server returns once drained")
        .unwrap();
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", server.port))
            .await
            .is_err(),
        "the listener is closed"
    );
}

#[tokio::test]
async fn run_api_returns_cleanly_when_asked_to_stop() {
    let mut app = spawn_app().await;
    assert_eq!(app.get("/healthz").await.status(), 200);

    app.stop().await.expect("run_api returns Ok");

    assert!(app.client.get(app.url("/healthz")).send().await.is_err());
}
