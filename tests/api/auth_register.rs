//! POST /api/v1/auth/register.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn register_creates_a_user_with_a_normalised_email() {
    let app = spawn_app().await;

    let response = app
        .register(&json!({
            "email": "  Grace.Hopper@Example.COM ",
            "password": STRONG_PASSWORD,
            "full_name": "  Grace Hopper ",
        }))
        .await;

    assert_eq!(response.status(), 201);
    let user = json_body(response).await;
    assert_eq!(user["email"], "grace.hopper@example.com");
    assert_eq!(user["full_name"], "Grace Hopper");
    assert!(uuid::Uuid::parse_str(user["id"].as_str().unwrap()).is_ok());
    let created = user["created_at"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(created, &time::format_description::well_known::Rfc3339)
            .is_ok()
    );
    assert_eq!(
        user["email_verified"], false,
        "until the emailed link is opened"
    );
    assert_eq!(user["mfa_enabled"], false);
    assert_eq!(
        user.as_object().unwrap().len(),
        6,
        "no other fields: {user}"
    );
}

#[tokio::test]
async fn full_name_is_optional() {
    let app = spawn_app().await;

    let response = app
        .register(&json!({"email": app.unique_email(), "password": STRONG_PASSWORD}))
        .await;

    assert_eq!(response.status(), 201);
    assert!(json_body(response).await["full_name"].is_null());
}

#[tokio::test]
async fn the_same_email_in_another_case_or_with_spaces_is_a_409() {
    let app = spawn_app().await;
    let user = app.register_user().await;

    for variant in [user.email.to_uppercase(), format!("  {} ", user.email)] {
        let response = app
            .register(&json!({"email": variant, "password": OTHER_STRONG_PASSWORD}))
            .await;
        assert_problem(response, 409, "email-taken").await;
    }
}

#[tokio::test]
async fn concurrent_registrations_of_one_email_create_one_user() {
    let app = spawn_app().await;
    let email = app.unique_email();

    let body = json!({"email": email, "password": STRONG_PASSWORD});
    let attempts = (0..6).map(|_| app.register(&body));
    let statuses = statuses_of(attempts).await;

    assert_eq!(count_of(&statuses, 201), 1, "{statuses:?}");
    assert_eq!(count_of(&statuses, 409), 5, "{statuses:?}");
}

async fn assert_field_error(app: &TestApp, body: serde_json::Value, field: &str) {
    let response = app.register(&body).await;
    let problem = assert_problem(response, 422, "validation-error").await;
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert!(fields.contains(&field), "{field} in {problem}");
    let text = problem.to_string();
    if let Some(password) = body["password"].as_str() {
        assert!(!text.contains(password), "the password is echoed: {text}");
    }
}

#[tokio::test]
async fn weak_short_and_overlong_passwords_are_a_422() {
    let app = spawn_app().await;
    let email = app.unique_email();
    let overlong: String = "Quokka-Lantern-Fjord-93!".repeat(6);
    assert!(overlong.chars().count() > 128);
    for password in [
        "password1234",
        "1q2w3e4r5t6y",
        "short-Pw1!",
        overlong.as_str(),
        "aaaaaaaaaaaaaaaaaaaa",
    ] {
        assert_field_error(
            &app,
            json!({"email": email, "password": password}),
            "password",
        )
        .await;
    }
}

#[tokio::test]
async fn a_password_built_from_the_email_is_a_422() {
    let app = spawn_app().await;
    assert_field_error(
        &app,
        json!({"email": "katherine.johnson@example.com", "password": "katherine.johnson!"}),
        "password",
    )
    .await;
}

#[tokio::test]
async fn a_128_character_password_is_accepted_whole() {
    let app = spawn_app().await;
    let user_email = app.unique_email();
    let password: String = "Zebra-ñandú-Quokka-42!".chars().cycle().take(128).collect();
    let response = app
        .register(&json!({"email": user_email, "password": password}))
        .await;
    assert_eq!(response.status(), 201);

    // Not truncated: one character fewer is a different password.
    let shorter: String = password.chars().take(127).collect();
    assert_eq!(app.login(&user_email, &shorter).await.status(), 401);
    assert_eq!(app.login(&user_email, &password).await.status(), 200);
}

#[tokio::test]
async fn invalid_emails_are_a_422() {
    let app = spawn_app().await;
    let long_local = format!("{}@example.com", "a".repeat(65));
    let too_long = format!("{}@{}.com", "a".repeat(60), "b".repeat(200));
    for email in [
        "not-an-email",
        "@example.com",
        "a@b",
        "",
        long_local.as_str(),
        too_long.as_str(),
    ] {
        assert_field_error(
            &app,
            json!({"email": email, "password": STRONG_PASSWORD}),
            "email",
        )
        .await;
    }
}

#[tokio::test]
async fn bad_full_names_are_a_422() {
    let app = spawn_app().await;
    for name in [
        "   ".to_owned(),
        "x".repeat(201),
        "Grace\u{0}Hopper".to_owned(),
        "tab\there".to_owned(),
    ] {
        assert_field_error(
            &app,
            json!({"email": app.unique_email(), "password": STRONG_PASSWORD, "full_name": name}),
            "full_name",
        )
        .await;
    }
}

#[tokio::test]
async fn schema_violations_are_a_422_naming_the_field() {
    let app = spawn_app().await;
    let email = app.unique_email();
    let cases = [
        (
            json!({"email": email, "password": STRONG_PASSWORD, "is_admin": true}),
            "is_admin",
        ),
        (json!({"email": email}), "password"),
        (json!({"password": STRONG_PASSWORD}), "email"),
        (json!({"email": 42, "password": STRONG_PASSWORD}), "email"),
        (json!({"email": null, "password": STRONG_PASSWORD}), "email"),
        (json!({"email": email, "password": ["a"]}), "password"),
    ];
    for (body, field) in cases {
        assert_field_error(&app, body, field).await;
    }
}

#[tokio::test]
async fn a_non_ascii_email_is_stored_nfc_normalised() {
    let app = spawn_app().await;

    let response = app
        .register(&json!({"email": "Jose\u{301}@Example.com", "password": STRONG_PASSWORD}))
        .await;

    assert_eq!(response.status(), 201);
    assert_eq!(json_body(response).await["email"], "jos\u{e9}@example.com");
    // The precomposed spelling is the same account.
    let again = app
        .register(&json!({"email": "JOS\u{c9}@example.com", "password": STRONG_PASSWORD}))
        .await;
    assert_eq!(again.status(), 409);
}

#[tokio::test]
async fn malformed_json_is_a_400_and_a_wrong_content_type_a_415() {
    let app = spawn_app().await;

    let malformed = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(r#"{"email": "a@example.com", "password": "#)
        .send()
        .await
        .unwrap();
    assert_problem(malformed, 400, "bad-request").await;

    let wrong_type = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "text/plain")
        .body(r#"{"email": "a@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(wrong_type, 415, "unsupported-media-type").await;

    let missing_type = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .body(r#"{"email": "a@example.com"}"#)
        .send()
        .await
        .unwrap();
    assert_problem(missing_type, 415, "unsupported-media-type").await;
}

#[tokio::test]
async fn an_oversize_chunked_registration_is_a_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(70_000);
    let body = format!(r#"{{"email":"a@example.com","password":"{padding}"}}"#);
    let stream = futures_util::stream::iter(
        body.into_bytes()
            .chunks(4096)
            .map(|c| Ok::<_, std::io::Error>(c.to_vec()))
            .collect::<Vec<_>>(),
    );

    let response = app
        .client
        .post(app.url("/api/v1/auth/register"))
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();

    assert_problem(response, 413, "payload-too-large").await;
}
