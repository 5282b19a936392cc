//! Player protection end to end (the contract's "Player protection"): limits, exclusion
//! and lock through the native face, with their scopes, refusals and idempotency; the
//! provider face's codes; 50 parallel bets and deposits against a limit through one and
//! two instances; and `verify` and `audit` over the log they leave.

use std::time::Duration;

use betledger_tests::{
    reopen, spawn_app, spawn_app_with, test_config, TestApp, OPERATOR_TOKEN, PROVIDER_A as A,
    PROVIDER_A_SECRET as A_KEY, READER_TOKEN, WRITER_TOKEN,
};
use replay_tool::fold::ViolationKind;
use replay_tool::verify::{verify, VerifyConfig};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

fn verify_config() -> VerifyConfig {
    VerifyConfig {
        page_size: 11,
        listed_max: 50,
        progress: replay_tool::progress::ProgressMode::Quiet,
    }
}

async fn put_limit(
    app: &TestApp,
    wallet: &str,
    path: &str,
    body: Value,
    token: &str,
) -> betledger_tests::Reply {
    app.send_with(
        Method::PUT,
        &format!("/v1/wallets/{wallet}/limits/{path}"),
        body,
        Some(token),
    )
    .await
}

async fn limits(app: &TestApp, wallet: &str) -> Value {
    let r = app.get(&format!("/v1/wallets/{wallet}/limits")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

async fn del(app: &TestApp, wallet: &str, path: &str, tx: &str) -> betledger_tests::Reply {
    let path = format!("/v1/wallets/{wallet}/limits/{path}");
    app.send_with(
        Method::DELETE,
        &path,
        json!({"transaction_id": tx}),
        Some(WRITER_TOKEN),
    )
    .await
}

/// A deposit that may be refused (`TestApp::deposit` expects it accepted).
async fn deposit(app: &TestApp, wallet: &str, tx: &str, amount: &str) -> betledger_tests::Reply {
    let body = json!({"transaction_id": tx, "amount": amount});
    app.post(&format!("/v1/wallets/{wallet}/deposits"), body)
        .await
}

async fn exclude(app: &TestApp, wallet: &str, body: Value) -> betledger_tests::Reply {
    app.post(&format!("/v1/wallets/{wallet}/exclusion"), body)
        .await
}

async fn lock(
    app: &TestApp,
    wallet: &str,
    token: &str,
    call: &str,
    tx: &str,
) -> betledger_tests::Reply {
    let body = json!({"transaction_id": tx, "reason": "fraud review"});
    app.send_with(
        Method::POST,
        &format!("/v1/wallets/{wallet}/{call}"),
        body,
        Some(token),
    )
    .await
}

fn bet(tx: &str, amount: &str) -> Value {
    json!({"transaction_id": tx, "amount": amount, "game_id": "g1", "round_id": format!("round-{tx}")})
}

/// The next UTC midnight, as the API writes times.
fn next_utc_midnight() -> chrono::DateTime<chrono::Utc> {
    let today = chrono::Utc::now().date_naive();
    (today + chrono::Duration::days(1))
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn limits_exclusion_and_lock_through_the_native_face(pool: PgPool) {
    let mut config = test_config();
    config.protection.cooling_s = 2;
    let app = spawn_app_with(pool.clone(), config).await;
    let wallet = app.open_wallet("guarded", "EUR").await;
    app.deposit(&wallet, "fund", "100").await;
    let view = limits(&app, &wallet).await;
    assert_eq!(
        (view["limits"].clone(), view["locked"].clone()),
        (json!([]), json!(false))
    );

    // A read-only token changes nothing; bad paths and amounts are refused.
    let events = app.event_count().await;
    let r = put_limit(
        &app,
        &wallet,
        "deposit/day",
        json!({"transaction_id": "l1", "amount": "50"}),
        READER_TOKEN,
    )
    .await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
    for (path, amount, code) in [
        ("bogus/day", "50", "INVALID_REQUEST"),
        ("deposit/year", "50", "INVALID_REQUEST"),
        ("deposit/day", "-5", "INVALID_AMOUNT"),
        ("deposit/day", "1.001", "INVALID_AMOUNT"),
    ] {
        let r = put_limit(
            &app,
            &wallet,
            path,
            json!({"transaction_id": "bad", "amount": amount}),
            WRITER_TOKEN,
        )
        .await;
        assert_eq!(
            (r.status, r.code()),
            (400, code),
            "{path} {amount}: {:?}",
            r.body
        );
    }
    assert_eq!(app.event_count().await, events, "nothing moved");

    // A deposit limit; a repeat answers the same, another payload is a conflict.
    let set = json!({"transaction_id": "l1", "amount": "50"});
    let first = put_limit(&app, &wallet, "deposit/day", set.clone(), WRITER_TOKEN).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let again = put_limit(&app, &wallet, "deposit/day", set, WRITER_TOKEN).await;
    assert_eq!(again.body, first.body);
    let other = put_limit(
        &app,
        &wallet,
        "deposit/day",
        json!({"transaction_id": "l1", "amount": "60"}),
        WRITER_TOKEN,
    )
    .await;
    assert_eq!((other.status, other.code()), (409, "IDEMPOTENCY_CONFLICT"));

    assert_eq!(deposit(&app, &wallet, "d1", "30").await.status, 200);
    let events = app.event_count().await;
    let r = deposit(&app, &wallet, "d2", "25").await;
    assert_eq!((r.status, r.code()), (422, "LIMIT_REACHED"), "{:?}", r.body);
    assert_eq!(
        r.body["limit"],
        json!({"kind": "deposit", "period": "day", "amount": "50.00", "used": "30.00",
               "resets_at": next_utc_midnight()})
    );
    assert_eq!(r.body["balance"]["available"], "130.00");
    assert_eq!(app.event_count().await, events, "a refusal moves nothing");
    let view = limits(&app, &wallet).await;
    assert_eq!(view["limits"][0]["used"], "30.00");
    assert_eq!(view["limits"][0]["amount"], "50.00");
    assert_eq!(view["limits"][0]["zone"], "UTC");

    // A looser limit waits for the cooling-off period (2 s here), and is shown pending.
    let r = put_limit(
        &app,
        &wallet,
        "deposit/day",
        json!({"transaction_id": "l2", "amount": "500"}),
        WRITER_TOKEN,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let view = limits(&app, &wallet).await;
    assert_eq!(view["limits"][0]["amount"], "50.00");
    assert_eq!(view["limits"][0]["pending"]["amount"], "500.00");
    assert_eq!(
        deposit(&app, &wallet, "d3", "25").await.code(),
        "LIMIT_REACHED"
    );
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(
        deposit(&app, &wallet, "d4", "25").await.status,
        200,
        "the looser limit applies"
    );
    let view = limits(&app, &wallet).await;
    assert_eq!(
        (
            view["limits"][0]["amount"].clone(),
            view["limits"][0]["pending"].clone()
        ),
        (json!("500.00"), Value::Null)
    );
    assert_eq!(view["limits"][0]["used"], "55.00");

    // A removal waits too; a limit that does not exist cannot be removed.
    let r = del(&app, &wallet, "wager/day", "x0").await;
    assert_eq!((r.status, r.code()), (404, "LIMIT_NOT_FOUND"));
    assert_eq!(del(&app, &wallet, "deposit/day", "x1").await.status, 200);
    assert_eq!(
        limits(&app, &wallet).await["limits"][0]["pending"]["amount"],
        Value::Null
    );
    assert_eq!(limits(&app, &wallet).await["limits"][0]["amount"], "500.00");
    tokio::time::sleep(Duration::from_millis(2_100)).await;
    assert_eq!(limits(&app, &wallet).await["limits"], json!([]));

    // Self-exclusion: no bets or deposits; money owed is paid and may leave.
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            bet("b1", "5"),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let until = chrono::Utc::now() + chrono::Duration::hours(1);
    let r = exclude(
        &app,
        &wallet,
        json!({"transaction_id": "e1", "until": until.to_rfc3339()}),
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = deposit(&app, &wallet, "d5", "1").await;
    assert_eq!((r.status, r.code()), (403, "SELF_EXCLUDED"), "{:?}", r.body);
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            bet("b2", "1"),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "SELF_EXCLUDED"));
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/withdrawals"),
            json!({"transaction_id": "w1", "amount": "1"}),
        )
        .await;
    assert_eq!(r.status, 200, "a withdrawal still works: {:?}", r.body);
    for (body, status, code) in [
        (
            json!({"transaction_id": "e2", "until": (until - chrono::Duration::minutes(5)).to_rfc3339()}),
            422,
            "EXCLUSION_NOT_SHORTENED",
        ),
        (
            json!({"transaction_id": "e3", "until": until.to_rfc3339(), "indefinite": true}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"transaction_id": "e4", "until": "2020-01-01T00:00:00Z"}),
            400,
            "INVALID_REQUEST",
        ),
        (
            json!({"transaction_id": "e5", "until": "tomorrow"}),
            400,
            "INVALID_REQUEST",
        ),
        (json!({"transaction_id": "e6"}), 400, "INVALID_REQUEST"),
    ] {
        let r = exclude(&app, &wallet, body.clone()).await;
        assert_eq!((r.status, r.code()), (status, code), "{body}: {:?}", r.body);
    }
    assert_eq!(
        exclude(
            &app,
            &wallet,
            json!({"transaction_id": "e7", "indefinite": true})
        )
        .await
        .status,
        200
    );
    let view = limits(&app, &wallet).await;
    assert_eq!(
        (
            view["self_excluded"].clone(),
            view["excluded_until"].clone()
        ),
        (json!(true), Value::Null)
    );

    // Lock: only an operator; then withdrawals are refused too, and wins still paid.
    assert_eq!(
        lock(&app, &wallet, WRITER_TOKEN, "lock", "k0").await.code(),
        "FORBIDDEN"
    );
    assert_eq!(
        lock(&app, &wallet, OPERATOR_TOKEN, "lock", "k1")
            .await
            .status,
        200
    );
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/withdrawals"),
            json!({"transaction_id": "w2", "amount": "1"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (403, "ACCOUNT_LOCKED"),
        "{:?}",
        r.body
    );
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations/b1/settle"),
            json!({"transaction_id": "s1", "payout": "12"}),
        )
        .await;
    assert_eq!(
        r.status, 200,
        "a win of a bet already taken is paid: {:?}",
        r.body
    );
    let view = limits(&app, &wallet).await;
    assert_eq!(
        (view["locked"].clone(), view["lock_reason"].clone()),
        (json!(true), json!("fraud review"))
    );
    assert_eq!(
        lock(&app, &wallet, OPERATOR_TOKEN, "unlock", "k2")
            .await
            .status,
        200
    );
    assert_eq!(limits(&app, &wallet).await["locked"], false);

    // The audit shows each change with the client that made it; the log is clean.
    let audit = replay_tool::audit::audit(&pool, wallet.parse().unwrap(), None)
        .await
        .unwrap();
    let changes: Vec<(String, String)> = audit
        .events
        .iter()
        .filter_map(|e| Some((e.event.clone(), e.by.clone()?)))
        .collect();
    assert_eq!(
        changes,
        [
            ("LimitChanged", "writer"),
            ("LimitChanged", "writer"),
            ("LimitChanged", "writer"),
            ("SelfExcluded", "writer"),
            ("SelfExcluded", "writer"),
            ("AccountLocked", "operator"),
            ("AccountUnlocked", "operator"),
        ]
        .map(|(e, b)| (e.to_string(), b.to_string()))
    );
    let details: Vec<&str> = audit
        .events
        .iter()
        .filter_map(|e| e.detail.as_deref())
        .collect();
    assert!(
        details[0].starts_with("day deposit limit 50.00, at once"),
        "{details:?}"
    );
    assert!(
        details[1].starts_with("day deposit limit 500.00, from "),
        "{details:?}"
    );
    assert_eq!(details[6], "unlocked: fraud review");
    let report = verify(&pool, &verify_config()).await.unwrap();
    assert!(report.ok, "{:?}", report.listed);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_provider_face_answers_with_the_same_codes_and_pays_a_locked_account(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let wallet = app.open_wallet("prov-guarded", "EUR").await;
    app.deposit(&wallet, "fund", "100").await;
    let token = app.session("prov-guarded", A, "g1").await;
    let r = put_limit(
        &app,
        &wallet,
        "wager/day",
        json!({"transaction_id": "l1", "amount": "10"}),
        WRITER_TOKEN,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let bet = |tx: &str, amount: &str| json!({"token": token, "transaction_id": tx, "round_id": format!("r-{tx}"), "game_id": "g1", "amount": amount});
    assert_eq!(
        app.provider(A, A_KEY, "bet", bet("b1", "8")).await.status,
        200
    );
    let r = app.provider(A, A_KEY, "bet", bet("b2", "5")).await;
    assert_eq!((r.status, r.code()), (422, "LIMIT_REACHED"), "{:?}", r.body);
    assert_eq!(r.body["limit"]["used"], "8.00");
    assert_eq!(r.body["balance"]["available"], "92.00");
    let r = app
        .provider(
            A,
            A_KEY,
            "bet-win",
            json!({"token": token, "transaction_id": "bw1", "round_id": "r-bw1",
        "game_id": "g1", "amount": "5", "payout": "9"}),
        )
        .await;
    assert_eq!(
        r.code(),
        "LIMIT_REACHED",
        "a bet-win stakes too: {:?}",
        r.body
    );

    let r = app
        .send_with(
            Method::POST,
            &format!("/v1/wallets/{wallet}/lock"),
            json!({"transaction_id": "k1", "reason": "review"}),
            Some(OPERATOR_TOKEN),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = app.provider(A, A_KEY, "bet", bet("b3", "1")).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "ACCOUNT_LOCKED"),
        "{:?}",
        r.body
    );
    let win = json!({"player_id": "prov-guarded", "currency": "EUR", "transaction_id": "w1",
                     "bet_transaction_id": "b1", "round_id": "r-b1", "amount": "20"});
    let r = app.provider(A, A_KEY, "win", win).await;
    assert_eq!(
        (r.status, r.body["balance"]["available"].clone()),
        (200, json!("112.00")),
        "a locked account's win is paid: {:?}",
        r.body
    );
    let r = app
        .provider(
            A,
            A_KEY,
            "rollback",
            json!({"player_id": "prov-guarded", "currency": "EUR",
        "transaction_id": "rb1", "bet_transaction_id": "b9", "round_id": "r-b9"}),
        )
        .await;
    assert_eq!(r.status, 200, "a rollback still works: {:?}", r.body);
    assert!(verify(&pool, &verify_config()).await.unwrap().ok);
    app.stop().await;
}

/// Sends 50 bets (or deposits) of 1.00 at once, alternating over `apps`; returns how
/// many were accepted and the codes of the rest.
async fn fifty_at_once(apps: &[&TestApp], wallet: &str, deposits: bool) -> (usize, Vec<String>) {
    let calls = (0..50).map(|i| {
        let app = apps[i % apps.len()];
        let wallet = wallet.to_string();
        async move {
            if deposits {
                deposit(app, &wallet, &format!("p{i}"), "1").await
            } else {
                app.post(
                    &format!("/v1/wallets/{wallet}/reservations"),
                    bet(&format!("p{i}"), "1"),
                )
                .await
            }
        }
    });
    let replies = futures::future::join_all(calls).await;
    let accepted = replies.iter().filter(|r| r.status == 200).count();
    let mut refused: Vec<String> = replies
        .iter()
        .filter(|r| r.status != 200)
        .map(|r| r.code().to_string())
        .collect();
    refused.dedup();
    (accepted, refused)
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn fifty_parallel_bets_and_deposits_against_a_limit_of_twenty_through_one_and_two_instances(
    pool: PgPool,
) {
    let a = spawn_app(pool.clone()).await;
    let b = spawn_app_with(reopen(&pool).await, test_config()).await;
    for (name, apps) in [("one", vec![&a]), ("two", vec![&a, &b])] {
        for (kind, deposits) in [("wager", false), ("deposit", true)] {
            let player = format!("race-{name}-{kind}");
            let wallet = a.open_wallet(&player, "EUR").await;
            a.deposit(&wallet, "fund", "100").await;
            let r = put_limit(
                &a,
                &wallet,
                &format!("{kind}/day"),
                json!({"transaction_id": "l1", "amount": "20"}),
                WRITER_TOKEN,
            )
            .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            // Each instance has the wallet cached before the race.
            for app in &apps {
                assert_eq!(app.get(&format!("/v1/wallets/{wallet}")).await.status, 200);
            }
            let (accepted, refused) = fifty_at_once(&apps, &wallet, deposits).await;
            assert_eq!(
                accepted, 20,
                "{name} instance(s), {kind}: exactly the limit; refused {refused:?}"
            );
            assert_eq!(refused, ["LIMIT_REACHED"], "{name}, {kind}");
            let used = limits(&a, &wallet).await["limits"][0]["used"].clone();
            assert_eq!(used, "20.00", "{name}, {kind}");
        }
    }
    let report = verify(&pool, &verify_config()).await.unwrap();
    assert!(report.ok, "{:?}", report.listed);
    a.stop().await;
    b.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn verify_reports_a_hand_inserted_deposit_over_the_limit_and_a_bet_while_locked(
    pool: PgPool,
) {
    let app = spawn_app(pool.clone()).await;
    let wallet = app.open_wallet("forged", "EUR").await;
    app.deposit(&wallet, "fund", "100").await;
    let r = put_limit(
        &app,
        &wallet,
        "deposit/day",
        json!({"transaction_id": "l1", "amount": "50"}),
        WRITER_TOKEN,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(deposit(&app, &wallet, "d1", "40").await.status, 200);
    assert!(
        verify(&pool, &verify_config()).await.unwrap().ok,
        "the engine's log is clean"
    );
    let id: domain::WalletId = wallet.parse().unwrap();
    let now = chrono::Utc::now();
    let seq = crate::replay::last_sequence(&pool, &id).await + 1;
    crate::replay::insert_event(
        &pool,
        &id,
        seq,
        json!({"FundsDeposited": {"transaction_id": "forged", "amount": "20.00", "at": now}}),
        "160.00",
        "0.00",
    )
    .await;
    let r = app
        .send_with(
            Method::POST,
            &format!("/v1/wallets/{wallet}/lock"),
            json!({"transaction_id": "k1", "reason": "r"}),
            Some(OPERATOR_TOKEN),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    crate::replay::insert_event(
        &pool,
        &id,
        seq + 2,
        json!({"FundsReserved": {"reservation_id": "late", "amount": "5.00", "game_id": "g1",
                                 "round_id": "R", "expires_at": "2030-01-01T00:00:00Z", "at": now}}),
        "155.00",
        "5.00",
    )
    .await;
    let report = verify(&pool, &verify_config()).await.unwrap();
    let found: Vec<(i64, ViolationKind)> = report
        .listed
        .iter()
        .map(|v| (v.sequence as i64, v.kind))
        .collect();
    assert_eq!(
        found,
        [
            (seq, ViolationKind::LimitPassed),
            (seq + 2, ViolationKind::WhileLocked)
        ],
        "{:#?}",
        report.listed
    );
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_read_model_shows_limits_and_what_is_used_and_reconcile_agrees(pool: PgPool) {
    use betledger_tests::readside::ReadSide;
    let mut side = ReadSide::new(pool.clone(), &betledger_tests::unique_prefix("limits"), 2).await;
    side.start_relay();
    side.start_worker();
    let app = betledger_tests::spawn_app_reading(pool.clone(), &side.prefix).await;
    let wallet = app.open_wallet("shown", "EUR").await;
    app.deposit(&wallet, "fund", "100").await;
    let r = put_limit(
        &app,
        &wallet,
        "wager/week",
        json!({"transaction_id": "l1", "amount": "40"}),
        WRITER_TOKEN,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            bet("b1", "15"),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        lock(&app, &wallet, OPERATOR_TOKEN, "lock", "k1")
            .await
            .status,
        200
    );
    side.wait_projected().await;
    let r = app.get(&format!("/v1/read/wallets/{wallet}")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let shown = &r.body["protection"];
    assert_eq!(shown["limits"][0]["kind"], "wager");
    assert_eq!(shown["limits"][0]["period"], "week");
    assert_eq!(shown["limits"][0]["used"], "15.00");
    assert_eq!(shown["limits"][0]["amount"], "40.00");
    assert_eq!(shown["locked"], true);
    // The write side shows the same.
    assert_eq!(limits(&app, &wallet).await["limits"][0]["used"], "15.00");
    let summary = side.reconcile(false).await;
    assert!(summary.ok, "{summary:?}");
    app.stop().await;
    side.teardown().await;
}
