//! A conformance suite of the Hub88-style face (`../shared/hub88-wallet.md`): every
//! endpoint and status; forged, truncated, other-key and unsigned calls refused and nothing
//! moved; amount precision; duplicate and conflicting `transaction_uuid`; a rollback before
//! its bet; a win after the token expired; round close and promo and free-spin wins
//! through the Hub88 fields; limits and a locked account; the aggregator's
//! retry-then-rollback after a timeout.

use betledger_tests::{
    hub88_sign, spawn_app, TestApp, HUB88_OPERATOR as OP, HUB88_OTHER_KEY, HUB88_PRIVATE_KEY,
    OPERATOR_TOKEN, PROVIDER_A as A, WRITER_TOKEN,
};
use replay_tool::verify::{verify, VerifyConfig};
use reqwest::Method;
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;
const USER: &str = "h-player";

/// A Hub88 session for `player`'s EUR wallet in game `g88`.
async fn session(app: &TestApp, player: &str) -> String {
    let r = app
        .post(
            "/v1/sessions",
            json!({"player_id": player, "currency": "EUR", "provider_id": format!("hub88.{OP}"),
                   "game_id": "g88"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["token"].as_str().unwrap().to_string()
}

fn status(r: &betledger_tests::Reply) -> &str {
    r.body["status"].as_str().unwrap_or("")
}

fn bet(token: &str, uuid: &str, round: &str, amount: i64) -> Value {
    json!({"user": USER, "transaction_uuid": uuid, "supplier_transaction_id": format!("s-{uuid}"),
           "token": token, "supplier_user": "su", "round": round, "round_closed": false,
           "reward_uuid": null, "request_uuid": format!("req-{uuid}"), "is_free": false,
           "is_supplier_promo": false, "is_aggregated": false, "game_code": "g88",
           "currency": "EUR", "bet": "base", "amount": amount, "meta": {}})
}

fn win(uuid: &str, reference: Option<&str>, round: &str, amount: i64) -> Value {
    json!({"user": USER, "transaction_uuid": uuid, "supplier_transaction_id": format!("s-{uuid}"),
           "token": "whatever", "round": round, "round_closed": false,
           "request_uuid": format!("req-{uuid}"), "is_free": false, "is_supplier_promo": false,
           "game_code": "g88", "currency": "EUR", "amount": amount,
           "reference_transaction_uuid": reference, "meta": {}})
}

fn rollback(uuid: &str, reference: &str, round: &str) -> Value {
    json!({"user": USER, "transaction_uuid": uuid, "supplier_transaction_id": format!("s-{uuid}"),
           "token": "whatever", "round": round, "round_closed": false,
           "request_uuid": format!("req-{uuid}"), "reference_transaction_uuid": reference,
           "game_code": "g88", "meta": {}})
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_hub88_face_conforms(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let wallet = app.open_wallet(USER, "EUR").await;
    app.deposit(&wallet, "fund", "100").await;
    let token = session(&app, USER).await;

    // Balance: integers of 1/100000, the request echoed, HTTP 200.
    let r = app
        .hub88(
            "user/balance",
            json!({"user": USER, "request_uuid": "rq-1", "token": token, "game_code": "g88"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.body,
        json!({"user": USER, "status": "RS_OK", "request_uuid": "rq-1", "currency": "EUR", "balance": 10_000_000})
    );

    // Signatures: unsigned, forged, truncated, another key's, a body changed after signing,
    // an unknown operator: refused, nothing moved.
    let events = app.event_count().await;
    let body = bet(&token, "b-sig", "r-sig", 100_000)
        .to_string()
        .into_bytes();
    let good = hub88_sign(HUB88_PRIVATE_KEY, &body);
    let mut changed = body.clone();
    let at = changed.iter().position(|b| *b == b'1').unwrap();
    changed[at] = b'9';
    for (what, bytes, signature) in [
        ("unsigned", body.clone(), None),
        ("forged", body.clone(), Some("AAAA".repeat(86))),
        (
            "truncated",
            body.clone(),
            Some(good[..good.len() / 2].to_string()),
        ),
        ("not base64", body.clone(), Some("***".into())),
        (
            "other key",
            body.clone(),
            Some(hub88_sign(HUB88_OTHER_KEY, &body)),
        ),
        ("body changed", changed.clone(), Some(good.clone())),
    ] {
        let r = app
            .hub88_raw(OP, "transaction/bet", &bytes, signature)
            .await;
        assert_eq!(
            (r.status, status(&r)),
            (200, "RS_ERROR_INVALID_SIGNATURE"),
            "{what}: {:?}",
            r.body
        );
    }
    let r = app
        .hub88_raw("nobody", "transaction/bet", &body, Some(good.clone()))
        .await;
    assert_eq!(status(&r), "RS_ERROR_INVALID_PARTNER");
    assert_eq!(app.event_count().await, events, "nothing moved");

    // A bet; a retry with the same content answers as the first time; other content is a
    // duplicate; amounts must be exact at the currency's scale.
    let r = app
        .hub88("transaction/bet", bet(&token, "b1", "R1", 356_000))
        .await;
    assert_eq!(
        (status(&r), r.body["balance"].clone()),
        ("RS_OK", json!(9_644_000)),
        "{:?}",
        r.body
    );
    assert_eq!(r.body["request_uuid"], "req-b1");
    let again = app
        .hub88("transaction/bet", bet(&token, "b1", "R1", 356_000))
        .await;
    assert_eq!(again.body, r.body);
    let events = app.event_count().await;
    for (what, body, want) in [
        (
            "other amount",
            bet(&token, "b1", "R1", 400_000),
            "RS_ERROR_DUPLICATE_TRANSACTION",
        ),
        (
            "other round",
            bet(&token, "b1", "R9", 356_000),
            "RS_ERROR_DUPLICATE_TRANSACTION",
        ),
        (
            "below the cent",
            bet(&token, "b2", "R1", 356_001),
            "RS_ERROR_WRONG_TYPES",
        ),
        (
            "negative",
            bet(&token, "b2", "R1", -100_000),
            "RS_ERROR_WRONG_TYPES",
        ),
        (
            "a string amount",
            {
                let mut b = bet(&token, "b2", "R1", 1);
                b["amount"] = json!("100000");
                b
            },
            "RS_ERROR_WRONG_TYPES",
        ),
        (
            "a decimal amount",
            {
                let mut b = bet(&token, "b2", "R1", 1);
                b["amount"] = json!(1.5);
                b
            },
            "RS_ERROR_WRONG_TYPES",
        ),
        (
            "no amount",
            {
                let mut b = bet(&token, "b2", "R1", 1);
                b.as_object_mut().unwrap().remove("amount");
                b
            },
            "RS_ERROR_WRONG_TYPES",
        ),
        (
            "another game",
            {
                let mut b = bet(&token, "b2", "R1", 100_000);
                b["game_code"] = json!("g-other");
                b
            },
            "RS_ERROR_INVALID_GAME",
        ),
        (
            "unknown token",
            bet("no-such-token", "b2", "R1", 100_000),
            "RS_ERROR_TOKEN_EXPIRED",
        ),
        (
            "more than the balance",
            bet(&token, "b2", "R1", 20_000_000_000),
            "RS_ERROR_NOT_ENOUGH_MONEY",
        ),
        (
            "a currency finer than 1/100000",
            {
                let mut b = bet(&token, "b2", "R1", 100_000);
                b["currency"] = json!("BTC");
                b
            },
            "RS_ERROR_WRONG_CURRENCY",
        ),
        (
            "another user",
            {
                let mut b = bet(&token, "b2", "R1", 100_000);
                b["user"] = json!("someone-else");
                b
            },
            "RS_ERROR_INVALID_TOKEN",
        ),
    ] {
        let r = app.hub88("transaction/bet", body).await;
        assert_eq!((r.status, status(&r)), (200, want), "{what}: {:?}", r.body);
        if want == "RS_ERROR_NOT_ENOUGH_MONEY" || want == "RS_ERROR_DUPLICATE_TRANSACTION" {
            assert_eq!(
                r.body["balance"],
                json!(9_644_000),
                "{what}: a refusal carries the balance"
            );
        }
    }
    let r = app
        .hub88_raw(
            OP,
            "transaction/bet",
            b"{not json",
            Some(hub88_sign(HUB88_PRIVATE_KEY, b"{not json")),
        )
        .await;
    assert_eq!(status(&r), "RS_ERROR_WRONG_SYNTAX");
    // Another provider's token is not this operator's.
    let other = app.session(USER, A, "g88").await;
    let r = app
        .hub88("transaction/bet", bet(&other, "b2", "R1", 100_000))
        .await;
    assert_eq!(status(&r), "RS_ERROR_INVALID_TOKEN");
    assert_eq!(app.event_count().await, events, "no refusal moved anything");

    // Wins: for the bet, again for the round; after the session ended; for an unknown bet.
    let r = app
        .hub88("transaction/win", win("w1", Some("b1"), "R1", 1_000_000))
        .await;
    assert_eq!(
        (status(&r), r.body["balance"].clone()),
        ("RS_OK", json!(10_644_000)),
        "{:?}",
        r.body
    );
    let r = app
        .send_with(
            Method::DELETE,
            &format!("/v1/sessions/{token}"),
            json!({}),
            Some(WRITER_TOKEN),
        )
        .await;
    assert_eq!(r.status, 204);
    let r = app
        .hub88("transaction/win", win("w2", Some("b1"), "R1", 50_000))
        .await;
    assert_eq!(
        (status(&r), r.body["balance"].clone()),
        ("RS_OK", json!(10_694_000)),
        "a win after the session ended: {:?}",
        r.body
    );
    let r = app
        .hub88(
            "transaction/win",
            win("w3", Some("b-unknown"), "R1", 50_000),
        )
        .await;
    assert_eq!(status(&r), "RS_ERROR_TRANSACTION_DOES_NOT_EXIST");
    let r = app
        .hub88(
            "user/balance",
            json!({"user": USER, "request_uuid": "rq-2", "token": token}),
        )
        .await;
    assert_eq!(
        status(&r),
        "RS_ERROR_TOKEN_EXPIRED",
        "balance needs a live session"
    );

    // A promo win (no bet) and a free-spin win; the close flag closes the round.
    let token = session(&app, USER).await;
    let mut promo = win("p1", None, "R-promo", 200_000);
    promo["is_supplier_promo"] = json!(true);
    promo["reward_uuid"] = json!("summer-2026");
    let r = app.hub88("transaction/win", promo).await;
    assert_eq!(
        (status(&r), r.body["balance"].clone()),
        ("RS_OK", json!(10_894_000)),
        "{:?}",
        r.body
    );
    let mut free_bet = bet(&token, "fb1", "R-free", 100_000);
    free_bet["is_free"] = json!(true);
    let r = app.hub88("transaction/bet", free_bet).await;
    assert_eq!(
        (status(&r), r.body["balance"].clone()),
        ("RS_OK", json!(10_894_000)),
        "a free bet takes nothing"
    );
    let mut free_win = win("fw1", Some("fb1"), "R-free", 300_000);
    free_win["is_free"] = json!(true);
    let r = app.hub88("transaction/win", free_win).await;
    assert_eq!(
        (status(&r), r.body["balance"].clone()),
        ("RS_OK", json!(11_194_000))
    );
    assert_eq!(
        status(
            &app.hub88("transaction/bet", bet(&token, "b3", "R3", 100_000))
                .await
        ),
        "RS_OK"
    );
    let mut closing = win("w4", Some("b3"), "R3", 0);
    closing["round_closed"] = json!(true);
    assert_eq!(
        status(&app.hub88("transaction/win", closing).await),
        "RS_OK"
    );
    let r = app
        .hub88("transaction/bet", bet(&token, "b4", "R3", 100_000))
        .await;
    assert_eq!(
        status(&r),
        "RS_ERROR_UNKNOWN",
        "a bet in a closed round is refused: {:?}",
        r.body
    );

    // A rollback before its bet: it succeeds, and blocks the bet, which charges nothing.
    let before = app
        .hub88(
            "user/balance",
            json!({"user": USER, "request_uuid": "rq-3", "token": token}),
        )
        .await
        .body["balance"]
        .clone();
    let r = app
        .hub88("transaction/rollback", rollback("rb1", "b-late", "R-late"))
        .await;
    assert_eq!(
        (status(&r), r.body["balance"].clone()),
        ("RS_OK", before.clone()),
        "{:?}",
        r.body
    );
    let r = app
        .hub88("transaction/bet", bet(&token, "b-late", "R-late", 100_000))
        .await;
    assert_ne!(status(&r), "RS_OK");
    assert_eq!(r.body["balance"], before, "the late bet charged nothing");

    // The aggregator's sequence after a timeout: the bet is retried (same answer), then,
    // having no answer it trusts, rolled back; the stake returns.
    let first = app
        .hub88("transaction/bet", bet(&token, "b5", "R5", 250_000))
        .await;
    let retried = app
        .hub88("transaction/bet", bet(&token, "b5", "R5", 250_000))
        .await;
    assert_eq!((status(&first), &retried.body), ("RS_OK", &first.body));
    let r = app
        .hub88("transaction/rollback", rollback("rb5", "b5", "R5"))
        .await;
    assert_eq!(
        (status(&r), r.body["balance"].clone()),
        ("RS_OK", before.clone()),
        "{:?}",
        r.body
    );
    let r = app
        .hub88("transaction/rollback", rollback("rb5", "b5", "R5"))
        .await;
    assert_eq!(
        status(&r),
        "RS_OK",
        "a repeated rollback answers as the first"
    );

    // Player protection through the Hub88 codes; a locked account's win is paid.
    let wallet_id = wallet.clone();
    let r = app
        .send_with(
            Method::PUT,
            &format!("/v1/wallets/{wallet_id}/limits/wager/day"),
            json!({"transaction_id": "lim1", "amount": "5"}),
            Some(WRITER_TOKEN),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(
        status(
            &app.hub88("transaction/bet", bet(&token, "b6", "R6", 400_000))
                .await
        ),
        "RS_OK"
    );
    assert_eq!(
        status(
            &app.hub88("transaction/bet", bet(&token, "b7", "R7", 200_000))
                .await
        ),
        "RS_ERROR_LIMIT_REACHED"
    );
    let r = app
        .send_with(
            Method::POST,
            &format!("/v1/wallets/{wallet_id}/lock"),
            json!({"transaction_id": "lock1", "reason": "review"}),
            Some(OPERATOR_TOKEN),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        status(
            &app.hub88("transaction/bet", bet(&token, "b8", "R8", 100_000))
                .await
        ),
        "RS_ERROR_USER_DISABLED"
    );
    let r = app
        .hub88("transaction/win", win("w6", Some("b6"), "R6", 900_000))
        .await;
    assert_eq!(
        status(&r),
        "RS_OK",
        "a locked account's win is paid: {:?}",
        r.body
    );

    let report = verify(
        &pool,
        &VerifyConfig {
            page_size: 13,
            listed_max: 20,
            progress: replay_tool::progress::ProgressMode::Quiet,
        },
    )
    .await
    .unwrap();
    assert!(report.ok, "{:?}", report.listed);
    app.stop().await;
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_api_serves_the_openapi_document_that_docs_holds(pool: PgPool) {
    let app = spawn_app(pool).await;
    let r = app.send_get_with_token("/openapi.json", None).await;
    assert_eq!(r.status, 200);
    let written: Value = serde_json::from_str(include_str!("../../docs/openapi.json")).unwrap();
    assert_eq!(r.body, written);
    app.stop().await;
}

/// An unknown operator is answered before its body is read: a stranger's slow bodies
/// cannot hold the request slots that health checks and metrics share.
#[sqlx::test(migrator = "MIGRATOR")]
async fn an_unknown_operator_is_answered_without_waiting_for_its_body(pool: PgPool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app(pool).await;
    let mut stream = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /hub88/stranger/transaction/bet HTTP/1.1\r\nHost: x\r\n\
                Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.unwrap();
    let mut answer = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(1), stream.read(&mut answer))
        .await
        .expect("answered at once, not after the body's 5 s")
        .unwrap();
    let text = String::from_utf8_lossy(&answer[..n]);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("RS_ERROR_INVALID_PARTNER"), "{text}");
    app.stop().await;
}

/// A free bet with `reward_uuid` uses a round of that free-rounds grant (the contract's
/// "Bonus money"): it costs nothing, its win goes to the grant, and the grant's end pays
/// the winnings (cash here: the grant has no wagering multiplier). The balance answered is
/// the playable total.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_free_bet_with_a_reward_uuid_uses_the_free_rounds_it_names(pool: PgPool) {
    let app = spawn_app(pool.clone()).await;
    let wallet = app.open_wallet(USER, "EUR").await;
    app.deposit(&wallet, "fund", "1").await;
    let expires = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let grant = json!({"transaction_id": "reward-1", "provider_id": format!("hub88.{OP}"),
        "game_id": "g88", "rounds": 1, "bet_value": "0.10", "expires_at": expires});
    let r = app
        .send_with(
            reqwest::Method::POST,
            &format!("/v1/wallets/{wallet}/free-rounds"),
            grant,
            Some(betledger_tests::OPERATOR_TOKEN),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let token = session(&app, USER).await;
    let mut free_bet = bet(&token, "fr-b1", "R-fr", 10_000);
    free_bet["is_free"] = json!(true);
    free_bet["reward_uuid"] = json!("reward-1");
    let r = app.hub88("transaction/bet", free_bet).await;
    assert_eq!(
        (status(&r), r.body["balance"].clone()),
        ("RS_OK", json!(100_000))
    );
    let r = app.get(&format!("/v1/wallets/{wallet}/bonuses")).await;
    assert_eq!(r.body["free_rounds"][0]["rounds_left"], 0, "{:?}", r.body);
    let mut free_win = win("fr-w1", Some("fr-b1"), "R-fr", 250_000);
    free_win["is_free"] = json!(true);
    free_win["reward_uuid"] = json!("reward-1");
    let r = app.hub88("transaction/win", free_win).await;
    assert_eq!(
        (status(&r), r.body["balance"].clone()),
        ("RS_OK", json!(350_000)),
        "the grant's only round settled: its winnings paid"
    );
    let r = app.get(&format!("/v1/wallets/{wallet}/bonuses")).await;
    assert_eq!(r.body["free_rounds"][0]["status"], "completed");
    assert_eq!(r.body["free_rounds"][0]["winnings"], "2.50");
    app.stop().await;
}
