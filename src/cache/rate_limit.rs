//! Fixed-window counters in Redis for failed logins, per normalised email
//! and per client address (CONTRACT.md, "Brute force").
//!
//! Every guess at a secret (a login's password or code, a signed-in user's
//! password re-check or code) reserves its place in both counters just
//! before it is checked, each with one atomic check-and-count, so parallel
//! guesses cannot overshoot a limit; when the address refuses a guess the
//! account counted, the account's slot is given back. A right guess gives
//! its slots back, leaving only failures counted; only a completed login
//! clears the account counter (CONTRACT.md, "Recovery ends what an intruder
//! left behind"). No script touches two keys: the account
//! and the address counters live in different slots of a Redis Cluster. The reservation is
//! taken once the attempt holds an Argon2 permit, so at most one attempt per
//! core is in flight and parallel correct logins are not refused.

use std::net::IpAddr;
use std::sync::LazyLock;
use std::time::Duration;

use ipnet::{IpNet, Ipv6Net};
use redis::Script;
use sha2::{Digest, Sha256};

use super::{Keys, Redis};

/// Returns {0, count} when KEYS[1] is under the limit ARGV[2] (counting the
/// attempt, with expiry ARGV[3], if ARGV[1] is 1; count is then the count
/// with it), or {1, seconds} when the limit is reached.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        local count = tonumber(redis.call('GET', KEYS[1]) or '0')
        if count >= tonumber(ARGV[2]) then
            local ttl = redis.call('TTL', KEYS[1])
            if ttl < 1 then ttl = 1 end
            return {1, ttl}
        end
        if ARGV[1] == '1' then
            count = redis.call('INCR', KEYS[1])
            if count == 1 then
                redis.call('EXPIRE', KEYS[1], ARGV[3])
            end
        end
        return {0, count}
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

/// Gives one slot back to KEYS[1], never going below zero.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
        if tonumber(redis.call('GET', KEYS[1]) or '0') > 0 then
            redis.call('DECR', KEYS[1])
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
    redis: Redis,
    keys: Keys,
}

impl RateLimiter {
    pub fn new(redis: Redis, keys: Keys) -> Self {
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
        let (account, address) = (
            self.email_key("login", email),
            self.address_key("login", address),
        );
        // Two reads with nothing to undo: both at once.
        let (account, address) = tokio::try_join!(
            self.reserve(&account, false, limits.per_account, limits.window),
            self.reserve(&address, false, limits.per_address, limits.window),
        )?;
        Ok(account.and(address).map(|_| ()))
    }

    /// Counts a guess at a secret (a password, a code) against both login
    /// limits before it is checked: the account first, then the address,
    /// which gives the account its slot back if it refuses. `Ok(true)` when
    /// the guess took the account's last slot: wrong, it locks the account.
    pub async fn reserve_guess(
        &self,
        email: &str,
        address: IpAddr,
        limits: LoginLimits,
    ) -> redis::RedisResult<Result<bool, Limited>> {
        let account = self.email_key("login", email);
        let count = match self
            .reserve(&account, true, limits.per_account, limits.window)
            .await?
        {
            Ok(count) => count,
            Err(limited) => return Ok(Err(limited)),
        };
        let address = self.address_key("login", address);
        match self
            .reserve(&address, true, limits.per_address, limits.window)
            .await
        {
            Ok(Ok(_)) => Ok(Ok(count >= u64::from(limits.per_account))),
            refused_or_failed => {
                self.release(&account).await?;
                refused_or_failed.map(|r| r.map(|_| false))
            }
        }
    }

    /// Counts a guess that names no account (a passkey sign-in) against the
    /// address's login limit only, before it is checked.
    pub async fn reserve_address_guess(
        &self,
        address: IpAddr,
        limits: LoginLimits,
    ) -> redis::RedisResult<Result<(), Limited>> {
        Ok(self
            .reserve(
                &self.address_key("login", address),
                true,
                limits.per_address,
                limits.window,
            )
            .await?
            .map(|_| ()))
    }

    /// A right guess of [`Self::reserve_address_guess`] gives its slot back.
    pub async fn address_guess_right(&self, address: IpAddr) -> redis::RedisResult<()> {
        self.release(&self.address_key("login", address)).await
    }

    /// Checks `key` against `max` and, if `count`, counts one more request
    /// in a window of `window`, atomically.
    async fn reserve(
        &self,
        key: &str,
        count: bool,
        max: u32,
        window: Duration,
    ) -> redis::RedisResult<Result<u64, Limited>> {
        let mut redis = self.redis.clone();
        let (refused, value): (u32, u64) = RESERVE
            .key(key)
            .arg(if count { "1" } else { "0" })
            .arg(max)
            .arg(window.as_secs().max(1))
            .invoke_async(&mut redis)
            .await?;
        Ok(match refused {
            0 => Ok(value),
            _ => Err(Limited {
                retry_after: Duration::from_secs(value),
            }),
        })
    }

    /// Gives one counted request of `key` back.
    async fn release(&self, key: &str) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let _: i64 = RELEASE.key(key).invoke_async(&mut redis).await?;
        Ok(())
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
        Ok(self
            .reserve(&self.email_key(scope, email), true, max, window)
            .await?
            .map(|_| ()))
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
        Ok(self
            .reserve(&self.address_key(scope, address), true, max, window)
            .await?
            .map(|_| ()))
    }

    /// A right guess (a password, a code) gives back the slots it
    /// reserved; earlier failures stay counted. Only [`Self::login_completed`]
    /// clears an account's count.
    pub async fn guess_right(&self, email: &str, address: IpAddr) -> redis::RedisResult<()> {
        let (account, address) = (
            self.email_key("login", email),
            self.address_key("login", address),
        );
        tokio::try_join!(self.release(&account), self.release(&address))?;
        Ok(())
    }

    /// True for the first call of a window for `email` (normalised) and
    /// `scope`, false for the rest: a refused attempt of a locked account is
    /// recorded once per window, so a flood of refusals writes no flood of
    /// rows.
    pub async fn first_in_window(
        &self,
        scope: &str,
        email: &str,
        window: Duration,
    ) -> redis::RedisResult<bool> {
        let mut redis = self.redis.clone();
        let set: Option<String> = redis::cmd("SET")
            .arg(self.email_key(scope, email))
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(window.as_secs().max(1))
            .query_async(&mut redis)
            .await?;
        Ok(set.is_some())
    }

    /// A login completed (every factor it needs was right): the account
    /// counter starts again and the address gets back the slot this last
    /// guess reserved, nothing more.
    pub async fn login_completed(&self, email: &str, address: IpAddr) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        let mut clear = redis::cmd("DEL");
        clear.arg(self.email_key("login", email));
        let address = self.address_key("login", address);
        tokio::try_join!(clear.query_async::<i64>(&mut redis), self.release(&address))?;
        Ok(())
    }

    /// An admin cleared the account's failures: its count starts again and
    /// its lockout is no longer noted. Per-address counts stay.
    pub async fn clear_account(&self, email: &str) -> redis::RedisResult<()> {
        let mut redis = self.redis.clone();
        // One key per command: the two need not share a cluster slot.
        for scope in ["login", "locked_noted"] {
            redis::cmd("DEL")
                .arg(self.email_key(scope, email))
                .query_async::<i64>(&mut redis)
                .await?;
        }
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
