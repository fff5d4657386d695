//! Portcullis: an authentication API and its background worker.
//!
//! Layers, top to bottom: `http` (server, layers, router, handlers) and
//! `worker` call services; services call repositories, `cache`, `messaging`
//! and `security`. See README.md, "Architecture".

pub mod app;
pub mod cache;
pub mod config;
pub mod db;
pub mod domain;
pub mod http;
pub mod mail;
pub mod messaging;
pub mod repositories;
pub mod security;
pub mod services;
pub mod telemetry;
pub mod worker;

pub use app::{cancel_on_signal, run_api, run_worker};
pub use config::Config;
