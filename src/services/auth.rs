//! Login, refresh rotation with reuse detection, logout (CONTRACT.md,
//! "Authentication model" and "Endpoints").

use uuid::Uuid;

use super::events::{self, Event, EventType, FailureReason, Origin};
use super::sessions::{self as session, IssuedTokens};
use super::{AppContext, ServiceError, credentials, db, jobs, limits};
use crate::domain::Email;
use crate::messaging::jobs::JobKind;
use crate::repositories::sessions::{self, RevokeReason};
use crate::repositories::users;
use crate::security::claims::Claims;
use crate::security::tokens::{OpaqueToken, hash_token, looks_like_token};

/// How a refresh was answered, for `auth_refresh_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Success,
    Grace,
}

/// Checks the password and starts a session. An unknown or malformed email
/// costs the same Argon2 run as a wrong password and gets the same error.
///
/// No pooled connection is held while the password waits for or runs on
/// the hasher, and the session starts only if the password verified is
/// still the account's (a reset or change committing meanwhile wins).
pub async fn login(
    ctx: &AppContext,
    raw_email: &str,
    password: &str,
    origin: &Origin,
) -> Result<IssuedTokens, ServiceError> {
    let client_address = origin.address;
    let normalised = Email::normalise(raw_email);
    let user = match Email::parse(raw_email) {
        Ok(email) => users::find_active_user_by_email(&db(&ctx.db).await?, email.as_str()).await?,
        Err(_) => None,
    };
    let locked = async |error: ServiceError| {
        // A login refused by the limits is a failed login of a known
        // account, recorded once per lockout; an unknown email writes none.
        if let (ServiceError::RateLimited { .. }, Some(user)) = (&error, &user)
            && limits::first_refusal(ctx, &user.email).await?
        {
            let event = Event::login_failed(user.id, FailureReason::Locked);
            events::record_alone(ctx, origin, event).await?;
        }
        Err(error)
    };
    if let Err(error) = limits::check_login(ctx, &normalised, client_address).await {
        return locked(error).await;
    }
    let permit = ctx.hasher.acquire().await?;
    let guess = match limits::reserve_guess(ctx, &normalised, client_address).await {
        Ok(guess) => guess,
        Err(error) => return locked(error).await,
    };
    let verified = ctx
        .hasher
        .verify_with(
            permit,
            password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await?;
    let user = match user {
        Some(user) if verified => user,
        known => {
            if let Some(user) = known {
                let event = Event::login_failed(user.id, FailureReason::WrongPassword);
                events::record_alone(ctx, origin, event).await?;
                if let Some(lockout) = guess.lockout(ctx, user.id) {
                    events::record_alone(ctx, origin, lockout).await?;
                }
            }
            return Err(invalid_credentials());
        }
    };
    // At once, so parallel correct logins never add up to a lockout. With a
    // second factor the password alone completes no login and clears
    // nothing: else every right password would wipe the count of wrong
    // codes before it.
    if user.mfa_enabled {
        limits::settle_guess(ctx, &normalised, client_address, true).await?;
    } else {
        limits::login_completed(ctx, &normalised, client_address).await?;
    }
    super::seams::password_verified(&user.email).await;
    if user.disabled {
        // Like an unverified address: told apart only once the password is
        // right, after the same Argon2 run.
        return Err(session::refuse_disabled(ctx, user.id, origin).await?);
    }
    if ctx.config.require_verified_email && !user.email_verified {
        // Told apart from a wrong password only once the password is
        // right, after the same Argon2 run: no timing tell.
        metrics::counter!("auth_logins_total", "outcome" => "email_not_verified").increment(1);
        let event = Event::login_failed(user.id, FailureReason::NotVerified);
        events::record_alone(ctx, origin, event).await?;
        return Err(ServiceError::EmailNotVerified);
    }
    if ctx.hasher.needs_rehash(&user.password_hash) {
        credentials::rehash(ctx, &user, password).await;
    }
    let user_agent = origin.user_agent.as_deref().map(session::clean_user_agent);
    if user.mfa_enabled {
        // The password was right; a code is still due (CONTRACT.md,
        // "Second factor"). No session, no cookie.
        let (mfa_token, expires_in) =
            super::mfa::open_challenge(ctx, &user, user_agent.as_deref()).await?;
        metrics::counter!("auth_logins_total", "outcome" => "mfa_required").increment(1);
        return Err(ServiceError::MfaRequired {
            mfa_token,
            expires_in,
        });
    }
    let started = session::start(
        ctx,
        &user,
        user.password_version,
        vec!["pwd".to_owned()],
        origin,
    )
    .await?;
    let Some(tokens) = started else {
        // The password was replaced while this login checked the old one.
        tracing::info!(user_id = %user.id, "login refused: the password changed meanwhile");
        return Err(invalid_credentials());
    };
    metrics::counter!("auth_logins_total", "outcome" => "success").increment(1);
    Ok(tokens)
}

fn invalid_credentials() -> ServiceError {
    metrics::counter!("auth_logins_total", "outcome" => "invalid_credentials").increment(1);
    ServiceError::InvalidCredentials
}

/// Rotates a refresh token (CONTRACT.md, "Rotation" and "Grace").
pub async fn refresh(
    ctx: &AppContext,
    presented: Option<&str>,
    origin: &Origin,
) -> Result<(IssuedTokens, RefreshOutcome), ServiceError> {
    let result = rotate(ctx, presented, origin).await;
    let outcome = match &result {
        Ok((_, RefreshOutcome::Success)) => Some("success"),
        Ok((_, RefreshOutcome::Grace)) => Some("grace"),
        Err(ServiceError::RefreshTokenReused) => Some("reuse_detected"),
        Err(ServiceError::InvalidRefreshToken) => Some("invalid"),
        Err(_) => None,
    };
    if let Some(outcome) = outcome {
        metrics::counter!("auth_refresh_total", "outcome" => outcome).increment(1);
    }
    result
}

async fn rotate(
    ctx: &AppContext,
    presented: Option<&str>,
    origin: &Origin,
) -> Result<(IssuedTokens, RefreshOutcome), ServiceError> {
    let presented = presented
        .filter(|token| looks_like_token(token))
        .ok_or(ServiceError::InvalidRefreshToken)?;
    let presented_hash = hash_token(presented);
    let next = OpaqueToken::generate();
    let ttl = session::refresh_ttl_seconds(ctx);
    let client = db(&ctx.db).await?;

    if let Some(owner) =
        sessions::rotate_refresh_token(&client, &presented_hash, &next.hash, ttl).await?
    {
        return Ok((session::issue(ctx, owner, next)?, RefreshOutcome::Success));
    }

    let state = sessions::find_refresh_token(&client, &presented_hash)
        .await?
        .ok_or(ServiceError::InvalidRefreshToken)?;
    let Some(used_seconds_ago) = state.used_seconds_ago else {
        // Unused yet not rotated: expired, or its session is revoked.
        return Err(ServiceError::InvalidRefreshToken);
    };
    if state.session_revoked {
        return Err(ServiceError::InvalidRefreshToken);
    }
    let grace = ctx.config.refresh_reuse_grace.as_secs_f64();
    if used_seconds_ago < grace
        && let Some(owner) =
            sessions::issue_grace_token(&client, &presented_hash, &next.hash, ttl, grace).await?
    {
        return Ok((session::issue(ctx, owner, next)?, RefreshOutcome::Grace));
    }

    // Reuse outside the grace window: the token was stolen or replayed, so
    // the whole family ends and its access tokens die with it. Redis first,
    // so that a failure there leaves the session to be revoked on retry.
    let owner = state.owner;
    ctx.denylist
        .deny(owner.user_id, None, &[owner.session_id], ctx.jwt.ttl())
        .await?;
    let mut client = client;
    let transaction = client.transaction().await?;
    if sessions::revoke_session_by_id(&transaction, owner.session_id, RevokeReason::ReuseDetected)
        .await?
    {
        let event =
            Event::of(EventType::SessionReuseDetected, owner.user_id).in_session(owner.session_id);
        events::record(ctx, &transaction, Some(origin), event).await?;
        if let Some(user) = users::find_active_user(&transaction, owner.user_id).await? {
            jobs::enqueue(
                &transaction,
                JobKind::RefreshReuseNotice,
                user.id,
                &user.email,
                &origin.correlation_id,
            )
            .await?;
        }
        transaction.commit().await?;
        ctx.outbox.wake();
        tracing::warn!(
            user_id = %owner.user_id,
            session_id = %owner.session_id,
            "refresh token reuse detected; session revoked"
        );
    }
    Err(ServiceError::RefreshTokenReused)
}

/// Ends the bearer's session and, if a refresh cookie is sent, the cookie's.
pub async fn logout(
    ctx: &AppContext,
    claims: &Claims,
    cookie: Option<&str>,
    origin: &Origin,
) -> Result<(), ServiceError> {
    let now = time::OffsetDateTime::now_utc();
    // Redis first: the access token must die even if the database fails next.
    ctx.denylist
        .deny(
            claims.sub,
            Some((claims.jti, claims.remaining(now))),
            &[claims.sid],
            ctx.jwt.ttl(),
        )
        .await?;
    let cookie_hash = cookie.filter(|c| looks_like_token(c)).map(hash_token);
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let revoked = sessions::revoke_for_logout(
        &transaction,
        claims.sub,
        claims.sid,
        cookie_hash.as_ref().map(|h| h.as_slice()),
    )
    .await?;
    let event = Event::of(EventType::SessionLoggedOut, claims.sub).in_session(claims.sid);
    events::record(ctx, &transaction, Some(origin), event).await?;
    transaction.commit().await?;
    let others: Vec<Uuid> = revoked
        .into_iter()
        .filter(|sid| *sid != claims.sid)
        .collect();
    ctx.denylist
        .deny(claims.sub, None, &others, ctx.jwt.ttl())
        .await?;
    tracing::info!(user_id = %claims.sub, session_id = %claims.sid, "logged out");
    Ok(())
}

/// Ends every session of the user, every access token issued so far and
/// every pending emailed link.
pub async fn logout_all(
    ctx: &AppContext,
    claims: &Claims,
    origin: &Origin,
) -> Result<(), ServiceError> {
    session::log_out_everywhere(ctx, claims.sub, Some(claims.sid), origin).await
}
