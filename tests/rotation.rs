//! Signing-key rotation against running api processes (CONTRACT.md,
//! "Signing keys and JWKS"; README, "Rotating signing keys"): add the new
//! key last, promote it, retire the old one, restarting two api processes
//! one at a time as a rolling deployment would, while a client keeps
//! calling both with every token minted so far. No request fails until a
//! token's key is retired.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Process, TestResources};
use portcullis::security::keys::{SigningAlgorithm, generate, write_private_key};

const PASSWORD: &str = "correct horse battery staple";

/// What the background client calls, and what went wrong.
#[derive(Default)]
struct Traffic {
    targets: Vec<String>,
    tokens: Vec<String>,
    sent: usize,
    failures: Vec<String>,
}

fn start_api(vars: &HashMap<String, String>, keys: &[&Path]) -> Process {
    let mut vars = vars.clone();
    let list: Vec<String> = keys.iter().map(|p| p.display().to_string()).collect();
    vars.insert("JWT_SIGNING_KEYS".into(), list.join(","));
    Process::start("api", "API_ADDR", vars)
}

fn key_file(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    let (pem, kid) = generate(SigningAlgorithm::EdDsa).unwrap();
    write_private_key(&path, &pem).unwrap();
    (path, kid)
}

async fn login(client: &reqwest::Client, api: &str, email: &str) -> String {
    let response = client
        .post(format!("{api}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

fn kid_of(token: &str) -> String {
    jsonwebtoken::decode_header(token).unwrap().kid.unwrap()
}

async fn published_kids(client: &reqwest::Client, api: &str) -> Vec<String> {
    let jwks: serde_json::Value = client
        .get(format!("{api}/.well-known/jwks.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

async fn me_status(client: &reqwest::Client, api: &str, token: &str) -> u16 {
    client
        .get(format!("{api}/api/v1/users/me"))
        .bearer_auth(token)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .unwrap_or(0)
}

/// Restarts one api with `keys`: taken out of the client's targets first,
/// as a load balancer drains a pod, and put back once it listens.
async fn restart(
    traffic: &Arc<Mutex<Traffic>>,
    process: &mut Process,
    vars: &HashMap<String, String>,
    keys: &[&Path],
) {
    traffic
        .lock()
        .unwrap()
        .targets
        .retain(|t| *t != process.address);
    // Let requests in flight to it finish.
    tokio::time::sleep(Duration::from_millis(50)).await;
    *process = start_api(vars, keys);
    traffic
        .lock()
        .unwrap()
        .targets
        .push(process.address.clone());
}

#[tokio::test]
async fn keys_rotate_without_a_failed_request() {
    let resources = TestResources::create().await;
    let dir = std::env::temp_dir().join(format!("portcullis-rotation-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let (old, old_kid) = key_file(&dir, "old.pem");
    let (new, new_kid) = key_file(&dir, "new.pem");
    let vars = resources.vars();
    let client = reqwest::Client::new();

    let mut a = start_api(&vars, &[&old]);
    let mut b = start_api(&vars, &[&old]);
    let email = format!("rotation-{}@example.com", uuid::Uuid::new_v4().simple());
    let registered = client
        .post(format!("{}/api/v1/auth/register", a.address))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(registered.status(), 201);
    let before_rotation = login(&client, &a.address, &email).await;
    assert_eq!(kid_of(&before_rotation), old_kid);

    let traffic = Arc::new(Mutex::new(Traffic {
        targets: vec![a.address.clone(), b.address.clone()],
        tokens: vec![before_rotation.clone()],
        ..Traffic::default()
    }));
    let running = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let caller = {
        let (traffic, running, client) = (traffic.clone(), running.clone(), client.clone());
        tokio::spawn(async move {
            while running.load(std::sync::atomic::Ordering::Relaxed) {
                let (targets, tokens) = {
                    let t = traffic.lock().unwrap();
                    (t.targets.clone(), t.tokens.clone())
                };
                for target in &targets {
                    for token in &tokens {
                        let status = me_status(&client, target, token).await;
                        let mut t = traffic.lock().unwrap();
                        t.sent += 1;
                        // A target drained meanwhile is no failure.
                        if status != 200 && t.targets.contains(target) {
                            t.failures
                                .push(format!("{target} {} -> {status}", kid_of(token)));
                        }
                    }
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };

    // 1. Add the new key last: published everywhere, not yet signing.
    restart(&traffic, &mut a, &vars, &[&old, &new]).await;
    restart(&traffic, &mut b, &vars, &[&old, &new]).await;
    for api in [&a.address, &b.address] {
        assert_eq!(
            published_kids(&client, api).await,
            vec![old_kid.clone(), new_kid.clone()]
        );
    }
    let after_adding = login(&client, &b.address, &email).await;
    assert_eq!(kid_of(&after_adding), old_kid, "the old key still signs");
    traffic.lock().unwrap().tokens.push(after_adding);

    // 2. Promote it, one process at a time: for a while A signs with the
    // new key and B with the old, and each accepts the other's tokens.
    restart(&traffic, &mut a, &vars, &[&new, &old]).await;
    let promoted = login(&client, &a.address, &email).await;
    assert_eq!(kid_of(&promoted), new_kid);
    let from_b = login(&client, &b.address, &email).await;
    assert_eq!(kid_of(&from_b), old_kid);
    assert_eq!(me_status(&client, &b.address, &promoted).await, 200);
    assert_eq!(me_status(&client, &a.address, &from_b).await, 200);
    traffic
        .lock()
        .unwrap()
        .tokens
        .extend([promoted.clone(), from_b.clone()]);
    restart(&traffic, &mut b, &vars, &[&new, &old]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;

    // 3. Retire the old key (after ACCESS_TOKEN_TTL_SECONDS in production;
    // here its tokens leave the client's rotation first).
    traffic
        .lock()
        .unwrap()
        .tokens
        .retain(|t| kid_of(t) == new_kid);
    restart(&traffic, &mut a, &vars, &[&new]).await;
    restart(&traffic, &mut b, &vars, &[&new]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    running.store(false, std::sync::atomic::Ordering::Relaxed);
    caller.await.unwrap();

    let (sent, failures) = {
        let traffic = traffic.lock().unwrap();
        (traffic.sent, traffic.failures.clone())
    };
    assert!(sent > 50, "the client kept calling ({sent} requests)");
    assert!(failures.is_empty(), "{failures:?}");
    for api in [&a.address, &b.address] {
        assert_eq!(published_kids(&client, api).await, vec![new_kid.clone()]);
        assert_eq!(me_status(&client, api, &promoted).await, 200);
        assert_eq!(
            me_status(&client, api, &before_rotation).await,
            401,
            "retired"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
