//! WebAuthn ceremony state between its start and its finish (CONTRACT.md,
//! "Passkeys"): in Redis, so any api process finishes a ceremony another
//! started; under a random challenge id, for 300 s; taken with `GETDEL`, so
//! a challenge is finished at most once however many requests race for it.

use std::time::Duration;

use uuid::Uuid;

use super::{Keys, Redis};

/// How long a started ceremony may be finished.
pub const CEREMONY_TTL: Duration = Duration::from_secs(300);

#[derive(Clone)]
pub struct Ceremonies {
    redis: Redis,
    keys: Keys,
}

impl Ceremonies {
    pub fn new(redis: Redis, keys: Keys) -> Self {
        Self { redis, keys }
    }

    fn key(&self, kind: &str, id: Uuid) -> String {
        self.keys.key(format_args!("webauthn:{kind}:{id}"))
    }

    /// Keeps `state` of a `kind` ceremony under `id` for [`CEREMONY_TTL`].
    pub async fn put(&self, kind: &str, id: Uuid, state: &str) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        redis::cmd("SET")
            .arg(self.key(kind, id))
            .arg(state)
            .arg("EX")
            .arg(CEREMONY_TTL.as_secs())
            .query_async::<()>(&mut redis)
            .await
    }

    /// The state under `id`, removed in the same command: `None` when it
    /// is unknown, expired or already taken.
    pub async fn take(&self, kind: &str, id: Uuid) -> redis::RedisResult<Option<String>> {
        let mut redis = self.redis.clone();
        redis::cmd("GETDEL")
            .arg(self.key(kind, id))
            .query_async(&mut redis)
            .await
    }
}
