//! CONTRACT.md, "Recovery ends what an intruder left behind": each test is
//! what an intruder with a session or the password tries, and what the
//! owner's recovery must end.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::sync::Notify;

use crate::helpers::*;

/// How the owner takes the account back (disabling a factor needs an
/// enrolled owner: its own test).
#[derive(Debug, Clone, Copy)]
enum Recovery {
    Reset,
    PasswordChange,
    LogoutAll,
    EnableFactor,
    Delete,
}

impl TestApp {
    /// The owner's recovery, from a session of their own.
    async fn recover(&self, owner: &TestUser, how: Recovery) {
        let access = || async { self.login_user(owner).await.access };
        match how {
            Recovery::Reset => {
                let token = self.reset_token_for(owner).await;
                let confirmed = self.confirm_reset(&token, OTHER_STRONG_PASSWORD).await;
                assert_eq!(confirmed.status(), 204);
            }
            Recovery::PasswordChange => {
                let changed = self
                    .change_password(&access().await, &owner.password, OTHER_STRONG_PASSWORD)
                    .await;
                assert_eq!(changed.status(), 204);
            }
            Recovery::LogoutAll => {
                assert_eq!(self.logout_all(&access().await).await.status(), 204);
            }
            Recovery::EnableFactor => {
                let access = access().await;
                let enrolment = json_body(self.enrol(&access, &owner.password).await).await;
                let secret = secret_of(&enrolment);
                let confirmed = self.confirm_mfa(&access, &code(&secret, now())).await;
                assert_eq!(confirmed.status(), 200);
            }
            Recovery::Delete => {
                let deleted = self.delete_account(&access().await, &owner.password).await;
                assert_eq!(deleted.status(), 204);
            }
        }
    }

    /// The intruder, signed in as the owner, asks to move the account to
    /// an address of their own; returns that address and its link's token.
    async fn intruder_moves_the_account(&self, access: &str, password: &str) -> (String, String) {
        let theirs = format!("intruder-{}", self.unique_email());
        let requested = self.change_email(access, password, &theirs).await;
        assert_eq!(requested.status(), 202);
        let token = self.verify_token(&theirs, CHANGE_SUBJECT, 1).await;
        (theirs, token)
    }

    async fn disable_mfa(&self, access: &str, password: &str, code: &str) -> reqwest::Response {
        self.bearer_json(
            reqwest::Method::DELETE,
            "/api/v1/users/me/mfa/totp",
            access,
            json!({"current_password": password, "code": code}),
        )
        .await
    }

    /// The account's email as the database has it, or `None` if it is gone.
    async fn email_of(&self, user: &TestUser) -> Option<String> {
        let id: uuid::Uuid = user.id.parse().unwrap();
        self.database()
            .await
            .query_opt("SELECT email FROM users WHERE id = $1", &[&id])
            .await
            .unwrap()
            .map(|row| row.get(0))
    }
}

fn secret_of(enrolment: &serde_json::Value) -> Vec<u8> {
    totp_rs::Secret::try_from_base32(enrolment["secret"].as_str().unwrap())
        .unwrap()
        .to_vec()
}

/// The intruder's change-of-address link, mailed before the owner
/// recovers, is dead after: the account keeps the owner's address.
async fn a_pending_change_of_address_dies_with(how: Recovery) {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let owner = app.register_verified_user().await;
    let intruder = app.login_user(&owner).await;
    let (_, link) = app
        .intruder_moves_the_account(&intruder.access, &owner.password)
        .await;

    app.recover(&owner, how).await;
    let confirmed = app.confirm_verification(&link).await;

    assert_problem(confirmed, 400, "invalid-verification-token").await;
    match how {
        Recovery::Delete => assert_eq!(app.email_of(&owner).await, None),
        _ => assert_eq!(app.email_of(&owner).await, Some(owner.email.clone())),
    }
}

#[tokio::test]
async fn an_intruders_change_of_address_dies_when_the_owner_resets_the_password() {
    a_pending_change_of_address_dies_with(Recovery::Reset).await;
}

#[tokio::test]
async fn an_intruders_change_of_address_dies_when_the_owner_changes_the_password() {
    a_pending_change_of_address_dies_with(Recovery::PasswordChange).await;
}

#[tokio::test]
async fn an_intruders_change_of_address_dies_when_the_owner_logs_out_everywhere() {
    a_pending_change_of_address_dies_with(Recovery::LogoutAll).await;
}

#[tokio::test]
async fn an_intruders_change_of_address_dies_when_the_owner_enables_a_factor() {
    a_pending_change_of_address_dies_with(Recovery::EnableFactor).await;
}

#[tokio::test]
async fn an_intruders_change_of_address_dies_when_the_owner_deletes_the_account() {
    a_pending_change_of_address_dies_with(Recovery::Delete).await;
}

#[tokio::test]
async fn an_intruders_change_of_address_dies_when_the_owner_disables_the_factor() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let owner = app.enrolled_user().await;
    // The intruder holds a session of the account (the one that enrolled).
    let (_, link) = app
        .intruder_moves_the_account(&owner.access, &owner.user.password)
        .await;

    let disabled = app
        .disable_mfa(
            &owner.access,
            &owner.user.password,
            &owner.recovery_codes[0],
        )
        .await;
    assert_eq!(disabled.status(), 204);
    let confirmed = app.confirm_verification(&link).await;

    assert_problem(confirmed, 400, "invalid-verification-token").await;
    assert_eq!(app.email_of(&owner.user).await, Some(owner.user.email));
}

#[tokio::test]
async fn a_reset_link_and_a_verification_link_die_when_the_owner_logs_out_everywhere() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let owner = app.register_user().await;
    let verify_link = app.verify_token(&owner.email, VERIFY_SUBJECT, 1).await;
    let reset_link = app.reset_token_for(&owner).await;

    app.recover(&owner, Recovery::LogoutAll).await;

    assert_problem(
        app.confirm_reset(&reset_link, OTHER_STRONG_PASSWORD).await,
        400,
        "invalid-reset-token",
    )
    .await;
    assert_problem(
        app.confirm_verification(&verify_link).await,
        400,
        "invalid-verification-token",
    )
    .await;
}

#[tokio::test]
async fn a_change_of_address_still_queued_when_the_owner_recovers_mails_no_link() {
    let app = spawn_app().await;
    let owner = app.register_verified_user().await;
    let intruder = app.login_user(&owner).await;
    let theirs = format!("intruder-{}", app.unique_email());
    let requested = app
        .change_email(&intruder.access, &owner.password, &theirs)
        .await;
    assert_eq!(requested.status(), 202);

    // No worker yet: the link job waits in the queue while the owner acts.
    app.recover(&owner, Recovery::LogoutAll).await;
    let _worker = app.spawn_worker().await;
    app.emails_to(
        &owner.email,
        "Someone asked to change your email address",
        1,
    )
    .await;

    let db = app.database().await;
    for _ in 0..600 {
        let handled: i64 = db
            .query_one(
                "SELECT count(*) FROM processed_jobs WHERE queue = 'email.verification'",
                &[],
            )
            .await
            .unwrap()
            .get(0);
        if handled >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let links: i64 = db
        .query_one(
            "SELECT count(*) FROM email_tokens WHERE purpose = 'change_email'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(links, 0, "no link was made for the intruder's address");
    let mailed = read_emails(app.mail_dir())
        .into_iter()
        .filter(|e| e.to() == theirs)
        .count();
    assert_eq!(mailed, 0, "nothing was mailed to the intruder's address");
}

/// With a session and the password, guessing the code that turns the
/// factor off: each wrong code counts, and past the account's limit even
/// the right one is refused.
#[tokio::test]
async fn guessing_codes_to_turn_the_factor_off_is_stopped_at_the_account_limit() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "5".into());
    })
    .await;
    let owner = app.enrolled_user().await;
    let wrong = wrong_code(&owner.secret);

    let mut statuses = Vec::new();
    for _ in 0..6 {
        let response = app
            .disable_mfa(&owner.access, &owner.user.password, &wrong)
            .await;
        statuses.push(response.status().as_u16());
    }
    let right = app
        .disable_mfa(
            &owner.access,
            &owner.user.password,
            &owner.recovery_codes[0],
        )
        .await;

    assert_eq!(statuses, [400, 400, 400, 400, 400, 429], "{statuses:?}");
    assert!(right.headers().contains_key("retry-after"));
    assert_problem(right, 429, "too-many-requests").await;
    assert_eq!(
        json_body(app.me(&owner.access).await).await["mfa_enabled"],
        true
    );
}

/// With a session and the password, finishing an enrolment the owner left
/// pending by guessing its code: counted like any other guess.
#[tokio::test]
async fn guessing_the_code_of_a_pending_enrolment_is_stopped_at_the_account_limit() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "5".into());
    })
    .await;
    let owner = app.register_verified_user().await;
    let access = app.login_user(&owner).await.access;
    let enrolment = json_body(app.enrol(&access, &owner.password).await).await;
    let secret = secret_of(&enrolment);
    let wrong = wrong_code(&secret);

    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(app.confirm_mfa(&access, &wrong).await.status().as_u16());
    }
    let right = app.confirm_mfa(&access, &code(&secret, now())).await;

    assert_eq!(statuses, [400, 400, 400, 400, 400, 429], "{statuses:?}");
    assert_problem(right, 429, "too-many-requests").await;
    assert_eq!(json_body(app.me(&access).await).await["mfa_enabled"], false);
}

#[tokio::test]
async fn an_enrolment_left_pending_for_ten_minutes_can_no_longer_be_confirmed() {
    let app = spawn_app().await;
    let owner = app.register_verified_user().await;
    let access = app.login_user(&owner).await.access;
    let enrolment = json_body(app.enrol(&access, &owner.password).await).await;
    let secret = secret_of(&enrolment);
    app.database()
        .await
        .execute(
            "UPDATE mfa_totp SET created_at = now() - interval '601 seconds'",
            &[],
        )
        .await
        .unwrap();

    let confirmed = app.confirm_mfa(&access, &code(&secret, now())).await;

    assert_problem(confirmed, 409, "mfa-not-pending").await;
    assert_eq!(json_body(app.me(&access).await).await["mfa_enabled"], false);
}

/// Nine wrong codes at the login's second step, then the right password on
/// a signed-in endpoint: the re-check must not wash the count away.
#[tokio::test]
async fn a_password_recheck_does_not_wash_away_the_wrong_codes_before_it() {
    let app = spawn_app().await;
    let owner = app.enrolled_user().await;
    let wrong = wrong_code(&owner.secret);
    for _ in 0..9 {
        let mfa_token = app.mfa_token(&owner.user).await;
        let guessed = app
            .login_mfa(json!({"mfa_token": mfa_token, "code": wrong}))
            .await;
        assert_eq!(guessed.status(), 401);
    }

    // The right password, re-checked on a signed-in endpoint (the new
    // password is refused, so nothing changes).
    let rechecked = app
        .change_password(&owner.access, &owner.user.password, "short")
        .await;
    assert_eq!(rechecked.status(), 422);
    let mfa_token = app.mfa_token(&owner.user).await;
    let tenth = app
        .login_mfa(json!({"mfa_token": mfa_token, "code": wrong}))
        .await;
    let after = app.login(&owner.user.email, &owner.user.password).await;

    assert_eq!(tenth.status(), 401);
    assert_problem(after, 429, "too-many-requests").await;
}

/// Parallel wrong codes on many `mfa_token`s, one slot short of the limit:
/// exactly one is looked at (were more, a right code among them would win
/// past the limit), the rest are refused.
#[tokio::test]
async fn parallel_code_guesses_never_overshoot_the_account_limit() {
    let app = spawn_app().await;
    let owner = app.enrolled_user().await;
    let wrong = wrong_code(&owner.secret);
    let mut tokens = Vec::new();
    for _ in 0..22 {
        tokens.push(app.mfa_token(&owner.user).await);
    }
    for (token, guesses) in tokens[..2].iter().zip([5, 4]) {
        for _ in 0..guesses {
            let guessed = app
                .login_mfa(json!({"mfa_token": token, "code": wrong}))
                .await;
            assert_eq!(guessed.status(), 401);
        }
    }

    let guesses: Vec<serde_json::Value> = tokens[2..]
        .iter()
        .flat_map(|token| {
            let wrong = &wrong;
            (0..5).map(move |_| json!({"mfa_token": token, "code": wrong}))
        })
        .collect();
    let evaluated = r#"auth_mfa_total{outcome="invalid_code"}"#;
    let before = metric_at(&app.client, &app.address, evaluated).await;

    let statuses = statuses_of(guesses.into_iter().map(|guess| app.login_mfa(guess))).await;

    assert_eq!(count_of(&statuses, 401), 1, "{statuses:?}");
    assert_eq!(count_of(&statuses, 429), 99, "{statuses:?}");
    let after = metric_at(&app.client, &app.address, evaluated).await;
    assert_eq!(after - before, 1.0, "codes looked at past the limit");
}

/// Logging in to accounts of one's own with a second factor must not buy
/// more guesses from an address.
#[tokio::test]
async fn a_completed_mfa_login_does_not_lower_the_address_count() {
    let app = spawn_app_with(|vars| {
        vars.insert("LOGIN_MAX_FAILURES_PER_ADDRESS".into(), "5".into());
    })
    .await;
    let own = app.enrolled_user().await;
    for _ in 0..4 {
        let guessed = app
            .login(&app.unique_email(), "a guess at someone's password")
            .await;
        assert_eq!(guessed.status(), 401);
    }

    let mfa_token = app.mfa_token(&own.user).await;
    let completed = app
        .login_mfa(json!({"mfa_token": mfa_token, "code": code(&own.secret, now())}))
        .await;
    assert_eq!(completed.status(), 200);
    let fifth = app
        .login(&app.unique_email(), "a guess at someone's password")
        .await;
    let sixth = app
        .login(&app.unique_email(), "a guess at someone's password")
        .await;

    assert_eq!(fifth.status(), 401);
    assert_problem(sixth, 429, "too-many-requests").await;
}

#[tokio::test]
async fn enabling_a_factor_ends_the_intruders_other_session() {
    let app = spawn_app().await;
    let owner = app.register_verified_user().await;
    let intruder = app.login_user(&owner).await;
    let mine = app.login_user(&owner).await;

    let enrolment = json_body(app.enrol(&mine.access, &owner.password).await).await;
    let secret = secret_of(&enrolment);
    let confirmed = app.confirm_mfa(&mine.access, &code(&secret, now())).await;
    assert_eq!(confirmed.status(), 200);

    assert_eq!(app.me(&intruder.access).await.status(), 401);
    assert_eq!(app.refresh(Some(&intruder.refresh)).await.status(), 401);
    assert_eq!(app.me(&mine.access).await.status(), 200, "mine goes on");
    assert_eq!(app.refresh(Some(&mine.refresh)).await.status(), 200);
}

/// An enrolment replaced between the check of its code and its enabling:
/// the secret nobody confirmed must not be enabled.
#[tokio::test]
async fn a_confirm_raced_by_a_new_enrolment_enables_nothing() {
    let app = spawn_app().await;
    let owner = app.register_verified_user().await;
    let access = app.login_user(&owner).await.access;
    let checked = Arc::new(Notify::new());
    let resume = Arc::new(Notify::new());
    {
        let (checked, resume) = (checked.clone(), resume.clone());
        portcullis::services::seams::on_totp_code_checked(move |_| {
            let (checked, resume) = (checked.clone(), resume.clone());
            Box::pin(async move {
                checked.notify_one();
                resume.notified().await;
            })
        });
    }
    let first = secret_of(&json_body(app.enrol(&access, &owner.password).await).await);

    let confirm = tokio::spawn({
        let (client, url, access) = (
            app.client.clone(),
            app.url("/api/v1/users/me/mfa/totp/confirm"),
            access.clone(),
        );
        let code = code(&first, now());
        async move {
            client
                .post(url)
                .bearer_auth(access)
                .json(&json!({"code": code}))
                .send()
                .await
                .unwrap()
        }
    });
    checked.notified().await;
    let replaced = app.enrol(&access, &owner.password).await;
    assert_eq!(replaced.status(), 201);
    resume.notify_one();
    let confirmed = confirm.await.unwrap();

    assert_problem(confirmed, 409, "mfa-not-pending").await;
    assert_eq!(json_body(app.me(&access).await).await["mfa_enabled"], false);
}

/// Someone registers an address they do not own: before its owner proves
/// it, no factor can be set on it and it cannot be moved.
#[tokio::test]
async fn an_unverified_account_can_neither_enrol_a_factor_nor_move_its_address() {
    let app = spawn_app().await;
    let squatter = app.register_user().await;
    let access = app.login_user(&squatter).await.access;

    let enrol = app.enrol(&access, &squatter.password).await;
    let moved = app
        .change_email(&access, &squatter.password, &app.unique_email())
        .await;

    assert_problem(enrol, 403, "email-not-verified").await;
    assert_problem(moved, 403, "email-not-verified").await;
}

/// Change requests aimed at one victim's address from accounts of one's
/// own: all answered alike, but the victim gets no more links than the
/// verification limit allows.
#[tokio::test]
async fn change_requests_to_one_address_mail_it_no_more_than_the_limit() {
    let app = spawn_app_with(|vars| {
        vars.insert("VERIFY_MAX_REQUESTS_PER_EMAIL".into(), "2".into());
    })
    .await;
    let _worker = app.spawn_worker().await;
    let victim = app.unique_email();
    let mut statuses = Vec::new();
    let mut notices = Vec::new();
    for _ in 0..4 {
        let own = app.register_verified_user().await;
        let access = app.login_user(&own).await.access;
        statuses.push(
            app.change_email(&access, &own.password, &victim)
                .await
                .status()
                .as_u16(),
        );
        notices.push(own.email);
    }
    for email in &notices {
        app.emails_to(email, "Someone asked to change your email address", 1)
            .await;
    }
    app.emails_to(&victim, CHANGE_SUBJECT, 2).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    assert_eq!(statuses, [202, 202, 202, 202]);
    let mailed = read_emails(app.mail_dir())
        .into_iter()
        .filter(|e| e.to() == victim)
        .count();
    assert_eq!(mailed, 2);
}

/// A mail scanner or link preview that loads the page behind a change of
/// address (and runs its script) must not move the account: the page asks
/// for a click. A verification link's page still confirms on load.
#[tokio::test]
async fn the_page_behind_a_change_of_address_link_waits_for_a_click() {
    let app = spawn_app().await;
    let _worker = app.spawn_worker().await;
    let owner = app.register_verified_user().await;
    let access = app.login_user(&owner).await.access;
    let (_, change_link) = app
        .intruder_moves_the_account(&access, &owner.password)
        .await;
    let other = app.register_user().await;
    let verify_link = app.verify_token(&other.email, VERIFY_SUBJECT, 1).await;

    let change_page = app
        .get(&format!("/verify-email?token={change_link}"))
        .await
        .text()
        .await
        .unwrap();
    let verify_page = app
        .get(&format!("/verify-email?token={verify_link}"))
        .await
        .text()
        .await
        .unwrap();
    let spent_page = app
        .get(&format!("/verify-email?token={}", "A".repeat(43)))
        .await
        .text()
        .await
        .unwrap();

    assert!(
        change_page.contains(r#"data-link="change""#),
        "{change_page}"
    );
    assert!(change_page.contains("Use this address for my account"));
    assert!(
        verify_page.contains(r#"data-link="verify""#),
        "{verify_page}"
    );
    assert!(spent_page.contains(r#"data-link="spent""#), "{spent_page}");
    assert_eq!(
        app.email_of(&owner).await,
        Some(owner.email.clone()),
        "loading the page changed nothing"
    );
}
