//! `/api/v1/users/me*`: the signed-in user's account and sessions.

use http::StatusCode;
use serde::{Deserialize, Deserializer, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::domain::FullName;
use crate::http::extract;
use crate::http::layers::auth::AuthenticatedUser;
use crate::http::problem::ProblemDocument;
use crate::http::problem::shared::{Invalid, NotJson, Unauthorized};
use crate::http::router::PathParams;
use crate::http::{ApiError, Request, Response, empty, json};
use crate::repositories::sessions::SessionRecord;
use crate::repositories::users::UserRecord;
use crate::services::AppState;
use crate::services::{self, ServiceError};

#[derive(Debug, Serialize, ToSchema)]
pub struct UserResponse {
    pub id: Uuid,
    #[schema(example = "ada@example.com", format = Email)]
    pub email: String,
    #[schema(example = "Ada Lovelace")]
    pub full_name: Option<String>,
    /// Whether the address was proved through an emailed link.
    pub email_verified: bool,
    /// Whether a second factor (TOTP) is enabled.
    pub mfa_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
}

impl From<UserRecord> for UserResponse {
    fn from(user: UserRecord) -> Self {
        Self {
            id: user.id,
            email: user.email,
            full_name: user.full_name,
            email_verified: user.email_verified,
            mfa_enabled: user.mfa_enabled,
            created_at: user.created_at,
        }
    }
}

// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangeEmailRequest {
    pub current_password: String,
    #[schema(example = "ada@new.example.com", max_length = 254, format = Email)]
    pub new_email: String,
}

// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DeleteAccountRequest {
    pub current_password: String,
}

/// `full_name` must be present; `null` clears it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateMeRequest {
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<String>, required = true, example = "Ada King")]
    pub full_name: Option<Option<String>>,
}

/// Tells a present `null` (`Some(None)`) from an absent key (`None`).
fn present<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

// No `Debug`: it holds passwords.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ChangePasswordRequest {
    pub current_password: String,
    #[schema(min_length = 12, max_length = 128)]
    pub new_password: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SessionResponse {
    /// The `sid` claim of this session's access tokens.
    pub id: Uuid,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub last_used_at: OffsetDateTime,
    pub user_agent: Option<String>,
    /// True for the session of the token that asked.
    pub current: bool,
}

impl SessionResponse {
    pub fn of(session: SessionRecord, current: bool) -> Self {
        Self {
            id: session.id,
            created_at: session.created_at,
            last_used_at: session.last_used_at,
            user_agent: session.user_agent,
            current,
        }
    }
}

/// The signed-in user.
#[utoipa::path(
    get,
    path = "/api/v1/users/me",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The user", body = UserResponse),
        Unauthorized,
        (status = 503, description = "The session store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn me(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?;
    let user = services::users::me(&state, claims.sub).await?;
    json(StatusCode::OK, &UserResponse::from(user))
}

/// Change the display name (`null` clears it).
#[utoipa::path(
    patch,
    path = "/api/v1/users/me",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = UpdateMeRequest,
    responses(
        (status = 200, description = "The updated user", body = UserResponse),
        (status = 400, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Unauthorized,
        NotJson,
        (status = 422, description = "Invalid name", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn update_me(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?.clone();
    let body: UpdateMeRequest = extract::json(request).await?;
    let full_name = match body.full_name {
        None => return Err(ServiceError::invalid("full_name", "is required").into()),
        Some(None) => None,
        Some(Some(raw)) => {
            Some(FullName::parse(&raw).map_err(|m| ServiceError::invalid("full_name", m))?)
        }
    };
    let user = services::users::update_full_name(&state, claims.sub, full_name).await?;
    json(StatusCode::OK, &UserResponse::from(user))
}

/// Change the password: other sessions end; access tokens issued before
/// stop working, while this session's refresh cookie keeps working.
#[utoipa::path(
    post,
    path = "/api/v1/users/me/password",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 204, description = "Changed"),
        (status = 400, description = "The current password is wrong, or the body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Unauthorized,
        NotJson,
        (status = 422, description = "The new password is too weak", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong current passwords; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks waiting, or a backing service is unavailable; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn change_password(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?.clone();
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: ChangePasswordRequest = extract::json(request).await?;
    services::users::change_password(
        &state,
        &claims,
        &body.current_password,
        body.new_password,
        &origin,
    )
    .await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The user's live sessions.
#[utoipa::path(
    get,
    path = "/api/v1/users/me/sessions",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "Live sessions", body = [SessionResponse]),
        Unauthorized,
    )
)]
pub async fn list_sessions(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?;
    let sessions = services::sessions::list(&state, claims.sub).await?;
    let body: Vec<SessionResponse> = sessions
        .into_iter()
        .map(|s: SessionRecord| {
            let current = s.id == claims.sid;
            SessionResponse::of(s, current)
        })
        .collect();
    json(StatusCode::OK, &body)
}

/// End one session; its access tokens stop working at once.
#[utoipa::path(
    delete,
    path = "/api/v1/users/me/sessions/{id}",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = Uuid, Path, description = "The session id")),
    responses(
        (status = 204, description = "Ended"),
        Unauthorized,
        (status = 404, description = "No such live session of this user", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn delete_session(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?;
    let id = request
        .extensions()
        .get::<PathParams>()
        .and_then(|p| p.get("id"))
        .and_then(|id| Uuid::parse_str(id).ok())
        .ok_or_else(|| ApiError::not_found("no such session"))?;
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    services::sessions::delete(&state, claims, id, &origin).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Move the account to another address: a link goes to the new address, a
/// notice to the current one; nothing changes until the link is opened.
#[utoipa::path(
    post,
    path = "/api/v1/users/me/email",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = ChangeEmailRequest,
    responses(
        (status = 202, description = "A link is on its way to the new address (unless it was sent too many lately)", body = super::password_reset::Accepted),
        (status = 400, description = "The current password is wrong, or the body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Unauthorized,
        (status = 403, description = "The account's own address was never verified (`email-not-verified`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "Another account has the new address", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        (status = 422, description = "Malformed address, or the current one", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many wrong passwords or requests; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks waiting, or a backing service is unavailable; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn change_email(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?.clone();
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: ChangeEmailRequest = extract::json(request).await?;
    services::users::request_email_change(
        &state,
        &claims,
        &body.current_password,
        &body.new_email,
        &origin,
    )
    .await?;
    json(
        StatusCode::ACCEPTED,
        &super::password_reset::Accepted {
            detail: "a link is on its way to the new address",
        },
    )
}

/// Delete the account: every session and token ends, the rows go, and the
/// address may register again.
#[utoipa::path(
    delete,
    path = "/api/v1/users/me",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = DeleteAccountRequest,
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, description = "The current password is wrong, or the body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Unauthorized,
        NotJson,
        Invalid,
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks waiting, or a backing service is unavailable; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn delete_me(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?.clone();
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: DeleteAccountRequest = extract::json(request).await?;
    services::users::delete_account(&state, &claims, &body.current_password, &origin).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
