//! One supervised RabbitMQ connection per process.
//!
//! The API must start and answer while RabbitMQ is down (CONTRACT.md,
//! "Password reset": the job is published when the broker is back), so the
//! connection is made in the background, with exponential backoff, and made
//! again whenever it drops. Each new connection redeclares the topology.
//! Users take the current connection, or watch for the next one.
//!
//! `AMQP_URL` may list the nodes of a cluster: each attempt takes the next
//! address, so a process whose node goes away reconnects to another one
//! (the quorum queues live on every node).

use std::sync::Arc;
use std::time::Duration;

use lapin::uri::AMQPUri;
use lapin::{Connection, ConnectionProperties};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::Topology;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Declaring quorum queues starts replicas on the broker: slow when it is busy.
const DECLARE_TIMEOUT: Duration = Duration::from_secs(60);
const MIN_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);
const HEALTH_POLL: Duration = Duration::from_millis(250);
/// The frame size offered to the broker when the URL sets none. lapin
/// keeps 32 frames of buffer each way per connection, so RabbitMQ's
/// default of 128 KiB costs 8 MiB of memory; jobs are under 1 KiB, and a
/// larger message would only take more frames.
const FRAME_MAX: u32 = 16 * 1024;

/// A handle to the supervised connection; cheap to clone.
#[derive(Clone)]
pub struct Broker {
    current: watch::Receiver<Option<Arc<Connection>>>,
    topology: Topology,
}

impl Broker {
    /// Starts the supervisor task; it stops, closing the connection, when
    /// `shutdown` is cancelled.
    pub fn start(
        urls: Vec<String>,
        topology: Topology,
        name: &'static str,
        shutdown: CancellationToken,
    ) -> Self {
        let (tx, rx) = watch::channel(None);
        tokio::spawn(supervise(urls, topology.clone(), name, tx, shutdown));
        Self {
            current: rx,
            topology,
        }
    }

    /// The live connection, if there is one right now.
    pub fn connection(&self) -> Option<Arc<Connection>> {
        self.current
            .borrow()
            .as_ref()
            .filter(|c| c.status().connected())
            .cloned()
    }

    pub fn is_connected(&self) -> bool {
        self.connection().is_some()
    }

    /// Notified whenever the connection is made or lost.
    pub fn watch(&self) -> watch::Receiver<Option<Arc<Connection>>> {
        self.current.clone()
    }

    pub fn topology(&self) -> &Topology {
        &self.topology
    }
}

async fn supervise(
    urls: Vec<String>,
    topology: Topology,
    name: &'static str,
    tx: watch::Sender<Option<Arc<Connection>>>,
    shutdown: CancellationToken,
) {
    let mut backoff = MIN_BACKOFF;
    let mut next = 0;
    loop {
        let url = &urls[next % urls.len()];
        next += 1;
        let node = node_of(url);
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return,
            attempt = connect(url, &topology, name) => attempt,
        };
        match attempt {
            Ok(connection) => {
                info!(connection = name, node, "connected to RabbitMQ");
                backoff = MIN_BACKOFF;
                let connection = Arc::new(connection);
                tx.send_replace(Some(connection.clone()));
                let stopping = wait_until_lost(&connection, &shutdown).await;
                tx.send_replace(None);
                if stopping {
                    let _ = connection.close(200, "shutting down".into()).await;
                    return;
                }
                warn!(
                    connection = name,
                    node, "lost the RabbitMQ connection; reconnecting"
                );
            }
            Err(error) => {
                warn!(
                    connection = name,
                    node,
                    error = format!("{error:#}"),
                    retry_in_ms = backoff.as_millis() as u64,
                    "cannot connect to RabbitMQ"
                );
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        // Every address tried once: wait longer before the next round.
        if next % urls.len() == 0 {
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }
}

/// `host:port` of an AMQP URL, for logs (never the credentials).
fn node_of(url: &str) -> String {
    url.parse::<AMQPUri>()
        .map(|uri| format!("{}:{}", uri.authority.host, uri.authority.port))
        .unwrap_or_default()
}

async fn connect(url: &str, topology: &Topology, name: &'static str) -> anyhow::Result<Connection> {
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    let mut uri: AMQPUri = url
        .parse()
        .map_err(|error| anyhow::anyhow!("AMQP_URL does not parse: {error}"))?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    let connection =
        tokio::time::timeout(CONNECT_TIMEOUT, Connection::connect_uri(uri, properties))
            .await
            .map_err(|_| anyhow::anyhow!("connecting timed out after {CONNECT_TIMEOUT:?}"))??;
    tokio::time::timeout(DECLARE_TIMEOUT, topology.declare(&connection))
        .await
        .map_err(|_| {
            anyhow::anyhow!("declaring the queues timed out after {DECLARE_TIMEOUT:?}")
        })??;
    Ok(connection)
}

/// Returns true when asked to shut down, false when the connection dropped.
async fn wait_until_lost(connection: &Connection, shutdown: &CancellationToken) -> bool {
    let mut poll = tokio::time::interval(HEALTH_POLL);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return true,
            _ = poll.tick() => {
                if !connection.status().connected() {
                    return false;
                }
            }
        }
    }
}
