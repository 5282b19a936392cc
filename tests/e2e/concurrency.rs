//! Concurrent commands on one wallet: serialised in one process, decided again after a
//! lost race between processes; never more money out than in.

use betledger_tests::{reopen, spawn_app, TestApp};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

/// Fires 50 reserves of 1.00 at a wallet funded with 20.00, spread over `apps`, and checks
/// that exactly 20 succeed, the rest are INSUFFICIENT_FUNDS, and log and balance agree.
async fn fifty_reserves_on_twenty(apps: &[&TestApp]) {
    let w = apps[0].open_wallet("p", "EUR").await;
    apps[0].deposit(&w, "fund", "20").await;
    let path = format!("/v1/wallets/{w}/reservations");
    let replies = futures::future::join_all((0..50).map(|i| {
        apps[i % apps.len()].post(
            &path,
            json!({"transaction_id": format!("bet-{i}"), "amount": "1",
                   "game_id": "g", "round_id": format!("r{i}")}),
        )
    }))
    .await;
    let ok = replies.iter().filter(|r| r.status == 200).count();
    let short = replies
        .iter()
        .filter(|r| (r.status, r.code()) == (422, "INSUFFICIENT_FUNDS"))
        .count();
    assert_eq!(
        (ok, short),
        (20, 30),
        "{:?}",
        replies.iter().map(|r| &r.body).collect::<Vec<_>>()
    );

    let reserved_in_log: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND event_type = 'FundsReserved'",
    )
    .bind(&w)
    .fetch_one(&apps[0].pool)
    .await
    .unwrap();
    assert_eq!(reserved_in_log, 20);
    let balance = apps[0].get(&format!("/v1/wallets/{w}")).await.body["balance"].clone();
    assert_eq!(
        balance,
        json!({"available": "0.00", "reserved": "20.00", "bonus": "0.00", "bonus_reserved": "0.00", "currency": "EUR"})
    );
    // The sequences the successful answers name are exactly 3..=22, each once.
    let mut sequences: Vec<u64> = replies
        .iter()
        .filter(|r| r.status == 200)
        .map(|r| r.body["sequence"].as_u64().unwrap())
        .collect();
    sequences.sort_unstable();
    assert_eq!(sequences, (3..=22).collect::<Vec<u64>>());
    // And every successful answer's balance is one the wallet really passed through.
    for r in replies.iter().filter(|r| r.status == 200) {
        let reserved: Decimal = r.body["balance"]["reserved"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        let seq = r.body["sequence"].as_u64().unwrap();
        assert_eq!(reserved, Decimal::from(seq - 2));
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn fifty_parallel_reserves_on_a_wallet_funded_for_twenty(pool: PgPool) {
    let app = spawn_app(pool).await;
    fifty_reserves_on_twenty(&[&app]).await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_api_instances_racing_on_one_wallet_never_overspend(pool: PgPool) {
    let a = spawn_app(pool.clone()).await;
    let b = spawn_app(reopen(&pool).await).await;
    fifty_reserves_on_twenty(&[&a, &b]).await;
}
