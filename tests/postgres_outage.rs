//! PostgreSQL going away under load (issue: performance and growth), while
//! logins, refreshes and reset requests run against the api and the worker:
//!
//! - a private PostgreSQL server, started for the test, is stopped the way
//!   an operator restarts it (`pg_ctl stop -m fast`: every backend is told
//!   "terminating connection due to administrator command", new connections
//!   are refused) and started again on the same port;
//! - the machine's server is reached through a TCP proxy the test cuts
//!   (every connection dropped, new ones refused) and pauses (connections
//!   kept, no byte moving, as when the server's process is stopped or the
//!   network goes quiet) for 10 s.
//!
//! While it is away only 503 answers fail; once it is back the pool
//! recovers on its own and nothing fails; every reset accepted (202) is
//! mailed; no session exists without its refresh token, and every login
//! that answered 200 left its session.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
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

/// One outage: when it began and when the database was back.
struct Outage {
    began: Instant,
    ended: Instant,
}

/// The requests caught by an outage may end a little after it.
const SETTLE: Duration = Duration::from_secs(3);

/// Starts the api and the worker on `database_url`, runs the load, lets
/// `outages` take the database away, then checks what the load saw and
/// what the database (at `check_url`) and the mailbox hold.
async fn under_load<F>(resources: &TestResources, database_url: &str, check_url: &str, outages: F)
where
    F: AsyncFnOnce() -> Vec<Outage>,
{
    let mut vars: HashMap<String, String> = resources.vars();
    vars.insert("DATABASE_URL".into(), database_url.to_owned());
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
                // A login, a refresh of this user's session, and for every
                // other user a reset request.
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

    let started_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let outages = outages().await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    let ended_at = Instant::now();
    load.cancel();
    for task in tasks {
        task.await.unwrap();
    }

    // While it is away (and while the requests caught by it end): only 503.
    for outage in &outages {
        let away = log.outside(outage.began, outage.ended + SETTLE, &[200, 202, 503]);
        assert!(away.is_empty(), "while away: {away:?}");
    }
    // Before, between and after: everything succeeds, with no restart.
    let mut from = started_at;
    for outage in outages.iter().chain([&Outage {
        began: ended_at,
        ended: ended_at,
    }]) {
        let up = log.outside(from, outage.began, &[200, 202]);
        assert!(up.is_empty(), "while it was up: {up:?}");
        from = outage.ended + SETTLE;
    }
    assert!(log.count("login", 503) > 0, "the outage was felt");
    assert!(log.count("login", 200) > 0 && log.count("refresh", 200) > 0);

    // No session without its refresh token, and a session for every login
    // that answered 200.
    let (db, connection) = tokio_postgres::connect(check_url, tokio_postgres::NoTls)
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_restarted_under_load_costs_only_503s_while_it_is_down() {
    let resources = TestResources::create().await;
    let server = PrivatePostgres::start();
    let url = server.url();
    under_load(&resources, &url, &url, async || {
        let began = Instant::now();
        server.stop();
        tokio::time::sleep(Duration::from_secs(5)).await;
        server.restart();
        let ended = Instant::now();
        vec![Outage { began, ended }]
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_cut_and_paused_under_load_costs_only_503s_while_it_is_away() {
    let resources = TestResources::create().await;
    let proxy = TcpProxy::start(postgres_address(&resources.database_url)).await;
    let url = through(&resources.database_url, proxy.port);
    under_load(&resources, &url, &resources.database_url, async || {
        // Cut for 5 s: every connection dropped, new ones refused.
        let began = Instant::now();
        proxy.cut();
        tokio::time::sleep(Duration::from_secs(5)).await;
        proxy.restore();
        let cut = Outage {
            began,
            ended: Instant::now(),
        };
        // The first requests after it may still be waiting on a dead
        // socket or on a connect that began while it was away.
        tokio::time::sleep(Duration::from_secs(6)).await;
        // Paused for 10 s: connections kept, no byte moving.
        let began = Instant::now();
        proxy.pause();
        tokio::time::sleep(Duration::from_secs(10)).await;
        proxy.resume();
        let paused = Outage {
            began,
            ended: Instant::now(),
        };
        vec![cut, paused]
    })
    .await;
}

/// A PostgreSQL server of the test's own, in a temporary directory on a
/// free port, so that stopping it touches no other test. Run as the
/// `postgres` user when the test runs as root (the server refuses root).
struct PrivatePostgres {
    dir: PathBuf,
    port: u16,
}

impl PrivatePostgres {
    fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("portcullis-pg-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let server = Self { dir, port };
        if is_root() {
            run(Command::new("chown").arg("postgres:").arg(&server.dir));
        }
        run(server
            .command("initdb")
            .args(["--auth=trust", "--username=postgres", "--no-sync", "-D"])
            .arg(server.dir.join("data")));
        server.restart();
        server
    }

    fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// `pg_ctl start`, waiting until it accepts connections.
    fn restart(&self) {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories={} -c fsync=off",
            self.port,
            self.dir.display()
        );
        run(self
            .command("pg_ctl")
            .args(["start", "-w", "-D"])
            .arg(self.dir.join("data"))
            .arg("-l")
            .arg(self.dir.join("server.log"))
            .args(["-o", &options]));
    }

    /// The way an operator restarts it: every backend is terminated.
    fn stop(&self) {
        run(self
            .command("pg_ctl")
            .args(["stop", "-w", "-m", "fast", "-D"])
            .arg(self.dir.join("data")));
    }

    fn command(&self, program: &str) -> Command {
        let path = Path::new("/usr/lib/postgresql")
            .read_dir()
            .ok()
            .and_then(|versions| {
                versions
                    .filter_map(|v| v.ok().map(|v| v.path().join("bin").join(program)))
                    .filter(|p| p.exists())
                    .max()
            })
            .unwrap_or_else(|| PathBuf::from(program));
        let mut command = if is_root() {
            let mut runuser = Command::new("runuser");
            runuser.args(["-u", "postgres", "--"]).arg(path);
            runuser
        } else {
            Command::new(path)
        };
        command.current_dir(&self.dir);
        command
    }
}

impl Drop for PrivatePostgres {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["stop", "-m", "immediate", "-D"])
            .arg(self.dir.join("data"))
            .output();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn run(command: &mut Command) {
    let output = command.output().expect("running a PostgreSQL tool");
    assert!(
        output.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
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
