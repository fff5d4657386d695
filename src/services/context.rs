//! What the services share: the configuration, the pools and clients, the
//! keys. `app.rs` builds it at start; handlers receive it as [`AppState`].
//! It lives here, below `http` and `app`, so nothing imports `app`.

use std::sync::Arc;

use crate::cache::Redis;
use deadpool_postgres::Pool;

use crate::cache::{Ceremonies, Denylist, RateLimiter};
use crate::config::Config;
use crate::domain::PasswordPolicy;
use crate::messaging::Broker;
use crate::messaging::relay::OutboxSignal;
use crate::security::jwt::JwtKeys;
use crate::security::password::PasswordHasher;
use crate::security::verified::VerifiedTokens;

/// What the API's services share.
pub struct AppContext {
    pub config: Arc<Config>,
    pub db: Pool,
    pub redis: Redis,
    pub broker: Broker,
    pub hasher: PasswordHasher,
    pub password_policy: PasswordPolicy,
    pub jwt: Arc<JwtKeys>,
    /// Access tokens already verified, beside the keys that verify them.
    pub verified_tokens: Arc<VerifiedTokens>,
    pub denylist: Denylist,
    pub limiter: RateLimiter,
    /// Wakes the outbox relay after a job is committed.
    pub outbox: OutboxSignal,
    /// The passkey relying party; `None` where WebAuthn cannot work
    /// (the passkey endpoints then answer 404).
    pub webauthn: Option<Arc<webauthn_rs::Webauthn>>,
    /// WebAuthn ceremonies between their start and finish.
    pub ceremonies: Ceremonies,
}

pub type AppState = Arc<AppContext>;
