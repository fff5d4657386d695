//! RabbitMQ: the queue topology of CONTRACT.md ("Messaging") and a
//! [`Broker`] that keeps one connection alive for the process.

mod broker;
pub mod jobs;
pub mod relay;
pub mod topology;

pub use broker::Broker;
pub use topology::Topology;
