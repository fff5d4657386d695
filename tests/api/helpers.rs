//! `spawn_app`: the real API, in-process, on a random port, with its own
//! database, queue names and Redis keys (STYLE.md, habits 1 and 2).

#![allow(dead_code)] // Not every test module uses every helper.

use std::collections::HashMap;
use std::sync::Arc;

use portcullis::config::{Config, LogFormat};
use serde_json::json;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use crate::common::*;

pub struct TestApp {
    pub address: String,
    pub port: u16,
    /// The admin listener's base URL.
    pub admin_address: String,
    pub client: reqwest::Client,
    pub config: Arc<Config>,
    pub shutdown: CancellationToken,
    pub server: Option<JoinHandle<anyhow::Result<()>>>,
    // Last, so the app is stopped before its database is dropped.
    pub resources: TestResources,
}

/// Logs stay silent unless `TEST_LOG` is set.
pub fn init_test_logging() {
    if std::env::var_os("TEST_LOG").is_some() {
        portcullis::telemetry::init_logging(LogFormat::Json, "info");
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Starts the app after `customise` has changed its environment.
pub async fn spawn_app_with(customise: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    init_test_logging();
    let resources = TestResources::create().await;
    let mut vars = resources.vars();
    customise(&mut vars);
    let config = Arc::new(Config::from_vars(vars).expect("test configuration is valid"));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let admin_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_address = format!("http://{}", admin_listener.local_addr().unwrap());
    let shutdown = CancellationToken::new();
    let server = tokio::spawn(portcullis::run_api(
        config.clone(),
        listener,
        Some(admin_listener),
        shutdown.clone(),
    ));
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        admin_address,
        client: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap(),
        config,
        shutdown,
        server: Some(server),
        resources,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .send()
            .await
            .expect("request sent")
    }

    /// Waits until the broker connection is up (it is made in the background).
    pub async fn wait_until_ready(&self) {
        for _ in 0..600 {
            if self.get("/readyz").await.status() == 200 {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("the app never became ready");
    }

    /// Cancels the shutdown token and waits for `run_api` to return.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let server = self.server.take().expect("stopped once");
        tokio::time::timeout(std::time::Duration::from_secs(15), server)
            .await
            .expect("the app stops within its shutdown grace")
            .expect("the app task did not panic")
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The JSON body of a response.
pub async fn json_body(response: reqwest::Response) -> serde_json::Value {
    let bytes = response.bytes().await.expect("body read");
    serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
}

/// Asserts an RFC 9457 problem with `status` and `type` slug; returns its body.
pub async fn assert_problem(
    response: reqwest::Response,
    status: u16,
    kind: &str,
) -> serde_json::Value {
    assert_eq!(response.status().as_u16(), status);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let correlation_id = response.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = json_body(response).await;
    assert_eq!(
        body["type"],
        format!("https://portcullis.dev/problems/{kind}")
    );
    assert_eq!(body["status"], status);
    assert!(body["title"].is_string());
    assert!(body["detail"].is_string());
    assert_eq!(body["correlation_id"], correlation_id);
    body
}

/// A registered user and the password it was registered with.
#[derive(Debug, Clone)]
pub struct TestUser {
    pub id: String,
    pub email: String,
    pub password: String,
}

/// What a login or refresh returned.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
}

/// A password the policy accepts.
pub const STRONG_PASSWORD: &str = "correct horse battery staple";
pub const OTHER_STRONG_PASSWORD: &str = "Quokka-Lantern-Fjord-93";

/// The value of the `refresh_token` cookie a response sets.
pub fn refresh_cookie_of(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("refresh_token="))
        .map(|v| v.split(';').next().unwrap_or("").to_owned())
}

impl TestApp {
    pub fn unique_email(&self) -> String {
        format!(
            "user-{}@example.com",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        )
    }

    pub async fn post_json(&self, path: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn register(&self, body: &serde_json::Value) -> reqwest::Response {
        self.post_json("/api/v1/auth/register", body).await
    }

    /// Registers a fresh user with a strong password.
    pub async fn register_user(&self) -> TestUser {
        let email = self.unique_email();
        let response = self
            .register(&serde_json::json!({"email": email, "password": STRONG_PASSWORD}))
            .await;
        assert_eq!(response.status(), 201);
        let body = json_body(response).await;
        TestUser {
            id: body["id"].as_str().unwrap().to_owned(),
            email,
            password: STRONG_PASSWORD.to_owned(),
        }
    }

    /// Registers a fresh user whose address is verified (set in the
    /// database: most tests that need it are not about the link).
    pub async fn register_verified_user(&self) -> TestUser {
        let user = self.register_user().await;
        self.mark_verified(&user).await;
        user
    }

    /// Marks `user`'s address verified, as its link would.
    pub async fn mark_verified(&self, user: &TestUser) {
        let id: uuid::Uuid = user.id.parse().unwrap();
        let updated = self
            .database()
            .await
            .execute(
                "UPDATE users SET email_verified = true WHERE id = $1",
                &[&id],
            )
            .await
            .unwrap();
        assert_eq!(updated, 1);
    }

    pub async fn login(&self, email: &str, password: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/login",
            &serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    /// Logs `user` in and returns its tokens.
    pub async fn login_user(&self, user: &TestUser) -> Tokens {
        let response = self.login(&user.email, &user.password).await;
        assert_eq!(response.status(), 200);
        tokens_of(response).await
    }

    pub async fn refresh(&self, refresh_token: Option<&str>) -> reqwest::Response {
        let mut request = self.client.post(self.url("/api/v1/auth/refresh"));
        if let Some(token) = refresh_token {
            request = request.header("cookie", format!("refresh_token={token}"));
        }
        request.send().await.expect("request sent")
    }

    pub async fn logout(&self, access: &str, refresh_token: Option<&str>) -> reqwest::Response {
        let mut request = self
            .client
            .post(self.url("/api/v1/auth/logout"))
            .bearer_auth(access);
        if let Some(token) = refresh_token {
            request = request.header("cookie", format!("refresh_token={token}"));
        }
        request.send().await.expect("request sent")
    }

    pub async fn logout_all(&self, access: &str) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/auth/logout-all"))
            .bearer_auth(access)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn me(&self, access: &str) -> reqwest::Response {
        self.client
            .get(self.url("/api/v1/users/me"))
            .bearer_auth(access)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn patch_me(&self, access: &str, body: &serde_json::Value) -> reqwest::Response {
        self.client
            .patch(self.url("/api/v1/users/me"))
            .bearer_auth(access)
            .json(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn change_password(
        &self,
        access: &str,
        current: &str,
        new: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/users/me/password"))
            .bearer_auth(access)
            .json(&serde_json::json!({"current_password": current, "new_password": new}))
            .send()
            .await
            .expect("request sent")
    }

    pub async fn sessions(&self, access: &str) -> reqwest::Response {
        self.client
            .get(self.url("/api/v1/users/me/sessions"))
            .bearer_auth(access)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn delete_session(&self, access: &str, id: &str) -> reqwest::Response {
        self.client
            .delete(self.url(&format!("/api/v1/users/me/sessions/{id}")))
            .bearer_auth(access)
            .send()
            .await
            .expect("request sent")
    }

    /// A direct connection to the app's database, for arranging and
    /// inspecting state the API does not expose.
    pub async fn database(&self) -> tokio_postgres::Client {
        let (client, connection) =
            tokio_postgres::connect(&self.resources.database_url, tokio_postgres::NoTls)
                .await
                .expect("connecting to the test database");
        tokio::spawn(connection);
        client
    }
}

/// The access token and refresh cookie of a 200 token response.
pub async fn tokens_of(response: reqwest::Response) -> Tokens {
    assert_eq!(response.status(), 200);
    let refresh = refresh_cookie_of(&response).expect("a refresh cookie");
    let body = json_body(response).await;
    Tokens {
        access: body["access_token"].as_str().unwrap().to_owned(),
        refresh,
    }
}

/// The claims of a JWT, unverified.
pub fn jwt_claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("a JWT has three parts");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url payload");
    serde_json::from_slice(&bytes).expect("JSON claims")
}

/// The worker, in-process, on the app's database and queues.
pub struct TestWorker {
    pub metrics_address: String,
    pub shutdown: CancellationToken,
    pub handle: Option<JoinHandle<anyhow::Result<()>>>,
}

impl TestWorker {
    /// Asks it to stop and waits until it has drained.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        self.shutdown.cancel();
        let handle = self.handle.take().expect("stopped once");
        tokio::time::timeout(std::time::Duration::from_secs(20), handle)
            .await
            .expect("the worker stops")
            .expect("the worker task did not panic")
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl TestApp {
    pub async fn spawn_worker(&self) -> TestWorker {
        self.spawn_worker_with(|_| {}).await
    }

    pub async fn spawn_worker_with(
        &self,
        customise: impl FnOnce(&mut HashMap<String, String>),
    ) -> TestWorker {
        let mut vars = self.resources.vars();
        vars.insert("JOB_RETRY_BASE_DELAY_MS".into(), "50".into());
        customise(&mut vars);
        let config = Arc::new(Config::from_vars(vars).expect("worker configuration is valid"));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics_address = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(portcullis::run_worker(config, listener, shutdown.clone()));
        TestWorker {
            metrics_address,
            shutdown,
            handle: Some(handle),
        }
    }

    pub fn mail_dir(&self) -> &std::path::Path {
        &self.resources.mail_dir
    }

    pub async fn request_reset(&self, email: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/password-reset/request",
            &serde_json::json!({"email": email}),
        )
        .await
    }

    pub async fn confirm_reset(&self, token: &str, new_password: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/password-reset/confirm",
            &serde_json::json!({"token": token, "new_password": new_password}),
        )
        .await
    }

    /// Asks for a reset link for `user` and returns its token from the email.
    pub async fn reset_token_for(&self, user: &TestUser) -> String {
        assert_eq!(self.request_reset(&user.email).await.status(), 202);
        self.emails_to(&user.email, "Reset your password", 1).await[0]
            .reset_token()
            .expect("a link with a token")
    }

    /// Waits for `count` emails to `email` whose subject contains `subject`.
    pub async fn emails_to(&self, email: &str, subject: &str, count: usize) -> Vec<SentEmail> {
        let (email, subject) = (email.to_owned(), subject.to_owned());
        wait_for_emails(
            self.mail_dir(),
            count,
            move |e| e.to() == email && e.subject().contains(&subject),
            std::time::Duration::from_secs(60),
        )
        .await
    }

    /// A user made straight in the database (no request, so no Redis),
    /// its password hashed with cheaper Argon2 parameters than the app's.
    pub async fn insert_user_with_old_hash(&self) -> TestUser {
        use argon2::password_hash::PasswordHasher as _;
        let argon2 = argon2::Argon2::new(
            argon2::Algorithm::Argon2id,
            argon2::Version::V0x13,
            argon2::Params::new(8192, 1, 1, None).unwrap(),
        );
        let hash = argon2
            .hash_password(STRONG_PASSWORD.as_bytes())
            .unwrap()
            .to_string();
        let id = uuid::Uuid::new_v4();
        let email = self.unique_email();
        let db = self.database().await;
        // The app migrates its database as it starts.
        for _ in 0..100 {
            let inserted = db
                .execute(
                    "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)",
                    &[&id, &email, &hash],
                )
                .await;
            if inserted.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        TestUser {
            id: id.to_string(),
            email,
            password: STRONG_PASSWORD.to_owned(),
        }
    }

    /// The stored password hash of `user`.
    pub async fn password_hash_of(&self, user: &TestUser) -> String {
        let id = uuid::Uuid::parse_str(&user.id).unwrap();
        self.database()
            .await
            .query_one("SELECT password_hash FROM users WHERE id = $1", &[&id])
            .await
            .unwrap()
            .get(0)
    }

    /// Users made straight in the database, sharing one password hash:
    /// many users without an Argon2 run each.
    pub async fn insert_users(&self, template: &TestUser, count: usize) -> Vec<TestUser> {
        let db = self.database().await;
        let template_id = uuid::Uuid::parse_str(&template.id).unwrap();
        let hash: String = db
            .query_one(
                "SELECT password_hash FROM users WHERE id = $1",
                &[&template_id],
            )
            .await
            .unwrap()
            .get(0);
        let mut users = Vec::with_capacity(count);
        for _ in 0..count {
            let id = uuid::Uuid::new_v4();
            let email = self.unique_email();
            db.execute(
                "INSERT INTO users (id, email, password_hash) VALUES ($1, $2, $3)",
                &[&id, &email, &hash],
            )
            .await
            .unwrap();
            users.push(TestUser {
                id: id.to_string(),
                email,
                password: template.password.clone(),
            });
        }
        users
    }
}

/// host:port of the broker the tests use.
pub fn broker_address() -> std::net::SocketAddr {
    let url = amqp_url();
    let authority = url.split('@').next_back().unwrap();
    let host_port = authority.split('/').next().unwrap();
    host_port
        .parse()
        .expect("the test AMQP URL names an IP address and port")
}

/// Sends the requests at once; their statuses, in order.
pub async fn statuses_of<F>(requests: impl IntoIterator<Item = F>) -> Vec<u16>
where
    F: std::future::Future<Output = reqwest::Response>,
{
    futures_util::future::join_all(requests)
        .await
        .iter()
        .map(|r| r.status().as_u16())
        .collect()
}

/// How many of `statuses` are `status`.
pub fn count_of(statuses: &[u16], status: u16) -> usize {
    statuses.iter().filter(|s| **s == status).count()
}

pub const VERIFY_SUBJECT: &str = "Verify your email address";
pub const CHANGE_SUBJECT: &str = "Confirm your new email address";

/// Links and the account's lifecycle (CONTRACT.md, "Email verification").
impl TestApp {
    pub async fn confirm_verification(&self, token: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/verify-email/confirm",
            &json!({"token": token}),
        )
        .await
    }

    pub async fn request_verification(&self, email: &str) -> reqwest::Response {
        self.post_json(
            "/api/v1/auth/verify-email/request",
            &json!({"email": email}),
        )
        .await
    }

    /// The token of the `nth` (from 1) verification email to `email`.
    pub async fn verify_token(&self, email: &str, subject: &str, nth: usize) -> String {
        self.emails_to(email, subject, nth).await[nth - 1]
            .verify_token()
            .expect("a link with a token")
    }

    pub async fn change_email(
        &self,
        access: &str,
        password: &str,
        new_email: &str,
    ) -> reqwest::Response {
        self.client
            .post(self.url("/api/v1/users/me/email"))
            .bearer_auth(access)
            .json(&json!({"current_password": password, "new_email": new_email}))
            .send()
            .await
            .unwrap()
    }

    pub async fn delete_account(&self, access: &str, password: &str) -> reqwest::Response {
        self.client
            .delete(self.url("/api/v1/users/me"))
            .bearer_auth(access)
            .json(&json!({"current_password": password}))
            .send()
            .await
            .unwrap()
    }
}

/// An account with TOTP enabled: its secret and recovery codes.
pub struct Enrolled {
    pub user: TestUser,
    pub access: String,
    pub secret: Vec<u8>,
    pub recovery_codes: Vec<String>,
}

pub fn now() -> u64 {
    time::OffsetDateTime::now_utc().unix_timestamp() as u64
}

pub fn code(secret: &[u8], at: u64) -> String {
    portcullis::security::totp::code_at(secret, at)
}

/// A 6-digit code that is wrong at every step in the window.
pub fn wrong_code(secret: &[u8]) -> String {
    let t = now();
    let taken: Vec<String> = [t - 30, t, t + 30]
        .iter()
        .map(|at| code(secret, *at))
        .collect();
    (0..1_000_000)
        .map(|n| format!("{n:06}"))
        .find(|c| !taken.contains(c))
        .unwrap()
}

/// The second factor (CONTRACT.md, "Second factor").
impl TestApp {
    pub async fn bearer_json(
        &self,
        method: reqwest::Method,
        path: &str,
        access: &str,
        body: serde_json::Value,
    ) -> reqwest::Response {
        self.client
            .request(method, self.url(path))
            .bearer_auth(access)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn enrol(&self, access: &str, password: &str) -> reqwest::Response {
        let body = json!({"current_password": password});
        self.bearer_json(
            reqwest::Method::POST,
            "/api/v1/users/me/mfa/totp",
            access,
            body,
        )
        .await
    }

    pub async fn confirm_mfa(&self, access: &str, code: &str) -> reqwest::Response {
        let body = json!({"code": code});
        self.bearer_json(
            reqwest::Method::POST,
            "/api/v1/users/me/mfa/totp/confirm",
            access,
            body,
        )
        .await
    }

    pub async fn login_mfa(&self, body: serde_json::Value) -> reqwest::Response {
        self.post_json("/api/v1/auth/login/mfa", &body).await
    }

    /// Logs in with the password; returns the `mfa_token` of the 403.
    pub async fn mfa_token(&self, user: &TestUser) -> String {
        let response = self.login(&user.email, &user.password).await;
        let body = assert_problem(response, 403, "mfa-required").await;
        body["mfa_token"].as_str().unwrap().to_owned()
    }

    pub async fn enrolled_user(&self) -> Enrolled {
        let user = self.register_verified_user().await;
        let access = self.login_user(&user).await.access;
        let enrolment = self.enrol(&access, &user.password).await;
        assert_eq!(enrolment.status(), 201);
        let body = json_body(enrolment).await;
        let secret = totp_rs::Secret::try_from_base32(body["secret"].as_str().unwrap())
            .unwrap()
            .to_vec();
        // Confirmed with the previous step's code (one step of drift is
        // allowed), leaving the current one for the test.
        let confirmed = self.confirm_mfa(&access, &code(&secret, now() - 30)).await;
        assert_eq!(confirmed.status(), 200);
        let body = json_body(confirmed).await;
        let recovery_codes = body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        Enrolled {
            user,
            access,
            secret,
            recovery_codes,
        }
    }
}

/// Holds the next login of `email` right after its password check (the
/// `on_password_verified` seam): the first `Notify` fires when it gets
/// there, and it goes on once the second is notified. Once per process.
pub fn hold_login_after_password_check(
    email: &str,
) -> (Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>) {
    let paused = Arc::new(tokio::sync::Notify::new());
    let release = Arc::new(tokio::sync::Notify::new());
    let armed = Arc::new(std::sync::Mutex::new(Some(email.to_owned())));
    {
        let (paused, release) = (paused.clone(), release.clone());
        portcullis::services::seams::on_password_verified(move |email| {
            let hit = {
                let mut armed = armed.lock().unwrap();
                if armed.as_deref() == Some(email) {
                    armed.take()
                } else {
                    None
                }
            };
            let (paused, release) = (paused.clone(), release.clone());
            Box::pin(async move {
                if hit.is_some() {
                    paused.notify_one();
                    release.notified().await;
                }
            })
        });
    }
    (paused, release)
}
