//! Bonus money end to end (the contract's "Bonus money") through the native face: grants
//! with their scope and refusals, funding cash first with `funded` in the answer, the
//! payout split with the contract's numbers, completion converting up to the cap and
//! activating the next award, `BONUS_ACTIVE` and `forfeit_bonuses`, an operator's
//! forfeit, repeats of each call (the first answer) and conflicts (409); then `verify`
//! over the log they leave, and a hand-inserted conversion above its cap that `verify`
//! reports.

use betledger_tests::{
    spawn_app, TestApp, OPERATOR_TOKEN, PROVIDER_A as A, PROVIDER_A_SECRET as A_KEY, WRITER_TOKEN,
};
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
        ("wagering_multiplier", json!(-1)),
        ("contributions", json!({"g1": -5})),
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
    // The audit tells each award's life, row by row, and where each stands.
    let audit = replay_tool::audit::audit(&pool, wallet.parse().unwrap(), None)
        .await
        .unwrap();
    let details: Vec<String> = audit
        .events
        .iter()
        .filter_map(|r| r.detail.clone())
        .collect();
    for expected in [
        "welcome granted 20.00, wagering x1",
        "welcome stake 20.00 (bet b1)",
        "welcome paid 40.00; welcome wagered 30.00; welcome completed: converted 25.00, \
         forfeited 15.00; reload active with 5.00",
        "reload forfeited: converted 0, forfeited 5.00",
    ] {
        assert!(
            details.iter().any(|d| d.contains(expected)),
            "{expected:?} in {details:#?}"
        );
    }
    assert_eq!(audit.awards.len(), 2);

    // A conversion above the cap, written by hand into the log, is reported; so is an
    // award that ends holding money, which leaves the balance's bonus part unexplained.
    let w3 = app.open_wallet("bonus-player-3", "EUR").await;
    let capped = json!({"transaction_id": "c", "amount": "10.00", "wagering_multiplier": 1, "expires_at": in_a_week(), "max_conversion": "5.00"});
    assert_eq!(grant(&app, &w3, capped, OPERATOR_TOKEN).await.status, 200);
    forge_withdrawal(&pool, &w3, json!([{"bonus_id": "c", "status": "completed", "converted": "10.00", "forfeited": "0.00"}]), "9.99", "0.00").await;
    let w4 = app.open_wallet("bonus-player-4", "EUR").await;
    let plain = json!({"transaction_id": "p", "amount": "10.00", "wagering_multiplier": 1, "expires_at": in_a_week()});
    assert_eq!(grant(&app, &w4, plain, OPERATOR_TOKEN).await.status, 200);
    forge_withdrawal(
        &pool,
        &w4,
        json!([{"bonus_id": "p", "status": "completed", "converted": "4.00", "forfeited": "0.00"}]),
        "3.99",
        "6.00",
    )
    .await;
    let report = verify(&pool, &verify_config()).await.unwrap();
    assert!(!report.ok);
    let kinds = |wallet: &str| -> Vec<ViolationKind> {
        report
            .listed
            .iter()
            .filter(|v| v.wallet_id.to_string() == wallet)
            .map(|v| v.kind)
            .collect()
    };
    assert!(
        kinds(&w3).contains(&ViolationKind::ConversionAboveCap),
        "{:?}",
        report.listed
    );
    assert_eq!(
        kinds(&w4),
        [ViolationKind::AwardMismatch, ViolationKind::AwardMismatch],
        "ended holding 6.00, and bonus 6.00 with no award active: {:?}",
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
    // An ended award is not looked at again by the sweep (a campaign of thousands of
    // awards ending alike cannot hold the sweep at one place).
    let due = eventstore::payload::due_bonuses(
        &pool,
        eventstore::payload::Granted::Awards,
        chrono::Utc::now() - chrono::Duration::days(1),
        chrono::Utc::now() + chrono::Duration::days(1),
        1_000,
    )
    .await
    .unwrap();
    let due: Vec<String> = due.iter().map(|d| d.bonus_id.to_string()).collect();
    assert_eq!(due, ["long"], "only the award still running");
    let report = verify(&pool, &verify_config()).await.unwrap();
    assert!(report.ok, "{:?}", report.listed);
    app.stop().await;
}

/// A mixed run on a few wallets with awards: grants (some queued), bets paid by cash and
/// bonus, settles, bet-wins, rollbacks, closed rounds, a forfeit and a forfeiting
/// withdrawal; the read models, the totals and `reconcile` then equal the fold of the log,
/// and `verify` is clean.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_mixed_run_with_awards_is_projected_as_the_log_folds(pool: PgPool) {
    use betledger_tests::readside::ReadSide;
    let mut side = ReadSide::new(pool.clone(), &betledger_tests::unique_prefix("bonus"), 2).await;
    side.start_relay();
    side.start_worker();
    let app = betledger_tests::spawn_app_reading(pool.clone(), &side.prefix).await;
    let mut wallets = Vec::new();
    for p in 0..4 {
        let w = app.open_wallet(&format!("mixed-{p}"), "EUR").await;
        app.deposit(&w, "fund", "3.00").await;
        for g in 0..2 {
            let body = json!({"transaction_id": format!("g{g}"), "amount": "10.00",
                "wagering_multiplier": 2, "expires_at": in_a_week(),
                "max_conversion": "12.00", "contributions": {"g2": 50}});
            assert_eq!(grant(&app, &w, body, OPERATOR_TOKEN).await.status, 200);
        }
        wallets.push(w);
    }
    // A fixed pseudo-random mix per wallet: whatever each call answers, the log decides.
    let mut seed: u64 = 7;
    let mut next = |n: u64| {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (seed >> 33) % n
    };
    for step in 0..160 {
        let w = &wallets[next(4) as usize];
        let id = format!("s{step}");
        let stake = format!("{}.{:02}", 1 + next(3), next(100));
        let game = format!("g{}", 1 + next(2));
        let path = |p: &str| format!("/v1/wallets/{w}/{p}");
        match next(6) {
            0 | 1 => {
                let r = app
                    .post(&path("reservations"), json!({"transaction_id": id, "amount": stake, "game_id": game, "round_id": format!("r-{id}")}))
                    .await;
                if r.status == 200 {
                    let action = next(3);
                    let r = match action {
                        0 => app.post(&path(&format!("reservations/{id}/settle")), json!({"transaction_id": format!("{id}-w"), "payout": format!("{}.00", next(5))})).await,
                        1 => app.post(&path(&format!("reservations/{id}/refund")), json!({"transaction_id": format!("{id}-r")})).await,
                        _ => app.post(&path(&format!("rounds/r-{id}/close")), json!({"transaction_id": format!("{id}-c")})).await,
                    };
                    assert_eq!(r.status, 200, "{action}: {:?}", r.body);
                }
            }
            2 | 3 => {
                let r = app
                    .post(&path("bet-wins"), json!({"transaction_id": id, "game_id": game, "round_id": format!("r-{id}"), "amount": stake, "payout": format!("{}.50", next(4)), "round_closed": true}))
                    .await;
                assert!(
                    r.status == 200 || r.code() == "INSUFFICIENT_FUNDS",
                    "{:?}",
                    r.body
                );
            }
            4 => {
                let r = app.deposit(w, &id, "2.00").await;
                assert_eq!(r.status, 200);
            }
            _ => {
                let body = json!({"transaction_id": format!("{id}-g"), "amount": "4.00", "wagering_multiplier": 1, "expires_at": in_a_week()});
                assert_eq!(grant(&app, w, body, OPERATOR_TOKEN).await.status, 200);
            }
        }
    }
    // An operator's forfeit of a queued award, and a forfeiting withdrawal.
    for w in &wallets[..2] {
        let r = app
            .send_with(
                Method::POST,
                &format!("/v1/wallets/{w}/bonuses/g1/forfeit"),
                json!({"transaction_id": "f", "reason": "test"}),
                Some(OPERATOR_TOKEN),
            )
            .await;
        assert!(
            r.status == 200 || r.code() == "BONUS_NOT_FOUND",
            "{:?}",
            r.body
        );
    }
    assert_eq!(app.deposit(&wallets[3], "last", "1.00").await.status, 200);
    let r = app
        .post(
            &format!("/v1/wallets/{}/withdrawals", wallets[3]),
            json!({"transaction_id": "wd", "amount": "0.01", "forfeit_bonuses": true}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    side.wait_projected().await;
    side.assert_matches_log().await;
    for w in &wallets {
        let read = app.get(&format!("/v1/read/wallets/{w}")).await;
        let write = app.get(&format!("/v1/wallets/{w}")).await;
        assert_eq!(read.body["balance"], write.body["balance"], "{w}");
    }
    let summary = side.reconcile(false).await;
    assert!(summary.ok, "{summary:?}");
    let report = verify(&pool, &verify_config()).await.unwrap();
    assert!(report.ok, "{:?}", report.listed);
    // The totals count bonus money apart, and their bonus flows add up to what the
    // wallets hold in bonus: granted - staked + paid - converted - forfeited.
    let today = chrono::Utc::now().date_naive();
    let r = app
        .get(&format!(
            "/v1/read/totals?from={}&to={today}&currency=EUR",
            today.pred_opt().unwrap()
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let sum = |name: &str| -> rust_decimal::Decimal {
        r.body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row[name]
                    .as_str()
                    .unwrap_or("0")
                    .parse::<rust_decimal::Decimal>()
                    .unwrap()
            })
            .sum()
    };
    assert!(
        sum("bonus_stakes") > rust_decimal::Decimal::ZERO,
        "{:?}",
        r.body
    );
    assert!(sum("bonus_granted") >= rust_decimal::Decimal::new(40, 0));
    let mut held = rust_decimal::Decimal::ZERO;
    for w in &wallets {
        let b = &app.get(&format!("/v1/wallets/{w}")).await.body["balance"];
        for part in ["bonus", "bonus_reserved"] {
            held += b[part]
                .as_str()
                .unwrap()
                .parse::<rust_decimal::Decimal>()
                .unwrap();
        }
    }
    assert_eq!(
        sum("bonus_granted") - sum("bonus_stakes") + sum("bonus_payouts")
            - sum("bonus_converted")
            - sum("bonus_forfeited"),
        held
    );
    // The GGR report over the same totals: cash stakes and payouts (bet-less wins in),
    // GGR, bonus cost (conversions) and NGR, row by row and per day.
    let g = app
        .get(&format!(
            "/v1/reports/ggr?from={}&to={today}&currency=EUR",
            today.pred_opt().unwrap()
        ))
        .await;
    assert_eq!(g.status, 200, "{:?}", g.body);
    let rows = r.body["rows"].as_array().unwrap();
    let report_rows = g.body["rows"].as_array().unwrap();
    assert_eq!(report_rows.len(), rows.len());
    let d = |v: &Value| {
        v.as_str()
            .unwrap()
            .parse::<rust_decimal::Decimal>()
            .unwrap()
    };
    let mut ngr = rust_decimal::Decimal::ZERO;
    for (t, row) in rows.iter().zip(report_rows) {
        assert_eq!(
            (&t["day"], &t["provider"], &t["game_id"]),
            (&row["day"], &row["provider"], &row["game_id"])
        );
        let stakes = d(&t["stakes"]) - d(&t["bonus_stakes"]);
        let payouts = d(&t["payouts"]) - d(&t["bonus_payouts"])
            + d(&t["free_spin_wins"])
            + d(&t["promo_wins"])
            + d(&t["jackpot_wins"]);
        assert_eq!(
            (d(&row["stakes"]), d(&row["payouts"])),
            (stakes, payouts),
            "{row}"
        );
        assert_eq!(d(&row["ggr"]), stakes - payouts);
        assert_eq!(d(&row["bonus_cost"]), d(&t["bonus_converted"]));
        assert_eq!(d(&row["ngr"]), stakes - payouts - d(&t["bonus_converted"]));
        ngr += d(&row["ngr"]);
    }
    let days_ngr: rust_decimal::Decimal = g.body["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|day| d(&day["ngr"]))
        .sum();
    assert_eq!(days_ngr, ngr, "the days sum the rows");
    let csv = app
        .http
        .get(app.url(&format!(
            "/v1/reports/ggr?from={}&to={today}&currency=EUR",
            today.pred_opt().unwrap()
        )))
        .header(
            "authorization",
            format!("Bearer {}", betledger_tests::READER_TOKEN),
        )
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0]
        .starts_with("day,brand_id,currency,provider,game_id,bets,rounds,stakes,payouts,ggr"));
    assert_eq!(lines.len(), 1 + report_rows.len());
    app.stop().await;
    side.teardown().await;
}

/// The provider face answers the playable total (cash + bonus) in `available`, with the
/// cash part in `cash`, on a balance, a bet (with `funded`) and a refusal.
#[sqlx::test(migrator = "MIGRATOR")]
async fn the_provider_face_answers_the_playable_total(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let wallet = app.open_wallet("playable", "EUR").await;
    app.deposit(&wallet, "fund", "5.00").await;
    let g = json!({"transaction_id": "g", "amount": "20.00", "wagering_multiplier": 5, "expires_at": in_a_week()});
    assert_eq!(grant(&app, &wallet, g, OPERATOR_TOKEN).await.status, 200);
    let token = app.session("playable", A, "g1").await;
    let r = app
        .provider(A, A_KEY, "balance", json!({"token": token}))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        (
            &r.body["balance"]["available"],
            &r.body["balance"]["cash"],
            &r.body["balance"]["bonus"]
        ),
        (&json!("25.00"), &json!("5.00"), &json!("20.00"))
    );
    let bet = |id: &str, amount: &str| json!({"token": token, "transaction_id": id, "round_id": format!("r-{id}"), "game_id": "g1", "amount": amount});
    let r = app.provider(A, A_KEY, "bet", bet("b1", "15.00")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["funded"], json!({"cash": "5.00", "bonus": "10.00"}));
    assert_eq!(r.body["balance"]["available"], "10.00");
    assert_eq!(r.body["balance"]["cash"], "0.00");
    let r = app.provider(A, A_KEY, "bet", bet("b2", "10.01")).await;
    assert_eq!((r.status, r.code()), (422, "INSUFFICIENT_FUNDS"));
    assert_eq!(
        r.body["balance"]["available"], "10.00",
        "the refusal's balance too"
    );
    // The native face keeps cash in `available`.
    let native = app.get(&format!("/v1/wallets/{wallet}")).await;
    assert_eq!(native.body["balance"]["available"], "0.00");
    assert!(native.body["balance"].get("cash").is_none());
    app.stop().await;
}

/// Free rounds through the native and provider faces: a grant, free bets (a bet and a
/// bet-win naming `free_rounds_id`) that cost nothing, refusals (another game, none
/// left), the winnings becoming an award when every round is settled, the listing, and
/// `verify` over it all.
#[sqlx::test(migrator = "MIGRATOR")]
async fn free_rounds_through_the_native_and_provider_faces(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let wallet = app.open_wallet("spinner", "EUR").await;
    app.deposit(&wallet, "fund", "1.00").await;
    let body = json!({"transaction_id": "spins", "provider_id": A, "game_id": "g1",
        "rounds": 2, "bet_value": "0.20", "expires_at": in_a_week(), "wagering_multiplier": 3});
    let path = format!("/v1/wallets/{wallet}/free-rounds");
    let r = app
        .send_with(Method::POST, &path, body.clone(), Some(WRITER_TOKEN))
        .await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
    let mut bad = body.clone();
    bad["rounds"] = json!(0);
    let r = app
        .send_with(Method::POST, &path, bad, Some(OPERATOR_TOKEN))
        .await;
    assert_eq!((r.status, r.code()), (422, "BONUS_TERMS_INVALID"));
    let r = app
        .send_with(Method::POST, &path, body, Some(OPERATOR_TOKEN))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let token = app.session("spinner", A, "g1").await;
    let bet = |id: &str| {
        json!({"token": token, "transaction_id": id, "round_id": format!("r-{id}"), "game_id": "g1",
               "amount": "0.20", "free_rounds_id": "spins"})
    };
    let r = app.provider(A, A_KEY, "bet", bet("f1")).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["balance"]["available"], "1.00",
        "a free bet costs nothing"
    );
    assert_eq!(r.body["funded"], json!({"cash": "0.00", "bonus": "0.00"}));
    let again = app.provider(A, A_KEY, "bet", bet("f1")).await;
    assert_eq!(again.body, r.body, "a repeat answers the same");
    let mut bw = bet("f2");
    bw["payout"] = json!("1.50");
    let r = app.provider(A, A_KEY, "bet-win", bw).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        r.body["balance"]["available"], "1.00",
        "winnings wait for the grant's end"
    );
    let r = app.provider(A, A_KEY, "bet", bet("f3")).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "FREE_ROUNDS_UNAVAILABLE"),
        "none left"
    );
    let view = bonuses(&app, &wallet).await;
    assert_eq!(view["free_rounds"][0]["rounds_left"], 0);
    assert_eq!(view["free_rounds"][0]["open"], 1);
    assert_eq!(view["free_rounds"][0]["winnings"], "1.50");

    // The last open bet wins 0.50: the grant completes; 2.00 becomes an award "spins".
    let win = json!({"player_id": "spinner", "currency": "EUR", "transaction_id": "f1-win",
        "bet_transaction_id": "f1", "round_id": "r-f1", "amount": "0.50"});
    let r = app.provider(A, A_KEY, "win", win).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["balance"]["bonus"], "2.00");
    assert_eq!(
        r.body["balance"]["available"], "3.00",
        "playable: 1.00 cash + 2.00 bonus"
    );
    let view = bonuses(&app, &wallet).await;
    assert_eq!(view["free_rounds"][0]["status"], "completed");
    assert_eq!(view["awards"][0]["bonus_id"], "spins");
    assert_eq!(view["awards"][0]["status"], "active");
    assert_eq!(view["awards"][0]["wagering"]["required"], "6.00");

    // Another game's free bet is refused and moves nothing.
    let other = app.open_wallet("spinner-2", "EUR").await;
    let body = json!({"transaction_id": "s2", "provider_id": A, "game_id": "g9",
        "rounds": 1, "bet_value": "0.10", "expires_at": in_a_week()});
    let path = format!("/v1/wallets/{other}/free-rounds");
    assert_eq!(
        app.send_with(Method::POST, &path, body, Some(OPERATOR_TOKEN))
            .await
            .status,
        200
    );
    let token = app.session("spinner-2", A, "g1").await;
    let r = app
        .provider(
            A,
            A_KEY,
            "bet",
            json!({"token": token, "transaction_id": "x1", "round_id": "rx", "game_id": "g1",
                   "amount": "0.10", "free_rounds_id": "s2"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "FREE_ROUNDS_UNAVAILABLE"));

    // A win for a round of free bets alone goes to the grant, not to cash, whichever state
    // (cached or full) decides it.
    let third = app.open_wallet("spinner-3", "EUR").await;
    let body = json!({"transaction_id": "s3", "provider_id": A, "game_id": "g1",
        "rounds": 3, "bet_value": "0.10", "expires_at": in_a_week()});
    let path = format!("/v1/wallets/{third}/free-rounds");
    assert_eq!(
        app.send_with(Method::POST, &path, body, Some(OPERATOR_TOKEN))
            .await
            .status,
        200
    );
    let token = app.session("spinner-3", A, "g1").await;
    let r = app
        .provider(
            A,
            A_KEY,
            "bet-win",
            json!({"token": token, "transaction_id": "y1", "round_id": "ry", "game_id": "g1",
                   "amount": "0.10", "payout": "0", "free_rounds_id": "s3"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .provider(
            A,
            A_KEY,
            "win",
            json!({"player_id": "spinner-3", "currency": "EUR", "transaction_id": "y1-round",
                   "round_id": "ry", "amount": "5.00"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["balance"]["cash"], "0.00");
    let view = bonuses(&app, &third).await;
    assert_eq!(view["free_rounds"][0]["winnings"], "5.00");

    let report = verify(&pool, &verify_config()).await.unwrap();
    assert!(report.ok, "{:?}", report.listed);
    app.stop().await;
}

/// Appends to `wallet`'s log, by hand, a withdrawal of 0.01 whose bonus moves end awards
/// as `ended` says, recording `available` and `bonus` after it.
async fn forge_withdrawal(pool: &PgPool, wallet: &str, ended: Value, available: &str, bonus: &str) {
    let (sequence,): (i64,) =
        sqlx::query_as("SELECT max(sequence) FROM events WHERE aggregate_id = $1")
            .bind(wallet)
            .fetch_one(pool)
            .await
            .unwrap();
    let payload = json!({"FundsWithdrawn": {
        "transaction_id": "forged", "amount": "0.01", "bonus": {"ended": ended}
    }});
    let metadata = json!({
        "command": "withdraw", "transaction_id": "forged", "request_sha256": "x",
        "available": available, "reserved": "0.00", "bonus": bonus, "currency": "EUR"
    });
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('wallet', $1, $2, 'FundsWithdrawn', '1.0', $3, $4)",
    )
    .bind(wallet)
    .bind(sequence + 1)
    .bind(&payload)
    .bind(&metadata)
    .execute(pool)
    .await
    .unwrap();
}
