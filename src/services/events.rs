//! Security events (CONTRACT.md, "Security events and webhooks"): every
//! security-relevant change appends one event, in the transaction of the
//! change, so the trail never records what did not happen nor misses what
//! did. A user pages through their own events, newest first, by a keyset
//! cursor that an event written meanwhile never shifts.

use std::net::IpAddr;

use deadpool_postgres::GenericClient;
use serde::Serialize;
use serde_json::{Value, json};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::{AppContext, ServiceError, db, paging};
use crate::messaging::topology::JobQueue;
use crate::repositories::events::{self, EventRecord, NewEvent};
use crate::repositories::outbox;

/// Where a request came from, for the events it causes.
#[derive(Debug, Clone)]
pub struct Origin {
    /// The client's address (the peer, or `X-Forwarded-For` from a
    /// trusted proxy).
    pub address: IpAddr,
    pub user_agent: Option<String>,
    pub correlation_id: String,
    /// The name of the admin key the request came with, on the admin
    /// listener; `None` for a user's own request.
    pub admin: Option<String>,
}

/// Every type of event there is; the contract fixes the names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    AccountRegistered,
    AccountEmailVerified,
    AccountEmailChangeRequested,
    AccountEmailChanged,
    AccountPasswordChanged,
    AccountPasswordResetRequested,
    AccountPasswordReset,
    AccountDisabled,
    AccountEnabled,
    AccountDeleted,
    SessionLoginSucceeded,
    SessionLoginFailed,
    SessionLoggedOut,
    SessionLoggedOutAll,
    SessionRevoked,
    SessionReuseDetected,
    MfaEnabled,
    MfaDisabled,
    MfaRecoveryCodeUsed,
    PasskeyAdded,
    PasskeyRemoved,
    LimitAccountLocked,
    LimitCleared,
}

impl EventType {
    pub const ALL: [EventType; 23] = [
        EventType::AccountRegistered,
        EventType::AccountEmailVerified,
        EventType::AccountEmailChangeRequested,
        EventType::AccountEmailChanged,
        EventType::AccountPasswordChanged,
        EventType::AccountPasswordResetRequested,
        EventType::AccountPasswordReset,
        EventType::AccountDisabled,
        EventType::AccountEnabled,
        EventType::AccountDeleted,
        EventType::SessionLoginSucceeded,
        EventType::SessionLoginFailed,
        EventType::SessionLoggedOut,
        EventType::SessionLoggedOutAll,
        EventType::SessionRevoked,
        EventType::SessionReuseDetected,
        EventType::MfaEnabled,
        EventType::MfaDisabled,
        EventType::MfaRecoveryCodeUsed,
        EventType::PasskeyAdded,
        EventType::PasskeyRemoved,
        EventType::LimitAccountLocked,
        EventType::LimitCleared,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            EventType::AccountRegistered => "account.registered",
            EventType::AccountEmailVerified => "account.email_verified",
            EventType::AccountEmailChangeRequested => "account.email_change_requested",
            EventType::AccountEmailChanged => "account.email_changed",
            EventType::AccountPasswordChanged => "account.password_changed",
            EventType::AccountPasswordResetRequested => "account.password_reset_requested",
            EventType::AccountPasswordReset => "account.password_reset",
            EventType::AccountDisabled => "account.disabled",
            EventType::AccountEnabled => "account.enabled",
            EventType::AccountDeleted => "account.deleted",
            EventType::SessionLoginSucceeded => "session.login_succeeded",
            EventType::SessionLoginFailed => "session.login_failed",
            EventType::SessionLoggedOut => "session.logged_out",
            EventType::SessionLoggedOutAll => "session.logged_out_all",
            EventType::SessionRevoked => "session.revoked",
            EventType::SessionReuseDetected => "session.reuse_detected",
            EventType::MfaEnabled => "mfa.enabled",
            EventType::MfaDisabled => "mfa.disabled",
            EventType::MfaRecoveryCodeUsed => "mfa.recovery_code_used",
            EventType::PasskeyAdded => "passkey.added",
            EventType::PasskeyRemoved => "passkey.removed",
            EventType::LimitAccountLocked => "limit.account_locked",
            EventType::LimitCleared => "limit.cleared",
        }
    }
}

/// Why a login failed (`details.reason` of `session.login_failed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureReason {
    WrongPassword,
    Locked,
    WrongCode,
    NotVerified,
    Disabled,
}

impl FailureReason {
    fn as_str(self) -> &'static str {
        match self {
            FailureReason::WrongPassword => "wrong_password",
            FailureReason::Locked => "locked",
            FailureReason::WrongCode => "wrong_code",
            FailureReason::NotVerified => "not_verified",
            FailureReason::Disabled => "disabled",
        }
    }
}

/// One event to append: what happened, to whom, in which session.
pub struct Event {
    pub kind: EventType,
    pub user_id: Uuid,
    pub session_id: Option<Uuid>,
    pub success: bool,
    /// Type-specific; never a secret, a token or a password.
    pub details: Value,
}

impl Event {
    /// A change that succeeded, with no details.
    pub fn of(kind: EventType, user_id: Uuid) -> Self {
        Self {
            kind,
            user_id,
            session_id: None,
            success: true,
            details: json!({}),
        }
    }

    pub fn in_session(mut self, session_id: Uuid) -> Self {
        self.session_id = Some(session_id);
        self
    }

    pub fn with_details(mut self, details: Value) -> Self {
        self.details = details;
        self
    }

    /// A failed login of the account, and why.
    pub fn login_failed(user_id: Uuid, reason: FailureReason) -> Self {
        Self {
            kind: EventType::SessionLoginFailed,
            user_id,
            session_id: None,
            success: false,
            details: json!({"reason": reason.as_str()}),
        }
    }
}

/// Appends `event`, caused by a request from `origin` (`None`: by the
/// system, with no client), on `client`: the transaction of the change.
/// With a webhook configured for its type, its delivery is written to the
/// outbox in the same transaction, so it is sent once the change commits.
pub async fn record(
    ctx: &AppContext,
    client: &impl GenericClient,
    origin: Option<&Origin>,
    event: Event,
) -> Result<(), tokio_postgres::Error> {
    let outcome = if event.success { "success" } else { "failure" };
    let user_agent = origin
        .and_then(|o| o.user_agent.as_deref())
        .map(|ua| truncate(ua, 512));
    let occurred_at = now_micros();
    let new = NewEvent {
        id: Uuid::now_v7(),
        kind: event.kind.as_str(),
        occurred_at,
        user_id: Some(event.user_id),
        session_id: event.session_id,
        outcome,
        client_address: origin.map(|o| o.address.to_string()),
        user_agent,
        correlation_id: origin.map_or("", |o| o.correlation_id.as_str()),
        actor_kind: match origin {
            Some(Origin { admin: Some(_), .. }) => "admin",
            Some(_) => "user",
            None => "system",
        },
        actor_name: origin.and_then(|o| o.admin.as_deref()),
        details: &event.details,
    };
    events::insert(client, &new).await?;
    if let Some(webhook) = ctx.config.webhook.as_deref()
        && webhook.wants(new.kind)
    {
        let view = SecurityEvent::from(EventRecord::from(&new));
        let body = json!({
            "type": new.kind,
            "timestamp": view.occurred_at_text(),
            "data": view,
        });
        outbox::insert_job(
            client,
            new.id,
            JobQueue::WebhookDelivery.base_name(),
            &body,
            new.correlation_id,
        )
        .await?;
        ctx.outbox.wake();
    }
    metrics::counter!(
        "security_events_total",
        "type" => event.kind.as_str(),
        "outcome" => outcome,
    )
    .increment(1);
    Ok(())
}

/// Now, to the microsecond the database keeps.
fn now_micros() -> OffsetDateTime {
    let now = OffsetDateTime::now_utc();
    now.replace_nanosecond(now.nanosecond() / 1_000 * 1_000)
        .unwrap_or(now)
}

/// Appends an event that records no change (a failed attempt) on a pooled
/// connection of its own.
pub async fn record_alone(
    ctx: &AppContext,
    origin: &Origin,
    event: Event,
) -> Result<(), ServiceError> {
    Ok(record(ctx, &db(&ctx.db).await?, Some(origin), event).await?)
}

/// An event as clients see it, in `GET /users/me/events` and in webhooks.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecurityEvent {
    /// UUID v7.
    pub id: Uuid,
    /// For example `session.login_succeeded` (the list is in the README).
    #[serde(rename = "type")]
    #[schema(example = "session.login_succeeded")]
    pub kind: String,
    /// RFC 3339 with microseconds.
    #[serde(serialize_with = "micros")]
    #[schema(value_type = String, format = DateTime)]
    pub occurred_at: OffsetDateTime,
    pub user_id: Option<Uuid>,
    pub session_id: Option<Uuid>,
    /// `success` or `failure`.
    pub outcome: String,
    /// The request's client; null for what the system did on its own.
    pub client: Option<EventClient>,
    pub correlation_id: String,
    pub actor: EventActor,
    /// Type-specific; never a secret, a token or a password.
    #[schema(value_type = Object)]
    pub details: Value,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventClient {
    /// The client's IP address, without a port.
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct EventActor {
    /// `user`, `admin` or `system`.
    pub kind: String,
    /// The admin key's name, or null.
    pub name: Option<String>,
}

const MICROS: &[time::format_description::FormatItem<'_>] = time::macros::format_description!(
    "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
);

fn micros<S: serde::Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    let text = at
        .to_offset(time::UtcOffset::UTC)
        .format(MICROS)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
}

impl SecurityEvent {
    fn occurred_at_text(&self) -> String {
        self.occurred_at
            .to_offset(time::UtcOffset::UTC)
            .format(MICROS)
            .unwrap_or_default()
    }
}

impl From<EventRecord> for SecurityEvent {
    fn from(event: EventRecord) -> Self {
        let has_client = event.client_address.is_some() || event.user_agent.is_some();
        let client = has_client.then_some(EventClient {
            address: event.client_address,
            user_agent: event.user_agent,
        });
        Self {
            id: event.id,
            kind: event.kind,
            occurred_at: event.occurred_at,
            user_id: event.user_id,
            session_id: event.session_id,
            outcome: event.outcome,
            client,
            correlation_id: event.correlation_id,
            actor: EventActor {
                kind: event.actor_kind,
                name: event.actor_name,
            },
            details: event.details,
        }
    }
}

fn truncate(text: &str, chars: usize) -> &str {
    match text.char_indices().nth(chars) {
        Some((end, _)) => &text[..end],
        None => text,
    }
}

/// One page of a user's events and the cursor of the next, if any.
pub struct Page {
    pub events: Vec<EventRecord>,
    pub next_cursor: Option<String>,
}

/// The user's events older than `cursor` (from the previous page), at most
/// `limit` (1 to [`paging::MAX_PAGE`]), newest first.
pub async fn page(
    ctx: &AppContext,
    user_id: Uuid,
    limit: u32,
    cursor: Option<&str>,
) -> Result<Page, ServiceError> {
    let before = paging::check(limit, cursor)?;
    let client = db(&ctx.db).await?;
    let rows = events::page(&client, user_id, before, i64::from(limit) + 1).await?;
    let (events, next_cursor) = paging::split(rows, limit, |e| (e.occurred_at, e.id));
    Ok(Page {
        events,
        next_cursor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_has_its_contract_name() {
        let names: Vec<&str> = EventType::ALL.iter().map(|t| t.as_str()).collect();
        assert_eq!(names.len(), 23);
        assert!(names.iter().all(|n| n.contains('.')));
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), names.len());
    }
}
