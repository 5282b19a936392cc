//! The Redis read models: what operators and front ends query, kept current by the
//! projection workers and rebuilt from the log by the replay tool. This crate is the one
//! owner of their layout: every key, every field, every write and every read is here.
//!
//! # Layout
//! - [`keys`]: the key layout, under one prefix per deployment (or per test), in
//!   generations.
//! - [`model`]: a wallet's read model, typed ([`WalletModel`]), and its one encoding
//!   into Redis fields and reservation JSON.
//! - [`change`]: what one logged event does to the read models ([`Change`]), derived from
//!   the event (decoded by the log's one decoder) and the balance its metadata recorded.
//! - [`apply`]: the live write: a Lua script that applies a change only if it is the
//!   wallet's next sequence, atomically with its leaderboard scores.
//! - [`project`]: one logged event into the read models, gaps filled from the log: what
//!   the workers and a rebuild's catch-up both call.
//! - [`write`]: the writes of whole read models: a rebuild's pipelines and a repair.
//! - [`totals`]: the per day, currency, provider and game totals: what each event adds,
//!   and the rows the API shows.
//! - [`query`]: the reads the API, reconcile and the tests make.
//! - [`round`]: the round view, folded on request from the round's events in the log
//!   (kept nowhere; its totals are the events' postings).
//! - [`connect`]: a client that reconnects on its own and never waits forever.
//!
//! Redis holds no money of its own: every figure here is a copy of the log, and
//! `replay-tool reconcile` proves it.
#![forbid(unsafe_code)]

pub mod apply;
pub mod change;
pub mod keys;
pub mod model;
pub mod project;
pub mod query;
pub mod round;
pub mod totals;
pub mod write;

pub use apply::{Applier, ApplyOutcome};
pub use change::{Change, ChangeError, ReservationChange};
pub use keys::{Generation, Keys, Period};
pub use model::{ReservationView, WalletModel};
pub use project::{project, ProjectError, Projected};
pub use query::LeaderboardEntry;
pub use round::RoundView;

use std::time::Duration;

use fred::prelude::*;

/// How long one Redis command may take before the caller gets an error (and answers
/// `UNAVAILABLE` or retries) instead of waiting for a Redis that is down.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

/// A failure to reach Redis or to read what it holds.
#[derive(Debug, thiserror::Error)]
pub enum ReadModelError {
    #[error("redis is unavailable: {0}")]
    Unavailable(#[from] fred::error::Error),
    #[error("the read model holds something unexpected: {0}")]
    Corrupt(String),
}

/// A Redis client for `url` (`redis://host:port/db`) that reconnects with exponential
/// backoff (fred's default is never) and gives up on a command after [`COMMAND_TIMEOUT`].
/// It starts connecting in the background and returns at once, so a Redis that is down at
/// start-up gives errors per request, not a process that cannot start.
pub async fn connect(url: &str) -> Result<Client, ReadModelError> {
    let config = Config::from_url(url)?;
    let client = Builder::from_config(config)
        .with_performance_config(|p| p.default_command_timeout = COMMAND_TIMEOUT)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(2);
            c.internal_command_timeout = COMMAND_TIMEOUT;
            c.max_command_attempts = 2;
        })
        .set_policy(ReconnectPolicy::new_exponential(0, 100, 5_000, 2))
        .build()?;
    client.connect();
    Ok(client)
}

/// Waits until `client` is connected, at most `within`.
pub async fn wait_connected(client: &Client, within: Duration) -> Result<(), ReadModelError> {
    match tokio::time::timeout(within, client.wait_for_connect()).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(ReadModelError::Unavailable(fred::error::Error::new(
            fred::error::ErrorKind::Timeout,
            format!("no connection within {within:?}"),
        ))),
    }
}
