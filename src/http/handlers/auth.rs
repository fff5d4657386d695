//! `/api/v1/auth/*`: register, login, refresh, logout, logout-all.

use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::users::UserResponse;
use crate::app::AppState;
use crate::config::Config;
use crate::domain::{Email, FieldError, FullName};
use crate::http::extract::{self, BodyKind};
use crate::http::layers::auth::AuthenticatedUser;
use crate::http::layers::correlation_id::CorrelationId;
use crate::http::problem::ProblemDocument;
use crate::http::{ApiError, Request, Response, empty, json};
use crate::services::auth::{self, IssuedTokens};

pub const REFRESH_COOKIE: &str = "refresh_token";
/// The refresh cookie is only ever sent to the auth endpoints.
const COOKIE_PATH: &str = "/api/v1/auth";

// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ada@example.com", max_length = 254)]
    pub email: String,
    /// 12 to 128 characters, hard to guess.
    #[schema(
        example = "correct horse battery staple",
        min_length = 12,
        max_length = 128
    )]
    pub password: String,
    #[serde(default)]
    #[schema(example = "Ada Lovelace", max_length = 200)]
    pub full_name: Option<String>,
}

// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LoginRequest {
    #[schema(example = "ada@example.com")]
    pub email: String,
    #[schema(example = "correct horse battery staple")]
    pub password: String,
}

/// The OAuth2 password-flow form; other OAuth2 fields are ignored.
// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
pub struct LoginForm {
    pub username: String,
    pub password: String,
    pub grant_type: Option<String>,
    pub scope: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct TokenResponse {
    pub access_token: String,
    #[schema(example = "bearer")]
    pub token_type: &'static str,
    /// Seconds until the access token expires.
    #[schema(example = 900)]
    pub expires_in: u64,
}

/// Create an account.
#[utoipa::path(
    post,
    path = "/api/v1/auth/register",
    tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "The account", body = UserResponse),
        (status = 400, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 409, description = "The email is taken", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 413, description = "The body is over 64 KiB", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "Invalid email, password or name", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn register(state: AppState, request: Request) -> Result<Response, ApiError> {
    let body: RegisterRequest = extract::json(request).await?;
    let mut errors = Vec::new();
    let email = Email::parse(&body.email)
        .map_err(|m| errors.push(FieldError::new("email", m)))
        .ok();
    let full_name = match body.full_name.as_deref() {
        None => None,
        Some(raw) => FullName::parse(raw)
            .map_err(|m| errors.push(FieldError::new("full_name", m)))
            .ok(),
    };
    let context = [
        email.as_ref().map_or(body.email.as_str(), Email::as_str),
        full_name.as_ref().map_or("", FullName::as_str),
    ];
    let password = state
        .password_policy
        .check(body.password, &context)
        .map_err(|m| errors.push(FieldError::new("password", m)))
        .ok();
    let (Some(email), Some(password)) = (email, password) else {
        return Err(ApiError::validation(errors));
    };
    if !errors.is_empty() {
        return Err(ApiError::validation(errors));
    }
    let user = auth::register(&state, email, password, full_name).await?;
    json(StatusCode::CREATED, &UserResponse::from(user))
}

/// Log in with email and password (JSON, or the OAuth2 password form).
#[utoipa::path(
    post,
    path = "/api/v1/auth/login",
    tag = "auth",
    request_body(content(
        (LoginRequest = "application/json"),
        (LoginForm = "application/x-www-form-urlencoded"),
    )),
    responses(
        (status = 200, description = "An access token; the refresh token is set as an HttpOnly cookie",
            body = TokenResponse,
            headers(("Set-Cookie" = String, description = "refresh_token=...; HttpOnly; Secure; SameSite=Strict; Path=/api/v1/auth; Max-Age=..."))),
        (status = 400, description = "The body does not parse", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 401, description = "Wrong email or password", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 415, description = "Neither JSON nor a form", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 422, description = "A field is missing or of the wrong type", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn login(state: AppState, request: Request) -> Result<Response, ApiError> {
    let address = extract::client_ip(&request, &state.config.trusted_proxies);
    let user_agent = extract::user_agent(&request).map(str::to_owned);
    let kind = extract::body_kind(request.headers(), true)?;
    let bytes = extract::read_body(request.into_body()).await?;
    let (email, password) = match kind {
        BodyKind::Json => {
            let body: LoginRequest = extract::parse_json(&bytes)?;
            (body.email, body.password)
        }
        BodyKind::Form => form_credentials(&bytes)?,
    };
    let tokens = auth::login(&state, &email, &password, address, user_agent.as_deref()).await?;
    token_response(&state.config, tokens)
}

fn form_credentials(bytes: &[u8]) -> Result<(String, String), ApiError> {
    let fields = extract::parse_form(bytes)?;
    let field = |name: &str| {
        fields
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    };
    let mut errors = Vec::new();
    let username = field("username");
    let password = field("password");
    if username.is_none() {
        errors.push(FieldError::new("username", "is required"));
    }
    if password.is_none() {
        errors.push(FieldError::new("password", "is required"));
    }
    match (username, password) {
        (Some(username), Some(password)) => Ok((username, password)),
        _ => Err(ApiError::validation(errors)),
    }
}

/// Exchange the refresh cookie for a new access token and a new cookie.
#[utoipa::path(
    post,
    path = "/api/v1/auth/refresh",
    tag = "auth",
    security(("refresh_cookie" = [])),
    responses(
        (status = 200, description = "A new access token and a rotated refresh cookie", body = TokenResponse,
            headers(("Set-Cookie" = String, description = "the rotated refresh_token cookie"))),
        (status = 401, description = "Missing, unknown, expired, revoked or reused refresh token", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn refresh(state: AppState, request: Request) -> Result<Response, ApiError> {
    let presented = extract::cookie(request.headers(), REFRESH_COOKIE);
    let correlation_id = CorrelationId::of(&request);
    let (tokens, _outcome) = auth::refresh(&state, presented, correlation_id.as_str()).await?;
    token_response(&state.config, tokens)
}

/// End this session (and the refresh cookie's, when sent); clears the cookie.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout",
    tag = "auth",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Logged out; the cookie is cleared"),
        (status = 401, description = "No valid access token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The session store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn logout(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?;
    let cookie = extract::cookie(request.headers(), REFRESH_COOKIE);
    auth::logout(&state, claims, cookie).await?;
    let mut response = empty(StatusCode::NO_CONTENT);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, refresh_cookie(&state.config, "", 0));
    Ok(response)
}

/// End every session of the user.
#[utoipa::path(
    post,
    path = "/api/v1/auth/logout-all",
    tag = "auth",
    security(("bearer" = []), ("oauth2" = [])),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 401, description = "No valid access token", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "The session store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn logout_all(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?;
    auth::logout_all(&state, claims).await?;
    let mut response = empty(StatusCode::NO_CONTENT);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, refresh_cookie(&state.config, "", 0));
    Ok(response)
}

fn token_response(config: &Config, tokens: IssuedTokens) -> Result<Response, ApiError> {
    let expires_in = (tokens.access.claims.exp - tokens.access.claims.iat).max(0) as u64;
    let mut response = json(
        StatusCode::OK,
        &TokenResponse {
            access_token: tokens.access.token,
            token_type: "bearer",
            expires_in,
        },
    )?;
    let headers = response.headers_mut();
    headers.insert(
        header::SET_COOKIE,
        refresh_cookie(config, &tokens.refresh, config.refresh_token_ttl.as_secs()),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

/// The refresh cookie (CONTRACT.md, "Authentication model"); `Max-Age=0`
/// with an empty value clears it.
fn refresh_cookie(config: &Config, token: &str, max_age: u64) -> HeaderValue {
    let secure = if config.cookie_secure { "; Secure" } else { "" };
    let cookie = format!(
        "{REFRESH_COOKIE}={token}; HttpOnly{secure}; SameSite=Strict; Path={COOKIE_PATH}; Max-Age={max_age}"
    );
    HeaderValue::from_str(&cookie).expect("a token is URL-safe base64")
}
