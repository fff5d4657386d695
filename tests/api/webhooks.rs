//! CONTRACT.md, "Security events and webhooks": every event delivered to
//! the receiver, signed so that a Standard Webhooks library we did not
//! write verifies it, retried until the receiver takes it.

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;

use crate::helpers::*;

/// `whsec_` and the base64 of 32 bytes.
const SECRET: &str = "whsec_dGVzdHMtd2ViaG9vay1zZWNyZXQtMzItYnl0ZXMhIQ==";

/// One request the receiver got.
#[derive(Clone)]
struct Received {
    path: String,
    headers: http::HeaderMap,
    body: Bytes,
    answered: u16,
}

/// A webhook receiver on a random port that answers `status` (which a test
/// may change while it runs) and keeps every request.
struct Receiver {
    url: String,
    status: Arc<AtomicU16>,
    /// How long the receiver waits before it answers, in milliseconds.
    hang_ms: Arc<AtomicU64>,
    /// When set, the first attempt of every delivery gets a 500, and every
    /// attempt of a delivery whose body holds one of these texts.
    fail_first_and: Arc<Mutex<Option<Vec<String>>>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl Receiver {
    async fn start(status: u16) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let status = Arc::new(AtomicU16::new(status));
        let hang_ms = Arc::new(AtomicU64::new(0));
        let fail_first_and = Arc::new(Mutex::new(None::<Vec<String>>));
        let received = Arc::new(Mutex::new(Vec::<Received>::new()));
        let (answer, kept, hang, failing) = (
            status.clone(),
            received.clone(),
            hang_ms.clone(),
            fail_first_and.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (answer, kept, hang, failing) =
                    (answer.clone(), kept.clone(), hang.clone(), failing.clone());
                tokio::spawn(async move {
                    let service =
                        service_fn(move |request: http::Request<hyper::body::Incoming>| {
                            let (answer, kept, hang, failing) =
                                (answer.clone(), kept.clone(), hang.clone(), failing.clone());
                            async move {
                                let (parts, body) = request.into_parts();
                                let body = body.collect().await.unwrap().to_bytes();
                                let mut status = answer.load(Ordering::SeqCst);
                                if let Some(always) = failing.lock().unwrap().as_ref() {
                                    let text = String::from_utf8_lossy(&body);
                                    let id = &parts.headers["webhook-id"];
                                    let seen = kept
                                        .lock()
                                        .unwrap()
                                        .iter()
                                        .any(|r| r.headers["webhook-id"] == id);
                                    let fails = always.iter().any(|t| text.contains(t.as_str()));
                                    status = if seen && !fails { 200 } else { 500 };
                                }
                                kept.lock().unwrap().push(Received {
                                    path: parts.uri.path().to_owned(),
                                    headers: parts.headers,
                                    body,
                                    answered: status,
                                });
                                let wait = hang.load(Ordering::SeqCst);
                                if wait > 0 {
                                    tokio::time::sleep(Duration::from_millis(wait)).await;
                                }
                                let mut response = http::Response::new(Full::new(Bytes::new()));
                                *response.status_mut() =
                                    http::StatusCode::from_u16(status).unwrap();
                                if status == 302 {
                                    response.headers_mut().insert(
                                        http::header::LOCATION,
                                        http::HeaderValue::from_static("/elsewhere"),
                                    );
                                }
                                Ok::<_, Infallible>(response)
                            }
                        });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Self {
            url,
            status,
            hang_ms,
            fail_first_and,
            received,
        }
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until `count` distinct deliveries were answered 2xx.
    async fn delivered(&self, count: usize) -> Vec<Received> {
        for _ in 0..600 {
            let mut seen = HashSet::new();
            let delivered: Vec<Received> = self
                .received()
                .into_iter()
                .filter(|r| r.answered < 300)
                .filter(|r| seen.insert(r.headers["webhook-id"].clone()))
                .collect();
            if delivered.len() >= count {
                return delivered;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "{count} deliveries expected; got {} requests",
            self.received().len()
        );
    }
}

fn webhook_vars(receiver: &Receiver, extra: &[(&str, &str)]) -> HashMap<String, String> {
    let vars: HashMap<String, String> = [
        ("WEBHOOK_URL", receiver.url.as_str()),
        ("WEBHOOK_SECRET", SECRET),
        ("WEBHOOK_TIMEOUT_SECONDS", "5"),
    ]
    .into_iter()
    .chain(extra.iter().copied())
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    vars
}

/// The api and a worker, both with the webhook settings.
async fn spawn_with_webhook(receiver: &Receiver, extra: &[(&str, &str)]) -> (TestApp, TestWorker) {
    let vars = webhook_vars(receiver, extra);
    let app = spawn_app_with(|v| v.extend(vars.clone())).await;
    let worker = app.spawn_worker_with(|v| v.extend(vars)).await;
    (app, worker)
}

fn verify(delivery: &Received) -> Value {
    let webhook = standardwebhooks::Webhook::new(SECRET).unwrap();
    webhook
        .verify(&delivery.body, &delivery.headers)
        .expect("the Standard Webhooks library verifies the delivery");
    serde_json::from_slice(&delivery.body).unwrap()
}

#[tokio::test]
async fn every_event_is_delivered_signed_and_a_standard_library_verifies_it() {
    let receiver = Receiver::start(200).await;
    let (app, _worker) = spawn_with_webhook(&receiver, &[]).await;

    let user = app.register_user().await;
    app.login_user(&user).await;
    let deliveries = receiver.delivered(2).await;

    let mut types = HashSet::new();
    for delivery in &deliveries {
        let body = verify(delivery);
        assert_eq!(delivery.path, "/hook");
        assert_eq!(delivery.headers["content-type"], "application/json");
        assert_eq!(
            delivery.headers["webhook-id"],
            body["data"]["id"].as_str().unwrap()
        );
        assert_eq!(body["type"], body["data"]["type"]);
        assert_eq!(body["timestamp"], body["data"]["occurred_at"]);
        assert_eq!(body["data"]["user_id"], user.id.as_str());
        types.insert(body["type"].as_str().unwrap().to_owned());
        let text = String::from_utf8_lossy(&delivery.body);
        assert!(!text.contains(&user.password), "no secret in a delivery");
    }
    assert_eq!(
        types,
        HashSet::from([
            "account.registered".to_owned(),
            "session.login_succeeded".to_owned()
        ])
    );
    // The delivery and the user's own trail tell the same event.
    let access = app.login_user(&user).await.access;
    let trail = json_body(
        app.client
            .get(app.url("/api/v1/users/me/events?limit=100"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap(),
    )
    .await;
    let registered = deliveries
        .iter()
        .map(verify)
        .find(|b| b["type"] == "account.registered")
        .unwrap();
    let stored = trail["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["type"] == "account.registered")
        .unwrap();
    assert_eq!(&registered["data"], stored);
}

#[tokio::test]
async fn a_receiver_that_fails_for_a_while_gets_every_event_once_it_is_back() {
    let receiver = Receiver::start(500).await;
    let (app, worker) = spawn_with_webhook(&receiver, &[("WEBHOOK_RETRY_BASE_SECONDS", "1")]).await;
    let user = app.register_user().await;
    app.login_user(&user).await;
    app.login(&user.email, "not the password at all").await;

    // Down for a while: every event is tried, and tried again.
    for _ in 0..300 {
        let failed: HashSet<_> = receiver
            .received()
            .iter()
            .filter(|r| r.answered == 500)
            .map(|r| r.headers["webhook-id"].clone())
            .collect();
        if failed.len() == 3 && receiver.received().len() >= 6 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    receiver.status.store(200, Ordering::SeqCst);
    let delivered = receiver.delivered(3).await;

    assert_eq!(delivered.len(), 3);
    let all = receiver.received();
    for delivery in &delivered {
        verify(delivery);
        let attempts: Vec<&Received> = all
            .iter()
            .filter(|r| r.headers["webhook-id"] == delivery.headers["webhook-id"])
            .collect();
        assert!(attempts.len() >= 2, "retried with the same webhook-id");
        let signatures: HashSet<_> = attempts
            .iter()
            .map(|r| r.headers["webhook-signature"].clone())
            .collect();
        let timestamps: HashSet<_> = attempts
            .iter()
            .map(|r| r.headers["webhook-timestamp"].clone())
            .collect();
        assert!(
            signatures.len() > 1 && timestamps.len() > 1,
            "every attempt is signed afresh"
        );
    }
    let metrics = metric_at(
        &app.client,
        &worker.metrics_address,
        r#"webhook_deliveries_total{outcome="retried"}"#,
    )
    .await;
    assert!(metrics >= 3.0, "retries counted: {metrics}");
}

#[tokio::test]
async fn only_the_configured_types_are_delivered_and_a_redirect_is_never_followed() {
    let receiver = Receiver::start(302).await;
    let (app, worker) = spawn_with_webhook(
        &receiver,
        &[
            ("WEBHOOK_EVENT_TYPES", "session.login_failed"),
            ("WEBHOOK_MAX_ATTEMPTS", "2"),
            ("WEBHOOK_RETRY_BASE_SECONDS", "1"),
        ],
    )
    .await;
    let user = app.register_user().await;
    app.login_user(&user).await;
    app.login(&user.email, "not the password at all").await;

    let mut dead = 0.0;
    for _ in 0..300 {
        dead = metric_at(
            &app.client,
            &worker.metrics_address,
            r#"webhook_deliveries_total{outcome="dead_lettered"}"#,
        )
        .await;
        if dead >= 1.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert_eq!(dead, 1.0, "two redirects, then the dead letter queue");
    let received = receiver.received();
    assert_eq!(received.len(), 2, "two attempts, no more");
    for request in &received {
        assert_eq!(request.path, "/hook", "the redirect was not followed");
        assert_eq!(verify(request)["type"], "session.login_failed");
    }
}

/// Waits until some delivery was received `count` times; its requests.
async fn received_times(receiver: &Receiver, count: usize) -> Vec<Received> {
    for _ in 0..600 {
        let received = receiver.received();
        if let Some(first) = received.first() {
            let same: Vec<Received> = received
                .iter()
                .filter(|r| r.headers["webhook-id"] == first.headers["webhook-id"])
                .cloned()
                .collect();
            if same.len() >= count {
                return same;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no delivery received {count} times");
}

#[tokio::test]
async fn a_worker_killed_mid_delivery_leaves_it_to_the_next_with_the_same_webhook_id() {
    let receiver = Receiver::start(200).await;
    receiver.hang_ms.store(60_000, Ordering::SeqCst);
    let (app, mut first) =
        spawn_with_webhook(&receiver, &[("WEBHOOK_TIMEOUT_SECONDS", "120")]).await;
    app.register_user().await;
    received_times(&receiver, 1).await;

    // Stopped mid-delivery: the grace period passes, the delivery is
    // abandoned unacknowledged, and the broker hands it to the next worker.
    let _ = first.stop().await;
    receiver.hang_ms.store(0, Ordering::SeqCst);
    let vars = webhook_vars(&receiver, &[]);
    let _second = app.spawn_worker_with(|v| v.extend(vars)).await;
    let attempts = received_times(&receiver, 2).await;

    let body = verify(&attempts[1]);
    assert_eq!(body["type"], "account.registered");
    assert_eq!(
        attempts[0].body, attempts[1].body,
        "the same delivery, again"
    );
}

#[tokio::test]
async fn events_written_while_the_broker_is_away_are_all_delivered_once_it_is_back() {
    let proxy = TcpProxy::start(broker_address()).await;
    let port = proxy.port;
    let receiver = Receiver::start(200).await;
    let mut vars = webhook_vars(&receiver, &[]);
    vars.insert(
        "AMQP_URL".into(),
        format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
    );
    let app = spawn_app_with(|v| v.extend(vars.clone())).await;
    app.wait_until_ready().await;
    let _worker = app.spawn_worker_with(|v| v.extend(vars)).await;

    proxy.cut();
    for _ in 0..100 {
        if app.get("/readyz").await.status() == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut users = Vec::new();
    for _ in 0..5 {
        users.push(app.register_user().await.id);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        receiver.received().is_empty(),
        "nothing delivered meanwhile"
    );
    proxy.restore();
    let delivered = receiver.delivered(5).await;

    let registered: HashSet<String> = delivered
        .iter()
        .map(verify)
        .map(|body| body["data"]["user_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(registered, users.into_iter().collect::<HashSet<_>>());
}

#[tokio::test]
async fn a_delivery_waiting_long_never_holds_up_one_that_waits_less() {
    let receiver = Receiver::start(200).await;
    let (app, _worker) = spawn_with_webhook(
        &receiver,
        &[
            ("WEBHOOK_RETRY_BASE_SECONDS", "1"),
            ("WEBHOOK_EVENT_TYPES", "account.registered"),
        ],
    )
    .await;
    // The first account's delivery always fails: its waits grow 1, 2, 4,
    // 8 s. The second's fails once and must come back after 1 s, not
    // behind the first's 8 s.
    let first = app.unique_email();
    *receiver.fail_first_and.lock().unwrap() = Some(vec![]);
    let registered = app
        .register(&serde_json::json!({"email": first, "password": STRONG_PASSWORD}))
        .await;
    let first_id = json_body(registered).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    *receiver.fail_first_and.lock().unwrap() = Some(vec![first_id.clone()]);
    for _ in 0..300 {
        if receiver.received().len() >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        receiver.received().len(),
        4,
        "three retries of the first so far"
    );

    let second = app.register_user().await;
    let started = std::time::Instant::now();
    let mut delivered = false;
    while started.elapsed() < Duration::from_secs(6) {
        delivered = receiver
            .received()
            .iter()
            .any(|r| r.answered == 200 && String::from_utf8_lossy(&r.body).contains(&second.id));
        if delivered {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    assert!(
        delivered,
        "the second delivery came back after its own wait, not the first's"
    );
    let elapsed = started.elapsed();
    assert!(elapsed < Duration::from_secs(6), "{elapsed:?}");
}
