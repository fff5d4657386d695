//! The api on a Redis Cluster (CONTRACT.md, "Scale-out"): three masters
//! started from the machine's `redis-server` on free loopback ports. The
//! authentication path works across slots (limits, denylist, not-before
//! marks), a user's keys share one slot, and when the master holding that
//! slot dies, the user's requests fail closed (503), never open, until it
//! is back.

#[path = "common/mod.rs"]
mod common;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Process, TestResources};

const PASSWORD: &str = "correct horse battery staple";

/// One `redis-server` in cluster mode.
struct Node {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Node {
    fn start(port: u16, dir: &Path) -> Self {
        let mut node = Self {
            port,
            dir: dir.to_owned(),
            child: None,
        };
        node.spawn();
        node
    }

    fn spawn(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--cluster-enabled", "yes"])
            .args([
                "--cluster-config-file",
                &format!("nodes-{}.conf", self.port),
            ])
            .args(["--cluster-node-timeout", "1000"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--dir", &self.dir.display().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed for the Redis Cluster test");
        self.child = Some(child);
        wait_until(Duration::from_secs(10), || {
            cli(self.port, &["PING"]) == "PONG"
        });
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three masters, no replicas, every slot covered.
struct Cluster {
    nodes: Vec<Node>,
    dir: PathBuf,
}

impl Cluster {
    fn start() -> Self {
        let dir = std::env::temp_dir().join(format!(
            "portcullis-redis-cluster-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let nodes: Vec<Node> = free_ports(3)
            .into_iter()
            .map(|port| Node::start(port, &dir))
            .collect();
        let mut create = Command::new("redis-cli");
        create.args(["--cluster", "create"]);
        for node in &nodes {
            create.arg(format!("127.0.0.1:{}", node.port));
        }
        let output = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli must be installed for the Redis Cluster test");
        assert!(
            output.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&output.stdout)
        );
        let cluster = Self { nodes, dir };
        cluster.wait_until_ok();
        cluster
    }

    fn wait_until_ok(&self) {
        wait_until(Duration::from_secs(20), || {
            self.nodes
                .iter()
                .all(|n| cli(n.port, &["CLUSTER", "INFO"]).contains("cluster_state:ok"))
        });
    }

    fn urls(&self) -> String {
        let urls: Vec<String> = self.nodes.iter().map(Node::url).collect();
        urls.join(",")
    }

    /// The node whose slots include the hash tag `{tag}`.
    fn owner_of(&mut self, tag: &str) -> &mut Node {
        let any = self.nodes[0].port;
        let slot: u16 = cli(any, &["CLUSTER", "KEYSLOT", &format!("{{{tag}}}")])
            .parse()
            .unwrap();
        let port =
            owner_port(&cli(any, &["CLUSTER", "NODES"]), slot).expect("a node owns every slot");
        self.nodes.iter_mut().find(|n| n.port == port).unwrap()
    }

    /// Every key on every node matching `pattern`, with its node's port.
    fn keys(&self, pattern: &str) -> Vec<(u16, String)> {
        self.nodes
            .iter()
            .filter(|n| n.child.is_some())
            .flat_map(|n| {
                cli(n.port, &["KEYS", pattern])
                    .lines()
                    .filter(|l| !l.is_empty())
                    .map(|k| (n.port, k.to_owned()))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        self.nodes.clear();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// The port of the node whose line of `CLUSTER NODES` (`<id> <ip:port@bus>
/// <flags> <master> <ping> <pong> <epoch> <link> <slots>...`) lists a range
/// holding `slot`.
fn owner_port(nodes: &str, slot: u16) -> Option<u16> {
    nodes.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let holds = fields
            .iter()
            .skip(8)
            .any(|range| match range.split_once('-') {
                Some((from, to)) => {
                    from.parse::<u16>().is_ok_and(|f| f <= slot)
                        && to.parse::<u16>().is_ok_and(|t| slot <= t)
                }
                None => range.parse::<u16>() == Ok(slot),
            });
        let address = fields.get(1)?.split('@').next()?;
        holds.then(|| address.rsplit(':').next()?.parse().ok())?
    })
}

fn cli(port: u16, args: &[&str]) -> String {
    let output = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli runs");
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "timed out after {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `count` ports free for a node and for its cluster bus (port + 10000).
fn free_ports(count: usize) -> Vec<u16> {
    let mut ports = Vec::new();
    while ports.len() < count {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        if port < 55_000 && std::net::TcpListener::bind(("127.0.0.1", port + 10_000)).is_ok() {
            ports.push(port);
        }
    }
    ports
}

fn api_on(cluster: &Cluster, resources: &TestResources) -> Process {
    let mut vars: HashMap<String, String> = resources.vars();
    vars.remove("REDIS_URL");
    vars.insert("REDIS_CLUSTER_NODES".into(), cluster.urls());
    vars.insert("LOGIN_MAX_FAILURES_PER_ACCOUNT".into(), "3".into());
    Process::start("api", "API_ADDR", vars)
}

async fn login(
    client: &reqwest::Client,
    api: &str,
    email: &str,
    password: &str,
) -> reqwest::Response {
    client
        .post(format!("{api}/api/v1/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
}

async fn access_token(response: reqwest::Response) -> String {
    assert_eq!(response.status(), 200);
    let body: serde_json::Value = response.json().await.unwrap();
    body["access_token"].as_str().unwrap().to_owned()
}

async fn me(client: &reqwest::Client, api: &str, token: &str) -> u16 {
    common::me_status(client, api, token).await
}

async fn register(client: &reqwest::Client, api: &str) -> (String, String) {
    let email = format!("cluster-{}@example.com", uuid::Uuid::new_v4().simple());
    let response = client
        .post(format!("{api}/api/v1/auth/register"))
        .json(&serde_json::json!({"email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body: serde_json::Value = response.json().await.unwrap();
    (email, body["id"].as_str().unwrap().to_owned())
}

#[tokio::test]
async fn the_auth_path_runs_on_a_cluster_and_fails_closed_when_a_master_dies() {
    let mut cluster = Cluster::start();
    let resources = TestResources::create().await;
    let api = api_on(&cluster, &resources);
    let client = reqwest::Client::new();
    let base = api.address.clone();

    let (email, user_id) = register(&client, &base).await;
    let first = access_token(login(&client, &base, &email, PASSWORD).await).await;
    assert_eq!(me(&client, &base, &first).await, 200);

    // Logout denylists the token and its session, in the user's slot.
    let logged_out = client
        .post(format!("{base}/api/v1/auth/logout"))
        .bearer_auth(&first)
        .send()
        .await
        .unwrap();
    assert_eq!(logged_out.status(), 204);
    assert_eq!(me(&client, &base, &first).await, 401);
    let keys = cluster.keys(&format!("portcullis:{{{user_id}}}:*"));
    assert!(
        keys.iter().any(|(_, k)| k.contains(":denylist:jti:"))
            && keys.iter().any(|(_, k)| k.contains(":denylist:sid:")),
        "the denylist entries carry the user's hash tag: {keys:?}"
    );
    assert!(
        keys.iter().all(|(port, _)| *port == keys[0].0),
        "a user's keys live on one node: {keys:?}"
    );

    // Logout-all sets the not-before mark in the same slot.
    let second = access_token(login(&client, &base, &email, PASSWORD).await).await;
    let everywhere = client
        .post(format!("{base}/api/v1/auth/logout-all"))
        .bearer_auth(&second)
        .send()
        .await
        .unwrap();
    assert_eq!(everywhere.status(), 204);
    assert_eq!(me(&client, &base, &second).await, 401);
    assert!(
        !cluster
            .keys(&format!("portcullis:{{{user_id}}}:*not_before:*"))
            .is_empty()
    );

    // The login limits count on the cluster: the account's counter and the
    // address's live in different slots.
    let (victim, _) = register(&client, &base).await;
    for _ in 0..3 {
        assert_eq!(
            login(&client, &base, &victim, "wrong password, wrong")
                .await
                .status(),
            401
        );
    }
    assert_eq!(login(&client, &base, &victim, PASSWORD).await.status(), 429);

    // The master holding the user's slot dies: that user's requests get
    // 503 (never 200) while its slots are down, before and after the
    // cluster notices.
    let token = access_token(login(&client, &base, &email, PASSWORD).await).await;
    assert_eq!(me(&client, &base, &token).await, 200);
    let owner = cluster.owner_of(&user_id);
    owner.kill();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut statuses = Vec::new();
    while Instant::now() < deadline {
        statuses.push(me(&client, &base, &token).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        statuses.iter().all(|s| *s == 503),
        "requests fail closed while the slot is down: {statuses:?}"
    );

    // Back, empty (it keeps nothing on disk): the cluster heals and the
    // api finds its way to the node again.
    cluster.restart_killed();
    cluster.wait_until_ok();
    let mut healed = false;
    for _ in 0..50 {
        let relogged = login(&client, &base, &email, PASSWORD).await;
        if relogged.status() == 200 {
            let token = access_token(relogged).await;
            healed = me(&client, &base, &token).await == 200;
            if healed {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(healed, "the api works again once the master is back");
}

impl Cluster {
    /// Starts again the node that was killed (its `nodes.conf` keeps its
    /// identity and slots).
    fn restart_killed(&mut self) {
        for node in &mut self.nodes {
            if node.child.is_none() {
                node.spawn();
            }
        }
    }
}
