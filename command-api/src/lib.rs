//! The wallet's HTTP API (axum): native wallet commands and queries, health, metrics.
//!
//! # Layout
//! - [`config`]: the `Config` read from the environment, printed with secrets masked.
//! - [`app`]: builds the router over a [`eventstore::WalletStore`] and runs the server;
//!   `Application` lets tests start the real server in-process on port 0.
//! - [`auth`]: bearer tokens per client, with scopes.
//! - [`error`]: `ApiError`, the one place where outcomes become HTTP codes and bodies.
//! - [`json`]: the strict JSON body extractor (size limit, unknown fields refused).
//! - [`metrics`]: Prometheus counters and histograms per route and outcome.
//! - [`routes`]: one module per group of endpoints.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod config;
pub mod error;
pub mod expiry;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod provider;
pub mod routes;
pub mod sessions;

pub use app::{run, Application};
pub use config::Config;
