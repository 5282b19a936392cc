//! Rounds end to end (the contract's "Rounds"): provider traffic as aggregators send it
//! (several wins, a round-only win, the close flag, bet-win, bet-less wins, adjustments),
//! each repeated with the same id and with another payload; the native endpoints and the
//! round view; then the read side and `verify` against the log.

use betledger_tests::readside::ReadSide;
use betledger_tests::{
    spawn_app_reading, unique_prefix, TestApp, OPERATOR_TOKEN, PROVIDER_A as A,
    PROVIDER_A_SECRET as A_KEY,
};
use replay_tool::verify::{verify, VerifyConfig};
use serde_json::{json, Value};
use sqlx::PgPool;
use std::collections::BTreeMap;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

fn available(reply: &betledger_tests::Reply) -> String {
    reply.body["balance"]["available"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Sends a provider call, checks its status, and checks that a repeat answers the same.
async fn call(app: &TestApp, path: &str, body: Value, status: u16) -> betledger_tests::Reply {
    let r = app.provider(A, A_KEY, path, body.clone()).await;
    assert_eq!(r.status, status, "{path} {body}: {:?}", r.body);
    if status == 200 {
        let again = app.provider(A, A_KEY, path, body.clone()).await;
        assert_eq!(
            again.status, 200,
            "a repeat of {path} {body}: {:?}",
            again.body
        );
        assert_eq!(again.body, r.body, "a repeat answers as the first time");
    }
    r
}

fn win(tx: &str, bet: Option<&str>, round: &str, amount: &str, closing: bool) -> Value {
    let mut body = json!({"player_id": "p1", "currency": "EUR", "transaction_id": tx,
                          "round_id": round, "amount": amount, "round_closed": closing});
    if let Some(bet) = bet {
        body["bet_transaction_id"] = json!(bet);
    }
    body
}

/// Today's UTC day, as the API writes days.
fn today() -> String {
    chrono::Utc::now().format("%Y-%m-%d").to_string()
}

/// A totals row's figures: bets, stakes, payouts, bet-less wins (free spin, promo,
/// jackpot), adjustments, rounds; money normalised (no trailing zeros) so sums compare.
type Figures = (i64, String, String, [String; 3], String, i64);

fn figures(
    bets: i64,
    stakes: &str,
    payouts: &str,
    betless: [&str; 3],
    adjustments: &str,
    rounds: i64,
) -> Figures {
    let n = |t: &str| {
        t.parse::<rust_decimal::Decimal>()
            .unwrap()
            .normalize()
            .to_string()
    };
    (
        bets,
        n(stakes),
        n(payouts),
        betless.map(n),
        n(adjustments),
        rounds,
    )
}

/// The EUR totals of yesterday and today (a run may cross midnight), summed per provider
/// and game.
async fn read_totals(app: &TestApp) -> BTreeMap<(Option<String>, Option<String>), Figures> {
    let today = chrono::Utc::now().date_naive();
    let r = app
        .get(&format!(
            "/v1/read/totals?from={}&to={today}&currency=EUR",
            today.pred_opt().unwrap()
        ))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let mut sums: BTreeMap<(Option<String>, Option<String>), [rust_decimal::Decimal; 8]> =
        BTreeMap::new();
    for row in r.body["rows"].as_array().unwrap() {
        let text = |k: &str| row[k].as_str().map(str::to_string);
        let sum = sums.entry((text("provider"), text("game_id"))).or_default();
        let names = [
            "bets",
            "stakes",
            "payouts",
            "free_spin_wins",
            "promo_wins",
            "jackpot_wins",
            "adjustments",
            "rounds",
        ];
        for (i, name) in names.iter().enumerate() {
            let value: rust_decimal::Decimal = match &row[*name] {
                Value::String(t) => t.parse().unwrap(),
                Value::Number(n) => n.as_i64().unwrap().into(),
                other => panic!("{name}: {other}"),
            };
            sum[i] += value;
        }
    }
    sums.into_iter()
        .map(|(slot, s)| {
            let t = |d: rust_decimal::Decimal| d.normalize().to_string();
            let count = |d: rust_decimal::Decimal| i64::try_from(d).unwrap();
            (
                slot,
                (
                    count(s[0]),
                    t(s[1]),
                    t(s[2]),
                    [t(s[3]), t(s[4]), t(s[5])],
                    t(s[6]),
                    count(s[7]),
                ),
            )
        })
        .collect()
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn provider_rounds_as_aggregators_send_them_and_the_read_side_and_verify_agree(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("rounds"), 2).await;
    side.start_relay();
    side.start_worker();
    let app = spawn_app_reading(pool.clone(), &side.prefix).await;
    let wallet = app.open_wallet("p1", "EUR").await;
    app.deposit(&wallet, "fund", "100").await;
    let token = app.session("p1", A, "g1").await;
    let bet = |tx: &str, round: &str, amount: &str| {
        json!({"token": token, "transaction_id": tx, "round_id": round, "game_id": "g1",
               "amount": amount})
    };

    // Two bets, three wins for the first, one for the round alone.
    call(&app, "bet", bet("b1", "R1", "10"), 200).await;
    call(&app, "bet", bet("b2", "R1", "5"), 200).await;
    let r = call(&app, "win", win("w1", Some("b1"), "R1", "20", false), 200).await;
    assert_eq!(available(&r), "105.00");
    let r = call(&app, "win", win("w2", Some("b1"), "R1", "3", false), 200).await;
    assert_eq!(
        available(&r),
        "108.00",
        "a second win for a settled bet is credited"
    );
    let r = call(&app, "win", win("w3", None, "R1", "1", false), 200).await;
    assert_eq!(available(&r), "109.00", "a win naming only the round");
    let r = call(&app, "win", win("w3", None, "R1", "2", false), 409).await;
    assert_eq!(r.code(), "IDEMPOTENCY_CONFLICT");
    // The close flag on the last win loses the round's other open bet.
    let r = call(&app, "win", win("w4", Some("b2"), "R1", "0", true), 200).await;
    assert_eq!(r.body["balance"]["reserved"], "0.00");
    assert_eq!(available(&r), "109.00");
    let before = app.event_count().await;
    for (path, body) in [
        ("bet", bet("b3", "R1", "1")),
        // Refused for funds too: the closed round answers first, also from a cache that
        // forgot the round (its refusal is checked against the log's rounds).
        ("bet", bet("b4", "R1", "1000")),
        ("win", win("w5", Some("b1"), "R1", "1", false)),
        ("win", win("w6", None, "R1", "1", false)),
    ] {
        let r = call(&app, path, body, 422).await;
        assert_eq!(r.code(), "ROUND_CLOSED", "{path}: {:?}", r.body);
    }
    let r = call(
        &app,
        "rollback",
        json!({"player_id": "p1", "currency": "EUR", "transaction_id": "rb1",
               "bet_transaction_id": "b1", "round_id": "R1"}),
        422,
    )
    .await;
    assert_eq!(r.code(), "ROUND_CLOSED");
    assert_eq!(app.event_count().await, before, "a refusal moves nothing");

    // A win for a round never seen, with no bet: retryable, moves nothing.
    let r = call(&app, "win", win("w7", None, "R-unseen", "1", false), 404).await;
    assert_eq!(r.code(), "RESERVATION_NOT_FOUND");

    // Bet and win in one call; refused for funds, it moves nothing.
    let bet_win = |tx: &str, round: &str, stake: &str, payout: &str| {
        json!({"token": token, "transaction_id": tx, "round_id": round, "game_id": "g1",
               "amount": stake, "payout": payout, "round_closed": true})
    };
    let r = call(&app, "bet-win", bet_win("bw1", "R2", "5", "12"), 200).await;
    assert_eq!(available(&r), "116.00");
    let r = call(&app, "bet-win", bet_win("bw2", "R2b", "1000", "5000"), 422).await;
    assert_eq!(r.code(), "INSUFFICIENT_FUNDS");
    assert_eq!(r.body["balance"]["available"], "116.00");
    let r = call(&app, "bet-win", bet_win("bw1", "R2", "5", "13"), 409).await;
    assert_eq!(r.code(), "IDEMPOTENCY_CONFLICT");
    let r = call(&app, "bet-win", bet_win("bw3", "R2", "1", "1"), 422).await;
    assert_eq!(r.code(), "ROUND_CLOSED", "bet-win closed its round");

    // Wins without a bet, of each kind.
    let mut free = win("f1", None, "R3", "2.50", false);
    free["kind"] = json!("free_spin");
    let r = call(&app, "win", free, 200).await;
    assert_eq!(available(&r), "118.50");
    let mut promo = win("f2", None, "R3", "1", false);
    promo["kind"] = json!("promo");
    call(&app, "win", promo, 200).await;
    let mut jackpot = win("f3", None, "R4", "10", true);
    jackpot["kind"] = json!("jackpot");
    jackpot["campaign_id"] = json!("summer");
    let r = call(&app, "win", jackpot, 200).await;
    assert_eq!(available(&r), "129.50");

    // Adjustments against a known round, even a closed one; not past available.
    let adjust = |tx: &str, round: &str, amount: &str| {
        json!({"player_id": "p1", "currency": "EUR", "transaction_id": tx, "round_id": round,
               "amount": amount, "reason": "provider correction"})
    };
    let r = call(&app, "adjust", adjust("a1", "R1", "1"), 200).await;
    assert_eq!(available(&r), "130.50");
    let r = call(&app, "adjust", adjust("a2", "R1", "-1000"), 422).await;
    assert_eq!(r.code(), "INSUFFICIENT_FUNDS");
    let r = call(&app, "adjust", adjust("a3", "R-unseen", "1"), 404).await;
    assert_eq!(r.code(), "RESERVATION_NOT_FOUND");

    // The native face: close a round never seen (a late bet in it is refused), a back-office
    // adjustment, and the round view.
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/rounds/N1/close"),
            json!({"transaction_id": "c1"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            json!({"transaction_id": "nb1", "amount": "1", "game_id": "g1", "round_id": "N1"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (422, "ROUND_CLOSED"), "{:?}", r.body);
    // A back-office correction: the operator's scope.
    let r = app
        .send_with(
            reqwest::Method::POST,
            &format!("/v1/wallets/{wallet}/adjustments"),
            json!({"transaction_id": "na1", "amount": "-0.50", "reason": "goodwill reversed"}),
            Some(OPERATOR_TOKEN),
        )
        .await;
    assert_eq!(
        (r.status, available(&r).as_str()),
        (200, "130.00"),
        "{:?}",
        r.body
    );
    let view = app
        .get(&format!("/v1/wallets/{wallet}/rounds/{A}:R1"))
        .await;
    assert_eq!(view.status, 200, "{:?}", view.body);
    assert_eq!(view.body["status"], "closed");
    assert_eq!(view.body["bets"].as_array().unwrap().len(), 2);
    assert_eq!(
        view.body["bets"][1]["state"], "settled",
        "b2 settled by its own win of 0"
    );
    assert_eq!(view.body["wins"].as_array().unwrap().len(), 4);
    assert_eq!(
        view.body["totals"],
        json!({"stakes": "15.00", "wins": "24.00", "betless_wins": "0",
               "adjustments": "1.00", "net": "10.00"})
    );
    let missing = app
        .get(&format!("/v1/wallets/{wallet}/rounds/nothing"))
        .await;
    assert_eq!((missing.status, missing.code()), (404, "ROUND_NOT_FOUND"));

    // The read side equals the fold of the log, and the log is clean.
    side.wait_projected().await;
    side.assert_matches_log().await;
    assert_eq!(side.stats.dead_lettered(), 0);
    let report = verify(
        &pool,
        &VerifyConfig {
            page_size: 7,
            listed_max: 20,
            progress: replay_tool::progress::ProgressMode::Quiet,
        },
    )
    .await
    .unwrap();
    assert!(report.ok, "{:?}", report.listed);
    let eur = &report.totals.by_currency["EUR"];
    assert_eq!(eur.flows.betless_wins.to_string(), "13.50");
    assert_eq!(eur.flows.adjustments.to_string(), "0.50");
    assert_eq!(eur.available + eur.reserved, eur.flows.net());
    // The audit shows each event's round: the one it names, or its bet's.
    let audit = replay_tool::audit::audit(&pool, wallet.parse().unwrap(), None)
        .await
        .unwrap();
    let r1 = format!("{A}:R1");
    let in_r1: Vec<&str> = audit
        .events
        .iter()
        .filter(|e| e.round_id.as_deref() == Some(r1.as_str()))
        .map(|e| e.event.as_str())
        .collect();
    assert_eq!(
        in_r1,
        [
            "FundsReserved",
            "FundsReserved",
            "ReservationSettled",
            "WinCredited",
            "WinCredited",
            "WinCredited",
            "FundsAdjusted"
        ],
        "bets, the settle (by its bet), the wins and the adjustment of R1"
    );
    // The totals read model, per provider and game, from what this test sent: R1's two
    // bets (15.00, won 24.00 in four wins) and R2's bet-win (5.00, won 12.00) in g1 with
    // R1's adjustment; the bet-less wins in rounds that name no game; the native
    // back-office adjustment, of no provider and no game.
    let totals = read_totals(&app).await;
    let provider_a = Some(A.to_string());
    assert_eq!(
        totals,
        BTreeMap::from([
            (
                (provider_a.clone(), Some("g1".to_string())),
                figures(3, "20.00", "36.00", ["0", "0", "0"], "1.00", 2)
            ),
            (
                (provider_a.clone(), None),
                figures(0, "0", "0", ["2.50", "1.00", "10.00"], "0", 2)
            ),
            (
                (None, None),
                figures(0, "0", "0", ["0", "0", "0"], "-0.50", 0)
            ),
        ]),
        "the totals, by provider and game"
    );
    let r = app
        .get("/v1/read/totals?from=2026-12-02&to=2026-12-01")
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_REQUEST"),
        "{:?}",
        r.body
    );
    let r = app
        .get("/v1/read/totals?from=2026-01-01&to=2026-12-01")
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_REQUEST"),
        "{:?}",
        r.body
    );
    let r = app.get("/v1/read/totals").await;
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_REQUEST"),
        "{:?}",
        r.body
    );
    let r = app
        .get(&format!(
            "/v1/read/totals?day={}&provider={A}&game_id=g1",
            today()
        ))
        .await;
    assert_eq!(
        r.body["rows"].as_array().map(Vec::len),
        Some(1),
        "{:?}",
        r.body
    );

    // reconcile checks the totals of every day no later event touched; a figure changed
    // behind its back is found, and repaired from the log.
    let report_path = std::env::temp_dir().join(format!("{}-reconcile.json", side.prefix));
    let reconcile = |repair: bool| {
        let (pool, redis, keys, path) = (
            pool.clone(),
            side.redis.clone(),
            side.keys.clone(),
            report_path.clone(),
        );
        async move {
            replay_tool::reconcile::reconcile(
                &pool,
                &redis,
                &keys,
                &replay_tool::reconcile::ReconcileConfig {
                    settle: std::time::Duration::from_millis(200),
                    repair,
                    report: path,
                    progress: replay_tool::progress::ProgressMode::Quiet,
                    ..Default::default()
                },
            )
            .await
            .unwrap()
        }
    };
    let clean = reconcile(false).await;
    assert!(clean.ok, "{clean:?}");
    assert!(clean.totals_days_checked >= 1, "{clean:?}");
    assert!(clean.totals_days_skipped.is_empty(), "{clean:?}");
    let generation = readmodel::query::current(&side.redis, &side.keys)
        .await
        .unwrap();
    let day = chrono::NaiveDate::parse_from_str(&today(), "%Y-%m-%d").unwrap();
    let field = readmodel::keys::totals_field(
        domain::Currency::Eur,
        &readmodel::totals::Origin {
            provider: provider_a.clone(),
            game_id: Some(domain::GameId::new("g1").unwrap()),
            brand: None,
        },
        readmodel::totals::Measure::Payouts,
    );
    {
        use fred::interfaces::HashesInterface;
        let _: i64 = side
            .redis
            .hincrby(generation.totals(day), field.as_str(), 100)
            .await
            .unwrap();
    }
    let found = reconcile(false).await;
    assert_eq!(
        found.differences_by_field.get("totals"),
        Some(&1),
        "{found:?}"
    );
    assert_eq!(
        found.wallets_differing, 0,
        "a totals difference is no wallet's"
    );
    let repaired = reconcile(true).await;
    assert_eq!(repaired.totals_days_repaired, 1, "{repaired:?}");
    assert!(reconcile(false).await.ok);
    assert_eq!(read_totals(&app).await, totals);
    let _ = std::fs::remove_file(&report_path);

    // A rebuild (a compacted fold, which forgets settled bets and closed rounds) takes the
    // same log without a violation and ends equal to it too.
    let rebuilt = replay_tool::rebuild::rebuild(
        &pool,
        &side.redis,
        &side.keys,
        &replay_tool::rebuild::RebuildConfig {
            page_size: 5,
            grace: std::time::Duration::from_millis(100),
            progress: replay_tool::progress::ProgressMode::Quiet,
            ..replay_tool::rebuild::RebuildConfig::default()
        },
    )
    .await
    .expect("a rebuild of a log with rounds");
    assert!(rebuilt.violations_after_switch.is_empty());
    side.assert_matches_log().await;
    assert_eq!(read_totals(&app).await, totals, "a rebuild's totals");
    app.stop().await;
    side.teardown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn verify_reports_a_bet_hand_inserted_into_a_closed_round(pool: PgPool) {
    let app = betledger_tests::spawn_app(pool.clone()).await;
    let wallet = app.open_wallet("p-closed", "EUR").await;
    app.deposit(&wallet, "fund", "100").await;
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            json!({"transaction_id": "b1", "amount": "10", "game_id": "g1", "round_id": "R"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/rounds/R/close"),
            json!({"transaction_id": "c1"}),
        )
        .await;
    assert_eq!(
        (r.status, available(&r).as_str()),
        (200, "90.00"),
        "{:?}",
        r.body
    );
    let config = VerifyConfig {
        page_size: 7,
        listed_max: 20,
        progress: replay_tool::progress::ProgressMode::Quiet,
    };
    assert!(
        verify(&pool, &config).await.unwrap().ok,
        "the engine's log is clean"
    );

    // A bet in the closed round, written by hand with the balances it would leave.
    let id: domain::WalletId = wallet.parse().unwrap();
    let seq = crate::replay::last_sequence(&pool, &id).await + 1;
    crate::replay::insert_event(
        &pool,
        &id,
        seq,
        json!({"FundsReserved": {"reservation_id": "late", "amount": "5.00", "game_id": "g1",
                                 "round_id": "R", "expires_at": "2030-01-01T00:00:00Z"}}),
        "85.00",
        "5.00",
    )
    .await;
    let report = verify(&pool, &config).await.unwrap();
    assert!(!report.ok);
    let found: Vec<(u64, replay_tool::fold::ViolationKind)> =
        report.listed.iter().map(|v| (v.sequence, v.kind)).collect();
    assert_eq!(
        found,
        [(seq as u64, replay_tool::fold::ViolationKind::InClosedRound)],
        "{:#?}",
        report.listed
    );
    app.stop().await;
}
