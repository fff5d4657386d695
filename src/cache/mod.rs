//! Redis: one multiplexed, self-reconnecting connection per process, the
//! access-token denylist and the rate limits. Every key is
//! `portcullis:<REDIS_KEY_PREFIX><name>` (CONTRACT.md, "Redis keys"; the
//! prefix is empty in production).

pub mod ceremonies;
pub mod denylist;
pub mod rate_limit;

use std::time::Duration;

use anyhow::Context;
use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};
use uuid::Uuid;

use crate::config::RedisTarget;

pub use ceremonies::Ceremonies;
pub use denylist::Denylist;
pub use rate_limit::RateLimiter;

/// Short timeouts make a failure quick, so requests fail closed in about a
/// second instead of hanging (DEPENDENCIES.md, redis).
const CONNECTION_TIMEOUT: Duration = Duration::from_millis(1000);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(1000);

/// One node or a cluster, behind one cloneable, multiplexed handle.
#[derive(Clone)]
pub enum Redis {
    Node(ConnectionManager),
    Cluster(ClusterConnection),
}

impl Redis {
    /// Whether keys read together must carry a hash tag.
    pub fn is_cluster(&self) -> bool {
        matches!(self, Self::Cluster(_))
    }
}

impl ConnectionLike for Redis {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Self::Node(connection) => connection.req_packed_command(cmd),
            Self::Cluster(connection) => connection.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Self::Node(connection) => connection.req_packed_commands(pipeline, offset, count),
            Self::Cluster(connection) => connection.req_packed_commands(pipeline, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Node(connection) => connection.get_db(),
            Self::Cluster(connection) => connection.get_db(),
        }
    }
}

/// Creates the connection lazily, so the API starts while Redis is down and
/// fails closed per request instead (CONTRACT.md, "Authentication model").
/// A cluster's slot map is learnt from the given nodes and followed as it
/// changes; a request whose slot has no live master fails (503).
pub fn connect(target: &RedisTarget) -> anyhow::Result<Redis> {
    match target {
        RedisTarget::Node(url) => {
            let client =
                redis::Client::open(url.as_str()).context("REDIS_URL is not a valid Redis URL")?;
            let config = ConnectionManagerConfig::new()
                .set_connection_timeout(Some(CONNECTION_TIMEOUT))
                .set_response_timeout(Some(RESPONSE_TIMEOUT))
                .set_number_of_retries(1);
            let connection = ConnectionManager::new_lazy_with_config(client, config)
                .context("cannot set up the Redis connection")?;
            Ok(Redis::Node(connection))
        }
        RedisTarget::Cluster(nodes) => {
            let client = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
                .connection_timeout(CONNECTION_TIMEOUT)
                .response_timeout(RESPONSE_TIMEOUT)
                .retries(1)
                .min_retry_wait(50)
                .max_retry_wait(200)
                .build()
                .context("REDIS_CLUSTER_NODES is not a valid list of Redis URLs")?;
            let config = ClusterConfig::new()
                .set_connection_timeout(CONNECTION_TIMEOUT)
                .set_response_timeout(RESPONSE_TIMEOUT);
            Ok(Redis::Cluster(
                client.get_pending_async_connection_with_config(config),
            ))
        }
    }
}

/// Builds key names with the process's prefix. On a cluster, the keys of
/// one user (the denylist entries of their tokens and sessions, their
/// not-before mark) carry the `{<user_id>}` hash tag after `portcullis:`,
/// so the one `MGET` of every authenticated request stays in one slot.
#[derive(Debug, Clone)]
pub struct Keys {
    base: String,
    prefix: String,
    cluster: bool,
}

impl Keys {
    pub fn new(prefix: &str, cluster: bool) -> Self {
        Self {
            base: format!("portcullis:{prefix}"),
            prefix: prefix.to_owned(),
            cluster,
        }
    }

    pub fn key(&self, name: std::fmt::Arguments<'_>) -> String {
        use std::fmt::Write;
        let mut key = String::with_capacity(self.base.len() + 64);
        key.push_str(&self.base);
        let _ = key.write_fmt(name);
        key
    }

    /// A key read together with the user's other keys.
    pub fn user_key(&self, user_id: Uuid, name: std::fmt::Arguments<'_>) -> String {
        use std::fmt::Write;
        if !self.cluster {
            return self.key(name);
        }
        let mut key = String::with_capacity(self.base.len() + 104);
        let _ = write!(key, "portcullis:{{{user_id}}}:{}", self.prefix);
        let _ = key.write_fmt(name);
        key
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_users_keys_share_a_hash_tag_only_on_a_cluster() {
        let user = Uuid::nil();
        let node = Keys::new("", false);
        assert_eq!(
            node.user_key(user, format_args!("not_before:{user}")),
            format!("portcullis:not_before:{user}")
        );
        let cluster = Keys::new("t:", true);
        assert_eq!(
            cluster.user_key(user, format_args!("denylist:sid:x")),
            format!("portcullis:{{{user}}}:t:denylist:sid:x")
        );
    }
}
