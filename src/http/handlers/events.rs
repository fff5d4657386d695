//! `GET /api/v1/users/me/events`: the caller's own security history,
//! newest first, a keyset cursor per page (CONTRACT.md, "Security events
//! and webhooks").

use http::StatusCode;
use serde::{Serialize, Serializer};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::FieldError;
use crate::http::layers::auth::AuthenticatedUser;
use crate::http::problem::ProblemDocument;
use crate::http::problem::shared::Unauthorized;
use crate::http::{ApiError, Request, Response, json};
use crate::repositories::events::EventRecord;
use crate::services::AppState;
use crate::services::events::{self, DEFAULT_PAGE};

/// One page of events.
#[derive(Serialize, ToSchema)]
pub struct EventsPage {
    /// Newest first.
    pub events: Vec<SecurityEvent>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

/// A security-relevant change of an account or a session.
#[derive(Serialize, ToSchema)]
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
    pub details: serde_json::Value,
}

#[derive(Serialize, ToSchema)]
pub struct EventClient {
    /// The client's IP address, without a port.
    pub address: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventActor {
    /// `user`, `admin` or `system`.
    pub kind: String,
    /// The admin key's name, or null.
    pub name: Option<String>,
}

fn micros<S: Serializer>(at: &OffsetDateTime, serializer: S) -> Result<S::Ok, S::Error> {
    const FORMAT: &[time::format_description::FormatItem<'_>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
    );
    let text = at
        .to_offset(time::UtcOffset::UTC)
        .format(FORMAT)
        .map_err(serde::ser::Error::custom)?;
    serializer.serialize_str(&text)
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

/// The caller's security history: logins, failures, changes of password,
/// address and factors, sessions ended.
#[utoipa::path(
    get,
    path = "/api/v1/users/me/events",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(
        ("limit" = Option<u32>, Query, description = "Events per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of the caller's events, newest first", body = EventsPage),
        Unauthorized,
        (status = 422, description = "`limit` is not an integer from 1 to 100, or `cursor` is not one this API gave", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "A backing service is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?;
    let query: Vec<(String, String)> = request
        .uri()
        .query()
        .map(serde_urlencoded::from_str)
        .transpose()
        .map_err(|_| ApiError::validation(vec![FieldError::new("query", "is not a query string")]))?
        .unwrap_or_default();
    let value = |name: &str| {
        query
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let limit = match value("limit") {
        None => DEFAULT_PAGE,
        Some(text) => text.parse::<u32>().map_err(|_| {
            ApiError::validation(vec![FieldError::new(
                "limit",
                "must be an integer from 1 to 100",
            )])
        })?,
    };
    let page = events::page(&state, claims.sub, limit, value("cursor")).await?;
    json(
        StatusCode::OK,
        &EventsPage {
            events: page.events.into_iter().map(SecurityEvent::from).collect(),
            next_cursor: page.next_cursor,
        },
    )
}
