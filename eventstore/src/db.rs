//! Connecting to PostgreSQL and migrating the schema.

use std::time::Duration;

use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

/// How long a caller waits for a pooled connection before the store reports "unavailable".
pub const POOL_ACQUIRE_TIMEOUT_MS: u64 = 3_000;

/// Opens a pool of at most `connections_max` connections to `url`.
pub async fn connect(url: &str, connections_max: u32) -> Result<PgPool, sqlx::Error> {
    PgPoolOptions::new()
        .max_connections(connections_max)
        .acquire_timeout(Duration::from_millis(POOL_ACQUIRE_TIMEOUT_MS))
        .connect(url)
        .await
}

/// Brings the schema up to date; safe to run from several processes at once (sqlx takes
/// an advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    eventstore_migrations::MIGRATOR.run(pool).await
}
