//! The `security_events` table: appended to in the transaction of the
//! change an event records, paged per user by keyset, purged by age.

use deadpool_postgres::GenericClient;
use time::OffsetDateTime;
use uuid::Uuid;

/// An event to append.
pub struct NewEvent<'a> {
    pub id: Uuid,
    pub kind: &'a str,
    pub occurred_at: OffsetDateTime,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub outcome: &'a str,
    pub client_address: Option<String>,
    pub user_agent: Option<&'a str>,
    pub correlation_id: &'a str,
    pub actor_kind: &'a str,
    pub actor_name: Option<&'a str>,
    pub details: &'a serde_json::Value,
}

/// An event as stored.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: Uuid,
    pub kind: String,
    pub occurred_at: OffsetDateTime,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    pub outcome: String,
    pub client_address: Option<String>,
    pub user_agent: Option<String>,
    pub correlation_id: String,
    pub actor_kind: String,
    pub actor_name: Option<String>,
    pub details: serde_json::Value,
}

pub async fn insert(
    client: &impl GenericClient,
    event: &NewEvent<'_>,
) -> Result<(), tokio_postgres::Error> {
    const SQL: &str = "INSERT INTO security_events (id, type, occurred_at, user_id, session_id, \
            outcome, client_address, user_agent, correlation_id, actor_kind, actor_name, details) \
        VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";
    let statement = client.prepare_cached(SQL).await?;
    client
        .execute(
            &statement,
            &[
                &event.id,
                &event.kind,
                &event.occurred_at,
                &event.user_id,
                &event.session_id,
                &event.outcome,
                &event.client_address,
                &event.user_agent,
                &event.correlation_id,
                &event.actor_kind,
                &event.actor_name,
                event.details,
            ],
        )
        .await?;
    Ok(())
}

impl From<&NewEvent<'_>> for EventRecord {
    fn from(event: &NewEvent<'_>) -> Self {
        Self {
            id: event.id,
            kind: event.kind.to_owned(),
            occurred_at: event.occurred_at,
            user_id: event.user_id,
            session_id: event.session_id,
            outcome: event.outcome.to_owned(),
            client_address: event.client_address.clone(),
            user_agent: event.user_agent.map(str::to_owned),
            correlation_id: event.correlation_id.to_owned(),
            actor_kind: event.actor_kind.to_owned(),
            actor_name: event.actor_name.map(str::to_owned),
            details: event.details.clone(),
        }
    }
}

/// Up to `limit` of the user's events older than `before` (an
/// `(occurred_at, id)` keyset position), newest first.
pub async fn page(
    client: &impl GenericClient,
    user_id: Uuid,
    before: Option<(OffsetDateTime, Uuid)>,
    limit: i64,
) -> Result<Vec<EventRecord>, tokio_postgres::Error> {
    const SQL: &str = "SELECT id, type, occurred_at, user_id, session_id, outcome, client_address, \
            user_agent, correlation_id, actor_kind, actor_name, details \
        FROM security_events \
        WHERE user_id = $1 AND ($2::timestamptz IS NULL OR (occurred_at, id) < ($2, $3)) \
        ORDER BY occurred_at DESC, id DESC LIMIT $4";
    let statement = client.prepare_cached(SQL).await?;
    let (at, id) = before.unzip();
    let rows = client
        .query(&statement, &[&user_id, &at, &id, &limit])
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| EventRecord {
            id: row.get(0),
            kind: row.get(1),
            occurred_at: row.get(2),
            user_id: row.get(3),
            session_id: row.get(4),
            outcome: row.get(5),
            client_address: row.get(6),
            user_agent: row.get(7),
            correlation_id: row.get(8),
            actor_kind: row.get(9),
            actor_name: row.get(10),
            details: row.get(11),
        })
        .collect())
}

/// Removes every event of the user (the account is being deleted).
pub async fn delete_for_user(
    client: &impl GenericClient,
    user_id: Uuid,
) -> Result<u64, tokio_postgres::Error> {
    const SQL: &str = "DELETE FROM security_events WHERE user_id = $1";
    let statement = client.prepare_cached(SQL).await?;
    client.execute(&statement, &[&user_id]).await
}
