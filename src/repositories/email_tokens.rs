//! Links that prove an address (`verify_email`, `change_email`), stored
//! only as the SHA-256 of the token, one row per job.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// What a link proves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// The account's own address.
    VerifyEmail,
    /// A new address for the account.
    ChangeEmail,
}

impl Purpose {
    pub fn as_str(self) -> &'static str {
        match self {
            Purpose::VerifyEmail => "verify_email",
            Purpose::ChangeEmail => "change_email",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "verify_email" => Some(Purpose::VerifyEmail),
            "change_email" => Some(Purpose::ChangeEmail),
            _ => None,
        }
    }
}

/// A token just spent.
#[derive(Debug, Clone)]
pub struct SpentToken {
    pub user_id: Uuid,
    pub purpose: Purpose,
    /// The address the link was sent to, which it proves.
    pub email: String,
}

/// Stores the token of a job; a job handled again replaces its own token
/// (as for reset links). False when the job's token was already used or
/// superseded: nothing is left to send.
pub async fn store_job_token(
    client: &impl GenericClient,
    request_id: Uuid,
    user_id: Uuid,
    purpose: Purpose,
    email: &str,
    token_hash: &[u8],
    ttl_seconds: i64,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO email_tokens \
            (token_hash, request_id, user_id, purpose, email, expires_at) \
        VALUES ($1, $2, $3, $4, $5, now() + $6::bigint * interval '1 second') \
        ON CONFLICT (request_id) DO UPDATE \
            SET token_hash = EXCLUDED.token_hash, created_at = EXCLUDED.created_at, \
                expires_at = EXCLUDED.expires_at \
            WHERE email_tokens.used_at IS NULL AND email_tokens.superseded_at IS NULL";
    let statement = client.prepare_cached(SQL).await?;
    let stored = client
        .execute(
            &statement,
            &[
                &token_hash,
                &request_id,
                &user_id,
                &purpose.as_str(),
                &email,
                &ttl_seconds,
            ],
        )
        .await?;
    Ok(stored == 1)
}

/// Supersedes every other live token of the user with the same purpose.
pub async fn supersede_others(
    client: &impl GenericClient,
    user_id: Uuid,
    purpose: Purpose,
    keep: &[u8],
) -> Result<u64, tokio_postgres::Error> {
    const SQL: &str = "UPDATE email_tokens SET superseded_at = now() \
        WHERE user_id = $1 AND purpose = $2 AND used_at IS NULL AND superseded_at IS NULL \
          AND token_hash <> $3";
    let statement = client.prepare_cached(SQL).await?;
    client
        .execute(&statement, &[&user_id, &purpose.as_str(), &keep])
        .await
}

/// Spends a live token (unused, not superseded, unexpired), atomically: of
/// two confirms of one token, one gets it.
pub async fn spend(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> Result<Option<SpentToken>, tokio_postgres::Error> {
    const SQL: &str = "UPDATE email_tokens SET used_at = now() \
        WHERE token_hash = $1 AND used_at IS NULL AND superseded_at IS NULL AND expires_at > now() \
        RETURNING user_id, purpose, email";
    let statement = client.prepare_cached(SQL).await?;
    let row = client.query_opt(&statement, &[&token_hash]).await?;
    Ok(row.and_then(|row| {
        Some(SpentToken {
            user_id: row.get(0),
            purpose: Purpose::parse(row.get(1))?,
            email: row.get(2),
        })
    }))
}

/// Supersedes every live token of the user, whatever it proves.
pub async fn supersede_all(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<u64, tokio_postgres::Error> {
    const SQL: &str = "UPDATE email_tokens SET superseded_at = now() \
        WHERE user_id = $1 AND used_at IS NULL AND superseded_at IS NULL";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&user_id]).await
}

/// What the page behind a link needs to know before it spends it: what a
/// live token proves, or `None` for an unknown, used, superseded or
/// expired one.
pub async fn live_purpose(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> Result<Option<Purpose>, tokio_postgres::Error> {
    const SQL: &str = "SELECT purpose FROM email_tokens \
        WHERE token_hash = $1 AND used_at IS NULL AND superseded_at IS NULL AND expires_at > now()";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_opt(&statement, &[&token_hash])
        .await?
        .and_then(|row| Purpose::parse(row.get(0))))
}
