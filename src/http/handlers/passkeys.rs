//! `/api/v1/users/me/passkeys*` and `/api/v1/auth/passkey/*`: passkeys
//! (CONTRACT.md, "Passkeys (WebAuthn)"). The options and credentials are
//! the WebAuthn Level 3 JSON forms that `PublicKeyCredential.parse*FromJSON`
//! and SimpleWebAuthn use.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::{TokenResponse, token_response};
use crate::http::extract;
use crate::http::layers::auth::AuthenticatedUser;
use crate::http::problem::ProblemDocument;
use crate::http::problem::shared::{Invalid, NotJson, Unauthorized};
use crate::http::{ApiError, Request, Response, empty, json};
use crate::repositories::passkeys::PasskeyRecord;
use crate::services::AppState;
use crate::services::passkeys::{self, Challenge};

// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasskeyPasswordRequest {
    pub current_password: String,
}

/// A started ceremony.
#[derive(Serialize, ToSchema)]
pub struct PasskeyChallenge {
    /// Send back with the credential; valid 300 s, once.
    pub challenge_id: Uuid,
    /// `PublicKeyCredentialCreationOptionsJSON` (registration) or
    /// `PublicKeyCredentialRequestOptionsJSON` (sign-in), for
    /// `PublicKeyCredential.parseCreationOptionsFromJSON` /
    /// `parseRequestOptionsFromJSON` or SimpleWebAuthn.
    #[schema(value_type = Object)]
    pub options: Value,
}

impl From<Challenge> for PasskeyChallenge {
    fn from(challenge: Challenge) -> Self {
        Self {
            challenge_id: challenge.challenge_id,
            options: challenge.options,
        }
    }
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishRegistrationRequest {
    pub challenge_id: Uuid,
    /// How the passkey is listed, e.g. "Laptop".
    #[schema(example = "Laptop", min_length = 1, max_length = 100)]
    pub name: String,
    /// The `RegistrationResponseJSON` of `navigator.credentials.create()`.
    #[schema(value_type = Object)]
    pub credential: Value,
}

/// An empty object.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct StartSignInRequest {}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FinishSignInRequest {
    pub challenge_id: Uuid,
    /// The `AuthenticationResponseJSON` of `navigator.credentials.get()`.
    #[schema(value_type = Object)]
    pub credential: Value,
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyResponse {
    pub id: Uuid,
    pub name: String,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// Null until its first sign-in.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_used_at: Option<OffsetDateTime>,
}

impl From<PasskeyRecord> for PasskeyResponse {
    fn from(passkey: PasskeyRecord) -> Self {
        Self {
            id: passkey.id,
            name: passkey.name,
            created_at: passkey.created_at,
            last_used_at: passkey.last_used_at,
        }
    }
}

#[derive(Serialize, ToSchema)]
pub struct PasskeyList {
    /// Oldest first.
    pub passkeys: Vec<PasskeyResponse>,
}

/// Start registering a passkey (a discoverable credential with user
/// verification); the account's passkeys are excluded.
#[utoipa::path(
    post,
    path = "/api/v1/users/me/passkeys/registration/start",
    operation_id = "start_passkey_registration",
    tag = "passkeys",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = PasskeyPasswordRequest,
    responses(
        (status = 200, description = "The options for navigator.credentials.create()", body = PasskeyChallenge),
        (status = 400, description = "Wrong current password (counts against the login limits), or the body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Unauthorized,
        (status = 403, description = "The account's address was never verified (`email-not-verified`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "Passkeys are off (PUBLIC_URL's host is an IP address and WEBAUTHN_RP_ID is unset)", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        Invalid,
        (status = 429, description = "Too many failures for the account; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn start_registration(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?.clone();
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: PasskeyPasswordRequest = extract::json(request).await?;
    let challenge =
        passkeys::start_registration(&state, &claims, &body.current_password, &origin).await?;
    json(StatusCode::OK, &PasskeyChallenge::from(challenge))
}

/// Finish a registration: the passkey is stored and the owner gets a
/// `passkey_added` notice. No session ends.
#[utoipa::path(
    post,
    path = "/api/v1/users/me/passkeys/registration/finish",
    operation_id = "finish_passkey_registration",
    tag = "passkeys",
    security(("bearer" = []), ("oauth2" = [])),
    request_body = FinishRegistrationRequest,
    responses(
        (status = 201, description = "Registered", body = PasskeyResponse),
        (status = 400, description = "The attestation does not verify, or the challenge is unknown, spent, expired (300 s) or another account's; or the body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Unauthorized,
        (status = 404, description = "Passkeys are off", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The credential is already registered", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        Invalid,
    )
)]
pub async fn finish_registration(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?.clone();
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: FinishRegistrationRequest = extract::json(request).await?;
    let passkey = passkeys::finish_registration(
        &state,
        &claims,
        body.challenge_id,
        &body.name,
        body.credential,
        &origin,
    )
    .await?;
    json(StatusCode::CREATED, &PasskeyResponse::from(passkey))
}

/// The caller's passkeys.
#[utoipa::path(
    get,
    path = "/api/v1/users/me/passkeys",
    operation_id = "list_passkeys",
    tag = "passkeys",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 200, description = "The caller's passkeys", body = PasskeyList),
        Unauthorized,
        (status = 404, description = "Passkeys are off", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn list(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?;
    let passkeys = passkeys::list(&state, claims.sub).await?;
    json(
        StatusCode::OK,
        &PasskeyList {
            passkeys: passkeys.into_iter().map(PasskeyResponse::from).collect(),
        },
    )
}

/// Remove one of the caller's passkeys; the owner gets a `passkey_removed`
/// notice. No session ends.
#[utoipa::path(
    delete,
    path = "/api/v1/users/me/passkeys/{id}",
    operation_id = "delete_passkey",
    tag = "passkeys",
    security(("bearer" = []), ("oauth2" = [])),
    params(("id" = Uuid, Path, description = "The passkey's id")),
    request_body = PasskeyPasswordRequest,
    responses(
        (status = 204, description = "Removed"),
        (status = 400, description = "Wrong current password (counts against the login limits), or the body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        Unauthorized,
        (status = 404, description = "Not one of the caller's passkeys, or passkeys are off", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The account has no password and this is its last passkey", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        Invalid,
        (status = 429, description = "Too many failures for the account; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn delete(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?.clone();
    let id = extract::path_id(&request, "id")?;
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: PasskeyPasswordRequest = extract::json(request).await?;
    passkeys::remove(&state, &claims, id, &body.current_password, &origin).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// Start a passkey sign-in: options for a discoverable credential, no
/// email asked.
#[utoipa::path(
    post,
    path = "/api/v1/auth/passkey/start",
    operation_id = "start_passkey_sign_in",
    tag = "auth",
    request_body = StartSignInRequest,
    responses(
        (status = 200, description = "The options for navigator.credentials.get()", body = PasskeyChallenge),
        (status = 400, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "Passkeys are off", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        Invalid,
    )
)]
pub async fn start_sign_in(state: AppState, request: Request) -> Result<Response, ApiError> {
    let _: StartSignInRequest = extract::json(request).await?;
    let challenge = passkeys::start_sign_in(&state).await?;
    json(StatusCode::OK, &PasskeyChallenge::from(challenge))
}

/// Finish a passkey sign-in: the tokens of a login, with `amr`
/// `["hwk","user"]`; it stands in for the password and the second factor.
#[utoipa::path(
    post,
    path = "/api/v1/auth/passkey/finish",
    operation_id = "finish_passkey_sign_in",
    tag = "auth",
    request_body = FinishSignInRequest,
    responses(
        (status = 200, description = "Signed in, as by /auth/login", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "the refresh_token cookie"))),
        (status = 400, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "`invalid-passkey`: an unknown credential, a bad signature, a user handle of another account, a sign count that went back, no user verification, or an unknown, spent or expired challenge", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 403, description = "The account is disabled (`account-disabled`)", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 404, description = "Passkeys are off", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        Invalid,
        (status = 429, description = "Too many failures from this address; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn finish_sign_in(state: AppState, request: Request) -> Result<Response, ApiError> {
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: FinishSignInRequest = extract::json(request).await?;
    let tokens =
        passkeys::finish_sign_in(&state, body.challenge_id, body.credential, &origin).await?;
    token_response(&state.config, tokens)
}
