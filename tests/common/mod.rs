//! Shared by every test binary: real services, one fresh database and one
//! set of queue and key names per test, so tests run in parallel.
//!
//! The services default to the local ones; `TEST_DATABASE_ADMIN_URL`,
//! `TEST_REDIS_URL` and `TEST_AMQP_URL` point elsewhere.

#![allow(dead_code)]

use std::collections::HashMap;

use portcullis::messaging::Topology;
use portcullis::messaging::topology::JobQueue;
use uuid::Uuid;

pub fn admin_database_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A database created for one test and dropped, with its queues, when the
/// test ends (pass or fail).
pub struct TestResources {
    pub database_name: String,
    pub database_url: String,
    pub queue_prefix: String,
    pub redis_key_prefix: String,
    pub mail_dir: std::path::PathBuf,
    pub jwt_secret: String,
}

impl TestResources {
    pub async fn create() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        let database_name = format!("portcullis_test_{id}");
        let (client, connection) =
            tokio_postgres::connect(&admin_database_url(), tokio_postgres::NoTls)
                .await
                .expect("PostgreSQL must be running for the tests (see README, Testing)");
        tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE \"{database_name}\""))
            .await
            .expect("creating the test database");
        let database_url = replace_database(&admin_database_url(), &database_name);
        let mail_dir = std::env::temp_dir().join(format!("portcullis-mail-{id}"));
        Self {
            database_name,
            database_url,
            queue_prefix: format!("test-{}.", &id[..12]),
            redis_key_prefix: format!("test-{}:", &id[..12]),
            mail_dir,
            jwt_secret: format!("test-secret-{}", Uuid::new_v4().simple()),
        }
    }

    /// The environment a process under test gets.
    pub fn vars(&self) -> HashMap<String, String> {
        [
            ("DATABASE_URL", self.database_url.clone()),
            ("REDIS_URL", redis_url()),
            ("AMQP_URL", amqp_url()),
            ("QUEUE_PREFIX", self.queue_prefix.clone()),
            ("REDIS_KEY_PREFIX", self.redis_key_prefix.clone()),
            ("JWT_SECRET", self.jwt_secret.clone()),
            ("JWT_SIGNING_KEYS", signing_key_file()),
            // base64 of 32 bytes: seals the second factors of the tests.
            (
                "DATA_ENCRYPTION_KEY",
                "dGVzdHMtZGF0YS1lbmNyeXB0aW9uLWtleS0zMi1ieXQ=".into(),
            ),
            (
                "MAIL_TRANSPORT",
                format!("file:{}", self.mail_dir.display()),
            ),
            ("COOKIE_SECURE", "false".into()),
            ("SHUTDOWN_TIMEOUT_SECONDS", "5".into()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
    }
}

/// An Ed25519 signing key for the processes under test, outside the
/// repository; made by the first test that needs it and shared by the rest
/// (written under another name, then renamed, so none reads half a key).
pub fn signing_key_file() -> String {
    use portcullis::security::keys::{SigningAlgorithm, generate, write_private_key};
    let path = std::env::temp_dir().join("portcullis-test-signing-key.pem");
    if !path.exists() {
        let draft = path.with_extension(format!("{}.tmp", Uuid::new_v4().simple()));
        let (pem, _) = generate(SigningAlgorithm::EdDsa).unwrap();
        write_private_key(&draft, &pem).unwrap();
        std::fs::rename(&draft, &path).unwrap();
    }
    path.display().to_string()
}

impl Drop for TestResources {
    fn drop(&mut self) {
        let database_name = self.database_name.clone();
        let topology = Topology::new(self.queue_prefix.clone());
        let key_pattern = format!("portcullis:{}*", self.redis_key_prefix);
        let mail_dir = self.mail_dir.clone();
        // Drop runs outside any runtime we may block, so clean up on a
        // thread of its own.
        let cleanup = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("cleanup runtime");
            runtime.block_on(async move {
                if let Ok((client, connection)) =
                    tokio_postgres::connect(&admin_database_url(), tokio_postgres::NoTls).await
                {
                    tokio::spawn(connection);
                    let _ = client
                        .batch_execute(&format!(
                            "DROP DATABASE IF EXISTS \"{database_name}\" WITH (FORCE)"
                        ))
                        .await;
                }
                delete_topology(&topology).await;
                delete_keys(&key_pattern).await;
            });
            let _ = std::fs::remove_dir_all(mail_dir);
        });
        let _ = cleanup.join();
    }
}

/// Deletes a prefix's exchange and queues.
pub async fn delete_topology(topology: &Topology) {
    use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
    let Ok(connection) =
        lapin::Connection::connect(&amqp_url(), lapin::ConnectionProperties::default()).await
    else {
        return;
    };
    if let Ok(channel) = connection.create_channel().await {
        for queue in JobQueue::ALL {
            for name in [
                topology.queue(queue),
                topology.dead_letter_queue(queue),
                topology.retry_queue(queue),
            ] {
                let _ = channel
                    .queue_delete(name.as_str().into(), QueueDeleteOptions::default())
                    .await;
            }
        }
        let _ = channel
            .exchange_delete(topology.exchange().into(), ExchangeDeleteOptions::default())
            .await;
    }
    let _ = connection.close(200, "test done".into()).await;
}

/// Deletes the Redis keys a test made (they all expire anyway).
async fn delete_keys(pattern: &str) {
    let Ok(client) = redis::Client::open(redis_url()) else {
        return;
    };
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(pattern)
        .query_async(&mut connection)
        .await
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: redis::RedisResult<()> = redis::cmd("DEL")
            .arg(keys)
            .query_async(&mut connection)
            .await;
    }
}

/// `postgres://user@host:port/db?x` with another database name.
fn replace_database(url: &str, database: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let scheme_end = base.find("://").map_or(0, |i| i + 3);
    let base = match base[scheme_end..].find('/') {
        Some(slash) => &base[..scheme_end + slash],
        None => base,
    };
    match query {
        Some(query) => format!("{base}/{database}?{query}"),
        None => format!("{base}/{database}"),
    }
}

/// A TCP port on which nothing listens.
pub fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// A TCP proxy the test can cut and restore, standing between a process
/// and a service (the broker), so a test can take the service away without
/// stopping the machine's own.
pub struct TcpProxy {
    pub port: u16,
    state: std::sync::Arc<ProxyState>,
    accept_task: tokio::task::JoinHandle<()>,
}

struct ProxyState {
    cut: std::sync::atomic::AtomicBool,
    generation: std::sync::Mutex<tokio_util::sync::CancellationToken>,
    /// While true, connections stay open and new ones are accepted, but no
    /// byte goes either way: a paused server, or a network that went quiet.
    paused: tokio::sync::watch::Sender<bool>,
}

impl TcpProxy {
    pub async fn start(target: std::net::SocketAddr) -> Self {
        use std::sync::atomic::Ordering;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = std::sync::Arc::new(ProxyState {
            cut: std::sync::atomic::AtomicBool::new(false),
            generation: std::sync::Mutex::new(tokio_util::sync::CancellationToken::new()),
            paused: tokio::sync::watch::channel(false).0,
        });
        let shared = state.clone();
        let accept_task = tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    continue;
                };
                if shared.cut.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let token = shared.generation.lock().unwrap().clone();
                let paused = shared.paused.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = tokio::net::TcpStream::connect(target).await else {
                        return;
                    };
                    let (from_client, to_client) = inbound.into_split();
                    let (from_server, to_server) = outbound.into_split();
                    tokio::select! {
                        _ = token.cancelled() => {}
                        _ = pump(from_client, to_server, paused.clone()) => {}
                        _ = pump(from_server, to_client, paused) => {}
                    }
                });
            }
        });
        Self {
            port,
            state,
            accept_task,
        }
    }

    /// Drops every open connection and refuses new ones.
    pub fn cut(&self) {
        use std::sync::atomic::Ordering;
        self.state.cut.store(true, Ordering::SeqCst);
        let mut generation = self.state.generation.lock().unwrap();
        generation.cancel();
        *generation = tokio_util::sync::CancellationToken::new();
    }

    pub fn restore(&self) {
        self.state
            .cut
            .store(false, std::sync::atomic::Ordering::SeqCst);
    }

    /// Holds every byte, both ways, until [`Self::resume`].
    pub fn pause(&self) {
        self.state.paused.send_replace(true);
    }

    pub fn resume(&self) {
        self.state.paused.send_replace(false);
    }
}

/// Copies `from` to `to`, holding the bytes while the proxy is paused.
async fn pump(
    mut from: impl tokio::io::AsyncRead + Unpin,
    mut to: impl tokio::io::AsyncWrite + Unpin,
    mut paused: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buffer = vec![0u8; 16 * 1024];
    loop {
        let Ok(read) = from.read(&mut buffer).await else {
            return;
        };
        if read == 0 {
            let _ = to.shutdown().await;
            return;
        }
        if paused.wait_for(|paused| !paused).await.is_err() {
            return;
        }
        if to.write_all(&buffer[..read]).await.is_err() {
            return;
        }
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept_task.abort();
    }
}

/// An email the file transport wrote.
#[derive(Debug, Clone)]
pub struct SentEmail {
    pub file_name: String,
    pub raw: String,
}

impl SentEmail {
    pub fn header(&self, name: &str) -> Option<&str> {
        let prefix = format!("{name}: ");
        self.raw
            .lines()
            .take_while(|line| !line.is_empty())
            .find_map(|line| line.strip_prefix(&prefix))
    }

    pub fn to(&self) -> &str {
        self.header("To").unwrap_or("")
    }

    pub fn subject(&self) -> &str {
        self.header("Subject").unwrap_or("")
    }

    /// The reset token of the link in the email, if there is one.
    pub fn reset_token(&self) -> Option<String> {
        self.link_token("/reset-password?token=")
    }

    /// The token of a verification or new-address link, if there is one.
    pub fn verify_token(&self) -> Option<String> {
        self.link_token("/verify-email?token=")
    }

    fn link_token(&self, link: &str) -> Option<String> {
        let start = self.raw.find(link)? + link.len();
        Some(
            self.raw[start..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                .collect(),
        )
    }
}

/// The emails in `dir`, oldest first.
pub fn read_emails(dir: &std::path::Path) -> Vec<SentEmail> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut emails: Vec<(std::time::SystemTime, SentEmail)> = entries
        .filter_map(Result::ok)
        .filter(|e| {
            e.file_name().to_string_lossy().ends_with(".eml")
                && !e.file_name().to_string_lossy().starts_with('.')
        })
        .filter_map(|e| {
            let modified = e.metadata().ok()?.modified().ok()?;
            let raw = std::fs::read_to_string(e.path()).ok()?;
            Some((
                modified,
                SentEmail {
                    file_name: e.file_name().to_string_lossy().into_owned(),
                    raw,
                },
            ))
        })
        .collect();
    emails.sort_by_key(|(modified, _)| *modified);
    emails.into_iter().map(|(_, email)| email).collect()
}

/// Waits until `dir` holds at least `count` emails matching `filter`.
pub async fn wait_for_emails(
    dir: &std::path::Path,
    count: usize,
    filter: impl Fn(&SentEmail) -> bool,
    limit: std::time::Duration,
) -> Vec<SentEmail> {
    let deadline = std::time::Instant::now() + limit;
    loop {
        let emails: Vec<SentEmail> = read_emails(dir).into_iter().filter(|e| filter(e)).collect();
        if emails.len() >= count {
            return emails;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected {count} emails, found {} after {limit:?}",
            emails.len()
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// The status of `GET /api/v1/users/me` at `base` with a bearer token.
pub async fn me_status(client: &reqwest::Client, base: &str, token: &str) -> u16 {
    client
        .get(format!("{base}/api/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The sum over a process's `/metrics` of the lines of one series, e.g.
/// `jobs_processed_total{kind="password_reset",outcome="sent"}`.
pub async fn metric(client: &reqwest::Client, process: &Process, series: &str) -> f64 {
    metric_at(client, &process.address, series).await
}

/// The same, from the `/metrics` served at `base` (`http://host:port`).
pub async fn metric_at(client: &reqwest::Client, base: &str, series: &str) -> f64 {
    let text = client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|line| line.starts_with(series))
        .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A `portcullis` process under test, its stdout kept line by line.
pub struct Process {
    name: String,
    pub child: std::process::Child,
    pub address: String,
    /// The admin listener's base URL, for an api process.
    pub admin_address: Option<String>,
    lines: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Process {
    /// Starts `portcullis <subcommand>` with exactly `vars` (plus a random
    /// port in `addr_var`), in an empty directory, and waits for it to log
    /// the address it listens on.
    pub fn start(subcommand: &str, addr_var: &str, mut vars: HashMap<String, String>) -> Self {
        use std::io::BufRead;
        vars.insert(addr_var.into(), "127.0.0.1:0".into());
        if subcommand == "api" {
            // Never the default port: tests run side by side.
            vars.entry("ADMIN_ADDR".into())
                .or_insert_with(|| "127.0.0.1:0".into());
        }
        vars.entry("LOG_FORMAT".into())
            .or_insert_with(|| "json".into());
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .arg(subcommand)
            .env_clear()
            .envs(&vars)
            .current_dir(std::env::temp_dir())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().unwrap();
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (address_tx, address_rx) = std::sync::mpsc::channel();
        let shared = lines.clone();
        std::thread::spawn(move || {
            let mut sent = false;
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if !sent
                    && let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(addr) = value["addr"].as_str()
                {
                    let admin = value["admin_addr"].as_str().map(str::to_owned);
                    let _ = address_tx.send((addr.to_owned(), admin));
                    sent = true;
                }
                shared.lock().unwrap().push(line);
            }
        });
        let (address, admin_address) = address_rx
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("the process logs its address");
        Self {
            name: subcommand.to_owned(),
            child,
            address: format!("http://{address}"),
            admin_address: admin_address.map(|a| format!("http://{a}")),
            lines,
        }
    }

    /// Every line it has written so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        // A failing test shows what the process said, less the access log.
        if std::thread::panicking() {
            let lines = self.lines();
            let said: Vec<&String> = lines
                .iter()
                .filter(|line| !line.contains("\"request completed\""))
                .collect();
            eprintln!(
                "--- {} at {} logged {} lines (access log left out):",
                self.name,
                self.address,
                said.len()
            );
            for line in said.iter().rev().take(300).rev() {
                eprintln!("{line}");
            }
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
