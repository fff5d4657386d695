//! `/.well-known/jwks.json`: the public keys that verify access tokens
//! (CONTRACT.md, "Signing keys and JWKS").

use http::{HeaderValue, StatusCode, header};
use http_body_util::Full;
use serde::Serialize;
use utoipa::ToSchema;

use crate::http::{ApiError, Request, Response};
use crate::services::AppState;

/// A JWK Set (RFC 7517) of public signing keys.
#[derive(Serialize, ToSchema)]
pub struct JwkSet {
    pub keys: Vec<PublicJwk>,
}

/// A public signing key; never a private member.
#[derive(Serialize, ToSchema)]
pub struct PublicJwk {
    /// `OKP` (Ed25519) or `EC` (P-256).
    #[schema(example = "OKP")]
    pub kty: String,
    #[schema(example = "Ed25519")]
    pub crv: String,
    /// The public key (base64url).
    pub x: String,
    /// The y coordinate, for `EC` keys.
    pub y: Option<String>,
    /// The RFC 7638 thumbprint, as in the `kid` header of the tokens it signs.
    pub kid: String,
    #[schema(example = "EdDSA")]
    pub alg: String,
    #[serde(rename = "use")]
    #[schema(example = "sig")]
    pub key_use: String,
}

/// The public keys that verify access tokens: the signing key and those
/// still accepted. Empty under HS256.
#[utoipa::path(
    get,
    path = "/.well-known/jwks.json",
    tag = "operations",
    responses(
        (status = 200, description = "The JWK Set; cache it for up to 300 seconds", body = JwkSet,
            headers(("Cache-Control" = String, description = "public, max-age=300"))),
    )
)]
pub async fn jwks(state: AppState, _: Request) -> Result<Response, ApiError> {
    let mut response = http::Response::new(Full::new(state.jwt.jwks()));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Rotation relies on this bound (README, "Rotating signing keys").
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    Ok(response)
}
