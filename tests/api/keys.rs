//! CONTRACT.md, "Signing keys and JWKS": the published keys.

use crate::helpers::*;

#[tokio::test]
async fn the_jwks_publishes_the_public_key_that_verifies_tokens_and_nothing_private() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;

    let response = app.get("/.well-known/jwks.json").await;

    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "public, max-age=300");
    assert_eq!(response.headers()["content-type"], "application/json");
    let jwks = json_body(response).await;
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(keys.len(), 1, "one key per listed file");
    let key = &keys[0];
    for member in ["kty", "crv", "x", "kid", "alg", "use"] {
        assert!(key[member].is_string(), "{member} in {key}");
    }
    assert_eq!(key["use"], "sig");
    assert_eq!(key["alg"], "EdDSA");
    for private in ["d", "p", "q", "dp", "dq", "qi", "k"] {
        assert!(
            key.get(private).is_none(),
            "{private} must not be published"
        );
    }
    // What any JOSE library does with only this document: the token's kid
    // picks the key, and the key verifies the signature.
    let header = jsonwebtoken::decode_header(&tokens.access).unwrap();
    assert_eq!(header.kid.as_deref(), key["kid"].as_str());
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(key.clone()).unwrap();
    let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::EdDSA);
    validation.set_audience(&["portcullis"]);
    validation.set_issuer(&["portcullis"]);
    let verified = jsonwebtoken::decode::<serde_json::Value>(
        &tokens.access,
        &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(),
        &validation,
    )
    .expect("the published key verifies the token");
    assert_eq!(verified.claims["sub"], user.id.as_str());
}

#[tokio::test]
async fn under_hs256_the_set_is_empty() {
    let app = spawn_app_with(|vars| {
        vars.insert("JWT_ALGORITHM".into(), "HS256".into());
    })
    .await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;

    let jwks = json_body(app.get("/.well-known/jwks.json").await).await;

    assert_eq!(jwks, serde_json::json!({"keys": []}));
    assert_eq!(jwt_header_alg(&tokens.access), "HS256");
    assert_eq!(app.me(&tokens.access).await.status(), 200);
}

fn jwt_header_alg(token: &str) -> String {
    format!("{:?}", jsonwebtoken::decode_header(token).unwrap().alg)
}
