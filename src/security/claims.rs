//! The claims of an access token (CONTRACT.md, "Authentication model").
//! `iat_us`, the issue time in microseconds, is what the per-user "not
//! before" mark is compared with: `iat` has whole seconds only, and a token
//! issued just after the mark in the same second must keep working.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub sub: Uuid,
    pub jti: Uuid,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// The session (refresh-token family) this token came from.
    pub sid: Uuid,
    /// How the user authenticated (RFC 8176): `["pwd"]`, or `["pwd","otp"]`
    /// after a second factor.
    #[serde(default)]
    pub amr: Vec<String>,
    #[serde(default)]
    pub email_verified: bool,
    /// Issue time in microseconds since the Unix epoch.
    pub iat_us: i64,
}

impl Claims {
    /// Seconds until `exp`, at least 1 (a Redis TTL must be positive).
    pub fn remaining(&self, now: time::OffsetDateTime) -> Duration {
        Duration::from_secs((self.exp - now.unix_timestamp()).max(1) as u64)
    }
}

/// A signed token and its claims.
pub struct AccessToken {
    pub token: String,
    pub claims: Claims,
}

pub fn unix_micros(time: time::OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000) as i64
}
