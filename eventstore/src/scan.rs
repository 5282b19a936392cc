//! Streaming the whole log: a server-side cursor over one consistent snapshot, so a
//! replay holds one page in memory, never the table, and a scan that stops early fails
//! instead of looking complete.
//!
//! The scan runs in a `REPEATABLE READ, READ ONLY` transaction. A read-only transaction
//! takes no transaction id, so a long scan does not hold back the relay (whose reader
//! stops at the oldest running transaction id).

use sqlx::{PgPool, Postgres, Transaction};

use crate::log::{from_row, unavailable, LogCursor, LoggedEvent, COLUMNS};
use crate::store::StoreError;
use crate::WALLET_AGGREGATE_TYPE;

/// The order a scan reads in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScanOrder {
    /// The log's order, `(tx_id, global_position)`, up to the oldest transaction running
    /// when the scan began; [`LogScan::resume_after`] is where a tailing reader goes on.
    Log,
    /// Wallet by wallet, each in sequence order: every event committed when the scan
    /// began. Lets a checker hold one wallet at a time.
    Wallet,
}

/// A scan in progress.
pub struct LogScan {
    tx: Option<Transaction<'static, Postgres>>,
    page_size: u32,
    total: u64,
    read: u64,
    xmin: i64,
}

impl LogScan {
    /// Opens a scan of the wallet events in `order`, `page_size` rows per fetch.
    pub async fn open(pool: &PgPool, order: ScanOrder, page_size: u32) -> Result<Self, StoreError> {
        let mut tx = pool.begin().await.map_err(unavailable)?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        // Counting, declaring and fetching can take longer than the pool's per-statement
        // limit on a large log, and the reader may take longer than the pool's idle limit
        // between fetches (writing a page to Redis); this transaction only reads.
        sqlx::query("SET LOCAL statement_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query("SET LOCAL idle_in_transaction_session_timeout = 0")
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        let xmin: i64 =
            sqlx::query_scalar("SELECT (pg_snapshot_xmin(pg_current_snapshot())::text)::bigint")
                .fetch_one(&mut *tx)
                .await
                .map_err(unavailable)?;
        // DECLARE takes no bind parameters; every value inlined here is ours (a constant,
        // and a number PostgreSQL just gave us), never a caller's.
        let (filter, order_by) = match order {
            ScanOrder::Log => (
                format!("AND tx_id < ('{xmin}'::text)::xid8"),
                "tx_id, global_position",
            ),
            ScanOrder::Wallet => (String::new(), "aggregate_id, sequence"),
        };
        let from = format!("FROM events WHERE aggregate_type = '{WALLET_AGGREGATE_TYPE}' {filter}");
        let total: i64 = sqlx::query_scalar(&format!("SELECT count(*) {from}"))
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        let declare = format!(
            "DECLARE betledger_scan NO SCROLL CURSOR FOR SELECT {COLUMNS} {from} ORDER BY {order_by}"
        );
        sqlx::query(&declare)
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
        Ok(LogScan {
            tx: Some(tx),
            page_size: page_size.max(1),
            total: total as u64,
            read: 0,
            xmin,
        })
    }

    /// How many events the scan will return in all.
    pub fn total(&self) -> u64 {
        self.total
    }

    /// How many it has returned so far.
    pub fn read(&self) -> u64 {
        self.read
    }

    /// For a [`ScanOrder::Log`] scan: the cursor after which `log::read_after` returns
    /// every event this scan does not.
    pub fn resume_after(&self) -> LogCursor {
        LogCursor {
            tx_id: self.xmin - 1,
            global_position: i64::MAX,
        }
    }

    /// The next page; empty once the scan is over. A scan that ends with fewer events than
    /// it counted at the start is an error, never a short result.
    pub async fn next_page(&mut self) -> Result<Vec<LoggedEvent>, StoreError> {
        let Some(tx) = self.tx.as_mut() else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(&format!("FETCH {} FROM betledger_scan", self.page_size))
            .fetch_all(&mut **tx)
            .await
            .map_err(unavailable)?;
        let page: Vec<LoggedEvent> = rows.iter().map(from_row).collect::<Result<_, _>>()?;
        self.read += page.len() as u64;
        if page.is_empty() {
            let tx = self.tx.take().expect("checked above");
            tx.commit().await.map_err(unavailable)?;
            if self.read != self.total {
                return Err(StoreError::Corrupt(
                    format!(
                        "the scan ended after {} of the {} events it counted",
                        self.read, self.total
                    )
                    .into(),
                ));
            }
        }
        Ok(page)
    }
}
