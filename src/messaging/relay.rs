//! The outbox relay, in the API process: publishes pending outbox rows to
//! RabbitMQ with publisher confirms and marks a row published only after
//! the broker confirmed it (CONTRACT.md, "Password reset": a job is never
//! lost). Rows are taken `FOR UPDATE SKIP LOCKED`, so several API replicas
//! never publish one row at the same time. While RabbitMQ is away, rows
//! wait; the relay goes on when the broker connection comes back. Jobs the
//! broker refuses (a quorum queue without a leader) are retried on a fresh
//! channel.

use std::sync::Arc;
use std::time::Duration;

use deadpool_postgres::Pool;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Broker;
use crate::repositories::outbox;

const BATCH: i64 = 100;
/// Other replicas' rows are picked up within this time.
const POLL: Duration = Duration::from_secs(1);
const RETRY_AFTER_ERROR: Duration = Duration::from_millis(500);

/// Wakes the relay as soon as a job is committed.
#[derive(Clone, Default)]
pub struct OutboxSignal(Arc<Notify>);

impl OutboxSignal {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

pub async fn run_relay(
    db: Pool,
    broker: Broker,
    signal: OutboxSignal,
    shutdown: CancellationToken,
) {
    let mut connections = broker.watch();
    loop {
        let connection = connections.borrow_and_update().clone();
        let Some(connection) = connection.filter(|c| c.status().connected()) else {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = connections.changed() => continue,
            }
        };
        let channel = match open_channel(&connection).await {
            Ok(channel) => channel,
            Err(error) => {
                tracing::warn!(error = %error, "cannot open a publishing channel");
                if sleep_or_stop(RETRY_AFTER_ERROR, &shutdown).await {
                    return;
                }
                continue;
            }
        };
        loop {
            match publish_batch(&db, &channel, &broker).await {
                Ok(Batch { taken, published }) if taken as i64 == BATCH && published > 0 => {
                    continue;
                }
                Ok(Batch { taken, published }) if published < taken => {
                    // The broker refused some: do not spin on them, and
                    // retry on a fresh channel. A channel that published to
                    // a quorum queue while it had no leader can go on
                    // refusing after the queue has elected a new one.
                    let _ = channel.close(200, "retrying refused jobs".into()).await;
                    if sleep_or_stop(RETRY_AFTER_ERROR, &shutdown).await {
                        return;
                    }
                    break;
                }
                Ok(_) => {
                    tokio::select! {
                        _ = shutdown.cancelled() => return,
                        _ = signal.0.notified() => {}
                        _ = tokio::time::sleep(POLL) => {}
                        _ = connections.changed() => break,
                    }
                }
                Err(error) => {
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "publishing the outbox failed; will retry"
                    );
                    if sleep_or_stop(RETRY_AFTER_ERROR, &shutdown).await {
                        return;
                    }
                    break;
                }
            }
        }
    }
}

/// Keeps `outbox_pending` current, the broker up or not: the backlog grows
/// exactly while the relay cannot publish.
pub async fn run_backlog_gauge(db: Pool, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Ok(client) = db.get().await
            && let Ok(pending) = outbox::count_pending(&client).await
        {
            metrics::gauge!("outbox_pending").set(pending as f64);
        }
    }
}

async fn open_channel(connection: &lapin::Connection) -> lapin::Result<Channel> {
    let channel = connection.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    Ok(channel)
}

/// Returns true when asked to stop.
async fn sleep_or_stop(duration: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        _ = shutdown.cancelled() => true,
        _ = tokio::time::sleep(duration) => false,
    }
}

/// How one batch went.
struct Batch {
    taken: usize,
    published: usize,
}

/// How long the broker may take to confirm a batch.
const CONFIRM_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes one batch.
async fn publish_batch(db: &Pool, channel: &Channel, broker: &Broker) -> anyhow::Result<Batch> {
    let mut client = db.get().await?;
    let transaction = client.transaction().await?;
    let jobs = outbox::lock_pending_jobs(&transaction, BATCH).await?;
    if jobs.is_empty() {
        transaction.commit().await?;
        return Ok(Batch {
            taken: 0,
            published: 0,
        });
    }
    let topology = broker.topology();
    let exchange = topology.exchange();
    let mut pending = Vec::with_capacity(jobs.len());
    for job in &jobs {
        let payload = serde_json::to_vec(&job.payload)?;
        let properties = BasicProperties::default()
            .with_message_id(job.id.to_string().into())
            .with_correlation_id(job.correlation_id.as_str().into())
            .with_content_type("application/json".into())
            .with_delivery_mode(2);
        let routing_key = format!("{}{}", topology.prefix(), job.queue);
        let span =
            tracing::info_span!("publish", correlation_id = %job.correlation_id, job_id = %job.id);
        let confirm = channel
            .basic_publish(
                exchange.as_str().into(),
                routing_key.as_str().into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &payload,
                properties,
            )
            .instrument(span)
            .await?;
        pending.push((job, confirm));
    }
    let mut published = Vec::with_capacity(pending.len());
    for (job, confirm) in pending {
        // A broker under a resource alarm may hold confirms back; the rows
        // stay locked meanwhile, so give up and try again later.
        let confirmation = tokio::time::timeout(CONFIRM_TIMEOUT, confirm)
            .await
            .map_err(|_| {
                anyhow::anyhow!("the broker did not confirm within {CONFIRM_TIMEOUT:?}")
            })??;
        // Unroutable messages come back as an ack carrying the message.
        let refused = match (confirmation.is_ack(), confirmation.take_message()) {
            (true, None) => None,
            (_, Some(_)) => Some("unroutable"),
            (false, None) => Some("nack"),
        };
        match refused {
            None => {
                published.push(job.id);
                tracing::info!(correlation_id = %job.correlation_id, job_id = %job.id, queue = %job.queue, "job published");
            }
            Some(reason) => {
                tracing::warn!(correlation_id = %job.correlation_id, job_id = %job.id, reason, "the broker did not take a job; it stays in the outbox");
            }
        }
    }
    outbox::mark_published(&transaction, &published).await?;
    transaction.commit().await?;
    Ok(Batch {
        taken: jobs.len(),
        published: published.len(),
    })
}
