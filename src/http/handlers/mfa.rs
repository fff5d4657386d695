//! `/api/v1/users/me/mfa/totp*` and `/api/v1/auth/login/mfa`: the second
//! factor (CONTRACT.md, "Second factor: TOTP and recovery codes").

use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::{TokenResponse, token_response};
use crate::http::extract;
use crate::http::layers::auth::AuthenticatedUser;
use crate::http::problem::ProblemDocument;
use crate::http::problem::shared::{Invalid, NotJson, Unauthorized};
use crate::http::{ApiError, Request, Response, empty, json};
use crate::services::AppState;
use crate::services::mfa::{self, Proof};

// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrolRequest {
    pub current_password: String,
}

/// Shown once: put it in an authenticator app (or scan the URI as a QR code).
#[derive(Serialize, ToSchema)]
pub struct EnrolResponse {
    /// The secret, base32.
    pub secret: String,
    #[schema(example = "otpauth://totp/Portcullis:ada%40example.com?secret=...&issuer=Portcullis")]
    pub otpauth_uri: String,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmRequest {
    /// A 6-digit code from the authenticator app.
    #[schema(example = "123456")]
    pub code: String,
}

/// Shown once; each works once in place of a code.
#[derive(Serialize, ToSchema)]
pub struct RecoveryCodes {
    pub recovery_codes: Vec<String>,
}

// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    pub current_password: String,
    /// A 6-digit code, or a recovery code.
    pub code: String,
}

// No `Debug`: it holds a token and a code.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginMfaRequest {
    /// From the 403 `mfa-required` answer of the login.
    pub mfa_token: String,
    /// A 6-digit code; or give `recovery_code` instead.
    pub code: Option<String>,
    pub recovery_code: Option<String>,
}

/// Start enrolling a TOTP factor (replaces one still pending).
#[utoipa::path(
    post,
    path = "/api/v1/users/me/mfa/totp",
    operation_id = "enrol_totp",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = EnrolRequest,
    responses(
        (status = 201, description = "Pending until a code confirms it", body = EnrolResponse),
        (status = 400, description = "The current password is wrong, or the body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Unauthorized,
        (status = 403, description = "The account's address was never verified (`email-not-verified`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "A factor is already enabled", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        Invalid,
        (status = 429, description = "Too many wrong passwords; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Second factors are not configured, too many password checks waiting, or a backing service is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn enrol(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?.clone();
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: EnrolRequest = extract::json(request).await?;
    let enrolment = mfa::enrol(&state, &claims, &body.current_password, &origin).await?;
    let mut response = json(
        StatusCode::CREATED,
        &EnrolResponse {
            secret: enrolment.secret,
            otpauth_uri: enrolment.otpauth_uri,
        },
    )?;
    no_store(&mut response);
    Ok(response)
}

/// Confirm the pending factor with a code; returns the recovery codes.
#[utoipa::path(
    post,
    path = "/api/v1/users/me/mfa/totp/confirm",
    operation_id = "confirm_totp",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = ConfirmRequest,
    responses(
        (status = 200, description = "Enabled; the recovery codes, shown once", body = RecoveryCodes),
        (status = 400, description = "The code is wrong, or the body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Unauthorized,
        (status = 409, description = "Nothing is pending: never started, expired after 10 minutes, or replaced by a newer enrolment", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        Invalid,
        (status = 429, description = "Too many wrong passwords or codes for the account; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Second factors are not configured, or a backing service is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn confirm(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?.clone();
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: ConfirmRequest = extract::json(request).await?;
    let recovery_codes = mfa::confirm(&state, &claims, &body.code, &origin).await?;
    let mut response = json(StatusCode::OK, &RecoveryCodes { recovery_codes })?;
    no_store(&mut response);
    Ok(response)
}

/// Turn the factor off, with the password and a code or a recovery code.
#[utoipa::path(
    delete,
    path = "/api/v1/users/me/mfa/totp",
    operation_id = "disable_totp",
    tag = "users",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = DisableRequest,
    responses(
        (status = 204, description = "Disabled"),
        (status = 400, description = "The current password or the code is wrong, or the body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Unauthorized,
        (status = 409, description = "No factor is enabled", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        Invalid,
        (status = 429, description = "Too many wrong passwords or codes for the account; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Second factors are not configured, too many password checks waiting, or a backing service is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn disable(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?.clone();
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: DisableRequest = extract::json(request).await?;
    mfa::disable(&state, &claims, &body.current_password, &body.code, &origin).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The second step of a login: the `mfa_token` of the 403 `mfa-required`
/// answer and a code (or a recovery code) for the tokens of a login.
#[utoipa::path(
    post,
    path = "/api/v1/auth/login/mfa",
    operation_id = "login_mfa",
    tag = "auth",
    request_body = LoginMfaRequest,
    responses(
        (status = 200, description = "Logged in, as by /auth/login, with amr [\"pwd\",\"otp\"]", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "the refresh_token cookie"))),
        (status = 400, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "A wrong, replayed or used code, or an unknown, expired or spent mfa_token", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        (status = 422, description = "Neither or both of code and recovery_code, or a field of the wrong type", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failures for the account; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Second factors are not configured, or a backing service is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn login(state: AppState, request: Request) -> Result<Response, ApiError> {
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: LoginMfaRequest = extract::json(request).await?;
    let proof = match (&body.code, &body.recovery_code) {
        (Some(code), None) => Proof::Code(code),
        (None, Some(code)) => Proof::RecoveryCode(code),
        _ => {
            return Err(ApiError::validation(vec![crate::domain::FieldError::new(
                "code",
                "give either code or recovery_code",
            )]));
        }
    };
    let tokens = mfa::complete_login(&state, &body.mfa_token, proof, &origin).await?;
    token_response(&state.config, tokens)
}

fn no_store(response: &mut Response) {
    response.headers_mut().insert(
        http::header::CACHE_CONTROL,
        http::HeaderValue::from_static("no-store"),
    );
}
