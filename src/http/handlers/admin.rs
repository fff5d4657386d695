//! `/admin/v1/*`, on the admin listener only (CONTRACT.md, "Admin API"):
//! find users, invite, disable and enable, log out, remove factors, send a
//! reset link, clear the failure count, delete. Every route is behind
//! [`crate::http::layers::admin_auth`]; every change names the key.

use http::StatusCode;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use utoipa::ToSchema;
use uuid::Uuid;

use super::events::EventsPage;
use super::users::SessionResponse;
use crate::domain::{FieldError, FullName};
use crate::http::problem::ProblemDocument;
use crate::http::problem::shared::{Invalid, NotJson};
use crate::http::{ApiError, Request, Response, empty, extract, json};
use crate::repositories::directory::{DirectoryEntry, Filter};
use crate::services::events::SecurityEvent;
use crate::services::{AppState, admin};

/// A user as an admin sees it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUser {
    pub id: Uuid,
    #[schema(example = "ada@example.com", format = Email)]
    pub email: String,
    #[schema(example = "Ada Lovelace")]
    pub full_name: Option<String>,
    pub email_verified: bool,
    /// Whether a second factor (TOTP) is enabled.
    pub mfa_enabled: bool,
    #[serde(with = "time::serde::rfc3339")]
    #[schema(value_type = String, format = DateTime)]
    pub created_at: OffsetDateTime,
    /// A disabled account cannot sign in, refresh, or get a link mailed.
    pub disabled: bool,
    /// Why an admin disabled it; null when enabled.
    pub disabled_reason: Option<String>,
    /// When its last session started; null if it never signed in.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_login_at: Option<OffsetDateTime>,
    /// Sessions neither ended nor expired.
    pub active_sessions: i64,
}

impl From<DirectoryEntry> for AdminUser {
    fn from(user: DirectoryEntry) -> Self {
        Self {
            id: user.id,
            email: user.email,
            full_name: user.full_name,
            email_verified: user.email_verified,
            mfa_enabled: user.mfa_enabled,
            created_at: user.created_at,
            disabled: user.disabled,
            disabled_reason: user.disabled_reason,
            last_login_at: user.last_login_at,
            active_sessions: user.active_sessions,
        }
    }
}

/// The user's factors.
#[derive(Debug, Serialize, ToSchema)]
pub struct Factors {
    /// TOTP is enabled.
    pub totp: bool,
    /// Passkeys registered.
    pub passkeys: i64,
    /// Recovery codes not used yet (0 without TOTP).
    pub recovery_codes_left: i64,
}

/// A user with its live sessions and factors.
#[derive(Debug, Serialize, ToSchema)]
pub struct AdminUserDetail {
    #[serde(flatten)]
    pub user: AdminUser,
    /// Live sessions, most recently used first; `current` is always false.
    pub sessions: Vec<SessionResponse>,
    pub factors: Factors,
}

/// One page of users.
#[derive(Debug, Serialize, ToSchema)]
pub struct UsersPage {
    /// Newest first.
    pub users: Vec<AdminUser>,
    /// Pass as `cursor` for the next (older) page; null on the last page.
    pub next_cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InviteRequest {
    #[schema(example = "grace@example.com", max_length = 254, format = Email)]
    pub email: String,
    #[schema(example = "Grace Hopper", max_length = 200)]
    pub full_name: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DisableRequest {
    /// Why: kept with the account and in the `account.disabled` event.
    #[schema(
        example = "credential stuffing from this account",
        min_length = 1,
        max_length = 500
    )]
    pub reason: String,
}

/// Find users: by address prefix and state, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/users",
    tag = "users",
    security(("admin_key" = [])),
    params(
        ("email" = Option<String>, Query, description = "A prefix of the address (addresses are stored lower-cased)"),
        ("verified" = Option<bool>, Query, description = "Only verified (true) or unverified (false) addresses"),
        ("mfa" = Option<bool>, Query, description = "Only accounts with (true) or without (false) a second factor"),
        ("disabled" = Option<bool>, Query, description = "Only disabled (true) or enabled (false) accounts"),
        ("limit" = Option<u32>, Query, description = "Users per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of users, newest first", body = UsersPage),
        AdminUnauthorized,
        (status = 422, description = "A filter is not true or false, `limit` is not an integer from 1 to 100, or `cursor` is not one this API gave", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn search(state: AppState, request: Request) -> Result<Response, ApiError> {
    let query = extract::Query::of(&request)?;
    let email_prefix = query.get("email").map(|p| p.trim().to_lowercase());
    if let Some(prefix) = &email_prefix
        && (prefix.chars().count() > 254 || crate::domain::has_control_characters(prefix))
    {
        return Err(ApiError::validation(vec![FieldError::new(
            "email",
            "must be at most 254 characters, without control characters",
        )]));
    }
    let filter = Filter {
        email_prefix,
        verified: query.boolean("verified")?,
        mfa: query.boolean("mfa")?,
        disabled: query.boolean("disabled")?,
    };
    let page = admin::search(&state, &filter, query.limit()?, query.get("cursor")).await?;
    json(
        StatusCode::OK,
        &UsersPage {
            users: page.users.into_iter().map(AdminUser::from).collect(),
            next_cursor: page.next_cursor,
        },
    )
}

/// One user, with sessions and factors.
#[utoipa::path(
    get,
    path = "/admin/v1/users/{id}",
    tag = "users",
    security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    responses(
        (status = 200, description = "The user", body = AdminUserDetail),
        AdminUnauthorized,
        NoSuchUser,
    )
)]
pub async fn get(state: AppState, request: Request) -> Result<Response, ApiError> {
    let id = extract::path_id(&request, "id")?;
    let detail = admin::find(&state, id).await?;
    json(
        StatusCode::OK,
        &AdminUserDetail {
            user: AdminUser::from(detail.user),
            sessions: detail
                .sessions
                .into_iter()
                .map(|session| SessionResponse::of(session, false))
                .collect(),
            factors: Factors {
                totp: detail.totp,
                passkeys: detail.passkeys,
                recovery_codes_left: detail.recovery_codes_left,
            },
        },
    )
}

/// The user's security events, newest first.
#[utoipa::path(
    get,
    path = "/admin/v1/users/{id}/events",
    tag = "users",
    security(("admin_key" = [])),
    params(
        ("id" = Uuid, Path, description = "The user's id"),
        ("limit" = Option<u32>, Query, description = "Events per page, 1 to 100 (default 20)", minimum = 1, maximum = 100),
        ("cursor" = Option<String>, Query, description = "The `next_cursor` of the previous page"),
    ),
    responses(
        (status = 200, description = "A page of the user's events, newest first", body = EventsPage),
        AdminUnauthorized,
        NoSuchUser,
        (status = 422, description = "`limit` is not an integer from 1 to 100, or `cursor` is not one this API gave", body = ProblemDocument, content_type = "application/problem+json"),
    )
)]
pub async fn events(state: AppState, request: Request) -> Result<Response, ApiError> {
    let id = extract::path_id(&request, "id")?;
    let query = extract::Query::of(&request)?;
    let page = admin::events(&state, id, query.limit()?, query.get("cursor")).await?;
    json(
        StatusCode::OK,
        &EventsPage {
            events: page.events.into_iter().map(SecurityEvent::from).collect(),
            next_cursor: page.next_cursor,
        },
    )
}

/// Invite a user: an account with no password, and a set-password link
/// mailed to the address (valid `INVITE_TTL_SECONDS`). Using the link sets
/// the password and verifies the address.
#[utoipa::path(
    post,
    path = "/admin/v1/users",
    tag = "users",
    security(("admin_key" = [])),
    request_body = InviteRequest,
    responses(
        (status = 201, description = "Invited", body = AdminUser),
        (status = 400, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        AdminUnauthorized,
        ReadOnlyKey,
        (status = 409, description = "The address is taken", body = ProblemDocument, content_type = "application/problem+json"),
        NotJson,
        Invalid,
    )
)]
pub async fn invite(state: AppState, request: Request) -> Result<Response, ApiError> {
    let origin = extract::admin_origin(&request, &state.config.trusted_proxies)?;
    let body: InviteRequest = extract::json(request).await?;
    let full_name = body
        .full_name
        .as_deref()
        .map(FullName::parse)
        .transpose()
        .map_err(|message| ApiError::validation(vec![FieldError::new("full_name", message)]))?;
    let user = admin::invite(&state, &body.email, full_name, &origin).await?;
    json(StatusCode::CREATED, &AdminUser::from(user))
}

/// Disable the account: every session ends at once; sign-in, refresh and
/// emailed links are refused until it is enabled.
#[utoipa::path(
    post,
    path = "/admin/v1/users/{id}/disable",
    tag = "actions",
    security(("admin_key" = [])),
    params(("id" = Uuid, Path, description = "The user's id")),
    request_body = DisableRequest,
    responses(
        (status = 204, description = "Disabled (already disabled: sessions ended again, first reason kept)"),
        (status = 400, description = "The body is not JSON", body = ProblemDocument, content_type = "application/problem+json"),
        AdminUnauthorized,
        ReadOnlyKey,
        NoSuchUser,
        NotJson,
        Invalid,
    )
)]
pub async fn disable(state: AppState, request: Request) -> Result<Response, ApiError> {
    let id = extract::path_id(&request, "id")?;
    let origin = extract::admin_origin(&request, &state.config.trusted_proxies)?;
    let body: DisableRequest = extract::json(request).await?;
    let reason = body.reason.trim();
    if reason.is_empty() || reason.chars().count() > 500 {
        return Err(ApiError::validation(vec![FieldError::new(
            "reason",
            "must be 1 to 500 characters",
        )]));
    }
    admin::disable(&state, id, reason, &origin).await?;
    Ok(empty(StatusCode::NO_CONTENT))
}

macro_rules! action {
    ($name:ident, $method:ident, $path:literal, $status:ident, $summary:literal, $service:path, $($extra:tt)*) => {
        #[doc = $summary]
        #[utoipa::path(
            $method,
            path = $path,
            tag = "actions",
            security(("admin_key" = [])),
            params(("id" = Uuid, Path, description = "The user's id")),
            responses(
                $($extra)*
                AdminUnauthorized,
                ReadOnlyKey,
                NoSuchUser,
            )
        )]
        pub async fn $name(state: AppState, request: Request) -> Result<Response, ApiError> {
            let id = extract::path_id(&request, "id")?;
            let origin = extract::admin_origin(&request, &state.config.trusted_proxies)?;
            $service(&state, id, &origin).await?;
            Ok(empty(StatusCode::$status))
        }
    };
}

action!(
    enable,
    post,
    "/admin/v1/users/{id}/enable",
    NO_CONTENT,
    "Enable a disabled account.",
    admin::enable,
    (status = 204, description = "Enabled"),
);
action!(
    log_out,
    post,
    "/admin/v1/users/{id}/logout",
    NO_CONTENT,
    "End every session of the user, as their own logout-all would.",
    admin::log_out,
    (status = 204, description = "Every session ended"),
);
action!(
    remove_factors,
    delete,
    "/admin/v1/users/{id}/mfa",
    NO_CONTENT,
    "Remove the user's TOTP, recovery codes and passkeys (a lost authenticator); the user gets an `mfa_disabled` notice.",
    admin::remove_factors,
    (status = 204, description = "Factors removed"),
);
action!(
    send_password_reset,
    post,
    "/admin/v1/users/{id}/password-reset",
    ACCEPTED,
    "Mail the user a password-reset link.",
    admin::send_password_reset,
    (status = 202, description = "The link is on its way"),
    (
        status = 409,
        description = "The account is disabled (`account-disabled`)",
        body = ProblemDocument,
        content_type = "application/problem+json"
    ),
);
action!(
    clear_limits,
    delete,
    "/admin/v1/users/{id}/limits",
    NO_CONTENT,
    "Clear the account's login failure count, lifting a lockout.",
    admin::clear_limits,
    (status = 204, description = "Cleared"),
);
action!(
    delete,
    delete,
    "/admin/v1/users/{id}",
    NO_CONTENT,
    "Delete the account, as its owner's own deletion would.",
    admin::delete,
    (status = 204, description = "Deleted"),
);

/// 401 on every admin operation.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 401,
    description = "No admin key, or one unknown or revoked",
    content_type = "application/problem+json"
)]
#[allow(dead_code)]
pub struct AdminUnauthorized(ProblemDocument);

/// 403 on every admin write.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 403,
    description = "The admin key is read-only (`read-only-key`)",
    content_type = "application/problem+json"
)]
#[allow(dead_code)]
pub struct ReadOnlyKey(ProblemDocument);

/// 404 on every operation on one user.
#[derive(utoipa::IntoResponses)]
#[response(
    status = 404,
    description = "No user has this id",
    content_type = "application/problem+json"
)]
#[allow(dead_code)]
pub struct NoSuchUser(ProblemDocument);
