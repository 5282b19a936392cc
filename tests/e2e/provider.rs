//! The provider face end to end: signed requests, sessions in Redis, the provider rules of
//! the contract, and the refusals, each checked to leave the log unchanged.

use betledger_tests::{
    spawn_app, spawn_app_with, test_config, TestApp, PROVIDER_A as A, PROVIDER_A_SECRET as A_KEY,
    PROVIDER_B as B, PROVIDER_B_SECRET as B_KEY,
};
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

/// A funded EUR wallet for `player` and a session with provider A on game `g1`.
async fn player(app: &TestApp, player: &str, funds: &str) -> (String, String) {
    let wallet = app.open_wallet(player, "EUR").await;
    app.deposit(&wallet, &format!("{player}-fund"), funds).await;
    (wallet, app.session(player, A, "g1").await)
}

fn bet(token: &str, tx: &str, amount: &str) -> Value {
    json!({"token": token, "transaction_id": tx, "round_id": "r1", "game_id": "g1", "amount": amount})
}

fn win(player: &str, tx: &str, bet_tx: &str, amount: &str) -> Value {
    json!({"player_id": player, "currency": "EUR", "transaction_id": tx,
           "bet_transaction_id": bet_tx, "round_id": "r1", "amount": amount})
}

fn rollback(player: &str, tx: &str, bet_tx: &str) -> Value {
    json!({"player_id": player, "currency": "EUR", "transaction_id": tx,
           "bet_transaction_id": bet_tx, "round_id": "r1"})
}

fn available(reply: &betledger_tests::Reply) -> &str {
    reply.body["balance"]["available"].as_str().unwrap_or("")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn balance_bet_win_and_rollback_round_trip(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (wallet, token) = player(&app, "p1", "100").await;
    let r = app
        .provider(A, A_KEY, "balance", json!({"token": token}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["wallet_id"], wallet.as_str());
    assert_eq!(available(&r), "100.00");

    let r = app.provider(A, A_KEY, "bet", bet(&token, "b1", "10")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["transaction_id"], "b1",
        "the provider's own id comes back"
    );
    assert_eq!(
        r.body["balance"],
        json!({"available": "90.00", "cash": "90.00", "reserved": "10.00", "bonus": "0.00", "bonus_reserved": "0.00", "currency": "EUR"})
    );

    let r = app
        .provider(A, A_KEY, "win", win("p1", "w1", "b1", "25"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["balance"],
        json!({"available": "115.00", "cash": "115.00", "reserved": "0.00", "bonus": "0.00", "bonus_reserved": "0.00", "currency": "EUR"})
    );

    app.provider(A, A_KEY, "bet", bet(&token, "b2", "5")).await;
    let r = app
        .provider(A, A_KEY, "rollback", rollback("p1", "rb2", "b2"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(available(&r), "115.00");
    assert_eq!(r.body["balance"]["reserved"], "0.00");

    // A loss is a win of "0".
    app.provider(A, A_KEY, "bet", bet(&token, "b3", "15")).await;
    let r = app
        .provider(A, A_KEY, "win", win("p1", "w3", "b3", "0"))
        .await;
    assert_eq!((r.status, available(&r)), (200, "100.00"));
    // Provider ids are stored scoped by provider.
    let ids: Vec<Option<String>> = sqlx::query_scalar(
        "SELECT metadata ->> 'transaction_id' FROM events WHERE aggregate_id = $1 ORDER BY sequence",
    )
    .bind(&wallet)
    .fetch_all(&app.pool)
    .await
    .unwrap();
    let ids: Vec<String> = ids.into_iter().flatten().collect();
    assert!(
        ids.contains(&"alpha:b1".to_string()) && ids.contains(&"alpha:w1".to_string()),
        "{ids:?}"
    );
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_rollback_before_its_bet_blocks_the_bet_forever(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (_, token) = player(&app, "p1", "100").await;
    let r = app
        .provider(A, A_KEY, "rollback", rollback("p1", "rb1", "b1"))
        .await;
    assert_eq!((r.status, available(&r)), (200, "100.00"), "{:?}", r.body);
    let before = app.event_count().await;
    for _ in 0..2 {
        let r = app.provider(A, A_KEY, "bet", bet(&token, "b1", "10")).await;
        assert_eq!(
            (r.status, r.code()),
            (422, "RESERVATION_CLOSED"),
            "{:?}",
            r.body
        );
        assert_eq!(available(&r), "100.00", "never charged");
    }
    let r = app
        .provider(A, A_KEY, "win", win("p1", "w1", "b1", "10"))
        .await;
    assert_eq!((r.status, r.code()), (422, "RESERVATION_CLOSED"));
    assert_eq!(app.event_count().await, before);
    // The same rollback again answers as the first time.
    let r = app
        .provider(A, A_KEY, "rollback", rollback("p1", "rb1", "b1"))
        .await;
    assert_eq!((r.status, available(&r)), (200, "100.00"));
    assert_eq!(app.event_count().await, before);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn wins_and_rollbacks_follow_the_provider_rules(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (_, token) = player(&app, "p1", "100").await;
    // A win for a bet never seen: refused, moves nothing, and stays refusable.
    for _ in 0..2 {
        let r = app
            .provider(A, A_KEY, "win", win("p1", "w1", "b1", "20"))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (404, "RESERVATION_NOT_FOUND"),
            "{:?}",
            r.body
        );
        assert_eq!(available(&r), "100.00");
    }
    // Once the bet arrives, the retried win settles it; a duplicate win answers the same.
    app.provider(A, A_KEY, "bet", bet(&token, "b1", "10")).await;
    let first = app
        .provider(A, A_KEY, "win", win("p1", "w1", "b1", "20"))
        .await;
    assert_eq!((first.status, available(&first)), (200, "110.00"));
    let again = app
        .provider(A, A_KEY, "win", win("p1", "w1", "b1", "20"))
        .await;
    assert_eq!(again.body, first.body, "a repeat answers as the first time");
    // Another win under another id for the same bet is credited to its open round (the
    // contract's several wins per round); a rollback after the win: closed.
    let r = app
        .provider(A, A_KEY, "win", win("p1", "w2", "b1", "20"))
        .await;
    assert_eq!((r.status, available(&r)), (200, "130.00"), "{:?}", r.body);
    let r = app
        .provider(A, A_KEY, "rollback", rollback("p1", "rb1", "b1"))
        .await;
    assert_eq!((r.status, r.code()), (422, "RESERVATION_CLOSED"));
    assert_eq!(available(&r), "130.00");
    // The same id with another payload: a conflict, nothing moves.
    let r = app
        .provider(A, A_KEY, "win", win("p1", "w1", "b1", "99"))
        .await;
    assert_eq!((r.status, r.code()), (409, "IDEMPOTENCY_CONFLICT"));
    // A win after a rollback is refused.
    app.provider(A, A_KEY, "bet", bet(&token, "b2", "10")).await;
    app.provider(A, A_KEY, "rollback", rollback("p1", "rb2", "b2"))
        .await;
    let r = app
        .provider(A, A_KEY, "win", win("p1", "w3", "b2", "50"))
        .await;
    assert_eq!((r.status, r.code()), (422, "RESERVATION_CLOSED"));
    // A repeated bet answers as the first time, even after its round ended.
    let r1 = app.provider(A, A_KEY, "bet", bet(&token, "b1", "10")).await;
    assert_eq!(r1.status, 200);
    assert_eq!(
        r1.body["sequence"], 3,
        "the first answer (open 1, deposit 2, bet 3)"
    );
    assert_eq!(r1.body["balance"]["reserved"], "10.00", "as it was then");
    let r = app.provider(A, A_KEY, "bet", bet(&token, "b1", "11")).await;
    assert_eq!((r.status, r.code()), (409, "IDEMPOTENCY_CONFLICT"));
    let final_balance = app
        .provider(A, A_KEY, "balance", json!({"token": token}))
        .await;
    assert_eq!(available(&final_balance), "130.00");
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_provider_reaches_only_its_own_transactions(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (_, token) = player(&app, "p1", "100").await;
    app.provider(A, A_KEY, "bet", bet(&token, "b1", "10")).await;
    // Provider B's "b1" is another bet: its rollback voids B's id, not A's bet.
    let r = app
        .provider(B, B_KEY, "rollback", rollback("p1", "rb1", "b1"))
        .await;
    assert_eq!(
        (r.status, r.body["balance"]["reserved"].as_str()),
        (200, Some("10.00"))
    );
    let r = app
        .provider(B, B_KEY, "win", win("p1", "w1", "b1", "50"))
        .await;
    assert_eq!((r.status, r.code()), (422, "RESERVATION_CLOSED"));
    let r = app
        .provider(A, A_KEY, "win", win("p1", "w1", "b1", "30"))
        .await;
    assert_eq!((r.status, available(&r)), (200, "120.00"));
    // A's session token does not work on B's path.
    let r = app
        .provider(B, B_KEY, "balance", json!({"token": token}))
        .await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"));
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn forged_stale_and_foreign_requests_are_refused_and_change_nothing(pool: PgPool) {
    let mut config = test_config();
    config.session_ttl_s = 1;
    let app = spawn_app_with(pool, config).await;
    let (_, token) = player(&app, "p1", "100").await;
    let (_, token2) = player(&app, "p2", "100").await;
    let before = app.event_count().await;
    let body = bet(&token, "b1", "10");
    let mut stamped = body.clone();
    stamped["timestamp"] = json!(chrono::Utc::now().timestamp());
    let raw = stamped.to_string();
    let good = command_api::providers::Provider::new(A, A_KEY).sign(raw.as_bytes());

    let cases: Vec<(&str, betledger_tests::Reply, &str)> = vec![
        (
            "no signature",
            app.provider_raw(A, "bet", raw.clone(), None).await,
            "UNAUTHORIZED",
        ),
        (
            "wrong signature",
            app.provider_raw(A, "bet", raw.clone(), Some(&"ab".repeat(32)))
                .await,
            "UNAUTHORIZED",
        ),
        (
            "not hex",
            app.provider_raw(A, "bet", raw.clone(), Some("zz")).await,
            "UNAUTHORIZED",
        ),
        (
            "another body's signature",
            app.provider_raw(A, "bet", raw.replace("\"10\"", "\"99\""), Some(&good))
                .await,
            "UNAUTHORIZED",
        ),
        (
            "another provider's secret",
            app.provider(A, B_KEY, "bet", body.clone()).await,
            "UNAUTHORIZED",
        ),
        (
            "unknown provider",
            app.provider("nobody", A_KEY, "bet", body.clone()).await,
            "UNAUTHORIZED",
        ),
        (
            "stale timestamp",
            app.provider(A, A_KEY, "bet", {
                let mut b = body.clone();
                b["timestamp"] = json!(chrono::Utc::now().timestamp() - 301);
                b
            })
            .await,
            "UNAUTHORIZED",
        ),
        (
            "future timestamp",
            app.provider(A, A_KEY, "bet", {
                let mut b = body.clone();
                b["timestamp"] = json!(chrono::Utc::now().timestamp() + 301);
                b
            })
            .await,
            "UNAUTHORIZED",
        ),
        (
            "unknown token",
            app.provider(A, A_KEY, "bet", bet("no-such-token", "b1", "10"))
                .await,
            "INVALID_TOKEN",
        ),
        (
            "unknown field",
            app.provider(A, A_KEY, "bet", {
                let mut b = body.clone();
                b["extra"] = json!(1);
                b
            })
            .await,
            "INVALID_REQUEST",
        ),
        (
            "amount as a number",
            app.provider(A, A_KEY, "bet", {
                let mut b = body.clone();
                b["amount"] = json!(10);
                b
            })
            .await,
            "INVALID_AMOUNT",
        ),
        (
            "another game than the session's",
            app.provider(A, A_KEY, "bet", {
                let mut b = body.clone();
                b["game_id"] = json!("g2");
                b
            })
            .await,
            "FORBIDDEN",
        ),
        // p2's bet is in p2's wallet: a win naming p1 finds no such bet.
        (
            "another player's bet",
            {
                app.provider(A, A_KEY, "bet", bet(&token2, "b9", "10"))
                    .await;
                app.provider(A, A_KEY, "win", win("p1", "w9", "b9", "500"))
                    .await
            },
            "RESERVATION_NOT_FOUND",
        ),
    ];
    for (what, reply, code) in &cases {
        assert_eq!(reply.code(), *code, "{what}: {:?}", reply.body);
    }
    assert_eq!(
        app.event_count().await,
        before + 1,
        "only p2's own bet was written"
    );
    // The valid request itself goes through once.
    let r = app.provider_raw(A, "bet", raw.clone(), Some(&good)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // An ended session and an expired one are INVALID_TOKEN.
    let ended = app.session("p1", A, "g1").await;
    let r = app
        .http
        .delete(app.url(&format!("/v1/sessions/{ended}")))
        .bearer_auth(betledger_tests::WRITER_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = app
        .provider(A, A_KEY, "balance", json!({"token": ended}))
        .await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"));
    tokio::time::sleep(std::time::Duration::from_millis(2_100)).await;
    let r = app
        .provider(A, A_KEY, "balance", json!({"token": token}))
        .await;
    assert_eq!(
        (r.status, r.code()),
        (401, "INVALID_TOKEN"),
        "expired after its 1 s TTL"
    );
    // Win and rollback name the player, so they work after the session ended.
    let r = app
        .provider(A, A_KEY, "win", win("p1", "w1", "b1", "0"))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_session_is_extended_on_use(pool: PgPool) {
    let mut config = test_config();
    config.session_ttl_s = 2;
    let app = spawn_app_with(pool, config).await;
    let (_, token) = player(&app, "p1", "100").await;
    for _ in 0..4 {
        tokio::time::sleep(std::time::Duration::from_millis(900)).await;
        let r = app
            .provider(A, A_KEY, "balance", json!({"token": token}))
            .await;
        assert_eq!(
            r.status, 200,
            "used within its TTL, it stays alive: {:?}",
            r.body
        );
    }
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sessions_need_a_known_wallet_and_provider(pool: PgPool) {
    let app = spawn_app(pool).await;
    let r = app
        .post(
            "/v1/sessions",
            json!({"player_id": "ghost", "currency": "EUR", "provider_id": A, "game_id": "g1"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "WALLET_NOT_FOUND"));
    app.open_wallet("p1", "EUR").await;
    let r = app
        .post(
            "/v1/sessions",
            json!({"player_id": "p1", "currency": "EUR", "provider_id": "nobody", "game_id": "g1"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"));
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn redis_down_is_unavailable_and_moves_nothing(pool: PgPool) {
    let mut config = test_config();
    config.redis_url = "redis://127.0.0.1:1".into();
    let app = spawn_app_with(pool, config).await;
    app.open_wallet("p1", "EUR").await;
    let before = app.event_count().await;
    let r = app
        .post(
            "/v1/sessions",
            json!({"player_id": "p1", "currency": "EUR", "provider_id": A, "game_id": "g1"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (503, "UNAVAILABLE"), "{:?}", r.body);
    let r = app
        .provider(A, A_KEY, "bet", bet("some-token", "b1", "1"))
        .await;
    assert_eq!((r.status, r.code()), (503, "UNAVAILABLE"));
    assert_eq!(app.event_count().await, before);
    // The API itself is alive.
    assert_eq!(app.get("/health").await.status, 200);
    app.stop().await;
}

/// Issue 29: the handlers read "now" from the application's clock, so time-bound rules
/// are tested at a chosen time. The provider's timestamp window follows that clock, not
/// the machine's.
#[sqlx::test(migrator = "MIGRATOR")]
async fn the_timestamp_window_follows_the_servers_clock(pool: PgPool) {
    use command_api::clock::{Clock, FixedClock};
    let clock = FixedClock::at("2030-06-01T12:00:00Z".parse().unwrap());
    let app = betledger_tests::spawn_app_at(pool, clock.clone()).await;
    app.open_wallet("clocked", "EUR").await;
    let token = app.session("clocked", A, "g1").await;
    let at = |t: i64| json!({"token": token, "timestamp": t});
    let machine = app
        .provider(A, A_KEY, "balance", at(chrono::Utc::now().timestamp()))
        .await;
    assert_eq!((machine.status, machine.code()), (401, "UNAUTHORIZED"));
    let server = clock.now().timestamp();
    assert_eq!(
        app.provider(A, A_KEY, "balance", at(server)).await.status,
        200
    );
    clock.advance(chrono::Duration::seconds(301));
    let late = app.provider(A, A_KEY, "balance", at(server)).await;
    assert_eq!((late.status, late.code()), (401, "UNAUTHORIZED"));
    app.stop().await;
}
