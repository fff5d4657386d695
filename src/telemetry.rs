//! Logs and metrics for both processes (CONTRACT.md, "Observability").
//!
//! Logs are one flat JSON object per line (`json`), written to stdout by a
//! thread of their own (`sink`): an event inside a request span carries
//! `correlation_id` at the top level. Metrics go to one process-wide
//! Prometheus recorder.

mod json;
mod sink;

pub use sink::flush as flush_logs;

use std::sync::OnceLock;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::config::LogFormat;

/// Installs the global subscriber. Safe to call more than once (tests start
/// many apps in one process): only the first call installs.
pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter)
        .unwrap_or_else(|_| EnvFilter::new("info"))
        .add_directive_all(QUIET_TARGETS);
    let registry = tracing_subscriber::registry().with(filter);
    let result = match format {
        LogFormat::Json => registry
            .with(json::SpanFieldsLayer)
            .with(
                tracing_subscriber::fmt::layer()
                    .fmt_fields(json::NoSpanFields)
                    .event_format(json::FlatJson)
                    .with_writer(sink::sink()),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(sink::sink()))
            .try_init(),
    };
    // Already installed: keep the first one.
    let _ = result;
}

/// Libraries that log what must never reach a log line at debug or trace:
/// tokio-postgres logs query parameters (password and token hashes),
/// hyper and h2 headers (`Authorization`, `Cookie`), lettre the messages it
/// sends (reset links), lapin message bodies. They are held at `info`,
/// whatever `RUST_LOG` says.
const QUIET_TARGETS: &[&str] = &[
    "tokio_postgres=info",
    "postgres_protocol=info",
    "hyper=info",
    "hyper_util=info",
    "h2=info",
    "lettre=info",
    "lapin=info",
    "amq_protocol=info",
    "redis=info",
];

trait AddDirectives {
    fn add_directive_all(self, directives: &[&str]) -> Self;
}

impl AddDirectives for EnvFilter {
    fn add_directive_all(mut self, directives: &[&str]) -> Self {
        for directive in directives {
            if let Ok(directive) = directive.parse() {
                self = self.add_directive(directive);
            }
        }
        self
    }
}

/// Latency buckets in seconds, shared by the HTTP and job histograms.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

struct Metrics {
    handle: PrometheusHandle,
    process: metrics_process::Collector,
}

static METRICS: OnceLock<Metrics> = OnceLock::new();

/// Installs the process-wide Prometheus recorder on first use and returns its
/// handle. The recorder is global, so every app started in one process
/// shares it (DEPENDENCIES.md, metrics).
pub fn metrics_handle() -> &'static PrometheusHandle {
    &METRICS.get_or_init(install_recorder).handle
}

fn install_recorder() -> Metrics {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full("http_request_duration_seconds".into()),
            LATENCY_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("job_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full("webhook_delivery_duration_seconds".into()),
                LATENCY_BUCKETS,
            )
        })
        .expect("bucket lists are non-empty")
        .install_recorder()
        .expect("the Prometheus recorder is installed once, here");
    let process = metrics_process::Collector::default();
    process.describe();
    describe_metrics();
    metrics::gauge!("portcullis_build_info", "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Metrics { handle, process }
}

fn describe_metrics() {
    use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};
    describe_counter!("http_requests_total", "HTTP requests answered");
    describe_histogram!(
        "http_request_duration_seconds",
        Unit::Seconds,
        "HTTP request latency by route template"
    );
    describe_gauge!("http_requests_in_flight", "HTTP requests being served");
    describe_gauge!("portcullis_build_info", "Build information; always 1");
    describe_counter!("auth_logins_total", "Login attempts by outcome");
    describe_counter!(
        "auth_refresh_total",
        "Refresh-token presentations by outcome"
    );
    describe_counter!(
        "auth_denylist_checks_total",
        "Denylist checks of authenticated requests by result"
    );
    describe_counter!(
        "jobs_processed_total",
        "Jobs handled by the worker, by kind and outcome"
    );
    describe_histogram!(
        "job_duration_seconds",
        Unit::Seconds,
        "Time to handle one job, by kind"
    );
    describe_gauge!(
        "outbox_pending",
        "Jobs in the outbox not yet confirmed by RabbitMQ"
    );
    describe_gauge!(
        "job_dead_letter_queue_messages",
        "Messages waiting in each dead letter queue"
    );
    describe_gauge!(
        "db_pool_connections",
        "PostgreSQL pool connections by state"
    );
    describe_gauge!("db_pool_max_connections", "PostgreSQL pool size limit");
    describe_gauge!(
        "db_pool_waiting",
        "Tasks waiting for a PostgreSQL connection"
    );
    describe_counter!(
        "rate_limit_refusals_total",
        "Requests refused by an abuse limit other than the login limits, by limit"
    );
    describe_counter!(
        "auth_password_rehashes_total",
        "Password hashes upgraded to the current Argon2 parameters at login"
    );
    describe_counter!(
        "password_hasher_rejections_total",
        "Password checks turned away with 503 because the hashing queue was full"
    );
    describe_counter!(
        "email_verifications_total",
        "Emailed links confirmed, by purpose (verify_email, change_email)"
    );
    describe_counter!("accounts_deleted_total", "Accounts deleted by their owner");
    describe_counter!(
        "auth_mfa_total",
        "Second-factor codes checked, by outcome (success, invalid_code, replayed, recovery_code)"
    );
    describe_counter!(
        "auth_passkey_total",
        "Passkey ceremonies finished, by ceremony (registration, authentication) and outcome (success, invalid, duplicate, disabled)"
    );
    describe_counter!(
        "retention_purged_rows_total",
        "Rows deleted by the retention purge, by table"
    );
    describe_counter!(
        "webhook_deliveries_total",
        "Webhook delivery attempts, by outcome (delivered, retried, dead_lettered)"
    );
    describe_histogram!(
        "webhook_delivery_duration_seconds",
        Unit::Seconds,
        "Time of one webhook delivery attempt, answer included"
    );
    describe_counter!(
        "security_events_total",
        "Security events written, by type and outcome (success, failure)"
    );
    // Exported at zero from the start (CONTRACT.md, "Scale-out"), so
    // dashboards and alerts see every series before its first event.
    for outcome in [
        "success",
        "invalid_credentials",
        "rate_limited",
        "email_not_verified",
        "mfa_required",
        "account_disabled",
    ] {
        metrics::counter!("auth_logins_total", "outcome" => outcome).increment(0);
    }
    for outcome in ["success", "grace", "reuse_detected", "invalid"] {
        metrics::counter!("auth_refresh_total", "outcome" => outcome).increment(0);
    }
    for result in ["allowed", "denied"] {
        metrics::counter!("auth_denylist_checks_total", "result" => result).increment(0);
    }
    for limit in [
        "register_per_address",
        "email_requests_per_address",
        "reset_per_email",
        "verify_per_email",
    ] {
        metrics::counter!("rate_limit_refusals_total", "limit" => limit).increment(0);
    }
    for (table, _) in crate::repositories::retention::STATEMENTS
        .into_iter()
        .chain([crate::repositories::retention::EVENTS])
    {
        metrics::counter!("retention_purged_rows_total", "table" => table).increment(0);
    }
    for kind in crate::services::events::EventType::ALL {
        for outcome in ["success", "failure"] {
            metrics::counter!("security_events_total", "type" => kind.as_str(), "outcome" => outcome)
                .increment(0);
        }
    }
    for purpose in ["verify_email", "change_email"] {
        metrics::counter!("email_verifications_total", "purpose" => purpose).increment(0);
    }
    for kind in crate::messaging::jobs::JobKind::ALL {
        for outcome in ["sent", "skipped", "duplicate", "failed", "rejected"] {
            metrics::counter!("jobs_processed_total", "kind" => kind.metric_label(), "outcome" => outcome)
                .increment(0);
        }
    }
    for kind in crate::messaging::jobs::JobKind::ALL {
        let _ = metrics::histogram!("job_duration_seconds", "kind" => kind.metric_label());
    }
    for outcome in ["sent", "failed", "rejected"] {
        metrics::counter!("jobs_processed_total", "kind" => "webhook", "outcome" => outcome)
            .increment(0);
    }
    let _ = metrics::histogram!("job_duration_seconds", "kind" => "webhook");
    for outcome in ["delivered", "retried", "dead_lettered"] {
        metrics::counter!("webhook_deliveries_total", "outcome" => outcome).increment(0);
    }
    let _ = metrics::histogram!("webhook_delivery_duration_seconds");
    metrics::counter!("accounts_deleted_total").increment(0);
    for outcome in ["success", "invalid_code", "replayed", "recovery_code"] {
        metrics::counter!("auth_mfa_total", "outcome" => outcome).increment(0);
    }
    for (ceremony, outcomes) in [
        ("registration", &["success", "invalid", "duplicate"][..]),
        ("authentication", &["success", "invalid", "disabled"][..]),
    ] {
        for outcome in outcomes {
            metrics::counter!("auth_passkey_total", "ceremony" => ceremony, "outcome" => *outcome)
                .increment(0);
        }
    }
    metrics::counter!("auth_password_rehashes_total").increment(0);
    metrics::counter!("password_hasher_rejections_total").increment(0);
}

/// Records the pool's current use; called at each scrape.
pub fn record_pool(pool: &deadpool_postgres::Pool) {
    let status = pool.status();
    let idle = status.available as f64;
    let in_use = status.size.saturating_sub(status.available) as f64;
    metrics::gauge!("db_pool_connections", "state" => "in_use").set(in_use);
    metrics::gauge!("db_pool_connections", "state" => "idle").set(idle);
    metrics::gauge!("db_pool_max_connections").set(status.max_size as f64);
    metrics::gauge!("db_pool_waiting").set(status.waiting as f64);
}

/// Renders every metric in the Prometheus text format, refreshing the
/// process metrics first.
pub fn render_metrics() -> String {
    let metrics = METRICS.get_or_init(install_recorder);
    metrics.process.collect();
    metrics.handle.render()
}

/// Drains the histograms' buckets periodically; `install_recorder` does not
/// start this task itself (DEPENDENCIES.md, metrics).
pub async fn run_metrics_upkeep() {
    let handle = metrics_handle();
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    loop {
        tick.tick().await;
        handle.run_upkeep();
    }
}
