//! Test seams: places where a test pauses a request to force an
//! interleaving that timing alone would hit only by luck (issue: a login
//! racing a password reset). Unset in production, where each costs one
//! atomic load.

use std::sync::OnceLock;

use futures_util::future::BoxFuture;

type Hook = Box<dyn Fn(&str) -> BoxFuture<'static, ()> + Send + Sync>;

static PASSWORD_VERIFIED: OnceLock<Hook> = OnceLock::new();
static TOTP_CODE_CHECKED: OnceLock<Hook> = OnceLock::new();

/// Runs `hook` with the account's email after a login has verified the
/// password and before it starts the session. Once per process.
#[doc(hidden)]
pub fn on_password_verified(hook: impl Fn(&str) -> BoxFuture<'static, ()> + Send + Sync + 'static) {
    let _ = PASSWORD_VERIFIED.set(Box::new(hook));
}

pub(crate) async fn password_verified(email: &str) {
    if let Some(hook) = PASSWORD_VERIFIED.get() {
        hook(email).await;
    }
}

/// Runs `hook` with the account's email after an enrolment's code was
/// checked and before the factor is enabled. Once per process.
#[doc(hidden)]
pub fn on_totp_code_checked(hook: impl Fn(&str) -> BoxFuture<'static, ()> + Send + Sync + 'static) {
    let _ = TOTP_CODE_CHECKED.set(Box::new(hook));
}

pub(crate) async fn totp_code_checked(email: &str) {
    if let Some(hook) = TOTP_CODE_CHECKED.get() {
        hook(email).await;
    }
}
