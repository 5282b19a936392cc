//! Connecting to PostgreSQL and migrating the schema.

use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::PgPool;

/// How long a caller waits for a pooled connection before the store reports "unavailable".
pub const POOL_ACQUIRE_TIMEOUT_MS: u64 = 3_000;

/// Longest a single SQL statement may run: a provider times a wallet call out after a few
/// seconds, so a statement stuck longer than this is answered `UNAVAILABLE`, not waited on.
pub const STATEMENT_TIMEOUT_MS: u64 = 5_000;

/// Longest a connection may hold a transaction open between statements before PostgreSQL
/// ends its session: a process paused or cut off in the middle of a batch must not hold
/// the keys it took (another instance's inserts on the same wallets wait on them) for
/// longer than a statement may run. No transaction of ours idles for more than a round
/// trip; a log scan, which waits on its reader between fetches, lifts it for itself.
pub const IDLE_IN_TRANSACTION_TIMEOUT_MS: u64 = 5_000;

/// Opens a pool of at most `connections_max` connections to `url`, each with the
/// statement and idle-in-transaction timeouts set.
pub async fn connect(url: &str, connections_max: u32) -> Result<PgPool, sqlx::Error> {
    let mut options: PgConnectOptions = url.parse()?;
    // Each binary's sessions carry its name (`pg_stat_activity.application_name`), unless
    // the URL names one: what attributes PostgreSQL's CPU to the API, the read side or the
    // replay tool (scripts/pipeline-bench.sh).
    if options.get_application_name().is_none() {
        if let Some(name) = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_name()?.to_str().map(str::to_string))
        {
            options = options.application_name(&name);
        }
    }
    PgPoolOptions::new()
        .max_connections(connections_max)
        .acquire_timeout(Duration::from_millis(POOL_ACQUIRE_TIMEOUT_MS))
        .connect_with(options.options([
            ("statement_timeout", format!("{STATEMENT_TIMEOUT_MS}ms")),
            (
                "idle_in_transaction_session_timeout",
                format!("{IDLE_IN_TRANSACTION_TIMEOUT_MS}ms"),
            ),
        ]))
        .await
}

/// Brings the schema up to date; safe to run from several processes at once (sqlx takes
/// an advisory lock).
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    eventstore_migrations::MIGRATOR.run(pool).await
}
