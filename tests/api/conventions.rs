//! CONTRACT.md, "HTTP conventions".

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::helpers::*;

#[tokio::test]
async fn an_unknown_path_is_a_404_problem() {
    let app = spawn_app().await;

    let response = app.get("/no/such/thing").await;

    assert_problem(response, 404, "not-found").await;
}

#[tokio::test]
async fn a_wrong_method_is_a_405_problem_with_allow() {
    let app = spawn_app().await;

    let response = app.client.delete(app.url("/healthz")).send().await.unwrap();

    assert_eq!(response.headers()["allow"], "GET, HEAD");
    assert_problem(response, 405, "method-not-allowed").await;
}

#[tokio::test]
async fn a_valid_correlation_id_is_kept() {
    let app = spawn_app().await;
    let id = "client-req_42.a";

    let response = app
        .client
        .get(app.url("/healthz"))
        .header("X-Correlation-ID", id)
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["x-correlation-id"], id);
}

#[tokio::test]
async fn a_missing_or_invalid_correlation_id_is_replaced_by_a_uuid_v4() {
    let app = spawn_app().await;
    for sent in [
        None,
        Some("has spaces in it"),
        Some(&*"x".repeat(129)),
        Some("a/b"),
    ] {
        let mut request = app.client.get(app.url("/healthz"));
        if let Some(id) = sent {
            request = request.header("X-Correlation-ID", id);
        }

        let response = request.send().await.unwrap();

        let returned = response.headers()["x-correlation-id"].to_str().unwrap();
        assert_ne!(Some(returned), sent);
        let uuid = uuid::Uuid::parse_str(returned).expect("a UUID");
        assert_eq!(uuid.get_version_num(), 4);
    }
}

#[tokio::test]
async fn errors_echo_the_correlation_id_in_header_and_body() {
    let app = spawn_app().await;

    let response = app
        .client
        .get(app.url("/missing"))
        .header("X-Correlation-ID", "trace-me-1")
        .send()
        .await
        .unwrap();

    assert_eq!(response.headers()["x-correlation-id"], "trace-me-1");
    let body = assert_problem(response, 404, "not-found").await;
    assert_eq!(body["correlation_id"], "trace-me-1");
}

#[tokio::test]
async fn every_response_carries_nosniff() {
    let app = spawn_app().await;
    for path in ["/healthz", "/missing", "/metrics", "/openapi.json"] {
        let response = app.get(path).await;
        assert_eq!(
            response.headers()["x-content-type-options"],
            "nosniff",
            "{path}"
        );
    }
}

#[tokio::test]
async fn a_declared_oversize_body_is_a_413_problem_that_closes_the_connection() {
    let app = spawn_app().await;

    let response = app
        .client
        .post(app.url("/healthz"))
        .header("content-type", "application/json")
        .body(vec![b' '; 65_537])
        .send()
        .await
        .unwrap();

    // Too much to read just to keep the connection: the client is told.
    assert_eq!(response.headers()["connection"], "close");
    assert_problem(response, 413, "payload-too-large").await;
}

#[tokio::test]
async fn head_is_answered_where_get_is() {
    let app = spawn_app().await;

    let response = app.client.head(app.url("/healthz")).send().await.unwrap();

    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn a_malformed_request_line_does_not_hurt_the_server() {
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();

    stream.write_all(b"NOT HTTP AT ALL\r\n\r\n").await.unwrap();
    let mut buffer = Vec::new();
    let _ = stream.read_to_end(&mut buffer).await;

    assert_eq!(app.get("/healthz").await.status(), 200);
}

#[tokio::test]
async fn a_json_array_is_not_an_object_and_gets_a_422() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    let email = app.unique_email();

    let register = app
        .post_json(
            "/api/v1/auth/register",
            &serde_json::json!([email, STRONG_PASSWORD, null]),
        )
        .await;
    let login = app
        .post_json(
            "/api/v1/auth/login",
            &serde_json::json!([user.email, user.password]),
        )
        .await;
    let patch = app
        .patch_me(&tokens.access, &serde_json::json!([null]))
        .await;

    for response in [register, login, patch] {
        assert_problem(response, 422, "validation-error").await;
    }
    let me = json_body(app.me(&tokens.access).await).await;
    assert_eq!(me["email"], user.email);
}

/// Reads one response (head and a `Content-Length` body) off `stream`:
/// its status line, or `None` if the server closed the connection first.
async fn read_response(stream: &mut tokio::net::TcpStream) -> Option<String> {
    let mut received = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .map_or(0, |value| value.trim().parse().unwrap());
    while received.len() < head_end + length {
        let n = stream.read(&mut chunk).await.unwrap_or(0);
        if n == 0 {
            return None;
        }
        received.extend_from_slice(&chunk[..n]);
    }
    Some(head.lines().next().unwrap_or_default().to_owned())
}

#[tokio::test]
async fn a_request_refused_before_its_body_arrived_leaves_the_connection_usable() {
    let app = spawn_app().await;
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let body = r#"{"current_password":"correct horse battery staple","new_password":"a new long passphrase"}"#;
    let head = format!(
        "POST /api/v1/users/me/password HTTP/1.1\r\nHost: portcullis\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );

    // The head first, the body a moment later, as many clients send them:
    // the 401 is decided before the body is there.
    stream.write_all(head.as_bytes()).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    stream.write_all(body.as_bytes()).await.unwrap();
    let first = read_response(&mut stream).await;
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: portcullis\r\n\r\n")
        .await
        .unwrap();
    let second = read_response(&mut stream).await;

    assert_eq!(first.as_deref(), Some("http/1.1 401 unauthorized"));
    assert_eq!(
        second.as_deref(),
        Some("http/1.1 200 ok"),
        "the kept-alive connection answers the next request"
    );
}
