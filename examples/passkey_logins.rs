//! Passkey sign-ins per second beside password logins, at the same
//! concurrency, against a running api (`bench/passkeys.sh` starts one).
//!
//! Each worker is one user with one soft passkey (webauthn-authenticator-rs)
//! and signs in again and again: with the password (`POST /auth/login`,
//! one Argon2 run each), then with the passkey (`/auth/passkey/start`, a
//! signature, `/auth/passkey/finish`). A passkey's sign count must move on,
//! so each worker keeps its own credential and signs in one at a time.
//!
//! Usage: passkey_logins BASE_URL [WORKERS] [SECONDS]; the api must run
//! with `PUBLIC_URL=http://localhost:...` (the relying party `localhost`),
//! and limits high enough for the load. Prints a Markdown table.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use webauthn_authenticator_rs::WebauthnAuthenticator;
use webauthn_authenticator_rs::softpasskey::SoftPasskey;
use webauthn_rs::prelude::Url;
use webauthn_rs_proto::{
    AllowCredentials, CreationChallengeResponse, PublicKeyCredentialCreationOptions,
    PublicKeyCredentialRequestOptions, RequestChallengeResponse,
};

const PASSWORD: &str = "correct horse battery staple";

struct Worker {
    client: reqwest::Client,
    base: String,
    origin: Url,
    email: String,
    user_id: uuid::Uuid,
    credential_id: Vec<u8>,
    authenticator: WebauthnAuthenticator<SoftPasskey>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = args
        .first()
        .cloned()
        .unwrap_or_else(|| "http://localhost:8000".into());
    let workers: usize = args.get(1).map_or(Ok(16), |n| n.parse())?;
    let seconds: u64 = args.get(2).map_or(Ok(10), |n| n.parse())?;
    let origin = Url::parse(&base)?;
    let database_url = std::env::var("DATABASE_URL")?;

    let mut ready = Vec::new();
    for n in 0..workers {
        ready.push(Worker::enrol(&base, &origin, &database_url, n).await?);
    }
    let duration = Duration::from_secs(seconds);
    let password = measure(&mut ready, duration, false).await?;
    let passkey = measure(&mut ready, duration, true).await?;
    println!("| sign-in ({workers} at once, {seconds} s) | per second | p50 | p99 |");
    println!("| --- | --- | --- | --- |");
    for (name, result) in [("password (Argon2)", &password), ("passkey", &passkey)] {
        println!(
            "| {name} | {:.1} | {:.1} ms | {:.1} ms |",
            result.per_second, result.p50_ms, result.p99_ms
        );
    }
    println!(
        "\npasskey / password: {:.1}x",
        passkey.per_second / password.per_second
    );
    Ok(())
}

struct Measured {
    per_second: f64,
    p50_ms: f64,
    p99_ms: f64,
}

/// Every worker signs in back to back for `duration`; any failure stops
/// the run.
async fn measure(
    workers: &mut Vec<Worker>,
    duration: Duration,
    passkey: bool,
) -> anyhow::Result<Measured> {
    let started = Instant::now();
    let tasks: Vec<_> = std::mem::take(workers)
        .into_iter()
        .map(|mut worker| {
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                while started.elapsed() < duration {
                    let at = Instant::now();
                    if passkey {
                        worker.sign_in_with_passkey().await?;
                    } else {
                        worker.sign_in_with_password().await?;
                    }
                    latencies.push(at.elapsed());
                }
                anyhow::Ok((worker, latencies))
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let (worker, latencies) = task.await??;
        workers.push(worker);
        all.extend(latencies);
    }
    let elapsed = started.elapsed().as_secs_f64();
    all.sort_unstable();
    let at = |q: f64| all[((all.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1000.0;
    Ok(Measured {
        per_second: all.len() as f64 / elapsed,
        p50_ms: at(0.5),
        p99_ms: at(0.99),
    })
}

impl Worker {
    /// A verified user with one passkey.
    async fn enrol(base: &str, origin: &Url, database_url: &str, n: usize) -> anyhow::Result<Self> {
        let client = reqwest::Client::new();
        let email = format!(
            "passkey-bench-{n}-{}@example.com",
            uuid::Uuid::new_v4().simple()
        );
        let registered: Value = client
            .post(format!("{base}/api/v1/auth/register"))
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        let user_id: uuid::Uuid = registered["id"].as_str().unwrap_or_default().parse()?;
        // Verified as its link would; the bench is not about the link.
        let (db, connection) = tokio_postgres::connect(database_url, tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        db.execute(
            "UPDATE users SET email_verified = true WHERE id = $1",
            &[&user_id],
        )
        .await?;
        let mut worker = Self {
            client,
            base: base.to_owned(),
            origin: origin.clone(),
            email,
            user_id,
            credential_id: Vec::new(),
            authenticator: WebauthnAuthenticator::new(SoftPasskey::new(true)),
        };
        let access = worker.sign_in_with_password().await?;
        let start: Value = worker
            .post(
                "/api/v1/users/me/passkeys/registration/start",
                Some(&access),
                json!({"current_password": PASSWORD}),
            )
            .await?;
        let mut options: PublicKeyCredentialCreationOptions =
            serde_json::from_value(start["options"].clone())?;
        // The soft passkey keeps no resident credential.
        if let Some(selection) = options.authenticator_selection.as_mut() {
            selection.require_resident_key = false;
        }
        let credential = worker
            .authenticator
            .do_registration(
                worker.origin.clone(),
                CreationChallengeResponse {
                    public_key: options,
                },
            )
            .map_err(|e| anyhow::anyhow!("registering: {e:?}"))?;
        worker.credential_id = credential.raw_id.as_ref().to_vec();
        worker
            .post(
                "/api/v1/users/me/passkeys/registration/finish",
                Some(&access),
                json!({"challenge_id": start["challenge_id"], "name": "bench", "credential": credential}),
            )
            .await?;
        Ok(worker)
    }

    async fn post(&self, path: &str, access: Option<&str>, body: Value) -> anyhow::Result<Value> {
        let mut request = self.client.post(format!("{}{path}", self.base)).json(&body);
        if let Some(access) = access {
            request = request.bearer_auth(access);
        }
        Ok(request.send().await?.error_for_status()?.json().await?)
    }

    /// The access token of a password login.
    async fn sign_in_with_password(&mut self) -> anyhow::Result<String> {
        let tokens = self
            .post(
                "/api/v1/auth/login",
                None,
                json!({"email": self.email, "password": PASSWORD}),
            )
            .await?;
        Ok(tokens["access_token"]
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    async fn sign_in_with_passkey(&mut self) -> anyhow::Result<()> {
        let start = self
            .post("/api/v1/auth/passkey/start", None, json!({}))
            .await?;
        let mut options: PublicKeyCredentialRequestOptions =
            serde_json::from_value(start["options"].clone())?;
        // A discoverable passkey finds its credential itself; the soft one
        // is told which, and its user handle is added (neither is signed).
        options.allow_credentials = vec![AllowCredentials {
            type_: "public-key".into(),
            id: self.credential_id.clone().into(),
            transports: None,
        }];
        let mut assertion = self
            .authenticator
            .do_authentication(
                self.origin.clone(),
                RequestChallengeResponse {
                    public_key: options,
                    mediation: None,
                },
            )
            .map_err(|e| anyhow::anyhow!("signing: {e:?}"))?;
        assertion.response.user_handle = Some(self.user_id.as_bytes().to_vec().into());
        self.post(
            "/api/v1/auth/passkey/finish",
            None,
            json!({"challenge_id": start["challenge_id"], "credential": assertion}),
        )
        .await?;
        Ok(())
    }
}
