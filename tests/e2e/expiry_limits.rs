//! The engine's own jobs and guards: reservations past their timeout are expired by the
//! API's background sweep (once, also with two instances sweeping), and clients over
//! their rate get `429 RATE_LIMITED` with `Retry-After`.

use std::time::{Duration, Instant};

use betledger_tests::{
    reopen, spawn_app, spawn_app_with, start_app, test_config, TestApp, PROVIDER_A as A,
    PROVIDER_A_SECRET as A_KEY, READER_TOKEN, WRITER_TOKEN,
};
use serde_json::json;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

async fn reserve(app: &TestApp, wallet: &str, id: &str, timeout_s: u32) {
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            json!({"transaction_id": id, "amount": "1.00", "game_id": "g1", "round_id": "r1",
                   "timeout_s": timeout_s}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
}

async fn expired_events(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE event_type = 'ReservationExpired'")
        .fetch_one(pool)
        .await
        .unwrap()
}

async fn wait_until_reserved_is_zero(app: &TestApp, wallet: &str) {
    let started = Instant::now();
    loop {
        let r = app.get(&format!("/v1/wallets/{wallet}")).await;
        if r.body["balance"]["reserved"] == "0.00" {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "reservations not expired within 15 s: {:?}",
            r.body
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_reservation_past_its_timeout_is_refunded_by_the_engine(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let wallet = app.open_wallet("p1", "EUR").await;
    app.deposit(&wallet, "fund", "100").await;
    // A provider bet under id b1 is reservation "alpha:b1"; this one has a 1 s timeout.
    // Provider bets all time out after an hour and a native caller cannot name a
    // provider's id, so it goes straight to a write path.
    let store = eventstore::CqrsWalletStore::new(pool.clone());
    eventstore::WalletStore::execute(
        &store,
        wallet.parse().unwrap(),
        domain::WalletCommand::Reserve {
            reservation_id: domain::TransactionId::scoped(A, "b1").unwrap().into(),
            amount: rust_decimal::Decimal::new(100, 2),
            currency: None,
            game_id: domain::GameId::new("g1").unwrap(),
            round_id: domain::RoundId::new("r1").unwrap(),
            timeout_s: 1,
            now: chrono::Utc::now(),
        },
    )
    .await
    .unwrap();
    reserve(&app, &wallet, "long", 3_600).await;
    let started = Instant::now();
    loop {
        if expired_events(&pool).await == 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "not expired within 15 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let r = app.get(&format!("/v1/wallets/{wallet}")).await;
    assert_eq!(
        r.body["balance"],
        json!({"available": "99.00", "reserved": "1.00", "bonus": "0.00", "bonus_reserved": "0.00", "currency": "EUR"}),
        "only the expired stake came back"
    );
    let events = app.get(&format!("/v1/wallets/{wallet}/events")).await;
    let last = &events.body["events"]
        .as_array()
        .unwrap()
        .last()
        .unwrap()
        .clone();
    assert_eq!(last["event_type"], "ReservationExpired", "{last:?}");
    // A win arriving after the expiry is refused; a rollback finds the stake already back.
    let win = json!({"player_id": "p1", "currency": "EUR", "transaction_id": "w1",
                     "bet_transaction_id": "b1", "round_id": "r1", "amount": "5"});
    let r = app.provider(A, A_KEY, "win", win).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "RESERVATION_CLOSED"),
        "{:?}",
        r.body
    );
    let rollback = json!({"player_id": "p1", "currency": "EUR", "transaction_id": "rb1",
                          "bet_transaction_id": "b1", "round_id": "r1"});
    let r = app.provider(A, A_KEY, "rollback", rollback).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["balance"]["available"], "99.00");
    assert_eq!(expired_events(&pool).await, 1);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_instances_sweeping_expire_each_reservation_once(pool: PgPool) {
    let one = spawn_app(pool.clone()).await;
    let other_pool = reopen(&pool).await;
    let other = start_app(
        command_api::Application::with_pool(&test_config(), other_pool.clone())
            .await
            .unwrap(),
        other_pool,
    );
    let wallet = one.open_wallet("p1", "EUR").await;
    one.deposit(&wallet, "fund", "100").await;
    for i in 0..20 {
        reserve(&one, &wallet, &format!("bet-{i}"), 1).await;
    }
    wait_until_reserved_is_zero(&one, &wallet).await;
    // Both sweeps run several more times; nothing expires twice.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(expired_events(&pool).await, 20);
    let r = one.get(&format!("/v1/wallets/{wallet}")).await;
    assert_eq!(r.body["balance"]["available"], "100.00");
    one.stop().await;
    other.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn clients_over_their_rate_get_429_with_retry_after(pool: PgPool) {
    let mut config = test_config();
    config.rate_limit_per_s = 1;
    config.rate_limit_burst = 3;
    let app = spawn_app_with(pool, config).await;
    let get = |token: &'static str| {
        app.http
            .get(app.url("/v1/wallets/00000000-0000-0000-0000-000000000000"))
            .bearer_auth(token)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(get(READER_TOKEN).await.unwrap().status(), 404);
    }
    let limited = get(READER_TOKEN).await.unwrap();
    assert_eq!(limited.status(), 429);
    let retry: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry), "Retry-After {retry}");
    let body: serde_json::Value = limited.json().await.unwrap();
    assert_eq!(body["error"]["code"], "RATE_LIMITED");
    // Another client has its own bucket.
    assert_eq!(get(WRITER_TOKEN).await.unwrap().status(), 404);
    // Providers too, counted per provider.
    let balance = json!({"token": "t"});
    let mut codes = Vec::new();
    for _ in 0..4 {
        codes.push(
            app.provider(A, A_KEY, "balance", balance.clone())
                .await
                .code()
                .to_string(),
        );
    }
    assert_eq!(
        codes,
        [
            "INVALID_TOKEN",
            "INVALID_TOKEN",
            "INVALID_TOKEN",
            "RATE_LIMITED"
        ]
    );
    app.stop().await;
}
