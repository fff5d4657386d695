//! The retention purge (CONTRACT.md, "Abuse limits and retention"): every
//! `PURGE_INTERVAL_SECONDS`, rows finished longer than `RETENTION_SECONDS`
//! ago (security events: `EVENT_RETENTION_DAYS`) are deleted in batches. Any number of api replicas may run it; a
//! PostgreSQL advisory lock lets one of them purge at a time.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use crate::repositories::retention;

/// How long finished rows and security events are kept.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// `RETENTION_SECONDS`: tokens, requests, job ids, published outbox rows.
    pub rows: Duration,
    /// `EVENT_RETENTION_DAYS`: the security events.
    pub events: Duration,
}

/// Purges on a schedule until `shutdown`; the first run comes one interval
/// after start, so a restart loop does not hammer the database.
pub async fn run(db: Pool, retention: Retention, interval: Duration, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match purge(&db, retention, &shutdown).await {
            Ok(Some(deleted)) => tracing::info!(deleted, "retention purge done"),
            Ok(None) => tracing::debug!("another process is purging"),
            Err(error) => {
                tracing::warn!(
                    error = format!("{error:#}"),
                    "retention purge failed; will retry"
                );
            }
        }
    }
}

/// One purge: the number of rows deleted, or `None` when another process
/// holds the purge lock.
pub async fn purge(
    db: &Pool,
    retention: Retention,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<u64>> {
    let client = db.get().await?;
    if !retention::try_lock(&client).await? {
        return Ok(None);
    }
    let (rows, events) = (
        retention.rows.as_secs() as i64,
        retention.events.as_secs() as i64,
    );
    let statements = retention::STATEMENTS
        .into_iter()
        .map(|statement| (statement, rows))
        .chain([(retention::EVENTS, events)]);
    let result = async {
        let mut total = 0;
        for ((table, sql), seconds) in statements {
            loop {
                let deleted = retention::purge_batch(&client, sql, seconds).await?;
                metrics::counter!("retention_purged_rows_total", "table" => table)
                    .increment(deleted);
                total += deleted;
                if deleted < retention::BATCH as u64 || shutdown.is_cancelled() {
                    break;
                }
            }
        }
        Ok::<_, tokio_postgres::Error>(total)
    }
    .await;
    retention::unlock(&client).await?;
    Ok(Some(result?))
}
