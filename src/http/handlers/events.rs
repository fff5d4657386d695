//! `GET /api/v1/users/me/events`: the caller's own security history,
//! newest first, a keyset cursor per page (CONTRACT.md, "Security events
//! and webhooks").

use http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::layers::auth::AuthenticatedUser;
use crate::http::problem::ProblemDocument;
use crate::http::problem::shared::Unauthorized;
use crate::http::{ApiError, Request, Response, extract, json};
use crate::services::AppState;
use crate::services::events::{self, SecurityEvent};

/// One page of events.
#[derive(Serialize, ToSchema)]
pub struct EventsPage {
    /// Newest first.
    pub events: Vec<SecurityEvent>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
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
    let query = extract::Query::of(&request)?;
    let page = events::page(&state, claims.sub, query.limit()?, query.get("cursor")).await?;
    json(
        StatusCode::OK,
        &EventsPage {
            events: page.events.into_iter().map(SecurityEvent::from).collect(),
            next_cursor: page.next_cursor,
        },
    )
}
