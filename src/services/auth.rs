//! Register, login, refresh rotation with reuse detection, logout
//! (CONTRACT.md, "Authentication model" and "Endpoints").

use std::net::IpAddr;

use uuid::Uuid;

use super::AppContext;
use super::{ServiceError, db, jobs};
use crate::cache::rate_limit::{Limited, LoginLimits};
use crate::domain::{Email, FieldError, FullName, NewPassword};
use crate::messaging::jobs::JobKind;
use crate::repositories::password_resets;
use crate::repositories::sessions::{self, Lifetimes, NewSession, RevokeReason, TokenOwner};
use crate::repositories::users::{self, UserRecord};
use crate::security::jwt::{AccessToken, Claims};
use crate::security::tokens::{OpaqueToken, hash_token, looks_like_token};

/// Longest user agent kept with a session.
const MAX_USER_AGENT_CHARS: usize = 512;

/// What a login or refresh hands the client.
pub struct IssuedTokens {
    pub access: AccessToken,
    /// The refresh token text, for the cookie.
    pub refresh: String,
}

/// How a refresh was answered, for `auth_refresh_total{outcome}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefreshOutcome {
    Success,
    Grace,
}

/// What a registration asks for, as sent.
pub struct Registration {
    pub email: String,
    pub password: String,
    pub full_name: Option<String>,
}

/// Creates an account. Every attempt counts against the client address's
/// registration limit first, so a flood is refused before it costs a
/// strength estimate or a hash.
pub async fn register(
    ctx: &AppContext,
    client_address: IpAddr,
    form: Registration,
    correlation_id: &str,
) -> Result<UserRecord, ServiceError> {
    ctx.limiter
        .reserve_address(
            "register",
            client_address,
            ctx.config.register_max_per_address,
            ADDRESS_LIMIT_WINDOW,
        )
        .await?
        .map_err(refused_by("register_per_address"))?;
    let mut errors = Vec::new();
    let email = Email::parse(&form.email)
        .map_err(|m| errors.push(FieldError::new("email", m)))
        .ok();
    let full_name = match form.full_name.as_deref() {
        None => None,
        Some(raw) => FullName::parse(raw)
            .map_err(|m| errors.push(FieldError::new("full_name", m)))
            .ok(),
    };
    let context = [
        email.as_ref().map_or(form.email.as_str(), Email::as_str),
        full_name.as_ref().map_or("", FullName::as_str),
    ];
    let password = check_new_password(ctx, form.password, &context)
        .await?
        .map_err(|m| errors.push(FieldError::new("password", m)))
        .ok();
    let (Some(email), Some(password), true) = (email, password, errors.is_empty()) else {
        return Err(ServiceError::Invalid(errors));
    };
    // Checked first so a taken email costs no Argon2 run; the insert below
    // still settles a race between two registrations. No connection is held
    // while the hash waits for its turn.
    if users::email_exists(&db(&ctx.db).await?, email.as_str()).await? {
        return Err(ServiceError::EmailTaken);
    }
    let hash = ctx.hasher.hash(password.expose()).await?;
    // The account and its verification email commit together.
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    let user = users::insert_user(
        &transaction,
        Uuid::new_v4(),
        email.as_str(),
        &hash,
        full_name.as_ref().map(FullName::as_str),
    )
    .await?
    .ok_or(ServiceError::EmailTaken)?;
    jobs::enqueue(
        &transaction,
        JobKind::VerifyEmail,
        user.id,
        &user.email,
        correlation_id,
    )
    .await?;
    transaction.commit().await?;
    ctx.outbox.wake();
    tracing::info!(user_id = %user.id, "user registered");
    Ok(user)
}

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
    client_address: IpAddr,
    user_agent: Option<&str>,
) -> Result<IssuedTokens, ServiceError> {
    let normalised = Email::normalise(raw_email);
    let limits = login_limits(ctx);
    ctx.limiter
        .check_login(&normalised, client_address, limits)
        .await?
        .map_err(rate_limited)?;

    let user = match Email::parse(raw_email) {
        Ok(email) => users::find_active_user_by_email(&db(&ctx.db).await?, email.as_str()).await?,
        Err(_) => None,
    };
    let permit = ctx.hasher.acquire().await?;
    super::guesses::reserve(ctx, &normalised, client_address).await?;
    let verified = ctx
        .hasher
        .verify_with(
            permit,
            password,
            user.as_ref().map(|u| u.password_hash.as_str()),
        )
        .await?;
    let Some(user) = user.filter(|_| verified) else {
        return Err(invalid_credentials());
    };
    // At once, so parallel correct logins never add up to a lockout. With a
    // second factor the password alone completes no login and clears
    // nothing: else every right password would wipe the count of wrong
    // codes before it.
    if user.mfa_enabled {
        super::guesses::settle(ctx, &normalised, client_address, true).await?;
    } else {
        ctx.limiter
            .login_completed(&normalised, client_address)
            .await?;
    }
    super::seams::password_verified(&user.email).await;
    if ctx.config.require_verified_email && !user.email_verified {
        // Told apart from a wrong password only once the password is
        // right, after the same Argon2 run: no timing tell.
        metrics::counter!("auth_logins_total", "outcome" => "email_not_verified").increment(1);
        return Err(ServiceError::EmailNotVerified);
    }
    if ctx.hasher.needs_rehash(&user.password_hash) {
        rehash(ctx, &user, password).await;
    }
    let user_agent = user_agent.map(clean_user_agent);
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
    let started = start_session(
        ctx,
        &user,
        user.password_version,
        user_agent.as_deref(),
        vec!["pwd".to_owned()],
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

/// Starts a session for `user` and issues its tokens, if the password is
/// still at `password_version` (the one the login verified); `None`
/// otherwise.
pub(crate) async fn start_session(
    ctx: &AppContext,
    user: &UserRecord,
    password_version: i32,
    user_agent: Option<&str>,
    amr: Vec<String>,
) -> Result<Option<IssuedTokens>, ServiceError> {
    let session_id = Uuid::new_v4();
    let refresh = OpaqueToken::generate();
    let started = sessions::create_session(
        &db(&ctx.db).await?,
        &NewSession {
            session_id,
            user_id: user.id,
            user_agent,
            password_version,
            amr: amr.clone(),
        },
        &refresh.hash,
        lifetimes(ctx),
    )
    .await?;
    if !started {
        return Ok(None);
    }
    let access = ctx
        .jwt
        .issue(user.id, session_id, user.email_verified, amr)?;
    tracing::info!(user_id = %user.id, session_id = %session_id, "logged in");
    Ok(Some(IssuedTokens {
        access,
        refresh: refresh.text,
    }))
}

fn invalid_credentials() -> ServiceError {
    metrics::counter!("auth_logins_total", "outcome" => "invalid_credentials").increment(1);
    ServiceError::InvalidCredentials
}

/// Replaces a hash made with older Argon2 parameters by one with the
/// current ones, unless the password changed meanwhile. Best effort: the
/// login goes on whatever happens here, and the next one tries again.
async fn rehash(ctx: &AppContext, user: &UserRecord, password: &str) {
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

/// Per-address limits (registrations, emails requested) count per hour.
pub(crate) const ADDRESS_LIMIT_WINDOW: std::time::Duration = std::time::Duration::from_secs(3600);

/// Counts one emailed link (reset, verification, new address) asked for
/// from `client_address` against `EMAIL_REQUESTS_MAX_PER_ADDRESS` an hour.
pub(crate) async fn reserve_email_request(
    ctx: &AppContext,
    client_address: IpAddr,
) -> Result<(), ServiceError> {
    ctx.limiter
        .reserve_address(
            "email_requests",
            client_address,
            ctx.config.email_requests_max_per_address,
            ADDRESS_LIMIT_WINDOW,
        )
        .await?
        .map_err(refused_by("email_requests_per_address"))
}

/// A refusal by the abuse limit `limit`, counted in
/// `rate_limit_refusals_total{limit}`.
pub(crate) fn refused_by(limit: &'static str) -> impl FnOnce(Limited) -> ServiceError {
    move |limited| {
        metrics::counter!("rate_limit_refusals_total", "limit" => limit).increment(1);
        ServiceError::RateLimited {
            retry_after_seconds: limited.retry_after.as_secs().max(1),
        }
    }
}

pub(crate) fn rate_limited(limited: Limited) -> ServiceError {
    metrics::counter!("auth_logins_total", "outcome" => "rate_limited").increment(1);
    ServiceError::RateLimited {
        retry_after_seconds: limited.retry_after.as_secs().max(1),
    }
}

/// Rotates a refresh token (CONTRACT.md, "Rotation" and "Grace").
pub async fn refresh(
    ctx: &AppContext,
    presented: Option<&str>,
    correlation_id: &str,
) -> Result<(IssuedTokens, RefreshOutcome), ServiceError> {
    let result = rotate(ctx, presented, correlation_id).await;
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
    correlation_id: &str,
) -> Result<(IssuedTokens, RefreshOutcome), ServiceError> {
    let presented = presented
        .filter(|token| looks_like_token(token))
        .ok_or(ServiceError::InvalidRefreshToken)?;
    let presented_hash = hash_token(presented);
    let next = OpaqueToken::generate();
    let ttl = refresh_ttl_seconds(ctx);
    let client = db(&ctx.db).await?;

    if let Some(owner) =
        sessions::rotate_refresh_token(&client, &presented_hash, &next.hash, ttl).await?
    {
        return Ok((issue(ctx, owner, next)?, RefreshOutcome::Success));
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
        return Ok((issue(ctx, owner, next)?, RefreshOutcome::Grace));
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
        if let Some(user) = users::find_active_user(&transaction, owner.user_id).await? {
            jobs::enqueue(
                &transaction,
                JobKind::RefreshReuseNotice,
                user.id,
                &user.email,
                correlation_id,
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

fn issue(
    ctx: &AppContext,
    owner: TokenOwner,
    refresh: OpaqueToken,
) -> Result<IssuedTokens, ServiceError> {
    let access = ctx.jwt.issue(
        owner.user_id,
        owner.session_id,
        owner.email_verified,
        owner.amr,
    )?;
    Ok(IssuedTokens {
        access,
        refresh: refresh.text,
    })
}

/// Ends the bearer's session and, if a refresh cookie is sent, the cookie's.
pub async fn logout(
    ctx: &AppContext,
    claims: &Claims,
    cookie: Option<&str>,
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
    let client = db(&ctx.db).await?;
    let revoked = sessions::revoke_for_logout(
        &client,
        claims.sub,
        claims.sid,
        cookie_hash.as_ref().map(|h| h.as_slice()),
    )
    .await?;
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
pub async fn logout_all(ctx: &AppContext, claims: &Claims) -> Result<(), ServiceError> {
    end_all_sessions(ctx, claims.sub, None, RevokeReason::LogoutAll).await?;
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    super::recovery::end_pending_links(&transaction, claims.sub).await?;
    transaction.commit().await?;
    tracing::info!(user_id = %claims.sub, "logged out everywhere");
    Ok(())
}

/// Sets the user's "not before" mark, then revokes their sessions except
/// `keep`. The mark comes first so no access token outlives a failure.
pub(crate) async fn end_all_sessions(
    ctx: &AppContext,
    user_id: Uuid,
    keep: Option<Uuid>,
    reason: RevokeReason,
) -> Result<Vec<Uuid>, ServiceError> {
    let mark = crate::security::jwt::unix_micros(time::OffsetDateTime::now_utc());
    ctx.denylist
        .set_not_before(user_id, mark, ctx.jwt.ttl())
        .await?;
    let client = db(&ctx.db).await?;
    let revoked = sessions::revoke_all_sessions(&client, user_id, keep, reason).await?;
    // Tokens a racing refresh issued after the mark die with their session.
    ctx.denylist
        .deny(user_id, None, &revoked, ctx.jwt.ttl())
        .await?;
    Ok(revoked)
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

/// Checks `password` for a signed-in user: a guess like a login's, counted
/// against the same limits. A right one gives its slot back and clears
/// nothing: a re-check is not a login.
pub(crate) async fn verify_limited(
    ctx: &AppContext,
    user: &UserRecord,
    password: &str,
    client_address: IpAddr,
) -> Result<bool, ServiceError> {
    ctx.limiter
        .check_login(&user.email, client_address, login_limits(ctx))
        .await?
        .map_err(rate_limited)?;
    let permit = ctx.hasher.acquire().await?;
    super::guesses::reserve(ctx, &user.email, client_address).await?;
    let verified = ctx
        .hasher
        .verify_with(permit, password, Some(&user.password_hash))
        .await?;
    super::guesses::settle(ctx, &user.email, client_address, verified).await?;
    Ok(verified)
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
    correlation_id: &str,
) -> Result<(), ServiceError> {
    // The mark comes first: if Redis fails, nothing has changed yet.
    let mark = crate::security::jwt::unix_micros(time::OffsetDateTime::now_utc());
    ctx.denylist
        .set_not_before(user.id, mark, ctx.jwt.ttl())
        .await?;
    let notice = match reason {
        RevokeReason::PasswordReset => JobKind::PasswordResetNotice,
        _ => JobKind::PasswordChangedNotice,
    };
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    if let Some(token_hash) = consume_reset_token {
        let owner = password_resets::consume_token(&transaction, token_hash).await?;
        if owner != Some(user.id) {
            return Err(ServiceError::InvalidResetToken);
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
    jobs::enqueue(&transaction, notice, user.id, &user.email, correlation_id).await?;
    transaction.commit().await?;
    ctx.outbox.wake();
    ctx.denylist
        .deny(user.id, None, &revoked, ctx.jwt.ttl())
        .await?;
    Ok(())
}

pub(crate) fn login_limits(ctx: &AppContext) -> LoginLimits {
    LoginLimits {
        window: ctx.config.login_failure_window,
        per_account: ctx.config.login_max_failures_per_account,
        per_address: ctx.config.login_max_failures_per_address,
    }
}

fn refresh_ttl_seconds(ctx: &AppContext) -> i64 {
    ctx.config.refresh_token_ttl.as_secs() as i64
}

fn lifetimes(ctx: &AppContext) -> Lifetimes {
    Lifetimes {
        refresh_seconds: refresh_ttl_seconds(ctx),
        session_max_seconds: ctx.config.session_max_lifetime.as_secs() as i64,
    }
}

/// Kept for display in the sessions list: no control characters, bounded.
pub(crate) fn clean_user_agent(raw: &str) -> String {
    raw.chars()
        .filter(|c| !c.is_control())
        .take(MAX_USER_AGENT_CHARS)
        .collect()
}
