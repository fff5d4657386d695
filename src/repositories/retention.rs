//! The retention purge (CONTRACT.md, "Abuse limits and retention"): rows
//! that no rule needs any more are deleted once older than the retention.
//! Each statement deletes a bounded batch, so a large backlog never holds
//! long locks; the caller repeats until a batch comes back short.

use deadpool_postgres::GenericClient;

/// What one statement may delete at once.
pub const BATCH: i64 = 1000;

/// Takes the purge lock for this connection's session; false when another
/// process (an api replica) is purging right now. Each batch commits on
/// its own, so the lock is a session lock, given back by [`unlock`].
pub async fn try_lock(client: &impl GenericClient) -> Result<bool, tokio_postgres::Error> {
    // The two-key form, in a key space of its own (see password_resets).
    const SQL: &str = "SELECT pg_try_advisory_lock(8, 0)";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.query_one(&statement, &[]).await?.get(0))
}

pub async fn unlock(client: &impl GenericClient) -> Result<(), tokio_postgres::Error> {
    const SQL: &str = "SELECT pg_advisory_unlock(8, 0)";
    let statement = client.prepare_cached(SQL).await?;
    client.query_one(&statement, &[]).await?;
    Ok(())
}

/// The purge statements, one per kind of row, each taking the retention in
/// seconds and the batch size. The order matters only for speed: requests
/// go after their tokens.
pub const STATEMENTS: [(&str, &str); 9] = [
    (
        // Ended sessions (revoked, or expired) take their refresh tokens
        // along (ON DELETE CASCADE). A live session's used tokens stay until
        // their own expiry, so reuse detection keeps working all its life.
        // One statement per way of ending, each served by an index, where
        // `coalesce(revoked_at, expires_at)` could use none: each batch
        // scanned the table over the rows the batches before left dead
        // (bench/GROWTH.md).
        "sessions",
        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
           WHERE revoked_at < now() - $1::bigint * interval '1 second' LIMIT $2)",
    ),
    (
        // Expired refresh tokens, and with them the sessions past their
        // sliding expiry: each rotation gives the new token and the session
        // the same expiry, and a token's never changes, so a session is
        // found through its tokens. sessions.expires_at has no index, so a
        // refresh's update of it stays HOT (sql/V12). One statement, so a
        // batch is always the next expired tokens, from the oldest (their
        // index): a session with several expired tokens, or a live one
        // with expired used tokens, never stops the purge short. The batch
        // counts the tokens; the sessions' other tokens go by the cascade.
        "refresh_tokens",
        "WITH batch AS MATERIALIZED (SELECT token_hash, session_id FROM refresh_tokens \
           WHERE expires_at < now() - $1::bigint * interval '1 second' ORDER BY expires_at LIMIT $2), \
         ended AS (DELETE FROM sessions s WHERE s.id IN (SELECT session_id FROM batch) \
           AND s.revoked_at IS NULL AND s.expires_at < now() - $1::bigint * interval '1 second') \
         DELETE FROM refresh_tokens WHERE token_hash IN (SELECT token_hash FROM batch)",
    ),
    (
        // Past the absolute end, whatever their tokens.
        "sessions",
        "DELETE FROM sessions WHERE id IN (SELECT id FROM sessions \
           WHERE revoked_at IS NULL AND max_expires_at < now() - $1::bigint * interval '1 second' \
           LIMIT $2)",
    ),
    (
        // Used, superseded or expired reset tokens.
        "password_reset_tokens",
        "DELETE FROM password_reset_tokens WHERE token_hash IN ( \
           SELECT token_hash FROM password_reset_tokens \
           WHERE least(expires_at, used_at, superseded_at) < now() - $1::bigint * interval '1 second' \
           LIMIT $2)",
    ),
    (
        // Used, superseded or expired verification and new-address links.
        "email_tokens",
        "DELETE FROM email_tokens WHERE token_hash IN (SELECT token_hash FROM email_tokens \
           WHERE least(expires_at, used_at, superseded_at) < now() - $1::bigint * interval '1 second' \
           LIMIT $2)",
    ),
    (
        // Second login steps, spent or expired.
        "mfa_challenges",
        "DELETE FROM mfa_challenges WHERE token_hash IN (SELECT token_hash FROM mfa_challenges \
           WHERE least(expires_at, used_at) < now() - $1::bigint * interval '1 second' LIMIT $2)",
    ),
    (
        // Old requests, unless a token of theirs is still kept.
        "password_reset_requests",
        "DELETE FROM password_reset_requests WHERE id IN (SELECT r.id FROM password_reset_requests r \
           WHERE r.requested_at < now() - $1::bigint * interval '1 second' \
             AND NOT EXISTS (SELECT 1 FROM password_reset_tokens t WHERE t.request_id = r.id) \
           LIMIT $2)",
    ),
    (
        // A job id is needed only while the broker may still deliver the
        // job; the retention is far longer than any retry.
        "processed_jobs",
        "DELETE FROM processed_jobs WHERE job_id IN (SELECT job_id FROM processed_jobs \
           WHERE processed_at < now() - $1::bigint * interval '1 second' LIMIT $2)",
    ),
    (
        // Published jobs, kept for inspection until the retention passes.
        "outbox",
        "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox \
           WHERE published_at < now() - $1::bigint * interval '1 second' LIMIT $2)",
    ),
];

/// Security events, purged by their own retention (`EVENT_RETENTION_DAYS`).
pub const EVENTS: (&str, &str) = (
    "security_events",
    "DELETE FROM security_events WHERE id IN (SELECT id FROM security_events \
       WHERE occurred_at < now() - $1::bigint * interval '1 second' LIMIT $2)",
);

/// Runs one purge statement once; the number of rows deleted.
pub async fn purge_batch(
    client: &impl GenericClient,
    sql: &str,
    retention_seconds: i64,
) -> Result<u64, tokio_postgres::Error> {
    let statement = client.prepare_cached(sql).await?;
    client
        .execute(&statement, &[&retention_seconds, &BATCH])
        .await
}
