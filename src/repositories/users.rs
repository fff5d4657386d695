//! The `users` table.

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use tokio_postgres::Row;
use uuid::Uuid;

#[derive(Debug, Clone)]
pub struct UserRecord {
    pub id: Uuid,
    pub email: String,
    pub full_name: Option<String>,
    pub password_hash: String,
    /// Changes when the password is replaced, not when it is re-hashed.
    pub password_version: i32,
    pub email_verified: bool,
    pub mfa_enabled: bool,
    /// An admin disabled the account: no login, refresh or link.
    pub disabled: bool,
    /// False for an invited account until its set-password link is used.
    pub has_password: bool,
    pub created_at: OffsetDateTime,
}

impl From<&Row> for UserRecord {
    fn from(row: &Row) -> Self {
        Self {
            id: row.get("id"),
            email: row.get("email"),
            full_name: row.get("full_name"),
            password_hash: row.get("password_hash"),
            password_version: row.get("password_version"),
            email_verified: row.get("email_verified"),
            mfa_enabled: row.get("mfa_enabled"),
            disabled: row.get("disabled"),
            has_password: row.get("has_password"),
            created_at: row.get("created_at"),
        }
    }
}

/// Inserts a user; `None` when the email is taken.
pub async fn insert_user(
    client: &impl GenericClient,
    id: Uuid,
    email: &str,
    password_hash: &str,
    full_name: Option<&str>,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO users (id, email, password_hash, full_name) \
                       VALUES ($1, $2, $3, $4) \
                       ON CONFLICT (email) DO NOTHING \
                       RETURNING id, email, full_name, password_hash, password_version, email_verified, mfa_enabled, disabled_at IS NOT NULL AS disabled, has_password, created_at";
    let statement = client.prepare_cached(SQL).await?;
    let row = client
        .query_opt(&statement, &[&id, &email, &password_hash, &full_name])
        .await?;
    Ok(row.as_ref().map(UserRecord::from))
}

pub async fn email_exists(
    client: &impl GenericClient,
    email: &str,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "SELECT EXISTS (SELECT 1 FROM users WHERE email = $1)";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.query_one(&statement, &[&email]).await?.get(0))
}

/// An active user by normalised email.
pub async fn find_active_user_by_email(
    client: &impl GenericClient,
    email: &str,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    const SQL: &str = "SELECT id, email, full_name, password_hash, password_version, email_verified, mfa_enabled, disabled_at IS NOT NULL AS disabled, has_password, created_at \
                       FROM users WHERE email = $1 AND is_active";
    let statement = client.prepare_cached(SQL).await?;
    let row = client.query_opt(&statement, &[&email]).await?;
    Ok(row.as_ref().map(UserRecord::from))
}

/// An active user by id.
pub async fn find_active_user(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    const SQL: &str = "SELECT id, email, full_name, password_hash, password_version, email_verified, mfa_enabled, disabled_at IS NOT NULL AS disabled, has_password, created_at \
                       FROM users WHERE id = $1 AND is_active";
    let statement = client.prepare_cached(SQL).await?;
    let row = client.query_opt(&statement, &[&id]).await?;
    Ok(row.as_ref().map(UserRecord::from))
}

pub async fn update_full_name(
    client: &impl GenericClient,
    id: Uuid,
    full_name: Option<&str>,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    const SQL: &str = "UPDATE users SET full_name = $2, updated_at = now() \
                       WHERE id = $1 AND is_active \
                       RETURNING id, email, full_name, password_hash, password_version, email_verified, mfa_enabled, disabled_at IS NOT NULL AS disabled, has_password, created_at";
    let statement = client.prepare_cached(SQL).await?;
    let row = client.query_opt(&statement, &[&id, &full_name]).await?;
    Ok(row.as_ref().map(UserRecord::from))
}

/// Replaces the password, moving its version on so that logins which
/// verified the old one cannot start a session. Returns false when the user
/// no longer exists.
pub async fn update_password_hash(
    client: &impl GenericClient,
    id: Uuid,
    password_hash: &str,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "UPDATE users SET password_hash = $2, has_password = true, \
        password_version = password_version + 1, updated_at = now() \
        WHERE id = $1 AND is_active";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.execute(&statement, &[&id, &password_hash]).await? == 1)
}

/// Stores a new hash of the same password (newer Argon2 parameters), only
/// while `password_version` is still the one that was verified.
pub async fn rehash_password(
    client: &impl GenericClient,
    id: Uuid,
    password_version: i32,
    password_hash: &str,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "UPDATE users SET password_hash = $3 \
        WHERE id = $1 AND password_version = $2 AND is_active";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .execute(&statement, &[&id, &password_version, &password_hash])
        .await?
        == 1)
}

/// Marks the address verified, if it is still the account's.
pub async fn mark_email_verified(
    client: &impl GenericClient,
    id: Uuid,
    email: &str,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "UPDATE users SET email_verified = true, updated_at = now() \
        WHERE id = $1 AND email = $2 AND is_active";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.execute(&statement, &[&id, &email]).await? == 1)
}

/// What [`change_email`] found.
pub enum EmailChange {
    /// Changed; the address it had before.
    Changed { old_email: String },
    /// Another account has the address.
    Taken,
    /// The account is gone.
    Gone,
}

/// Moves the account to `new_email`, verified (the link proved it). The
/// unique index settles a race with a registration of the same address.
pub async fn change_email(
    client: &impl GenericClient,
    id: Uuid,
    new_email: &str,
) -> Result<EmailChange, tokio_postgres::Error> {
    const SQL: &str = "UPDATE users u SET email = $2, email_verified = true, updated_at = now() \
        FROM (SELECT id, email FROM users WHERE id = $1 AND is_active FOR UPDATE) old \
        WHERE u.id = old.id \
        RETURNING old.email";
    let statement = client.prepare_cached(SQL).await?;
    match client.query_opt(&statement, &[&id, &new_email]).await {
        Ok(Some(row)) => Ok(EmailChange::Changed {
            old_email: row.get(0),
        }),
        Ok(None) => Ok(EmailChange::Gone),
        Err(error) if error.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
            Ok(EmailChange::Taken)
        }
        Err(error) => Err(error),
    }
}

/// Deletes the account; its sessions, tokens and requests go with it
/// (ON DELETE CASCADE).
pub async fn delete_user(
    client: &impl GenericClient,
    id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "DELETE FROM users WHERE id = $1";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.execute(&statement, &[&id]).await? == 1)
}

/// Marks the moment the account recovered: link jobs requested before it
/// make no link. The clock is read at the statement, not at the start of
/// its transaction, so the mark falls as late as it can.
pub async fn revoke_links(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<(), tokio_postgres::Error> {
    const SQL: &str = "UPDATE users SET links_revoked_at = clock_timestamp() WHERE id = $1";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&user_id]).await?;
    Ok(())
}

/// Whether the account recovered after `requested_at`, so a link asked for
/// then must not be made.
pub async fn links_revoked_since(
    client: &impl GenericClient,
    user_id: Uuid,
    requested_at: time::OffsetDateTime,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "SELECT links_revoked_at IS NOT NULL AND links_revoked_at >= $2 \
        FROM users WHERE id = $1";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_opt(&statement, &[&user_id, &requested_at])
        .await?
        .is_some_and(|row| row.get(0)))
}

/// Inserts an invited account: unverified, with `has_password` false and a
/// hash of a random password nobody was told, so every login fails after
/// the same Argon2 run as a wrong password. `None` when the email is taken.
pub async fn insert_invited_user(
    client: &impl GenericClient,
    id: Uuid,
    email: &str,
    unusable_hash: &str,
    full_name: Option<&str>,
) -> Result<Option<UserRecord>, tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO users (id, email, password_hash, full_name, has_password) \
                       VALUES ($1, $2, $3, $4, false) \
                       ON CONFLICT (email) DO NOTHING \
                       RETURNING id, email, full_name, password_hash, password_version, email_verified, mfa_enabled, disabled_at IS NOT NULL AS disabled, has_password, created_at";
    let statement = client.prepare_cached(SQL).await?;
    let row = client
        .query_opt(&statement, &[&id, &email, &unusable_hash, &full_name])
        .await?;
    Ok(row.as_ref().map(UserRecord::from))
}

/// Disables (`Some(reason)`) or enables (`None`) the account, holding its
/// row until the transaction ends. `None` when the account is gone;
/// otherwise whether its state changed (disabling a disabled account keeps
/// its first reason).
pub async fn set_disabled(
    client: &impl GenericClient,
    id: Uuid,
    reason: Option<&str>,
) -> Result<Option<bool>, tokio_postgres::Error> {
    const SQL: &str = "WITH before AS ( \
            SELECT id, disabled_at FROM users WHERE id = $1 AND is_active FOR UPDATE \
        ) \
        UPDATE users u SET \
            disabled_at = CASE WHEN $2 THEN coalesce(before.disabled_at, now()) END, \
            disabled_reason = CASE WHEN NOT $2 THEN NULL \
                WHEN before.disabled_at IS NULL THEN $3 ELSE u.disabled_reason END, \
            updated_at = now() \
        FROM before WHERE u.id = before.id \
        RETURNING (before.disabled_at IS NULL) = $2";
    let statement = client.prepare_cached(SQL).await?;
    let disable = reason.is_some();
    Ok(client
        .query_opt(&statement, &[&id, &disable, &reason])
        .await?
        .map(|row| row.get(0)))
}
