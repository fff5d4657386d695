//! The `passkeys` table: each account's WebAuthn credentials.

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use uuid::Uuid;

/// A passkey as its owner sees it.
#[derive(Debug, Clone)]
pub struct PasskeyRecord {
    pub id: Uuid,
    pub name: String,
    pub created_at: OffsetDateTime,
    pub last_used_at: Option<OffsetDateTime>,
}

/// A passkey with what a sign-in needs.
#[derive(Debug, Clone)]
pub struct StoredPasskey {
    pub id: Uuid,
    pub user_id: Uuid,
    /// The library's serialised credential.
    pub credential: serde_json::Value,
}

/// What the library's credential says of itself, kept in columns.
#[derive(Debug, Clone, Default)]
pub struct CredentialFacts {
    pub sign_count: i64,
    pub backup_eligible: bool,
    pub backup_state: bool,
    pub transports: Vec<String>,
}

/// A passkey to store.
pub struct NewPasskey<'a> {
    pub id: Uuid,
    pub user_id: Uuid,
    pub credential_id: &'a [u8],
    pub credential: &'a serde_json::Value,
    pub name: &'a str,
    pub facts: &'a CredentialFacts,
}

/// Stores a passkey; `None` when its credential id is registered already
/// (to this account or another).
pub async fn insert(
    client: &impl GenericClient,
    new: &NewPasskey<'_>,
) -> Result<Option<PasskeyRecord>, tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO passkeys (id, user_id, credential_id, credential, name, \
            sign_count, backup_eligible, backup_state, transports) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
        ON CONFLICT (credential_id) DO NOTHING \
        RETURNING id, name, created_at, last_used_at";
    let statement = client.prepare_cached(SQL).await?;
    let row = client
        .query_opt(
            &statement,
            &[
                &new.id,
                &new.user_id,
                &new.credential_id,
                &new.credential,
                &new.name,
                &new.facts.sign_count,
                &new.facts.backup_eligible,
                &new.facts.backup_state,
                &new.facts.transports,
            ],
        )
        .await?;
    Ok(row.map(|row| PasskeyRecord {
        id: row.get(0),
        name: row.get(1),
        created_at: row.get(2),
        last_used_at: row.get(3),
    }))
}

/// Whether a credential id is registered to any account.
pub async fn credential_exists(
    client: &impl GenericClient,
    credential_id: &[u8],
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "SELECT EXISTS (SELECT 1 FROM passkeys WHERE credential_id = $1)";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_one(&statement, &[&credential_id])
        .await?
        .get(0))
}

/// The user's passkeys, oldest first.
pub async fn list(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<PasskeyRecord>, tokio_postgres::Error> {
    const SQL: &str = "SELECT id, name, created_at, last_used_at FROM passkeys \
        WHERE user_id = $1 ORDER BY created_at, id";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query(&statement, &[&user_id])
        .await?
        .iter()
        .map(|row| PasskeyRecord {
            id: row.get(0),
            name: row.get(1),
            created_at: row.get(2),
            last_used_at: row.get(3),
        })
        .collect())
}

/// The serialised credentials of the user's passkeys (to exclude them from
/// a new registration).
pub async fn credentials_of(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<Vec<serde_json::Value>, tokio_postgres::Error> {
    const SQL: &str = "SELECT credential FROM passkeys WHERE user_id = $1";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query(&statement, &[&user_id])
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}

/// The passkey with this credential id, its row locked until the
/// transaction ends: two sign-ins with one credential take turns, so the
/// second checks its sign count against the first's.
pub async fn lock_by_credential(
    client: &impl GenericClient,
    credential_id: &[u8],
) -> Result<Option<StoredPasskey>, tokio_postgres::Error> {
    const SQL: &str =
        "SELECT id, user_id, credential FROM passkeys WHERE credential_id = $1 FOR UPDATE";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client
        .query_opt(&statement, &[&credential_id])
        .await?
        .map(|row| StoredPasskey {
            id: row.get(0),
            user_id: row.get(1),
            credential: row.get(2),
        }))
}

/// Records a sign-in: always the time, and the credential only when the
/// library changed it (`Some`).
pub async fn record_use(
    client: &impl GenericClient,
    id: Uuid,
    changed: Option<(&serde_json::Value, &CredentialFacts)>,
) -> Result<(), tokio_postgres::Error> {
    match changed {
        None => {
            const SQL: &str = "UPDATE passkeys SET last_used_at = now() WHERE id = $1";
            let statement = client.prepare_cached(SQL).await?;
            client.execute(&statement, &[&id]).await?;
        }
        Some((credential, facts)) => {
            const SQL: &str = "UPDATE passkeys SET last_used_at = now(), credential = $2, \
                sign_count = $3, backup_eligible = $4, backup_state = $5 WHERE id = $1";
            let statement = client.prepare_cached(SQL).await?;
            client
                .execute(
                    &statement,
                    &[
                        &id,
                        credential,
                        &facts.sign_count,
                        &facts.backup_eligible,
                        &facts.backup_state,
                    ],
                )
                .await?;
        }
    }
    Ok(())
}

/// Deletes one of the user's passkeys; false when it is not theirs.
pub async fn delete(
    client: &impl GenericClient,
    user_id: Uuid,
    id: Uuid,
) -> Result<bool, tokio_postgres::Error> {
    const SQL: &str = "DELETE FROM passkeys WHERE id = $1 AND user_id = $2";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.execute(&statement, &[&id, &user_id]).await? == 1)
}

/// Deletes every passkey of the user; how many there were.
pub async fn delete_all(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<u64, tokio_postgres::Error> {
    const SQL: &str = "DELETE FROM passkeys WHERE user_id = $1";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&user_id]).await
}

/// How many passkeys the user has.
pub async fn count(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<i64, tokio_postgres::Error> {
    const SQL: &str = "SELECT count(*) FROM passkeys WHERE user_id = $1";
    let statement = client.prepare_cached(SQL).await?;
    Ok(client.query_one(&statement, &[&user_id]).await?.get(0))
}
