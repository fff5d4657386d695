//! The shared layers around a test router: panics, timeouts and streamed
//! bodies need handlers the API does not have, so these tests serve the real
//! layers and server with routes of their own.

use std::time::Duration;

use http::{Method, StatusCode};
use portcullis::http::router::{Router, handler};
use portcullis::http::{ApiError, Request, Response, empty};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_util::sync::CancellationToken;

use crate::helpers::assert_problem;

pub struct TestServer {
    pub address: String,
    pub port: u16,
    pub shutdown: CancellationToken,
    pub server: tokio::task::JoinHandle<()>,
}

async fn panics(_: (), _: Request) -> Result<Response, ApiError> {
    panic!("deliberate test panic");
}

async fn sleeps(_: (), _: Request) -> Result<Response, ApiError> {
    tokio::time::sleep(Duration::from_millis(800)).await;
    Ok(empty(StatusCode::NO_CONTENT))
}

async fn reads_body(_: (), request: Request) -> Result<Response, ApiError> {
    let body = portcullis::http::extract::read_body(request.into_body()).await?;
    Ok(http::Response::new(body.into()))
}

/// Serves a router with test routes through the real layers and server.
pub async fn spawn_test_server(timeout: Duration) -> TestServer {
    crate::helpers::init_test_logging();
    let router = Router::new()
        .route(Method::GET, "/panic", handler((), panics))
        .route(Method::GET, "/slow", handler((), sleeps))
        .route(Method::POST, "/echo", handler((), reads_body));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(portcullis::http::server::serve(
        listener,
        portcullis::http::service(router, timeout),
        shutdown.clone(),
        Duration::from_secs(5),
    ));
    TestServer {
        address: format!("http://127.0.0.1:{port}"),
        port,
        shutdown,
        server,
    }
}

#[tokio::test]
async fn a_panicking_handler_becomes_a_500_problem_and_the_server_lives_on() {
    let server = spawn_test_server(Duration::from_secs(5)).await;
    let client = reqwest::Client::new();

    let response = client
        .get(format!("{}/panic", server.address))
        .send()
        .await
        .unwrap();

    let body = assert_problem(response, 500, "internal-error").await;
    assert!(!body.to_string().contains("deliberate"));
    let again = client
        .get(format!("{}/panic", server.address))
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 500);
}

#[tokio::test]
async fn a_request_over_its_time_limit_is_a_503_problem() {
    let server = spawn_test_server(Duration::from_millis(100)).await;

    let response = reqwest::get(format!("{}/slow", server.address))
        .await
        .unwrap();

    assert_problem(response, 503, "request-timeout").await;
}

#[tokio::test]
async fn a_body_within_the_limit_is_read() {
    let server = spawn_test_server(Duration::from_secs(5)).await;

    let response = reqwest::Client::new()
        .post(format!("{}/echo", server.address))
        .body(vec![b'a'; 65_536])
        .send()
        .await
        .unwrap();

    assert_eq!(response.status(), 200);
    assert_eq!(response.bytes().await.unwrap().len(), 65_536);
}

#[tokio::test]
async fn a_chunked_body_over_the_limit_is_a_413_problem() {
    let server = spawn_test_server(Duration::from_secs(5)).await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", server.port))
        .await
        .unwrap();
    let mut request = b"POST /echo HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
    let chunk = vec![b'a'; 4096];
    for _ in 0..17 {
        request.extend_from_slice(b"1000\r\n");
        request.extend_from_slice(&chunk);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");

    stream.write_all(&request).await.unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.unwrap();

    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("application/problem+json"));
    assert!(answer.contains("payload-too-large"));
}
