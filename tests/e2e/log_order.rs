//! The log's order can be tailed without skipping a late commit: a reader that follows
//! `eventstore::log::read_after` sees every committed event exactly once, and one wallet's
//! events in sequence order, however transactions interleave.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use domain::{Currency, PlayerId, WalletId};
use eventstore::log::{read_after, LogCursor, LoggedEvent};
use sqlx::{PgPool, Postgres, Transaction};

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

/// The wallet id a test names `name` by (the log holds wallet ids only).
fn wallet(name: &str) -> WalletId {
    WalletId::for_player(&PlayerId::new(name).unwrap(), Currency::Eur)
}

async fn append(tx: &mut Transaction<'_, Postgres>, name: &str, sequence: i64) {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version,
                             payload, metadata)
         VALUES ('wallet', $1, $2, 'Test', '1.0', '{}', '{}')",
    )
    .bind(wallet(name).to_string())
    .bind(sequence)
    .execute(&mut **tx)
    .await
    .unwrap();
}

async fn drain(pool: &PgPool, cursor: &mut LogCursor) -> Vec<LoggedEvent> {
    let mut seen = Vec::new();
    loop {
        let page = read_after(pool, *cursor, 100).await.unwrap();
        let Some(last) = page.last() else { return seen };
        *cursor = last.cursor();
        seen.extend(page);
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_long_transaction_committing_after_a_short_one_is_not_skipped(pool: PgPool) {
    // The long transaction takes the lower global position first...
    let mut long = pool.begin().await.unwrap();
    append(&mut long, "wallet-long", 1).await;
    // ...the short one takes a higher position and commits first.
    let mut short = pool.begin().await.unwrap();
    append(&mut short, "wallet-short", 1).await;
    short.commit().await.unwrap();

    let mut cursor = LogCursor::START;
    let seen = drain(&pool, &mut cursor).await;
    assert!(
        seen.is_empty(),
        "nothing is read past a transaction still running: {seen:?}"
    );

    long.commit().await.unwrap();
    // xmin is cluster-wide: transactions of other databases (other tests) can hold it back
    // for a moment. That delays the reader; it never makes it skip.
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while seen.len() < 2 && tokio::time::Instant::now() < deadline {
        seen.extend(drain(&pool, &mut cursor).await);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let order: Vec<WalletId> = seen.iter().map(|e| e.wallet_id).collect();
    assert_eq!(order, vec![wallet("wallet-long"), wallet("wallet-short")]);
    // A position-only cursor would have been at the short one's position and skipped this:
    assert!(seen[0].global_position < seen[1].global_position);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_tailing_reader_sees_every_event_of_concurrent_writers_once(pool: PgPool) {
    const WRITERS: usize = 4;
    const TRANSACTIONS: usize = 40;
    const EVENTS_PER_TX: i64 = 3;

    // Each writer appends to its own wallet; transactions stay open for a while so their
    // commits interleave with other writers' inserts.
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let pool = pool.clone();
            tokio::spawn(async move {
                let wallet = format!("wallet-{w}");
                for t in 0..TRANSACTIONS {
                    let mut tx = pool.begin().await.unwrap();
                    for e in 0..EVENTS_PER_TX {
                        append(&mut tx, &wallet, t as i64 * EVENTS_PER_TX + e + 1).await;
                    }
                    let hold_ms = ((w * 7 + t * 13) % 5) as u64;
                    tokio::time::sleep(Duration::from_millis(hold_ms)).await;
                    if (w + t) % 11 == 0 {
                        // An aborted transaction leaves nothing to read.
                        tx.rollback().await.unwrap();
                        let mut tx = pool.begin().await.unwrap();
                        for e in 0..EVENTS_PER_TX {
                            append(&mut tx, &wallet, t as i64 * EVENTS_PER_TX + e + 1).await;
                        }
                        tx.commit().await.unwrap();
                    } else {
                        tx.commit().await.unwrap();
                    }
                }
            })
        })
        .collect();

    // The reader tails while they write.
    let reader = {
        let pool = pool.clone();
        tokio::spawn(async move {
            let total = WRITERS * TRANSACTIONS * EVENTS_PER_TX as usize;
            let mut cursor = LogCursor::START;
            let mut seen = Vec::new();
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while seen.len() < total {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "reader stalled at {}",
                    seen.len()
                );
                let page = read_after(&pool, cursor, 50).await.unwrap();
                match page.last() {
                    Some(last) => cursor = last.cursor(),
                    None => tokio::time::sleep(Duration::from_millis(2)).await,
                }
                seen.extend(page);
            }
            seen
        })
    };
    for w in writers {
        w.await.unwrap();
    }
    let seen = reader.await.unwrap();

    let committed: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(
        seen.len() as i64,
        committed,
        "every committed event was read"
    );
    let positions: HashSet<i64> = seen.iter().map(|e| e.global_position).collect();
    assert_eq!(positions.len(), seen.len(), "no event was read twice");

    let mut last_sequence: BTreeMap<WalletId, u64> = BTreeMap::new();
    for e in &seen {
        let last = last_sequence.entry(e.wallet_id).or_insert(0);
        assert_eq!(e.sequence, *last + 1, "{} out of order", e.wallet_id);
        *last = e.sequence;
    }
    // And the positions really did commit out of order somewhere, or the test proved little.
    let out_of_order = seen
        .windows(2)
        .filter(|w| w[1].global_position < w[0].global_position)
        .count();
    assert!(
        out_of_order > 0,
        "writers never interleaved; the test needs more overlap"
    );
}
