//! `/api/v1/auth/verify-email/*`.

use http::StatusCode;
use serde::Deserialize;
use utoipa::ToSchema;

use super::password_reset::Accepted;
use crate::http::extract;
use crate::http::problem::ProblemDocument;
use crate::http::problem::shared::{Invalid, NotJson};
use crate::http::{ApiError, Request, Response, empty, json};
use crate::services::AppState;
use crate::services::verification;

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationRequest {
    #[schema(example = "ada@example.com", format = Email)]
    pub email: String,
}

// No `Debug`: it holds a token.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VerificationConfirm {
    /// The token from the emailed link (43 characters).
    pub token: String,
}

/// Ask for a new verification link.
#[utoipa::path(
    post,
    path = "/api/v1/auth/verify-email/request",
    operation_id = "request_email_verification",
    tag = "auth",
    request_body = VerificationRequest,
    responses(
        (status = 202, description = "Accepted, whether or not the email is known or already verified", body = Accepted),
        (status = 400, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        (status = 422, description = "Malformed email", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many requests for this email or from this address; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn request(state: AppState, request: Request) -> Result<Response, ApiError> {
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: VerificationRequest = extract::json(request).await?;
    let email = crate::services::parse_email("email", &body.email)?;
    verification::request(&state, email, &origin).await?;
    json(
        StatusCode::ACCEPTED,
        &Accepted {
            detail: "if the address belongs to an unverified account, a link is on its way",
        },
    )
}

/// Open an emailed verification link: the address is verified (or, for a
/// new address, the account moves to it).
#[utoipa::path(
    post,
    path = "/api/v1/auth/verify-email/confirm",
    operation_id = "confirm_email_verification",
    tag = "auth",
    request_body = VerificationConfirm,
    responses(
        (status = 204, description = "The address is verified"),
        (status = 400, description = "Unknown, used, superseded or expired token, or a body that is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The new address was taken meanwhile (the link stays usable)", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        Invalid,
    )
)]
pub async fn confirm(state: AppState, request: Request) -> Result<Response, ApiError> {
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: VerificationConfirm = extract::json(request).await?;
    verification::confirm(&state, &body.token, &origin).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}
