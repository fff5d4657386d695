//! The access-token denylist and the per-user "not before" mark
//! (CONTRACT.md, "Authentication model"). One authenticated request costs
//! one Redis round trip: the three keys are read with a single `MGET`.

use std::sync::LazyLock;
use std::time::Duration;

use redis::Script;
use uuid::Uuid;

use super::{Keys, Redis};
use crate::security::claims::Claims;

static SET_IF_LATER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local current = tonumber(redis.call('GET', KEYS[1]) or '0')
        if tonumber(ARGV[1]) > current then
            redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
            return 1
        end
        return 0
        ",
    )
});

#[derive(Clone)]
pub struct Denylist {
    redis: Redis,
    keys: Keys,
}

impl Denylist {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self { redis, keys }
    }

    fn jti_key(&self, user_id: Uuid, jti: Uuid) -> String {
        self.keys
            .user_key(user_id, format_args!("denylist:jti:{jti}"))
    }

    fn sid_key(&self, user_id: Uuid, sid: Uuid) -> String {
        self.keys
            .user_key(user_id, format_args!("denylist:sid:{sid}"))
    }

    fn not_before_key(&self, user_id: Uuid) -> String {
        self.keys
            .user_key(user_id, format_args!("not_before:{user_id}"))
    }

    /// Whether the token may still be used: its `jti` and `sid` are not
    /// denylisted and it was issued at or after the user's mark.
    pub async fn allows(&self, claims: &Claims) -> redis::RedisResult<bool> {
        let mut redis = self.redis.clone();
        let (jti, sid, not_before): (Option<String>, Option<String>, Option<i64>) =
            redis::cmd("MGET")
                .arg(self.jti_key(claims.sub, claims.jti))
                .arg(self.sid_key(claims.sub, claims.sid))
                .arg(self.not_before_key(claims.sub))
                .query_async(&mut redis)
                .await?;
        Ok(jti.is_none() && sid.is_none() && not_before.is_none_or(|mark| claims.iat_us >= mark))
    }

    /// Denylists one access token for the rest of its life and the given
    /// sessions for an access-token lifetime, all of `user_id`, in one round
    /// trip (one slot on a cluster).
    pub async fn deny(
        &self,
        user_id: Uuid,
        token: Option<(Uuid, Duration)>,
        sessions: &[Uuid],
        session_ttl: Duration,
    ) -> redis::RedisResult<()> {
        if token.is_none() && sessions.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        if let Some((jti, ttl)) = token {
            pipe.set_ex(self.jti_key(user_id, jti), 1, ttl.as_secs().max(1))
                .ignore();
        }
        for sid in sessions {
            pipe.set_ex(self.sid_key(user_id, *sid), 1, session_ttl.as_secs().max(1))
                .ignore();
        }
        let mut redis = self.redis.clone();
        let _: () = pipe.query_async(&mut redis).await?;
        Ok(())
    }

    /// Invalidates every access token of `user_id` issued before `at_us`
    /// (microseconds); the mark lives as long as an access token. A later
    /// mark never gives way to an earlier one that arrives late.
    pub async fn set_not_before(
        &self,
        user_id: Uuid,
        at_us: i64,
        ttl: Duration,
    ) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let _: i64 = SET_IF_LATER
            .key(self.not_before_key(user_id))
            .arg(at_us)
            .arg(ttl.as_secs().max(1))
            .invoke_async(&mut redis)
            .await?;
        Ok(())
    }
}
