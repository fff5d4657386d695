//! Passkeys (CONTRACT.md, "Passkeys (WebAuthn)"), driven by
//! webauthn-authenticator-rs' soft passkey against the real router: the
//! ceremonies, every refusal, and how they meet recovery, the admin API and
//! the limits.
//!
//! The soft passkey is no discoverable authenticator: it refuses to make a
//! resident credential, signs only for a credential listed in the options
//! and returns no user handle. A test asks it for a plain credential, lists
//! it, and adds the user handle, as a browser's discoverable passkey would
//! (none of which is signed over).

use std::sync::Arc;

use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::Url;
use webauthn_rs_proto::{
    AllowCredentials, CreationChallengeResponse, PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions, RequestChallengeResponse,
};

use crate::helpers::*;

/// `PUBLIC_URL`'s default origin: the relying party's when nothing else is
/// configured.
const ORIGIN: &str = "http://localhost:8000";

type Authenticator = WebauthnAuthenticator<SoftPasskey>;

fn authenticator() -> Authenticator {
    WebauthnAuthenticator::new(SoftPasskey::new(true))
}

/// A registered passkey: its id on the server and its credential id.
struct Registered {
    id: String,
    credential_id: Vec<u8>,
}

impl TestApp {
    async fn passkey_post(
        &self,
        path: &str,
        access: Option<&str>,
        body: Value,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(&body);
        if let Some(access) = access {
            request = request.bearer_auth(access);
        }
        request.send().await.unwrap()
    }

    /// `registration/start`: the challenge id and the creation options.
    async fn start_registration(&self, access: &str, password: &str) -> (String, Value) {
        let response = self
            .passkey_post(
                "/api/v1/users/me/passkeys/registration/start",
                Some(access),
                json!({"current_password": password}),
            )
            .await;
        assert_eq!(response.status(), 200);
        let body = json_body(response).await;
        (
            body["challenge_id"].as_str().unwrap().to_owned(),
            body["options"].clone(),
        )
    }

    async fn finish_registration(
        &self,
        access: &str,
        challenge_id: &str,
        credential: &Value,
    ) -> reqwest::Response {
        self.passkey_post(
            "/api/v1/users/me/passkeys/registration/finish",
            Some(access),
            json!({"challenge_id": challenge_id, "name": "Laptop", "credential": credential}),
        )
        .await
    }

    /// Registers a passkey of `authenticator` for the signed-in user.
    async fn register_passkey(
        &self,
        access: &str,
        password: &str,
        authenticator: &mut Authenticator,
    ) -> Registered {
        let (challenge_id, options) = self.start_registration(access, password).await;
        let credential = create(authenticator, &options, ORIGIN);
        let response = self
            .finish_registration(access, &challenge_id, &credential)
            .await;
        assert_eq!(response.status(), 201);
        let body = json_body(response).await;
        assert_eq!(body["name"], "Laptop");
        assert_eq!(body["last_used_at"], Value::Null);
        Registered {
            id: body["id"].as_str().unwrap().to_owned(),
            credential_id: credential_id_of(&credential),
        }
    }

    /// `auth/passkey/start`: the challenge id and the request options.
    async fn start_sign_in(&self) -> (String, Value) {
        let response = self
            .passkey_post("/api/v1/auth/passkey/start", None, json!({}))
            .await;
        assert_eq!(response.status(), 200);
        let body = json_body(response).await;
        (
            body["challenge_id"].as_str().unwrap().to_owned(),
            body["options"].clone(),
        )
    }

    async fn finish_sign_in(&self, challenge_id: &str, credential: &Value) -> reqwest::Response {
        self.passkey_post(
            "/api/v1/auth/passkey/finish",
            None,
            json!({"challenge_id": challenge_id, "credential": credential}),
        )
        .await
    }

    /// A whole passkey sign-in of `user_id` with `passkey`.
    async fn sign_in_with(
        &self,
        authenticator: &mut Authenticator,
        passkey: &Registered,
        user_id: &str,
    ) -> reqwest::Response {
        let (challenge_id, options) = self.start_sign_in().await;
        let assertion = get(
            authenticator,
            &options,
            &passkey.credential_id,
            user_id,
            ORIGIN,
        );
        self.finish_sign_in(&challenge_id, &assertion).await
    }
}

/// `navigator.credentials.create()` on the soft passkey.
fn create(authenticator: &mut Authenticator, options: &Value, origin: &str) -> Value {
    let mut options: PublicKeyCredentialCreationOptions =
        serde_json::from_value(options.clone()).expect("creation options in the JSON form");
    // The soft passkey keeps no resident credential; it is told not to
    // (the server's options ask for one; nothing signed says so).
    if let Some(selection) = options.authenticator_selection.as_mut() {
        selection.require_resident_key = false;
    }
    let credential = authenticator
        .do_registration(
            Url::parse(origin).unwrap(),
            CreationChallengeResponse {
                public_key: options,
            },
        )
        .expect("the soft passkey registers");
    serde_json::to_value(credential).unwrap()
}

/// `navigator.credentials.get()` for a discoverable credential: signed by
/// the soft passkey, with the user handle a discoverable one returns.
fn get(
    authenticator: &mut Authenticator,
    options: &Value,
    credential_id: &[u8],
    user_id: &str,
    origin: &str,
) -> Value {
    let mut options: PublicKeyCredentialRequestOptions =
        serde_json::from_value(options.clone()).expect("request options in the JSON form");
    assert!(
        options.allow_credentials.is_empty(),
        "a discoverable sign-in names no credential"
    );
    options.allow_credentials = vec![AllowCredentials {
        type_: "public-key".into(),
        id: credential_id.to_vec().into(),
        transports: None,
    }];
    let mut assertion = authenticator
        .do_authentication(
            Url::parse(origin).unwrap(),
            RequestChallengeResponse {
                public_key: options,
                mediation: None,
            },
        )
        .expect("the soft passkey signs");
    let user: uuid::Uuid = user_id.parse().unwrap();
    assertion.response.user_handle = Some(user.as_bytes().to_vec().into());
    serde_json::to_value(assertion).unwrap()
}

fn credential_id_of(credential: &Value) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(credential["rawId"].as_str().unwrap().trim_end_matches('='))
        .unwrap()
}

/// A verified user, signed in, with one passkey.
async fn user_with_passkey(app: &TestApp) -> (TestUser, Tokens, Authenticator, Registered) {
    let user = app.register_verified_user().await;
    let tokens = app.login_user(&user).await;
    let mut authenticator = authenticator();
    let passkey = app
        .register_passkey(&tokens.access, &user.password, &mut authenticator)
        .await;
    (user, tokens, authenticator, passkey)
}

#[tokio::test]
async fn a_passkey_registers_and_signs_in_in_place_of_password_and_code() {
    let app = spawn_app().await;
    let enrolled = app.enrolled_user().await;
    let user = enrolled.user.clone();
    let (challenge_id, options) = app
        .start_registration(&enrolled.access, &user.password)
        .await;
    // A discoverable credential with user verification, its account named
    // by a user handle that is the user's id.
    assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
    assert_eq!(
        options["authenticatorSelection"]["requireResidentKey"],
        true
    );
    assert_eq!(
        options["authenticatorSelection"]["userVerification"],
        "required"
    );
    assert_eq!(options["rp"]["id"], "localhost");
    let mut authenticator = authenticator();
    let credential = create(&mut authenticator, &options, ORIGIN);
    let response = app
        .finish_registration(&enrolled.access, &challenge_id, &credential)
        .await;
    assert_eq!(response.status(), 201);
    let passkey = Registered {
        id: json_body(response).await["id"].as_str().unwrap().to_owned(),
        credential_id: credential_id_of(&credential),
    };

    // The account has TOTP: the passkey alone signs in all the same.
    let response = app
        .sign_in_with(&mut authenticator, &passkey, &user.id)
        .await;
    assert_eq!(response.headers()["cache-control"], "no-store");
    let tokens = tokens_of(response).await;
    let claims = jwt_claims(&tokens.access);
    assert_eq!(claims["amr"], json!(["hwk", "user"]));
    assert_eq!(claims["sub"], user.id);
    assert_eq!(app.me(&tokens.access).await.status(), 200);
    // Its refresh keeps the amr.
    let refreshed = tokens_of(app.refresh(Some(&tokens.refresh)).await).await;
    assert_eq!(jwt_claims(&refreshed.access)["amr"], json!(["hwk", "user"]));
    // A second sign-in moves the sign count on.
    let again = app
        .sign_in_with(&mut authenticator, &passkey, &user.id)
        .await;
    assert_eq!(again.status(), 200);

    let listed = app
        .client
        .get(app.url("/api/v1/users/me/passkeys"))
        .bearer_auth(&tokens.access)
        .send()
        .await
        .unwrap();
    let listed = json_body(listed).await;
    assert_eq!(listed["passkeys"][0]["id"], passkey.id);
    assert!(listed["passkeys"][0]["last_used_at"].is_string());
    let stored = app
        .database()
        .await
        .query_one(
            "SELECT sign_count, credential::text FROM passkeys WHERE id = $1",
            &[&passkey.id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    assert_eq!(stored.get::<_, i64>(0), 2);
    // No secret of the authenticator is stored: only its public key.
    assert!(!stored.get::<_, String>(1).contains("private"));
    let events = app
        .database()
        .await
        .query(
            "SELECT type FROM security_events WHERE user_id = $1 ORDER BY occurred_at",
            &[&user.id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    let types: Vec<String> = events.iter().map(|row| row.get(0)).collect();
    assert!(types.contains(&"passkey.added".to_owned()), "{types:?}");
}

#[tokio::test]
async fn every_failed_sign_in_is_one_401_and_counts_against_the_address() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ADDRESS".into(), "6".into());
    })
    .await;
    let (user, _, mut authenticator, passkey) = user_with_passkey(&app).await;
    let other = app.register_verified_user().await;

    // A wrong origin.
    let (challenge_id, options) = app.start_sign_in().await;
    let assertion = get(
        &mut authenticator,
        &options,
        &passkey.credential_id,
        &user.id,
        "https://evil.localhost",
    );
    assert_problem(
        app.finish_sign_in(&challenge_id, &assertion).await,
        401,
        "invalid-passkey",
    )
    .await;

    // A replayed challenge: spent by the first finish.
    let (challenge_id, options) = app.start_sign_in().await;
    let assertion = get(
        &mut authenticator,
        &options,
        &passkey.credential_id,
        &user.id,
        ORIGIN,
    );
    assert_eq!(
        app.finish_sign_in(&challenge_id, &assertion).await.status(),
        200
    );
    assert_problem(
        app.finish_sign_in(&challenge_id, &assertion).await,
        401,
        "invalid-passkey",
    )
    .await;

    // A user handle of another account than the credential's.
    let (challenge_id, options) = app.start_sign_in().await;
    let assertion = get(
        &mut authenticator,
        &options,
        &passkey.credential_id,
        &other.id,
        ORIGIN,
    );
    assert_problem(
        app.finish_sign_in(&challenge_id, &assertion).await,
        401,
        "invalid-passkey",
    )
    .await;

    // An unknown credential, and an unknown challenge.
    let mut stranger = authenticator_with_credential().await;
    let (challenge_id, options) = app.start_sign_in().await;
    let assertion = get(&mut stranger.0, &options, &stranger.1, &user.id, ORIGIN);
    assert_problem(
        app.finish_sign_in(&challenge_id, &assertion).await,
        401,
        "invalid-passkey",
    )
    .await;
    let unknown = uuid::Uuid::new_v4().to_string();
    assert_problem(
        app.finish_sign_in(&unknown, &assertion).await,
        401,
        "invalid-passkey",
    )
    .await;

    // Five failures and one success so far: the sixth failure is the last
    // the address may make, then even a right passkey waits.
    let (challenge_id, options) = app.start_sign_in().await;
    let assertion = get(
        &mut authenticator,
        &options,
        &passkey.credential_id,
        &other.id,
        ORIGIN,
    );
    assert_problem(
        app.finish_sign_in(&challenge_id, &assertion).await,
        401,
        "invalid-passkey",
    )
    .await;
    let refused = app
        .sign_in_with(&mut authenticator, &passkey, &user.id)
        .await;
    assert!(refused.headers().contains_key("retry-after"));
    assert_problem(refused, 429, "too-many-requests").await;

    let metrics = app.get("/metrics").await.text().await.unwrap();
    assert!(
        metrics.contains(r#"auth_passkey_total{ceremony="authentication",outcome="invalid"} 6"#),
        "{metrics}"
    );
}

/// A soft passkey with a credential registered to a user of another app:
/// unknown here.
async fn authenticator_with_credential() -> (Authenticator, Vec<u8>) {
    let elsewhere = spawn_app().await;
    let user = elsewhere.register_verified_user().await;
    let tokens = elsewhere.login_user(&user).await;
    let mut authenticator = authenticator();
    let passkey = elsewhere
        .register_passkey(&tokens.access, &user.password, &mut authenticator)
        .await;
    (authenticator, passkey.credential_id)
}

#[tokio::test]
async fn a_cloned_authenticator_whose_count_goes_back_is_refused() {
    let app = spawn_app().await;
    let (user, _, mut authenticator, passkey) = user_with_passkey(&app).await;
    // Two devices with one key: the one behind signs with a lower count.
    let (behind_id, behind_options) = app.start_sign_in().await;
    let behind = get(
        &mut authenticator,
        &behind_options,
        &passkey.credential_id,
        &user.id,
        ORIGIN,
    );
    let (ahead_id, ahead_options) = app.start_sign_in().await;
    let ahead = get(
        &mut authenticator,
        &ahead_options,
        &passkey.credential_id,
        &user.id,
        ORIGIN,
    );
    assert_eq!(app.finish_sign_in(&ahead_id, &ahead).await.status(), 200);
    assert_problem(
        app.finish_sign_in(&behind_id, &behind).await,
        401,
        "invalid-passkey",
    )
    .await;
}

#[tokio::test]
async fn a_ceremony_started_on_one_api_process_finishes_on_another() {
    let app = spawn_app().await;
    let replica = app.spawn_replica().await;
    let user = app.register_verified_user().await;
    let tokens = app.login_user(&user).await;
    let mut authenticator = authenticator();
    // Registration: started here, finished there.
    let (challenge_id, options) = app.start_registration(&tokens.access, &user.password).await;
    let credential = create(&mut authenticator, &options, ORIGIN);
    let response = replica
        .post(
            "/api/v1/users/me/passkeys/registration/finish",
            &tokens.access,
            json!({"challenge_id": challenge_id, "name": "Phone", "credential": credential}),
        )
        .await;
    assert_eq!(response.status(), 201);
    // Sign-in: the same, and the challenge is spent for both.
    let (challenge_id, options) = app.start_sign_in().await;
    let assertion = get(
        &mut authenticator,
        &options,
        &credential_id_of(&credential),
        &user.id,
        ORIGIN,
    );
    let finish = json!({"challenge_id": challenge_id, "credential": assertion});
    let response = replica
        .post("/api/v1/auth/passkey/finish", "", finish.clone())
        .await;
    assert_eq!(response.status(), 200);
    let again = app.post_json("/api/v1/auth/passkey/finish", &finish).await;
    assert_problem(again, 401, "invalid-passkey").await;
}

#[tokio::test]
async fn registration_refusals_have_their_own_statuses() {
    let app = spawn_app().await;
    let (user, tokens, mut authenticator, _) = user_with_passkey(&app).await;

    // A wrong current password: 400, counted as a guess.
    let response = app
        .passkey_post(
            "/api/v1/users/me/passkeys/registration/start",
            Some(&tokens.access),
            json!({"current_password": OTHER_STRONG_PASSWORD}),
        )
        .await;
    assert_problem(response, 400, "wrong-current-password").await;

    // An unverified address: 403.
    let unverified = app.register_user().await;
    let access = app.login_user(&unverified).await.access;
    let response = app
        .passkey_post(
            "/api/v1/users/me/passkeys/registration/start",
            Some(&access),
            json!({"current_password": unverified.password}),
        )
        .await;
    assert_problem(response, 403, "email-not-verified").await;

    // The same authenticator again: its credential is excluded, and a
    // credential registered already is a conflict.
    let (challenge_id, options) = app.start_registration(&tokens.access, &user.password).await;
    assert_eq!(options["excludeCredentials"].as_array().unwrap().len(), 1);
    let mut copy = options.clone();
    copy["excludeCredentials"] = json!([]);
    let fresh = create(&mut authenticator, &copy, ORIGIN);
    assert_eq!(
        app.finish_registration(&tokens.access, &challenge_id, &fresh)
            .await
            .status(),
        201
    );
    let (challenge_id, _) = app.start_registration(&tokens.access, &user.password).await;
    let response = app
        .finish_registration(&tokens.access, &challenge_id, &fresh)
        .await;
    assert_problem(response, 409, "passkey-taken").await;

    // A wrong origin, a spent challenge, another account's challenge.
    let (challenge_id, options) = app.start_registration(&tokens.access, &user.password).await;
    let evil = create(&mut authenticator, &options, "https://evil.localhost");
    let response = app
        .finish_registration(&tokens.access, &challenge_id, &evil)
        .await;
    assert_problem(response, 400, "invalid-passkey-registration").await;
    let good = create(&mut authenticator, &options, ORIGIN);
    let response = app
        .finish_registration(&tokens.access, &challenge_id, &good)
        .await;
    assert_problem(response, 400, "invalid-passkey-registration").await;
    let other = app.register_verified_user().await;
    let other_access = app.login_user(&other).await.access;
    let (challenge_id, options) = app.start_registration(&tokens.access, &user.password).await;
    let credential = create(&mut authenticator, &options, ORIGIN);
    let response = app
        .finish_registration(&other_access, &challenge_id, &credential)
        .await;
    assert_problem(response, 400, "invalid-passkey-registration").await;
    // A bad name, before anything is spent.
    let response = app
        .passkey_post(
            "/api/v1/users/me/passkeys/registration/finish",
            Some(&tokens.access),
            json!({"challenge_id": challenge_id, "name": " ", "credential": credential}),
        )
        .await;
    assert_problem(response, 422, "validation-error").await;
}

#[tokio::test]
async fn removing_a_passkey_needs_the_password_and_ends_no_session() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let (user, tokens, mut authenticator, passkey) = user_with_passkey(&app).await;
    app.emails_to(&user.email, "A passkey was added", 1).await;
    let remove = |id: String, password: String| {
        let app = &app;
        let access = tokens.access.clone();
        async move {
            app.client
                .delete(app.url(&format!("/api/v1/users/me/passkeys/{id}")))
                .bearer_auth(access)
                .json(&json!({"current_password": password}))
                .send()
                .await
                .unwrap()
        }
    };
    assert_problem(
        remove(passkey.id.clone(), OTHER_STRONG_PASSWORD.into()).await,
        400,
        "wrong-current-password",
    )
    .await;
    assert_problem(
        remove(uuid::Uuid::new_v4().to_string(), user.password.clone()).await,
        404,
        "not-found",
    )
    .await;
    assert_eq!(
        remove(passkey.id.clone(), user.password.clone())
            .await
            .status(),
        204
    );
    assert_eq!(app.me(&tokens.access).await.status(), 200);
    app.emails_to(&user.email, "A passkey was removed", 1).await;
    assert_problem(
        app.sign_in_with(&mut authenticator, &passkey, &user.id)
            .await,
        401,
        "invalid-passkey",
    )
    .await;

    // The last passkey of an account without a password stays.
    let passkey = app
        .register_passkey(&tokens.access, &user.password, &mut authenticator)
        .await;
    app.database()
        .await
        .execute(
            "UPDATE users SET has_password = false WHERE id = $1",
            &[&user.id.parse::<uuid::Uuid>().unwrap()],
        )
        .await
        .unwrap();
    assert_problem(
        remove(passkey.id.clone(), user.password.clone()).await,
        409,
        "last-passkey",
    )
    .await;
}

#[tokio::test]
async fn a_reset_removes_every_passkey_and_a_disabled_account_signs_in_with_none() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let (user, _, mut authenticator, passkey) = user_with_passkey(&app).await;

    // Disabled: the right passkey gets 403, and no session.
    let pool = portcullis::db::create_pool(&app.config).unwrap();
    let key = portcullis::services::admin_keys::create(&pool.get().await.unwrap(), "ops", false)
        .await
        .unwrap();
    let admin = |path: String, body: Value| {
        let client = app.client.clone();
        let url = format!("{}{path}", app.admin_address);
        let key = key.clone();
        async move {
            client
                .post(url)
                .bearer_auth(key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let disabled = admin(
        format!("/admin/v1/users/{}/disable", user.id),
        json!({"reason": "test"}),
    )
    .await;
    assert_eq!(disabled.status(), 204);
    let refused = app
        .sign_in_with(&mut authenticator, &passkey, &user.id)
        .await;
    assert!(refused_has_no_cookie(&refused));
    assert_problem(refused, 403, "account-disabled").await;
    let enabled = admin(format!("/admin/v1/users/{}/enable", user.id), json!({})).await;
    assert_eq!(enabled.status(), 204);
    assert_eq!(
        app.sign_in_with(&mut authenticator, &passkey, &user.id)
            .await
            .status(),
        200
    );
    let detail = app
        .client
        .get(format!("{}/admin/v1/users/{}", app.admin_address, user.id))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(json_body(detail).await["factors"]["passkeys"], 1);

    // A confirmed reset: the passkey an intruder may have added is gone,
    // and the notice says so.
    let token = app.reset_token_for(&user).await;
    assert_eq!(
        app.confirm_reset(&token, OTHER_STRONG_PASSWORD)
            .await
            .status(),
        204
    );
    assert_problem(
        app.sign_in_with(&mut authenticator, &passkey, &user.id)
            .await,
        401,
        "invalid-passkey",
    )
    .await;
    let notice = &app
        .emails_to(&user.email, "Your password was reset", 1)
        .await[0];
    assert!(notice.raw.contains("passkey"), "{}", notice.raw);
}

fn refused_has_no_cookie(response: &reqwest::Response) -> bool {
    refresh_cookie_of(response).is_none()
}

#[tokio::test]
async fn passkeys_are_off_where_the_relying_party_would_be_an_ip_address() {
    let app = spawn_app_with(|vars| {
        vars.insert("PUBLIC_URL".into(), "http://127.0.0.1:8000".into());
    })
    .await;
    let response = app
        .passkey_post("/api/v1/auth/passkey/start", None, json!({}))
        .await;
    assert_problem(response, 404, "not-found").await;
    let user = app.register_verified_user().await;
    let access = app.login_user(&user).await.access;
    let response = app
        .client
        .get(app.url("/api/v1/users/me/passkeys"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_problem(response, 404, "not-found").await;
}

/// A second api process, in-process, on the app's database, Redis keys and
/// queues.
struct Replica {
    client: reqwest::Client,
    address: String,
    _shutdown: tokio_util::sync::DropGuard,
}

impl Replica {
    async fn post(&self, path: &str, access: &str, body: Value) -> reqwest::Response {
        let mut request = self
            .client
            .post(format!("{}{path}", self.address))
            .json(&body);
        if !access.is_empty() {
            request = request.bearer_auth(access);
        }
        request.send().await.unwrap()
    }
}

impl TestApp {
    async fn spawn_replica(&self) -> Replica {
        // Migrated by the app first.
        self.wait_until_ready().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = format!("http://{}", listener.local_addr().unwrap());
        let shutdown = tokio_util::sync::CancellationToken::new();
        tokio::spawn(portcullis::run_api(
            Arc::clone(&self.config),
            listener,
            None,
            shutdown.clone(),
        ));
        Replica {
            client: self.client.clone(),
            address,
            _shutdown: shutdown.drop_guard(),
        }
    }
}

/// A sign-in gives its connection back before its session takes one: with
/// two held at once, a burst as large as the pool would wait on itself
/// until the pool's timeout (503).
#[tokio::test]
async fn a_burst_of_passkey_sign_ins_as_large_as_the_pool_all_succeed() {
    let app = spawn_app_with(|vars| {
        vars.insert("DATABASE_POOL_SIZE".into(), "4".into());
        vars.insert("WORKER_CONCURRENCY".into(), "2".into());
    })
    .await;
    let mut signed = Vec::new();
    for _ in 0..8 {
        let (user, _, mut authenticator, passkey) = user_with_passkey(&app).await;
        let (challenge_id, options) = app.start_sign_in().await;
        let assertion = get(
            &mut authenticator,
            &options,
            &passkey.credential_id,
            &user.id,
            ORIGIN,
        );
        signed.push(json!({"challenge_id": challenge_id, "credential": assertion}));
    }
    let statuses = statuses_of(signed.iter().map(|body| {
        let client = app.client.clone();
        let url = app.url("/api/v1/auth/passkey/finish");
        let body = body.clone();
        async move { client.post(url).json(&body).send().await.unwrap() }
    }))
    .await;
    assert_eq!(statuses, vec![200; 8]);
}

/// The authenticator did not verify the user (no PIN, no biometric): the
/// flag is in the signed data, and the policy wants it.
#[tokio::test]
async fn an_assertion_without_user_verification_is_refused() {
    let app = spawn_app().await;
    let (user, _, mut authenticator, passkey) = user_with_passkey(&app).await;
    let (challenge_id, options) = app.start_sign_in().await;
    assert_eq!(options["userVerification"], "required");
    let mut lax = options.clone();
    lax["userVerification"] = json!("discouraged");
    let assertion = get(
        &mut authenticator,
        &lax,
        &passkey.credential_id,
        &user.id,
        ORIGIN,
    );
    let flags = authenticator_flags(&assertion);
    assert_eq!(flags & 0b100, 0, "the soft passkey left the UV flag out");
    assert_problem(
        app.finish_sign_in(&challenge_id, &assertion).await,
        401,
        "invalid-passkey",
    )
    .await;
}

/// The flags byte of an assertion's authenticator data.
fn authenticator_flags(assertion: &Value) -> u8 {
    use base64::Engine;
    let data = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(
            assertion["response"]["authenticatorData"]
                .as_str()
                .unwrap()
                .trim_end_matches('='),
        )
        .unwrap();
    data[32]
}
