//! Every native endpoint, on its happy path, against the real store.

use betledger_tests::spawn_app;
use serde_json::json;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

#[sqlx::test(migrator = "MIGRATOR")]
async fn open_returns_the_wallet_with_a_zero_balance(pool: PgPool) {
    let app = spawn_app(pool).await;
    let reply = app
        .post("/v1/wallets", json!({"player_id": "p1", "currency": "BTC"}))
        .await;
    assert_eq!(reply.status, 201);
    assert_eq!(reply.body["player_id"], "p1");
    assert_eq!(
        reply.body["balance"],
        json!({"available": "0.00000000", "reserved": "0.00000000", "bonus": "0.00000000", "bonus_reserved": "0.00000000", "currency": "BTC"})
    );
    assert_eq!(reply.body["sequence"], 1);
    let id = reply.body["wallet_id"].as_str().unwrap();
    let read = app.get(&format!("/v1/wallets/{id}")).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.body["balance"], reply.body["balance"]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_round_moves_money_as_the_contract_says(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.open_wallet("p1", "EUR").await;

    let r = app.deposit(&w, "dep-1", "100").await;
    assert_eq!(
        r.body,
        json!({"wallet_id": w, "transaction_id": "dep-1", "sequence": 2,
               "balance": {"available": "100.00", "reserved": "0.00", "bonus": "0.00", "bonus_reserved": "0.00", "currency": "EUR"}})
    );

    let r = app
        .post(
            &format!("/v1/wallets/{w}/withdrawals"),
            json!({"transaction_id": "wd-1", "amount": "10.5"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["balance"]["available"], "89.50");

    let r = app
        .post(
            &format!("/v1/wallets/{w}/reservations"),
            json!({"transaction_id": "bet-1", "amount": "20", "game_id": "slots",
                   "round_id": "round-1", "timeout_s": 30}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["transaction_id"], "bet-1");
    assert_eq!(
        r.body["balance"],
        json!({"available": "69.50", "reserved": "20.00", "bonus": "0.00", "bonus_reserved": "0.00", "currency": "EUR"})
    );

    let r = app
        .post(
            &format!("/v1/wallets/{w}/reservations/bet-1/settle"),
            json!({"transaction_id": "win-1", "payout": "55.25"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["balance"],
        json!({"available": "124.75", "reserved": "0.00", "bonus": "0.00", "bonus_reserved": "0.00", "currency": "EUR"})
    );

    let r = app
        .post(
            &format!("/v1/wallets/{w}/reservations"),
            json!({"transaction_id": "bet-2", "amount": "24.75", "game_id": "slots",
                   "round_id": "round-2"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app
        .post(
            &format!("/v1/wallets/{w}/reservations/bet-2/refund"),
            json!({"transaction_id": "rb-2"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["balance"],
        json!({"available": "124.75", "reserved": "0.00", "bonus": "0.00", "bonus_reserved": "0.00", "currency": "EUR"})
    );
    assert_eq!(r.body["sequence"], 7);

    // A lost round: payout zero.
    app.post(
        &format!("/v1/wallets/{w}/reservations"),
        json!({"transaction_id": "bet-3", "amount": "4.75", "game_id": "g", "round_id": "r3"}),
    )
    .await;
    let r = app
        .post(
            &format!("/v1/wallets/{w}/reservations/bet-3/settle"),
            json!({"transaction_id": "loss-3", "payout": "0"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.body["balance"]["available"], "120.00");

    let read = app.get(&format!("/v1/wallets/{w}")).await;
    assert_eq!(read.body["balance"], r.body["balance"]);
    assert_eq!(read.body["sequence"], 9);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn events_are_listed_in_order_and_paged(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.open_wallet("p1", "JPY").await;
    for i in 0..5 {
        app.deposit(&w, &format!("d{i}"), &format!("{}", 100 + i))
            .await;
    }
    let all = app.get(&format!("/v1/wallets/{w}/events")).await;
    assert_eq!(all.status, 200);
    let events = all.body["events"].as_array().unwrap();
    assert_eq!(events.len(), 6);
    let sequences: Vec<u64> = events
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(events[0]["event_type"], "WalletOpened");
    assert_eq!(events[1]["event_type"], "FundsDeposited");
    assert_eq!(events[1]["payload"]["FundsDeposited"]["amount"], "100");
    assert_eq!(events[5]["metadata"]["available"], "510");
    assert_eq!(all.body["next_after"], 6);

    let page = app
        .get(&format!("/v1/wallets/{w}/events?after=2&limit=2"))
        .await;
    let sequences: Vec<u64> = page.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect();
    assert_eq!(sequences, vec![3, 4]);
    assert_eq!(page.body["next_after"], 4);

    let past_end = app.get(&format!("/v1/wallets/{w}/events?after=6")).await;
    assert_eq!(past_end.status, 200);
    assert_eq!(past_end.body["events"], json!([]));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn health_ready_and_metrics_answer(pool: PgPool) {
    let app = spawn_app(pool).await;
    let health = app.get("/health").await;
    assert_eq!(
        (health.status, health.body["status"].as_str()),
        (200, Some("ok"))
    );
    let ready = app.get("/ready").await;
    assert_eq!(
        (ready.status, ready.body["status"].as_str()),
        (200, Some("ready"))
    );

    let w = app.open_wallet("p1", "EUR").await;
    app.deposit(&w, "d1", "1").await;
    let text = app
        .http
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"http_requests_total{route="/v1/wallets/{id}/deposits",method="POST",status="200"}"#
        ),
        "{text}"
    );
    assert!(
        text.contains("http_request_duration_seconds_bucket"),
        "{text}"
    );
    assert!(
        text.contains(r#"wallet_commands_total{command="deposit",outcome="accepted"}"#),
        "{text}"
    );
}
