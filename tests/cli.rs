//! The binary itself: exit codes, `migrate`, `openapi`, and a clean stop on
//! SIGTERM for both processes.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::TestResources;

const BINARY: &str = env!("CARGO_BIN_EXE_portcullis");

/// The binary with exactly `vars` as its environment, run in an empty
/// directory so a developer's `.env` cannot leak in.
fn command(args: &[&str], vars: &HashMap<String, String>) -> (Command, tempdir::Dir) {
    let dir = tempdir::Dir::new();
    let mut command = Command::new(BINARY);
    command
        .args(args)
        .env_clear()
        .envs(vars)
        .current_dir(&dir.0)
        .stdin(Stdio::null());
    (command, dir)
}

mod tempdir {
    /// A directory removed on drop.
    pub struct Dir(pub std::path::PathBuf);

    impl Dir {
        pub fn new() -> Self {
            let path =
                std::env::temp_dir().join(format!("portcullis-cli-{}", uuid::Uuid::new_v4()));
            std::fs::create_dir_all(&path).unwrap();
            Self(path)
        }
    }

    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn valid_vars() -> HashMap<String, String> {
    [
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        ("REDIS_URL", "redis://127.0.0.1:6379"),
        ("AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/%2f"),
        ("JWT_SECRET", "0123456789abcdef0123456789abcdef"),
        ("JWT_ALGORITHM", "HS256"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

fn assert_config_error(vars: HashMap<String, String>, variable: &str) {
    for subcommand in ["api", "worker", "migrate"] {
        let (mut command, _dir) = command(&[subcommand], &vars);
        let output = command.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{subcommand}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(variable), "{stderr}");
    }
}

#[test]
fn a_missing_required_variable_stops_every_process_with_exit_code_2() {
    for variable in ["DATABASE_URL", "REDIS_URL", "AMQP_URL", "JWT_SECRET"] {
        let mut vars = valid_vars();
        vars.remove(variable);
        assert_config_error(vars, variable);
    }
}

#[test]
fn an_unsafe_jwt_secret_stops_the_process_with_exit_code_2() {
    let mut vars = valid_vars();
    vars.insert(
        "JWT_SECRET".into(),
        "only-31-bytes-long-xxxxxxxxxxxx".into(),
    );
    assert_config_error(vars, "JWT_SECRET");
}

#[test]
fn the_published_example_secret_stops_the_process_outside_development() {
    let mut vars = valid_vars();
    vars.insert(
        "JWT_SECRET".into(),
        portcullis::config::EXAMPLE_JWT_SECRET.into(),
    );
    assert_config_error(vars, "JWT_SECRET");
}

#[test]
fn the_published_example_data_key_stops_the_process_outside_development() {
    let mut vars = valid_vars();
    vars.insert(
        "DATA_ENCRYPTION_KEY".into(),
        portcullis::config::EXAMPLE_DATA_ENCRYPTION_KEY.into(),
    );
    assert_config_error(vars, "DATA_ENCRYPTION_KEY");
}

#[test]
fn a_malformed_value_stops_the_process_with_exit_code_2() {
    let mut vars = valid_vars();
    vars.insert("ACCESS_TOKEN_TTL_SECONDS".into(), "fifteen minutes".into());
    assert_config_error(vars, "ACCESS_TOKEN_TTL_SECONDS");
}

#[test]
fn the_dotenv_file_is_read() {
    let vars = HashMap::new();
    let (mut command, dir) = command(&["api"], &vars);
    std::fs::write(
        dir.0.join(".env"),
        "DATABASE_URL=postgres://x@127.0.0.1/x\nREDIS_URL=redis://127.0.0.1\nAMQP_URL=amqp://127.0.0.1\nJWT_SECRET=short\n",
    )
    .unwrap();

    let output = command.output().unwrap();

    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("JWT_SECRET"));
}

#[test]
fn an_unknown_subcommand_is_a_usage_error() {
    let (mut command, _dir) = command(&["serve"], &valid_vars());
    let output = command.output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("usage"));
}

#[test]
fn openapi_prints_the_committed_document() {
    // Needs no configuration at all.
    let (mut command, _dir) = command(&["openapi"], &HashMap::new());
    let output = command.output().unwrap();
    assert!(output.status.success());
    assert!(
        output.stdout == include_bytes!("../openapi/openapi.json"),
        "openapi/openapi.json differs from `portcullis openapi`: run `just openapi`"
    );
    let (mut admin, _dir) = self::command(&["openapi", "--admin"], &HashMap::new());
    let output = admin.output().unwrap();
    assert!(output.status.success());
    assert!(
        output.stdout == include_bytes!("../openapi/admin.json"),
        "openapi/admin.json differs from `portcullis openapi --admin`: run `just openapi`"
    );
}

#[tokio::test]
async fn migrate_applies_the_migrations_and_exits() {
    let resources = TestResources::create().await;
    let (mut command, _dir) = command(&["migrate"], &resources.vars());

    let output = command.output().unwrap();

    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stdout)
    );
    let (client, connection) =
        tokio_postgres::connect(&resources.database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let row = client
        .query_one("SELECT to_regclass('public.users') IS NOT NULL", &[])
        .await
        .unwrap();
    assert!(row.get::<_, bool>(0));
    // A second run finds nothing to do and succeeds.
    let (mut again, _dir) = self::command(&["migrate"], &resources.vars());
    assert!(again.output().unwrap().status.success());
}

/// A process started by [`start`], with the rest of its stdout.
struct Started {
    child: Child,
    stdout: BufReader<std::process::ChildStdout>,
}

/// Starts a long-running subcommand on a random port and returns it and the
/// address it logged.
fn start(
    subcommand: &str,
    addr_var: &str,
    mut vars: HashMap<String, String>,
) -> (Started, String, tempdir::Dir) {
    vars.insert(addr_var.into(), "127.0.0.1:0".into());
    vars.insert("LOG_FORMAT".into(), "json".into());
    if subcommand == "api" {
        vars.entry("ADMIN_ADDR".into())
            .or_insert_with(|| "127.0.0.1:0".into());
    }
    let (mut command, dir) = command(&[subcommand], &vars);
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut addr = None;
    for line in (&mut stdout).lines() {
        let line = line.unwrap();
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|_| panic!("not a JSON line: {line}"));
        for key in ["timestamp", "level", "target", "message"] {
            assert!(value.get(key).is_some(), "{key} missing from {line}");
        }
        if let Some(a) = value["addr"].as_str() {
            addr = Some(a.to_owned());
            break;
        }
    }
    let addr = addr.expect("the process logs its address");
    (Started { child, stdout }, addr, dir)
}

/// Sends SIGTERM and waits for the exit; returns the status and the
/// messages of the lines logged since the address.
fn terminate_and_wait(started: Started) -> (std::process::ExitStatus, Vec<String>) {
    let Started { mut child, stdout } = started;
    // Read on while it stops, so a full pipe never holds it up.
    let reader = std::thread::spawn(move || {
        stdout
            .lines()
            .map_while(Result::ok)
            .filter_map(|line| {
                let value: serde_json::Value = serde_json::from_str(&line).ok()?;
                value["message"].as_str().map(str::to_owned)
            })
            .collect::<Vec<String>>()
    });
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return (status, reader.join().unwrap());
        }
        assert!(
            Instant::now() < deadline,
            "the process did not stop on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test]
async fn the_api_serves_and_stops_cleanly_on_sigterm() {
    let resources = TestResources::create().await;
    let (api, addr, _dir) = start("api", "API_ADDR", resources.vars());

    let response = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let (status, messages) = terminate_and_wait(api);
    assert!(status.success(), "{status:?}");
    // Log lines are written in batches: the last ones still reach stdout
    // when the process exits.
    assert_eq!(
        messages.last().map(String::as_str),
        Some("api stopped"),
        "{messages:?}"
    );
}

#[tokio::test]
async fn the_worker_serves_health_and_metrics_and_stops_cleanly_on_sigterm() {
    let resources = TestResources::create().await;
    let (worker, addr, _dir) = start("worker", "WORKER_METRICS_ADDR", resources.vars());

    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("process_resident_memory_bytes"));

    let (status, messages) = terminate_and_wait(worker);
    assert!(status.success(), "{status:?}");
    assert_eq!(
        messages.last().map(String::as_str),
        Some("worker stopped"),
        "{messages:?}"
    );
}

#[test]
fn keys_generate_writes_a_private_key_for_the_owner_only_and_prints_its_kid() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = std::env::temp_dir().join(format!("portcullis-cli-keys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for algorithm in ["EdDSA", "ES256"] {
        let path = dir.join(format!("{algorithm}.pem"));
        let output = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["keys", "generate", "--algorithm", algorithm, "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        let kid = String::from_utf8(output.stdout).unwrap().trim().to_owned();
        assert_eq!(kid.len(), 43, "a base64url SHA-256 thumbprint: {kid}");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let pem = std::fs::read_to_string(&path).unwrap();
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));

        // It never overwrites a key.
        let again = Command::new(env!("CARGO_BIN_EXE_portcullis"))
            .args(["keys", "generate", "--algorithm", algorithm, "--out"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(!again.status.success());
        assert_eq!(std::fs::read_to_string(&path).unwrap(), pem);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_missing_or_bad_signing_key_file_stops_the_process_naming_it() {
    let dir = std::env::temp_dir().join(format!("portcullis-cli-badkey-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let garbage = dir.join("garbage.pem");
    std::fs::write(&garbage, "not a key").unwrap();
    for file in [dir.join("missing.pem"), garbage] {
        let mut vars = valid_vars();
        vars.insert("JWT_ALGORITHM".into(), "EdDSA".into());
        vars.insert("JWT_SIGNING_KEYS".into(), file.display().to_string());
        assert_config_error(vars, file.file_name().unwrap().to_str().unwrap());
    }
    let mut vars = valid_vars();
    vars.remove("JWT_ALGORITHM");
    assert_config_error(vars, "JWT_SIGNING_KEYS");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn stored_second_factors_need_the_key_they_were_sealed_with() {
    use portcullis::security::totp::SecretBox;
    let resources = TestResources::create().await;
    let mut vars = resources.vars();
    vars.insert("API_ADDR".into(), "127.0.0.1:0".into());
    let (mut migrate, _dir) = command(&["migrate"], &vars);
    assert!(migrate.output().unwrap().status.success());
    let key = vars["DATA_ENCRYPTION_KEY"].clone();
    let sealed = SecretBox::from_base64(&key)
        .unwrap()
        .seal(uuid::Uuid::nil(), b"12345678901234567890");
    let (client, connection) =
        tokio_postgres::connect(&resources.database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    client
        .execute(
            "INSERT INTO users (id, email, password_hash) VALUES ($1, 'mfa@example.com', '$argon2id$x')",
            &[&uuid::Uuid::nil()],
        )
        .await
        .unwrap();
    client
        .execute(
            "INSERT INTO mfa_totp (user_id, sealed_secret, enabled_at) VALUES ($1, $2, now())",
            &[&uuid::Uuid::nil(), &sealed],
        )
        .await
        .unwrap();

    let mut missing = vars.clone();
    missing.remove("DATA_ENCRYPTION_KEY");
    let mut wrong = vars.clone();
    wrong.insert(
        "DATA_ENCRYPTION_KEY".into(),
        "d3Jvbmcta2V5LXdyb25nLWtleS13cm9uZy1rZXktd3I=".into(),
    );
    for vars in [missing, wrong] {
        let (mut api, _dir) = command(&["api"], &vars);
        let output = api.output().unwrap();
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains("DATA_ENCRYPTION_KEY"), "{stderr}");
    }
    // With the right key it starts.
    let (api, addr, _dir) = start("api", "API_ADDR", vars);
    let health = reqwest::get(format!("http://{addr}/healthz"))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    terminate_and_wait(api);
}

#[tokio::test]
async fn admin_keys_are_made_listed_and_revoked_from_the_command_line() {
    let resources = TestResources::create().await;
    let vars = resources.vars();
    let run = |args: &[&str]| {
        let (mut command, _dir) = command(args, &vars);
        command.output().unwrap()
    };
    let created = run(&["admin-keys", "create", "--name", "ops@example.com"]);
    assert!(created.status.success(), "{created:?}");
    let key = String::from_utf8(created.stdout).unwrap().trim().to_owned();
    assert!(key.starts_with("pcadm_") && key.len() == 49, "{key}");
    let reader = run(&["admin-keys", "create", "--name", "auditor", "--read-only"]);
    assert!(reader.status.success(), "{reader:?}");
    let reader_key = String::from_utf8(reader.stdout).unwrap().trim().to_owned();

    // A name is one key, revoked or not; names are plain words.
    for name in ["ops@example.com", "has space", ""] {
        let refused = run(&["admin-keys", "create", "--name", name]);
        assert_eq!(refused.status.code(), Some(1), "{refused:?}");
        assert_eq!(String::from_utf8_lossy(&refused.stderr).lines().count(), 1);
    }
    let listed = run(&["admin-keys", "list"]);
    assert!(listed.status.success());
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(listed.contains("ops@example.com\tread-write\t"), "{listed}");
    assert!(listed.contains("auditor\tread-only\t"), "{listed}");
    assert!(!listed.contains(&key[6..]) && !listed.contains(&reader_key[6..]));

    // Only the SHA-256 is stored.
    let (client, connection) =
        tokio_postgres::connect(&resources.database_url, tokio_postgres::NoTls)
            .await
            .unwrap();
    tokio::spawn(connection);
    let stored: Vec<u8> = client
        .query_one(
            "SELECT key_hash FROM admin_keys WHERE name = 'ops@example.com'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    use sha2::Digest;
    assert_eq!(stored, sha2::Sha256::digest(key.as_bytes()).to_vec());

    // The key works on a running api's admin listener until it is revoked.
    let admin_addr = format!("127.0.0.1:{}", common::closed_port());
    let mut api_vars = vars.clone();
    api_vars.insert("ADMIN_ADDR".into(), admin_addr.clone());
    let (api, _addr, _dir) = start("api", "API_ADDR", api_vars);
    let users = |key: String| {
        let url = format!("http://{admin_addr}/admin/v1/users");
        async move {
            reqwest::Client::new()
                .get(url)
                .bearer_auth(key)
                .send()
                .await
                .unwrap()
                .status()
        }
    };
    assert_eq!(users(key.clone()).await, 200);
    let revoked = run(&["admin-keys", "revoke", "ops@example.com"]);
    assert!(revoked.status.success(), "{revoked:?}");
    assert_eq!(users(key).await, 401);
    assert_eq!(users(reader_key).await, 200);
    let again = run(&["admin-keys", "revoke", "ops@example.com"]);
    assert_eq!(again.status.code(), Some(1));
    let usage = run(&["admin-keys", "create"]);
    assert_eq!(usage.status.code(), Some(2));
    terminate_and_wait(api);
}
