//! Streaming the whole log: a server-side cursor over one consistent snapshot, so a
//! replay holds a few pages in memory (at most [`PAGES_AHEAD`] + 2: those queued, the one
//! being sent, the caller's), never the table, and a scan that stops early fails instead
//! of looking complete.
//!
//! The scan runs in a `REPEATABLE READ, READ ONLY` transaction. A read-only transaction
//! takes no transaction id, so a long scan does not hold back the relay (whose reader
//! stops at the oldest running transaction id).
//!
//! A task of its own fetches and decodes the next pages while the caller works on this
//! one ([`PAGES_AHEAD`]), so PostgreSQL's side of a replay and the replay's own run side
//! by side: on two cores that took `verify` from about 110,000 to about 150,000 events/s
//! (issue 34).

use sqlx::{PgPool, Postgres, Transaction};
use tokio::sync::mpsc;

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

/// Pages fetched ahead of the caller: one being read by PostgreSQL while the caller
/// holds another is enough to keep both busy; more only hold memory.
pub const PAGES_AHEAD: usize = 2;

/// A scan's statements for a snapshot whose oldest running transaction is `xmin`: the
/// count of its events, and the SELECT its cursor reads. DECLARE takes no bind
/// parameters; every value inlined is ours (a constant, and a number PostgreSQL gave us),
/// never a caller's.
///
/// The log order names the table's columns (`events.tx_id`): COLUMNS names its bigint
/// `tx_id` so, and an ORDER BY of that output column sorted the whole log instead of
/// reading `events_log_order` in order (the plan test in tests/e2e/log_order.rs).
pub fn statements(order: ScanOrder, xmin: i64) -> (String, String) {
    let (filter, order_by) = match order {
        ScanOrder::Log => (
            format!("AND tx_id < ('{xmin}'::text)::xid8"),
            "events.tx_id, events.global_position",
        ),
        ScanOrder::Wallet => (String::new(), "aggregate_id, sequence"),
    };
    let from = format!("FROM events WHERE aggregate_type = '{WALLET_AGGREGATE_TYPE}' {filter}");
    (
        format!("SELECT count(*) {from}"),
        format!("SELECT {COLUMNS} {from} ORDER BY {order_by}"),
    )
}

/// A scan in progress.
pub struct LogScan {
    pages: mpsc::Receiver<Result<Vec<LoggedEvent>, StoreError>>,
    done: bool,
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
        let (count, select) = statements(order, xmin);
        let total: i64 = sqlx::query_scalar(&count)
            .fetch_one(&mut *tx)
            .await
            .map_err(unavailable)?;
        sqlx::query(&format!(
            "DECLARE betledger_scan NO SCROLL CURSOR FOR {select}"
        ))
        .execute(&mut *tx)
        .await
        .map_err(unavailable)?;
        let (send, pages) = mpsc::channel(PAGES_AHEAD);
        tokio::spawn(fetch_pages(tx, page_size.max(1), total as u64, send));
        Ok(LogScan {
            pages,
            done: false,
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
        if self.done {
            return Ok(Vec::new());
        }
        let page = match self.pages.recv().await {
            Some(page) => page?,
            None => {
                return Err(StoreError::Corrupt(
                    "the scan's reader stopped before the end of the log".into(),
                ))
            }
        };
        self.read += page.len() as u64;
        self.done = page.is_empty();
        Ok(page)
    }
}

/// Fetches and decodes the scan's pages into `pages` until the end (an empty page, after
/// the transaction committed and the count checked) or the first error; stops early when
/// the scan is dropped (the transaction then rolls back).
async fn fetch_pages(
    mut tx: Transaction<'static, Postgres>,
    page_size: u32,
    total: u64,
    pages: mpsc::Sender<Result<Vec<LoggedEvent>, StoreError>>,
) {
    let fetch = format!("FETCH {page_size} FROM betledger_scan");
    let mut read = 0u64;
    loop {
        let page = match sqlx::query(&fetch).fetch_all(&mut *tx).await {
            Ok(rows) => rows.iter().map(from_row).collect::<Result<Vec<_>, _>>(),
            Err(e) => Err(unavailable(e)),
        };
        let page = match page {
            Ok(page) if page.is_empty() => {
                let end = match tx.commit().await {
                    Err(e) => Err(unavailable(e)),
                    Ok(()) if read != total => Err(StoreError::Corrupt(
                        format!("the scan ended after {read} of the {total} events it counted")
                            .into(),
                    )),
                    Ok(()) => Ok(page),
                };
                let _ = pages.send(end).await;
                return;
            }
            page => page,
        };
        let failed = page.is_err();
        if let Ok(page) = &page {
            read += page.len() as u64;
        }
        if pages.send(page).await.is_err() || failed {
            return;
        }
    }
}
