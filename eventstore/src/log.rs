//! Reading the log. Two readers: one wallet's events by sequence (the API's history, an
//! audit), and the whole log in its order for tailing (the relay, a rebuild).
//!
//! The log's order is `(tx_id, global_position)`, read only below the oldest transaction
//! still running (`pg_snapshot_xmin`). Every transaction below that point has finished, so
//! everything it wrote is visible now, and any row written later carries a larger `tx_id`:
//! a reader's cursor never has a row appear behind it. A plain `global_position` cursor
//! would skip a row whose transaction commits after a later position was read. One
//! wallet's events keep their sequence order in the log, because an append for sequence
//! n+1 starts its transaction only after sequence n has committed.

use chrono::{DateTime, Utc};
use domain::WalletId;
use serde_json::value::RawValue;
use sqlx::{PgPool, Row};

use crate::store::StoreError;
use crate::WALLET_AGGREGATE_TYPE;

/// Most events one read returns.
pub const PAGE_SIZE_MAX: u32 = 1_000;

/// The channel on which PostgreSQL announces new events (migration 0002): a hint to read,
/// never a position.
pub const NOTIFY_CHANNEL: &str = "betledger_events";

/// One row of the log, as stored. Also the body of the message the relay publishes, so a
/// worker sees the same thing whether it reads the message or fills a gap from the log.
/// [`LoggedEvent::decode`] (in [`crate::payload`]) is the one way to the event it holds,
/// [`LoggedEvent::recorded`] (in [`crate::idempotency`]) the one way to its metadata.
///
/// The payload and metadata are kept as their JSON text, not as `serde_json::Value`:
/// every reader decodes them once into typed values, and building and dropping a `Value`
/// tree per event was a fifth of a replay's CPU (perf, issue 34). Serialised, they are
/// written as the JSON they hold (jsonb's spacing and key order), so the message body
/// holds the same values as before.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct LoggedEvent {
    pub wallet_id: WalletId,
    pub sequence: u64,
    pub event_type: String,
    pub event_version: String,
    pub payload: Box<RawValue>,
    pub metadata: Box<RawValue>,
    pub global_position: i64,
    pub tx_id: i64,
    pub recorded_at: DateTime<Utc>,
}

impl PartialEq for LoggedEvent {
    /// Equal rows: the same fields, and the same JSON text (PostgreSQL's jsonb prints one
    /// text per value, so two reads of one row compare equal).
    fn eq(&self, other: &Self) -> bool {
        self.wallet_id == other.wallet_id
            && self.sequence == other.sequence
            && self.event_type == other.event_type
            && self.event_version == other.event_version
            && self.payload.get() == other.payload.get()
            && self.metadata.get() == other.metadata.get()
            && self.global_position == other.global_position
            && self.tx_id == other.tx_id
            && self.recorded_at == other.recorded_at
    }
}

impl LoggedEvent {
    /// Where a tailing reader stands after this event.
    pub fn cursor(&self) -> LogCursor {
        LogCursor {
            tx_id: self.tx_id,
            global_position: self.global_position,
        }
    }
}

/// A position in the log's order; `LogCursor::START` is before the first event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, serde::Serialize)]
pub struct LogCursor {
    pub tx_id: i64,
    pub global_position: i64,
}

impl LogCursor {
    pub const START: LogCursor = LogCursor {
        tx_id: 0,
        global_position: 0,
    };
}

/// A log row's columns, in the order [`from_row`] reads them.
pub(crate) const COLUMNS: &str =
    "aggregate_id, sequence, event_type, event_version, payload, metadata,
     global_position, (tx_id::text)::bigint AS tx_id, recorded_at";

pub(crate) fn unavailable(e: sqlx::Error) -> StoreError {
    StoreError::Unavailable(Box::new(e))
}

/// A row as a [`LoggedEvent`]; a row whose aggregate id is not a wallet id is corrupt
/// (every write path stores a [`WalletId`]). The row begins with [`COLUMNS`], in its
/// order: read by position, as a lookup by name per column per row was a twentieth of a
/// replay's CPU (issue 34).
pub(crate) fn from_row(row: &sqlx::postgres::PgRow) -> Result<LoggedEvent, StoreError> {
    let aggregate_id: &str = row.get(0);
    let wallet_id = aggregate_id.parse().map_err(|e| {
        StoreError::Corrupt(
            format!("event of aggregate {aggregate_id:?}: not a wallet id: {e}").into(),
        )
    })?;
    Ok(LoggedEvent {
        wallet_id,
        sequence: row.get::<i64, _>(1) as u64,
        event_type: row.get(2),
        event_version: row.get(3),
        payload: row.get::<&RawValue, _>(4).to_owned(),
        metadata: row.get::<&RawValue, _>(5).to_owned(),
        global_position: row.get(6),
        tx_id: row.get(7),
        recorded_at: row.get(8),
    })
}

/// The events of one wallet with sequence above `after`, at most `limit` (capped at
/// [`PAGE_SIZE_MAX`]), in sequence order.
pub async fn wallet_events(
    pool: &PgPool,
    wallet_id: WalletId,
    after: u64,
    limit: u32,
) -> Result<Vec<LoggedEvent>, StoreError> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence > $3
          ORDER BY sequence LIMIT $4"
    ))
    .bind(WALLET_AGGREGATE_TYPE)
    .bind(wallet_id.to_string())
    .bind(i64::try_from(after).unwrap_or(i64::MAX))
    .bind(i64::from(limit.min(PAGE_SIZE_MAX)))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.iter().map(from_row).collect()
}

/// [`read_after`]'s statement ($1 the cursor's tx_id, $2 its global_position, $3 the
/// limit): an index scan of `events_log_order` from the cursor to the oldest running
/// transaction, both bounds index conditions.
///
/// Every ORDER BY here names the table's columns (`events.tx_id`), never the output's:
/// `ORDER BY tx_id` beside [`COLUMNS`] sorted by the output column, the bigint `tx_id`,
/// which no index holds. sqlx's prepared (generic) plan was then a parallel sequential
/// scan and sort of the whole log, 0.9 s a page on 1.2M events (EXPLAIN ANALYZE under
/// `plan_cache_mode = force_generic_plan`; 1.5 ms now), and in some bursts the relay's
/// reads took 13 times their usual share of PostgreSQL. The plan test in
/// tests/e2e/log_order.rs keeps it so.
pub fn read_after_sql() -> &'static str {
    static SQL: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    SQL.get_or_init(|| {
        format!(
            "SELECT {COLUMNS} FROM events
              WHERE (tx_id, global_position) > (($1::bigint)::text::xid8, $2)
                AND tx_id < pg_snapshot_xmin(pg_current_snapshot())
              ORDER BY events.tx_id, events.global_position LIMIT $3"
        )
    })
}

/// [`has_pending`]'s statement ($1, $2 the cursor).
pub const HAS_PENDING_SQL: &str = "SELECT global_position FROM events
      WHERE (tx_id, global_position) > (($1::bigint)::text::xid8, $2)
      ORDER BY events.tx_id, events.global_position
      LIMIT 1";

/// [`head`]'s statement. Ordered by the table's columns, not the bigint output `tx_id`
/// (which no index holds: that was a sort of the whole log, 0.24 s on 1.2M events, at each
/// of the watcher's samples).
pub const HEAD_SQL: &str = "SELECT (tx_id::text)::bigint AS tx_id, global_position FROM events
      ORDER BY events.tx_id DESC, events.global_position DESC LIMIT 1";

/// The next events of the whole log after `after`, in log order, at most `limit` (capped
/// at [`PAGE_SIZE_MAX`]). Only finished transactions are read, so an empty answer means
/// "nothing more yet", never "skipped".
pub async fn read_after(
    pool: &PgPool,
    after: LogCursor,
    limit: u32,
) -> Result<Vec<LoggedEvent>, StoreError> {
    let rows = sqlx::query(read_after_sql())
        .bind(after.tx_id)
        .bind(after.global_position)
        .bind(i64::from(limit.min(PAGE_SIZE_MAX)))
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.iter().map(from_row).collect()
}

/// Whether the log holds events after `after` that [`read_after`] cannot return yet
/// because an older transaction (in any database of the cluster) is still running. A
/// tailing reader that got an empty page polls again soon when this is true, and otherwise
/// waits for a notification.
///
/// Written as an ordered `LIMIT 1` so that the plan is an index scan of `events_log_order`
/// whatever the cursor: as `EXISTS`, sqlx's prepared (generic) plan was a sequential scan
/// of the whole log (12 ms on 50,000 events instead of 0.05 ms), paid on every wake.
pub async fn has_pending(pool: &PgPool, after: LogCursor) -> Result<bool, StoreError> {
    let next: Option<i64> = sqlx::query_scalar(HAS_PENDING_SQL)
        .bind(after.tx_id)
        .bind(after.global_position)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    Ok(next.is_some())
}

/// The most [`held_back`] counts.
pub const HELD_BACK_COUNT_MAX: i64 = 100_000;

/// How many committed events [`read_after`] cannot return yet, because an older
/// transaction (in any database of the cluster) is still running: how far the log's
/// horizon holds tailing readers back. Zero when every committed event is readable.
/// Counted up to [`HELD_BACK_COUNT_MAX`]: during a long hold-back this is sampled every few
/// seconds, and must not cost more the longer it lasts.
pub async fn held_back(pool: &PgPool) -> Result<i64, StoreError> {
    sqlx::query_scalar(
        "SELECT count(*) FROM (SELECT 1 FROM events
          WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot()) LIMIT $1) held",
    )
    .bind(HELD_BACK_COUNT_MAX)
    .fetch_one(pool)
    .await
    .map_err(unavailable)
}

/// The position of the newest event in the log (ignoring transactions still running), or
/// `None` for an empty log. For lag figures and progress.
pub async fn head(pool: &PgPool) -> Result<Option<LogCursor>, StoreError> {
    let row = sqlx::query(HEAD_SQL)
        .fetch_optional(pool)
        .await
        .map_err(unavailable)?;
    Ok(row.map(|r| LogCursor {
        tx_id: r.get("tx_id"),
        global_position: r.get("global_position"),
    }))
}

/// How many events of the log fall on each UTC day of `recorded_at`: what `reconcile`
/// compares with its snapshot's count to know which days no later event has touched.
/// One scan of the log.
pub async fn events_per_day(
    pool: &PgPool,
) -> Result<std::collections::BTreeMap<chrono::NaiveDate, u64>, StoreError> {
    let rows: Vec<(chrono::NaiveDate, i64)> = sqlx::query_as(
        "SELECT (recorded_at AT TIME ZONE 'UTC')::date AS day, count(*) FROM events
          WHERE aggregate_type = $1 GROUP BY 1",
    )
    .bind(WALLET_AGGREGATE_TYPE)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    Ok(rows
        .into_iter()
        .map(|(day, count)| (day, count.max(0) as u64))
        .collect())
}
