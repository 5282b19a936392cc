//! Bonus money end to end (the contract's "Bonus money") through the native face: grants
//! with their scope and refusals, funding cash first with `funded` in the answer, the
//! payout split with the contract's numbers, completion converting up to the cap and
//! activating the next award, `BONUS_ACTIVE` and `forfeit_bonuses`, an operator's
//! forfeit, repeats of each call (the first answer) and conflicts (409); then `verify`
//! over the log they leave, and a hand-inserted conversion above its cap that `verify`
//! reports.

use betledger_tests::{spawn_app, TestApp, OPERATOR_TOKEN, WRITER_TOKEN};
use replay_tool::fold::ViolationKind;
use replay_tool::verify::{verify, VerifyConfig};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

fn verify_config() -> VerifyConfig {
    VerifyConfig {
        page_size: 7,
        listed_max: 50,
        progress: replay_tool::progress::ProgressMode::Quiet,
    }
}

fn in_a_week() -> String {
    (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339()
}

async fn grant(app: &TestApp, wallet: &str, body: Value, token: &str) -> betledger_tests::Reply {
    app.send_with(
        Method::POST,
        &format!("/v1/wallets/{wallet}/bonuses"),
        body,
        Some(token),
    )
    .await
}

async fn bonuses(app: &TestApp, wallet: &str) -> Value {
    let r = app.get(&format!("/v1/wallets/{wallet}/bonuses")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    r.body
}

fn bet(tx: &str, amount: &str) -> Value {
    json!({"transaction_id": tx, "amount": amount, "game_id": "g1", "round_id": format!("round-{tx}")})
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bonus_money_through_the_native_face(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let wallet = app.open_wallet("bonus-player", "EUR").await;
    app.deposit(&wallet, "fund", "10.00").await;

    // Granting needs the operator scope; terms out of range move nothing.
    let welcome = json!({
        "transaction_id": "welcome", "amount": "20.00", "wagering_multiplier": 1,
        "expires_at": in_a_week(), "max_conversion": "25.00"
    });
    let r = grant(&app, &wallet, welcome.clone(), WRITER_TOKEN).await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
    let events = app.event_count().await;
    for (field, value) in [
        ("wagering_multiplier", json!(11)),
        ("wagering_multiplier", json!(0)),
        ("expires_at", json!("2020-01-01T00:00:00Z")),
        ("contributions", json!({"g1": 101})),
        ("max_bet", json!("0.001")),
    ] {
        let mut body = welcome.clone();
        body[field] = value.clone();
        let r = grant(&app, &wallet, body, OPERATOR_TOKEN).await;
        assert_eq!(r.status, 422, "{field} {value}: {:?}", r.body);
        assert_eq!(r.code(), "BONUS_TERMS_INVALID", "{field} {value}");
    }
    assert_eq!(app.event_count().await, events, "nothing moved");

    // The grant: active at once; a repeat answers the same; another payload is 409.
    let first = grant(&app, &wallet, welcome.clone(), OPERATOR_TOKEN).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["balance"]["bonus"], "20.00");
    assert_eq!(first.body["balance"]["available"], "10.00");
    let again = grant(&app, &wallet, welcome.clone(), OPERATOR_TOKEN).await;
    assert_eq!(again.body, first.body);
    let mut other = welcome.clone();
    other["amount"] = json!("21.00");
    let r = grant(&app, &wallet, other, OPERATOR_TOKEN).await;
    assert_eq!((r.status, r.code()), (409, "IDEMPOTENCY_CONFLICT"));
    // A second award waits, queued.
    let reload = json!({"transaction_id": "reload", "amount": "5.00", "wagering_multiplier": 3, "expires_at": in_a_week()});
    let r = grant(&app, &wallet, reload, OPERATOR_TOKEN).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["balance"]["bonus"], "20.00",
        "queued money is outside"
    );

    // A bet takes cash first: 10 cash + 20 bonus, shown in `funded`, and again on a repeat.
    let placed = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            bet("b1", "30.00"),
        )
        .await;
    assert_eq!(placed.status, 200, "{:?}", placed.body);
    assert_eq!(
        placed.body["funded"],
        json!({"cash": "10.00", "bonus": "20.00"})
    );
    assert_eq!(placed.body["balance"]["bonus_reserved"], "20.00");
    let repeat = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            bet("b1", "30.00"),
        )
        .await;
    assert_eq!(repeat.body, placed.body);
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            bet("b2", "0.01"),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "INSUFFICIENT_FUNDS"));

    // 60 paid: 20 to cash, 40 to the award; 30 wagered meets 20 × 1: it completes with
    // its bet settled, converting 25 (its cap) and forfeiting 15; "reload" activates.
    let paid = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations/b1/settle"),
            json!({"transaction_id": "b1-win", "payout": "60.00"}),
        )
        .await;
    assert_eq!(paid.status, 200, "{:?}", paid.body);
    assert_eq!(paid.body["balance"]["available"], "45.00");
    assert_eq!(paid.body["balance"]["bonus"], "5.00");
    let view = bonuses(&app, &wallet).await;
    let awards = view["awards"].as_array().unwrap();
    assert_eq!(awards[0]["status"], "completed");
    assert_eq!(awards[0]["converted"], "25.00");
    assert_eq!(awards[0]["forfeited"], "15.00");
    assert_eq!(
        awards[0]["wagering"],
        json!({"required": "20.00", "progress": "30.00"})
    );
    assert_eq!(awards[1]["status"], "active");
    assert_eq!(awards[1]["balance"], "5.00");

    // A withdrawal while an award is pending: 409 BONUS_ACTIVE, unless it forfeits them.
    let withdraw = json!({"transaction_id": "wd", "amount": "45.00"});
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/withdrawals"),
            withdraw.clone(),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "BONUS_ACTIVE"));
    assert_eq!(
        r.body["balance"]["bonus"], "5.00",
        "a refusal carries the balance"
    );
    let mut forfeiting = withdraw.clone();
    forfeiting["transaction_id"] = json!("wd2");
    forfeiting["forfeit_bonuses"] = json!(true);
    let r = app
        .post(&format!("/v1/wallets/{wallet}/withdrawals"), forfeiting)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["balance"]["bonus"], "0.00");
    assert_eq!(r.body["balance"]["available"], "0.00");
    let view = bonuses(&app, &wallet).await;
    assert_eq!(view["awards"][1]["status"], "forfeited");
    assert_eq!(view["awards"][1]["forfeited"], "5.00");

    // An operator forfeits an award; an ended one is 404 BONUS_NOT_FOUND.
    let w2 = app.open_wallet("bonus-player-2", "EUR").await;
    let g = json!({"transaction_id": "g", "amount": "8.00", "wagering_multiplier": 10, "expires_at": in_a_week()});
    assert_eq!(grant(&app, &w2, g, OPERATOR_TOKEN).await.status, 200);
    let forfeit = |tx: &str| json!({"transaction_id": tx, "reason": "bonus abuse"});
    let path = format!("/v1/wallets/{w2}/bonuses/g/forfeit");
    let r = app
        .send_with(Method::POST, &path, forfeit("f1"), Some(WRITER_TOKEN))
        .await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
    let r = app
        .send_with(Method::POST, &path, forfeit("f1"), Some(OPERATOR_TOKEN))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["balance"]["bonus"], "0.00");
    let again = app
        .send_with(Method::POST, &path, forfeit("f1"), Some(OPERATOR_TOKEN))
        .await;
    assert_eq!(again.body, r.body, "a repeat answers the same");
    let r = app
        .send_with(Method::POST, &path, forfeit("f2"), Some(OPERATOR_TOKEN))
        .await;
    assert_eq!((r.status, r.code()), (404, "BONUS_NOT_FOUND"));
    let r = app
        .send_with(
            Method::POST,
            &format!("/v1/wallets/{w2}/bonuses/nope/forfeit"),
            forfeit("f3"),
            Some(OPERATOR_TOKEN),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "BONUS_NOT_FOUND"));

    // The log verifies: balances, awards, conversions within their caps.
    let report = verify(&pool, &verify_config()).await.unwrap();
    assert!(report.ok, "{:?}", report.listed);

    // A conversion above the cap, written by hand into the log, is reported.
    let w3 = app.open_wallet("bonus-player-3", "EUR").await;
    let capped = json!({"transaction_id": "c", "amount": "10.00", "wagering_multiplier": 1, "expires_at": in_a_week(), "max_conversion": "5.00"});
    assert_eq!(grant(&app, &w3, capped, OPERATOR_TOKEN).await.status, 200);
    let (sequence,): (i64,) =
        sqlx::query_as("SELECT max(sequence) FROM events WHERE aggregate_id = $1")
            .bind(&w3)
            .fetch_one(&pool)
            .await
            .unwrap();
    let payload = json!({"FundsWithdrawn": {
        "transaction_id": "forged", "amount": "0.01",
        "bonus": {"ended": [{"bonus_id": "c", "status": "completed", "converted": "10.00", "forfeited": "0.00"}]}
    }});
    let metadata = json!({
        "command": "withdraw", "transaction_id": "forged", "request_sha256": "x",
        "available": "9.99", "reserved": "0.00", "currency": "EUR"
    });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('wallet', $1, $2, 'FundsWithdrawn', '1.0', $3, $4)",
    )
    .bind(&w3)
    .bind(sequence + 1)
    .bind(&payload)
    .bind(&metadata)
    .execute(&pool)
    .await
    .unwrap();
    let report = verify(&pool, &verify_config()).await.unwrap();
    assert!(!report.ok);
    assert!(
        report
            .listed
            .iter()
            .any(|v| v.kind == ViolationKind::ConversionAboveCap),
        "{:?}",
        report.listed
    );
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn an_award_past_its_expiry_is_expired_by_the_engine(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let wallet = app.open_wallet("expiring", "EUR").await;
    // One award expires in a second (the API refuses a grant that ends before it is
    // decided, so it goes straight to a write path); the next one then activates.
    let store = eventstore::CqrsWalletStore::new(pool.clone());
    let terms = |seconds: i64| domain::BonusTerms {
        wagering_multiplier: 5,
        expires_at: chrono::Utc::now() + chrono::Duration::seconds(seconds),
        max_conversion: None,
        max_bet: None,
        contributions: Default::default(),
    };
    for (id, seconds) in [("short", 1), ("long", 3_600)] {
        eventstore::WalletStore::execute(
            &store,
            wallet.parse().unwrap(),
            domain::WalletCommand::GrantBonus {
                transaction_id: domain::TransactionId::new(id).unwrap(),
                amount: rust_decimal::Decimal::new(500, 2),
                terms: terms(seconds),
                currency: None,
                multiplier_max: 10,
                now: chrono::Utc::now(),
                by: domain::ClientId::new("backoffice").unwrap(),
            },
        )
        .await
        .unwrap();
    }
    let started = std::time::Instant::now();
    loop {
        let view = bonuses(&app, &wallet).await;
        if view["awards"][0]["status"] == "expired" {
            assert_eq!(view["awards"][0]["forfeited"], "5.00");
            assert_eq!(view["awards"][1]["status"], "active");
            assert_eq!(view["balance"]["bonus"], "5.00");
            break;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(15),
            "not expired within 15 s: {view}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let report = verify(&pool, &verify_config()).await.unwrap();
    assert!(report.ok, "{:?}", report.listed);
    app.stop().await;
}
