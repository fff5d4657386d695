//! The second factor (CONTRACT.md, "Second factor: TOTP and recovery
//! codes"): enrolment, confirmation with recovery codes, disabling, and the
//! second step of a login. Secrets are sealed at rest; a code is accepted
//! once (the last accepted time step per user moves forward atomically);
//! wrong codes count against the account's login limit.

use serde_json::json;
use uuid::Uuid;

use super::AppContext;
use super::events::{self, Event, EventType, FailureReason, Origin};
use super::sessions::{self as session, IssuedTokens};
use super::{ServiceError, credentials, db, jobs, limits};
use crate::messaging::jobs::JobKind;
use crate::repositories::mfa::{self, Challenge};
use crate::repositories::sessions::{self, RevokeReason};
use crate::repositories::users::{self, UserRecord};
use crate::security::claims::Claims;
use crate::security::tokens::{OpaqueToken, hash_token, looks_like_token};
use crate::security::totp::{self, SecretBox};

/// How long the second step of a login may take.
pub const CHALLENGE_SECONDS: u64 = 300;
/// Wrong codes an `mfa_token` survives.
pub const MAX_FAILURES: i32 = 5;
/// How long an enrolment waits for the code that confirms it.
pub const PENDING_SECONDS: u64 = 600;

/// What enrolment shows the user, once.
pub struct Enrolment {
    pub secret: String,
    pub otpauth_uri: String,
}

/// The second-step proof.
pub enum Proof<'a> {
    Code(&'a str),
    RecoveryCode(&'a str),
}

fn sealer(ctx: &AppContext) -> Result<&SecretBox, ServiceError> {
    ctx.config
        .data_encryption_key
        .as_ref()
        .ok_or(ServiceError::MfaUnavailable)
}

fn now_seconds() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64
}

/// Starts (or restarts) enrolment: a new secret, pending until a code from
/// it confirms it within [`PENDING_SECONDS`]. Only an account whose address
/// is verified may enrol, so no one can set a factor on an address they do
/// not own before its owner arrives.
pub async fn enrol(
    ctx: &AppContext,
    claims: &Claims,
    current_password: &str,
    origin: &Origin,
) -> Result<Enrolment, ServiceError> {
    let sealer = sealer(ctx)?;
    if !super::users::me(ctx, claims.sub).await?.email_verified {
        return Err(ServiceError::EmailNotVerified);
    }
    let user = credentials::me_with_password(ctx, claims, current_password, origin).await?;
    let secret = totp::new_secret();
    let sealed = sealer.seal(user.id, &secret);
    if !mfa::put_pending(&db(&ctx.db).await?, user.id, &sealed).await? {
        return Err(ServiceError::MfaAlreadyEnabled);
    }
    tracing::info!(user_id = %user.id, "second factor enrolment started");
    Ok(Enrolment {
        secret: totp::base32(&secret),
        otpauth_uri: totp::otpauth_uri(&user.email, &secret),
    })
}

/// Confirms the pending factor with a code: exactly the secret the code
/// was checked against is enabled, the user gets ten recovery codes (shown
/// this once) and a notice, every other session ends and every pending
/// emailed link is superseded. The code is a guess, counted like a login's.
pub async fn confirm(
    ctx: &AppContext,
    claims: &Claims,
    code: &str,
    origin: &Origin,
) -> Result<Vec<String>, ServiceError> {
    let client_address = origin.address;
    let sealer = sealer(ctx)?;
    let user = super::users::me(ctx, claims.sub).await?;
    let mut client = db(&ctx.db).await?;
    let factor = mfa::find_pending(&client, user.id, PENDING_SECONDS as i64)
        .await?
        .ok_or(ServiceError::MfaNotPending)?;
    let secret = open(sealer, user.id, &factor.sealed_secret)?;
    let guess = limits::reserve_guess(ctx, &user.email, client_address).await?;
    let step = totp::matching_step(&secret, code.trim(), now_seconds());
    limits::settle_guess(ctx, &user.email, client_address, step.is_some()).await?;
    let Some(step) = step else {
        if let Some(lockout) = guess.lockout(ctx, user.id) {
            events::record_alone(ctx, origin, lockout).await?;
        }
        return Err(ServiceError::WrongMfaCode);
    };
    super::seams::totp_code_checked(&user.email).await;
    let codes = totp::new_recovery_codes();
    let hashes: Vec<&[u8]> = codes.iter().map(|(_, hash)| hash.as_slice()).collect();
    let transaction = client.transaction().await?;
    if !mfa::enable(
        &transaction,
        user.id,
        &factor.sealed_secret,
        step as i64,
        PENDING_SECONDS as i64,
    )
    .await?
    {
        // Replaced, expired or enabled meanwhile: what the code proved is
        // no longer what is pending.
        return Err(ServiceError::MfaNotPending);
    }
    mfa::replace_recovery_codes(&transaction, user.id, &hashes).await?;
    let ended = sessions::revoke_all_sessions(
        &transaction,
        user.id,
        Some(claims.sid),
        RevokeReason::MfaEnabled,
    )
    .await?;
    super::recovery::end_pending_links(&transaction, user.id).await?;
    let event = Event::of(EventType::MfaEnabled, user.id)
        .in_session(claims.sid)
        .with_details(json!({"factor": "totp", "sessions_ended": ended.len()}));
    events::record(ctx, &transaction, Some(origin), event).await?;
    jobs::enqueue_and_commit(
        ctx,
        transaction,
        JobKind::MfaEnabledNotice,
        user.id,
        &user.email,
        &origin.correlation_id,
    )
    .await?;
    // Their access tokens die with their sessions; the caller's lives on.
    ctx.denylist
        .deny(user.id, None, &ended, ctx.jwt.ttl())
        .await?;
    tracing::info!(user_id = %user.id, sessions_ended = ended.len(), "second factor enabled");
    Ok(codes.into_iter().map(|(text, _)| text).collect())
}

/// Disables the factor with the current password and a code (TOTP or
/// recovery), each a guess counted like a login's; the user gets a notice
/// and every pending emailed link is superseded.
pub async fn disable(
    ctx: &AppContext,
    claims: &Claims,
    current_password: &str,
    code: &str,
    origin: &Origin,
) -> Result<(), ServiceError> {
    let client_address = origin.address;
    let sealer = sealer(ctx)?;
    let user = credentials::me_with_password(ctx, claims, current_password, origin).await?;
    let mut client = db(&ctx.db).await?;
    let factor = mfa::find_factor(&client, user.id)
        .await?
        .filter(|f| f.enabled)
        .ok_or(ServiceError::MfaNotPending)?;
    let proof = if code.trim().len() == 6 {
        Proof::Code(code)
    } else {
        Proof::RecoveryCode(code)
    };
    let guess = limits::reserve_guess(ctx, &user.email, client_address).await?;
    let transaction = client.transaction().await?;
    let right = check_proof(&transaction, sealer, user.id, &factor.sealed_secret, &proof).await?;
    if !right {
        drop(transaction);
        if let Some(lockout) = guess.lockout(ctx, user.id) {
            events::record_alone(ctx, origin, lockout).await?;
        }
        return Err(ServiceError::WrongMfaCode);
    }
    mfa::remove(&transaction, user.id).await?;
    super::recovery::end_pending_links(&transaction, user.id).await?;
    if let Proof::RecoveryCode(_) = proof {
        let event = Event::of(EventType::MfaRecoveryCodeUsed, user.id).in_session(claims.sid);
        events::record(ctx, &transaction, Some(origin), event).await?;
    }
    let event = Event::of(EventType::MfaDisabled, user.id)
        .in_session(claims.sid)
        .with_details(json!({"factor": "totp"}));
    events::record(ctx, &transaction, Some(origin), event).await?;
    jobs::enqueue_and_commit(
        ctx,
        transaction,
        JobKind::MfaDisabledNotice,
        user.id,
        &user.email,
        &origin.correlation_id,
    )
    .await?;
    limits::settle_guess(ctx, &user.email, client_address, true).await?;
    tracing::info!(user_id = %user.id, "second factor disabled");
    Ok(())
}

/// After a right password on an account with a factor: a single-use token
/// for the second step, valid [`CHALLENGE_SECONDS`].
pub(crate) async fn open_challenge(
    ctx: &AppContext,
    user: &UserRecord,
    user_agent: Option<&str>,
) -> Result<(String, u64), ServiceError> {
    let token = OpaqueToken::generate();
    mfa::create_challenge(
        &db(&ctx.db).await?,
        &token.hash,
        &Challenge {
            user_id: user.id,
            password_version: user.password_version,
            user_agent: user_agent.map(str::to_owned),
        },
        CHALLENGE_SECONDS as i64,
    )
    .await?;
    Ok((token.text, CHALLENGE_SECONDS))
}

/// The second step of a login: the `mfa_token` and a code (or a recovery
/// code) for the usual tokens, `amr: ["pwd","otp"]`.
pub async fn complete_login(
    ctx: &AppContext,
    mfa_token: &str,
    proof: Proof<'_>,
    origin: &Origin,
) -> Result<IssuedTokens, ServiceError> {
    let client_address = origin.address;
    let sealer = sealer(ctx)?;
    if !looks_like_token(mfa_token) {
        return Err(ServiceError::InvalidMfaLogin);
    }
    let token_hash = hash_token(mfa_token);
    let mut client = db(&ctx.db).await?;
    let transaction = client.transaction().await?;
    // Locked: parallel steps of one token take turns, so its failures add up.
    let challenge = mfa::lock_challenge(&transaction, &token_hash, MAX_FAILURES)
        .await?
        .ok_or(ServiceError::InvalidMfaLogin)?;
    let user = users::find_active_user(&transaction, challenge.user_id)
        .await?
        .ok_or(ServiceError::InvalidMfaLogin)?;
    // Reserved before the code is looked at, so parallel guesses never
    // overshoot the account's limit.
    let guess = match limits::reserve_guess(ctx, &user.email, client_address).await {
        Ok(guess) => guess,
        Err(error) => {
            if let ServiceError::RateLimited { .. } = error
                && limits::first_refusal(ctx, &user.email).await?
            {
                let event = Event::login_failed(user.id, FailureReason::Locked);
                events::record(ctx, &transaction, Some(origin), event).await?;
                transaction.commit().await?;
            }
            return Err(error);
        }
    };
    let factor = mfa::find_factor(&transaction, user.id)
        .await?
        .filter(|f| f.enabled)
        .ok_or(ServiceError::InvalidMfaLogin)?;
    let accepted =
        check_proof(&transaction, sealer, user.id, &factor.sealed_secret, &proof).await?;
    if !accepted {
        // A wrong code is a failed login of the account: its slot stays.
        mfa::record_failure(&transaction, &token_hash).await?;
        let event = Event::login_failed(user.id, FailureReason::WrongCode);
        events::record(ctx, &transaction, Some(origin), event).await?;
        if let Some(lockout) = guess.lockout(ctx, user.id) {
            events::record(ctx, &transaction, Some(origin), lockout).await?;
        }
        transaction.commit().await?;
        return Err(ServiceError::InvalidMfaLogin);
    }
    mfa::spend_challenge(&transaction, &token_hash).await?;
    if user.disabled {
        // Disabled between the password step and this one.
        transaction.commit().await?;
        return Err(session::refuse_disabled(ctx, user.id, origin).await?);
    }
    if let Proof::RecoveryCode(_) = proof {
        let event = Event::of(EventType::MfaRecoveryCodeUsed, user.id);
        events::record(ctx, &transaction, Some(origin), event).await?;
    }
    transaction.commit().await?;
    // The session keeps the user agent of the password step.
    let session_origin = Origin {
        user_agent: challenge.user_agent.clone(),
        ..origin.clone()
    };
    let started = session::start(
        ctx,
        &user,
        challenge.password_version,
        vec!["pwd".to_owned(), "otp".to_owned()],
        &session_origin,
    )
    .await?;
    let Some(tokens) = started else {
        // The password changed since its step: a right code, no login.
        limits::settle_guess(ctx, &user.email, client_address, true).await?;
        return Err(ServiceError::InvalidMfaLogin);
    };
    limits::login_completed(ctx, &user.email, client_address).await?;
    metrics::counter!("auth_mfa_total", "outcome" => "success").increment(1);
    metrics::counter!("auth_logins_total", "outcome" => "success").increment(1);
    Ok(tokens)
}

/// Checks a code or a recovery code of an enabled factor, spending what it
/// spends (the time step, the recovery code) in `client`'s transaction.
async fn check_proof(
    client: &impl deadpool_postgres::GenericClient,
    sealer: &SecretBox,
    user_id: Uuid,
    sealed_secret: &[u8],
    proof: &Proof<'_>,
) -> Result<bool, ServiceError> {
    match proof {
        Proof::Code(code) => {
            let secret = open(sealer, user_id, sealed_secret)?;
            let Some(step) = totp::matching_step(&secret, code.trim(), now_seconds()) else {
                metrics::counter!("auth_mfa_total", "outcome" => "invalid_code").increment(1);
                return Ok(false);
            };
            if !mfa::accept_step(client, user_id, step as i64).await? {
                metrics::counter!("auth_mfa_total", "outcome" => "replayed").increment(1);
                tracing::warn!(user_id = %user_id, "a code was presented again");
                return Ok(false);
            }
            Ok(true)
        }
        Proof::RecoveryCode(code) => {
            let spent =
                mfa::spend_recovery_code(client, user_id, &totp::recovery_code_hash(code)).await?;
            let outcome = if spent {
                "recovery_code"
            } else {
                "invalid_code"
            };
            metrics::counter!("auth_mfa_total", "outcome" => outcome).increment(1);
            Ok(spent)
        }
    }
}

fn open(sealer: &SecretBox, user_id: Uuid, sealed: &[u8]) -> Result<Vec<u8>, ServiceError> {
    sealer.open(user_id, sealed).ok_or_else(|| {
        ServiceError::Internal(anyhow::anyhow!(
            "a second factor does not open with DATA_ENCRYPTION_KEY"
        ))
    })
}

/// At start: when factors exist, the key must be there and open them.
pub async fn check_key(
    db: &deadpool_postgres::Pool,
    key: Option<&SecretBox>,
) -> anyhow::Result<Option<&'static str>> {
    let client = db.get().await?;
    let Some((user_id, sealed)) = mfa::any_factor(&client).await? else {
        return Ok(None);
    };
    Ok(match key {
        None => Some(
            "is required: second factors are stored (generate one with `openssl rand -base64 32`, and keep the one you had)",
        ),
        Some(key) if key.open(user_id, &sealed).is_none() => {
            Some("does not open the stored second factors: it is not the key they were sealed with")
        }
        Some(_) => None,
    })
}
