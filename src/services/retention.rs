//! The retention purge (CONTRACT.md, "Abuse limits and retention"): every
//! `PURGE_INTERVAL_SECONDS`, rows finished longer than `RETENTION_SECONDS`
//! ago are deleted in batches. Any number of api replicas may run it; a
//! PostgreSQL advisory lock lets one of them purge at a time.

use std::time::Duration;

use deadpool_postgres::Pool;
use tokio_util::sync::CancellationToken;

use crate::repositories::retention;

/// Purges on a schedule until `shutdown`; the first run comes one interval
/// after start, so a restart loop does not hammer the database.
pub async fn run(db: Pool, retention: Duration, interval: Duration, shutdown: CancellationToken) {
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
    retention: Duration,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<u64>> {
    let client = db.get().await?;
    if !retention::try_lock(&client).await? {
        return Ok(None);
    }
    let seconds = retention.as_secs() as i64;
    let result = async {
        let mut total = 0;
        for (table, sql) in retention::STATEMENTS {
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
