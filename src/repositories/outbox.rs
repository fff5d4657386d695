//! The transactional outbox (see `sql/V3__password_reset.sql`).

use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// A job waiting to be published.
#[derive(Debug, Clone)]
pub struct PendingJob {
    pub id: Uuid,
    pub queue: String,
    pub payload: serde_json::Value,
    pub correlation_id: String,
}

pub async fn insert_job(
    client: &impl GenericClient,
    id: Uuid,
    queue: &str,
    payload: &serde_json::Value,
    correlation_id: &str,
) -> Result<(), tokio_postgres::Error> {
    const SQL: &str =
        "INSERT INTO outbox (id, queue, payload, correlation_id) VALUES ($1, $2, $3, $4)";
    let statement = client.prepare_cached(SQL).await?;
    client
        .execute(&statement, &[&id, &queue, payload, &correlation_id])
        .await?;
    Ok(())
}

/// Locks up to `limit` unpublished jobs, oldest first, skipping those
/// another relay holds, so replicas never publish a row twice at once.
pub async fn lock_pending_jobs(
    client: &impl GenericClient,
    limit: i64,
) -> Result<Vec<PendingJob>, tokio_postgres::Error> {
    const SQL: &str = "SELECT id, queue, payload, correlation_id FROM outbox \
        WHERE published_at IS NULL ORDER BY created_at LIMIT $1 FOR UPDATE SKIP LOCKED";
    let statement = client.prepare_cached(SQL).await?;
    let rows = client.query(&statement, &[&limit]).await?;
    Ok(rows
        .iter()
        .map(|row| PendingJob {
            id: row.get(0),
            queue: row.get(1),
            payload: row.get(2),
            correlation_id: row.get(3),
        })
        .collect())
}

pub async fn mark_published(
    client: &impl GenericClient,
    ids: &[Uuid],
) -> Result<u64, tokio_postgres::Error> {
    const SQL: &str = "UPDATE outbox SET published_at = now() WHERE id = ANY($1)";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&ids]).await
}

pub async fn count_pending(client: &impl GenericClient) -> Result<i64, tokio_postgres::Error> {
    const SQL: &str = "SELECT count(*) FROM outbox WHERE published_at IS NULL";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.query_one(&statement, &[]).await?.get(0))
}
