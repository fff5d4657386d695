//! RFC 9457 problem details: the one place where errors become responses.
//!
//! [`ApiError::Problem`] is what a client may see; [`ApiError::Internal`]
//! holds everything else, is logged once with its cause chain and the
//! correlation id, and is rendered as an opaque 500 (STYLE.md, habit 4).

use std::borrow::Cow;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use serde_json::{Map, Value};

use super::Response;
use super::layers::correlation_id::CorrelationId;
use crate::services::ServiceError;

/// Every problem `type` is this base plus a slug.
pub const PROBLEM_TYPE_BASE: &str = "https://portcullis.dev/problems/";

pub use crate::domain::FieldError;

/// A client-visible error.
#[derive(Debug)]
pub struct Problem {
    pub status: StatusCode,
    /// The slug after [`PROBLEM_TYPE_BASE`].
    pub kind: &'static str,
    pub title: &'static str,
    pub detail: Cow<'static, str>,
    pub errors: Vec<FieldError>,
    /// Extension members, e.g. the dependency checks of `/readyz`.
    pub extensions: Map<String, Value>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{} {}", .0.status, .0.detail)]
    Problem(Box<Problem>),
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        kind: &'static str,
        title: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        let mut headers = Vec::new();
        if status == StatusCode::UNAUTHORIZED {
            // CONTRACT.md: every 401 carries this challenge.
            headers.push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        }
        ApiError::Problem(Box::new(Problem {
            status,
            kind,
            title,
            detail: detail.into(),
            errors: Vec::new(),
            extensions: Map::new(),
            headers,
        }))
    }

    pub fn not_found(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not-found", "Not Found", detail)
    }

    pub fn method_not_allowed(allow: HeaderValue) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "method-not-allowed",
            "Method Not Allowed",
            "this resource does not support the request method",
        )
        .with_header(header::ALLOW, allow)
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload-too-large",
            "Payload Too Large",
            format!("the request body must not exceed {limit} bytes"),
        )
    }

    pub fn bad_request(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "bad-request",
            "Bad Request",
            detail,
        )
    }

    pub fn unsupported_media_type(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported-media-type",
            "Unsupported Media Type",
            detail,
        )
    }

    pub fn validation(errors: Vec<FieldError>) -> Self {
        let mut error = Self::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "validation-error",
            "Unprocessable Content",
            "the request body does not fit the schema",
        );
        if let ApiError::Problem(problem) = &mut error {
            problem.errors = errors;
        }
        error
    }

    pub fn unauthorized(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Unauthorized",
            detail,
        )
    }

    pub fn service_unavailable(kind: &'static str, detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            kind,
            "Service Unavailable",
            detail,
        )
    }

    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too-many-requests",
            "Too Many Requests",
            "too many attempts; try again later",
        )
        .with_header(
            header::RETRY_AFTER,
            HeaderValue::from(retry_after_seconds.max(1)),
        )
    }

    pub fn with_header(mut self, name: HeaderName, value: HeaderValue) -> Self {
        if let ApiError::Problem(problem) = &mut self {
            problem.headers.push((name, value));
        }
        self
    }

    pub fn with_extension(mut self, key: &str, value: Value) -> Self {
        if let ApiError::Problem(problem) = &mut self {
            problem.extensions.insert(key.to_owned(), value);
        }
        self
    }

    /// The HTTP status this error renders with.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Problem(problem) => problem.status,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Renders the problem+json response; an internal error is logged here,
    /// once, inside the request's span.
    pub fn into_response(self, correlation_id: &CorrelationId) -> Response {
        let problem = match self {
            ApiError::Problem(problem) => *problem,
            ApiError::Internal(error) => {
                tracing::error!(error = format!("{error:#}"), "request failed");
                Problem {
                    status: StatusCode::INTERNAL_SERVER_ERROR,
                    kind: "internal-error",
                    title: "Internal Server Error",
                    detail: Cow::Borrowed("the server could not complete the request"),
                    errors: Vec::new(),
                    extensions: Map::new(),
                    headers: Vec::new(),
                }
            }
        };
        render(problem, correlation_id)
    }
}

impl From<ServiceError> for ApiError {
    fn from(error: ServiceError) -> Self {
        match error {
            ServiceError::Invalid(errors) => ApiError::validation(errors),
            ServiceError::EmailTaken => ApiError::new(
                StatusCode::CONFLICT,
                "email-taken",
                "Conflict",
                "an account with this email already exists",
            ),
            ServiceError::InvalidCredentials => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid-credentials",
                "Unauthorized",
                "wrong email or password",
            ),
            ServiceError::RateLimited {
                retry_after_seconds,
            } => ApiError::too_many_requests(retry_after_seconds),
            ServiceError::InvalidRefreshToken | ServiceError::RefreshTokenReused => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid-refresh-token",
                "Unauthorized",
                "the refresh token is missing, invalid, expired or revoked",
            ),
            ServiceError::InvalidResetToken => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-reset-token",
                "Bad Request",
                "the reset token is unknown, used, superseded or expired",
            ),
            ServiceError::InvalidVerificationToken => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-verification-token",
                "Bad Request",
                "the verification token is unknown, used, superseded or expired",
            ),
            ServiceError::EmailNotVerified => ApiError::new(
                StatusCode::FORBIDDEN,
                "email-not-verified",
                "Forbidden",
                "verify your email address first; the link is in your inbox, or ask for a new one",
            ),
            ServiceError::AccountDisabled => ApiError::new(
                StatusCode::FORBIDDEN,
                "account-disabled",
                "Forbidden",
                "the account is disabled; ask the service's administrators",
            ),
            ServiceError::InvalidPasskey => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid-passkey",
                "Unauthorized",
                "the passkey was not accepted, or the challenge is unknown, used or expired",
            ),
            ServiceError::InvalidPasskeyRegistration => ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid-passkey-registration",
                "Bad Request",
                "the passkey did not verify, or the challenge is unknown, used or expired",
            ),
            ServiceError::PasskeyTaken => ApiError::new(
                StatusCode::CONFLICT,
                "passkey-taken",
                "Conflict",
                "this passkey is already registered",
            ),
            ServiceError::LastPasskey => ApiError::new(
                StatusCode::CONFLICT,
                "last-passkey",
                "Conflict",
                "the account has no password: its last passkey is its only way in",
            ),
            ServiceError::AccountDisabledConflict => ApiError::new(
                StatusCode::CONFLICT,
                "account-disabled",
                "Conflict",
                "the account is disabled; enable it first",
            ),
            ServiceError::MfaRequired {
                mfa_token,
                expires_in,
            } => ApiError::new(
                StatusCode::FORBIDDEN,
                "mfa-required",
                "Forbidden",
                "the account has a second factor: post the mfa_token and a code to /api/v1/auth/login/mfa",
            )
            .with_extension("mfa_token", Value::String(mfa_token))
            .with_extension("expires_in", Value::from(expires_in))
            // It carries a token.
            .with_header(header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            ServiceError::InvalidMfaLogin => ApiError::new(
                StatusCode::UNAUTHORIZED,
                "invalid-mfa",
                "Unauthorized",
                "the code is wrong or already used, or the mfa_token is unknown, expired or spent",
            ),
            ServiceError::WrongMfaCode => ApiError::new(
                StatusCode::BAD_REQUEST,
                "wrong-mfa-code",
                "Bad Request",
                "the code is wrong or already used",
            ),
            ServiceError::MfaAlreadyEnabled => ApiError::new(
                StatusCode::CONFLICT,
                "mfa-already-enabled",
                "Conflict",
                "a second factor is already enabled; disable it first",
            ),
            ServiceError::MfaNotPending => ApiError::new(
                StatusCode::CONFLICT,
                "mfa-not-pending",
                "Conflict",
                "no second factor is waiting for confirmation",
            ),
            ServiceError::MfaUnavailable => ApiError::service_unavailable(
                "mfa-unavailable",
                "second factors are not configured on this server (DATA_ENCRYPTION_KEY)",
            ),
            ServiceError::WrongCurrentPassword => ApiError::new(
                StatusCode::BAD_REQUEST,
                "wrong-current-password",
                "Bad Request",
                "the current password is wrong",
            ),
            ServiceError::Unauthenticated => {
                ApiError::unauthorized("a valid access token is required")
            }
            ServiceError::NotFound => ApiError::not_found("no such resource"),
            ServiceError::Overloaded => ApiError::service_unavailable(
                "overloaded",
                "too many password checks are waiting; try again shortly",
            )
            .with_header(header::RETRY_AFTER, HeaderValue::from_static("1")),

            ServiceError::Unavailable { dependency, source } => {
                tracing::warn!(
                    dependency,
                    error = format!("{source:#}"),
                    "a dependency is unavailable"
                );
                ApiError::service_unavailable(
                    "dependency-unavailable",
                    "a backing service is unavailable; try again shortly",
                )
                .with_header(header::RETRY_AFTER, HeaderValue::from_static("1"))
            }
            ServiceError::Internal(error) => ApiError::Internal(error),
        }
    }
}

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: String,
    title: &'a str,
    status: u16,
    detail: &'a str,
    correlation_id: &'a str,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    errors: &'a [FieldError],
    #[serde(flatten)]
    extensions: &'a Map<String, Value>,
}

fn render(problem: Problem, correlation_id: &CorrelationId) -> Response {
    let body = Body {
        kind: format!("{PROBLEM_TYPE_BASE}{}", problem.kind),
        title: problem.title,
        status: problem.status.as_u16(),
        detail: &problem.detail,
        correlation_id: correlation_id.as_str(),
        errors: &problem.errors,
        extensions: &problem.extensions,
    };
    // Serialising strings and numbers cannot fail.
    let bytes = serde_json::to_vec(&body).unwrap_or_default();
    let mut response = http::Response::new(Full::new(Bytes::from(bytes)));
    *response.status_mut() = problem.status;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    for (name, value) in problem.headers {
        headers.insert(name, value);
    }
    response
}

/// The failures many operations share, described once for the OpenAPI
/// document: `responses((status = 200, ...), Unauthorized, NotJson)`.
pub mod shared {
    use super::ProblemDocument;

    /// 401 on every protected operation.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 401,
        description = "No valid access token",
        content_type = "application/problem+json"
    )]
    #[allow(dead_code)]
    pub struct Unauthorized(ProblemDocument);

    /// 415 on every operation that takes a JSON body.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 415,
        description = "The body is not JSON",
        content_type = "application/problem+json"
    )]
    #[allow(dead_code)]
    pub struct NotJson(ProblemDocument);

    /// 422 on every operation whose body has a schema.
    #[derive(utoipa::IntoResponses)]
    #[response(
        status = 422,
        description = "A field is missing or of the wrong type",
        content_type = "application/problem+json"
    )]
    #[allow(dead_code)]
    pub struct Invalid(ProblemDocument);
}

/// The problem document, for the OpenAPI description.
#[derive(Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct ProblemDocument {
    /// A URI identifying the problem type.
    #[serde(rename = "type")]
    #[schema(example = "https://portcullis.dev/problems/not-found")]
    pub kind: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// The request's `X-Correlation-ID`.
    pub correlation_id: String,
    /// Present on 422 only.
    #[schema(nullable = false)]
    pub errors: Option<Vec<FieldError>>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    async fn body_of(response: Response) -> Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn a_problem_renders_as_rfc_9457_with_the_correlation_id() {
        let cid = CorrelationId::from_static("abc-123");
        let response = ApiError::not_found("no such thing").into_response(&cid);
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "application/problem+json"
        );
        let body = body_of(response).await;
        assert_eq!(body["type"], "https://portcullis.dev/problems/not-found");
        assert_eq!(body["status"], 404);
        assert_eq!(body["correlation_id"], "abc-123");
        assert!(body.get("errors").is_none());
    }

    #[tokio::test]
    async fn an_internal_error_hides_its_cause() {
        let cid = CorrelationId::from_static("abc");
        let error = anyhow::anyhow!("password authentication failed for user \"postgres\"");
        let response = ApiError::Internal(error).into_response(&cid);
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let text = body_of(response).await.to_string();
        assert!(!text.contains("postgres"), "{text}");
    }

    #[tokio::test]
    async fn unauthorized_carries_the_bearer_challenge_and_429_retry_after() {
        let cid = CorrelationId::from_static("abc");
        let response = ApiError::unauthorized("no token").into_response(&cid);
        assert_eq!(response.headers()[header::WWW_AUTHENTICATE], "Bearer");
        let response = ApiError::too_many_requests(42).into_response(&cid);
        assert_eq!(response.headers()[header::RETRY_AFTER], "42");
    }

    #[tokio::test]
    async fn validation_errors_list_fields() {
        let cid = CorrelationId::from_static("abc");
        let response = ApiError::validation(vec![FieldError::new("email", "is not an email")])
            .into_response(&cid);
        let body = body_of(response).await;
        assert_eq!(body["errors"][0]["field"], "email");
        assert_eq!(body["status"], 422);
    }
}
