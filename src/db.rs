//! PostgreSQL: the connection pool and the embedded migrations of `sql/`.

use std::time::Duration;

use anyhow::Context;
use deadpool_postgres::{ManagerConfig, Pool, PoolConfig, RecyclingMethod, Runtime, Timeouts};
use tokio_postgres::NoTls;

use crate::config::Config;

mod embedded {
    refinery::embed_migrations!("sql");
}

/// Any constant will do, as long as every process uses the same one:
/// refinery takes no lock of its own, and `api` and `worker` both migrate at
/// start (DEPENDENCIES.md, refinery).
const MIGRATION_LOCK_KEY: i64 = 0x706f_7274_6375_6c6c; // "portcull"

/// Builds the pool; connections are made on first use.
pub fn create_pool(config: &Config) -> anyhow::Result<Pool> {
    let mut cfg = deadpool_postgres::Config::new();
    cfg.url = Some(config.database_url.clone());
    cfg.manager = Some(ManagerConfig {
        // `Fast` still drops clients whose socket has closed; `Verified`
        // would add a round trip to every checkout.
        recycling_method: RecyclingMethod::Fast,
    });
    // Without timeouts `pool.get()` may wait forever (DEPENDENCIES.md).
    cfg.pool = Some(PoolConfig {
        max_size: config.database_pool_size,
        timeouts: Timeouts {
            wait: Some(Duration::from_secs(5)),
            create: Some(Duration::from_secs(5)),
            recycle: Some(Duration::from_secs(5)),
        },
        ..PoolConfig::default()
    });
    cfg.create_pool(Some(Runtime::Tokio1), NoTls)
        .context("DATABASE_URL is not a valid PostgreSQL connection string")
}

/// Applies every pending migration, holding a session advisory lock so that
/// concurrent starts run them once.
pub async fn migrate(pool: &Pool) -> anyhow::Result<()> {
    let mut client = pool
        .get()
        .await
        .context("cannot connect to PostgreSQL to run migrations")?;
    client
        .execute("SELECT pg_advisory_lock($1)", &[&MIGRATION_LOCK_KEY])
        .await
        .context("cannot take the migration lock")?;
    let result = embedded::migrations::runner()
        .run_async(&mut **client)
        .await
        .context("applying migrations failed");
    let unlock = client
        .execute("SELECT pg_advisory_unlock($1)", &[&MIGRATION_LOCK_KEY])
        .await;
    let report = result?;
    unlock.context("cannot release the migration lock")?;
    for migration in report.applied_migrations() {
        tracing::info!(
            version = migration.version(),
            name = migration.name(),
            "applied migration"
        );
    }
    Ok(())
}
