//! The worker process, in-process: it starts, declares its topology,
//! serves `/healthz` and `/metrics`, and stops when asked.

#[path = "../common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestResources;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use portcullis::config::Config;
use portcullis::messaging::Topology;
use portcullis::messaging::topology::JobQueue;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn the_worker_declares_its_queues_serves_health_and_stops() {
    let resources = TestResources::create().await;
    let config = Arc::new(Config::from_vars(resources.vars()).unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let worker = tokio::spawn(portcullis::run_worker(config, listener, shutdown.clone()));

    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let not_found = reqwest::get(format!("http://{addr}/readyz")).await.unwrap();
    assert_eq!(not_found.status(), 404);

    // The topology appears once the broker connection is up; a passive
    // declare fails for a queue that does not exist.
    let topology = Topology::new(resources.queue_prefix.clone());
    let connection =
        lapin::Connection::connect(&common::amqp_url(), lapin::ConnectionProperties::default())
            .await
            .unwrap();
    let mut declared = false;
    for _ in 0..50 {
        let channel = connection.create_channel().await.unwrap();
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let mut all = true;
        for queue in JobQueue::ALL {
            for name in [topology.queue(queue), topology.dead_letter_queue(queue)] {
                if channel
                    .queue_declare(name.as_str().into(), passive, FieldTable::default())
                    .await
                    .is_err()
                {
                    all = false;
                    break;
                }
            }
            if !all {
                break;
            }
        }
        if all {
            declared = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = connection.close(200, "done".into()).await;
    assert!(declared, "the worker declared every queue");

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .expect("the worker stops")
        .unwrap()
        .expect("run_worker returns Ok");
}

/// One job's step on its own, against a fresh database: a reset link job
/// makes the user's one live token, and a job asked for before the account
/// recovered makes none.
#[tokio::test]
async fn a_reset_link_step_keeps_one_live_token_and_makes_none_after_a_recovery() {
    use portcullis::mail::Mailer;
    use portcullis::messaging::jobs::{JobKind, JobMessage};
    use portcullis::repositories::{password_resets, users};
    use portcullis::worker::JobContext;
    use portcullis::worker::jobs::{Prepared, RECOVERED, reset_link};

    let resources = TestResources::create().await;
    let config = Arc::new(Config::from_vars(resources.vars()).unwrap());
    let db = portcullis::db::create_pool(&config).unwrap();
    portcullis::db::migrate(&db).await.unwrap();
    let client = db.get().await.unwrap();
    let id = uuid::Uuid::new_v4();
    client
        .execute(
            "INSERT INTO users (id, email, password_hash) VALUES ($1, 'step@example.com', '$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHQ$aGFzaA')",
            &[&id],
        )
        .await
        .unwrap();
    let user = users::find_active_user(&client, id).await.unwrap().unwrap();
    let ctx = JobContext {
        mailer: Mailer::new(&config.mail_transport, &config.mail_from).unwrap(),
        config: config.clone(),
        db: db.clone(),
        webhooks: None,
    };
    let live = || async {
        client
            .query_one(
                "SELECT count(*) FROM password_reset_tokens \
                 WHERE used_at IS NULL AND superseded_at IS NULL",
                &[],
            )
            .await
            .unwrap()
            .get::<_, i64>(0)
    };

    // A reset job refers to its request's row, written with the job.
    let request = |message: JobMessage| async {
        password_resets::insert_request(&client, message.job_id, Some(id), "step-test")
            .await
            .unwrap();
        message
    };
    for _ in 0..2 {
        let message = request(JobMessage::new(JobKind::PasswordResetLink, id, &user.email)).await;
        let Prepared::Send(email) =
            reset_link::prepare(&ctx, &user, &message, JobKind::PasswordResetLink)
                .await
                .unwrap()
        else {
            panic!("a link for a live account");
        };
        assert!(
            email.text.contains("/reset-password?token="),
            "{}",
            email.text
        );
        assert_eq!(live().await, 1, "the newer link supersedes the older");
    }
    let before = request(JobMessage::new(JobKind::PasswordResetLink, id, &user.email)).await;
    users::revoke_links(&client, id).await.unwrap();
    let after_recovery = reset_link::prepare(&ctx, &user, &before, JobKind::PasswordResetLink)
        .await
        .unwrap();

    assert!(matches!(after_recovery, Prepared::Skip(why) if why == RECOVERED));
}
