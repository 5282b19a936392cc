//! The event store's schema, as numbered, forward-only sqlx migrations embedded in every
//! binary that links this crate, so each one can bring the database up to date on start.
#![forbid(unsafe_code)]

/// The migrations in `migrations/`, compiled in.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");
