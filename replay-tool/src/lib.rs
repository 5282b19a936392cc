//! The replay tool: the log is the truth, and this is how it is read back.
//!
//! # Layout
//! - [`fold`]: the checked fold of one wallet (the domain's `Wallet::apply` behind every
//!   invariant check), and the money totals per currency.
//! - [`stream`]: the log wallet by wallet, each folded, from one consistent snapshot.
//! - [`progress`]: a bar on a terminal, periodic lines otherwise; peak memory.
//! - [`audit`]: one wallet's history with the balance after each event, as of any time.
//! - [`rebuild`]: the read models folded afresh from the whole log into a new generation
//!   of keys (written through `readmodel::write`), the log's tail checked and projected
//!   with `readmodel::project`, then readers switched over at once.
//! - [`reconcile`]: every wallet's read model and latest snapshot compared with the fold
//!   of the log, wallet by wallet in bounded memory; optionally repaired (through
//!   `readmodel::write::repair`).
//! - [`verify`]: the ledger's invariants checked over the whole log.
//!
//! Every one of them folds with [`fold::WalletFold`]: the domain's own `Wallet::apply`,
//! behind checks that refuse an event the aggregate could never have decided.
#![forbid(unsafe_code)]

pub mod audit;
pub mod fold;
pub mod progress;
pub mod rebuild;
pub mod reconcile;
pub mod stream;
pub mod verify;

/// Why a replay could not finish. Nothing it reports is complete when it returns one.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("PostgreSQL: {}", chain(.0))]
    Store(#[from] eventstore::StoreError),
    #[error("Redis: {0}")]
    ReadModel(#[from] readmodel::ReadModelError),
    #[error("applying an event to the read models: {0}")]
    Project(String),
    #[error("{0}")]
    Log(String),
    #[error("{0}")]
    Invalid(String),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

impl From<fred::error::Error> for ReplayError {
    fn from(e: fred::error::Error) -> Self {
        ReplayError::ReadModel(readmodel::ReadModelError::Unavailable(e))
    }
}

impl From<readmodel::ProjectError> for ReplayError {
    fn from(e: readmodel::ProjectError) -> Self {
        ReplayError::Project(e.to_string())
    }
}

/// An error with its causes, `outer: inner: innermost`.
pub fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
