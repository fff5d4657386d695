//! Configuration: every environment variable is read here, once, and
//! validated into a [`Config`]. See CONTRACT.md, "Processes", for the rules:
//! a missing or unsafe value is a [`ConfigError`] naming the variable, which
//! `main` prints as one line before exiting with code 2.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use std::sync::Arc;

use ipnet::IpNet;

use crate::security::keys::{KeySet, SigningAlgorithm};

/// The smallest HS256 secret we accept (RFC 7518 section 3.2: a key of the
/// same size as the hash output).
const MIN_JWT_SECRET_BYTES: usize = 32;

/// The `JWT_SECRET` that `.env.example` publishes: anyone can forge tokens
/// with it, so it starts only where `APP_ENV=development`.
pub const EXAMPLE_JWT_SECRET: &str = "dev-only-secret-change-me-0123456789abcdef";

/// The `DATA_ENCRYPTION_KEY` that `.env.example` publishes: anyone can open
/// second-factor secrets sealed with it, so, like the example `JWT_SECRET`,
/// it starts only where `APP_ENV=development`.
pub const EXAMPLE_DATA_ENCRYPTION_KEY: &str = "ZGV2LW9ubHktZGF0YS1rZXktY2hhbmdlLW1lLTAxMjM=";

/// A configuration value that stops the process at start.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{variable} {problem}")]
pub struct ConfigError {
    pub variable: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(variable: &'static str, problem: impl Into<String>) -> Self {
        Self {
            variable,
            problem: problem.into(),
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Json,
    Pretty,
}

/// Where the worker hands emails off.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MailTransport {
    /// One RFC 5322 `.eml` file per message in this directory.
    File(PathBuf),
    /// Plain SMTP to a relay or a catcher such as Mailpit.
    Smtp { host: String, port: u16 },
}

pub use crate::security::password::Argon2Params;

/// Where the process runs; development relaxes the refusal of published
/// example secrets, nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppEnv {
    Development,
    Production,
}

/// Where Redis is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RedisTarget {
    /// `REDIS_URL`: one node.
    Node(String),
    /// `REDIS_CLUSTER_NODES`: some nodes of a Redis Cluster (the client
    /// learns the rest from them); `REDIS_URL` is then not read.
    Cluster(Vec<String>),
}

/// The relying party passkeys are registered with and used for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebauthnSettings {
    /// A domain: `WEBAUTHN_RP_ID`, or `PUBLIC_URL`'s host.
    pub rp_id: String,
    pub rp_name: String,
    /// The origins a ceremony may come from: `WEBAUTHN_ORIGINS`, or
    /// `PUBLIC_URL`'s origin. The first is the library's main origin.
    pub origins: Vec<webauthn_rs::prelude::Url>,
}

/// `WEBAUTHN_RP_ID`, `WEBAUTHN_RP_NAME` and `WEBAUTHN_ORIGINS`, checked:
/// every origin must be the RP id or a subdomain of it, over https (or
/// http on localhost).
fn webauthn_settings(
    env: &Vars,
    public_url: &str,
) -> Result<Option<WebauthnSettings>, ConfigError> {
    use webauthn_rs::prelude::Url;
    let public = Url::parse(public_url).map_err(|_| {
        ConfigError::new("PUBLIC_URL", "must be an absolute http:// or https:// URL")
    })?;
    let rp_id = match env.optional("WEBAUTHN_RP_ID") {
        Some(rp_id) => {
            if rp_id.parse::<std::net::IpAddr>().is_ok() || rp_id.contains([':', '/']) {
                return Err(ConfigError::new(
                    "WEBAUTHN_RP_ID",
                    "must be a domain (WebAuthn refuses IP addresses), e.g. example.com",
                ));
            }
            rp_id.to_ascii_lowercase()
        }
        // WebAuthn needs a domain: with an IP address, passkeys are off.
        None => match public.domain() {
            Some(domain) => domain.to_ascii_lowercase(),
            None => return Ok(None),
        },
    };
    let origins = match env.optional("WEBAUTHN_ORIGINS") {
        Some(list) => list
            .split(',')
            .map(str::trim)
            .filter(|origin| !origin.is_empty())
            .map(|origin| {
                Url::parse(origin).map_err(|_| {
                    ConfigError::new("WEBAUTHN_ORIGINS", format!("`{origin}` is not a URL"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?,
        None => vec![public.clone()],
    };
    if origins.is_empty() {
        return Err(ConfigError::new("WEBAUTHN_ORIGINS", "lists no origin"));
    }
    for origin in &origins {
        let host = origin.host_str().unwrap_or("");
        let within = host == rp_id || host.ends_with(&format!(".{rp_id}"));
        let secure =
            origin.scheme() == "https" || (origin.scheme() == "http" && host == "localhost");
        if !within || !secure {
            return Err(ConfigError::new(
                "WEBAUTHN_ORIGINS",
                format!(
                    "`{origin}` must be https:// (or http://localhost) on {rp_id} or a subdomain of it"
                ),
            ));
        }
    }
    Ok(Some(WebauthnSettings {
        rp_id,
        rp_name: env
            .optional("WEBAUTHN_RP_NAME")
            .unwrap_or("Portcullis")
            .to_owned(),
        origins,
    }))
}

/// The validated configuration of both processes.
#[derive(Debug, Clone)]
pub struct Config {
    pub app_env: AppEnv,
    pub api_addr: SocketAddr,
    /// The admin API's own listener; `None` (`ADMIN_ADDR` empty) turns it off.
    pub admin_addr: Option<SocketAddr>,
    pub worker_metrics_addr: SocketAddr,
    pub database_url: String,
    pub database_pool_size: usize,
    /// One Redis node, or a Redis Cluster (`REDIS_CLUSTER_NODES`).
    pub redis: RedisTarget,
    /// The RabbitMQ addresses of `AMQP_URL`, tried in turn: the nodes of
    /// one cluster, so a process fails over when its node goes away.
    pub amqp_urls: Vec<String>,
    /// Prepended to every exchange and queue name, so parallel test runs on
    /// one broker never meet. Empty in production.
    pub queue_prefix: String,
    /// Prepended to every Redis key (after `portcullis:` is added by the
    /// cache module), for the same reason. Empty in production.
    pub redis_key_prefix: String,
    pub migrate_on_start: bool,
    pub jwt_secret: Secret,
    pub jwt_algorithm: SigningAlgorithm,
    /// The keys of `JWT_SIGNING_KEYS` (or the HS256 secret), loaded and
    /// checked at start.
    pub jwt_keys: Arc<KeySet>,
    pub jwt_issuer: String,
    pub jwt_audience: String,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub refresh_reuse_grace: Duration,
    pub password_reset_ttl: Duration,
    /// How long an invitation's set-password link works.
    pub invite_ttl: Duration,
    pub email_verification_ttl: Duration,
    /// Refuse logins of unverified addresses (403).
    pub require_verified_email: bool,
    /// Verification requests per email per hour.
    pub verify_max_requests_per_email: u32,
    pub password_min_length: usize,
    pub argon2: Argon2Params,
    /// Password hashes (and strength estimates) waiting for a hashing
    /// thread; past it, 503 with `Retry-After`.
    pub argon2_max_queue: usize,
    pub public_url: String,
    /// The passkey relying party (CONTRACT.md, "Passkeys"); `None` where
    /// WebAuthn cannot work: `PUBLIC_URL`'s host is an IP address and
    /// `WEBAUTHN_RP_ID` is unset.
    pub webauthn: Option<WebauthnSettings>,
    /// Seals second-factor secrets at rest (`DATA_ENCRYPTION_KEY`).
    pub data_encryption_key: Option<crate::security::totp::SecretBox>,
    /// Serve `/reset-password` and `/verify-email` (the emailed links).
    pub pages_enabled: bool,
    pub mail_transport: MailTransport,
    pub mail_from: String,
    /// Signed deliveries of security events (`WEBHOOK_*`); `None` when
    /// `WEBHOOK_URL` is unset.
    pub webhook: Option<Arc<WebhookConfig>>,
    pub cookie_secure: bool,
    pub trusted_proxies: Vec<IpNet>,
    pub login_failure_window: Duration,
    pub login_max_failures_per_account: u32,
    pub login_max_failures_per_address: u32,
    pub reset_max_requests_per_email: u32,
    pub reset_request_window: Duration,
    /// Registrations per client address per hour.
    pub register_max_per_address: u32,
    /// Reset and verification requests per client address per hour.
    pub email_requests_max_per_address: u32,
    /// No refresh family lives longer than this from its login.
    pub session_max_lifetime: Duration,
    /// Finished rows older than this are purged.
    pub retention: Duration,
    /// How long security events are kept (`EVENT_RETENTION_DAYS`).
    pub event_retention: Duration,
    pub purge_interval: Duration,
    pub request_timeout: Duration,
    pub shutdown_timeout: Duration,
    /// Jobs the worker handles at once.
    pub worker_concurrency: usize,
    /// Unacknowledged deliveries the broker may push to the worker.
    pub worker_prefetch: u16,
    /// Tries of a failing job before it goes to the dead letter queue.
    pub job_max_attempts: u32,
    /// The first retry's delay; each later one doubles it.
    pub job_retry_base_delay: Duration,
    pub log_format: LogFormat,
    pub log_filter: String,
}

/// A secret that never shows in `Debug` output or logs.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl Config {
    /// Reads the process environment, after loading `.env` if present.
    pub fn from_env() -> Result<Self, ConfigError> {
        // A missing .env is normal; a malformed one is a configuration error.
        match dotenvy::dotenv() {
            Ok(_) => {}
            Err(e) if e.not_found() => {}
            Err(e) => return Err(ConfigError::new(".env", format!("cannot be read: {e}"))),
        }
        Self::from_vars(std::env::vars().collect())
    }

    /// Builds the configuration from explicit variables; the tests use it to
    /// start an app without touching the process environment.
    pub fn from_vars(vars: HashMap<String, String>) -> Result<Self, ConfigError> {
        let env = Vars(vars);
        let app_env = match env.optional("APP_ENV").unwrap_or("production") {
            "production" => AppEnv::Production,
            "development" => AppEnv::Development,
            _ => {
                return Err(ConfigError::new(
                    "APP_ENV",
                    "must be `production` or `development`",
                ));
            }
        };
        let jwt_secret = env.required("JWT_SECRET")?;
        if jwt_secret == EXAMPLE_JWT_SECRET && app_env != AppEnv::Development {
            return Err(ConfigError::new(
                "JWT_SECRET",
                "is the published example of .env.example; generate one with `openssl rand -base64 48` (or set APP_ENV=development)",
            ));
        }
        if jwt_secret.len() < MIN_JWT_SECRET_BYTES {
            return Err(ConfigError::new(
                "JWT_SECRET",
                format!(
                    "must be at least {MIN_JWT_SECRET_BYTES} bytes (generate one with `openssl rand -base64 48`)"
                ),
            ));
        }
        let jwt_algorithm = match env.optional("JWT_ALGORITHM") {
            None => SigningAlgorithm::EdDsa,
            Some(name) => SigningAlgorithm::parse(name).ok_or_else(|| {
                ConfigError::new("JWT_ALGORITHM", "must be `EdDSA`, `ES256` or `HS256`")
            })?,
        };
        let jwt_keys = Arc::new(load_keys(&env, jwt_algorithm, jwt_secret, app_env)?);
        let public_url = env
            .optional("PUBLIC_URL")
            .unwrap_or("http://localhost:8000")
            .trim_end_matches('/')
            .to_owned();
        if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
            return Err(ConfigError::new(
                "PUBLIC_URL",
                "must be an absolute http:// or https:// URL",
            ));
        }
        let password_min_length = env.parsed("PASSWORD_MIN_LENGTH", 12usize)?;
        if !(8..=128).contains(&password_min_length) {
            return Err(ConfigError::new(
                "PASSWORD_MIN_LENGTH",
                "must be between 8 and 128",
            ));
        }
        let access_token_ttl = env.seconds("ACCESS_TOKEN_TTL_SECONDS", 900, 1)?;
        // A worker job holds two pooled connections (its ledger and its token).
        let database_pool_size = env.positive("DATABASE_POOL_SIZE", 16)?;
        let worker_concurrency = env.bounded("WORKER_CONCURRENCY", 8, 1..=256)?;
        if database_pool_size < 2 * worker_concurrency {
            return Err(ConfigError::new(
                "WORKER_CONCURRENCY",
                format!(
                    "must be at most half of DATABASE_POOL_SIZE ({database_pool_size}); each job uses two connections"
                ),
            ));
        }
        let refresh_token_ttl = env.seconds("REFRESH_TOKEN_TTL_SECONDS", 1_209_600, 1)?;
        Ok(Self {
            app_env,
            api_addr: env.parsed("API_ADDR", SocketAddr::from(([127, 0, 0, 1], 8000)))?,
            // Set and empty turns the admin listener off (CONTRACT.md, "Admin API").
            admin_addr: match env.0.get("ADMIN_ADDR").map(|v| v.trim()) {
                Some("") => None,
                _ => Some(env.parsed("ADMIN_ADDR", SocketAddr::from(([127, 0, 0, 1], 8001)))?),
            },
            worker_metrics_addr: env.parsed(
                "WORKER_METRICS_ADDR",
                SocketAddr::from(([127, 0, 0, 1], 9100)),
            )?,
            database_url: env.required("DATABASE_URL")?.to_owned(),
            database_pool_size,
            redis: env.redis_target()?,
            amqp_urls: env.url_list("AMQP_URL", &["amqp://", "amqps://"], |url| {
                url.parse::<lapin::uri::AMQPUri>().is_ok()
            })?,
            queue_prefix: env.name_prefix("QUEUE_PREFIX")?,
            redis_key_prefix: env.name_prefix("REDIS_KEY_PREFIX")?,
            migrate_on_start: env.boolean("MIGRATE_ON_START", true)?,
            jwt_secret: Secret::new(jwt_secret),
            jwt_algorithm,
            jwt_keys,
            jwt_issuer: env
                .optional("JWT_ISSUER")
                .unwrap_or("portcullis")
                .to_owned(),
            jwt_audience: env
                .optional("JWT_AUDIENCE")
                .unwrap_or("portcullis")
                .to_owned(),
            access_token_ttl,
            refresh_token_ttl,
            refresh_reuse_grace: env.seconds("REFRESH_REUSE_GRACE_SECONDS", 10, 0)?,
            password_reset_ttl: env.bounded_seconds(
                "PASSWORD_RESET_TTL_SECONDS",
                1800,
                60..=604_800,
            )?,
            invite_ttl: env.bounded_seconds("INVITE_TTL_SECONDS", 259_200, 60..=2_592_000)?,
            email_verification_ttl: env.bounded_seconds(
                "EMAIL_VERIFICATION_TTL_SECONDS",
                86_400,
                60..=2_592_000,
            )?,
            require_verified_email: env.boolean("REQUIRE_VERIFIED_EMAIL", false)?,
            verify_max_requests_per_email: env.positive("VERIFY_MAX_REQUESTS_PER_EMAIL", 3)?,
            password_min_length,
            argon2: Argon2Params {
                memory_kib: env.bounded("ARGON2_MEMORY_KIB", 19_456, 8_192..=1_048_576)?,
                iterations: env.bounded("ARGON2_ITERATIONS", 2, 1..=16)?,
                parallelism: env.bounded("ARGON2_PARALLELISM", 1, 1..=16)?,
            },
            argon2_max_queue: env.bounded("ARGON2_MAX_QUEUE", 128, 0..=100_000)?,
            webauthn: webauthn_settings(&env, &public_url)?,
            public_url,
            pages_enabled: env.boolean("PAGES_ENABLED", true)?,
            data_encryption_key: match env.optional("DATA_ENCRYPTION_KEY") {
                None => None,
                Some(EXAMPLE_DATA_ENCRYPTION_KEY) if app_env != AppEnv::Development => {
                    return Err(ConfigError::new(
                        "DATA_ENCRYPTION_KEY",
                        "is the published example of .env.example; generate one with `openssl rand -base64 32` (or set APP_ENV=development)",
                    ));
                }
                Some(text) => Some(crate::security::totp::SecretBox::from_base64(text).ok_or_else(
                    || {
                        ConfigError::new(
                            "DATA_ENCRYPTION_KEY",
                            "must be 32 bytes in base64 (generate one with `openssl rand -base64 32`)",
                        )
                    },
                )?),
            },
            mail_transport: parse_mail_transport(
                env.optional("MAIL_TRANSPORT").unwrap_or("file:mail"),
            )?,
            webhook: parse_webhook(&env)?.map(Arc::new),
            mail_from: parse_mail_from(
                env.optional("MAIL_FROM")
                    .unwrap_or("Portcullis <no-reply@localhost>"),
            )?,
            cookie_secure: env.boolean("COOKIE_SECURE", true)?,
            trusted_proxies: parse_trusted_proxies(env.optional("TRUSTED_PROXIES").unwrap_or(""))?,
            login_failure_window: env.seconds("LOGIN_FAILURE_WINDOW_SECONDS", 900, 1)?,
            login_max_failures_per_account: env.positive("LOGIN_MAX_FAILURES_PER_ACCOUNT", 10)?,
            login_max_failures_per_address: env.positive("LOGIN_MAX_FAILURES_PER_ADDRESS", 100)?,
            reset_max_requests_per_email: env.positive("RESET_MAX_REQUESTS_PER_EMAIL", 3)?,
            reset_request_window: env.seconds("RESET_REQUEST_WINDOW_SECONDS", 3600, 1)?,
            register_max_per_address: env.positive("REGISTER_MAX_PER_ADDRESS", 20)?,
            email_requests_max_per_address: env.positive("EMAIL_REQUESTS_MAX_PER_ADDRESS", 20)?,
            session_max_lifetime: env.seconds("SESSION_MAX_LIFETIME_SECONDS", 2_592_000, 1)?,
            retention: env.seconds("RETENTION_SECONDS", 604_800, 1)?,
            event_retention: Duration::from_secs(
                86_400 * env.bounded::<u64>("EVENT_RETENTION_DAYS", 180, 1..=36_500)?,
            ),
            purge_interval: env.seconds("PURGE_INTERVAL_SECONDS", 3600, 1)?,
            request_timeout: env.seconds("REQUEST_TIMEOUT_SECONDS", 30, 1)?,
            shutdown_timeout: env.seconds("SHUTDOWN_TIMEOUT_SECONDS", 30, 1)?,
            worker_concurrency,
            worker_prefetch: env.bounded("WORKER_PREFETCH", 4, 1..=1000)?,
            job_max_attempts: env.bounded("JOB_MAX_ATTEMPTS", 5, 1..=50)?,
            job_retry_base_delay: Duration::from_millis(env.bounded(
                "JOB_RETRY_BASE_DELAY_MS",
                1000,
                1..=3_600_000,
            )?),
            log_format: match env.optional("LOG_FORMAT").unwrap_or("json") {
                "json" => LogFormat::Json,
                "pretty" => LogFormat::Pretty,
                _ => return Err(ConfigError::new("LOG_FORMAT", "must be `json` or `pretty`")),
            },
            log_filter: env.optional("RUST_LOG").unwrap_or("info").to_owned(),
        })
    }
}

/// The signing keys: the files of `JWT_SIGNING_KEYS`, or under HS256 the
/// secret. A key file inside a Git checkout is refused outside development.
fn load_keys(
    env: &Vars,
    algorithm: SigningAlgorithm,
    secret: &str,
    app_env: AppEnv,
) -> Result<KeySet, ConfigError> {
    const VAR: &str = "JWT_SIGNING_KEYS";
    if algorithm == SigningAlgorithm::Hs256 {
        return Ok(KeySet::hs256(secret.as_bytes()));
    }
    let paths: Vec<PathBuf> = env
        .optional(VAR)
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .collect();
    if paths.is_empty() {
        return Err(ConfigError::new(
            VAR,
            format!(
                "is required with JWT_ALGORITHM={}: create a key with `portcullis keys generate --out keys/signing.pem`",
                algorithm.as_str()
            ),
        ));
    }
    if app_env != AppEnv::Development
        && let Some(path) = paths
            .iter()
            .find(|p| crate::security::keys::inside_a_repository(p))
    {
        return Err(ConfigError::new(
            VAR,
            format!(
                "file {} lies inside a Git checkout; keep production keys out of the repository (or set APP_ENV=development)",
                path.display()
            ),
        ));
    }
    KeySet::load(algorithm, &paths).map_err(|e| ConfigError::new(VAR, format!("file {e}")))
}

/// Where and how security events are delivered (CONTRACT.md, "Security
/// events and webhooks").
#[derive(Clone)]
pub struct WebhookConfig {
    pub url: String,
    /// The key of the Standard Webhooks signature: `WEBHOOK_SECRET` without
    /// its `whsec_` prefix, base64-decoded. Never logged.
    pub secret: Vec<u8>,
    /// Event type prefixes delivered; empty: every type.
    pub event_types: Vec<String>,
    pub timeout: Duration,
    pub max_attempts: u32,
    pub retry_base: Duration,
}

impl std::fmt::Debug for WebhookConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookConfig")
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("event_types", &self.event_types)
            .finish_non_exhaustive()
    }
}

impl WebhookConfig {
    /// Whether events of `kind` are delivered.
    pub fn wants(&self, kind: &str) -> bool {
        self.event_types.is_empty() || self.event_types.iter().any(|p| kind.starts_with(p))
    }
}

fn parse_webhook(env: &Vars) -> Result<Option<WebhookConfig>, ConfigError> {
    let Some(url) = env.optional("WEBHOOK_URL") else {
        return Ok(None);
    };
    if !(url.starts_with("http://") || url.starts_with("https://"))
        || url.parse::<http::Uri>().is_err()
    {
        return Err(ConfigError::new(
            "WEBHOOK_URL",
            "must be an http:// or https:// URL",
        ));
    }
    let secret = env.optional("WEBHOOK_SECRET").ok_or_else(|| {
        ConfigError::new(
            "WEBHOOK_SECRET",
            "is required when WEBHOOK_URL is set (whsec_ and base64, as Standard Webhooks defines)",
        )
    })?;
    use base64::Engine;
    let secret = secret
        .strip_prefix("whsec_")
        .and_then(|key| base64::engine::general_purpose::STANDARD.decode(key).ok())
        .filter(|key| key.len() >= 24)
        .ok_or_else(|| {
            ConfigError::new(
                "WEBHOOK_SECRET",
                "must be whsec_ followed by the base64 of at least 24 random bytes (`echo whsec_$(openssl rand -base64 32)`)",
            )
        })?;
    let event_types = env
        .optional("WEBHOOK_EVENT_TYPES")
        .map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    Ok(Some(WebhookConfig {
        url: url.to_owned(),
        secret,
        event_types,
        timeout: env.seconds("WEBHOOK_TIMEOUT_SECONDS", 10, 1)?,
        max_attempts: env.bounded("WEBHOOK_MAX_ATTEMPTS", 8, 1..=100)?,
        retry_base: env.seconds("WEBHOOK_RETRY_BASE_SECONDS", 5, 1)?,
    }))
}

fn parse_mail_from(value: &str) -> Result<String, ConfigError> {
    value
        .parse::<lettre::message::Mailbox>()
        .map(|_| value.to_owned())
        .map_err(|_| {
            ConfigError::new(
                "MAIL_FROM",
                "must be a mailbox such as `Portcullis <no-reply@example.com>`",
            )
        })
}

fn parse_mail_transport(value: &str) -> Result<MailTransport, ConfigError> {
    const VAR: &str = "MAIL_TRANSPORT";
    if let Some(dir) = value.strip_prefix("file:") {
        if dir.is_empty() {
            return Err(ConfigError::new(VAR, "file: needs a directory (file:DIR)"));
        }
        return Ok(MailTransport::File(PathBuf::from(dir)));
    }
    if let Some(authority) = value.strip_prefix("smtp://") {
        let authority = authority.trim_end_matches('/');
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| ConfigError::new(VAR, "must be smtp://host:port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| ConfigError::new(VAR, "has an invalid SMTP port"))?;
        if host.is_empty() || port == 0 {
            return Err(ConfigError::new(VAR, "must be smtp://host:port"));
        }
        return Ok(MailTransport::Smtp {
            host: host.to_owned(),
            port,
        });
    }
    Err(ConfigError::new(
        VAR,
        "must be file:DIR or smtp://host:port",
    ))
}

fn parse_trusted_proxies(value: &str) -> Result<Vec<IpNet>, ConfigError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            // A bare address is a /32 (or /128) network.
            IpNet::from_str(s)
                .or_else(|_| s.parse::<std::net::IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    ConfigError::new(
                        "TRUSTED_PROXIES",
                        format!("has an invalid CIDR entry `{s}` (expected e.g. 10.0.0.0/8)"),
                    )
                })
        })
        .collect()
}

/// The variables, with typed accessors that name the variable on error.
struct Vars(HashMap<String, String>);

impl Vars {
    /// A set, non-blank value; blank counts as unset so `VAR=` in `.env`
    /// falls back to the default.
    fn optional(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
    }

    fn required(&self, name: &'static str) -> Result<&str, ConfigError> {
        self.optional(name)
            .ok_or_else(|| ConfigError::new(name, "is required but not set (see .env.example)"))
    }

    fn parsed<T: FromStr>(&self, name: &'static str, default: T) -> Result<T, ConfigError> {
        match self.optional(name) {
            None => Ok(default),
            Some(v) => v
                .parse()
                .map_err(|_| ConfigError::new(name, format!("has an invalid value `{v}`"))),
        }
    }

    fn bounded<T>(
        &self,
        name: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + std::fmt::Display,
    {
        let value = self.parsed(name, default)?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(ConfigError::new(
                name,
                format!("must be between {} and {}", range.start(), range.end()),
            ))
        }
    }

    fn positive<T>(&self, name: &'static str, default: T) -> Result<T, ConfigError>
    where
        T: FromStr + PartialOrd + Default,
    {
        let value = self.parsed(name, default)?;
        if value > T::default() {
            Ok(value)
        } else {
            Err(ConfigError::new(name, "must be a positive integer"))
        }
    }

    fn seconds(&self, name: &'static str, default: u64, min: u64) -> Result<Duration, ConfigError> {
        let value = self.parsed(name, default)?;
        if value < min {
            return Err(ConfigError::new(name, format!("must be at least {min}")));
        }
        Ok(Duration::from_secs(value))
    }

    fn bounded_seconds(
        &self,
        name: &'static str,
        default: u64,
        range: std::ops::RangeInclusive<u64>,
    ) -> Result<Duration, ConfigError> {
        self.bounded(name, default, range).map(Duration::from_secs)
    }

    fn boolean(&self, name: &'static str, default: bool) -> Result<bool, ConfigError> {
        match self.optional(name).map(str::to_ascii_lowercase).as_deref() {
            None => Ok(default),
            Some("true" | "1" | "yes" | "on") => Ok(true),
            Some("false" | "0" | "no" | "off") => Ok(false),
            Some(_) => Err(ConfigError::new(name, "must be true or false")),
        }
    }

    fn url(&self, name: &'static str, schemes: &[&str]) -> Result<String, ConfigError> {
        let value = self.required(name)?;
        if schemes.iter().any(|s| value.starts_with(s)) {
            Ok(value.to_owned())
        } else {
            Err(ConfigError::new(
                name,
                format!("must start with {}", schemes.join(" or ")),
            ))
        }
    }

    /// A comma-separated list of URLs, each with one of `schemes` and
    /// accepted by `parses`.
    fn url_list(
        &self,
        name: &'static str,
        schemes: &[&str],
        parses: impl Fn(&str) -> bool,
    ) -> Result<Vec<String>, ConfigError> {
        let urls: Vec<String> = self
            .required(name)?
            .split(',')
            .map(str::trim)
            .filter(|url| !url.is_empty())
            .map(str::to_owned)
            .collect();
        if urls.is_empty() {
            return Err(ConfigError::new(
                name,
                "is required but not set (see .env.example)",
            ));
        }
        for url in &urls {
            if !schemes.iter().any(|s| url.starts_with(s)) {
                return Err(ConfigError::new(
                    name,
                    format!("must be URLs starting with {}", schemes.join(" or ")),
                ));
            }
            if !parses(url) {
                // The URL may hold a password: it is not repeated here.
                return Err(ConfigError::new(name, "holds a URL that does not parse"));
            }
        }
        Ok(urls)
    }

    /// `REDIS_CLUSTER_NODES` when set, else `REDIS_URL`.
    fn redis_target(&self) -> Result<RedisTarget, ConfigError> {
        let parses = |url: &str| redis::Client::open(url).is_ok();
        if self.optional("REDIS_CLUSTER_NODES").is_some() {
            let nodes = self.url_list("REDIS_CLUSTER_NODES", &["redis://", "rediss://"], parses)?;
            return Ok(RedisTarget::Cluster(nodes));
        }
        let url = self.url("REDIS_URL", &["redis://", "rediss://"])?;
        if !parses(&url) {
            return Err(ConfigError::new(
                "REDIS_URL",
                "does not parse as a Redis URL",
            ));
        }
        Ok(RedisTarget::Node(url))
    }

    /// Names built from a prefix must stay valid AMQP and Redis names.
    fn name_prefix(&self, name: &'static str) -> Result<String, ConfigError> {
        let value = self.optional(name).unwrap_or("");
        if value.len() <= 64
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b':'))
        {
            Ok(value.to_owned())
        } else {
            Err(ConfigError::new(
                name,
                "must be at most 64 characters of [A-Za-z0-9._:-]",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(extra: &[(&str, &str)]) -> HashMap<String, String> {
        let mut vars: HashMap<String, String> = [
            ("DATABASE_URL", "postgres://postgres@127.0.0.1/portcullis"),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
            ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
            ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
            ("JWT_ALGORITHM", "HS256"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        for (k, v) in extra {
            vars.insert((*k).to_owned(), (*v).to_owned());
        }
        vars
    }

    #[test]
    fn a_redis_cluster_replaces_the_single_node() {
        let single = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(
            single.redis,
            RedisTarget::Node("redis://127.0.0.1:6379".into())
        );
        let mut cluster_vars = vars(&[(
            "REDIS_CLUSTER_NODES",
            "redis://10.0.0.1:6379, redis://10.0.0.2:6379",
        )]);
        cluster_vars.remove("REDIS_URL");
        let cluster = Config::from_vars(cluster_vars).unwrap();
        assert_eq!(
            cluster.redis,
            RedisTarget::Cluster(vec![
                "redis://10.0.0.1:6379".into(),
                "redis://10.0.0.2:6379".into()
            ])
        );
        let error = Config::from_vars(vars(&[("REDIS_CLUSTER_NODES", "redis://a:1,http://b")]))
            .unwrap_err();
        assert_eq!(error.variable, "REDIS_CLUSTER_NODES");
    }

    #[test]
    fn amqp_url_may_list_the_nodes_of_a_cluster() {
        let config = Config::from_vars(vars(&[(
            "AMQP_URL",
            "amqp://u:p@rabbit-0:5672/%2f,amqp://u:p@rabbit-1:5672/%2f",
        )]))
        .unwrap();
        assert_eq!(config.amqp_urls.len(), 2);
        for bad in [
            "amqp://u:p@rabbit-0/%2f,",
            "amqp://a,amqp://b:notaport",
            ",",
        ] {
            let error = Config::from_vars(vars(&[("AMQP_URL", bad)]));
            if bad == "amqp://u:p@rabbit-0/%2f," {
                assert!(error.is_ok(), "a trailing comma is forgiven");
            } else {
                let error = error.unwrap_err();
                assert_eq!(error.variable, "AMQP_URL");
                assert!(!error.to_string().contains("notaport"), "no URL is echoed");
            }
        }
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = Config::from_vars(vars(&[])).unwrap();
        assert_eq!(config.access_token_ttl, Duration::from_secs(900));
        assert_eq!(config.refresh_token_ttl, Duration::from_secs(1_209_600));
        assert_eq!(config.password_reset_ttl, Duration::from_secs(1800));
        assert_eq!(config.refresh_reuse_grace, Duration::from_secs(10));
        assert_eq!(config.password_min_length, 12);
        assert_eq!(config.login_max_failures_per_account, 10);
        assert_eq!(config.login_max_failures_per_address, 100);
        assert_eq!(config.reset_max_requests_per_email, 3);
        assert!(config.cookie_secure);
        assert!(config.migrate_on_start);
        assert_eq!(config.log_format, LogFormat::Json);
        assert_eq!(config.api_addr.to_string(), "127.0.0.1:8000");
        assert_eq!(config.worker_metrics_addr.to_string(), "127.0.0.1:9100");
        assert!(config.trusted_proxies.is_empty());
        assert_eq!(config.app_env, AppEnv::Production);
        assert_eq!(config.email_verification_ttl, Duration::from_secs(86_400));
        assert!(!config.require_verified_email);
        assert_eq!(config.verify_max_requests_per_email, 3);
        assert_eq!(config.register_max_per_address, 20);
        assert_eq!(config.email_requests_max_per_address, 20);
        assert_eq!(config.session_max_lifetime, Duration::from_secs(2_592_000));
        assert_eq!(
            config.argon2,
            Argon2Params {
                memory_kib: 19_456,
                iterations: 2,
                parallelism: 1
            }
        );
    }

    #[test]
    fn a_short_jwt_secret_is_refused() {
        let err = Config::from_vars(vars(&[("JWT_SECRET", "too-short")])).unwrap_err();
        assert_eq!(err.variable, "JWT_SECRET");
    }

    #[test]
    fn the_published_example_secret_starts_only_in_development() {
        let err = Config::from_vars(vars(&[("JWT_SECRET", EXAMPLE_JWT_SECRET)])).unwrap_err();
        assert_eq!(err.variable, "JWT_SECRET");
        let config = Config::from_vars(vars(&[
            ("JWT_SECRET", EXAMPLE_JWT_SECRET),
            ("APP_ENV", "development"),
        ]))
        .unwrap();
        assert_eq!(config.app_env, AppEnv::Development);
        let example = include_str!("../.env.example");
        assert!(
            example.contains(&format!("JWT_SECRET={EXAMPLE_JWT_SECRET}\n")),
            ".env.example must publish the secret this check refuses"
        );
    }

    /// Every secret `.env.example` publishes is refused outside development:
    /// the file is read here, so a value changed there cannot slip by.
    #[test]
    fn every_published_example_secret_starts_only_in_development() {
        let example = include_str!("../.env.example");
        let published = |name: &str| {
            example
                .lines()
                .find_map(|line| line.strip_prefix(&format!("{name}=")))
                .unwrap_or_else(|| panic!(".env.example must list {name}"))
                .to_owned()
        };
        for name in ["JWT_SECRET", "DATA_ENCRYPTION_KEY"] {
            let value = published(name);
            let err = Config::from_vars(vars(&[(name, value.as_str())])).unwrap_err();
            assert_eq!(err.variable, name, "{err}");
            assert!(err.problem.contains("published example"), "{err}");
            Config::from_vars(vars(&[(name, value.as_str()), ("APP_ENV", "development")]))
                .unwrap_or_else(|e| panic!("{name} must start in development: {e}"));
        }
        // The key file it names lies inside the repository.
        assert!(published("JWT_SIGNING_KEYS").starts_with("keys/"));
    }

    #[test]
    fn signing_keys_are_required_loaded_and_checked() {
        let mut v = vars(&[]);
        v.remove("JWT_ALGORITHM");
        assert_eq!(
            Config::from_vars(v.clone()).unwrap_err().variable,
            "JWT_SIGNING_KEYS"
        );

        let dir = std::env::temp_dir().join(format!("portcullis-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("config-test.pem");
        let _ = std::fs::remove_file(&path);
        let (pem, kid) = crate::security::keys::generate(SigningAlgorithm::EdDsa).unwrap();
        crate::security::keys::write_private_key(&path, &pem).unwrap();
        v.insert("JWT_SIGNING_KEYS".into(), path.display().to_string());
        let config = Config::from_vars(v.clone()).unwrap();
        assert_eq!(config.jwt_algorithm, SigningAlgorithm::EdDsa);
        assert_eq!(config.jwt_keys.kids(), vec![kid.as_str()]);

        v.insert(
            "JWT_SIGNING_KEYS".into(),
            dir.join("missing.pem").display().to_string(),
        );
        let err = Config::from_vars(v.clone()).unwrap_err();
        assert_eq!(err.variable, "JWT_SIGNING_KEYS");
        assert!(err.problem.contains("missing.pem"), "{err}");

        v.insert("JWT_SIGNING_KEYS".into(), path.display().to_string());
        v.insert("JWT_ALGORITHM".into(), "ES256".into());
        assert_eq!(
            Config::from_vars(v.clone()).unwrap_err().variable,
            "JWT_SIGNING_KEYS"
        );
        v.insert("JWT_ALGORITHM".into(), "RS256".into());
        assert_eq!(Config::from_vars(v).unwrap_err().variable, "JWT_ALGORITHM");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_key_file_inside_the_repository_starts_only_in_development() {
        // Unit tests run in the package root.
        let root = std::env::current_dir().unwrap();
        let path = root
            .join("target")
            .join(format!("repo-key-{}.pem", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let (pem, _) = crate::security::keys::generate(SigningAlgorithm::EdDsa).unwrap();
        crate::security::keys::write_private_key(&path, &pem).unwrap();
        let key = path.display().to_string();
        let production = Config::from_vars(vars(&[
            ("JWT_ALGORITHM", "EdDSA"),
            ("JWT_SIGNING_KEYS", key.as_str()),
        ]));
        let development = Config::from_vars(vars(&[
            ("JWT_ALGORITHM", "EdDSA"),
            ("JWT_SIGNING_KEYS", key.as_str()),
            ("APP_ENV", "development"),
        ]));
        let _ = std::fs::remove_file(&path);
        // A checkout without .git (an unpacked tarball) is not a repository.
        if root.join(".git").exists() {
            assert_eq!(production.unwrap_err().variable, "JWT_SIGNING_KEYS");
        }
        assert!(development.is_ok());
    }

    #[test]
    fn a_missing_required_variable_is_named() {
        let mut v = vars(&[]);
        v.remove("DATABASE_URL");
        assert_eq!(Config::from_vars(v).unwrap_err().variable, "DATABASE_URL");
        let mut v = vars(&[]);
        v.insert("REDIS_URL".into(), "   ".into());
        assert_eq!(Config::from_vars(v).unwrap_err().variable, "REDIS_URL");
    }

    #[test]
    fn malformed_values_are_named() {
        for (name, value) in [
            ("ACCESS_TOKEN_TTL_SECONDS", "soon"),
            ("ACCESS_TOKEN_TTL_SECONDS", "0"),
            ("REFRESH_REUSE_GRACE_SECONDS", "-1"),
            ("COOKIE_SECURE", "maybe"),
            ("LOG_FORMAT", "xml"),
            ("API_ADDR", "localhost"),
            ("MAIL_TRANSPORT", "sendmail"),
            ("MAIL_TRANSPORT", "smtp://mailpit"),
            ("TRUSTED_PROXIES", "10.0.0.0/33"),
            ("PASSWORD_MIN_LENGTH", "4"),
            ("AMQP_URL", "http://rabbit"),
            ("QUEUE_PREFIX", "with space"),
            ("ARGON2_MEMORY_KIB", "1024"),
            ("WORKER_CONCURRENCY", "0"),
            ("WORKER_CONCURRENCY", "9"),
            ("MAIL_FROM", "not a mailbox <"),
            ("PASSWORD_RESET_TTL_SECONDS", "100000000"),
            ("JOB_MAX_ATTEMPTS", "many"),
            ("LOGIN_MAX_FAILURES_PER_ACCOUNT", "0"),
            ("APP_ENV", "staging"),
            ("REGISTER_MAX_PER_ADDRESS", "0"),
            ("SESSION_MAX_LIFETIME_SECONDS", "0"),
            ("DATA_ENCRYPTION_KEY", "c2hvcnQ="),
        ] {
            let err = Config::from_vars(vars(&[(name, value)]))
                .expect_err(&format!("{name}={value} should be refused"));
            assert_eq!(err.variable, name, "{name}={value}");
        }
    }

    #[test]
    fn mail_transport_and_proxies_parse() {
        let config = Config::from_vars(vars(&[
            ("MAIL_TRANSPORT", "smtp://mailpit:1025"),
            ("TRUSTED_PROXIES", "10.0.0.0/8, 192.168.1.7 ,::1/128"),
            ("REFRESH_REUSE_GRACE_SECONDS", "0"),
        ]))
        .unwrap();
        assert_eq!(
            config.mail_transport,
            MailTransport::Smtp {
                host: "mailpit".into(),
                port: 1025
            }
        );
        assert_eq!(config.trusted_proxies.len(), 3);
        assert_eq!(config.refresh_reuse_grace, Duration::ZERO);
        assert_eq!(
            parse_mail_transport("file:/tmp/mail").unwrap(),
            MailTransport::File("/tmp/mail".into())
        );
    }

    #[test]
    fn the_secret_is_not_printed_by_debug() {
        let config = Config::from_vars(vars(&[])).unwrap();
        assert!(!format!("{config:?}").contains("0123456789abcdef"));
    }
}
