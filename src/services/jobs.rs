//! Enqueueing jobs through the transactional outbox: the caller writes the
//! job in the same transaction as the change that causes it, then wakes the
//! relay once that transaction has committed.

use deadpool_postgres::{GenericClient, Transaction};
use uuid::Uuid;

use super::{AppContext, ServiceError};
use crate::messaging::jobs::{JobKind, JobMessage};
use crate::repositories::outbox;

/// The usual tail of a change that mails someone: writes `kind` for the
/// user in the change's transaction, commits both, then wakes the relay.
pub async fn enqueue_and_commit(
    ctx: &AppContext,
    transaction: Transaction<'_>,
    kind: JobKind,
    user_id: Uuid,
    email: &str,
    correlation_id: &str,
) -> Result<(), ServiceError> {
    enqueue(&transaction, kind, user_id, email, correlation_id).await?;
    transaction.commit().await?;
    ctx.outbox.wake();
    Ok(())
}

/// Writes `kind` for the user into the outbox; returns the job id.
pub async fn enqueue(
    client: &impl GenericClient,
    kind: JobKind,
    user_id: Uuid,
    email: &str,
    correlation_id: &str,
) -> anyhow::Result<Uuid> {
    let message = JobMessage::new(kind, user_id, email);
    enqueue_message(client, kind, &message, correlation_id).await?;
    Ok(message.job_id)
}

/// Writes a message built by the caller (who needed its job id first).
pub async fn enqueue_message(
    client: &impl GenericClient,
    kind: JobKind,
    message: &JobMessage,
    correlation_id: &str,
) -> anyhow::Result<()> {
    let payload = serde_json::to_value(message)?;
    let queue = kind.queue().base_name();
    outbox::insert_job(client, message.job_id, queue, &payload, correlation_id).await?;
    tracing::info!(job_id = %message.job_id, kind = kind.as_str(), queue, "job enqueued");
    Ok(())
}
