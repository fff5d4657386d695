//! Fixed-window counters in Redis for failed logins, per normalised email
//! and per client address (CONTRACT.md, "Brute force").
//!
//! A login attempt reserves its place in both counters atomically just
//! before the password is checked, so parallel attempts cannot overshoot a
//! limit; a successful login then clears the account counter and gives back
//! its address slot, leaving only failures counted. The reservation is
//! taken once the attempt holds an Argon2 permit, so at most one attempt per
//! core is in flight and parallel correct logins are not refused.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use ipnet::{IpNet, Ipv6Net};
use redis::Script;
use redis::aio::ConnectionManager;
use sha2::{Digest, Sha256};

use super::Keys;

/// Returns {0, 0} when under every limit (counting the attempt if ARGV[1]
/// is 1), or {n, seconds} when limit n is reached.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        for i = 1, #KEYS do
            local count = tonumber(redis.call('GET', KEYS[i]) or '0')
            if count >= tonumber(ARGV[i + 1]) then
                local ttl = redis.call('TTL', KEYS[i])
                if ttl < 1 then ttl = 1 end
                return {i, ttl}
            end
        end
        if ARGV[1] == '1' then
            for i = 1, #KEYS do
                if redis.call('INCR', KEYS[i]) == 1 then
                    redis.call('EXPIRE', KEYS[i], ARGV[#KEYS + 2])
                end
            end
        end
        return {0, 0}
        ",
    )
});

/// Clears KEYS[1] and gives one slot back to KEYS[2].
static SUCCEED: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        redis.call('DEL', KEYS[1])
        if tonumber(redis.call('GET', KEYS[2]) or '0') > 0 then
            redis.call('DECR', KEYS[2])
        end
        return 0
        ",
    )
});

/// What a per-address limit counts: an IPv4 address, or the /64 an IPv6
/// address belongs to (one host is usually handed a whole /64, so counting
/// single addresses would give it 2^64 budgets).
pub fn address_group(address: IpAddr) -> IpNet {
    match address {
        IpAddr::V4(_) => IpNet::from(address),
        IpAddr::V6(v6) => IpNet::V6(Ipv6Net::new_assert(v6, 64).trunc()),
    }
}

/// Gives one slot back to each of KEYS (a right password whose login
/// still waits for a code: it neither fails nor clears the failures).
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        for i = 1, #KEYS do
            if tonumber(redis.call('GET', KEYS[i]) or '0') > 0 then
                redis.call('DECR', KEYS[i])
            end
        end
        return 0
        ",
    )
});

/// Which limit refused an attempt, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limited {
    pub retry_after: Duration,
}

#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    pub window: Duration,
    pub per_account: u32,
    pub per_address: u32,
}

#[derive(Clone)]
pub struct RateLimiter {
    redis: ConnectionManager,
    keys: Keys,
}

impl RateLimiter {
    pub fn new(redis: ConnectionManager, keys: Keys) -> Self {
        Self { redis, keys }
    }

    /// Emails are hashed into key names: no address sits in Redis in clear.
    fn email_key(&self, scope: &str, email: &str) -> String {
        let digest = Sha256::digest(email.as_bytes());
        let mut hex = String::with_capacity(64);
        for byte in digest {
            use std::fmt::Write;
            let _ = write!(hex, "{byte:02x}");
        }
        self.keys.key(format_args!("ratelimit:{scope}:email:{hex}"))
    }

    fn address_key(&self, scope: &str, address: IpAddr) -> String {
        self.keys.key(format_args!(
            "ratelimit:{scope}:addr:{}",
            address_group(address)
        ))
    }

    /// Whether `email` (normalised) and `address` are under their limits,
    /// without counting anything: refuses a locked-out client before it
    /// waits for an Argon2 permit.
    pub async fn check_login(
        &self,
        email: &str,
        address: IpAddr,
        limits: LoginLimits,
    ) -> redis::RedisResult<Result<(), Limited>> {
        self.run_reserve(false, email, address, limits).await
    }

    /// Counts a login attempt against both limits, atomically.
    pub async fn reserve_login(
        &self,
        email: &str,
        address: IpAddr,
        limits: LoginLimits,
    ) -> redis::RedisResult<Result<(), Limited>> {
        self.run_reserve(true, email, address, limits).await
    }

    async fn run_reserve(
        &self,
        count: bool,
        email: &str,
        address: IpAddr,
        limits: LoginLimits,
    ) -> redis::RedisResult<Result<(), Limited>> {
        let mut invocation = RESERVE.prepare_invoke();
        invocation
            .key(self.email_key("login", email))
            .key(self.address_key("login", address))
            .arg(if count { "1" } else { "0" })
            .arg(limits.per_account)
            .arg(limits.per_address)
            .arg(limits.window.as_secs().max(1));
        self.reserve(invocation).await
    }

    /// Runs the reserve script; its answer as a [`Limited`] on refusal.
    async fn reserve(
        &self,
        invocation: redis::ScriptInvocation<'_>,
    ) -> redis::RedisResult<Result<(), Limited>> {
        let mut redis = self.redis.clone();
        let (refused, ttl): (u32, u64) = invocation.invoke_async(&mut redis).await?;
        Ok(match refused {
            0 => Ok(()),
            _ => Err(Limited {
                retry_after: Duration::from_secs(ttl),
            }),
        })
    }

    /// Counts a request of `scope` (a reset or verification link) for
    /// `email` (normalised).
    pub async fn reserve_email(
        &self,
        scope: &str,
        email: &str,
        max: u32,
        window: Duration,
    ) -> redis::RedisResult<Result<(), Limited>> {
        let mut invocation = RESERVE.prepare_invoke();
        invocation
            .key(self.email_key(scope, email))
            .arg("1")
            .arg(max)
            .arg(window.as_secs().max(1));
        self.reserve(invocation).await
    }

    /// Counts one request of `scope` (registrations, emails asked for) from
    /// `address` against `max` per `window`.
    pub async fn reserve_address(
        &self,
        scope: &str,
        address: IpAddr,
        max: u32,
        window: Duration,
    ) -> redis::RedisResult<Result<(), Limited>> {
        let mut invocation = RESERVE.prepare_invoke();
        invocation
            .key(self.address_key(scope, address))
            .arg("1")
            .arg(max)
            .arg(window.as_secs().max(1));
        self.reserve(invocation).await
    }

    /// A right password of an account with a second factor: the attempt's
    /// slots are given back, but earlier failures (wrong codes among them)
    /// stay counted until the whole login succeeds.
    pub async fn login_half_succeeded(
        &self,
        email: &str,
        address: IpAddr,
    ) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let _: i64 = RELEASE
            .key(self.email_key("login", email))
            .key(self.address_key("login", address))
            .invoke_async(&mut redis)
            .await?;
        Ok(())
    }

    /// A login succeeded: the account counter starts again and the
    /// address gets its reserved slot back.
    pub async fn login_succeeded(&self, email: &str, address: IpAddr) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let _: i64 = SUCCEED
            .key(self.email_key("login", email))
            .key(self.address_key("login", address))
            .invoke_async(&mut redis)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_count_per_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff:ffff:ffff:ffff".parse().unwrap();
        let other: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(address_group(a), address_group(b));
        assert_ne!(address_group(a), address_group(other));
        assert_eq!(address_group(a).to_string(), "2001:db8:1:2::/64");
    }

    #[test]
    fn ipv4_addresses_count_one_by_one() {
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert_ne!(address_group(a), address_group(b));
        assert_eq!(address_group(a).to_string(), "192.0.2.1/32");
    }
}
