//! Black-box tests of the API: the real router and layers on a random port,
//! against real PostgreSQL, Redis and RabbitMQ.

#[path = "../common/mod.rs"]
mod common;

mod conventions;
mod docs;
mod health;
mod helpers;
mod layers;
mod metrics;
mod shutdown;
