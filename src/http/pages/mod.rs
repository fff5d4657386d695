//! The pages behind the links in emails (CONTRACT.md, "Pages for the links
//! in emails"): `/reset-password` and `/verify-email`, small HTML pages that
//! take the token from the address, drop it from the address bar, and call
//! the JSON endpoints. Everything they load is embedded in the binary and
//! served from this origin, under a policy that forbids inline script and
//! style, framing, and sending the token anywhere as a referrer.

use bytes::Bytes;
use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;

use crate::http::extract::{self, BodyKind};
use crate::http::{ApiError, Request, Response};
use crate::repositories::email_tokens::Purpose;
use crate::services::AppState;
use crate::services::{ServiceError, password_reset, verification};

const RESET_HTML: &str = include_str!("assets/reset.html");
const VERIFY_HTML: &str = include_str!("assets/verify.html");
const RESULT_HTML: &str = include_str!("assets/result.html");
const SCRIPT: &str = include_str!("assets/pages.js");
const STYLE: &str = include_str!("assets/pages.css");

/// No script or style but this origin's files, no framing, no plugins, and
/// forms post only here.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
    img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
    form-action 'self'; frame-ancestors 'none'";

/// `GET /reset-password?token=...`: the new-password form, or straight
/// away the "expired or used" state for a link that no longer works.
pub async fn reset_password(state: AppState, request: Request) -> Result<Response, ApiError> {
    let live = password_reset::is_live(&state, &token_of(&request)).await?;
    let body = RESET_HTML
        .replace(
            "{{min_chars}}",
            &state.config.password_min_length.to_string(),
        )
        .replace("{{link}}", if live { "live" } else { "spent" });
    Ok(page(StatusCode::OK, body))
}

/// `GET /verify-email?token=...`. A link that verifies the account's own
/// address confirms on load with script (the button is for those without);
/// a link that moves the account to a new address waits for a click, so a
/// mail scanner or a link preview that runs script never moves an account
/// (CONTRACT.md, "Email verification and the account's lifecycle"); a link
/// that no longer works says so at once.
pub async fn verify_email(state: AppState, request: Request) -> Result<Response, ApiError> {
    let token = token_of(&request);
    let (link, heading, prompt, button) = match verification::live_purpose(&state, &token).await? {
        Some(Purpose::VerifyEmail) => (
            "verify",
            "Verify your email address",
            "Confirm that this address is yours.",
            "Verify my email address",
        ),
        Some(Purpose::ChangeEmail) => (
            "change",
            "Confirm your new email address",
            "Your account asked to use this address from now on. If that was you, confirm it; if not, close this page and nothing changes.",
            "Use this address for my account",
        ),
        None => (
            "spent",
            "Verify your email address",
            "",
            "Verify my email address",
        ),
    };
    let body = VERIFY_HTML
        .replace("{{token}}", &crate::mail::html_escape(&token))
        .replace("{{link}}", link)
        .replace("{{heading}}", heading)
        .replace("{{prompt}}", prompt)
        .replace("{{button}}", button);
    Ok(page(StatusCode::OK, body))
}

/// `POST /verify-email` (a form, for browsers without script).
pub async fn verify_email_form(state: AppState, request: Request) -> Result<Response, ApiError> {
    let origin = extract::origin(&request, &state.config.trusted_proxies);
    if extract::body_kind(request.headers(), true)? != BodyKind::Form {
        return Err(ApiError::unsupported_media_type(
            "send application/x-www-form-urlencoded",
        ));
    }
    let fields = extract::parse_form(&extract::read_body(request.into_body()).await?)?;
    let token = fields
        .into_iter()
        .find(|(key, _)| key == "token")
        .map(|(_, value)| value)
        .unwrap_or_default();
    let (status, title, message) = match verification::confirm(&state, &token, &origin).await {
        Ok(()) => (
            StatusCode::OK,
            "Your email address is verified",
            "You can close this page.",
        ),
        Err(ServiceError::EmailTaken) => (
            StatusCode::CONFLICT,
            "That address is taken",
            "Another account uses this address now, so yours keeps its current one.",
        ),
        Err(ServiceError::InvalidVerificationToken) => (
            StatusCode::BAD_REQUEST,
            "This link has expired or was already used",
            "Sign in and ask for a new verification link.",
        ),
        Err(other) => return Err(other.into()),
    };
    let body = RESULT_HTML
        .replace("{{title}}", title)
        .replace("{{message}}", message);
    Ok(page(status, body))
}

/// `GET /pages/pages.js`.
pub async fn script(_: (), _: Request) -> Result<Response, ApiError> {
    Ok(asset(SCRIPT, "text/javascript; charset=utf-8"))
}

/// `GET /pages/pages.css`.
pub async fn style(_: (), _: Request) -> Result<Response, ApiError> {
    Ok(asset(STYLE, "text/css; charset=utf-8"))
}

/// The `token` query parameter, or nothing.
fn token_of(request: &Request) -> String {
    request
        .uri()
        .query()
        .and_then(|query| {
            serde_urlencoded::from_str::<Vec<(String, String)>>(query)
                .ok()?
                .into_iter()
                .find(|(key, _)| key == "token")
                .map(|(_, value)| value)
        })
        .unwrap_or_default()
}

fn page(status: StatusCode, body: String) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    // The token is in this page's address: nothing it loads may learn it.
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    response
}

fn asset(text: &'static str, content_type: &'static str) -> Response {
    let mut response = http::Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}
