//! The worker's consume loop (CONTRACT.md, "Messaging"): manual acks, a
//! bounded prefetch and a bound on jobs in flight. Each delivery runs in a
//! span carrying the message's correlation id, so its log lines can be
//! followed back to the HTTP request that caused it.
//!
//! A job that fails is republished, with publisher confirms, to its retry
//! queue with a per-message TTL that doubles with each attempt; the retry
//! queue dead-letters it back when the TTL runs out. After the last attempt,
//! or at once for a malformed message, it goes to the dead letter queue with
//! its last error in `x-last-error`. The delivery is acked only after that
//! republish is confirmed, so a job is never lost on the way. When the
//! connection drops, the loop waits for the broker supervisor's next one;
//! deliveries taken before it are redelivered, and the ledger keeps them
//! from sending twice. A refused republish also starts the consumers again
//! on a fresh channel. On shutdown it stops consuming and lets the jobs in
//! flight finish (bounded by `SHUTDOWN_TIMEOUT_SECONDS`).

mod dead_letters;
mod emails;
pub mod handler;
pub mod jobs;

use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicNackOptions,
    BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::messaging::topology::JobQueue;
use crate::messaging::{Broker, Topology};
pub use dead_letters::run_dead_letter_gauge;
pub use handler::{JobContext, Outcome};

const ATTEMPTS_HEADER: &str = "x-attempts";
const LAST_ERROR_HEADER: &str = "x-last-error";

/// Consumes every job queue until `shutdown` is cancelled.
pub async fn run(ctx: Arc<JobContext>, broker: Broker, shutdown: CancellationToken) {
    let mut connections = broker.watch();
    let slots = Arc::new(Semaphore::new(ctx.config.worker_concurrency));
    let mut in_flight = JoinSet::new();
    loop {
        let connection = connections.borrow_and_update().clone();
        let connection = match connection.filter(|c| c.status().connected()) {
            Some(connection) => connection,
            None => {
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = connections.changed() => continue,
                }
            }
        };
        match consume(
            &ctx,
            &connection,
            broker.topology(),
            &slots,
            &mut in_flight,
            &shutdown,
        )
        .await
        {
            Ok(Stop::Shutdown) => break,
            Ok(Stop::ConnectionLost) => {
                tracing::warn!("the job consumers stopped; waiting for the broker");
                // The connection may still be up (the channel was closed
                // after a refused republish): consume again after a pause,
                // so a broker that goes on refusing is not asked in a loop.
                if broker.is_connected() {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    }
                }
            }
            Err(error) => {
                tracing::warn!(error = %error, "cannot start consuming; retrying");
                tokio::select! {
                    _ = shutdown.cancelled() => break,
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                }
            }
        }
    }
    drain(&mut in_flight, ctx.config.shutdown_timeout).await;
}

enum Stop {
    Shutdown,
    ConnectionLost,
}

async fn consume(
    ctx: &Arc<JobContext>,
    connection: &Connection,
    topology: &Topology,
    slots: &Arc<Semaphore>,
    in_flight: &mut JoinSet<()>,
    shutdown: &CancellationToken,
) -> lapin::Result<Stop> {
    let channel = connection.create_channel().await?;
    channel
        .basic_qos(ctx.config.worker_prefetch, BasicQosOptions::default())
        .await?;
    // Retries and dead letters are published on this channel, confirmed.
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    let mut streams = Vec::new();
    let mut tags = Vec::new();
    for queue in JobQueue::ALL {
        let tag = format!(
            "portcullis-worker-{}-{}",
            queue.base_name(),
            uuid::Uuid::new_v4()
        );
        let consumer = channel
            .basic_consume(
                topology.queue(queue).as_str().into(),
                tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        tags.push(tag);
        // A stream that ends (consumer cancelled by the broker) yields `None`
        // once, so the loop notices even while the other queue carries on.
        streams.push(
            consumer
                .map(move |delivery| Some((queue, delivery)))
                .chain(futures_util::stream::once(async { None }))
                .boxed(),
        );
    }
    tracing::info!("consuming jobs");
    let mut deliveries = futures_util::stream::select_all(streams);
    loop {
        // Wait for a free slot first, so no more than the bound run at once.
        let permit = tokio::select! {
            _ = shutdown.cancelled() => break,
            permit = slots.clone().acquire_owned() => permit.expect("the slots are never closed"),
        };
        let next = tokio::select! {
            _ = shutdown.cancelled() => break,
            next = deliveries.next() => next,
        };
        match next.flatten() {
            Some((queue, Ok(delivery))) => {
                let ctx = ctx.clone();
                let channel = channel.clone();
                let topology = topology.clone();
                in_flight.spawn(async move {
                    process(&ctx, &channel, &topology, queue, delivery).await;
                    drop(permit);
                });
            }
            Some((_, Err(error))) => {
                tracing::warn!(error = %error, "a job consumer failed");
                return Ok(Stop::ConnectionLost);
            }
            None => return Ok(Stop::ConnectionLost),
        }
        // Reap finished tasks so the set does not grow.
        while in_flight.try_join_next().is_some() {}
    }
    // Shutting down: take no more deliveries; the ones prefetched but not
    // started go back to the queue when the channel closes.
    for tag in tags {
        let _ = channel
            .basic_cancel(tag.as_str().into(), BasicCancelOptions::default())
            .await;
    }
    drain(in_flight, ctx.config.shutdown_timeout).await;
    let _ = channel.close(200, "worker stopping".into()).await;
    Ok(Stop::Shutdown)
}

async fn drain(in_flight: &mut JoinSet<()>, limit: Duration) {
    if in_flight.is_empty() {
        return;
    }
    tracing::info!(jobs = in_flight.len(), "finishing the jobs in flight");
    let finished = tokio::time::timeout(limit, async {
        while in_flight.join_next().await.is_some() {}
    })
    .await;
    if finished.is_err() {
        tracing::warn!(
            jobs = in_flight.len(),
            "shutdown grace over; unfinished jobs will be redelivered"
        );
        in_flight.abort_all();
    }
}

async fn process(
    ctx: &JobContext,
    channel: &Channel,
    topology: &Topology,
    queue: JobQueue,
    delivery: Delivery,
) {
    let correlation_id = short_string(delivery.properties.correlation_id())
        .unwrap_or("-")
        .to_owned();
    let message_id = short_string(delivery.properties.message_id())
        .unwrap_or("-")
        .to_owned();
    let span = tracing::info_span!(
        "job",
        correlation_id = %correlation_id,
        job_id = %message_id,
        queue = queue.base_name(),
    );
    async {
        let started = Instant::now();
        let attempt = attempts_so_far(&delivery).saturating_add(1);
        let (kind_label, outcome) = if queue == JobQueue::WebhookDelivery {
            (
                "webhook",
                jobs::webhook::attempt(ctx, &message_id, &delivery.data).await,
            )
        } else {
            match handler::parse(queue, &delivery.data) {
                Ok((message, kind)) => (
                    kind.metric_label(),
                    handler::handle(ctx, &message, kind, &correlation_id).await,
                ),
                Err(reason) => ("unknown", Outcome::DeadLetter(reason)),
            }
        };
        metrics::histogram!("job_duration_seconds", "kind" => kind_label)
            .record(started.elapsed().as_secs_f64());
        let settled = settle(ctx, channel, topology, queue, &delivery, attempt, &outcome).await;
        let label = match (&outcome, &settled) {
            (_, Err(_)) => "requeued",
            (Outcome::Retry(_), Ok(Settled::DeadLettered)) => "dead_lettered",
            (Outcome::Retry(_), Ok(_)) => "retried",
            (Outcome::DeadLetter(_), _) => "dead_lettered",
            (outcome, _) => outcome.label(),
        };
        metrics::counter!("jobs_processed_total", "kind" => kind_label, "outcome" => label)
            .increment(1);
        if queue == JobQueue::WebhookDelivery {
            let delivery_outcome = match (&outcome, &settled) {
                (Outcome::Sent, _) => Some("delivered"),
                (_, Ok(Settled::Retrying)) => Some("retried"),
                (_, Ok(Settled::DeadLettered)) => Some("dead_lettered"),
                _ => None,
            };
            if let Some(delivery_outcome) = delivery_outcome {
                metrics::counter!("webhook_deliveries_total", "outcome" => delivery_outcome)
                    .increment(1);
            }
        }
        if let Err(error) = settled {
            tracing::warn!(error = %error, "could not settle the delivery; it will be redelivered");
        }
    }
    .instrument(span)
    .await;
}

enum Settled {
    Acked,
    Retrying,
    DeadLettered,
}

/// Acks, or republishes to the retry or dead letter queue and then acks.
async fn settle(
    ctx: &JobContext,
    channel: &Channel,
    topology: &Topology,
    queue: JobQueue,
    delivery: &Delivery,
    attempt: u32,
    outcome: &Outcome,
) -> anyhow::Result<Settled> {
    let settled = match outcome {
        Outcome::Sent | Outcome::Skipped | Outcome::Duplicate => Settled::Acked,
        Outcome::Retry(error) if attempt < retry_policy(ctx, queue).0 => {
            let delay = backoff(retry_policy(ctx, queue).1, attempt);
            tracing::warn!(
                error = format!("{error:#}"),
                attempt,
                retry_in_ms = delay.as_millis() as u64,
                "job failed; will retry"
            );
            // Email jobs wait in one retry queue, each with its own TTL;
            // webhook retries, whose waits reach an hour, wait in a queue
            // per delay, so a long wait never holds up a short one behind it.
            let (retry_queue, expiration) = if queue == JobQueue::WebhookDelivery {
                let step = topology.declare_retry_step(channel, queue, delay).await?;
                (step, None)
            } else {
                let expiration = delay.as_millis().max(1).to_string();
                (topology.retry_queue(queue), Some(expiration))
            };
            republish(
                channel,
                &retry_queue,
                delivery,
                attempt,
                &format!("{error:#}"),
                expiration,
            )
            .await?;
            Settled::Retrying
        }
        Outcome::Retry(error) => {
            let reason = format!("{error:#}");
            tracing::error!(
                error = reason,
                attempt,
                "job failed for the last time; dead-lettering it"
            );
            republish(
                channel,
                &topology.dead_letter_queue(queue),
                delivery,
                attempt,
                &reason,
                None,
            )
            .await?;
            Settled::DeadLettered
        }
        Outcome::DeadLetter(reason) => {
            tracing::error!(error = reason.as_str(), "job rejected; dead-lettering it");
            republish(
                channel,
                &topology.dead_letter_queue(queue),
                delivery,
                attempt,
                reason,
                None,
            )
            .await?;
            Settled::DeadLettered
        }
    };
    delivery
        .acker
        .ack(BasicAckOptions::default())
        .await
        .map_err(|error| anyhow::anyhow!("ack failed: {error}"))?;
    Ok(settled)
}

/// Publishes a copy of the delivery to `queue` (through the default
/// exchange) and waits for the broker's confirm; on failure the original
/// goes back to its queue.
async fn republish(
    channel: &Channel,
    queue: &str,
    delivery: &Delivery,
    attempt: u32,
    last_error: &str,
    expiration: Option<String>,
) -> anyhow::Result<()> {
    let mut headers = delivery.properties.headers().clone().unwrap_or_default();
    headers.insert(ATTEMPTS_HEADER.into(), AMQPValue::LongUInt(attempt));
    let last_error: String = last_error.chars().take(1000).collect();
    headers.insert(
        LAST_ERROR_HEADER.into(),
        AMQPValue::LongString(last_error.as_str().into()),
    );
    let mut properties = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("application/json".into())
        .with_headers(headers);
    if let Some(id) = delivery.properties.message_id() {
        properties = properties.with_message_id(id.clone());
    }
    if let Some(id) = delivery.properties.correlation_id() {
        properties = properties.with_correlation_id(id.clone());
    }
    if let Some(expiration) = expiration {
        properties = properties.with_expiration(expiration.as_str().into());
    }
    let result = async {
        let confirmation = channel
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions {
                    mandatory: true,
                    ..BasicPublishOptions::default()
                },
                &delivery.data,
                properties,
            )
            .await?
            .await?;
        anyhow::ensure!(
            confirmation.is_ack() && confirmation.take_message().is_none(),
            "the broker did not take the message for {queue}"
        );
        Ok(())
    }
    .await;
    if result.is_err() {
        let _ = delivery
            .acker
            .nack(BasicNackOptions {
                requeue: true,
                ..BasicNackOptions::default()
            })
            .await;
        // A channel that published to a quorum queue while it had no leader
        // goes on being refused after the queue has elected a new one, so
        // the consumers start again on a fresh channel (see `run`).
        let _ = channel
            .close(200, "republishing failed; consuming again".into())
            .await;
    }
    result
}

/// How often a delivery of `queue` is tried, and the first retry's delay:
/// `WEBHOOK_MAX_ATTEMPTS` and `WEBHOOK_RETRY_BASE_SECONDS` for webhooks,
/// `JOB_MAX_ATTEMPTS` and `JOB_RETRY_BASE_DELAY_MS` for emails.
fn retry_policy(ctx: &JobContext, queue: JobQueue) -> (u32, Duration) {
    match (queue, ctx.config.webhook.as_deref()) {
        (JobQueue::WebhookDelivery, Some(webhook)) => (webhook.max_attempts, webhook.retry_base),
        _ => (ctx.config.job_max_attempts, ctx.config.job_retry_base_delay),
    }
}

/// How many times this job has failed before, from our header.
fn attempts_so_far(delivery: &Delivery) -> u32 {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|headers| headers.inner().get(ATTEMPTS_HEADER))
        .and_then(|value| match value {
            AMQPValue::LongUInt(n) => Some(*n),
            AMQPValue::LongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::LongLongInt(n) => u32::try_from(*n).ok(),
            AMQPValue::ShortUInt(n) => Some(u32::from(*n)),
            _ => None,
        })
        .unwrap_or(0)
}

/// base, 2·base, 4·base, ... capped at an hour.
fn backoff(base: Duration, attempt: u32) -> Duration {
    let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(20));
    base.saturating_mul(factor).min(Duration::from_secs(3600))
}

fn short_string(value: &Option<ShortString>) -> Option<&str> {
    value.as_ref().map(|s| s.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 1), Duration::from_millis(100));
        assert_eq!(backoff(base, 2), Duration::from_millis(200));
        assert_eq!(backoff(base, 4), Duration::from_millis(800));
        assert_eq!(
            backoff(Duration::from_secs(60), 30),
            Duration::from_secs(3600)
        );
    }
}
