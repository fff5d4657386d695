//! What every emailed link of a user shares, whatever table keeps it: the
//! lock that serialises making links with superseding them.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// Serialises link changes of one user until the transaction ends: two jobs
/// of one user cannot both leave a live link, and a recovery that
/// supersedes the user's links waits for a link being made, or the link
/// waits for the recovery and sees its mark.
pub async fn lock_user_links(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    // The two-key form: its key space is apart from the job locks'.
    const SQL: &str = "SELECT pg_advisory_xact_lock(7, hashtext($1::text))";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&user_id.to_string()]).await?;
    Ok(())
}
