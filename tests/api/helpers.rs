//! `spawn_app`: the real API, in-process, on a random port, with its own
//! database, queue names and Redis keys (STYLE.md, habits 1 and 2).

#![allow(dead_code)] // Not every test module uses every helper.

use std::collections::HashMap;
use std::sync::Arc;

use portcullis::config::{Config, LogFormat};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::common::*;

pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub config: Arc<Config>,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
    // Last, so the app is stopped before its database is dropped.
    pub resources: TestResources,
}

/// Logs stay silent unless `TEST_LOG` is set.
pub fn init_test_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        portcullis::telemetry::init_logging(LogFormat::Json, "info");
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `customise` has changed its environment.
pub async fn spawn_app_with(customise: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    init_test_logging();
    let resources = TestResources::create().await;
    let mut vars = resources.vars();
    customise(&mut vars);
    let config = Arc::new(Config::from_vars(vars).expect("test configuration is valid"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(portcullis::run_api(
        config.clone(),
        listener,
        shutdown.clone(),
    ));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        config,
        shutdown,
        server: Some(server),
        resources,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Waits until the broker connection is up (it is made in the background).
    pub async fn wait_until_ready(&self) {
        for _ in 0..100 {
            if self.get("/readyz").await.status() == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the app never became ready");
    }

    /// Cancels the shutdown token and waits for `run_api` to return.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let server = self.server.take().expect("stopped once");
        tokio::time::timeout(std::time::Duration::from_secs(15), server)
            .await
            .expect("the app stops within its shutdown grace")
            .expect("the app task did not panic")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The JSON body of a response.
pub async fn json_body(response: reqwest::Response) -> serde_json::Value {
    let bytes = response.bytes().await.expect("body read");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
}

/// Asserts an RFC 9457 problem with `status` and `type` slug; returns its body.
pub async fn assert_problem(
    response: reqwest::Response,
    status: u16,
    kind: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let correlation_id = response.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = json_body(response).await;
    assert_eq!(
        body["type"],
        format!("https://portcullis.dev/problems/{kind}")
    );
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string());
    assert!(body["detail"].is_string());
    assert_eq!(body["correlation_id"], correlation_id);
    body
}
