//! Process startup: `run_api` and `run_worker` take their listener and a
//! shutdown token, so tests start either on a random port in-process
//! (STYLE.md, habit 1).

use std::sync::Arc;

use anyhow::Context;
use deadpool_postgres::Pool;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::cache::{Ceremonies, Denylist, Keys, RateLimiter};
use crate::config::Config;
use crate::domain::PasswordPolicy;
use crate::http;
use crate::mail::Mailer;
use crate::messaging::relay::{OutboxSignal, run_backlog_gauge, run_relay};
use crate::messaging::{Broker, Topology};
use crate::security::jwt::JwtKeys;
use crate::security::password::PasswordHasher;
use crate::security::verified::VerifiedTokens;
use crate::services::{AppContext, AppState};
use crate::worker::JobContext;
use crate::{cache, db, services, telemetry, worker};

/// Connections both processes need. Migrations run before the pool serves
/// anything, so no prepared statement outlives a schema change.
struct Resources {
    db: Pool,
    broker: Broker,
}

async fn open_resources(
    config: &Config,
    name: &'static str,
    background: &CancellationToken,
) -> anyhow::Result<Resources> {
    let db = db::create_pool(config)?;
    if config.migrate_on_start {
        db::migrate(&db).await?;
    }
    let broker = Broker::start(
        config.amqp_urls.clone(),
        Topology::new(config.queue_prefix.clone()),
        name,
        background.clone(),
    );
    Ok(Resources { db, broker })
}

/// Access tokens whose verification each api process remembers: a few
/// hundred bytes each, some MiB at most.
const VERIFIED_TOKENS: usize = 16_384;

/// Runs the API on `listener`, and the admin API on `admin_listener` if
/// there is one, until `shutdown` is cancelled.
pub async fn run_api(
    config: Arc<Config>,
    listener: TcpListener,
    admin_listener: Option<TcpListener>,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    telemetry::metrics_handle();
    // Background tasks stop only after the server has drained.
    let background = CancellationToken::new();
    let _stop_background = background.clone().drop_guard();
    tokio::spawn(until(background.clone(), telemetry::run_metrics_upkeep()));

    let Resources { db, broker } = open_resources(&config, "portcullis-api", &background).await?;
    if let Some(problem) =
        services::mfa::check_key(&db, config.data_encryption_key.as_ref()).await?
    {
        return Err(crate::config::ConfigError {
            variable: "DATA_ENCRYPTION_KEY",
            problem: problem.to_owned(),
        }
        .into());
    }
    let redis = cache::connect(&config.redis)?;
    let keys = Keys::new(&config.redis_key_prefix, redis.is_cluster());
    let outbox = OutboxSignal::default();
    let webauthn = match &config.webauthn {
        Some(settings) => Some(Arc::new(
            services::passkeys::relying_party(settings).map_err(|e| {
                crate::config::ConfigError {
                    variable: "WEBAUTHN_RP_ID",
                    problem: format!("does not make a WebAuthn relying party: {e}"),
                }
            })?,
        )),
        None => {
            tracing::warn!(
                "passkeys are off: PUBLIC_URL's host is an IP address and WEBAUTHN_RP_ID is unset (WebAuthn needs a domain)"
            );
            None
        }
    };
    // One Argon2 run per core: a login storm queues instead of starving
    // every other request (CONTRACT.md, "Authentication model").
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    let state: AppState = Arc::new(AppContext {
        hasher: PasswordHasher::new(config.argon2, cores, config.argon2_max_queue)?,
        password_policy: PasswordPolicy {
            min_chars: config.password_min_length,
        },
        jwt: Arc::new(JwtKeys::new(
            config.jwt_keys.clone(),
            &config.jwt_issuer,
            &config.jwt_audience,
            config.access_token_ttl,
        )),
        verified_tokens: Arc::new(VerifiedTokens::new(VERIFIED_TOKENS)),
        denylist: Denylist::new(redis.clone(), keys.clone()),
        ceremonies: Ceremonies::new(redis.clone(), keys.clone()),
        limiter: RateLimiter::new(redis.clone(), keys),
        webauthn,
        outbox: outbox.clone(),
        config: config.clone(),
        db: db.clone(),
        redis,
        broker: broker.clone(),
    });
    tokio::spawn(run_relay(db.clone(), broker, outbox, background.clone()));
    tokio::spawn(run_backlog_gauge(db.clone(), background.clone()));
    tokio::spawn(services::retention::run(
        db.clone(),
        services::retention::Retention {
            rows: config.retention,
            events: config.event_retention,
        },
        config.purge_interval,
        background.clone(),
    ));
    let addr = listener.local_addr().context("reading the API address")?;
    // Its own listener, with the same layers, off the public ingress
    // (CONTRACT.md, "Admin API").
    let admin = match admin_listener {
        Some(admin_listener) => {
            let admin_addr = admin_listener
                .local_addr()
                .context("reading the admin API address")?;
            let service = http::service(
                http::handlers::admin_router(state.clone()),
                config.request_timeout,
            );
            let server = http::server::serve(
                admin_listener,
                service,
                shutdown.clone(),
                config.shutdown_timeout,
            );
            tracing::info!(addr = %addr, admin_addr = %admin_addr, "api listening");
            Some(tokio::spawn(server))
        }
        None => {
            tracing::info!(addr = %addr, "api listening; the admin API is off (ADMIN_ADDR is empty)");
            None
        }
    };
    let service = http::service(http::handlers::api_router(state), config.request_timeout);
    http::server::serve(listener, service, shutdown, config.shutdown_timeout).await;
    if let Some(admin) = admin {
        admin.await.context("the admin server failed")?;
    }
    db.close();
    tracing::info!("api stopped");
    Ok(())
}

/// Runs the worker until `shutdown` is cancelled, serving `/healthz` and
/// `/metrics` on `metrics_listener`.
pub async fn run_worker(
    config: Arc<Config>,
    metrics_listener: TcpListener,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    telemetry::metrics_handle();
    let background = CancellationToken::new();
    let _stop_background = background.clone().drop_guard();
    tokio::spawn(until(background.clone(), telemetry::run_metrics_upkeep()));

    let mailer = Mailer::new(&config.mail_transport, &config.mail_from)?;
    let Resources { db, broker } =
        open_resources(&config, "portcullis-worker", &background).await?;
    let webhooks = config
        .webhook
        .clone()
        .map(worker::jobs::webhook::Webhooks::new)
        .transpose()?;
    let jobs = Arc::new(JobContext {
        config: config.clone(),
        db: db.clone(),
        mailer,
        webhooks,
    });
    tokio::spawn(worker::run_dead_letter_gauge(
        broker.clone(),
        background.clone(),
    ));
    let consumer = tokio::spawn(worker::run(jobs, broker, shutdown.clone()));
    let service = http::service(
        http::handlers::worker_router(db.clone()),
        config.request_timeout,
    );
    tracing::info!(
        addr = %metrics_listener.local_addr().context("reading the worker metrics address")?,
        "worker started"
    );
    http::server::serve(metrics_listener, service, shutdown, config.shutdown_timeout).await;
    // The consumer drains its jobs in flight before the broker connection
    // and the pool close.
    consumer.await.context("the job consumer failed")?;
    db.close();
    tracing::info!("worker stopped");
    Ok(())
}

/// Runs `task` until `token` is cancelled.
async fn until(token: CancellationToken, task: impl Future<Output = ()>) {
    tokio::select! {
        _ = token.cancelled() => {}
        _ = task => {}
    }
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
    tracing::info!("shutdown signal received");
    token.cancel();
}
