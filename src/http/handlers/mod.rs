//! Route tables and thin handlers: parse, call one service, map the result.

pub mod admin;
pub mod auth;
pub mod docs;
pub mod events;
pub mod keys;
pub mod mfa;
pub mod ops;
pub mod passkeys;
pub mod password_reset;
pub mod users;
pub mod verification;

use http::Method;

use tower::ServiceBuilder;

use super::layers::admin_auth::AdminAuthLayer;
use super::layers::auth::AuthLayer;
use super::layers::denylist::DenylistLayer;
use super::pages;
use super::router::{Router, handler};
use crate::services::AppState;

/// Every route of the API process.
pub fn api_router(state: AppState) -> Router {
    let s = || state.clone();
    // Auth runs first, then the denylist check, on these routes only.
    let protected = Router::new()
        .route(
            Method::POST,
            "/api/v1/auth/logout",
            handler(s(), auth::logout),
        )
        .route(
            Method::POST,
            "/api/v1/auth/logout-all",
            handler(s(), auth::logout_all),
        )
        .route(Method::GET, "/api/v1/users/me", handler(s(), users::me))
        .route(
            Method::PATCH,
            "/api/v1/users/me",
            handler(s(), users::update_me),
        )
        .route(
            Method::DELETE,
            "/api/v1/users/me",
            handler(s(), users::delete_me),
        )
        .route(
            Method::POST,
            "/api/v1/users/me/email",
            handler(s(), users::change_email),
        )
        .route(
            Method::POST,
            "/api/v1/users/me/mfa/totp",
            handler(s(), mfa::enrol),
        )
        .route(
            Method::DELETE,
            "/api/v1/users/me/mfa/totp",
            handler(s(), mfa::disable),
        )
        .route(
            Method::POST,
            "/api/v1/users/me/mfa/totp/confirm",
            handler(s(), mfa::confirm),
        )
        .route(
            Method::POST,
            "/api/v1/users/me/password",
            handler(s(), users::change_password),
        )
        .route(
            Method::GET,
            "/api/v1/users/me/sessions",
            handler(s(), users::list_sessions),
        )
        .route(
            Method::GET,
            "/api/v1/users/me/events",
            handler(s(), events::list),
        )
        .route(
            Method::DELETE,
            "/api/v1/users/me/sessions/{id}",
            handler(s(), users::delete_session),
        )
        .route(
            Method::POST,
            "/api/v1/users/me/passkeys/registration/start",
            handler(s(), passkeys::start_registration),
        )
        .route(
            Method::POST,
            "/api/v1/users/me/passkeys/registration/finish",
            handler(s(), passkeys::finish_registration),
        )
        .route(
            Method::GET,
            "/api/v1/users/me/passkeys",
            handler(s(), passkeys::list),
        )
        .route(
            Method::DELETE,
            "/api/v1/users/me/passkeys/{id}",
            handler(s(), passkeys::delete),
        )
        // In the order they run: the token's signature and claims first,
        // then its revocation in Redis.
        .layer(
            ServiceBuilder::new()
                .layer(AuthLayer::new(
                    state.jwt.clone(),
                    state.verified_tokens.clone(),
                ))
                .layer(DenylistLayer::new(state.denylist.clone())),
        );
    let router = Router::new()
        .route(
            Method::POST,
            "/api/v1/auth/register",
            handler(s(), auth::register),
        )
        .route(
            Method::POST,
            "/api/v1/auth/login",
            handler(s(), auth::login),
        )
        .route(
            Method::POST,
            "/api/v1/auth/login/mfa",
            handler(s(), mfa::login),
        )
        .route(
            Method::POST,
            "/api/v1/auth/refresh",
            handler(s(), auth::refresh),
        )
        .route(
            Method::POST,
            "/api/v1/auth/passkey/start",
            handler(s(), passkeys::start_sign_in),
        )
        .route(
            Method::POST,
            "/api/v1/auth/passkey/finish",
            handler(s(), passkeys::finish_sign_in),
        )
        .route(
            Method::POST,
            "/api/v1/auth/password-reset/request",
            handler(s(), password_reset::request),
        )
        .route(
            Method::POST,
            "/api/v1/auth/password-reset/confirm",
            handler(s(), password_reset::confirm),
        )
        .route(
            Method::POST,
            "/api/v1/auth/verify-email/request",
            handler(s(), verification::request),
        )
        .route(
            Method::POST,
            "/api/v1/auth/verify-email/confirm",
            handler(s(), verification::confirm),
        )
        .merge(protected)
        .route(Method::GET, "/healthz", handler((), ops::healthz))
        .route(Method::GET, "/readyz", handler(s(), ops::readyz))
        .route(
            Method::GET,
            "/.well-known/jwks.json",
            handler(s(), keys::jwks),
        )
        .route(
            Method::GET,
            "/metrics",
            handler(state.db.clone(), ops::metrics),
        )
        .route(
            Method::GET,
            "/openapi.json",
            handler(docs::Document::public(), docs::openapi_json),
        )
        .route(
            Method::GET,
            "/docs",
            handler(docs::Document::public(), docs::swagger_ui),
        )
        .route(
            Method::GET,
            "/docs/{*file}",
            handler(docs::Document::public(), docs::swagger_ui),
        );
    if !state.config.pages_enabled {
        return router;
    }
    router
        .route(
            Method::GET,
            "/reset-password",
            handler(s(), pages::reset_password),
        )
        .route(
            Method::GET,
            "/verify-email",
            handler(s(), pages::verify_email),
        )
        .route(
            Method::POST,
            "/verify-email",
            handler(s(), pages::verify_email_form),
        )
        .route(Method::GET, "/pages/pages.js", handler((), pages::script))
        .route(Method::GET, "/pages/pages.css", handler((), pages::style))
}

/// Every route of the admin listener (CONTRACT.md, "Admin API"): the
/// `/admin/v1` operations behind an admin key, and their own OpenAPI
/// document and Swagger UI.
pub fn admin_router(state: AppState) -> Router {
    let s = || state.clone();
    let operations = Router::new()
        .route(Method::GET, "/admin/v1/users", handler(s(), admin::search))
        .route(Method::POST, "/admin/v1/users", handler(s(), admin::invite))
        .route(
            Method::GET,
            "/admin/v1/users/{id}",
            handler(s(), admin::get),
        )
        .route(
            Method::DELETE,
            "/admin/v1/users/{id}",
            handler(s(), admin::delete),
        )
        .route(
            Method::GET,
            "/admin/v1/users/{id}/events",
            handler(s(), admin::events),
        )
        .route(
            Method::POST,
            "/admin/v1/users/{id}/disable",
            handler(s(), admin::disable),
        )
        .route(
            Method::POST,
            "/admin/v1/users/{id}/enable",
            handler(s(), admin::enable),
        )
        .route(
            Method::POST,
            "/admin/v1/users/{id}/logout",
            handler(s(), admin::log_out),
        )
        .route(
            Method::DELETE,
            "/admin/v1/users/{id}/mfa",
            handler(s(), admin::remove_factors),
        )
        .route(
            Method::POST,
            "/admin/v1/users/{id}/password-reset",
            handler(s(), admin::send_password_reset),
        )
        .route(
            Method::DELETE,
            "/admin/v1/users/{id}/limits",
            handler(s(), admin::clear_limits),
        )
        .layer(AdminAuthLayer::new(state.db.clone()));
    let document = docs::Document::admin();
    operations
        .route(Method::GET, "/healthz", handler((), ops::healthz))
        .route(
            Method::GET,
            "/openapi.json",
            handler(document.clone(), docs::openapi_json),
        )
        .route(
            Method::GET,
            "/docs",
            handler(document.clone(), docs::swagger_ui),
        )
        .route(
            Method::GET,
            "/docs/{*file}",
            handler(document, docs::swagger_ui),
        )
}

/// The worker's small operations server.
pub fn worker_router(db: deadpool_postgres::Pool) -> Router {
    Router::new()
        .route(Method::GET, "/healthz", handler((), ops::healthz))
        .route(Method::GET, "/metrics", handler(db, ops::metrics))
}
