//! The queue under faults: the broker away while requests arrive, the
//! worker killed mid-batch, jobs that always fail, duplicates, garbage.

use std::collections::HashSet;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use lapin::options::{
    BasicGetOptions, BasicPublishOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use portcullis::messaging::Topology;
use portcullis::messaging::topology::JobQueue;

use crate::helpers::*;

const RESET_SUBJECT: &str = "Reset your password";

async fn channel() -> (Connection, Channel) {
    let connection = Connection::connect(&amqp_url(), ConnectionProperties::default())
        .await
        .unwrap();
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

/// The queue as the broker sees it now, if it exists.
async fn inspect(channel: &Channel, queue: &str) -> Option<lapin::Queue> {
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    channel
        .queue_declare(queue.into(), passive, FieldTable::default())
        .await
        .ok()
}

async fn depth(channel: &Channel, queue: &str) -> u32 {
    inspect(channel, queue)
        .await
        .map_or(0, |q| q.message_count())
}

async fn wait_for_depth(channel: &Channel, queue: &str, expected: u32) {
    for _ in 0..1200 {
        if depth(channel, queue).await >= expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{queue} never reached {expected} messages");
}

/// These tests ask for hundreds of links from one address.
fn many_requests_per_address(vars: &mut std::collections::HashMap<String, String>) {
    vars.insert("EMAIL_REQUESTS_MAX_PER_ADDRESS".into(), "100000".into());
}

async fn request_resets(app: &TestApp, users: &[TestUser]) {
    for chunk in users.chunks(25) {
        let requests = chunk.iter().map(|u| app.request_reset(&u.email));
        for response in futures_util::future::join_all(requests).await {
            assert_eq!(response.status(), 202);
        }
    }
}

/// Every user got exactly one reset email, and nothing else was sent.
async fn assert_one_reset_email_each(app: &TestApp, users: &[TestUser]) {
    let expected: HashSet<&str> = users.iter().map(|u| u.email.as_str()).collect();
    wait_for_emails(
        app.mail_dir(),
        users.len(),
        |e| e.subject() == RESET_SUBJECT,
        Duration::from_secs(90),
    )
    .await;
    // Give a straggling duplicate the chance to show up.
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Registration sent the template user a verification email too.
    let emails: Vec<_> = read_emails(app.mail_dir())
        .into_iter()
        .filter(|e| e.subject() == RESET_SUBJECT)
        .collect();
    let recipients: Vec<&str> = emails.iter().map(|e| e.to()).collect();
    let distinct: HashSet<&str> = recipients.iter().copied().collect();
    assert_eq!(emails.len(), users.len(), "one email per request");
    assert_eq!(distinct, expected);
    let db = app.database().await;
    let processed: i64 = db
        .query_one(
            "SELECT count(*) FROM processed_jobs WHERE outcome = 'sent' AND queue = 'email.password_reset'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(processed as usize, users.len());
    let pending: i64 = db
        .query_one(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 0);
    // Each user holds exactly one live token: the one in the email.
    let users_with_more: i64 = db
        .query_one(
            "SELECT count(*) FROM (SELECT user_id FROM password_reset_tokens \
             WHERE used_at IS NULL AND superseded_at IS NULL GROUP BY user_id HAVING count(*) <> 1) x",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(users_with_more, 0);
}

#[tokio::test]
async fn jobs_accepted_while_the_broker_is_away_are_all_sent_once_it_is_back() {
    let proxy = TcpProxy::start(broker_address()).await;
    let port = proxy.port;
    let app = spawn_app_with(|vars| {
        many_requests_per_address(vars);
        vars.insert(
            "AMQP_URL".into(),
            format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
        );
    })
    .await;
    app.wait_until_ready().await;
    // The worker reaches the broker through the proxy too, so both
    // processes lose it and must find it again on their own.
    let _worker = app
        .spawn_worker_with(|vars| {
            vars.insert(
                "AMQP_URL".into(),
                format!("amqp://guest:guest@127.0.0.1:{port}/%2f"),
            );
        })
        .await;
    let template = app.register_user().await;
    let users = app.insert_users(&template, 200).await;

    proxy.cut();
    for _ in 0..100 {
        if app.get("/readyz").await.status() == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        app.get("/readyz").await.status(),
        503,
        "the API sees the broker gone"
    );
    request_resets(&app, &users).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        read_emails(app.mail_dir())
            .iter()
            .all(|e| e.subject() != RESET_SUBJECT),
        "nothing reaches the worker meanwhile"
    );

    proxy.restore();

    assert_one_reset_email_each(&app, &users).await;
}

fn start_worker_process(app: &TestApp) -> Child {
    let mut vars = app.resources.vars();
    vars.insert("WORKER_METRICS_ADDR".into(), "127.0.0.1:0".into());
    vars.insert("WORKER_CONCURRENCY".into(), "1".into());
    vars.insert("RUST_LOG".into(), "warn".into());
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .arg("worker")
        .env_clear()
        .envs(vars)
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("the worker binary starts")
}

#[tokio::test]
async fn a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice() {
    let app = spawn_app_with(many_requests_per_address).await;
    let template = app.register_user().await;
    let users = app.insert_users(&template, 300).await;
    let mut worker = start_worker_process(&app);

    request_resets(&app, &users).await;
    wait_for_emails(app.mail_dir(), 20, |_| true, Duration::from_secs(60)).await;
    worker.kill().expect("SIGKILL");
    worker.wait().unwrap();
    let sent_before_the_kill = read_emails(app.mail_dir()).len();
    let mut restarted = start_worker_process(&app);

    assert_one_reset_email_each(&app, &users).await;

    restarted.kill().unwrap();
    restarted.wait().unwrap();
    assert!(
        sent_before_the_kill < users.len(),
        "the kill came mid-batch ({sent_before_the_kill} sent)"
    );
}

#[tokio::test]
async fn a_job_that_always_fails_ends_in_the_dead_letter_queue_with_its_error() {
    let app = spawn_app_with(many_requests_per_address).await;
    let worker = spawn_worker_whose_smtp_fails(&app).await;
    let user = app.register_user().await;
    let (_connection, channel) = channel().await;
    let topology = Topology::new(app.resources.queue_prefix.clone());
    let dlq = topology.dead_letter_queue(JobQueue::PasswordReset);

    let response = app
        .client
        .post(app.url("/api/v1/auth/password-reset/request"))
        .header("x-correlation-id", "doomed-job")
        .json(&serde_json::json!({"email": user.email}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);

    wait_for_depth(&channel, &dlq, 1).await;
    let message = channel
        .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a dead letter");
    let properties = &message.delivery.properties;
    assert_eq!(
        properties.correlation_id().as_ref().unwrap().as_str(),
        "doomed-job"
    );
    let headers = properties.headers().as_ref().unwrap().inner();
    assert_eq!(headers.get("x-attempts"), Some(&AMQPValue::LongUInt(3)));
    let Some(AMQPValue::LongString(error)) = headers.get("x-last-error") else {
        panic!("no x-last-error: {headers:?}");
    };
    assert!(error.to_string().contains("SMTP"), "{error}");
    assert!(read_emails(app.mail_dir()).is_empty());
    let metrics = reqwest::get(format!("{}/metrics", worker.metrics_address))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(r#"jobs_processed_total{kind="password_reset",outcome="retried"} 2"#),
        "{metrics}"
    );
    assert!(
        metrics
            .contains(r#"jobs_processed_total{kind="password_reset",outcome="dead_lettered"} 1"#)
    );
    assert!(metrics.contains(r#"job_duration_seconds_bucket{kind="password_reset""#));
}

/// A worker whose every email fails (its SMTP server is a closed port),
/// with three attempts per job.
async fn spawn_worker_whose_smtp_fails(app: &TestApp) -> TestWorker {
    let closed = closed_port();
    app.spawn_worker_with(|vars| {
        vars.insert(
            "MAIL_TRANSPORT".into(),
            format!("smtp://127.0.0.1:{closed}"),
        );
        vars.insert("JOB_MAX_ATTEMPTS".into(), "3".into());
    })
    .await
}

async fn publish(
    channel: &Channel,
    topology: &Topology,
    queue: JobQueue,
    body: &[u8],
    message_id: &str,
) {
    let confirm = channel
        .basic_publish(
            topology.exchange().as_str().into(),
            topology.queue(queue).as_str().into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default()
                .with_message_id(message_id.into())
                .with_correlation_id("published-by-test".into())
                .with_delivery_mode(2),
        )
        .await
        .unwrap();
    confirm.await.unwrap();
}

#[tokio::test]
async fn a_job_delivered_twice_sends_one_email() {
    let app = spawn_app_with(many_requests_per_address).await;
    let worker = app.spawn_worker().await;
    let user = app.register_user().await;
    app.wait_until_ready().await;
    let (_connection, channel) = channel().await;
    let topology = Topology::new(app.resources.queue_prefix.clone());
    let job_id = uuid::Uuid::new_v4();
    let body = serde_json::to_vec(&serde_json::json!({
        "job_id": job_id,
        "kind": "password_changed",
        "user_id": user.id,
        "email": user.email,
        "requested_at": "2026-11-25T12:00:00Z",
    }))
    .unwrap();

    publish(
        &channel,
        &topology,
        JobQueue::SecurityNotice,
        &body,
        &job_id.to_string(),
    )
    .await;
    publish(
        &channel,
        &topology,
        JobQueue::SecurityNotice,
        &body,
        &job_id.to_string(),
    )
    .await;

    app.emails_to(&user.email, "Your password was changed", 1)
        .await;
    let metrics_url = format!("{}/metrics", worker.metrics_address);
    for _ in 0..100 {
        let metrics = reqwest::get(&metrics_url)
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if metrics.contains(
            r#"jobs_processed_total{kind="notice_password_changed",outcome="duplicate"} 1"#,
        ) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let changed = read_emails(app.mail_dir())
        .into_iter()
        .filter(|e| e.subject() == "Your password was changed")
        .count();
    assert_eq!(changed, 1);
    let metrics = reqwest::get(&metrics_url)
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains(
            r#"jobs_processed_total{kind="notice_password_changed",outcome="duplicate"} 1"#
        ),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_malformed_message_goes_straight_to_the_dead_letter_queue() {
    // A retry first would wait ten minutes: the dead letter could not be
    // there in time.
    let app = spawn_app_with(many_requests_per_address).await;
    let _worker = app
        .spawn_worker_with(|vars| {
            vars.insert("JOB_RETRY_BASE_DELAY_MS".into(), "600000".into());
        })
        .await;
    app.wait_until_ready().await;
    let (_connection, channel) = channel().await;
    let topology = Topology::new(app.resources.queue_prefix.clone());

    publish(
        &channel,
        &topology,
        JobQueue::PasswordReset,
        b"{not json",
        "garbage-1",
    )
    .await;

    let dead_letter_queue = topology.dead_letter_queue(JobQueue::PasswordReset);
    wait_for_depth(&channel, &dead_letter_queue, 1).await;
    let dead = channel
        .basic_get(
            dead_letter_queue.as_str().into(),
            BasicGetOptions::default(),
        )
        .await
        .unwrap()
        .expect("the dead letter");
    assert_eq!(dead.delivery.data, b"{not json");
    let headers = dead
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    assert_eq!(
        headers.inner().get("x-attempts"),
        Some(&AMQPValue::LongUInt(1)),
        "dead-lettered at its first attempt, with no retry before"
    );
    assert_eq!(
        depth(&channel, &topology.retry_queue(JobQueue::PasswordReset)).await,
        0,
        "nothing waits to be retried"
    );
}

#[tokio::test]
async fn the_worker_drains_its_jobs_when_asked_to_stop() {
    let app = spawn_app_with(many_requests_per_address).await;
    let template = app.register_user().await;
    let users = app.insert_users(&template, 30).await;
    let mut worker = app.spawn_worker().await;
    request_resets(&app, &users).await;
    wait_for_emails(app.mail_dir(), 1, |_| true, Duration::from_secs(30)).await;

    worker.stop().await.expect("the worker stops cleanly");

    // Whatever it had not finished is still queued: a new worker sends the rest.
    let _next = app.spawn_worker().await;
    assert_one_reset_email_each(&app, &users).await;
}

#[tokio::test]
async fn a_work_queue_made_elsewhere_with_other_arguments_is_used_as_it_is() {
    // Arrange: the queue exists already as a classic queue, as another
    // tool on a shared broker might have made it.
    let resources_prefix = format!("test-{}.", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let (_connection, channel) = channel().await;
    let topology = Topology::new(resources_prefix.clone());
    let mut arguments = FieldTable::default();
    arguments.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    channel
        .queue_declare(
            topology.queue(JobQueue::PasswordReset).as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            arguments,
        )
        .await
        .unwrap();
    let app = spawn_app_with(|vars| {
        vars.insert("QUEUE_PREFIX".into(), resources_prefix.clone());
    })
    .await;
    let _worker = app
        .spawn_worker_with(|vars| {
            vars.insert("QUEUE_PREFIX".into(), resources_prefix.clone());
        })
        .await;

    app.wait_until_ready().await;
    let user = app.register_user().await;

    assert!(
        app.reset_token_for(&user).await.len() == 43,
        "the job still flows"
    );
    delete_topology(&topology).await;
}

#[tokio::test]
async fn a_retry_the_broker_refuses_keeps_the_job_until_the_broker_takes_it() {
    let app = spawn_app_with(many_requests_per_address).await;
    app.wait_until_ready().await;
    let topology = Topology::new(app.resources.queue_prefix.clone());
    let retry = topology.retry_queue(JobQueue::PasswordReset);
    let dlq = topology.dead_letter_queue(JobQueue::PasswordReset);
    let worker = spawn_worker_whose_smtp_fails(&app).await;
    let user = app.register_user().await;
    // The broker refuses every retry: with its queue gone, a retry is
    // returned as unroutable, as a quorum queue without a leader refuses it.
    let (connection, channel) = channel().await;
    wait_for_consumers(&channel, &topology.queue(JobQueue::PasswordReset)).await;
    channel
        .queue_delete(retry.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(app.request_reset(&user.email).await.status(), 202);

    // Each failed attempt's retry is refused: the job goes back to its
    // queue, the consumers start again on a fresh channel, and the attempt
    // count stays at one.
    let requeued = r#"jobs_processed_total{kind="password_reset",outcome="requeued"}"#;
    let mut refusals = 0.0;
    for _ in 0..200 {
        refusals = worker_metric(&worker, requeued).await;
        if refusals >= 2.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        refusals >= 2.0,
        "the refused retry was tried again: {}",
        reqwest::get(format!("{}/metrics", worker.metrics_address))
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
            .lines()
            .filter(|l| l.starts_with("jobs_processed_total") && !l.ends_with(" 0"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    assert_eq!(depth(&channel, &dlq).await, 0, "not given up on");

    // Once the broker takes retries, the job runs its course: two retries,
    // then the dead letter queue after its third attempt.
    topology.declare(&connection).await.unwrap();
    wait_for_depth(&channel, &dlq, 1).await;
    let message = channel
        .basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .expect("a dead letter");
    let headers = message
        .delivery
        .properties
        .headers()
        .as_ref()
        .unwrap()
        .inner();
    assert_eq!(headers.get("x-attempts"), Some(&AMQPValue::LongUInt(3)));
    assert_eq!(
        worker_metric(
            &worker,
            r#"jobs_processed_total{kind="password_reset",outcome="retried"}"#
        )
        .await,
        2.0
    );
}

/// The value of one series on the worker's `/metrics` (0 when absent).
async fn worker_metric(worker: &TestWorker, series: &str) -> f64 {
    metric_at(&reqwest::Client::new(), &worker.metrics_address, series).await
}

/// Waits until the worker consumes from `queue`.
async fn wait_for_consumers(channel: &Channel, queue: &str) {
    for _ in 0..200 {
        if inspect(channel, queue)
            .await
            .is_some_and(|q| q.consumer_count() > 0)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("nobody consumes from {queue}");
}
