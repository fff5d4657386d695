//! Redis: one multiplexed, self-reconnecting connection per process.

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

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
