//! Guesses at an account's secrets (CONTRACT.md, "Recovery ends what an
//! intruder left behind"): a password, a TOTP code or a recovery code, on
//! any endpoint, signed in or not, counts against the account's and the
//! client address's login limits. Each guess reserves its slot before it is
//! checked, so parallel guesses never overshoot; a right one gives its slot
//! back; only a completed login clears the account's count.

use std::net::IpAddr;

use super::{AppContext, ServiceError, auth};

/// Reserves the slot of one guess at a secret of the account `email`
/// (normalised) from `client_address`; 429 past either limit.
pub(crate) async fn reserve(
    ctx: &AppContext,
    email: &str,
    client_address: IpAddr,
) -> Result<(), ServiceError> {
    ctx.limiter
        .reserve_guess(email, client_address, auth::login_limits(ctx))
        .await?
        .map_err(auth::rate_limited)
}

/// Settles a reserved guess: a right one gives its slot back, a wrong one
/// stays counted.
pub(crate) async fn settle(
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
