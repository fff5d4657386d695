//! Email verification (CONTRACT.md, "Email verification and the account's
//! lifecycle"): links are asked for here and written to the outbox; the
//! worker makes the token and sends it; the confirm spends it, verifying the
//! account's address or moving the account to a new one.

use super::AppContext;
use super::events::{self, Event, EventType, Origin};
use super::limits::{self, EmailLimit};
use super::{ServiceError, db, jobs};
use crate::domain::Email;
use crate::messaging::jobs::JobKind;
use crate::repositories::email_tokens::{self, Purpose};
use crate::repositories::password_resets;
use crate::repositories::users::{self, EmailChange};
use crate::security::tokens::{hash_token, looks_like_token};

/// Asks for a new verification link. Every well-formed email gets the same
/// answer; only an active, enabled account with an unverified address
/// gets a link.
pub async fn request(ctx: &AppContext, email: Email, origin: &Origin) -> Result<(), ServiceError> {
    limits::reserve_email_request(ctx, origin.address).await?;
    limits::reserve_per_email(ctx, EmailLimit::Verify, email.as_str()).await?;
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let user = users::find_active_user_by_email(&transaction, email.as_str()).await?;
    let Some(user) = user.filter(|u| !u.email_verified && !u.disabled) else {
        return Ok(());
    };
    jobs::enqueue_and_commit(
        ctx,
        transaction,
        JobKind::VerifyEmail,
        user.id,
        &user.email,
        &origin.correlation_id,
    )
    .await?;
    Ok(())
}

/// Spends a link: the account's address is verified, or (a new-address
/// link) the account moves to the new address, verified, and the old one
/// gets a notice and stops working for login and reset.
pub async fn confirm(ctx: &AppContext, token: &str, origin: &Origin) -> Result<(), ServiceError> {
    if !looks_like_token(token) {
        return Err(ServiceError::InvalidVerificationToken);
    }
    let token_hash = hash_token(token);
    let mut client = db(&ctx.db).await?;
    // Spent in the same transaction as its effect: a failure (the new
    // address taken meanwhile) leaves the link unspent.
    let transaction = client.transaction().await?;
    let spent = email_tokens::spend(&transaction, &token_hash)
        .await?
        .ok_or(ServiceError::InvalidVerificationToken)?;
    match spent.purpose {
        Purpose::VerifyEmail => {
            // A link for an address the account no longer has proves nothing.
            if !users::mark_email_verified(&transaction, spent.user_id, &spent.email).await? {
                return Err(ServiceError::InvalidVerificationToken);
            }
            let event = Event::of(EventType::AccountEmailVerified, spent.user_id);
            events::record(ctx, &transaction, Some(origin), event).await?;
            transaction.commit().await?;
            tracing::info!(user_id = %spent.user_id, "email verified");
        }
        Purpose::ChangeEmail => {
            let old_email =
                match users::change_email(&transaction, spent.user_id, &spent.email).await? {
                    EmailChange::Changed { old_email } => old_email,
                    EmailChange::Taken => return Err(ServiceError::EmailTaken),
                    EmailChange::Gone => return Err(ServiceError::InvalidVerificationToken),
                };
            // Links mailed to the old address die with it.
            password_resets::supersede_live_tokens(&transaction, spent.user_id).await?;
            email_tokens::supersede_others(
                &transaction,
                spent.user_id,
                Purpose::VerifyEmail,
                &token_hash,
            )
            .await?;
            let event = Event::of(EventType::AccountEmailChanged, spent.user_id);
            events::record(ctx, &transaction, Some(origin), event).await?;
            jobs::enqueue_and_commit(
                ctx,
                transaction,
                JobKind::EmailChangedNotice,
                spent.user_id,
                &old_email,
                &origin.correlation_id,
            )
            .await?;
            tracing::info!(user_id = %spent.user_id, "email changed");
        }
    }
    metrics::counter!("email_verifications_total", "purpose" => spent.purpose.as_str())
        .increment(1);
    Ok(())
}

/// What a live link proves, for the page behind it to know before it is
/// spent; `None` for an unknown, used, superseded or expired one.
pub async fn live_purpose(ctx: &AppContext, token: &str) -> Result<Option<Purpose>, ServiceError> {
    if !looks_like_token(token) {
        return Ok(None);
    }
    let client = db(&ctx.db).await?;
    Ok(email_tokens::live_purpose(&client, &hash_token(token)).await?)
}
