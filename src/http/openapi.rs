//! The OpenAPI 3.1 document. `openapi/openapi.json` must equal
//! [`document`] byte for byte (CONTRACT.md, "Processes"); `just openapi`
//! rewrites it and a test fails when they differ.

use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes,
    SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use super::handlers::{
    admin, auth, events, keys, mfa, ops, passkeys, password_reset, users, verification,
};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis",
        description = "Authentication API: JWT access tokens, rotating refresh-token cookies, logout through a Redis denylist, and password reset by email.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        auth::register,
        auth::login,
        mfa::login,
        passkeys::start_sign_in,
        passkeys::finish_sign_in,
        auth::refresh,
        auth::logout,
        auth::logout_all,
        password_reset::request,
        password_reset::confirm,
        verification::request,
        verification::confirm,
        users::me,
        users::update_me,
        users::delete_me,
        users::change_email,
        mfa::enrol,
        mfa::confirm,
        mfa::disable,
        users::change_password,
        users::list_sessions,
        events::list,
        users::delete_session,
        passkeys::start_registration,
        passkeys::finish_registration,
        passkeys::list,
        passkeys::delete,
        ops::healthz,
        ops::readyz,
        keys::jwks,
    ),
    components(schemas(super::problem::ProblemDocument, super::problem::FieldError)),
    modifiers(&SecuritySchemes, &Version),
    tags(
        (name = "auth", description = "Registration, login, token refresh and logout"),
        (name = "users", description = "The signed-in user's account and sessions"),
        (name = "passkeys", description = "The signed-in user's passkeys (WebAuthn)"),
        (name = "operations", description = "Liveness, readiness and the public signing keys"),
    )
)]
pub struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        components.add_security_scheme(
            "refresh_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("refresh_token"))),
        );
        // Makes Swagger UI's Authorize button log in through the form body
        // of the login endpoint (CONTRACT.md, "Endpoints").
        components.add_security_scheme(
            "oauth2",
            SecurityScheme::OAuth2(OAuth2::new([Flow::Password(Password::new(
                "/api/v1/auth/login",
                Scopes::new(),
            ))])),
        );
    }
}

struct Version;

impl Modify for Version {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi.info.version = env!("CARGO_PKG_VERSION").to_owned();
    }
}

/// The admin listener's document (`openapi/admin.json`).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Portcullis admin",
        description = "The admin API, on its own listener (`ADMIN_ADDR`), never on the public one: find, invite, disable and help users. Every request needs an admin key from `portcullis admin-keys create`; every change is a security event naming the key.",
        license(name = "MIT", identifier = "MIT"),
    ),
    paths(
        admin::search,
        admin::invite,
        admin::get,
        admin::delete,
        admin::events,
        admin::disable,
        admin::enable,
        admin::log_out,
        admin::remove_factors,
        admin::send_password_reset,
        admin::clear_limits,
    ),
    components(schemas(super::problem::ProblemDocument, super::problem::FieldError)),
    modifiers(&AdminKeyScheme, &Version),
    tags(
        (name = "users", description = "Find, invite and delete users"),
        (name = "actions", description = "Disable, enable, log out, reset factors, send a reset link, clear limits"),
    )
)]
pub struct AdminDoc;

struct AdminKeyScheme;

impl Modify for AdminKeyScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_key",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("portcullis admin key")
                    .build(),
            ),
        );
    }
}

/// The document as committed: pretty JSON and a final newline.
pub fn document() -> String {
    pretty(ApiDoc::openapi())
}

/// The admin document as committed (`openapi/admin.json`).
pub fn admin_document() -> String {
    pretty(AdminDoc::openapi())
}

fn pretty(document: utoipa::openapi::OpenApi) -> String {
    let mut text = document
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_documents_match_the_code() {
        let committed = include_str!("../../openapi/openapi.json");
        assert!(
            committed == super::document(),
            "openapi/openapi.json is stale: run `just openapi` (or `cargo run -- openapi > openapi/openapi.json`)"
        );
        let committed = include_str!("../../openapi/admin.json");
        assert!(
            committed == super::admin_document(),
            "openapi/admin.json is stale: run `just openapi` (or `cargo run -- openapi --admin > openapi/admin.json`)"
        );
    }

    /// Generated clients name their functions and types after these: two
    /// operations with one id make one of them unreachable.
    #[test]
    fn operation_ids_are_unique() {
        for text in [super::document(), super::admin_document()] {
            unique_operation_ids(&text);
        }
    }

    fn unique_operation_ids(text: &str) {
        let document: serde_json::Value = serde_json::from_str(text).unwrap();
        let mut seen = std::collections::HashSet::new();
        for (path, item) in document["paths"].as_object().unwrap() {
            for (method, operation) in item.as_object().unwrap() {
                if let Some(id) = operation["operationId"].as_str() {
                    assert!(
                        seen.insert(id.to_owned()),
                        "{method} {path}: `{id}` is taken"
                    );
                }
            }
        }
    }
}
