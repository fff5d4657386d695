//! The requests whose cost might grow with the data (`bench/growth.sh`
//! seeds the data and runs this at each size): a login, a refresh,
//! `/users/me`, a page of `/users/me/events` and an admin search by address
//! prefix, each from WORKERS clients back to back for SECONDS.
//!
//! Usage: growth_probe BASE ADMIN_BASE ADMIN_KEY USERS [WORKERS] [SECONDS]
//! [KINDS] (comma-separated, default all).
//! The seeded users are `grow-<n>@example.com`, n below USERS, all with the
//! password below. Prints one JSON line per request kind.

use std::time::{Duration, Instant};

use serde_json::json;

const PASSWORD: &str = "correct horse battery staple";

#[derive(Clone, Copy)]
enum Kind {
    Login,
    Refresh,
    Me,
    Events,
    AdminSearch,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Login => "login",
            Kind::Refresh => "refresh",
            Kind::Me => "me",
            Kind::Events => "events",
            Kind::AdminSearch => "admin_search",
        }
    }
}

struct Probe {
    client: reqwest::Client,
    base: String,
    admin_base: String,
    admin_key: String,
    users: u64,
}

/// A worker's session: its access token and refresh cookie.
struct Session {
    access: String,
    cookie: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [base, admin_base, admin_key, users, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: growth_probe BASE ADMIN_BASE ADMIN_KEY USERS [WORKERS] [SECONDS]");
    };
    let workers: usize = rest.first().map_or(Ok(16), |n| n.parse())?;
    let seconds: u64 = rest.get(1).map_or(Ok(10), |n| n.parse())?;
    let only: Option<Vec<&str>> = rest.get(2).map(|kinds| kinds.split(',').collect());
    let probe = std::sync::Arc::new(Probe {
        client: reqwest::Client::new(),
        base: base.clone(),
        admin_base: admin_base.clone(),
        admin_key: admin_key.clone(),
        users: users.parse()?,
    });
    for kind in [
        Kind::Me,
        Kind::Events,
        Kind::AdminSearch,
        Kind::Refresh,
        Kind::Login,
    ] {
        if only
            .as_ref()
            .is_some_and(|only| !only.contains(&kind.name()))
        {
            continue;
        }
        let started = Instant::now();
        let duration = Duration::from_secs(seconds);
        let tasks: Vec<_> = (0..workers)
            .map(|worker| {
                let probe = probe.clone();
                tokio::spawn(async move {
                    let mut session = probe.login(worker as u64 * 7919).await?;
                    let mut latencies = Vec::new();
                    let mut n = worker as u64;
                    while started.elapsed() < duration {
                        n = n
                            .wrapping_mul(6364136223846793005)
                            .wrapping_add(1442695040888963407);
                        let at = Instant::now();
                        probe.once(kind, &mut session, n).await?;
                        latencies.push(at.elapsed());
                    }
                    anyhow::Ok(latencies)
                })
            })
            .collect();
        let mut all = Vec::new();
        for task in tasks {
            all.extend(task.await??);
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_unstable();
        let at = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
        println!(
            "{}",
            json!({
                "kind": kind.name(),
                "users": probe.users,
                "rps": all.len() as f64 / elapsed,
                "p50_ms": at(0.5),
                "p99_ms": at(0.99),
            })
        );
    }
    Ok(())
}

impl Probe {
    fn email(&self, n: u64) -> String {
        format!("grow-{}@example.com", n % self.users)
    }

    async fn login(&self, n: u64) -> anyhow::Result<Session> {
        let response = self
            .client
            .post(format!("{}/api/v1/auth/login", self.base))
            .json(&json!({"email": self.email(n), "password": PASSWORD}))
            .send()
            .await?
            .error_for_status()?;
        let cookie = refresh_cookie(&response).unwrap_or_default();
        let body: serde_json::Value = response.json().await?;
        Ok(Session {
            access: body["access_token"].as_str().unwrap_or_default().to_owned(),
            cookie,
        })
    }

    async fn once(&self, kind: Kind, session: &mut Session, n: u64) -> anyhow::Result<()> {
        match kind {
            Kind::Login => {
                self.login(n).await?;
            }
            Kind::Refresh => {
                let response = self
                    .client
                    .post(format!("{}/api/v1/auth/refresh", self.base))
                    .header("cookie", format!("refresh_token={}", session.cookie))
                    .send()
                    .await?
                    .error_for_status()?;
                session.cookie = refresh_cookie(&response).unwrap_or_default();
            }
            Kind::Me | Kind::Events => {
                let path = match kind {
                    Kind::Me => "/api/v1/users/me",
                    _ => "/api/v1/users/me/events?limit=20",
                };
                self.client
                    .get(format!("{}{path}", self.base))
                    .bearer_auth(&session.access)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
            }
            Kind::AdminSearch => {
                // A prefix one digit short of the largest numbers: it
                // matches about eleven addresses at any size.
                let digits = self.users.saturating_sub(1).max(100).to_string().len() as u32;
                let low = 10u64.pow(digits - 2);
                let prefix = format!("grow-{}", low + n % (9 * low));
                self.client
                    .get(format!(
                        "{}/admin/v1/users?email={prefix}&limit=20",
                        self.admin_base
                    ))
                    .bearer_auth(&self.admin_key)
                    .send()
                    .await?
                    .error_for_status()?
                    .bytes()
                    .await?;
            }
        }
        Ok(())
    }
}

fn refresh_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("refresh_token="))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}
