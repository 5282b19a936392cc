//! What the watcher reads about backups: the `backups` table (migration 0014), which
//! `scripts/backup.sh` writes after each backup pgBackRest finished, and PostgreSQL's own
//! WAL archiver statistics. The one reader of both.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use crate::log::unavailable;
use crate::store::StoreError;

/// The newest backup of one kind (`full`, `diff` or `incr`).
#[derive(Debug, Clone, PartialEq)]
pub struct Latest {
    pub kind: String,
    pub finished_at: DateTime<Utc>,
    pub seconds: f64,
    pub size_bytes: u64,
    pub repository_bytes: u64,
}

/// The newest backup of each kind taken so far (none before the first).
pub async fn latest(pool: &PgPool) -> Result<Vec<Latest>, StoreError> {
    let rows = sqlx::query(
        "SELECT DISTINCT ON (kind) kind, finished_at,
                extract(epoch FROM finished_at - started_at)::float8 AS seconds,
                size_bytes, repository_bytes
           FROM backups ORDER BY kind, finished_at DESC",
    )
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    Ok(rows
        .iter()
        .map(|r| Latest {
            kind: r.get("kind"),
            finished_at: r.get("finished_at"),
            seconds: r.get("seconds"),
            size_bytes: r.get::<i64, _>("size_bytes").max(0) as u64,
            repository_bytes: r.get::<i64, _>("repository_bytes").max(0) as u64,
        })
        .collect())
}

/// The WAL archiver as PostgreSQL reports it (`pg_stat_archiver`).
#[derive(Debug, Clone, PartialEq)]
pub struct Archiver {
    /// `archive_mode` is not `off`.
    pub enabled: bool,
    pub archived: u64,
    pub failed: u64,
    pub last_archived_at: Option<DateTime<Utc>>,
    pub last_failed_at: Option<DateTime<Utc>>,
    /// Segments finished and waiting to be archived (`.ready` files); `None` where the
    /// role may not list the archive status folder (superuser or pg_monitor).
    pub pending: Option<u64>,
}

/// The archiver's state now.
pub async fn archiver(pool: &PgPool) -> Result<Archiver, StoreError> {
    let row = sqlx::query(
        "SELECT current_setting('archive_mode') <> 'off' AS enabled, archived_count,
                failed_count, last_archived_time, last_failed_time
           FROM pg_stat_archiver",
    )
    .fetch_one(pool)
    .await
    .map_err(unavailable)?;
    let pending: Option<i64> = sqlx::query_scalar(
        "SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'",
    )
    .fetch_one(pool)
    .await
    .ok();
    Ok(Archiver {
        enabled: row.get("enabled"),
        archived: row.get::<i64, _>("archived_count").max(0) as u64,
        failed: row.get::<i64, _>("failed_count").max(0) as u64,
        last_archived_at: row.get("last_archived_time"),
        last_failed_at: row.get("last_failed_time"),
        pending: pending.map(|n| n.max(0) as u64),
    })
}
