//! The second factor: TOTP factors, recovery codes and login challenges.

use deadpool_postgres::GenericClient;
use uuid::Uuid;

/// A user's TOTP factor.
pub struct Factor {
    pub sealed_secret: Vec<u8>,
    pub enabled: bool,
}

/// A login waiting for its second step.
pub struct Challenge {
    pub user_id: Uuid,
    pub password_version: i32,
    pub user_agent: Option<String>,
}

/// Stores a new pending factor, replacing a pending one; false when an
/// enabled factor exists.
pub async fn put_pending(
    client: &impl GenericClient,
    user_id: Uuid,
    sealed_secret: &[u8],
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO mfa_totp (user_id, sealed_secret) VALUES ($1, $2) \
        ON CONFLICT (user_id) DO UPDATE \
            SET sealed_secret = EXCLUDED.sealed_secret, created_at = now(), last_step = NULL \
            WHERE mfa_totp.enabled_at IS NULL";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .execute(&statement, &[&user_id, &sealed_secret])
        .await?
        == 1)
}

pub async fn find_factor(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Option<Factor>, tokio_postgres::Error> {
    const SQL: &str =
        "SELECT sealed_secret, enabled_at IS NOT NULL FROM mfa_totp WHERE user_id = $1";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_opt(&statement, &[&user_id])
        .await?
        .map(|row| Factor {
            sealed_secret: row.get(0),
            enabled: row.get(1),
        }))
}

/// The user's pending factor, if it was started less than `max_age_seconds`
/// ago; an older one has expired.
pub async fn find_pending(
    client: &impl GenericClient,
    user_id: Uuid,
    max_age_seconds: i64,
) -> Result<Option<Factor>, tokio_postgres::Error> {
    const SQL: &str = "SELECT sealed_secret FROM mfa_totp \
        WHERE user_id = $1 AND enabled_at IS NULL \
          AND created_at > now() - $2::bigint * interval '1 second'";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_opt(&statement, &[&user_id, &max_age_seconds])
        .await?
        .map(|row| Factor {
            sealed_secret: row.get(0),
            enabled: false,
        }))
}

/// Enables the pending factor whose secret is `sealed_secret` (the one a
/// code was checked against) with its first accepted step; false if that
/// secret is no longer what is pending (replaced, expired after
/// `max_age_seconds`, enabled meanwhile, or gone).
pub async fn enable(
    client: &impl GenericClient,
    user_id: Uuid,
    sealed_secret: &[u8],
    step: i64,
    max_age_seconds: i64,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "WITH enabled AS ( \
            UPDATE mfa_totp SET enabled_at = now(), last_step = $3 \
            WHERE user_id = $1 AND sealed_secret = $2 AND enabled_at IS NULL \
              AND created_at > now() - $4::bigint * interval '1 second' \
            RETURNING user_id \
        ) \
        UPDATE users SET mfa_enabled = true WHERE id = (SELECT user_id FROM enabled)";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .execute(
            &statement,
            &[&user_id, &sealed_secret, &step, &max_age_seconds],
        )
        .await?
        == 1)
}

/// Accepts time step `step` of an enabled factor if no later or equal one
/// was accepted before: one atomic statement, so of two logins racing with
/// one code, one wins (RFC 6238, section 5.2).
pub async fn accept_step(
    client: &impl GenericClient,
    user_id: Uuid,
    step: i64,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "UPDATE mfa_totp SET last_step = $2 \
        WHERE user_id = $1 AND enabled_at IS NOT NULL AND (last_step IS NULL OR last_step < $2)";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.execute(&statement, &[&user_id, &step]).await? == 1)
}

/// Replaces the user's recovery codes.
pub async fn replace_recovery_codes(
    client: &impl GenericClient,
    user_id: Uuid,
    hashes: &[&[u8]],
) -> Result<(), tokio_postgres::Error> {
    const DELETE: &str = "DELETE FROM mfa_recovery_codes WHERE user_id = $1";
    const INSERT: &str = "INSERT INTO mfa_recovery_codes (user_id, code_hash) \
        SELECT $1, unnest($2::bytea[])";
    let delete = client.prepare_cached(DELETE).await?;
    client.execute(&delete, &[&user_id]).await?;
    let insert = client.prepare_cached(INSERT).await?;
    client.execute(&insert, &[&user_id, &hashes]).await?;
    Ok(())
}

/// Spends an unused recovery code, atomically; false if there is none.
pub async fn spend_recovery_code(
    client: &impl GenericClient,
    user_id: Uuid,
    hash: &[u8],
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "UPDATE mfa_recovery_codes SET used_at = now() \
        WHERE user_id = $1 AND code_hash = $2 AND used_at IS NULL";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.execute(&statement, &[&user_id, &hash]).await? == 1)
}

/// Removes the factor and its recovery codes.
pub async fn remove(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    const SQL: &str = "WITH factor AS (DELETE FROM mfa_totp WHERE user_id = $1), \
            codes AS (DELETE FROM mfa_recovery_codes WHERE user_id = $1) \
        UPDATE users SET mfa_enabled = false WHERE id = $1";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&user_id]).await?;
    Ok(())
}

/// Any one stored factor, to check at start that the key opens it.
pub async fn any_factor(
    client: &impl GenericClient,
) -> Result<Option<(Uuid, Vec<u8>)>, tokio_postgres::Error> {
    const SQL: &str = "SELECT user_id, sealed_secret FROM mfa_totp LIMIT 1";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_opt(&statement, &[])
        .await?
        .map(|row| (row.get(0), row.get(1))))
}

pub async fn create_challenge(
    client: &impl GenericClient,
    token_hash: &[u8],
    challenge: &Challenge,
    ttl_seconds: i64,
) -> Result<(), tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO mfa_challenges \
            (token_hash, user_id, password_version, user_agent, expires_at) \
        VALUES ($1, $2, $3, $4, now() + $5::bigint * interval '1 second')";
    let statement = client.prepare_cached(SQL).await?;
    client
        .execute(
            &statement,
            &[
                &token_hash,
                &challenge.user_id,
                &challenge.password_version,
                &challenge.user_agent,
                &ttl_seconds,
            ],
        )
        .await?;
    Ok(())
}

/// A live challenge (unused, unexpired, fewer than `max_failures` wrong
/// codes), locked until the transaction ends.
pub async fn lock_challenge(
    client: &impl GenericClient,
    token_hash: &[u8],
    max_failures: i32,
) -> Result<Option<Challenge>, tokio_postgres::Error> {
    const SQL: &str = "SELECT user_id, password_version, user_agent FROM mfa_challenges \
        WHERE token_hash = $1 AND used_at IS NULL AND expires_at > now() AND failures < $2 \
        FOR UPDATE";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_opt(&statement, &[&token_hash, &max_failures])
        .await?
        .map(|row| Challenge {
            user_id: row.get(0),
            password_version: row.get(1),
            user_agent: row.get(2),
        }))
}

pub async fn record_failure(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> Result<(), tokio_postgres::Error> {
    const SQL: &str = "UPDATE mfa_challenges SET failures = failures + 1 WHERE token_hash = $1";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&token_hash]).await?;
    Ok(())
}

pub async fn spend_challenge(
    client: &impl GenericClient,
    token_hash: &[u8],
) -> Result<(), tokio_postgres::Error> {
    const SQL: &str = "UPDATE mfa_challenges SET used_at = now() WHERE token_hash = $1";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&token_hash]).await?;
    Ok(())
}
