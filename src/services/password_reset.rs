//! Password reset (CONTRACT.md, "Password reset, end to end"): the request
//! is recorded and its job written to the outbox in one transaction before
//! the 202; the worker makes the token and sends the link; the confirm
//! spends the token and sets the password.

use super::AppContext;
use super::events::{self, Event, EventType, Origin};
use super::limits::{self, EmailLimit};
use super::{ServiceError, credentials, db, jobs};
use crate::domain::Email;
use crate::messaging::jobs::{JobKind, JobMessage};
use crate::repositories::sessions::RevokeReason;
use crate::repositories::{password_resets, users};
use crate::security::tokens::{hash_token, looks_like_token};

/// Records a reset request. Known and unknown emails take the same path
/// and get the same answer; only a known, active, enabled one causes a job.
pub async fn request(ctx: &AppContext, email: Email, origin: &Origin) -> Result<(), ServiceError> {
    limits::reserve_email_request(ctx, origin.address).await?;
    limits::reserve_per_email(ctx, EmailLimit::Reset, email.as_str()).await?;
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    // A disabled account gets no link, and the same answer (CONTRACT.md,
    // "Admin API").
    let user = users::find_active_user_by_email(&transaction, email.as_str())
        .await?
        .filter(|user| !user.disabled);
    let message = user
        .as_ref()
        .map(|user| JobMessage::new(JobKind::PasswordResetLink, user.id, &user.email));
    // The request's id is its job's id, which the reset token refers to.
    let request_id = message
        .as_ref()
        .map_or_else(uuid::Uuid::new_v4, |m| m.job_id);
    password_resets::insert_request(
        &transaction,
        request_id,
        user.as_ref().map(|u| u.id),
        &origin.correlation_id,
    )
    .await?;
    if let Some(message) = &message {
        let event = Event::of(EventType::AccountPasswordResetRequested, message.user_id);
        events::record(ctx, &transaction, Some(origin), event).await?;
        jobs::enqueue_message(
            &transaction,
            JobKind::PasswordResetLink,
            message,
            &origin.correlation_id,
        )
        .await?;
    }
    transaction.commit().await?;
    if message.is_some() {
        ctx.outbox.wake();
    }
    Ok(())
}

/// Sets a new password with a live reset token: the token is spent, every
/// session ends and every access token issued before stops working. A weak
/// password is refused without spending the token.
pub async fn confirm(
    ctx: &AppContext,
    token: &str,
    new_password: String,
    origin: &Origin,
) -> Result<(), ServiceError> {
    if !looks_like_token(token) {
        return Err(ServiceError::InvalidResetToken);
    }
    let token_hash = hash_token(token);
    let user = {
        let client = db(&ctx.db).await?;
        let user_id = password_resets::find_live_token_user(&client, &token_hash)
            .await?
            .ok_or(ServiceError::InvalidResetToken)?;
        users::find_active_user(&client, user_id)
            .await?
            .ok_or(ServiceError::InvalidResetToken)?
    };
    let hash = credentials::hash_new_password(ctx, &user, new_password).await?;
    credentials::replace_password(
        ctx,
        &user,
        &hash,
        None,
        RevokeReason::PasswordReset,
        Some(&token_hash),
        origin,
    )
    .await?;
    tracing::info!(user_id = %user.id, "password reset");
    Ok(())
}

/// Whether `token` is a live reset link (unused, not superseded, unexpired),
/// for the reset page to say so before the user types a password.
pub async fn is_live(ctx: &AppContext, token: &str) -> Result<bool, ServiceError> {
    if !looks_like_token(token) {
        return Ok(false);
    }
    let client = db(&ctx.db).await?;
    Ok(
        password_resets::find_live_token_user(&client, &hash_token(token))
            .await?
            .is_some(),
    )
}
