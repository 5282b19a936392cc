//! Idempotency by transaction id: the same request again gets the first answer and moves
//! nothing; another request under the same id is refused. Also across a restart of the
//! API and between racing duplicates.

use betledger_tests::{reopen, spawn_app};
use serde_json::json;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_repeat_gets_the_first_answer_and_moves_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.open_wallet("p", "EUR").await;
    let first = app.deposit(&w, "dep-1", "10").await;
    app.deposit(&w, "dep-2", "5").await;
    let events = app.event_count().await;

    // Same payload, spelled differently: the same request.
    let again = app.deposit(&w, "dep-1", "10.00").await;
    assert_eq!(again.body, first.body, "the first answer, unchanged");
    assert_eq!(again.body["balance"]["available"], "10.00");
    assert_eq!(app.event_count().await, events);

    let read = app.get(&format!("/v1/wallets/{w}")).await;
    assert_eq!(read.body["balance"]["available"], "15.00");
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn another_payload_under_a_used_id_is_a_conflict(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.open_wallet("p", "EUR").await;
    app.deposit(&w, "tx-1", "10").await;
    let events = app.event_count().await;
    for (path, body) in [
        (
            "deposits",
            json!({"transaction_id": "tx-1", "amount": "11"}),
        ),
        (
            "withdrawals",
            json!({"transaction_id": "tx-1", "amount": "10"}),
        ),
        (
            "reservations",
            json!({"transaction_id": "tx-1", "amount": "10", "game_id": "g", "round_id": "r"}),
        ),
    ] {
        let reply = app.post(&format!("/v1/wallets/{w}/{path}"), body).await;
        assert_eq!(
            (reply.status, reply.code()),
            (409, "IDEMPOTENCY_CONFLICT"),
            "{path}"
        );
        assert_eq!(reply.body["balance"]["available"], "10.00");
    }
    assert_eq!(app.event_count().await, events);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_repeat_is_answered_even_when_it_could_no_longer_run(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.open_wallet("p", "EUR").await;
    app.deposit(&w, "d", "10").await;
    let first = app
        .post(
            &format!("/v1/wallets/{w}/withdrawals"),
            json!({"transaction_id": "wd", "amount": "10"}),
        )
        .await;
    assert_eq!(first.status, 200);
    // The wallet is empty now; the repeat must not be told INSUFFICIENT_FUNDS.
    let again = app
        .post(
            &format!("/v1/wallets/{w}/withdrawals"),
            json!({"transaction_id": "wd", "amount": "10"}),
        )
        .await;
    assert_eq!((again.status, &again.body), (200, &first.body));

    // Likewise a settle repeated after the reservation closed.
    app.deposit(&w, "d2", "5").await;
    app.post(
        &format!("/v1/wallets/{w}/reservations"),
        json!({"transaction_id": "b", "amount": "5", "game_id": "g", "round_id": "r"}),
    )
    .await;
    let settle_path = format!("/v1/wallets/{w}/reservations/b/settle");
    let settle = || {
        app.post(
            &settle_path,
            json!({"transaction_id": "win", "payout": "7"}),
        )
    };
    let first = settle().await;
    let again = settle().await;
    assert_eq!((again.status, &again.body), (200, &first.body));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn idempotency_holds_across_a_restart(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let w = app.open_wallet("p", "EUR").await;
    let first = app
        .post(
            &format!("/v1/wallets/{w}/reservations"),
            json!({"transaction_id": "bet", "amount": "0.01", "game_id": "g", "round_id": "r"}),
        )
        .await;
    assert_eq!(first.status, 422, "nothing deposited yet");
    app.deposit(&w, "d", "3").await;
    let first = app
        .post(
            &format!("/v1/wallets/{w}/reservations"),
            json!({"transaction_id": "bet", "amount": "2", "game_id": "g", "round_id": "r"}),
        )
        .await;
    assert_eq!(first.status, 200);
    app.stop().await;

    // A new process: its own pool, its own in-memory state.
    let app = spawn_app(reopen(&pool).await).await;
    let events = app.event_count().await;
    let again = app
        .post(
            &format!("/v1/wallets/{w}/reservations"),
            json!({"transaction_id": "bet", "amount": "2", "game_id": "g", "round_id": "r"}),
        )
        .await;
    assert_eq!((again.status, &again.body), (200, &first.body));
    let conflict = app
        .post(
            &format!("/v1/wallets/{w}/reservations"),
            json!({"transaction_id": "bet", "amount": "1", "game_id": "g", "round_id": "r"}),
        )
        .await;
    assert_eq!(conflict.code(), "IDEMPOTENCY_CONFLICT");
    assert_eq!(app.event_count().await, events);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn racing_duplicates_on_two_instances_move_money_once(pool: PgPool) {
    let a = spawn_app(pool.clone()).await;
    let b = spawn_app(reopen(&pool).await).await;
    let w = a.open_wallet("p", "EUR").await;
    let path = format!("/v1/wallets/{w}/deposits");
    let body = json!({"transaction_id": "dup", "amount": "25"});
    let replies = futures::future::join_all((0..20).map(|i| {
        let app = if i % 2 == 0 { &a } else { &b };
        app.post(&path, body.clone())
    }))
    .await;
    for reply in &replies {
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        assert_eq!(
            reply.body, replies[0].body,
            "every duplicate gets the one answer"
        );
    }
    assert_eq!(a.event_count().await, 2, "opened once, deposited once");
    assert_eq!(
        a.get(&format!("/v1/wallets/{w}")).await.body["balance"]["available"],
        "25.00"
    );
}

/// A repeat says it is one (`Idempotent-Replayed: true`, Stripe's header); a first answer
/// does not; an open answers `201` with the wallet's `Location`.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_repeat_is_marked_and_an_open_says_where_the_wallet_is(pool: PgPool) {
    let app = spawn_app(pool).await;
    let open = app
        .http
        .post(app.url("/v1/wallets"))
        .bearer_auth(betledger_tests::WRITER_TOKEN)
        .json(&json!({"player_id": "loc", "currency": "EUR"}))
        .send()
        .await
        .unwrap();
    assert_eq!(open.status(), 201);
    let location = open.headers()["location"].to_str().unwrap().to_string();
    let body: serde_json::Value = open.json().await.unwrap();
    let wallet = body["wallet_id"].as_str().unwrap();
    assert_eq!(location, format!("/v1/wallets/{wallet}"));
    let read = app.get(&location).await;
    assert_eq!(
        read.status, 200,
        "the Location is the wallet: {:?}",
        read.body
    );

    let deposit = || {
        app.http
            .post(app.url(&format!("/v1/wallets/{wallet}/deposits")))
            .bearer_auth(betledger_tests::WRITER_TOKEN)
            .json(&json!({"transaction_id": "rep-1", "amount": "5.00"}))
            .send()
    };
    let first = deposit().await.unwrap();
    assert_eq!(first.status(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: serde_json::Value = first.json().await.unwrap();
    let again = deposit().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: serde_json::Value = again.json().await.unwrap();
    assert_eq!(again, first, "the first answer, again");
    app.stop().await;
}
