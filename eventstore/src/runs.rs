//! The record of the replay tool's checks (`replay_runs`, migration 0013): every
//! `reconcile` and `verify` run writes one row when it finishes, and the projections'
//! watcher reads the latest of each for the alerts. The table's one reader and writer.

use chrono::{DateTime, Utc};
use sqlx::{PgPool, Row};

use crate::log::unavailable;
use crate::store::StoreError;

/// Which check a run was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    Reconcile,
    Verify,
}

impl Check {
    pub fn as_str(self) -> &'static str {
        match self {
            Check::Reconcile => "reconcile",
            Check::Verify => "verify",
        }
    }
}

/// One finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct Run {
    pub check: Check,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub ok: bool,
    pub events: u64,
    pub wallets_checked: u64,
    /// UTC days whose totals were compared (reconcile).
    pub days_checked: u64,
    /// Differences (reconcile) or violations (verify).
    pub differences: u64,
    /// Wallets and days rewritten from the log (reconcile `--repair`).
    pub repaired: u64,
    /// The run's whole summary.
    pub summary: serde_json::Value,
}

fn int(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// Records `run`.
pub async fn record(pool: &PgPool, run: &Run) -> Result<(), StoreError> {
    sqlx::query(
        "INSERT INTO replay_runs (command, started_at, finished_at, ok, events, wallets_checked,
                                  days_checked, differences, repaired, summary)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(run.check.as_str())
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(run.ok)
    .bind(int(run.events))
    .bind(int(run.wallets_checked))
    .bind(int(run.days_checked))
    .bind(int(run.differences))
    .bind(int(run.repaired))
    .bind(&run.summary)
    .execute(pool)
    .await
    .map_err(unavailable)?;
    Ok(())
}

/// The latest run of `check`: when it finished, whether it was clean, and its
/// differences or violations; `None` before the first.
pub async fn latest(
    pool: &PgPool,
    check: Check,
) -> Result<Option<(DateTime<Utc>, bool, u64)>, StoreError> {
    let row = sqlx::query(
        "SELECT finished_at, ok, differences FROM replay_runs
          WHERE command = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(check.as_str())
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?;
    Ok(row.map(|r| {
        (
            r.get("finished_at"),
            r.get("ok"),
            r.get::<i64, _>("differences").max(0) as u64,
        )
    }))
}
