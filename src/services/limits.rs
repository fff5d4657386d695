//! Every abuse limit a service reserves against, in one calling style:
//! each `reserve_*` counts one request and answers `Err(RateLimited)` (429
//! with `Retry-After`) past its limit, counting the refusal in
//! `rate_limit_refusals_total{limit}` or `auth_logins_total{outcome}`
//! (CONTRACT.md, "Brute force", "Abuse limits and retention").
//!
//! Guesses at an account's secrets (a password, a TOTP code or a recovery
//! code, on any endpoint, signed in or not) count against the account's and
//! the client address's login limits. Each guess reserves its slot before
//! it is checked, so parallel guesses never overshoot; a right one gives its
//! slot back; only a completed login clears the account's count
//! (CONTRACT.md, "Recovery ends what an intruder left behind").

use std::net::IpAddr;
use std::time::Duration;

use serde_json::json;
use uuid::Uuid;

use super::events::{Event, EventType};
use super::{AppContext, ServiceError};
use crate::cache::rate_limit::{Limited, LoginLimits};

/// Per-address limits (registrations, emails requested) count per hour.
pub(crate) const ADDRESS_LIMIT_WINDOW: Duration = Duration::from_secs(3600);

/// A limit on the links mailed to one address.
#[derive(Debug, Clone, Copy)]
pub(crate) enum EmailLimit {
    /// `RESET_MAX_REQUESTS_PER_EMAIL` per `RESET_REQUEST_WINDOW_SECONDS`.
    Reset,
    /// `VERIFY_MAX_REQUESTS_PER_EMAIL` an hour: verification links and
    /// links to a new address.
    Verify,
}

/// Counts one registration from `client_address` against
/// `REGISTER_MAX_PER_ADDRESS` an hour.
pub(crate) async fn reserve_registration(
    ctx: &AppContext,
    client_address: IpAddr,
) -> Result<(), ServiceError> {
    ctx.limiter
        .reserve_address(
            "register",
            client_address,
            ctx.config.register_max_per_address,
            ADDRESS_LIMIT_WINDOW,
        )
        .await?
        .map_err(refused_by("register_per_address"))
}

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

/// Counts one link mailed to `email` (normalised) against `limit`.
pub(crate) async fn reserve_per_email(
    ctx: &AppContext,
    limit: EmailLimit,
    email: &str,
) -> Result<(), ServiceError> {
    let (scope, max, window, name) = match limit {
        EmailLimit::Reset => (
            "reset",
            ctx.config.reset_max_requests_per_email,
            ctx.config.reset_request_window,
            "reset_per_email",
        ),
        EmailLimit::Verify => (
            "verify",
            ctx.config.verify_max_requests_per_email,
            ADDRESS_LIMIT_WINDOW,
            "verify_per_email",
        ),
    };
    ctx.limiter
        .reserve_email(scope, email, max, window)
        .await?
        .map_err(refused_by(name))
}

/// A guess whose slot is reserved.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Guess {
    /// It took the account's last slot: if it is wrong, the account is
    /// locked until the window passes.
    last_slot: bool,
}

impl Guess {
    /// The event to write when this guess turned out wrong and locked the
    /// account (`limit.account_locked`); `None` otherwise.
    pub(crate) fn lockout(self, ctx: &AppContext, user_id: Uuid) -> Option<Event> {
        self.last_slot.then(|| {
            Event::of(EventType::LimitAccountLocked, user_id).with_details(json!({
                "failures": ctx.config.login_max_failures_per_account,
                "window_seconds": ctx.config.login_failure_window.as_secs(),
            }))
        })
    }
}

/// Reserves the slot of one guess at a secret of the account `email`
/// (normalised) from `client_address`; 429 past either login limit.
pub(crate) async fn reserve_guess(
    ctx: &AppContext,
    email: &str,
    client_address: IpAddr,
) -> Result<Guess, ServiceError> {
    ctx.limiter
        .reserve_guess(email, client_address, login_limits(ctx))
        .await?
        .map(|last_slot| Guess { last_slot })
        .map_err(rate_limited)
}

/// Settles a reserved guess: a right one gives its slot back, a wrong one
/// stays counted.
pub(crate) async fn settle_guess(
    ctx: &AppContext,
    email: &str,
    client_address: IpAddr,
    right: bool,
) -> Result<(), ServiceError> {
    if right {
        ctx.limiter.guess_right(email, client_address).await?;
    }
    Ok(())
}

/// Refuses an account or address already at its login limit without
/// counting anything, before the caller waits for an Argon2 permit.
pub(crate) async fn check_login(
    ctx: &AppContext,
    email: &str,
    client_address: IpAddr,
) -> Result<(), ServiceError> {
    ctx.limiter
        .check_login(email, client_address, login_limits(ctx))
        .await?
        .map_err(rate_limited)
}

/// Whether a refusal of the locked account `email` is the first of its
/// window, and so worth a `session.login_failed` (`locked`) event: one per
/// lockout, however many attempts it turns away.
pub(crate) async fn first_refusal(ctx: &AppContext, email: &str) -> Result<bool, ServiceError> {
    Ok(ctx
        .limiter
        .first_in_window("locked_noted", email, ctx.config.login_failure_window)
        .await?)
}

/// A login completed: the account's count starts again, and the address
/// gets back the slot this last guess reserved.
pub(crate) async fn login_completed(
    ctx: &AppContext,
    email: &str,
    client_address: IpAddr,
) -> Result<(), ServiceError> {
    Ok(ctx.limiter.login_completed(email, client_address).await?)
}

/// Reserves the slot of a guess that names no account (a passkey sign-in)
/// on the address's login limit.
pub(crate) async fn reserve_address_guess(
    ctx: &AppContext,
    client_address: IpAddr,
) -> Result<(), ServiceError> {
    ctx.limiter
        .reserve_address_guess(client_address, login_limits(ctx))
        .await?
        .map_err(rate_limited)
}

/// A right guess of [`reserve_address_guess`] gives its slot back.
pub(crate) async fn address_guess_right(
    ctx: &AppContext,
    client_address: IpAddr,
) -> Result<(), ServiceError> {
    Ok(ctx.limiter.address_guess_right(client_address).await?)
}

/// An admin cleared the account's failure count (CONTRACT.md, "Admin API").
pub(crate) async fn clear_account(ctx: &AppContext, email: &str) -> Result<(), ServiceError> {
    Ok(ctx.limiter.clear_account(email).await?)
}

fn login_limits(ctx: &AppContext) -> LoginLimits {
    LoginLimits {
        window: ctx.config.login_failure_window,
        per_account: ctx.config.login_max_failures_per_account,
        per_address: ctx.config.login_max_failures_per_address,
    }
}

/// A refusal by the abuse limit `limit`, counted in
/// `rate_limit_refusals_total{limit}`.
fn refused_by(limit: &'static str) -> impl FnOnce(Limited) -> ServiceError {
    move |limited| {
        metrics::counter!("rate_limit_refusals_total", "limit" => limit).increment(1);
        ServiceError::RateLimited {
            retry_after_seconds: limited.retry_after.as_secs().max(1),
        }
    }
}

/// A refusal by a login limit, counted in `auth_logins_total{outcome}`.
fn rate_limited(limited: Limited) -> ServiceError {
    metrics::counter!("auth_logins_total", "outcome" => "rate_limited").increment(1);
    ServiceError::RateLimited {
        retry_after_seconds: limited.retry_after.as_secs().max(1),
    }
}
