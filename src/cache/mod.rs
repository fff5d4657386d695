//! Redis: one multiplexed, self-reconnecting connection per process, the
//! access-token denylist and the rate limits. Every key is
//! `portcullis:<REDIS_KEY_PREFIX><name>` (CONTRACT.md, "Redis keys"; the
//! prefix is empty in production).

pub mod denylist;
pub mod rate_limit;

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use denylist::Denylist;
pub use rate_limit::RateLimiter;

/// Creates the connection lazily, so the API starts while Redis is down and
/// fails closed per request instead (CONTRACT.md, "Authentication model").
/// Short timeouts make that failure quick (DEPENDENCIES.md, redis).
pub fn connect(url: &str) -> anyhow::Result<ConnectionManager> {
    let client = redis::Client::open(url).context("REDIS_URL is not a valid Redis URL")?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(Duration::from_millis(1000)))
        .set_response_timeout(Some(Duration::from_millis(1000)))
        .set_number_of_retries(1);
    ConnectionManager::new_lazy_with_config(client, config)
        .context("cannot set up the Redis connection")
}

/// Builds key names with the process's prefix.
#[derive(Debug, Clone)]
pub struct Keys {
    base: String,
}

impl Keys {
    pub fn new(prefix: &str) -> Self {
        Self {
            base: format!("portcullis:{prefix}"),
        }
    }

    pub fn key(&self, name: std::fmt::Arguments<'_>) -> String {
        use std::fmt::Write;
        let mut key = String::with_capacity(self.base.len() + 64);
        key.push_str(&self.base);
        let _ = key.write_fmt(name);
        key
    }
}
