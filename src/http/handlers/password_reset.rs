//! `/api/v1/auth/password-reset/*`.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::http::extract;
use crate::http::problem::ProblemDocument;
use crate::http::problem::shared::NotJson;
use crate::http::{ApiError, Request, Response, empty, json};
use crate::services::AppState;
use crate::services::password_reset;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetRequest {
    #[schema(example = "ada@example.com", format = Email)]
    pub email: String,
}

// No `Debug`: it holds a token and a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordResetConfirm {
    /// The token from the emailed link (43 characters).
    pub token: String,
    #[schema(min_length = 12, max_length = 128)]
    pub new_password: String,
}

/// A request taken; what follows happens by email.
#[derive(Serialize, ToSchema)]
pub struct Accepted {
    #[schema(example = "if the address belongs to an account, a reset link is on its way")]
    pub detail: &'static str,
}

/// The same answer for every email, known or not.
const ACCEPTED: Accepted = Accepted {
    detail: "if the address belongs to an account, a reset link is on its way",
};

/// Ask for a reset link by email.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/request",
    tag = "auth",
    request_body = PasswordResetRequest,
    responses(
        (status = 202, description = "Accepted, whether or not the email is known", body = Accepted),
        (status = 400, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        (status = 422, description = "Malformed email", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this email or from this address; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn request(state: AppState, request: Request) -> Result<Response, ApiError> {
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: PasswordResetRequest = extract::json(request).await?;
    let email = crate::services::parse_email("email", &body.email)?;
    password_reset::request(&state, email, &origin).await?;
    json(StatusCode::ACCEPTED, &ACCEPTED)
}

/// Set a new password with the token from the emailed link.
#[utoipa::path(
    post,
    path = "/api/v1/auth/password-reset/confirm",
    tag = "auth",
    request_body = PasswordResetConfirm,
    responses(
        (status = 204, description = "The password is set; every session has ended"),
        (status = 400, description = "Unknown, used, superseded or expired token, or a body that is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        (status = 422, description = "The new password is too weak (the token is not spent)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks waiting, or a backing service is unavailable; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn confirm(state: AppState, request: Request) -> Result<Response, ApiError> {
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: PasswordResetConfirm = extract::json(request).await?;
    password_reset::confirm(&state, &body.token, body.new_password, &origin).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
