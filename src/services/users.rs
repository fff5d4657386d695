//! The signed-in user's own account.

use uuid::Uuid;

use super::AppContext;
use super::events::{self, Event, EventType, Origin};
use super::limits::{self, EmailLimit};
use super::{ServiceError, credentials, db, jobs};
use crate::domain::FullName;
use crate::messaging::jobs::JobKind;
use crate::repositories::sessions::RevokeReason;
use crate::repositories::users::{self, UserRecord};
use crate::security::claims::Claims;

pub async fn me(ctx: &AppContext, user_id: Uuid) -> Result<UserRecord, ServiceError> {
    let client = db(&ctx.db).await?;
    users::find_active_user(&client, user_id)
        .await?
        .ok_or(ServiceError::Unauthenticated)
}

pub async fn update_full_name(
    ctx: &AppContext,
    user_id: Uuid,
    full_name: Option<FullName>,
) -> Result<UserRecord, ServiceError> {
    let client = db(&ctx.db).await?;
    users::update_full_name(&client, user_id, full_name.as_ref().map(FullName::as_str))
        .await?
        .ok_or(ServiceError::Unauthenticated)
}

/// Changes the password: every other session ends, and every access token
/// issued before, the caller's included, stops working; the caller's
/// refresh cookie keeps working (CONTRACT.md, "Endpoints"). Wrong current
/// passwords count against the login limits, so a stolen access token
/// cannot be used to guess the password.
pub async fn change_password(
    ctx: &AppContext,
    claims: &Claims,
    current_password: &str,
    new_password: String,
    origin: &Origin,
) -> Result<(), ServiceError> {
    let user = credentials::me_with_password(ctx, claims, current_password, origin).await?;
    let hash = credentials::hash_new_password(ctx, &user, new_password).await?;
    credentials::replace_password(
        ctx,
        &user,
        &hash,
        Some(claims.sid),
        RevokeReason::PasswordChanged,
        None,
        origin,
    )
    .await?;
    tracing::info!(user_id = %user.id, "password changed");
    Ok(())
}

/// Asks to move the account to `raw_new_email`: the new address gets a link
/// (nothing changes until it is opened), the current one a notice. A wrong
/// current password counts against the login limits. Only an account whose
/// own address is verified may move, and the new address counts against
/// its verification limit: past it the answer is the same and nothing is
/// mailed there, so no one can flood an inbox with change links.
pub async fn request_email_change(
    ctx: &AppContext,
    claims: &Claims,
    current_password: &str,
    raw_new_email: &str,
    origin: &Origin,
) -> Result<(), ServiceError> {
    let new_email = super::parse_email("new_email", raw_new_email)?;
    if !me(ctx, claims.sub).await?.email_verified {
        return Err(ServiceError::EmailNotVerified);
    }
    let user = credentials::me_with_password(ctx, claims, current_password, origin).await?;
    if new_email.as_str() == user.email {
        return Err(ServiceError::invalid(
            "new_email",
            "is already this account's address",
        ));
    }
    limits::reserve_email_request(ctx, origin.address).await?;
    let mut client = db(&ctx.db).await?;
    // Taken now is a 409 now; taken by the time the link is opened is a
    // 409 then (the unique index decides).
    if users::email_exists(&client, new_email.as_str()).await? {
        return Err(ServiceError::EmailTaken);
    }
    // Past the limit the answer stays the same: only the mail is held back.
    let under_limit =
        match limits::reserve_per_email(ctx, EmailLimit::Verify, new_email.as_str()).await {
            Ok(()) => true,
            Err(ServiceError::RateLimited { .. }) => false,
            Err(other) => return Err(other),
        };
    let transaction = client.transaction().await?;
    let event = Event::of(EventType::AccountEmailChangeRequested, user.id).in_session(claims.sid);
    events::record(ctx, &transaction, Some(origin), event).await?;
    if under_limit {
        jobs::enqueue(
            &transaction,
            JobKind::ChangeEmail,
            user.id,
            new_email.as_str(),
            &origin.correlation_id,
        )
        .await?;
    }
    jobs::enqueue_and_commit(
        ctx,
        transaction,
        JobKind::EmailChangeRequestedNotice,
        user.id,
        &user.email,
        &origin.correlation_id,
    )
    .await?;
    tracing::info!(user_id = %user.id, link_mailed = under_limit, "email change requested");
    Ok(())
}

/// Deletes the account. Every access token stops working first (the
/// not-before mark, in Redis), then the user's rows go in one transaction
/// with the notice to the address it had; sessions, refresh and reset
/// tokens and links go with the user row (ON DELETE CASCADE), its security
/// events are deleted, and one `account.deleted` event remains.
pub async fn delete_account(
    ctx: &AppContext,
    claims: &Claims,
    current_password: &str,
    origin: &Origin,
) -> Result<(), ServiceError> {
    let user = credentials::me_with_password(ctx, claims, current_password, origin).await?;
    remove_account(ctx, &user, Some(claims.sid), origin).await
}

/// Deletes `user`'s account, as [`delete_account`] describes; the request
/// came from `session_id`, if from a session at all.
pub(crate) async fn remove_account(
    ctx: &AppContext,
    user: &UserRecord,
    session_id: Option<Uuid>,
    origin: &Origin,
) -> Result<(), ServiceError> {
    let mark = crate::security::claims::unix_micros(time::OffsetDateTime::now_utc());
    ctx.denylist
        .set_not_before(user.id, mark, ctx.jwt.ttl())
        .await?;
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let sessions: Vec<Uuid> =
        crate::repositories::sessions::list_live_sessions(&transaction, user.id)
            .await?
            .into_iter()
            .map(|s| s.id)
            .collect();
    jobs::enqueue(
        &transaction,
        JobKind::AccountDeletedNotice,
        user.id,
        &user.email,
        &origin.correlation_id,
    )
    .await?;
    if !users::delete_user(&transaction, user.id).await? {
        return Err(ServiceError::Unauthenticated);
    }
    // The account's trail goes with it; one event, holding no address,
    // says that it was deleted.
    crate::repositories::events::delete_for_user(&transaction, user.id).await?;
    let mut event = Event::of(EventType::AccountDeleted, user.id);
    if let Some(session_id) = session_id {
        event = event.in_session(session_id);
    }
    events::record(ctx, &transaction, Some(origin), event).await?;
    transaction.commit().await?;
    ctx.outbox.wake();
    ctx.denylist
        .deny(user.id, None, &sessions, ctx.jwt.ttl())
        .await?;
    metrics::counter!("accounts_deleted_total").increment(1);
    tracing::info!(user_id = %user.id, "account deleted");
    Ok(())
}
