//! Access tokens: HS256 JWTs with the claims of CONTRACT.md,
//! "Authentication model", plus `iat_us`, the issue time in microseconds,
//! which the per-user "not before" mark is compared with: `iat` has whole
//! seconds only, and a token issued just after the mark in the same second
//! must keep working.

use std::time::Duration;

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::config::Config;

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

pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    header: Header,
    validation: Validation,
    issuer: String,
    audience: String,
    ttl: Duration,
}

impl JwtKeys {
    pub fn new(config: &Config) -> Self {
        let secret = config.jwt_secret.expose().as_bytes();
        // Only HS256 verifies: `alg: none` and every other algorithm are
        // refused by the algorithm list (DEPENDENCIES.md, jsonwebtoken).
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_issuer(&[&config.jwt_issuer]);
        validation.set_audience(&[&config.jwt_audience]);
        validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
        validation.leeway = 0;
        validation.validate_nbf = false;
        Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            header: Header::new(Algorithm::HS256),
            validation,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            ttl: config.access_token_ttl,
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    pub fn issue(&self, user_id: Uuid, session_id: Uuid) -> anyhow::Result<AccessToken> {
        let now = time::OffsetDateTime::now_utc();
        let iat = now.unix_timestamp();
        let claims = Claims {
            sub: user_id,
            jti: Uuid::new_v4(),
            iat,
            exp: iat + self.ttl.as_secs() as i64,
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            sid: session_id,
            iat_us: unix_micros(now),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.encoding)
            .map_err(|e| anyhow::anyhow!("signing an access token: {e}"))?;
        Ok(AccessToken { token, claims })
    }

    /// The claims of a valid, unexpired token of ours; `None` otherwise.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation)
            .ok()
            .map(|data| data.claims)
    }
}

pub fn unix_micros(time: time::OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000) as i64
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;

    fn config(secret: &str) -> Config {
        let vars: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://x@127.0.0.1/x"),
            ("REDIS_URL", "redis://127.0.0.1"),
            ("AMQP_URL", "amqp://127.0.0.1"),
            ("JWT_SECRET", secret),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        Config::from_vars(vars).unwrap()
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn an_issued_token_verifies_with_the_contract_claims() {
        let keys = JwtKeys::new(&config(SECRET));
        let (user, session) = (Uuid::new_v4(), Uuid::new_v4());
        let issued = keys.issue(user, session).unwrap();
        let claims = keys.verify(&issued.token).unwrap();
        assert_eq!(claims, issued.claims);
        assert_eq!(claims.sub, user);
        assert_eq!(claims.sid, session);
        assert_eq!(claims.exp - claims.iat, 900);
        assert_eq!(claims.iat_us / 1_000_000, claims.iat);
        assert_eq!(claims.iss, "portcullis");
        assert_eq!(claims.aud, "portcullis");
    }

    #[test]
    fn a_token_signed_with_another_key_is_refused() {
        let ours = JwtKeys::new(&config(SECRET));
        let theirs = JwtKeys::new(&config("another-secret-of-32-bytes-or-more!!"));
        let forged = theirs.issue(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        assert!(ours.verify(&forged.token).is_none());
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = JwtKeys::new(&config(SECRET));
        let issued = keys.issue(Uuid::new_v4(), Uuid::new_v4()).unwrap();
        let payload = issued.token.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{header}.{payload}.")).is_none());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = JwtKeys::new(&config(SECRET));
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let claims = Claims {
            sub: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: now - 1000,
            exp: now - 100,
            iss: "portcullis".into(),
            aud: "portcullis".into(),
            sid: Uuid::new_v4(),
            iat_us: (now - 1000) * 1_000_000,
        };
        let token = jsonwebtoken::encode(&keys.header, &claims, &keys.encoding).unwrap();
        assert!(keys.verify(&token).is_none());
    }

    #[test]
    fn garbage_is_refused() {
        let keys = JwtKeys::new(&config(SECRET));
        for token in ["", "a.b.c", "not a token", "...."] {
            assert!(keys.verify(token).is_none());
        }
    }
}
