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
