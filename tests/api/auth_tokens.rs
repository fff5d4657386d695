//! The auth and denylist layers in front of the protected routes.

use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

use crate::helpers::*;

/// Signs `claims` as the app would: its signing key, its `kid`.
fn sign(app: &TestApp, claims: &serde_json::Value) -> String {
    let key = app.config.jwt_keys.signing();
    let mut header = Header::new(key.algorithm);
    header.kid = key.kid.clone();
    jsonwebtoken::encode(&header, claims, &key.encoding).unwrap()
}

fn claims_for(user_id: &str, exp_offset: i64) -> serde_json::Value {
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    json!({
        "sub": user_id,
        "jti": uuid::Uuid::new_v4(),
        "sid": uuid::Uuid::new_v4(),
        "iat": now - 10,
        "exp": now + exp_offset,
        "iss": "portcullis",
        "aud": "portcullis",
        "iat_us": (now - 10) * 1_000_000,
    })
}

async fn assert_unauthorized(response: reqwest::Response) {
    assert_eq!(response.headers()["www-authenticate"], "Bearer");
    assert_problem(response, 401, "unauthorized").await;
}

#[tokio::test]
async fn me_returns_the_signed_in_user() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;

    let response = app.me(&tokens.access).await;

    assert_eq!(response.status(), 200);
    let body = json_body(response).await;
    assert_eq!(body["id"], user.id.as_str());
    assert_eq!(body["email"], user.email.as_str());
}

#[tokio::test]
async fn a_missing_or_malformed_authorization_header_is_a_401() {
    let app = spawn_app().await;
    assert_unauthorized(app.get("/api/v1/users/me").await).await;
    for value in [
        "Bearer",
        "Bearer ",
        "Basic dXNlcjpwYXNz",
        "Bearer not.a.jwt",
        "token",
    ] {
        let response = app
            .client
            .get(app.url("/api/v1/users/me"))
            .header("authorization", value)
            .send()
            .await
            .unwrap();
        assert_unauthorized(response).await;
    }
}

#[tokio::test]
async fn an_expired_token_is_a_401() {
    let app = spawn_app().await;
    let user = app.register_user().await;

    let expired = sign(&app, &claims_for(&user.id, -1));

    assert_unauthorized(app.me(&expired).await).await;
    // The same claims unexpired pass, so the expiry is what failed.
    let fresh = sign(&app, &claims_for(&user.id, 600));
    assert_eq!(app.me(&fresh).await.status(), 200);
}

#[tokio::test]
async fn a_token_signed_with_another_key_is_a_401() {
    let app = spawn_app().await;
    let user = app.register_user().await;

    let claims = claims_for(&user.id, 600);
    let ours = app.config.jwt_keys.signing();
    // The attacker's own key, under our kid.
    let (pem, _) =
        portcullis::security::keys::generate(portcullis::security::keys::SigningAlgorithm::EdDsa)
            .unwrap();
    let mut header = Header::new(Algorithm::EdDSA);
    header.kid = ours.kid.clone();
    let forged = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_ed_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap();
    // HS256 with the shared secret, the old algorithm: no longer accepted.
    let mut header = Header::new(Algorithm::HS256);
    header.kid = ours.kid.clone();
    let confused = jsonwebtoken::encode(
        &header,
        &claims,
        &EncodingKey::from_secret(app.config.jwt_secret.expose().as_bytes()),
    )
    .unwrap();
    // Our key, but a kid we do not publish.
    let mut header = Header::new(ours.algorithm);
    header.kid = Some("not-one-of-ours".into());
    let unknown_kid = jsonwebtoken::encode(&header, &claims, &ours.encoding).unwrap();

    assert_unauthorized(app.me(&forged).await).await;
    assert_unauthorized(app.me(&confused).await).await;
    assert_unauthorized(app.me(&unknown_kid).await).await;
    assert_eq!(app.me(&sign(&app, &claims)).await.status(), 200);
}

#[tokio::test]
async fn an_unsigned_alg_none_token_is_a_401() {
    use base64::Engine;
    let app = spawn_app().await;
    let user = app.register_user().await;
    let encode = |v: &serde_json::Value| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
    };

    let token = format!(
        "{}.{}.",
        encode(&json!({"alg": "none", "typ": "JWT"})),
        encode(&claims_for(&user.id, 600))
    );

    assert_unauthorized(app.me(&token).await).await;
}

#[tokio::test]
async fn a_token_for_another_audience_or_issuer_is_a_401() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    for (claim, value) in [("aud", "another-service"), ("iss", "someone-else")] {
        let mut claims = claims_for(&user.id, 600);
        claims[claim] = json!(value);
        assert_unauthorized(app.me(&sign(&app, &claims)).await).await;
    }
}

#[tokio::test]
async fn a_token_of_a_deleted_user_is_a_401() {
    let app = spawn_app().await;
    let user = app.register_user().await;
    let tokens = app.login_user(&user).await;
    let id = uuid::Uuid::parse_str(&user.id).unwrap();
    app.database()
        .await
        .execute("DELETE FROM users WHERE id = $1", &[&id])
        .await
        .unwrap();

    assert_unauthorized(app.me(&tokens.access).await).await;
    assert_eq!(app.refresh(Some(&tokens.refresh)).await.status(), 401);
}

#[tokio::test]
async fn protected_routes_fail_closed_when_redis_is_unreachable() {
    let port = closed_port();
    let app = spawn_app_with(|vars| {
        vars.insert("REDIS_URL".into(), format!("redis://127.0.0.1:{port}"));
    })
    .await;
    let user = app.insert_user_with_old_hash().await;
    let token = sign(&app, &claims_for(&user.id, 600));

    let response = app.me(&token).await;

    assert_problem(response, 503, "dependency-unavailable").await;
}

/// Every operation the OpenAPI document marks with the bearer scheme, so a
/// new route cannot be forgotten here. Each goes with a body, over one
/// kept-alive connection: a 401 given before the body is read must leave
/// the connection usable for the next request.
#[tokio::test]
async fn every_protected_route_requires_a_token() {
    let app = spawn_app().await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .build()
        .unwrap();
    let document: serde_json::Value =
        serde_json::from_str(include_str!("../../openapi/openapi.json")).unwrap();
    let mut checked = Vec::new();

    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let Some(method) = ["get", "post", "put", "patch", "delete"]
                .contains(&method.as_str())
                .then(|| reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap())
            else {
                continue;
            };
            let bearer = operation["security"]
                .as_array()
                .is_some_and(|schemes| schemes.iter().any(|s| s.get("bearer").is_some()));
            if !bearer {
                continue;
            }
            let concrete = path.replace("{id}", &uuid::Uuid::new_v4().to_string());
            let response = client
                .request(method.clone(), app.url(&concrete))
                .json(&serde_json::json!({"current_password": "a guess at the password"}))
                .send()
                .await
                .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
            assert_unauthorized(response).await;
            checked.push(format!("{method} {path}"));
        }
    }

    assert!(checked.len() >= 12, "too few protected routes: {checked:?}");
    assert!(checked.contains(&"DELETE /api/v1/users/me/mfa/totp".to_owned()));
}
