//! PostgreSQL going away under load (issue: performance and growth): the
//! api and the worker reach the database through a TCP proxy the test can
//! cut (every connection dropped and new ones refused, as when the server
//! stops) and pause (connections kept, no byte moving, as when the server's
//! process is stopped or the network goes quiet), while logins, refreshes
//! and reset requests run.
//!
//! While it is away only 503 answers fail; once it is back the pool
//! recovers on its own and nothing fails; every reset accepted (202) is
//! mailed; no session exists without its refresh token, and every login
//! that answered 200 left its session.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{TcpProxy, TestResources, read_emails};
use portcullis::config::Config;
use serde_json::json;
use tokio_util::sync::CancellationToken;

const PASSWORD: &str = "correct horse battery staple";
const USERS: usize = 6;

/// `url` with its host and port replaced by the proxy's.
fn through(url: &str, port: u16) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (credentials, rest) = match rest.split_once('@') {
        Some((credentials, rest)) => (format!("{credentials}@"), rest),
        None => (String::new(), rest),
    };
    let path = rest.find('/').map_or("", |slash| &rest[slash..]);
    format!("{scheme}://{credentials}127.0.0.1:{port}{path}")
}

/// The address PostgreSQL listens on, from the test database's URL.
fn postgres_address(url: &str) -> std::net::SocketAddr {
    let rest = url.split_once("://").unwrap().1;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, rest)| rest);
    let host_port = rest.split('/').next().unwrap();
    let host_port = if host_port.contains(':') {
        host_port.to_owned()
    } else {
        format!("{host_port}:5432")
    };
    use std::net::ToSocketAddrs;
    host_port.to_socket_addrs().unwrap().next().unwrap()
}

/// Every answer, with when it came.
#[derive(Default)]
struct Log(Mutex<Vec<(Instant, &'static str, u16)>>);

impl Log {
    fn push(&self, kind: &'static str, status: u16) {
        self.0.lock().unwrap().push((Instant::now(), kind, status));
    }

    /// The answers between `from` and `to` that are not `allowed`.
    fn outside(&self, from: Instant, to: Instant, allowed: &[u16]) -> Vec<(&'static str, u16)> {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _, status)| *at >= from && *at < to && !allowed.contains(status))
            .map(|(_, kind, status)| (*kind, *status))
            .collect()
    }

    fn count(&self, kind: &str, status: u16) -> usize {
        self.0
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, k, s)| *k == kind && *s == status)
            .count()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_stopping_and_pausing_under_load_costs_only_503s_while_it_is_away() {
    let resources = TestResources::create().await;
    let proxy = TcpProxy::start(postgres_address(&resources.database_url)).await;
    let mut vars: HashMap<String, String> = resources.vars();
    vars.insert(
        "DATABASE_URL".into(),
        through(&resources.database_url, proxy.port),
    );
    for (name, value) in [
        ("LOGIN_MAX_FAILURES_PER_ADDRESS", "1000000"),
        ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "1000000"),
        ("RESET_MAX_REQUESTS_PER_EMAIL", "1000000"),
        ("EMAIL_REQUESTS_MAX_PER_ADDRESS", "1000000"),
        ("REGISTER_MAX_PER_ADDRESS", "1000000"),
        ("JOB_RETRY_BASE_DELAY_MS", "200"),
    ] {
        vars.insert(name.into(), value.into());
    }
    let config = Arc::new(Config::from_vars(vars).unwrap());
    let stop = CancellationToken::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(portcullis::run_api(
        config.clone(),
        listener,
        None,
        stop.clone(),
    ));
    let metrics = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tokio::spawn(portcullis::run_worker(config, metrics, stop.clone()));
    let _stop = stop.drop_guard();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(40))
        .build()
        .unwrap();
    for _ in 0..300 {
        if let Ok(ready) = client.get(format!("{base}/readyz")).send().await
            && ready.status() == 200
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let emails: Vec<String> = (0..USERS)
        .map(|n| format!("outage-{n}-{}@example.com", uuid::Uuid::new_v4().simple()))
        .collect();
    for email in &emails {
        let registered = client
            .post(format!("{base}/api/v1/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        assert_eq!(registered.status(), 201);
    }

    let log = Arc::new(Log::default());
    let cookies = Arc::new(Mutex::new(Vec::<String>::new()));
    let accepted_resets = Arc::new(Mutex::new(HashMap::<String, usize>::new()));
    let load = CancellationToken::new();
    let mut tasks = Vec::new();
    for (n, email) in emails.iter().enumerate() {
        let (client, base, log, load) = (client.clone(), base.clone(), log.clone(), load.clone());
        let (email, cookies, resets) = (email.clone(), cookies.clone(), accepted_resets.clone());
        tasks.push(tokio::spawn(async move {
            let mut cookie: Option<String> = None;
            while !load.is_cancelled() {
                // A login, a refresh of this user's session, and every
                // third round a reset request.
                let login = client
                    .post(format!("{base}/api/v1/auth/login"))
                    .json(&json!({"email": email, "password": PASSWORD}))
                    .send()
                    .await;
                if let Ok(login) = login {
                    log.push("login", login.status().as_u16());
                    if login.status() == 200
                        && let Some(set) = refresh_cookie(&login)
                    {
                        cookies.lock().unwrap().push(set.clone());
                        cookie.get_or_insert(set);
                    }
                }
                if let Some(current) = cookie.clone() {
                    let refresh = client
                        .post(format!("{base}/api/v1/auth/refresh"))
                        .header("cookie", format!("refresh_token={current}"))
                        .send()
                        .await;
                    if let Ok(refresh) = refresh {
                        let status = refresh.status().as_u16();
                        log.push("refresh", status);
                        if status == 200 {
                            cookie = refresh_cookie(&refresh);
                        }
                    }
                }
                if n % 2 == 0 {
                    let reset = client
                        .post(format!("{base}/api/v1/auth/password-reset/request"))
                        .json(&json!({"email": email}))
                        .send()
                        .await;
                    if let Ok(reset) = reset {
                        log.push("reset", reset.status().as_u16());
                        if reset.status() == 202 {
                            *resets.lock().unwrap().entry(email.clone()).or_default() += 1;
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }));
    }

    // Up, then stopped for 5 s, then back.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let cut_at = Instant::now();
    proxy.cut();
    tokio::time::sleep(Duration::from_secs(5)).await;
    proxy.restore();
    let restored_at = Instant::now();
    // The first requests after it may still be waiting on a dead socket
    // or a connect that began while it was away.
    tokio::time::sleep(Duration::from_secs(6)).await;
    let paused_at = Instant::now();
    proxy.pause();
    tokio::time::sleep(Duration::from_secs(10)).await;
    proxy.resume();
    let resumed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(8)).await;
    let ended_at = Instant::now();
    load.cancel();
    for task in tasks {
        task.await.unwrap();
    }

    let ok: &[u16] = &[200, 202];
    // Only 503 while it is away (and while the requests caught by it end).
    let away = log.outside(
        cut_at,
        restored_at + Duration::from_secs(6),
        &[200, 202, 503],
    );
    assert!(away.is_empty(), "while stopped: {away:?}");
    let paused = log.outside(
        paused_at,
        resumed_at + Duration::from_secs(3),
        &[200, 202, 503],
    );
    assert!(paused.is_empty(), "while paused: {paused:?}");
    // Before, between and after: everything succeeds, with no restart.
    let before = log.outside(Instant::now() - Duration::from_secs(3600), cut_at, ok);
    assert!(before.is_empty(), "before: {before:?}");
    let between = log.outside(restored_at + Duration::from_secs(3), paused_at, ok);
    assert!(between.is_empty(), "after the restart: {between:?}");
    let after = log.outside(resumed_at + Duration::from_secs(3), ended_at, ok);
    assert!(after.is_empty(), "after the pause: {after:?}");
    assert!(log.count("login", 503) > 0, "the outage was felt");
    assert!(log.count("login", 200) > 0 && log.count("refresh", 200) > 0);

    // No session without its refresh token, and a session for every login
    // that answered 200.
    let (db, connection) = tokio_postgres::connect(&resources.database_url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let half: i64 = db
        .query_one(
            "SELECT count(*) FROM sessions s \
             WHERE NOT EXISTS (SELECT 1 FROM refresh_tokens t WHERE t.session_id = s.id)",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(half, 0, "sessions without a refresh token");
    let logins = cookies.lock().unwrap().len() as i64;
    let sessions: i64 = db
        .query_one("SELECT count(*) FROM sessions", &[])
        .await
        .unwrap()
        .get(0);
    assert!(
        sessions >= logins,
        "{logins} logins answered 200 but {sessions} sessions exist"
    );

    // Every accepted reset is mailed, however long the worker waited.
    let accepted: usize = accepted_resets.lock().unwrap().values().sum();
    assert!(accepted > 0);
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let sent = read_emails(&resources.mail_dir)
            .iter()
            .filter(|e| e.subject().contains("Reset your password"))
            .count();
        if sent >= accepted {
            assert_eq!(sent, accepted, "one email per accepted reset");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{sent} of {accepted} accepted resets were mailed"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
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
        .filter(|v| !v.is_empty())
}
