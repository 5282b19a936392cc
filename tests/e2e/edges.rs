//! Issue 28's edges, each reproduced as the adversarial run reported it and refused or
//! answered now: connections held by half-sent heads, keep-alive broken by an early
//! refusal, repeats after a session ended, one Hub88 id in two wallets, money created
//! too easily, and small input oddities.

use std::time::{Duration, Instant};

use betledger_tests::{
    spawn_app, spawn_app_with, test_config, TestApp, HUB88_OPERATOR as OP, OPERATOR_TOKEN,
    PROVIDER_A as A, PROVIDER_A_SECRET as A_KEY, PROVIDER_B as B, PROVIDER_B_SECRET as B_KEY,
    WRITER_TOKEN,
};
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

/// One HTTP/1.1 answer read from `stream`: its head, lowercased, and its body.
async fn read_answer(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer within 5 s")
            .expect("reading an answer");
        assert!(n > 0, "the connection closed before an answer: {buf:?}");
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_lowercase();
    let length: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("content-length:"))
        .map(|v| v.trim().parse().expect("a length"))
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("reading a body");
        assert!(n > 0, "the connection closed inside a body");
        buf.extend_from_slice(&chunk[..n]);
    }
    (head, buf[head_end..head_end + length].to_vec())
}

/// A POST of `body` to `path` with `headers` (each line ending in `\r\n`).
fn post(path: &str, headers: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: {}\r\n{headers}\r\n{body}",
        body.len()
    )
}

/// Defect 6. Before: 50 connections that sent part of a request line were neither
/// answered nor closed within 45 s (about 175 KiB each).
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_head_sent_in_part_is_closed_after_its_timeout(pool: PgPool) {
    let mut config = test_config();
    config.header_read_timeout_ms = 300;
    let app = spawn_app_with(pool, config).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    stream
        .write_all(b"POST /v1/wallets HTTP/1.1\r\nhost: te")
        .await
        .unwrap();
    let started = Instant::now();
    let mut answer = vec![0u8; 1024];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("the server closes a half-sent head's connection, not keeps it");
    // Closed (or reset), perhaps after a 408: never a request served.
    if let Ok(n) = read {
        let text = String::from_utf8_lossy(&answer[..n]);
        assert!(n == 0 || text.starts_with("HTTP/1.1 408"), "{text}");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(250),
        "closed at its timeout, not at once"
    );
    // A whole request on a new connection is served as ever.
    let wallet = app.open_wallet("after-timeout", "EUR").await;
    assert!(!wallet.is_empty());
    app.stop().await;
}

/// Defect 7. Before: a request refused before its body was read (bad token, unknown
/// operator) was followed by closing the connection without `Connection: close`, so the
/// client's next request on it failed.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_connection_stays_usable_after_an_early_refusal(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let body = r#"{"player_id":"keep-alive","currency":"EUR"}"#;
    stream
        .write_all(post("/v1/wallets", "authorization: Bearer wrong\r\n", body).as_bytes())
        .await
        .unwrap();
    let (head, _) = read_answer(&mut stream).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(!head.contains("connection: close"), "{head}");
    // The unknown Hub88 operator, refused in the gate too.
    stream
        .write_all(post("/hub88/stranger/transaction/bet", "", "{}").as_bytes())
        .await
        .unwrap();
    let (head, answer) = read_answer(&mut stream).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(String::from_utf8_lossy(&answer).contains("RS_ERROR_INVALID_PARTNER"));
    // The same connection serves the next request.
    let auth = format!("authorization: Bearer {WRITER_TOKEN}\r\n");
    stream
        .write_all(post("/v1/wallets", &auth, body).as_bytes())
        .await
        .unwrap();
    let (head, _) = read_answer(&mut stream).await;
    assert!(head.starts_with("http/1.1 201"), "{head}");
    app.stop().await;
}

/// Defect 7, its other half: a refused request whose body does not come at once is
/// answered without waiting for it, and the answer says the connection ends.
#[sqlx::test(migrator = "MIGRATOR")]
async fn an_early_refusal_without_its_body_says_the_connection_closes(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut stream = TcpStream::connect(app.addr).await.unwrap();
    let head = "POST /v1/wallets HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
                authorization: Bearer wrong\r\ncontent-length: 1000\r\n\r\n{";
    stream.write_all(head.as_bytes()).await.unwrap();
    let started = Instant::now();
    let (head, _) = read_answer(&mut stream).await;
    assert!(head.starts_with("http/1.1 401"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "not after the body's 5 s"
    );
    app.stop().await;
}

/// Defect 4, provider face. Before: bet (200), the session ended, the same bytes again:
/// `401 INVALID_TOKEN`, and the provider rolled back a bet that stands.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_provider_repeat_after_the_session_ended_gets_its_first_answer(pool: PgPool) {
    let app = spawn_app(pool).await;
    let wallet = app.open_wallet("repeat-p", "EUR").await;
    app.deposit(&wallet, "fund", "100.00").await;
    let token = app.session("repeat-p", A, "g1").await;
    let now = chrono::Utc::now().timestamp();
    let bet = json!({"token": token, "transaction_id": "b1", "round_id": "r1", "game_id": "g1",
                     "amount": "5.00", "timestamp": now});
    let bet_win = json!({"token": token, "transaction_id": "bw1", "round_id": "r2",
                         "game_id": "g1", "amount": "2.00", "payout": "3.00", "timestamp": now});
    let first = app.provider(A, A_KEY, "bet", bet.clone()).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    let first_bw = app.provider(A, A_KEY, "bet-win", bet_win.clone()).await;
    assert_eq!(first_bw.status, 200, "{:?}", first_bw.body);
    app.end_session(&token).await;
    let events = app.event_count().await;

    let again = app.provider(A, A_KEY, "bet", bet.clone()).await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["balance"], first.body["balance"]);
    assert_eq!(again.body["transaction_id"], "b1");
    let again_bw = app.provider(A, A_KEY, "bet-win", bet_win.clone()).await;
    assert_eq!(again_bw.status, 200, "{:?}", again_bw.body);
    assert_eq!(again_bw.body["balance"], first_bw.body["balance"]);
    // Another request under the id may be another player's (a provider's ids are unique
    // per wallet here): without the session it is refused as such; a new id needs a live
    // session too.
    let mut other = bet.clone();
    other["amount"] = json!("6.00");
    let other = app.provider(A, A_KEY, "bet", other).await;
    assert_eq!((other.status, other.code()), (401, "INVALID_TOKEN"));
    let mut new = bet.clone();
    new["transaction_id"] = json!("b2");
    let refused = app.provider(A, A_KEY, "bet", new).await;
    assert_eq!((refused.status, refused.code()), (401, "INVALID_TOKEN"));
    // Another provider's same id is not this one's bet.
    let stranger = app.provider(B, B_KEY, "bet", bet).await;
    assert_eq!((stranger.status, stranger.code()), (401, "INVALID_TOKEN"));
    assert_eq!(app.event_count().await, events, "nothing moved");
    app.stop().await;
}

/// A Hub88 session for `player`'s `currency` wallet in game `g88`.
async fn hub88_session(app: &TestApp, player: &str, currency: &str) -> String {
    let r = app
        .post(
            "/v1/sessions",
            json!({"player_id": player, "currency": currency,
                   "provider_id": format!("hub88.{OP}"), "game_id": "g88"}),
        )
        .await;
    assert_eq!(r.status, 201, "{:?}", r.body);
    r.body["token"].as_str().unwrap().to_string()
}

fn hub88_bet(user: &str, currency: &str, token: &str, uuid: &str, amount: i64) -> Value {
    json!({"user": user, "transaction_uuid": uuid, "supplier_transaction_id": format!("s-{uuid}"),
           "token": token, "supplier_user": "su", "round": format!("round-{uuid}"),
           "round_closed": false, "reward_uuid": null, "request_uuid": format!("req-{uuid}"),
           "is_free": false, "is_supplier_promo": false, "is_aggregated": false,
           "game_code": "g88", "currency": currency, "bet": "base", "amount": amount,
           "meta": {}})
}

fn hub88_rollback(user: &str, uuid: &str, reference: &str) -> Value {
    json!({"user": user, "transaction_uuid": uuid, "supplier_transaction_id": format!("s-{uuid}"),
           "token": "none", "round": format!("round-{reference}"), "round_closed": false,
           "request_uuid": format!("req-{uuid}"), "reference_transaction_uuid": reference,
           "game_code": "g88", "meta": {}})
}

fn status(r: &betledger_tests::Reply) -> &str {
    r.body["status"].as_str().unwrap_or("")
}

/// Defect 4, Hub88 face. Before: bet `RS_OK`, the session ended, the same bet:
/// `RS_ERROR_TOKEN_EXPIRED`.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_hub88_repeat_after_the_session_ended_gets_its_first_answer(pool: PgPool) {
    let app = spawn_app(pool).await;
    let wallet = app.open_wallet("repeat-h", "EUR").await;
    app.deposit(&wallet, "fund", "100.00").await;
    let token = hub88_session(&app, "repeat-h", "EUR").await;
    let bet = hub88_bet("repeat-h", "EUR", &token, "hb1", 500_000);
    let first = app.hub88("transaction/bet", bet.clone()).await;
    assert_eq!(status(&first), "RS_OK", "{:?}", first.body);
    app.end_session(&token).await;
    let events = app.event_count().await;
    let again = app.hub88("transaction/bet", bet.clone()).await;
    assert_eq!(status(&again), "RS_OK", "{:?}", again.body);
    assert_eq!(again.body["balance"], first.body["balance"]);
    let mut other = bet.clone();
    other["amount"] = json!(600_000);
    let duplicate = app.hub88("transaction/bet", other).await;
    assert_eq!(status(&duplicate), "RS_ERROR_DUPLICATE_TRANSACTION");
    let new = hub88_bet("repeat-h", "EUR", &token, "hb2", 500_000);
    let expired = app.hub88("transaction/bet", new).await;
    assert_eq!(status(&expired), "RS_ERROR_TOKEN_EXPIRED");
    assert_eq!(app.event_count().await, events, "nothing moved");
    app.stop().await;
}

/// Defect 5. Before: a player with EUR and USD wallets and no session; rollback `rb1` of
/// bet `RB1` came first (`RS_OK`, the id voided in EUR), the USD bet `RB1` was charged,
/// and `rb1` re-sent refunded it in USD: one id wrote in two wallets. And the same
/// `transaction_uuid` under another user was taken as new.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_hub88_id_names_one_wallet(pool: PgPool) {
    let app = spawn_app(pool).await;
    let eur = app.open_wallet("two-cur", "EUR").await;
    let usd = app.open_wallet("two-cur", "USD").await;
    app.deposit(&eur, "fund-eur", "100.00").await;
    app.deposit(&usd, "fund-usd", "100.00").await;
    let other = app.open_wallet("someone-else", "EUR").await;
    app.deposit(&other, "fund-other", "100.00").await;

    // No session, two wallets, a bet not seen yet: no wallet to decide it in.
    let early = app
        .hub88(
            "transaction/rollback",
            hub88_rollback("two-cur", "rb1", "RB1"),
        )
        .await;
    assert_eq!(status(&early), "RS_ERROR_TRANSACTION_DOES_NOT_EXIST");
    let usd_token = hub88_session(&app, "two-cur", "USD").await;
    app.end_session(&usd_token).await;
    let usd_token = hub88_session(&app, "two-cur", "USD").await;
    let bet = app
        .hub88(
            "transaction/bet",
            hub88_bet("two-cur", "USD", &usd_token, "RB1", 1_000_000),
        )
        .await;
    assert_eq!(status(&bet), "RS_OK", "{:?}", bet.body);
    assert_eq!(bet.body["balance"], 9_000_000);
    // The same id in the player's other currency, or under another user: a duplicate.
    let eur_token = hub88_session(&app, "two-cur", "EUR").await;
    let twice = app
        .hub88(
            "transaction/bet",
            hub88_bet("two-cur", "EUR", &eur_token, "RB1", 1_000_000),
        )
        .await;
    assert_eq!(status(&twice), "RS_ERROR_DUPLICATE_TRANSACTION");
    let other_token = hub88_session(&app, "someone-else", "EUR").await;
    let stranger = app
        .hub88(
            "transaction/bet",
            hub88_bet("someone-else", "EUR", &other_token, "RB1", 1_000_000),
        )
        .await;
    assert_eq!(status(&stranger), "RS_ERROR_DUPLICATE_TRANSACTION");
    let stranger_rollback = app
        .hub88(
            "transaction/rollback",
            hub88_rollback("someone-else", "rb1", "RB1"),
        )
        .await;
    assert_eq!(status(&stranger_rollback), "RS_ERROR_DUPLICATE_TRANSACTION");
    // The rollback re-sent finds the bet where it is, and refunds it there.
    let rollback = app
        .hub88(
            "transaction/rollback",
            hub88_rollback("two-cur", "rb1", "RB1"),
        )
        .await;
    assert_eq!(status(&rollback), "RS_OK", "{:?}", rollback.body);
    assert_eq!(rollback.body["balance"], 10_000_000);
    assert_eq!(rollback.body["currency"], "USD");
    for (wallet, available) in [(&eur, "100.00"), (&usd, "100.00"), (&other, "100.00")] {
        let r = app.get(&format!("/v1/wallets/{wallet}")).await;
        assert_eq!(r.body["balance"]["available"], available, "{wallet}");
    }
    let in_eur: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE aggregate_id = $1 AND metadata->>'command' <> 'open'
            AND metadata->>'command' <> 'deposit'",
    )
    .bind(&eur)
    .fetch_one(&app.pool)
    .await
    .unwrap();
    assert_eq!(in_eur, 0, "nothing written in EUR");
    app.stop().await;
}

/// Defect 9. Before: the amount `"01.00"` was accepted, so were the transaction ids
/// `" "` and a lone U+0301, and a settle with a negative payout on an unknown
/// reservation answered 404 instead of 400.
#[sqlx::test(migrator = "MIGRATOR")]
async fn small_input_oddities_are_refused_as_bad_requests(pool: PgPool) {
    let app = spawn_app(pool).await;
    let wallet = app.open_wallet("oddities", "EUR").await;
    app.deposit(&wallet, "fund", "10.00").await;
    let events = app.event_count().await;
    let deposits = format!("/v1/wallets/{wallet}/deposits");
    for (tx, amount, code) in [
        ("d-lead", "01.00", "INVALID_AMOUNT"),
        ("d-lead-2", "00.50", "INVALID_AMOUNT"),
        (" ", "1.00", "INVALID_REQUEST"),
        ("\u{301}", "1.00", "INVALID_REQUEST"),
        ("trailing ", "1.00", "INVALID_REQUEST"),
    ] {
        let r = app
            .post(&deposits, json!({"transaction_id": tx, "amount": amount}))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, code),
            "{tx:?} {amount:?}: {:?}",
            r.body
        );
    }
    let settle = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations/never/settle"),
            json!({"transaction_id": "s1", "payout": "-1.00"}),
        )
        .await;
    assert_eq!(
        (settle.status, settle.code()),
        (400, "INVALID_AMOUNT"),
        "{:?}",
        settle.body
    );
    // The same through a provider: an id of white space only.
    let token = app.session("oddities", A, "g1").await;
    let bet = app
        .provider(
            A,
            A_KEY,
            "bet",
            json!({"token": token, "transaction_id": " ", "round_id": "r", "game_id": "g1",
                   "amount": "1.00"}),
        )
        .await;
    assert_eq!(
        (bet.status, bet.code()),
        (400, "INVALID_REQUEST"),
        "{:?}",
        bet.body
    );
    assert_eq!(app.event_count().await, events, "nothing written");
    // "0.50" is one written form, and fine.
    let r = app
        .post(
            &deposits,
            json!({"transaction_id": "d-half", "amount": "0.50"}),
        )
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    app.stop().await;
}

/// Defect 8. Before: a write token without the operator scope posted a native adjustment
/// of +1000.00; a provider paid a bet-less win to a player who never played its games; a
/// provider adjustment of +1,000,000.00 was accepted without any cap; Hub88 paid an
/// `is_free` win to a user who never had a session.
#[sqlx::test(migrator = "MIGRATOR")]
async fn money_without_a_stake_needs_the_operator_a_served_player_and_a_cap(pool: PgPool) {
    let mut config = test_config();
    config.credit_caps = command_api::caps::CreditCaps::parse("alpha/EUR=50.00").unwrap();
    let app = spawn_app_with(pool, config).await;
    let wallet = app.open_wallet("risk", "EUR").await;
    app.deposit(&wallet, "fund", "100.00").await;
    let events = app.event_count().await;

    // Native: a correction is the back office's, with the operator scope. (A bet-less win
    // stays the casino's own game services', with the write scope.)
    let adjust = json!({"transaction_id": "adj", "amount": "1000.00", "reason": "goodwill"});
    let path = format!("/v1/wallets/{wallet}/adjustments");
    let r = app.post(&path, adjust.clone()).await;
    assert_eq!((r.status, r.code()), (403, "FORBIDDEN"), "{:?}", r.body);
    assert_eq!(app.event_count().await, events, "nothing moved");
    let r = app
        .send_with(reqwest::Method::POST, &path, adjust, Some(OPERATOR_TOKEN))
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    let promo = json!({"transaction_id": "promo", "amount": "5.00", "kind": "promo"});
    let r = app
        .post(&format!("/v1/wallets/{wallet}/rounds/n1/wins"), promo)
        .await;
    assert_eq!(r.status, 200, "{:?}", r.body);

    // A provider that took no stake from the player may create no money for it.
    let named = |mut body: Value| {
        body["player_id"] = json!("risk");
        body["currency"] = json!("EUR");
        body
    };
    let jackpot = named(
        json!({"transaction_id": "j1", "round_id": "jr", "amount": "10.00",
                               "kind": "jackpot"}),
    );
    let r = app.provider(A, A_KEY, "win", jackpot.clone()).await;
    assert_eq!(
        (r.status, r.code()),
        (403, "PROVIDER_NOT_SERVED"),
        "{:?}",
        r.body
    );
    assert_eq!(
        r.body["balance"]["available"], "1105.00",
        "the refusal shows the balance"
    );
    // A round it closed without a stake serves nothing either.
    let close = named(
        json!({"transaction_id": "c1", "round_id": "cr", "amount": "0",
                             "bet_transaction_id": "never", "round_closed": true}),
    );
    let _ = app.provider(A, A_KEY, "win", close).await;
    let adjust = named(
        json!({"transaction_id": "pa1", "round_id": "cr", "amount": "20.00",
                              "reason": "provider correction"}),
    );
    let r = app.provider(A, A_KEY, "adjust", adjust).await;
    assert!(
        matches!(r.code(), "PROVIDER_NOT_SERVED" | "RESERVATION_NOT_FOUND"),
        "{:?}",
        r.body
    );
    // Once it has taken a stake, it may, within its cap (50.00 for alpha here).
    let token = app.session("risk", A, "g1").await;
    let bet = json!({"token": token, "transaction_id": "b1", "round_id": "br", "game_id": "g1",
                     "amount": "1.00"});
    assert_eq!(app.provider(A, A_KEY, "bet", bet).await.status, 200);
    let paid = app.provider(A, A_KEY, "win", jackpot.clone()).await;
    assert_eq!(paid.status, 200, "{:?}", paid.body);
    let over = named(
        json!({"transaction_id": "pa2", "round_id": "br", "amount": "1000000.00",
                            "reason": "fat finger"}),
    );
    let r = app.provider(A, A_KEY, "adjust", over).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "CREDIT_CAP_EXCEEDED"),
        "{:?}",
        r.body
    );
    let within = named(
        json!({"transaction_id": "pa3", "round_id": "br", "amount": "50.00",
                              "reason": "provider correction"}),
    );
    assert_eq!(app.provider(A, A_KEY, "adjust", within).await.status, 200);
    // A debit is no credit: not capped.
    let debit = named(
        json!({"transaction_id": "pa4", "round_id": "br", "amount": "-60.00",
                             "reason": "provider correction"}),
    );
    assert_eq!(app.provider(A, A_KEY, "adjust", debit).await.status, 200);

    // A repeat is answered as the first time whatever the cap is now: another instance
    // with a cap below what was paid.
    let mut lower = test_config();
    lower.credit_caps = command_api::caps::CreditCaps::parse("alpha/EUR=5.00").unwrap();
    let strict = spawn_app_with(app.pool.clone(), lower).await;
    let again = strict.provider(A, A_KEY, "win", jackpot).await;
    assert_eq!((again.status, &again.body), (200, &paid.body));
    let new = named(
        json!({"transaction_id": "j2", "round_id": "jr", "amount": "10.00",
                           "kind": "jackpot"}),
    );
    let r = strict.provider(A, A_KEY, "win", new).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "CREDIT_CAP_EXCEEDED"),
        "{:?}",
        r.body
    );
    strict.stop().await;

    // Hub88: an is_free win for a user the operator never took a stake from.
    let user = app.open_wallet("never-played", "EUR").await;
    app.deposit(&user, "fund", "10.00").await;
    let before = app.event_count().await;
    let free = json!({"user": "never-played", "transaction_uuid": "free-1",
                      "supplier_transaction_id": "s", "token": "none", "round": "fr",
                      "round_closed": false, "request_uuid": "q", "is_free": true,
                      "is_supplier_promo": false, "game_code": "g88", "currency": "EUR",
                      "amount": 500_000, "reference_transaction_uuid": "fb-1", "meta": {}});
    let r = app.hub88("transaction/win", free).await;
    assert_eq!(status(&r), "RS_ERROR_UNKNOWN", "{:?}", r.body);
    assert_eq!(
        r.body["balance"], 1_000_000,
        "the refusal shows the balance"
    );
    assert_eq!(app.event_count().await, before, "nothing moved");
    app.stop().await;
}
