//! Access tokens: JWTs with the [`Claims`] of CONTRACT.md, "Authentication
//! model", signed with the first key of the [`KeySet`] and verified with
//! whichever key the header's `kid` names (CONTRACT.md, "Signing keys and
//! JWKS"). Every call verifies the signature; the cache of tokens already
//! verified sits beside this, in [`super::verified`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use jsonwebtoken::{Algorithm, Header, Validation};
use uuid::Uuid;

use super::claims::{AccessToken, Claims, unix_micros};
use super::keys::KeySet;

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
}

impl JwtKeys {
    /// Signs with the first key of `keys` and verifies with any of them,
    /// for tokens of `issuer` to `audience` that live `ttl`.
    pub fn new(keys: Arc<KeySet>, issuer: &str, audience: &str, ttl: Duration) -> Self {
        let signing = keys.signing();
        let mut header = Header::new(signing.algorithm);
        header.kid = signing.kid.clone();
        let validation = |algorithm| {
            let mut validation = Validation::new(algorithm);
            validation.set_issuer(&[issuer]);
            validation.set_audience(&[audience]);
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
            issuer: issuer.to_owned(),
            audience: audience.to_owned(),
            ttl,
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

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    use super::*;
    use crate::security::keys::{SigningAlgorithm, generate};

    fn jwt(keys: KeySet) -> JwtKeys {
        JwtKeys::new(
            Arc::new(keys),
            "portcullis",
            "portcullis",
            Duration::from_secs(900),
        )
    }

    fn config(secret: &str) -> KeySet {
        KeySet::hs256(secret.as_bytes())
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn an_issued_token_verifies_with_the_contract_claims() {
        let keys = jwt(config(SECRET));
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
        let ours = jwt(config(SECRET));
        let theirs = jwt(config("another-secret-of-32-bytes-or-more!!"));
        let forged = theirs
            .issue(Uuid::new_v4(), Uuid::new_v4(), false, vec!["pwd".into()])
            .unwrap();
        assert!(ours.verify(&forged.token).is_none());
    }

    #[test]
    fn alg_none_is_refused() {
        let keys = jwt(config(SECRET));
        let issued = keys
            .issue(Uuid::new_v4(), Uuid::new_v4(), false, vec!["pwd".into()])
            .unwrap();
        let payload = issued.token.split('.').nth(1).unwrap();
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(keys.verify(&format!("{header}.{payload}.")).is_none());
    }

    #[test]
    fn an_expired_token_is_refused() {
        let keys = jwt(config(SECRET));
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
        let keys = jwt(config(SECRET));
        for token in ["", "a.b.c", "not a token", "...."] {
            assert!(keys.verify(token).is_none());
        }
    }

    /// A set of `count` fresh asymmetric keys, the first signing, loaded
    /// from files in a temporary directory.
    fn asymmetric(algorithm: SigningAlgorithm, count: usize) -> (KeySet, Vec<String>) {
        let dir = std::env::temp_dir().join(format!("portcullis-jwt-{}", Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut paths = Vec::new();
        let mut kids = Vec::new();
        for i in 0..count {
            let (pem, kid) = generate(algorithm).unwrap();
            let path = dir.join(format!("{i}.pem"));
            std::fs::write(&path, pem).unwrap();
            paths.push(path);
            kids.push(kid);
        }
        let keys = KeySet::load(algorithm, &paths).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (keys, kids)
    }

    #[test]
    fn asymmetric_tokens_name_their_key_and_verify() {
        for algorithm in [SigningAlgorithm::EdDsa, SigningAlgorithm::Es256] {
            let (config, kids) = asymmetric(algorithm, 2);
            let keys = jwt(config);
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
        let ours = jwt(config);
        let (other, _) = asymmetric(SigningAlgorithm::EdDsa, 1);
        let theirs = jwt(other);
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
