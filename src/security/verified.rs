//! Tokens already verified, kept until their `exp`: an Ed25519 or P-256
//! signature check costs tens of microseconds, the SHA-256 that finds a
//! token here about one. Only what passed the full check goes in, under
//! the digest of the whole token, so no other token can hit its entry;
//! expiry is checked again on every hit. Revocation does not live here:
//! the denylist and the not-before mark are still read on every request.
//! The keys only change with a restart, and so does this cache.

use std::collections::HashMap;
use std::sync::Mutex;

use sha2::{Digest, Sha256};

use super::claims::Claims;

const SHARDS: usize = 16;

pub struct VerifiedTokens {
    shards: Vec<Mutex<HashMap<[u8; 32], Claims>>>,
    per_shard: usize,
}

impl VerifiedTokens {
    /// Room for about `capacity` tokens.
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
        }
    }

    pub fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    fn shard(&self, digest: &[u8; 32]) -> &Mutex<HashMap<[u8; 32], Claims>> {
        &self.shards[usize::from(digest[0]) % SHARDS]
    }

    /// The claims of `token`: from here if it was verified before and has
    /// not expired, else from `verify` (the signature check), kept here if
    /// it passes.
    pub fn verify_with(
        &self,
        token: &str,
        verify: impl FnOnce(&str) -> Option<Claims>,
    ) -> Option<Claims> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let digest = Self::digest(token);
        if let Some(claims) = self.get(&digest, now) {
            return Some(claims);
        }
        let claims = verify(token)?;
        self.insert(digest, claims.clone(), now);
        Some(claims)
    }

    /// The claims of a token verified before and not yet expired at `now`.
    pub fn get(&self, digest: &[u8; 32], now: i64) -> Option<Claims> {
        let shard = self.shard(digest).lock().ok()?;
        shard.get(digest).filter(|c| c.exp > now).cloned()
    }

    pub fn insert(&self, digest: [u8; 32], claims: Claims, now: i64) {
        let Ok(mut shard) = self.shard(&digest).lock() else {
            return;
        };
        if shard.len() >= self.per_shard {
            shard.retain(|_, c| c.exp > now);
            if shard.len() >= self.per_shard {
                // Full of live tokens: start over rather than track age.
                shard.clear();
            }
        }
        shard.insert(digest, claims);
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;

    fn claims(exp: i64) -> Claims {
        Claims {
            sub: Uuid::new_v4(),
            jti: Uuid::new_v4(),
            iat: exp - 900,
            exp,
            iss: "portcullis".into(),
            aud: "portcullis".into(),
            sid: Uuid::new_v4(),
            amr: vec!["pwd".into()],
            email_verified: false,
            iat_us: (exp - 900) * 1_000_000,
        }
    }

    #[test]
    fn a_token_is_found_until_it_expires_and_no_other_token_finds_it() {
        let cache = VerifiedTokens::new(64);
        let digest = VerifiedTokens::digest("a.b.c");
        cache.insert(digest, claims(1_000), 500);
        assert!(cache.get(&digest, 999).is_some());
        assert!(cache.get(&digest, 1_000).is_none(), "expired");
        assert!(cache.get(&VerifiedTokens::digest("a.b.d"), 500).is_none());
    }

    #[test]
    fn it_stays_within_its_capacity() {
        let cache = VerifiedTokens::new(16);
        for i in 0..1_000 {
            cache.insert(VerifiedTokens::digest(&i.to_string()), claims(10_000), 0);
        }
        let total: usize = cache.shards.iter().map(|s| s.lock().unwrap().len()).sum();
        assert!(total <= 16, "{total}");
    }
}
