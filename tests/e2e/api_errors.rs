//! Every error code of the contract that the native API can give, and bad input of every
//! kind: each answers with the contract's status and code, and the log does not change.

use betledger_tests::{spawn_app, test_config, TestApp, READER_TOKEN, WRITER_TOKEN};
use command_api::Application;
use serde_json::{json, Value};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

/// Sends `body` (raw text) to `path` and asserts the status and code, and that the log
/// holds exactly as many events as before.
async fn refused(app: &TestApp, path: &str, body: &str, status: u16, code: &str) -> Value {
    let before = app.event_count().await;
    let reply = app
        .post_raw(path, body.to_string(), Some(WRITER_TOKEN))
        .await;
    assert_eq!(
        (reply.status, reply.code()),
        (status, code),
        "{path} {body}: {:?}",
        reply.body
    );
    assert!(
        !reply.body["error"]["message"]
            .as_str()
            .unwrap_or("")
            .is_empty(),
        "an error says what was wrong"
    );
    assert_eq!(
        app.event_count().await,
        before,
        "{path} {body} changed the log"
    );
    reply.body
}

/// A wallet with 22.00 EUR available (30 deposited, 3 lost) and one open reservation `bet-1` of 5.00, one settled
/// `bet-2` and one refunded `bet-3`.
async fn wallet_with_history(app: &TestApp) -> String {
    let w = app.open_wallet("p1", "EUR").await;
    app.deposit(&w, "d1", "30").await;
    for (bet, amount) in [("bet-1", "5"), ("bet-2", "3"), ("bet-3", "2")] {
        let r = app
            .post(
                &format!("/v1/wallets/{w}/reservations"),
                json!({"transaction_id": bet, "amount": amount, "game_id": "g", "round_id": bet}),
            )
            .await;
        assert_eq!(r.status, 200);
    }
    app.post(
        &format!("/v1/wallets/{w}/reservations/bet-2/settle"),
        json!({"transaction_id": "s2", "payout": "0"}),
    )
    .await;
    app.post(
        &format!("/v1/wallets/{w}/reservations/bet-3/refund"),
        json!({"transaction_id": "r3"}),
    )
    .await;
    w
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn malformed_bodies_are_invalid_requests_and_move_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = wallet_with_history(&app).await;
    let deposits = format!("/v1/wallets/{w}/deposits");
    for body in [
        "{",
        "not json",
        "",
        "[]",
        r#"{"transaction_id": "x"}"#,
        r#"{"amount": "1"}"#,
        r#"{"transaction_id": "x", "amount": "1", "extra": true}"#,
        r#"{"transaction_id": "", "amount": "1"}"#,
        r#"{"transaction_id": 5, "amount": "1"}"#,
        r#"{"transaction_id": "x", "amount": null}"#,
        r#"{"transaction_id": "x", "amount": ["1"]}"#,
    ] {
        refused(&app, &deposits, body, 400, "INVALID_REQUEST").await;
    }
    let long_id = "x".repeat(129);
    refused(
        &app,
        &deposits,
        &json!({"transaction_id": long_id, "amount": "1"}).to_string(),
        400,
        "INVALID_REQUEST",
    )
    .await;
    // 65 KiB: over the 64 KiB limit, even though it is valid JSON.
    let padding = "x".repeat(65 * 1024);
    refused(
        &app,
        &deposits,
        &json!({"transaction_id": "big", "amount": "1", "currency": padding}).to_string(),
        400,
        "INVALID_REQUEST",
    )
    .await;
    refused(
        &app,
        "/v1/wallets/not-a-uuid/deposits",
        r#"{"transaction_id": "x", "amount": "1"}"#,
        400,
        "INVALID_REQUEST",
    )
    .await;
    // A reservation timeout outside its bounds.
    refused(
        &app,
        &format!("/v1/wallets/{w}/reservations"),
        r#"{"transaction_id": "t", "amount": "1", "game_id": "g", "round_id": "r", "timeout_s": 0}"#,
        400,
        "INVALID_REQUEST",
    )
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_amounts_are_invalid_amount_and_move_nothing(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = wallet_with_history(&app).await;
    for path in [
        format!("/v1/wallets/{w}/deposits"),
        format!("/v1/wallets/{w}/withdrawals"),
    ] {
        for amount in [
            r#""1e30""#,
            r#""-0.00""#,
            r#""1.001""#,
            r#""0""#,
            r#""-5""#,
            r#""12,50""#,
            r#""""#,
            r#"" 1""#,
            r#""1000000000.01""#,
            "1e30",
            "12.5",
            "1",
        ] {
            let body = format!(r#"{{"transaction_id": "bad", "amount": {amount}}}"#);
            refused(&app, &path, &body, 400, "INVALID_AMOUNT").await;
        }
    }
    refused(
        &app,
        &format!("/v1/wallets/{w}/reservations/bet-1/settle"),
        r#"{"transaction_id": "s", "payout": "-0.00"}"#,
        400,
        "INVALID_AMOUNT",
    )
    .await;
    refused(
        &app,
        &format!("/v1/wallets/{w}/reservations"),
        r#"{"transaction_id": "t", "amount": "0.001", "game_id": "g", "round_id": "r"}"#,
        400,
        "INVALID_AMOUNT",
    )
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_currencies_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    refused(
        &app,
        "/v1/wallets",
        r#"{"player_id": "p", "currency": "XXX"}"#,
        400,
        "UNKNOWN_CURRENCY",
    )
    .await;
    refused(
        &app,
        "/v1/wallets",
        r#"{"player_id": "p", "currency": "eur"}"#,
        400,
        "UNKNOWN_CURRENCY",
    )
    .await;
    let w = app.open_wallet("p", "EUR").await;
    refused(
        &app,
        &format!("/v1/wallets/{w}/deposits"),
        r#"{"transaction_id": "d", "amount": "1", "currency": "DOGE"}"#,
        400,
        "UNKNOWN_CURRENCY",
    )
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn rule_refusals_carry_the_current_balance(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = wallet_with_history(&app).await;
    let balance = json!({"available": "22.00", "reserved": "5.00", "bonus": "0.00", "bonus_reserved": "0.00", "currency": "EUR"});

    let body = refused(
        &app,
        &format!("/v1/wallets/{w}/withdrawals"),
        r#"{"transaction_id": "w", "amount": "22.01"}"#,
        422,
        "INSUFFICIENT_FUNDS",
    )
    .await;
    assert_eq!(body["balance"], balance);

    let body = refused(
        &app,
        &format!("/v1/wallets/{w}/reservations"),
        r#"{"transaction_id": "big-bet", "amount": "25", "game_id": "g", "round_id": "r"}"#,
        422,
        "INSUFFICIENT_FUNDS",
    )
    .await;
    assert_eq!(body["balance"], balance);

    let body = refused(
        &app,
        &format!("/v1/wallets/{w}/deposits"),
        r#"{"transaction_id": "d", "amount": "1", "currency": "USD"}"#,
        422,
        "CURRENCY_MISMATCH",
    )
    .await;
    assert_eq!(body["balance"], balance);

    let body = refused(
        &app,
        &format!("/v1/wallets/{w}/reservations/nope/settle"),
        r#"{"transaction_id": "s", "payout": "1"}"#,
        404,
        "RESERVATION_NOT_FOUND",
    )
    .await;
    assert_eq!(body["balance"], balance);
    refused(
        &app,
        &format!("/v1/wallets/{w}/reservations/nope/refund"),
        r#"{"transaction_id": "r"}"#,
        404,
        "RESERVATION_NOT_FOUND",
    )
    .await;

    for (path, body) in [
        (
            "bet-2/settle",
            r#"{"transaction_id": "s2b", "payout": "1"}"#,
        ),
        ("bet-2/refund", r#"{"transaction_id": "r2b"}"#),
        (
            "bet-3/settle",
            r#"{"transaction_id": "s3b", "payout": "1"}"#,
        ),
        ("bet-3/refund", r#"{"transaction_id": "r3b"}"#),
    ] {
        let body = refused(
            &app,
            &format!("/v1/wallets/{w}/reservations/{path}"),
            body,
            422,
            "RESERVATION_CLOSED",
        )
        .await;
        assert_eq!(body["balance"], balance);
    }

    // A reservation id reused for another bet.
    refused(
        &app,
        &format!("/v1/wallets/{w}/reservations"),
        r#"{"transaction_id": "bet-1", "amount": "1", "game_id": "g", "round_id": "other"}"#,
        409,
        "IDEMPOTENCY_CONFLICT",
    )
    .await;

    let body = refused(
        &app,
        "/v1/wallets",
        r#"{"player_id": "p1", "currency": "EUR"}"#,
        409,
        "WALLET_EXISTS",
    )
    .await;
    assert_eq!(
        body["wallet_id"],
        w.as_str(),
        "the existing wallet is named"
    );
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn balance_limit_is_limit_exceeded(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.open_wallet("whale", "JPY").await;
    // 1,000 deposits of the largest single amount (1e9), written as one statement: a
    // balance of 1e12, the limit.
    sqlx::query(
        r#"INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                               event_version, payload, metadata)
           SELECT 'wallet', $1, 1 + i, 'FundsDeposited', '1.0',
                  jsonb_build_object('FundsDeposited',
                      jsonb_build_object('transaction_id', 'd' || i, 'amount', '1000000000')),
                  '{}'::jsonb
             FROM generate_series(1, 1000) AS i"#,
    )
    .bind(&w)
    .execute(&app.pool)
    .await
    .unwrap();
    refused(
        &app,
        &format!("/v1/wallets/{w}/deposits"),
        r#"{"transaction_id": "one-more", "amount": "1"}"#,
        422,
        "LIMIT_EXCEEDED",
    )
    .await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn unknown_wallets_are_not_found(pool: PgPool) {
    let app = spawn_app(pool).await;
    let ghost = "00000000-0000-4000-8000-000000000000";
    for (path, body) in [
        ("deposits", r#"{"transaction_id": "d", "amount": "1"}"#),
        ("withdrawals", r#"{"transaction_id": "w", "amount": "1"}"#),
        (
            "reservations",
            r#"{"transaction_id": "b", "amount": "1", "game_id": "g", "round_id": "r"}"#,
        ),
        (
            "reservations/b/settle",
            r#"{"transaction_id": "s", "payout": "1"}"#,
        ),
        ("reservations/b/refund", r#"{"transaction_id": "r"}"#),
    ] {
        let body = refused(
            &app,
            &format!("/v1/wallets/{ghost}/{path}"),
            body,
            404,
            "WALLET_NOT_FOUND",
        )
        .await;
        assert!(
            body.get("balance").is_none(),
            "no balance for a wallet that does not exist"
        );
    }
    for path in [
        format!("/v1/wallets/{ghost}"),
        format!("/v1/wallets/{ghost}/events"),
    ] {
        let reply = app.get(&path).await;
        assert_eq!(
            (reply.status, reply.code()),
            (404, "WALLET_NOT_FOUND"),
            "{path}"
        );
    }
    let reply = app.get("/v1/wallets/not-a-uuid").await;
    assert_eq!((reply.status, reply.code()), (400, "INVALID_REQUEST"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn callers_without_a_valid_token_or_scope_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.open_wallet("p", "EUR").await;
    let path = format!("/v1/wallets/{w}/deposits");
    let body = r#"{"transaction_id": "d", "amount": "1"}"#.to_string();
    let before = app.event_count().await;

    for token in [None, Some("wrong-token"), Some("")] {
        let reply = app.post_raw(&path, body.clone(), token).await;
        assert_eq!(
            (reply.status, reply.code()),
            (401, "UNAUTHORIZED"),
            "{token:?}"
        );
    }
    let reply = app.post_raw(&path, body.clone(), Some(READER_TOKEN)).await;
    assert_eq!((reply.status, reply.code()), (403, "FORBIDDEN"));
    let reply = app
        .send_get_with_token(&format!("/v1/wallets/{w}"), None)
        .await;
    assert_eq!((reply.status, reply.code()), (401, "UNAUTHORIZED"));
    assert_eq!(app.event_count().await, before);
    // The reader may read.
    assert_eq!(app.get(&format!("/v1/wallets/{w}")).await.status, 200);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn events_query_must_be_whole_numbers_in_range(pool: PgPool) {
    let app = spawn_app(pool).await;
    let w = app.open_wallet("p", "EUR").await;
    for query in ["after=-1", "after=x", "limit=1001", "limit=1.5"] {
        let reply = app.get(&format!("/v1/wallets/{w}/events?{query}")).await;
        assert_eq!(
            (reply.status, reply.code()),
            (400, "INVALID_REQUEST"),
            "{query}"
        );
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_database_outage_is_unavailable_not_a_crash(_pool: PgPool) {
    // A pool pointed at a port where no PostgreSQL listens.
    let dead = PgPoolOptions::new()
        .acquire_timeout(std::time::Duration::from_millis(500))
        .connect_lazy("postgres://betledger@127.0.0.1:1/nothing")
        .unwrap();
    let app = Application::with_pool(&test_config(), dead.clone())
        .await
        .unwrap();
    let app = betledger_tests::start_app(app, dead);
    let ready = app.get("/ready").await;
    assert_eq!((ready.status, ready.code()), (503, "UNAVAILABLE"));
    let reply = app
        .post(
            "/v1/wallets/00000000-0000-4000-8000-000000000000/deposits",
            json!({"transaction_id": "d", "amount": "1"}),
        )
        .await;
    assert_eq!((reply.status, reply.code()), (503, "UNAVAILABLE"));
    assert!(reply.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("same transaction_id"));
    assert_eq!(
        app.get("/health").await.status,
        200,
        "the process itself is up"
    );
}

#[tokio::test]
async fn every_pooled_connection_bounds_its_statements() {
    let url = std::env::var("DATABASE_URL").expect("scripts/test.sh sets DATABASE_URL");
    let store_pool = eventstore::db::connect(&url, 2).await.unwrap();
    assert_eq!(eventstore::db::STATEMENT_TIMEOUT_MS, 5_000);
    for _ in 0..3 {
        let shown: String = sqlx::query_scalar("SHOW statement_timeout")
            .fetch_one(&store_pool)
            .await
            .unwrap();
        assert_eq!(shown, "5s", "PostgreSQL shows 5000 ms as 5s");
        let idle: String = sqlx::query_scalar("SHOW idle_in_transaction_session_timeout")
            .fetch_one(&store_pool)
            .await
            .unwrap();
        assert_eq!(idle, "5s", "a transaction left open is ended after 5 s");
    }
    // A transaction left open longer than that loses its session, and its locks.
    let mut tx = store_pool.begin().await.unwrap();
    sqlx::query("SELECT 1").execute(&mut *tx).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(
        eventstore::db::IDLE_IN_TRANSACTION_TIMEOUT_MS + 1_000,
    ))
    .await;
    assert!(
        sqlx::query("SELECT 1").execute(&mut *tx).await.is_err(),
        "the idle transaction's session was ended"
    );
}
