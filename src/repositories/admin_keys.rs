//! The `admin_keys` table: named keys of the admin listener, stored only as
//! the SHA-256 of their text.

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;

/// A key as listed (never its text, which is not stored).
#[derive(Debug, Clone)]
pub struct AdminKeyRecord {
    pub name: String,
    pub read_only: bool,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
    pub revoked_at: Option<OffsetDateTime>,
}

/// Stores a new key; false when the name is taken (by a live or a revoked
/// key: a name always means one key in the audit trail).
pub async fn insert(
    client: &impl GenericClient,
    name: &str,
    key_hash: &[u8],
    read_only: bool,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO admin_keys (name, key_hash, read_only) VALUES ($1, $2, $3) \
        ON CONFLICT (name) DO NOTHING";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .execute(&statement, &[&name, &key_hash, &read_only])
        .await?
        == 1)
}

pub async fn list(
    client: &impl GenericClient,
) -> Result<Vec<AdminKeyRecord>, tokio_postgres::Error> {
    const SQL: &str = "SELECT name, read_only, created_at, last_used_at, revoked_at \
        FROM admin_keys ORDER BY created_at, name";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query(&statement, &[])
        .await?
        .iter()
        .map(|row| AdminKeyRecord {
            name: row.get(0),
            read_only: row.get(1),
            created_at: row.get(2),
            last_used_at: row.get(3),
            revoked_at: row.get(4),
        })
        .collect())
}

/// Revokes the key named `name`; false when there is no live key of that
/// name.
pub async fn revoke(
    client: &impl GenericClient,
    name: &str,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str =
        "UPDATE admin_keys SET revoked_at = now() WHERE name = $1 AND revoked_at IS NULL";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.execute(&statement, &[&name]).await? == 1)
}

/// The name and scope of the live key with this hash, recording its use.
/// Read on every request, so a revocation holds on every api process at
/// once. The use is recorded at most once a minute per key.
pub async fn use_key(
    client: &impl GenericClient,
    key_hash: &[u8],
) -> Result<Option<(String, bool)>, tokio_postgres::Error> {
    const SQL: &str = "WITH live AS ( \
            SELECT name, read_only, last_used_at FROM admin_keys \
            WHERE key_hash = $1 AND revoked_at IS NULL \
        ), used AS ( \
            UPDATE admin_keys k SET last_used_at = now() FROM live \
            WHERE k.name = live.name AND k.revoked_at IS NULL \
              AND (live.last_used_at IS NULL OR live.last_used_at < now() - interval '1 minute') \
        ) \
        SELECT name, read_only FROM live";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_opt(&statement, &[&key_hash])
        .await?
        .map(|row| (row.get(0), row.get(1))))
}
