//! Access tokens: JWTs with the claims of CONTRACT.md, "Authentication
//! model", signed with the first key of the [`KeySet`] and verified with
//! whichever key the header's `kid` names (CONTRACT.md, "Signing keys and
//! JWKS"). `iat_us`, the issue time in microseconds, is what the per-user
//! "not before" mark is compared with: `iat` has whole seconds only, and a
//! token issued just after the mark in the same second must keep working.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header, Validation};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::keys::KeySet;
use super::verified::VerifiedTokens;
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

pub struct JwtKeys {
    keys: Arc<KeySet>,
    header: Header,
    /// One validation per algorithm in the set: a token verifies only with
    /// the algorithm of the key its `kid` names, so `alg: none`, HS256
    /// under an asymmetric key and every other confusion are refused.
    validations: HashMap<Algorithm, Validation>,
    issuer: String,
    audience: String,
    ttl: Duration,
    verified: VerifiedTokens,
}

/// Verified tokens kept per process: a few hundred bytes each, some MiB at most.
const VERIFIED_CAPACITY: usize = 16_384;

impl JwtKeys {
    pub fn new(config: &Config) -> Self {
        let keys = config.jwt_keys.clone();
        let signing = keys.signing();
        let mut header = Header::new(signing.algorithm);
        header.kid = signing.kid.clone();
        let validation = |algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[&config.jwt_issuer]);
            validation.set_audience(&[&config.jwt_audience]);
            validation.set_required_spec_claims(&["exp", "iat", "sub", "iss", "aud"]);
            validation.leeway = 0;
            validation.validate_nbf = false;
            validation
        };
        let validations = [Algorithm::EdDSA, Algorithm::ES256, Algorithm::HS256]
            .into_iter()
            .map(|algorithm| (algorithm, validation(algorithm)))
            .collect();
        Self {
            keys,
            header,
            validations,
            issuer: config.jwt_issuer.clone(),
            audience: config.jwt_audience.clone(),
            ttl: config.access_token_ttl,
            verified: VerifiedTokens::new(VERIFIED_CAPACITY),
        }
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The JWKS document of the keys in force.
    pub fn jwks(&self) -> bytes::Bytes {
        self.keys.jwks()
    }

    pub fn issue(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        email_verified: bool,
        amr: Vec<String>,
    ) -> anyhow::Result<AccessToken> {
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
            amr,
            email_verified,
            iat_us: unix_micros(now),
        };
        let token = jsonwebtoken::encode(&self.header, &claims, &self.keys.signing().encoding)
            .map_err(|e| anyhow::anyhow!("signing an access token: {e}"))?;
        Ok(AccessToken { token, claims })
    }

    /// The claims of a valid, unexpired token of ours; `None` otherwise:
    /// a `kid` not in the set, an `alg` other than its key's, a bad
    /// signature, a wrong issuer or audience.
    pub fn verify(&self, token: &str) -> Option<Claims> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let digest = VerifiedTokens::digest(token);
        if let Some(claims) = self.verified.get(&digest, now) {
            return Some(claims);
        }
        let claims = self.verify_signature(token)?;
        self.verified.insert(digest, claims.clone(), now);
        Some(claims)
    }

    fn verify_signature(&self, token: &str) -> Option<Claims> {
        let header = jsonwebtoken::decode_header(token).ok()?;
        let key = self.keys.verifying(header.kid.as_deref())?;
        if header.alg != key.algorithm {
            return None;
        }
        let validation = self.validations.get(&key.algorithm)?;
        jsonwebtoken::decode::<Claims>(token, &key.decoding, validation)
            .ok()
            .map(|data| data.claims)
    }
}

pub fn unix_micros(time: time::OffsetDateTime) -> i64 {
    (time.unix_timestamp_nanos() / 1_000) as i64
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::security::keys::{SigningAlgorithm, generate};

    fn config(secret: &str) -> Config {
        let vars: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://x@127.0.0.1/x"),
            ("REDIS_URL", "redis://127.0.0.1"),
            ("AMQP_URL", "amqp://127.0.0.1"),
            ("JWT_SECRET", secret),
            ("JWT_ALGORITHM", "HS256"),
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
        let issued = keys.issue(user, session, true, vec!["pwd".into()]).unwrap();
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
        let forged = theirs
            .issue(Uuid::new_v4(), Uuid::new_v4(), false, vec!["pwd".into()])
            .unwrap();
        assert!(ours.verify(&forged.token).is_none());
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = JwtKeys::new(&config(SECRET));
        let issued = keys
            .issue(Uuid::new_v4(), Uuid::new_v4(), false, vec!["pwd".into()])
            .unwrap();
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
            amr: vec!["pwd".into()],
            email_verified: false,
            iat_us: (now - 1000) * 1_000_000,
        };
        let token =
            jsonwebtoken::encode(&keys.header, &claims, &keys.keys.signing().encoding).unwrap();
        assert!(keys.verify(&token).is_none());
    }

    #[test]
    fn garbage_is_refused() {
        let keys = JwtKeys::new(&config(SECRET));
        for token in ["", "a.b.c", "not a token", "...."] {
            assert!(keys.verify(token).is_none());
        }
    }

    /// Configuration with fresh asymmetric keys: `signing` first, then
    /// `others`, all written to a temporary directory.
    fn asymmetric(algorithm: SigningAlgorithm, count: usize) -> (Config, Vec<String>) {
        let dir = std::env::temp_dir().join(format!("portcullis-jwt-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut paths = Vec::new();
        let mut kids = Vec::new();
        for i in 0..count {
            let (pem, kid) = generate(algorithm).unwrap();
            let path = dir.join(format!("{i}.pem"));
            std::fs::write(&path, pem).unwrap();
            paths.push(path.display().to_string());
            kids.push(kid);
        }
        let vars: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://x@127.0.0.1/x"),
            ("REDIS_URL", "redis://127.0.0.1"),
            ("AMQP_URL", "amqp://127.0.0.1"),
            ("JWT_SECRET", SECRET),
            ("JWT_ALGORITHM", algorithm.as_str()),
            ("JWT_SIGNING_KEYS", &paths.join(",")),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        let config = Config::from_vars(vars).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (config, kids)
    }

    #[test]
    fn asymmetric_tokens_name_their_key_and_verify() {
        for algorithm in [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let (config, kids) = asymmetric(algorithm, 2);
            let keys = JwtKeys::new(&config);
            let issued = keys
                .issue(Uuid::new_v4(), Uuid::new_v4(), false, vec!["pwd".into()])
                .unwrap();
            let header = jsonwebtoken::decode_header(&issued.token).unwrap();
            assert_eq!(header.kid.as_deref(), Some(kids[0].as_str()));
            assert_eq!(header.alg, algorithm.jwt());
            assert_eq!(keys.verify(&issued.token), Some(issued.claims.clone()));
            assert_eq!(issued.claims.amr, vec!["pwd".to_owned()]);
        }
    }

    #[test]
    fn a_kid_not_in_the_set_or_a_switched_alg_is_refused() {
        let (config, _) = asymmetric(SigningAlgorithm::EdDsa, 1);
        let ours = JwtKeys::new(&config);
        let (other, _) = asymmetric(SigningAlgorithm::EdDsa, 1);
        let theirs = JwtKeys::new(&other);
        let foreign = theirs
            .issue(Uuid::new_v4(), Uuid::new_v4(), false, vec!["pwd".into()])
            .unwrap();
        assert!(ours.verify(&foreign.token).is_none());

        // HS256 signed with the public key's bytes, under our kid: the
        // classic algorithm confusion.
        let issued = ours
            .issue(Uuid::new_v4(), Uuid::new_v4(), false, vec!["pwd".into()])
            .unwrap();
        let mut header = Header::new(Algorithm::HS256);
        header.kid = jsonwebtoken::decode_header(&issued.token).unwrap().kid;
        let jwks: serde_json::Value = serde_json::from_slice(&ours.jwks()).unwrap();
        let public = jwks["keys"][0]["x"].as_str().unwrap().to_owned();
        let confused = jsonwebtoken::encode(
            &header,
            &issued.claims,
            &jsonwebtoken::EncodingKey::from_secret(public.as_bytes()),
        )
        .unwrap();
        assert!(ours.verify(&confused).is_none());

        // A tampered payload.
        let mut parts: Vec<&str> = issued.token.split('.').collect();
        let forged_payload = URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&serde_json::json!({"sub": Uuid::new_v4()})).unwrap());
        parts[1] = &forged_payload;
        assert!(ours.verify(&parts.join(".")).is_none());
    }
}
