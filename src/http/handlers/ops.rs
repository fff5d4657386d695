//! Operations endpoints: liveness, readiness and metrics.

use std::future::Future;
use std::time::Duration;

use http::{HeaderValue, StatusCode, header};
use serde::Serialize;
use serde_json::json;

use crate::http::{ApiError, Request, Response, json};
use crate::services::AppState;

/// How long each readiness check may take.
const CHECK_TIMEOUT: Duration = Duration::from_millis(1500);

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
}

/// Each dependency and whether it answered.
#[derive(Serialize, utoipa::ToSchema)]
pub struct Readiness {
    #[schema(example = "ok")]
    pub status: &'static str,
    pub checks: DependencyChecks,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct DependencyChecks {
    /// `ok` or `unavailable`
    pub postgres: &'static str,
    pub redis: &'static str,
    pub rabbitmq: &'static str,
}

/// The process is up.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "operations",
    responses((status = 200, description = "The process is up", body = Health))
)]
pub async fn healthz(_: (), _: Request) -> Result<Response, ApiError> {
    json(StatusCode::OK, &Health { status: "ok" })
}

/// PostgreSQL, Redis and RabbitMQ all answer.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "operations",
    responses(
        (status = 200, description = "Every dependency answers", body = Readiness),
        (status = 503, description = "A dependency does not answer; `checks` names it",
            body = crate::http::problem::ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn readyz(state: AppState, _: Request) -> Result<Response, ApiError> {
    let postgres = check(async {
        let client = state.db.get().await.map_err(|_| ())?;
        client
            .simple_query("SELECT 1")
            .await
            .map(drop)
            .map_err(|_| ())
    });
    let redis = check(async {
        let mut connection = state.redis.clone();
        redis::cmd("PING")
            .query_async::<String>(&mut connection)
            .await
            .map(drop)
            .map_err(|_| ())
    });
    let (postgres, redis) = tokio::join!(postgres, redis);
    let checks = DependencyChecks {
        postgres: label(postgres),
        redis: label(redis),
        rabbitmq: label(state.broker.is_connected()),
    };
    let failing: Vec<&str> = [
        ("postgres", checks.postgres),
        ("redis", checks.redis),
        ("rabbitmq", checks.rabbitmq),
    ]
    .into_iter()
    .filter(|(_, status)| *status != "ok")
    .map(|(name, _)| name)
    .collect();
    if failing.is_empty() {
        return json(
            StatusCode::OK,
            &Readiness {
                status: "ok",
                checks,
            },
        );
    }
    Err(ApiError::service_unavailable(
        "not-ready",
        format!("not ready: {} unavailable", failing.join(", ")),
    )
    .with_extension(
        "checks",
        json!({
            "postgres": checks.postgres,
            "redis": checks.redis,
            "rabbitmq": checks.rabbitmq,
        }),
    ))
}

async fn check(probe: impl Future<Output = Result<(), ()>>) -> bool {
    matches!(tokio::time::timeout(CHECK_TIMEOUT, probe).await, Ok(Ok(())))
}

fn label(ok: bool) -> &'static str {
    if ok { "ok" } else { "unavailable" }
}

/// Prometheus text format, process and pool metrics included.
pub async fn metrics(pool: deadpool_postgres::Pool, _: Request) -> Result<Response, ApiError> {
    crate::telemetry::record_pool(&pool);
    let mut response = http::Response::new(crate::telemetry::render_metrics().into());
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
