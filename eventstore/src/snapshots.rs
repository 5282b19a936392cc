//! Our own snapshots of wallets: the aggregate's whole state after `sequence` events,
//! stored as JSON in the postgres-es `snapshots` table shape. A wallet is loaded from its
//! latest snapshot plus the events after it, and never through cqrs-es's snapshot modes
//! (they apply events twice: docs/0001). `replay-tool reconcile` checks every latest
//! snapshot against the fold of the log.

use std::collections::HashMap;

use domain::{Wallet, WalletId};
use sqlx::{PgPool, Row};

use crate::log::unavailable;
use crate::store::StoreError;
use crate::WALLET_AGGREGATE_TYPE;

/// A wallet's state after `sequence` events, as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSnapshot {
    pub wallet_id: WalletId,
    pub sequence: u64,
    pub payload: serde_json::Value,
}

impl StoredSnapshot {
    /// The aggregate the snapshot holds, if this build can read it.
    pub fn wallet(&self) -> Result<Wallet, serde_json::Error> {
        serde_json::from_value(self.payload.clone())
    }
}

/// The latest snapshot of each of `wallet_ids` that has one.
pub async fn latest(
    pool: &PgPool,
    wallet_ids: &[WalletId],
) -> Result<HashMap<WalletId, StoredSnapshot>, StoreError> {
    let ids: Vec<String> = wallet_ids.iter().map(|id| id.to_string()).collect();
    let rows = sqlx::query(
        "SELECT DISTINCT ON (aggregate_id) aggregate_id, last_sequence, payload
           FROM snapshots
          WHERE aggregate_type = $1 AND aggregate_id = ANY($2)
          ORDER BY aggregate_id, last_sequence DESC",
    )
    .bind(WALLET_AGGREGATE_TYPE)
    .bind(&ids)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.iter()
        .map(|row| {
            let id: String = row.get("aggregate_id");
            let wallet_id: WalletId = id.parse().map_err(|e| {
                StoreError::Corrupt(format!("snapshot of {id:?}: not a wallet id: {e}").into())
            })?;
            let snapshot = StoredSnapshot {
                wallet_id,
                sequence: row.get::<i64, _>("last_sequence") as u64,
                payload: row.get("payload"),
            };
            Ok((wallet_id, snapshot))
        })
        .collect()
}

/// Stores `wallet`'s state after `sequence` events (replacing one at that sequence) and
/// drops its older snapshots: [`save_many`] for one wallet.
pub async fn save(
    pool: &PgPool,
    wallet_id: WalletId,
    sequence: u64,
    wallet: &Wallet,
) -> Result<(), StoreError> {
    let payload = serde_json::to_value(wallet).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
    let mut connection = pool.acquire().await.map_err(unavailable)?;
    save_many(&mut connection, &[(wallet_id, sequence as i64, payload)])
        .await
        .map_err(unavailable)
}

/// Stores many wallets' snapshots at once, `(wallet id, sequence, aggregate JSON)`, and
/// drops their older ones: the batched path calls it in the transaction that commits the
/// events up to those sequences, or puts [`saving`] in the statement that writes them, so
/// a snapshot never runs ahead of the log.
pub async fn save_many(
    tx: &mut sqlx::PgConnection,
    snapshots: &[(WalletId, i64, serde_json::Value)],
) -> Result<(), sqlx::Error> {
    if snapshots.is_empty() {
        return Ok(());
    }
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql = SQL.get_or_init(|| format!("WITH {} SELECT 1", saving(2)));
    bind_saved(
        sqlx::query(sql.as_str()).bind(WALLET_AGGREGATE_TYPE),
        snapshots,
    )
    .execute(tx)
    .await?;
    Ok(())
}

/// The common table expressions that store snapshots and drop the older ones, for a
/// statement's `WITH`: the aggregate type bound at `$1`, the snapshots' ids, sequences and
/// payloads at `$first` and the two after it ([`bind_saved`] binds them). They take effect
/// with the statement they are part of, or not at all.
pub(crate) fn saving(first: usize) -> String {
    let (ids, seqs, payloads) = (first, first + 1, first + 2);
    format!(
        "s AS (SELECT * FROM UNNEST(${ids}::text[], ${seqs}::bigint[], ${payloads}::jsonb[]) AS s(id, seq, p)),
         saved AS (
           INSERT INTO snapshots (aggregate_type, aggregate_id, last_sequence, current_snapshot, payload)
           SELECT $1, id, seq, seq, p FROM s
           ON CONFLICT (aggregate_type, aggregate_id, last_sequence)
           DO UPDATE SET payload = EXCLUDED.payload),
         dropped AS (
           DELETE FROM snapshots d USING s
            WHERE d.aggregate_type = $1 AND d.aggregate_id = s.id AND d.last_sequence < s.seq)"
    )
}

/// Binds `snapshots` for [`saving`], after what `query` has bound already.
pub(crate) fn bind_saved<'q>(
    query: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    snapshots: &[(WalletId, i64, serde_json::Value)],
) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
    query
        .bind(
            snapshots
                .iter()
                .map(|s| s.0.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(snapshots.iter().map(|s| s.1).collect::<Vec<_>>())
        .bind(snapshots.iter().map(|s| s.2.clone()).collect::<Vec<_>>())
}

/// Deletes `wallet_id`'s snapshot at `sequence`: a wrong snapshot is dropped, and the
/// wallet is then loaded from the log alone.
pub async fn delete(pool: &PgPool, wallet_id: WalletId, sequence: u64) -> Result<bool, StoreError> {
    let done = sqlx::query(
        "DELETE FROM snapshots WHERE aggregate_type = $1 AND aggregate_id = $2 AND last_sequence = $3",
    )
    .bind(WALLET_AGGREGATE_TYPE)
    .bind(wallet_id.to_string())
    .bind(sequence as i64)
    .execute(pool)
    .await
    .map_err(unavailable)?;
    Ok(done.rows_affected() > 0)
}
