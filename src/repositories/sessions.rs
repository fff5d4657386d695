//! Sessions (refresh-token families) and their refresh tokens.
//!
//! Rotation is one statement: of concurrent rotations of the same token,
//! PostgreSQL lets the first `UPDATE ... WHERE used_at IS NULL` win and
//! re-checks the others against the committed row, where they match
//! nothing. The statement also locks the session row, so a revocation and a
//! rotation of one session never interleave. Losers then read the token's state to choose between the grace
//! and the reuse path (CONTRACT.md, "Authentication model").

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use uuid::Uuid;

/// Why a session ended; the values of `sessions.revoked_reason`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevokeReason {
    Logout,
    LogoutAll,
    ReuseDetected,
    SessionDeleted,
    PasswordChanged,
    PasswordReset,
    MfaEnabled,
    AccountDisabled,
}

impl RevokeReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevokeReason::Logout => "logout",
            RevokeReason::LogoutAll => "logout_all",
            RevokeReason::ReuseDetected => "reuse_detected",
            RevokeReason::SessionDeleted => "session_deleted",
            RevokeReason::PasswordChanged => "password_changed",
            RevokeReason::PasswordReset => "password_reset",
            RevokeReason::MfaEnabled => "mfa_enabled",
            RevokeReason::AccountDisabled => "account_disabled",
        }
    }
}

/// The session and user a refresh token belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenOwner {
    pub session_id: Uuid,
    pub user_id: Uuid,
    /// The user's, for the access token's `email_verified` claim.
    pub email_verified: bool,
    /// How the session's login authenticated, for the `amr` claim.
    pub amr: Vec<String>,
}

/// What is known about a presented refresh token that did not rotate.
#[derive(Debug, Clone)]
pub struct RefreshTokenState {
    pub owner: TokenOwner,
    pub session_revoked: bool,
    pub expired: bool,
    /// Seconds since it was used, if it was.
    pub used_seconds_ago: Option<f64>,
}

#[derive(Debug, Clone)]
pub struct SessionRecord {
    pub id: Uuid,
    pub created_at: OffsetDateTime,
    pub last_used_at: OffsetDateTime,
    pub user_agent: Option<String>,
}

/// Starts a session with its first refresh token, in one statement, if
/// the user's password is still at `password_version`; false otherwise.
///
/// The user row is updated (`last_login_at`), so it is locked: a password
/// change or a disabling holding the row makes this wait and then re-check
/// the version and the account's state, and one that comes later waits for
/// this session to commit and then revokes it. Either way no session
/// outlives the password it was opened with (CONTRACT.md, "Abuse limits
/// and retention") nor starts on a disabled account.
pub async fn create_session(
    client: &impl GenericClient,
    new: &NewSession<'_>,
    token_hash: &[u8],
    lifetimes: Lifetimes,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "WITH owner AS ( \
            UPDATE users SET last_login_at = now() \
            WHERE id = $2 AND password_version = $6 AND is_active AND disabled_at IS NULL \
            RETURNING id \
        ), session AS ( \
            INSERT INTO sessions (id, user_id, user_agent, expires_at, max_expires_at, amr) \
            SELECT $1, id, $3, now() + least($5::bigint, $7::bigint) * interval '1 second', \
                now() + $7::bigint * interval '1 second', $8 \
            FROM owner \
            RETURNING id, user_id, expires_at \
        ) \
        INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at) \
        SELECT $4, id, user_id, expires_at FROM session";
    let statement = client.prepare_cached(SQL).await?;
    let inserted = client
        .execute(
            &statement,
            &[
                &new.session_id,
                &new.user_id,
                &new.user_agent,
                &token_hash,
                &lifetimes.refresh_seconds,
                &new.password_version,
                &lifetimes.session_max_seconds,
                &new.amr,
            ],
        )
        .await?;
    Ok(inserted == 1)
}

/// The session a login opens.
pub struct NewSession<'a> {
    pub session_id: Uuid,
    pub user_id: Uuid,
    pub user_agent: Option<&'a str>,
    /// The password version the login verified.
    pub password_version: i32,
    /// How the login authenticated (RFC 8176): `pwd`, and `otp` after a code.
    pub amr: Vec<String>,
}

/// How long refresh tokens and sessions live.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    /// Of each refresh token, from its issue.
    pub refresh_seconds: i64,
    /// Of a session, from its login; no rotation extends it.
    pub session_max_seconds: i64,
}

/// Marks the presented token used and issues its successor, if the token
/// is unused, unexpired and its session live. One round trip.
pub async fn rotate_refresh_token(
    client: &impl GenericClient,
    presented_hash: &[u8],
    new_hash: &[u8],
    ttl_seconds: i64,
) -> Result<Option<TokenOwner>, tokio_postgres::Error> {
    // New tokens and the session expire at the refresh lifetime, but never
    // past the session's absolute end (`max_expires_at`).
    // `live` locks the session row: a revocation committing meanwhile is
    // re-checked against, so no token is issued for a just-revoked session.
    const SQL: &str = "WITH live AS ( \
            SELECT s.id, u.email_verified, s.amr, \
                least(now() + $3::bigint * interval '1 second', s.max_expires_at) AS expires_at \
            FROM refresh_tokens t \
            JOIN sessions s ON s.id = t.session_id \
            JOIN users u ON u.id = s.user_id \
            WHERE t.token_hash = $1 AND s.revoked_at IS NULL AND u.is_active \
              AND u.disabled_at IS NULL \
              AND s.max_expires_at > now() \
            FOR NO KEY UPDATE OF s \
        ), rotated AS ( \
            UPDATE refresh_tokens t SET used_at = now() \
            FROM live \
            WHERE t.token_hash = $1 AND t.session_id = live.id \
              AND t.used_at IS NULL AND t.expires_at > now() \
            RETURNING t.session_id, t.user_id, live.expires_at, live.email_verified, live.amr \
        ), issued AS ( \
            INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at) \
            SELECT $2, session_id, user_id, expires_at FROM rotated \
        ), touched AS ( \
            UPDATE sessions SET last_used_at = now(), \
                expires_at = (SELECT expires_at FROM rotated) \
            WHERE id = (SELECT session_id FROM rotated) \
        ) \
        SELECT session_id, user_id, email_verified, amr FROM rotated";
    let statement = client.prepare_cached(SQL).await?;
    let row = client
        .query_opt(&statement, &[&presented_hash, &new_hash, &ttl_seconds])
        .await?;
    Ok(row.map(|row| TokenOwner {
        session_id: row.get(0),
        user_id: row.get(1),
        email_verified: row.get(2),
        amr: row.get(3),
    }))
}

pub async fn find_refresh_token(
    client: &impl GenericClient,
    hash: &[u8],
) -> Result<Option<RefreshTokenState>, tokio_postgres::Error> {
    const SQL: &str = "SELECT t.session_id, t.user_id, s.revoked_at IS NOT NULL, \
            t.expires_at <= now(), EXTRACT(EPOCH FROM now() - t.used_at)::float8, u.email_verified, \
            s.amr \
        FROM refresh_tokens t JOIN sessions s ON s.id = t.session_id \
        JOIN users u ON u.id = t.user_id \
        WHERE t.token_hash = $1";
    let statement = client.prepare_cached(SQL).await?;
    let row = client.query_opt(&statement, &[&hash]).await?;
    Ok(row.map(|row| RefreshTokenState {
        owner: TokenOwner {
            session_id: row.get(0),
            user_id: row.get(1),
            email_verified: row.get(5),
            amr: row.get(6),
        },
        session_revoked: row.get(2),
        expired: row.get(3),
        used_seconds_ago: row.get(4),
    }))
}

/// The grace path: a token rotated less than `grace_seconds` ago gets
/// another successor in its still-live session.
pub async fn issue_grace_token(
    client: &impl GenericClient,
    presented_hash: &[u8],
    new_hash: &[u8],
    ttl_seconds: i64,
    grace_seconds: f64,
) -> Result<Option<TokenOwner>, tokio_postgres::Error> {
    const SQL: &str = "WITH presented AS ( \
            SELECT t.session_id, t.user_id, u.email_verified, s.amr, \
                least(now() + $3::bigint * interval '1 second', s.max_expires_at) AS expires_at \
            FROM refresh_tokens t \
            JOIN sessions s ON s.id = t.session_id \
            JOIN users u ON u.id = s.user_id \
            WHERE t.token_hash = $1 AND s.revoked_at IS NULL AND u.is_active AND u.disabled_at IS NULL \
              AND s.max_expires_at > now() \
              AND t.used_at > now() - $4::float8 * interval '1 second' \
            FOR NO KEY UPDATE OF s \
        ), issued AS ( \
            INSERT INTO refresh_tokens (token_hash, session_id, user_id, expires_at) \
            SELECT $2, session_id, user_id, expires_at FROM presented \
        ), touched AS ( \
            UPDATE sessions SET last_used_at = now(), \
                expires_at = (SELECT expires_at FROM presented) \
            WHERE id = (SELECT session_id FROM presented) \
        ) \
        SELECT session_id, user_id, email_verified, amr FROM presented";
    let statement = client.prepare_cached(SQL).await?;
    let row = client
        .query_opt(
            &statement,
            &[&presented_hash, &new_hash, &ttl_seconds, &grace_seconds],
        )
        .await?;
    Ok(row.map(|row| TokenOwner {
        session_id: row.get(0),
        user_id: row.get(1),
        email_verified: row.get(2),
        amr: row.get(3),
    }))
}

/// Whether `session_id` is a live session of `user_id`.
pub async fn is_live_session(
    client: &impl GenericClient,
    user_id: Uuid,
    session_id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "SELECT EXISTS (SELECT 1 FROM sessions \
        WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now())";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_one(&statement, &[&session_id, &user_id])
        .await?
        .get(0))
}

/// Revokes one session of `user_id`; false if it was not live.
pub async fn revoke_session(
    client: &impl GenericClient,
    user_id: Uuid,
    session_id: Uuid,
    reason: RevokeReason,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "UPDATE sessions SET revoked_at = now(), revoked_reason = $3 \
        WHERE id = $1 AND user_id = $2 AND revoked_at IS NULL AND expires_at > now()";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .execute(&statement, &[&session_id, &user_id, &reason.as_str()])
        .await?
        == 1)
}

/// Logout: the bearer's session and, when a refresh cookie is sent, the
/// cookie's session if it is the same user's. Returns the revoked ids.
pub async fn revoke_for_logout(
    client: &impl GenericClient,
    user_id: Uuid,
    session_id: Uuid,
    cookie_hash: Option<&[u8]>,
) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    const SQL: &str = "UPDATE sessions SET revoked_at = now(), revoked_reason = 'logout' \
        WHERE user_id = $1 AND revoked_at IS NULL \
          AND (id = $2 OR id = (SELECT session_id FROM refresh_tokens WHERE token_hash = $3)) \
        RETURNING id";
    let statement = client.prepare_cached(SQL).await?;
    let rows = client
        .query(&statement, &[&user_id, &session_id, &cookie_hash])
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Revokes every live session of `user_id` except `keep`.
pub async fn revoke_all_sessions(
    client: &impl GenericClient,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
) -> Result<Vec<Uuid>, tokio_postgres::Error> {
    const SQL: &str = "UPDATE sessions SET revoked_at = now(), revoked_reason = $3 \
        WHERE user_id = $1 AND revoked_at IS NULL AND id IS DISTINCT FROM $2 \
        RETURNING id";
    let statement = client.prepare_cached(SQL).await?;
    let rows = client
        .query(&statement, &[&user_id, &keep, &reason.as_str()])
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Revokes the session a refresh token belongs to (the reuse path).
pub async fn revoke_session_by_id(
    client: &impl GenericClient,
    session_id: Uuid,
    reason: RevokeReason,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "UPDATE sessions SET revoked_at = now(), revoked_reason = $2 \
        WHERE id = $1 AND revoked_at IS NULL";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .execute(&statement, &[&session_id, &reason.as_str()])
        .await?
        == 1)
}

/// The user's live sessions, newest use first.
pub async fn list_live_sessions(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<SessionRecord>, tokio_postgres::Error> {
    const SQL: &str = "SELECT id, created_at, last_used_at, user_agent FROM sessions \
        WHERE user_id = $1 AND revoked_at IS NULL AND expires_at > now() \
        ORDER BY last_used_at DESC, id";
    let statement = client.prepare_cached(SQL).await?;
    let rows = client.query(&statement, &[&user_id]).await?;
    Ok(rows
        .iter()
        .map(|row| SessionRecord {
            id: row.get(0),
            created_at: row.get(1),
            last_used_at: row.get(2),
            user_agent: row.get(3),
        })
        .collect())
}
