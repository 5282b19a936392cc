//! The wallet's HTTP API (axum): native wallet commands and queries, the provider face,
//! the Hub88-style face, game sessions, health, metrics.
//!
//! # Layout
//! Dependencies point down this list; no module uses one above it (the test
//! `tests/layering.rs` reads every `crate::` path outside comments and tests and fails
//! on one that points up, or on a module missing here).
//! - [`app`]: builds the state and the router over a [`eventstore::WalletStore`] and runs
//!   the server; `Application` lets tests start the real server in-process on port 0.
//! - [`routes`]: one module per face or group of endpoints (native wallets, native
//!   rounds and the round view, player protection, bonus money, read models, a wallet's
//!   history, reports, sessions, the provider face, the Hub88-style face, health).
//! - [`totals`]: the totals read model as the read routes and the reports ask for it: the
//!   days and slots a query names, and their rows.
//! - [`seamless`]: the calls providers make (bet, bet-win, win, rollback, adjustment)
//!   as domain commands, with their id scope and rules, for the provider and Hub88 faces.
//! - [`serve`]: the server loop over hyper's connections, with a bound on how long a
//!   request's head may take.
//! - [`expiry`]: the background sweep that expires reservations past their timeout.
//! - [`runner`]: the command runner every face calls (span, write path, outcome metric).
//! - [`metrics`]: Prometheus counters and histograms per route and outcome.
//! - [`gate`]: names the caller from the request's head, before its body is read or a
//!   slot is taken; refuses the unauthenticated.
//! - [`state`]: `AppState`, what every handler can reach.
//! - [`brands`]: each wallet's brand, read from the log once, for the brand check.
//! - [`presence`]: every instance says it is there; instances beside this one outside a
//!   cluster are counted, logged, exported and named by `/ready`.
//! - [`cluster`]: several instances on one database: members, each wallet's owner, and
//!   the write path that passes a command to its owner.
//! - [`config`]: the `Config` read from the environment, printed with secrets masked.
//! - [`auth`]: bearer tokens per client, with scopes.
//! - [`providers`]: the configured game providers and their request signatures.
//! - [`caps`]: the caps on what a provider may credit without a stake in one call.
//! - [`hub88`]: the Hub88 operators' RSA keys, signature checks, integer amounts, and
//!   the `RS_*` answer every call of that face gets.
//! - [`sessions`]: game sessions in Redis.
//! - [`limits`]: per-client rate limits, and the request slots (per principal and in all).
//! - [`principal`]: who a request claims to be, as the gate names it and the slots count
//!   it.
//! - [`json`]: strict bodies and query strings (size and time bounds, unknown or repeated
//!   fields refused).
//! - [`input`]: parsing ids, currencies and amounts into the domain's types.
//! - [`error`]: `ApiError`, the one place where outcomes become HTTP codes and bodies.
//! - [`openapi`]: the OpenAPI 3.1 document, collected from the handlers' annotations.
//! - [`body`]: the response bodies the faces share (a balance written from the domain's
//!   parts, with its schema).
//! - [`csv`]: CSV answers: whether a request asks for one, and the one writer of a line.
//! - [`clock`]: where "now" comes from: the system's clock, or one a test sets.
#![forbid(unsafe_code)]

pub mod app;
pub mod auth;
pub mod body;
pub mod brands;
pub mod caps;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod csv;
pub mod error;
pub mod expiry;
pub mod gate;
pub mod hub88;
pub mod input;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod openapi;
pub mod presence;
pub mod principal;
pub mod providers;
pub mod routes;
pub mod runner;
pub mod seamless;
pub mod serve;
pub mod sessions;
pub mod state;
pub mod totals;

pub use app::{run, Application};
pub use config::Config;
