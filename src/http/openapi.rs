//! The OpenAPI 3.1 document. `openapi/openapi.json` must equal
//! [`document`] byte for byte (CONTRACT.md, "Processes"); `just openapi`
//! rewrites it and a test fails when they differ.

use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, Flow, HttpAuthScheme, HttpBuilder, OAuth2, Password, Scopes,
    SecurityScheme,
};
use utoipa::{Modify, OpenApi};

use super::handlers::{auth, events, keys, mfa, ops, password_reset, users, verification};

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
        ops::healthz,
        ops::readyz,
        keys::jwks,
    ),
    components(schemas(super::problem::ProblemDocument, super::problem::FieldError)),
    modifiers(&SecuritySchemes, &Version),
    tags(
        (name = "auth", description = "Registration, login, token refresh and logout"),
        (name = "users", description = "The signed-in user's account and sessions"),
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

/// The document as committed: pretty JSON and a final newline.
pub fn document() -> String {
    let mut text = ApiDoc::openapi()
        .to_pretty_json()
        .expect("the OpenAPI document serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    #[test]
    fn committed_document_matches_the_code() {
        let committed = include_str!("../../openapi/openapi.json");
        assert!(
            committed == super::document(),
            "openapi/openapi.json is stale: run `just openapi` (or `cargo run -- openapi > openapi/openapi.json`)"
        );
    }

    /// Generated clients name their functions and types after these: two
    /// operations with one id make one of them unreachable.
    #[test]
    fn operation_ids_are_unique() {
        let document: serde_json::Value = serde_json::from_str(&super::document()).unwrap();
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
