//! Event-store access shared by the binaries: the write paths behind one seam, and the
//! log's readers.
//!
//! # Layout
//! - [`db`]: connecting to PostgreSQL and applying the embedded migrations.
//! - [`store`]: the [`WalletStore`] seam every write path implements: execute one command
//!   and answer with the balance after it; read one wallet's state.
//! - [`backups`]: the record of backups (`scripts/backup.sh`) and the WAL archiver's
//!   statistics, for the watcher's metrics.
//! - [`batched`]: the API's default write path: one in-memory owner per wallet, a bounded
//!   cache, group commit, our own snapshots.
//! - [`cqrs`]: the straightforward write path: the cqrs-es `Wallet` aggregate over the
//!   postgres-es tables in event-store mode, with our own execute (cqrs-es's returns
//!   nothing); the batched path's fallback for what its cache cannot decide.
//! - [`history`]: a wallet's history as its statement shows it: entries with their cash
//!   and bonus amounts, filters, and the keyset cursor of its pages.
//! - [`idempotency`]: how a command's transaction id and answer are recorded in its
//!   event's metadata, and the one reading of a repeat ([`idempotency::Repeat`]) both
//!   write paths answer with.
//! - [`log`]: reading the log: one wallet's events, and the whole log in its order without
//!   ever skipping a late commit. [`log::LoggedEvent`] is a row as stored.
//! - [`payload`]: the one decoder of a row into a `WalletEvent` (where a new event version
//!   is upcast), and the only SQL that looks inside payloads.
//! - [`runs`]: the record of the replay tool's `reconcile` and `verify` runs.
//! - [`scan`]: streaming the whole log through a server-side cursor, for replays.
//! - [`snapshots`]: our own wallet snapshots.
#![forbid(unsafe_code)]

pub mod backups;
pub mod batched;
pub mod cqrs;
pub mod db;
pub mod history;
pub mod idempotency;
pub mod log;
pub mod payload;
pub mod runs;
pub mod scan;
pub mod snapshots;
pub mod store;

pub use batched::{BatchConfig, BatchedWalletStore};
pub use cqrs::CqrsWalletStore;
pub use store::{CommandReceipt, ExecuteError, StoreError, WalletSnapshot, WalletStore};

/// The aggregate type under which wallets are stored in `events.aggregate_type`.
pub const WALLET_AGGREGATE_TYPE: &str = <domain::Wallet as cqrs_es::Aggregate>::TYPE;
