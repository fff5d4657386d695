//! The worker's ledger of finished jobs, which makes handling idempotent.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// Serialises concurrent deliveries of one job until the transaction ends.
pub async fn lock_job(
    client: &impl GenericClient,
    job_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    const SQL: &str = "SELECT pg_advisory_xact_lock($1)";
    let key = i64::from_be_bytes(job_id.as_bytes()[..8].try_into().expect("16-byte UUID"));
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&key]).await?;
    Ok(())
}

pub async fn is_processed(
    client: &impl GenericClient,
    job_id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "SELECT EXISTS (SELECT 1 FROM processed_jobs WHERE job_id = $1)";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.query_one(&statement, &[&job_id]).await?.get(0))
}

pub async fn mark_processed(
    client: &impl GenericClient,
    job_id: Uuid,
    queue: &str,
    outcome: &str,
) -> Result<(), tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO processed_jobs (job_id, queue, outcome) VALUES ($1, $2, $3) \
        ON CONFLICT (job_id) DO NOTHING";
    let statement = client.prepare_cached(SQL).await?;
    client
        .execute(&statement, &[&job_id, &queue, &outcome])
        .await?;
    Ok(())
}
