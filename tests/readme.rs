//! Every curl example in the README runs, as written, against the real api
//! and worker, so the README cannot rot.

#[path = "common/mod.rs"]
mod common;

use common::{Process, TestResources};

const README: &str = include_str!("../README.md");

/// The ```sh blocks of the README that call curl, in order.
fn curl_blocks() -> Vec<String> {
    README
        .split("```sh\n")
        .skip(1)
        .map(|rest| rest.split("```").next().unwrap().to_owned())
        .filter(|block| block.contains("curl "))
        .collect()
}

#[tokio::test]
async fn the_readme_curl_examples_work() {
    let resources = TestResources::create().await;
    let workdir = std::env::temp_dir().join(format!("portcullis-readme-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&workdir).unwrap();
    let mut vars = resources.vars();
    vars.insert(
        "MAIL_TRANSPORT".into(),
        format!("file:{}", workdir.join("mail").display()),
    );
    let api = Process::start("api", "API_ADDR", vars.clone());
    let _worker = Process::start("worker", "WORKER_METRICS_ADDR", vars.clone());
    let port = api.address.rsplit(':').next().unwrap().to_owned();
    let admin_port = api
        .admin_address
        .as_deref()
        .and_then(|a| a.rsplit(':').next())
        .expect("the api serves the admin API")
        .to_owned();
    // `cargo run -q --` in the README is the binary under test, with the
    // api's environment.
    let binary = std::iter::once("env".to_owned())
        .chain(vars.iter().map(|(k, v)| format!("'{k}={v}'")))
        .chain([env!("CARGO_BIN_EXE_portcullis").to_owned()])
        .collect::<Vec<_>>()
        .join(" ");
    // As a person would: once /readyz says the broker is connected.
    for _ in 0..100 {
        let ready = reqwest::get(format!("{}/readyz", api.address))
            .await
            .unwrap();
        if ready.status() == 200 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let blocks = curl_blocks();
    assert!(blocks.len() >= 2, "the README has curl examples");
    let mut script = String::from("set -euo pipefail\n");
    for block in &blocks {
        script.push_str(
            &block
                .replace("localhost:8000", &format!("localhost:{port}"))
                .replace("localhost:8001", &format!("localhost:{admin_port}"))
                .replace("cargo run -q --", &binary),
        );
        // The reset email is written by the worker a moment after the 202.
        script = script.replace(
            "TOKEN=$(grep -ho",
            "for _ in $(seq 100); do grep -qs 'reset-password?token=' mail/*.eml && break; sleep 0.1; done\nTOKEN=$(grep -ho",
        );
    }

    let output = std::process::Command::new("bash")
        .arg("-c")
        .arg(&script)
        .current_dir(&workdir)
        .output()
        .expect("bash runs");

    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the examples failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(r#"{"status":"ok"}"#), "{stdout}");
    assert!(
        stdout.contains("http_requests_total") || stdout.contains("# TYPE"),
        "{stdout}"
    );
    assert!(stdout.contains(r#""email":"ada@example.com""#), "{stdout}");
    assert!(stdout.contains(r#""current":true"#), "{stdout}");
    assert!(stdout.contains("reset link is on its way"), "{stdout}");
    // The account's life: verified, moved, then deleted.
    assert!(
        stdout.contains(r#""email":"grace@navy.example","full_name":null,"email_verified":true"#),
        "{stdout}"
    );
    // Recovery: the owner's logout-all ends the intruder's session and link.
    assert!(stdout.contains("the intruder session: 401"), "{stdout}");
    assert!(stdout.contains("the intruder link: 400"), "{stdout}");
    // The security events of a registration and a login, newest first.
    assert!(
        stdout.contains(r#"["session.login_succeeded","account.registered"]"#),
        "{stdout}"
    );
    // Two-step login: recovery codes at enrolment, then a token.
    assert!(stdout.contains(r#"{"recovery_codes":["#), "{stdout}");
    assert!(stdout.contains(r#""token_type": "bearer""#), "{stdout}");
    // The JWKS check without a JOSE library verified a real token.
    assert!(
        stdout.contains("Signature Verified Successfully"),
        "{stdout}"
    );
    assert!(stdout.contains(r#""amr": ["#), "{stdout}");
    assert!(
        !stdout.contains("problems/"),
        "no example answered with a problem: {stdout}"
    );
    // Passkeys: the options of a discoverable sign-in.
    assert!(
        stdout.contains(r#""rpId":"localhost","userVerification":"required""#),
        "{stdout}"
    );
    // The admin walk-through: each refusal where the README says.
    for expected in [
        "without a key: 401",
        "factors removed: 204",
        "hopper, password only: 200",
        "its token: 401",
        "its password: 403",
        "a reset link: 409",
        "its new token: 401",
        "read-only, a read: 200",
        "read-only, a write: 403",
        "revoked: 401",
        "deleted: 204",
        "account.disabled by admin ops@example.com",
    ] {
        assert!(stdout.contains(expected), "{expected}: {stdout}");
    }
    // The reset at the end really set the new password.
    let login = reqwest::Client::new()
        .post(format!("{}/api/v1/auth/login", api.address))
        .json(&serde_json::json!({"email": "ada@example.com", "password": "a new long passphrase here"}))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), 200);
    let _ = std::fs::remove_dir_all(&workdir);
}
