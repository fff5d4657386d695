//! Password-reset requests and tokens.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

pub async fn insert_request(
    client: &impl GenericClient,
    id: Uuid,
    user_id: Option<Uuid>,
    correlation_id: &str,
) -> Result<(), tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO password_reset_requests (id, user_id, correlation_id) \
        VALUES ($1, $2, $3)";
    let statement = client.prepare_cached(SQL).await?;
    client
        .execute(&statement, &[&id, &user_id, &correlation_id])
        .await?;
    Ok(())
}

/// Stores the token of a request's job. A job handled again (after a crash
/// between its email and its ledger row) replaces its own token, so the
/// request keeps one working link, the one in the newest email. False when
/// the request's token was already used or superseded: the job has nothing
/// left to send.
pub async fn store_job_token(
    client: &impl GenericClient,
    request_id: Uuid,
    user_id: Uuid,
    token_hash: &[u8],
    ttl_seconds: i64,
    purpose: ResetPurpose,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO password_reset_tokens (token_hash, request_id, user_id, expires_at, purpose) \
        VALUES ($3, $1, $2, now() + $4::bigint * interval '1 second', $5) \
        ON CONFLICT (request_id) DO UPDATE \
            SET token_hash = EXCLUDED.token_hash, created_at = EXCLUDED.created_at, \
                expires_at = EXCLUDED.expires_at \
            WHERE password_reset_tokens.used_at IS NULL \
              AND password_reset_tokens.superseded_at IS NULL";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .execute(
            &statement,
            &[
                &request_id,
                &user_id,
                &token_hash,
                &ttl_seconds,
                &purpose.as_str(),
            ],
        )
        .await?
        == 1)
}

/// Supersedes every live token of the user but `keep`.
pub async fn supersede_other_tokens(
    client: &impl GenericClient,
    user_id: Uuid,
    keep: &[u8],
) -> Result<u64, tokio_postgres::Error> {
    const SQL: &str = "UPDATE password_reset_tokens SET superseded_at = now() \
        WHERE user_id = $1 AND used_at IS NULL AND superseded_at IS NULL AND token_hash <> $2";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&user_id, &keep]).await
}

/// The user a live token belongs to: unused, not superseded, unexpired.
pub async fn find_live_token_user(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> Result<Option<Uuid>, tokio_postgres::Error> {
    const SQL: &str = "SELECT user_id FROM password_reset_tokens \
        WHERE token_hash = $1 AND used_at IS NULL AND superseded_at IS NULL AND expires_at > now()";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_opt(&statement, &[&token_hash])
        .await?
        .map(|row| row.get(0)))
}

/// Marks a live token used and says whose it was and what for; `None` if
/// it was not live (raced, expired).
pub async fn consume_token(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> Result<Option<(Uuid, ResetPurpose)>, tokio_postgres::Error> {
    const SQL: &str = "UPDATE password_reset_tokens SET used_at = now() \
        WHERE token_hash = $1 AND used_at IS NULL AND superseded_at IS NULL AND expires_at > now() \
        RETURNING user_id, purpose = 'invite'";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_opt(&statement, &[&token_hash])
        .await?
        .map(|row| {
            let purpose = if row.get(1) {
                ResetPurpose::Invite
            } else {
                ResetPurpose::Reset
            };
            (row.get(0), purpose)
        }))
}

/// What a set-password link is for: a reset, or an invitation, which also
/// verifies the address it was sent to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetPurpose {
    Reset,
    Invite,
}

impl ResetPurpose {
    fn as_str(self) -> &'static str {
        match self {
            ResetPurpose::Reset => "reset",
            ResetPurpose::Invite => "invite",
        }
    }
}

/// After a reset, no other link of the user may work.
pub async fn supersede_live_tokens(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<u64, tokio_postgres::Error> {
    const SQL: &str = "UPDATE password_reset_tokens SET superseded_at = now() \
        WHERE user_id = $1 AND used_at IS NULL AND superseded_at IS NULL";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&user_id]).await
}
