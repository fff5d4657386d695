//! The api and the worker on a three-node RabbitMQ cluster (CONTRACT.md,
//! "Messaging" and "Scale-out"): `AMQP_URL` lists the three nodes, and the
//! node leading the password-reset quorum queue is killed (SIGKILL, as in a
//! crash) in the middle of a stream of reset requests. Every request is
//! still accepted, and every user gets exactly one reset email: nothing is
//! lost with the node, nothing is sent twice. Then two of the three nodes
//! die, so the queue has no leader and the broker refuses publishes; the
//! jobs accepted meanwhile go out once a second node is back.
//!
//! Ignored by default: the nodes are started from the machine's
//! `rabbitmq-server` by tests/support/rabbitmq-cluster.sh (beside the
//! machine's own node, which it never touches); `just test-cluster` runs it.

#[path = "common/mod.rs"]
mod common;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Process, TestResources, metric, read_emails, wait_for_emails};
use portcullis::messaging::Topology;
use portcullis::messaging::topology::JobQueue;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/support/rabbitmq-cluster.sh"
);
const PASSWORD: &str = "correct horse battery staple";
const USERS: usize = 200;

/// Three RabbitMQ nodes, clustered, with everything they write in `dir`;
/// stopped when dropped, even when starting them failed halfway.
struct RabbitCluster {
    dir: PathBuf,
    urls: Vec<String>,
}

impl RabbitCluster {
    fn start() -> Self {
        let mut cluster = Self {
            dir: std::env::temp_dir().join(format!(
                "portcullis-rabbitmq-cluster-{}",
                uuid::Uuid::new_v4().simple()
            )),
            urls: Vec::new(),
        };
        // The last line of the output lists the nodes' AMQP URLs.
        let started = cluster.run(&["start"]);
        cluster.urls = started
            .lines()
            .next_back()
            .unwrap_or_default()
            .split(',')
            .map(str::to_owned)
            .collect();
        assert_eq!(cluster.urls.len(), 3, "three AMQP URLs: {started}");
        cluster
    }

    /// `rabbitmq-cluster.sh COMMAND DIR ARGS...`; its progress (stderr)
    /// goes to the test's output, its result (stdout) is returned.
    fn run(&self, args: &[&str]) -> String {
        let (command, rest) = args.split_first().expect("a command");
        let started = Instant::now();
        let output = Command::new("bash")
            .arg(SCRIPT)
            .arg(command)
            .arg(&self.dir)
            .args(rest)
            .stdin(Stdio::null())
            .stderr(Stdio::inherit())
            .output()
            .expect("bash runs tests/support/rabbitmq-cluster.sh");
        assert!(
            output.status.success(),
            "rabbitmq-cluster.sh {} failed ({}); the nodes' logs are in {}",
            args.join(" "),
            output.status,
            self.dir.display()
        );
        eprintln!(
            "rabbitmq-cluster.sh {} took {:?}",
            args.join(" "),
            started.elapsed()
        );
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// The node (`pc-a@localhost`, ...) leading a quorum queue.
    fn leader(&self, queue: &str) -> String {
        self.run(&["leader", queue])
    }

    /// Kills a node's VM with SIGKILL.
    fn kill(&self, node: &str) {
        self.run(&["stop-node", node]);
    }

    /// Starts a killed node again and waits until it is back in the cluster.
    fn restart(&self, node: &str) {
        self.run(&["start-node", node]);
    }
}

impl Drop for RabbitCluster {
    fn drop(&mut self) {
        let _ = Command::new("bash")
            .arg(SCRIPT)
            .arg("stop")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .status();
        if std::thread::panicking() {
            eprintln!(
                "the RabbitMQ nodes' data and logs are kept in {}",
                self.dir.display()
            );
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Asks for a password reset link for `email`.
async fn request_reset(
    client: &reqwest::Client,
    api: &Process,
    email: &str,
) -> reqwest::StatusCode {
    post(
        client,
        api,
        "/api/v1/auth/password-reset/request",
        serde_json::json!({"email": email}),
    )
    .await
}

async fn post(
    client: &reqwest::Client,
    api: &Process,
    path: &str,
    body: serde_json::Value,
) -> reqwest::StatusCode {
    client
        .post(format!("{}{path}", api.address))
        .json(&body)
        .send()
        .await
        .unwrap()
        .status()
}

#[tokio::test]
#[ignore = "needs three RabbitMQ nodes: just test-cluster"]
async fn a_killed_queue_leader_loses_no_job_and_sends_none_twice() {
    // Declared first, so it is dropped last, after the processes using it.
    let cluster = RabbitCluster::start();
    let resources = TestResources::create().await;
    let queue = Topology::new(resources.queue_prefix.clone()).queue(JobQueue::PasswordReset);

    let mut vars: HashMap<String, String> = resources.vars();
    vars.insert("AMQP_URL".into(), cluster.urls.join(","));
    vars.insert("REGISTER_MAX_PER_ADDRESS".into(), "100000".into());
    vars.insert("EMAIL_REQUESTS_MAX_PER_ADDRESS".into(), "100000".into());
    // The cheapest hashing the api accepts: registering is not what is
    // tested here, and two cores also run three RabbitMQ nodes.
    vars.insert("ARGON2_MEMORY_KIB".into(), "8192".into());
    vars.insert("ARGON2_ITERATIONS".into(), "1".into());
    let api = Process::start("api", "API_ADDR", vars.clone());
    vars.insert("MIGRATE_ON_START".into(), "false".into());
    let worker = Process::start("worker", "WORKER_METRICS_ADDR", vars);
    let client = reqwest::Client::new();

    let emails: Vec<String> = (0..USERS)
        .map(|i| format!("rmq-{i}-{}@example.com", uuid::Uuid::new_v4().simple()))
        .collect();
    let registering = Instant::now();
    {
        use futures_util::StreamExt;
        let statuses: Vec<reqwest::StatusCode> = futures_util::stream::iter(&emails)
            .map(|email| {
                post(
                    &client,
                    &api,
                    "/api/v1/auth/register",
                    serde_json::json!({"email": email, "password": PASSWORD}),
                )
            })
            .buffer_unordered(4)
            .collect()
            .await;
        assert!(
            statuses.iter().all(|s| s.as_u16() == 201),
            "every registration succeeds: {statuses:?}"
        );
    }
    eprintln!("{USERS} users registered in {:?}", registering.elapsed());

    // One reset request per user; a third of the way through, the node
    // leading the reset queue dies. The api accepts every request all the
    // same (the job waits in the outbox while it reconnects).
    let mut killed = None;
    let requesting = Instant::now();
    for (i, email) in emails.iter().enumerate() {
        if i == USERS / 3 {
            let leader = cluster.leader(&queue);
            eprintln!("killing {leader}, the leader of {queue}, after {i} requests");
            cluster.kill(&leader);
            killed = Some((leader, Instant::now()));
        }
        let status = request_reset(&client, &api, email).await;
        assert_eq!(status.as_u16(), 202, "reset request {i} is accepted");
    }
    let (killed, killed_at) = killed.expect("a node was killed");
    eprintln!("{USERS} reset requests sent in {:?}", requesting.elapsed());

    let is_reset = |e: &common::SentEmail| e.reset_token().is_some();
    wait_for_emails(
        resources.mail_dir.as_path(),
        USERS,
        is_reset,
        Duration::from_secs(120),
    )
    .await;
    eprintln!(
        "{USERS} reset emails, the last {:?} after the kill",
        killed_at.elapsed()
    );
    // Anything sent twice would arrive by now.
    tokio::time::sleep(Duration::from_secs(3)).await;

    let sent = read_emails(&resources.mail_dir);
    let resets: Vec<&common::SentEmail> =
        sent.iter().filter(|e| e.reset_token().is_some()).collect();
    assert_eq!(resets.len(), USERS, "one reset email per request");
    for email in &emails {
        assert_eq!(
            resets.iter().filter(|e| e.to() == email).count(),
            1,
            "exactly one reset email to {email}"
        );
    }
    let message_ids: HashSet<&str> = sent.iter().filter_map(|e| e.header("Message-ID")).collect();
    assert_eq!(
        message_ids.len(),
        sent.len(),
        "no two emails share a Message-ID"
    );
    // The file transport names an email after its job, so a job sent twice
    // would replace its file: the worker's count of sent emails tells.
    let sent_count = metric(
        &client,
        &worker,
        "jobs_processed_total{kind=\"password_reset\",outcome=\"sent\"}",
    )
    .await;
    let duplicates = metric(
        &client,
        &worker,
        "jobs_processed_total{kind=\"password_reset\",outcome=\"duplicate\"}",
    )
    .await;
    eprintln!("worker: {sent_count} reset emails sent, {duplicates} redeliveries recognised");
    assert_eq!(sent_count, USERS as f64, "no reset job was emailed twice");

    // The queue has a new leader on a surviving node.
    let leader = cluster.leader(&queue);
    assert_ne!(leader, killed, "the queue elected a new leader");

    // The killed node comes back and rejoins; the cluster still carries jobs.
    cluster.restart(&killed);
    let again = request_reset(&client, &api, &emails[0]).await;
    assert_eq!(again.as_u16(), 202);
    wait_for_emails(
        resources.mail_dir.as_path(),
        USERS + 1,
        is_reset,
        Duration::from_secs(60),
    )
    .await;

    // The quorum lost, then regained. Two of the three nodes die, so the
    // queue has no leader and the broker refuses every publish; the api
    // still accepts every request, into the outbox. When a second node is
    // back the queue elects a leader and the jobs go out. The channel that
    // saw the refusals goes on refusing after the election (RabbitMQ's
    // quorum queue client on that channel keeps no leader), so the relay
    // must retry on a fresh one: without that, these jobs wait forever.
    let leader = cluster.leader(&queue);
    let leading = node_key(&leader);
    let second = ["a", "b", "c"]
        .into_iter()
        .find(|key| *key != leading)
        .unwrap();
    cluster.kill(leading);
    cluster.kill(second);
    let refused_before = refusals(&api);
    for (i, email) in emails[1..=QUORUMLESS].iter().enumerate() {
        let status = request_reset(&client, &api, email).await;
        assert_eq!(status.as_u16(), 202, "reset request {i} without a quorum");
    }
    let waiting = Instant::now();
    while refusals(&api) == refused_before {
        assert!(
            waiting.elapsed() < Duration::from_secs(60),
            "the broker refused no publish without a quorum"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "the broker refused publishes without a quorum, {:?} after the requests",
        waiting.elapsed()
    );
    let restarting = Instant::now();
    cluster.restart(second);
    wait_for_emails(
        resources.mail_dir.as_path(),
        USERS + 1 + QUORUMLESS,
        is_reset,
        Duration::from_secs(60),
    )
    .await;
    eprintln!(
        "{QUORUMLESS} reset emails, the last {:?} after the node was started again",
        restarting.elapsed()
    );
}

/// Reset requests made while two of the three nodes are down.
const QUORUMLESS: usize = 20;

/// `a`, `b` or `c` for a node name such as `pc-a@localhost`.
fn node_key(node: &str) -> &str {
    let name = node.split('@').next().unwrap_or_default();
    name.rsplit('-').next().unwrap_or_default()
}

/// How many publishes the api's relay has seen the broker refuse so far.
fn refusals(api: &Process) -> usize {
    api.lines()
        .iter()
        .filter(|line| line.contains("the broker did not take a job"))
        .count()
}
