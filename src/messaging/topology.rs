//! The exchange and queues of CONTRACT.md, "Messaging", declared
//! idempotently by both processes. Every name takes the configured prefix so
//! parallel test runs on one broker never meet (empty in production).

use lapin::options::{ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ExchangeKind};

/// How often a quorum queue delivers one message before dead-lettering it,
/// so a job that crashes its consumer every time still ends in the DLQ.
pub const DELIVERY_LIMIT: i32 = 10;

/// The kinds of job, one work queue each: the emails, and the deliveries
/// of security events to the webhook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobQueue {
    PasswordReset,
    Verification,
    SecurityNotice,
    WebhookDelivery,
}

impl JobQueue {
    pub const ALL: [JobQueue; 4] = [
        JobQueue::PasswordReset,
        JobQueue::Verification,
        JobQueue::SecurityNotice,
        JobQueue::WebhookDelivery,
    ];

    /// The queue name without prefix; also its routing key.
    pub fn base_name(self) -> &'static str {
        match self {
            JobQueue::PasswordReset => "email.password_reset",
            JobQueue::Verification => "email.verification",
            JobQueue::SecurityNotice => "email.security_notice",
            JobQueue::WebhookDelivery => "webhooks.delivery",
        }
    }
}

/// The prefixed names this process uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    prefix: String,
}

impl Topology {
    pub fn new(prefix: impl Into<String>) -> Self {
        Self {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn exchange(&self) -> String {
        format!("{}portcullis.jobs", self.prefix)
    }

    pub fn queue(&self, queue: JobQueue) -> String {
        format!("{}{}", self.prefix, queue.base_name())
    }

    pub fn dead_letter_queue(&self, queue: JobQueue) -> String {
        format!("{}.dlq", self.queue(queue))
    }

    /// Where a failed job waits out its backoff before going back to its
    /// queue (its messages carry a per-message TTL).
    pub fn retry_queue(&self, queue: JobQueue) -> String {
        format!("{}.retry", self.queue(queue))
    }

    /// Where a failed delivery of `queue` waits exactly `delay` before it
    /// goes back to its queue: one queue per delay, with the delay as its
    /// own message TTL, so a message waiting long never holds up one behind
    /// it that waits less (a per-message TTL expires only at the head).
    pub fn retry_step_queue(&self, queue: JobQueue, delay: std::time::Duration) -> String {
        format!("{}.retry.{}ms", self.queue(queue), delay.as_millis())
    }

    /// Declares [`Self::retry_step_queue`] on `channel` (a no-op once it
    /// exists: its name fixes its arguments) and returns its name.
    pub async fn declare_retry_step(
        &self,
        channel: &lapin::Channel,
        queue: JobQueue,
        delay: std::time::Duration,
    ) -> lapin::Result<String> {
        let name = self.retry_step_queue(queue, delay);
        let mut arguments = quorum_arguments();
        arguments
            .insert(
                "x-message-ttl".into(),
                AMQPValue::LongLongInt(delay.as_millis().max(1) as i64),
            )
            .insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(self.exchange().as_str().into()),
            )
            .insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(self.queue(queue).as_str().into()),
            );
        let durable = QueueDeclareOptions {
            durable: true,
            ..QueueDeclareOptions::default()
        };
        channel
            .queue_declare(name.as_str().into(), durable, arguments)
            .await?;
        Ok(name)
    }

    /// The queue a message was consumed from, by its prefixed name.
    pub fn job_queue(&self, name: &str) -> Option<JobQueue> {
        JobQueue::ALL.into_iter().find(|q| self.queue(*q) == name)
    }

    /// Declares the exchange, every work queue with its dead letter and
    /// retry queues, and the bindings. Redeclaring with the same arguments
    /// is a no-op. A queue that already exists with other arguments (made by
    /// an older deployment, or another tool on a shared broker) is used as
    /// it is, with an error logged, rather than leaving the process unable
    /// to publish or consume at all.
    pub async fn declare(&self, connection: &Connection) -> lapin::Result<()> {
        let channel = connection.create_channel().await?;
        channel
            .exchange_declare(
                self.exchange().into(),
                ExchangeKind::Direct,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await?;
        let _ = channel.close(200, "exchange declared".into()).await;
        for queue in JobQueue::ALL {
            let name = self.queue(queue);
            let dlq = self.dead_letter_queue(queue);
            declare_queue(connection, &dlq, quorum_arguments()).await?;
            // Dead letters go through the default exchange, which routes by
            // queue name, so no second exchange is needed.
            let mut arguments = quorum_arguments();
            arguments
                .insert(
                    "x-delivery-limit".into(),
                    AMQPValue::LongInt(DELIVERY_LIMIT),
                )
                .insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString("".into()),
                )
                .insert(
                    "x-dead-letter-routing-key".into(),
                    AMQPValue::LongString(dlq.as_str().into()),
                );
            declare_queue(connection, &name, arguments).await?;
            // Per-message TTLs drive the backoff; an expired message
            // dead-letters back to its work queue.
            let mut retry_arguments = quorum_arguments();
            retry_arguments
                .insert(
                    "x-dead-letter-exchange".into(),
                    AMQPValue::LongString(self.exchange().as_str().into()),
                )
                .insert(
                    "x-dead-letter-routing-key".into(),
                    AMQPValue::LongString(name.as_str().into()),
                );
            declare_queue(connection, &self.retry_queue(queue), retry_arguments).await?;
            let channel = connection.create_channel().await?;
            channel
                .queue_bind(
                    name.as_str().into(),
                    self.exchange().into(),
                    name.as_str().into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            let _ = channel.close(200, "queue bound".into()).await;
        }
        Ok(())
    }
}

/// Declares a durable queue; if it exists with other arguments (the broker
/// answers PRECONDITION_FAILED and closes the channel), checks that it
/// exists and goes on with it.
async fn declare_queue(
    connection: &Connection,
    name: &str,
    arguments: FieldTable,
) -> lapin::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..QueueDeclareOptions::default()
    };
    let channel = connection.create_channel().await?;
    match channel.queue_declare(name.into(), durable, arguments).await {
        Ok(_) => {
            let _ = channel.close(200, "queue declared".into()).await;
            Ok(())
        }
        Err(error) => {
            tracing::error!(
                queue = name,
                error = %error,
                "the queue exists with other arguments than Portcullis declares; using it as it is"
            );
            let channel = connection.create_channel().await?;
            let passive = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            channel
                .queue_declare(name.into(), passive, FieldTable::default())
                .await?;
            let _ = channel.close(200, "queue checked".into()).await;
            Ok(())
        }
    }
}

/// Replicated queues whose dead-lettering is at least once (RabbitMQ's
/// default for quorum queues is at most once, which could drop a job on its
/// way to the retry or dead letter queue).
fn quorum_arguments() -> FieldTable {
    let mut arguments = FieldTable::default();
    arguments
        .insert(
            "x-queue-type".into(),
            AMQPValue::LongString("quorum".into()),
        )
        .insert(
            "x-dead-letter-strategy".into(),
            AMQPValue::LongString("at-least-once".into()),
        )
        .insert(
            "x-overflow".into(),
            AMQPValue::LongString("reject-publish".into()),
        );
    arguments
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_contract_and_take_the_prefix() {
        let plain = Topology::new("");
        assert_eq!(plain.exchange(), "portcullis.jobs");
        assert_eq!(plain.queue(JobQueue::PasswordReset), "email.password_reset");
        assert_eq!(
            plain.dead_letter_queue(JobQueue::SecurityNotice),
            "email.security_notice.dlq"
        );
        let test = Topology::new("t1.");
        assert_eq!(test.exchange(), "t1.portcullis.jobs");
        assert_eq!(
            test.dead_letter_queue(JobQueue::PasswordReset),
            "t1.email.password_reset.dlq"
        );
        assert_eq!(
            test.retry_queue(JobQueue::SecurityNotice),
            "t1.email.security_notice.retry"
        );
        assert_eq!(
            test.job_queue("t1.email.security_notice"),
            Some(JobQueue::SecurityNotice)
        );
    }
}
