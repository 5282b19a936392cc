//! Brands (the contract's "Brands and back office"): a wallet belongs to one brand, a
//! token lists the brands it may act on, and a wallet of another brand is
//! `404 WALLET_NOT_FOUND` to it on every route, with nothing read or moved. The suite
//! takes every route from the API's own OpenAPI document, so a route added later is
//! tried too.

use betledger_tests::{spawn_app_with, test_config, TestApp, OPERATOR_TOKEN};
use command_api::auth::{ApiClient, Brands, Scope};
use domain::BrandId;
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

const A_TOKEN: &str = "brand-a-operator-token";
const B_TOKEN: &str = "brand-b-operator-token";

async fn two_brands(pool: PgPool) -> TestApp {
    let mut config = test_config();
    let all = vec![Scope::Read, Scope::Write, Scope::Operator];
    for (name, token, brand) in [("op-a", A_TOKEN, "casino-a"), ("op-b", B_TOKEN, "casino-b")] {
        config.clients.push(
            ApiClient::new(name, token, all.clone())
                .with_brands(Brands::Only(vec![BrandId::new(brand).unwrap()])),
        );
    }
    // Provider A plays in both brands.
    config.provider_brands.insert(
        betledger_tests::PROVIDER_A.to_string(),
        Brands::Only(vec![
            BrandId::new("casino-a").unwrap(),
            BrandId::new("casino-b").unwrap(),
        ]),
    );
    spawn_app_with(pool, config).await
}

async fn call(
    app: &TestApp,
    method: Method,
    path: &str,
    body: Option<Value>,
    token: &str,
) -> betledger_tests::Reply {
    match body {
        Some(body) => app.send_with(method, path, body, Some(token)).await,
        None if method == Method::GET => app.send_get_with_token(path, Some(token)).await,
        None => app.send_with(method, path, Value::Null, Some(token)).await,
    }
}

async fn open(
    app: &TestApp,
    player: &str,
    brand: Option<&str>,
    token: &str,
) -> betledger_tests::Reply {
    let mut body = json!({"player_id": player, "currency": "EUR"});
    if let Some(b) = brand {
        body["brand_id"] = json!(b);
    }
    call(app, Method::POST, "/v1/wallets", Some(body), token).await
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_wallet_of_another_brand_is_not_found_on_every_route(pool: PgPool) {
    let app = two_brands(pool).await;
    // One player, a wallet in each brand (and one in the default brand).
    let a = open(&app, "shared-player", Some("casino-a"), A_TOKEN).await;
    assert_eq!(a.status, 201, "{:?}", a.body);
    assert_eq!(a.body["brand_id"], "casino-a");
    let b = open(&app, "shared-player", Some("casino-b"), B_TOKEN).await;
    assert_eq!(b.status, 201, "{:?}", b.body);
    let d = open(&app, "shared-player", None, OPERATOR_TOKEN).await;
    assert_eq!(d.body["brand_id"], "default");
    let (wa, wb, wd) = (
        a.body["wallet_id"].as_str().unwrap().to_string(),
        b.body["wallet_id"].as_str().unwrap().to_string(),
        d.body["wallet_id"].as_str().unwrap().to_string(),
    );
    assert!(wa != wb && wa != wd && wb != wd, "a wallet per brand");
    // Opening in a brand the token does not list is forbidden, and opens nothing.
    let r = open(&app, "other", Some("casino-b"), A_TOKEN).await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
    let r = open(&app, "other", None, A_TOKEN).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "FORBIDDEN"),
        "the default brand is a brand"
    );
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/wallets/{wa}/deposits"),
        Some(json!({"transaction_id": "d1", "amount": "50.00"})),
        A_TOKEN,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/wallets/{wa}/lock"),
        Some(json!({"transaction_id": "k1", "reason": "review"})),
        A_TOKEN,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // Every route of the OpenAPI document that names a wallet, with brand B's token, on
    // brand A's wallet (and on the default brand's): not found, nothing moved.
    let doc = app.send_get_with_token("/openapi.json", None).await.body;
    let before = app.event_count().await;
    let mut tried = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        if !(path.starts_with("/v1/wallets/{id}") || path.starts_with("/v1/read/wallets/{id}")) {
            continue;
        }
        for (method, _) in item.as_object().unwrap() {
            let method: Method = method.to_uppercase().parse().unwrap();
            for wallet in [&wa, &wd] {
                let concrete = path
                    .replace("{id}", wallet)
                    .replace("{rid}", "bet-1")
                    .replace("{round_id}", "round-1")
                    .replace("{bonus_id}", "bonus-1")
                    .replace("{kind}", "deposit")
                    .replace("{period}", "day");
                let body = (method == Method::POST || method == Method::PUT).then(|| {
                    json!({"transaction_id": "b-tx", "amount": "1.00", "reason": "x",
                           "payout": "1.00", "game_id": "g", "round_id": "round-1"})
                });
                let r = call(&app, method.clone(), &concrete, body, B_TOKEN).await;
                assert_eq!(
                    (r.status, r.code()),
                    (404, "WALLET_NOT_FOUND"),
                    "{method} {concrete}: {:?}",
                    r.body
                );
                tried += 1;
            }
        }
    }
    assert!(tried >= 40, "every wallet route was tried: {tried}");
    // The router decodes a percent-encoded id into the same wallet: refused alike.
    let encoded = format!("%{:02X}{}", wa.as_bytes()[0], &wa[1..]);
    for path in [
        format!("/v1/wallets/{encoded}/deposits"),
        format!("/v1/wallets/{encoded}"),
        format!("/v1/read/wallets/{encoded}"),
    ] {
        let body = path
            .ends_with("deposits")
            .then(|| json!({"transaction_id": "enc", "amount": "1.00"}));
        let method = if body.is_some() {
            Method::POST
        } else {
            Method::GET
        };
        let r = call(&app, method, &path, body, B_TOKEN).await;
        assert_eq!(
            (r.status, r.code()),
            (404, "WALLET_NOT_FOUND"),
            "{path}: {:?}",
            r.body
        );
    }
    // Another brand's wallet and one never opened answer alike, whatever else is wrong.
    let never = "00000000-0000-4000-8000-000000000000";
    for w in [&wa, never] {
        let r = app
            .send_get_with_token(
                &format!("/v1/wallets/{w}/history?cursor=bad"),
                Some(B_TOKEN),
            )
            .await;
        assert_eq!((r.status, r.code()), (404, "WALLET_NOT_FOUND"), "{w}");
    }
    assert_eq!(app.event_count().await, before, "nothing was written");
    // Its own brand's wallet works for each, and a token of every brand sees all.
    let r = app
        .send_get_with_token(&format!("/v1/wallets/{wb}"), Some(B_TOKEN))
        .await;
    assert_eq!(
        (r.status, r.body["brand_id"].as_str()),
        (200, Some("casino-b"))
    );
    let r = app
        .send_get_with_token(&format!("/v1/wallets/{wa}/history"), Some(A_TOKEN))
        .await;
    assert_eq!(r.status, 200);
    for w in [&wa, &wb, &wd] {
        let r = app
            .send_get_with_token(&format!("/v1/wallets/{w}"), Some(OPERATOR_TOKEN))
            .await;
        assert_eq!(r.status, 200, "{w}");
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn sessions_audit_and_sums_keep_to_the_callers_brands(pool: PgPool) {
    let app = two_brands(pool).await;
    let a = open(&app, "p1", Some("casino-a"), A_TOKEN).await;
    let wa = a.body["wallet_id"].as_str().unwrap().to_string();
    assert_eq!(
        open(&app, "p1", Some("casino-b"), B_TOKEN).await.status,
        201
    );
    let session = |brand: Option<&str>, token: &'static str| {
        let app = &app;
        let mut body = json!({"player_id": "p1", "currency": "EUR",
                              "provider_id": betledger_tests::PROVIDER_A, "game_id": "g1"});
        if let Some(b) = brand {
            body["brand_id"] = json!(b);
        }
        async move { call(app, Method::POST, "/v1/sessions", Some(body), token).await }
    };
    // A session for a wallet of another brand: not found.
    let r = session(Some("casino-a"), B_TOKEN).await;
    assert_eq!((r.status, r.code()), (404, "WALLET_NOT_FOUND"));
    let r = session(Some("casino-b"), B_TOKEN).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let r = session(Some("casino-a"), A_TOKEN).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    assert_eq!(r.body["wallet_id"], wa.as_str());
    let token_a = r.body["token"].as_str().unwrap().to_string();
    // Brand B cannot end brand A's session; brand A can.
    let r = call(
        &app,
        Method::DELETE,
        &format!("/v1/sessions/{token_a}"),
        None,
        B_TOKEN,
    )
    .await;
    assert_eq!((r.status, r.code()), (404, "WALLET_NOT_FOUND"));
    let r = call(
        &app,
        Method::DELETE,
        &format!("/v1/sessions/{token_a}"),
        None,
        A_TOKEN,
    )
    .await;
    assert_eq!(r.status, 204);

    // The operator audit lists a brand's own wallets' actions alone.
    let r = call(
        &app,
        Method::POST,
        &format!("/v1/wallets/{wa}/lock"),
        Some(json!({"transaction_id": "k1", "reason": "review"})),
        A_TOKEN,
    )
    .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let listed = |token: &'static str| {
        let app = &app;
        async move {
            app.send_get_with_token("/v1/audit", Some(token)).await.body["actions"]
                .as_array()
                .unwrap()
                .len()
        }
    };
    assert_eq!(listed(A_TOKEN).await, 1);
    assert_eq!(listed(B_TOKEN).await, 0);
    assert_eq!(listed(OPERATOR_TOKEN).await, 1);
    // Not even a page's cursor says another brand acted.
    let r = app
        .send_get_with_token("/v1/audit?limit=1", Some(B_TOKEN))
        .await;
    assert_eq!(
        (r.body["actions"].clone(), r.body["next_cursor"].clone()),
        (json!([]), Value::Null)
    );

    // Leaderboards are not kept per brand: for tokens of every brand.
    let r = app
        .send_get_with_token("/v1/read/leaderboards/g1", Some(B_TOKEN))
        .await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"));
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn totals_and_the_ggr_report_are_kept_per_brand(pool: PgPool) {
    use betledger_tests::readside::ReadSide;
    let mut side = ReadSide::new(pool.clone(), &betledger_tests::unique_prefix("brands"), 2).await;
    side.start();
    let mut config = test_config();
    config.redis_prefix = side.prefix.clone();
    let all = vec![Scope::Read, Scope::Write, Scope::Operator];
    for (name, token, brand) in [("op-a", A_TOKEN, "casino-a"), ("op-b", B_TOKEN, "casino-b")] {
        config.clients.push(
            ApiClient::new(name, token, all.clone())
                .with_brands(Brands::Only(vec![BrandId::new(brand).unwrap()])),
        );
    }
    let app = spawn_app_with(pool.clone(), config).await;
    // The same bets in three brands: 2.00 staked and 0.50 paid in casino-a, 3.00 and 0 in
    // casino-b, 1.00 and 4.00 in the default brand.
    for (token, brand, stake, payout) in [
        (A_TOKEN, Some("casino-a"), "2.00", "0.50"),
        (B_TOKEN, Some("casino-b"), "3.00", "0.00"),
        (OPERATOR_TOKEN, None, "1.00", "4.00"),
    ] {
        let w = open(&app, "same-player", brand, token).await.body["wallet_id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = call(
            &app,
            Method::POST,
            &format!("/v1/wallets/{w}/deposits"),
            Some(json!({"transaction_id": "d", "amount": "10.00"})),
            token,
        )
        .await;
        assert_eq!(r.status, 200);
        let r = call(
            &app,
            Method::POST,
            &format!("/v1/wallets/{w}/bet-wins"),
            Some(
                json!({"transaction_id": "bw", "game_id": "g1", "round_id": "r1",
                                 "amount": stake, "payout": payout}),
            ),
            token,
        )
        .await;
        assert_eq!(r.status, 200, "{:?}", r.body);
    }
    side.wait_projected().await;
    side.assert_matches_log().await;
    let summary = side.reconcile(false).await;
    assert!(summary.ok, "{summary:?}");
    let today = chrono::Utc::now().date_naive();
    let rows = |token: &'static str, extra: &'static str| {
        let app = &app;
        async move {
            let r = app
                .send_get_with_token(
                    &format!(
                        "/v1/reports/ggr?from={}&to={today}{extra}",
                        today.pred_opt().unwrap()
                    ),
                    Some(token),
                )
                .await;
            assert_eq!(r.status, 200, "{:?}", r.body);
            let mut rows: Vec<(String, String)> = r.body["rows"]
                .as_array()
                .unwrap()
                .iter()
                .map(|row| {
                    (
                        row["brand_id"].as_str().unwrap().to_string(),
                        row["ggr"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            rows.sort();
            rows
        }
    };
    let s = |a: &str, b: &str| (a.to_string(), b.to_string());
    assert_eq!(
        rows(OPERATOR_TOKEN, "").await,
        [
            s("casino-a", "1.50"),
            s("casino-b", "3.00"),
            s("default", "-3.00")
        ]
    );
    assert_eq!(rows(A_TOKEN, "").await, [s("casino-a", "1.50")]);
    assert_eq!(rows(B_TOKEN, "").await, [s("casino-b", "3.00")]);
    assert_eq!(
        rows(OPERATOR_TOKEN, "&brand_id=default").await,
        [s("default", "-3.00")]
    );
    assert!(rows(A_TOKEN, "&brand_id=casino-b").await.is_empty());
    // The totals read model says the same per brand.
    let r = app
        .send_get_with_token(&format!("/v1/read/totals?day={today}"), Some(A_TOKEN))
        .await;
    let brands: Vec<&str> = r.body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|row| row["brand_id"].as_str().unwrap())
        .collect();
    assert_eq!(brands, ["casino-a"]);
    app.stop().await;
    side.teardown().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn providers_act_in_the_brands_they_are_enabled_in(pool: PgPool) {
    use betledger_tests::{PROVIDER_A as A, PROVIDER_A_SECRET as A_KEY, PROVIDER_B as B};
    let mut config = test_config();
    let all = vec![Scope::Read, Scope::Write, Scope::Operator];
    config.clients.push(
        ApiClient::new("op-a", A_TOKEN, all.clone())
            .with_brands(Brands::Only(vec![BrandId::new("casino-a").unwrap()])),
    );
    // Provider A plays in casino-a alone; provider B is not listed: the default brand.
    config.provider_brands.insert(
        A.to_string(),
        Brands::Only(vec![BrandId::new("casino-a").unwrap()]),
    );
    let narrowed = {
        let mut c = config.clone();
        c.provider_brands.clear();
        c
    };
    let app = spawn_app_with(pool.clone(), config).await;
    let wa = open(&app, "p1", Some("casino-a"), A_TOKEN).await.body["wallet_id"]
        .as_str()
        .unwrap()
        .to_string();
    let wd = open(&app, "p1", None, OPERATOR_TOKEN).await.body["wallet_id"]
        .as_str()
        .unwrap()
        .to_string();
    for w in [&wa, &wd] {
        let r = call(
            &app,
            Method::POST,
            &format!("/v1/wallets/{w}/deposits"),
            Some(json!({"transaction_id": "d1", "amount": "10.00"})),
            OPERATOR_TOKEN,
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let session = |provider: &str, brand: Option<&str>| {
        let app = &app;
        let mut body = json!({"player_id": "p1", "currency": "EUR", "provider_id": provider,
                              "game_id": "g1"});
        if let Some(b) = brand {
            body["brand_id"] = json!(b);
        }
        async move {
            call(
                app,
                Method::POST,
                "/v1/sessions",
                Some(body),
                OPERATOR_TOKEN,
            )
            .await
        }
    };
    // A provider has sessions in its brands alone.
    let r = session(A, None).await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"), "{:?}", r.body);
    let r = session(B, Some("casino-a")).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "FORBIDDEN"),
        "an unlisted provider: the default brand"
    );
    assert_eq!(session(B, None).await.status, 201);
    let r = session(A, Some("casino-a")).await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    let token = r.body["token"].as_str().unwrap().to_string();
    // Its bet is on the casino-a wallet; its win, which names the player alone, lands
    // there too, not in the default brand's wallet of the same player.
    let bet = json!({"token": token, "transaction_id": "b1", "round_id": "r1",
                     "game_id": "g1", "amount": "2.00"});
    assert_eq!(app.provider(A, A_KEY, "bet", bet).await.status, 200);
    let win = json!({"player_id": "p1", "currency": "EUR", "transaction_id": "w1",
                     "bet_transaction_id": "b1", "round_id": "r1", "amount": "5.00"});
    let r = app.provider(A, A_KEY, "win", win).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let balance = |w: String| {
        let app = &app;
        async move {
            app.send_get_with_token(&format!("/v1/wallets/{w}"), Some(OPERATOR_TOKEN))
                .await
                .body["balance"]["available"]
                .clone()
        }
    };
    assert_eq!(balance(wa.clone()).await, "13.00");
    assert_eq!(balance(wd.clone()).await, "10.00");
    // The provider's brands narrowed (a restart with A no longer listed: the default brand
    // alone): the session it was given in casino-a acts no more, and moves nothing.
    let again = spawn_app_with(pool, narrowed).await;
    let bet = json!({"token": token, "transaction_id": "b2", "round_id": "r2",
                     "game_id": "g1", "amount": "1.00"});
    let r = again.provider(A, A_KEY, "bet", bet).await;
    assert_eq!((r.status, r.code()), (401, "INVALID_TOKEN"), "{:?}", r.body);
    let r = again
        .provider(A, A_KEY, "balance", json!({"token": token}))
        .await;
    assert_eq!(r.status, 401, "{:?}", r.body);
    assert_eq!(balance(wa).await, "13.00");
}
