//! Credentials: the new-password policy, hashing, a signed-in user's
//! password re-checked under the login limits, and replacing a password
//! with everything a replacement ends (CONTRACT.md, "Authentication model",
//! "Recovery ends what an intruder left behind").

use serde_json::json;
use uuid::Uuid;

use super::events::{self, Event, EventType, Origin};
use super::{AppContext, ServiceError, db, jobs, limits};
use crate::domain::NewPassword;
use crate::messaging::jobs::JobKind;
use crate::repositories::password_resets::{self, ResetPurpose};
use crate::repositories::sessions::{self, RevokeReason};
use crate::repositories::users::{self, UserRecord};
use crate::security::claims::Claims;

/// Checks a new password against the policy: the cheap rules here, the
/// strength estimate on the hashing threads (it can take a while on crafted
/// input, and the caller may be anyone). `Ok(Err(reason))` is a refusal.
pub(crate) async fn check_new_password(
    ctx: &AppContext,
    raw: String,
    context: &[&str],
) -> Result<Result<NewPassword, String>, ServiceError> {
    let policy = ctx.password_policy;
    if let Err(reason) = policy.check_shape(&raw) {
        return Ok(Err(reason));
    }
    let context: Vec<String> = context.iter().map(|c| (*c).to_owned()).collect();
    Ok(ctx
        .hasher
        .compute(move || {
            let context: Vec<&str> = context.iter().map(String::as_str).collect();
            policy.check(raw, &context)
        })
        .await?)
}

/// Checks a new password against the policy, with the user's email and
/// name as the guessable context, and hashes it.
pub(crate) async fn hash_new_password(
    ctx: &AppContext,
    user: &UserRecord,
    raw: String,
) -> Result<String, ServiceError> {
    let context = [user.email.as_str(), user.full_name.as_deref().unwrap_or("")];
    let password = check_new_password(ctx, raw, &context)
        .await?
        .map_err(|message| ServiceError::invalid("new_password", message))?;
    Ok(ctx.hasher.hash(password.expose()).await?)
}

/// The signed-in user, after the current password was checked again: a
/// guess like a login's, counted against the same limits, so a stolen
/// access token cannot be used to guess the password. A right one gives its
/// slot back and clears nothing: a re-check is not a login.
pub(crate) async fn me_with_password(
    ctx: &AppContext,
    claims: &Claims,
    current_password: &str,
    origin: &Origin,
) -> Result<UserRecord, ServiceError> {
    let client_address = origin.address;
    let user = users::find_active_user(&db(&ctx.db).await?, claims.sub)
        .await?
        .ok_or(ServiceError::Unauthenticated)?;
    limits::check_login(ctx, &user.email, client_address).await?;
    let permit = ctx.hasher.acquire().await?;
    let guess = limits::reserve_guess(ctx, &user.email, client_address).await?;
    let verified = ctx
        .hasher
        .verify_with(permit, current_password, Some(&user.password_hash))
        .await?;
    limits::settle_guess(ctx, &user.email, client_address, verified).await?;
    if !verified {
        if let Some(lockout) = guess.lockout(ctx, user.id) {
            events::record_alone(ctx, origin, lockout).await?;
        }
        return Err(ServiceError::WrongCurrentPassword);
    }
    Ok(user)
}

/// Stores a new password hash and ends the user's sessions but `keep` and
/// every pending emailed link, with a security notice, in one transaction;
/// every access token issued before stops working. `consume_reset_token` is spent in the same
/// transaction, and a token no longer live fails the whole change.
pub(crate) async fn replace_password(
    ctx: &AppContext,
    user: &UserRecord,
    password_hash: &str,
    keep: Option<Uuid>,
    reason: RevokeReason,
    consume_reset_token: Option<&[u8]>,
    origin: &Origin,
) -> Result<(), ServiceError> {
    // The mark comes first: if Redis fails, nothing has changed yet.
    let mark = crate::security::claims::unix_micros(time::OffsetDateTime::now_utc());
    ctx.denylist
        .set_not_before(user.id, mark, ctx.jwt.ttl())
        .await?;
    let notice = match reason {
        RevokeReason::PasswordReset => JobKind::PasswordResetNotice,
        _ => JobKind::PasswordChangedNotice,
    };
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let mut invited = false;
    if let Some(token_hash) = consume_reset_token {
        match password_resets::consume_token(&transaction, token_hash).await? {
            Some((owner, purpose)) if owner == user.id => {
                invited = purpose == ResetPurpose::Invite;
            }
            _ => return Err(ServiceError::InvalidResetToken),
        }
    }
    super::recovery::end_pending_links(&transaction, user.id).await?;
    if !users::update_password_hash(&transaction, user.id, password_hash).await? {
        return Err(match consume_reset_token {
            Some(_) => ServiceError::InvalidResetToken,
            None => ServiceError::Unauthenticated,
        });
    }
    let revoked = sessions::revoke_all_sessions(&transaction, user.id, keep, reason).await?;
    if reason == RevokeReason::PasswordReset {
        // A passkey signs in on its own: one an intruder added would
        // outlive the reset (CONTRACT.md, "Recovery ends what an intruder
        // left behind"). The reset's notice says so.
        super::recovery::remove_passkeys(ctx, &transaction, user.id, "password_reset", origin)
            .await?;
    }
    let kind = match reason {
        RevokeReason::PasswordReset => EventType::AccountPasswordReset,
        _ => EventType::AccountPasswordChanged,
    };
    let mut event = Event::of(kind, user.id).with_details(json!({"sessions_ended": revoked.len()}));
    if let Some(session_id) = keep {
        event = event.in_session(session_id);
    }
    events::record(ctx, &transaction, Some(origin), event).await?;
    // An invitation's link went to the address: using it proves it.
    if invited
        && !user.email_verified
        && users::mark_email_verified(&transaction, user.id, &user.email).await?
    {
        let event = Event::of(EventType::AccountEmailVerified, user.id);
        events::record(ctx, &transaction, Some(origin), event).await?;
    }
    if invited {
        // The first password of an invited account: nothing to warn about.
        transaction.commit().await?;
    } else {
        jobs::enqueue_and_commit(
            ctx,
            transaction,
            notice,
            user.id,
            &user.email,
            &origin.correlation_id,
        )
        .await?;
    }
    ctx.denylist
        .deny(user.id, None, &revoked, ctx.jwt.ttl())
        .await?;
    Ok(())
}

/// Replaces a hash made with older Argon2 parameters by one with the
/// current ones, unless the password changed meanwhile. Best effort: the
/// login goes on whatever happens here, and the next one tries again.
pub(crate) async fn rehash(ctx: &AppContext, user: &UserRecord, password: &str) {
    let result = async {
        let hash = ctx.hasher.hash(password).await?;
        let client = db(&ctx.db).await?;
        Ok::<_, ServiceError>(
            users::rehash_password(&client, user.id, user.password_version, &hash).await?,
        )
    }
    .await;
    match result {
        Ok(true) => {
            metrics::counter!("auth_password_rehashes_total").increment(1);
            tracing::info!(user_id = %user.id, "password re-hashed with the current parameters");
        }
        Ok(false) => {}
        Err(error) => {
            tracing::warn!(user_id = %user.id, error = %error, "re-hashing the password failed; will retry at the next login");
        }
    }
}
