//! `/api/v1/auth/*`: register, login, refresh, logout, logout-all.

use http::{HeaderValue, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::users::UserResponse;
use crate::config::Config;
use crate::domain::FieldError;
use crate::http::extract::{self, BodyKind};
use crate::http::layers::auth::AuthenticatedUser;
use crate::http::problem::ProblemDocument;
use crate::http::problem::shared::{Invalid, NotJson, Unauthorized};
use crate::http::{ApiError, Request, Response, empty, json};
use crate::services::AppState;
use crate::services::auth;
use crate::services::registration::{self, Registration};
use crate::services::sessions::IssuedTokens;

pub const REFRESH_COOKIE: &str = "refresh_token";
/// The refresh cookie is only ever sent to the auth endpoints.
const COOKIE_PATH: &str = "/api/v1/auth";

// No `Debug`: it holds a password.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RegisterRequest {
    #[schema(example = "ada@example.com", max_length = 254, format = Email)]
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
    #[schema(example = "ada@example.com", format = Email)]
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
        NotJson,
        (status = 422, description = "Invalid email, password or name", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many registrations from this address; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks waiting, or a backing service is unavailable; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn register(state: AppState, request: Request) -> Result<Response, ApiError> {
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let body: RegisterRequest = extract::json(request).await?;
    let form = Registration {
        email: body.email,
        password: body.password,
        full_name: body.full_name,
    };
    let user = registration::register(&state, &origin, form).await?;
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
        Invalid,
        (status = 403, description = "The right password of an account with a second factor (`mfa-required`, with `mfa_token` and `expires_in`: finish at /api/v1/auth/login/mfa); a login form posted from another site (login CSRF); or, with REQUIRE_VERIFIED_EMAIL, the right password of an unverified address", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 429, description = "Too many failed attempts; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
        (status = 503, description = "Too many password checks waiting, or a backing service is unavailable; see Retry-After", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn login(state: AppState, request: Request) -> Result<Response, ApiError> {
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let kind = extract::body_kind(request.headers(), true)?;
    if kind == BodyKind::Form && is_cross_site(&request, &state.config.public_url) {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "cross-site-login",
            "Forbidden",
            "a login form may only be posted from this service's own pages",
        ));
    }
    let bytes = extract::read_body(request.into_body()).await?;
    let (email, password) = match kind {
        BodyKind::Json => {
            let body: LoginRequest = extract::parse_json(&bytes)?;
            (body.email, body.password)
        }
        BodyKind::Form => form_credentials(&bytes)?,
    };
    let tokens = auth::login(&state, &email, &password, &origin).await?;
    token_response(&state.config, tokens)
}

/// Login CSRF (CONTRACT.md, "Abuse limits and retention"): a form can be
/// posted by any site's page, and the cookie it sets would log the victim
/// into the attacker's account. Browsers say where a request comes from;
/// clients without those headers (curl, servers) are not browsers.
fn is_cross_site(request: &Request, public_url: &str) -> bool {
    let headers = request.headers();
    if let Some(site) = headers.get("sec-fetch-site")
        && matches!(site.as_bytes(), b"cross-site" | b"same-site")
    {
        return true;
    }
    let Some(origin) = headers.get(header::ORIGIN) else {
        return false;
    };
    let Ok(origin) = origin.to_str() else {
        return true;
    };
    if origin == origin_of(public_url) {
        return false;
    }
    // The API's own origin: its pages (Swagger UI) post from there.
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    let own = host.is_some_and(|host| {
        origin
            .strip_prefix("https://")
            .or_else(|| origin.strip_prefix("http://"))
            .is_some_and(|rest| rest.eq_ignore_ascii_case(host))
    });
    !own
}

/// `scheme://host[:port]` of an absolute URL.
fn origin_of(url: &str) -> &str {
    let after_scheme = url.find("://").map_or(0, |i| i + 3);
    match url[after_scheme..].find('/') {
        Some(end) => &url[..after_scheme + end],
        None => url,
    }
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
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let (tokens, _outcome) = auth::refresh(&state, presented, &origin).await?;
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
        Unauthorized,
        (status = 503, description = "The session store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn logout(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?;
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    let cookie = extract::cookie(request.headers(), REFRESH_COOKIE);
    auth::logout(&state, claims, cookie, &origin).await?;
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
        Unauthorized,
        (status = 503, description = "The session store is unavailable", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn logout_all(state: AppState, request: Request) -> Result<Response, ApiError> {
    let claims = AuthenticatedUser::of(&request)?;
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    auth::logout_all(&state, claims, &origin).await?;
    let mut response = empty(StatusCode::NO_CONTENT);
    response
        .headers_mut()
        .insert(header::SET_COOKIE, refresh_cookie(&state.config, "", 0));
    Ok(response)
}

pub(crate) fn token_response(config: &Config, tokens: IssuedTokens) -> Result<Response, ApiError> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_origin_of_a_url_is_its_scheme_host_and_port() {
        assert_eq!(
            origin_of("https://app.example.com"),
            "https://app.example.com"
        );
        assert_eq!(
            origin_of("https://app.example.com:8443/account/"),
            "https://app.example.com:8443"
        );
        assert_eq!(origin_of("http://localhost:8000"), "http://localhost:8000");
    }
}
