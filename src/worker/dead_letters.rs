//! The depth of every dead letter queue, as a gauge for the dashboard and
//! the alerts.

use std::time::Duration;

use lapin::types::FieldTable;
use tokio_util::sync::CancellationToken;

use crate::messaging::Broker;
use crate::messaging::topology::JobQueue;

/// Keeps `job_dead_letter_queue_messages{queue}` current.
pub async fn run_dead_letter_gauge(broker: Broker, shutdown: CancellationToken) {
    for queue in JobQueue::ALL {
        metrics::gauge!("job_dead_letter_queue_messages", "queue" => queue.base_name()).set(0.0);
    }
    let mut tick = tokio::time::interval(Duration::from_secs(15));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let Some(connection) = broker.connection() else {
            continue;
        };
        let Ok(channel) = connection.create_channel().await else {
            continue;
        };
        for queue in JobQueue::ALL {
            let passive = lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let name = broker.topology().dead_letter_queue(queue);
            if let Ok(declared) = channel
                .queue_declare(name.as_str().into(), passive, FieldTable::default())
                .await
            {
                metrics::gauge!("job_dead_letter_queue_messages", "queue" => queue.base_name())
                    .set(f64::from(declared.message_count()));
            }
        }
        let _ = channel.close(200, "gauge read".into()).await;
    }
}
