//! The back office (the contract's "Brands and back office"). A wallet's history
//! (`GET /v1/wallets/{id}/history`): newest first, each entry's cash and bonus amounts,
//! balance after, round, game, provider and actor; every filter; a cursor that neither
//! skips nor repeats while new events arrive; refusals; and the CSV export of the whole
//! filtered history. The GGR report's refusals (its figures are checked against the
//! totals in `bonus::a_mixed_run_with_awards_is_projected_as_the_log_folds`).

use betledger_tests::{
    spawn_app, TestApp, OPERATOR_TOKEN, PROVIDER_A as A, PROVIDER_A_SECRET as A_KEY, READER_TOKEN,
};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

async fn history(app: &TestApp, wallet: &str, query: &str) -> Value {
    let r = app
        .get(&format!("/v1/wallets/{wallet}/history{query}"))
        .await;
    assert_eq!(r.status, 200, "{query}: {:?}", r.body);
    r.body
}

fn kinds(page: &Value) -> Vec<&str> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect()
}

fn sequences(page: &Value) -> Vec<u64> {
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["sequence"].as_u64().unwrap())
        .collect()
}

/// A wallet with a deposit, a native bet settled with a win, a provider's bet, a lock and
/// an unlock by the operator: 7 events (the opening included).
async fn played_wallet(app: &TestApp) -> String {
    let wallet = app.open_wallet("hist-player", "EUR").await;
    app.deposit(&wallet, "d1", "100.00").await;
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            json!({"transaction_id": "bet-1", "amount": "20", "game_id": "slots",
                   "round_id": "round-1", "timeout_s": 30}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations/bet-1/settle"),
            json!({"transaction_id": "win-1", "payout": "55.25"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let token = app.session("hist-player", A, "poker").await;
    let r = app
        .provider(
            A,
            A_KEY,
            "bet",
            json!({"token": token, "transaction_id": "pb-1", "round_id": "pr-1",
                   "game_id": "poker", "amount": "5.00"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    for (call, tx) in [("lock", "k1"), ("unlock", "k2")] {
        let r = app
            .send_with(
                Method::POST,
                &format!("/v1/wallets/{wallet}/{call}"),
                json!({"transaction_id": tx, "reason": "support review"}),
                Some(OPERATOR_TOKEN),
            )
            .await;
        assert_eq!(r.status, 200, "{call}: {:?}", r.body);
    }
    wallet
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_history_is_newest_first_with_what_each_event_did(pool: PgPool) {
    let app = spawn_app(pool).await;
    let wallet = played_wallet(&app).await;

    let page = history(&app, &wallet, "").await;
    assert_eq!(page["wallet_id"], wallet.as_str());
    assert_eq!(
        kinds(&page),
        [
            "AccountUnlocked",
            "AccountLocked",
            "FundsReserved",
            "ReservationSettled",
            "FundsReserved",
            "FundsDeposited",
            "WalletOpened"
        ]
    );
    assert_eq!(sequences(&page), [7, 6, 5, 4, 3, 2, 1]);
    assert!(page["next_cursor"].is_null(), "one page holds it all");
    let e = &page["entries"];
    // The deposit: cash in, the balance after it.
    assert_eq!(e[5]["transaction_id"], "d1");
    assert_eq!(
        (e[5]["cash"].as_str(), e[5]["bonus"].as_str()),
        (Some("100.00"), Some("0.00"))
    );
    assert_eq!(e[5]["balance"]["available"], "100.00");
    assert_eq!(e[5]["balance"]["currency"], "EUR");
    // The native bet: cash out to reserved; its round and game.
    assert_eq!(e[4]["cash"], "-20.00");
    assert_eq!(e[4]["balance"]["reserved"], "20.00");
    assert_eq!(
        (e[4]["round_id"].as_str(), e[4]["game_id"].as_str()),
        (Some("round-1"), Some("slots"))
    );
    assert!(e[4]["provider"].is_null(), "a native round has no provider");
    // Its settle names only the bet: its round and game are the bet's.
    assert_eq!(e[3]["cash"], "55.25");
    assert_eq!(e[3]["transaction_id"], "win-1");
    assert_eq!(
        (e[3]["round_id"].as_str(), e[3]["game_id"].as_str()),
        (Some("round-1"), Some("slots"))
    );
    assert_eq!(e[3]["balance"]["available"], "135.25");
    // The provider's bet names its provider.
    assert_eq!(e[2]["provider"], A);
    assert_eq!(e[2]["cash"], "-5.00");
    assert_eq!(e[2]["game_id"], "poker");
    // The operator's lock: no money, its actor.
    assert_eq!(e[1]["actor"], "operator");
    assert_eq!(e[1]["cash"], "0.00");
    assert!(e[3]["actor"].is_null());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn pages_follow_the_cursor_while_new_events_arrive(pool: PgPool) {
    let app = spawn_app(pool).await;
    let wallet = played_wallet(&app).await;
    for i in 0..8 {
        app.deposit(&wallet, &format!("more-{i}"), "1.00").await;
    }
    // 15 events; pages of 4, with a deposit between every two pages.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let query = match &cursor {
            None => "?limit=4".to_string(),
            Some(c) => format!("?limit=4&cursor={c}"),
        };
        let page = history(&app, &wallet, &query).await;
        pages += 1;
        seen.extend(sequences(&page));
        app.deposit(&wallet, &format!("late-{pages}"), "1.00").await;
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(pages, 4);
    assert_eq!(
        seen,
        (1..=15).rev().collect::<Vec<u64>>(),
        "nothing skipped or repeated"
    );
    // The new ones are on a new first page.
    let first = history(&app, &wallet, "?limit=2").await;
    assert_eq!(sequences(&first), [19, 18]);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn filters_by_kind_round_game_and_time(pool: PgPool) {
    let app = spawn_app(pool).await;
    let wallet = played_wallet(&app).await;

    let page = history(&app, &wallet, "?kind=FundsReserved,FundsDeposited").await;
    assert_eq!(
        kinds(&page),
        ["FundsReserved", "FundsReserved", "FundsDeposited"]
    );
    let page = history(&app, &wallet, "?round_id=round-1").await;
    assert_eq!(kinds(&page), ["ReservationSettled", "FundsReserved"]);
    let page = history(&app, &wallet, "?round_id=round-1&kind=ReservationSettled").await;
    assert_eq!(sequences(&page), [4]);
    // By game: the settle counts as its bet's game.
    let page = history(&app, &wallet, "?game_id=slots").await;
    assert_eq!(sequences(&page), [4, 3]);
    let page = history(&app, &wallet, "?game_id=slots&limit=1").await;
    assert_eq!(sequences(&page), [4]);
    let next = page["next_cursor"].as_str().unwrap();
    let page = history(
        &app,
        &wallet,
        &format!("?game_id=slots&limit=1&cursor={next}"),
    )
    .await;
    assert_eq!(sequences(&page), [3]);
    // By time: nothing before the first event, everything before a time to come.
    let all = history(&app, &wallet, "").await;
    let third = all["entries"][4]["time"].as_str().unwrap().to_string();
    let from = history(
        &app,
        &wallet,
        &format!("?from={}", third.replace('+', "%2B")),
    )
    .await;
    assert_eq!(sequences(&from).last(), Some(&3));
    let to = history(&app, &wallet, &format!("?to={}", third.replace('+', "%2B"))).await;
    assert_eq!(sequences(&to), [2, 1]);
    let none = history(&app, &wallet, "?to=2000-01-01T00:00:00Z").await;
    assert_eq!(none["entries"], json!([]));
    assert!(none["next_cursor"].is_null());
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn bad_history_queries_are_refused(pool: PgPool) {
    let app = spawn_app(pool).await;
    let wallet = played_wallet(&app).await;
    for query in [
        "?kind=deposit",
        "?limit=0",
        "?limit=1001",
        "?cursor=12",
        "?cursor=h1.zz",
        "?from=yesterday",
        "?colour=red",
    ] {
        let r = app
            .get(&format!("/v1/wallets/{wallet}/history{query}"))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "INVALID_REQUEST"),
            "{query}: {:?}",
            r.body
        );
    }
    let r = app
        .get("/v1/wallets/00000000-0000-4000-8000-000000000000/history")
        .await;
    assert_eq!((r.status, r.code()), (404, "WALLET_NOT_FOUND"));
    let r = app
        .send_get_with_token(&format!("/v1/wallets/{wallet}/history"), None)
        .await;
    assert_eq!(r.status, 401);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_whole_filtered_history_streams_as_csv(pool: PgPool) {
    // More than one export page (1,000 entries): 1,100 deposits written as the write
    // paths record them.
    let wallets =
        betledger_tests::workload::prewrite_funded(&pool, 1, 1_100, "0.01".parse().unwrap())
            .await
            .unwrap();
    let wallet = wallets[0].to_string();
    let app = spawn_app(pool).await;
    let response = app
        .http
        .get(app.url(&format!(
            "/v1/wallets/{wallet}/history?kind=FundsDeposited&limit=5"
        )))
        .header("authorization", format!("Bearer {READER_TOKEN}"))
        .header("accept", "text/csv")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(response.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/csv"));
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[0],
        "sequence,time,kind,transaction_id,cash,bonus,balance_available,balance_reserved,\
         balance_bonus,balance_bonus_reserved,currency,round_id,game_id,provider,actor"
    );
    assert_eq!(lines.len(), 1 + 1_100, "every deposit, not a page of them");
    let newest: Vec<&str> = lines[1].split(',').collect();
    assert_eq!(
        (newest[0], newest[2], newest[3], newest[4], newest[6], newest[10]),
        (
            "1101",
            "FundsDeposited",
            "fund-1101",
            "0.01",
            "11.00",
            "EUR"
        )
    );
    let oldest: Vec<&str> = lines[1_100].split(',').collect();
    assert_eq!((oldest[0], oldest[3], oldest[6]), ("2", "fund-2", "0.01"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_ggr_report_refuses_what_it_cannot_answer(pool: PgPool) {
    let app = spawn_app(pool).await;
    for query in [
        "",
        "?from=2026-12-01",
        "?from=2026-12-02&to=2026-12-01",
        "?from=2026-01-01&to=2026-12-01",
        "?from=yesterday&to=2026-12-01",
        "?from=2026-12-01&to=2026-12-01&currency=XXX",
        "?from=2026-12-01&to=2026-12-01&brand=a",
    ] {
        let r = app.get(&format!("/v1/reports/ggr{query}")).await;
        assert_eq!(r.status, 400, "{query}: {:?}", r.body);
    }
    let r = app
        .send_get_with_token("/v1/reports/ggr?from=2026-12-01&to=2026-12-01", None)
        .await;
    assert_eq!(r.status, 401);
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_operator_audit_lists_every_operator_action_with_actor_and_reason(pool: PgPool) {
    let app = spawn_app(pool).await;
    let first = played_wallet(&app).await; // a lock and an unlock by the operator
    let second = app.open_wallet("other-player", "EUR").await;
    let in_a_week = (chrono::Utc::now() + chrono::Duration::days(7)).to_rfc3339();
    for (path, body) in [
        (
            format!("/v1/wallets/{second}/adjustments"),
            json!({"transaction_id": "adj-1", "amount": "5.00", "reason": "goodwill"}),
        ),
        (
            format!("/v1/wallets/{second}/bonuses"),
            json!({"transaction_id": "welcome", "amount": "10.00", "wagering_multiplier": 1,
                   "expires_at": in_a_week}),
        ),
        (
            format!("/v1/wallets/{second}/bonuses/welcome/forfeit"),
            json!({"transaction_id": "ff-1", "reason": "bonus abuse"}),
        ),
        (
            format!("/v1/wallets/{first}/free-rounds"),
            json!({"transaction_id": "spins", "provider_id": A, "game_id": "slots",
                   "rounds": 5, "bet_value": "0.20", "expires_at": in_a_week}),
        ),
    ] {
        let r = app
            .send_with(Method::POST, &path, body, Some(OPERATOR_TOKEN))
            .await;
        assert_eq!(r.status, 200, "{path}: {:?}", r.body);
    }
    // A provider's adjustment is not an operator's action.
    let r = app
        .provider(
            A,
            A_KEY,
            "adjust",
            json!({"player_id": "hist-player", "currency": "EUR", "transaction_id": "padj",
                   "round_id": "pr-1", "amount": "1.00", "reason": "late win"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    let audit = |query: &'static str| {
        let app = &app;
        async move {
            let r = app
                .send_get_with_token(&format!("/v1/audit{query}"), Some(OPERATOR_TOKEN))
                .await;
            assert_eq!(r.status, 200, "{query}: {:?}", r.body);
            r.body
        }
    };
    let page = audit("").await;
    let actions = page["actions"].as_array().unwrap();
    let listed: Vec<(&str, &str)> = actions
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().unwrap(),
                a["wallet_id"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            ("FreeRoundsGranted", first.as_str()),
            ("BonusForfeited", second.as_str()),
            ("BonusGranted", second.as_str()),
            ("FundsAdjusted", second.as_str()),
            ("AccountUnlocked", first.as_str()),
            ("AccountLocked", first.as_str()),
        ]
    );
    assert!(actions.iter().all(|a| a["actor"] == "operator"));
    assert_eq!(actions[3]["reason"], "goodwill");
    assert_eq!(actions[3]["amount"], "5.00");
    assert_eq!(actions[3]["transaction_id"], "adj-1");
    assert_eq!(actions[1]["reason"], "bonus abuse");
    assert_eq!(actions[5]["reason"], "support review");
    assert_eq!(actions[2]["amount"], "10.00");
    // The adjustment's actor is in the wallet's history too.
    let h = history(&app, &second, "?kind=FundsAdjusted").await;
    assert_eq!(h["entries"][0]["actor"], "operator");
    // Paged, and by actor and time.
    let p1 = audit("?limit=4").await;
    assert_eq!(p1["actions"].as_array().unwrap().len(), 4);
    let next = p1["next_cursor"].as_str().unwrap().to_string();
    let r = app
        .send_get_with_token(
            &format!("/v1/audit?limit=4&cursor={next}"),
            Some(OPERATOR_TOKEN),
        )
        .await;
    let kinds: Vec<&str> = r.body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["AccountUnlocked", "AccountLocked"]);
    assert!(r.body["next_cursor"].is_null());
    assert_eq!(audit("?actor=someone-else").await["actions"], json!([]));
    assert_eq!(
        audit("?actor=operator").await["actions"]
            .as_array()
            .unwrap()
            .len(),
        6
    );
    assert_eq!(
        audit("?to=2000-01-01T00:00:00Z").await["actions"],
        json!([])
    );
    // The operator scope only; bad queries refused.
    let r = app.get("/v1/audit").await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
    for query in ["?limit=0", "?cursor=x", "?from=soon", "?wallet=1"] {
        let r = app
            .send_get_with_token(&format!("/v1/audit{query}"), Some(OPERATOR_TOKEN))
            .await;
        assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"), "{query}");
    }
}
