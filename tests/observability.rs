//! The running system explains itself: JSON logs with correlation ids from
//! the HTTP request through the queue to the email, no secrets in any log,
//! and every metric that the dashboard and the alerts query really exported.
//! These tests run the real binaries and read what they print.

#[path = "common/mod.rs"]
mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{Process, TestResources, wait_for_emails};
use serde_json::{Value, json};

const PASSWORD: &str = "correct horse battery staple";

struct Stack {
    resources: TestResources,
    api: Process,
    worker: Process,
    client: reqwest::Client,
}

impl Stack {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let resources = TestResources::create().await;
        let mut vars = resources.vars();
        // `exercise` shows a reuse, so presenting a used token must be one.
        vars.insert("REFRESH_REUSE_GRACE_SECONDS".into(), "0".into());
        for (k, v) in extra {
            vars.insert((*k).into(), (*v).into());
        }
        let api = Process::start("api", "API_ADDR", vars.clone());
        let worker = Process::start("worker", "WORKER_METRICS_ADDR", vars);
        Self {
            resources,
            api,
            worker,
            client: reqwest::Client::new(),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api.address)
    }

    async fn post(&self, path: &str, body: Value, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.post(self.url(path)).json(&body);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request.send().await.unwrap()
    }

    async fn scrape(&self, base: &str) -> String {
        self.client
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }
}

/// The webhook secret of the log test (`whsec_` and the base64 of 32 bytes).
const WEBHOOK_SECRET: &str = "whsec_b2JzZXJ2YWJpbGl0eS13ZWJob29rLXNlY3JldC0zMiE=";

fn cookie(response: &reqwest::Response) -> String {
    response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("refresh_token=")
        .to_owned()
}

/// Every kind of traffic the dashboard shows: logins good and bad, a
/// refresh, a reuse, a denied token, a reset email.
/// Enrols a second factor for the user of `exercise`, logs in with
/// a code and a recovery code; returns every secret that went by: the TOTP
/// secret, the recovery codes, the mfa tokens, the codes and the key.
async fn exercise_mfa(stack: &Stack) -> Vec<String> {
    // Enrolment needs a verified address; the link is not what this shows.
    let (db, connection) =
        tokio_postgres::connect(&stack.resources.database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    db.execute(
        "UPDATE users SET email_verified = true WHERE email = 'observed@example.com'",
        &[],
    )
    .await
    .unwrap();
    let login: Value = stack
        .post(
            "/api/v1/auth/login",
            json!({"email": "observed@example.com", "password": PASSWORD}),
            &[],
        )
        .await
        .json()
        .await
        .unwrap();
    let access = login["access_token"].as_str().unwrap().to_owned();
    let access = access.as_str();
    let post = |path: &'static str, body: Value| {
        stack
            .client
            .post(stack.url(path))
            .bearer_auth(access)
            .json(&body)
            .send()
    };
    let enrolment: Value = post(
        "/api/v1/users/me/mfa/totp",
        json!({"current_password": PASSWORD}),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let base32 = enrolment["secret"].as_str().unwrap().to_owned();
    let secret = totp_rs::Secret::try_from_base32(&base32).unwrap().to_vec();
    let now = time::OffsetDateTime::now_utc().unix_timestamp() as u64;
    let first = portcullis::security::totp::code_at(&secret, now - 30);
    let confirmed: Value = post("/api/v1/users/me/mfa/totp/confirm", json!({"code": first}))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let mut secrets = vec![
        base32,
        first,
        stack.resources.vars()["DATA_ENCRYPTION_KEY"].clone(),
    ];
    let recovery: Vec<String> = confirmed["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    for proof in [
        json!({"code": portcullis::security::totp::code_at(&secret, now)}),
        json!({"recovery_code": recovery[0]}),
    ] {
        let challenge: Value = stack
            .post(
                "/api/v1/auth/login",
                json!({"email": "observed@example.com", "password": PASSWORD}),
                &[],
            )
            .await
            .json()
            .await
            .unwrap();
        let mfa_token = challenge["mfa_token"].as_str().unwrap().to_owned();
        let mut body = proof.clone();
        body["mfa_token"] = json!(mfa_token);
        let done = stack.post("/api/v1/auth/login/mfa", body, &[]).await;
        assert_eq!(done.status(), 200);
        secrets.push(mfa_token);
        if let Some(code) = proof["code"].as_str() {
            secrets.push(code.to_owned());
        }
    }
    secrets.extend(recovery);
    secrets
}

async fn exercise(stack: &Stack) -> (String, String, String) {
    let email = "observed@example.com";
    let response = stack
        .post(
            "/api/v1/auth/register",
            json!({"email": email, "password": PASSWORD}),
            &[],
        )
        .await;
    assert_eq!(response.status(), 201);
    let wrong = stack
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": "wrong password!"}),
            &[],
        )
        .await;
    assert_eq!(wrong.status(), 401);
    let login = stack
        .post(
            "/api/v1/auth/login",
            json!({"email": email, "password": PASSWORD}),
            &[],
        )
        .await;
    assert_eq!(login.status(), 200);
    let refresh_token = cookie(&login);
    let access: String = login.json::<Value>().await.unwrap()["access_token"]
        .as_str()
        .unwrap()
        .into();
    let me = stack
        .client
        .get(stack.url("/api/v1/users/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let refresh = |token: String| {
        stack
            .client
            .post(stack.url("/api/v1/auth/refresh"))
            .header("cookie", format!("refresh_token={token}"))
            .send()
    };
    let rotated = refresh(refresh_token.clone()).await.unwrap();
    assert_eq!(rotated.status(), 200);
    let reused = refresh(refresh_token.clone()).await.unwrap();
    assert_eq!(reused.status(), 401, "reuse with the grace window off");
    let denied = stack
        .client
        .get(stack.url("/api/v1/users/me"))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    let reset = stack
        .post(
            "/api/v1/auth/password-reset/request",
            json!({"email": email}),
            &[("x-correlation-id", "trace-reset-42")],
        )
        .await;
    assert_eq!(reset.status(), 202);
    wait_for_emails(
        &stack.resources.mail_dir,
        1,
        |e| e.subject() == "Reset your password",
        Duration::from_secs(30),
    )
    .await;
    (access, refresh_token, email.to_owned())
}

/// The metric names a PromQL expression reads.
fn metric_names(expr: &str) -> BTreeSet<String> {
    const KEYWORDS: &[&str] = &[
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "bool",
        "and",
        "or",
        "unless",
        "offset",
    ];
    let chars: Vec<char> = expr.chars().collect();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        // Label matchers, ranges and strings hold no metric names.
        if let Some(close) = match c {
            '{' => Some('}'),
            '[' => Some(']'),
            '"' => Some('"'),
            _ => None,
        } {
            i += 1;
            while i < chars.len() && chars[i] != close {
                if chars[i] == '"' && close != '"' {
                    i += 1;
                    while i < chars.len() && chars[i] != '"' {
                        i += 1;
                    }
                }
                i += 1;
            }
            i += 1;
            continue;
        }
        if c.is_ascii_alphabetic() || c == '_' || c == ':' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '_' || chars[i] == ':')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let mut j = i;
            while j < chars.len() && chars[j].is_whitespace() {
                j += 1;
            }
            // An aggregation reads `sum by (le) (...)`: a call all the same.
            let next_word: String = chars[j..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .collect();
            let is_call = (j < chars.len() && chars[j] == '(')
                || (!KEYWORDS.contains(&word.as_str())
                    && (next_word == "by" || next_word == "without"));
            if KEYWORDS.contains(&word.as_str()) {
                // `by (le, route)`: the grouping labels are not metrics.
                if is_call {
                    while j < chars.len() && chars[j] != ')' {
                        j += 1;
                    }
                    i = j + 1;
                }
                continue;
            }
            if !is_call && !word.starts_with("$__") {
                names.insert(word);
            }
            continue;
        }
        if c.is_ascii_digit() || c == '.' {
            // Numbers, with exponents (1e-9) and units.
            while i < chars.len()
                && (chars[i].is_ascii_alphanumeric() || chars[i] == '.' || chars[i] == '-')
            {
                i += 1;
            }
            continue;
        }
        i += 1;
    }
    names
}

fn dashboard_expressions() -> Vec<String> {
    fn walk(value: &Value, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(expr)) = map.get("expr") {
                    out.push(expr.clone());
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = include_str!("../monitoring/grafana/dashboards/portcullis.json");
    let dashboard: Value = serde_json::from_str(text).expect("the dashboard is JSON");
    let mut exprs = Vec::new();
    walk(&dashboard, &mut exprs);
    exprs
}

fn alert_expressions() -> Vec<String> {
    let text = include_str!("../monitoring/alerts.yml");
    let rules: Value = serde_norway::from_str(text).expect("the alert rules are YAML");
    rules["groups"]
        .as_array()
        .expect("rule groups")
        .iter()
        .flat_map(|group| group["rules"].as_array().cloned().unwrap_or_default())
        .map(|rule| {
            rule["expr"]
                .as_str()
                .expect("every rule has an expr")
                .to_owned()
        })
        .collect()
}

fn exported(scrape: &str) -> BTreeSet<String> {
    scrape
        .lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn expressions_are_read_for_their_metric_names() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (le, route) (rate(http_request_duration_seconds_bucket{job="api", route!~"/a|/b"}[5m]))) / clamp_min(sum(rate(http_requests_total[5m])), 1e-9) > 0.5"#,
    );
    assert_eq!(
        names,
        BTreeSet::from([
            "http_request_duration_seconds_bucket".to_owned(),
            "http_requests_total".to_owned()
        ])
    );
}

#[tokio::test]
async fn every_metric_the_dashboard_and_the_alerts_query_is_exported() {
    let stack = Stack::start(&[("REFRESH_REUSE_GRACE_SECONDS", "0")]).await;
    exercise(&stack).await;
    // The worker's gauges and the outbox gauge refresh every few seconds.
    tokio::time::sleep(Duration::from_millis(5500)).await;

    let mut available = exported(&stack.scrape(&stack.api.address).await);
    available.extend(exported(&stack.scrape(&stack.worker.address).await));

    let expressions: Vec<String> = dashboard_expressions()
        .into_iter()
        .chain(alert_expressions())
        .collect();
    assert!(expressions.len() > 10, "the dashboard and rules were read");
    let mut missing = BTreeSet::new();
    for expr in &expressions {
        for name in metric_names(expr) {
            if !available.contains(&name) {
                missing.insert(name);
            }
        }
    }
    assert!(missing.is_empty(), "queried but not exported: {missing:?}");
}

/// Before any request or job, the series a dashboard or a `rate()` alert
/// reads are there at zero (CONTRACT.md, "Scale-out").
#[tokio::test]
async fn every_counter_and_histogram_is_exported_at_zero_from_the_start() {
    let stack = Stack::start(&[]).await;
    let api = stack.scrape(&stack.api.address).await;
    let worker = stack.scrape(&stack.worker.address).await;
    for series in [
        "auth_logins_total{outcome=\"success\"} 0",
        "auth_logins_total{outcome=\"rate_limited\"} 0",
        "auth_refresh_total{outcome=\"reuse_detected\"} 0",
        "auth_denylist_checks_total{result=\"denied\"} 0",
        // The scrape itself is in flight.
        "\nhttp_requests_in_flight ",
        "http_request_duration_seconds_count{method=\"GET\",route=\"/api/v1/users/me\"} 0",
        "http_request_duration_seconds_count{method=\"DELETE\",route=\"/api/v1/users/me/sessions/{id}\"} 0",
        "http_request_duration_seconds_bucket{method=\"POST\",route=\"/api/v1/auth/refresh\",le=\"0.005\"} 0",
    ] {
        assert!(api.contains(series), "the api exports `{series}`");
    }
    for series in [
        "jobs_processed_total{kind=\"password_reset\",outcome=\"failed\"} 0",
        "job_duration_seconds_count{kind=\"password_reset\"} 0",
        "job_duration_seconds_count{kind=\"notice_refresh_reuse\"} 0",
    ] {
        assert!(worker.contains(series), "the worker exports `{series}`");
    }
}

#[tokio::test]
async fn a_correlation_id_follows_a_reset_from_the_request_to_the_email() {
    let stack = Stack::start(&[]).await;
    exercise(&stack).await;

    let api_lines = stack.api.lines();
    let request_line = api_lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| {
            l["correlation_id"] == "trace-reset-42"
                && l["route"] == "/api/v1/auth/password-reset/request"
        })
        .expect("the request's log line carries its correlation id");
    assert_eq!(request_line["status"], 202);
    assert_eq!(request_line["method"], "POST");
    assert!(request_line["latency_ms"].is_number());
    let worker_lines: Vec<Value> = stack
        .worker
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["correlation_id"] == "trace-reset-42")
        .collect();
    assert!(
        worker_lines.iter().any(|l| l["message"] == "email sent"),
        "the worker's lines for the job carry the request's correlation id: {worker_lines:?}"
    );
    let emails = common::read_emails(&stack.resources.mail_dir);
    let email = emails
        .iter()
        .find(|e| e.subject() == "Reset your password")
        .expect("the reset email");
    assert_eq!(email.header("X-Correlation-ID"), Some("trace-reset-42"));
}

#[tokio::test]
async fn every_log_line_is_one_json_object_with_a_utc_timestamp() {
    let stack = Stack::start(&[]).await;
    exercise(&stack).await;

    for line in stack.api.lines().iter().chain(stack.worker.lines().iter()) {
        let value: Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(value.get(key).is_some(), "{key} missing: {line}");
        }
        let timestamp = value["timestamp"].as_str().unwrap();
        assert!(timestamp.ends_with('Z'), "{timestamp}");
        assert!(
            time::OffsetDateTime::parse(timestamp, &time::format_description::well_known::Rfc3339)
                .is_ok(),
            "{timestamp}"
        );
        assert!(!line.contains("log.file"), "{line}");
    }
}

#[tokio::test]
async fn no_log_line_holds_a_password_a_token_a_cookie_or_the_secret() {
    // Webhooks to a port nobody answers: every delivery fails and is
    // logged, and the secret that signs them must not be.
    let webhook_port = common::closed_port().to_string();
    let webhook_url = format!("http://127.0.0.1:{webhook_port}/hook");
    let stack = Stack::start(&[
        ("RUST_LOG", "trace"),
        ("REFRESH_REUSE_GRACE_SECONDS", "0"),
        ("WEBHOOK_URL", webhook_url.as_str()),
        ("WEBHOOK_SECRET", WEBHOOK_SECRET),
        ("WEBHOOK_RETRY_BASE_SECONDS", "1"),
    ])
    .await;
    let (access, refresh, _) = exercise(&stack).await;
    let second_factor = exercise_mfa(&stack).await;
    // The secret the processes really run with, not a look-alike.
    let jwt_secret = stack.resources.vars()["JWT_SECRET"].clone();
    // Every line of the private signing key's base64 body.
    let signing_key: Vec<String> =
        std::fs::read_to_string(&stack.resources.vars()["JWT_SIGNING_KEYS"])
            .unwrap()
            .lines()
            .filter(|line| !line.starts_with("-----") && line.len() >= 16)
            .map(str::to_owned)
            .collect();
    assert!(!signing_key.is_empty());
    let reset_token = common::read_emails(&stack.resources.mail_dir)
        .iter()
        .find_map(|e| e.reset_token())
        .expect("the reset email");

    let secrets = [
        PASSWORD,
        "wrong password!",
        access.as_str(),
        access.split('.').nth(2).unwrap(),
        refresh.as_str(),
        reset_token.as_str(),
        jwt_secret.as_str(),
        WEBHOOK_SECRET,
        WEBHOOK_SECRET.trim_start_matches("whsec_"),
    ]
    .into_iter()
    .chain(second_factor.iter().map(String::as_str))
    .chain(signing_key.iter().map(String::as_str))
    .collect::<Vec<&str>>();
    let lines: Vec<String> = stack
        .api
        .lines()
        .into_iter()
        .chain(stack.worker.lines())
        .collect();
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r#""level":"DEBUG""#) || l.contains(r#""level":"TRACE""#)),
        "debug and trace logging was on"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("the receiver could not be reached")),
        "webhook deliveries were tried, and their failures logged"
    );
    for line in &lines {
        for secret in &secrets {
            assert!(!line.contains(secret), "a secret in a log line: {line}");
        }
        assert!(
            !line.to_ascii_lowercase().contains("refresh_token="),
            "a cookie in a log line: {line}"
        );
    }
}
