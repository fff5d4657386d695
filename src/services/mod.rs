//! The rules. Services take domain types and return [`ServiceError`]; they
//! know nothing of HTTP, so they can be called from a handler, the worker
//! or a test alike (STYLE.md, habit 5).

pub mod admin;
pub mod admin_keys;
pub mod auth;
mod context;
mod credentials;
pub mod events;
pub mod jobs;
mod limits;
pub mod mfa;
pub mod paging;
pub mod passkeys;
pub mod password_reset;
mod recovery;
pub mod registration;
pub mod retention;
pub mod seams;
pub mod sessions;
pub mod users;
pub mod verification;

use deadpool_postgres::{Object, Pool};

pub use context::{AppContext, AppState};

use crate::domain::FieldError;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("invalid input")]
    Invalid(Vec<FieldError>),
    #[error("the email is already registered")]
    EmailTaken,
    #[error("wrong email or password")]
    InvalidCredentials,
    #[error("too many attempts")]
    RateLimited { retry_after_seconds: u64 },
    #[error("the refresh token is missing, unknown, expired or revoked")]
    InvalidRefreshToken,
    /// A used refresh token came back outside the grace window; its session
    /// has been revoked. The client sees the same 401 as for any bad token.
    #[error("a refresh token was reused")]
    RefreshTokenReused,
    #[error("the reset token is unknown, used, superseded or expired")]
    InvalidResetToken,
    #[error("the verification token is unknown, used, superseded or expired")]
    InvalidVerificationToken,
    /// A correct password, but the address is not verified and
    /// `REQUIRE_VERIFIED_EMAIL` is on.
    #[error("the email address is not verified")]
    EmailNotVerified,
    /// The password was right; the account has a second factor, and this
    /// token (with a code) finishes the login at `/auth/login/mfa`.
    #[error("a second factor is required")]
    MfaRequired { mfa_token: String, expires_in: u64 },
    /// The second step of a login failed: an unknown, expired or spent
    /// `mfa_token`, or a wrong, replayed or used code.
    #[error("the code or the mfa token is not valid")]
    InvalidMfaLogin,
    /// A wrong code where a signed-in user proves the factor.
    #[error("the code is wrong")]
    WrongMfaCode,
    #[error("a second factor is already enabled")]
    MfaAlreadyEnabled,
    #[error("no second factor is pending or enabled")]
    MfaNotPending,
    /// `DATA_ENCRYPTION_KEY` is not configured, so no secret can be stored.
    #[error("second factors are not configured")]
    MfaUnavailable,
    /// An admin disabled the account: a right password gets this, after
    /// the same work as a wrong one.
    #[error("the account is disabled")]
    AccountDisabled,
    /// An admin asked for what a disabled account may not have (a reset
    /// link).
    #[error("the account is disabled")]
    AccountDisabledConflict,
    /// A passkey sign-in failed: an unknown credential, a bad signature, a
    /// user handle of another account, a sign count that went back, no
    /// user verification, or an unknown, spent or expired challenge (one
    /// answer for all).
    #[error("the passkey was not accepted")]
    InvalidPasskey,
    /// A registration's attestation did not verify, or its challenge is
    /// unknown, spent, expired or another account's.
    #[error("the passkey registration was not accepted")]
    InvalidPasskeyRegistration,
    #[error("the passkey is already registered")]
    PasskeyTaken,
    /// The account has no password: its last passkey is its only way in.
    #[error("the last passkey of an account without a password")]
    LastPasskey,
    #[error("the current password is wrong")]
    WrongCurrentPassword,
    /// The token was valid but its user is gone.
    #[error("not authenticated")]
    Unauthenticated,
    #[error("not found")]
    NotFound,
    /// The password hasher's queue is full; come back shortly.
    #[error("too busy to check a password now")]
    Overloaded,
    /// A store the request cannot do without did not answer; fail closed.
    #[error("{dependency} unavailable")]
    Unavailable {
        dependency: &'static str,
        #[source]
        source: anyhow::Error,
    },
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ServiceError {
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        ServiceError::Invalid(vec![FieldError::new(field, message)])
    }
}

impl From<crate::security::password::HashError> for ServiceError {
    fn from(error: crate::security::password::HashError) -> Self {
        use crate::security::password::HashError;
        match error {
            HashError::Busy => {
                metrics::counter!("password_hasher_rejections_total").increment(1);
                ServiceError::Overloaded
            }
            HashError::Failed(error) => ServiceError::Internal(error),
        }
    }
}

impl From<redis::RedisError> for ServiceError {
    fn from(error: redis::RedisError) -> Self {
        ServiceError::Unavailable {
            dependency: "redis",
            source: error.into(),
        }
    }
}

impl From<tokio_postgres::Error> for ServiceError {
    fn from(error: tokio_postgres::Error) -> Self {
        // A closed connection, or the server saying it is going or not yet
        // back, is PostgreSQL being away; anything else is a bug.
        if error.is_closed() || error.code().is_some_and(server_away) {
            ServiceError::Unavailable {
                dependency: "postgres",
                source: error.into(),
            }
        } else {
            ServiceError::Internal(anyhow::Error::new(error).context("a database query failed"))
        }
    }
}

/// SQLSTATEs of a server that is away rather than of a query that is wrong:
/// class 08 (connection exception), 57P01 to 57P03 (terminated by an
/// administrator's shutdown, a crash of another backend, or "cannot connect
/// now" while it starts or stops) and 53300 (too many connections).
fn server_away(code: &tokio_postgres::error::SqlState) -> bool {
    use tokio_postgres::error::SqlState;
    code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::TOO_MANY_CONNECTIONS,
        ]
        .contains(code)
}

/// A checked email from a request body's `field`.
pub fn parse_email(field: &str, raw: &str) -> Result<crate::domain::Email, ServiceError> {
    crate::domain::Email::parse(raw).map_err(|message| ServiceError::invalid(field, message))
}

/// A pooled connection; waiting too long for one means PostgreSQL is away.
pub async fn db(pool: &Pool) -> Result<Object, ServiceError> {
    pool.get().await.map_err(|error| ServiceError::Unavailable {
        dependency: "postgres",
        source: error.into(),
    })
}
