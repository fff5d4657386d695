//! What an admin does to accounts (CONTRACT.md, "Admin API"): find them,
//! invite, disable and enable, log out, remove factors, send a reset link,
//! clear the failure count, delete. Each action writes the event a user's
//! own action would, with the admin key's name as its actor (the
//! [`Origin`]'s `admin`), in the transaction of the change.

use serde_json::json;
use uuid::Uuid;

use super::events::{self, Event, EventType, Origin};
use super::{AppContext, ServiceError, db, jobs, limits, paging, sessions, users as accounts};
use crate::domain::FullName;
use crate::messaging::jobs::{JobKind, JobMessage};
use crate::repositories::directory::{self, DirectoryEntry, Filter};
use crate::repositories::sessions::{RevokeReason, SessionRecord};
use crate::repositories::users::{self, UserRecord};
use crate::repositories::{mfa, password_resets};
use crate::security::tokens::OpaqueToken;

/// One page of users and the cursor of the next.
pub struct UsersPage {
    pub users: Vec<DirectoryEntry>,
    pub next_cursor: Option<String>,
}

/// Users matching `filter`, newest first, a page at a time.
pub async fn search(
    ctx: &AppContext,
    filter: &Filter,
    limit: u32,
    cursor: Option<&str>,
) -> Result<UsersPage, ServiceError> {
    let after = paging::check(limit, cursor)?;
    let client = db(&ctx.db).await?;
    let rows = directory::search(&client, filter, after, i64::from(limit) + 1).await?;
    let (users, next_cursor) = paging::split(rows, limit, |u| (u.created_at, u.id));
    Ok(UsersPage { users, next_cursor })
}

/// A user with its sessions and factors.
pub struct UserDetail {
    pub user: DirectoryEntry,
    pub sessions: Vec<SessionRecord>,
    pub totp: bool,
    pub passkeys: i64,
    pub recovery_codes_left: i64,
}

pub async fn find(ctx: &AppContext, id: Uuid) -> Result<UserDetail, ServiceError> {
    let client = db(&ctx.db).await?;
    let user = directory::find(&client, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    let sessions = crate::repositories::sessions::list_live_sessions(&client, id).await?;
    let recovery_codes_left = if user.mfa_enabled {
        directory::recovery_codes_left(&client, id).await?
    } else {
        0
    };
    Ok(UserDetail {
        totp: user.mfa_enabled,
        passkeys: crate::repositories::passkeys::count(&client, id).await?,
        recovery_codes_left,
        user,
        sessions,
    })
}

/// A page of the user's events, as the user would see them.
pub async fn events(
    ctx: &AppContext,
    id: Uuid,
    limit: u32,
    cursor: Option<&str>,
) -> Result<events::Page, ServiceError> {
    paging::check(limit, cursor)?;
    account(ctx, id).await?;
    events::page(ctx, id, limit, cursor).await
}

/// Makes an account with no password for `raw_email` and mails it a
/// set-password link that lives `INVITE_TTL_SECONDS`; using the link sets
/// the password and verifies the address.
pub async fn invite(
    ctx: &AppContext,
    raw_email: &str,
    full_name: Option<FullName>,
    origin: &Origin,
) -> Result<DirectoryEntry, ServiceError> {
    let email = super::parse_email("email", raw_email)?;
    // A hash of a password nobody is told: a login before the invitation is
    // accepted costs the same Argon2 run as any wrong password, and fails.
    let unusable = ctx.hasher.hash(&OpaqueToken::generate().text).await?;
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let user = users::insert_invited_user(
        &transaction,
        Uuid::new_v4(),
        email.as_str(),
        &unusable,
        full_name.as_ref().map(FullName::as_str),
    )
    .await?
    .ok_or(ServiceError::EmailTaken)?;
    let event =
        Event::of(EventType::AccountRegistered, user.id).with_details(json!({"invited": true}));
    events::record(ctx, &transaction, Some(origin), event).await?;
    let message = JobMessage::new(JobKind::InvitationLink, user.id, &user.email);
    password_resets::insert_request(
        &transaction,
        message.job_id,
        Some(user.id),
        &origin.correlation_id,
    )
    .await?;
    jobs::enqueue_message(
        &transaction,
        JobKind::InvitationLink,
        &message,
        &origin.correlation_id,
    )
    .await?;
    let entry = directory::find(&transaction, user.id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    transaction.commit().await?;
    ctx.outbox.wake();
    tracing::info!(user_id = %user.id, "account invited");
    Ok(entry)
}

/// Disables the account: no login, refresh or link from now on, and every
/// session and access token ends at once. Disabling a disabled account
/// ends its sessions again (a retry after a failure finishes the job) and
/// keeps its first reason.
///
/// The account's state commits first; a login or refresh committing after
/// it is refused (both re-check it under the user's row lock), and one that
/// committed before made a session that the sessions' end below takes.
pub async fn disable(
    ctx: &AppContext,
    id: Uuid,
    reason: &str,
    origin: &Origin,
) -> Result<(), ServiceError> {
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let changed = users::set_disabled(&transaction, id, Some(reason))
        .await?
        .ok_or(ServiceError::NotFound)?;
    super::recovery::end_pending_links(&transaction, id).await?;
    if changed {
        let event =
            Event::of(EventType::AccountDisabled, id).with_details(json!({"reason": reason}));
        events::record(ctx, &transaction, Some(origin), event).await?;
    }
    transaction.commit().await?;
    drop(client);
    let ended = sessions::end_all(ctx, id, None, RevokeReason::AccountDisabled).await?;
    tracing::info!(user_id = %id, sessions_ended = ended.len(), "account disabled");
    Ok(())
}

pub async fn enable(ctx: &AppContext, id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let changed = users::set_disabled(&transaction, id, None)
        .await?
        .ok_or(ServiceError::NotFound)?;
    if changed {
        events::record(
            ctx,
            &transaction,
            Some(origin),
            Event::of(EventType::AccountEnabled, id),
        )
        .await?;
    }
    transaction.commit().await?;
    tracing::info!(user_id = %id, "account enabled");
    Ok(())
}

/// Logs the user out everywhere, as their own logout-all would.
pub async fn log_out(ctx: &AppContext, id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
    account(ctx, id).await?;
    sessions::log_out_everywhere(ctx, id, None, origin).await
}

/// Removes the user's second factor, recovery codes and passkeys (a user
/// who lost their authenticator), ends their pending links, and tells them.
/// Sessions stay: the owner is the one asking for help.
pub async fn remove_factors(
    ctx: &AppContext,
    id: Uuid,
    origin: &Origin,
) -> Result<(), ServiceError> {
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let user = users::find_active_user(&transaction, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    mfa::remove(&transaction, id).await?;
    let passkeys_removed =
        super::recovery::remove_passkeys(ctx, &transaction, id, "admin", origin).await?;
    super::recovery::end_pending_links(&transaction, id).await?;
    if !user.mfa_enabled && passkeys_removed == 0 {
        transaction.commit().await?;
        return Ok(());
    }
    if user.mfa_enabled {
        let event = Event::of(EventType::MfaDisabled, id).with_details(json!({"factor": "totp"}));
        events::record(ctx, &transaction, Some(origin), event).await?;
    }
    jobs::enqueue_and_commit(
        ctx,
        transaction,
        JobKind::MfaDisabledNotice,
        id,
        &user.email,
        &origin.correlation_id,
    )
    .await?;
    tracing::info!(user_id = %id, "second factor removed by an admin");
    Ok(())
}

/// Mails the user a reset link, outside the per-email limits. A disabled
/// account gets none (409).
pub async fn send_password_reset(
    ctx: &AppContext,
    id: Uuid,
    origin: &Origin,
) -> Result<(), ServiceError> {
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let user = users::find_active_user(&transaction, id)
        .await?
        .ok_or(ServiceError::NotFound)?;
    if user.disabled {
        return Err(ServiceError::AccountDisabledConflict);
    }
    let message = JobMessage::new(JobKind::PasswordResetLink, user.id, &user.email);
    password_resets::insert_request(
        &transaction,
        message.job_id,
        Some(user.id),
        &origin.correlation_id,
    )
    .await?;
    let event = Event::of(EventType::AccountPasswordResetRequested, user.id);
    events::record(ctx, &transaction, Some(origin), event).await?;
    jobs::enqueue_message(
        &transaction,
        JobKind::PasswordResetLink,
        &message,
        &origin.correlation_id,
    )
    .await?;
    transaction.commit().await?;
    ctx.outbox.wake();
    Ok(())
}

/// Clears the account's failure count, lifting a lockout.
pub async fn clear_limits(ctx: &AppContext, id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
    let user = account(ctx, id).await?;
    limits::clear_account(ctx, &user.email).await?;
    events::record_alone(ctx, origin, Event::of(EventType::LimitCleared, id)).await?;
    tracing::info!(user_id = %id, "login failure count cleared by an admin");
    Ok(())
}

/// Deletes the account, as its owner's own deletion would.
pub async fn delete(ctx: &AppContext, id: Uuid, origin: &Origin) -> Result<(), ServiceError> {
    let user = account(ctx, id).await?;
    match accounts::remove_account(ctx, &user, None, origin).await {
        // Deleted meanwhile, by another request.
        Err(ServiceError::Unauthenticated) => Err(ServiceError::NotFound),
        other => other,
    }
}

async fn account(ctx: &AppContext, id: Uuid) -> Result<UserRecord, ServiceError> {
    users::find_active_user(&db(&ctx.db).await?, id)
        .await?
        .ok_or(ServiceError::NotFound)
}
