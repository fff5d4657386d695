//! Two api and two worker processes on one database, one Redis and one
//! broker (CONTRACT.md, "Scale-out"): a workload spread over both apis
//! behaves as if one process served it. No job is published or emailed
//! twice, the login and reset limits count across the apis, a logout on
//! one kills the token on the other at once, and a refresh race across
//! the two rotates once.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{Process, TestResources, read_emails};

const PASSWORD: &str = "correct horse battery staple";
const USERS: usize = 12;

struct Replicas {
    apis: [Process; 2],
    workers: [Process; 2],
    client: reqwest::Client,
}

impl Replicas {
    fn start(resources: &TestResources) -> Self {
        let mut vars: HashMap<String, String> = resources.vars();
        vars.insert("RESET_MAX_REQUESTS_PER_EMAIL".into(), "3".into());
        vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "10".into());
        let apis = [
            Process::start("api", "API_ADDR", vars.clone()),
            Process::start("api", "API_ADDR", vars.clone()),
        ];
        vars.insert("MIGRATE_ON_START".into(), "false".into());
        let workers = [
            Process::start("worker", "WORKER_METRICS_ADDR", vars.clone()),
            Process::start("worker", "WORKER_METRICS_ADDR", vars),
        ];
        Self {
            apis,
            workers,
            client: reqwest::Client::new(),
        }
    }

    /// The api that serves request `i`: they alternate.
    fn api(&self, i: usize) -> &str {
        &self.apis[i % 2].address
    }

    async fn post(&self, i: usize, path: &str, body: serde_json::Value) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.api(i)))
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    async fn login(&self, i: usize, email: &str, password: &str) -> reqwest::Response {
        self.post(
            i,
            "/api/v1/auth/login",
            serde_json::json!({"email": email, "password": password}),
        )
        .await
    }

    async fn me(&self, i: usize, token: &str) -> u16 {
        common::me_status(&self.client, self.api(i), token).await
    }

    async fn refresh(&self, i: usize, cookie: &str) -> reqwest::Response {
        self.client
            .post(format!("{}/api/v1/auth/refresh", self.api(i)))
            .header("Cookie", format!("refresh_token={cookie}"))
            .send()
            .await
            .unwrap()
    }

    /// The sum over `processes` of the series `name{labels}`.
    async fn metric(&self, processes: &[Process], series: &str) -> f64 {
        let mut total = 0.0;
        for process in processes {
            total += common::metric(&self.client, process, series).await;
        }
        total
    }
}

struct Login {
    access: String,
    cookie: String,
}

async fn logged_in(response: reqwest::Response) -> Login {
    assert_eq!(response.status(), 200);
    let cookie = response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| v.strip_prefix("refresh_token="))
        .and_then(|v| v.split(';').next())
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().await.unwrap();
    Login {
        access: body["access_token"].as_str().unwrap().to_owned(),
        cookie,
    }
}

#[tokio::test]
async fn two_apis_and_two_workers_behave_as_one() {
    let resources = TestResources::create().await;
    let replicas = Replicas::start(&resources);
    let emails: Vec<String> = (0..USERS)
        .map(|i| format!("replica-{i}-{}@example.com", uuid::Uuid::new_v4().simple()))
        .collect();

    // Registrations spread over both apis: one verification email each.
    for (i, email) in emails.iter().enumerate() {
        let registered = replicas
            .post(
                i,
                "/api/v1/auth/register",
                serde_json::json!({"email": email, "password": PASSWORD}),
            )
            .await;
        assert_eq!(registered.status(), 201);
    }

    // Log in on one api, use and refresh on the other, log out on the
    // first: the token dies on the second at once.
    for (i, email) in emails.iter().enumerate() {
        let session = logged_in(replicas.login(i, email, PASSWORD).await).await;
        assert_eq!(replicas.me(i + 1, &session.access).await, 200);
        let refreshed = logged_in(replicas.refresh(i + 1, &session.cookie).await).await;
        let logged_out = replicas
            .client
            .post(format!("{}/api/v1/auth/logout", replicas.api(i)))
            .bearer_auth(&refreshed.access)
            .send()
            .await
            .unwrap();
        assert_eq!(logged_out.status(), 204);
        assert_eq!(replicas.me(i + 1, &refreshed.access).await, 401);
        assert_eq!(
            replicas.refresh(i + 1, &refreshed.cookie).await.status(),
            401
        );
    }

    // A refresh race across the two apis rotates the token once; the
    // others take the grace path.
    let rotations_before = replicas
        .metric(&replicas.apis, "auth_refresh_total{outcome=\"success\"}")
        .await;
    let session = logged_in(replicas.login(0, &emails[0], PASSWORD).await).await;
    let racing: Vec<_> = (0..8)
        .map(|i| replicas.refresh(i, &session.cookie))
        .collect();
    let answers = futures_util::future::join_all(racing).await;
    assert!(answers.iter().all(|r| r.status() == 200));
    let rotations = replicas
        .metric(&replicas.apis, "auth_refresh_total{outcome=\"success\"}")
        .await
        - rotations_before;
    assert_eq!(rotations, 1.0, "one of the racing refreshes rotates");

    // Ten failures split over the two apis lock the account on both.
    let victim = &emails[1];
    for i in 0..10 {
        let failed = replicas.login(i, victim, "not the password at all").await;
        assert_eq!(failed.status(), 401);
    }
    assert_eq!(replicas.login(0, victim, PASSWORD).await.status(), 429);
    assert_eq!(replicas.login(1, victim, PASSWORD).await.status(), 429);

    // Password resets through both apis: the per-email limit counts across
    // them, and every accepted request gives exactly one email.
    let limited = &emails[2];
    for i in 0..3 {
        let accepted = replicas
            .post(
                i,
                "/api/v1/auth/password-reset/request",
                serde_json::json!({"email": limited}),
            )
            .await;
        assert_eq!(accepted.status(), 202);
    }
    let refused = replicas
        .post(
            3,
            "/api/v1/auth/password-reset/request",
            serde_json::json!({"email": limited}),
        )
        .await;
    assert_eq!(refused.status(), 429);
    for (i, email) in emails.iter().enumerate().skip(3) {
        let accepted = replicas
            .post(
                i,
                "/api/v1/auth/password-reset/request",
                serde_json::json!({"email": email}),
            )
            .await;
        assert_eq!(accepted.status(), 202);
    }
    let resets_expected = 3 + (USERS - 3);
    let verifications_expected = USERS;
    common::wait_for_emails(
        resources.mail_dir.as_path(),
        resets_expected + verifications_expected,
        |_| true,
        Duration::from_secs(60),
    )
    .await;
    // Anything sent twice would arrive by now.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let sent = read_emails(&resources.mail_dir);
    let resets = sent.iter().filter(|e| e.reset_token().is_some()).count();
    let verifications = sent.iter().filter(|e| e.verify_token().is_some()).count();
    assert_eq!(
        resets, resets_expected,
        "one reset email per accepted request"
    );
    assert_eq!(
        verifications, verifications_expected,
        "one verification email per user"
    );
    let message_ids: std::collections::HashSet<&str> =
        sent.iter().filter_map(|e| e.header("Message-ID")).collect();
    assert_eq!(message_ids.len(), sent.len(), "no job emailed twice");
    for email in &emails[3..] {
        assert_eq!(
            sent.iter()
                .filter(|e| e.to() == email && e.reset_token().is_some())
                .count(),
            1
        );
    }

    // No job reached a worker twice: nothing was handled as a duplicate,
    // and every job the workers handled was sent.
    let duplicates = replicas
        .metric(
            &replicas.workers,
            "jobs_processed_total{kind=\"password_reset\",outcome=\"duplicate\"}",
        )
        .await
        + replicas
            .metric(
                &replicas.workers,
                "jobs_processed_total{kind=\"verify_email\",outcome=\"duplicate\"}",
            )
            .await;
    assert_eq!(duplicates, 0.0, "no job was published twice");
    let handled = replicas
        .metric(
            &replicas.workers,
            "jobs_processed_total{kind=\"password_reset\",outcome=\"sent\"}",
        )
        .await;
    assert_eq!(handled, resets_expected as f64);
}
