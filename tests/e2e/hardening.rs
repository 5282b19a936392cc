//! Issue 12's defects, each reproduced as it was reported and refused now: an
//! unauthenticated stall, a wrapping timestamp window, native and provider ids in one
//! space, rounded amounts, provider id rules, look-alike ids, the contract's format on
//! every error, and a leaderboard shown as a float.

use std::time::{Duration, Instant};

use betledger_tests::{
    spawn_app, unique_prefix, TestApp, OPERATOR_TOKEN, PROVIDER_A as A, PROVIDER_A_SECRET as A_KEY,
    WRITER_TOKEN,
};
use chrono::Utc;
use domain::{Balance, Currency, PlayerId, ReservationId, WalletId};
use readmodel::{Applier, Change, Keys, Period, ReservationChange};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgPool;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

/// A funded EUR wallet of `player` and a provider-A session on game `g1`.
async fn funded(app: &TestApp, player: &str) -> (String, String) {
    let wallet = app.open_wallet(player, "EUR").await;
    app.deposit(&wallet, &format!("{player}-fund"), "100.00")
        .await;
    let token = app.session(player, A, "g1").await;
    (wallet, token)
}

async fn balance(app: &TestApp, wallet: &str) -> Value {
    app.get(&format!("/v1/wallets/{wallet}")).await.body["balance"].clone()
}

/// Sends the head of a POST whose body never comes; returns the open connection.
async fn half_sent(app: &TestApp, path: &str, extra: &str) -> TcpStream {
    let mut stream = TcpStream::connect(app.addr).await.expect("connecting");
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: test\r\ncontent-type: application/json\r\n\
         content-length: 1000\r\n{extra}\r\n"
    );
    stream
        .write_all(head.as_bytes())
        .await
        .expect("sending a head");
    stream
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// `count` deposits from 8 tasks; their latencies, sorted, and how many failed.
async fn deposits(app: &TestApp, wallet: &str, tag: &str, count: usize) -> (Vec<Duration>, usize) {
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..8 {
        let (url, http) = (
            app.url(&format!("/v1/wallets/{wallet}/deposits")),
            app.http.clone(),
        );
        let tag = tag.to_string();
        tasks.spawn(async move {
            let mut out = Vec::new();
            for n in 0..count / 8 {
                let started = Instant::now();
                let status = http
                    .post(&url)
                    .bearer_auth(WRITER_TOKEN)
                    .json(&json!({"transaction_id": format!("{tag}-{t}-{n}"), "amount": "0.01"}))
                    .send()
                    .await
                    .map(|r| r.status().as_u16())
                    .unwrap_or(0);
                out.push((started.elapsed(), status));
            }
            out
        });
    }
    let mut latencies = Vec::new();
    let mut failed = 0;
    while let Some(done) = tasks.join_next().await {
        for (latency, status) in done.unwrap() {
            latencies.push(latency);
            failed += usize::from(status != 200);
        }
    }
    latencies.sort();
    (latencies, failed)
}

/// Defect 1. Before: 300 half-sent requests to `/provider/nobody/bet` held all 256 request
/// slots, and every deposit got `503` after 2 s. Now the gate refuses them from their head,
/// and half-sent requests that pass it (a known provider id, a well-formed signature) hold
/// at most that provider's share, for at most 5 s.
#[sqlx::test(migrator = "MIGRATOR")]
async fn half_sent_requests_do_not_stall_authenticated_callers(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (wallet, _) = funded(&app, "slow").await;
    let (before, failed) = deposits(&app, &wallet, "before", 200).await;
    assert_eq!(failed, 0);

    let mut unauthenticated = Vec::new();
    for _ in 0..300 {
        unauthenticated.push(half_sent(&app, "/provider/nobody/bet", "").await);
    }
    // A known provider id and a signature of the right shape: these pass the gate.
    let signature = format!("x-signature: {}\r\n", "ab".repeat(32));
    let mut claimed = Vec::new();
    for _ in 0..100 {
        claimed.push(half_sent(&app, &format!("/provider/{A}/bet"), &signature).await);
    }
    // The unauthenticated ones are answered 401 without their body.
    let mut first = unauthenticated.remove(0);
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(5), first.read(&mut answer))
        .await
        .expect("an unauthenticated request is answered at once, body or not")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    assert!(answer.contains("\"UNAUTHORIZED\""), "{answer}");

    let (during, failed) = deposits(&app, &wallet, "during", 200).await;
    assert_eq!(failed, 0, "every deposit is served while 400 requests hang");
    let (p50_before, p99_before) = (percentile(&before, 0.5), percentile(&before, 0.99));
    let (p50_during, p99_during) = (percentile(&during, 0.5), percentile(&during, 0.99));
    println!(
        "slow clients: deposits p50 {p50_before:?} p99 {p99_before:?} before, \
         p50 {p50_during:?} p99 {p99_during:?} with 300 unauthenticated and 100 \
         claimed-provider half-sent requests open"
    );
    assert!(
        p99_during < Duration::from_secs(1),
        "deposit p99 {p99_during:?} under the slow clients (before: {p99_before:?})"
    );
    // The claimed ones are cut off once the body read times out.
    let mut cut = claimed.remove(0);
    let mut answer = vec![0u8; 512];
    let n = tokio::time::timeout(Duration::from_secs(10), cut.read(&mut answer))
        .await
        .expect("a trickled body is given up within the body timeout")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("did not arrive within"), "{answer}");
    drop((unauthenticated, claimed));
    app.stop().await;
}

/// Defect 2. Before: `timestamp = i64::MIN + now` wrapped into the ±300 s window and the bet
/// was charged.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_timestamp_far_from_now_is_refused_whatever_its_size(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (wallet, token) = funded(&app, "clock").await;
    let events = app.event_count().await;
    let now = Utc::now().timestamp();
    for timestamp in [i64::MIN + now, i64::MIN, i64::MAX, now - 301, now + 301] {
        let bet = json!({"token": token, "transaction_id": format!("t{timestamp}"),
                         "round_id": "r1", "game_id": "g1", "amount": "5.00",
                         "timestamp": timestamp});
        let r = app.provider(A, A_KEY, "bet", bet).await;
        assert_eq!((r.status, r.code()), (401, "UNAUTHORIZED"), "{timestamp}");
    }
    assert_eq!(app.event_count().await, events, "nothing was charged");
    assert_eq!(balance(&app, &wallet).await["available"], "100.00");
    app.stop().await;
}

/// Defect 3. Before: a native reservation named `alpha:nat-x` was settled by provider
/// alpha's win for `nat-x`, and a native deposit `alpha:pw-x` made alpha's win `pw-x` a
/// conflict. A native id may not contain `:` now, and a provider's are always scoped.
#[sqlx::test(migrator = "MIGRATOR")]
async fn native_and_provider_transaction_ids_never_meet(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (wallet, token) = funded(&app, "spaces").await;
    let events = app.event_count().await;
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            json!({"transaction_id": format!("{A}:nat-x"), "amount": "30.00",
                   "game_id": "g1", "round_id": "r1"}),
        )
        .await;
    assert_eq!(
        (r.status, r.code()),
        (400, "INVALID_REQUEST"),
        "{:?}",
        r.body
    );
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/deposits"),
            json!({"transaction_id": format!("{A}:pw-x"), "amount": "1.00"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"));
    for call in ["settle", "refund"] {
        let r = app
            .post(
                &format!("/v1/wallets/{wallet}/reservations/{A}:b1/{call}"),
                json!({"transaction_id": "n1", "payout": "1.00"}),
            )
            .await;
        assert_eq!(r.status, 400, "{call}: {:?}", r.body);
    }
    // Nor a provider's round: a native bet, win, close or adjustment in `{A}:r1`.
    let round = format!("{A}:r1");
    for (path, body) in [
        (
            format!("/v1/wallets/{wallet}/reservations"),
            json!({"transaction_id": "nr1", "amount": "1.00", "game_id": "g1",
                   "round_id": round}),
        ),
        (
            format!("/v1/wallets/{wallet}/rounds/{round}/wins"),
            json!({"transaction_id": "nr2", "amount": "1.00", "kind": "promo"}),
        ),
        (
            format!("/v1/wallets/{wallet}/rounds/{round}/close"),
            json!({"transaction_id": "nr3"}),
        ),
        (
            format!("/v1/wallets/{wallet}/bet-wins"),
            json!({"transaction_id": "nr4", "game_id": "g1", "round_id": round,
                   "amount": "1.00", "payout": "2.00"}),
        ),
        (
            format!("/v1/wallets/{wallet}/adjustments"),
            json!({"transaction_id": "nr5", "amount": "1.00", "reason": "x",
                   "round_id": round}),
        ),
    ] {
        // As the operator: a bet-less win and an adjustment need its scope.
        let r = app
            .send_with(reqwest::Method::POST, &path, body, Some(OPERATOR_TOKEN))
            .await;
        assert_eq!(
            (r.status, r.code()),
            (400, "INVALID_REQUEST"),
            "{path}: {:?}",
            r.body
        );
    }
    assert_eq!(app.event_count().await, events, "nothing was written");
    // The provider's own traffic is untouched: a win for nat-x finds no bet of its own.
    let win = json!({"player_id": "spaces", "currency": "EUR", "transaction_id": "w-nat",
                     "bet_transaction_id": "nat-x", "round_id": "r1", "amount": "30.00"});
    let r = app.provider(A, A_KEY, "win", win).await;
    assert_eq!((r.status, r.code()), (404, "RESERVATION_NOT_FOUND"));
    let bet = json!({"token": token, "transaction_id": "b-pw", "round_id": "r2",
                     "game_id": "g1", "amount": "2.00"});
    assert_eq!(app.provider(A, A_KEY, "bet", bet).await.status, 200);
    let win = json!({"player_id": "spaces", "currency": "EUR", "transaction_id": "pw-x",
                     "bet_transaction_id": "b-pw", "round_id": "r2", "amount": "3.00"});
    let r = app.provider(A, A_KEY, "win", win).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(balance(&app, &wallet).await["available"], "101.00");
    app.stop().await;
}

/// Defect 4. Before: these were booked rounded (0.01, 1.00, a payout of 0), and a repeat
/// of `1.000…001` with `1` was the same request.
#[sqlx::test(migrator = "MIGRATOR")]
async fn amounts_that_do_not_fit_the_scale_are_refused_not_rounded(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (wallet, _) = funded(&app, "exact").await;
    let events = app.event_count().await;
    for (n, amount) in [
        "0.009999999999999999999999999999999",
        "1.000000000000000000000000000001",
        "0.00000000000000000000000000001",
    ]
    .iter()
    .enumerate()
    {
        let r = app
            .post(
                &format!("/v1/wallets/{wallet}/deposits"),
                json!({"transaction_id": format!("d{n}"), "amount": amount}),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "INVALID_AMOUNT"), "{amount}");
    }
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations"),
            json!({"transaction_id": "b1", "amount": "1.00", "game_id": "g", "round_id": "r"}),
        )
        .await;
    assert_eq!(r.status, 200);
    let events_with_bet = app.event_count().await;
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/reservations/b1/settle"),
            json!({"transaction_id": "s1", "payout": "0.00000000000000000000000000001"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "INVALID_AMOUNT"));
    assert_eq!(app.event_count().await, events_with_bet);
    // The same id with "1": a new request (the first was refused), accepted once.
    let r = app
        .post(
            &format!("/v1/wallets/{wallet}/deposits"),
            json!({"transaction_id": "d1", "amount": "1"}),
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(app.event_count().await, events + 2);
    assert_eq!(balance(&app, &wallet).await["available"], "100.00");
    app.stop().await;
}

/// Defect 5. Before: a win or rollback reusing its bet's id got 409 and the stake stayed
/// reserved; a bet after a rollback (under the bet's own id) of it unseen got 409; ids
/// were capped at 119 characters for a 8-character provider id.
#[sqlx::test(migrator = "MIGRATOR")]
async fn provider_id_reuse_closes_the_bet_and_ids_keep_their_length(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (wallet, token) = funded(&app, "reuse").await;
    let bet = |id: &str| {
        json!({"token": token, "transaction_id": id, "round_id": "r1", "game_id": "g1",
               "amount": "10.00"})
    };
    // A win under its bet's own id settles the bet, once.
    assert_eq!(
        app.provider(A, A_KEY, "bet", bet("same-1")).await.status,
        200
    );
    let win = json!({"player_id": "reuse", "currency": "EUR", "transaction_id": "same-1",
                     "bet_transaction_id": "same-1", "round_id": "r1", "amount": "25.00"});
    let first = app.provider(A, A_KEY, "win", win.clone()).await;
    assert_eq!(first.status, 200, "{:?}", first.body);
    assert_eq!(first.body["balance"]["reserved"], "0.00");
    assert_eq!(first.body["transaction_id"], "same-1");
    let again = app.provider(A, A_KEY, "win", win).await;
    assert_eq!(again.status, 200);
    assert_eq!(again.body["sequence"], first.body["sequence"], "a repeat");
    // A rollback under its bet's own id refunds it.
    assert_eq!(
        app.provider(A, A_KEY, "bet", bet("same-2")).await.status,
        200
    );
    let rollback = json!({"player_id": "reuse", "currency": "EUR", "transaction_id": "same-2",
                          "bet_transaction_id": "same-2", "round_id": "r1"});
    let r = app.provider(A, A_KEY, "rollback", rollback).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(balance(&app, &wallet).await["reserved"], "0.00");
    assert_eq!(balance(&app, &wallet).await["available"], "115.00");
    // A rollback of a bet never seen, under the bet's id, then that bet: 422, not 409.
    let rollback = json!({"player_id": "reuse", "currency": "EUR", "transaction_id": "late",
                          "bet_transaction_id": "late", "round_id": "r1"});
    assert_eq!(
        app.provider(A, A_KEY, "rollback", rollback).await.status,
        200
    );
    let r = app.provider(A, A_KEY, "bet", bet("late")).await;
    assert_eq!(
        (r.status, r.code()),
        (422, "RESERVATION_CLOSED"),
        "{:?}",
        r.body
    );
    // A provider id keeps the contract's 128 characters.
    let long = "x".repeat(128);
    let r = app.provider(A, A_KEY, "bet", bet(&long)).await;
    assert_eq!(r.status, 200, "{:?}", r.body);
    assert_eq!(r.body["transaction_id"], long.as_str());
    let r = app.provider(A, A_KEY, "bet", bet(&"x".repeat(129))).await;
    assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"));
    app.stop().await;
}

/// Defect 6. Before: uppercase, dashless, braced and `urn:uuid:` wallet ids were all
/// accepted; player ids with invisible characters or a decomposed "é" opened wallets that
/// look like another's.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_wallet_and_a_player_have_one_name(pool: PgPool) {
    let app = spawn_app(pool).await;
    let wallet = app.open_wallet("josé", "EUR").await;
    for other in [
        wallet.to_uppercase(),
        wallet.replace('-', ""),
        format!("{{{wallet}}}"),
        format!("urn:uuid:{wallet}"),
    ] {
        let r = app.get(&format!("/v1/wallets/{other}")).await;
        assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"), "{other}");
        let r = app
            .post(
                &format!("/v1/wallets/{other}/deposits"),
                json!({"transaction_id": "d", "amount": "1"}),
            )
            .await;
        assert_eq!(r.status, 400, "{other}");
    }
    // The decomposed "é" is the same player, so the same wallet.
    let r = app
        .post(
            "/v1/wallets",
            json!({"player_id": "jose\u{301}", "currency": "EUR"}),
        )
        .await;
    assert_eq!((r.status, r.code()), (409, "WALLET_EXISTS"));
    assert_eq!(r.body["wallet_id"], wallet.as_str());
    for sneaky in ["jos\u{e9}\u{200b}", "\u{202e}jos\u{e9}", "jo\u{ad}s\u{e9}"] {
        let r = app
            .post(
                "/v1/wallets",
                json!({"player_id": sneaky, "currency": "EUR"}),
            )
            .await;
        assert_eq!((r.status, r.code()), (400, "INVALID_REQUEST"), "{sneaky:?}");
    }
    app.stop().await;
}

async fn raw(
    app: &TestApp,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (u16, Value) {
    let mut request = app
        .http
        .request(method.parse().unwrap(), app.url(path))
        .body(body);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    let bytes = response.bytes().await.unwrap();
    let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
        panic!(
            "{method} {path}: not JSON: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    (status, body)
}

/// Defect 7. Before: a provider body over 64 KiB got `413` as plain text, 404 and 405 had
/// empty bodies, bad query strings a plain-text 400, `Content-Type` was never checked, and
/// `events?limit=0` answered 200.
#[sqlx::test(migrator = "MIGRATOR")]
async fn every_error_is_the_contracts_json(pool: PgPool) {
    let app = spawn_app(pool).await;
    let (wallet, _) = funded(&app, "format").await;
    let bearer = format!("Bearer {WRITER_TOKEN}");
    let auth = [
        ("authorization", bearer.as_str()),
        ("content-type", "application/json"),
    ];
    let code = |body: &Value| {
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };

    let big = format!("{{\"token\": \"{}\"}}", "x".repeat(70 * 1024));
    let signature = betledger_tests::sign(A, A_KEY, big.as_bytes());
    let (status, body) = raw(
        &app,
        "POST",
        &format!("/provider/{A}/balance"),
        &[
            ("x-signature", &signature),
            ("content-type", "application/json"),
        ],
        big.into_bytes(),
    )
    .await;
    assert_eq!(
        (status, code(&body).as_str()),
        (400, "INVALID_REQUEST"),
        "{body}"
    );

    let (status, body) = raw(&app, "GET", "/v1/nothing-here", &auth, vec![]).await;
    assert_eq!((status, code(&body).as_str()), (404, "NOT_FOUND"));
    let (status, body) = raw(&app, "GET", "/nothing", &[], vec![]).await;
    assert_eq!((status, code(&body).as_str()), (404, "NOT_FOUND"));
    let (status, body) = raw(
        &app,
        "DELETE",
        &format!("/v1/wallets/{wallet}"),
        &auth,
        vec![],
    )
    .await;
    assert_eq!((status, code(&body).as_str()), (405, "METHOD_NOT_ALLOWED"));

    for query in [
        "limit=5&limit=6",
        "after=1&after=2",
        "colour=red",
        "limit=0",
        "limit=1001",
    ] {
        let (status, body) = raw(
            &app,
            "GET",
            &format!("/v1/wallets/{wallet}/events?{query}"),
            &auth,
            vec![],
        )
        .await;
        assert_eq!(
            (status, code(&body).as_str()),
            (400, "INVALID_REQUEST"),
            "{query}"
        );
    }
    let (status, body) = raw(
        &app,
        "GET",
        "/v1/read/leaderboards/g1?period=day&period=week",
        &auth,
        vec![],
    )
    .await;
    assert_eq!((status, code(&body).as_str()), (400, "INVALID_REQUEST"));

    let events = app.event_count().await;
    let deposit = json!({"transaction_id": "ct", "amount": "1.00"}).to_string();
    for content_type in [
        None,
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
    ] {
        let mut headers = vec![("authorization", bearer.as_str())];
        if let Some(ct) = content_type {
            headers.push(("content-type", ct));
        }
        let (status, body) = raw(
            &app,
            "POST",
            &format!("/v1/wallets/{wallet}/deposits"),
            &headers,
            deposit.clone().into_bytes(),
        )
        .await;
        assert_eq!(
            (status, code(&body).as_str()),
            (400, "INVALID_REQUEST"),
            "{content_type:?}"
        );
    }
    assert_eq!(
        app.event_count().await,
        events,
        "nothing refused moved money"
    );
    let (status, _) = raw(
        &app,
        "POST",
        &format!("/v1/wallets/{wallet}/deposits"),
        &[
            ("authorization", &bearer),
            ("content-type", "application/json; charset=utf-8"),
        ],
        deposit.into_bytes(),
    )
    .await;
    assert_eq!(status, 200);
    app.stop().await;
}

/// The test Redis, a key prefix of its own and the read models' applier over it.
async fn board_applier(tag: &str) -> (fred::clients::Client, Keys, Applier) {
    let redis = readmodel::connect(&betledger_tests::redis_url())
        .await
        .unwrap();
    readmodel::wait_connected(&redis, Duration::from_secs(10))
        .await
        .expect("Redis of scripts/services.sh");
    let keys = Keys::new(unique_prefix(tag));
    let applier = Applier::new(redis.clone(), keys.clone());
    (redis, keys, applier)
}

/// Defect 8. Before: a BTC net win of 99,999,999,999,999,999 satoshi was a sorted-set
/// score (an f64, `1e+17`), and the board showed 1,000,000,000 BTC.
#[tokio::test]
async fn a_leaderboard_shows_exact_net_wins() {
    let (redis, keys, applier) = board_applier("exact-board").await;
    let g1 = readmodel::totals::Origin::of_bet(
        &domain::GameId::new("g1").unwrap(),
        &domain::RoundId::new("r").unwrap(),
    );
    let player = PlayerId::new("whale").unwrap();
    let wallet = WalletId::for_player(&player, Currency::Btc);
    let at = Utc::now();
    let balance = Balance {
        available: Decimal::new(99_999_999_999_999_999, 8),
        reserved: Decimal::ZERO,
        currency: Currency::Btc,
        bonus: rust_decimal::Decimal::ZERO,
        bonus_reserved: rust_decimal::Decimal::ZERO,
    };
    let change = |sequence: u64| Change {
        wallet_id: wallet,
        sequence,
        global_position: sequence as i64,
        recorded_at: at,
        balance,
        player_id: (sequence == 1).then(|| player.clone()),
        reservation: if sequence == 1 {
            ReservationChange::None
        } else {
            ReservationChange::Close {
                reservation_id: ReservationId::new("b").unwrap(),
            }
        },
        net_win_minor: (sequence == 2).then_some(99_999_999_999_999_999),
        closed_also: Vec::new(),
        game_id: None,
        totals: Default::default(),
        protection: None,
        brand: None,
    };
    applier.apply(&change(1), None).await.unwrap();
    applier.apply(&change(2), Some(&g1)).await.unwrap();
    let generation = readmodel::query::current(&redis, &keys).await.unwrap();
    let board = readmodel::query::leaderboard(
        &redis,
        &generation,
        "g1",
        Currency::Btc,
        Period::All,
        at,
        10,
    )
    .await
    .unwrap();
    assert_eq!(board[0].net_win.to_string(), "999999999.99999999");
    let _ = readmodel::query::delete_prefix(&redis, keys.prefix()).await;
}

/// After the upgrade, a board built before the exact figures (scores only) goes on from
/// its score: the exact entry starts from it, and does not count only what came after.
#[tokio::test]
async fn a_board_built_before_the_exact_figures_keeps_its_total() {
    use fred::interfaces::KeysInterface;
    let (redis, keys, applier) = board_applier("legacy-board").await;
    let g1 = readmodel::totals::Origin::of_bet(
        &domain::GameId::new("g1").unwrap(),
        &domain::RoundId::new("r").unwrap(),
    );
    let player = PlayerId::new("minnow").unwrap();
    let wallet = WalletId::for_player(&player, Currency::Eur);
    let at = Utc::now();
    let change = |sequence: u64, net: Option<i64>| Change {
        wallet_id: wallet,
        sequence,
        global_position: sequence as i64,
        recorded_at: at,
        balance: Balance {
            available: Decimal::new(1000, 2),
            reserved: Decimal::ZERO,
            currency: Currency::Eur,
            bonus: rust_decimal::Decimal::ZERO,
            bonus_reserved: rust_decimal::Decimal::ZERO,
        },
        player_id: (sequence == 1).then(|| player.clone()),
        reservation: match net {
            None => ReservationChange::None,
            Some(_) => ReservationChange::Close {
                reservation_id: ReservationId::new(format!("b{sequence}")).unwrap(),
            },
        },
        net_win_minor: net,
        closed_also: Vec::new(),
        game_id: None,
        totals: Default::default(),
        protection: None,
        brand: None,
    };
    applier.apply(&change(1, None), None).await.unwrap();
    applier
        .apply(&change(2, Some(150)), Some(&g1))
        .await
        .unwrap();
    let generation = readmodel::query::current(&redis, &keys).await.unwrap();
    // What a generation built before the upgrade holds: the scores, no exact hash.
    for period in Period::ALL {
        let exact = generation.leaderboard_net(Currency::Eur, &period.bucket(at), "g1");
        let removed: i64 = redis.del(exact).await.unwrap();
        assert_eq!(removed, 1);
    }
    applier
        .apply(&change(3, Some(25)), Some(&g1))
        .await
        .unwrap();
    for period in Period::ALL {
        let board =
            readmodel::query::leaderboard(&redis, &generation, "g1", Currency::Eur, period, at, 10)
                .await
                .unwrap();
        assert_eq!(board[0].net_win.to_string(), "1.75", "{period:?}");
    }
    let _ = readmodel::query::delete_prefix(&redis, keys.prefix()).await;
}

/// A reservation view written before views named their provider: its settle's totals
/// cannot be placed from Redis alone, so the apply answers "unknown reservation" (the
/// worker then asks the log) instead of counting the settle as a native round's; given
/// the origin, the settle counts for the provider and game of its bet.
#[tokio::test]
async fn a_settle_of_a_view_without_provider_asks_the_log_for_its_totals() {
    use fred::interfaces::HashesInterface;
    use readmodel::totals::{Contribution, Measure, Origin};
    let (redis, keys, applier) = board_applier("legacy-view").await;
    let player = PlayerId::new("old-timer").unwrap();
    let wallet = WalletId::for_player(&player, Currency::Eur);
    let at = Utc::now();
    let balance = Balance {
        available: Decimal::new(1000, 2),
        reserved: Decimal::ZERO,
        currency: Currency::Eur,
        bonus: rust_decimal::Decimal::ZERO,
        bonus_reserved: rust_decimal::Decimal::ZERO,
    };
    let base = Change {
        wallet_id: wallet,
        sequence: 1,
        global_position: 1,
        recorded_at: at,
        balance,
        player_id: Some(player.clone()),
        reservation: ReservationChange::None,
        net_win_minor: None,
        closed_also: Vec::new(),
        game_id: None,
        totals: Contribution::default(),
        protection: None,
        brand: None,
    };
    applier.apply(&base, None).await.unwrap();
    let generation = readmodel::query::current(&redis, &keys).await.unwrap();
    let legacy = json!({"reservation_id": "b", "amount": "2.00", "game_id": "g1",
                        "round_id": "alpha:r", "expires_at": at});
    let _: i64 = redis
        .hset(generation.reservations(wallet), ("b", legacy.to_string()))
        .await
        .unwrap();
    let settle = Change {
        sequence: 2,
        global_position: 2,
        player_id: None,
        reservation: ReservationChange::Close {
            reservation_id: ReservationId::new("b").unwrap(),
        },
        net_win_minor: Some(300),
        totals: Contribution {
            add: vec![
                (Measure::Bets, 1),
                (Measure::Stakes, 200),
                (Measure::Payouts, 500),
            ],
            provider: None,
        },
        ..base.clone()
    };
    assert_eq!(
        applier.apply(&settle, None).await.unwrap(),
        readmodel::ApplyOutcome::UnknownReservation
    );
    let origin = Origin::of_bet(
        &domain::GameId::new("g1").unwrap(),
        &domain::RoundId::try_from("alpha:r".to_string()).unwrap(),
    );
    assert_eq!(origin.provider.as_deref(), Some("alpha"));
    assert_eq!(
        applier.apply(&settle, Some(&origin)).await.unwrap(),
        readmodel::ApplyOutcome::Applied
    );
    let day = readmodel::query::totals_of_day(&redis, &generation, at.date_naive())
        .await
        .unwrap();
    let rows: Vec<_> = day.into_iter().collect();
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0].0.origin, origin);
    assert_eq!(rows[0].1.get(&Measure::Payouts), Some(&500));
    let _ = readmodel::query::delete_prefix(&redis, keys.prefix()).await;
}
