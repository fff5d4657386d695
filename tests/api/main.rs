//! Black-box tests of the API: the real router and layers on a random port,
//! against real PostgreSQL, Redis and RabbitMQ.

#[path = "../common/mod.rs"]
mod common;

mod abuse_limits;
mod admin;
mod auth_login;
mod auth_logout;
mod auth_refresh;
mod auth_register;
mod auth_tokens;
mod conventions;
mod docs;
mod events;
mod health;
mod helpers;
mod jobs;
mod keys;
mod layers;
mod lifecycle;
mod metrics;
mod mfa;
mod pages;
mod passkeys;
mod password_reset;
mod recovery;
mod sessions;
mod shutdown;
mod users;
mod webhooks;
