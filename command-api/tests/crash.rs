//! The batched write path when its process is killed (SIGKILL) in the middle of a stream
//! of commands: the log holds only whole committed commands, every acknowledged command is
//! in it exactly once with the answer it gave, and after a restart a retry of any command
//! (acknowledged or lost with the process) is answered without moving money twice.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{
    drop_database, fresh_database, logged_deposits, open_wallets, start_api, Answers, Running,
};
use tokio::sync::Mutex;

const TOKEN: &str = "crash-test-token";

/// The binary on the batched write path, without the expiry sweep.
fn start(db_url: &str) -> (Running, String) {
    start_api(
        db_url,
        TOKEN,
        &[
            ("BETLEDGER_WRITE_PATH", "batched"),
            ("BETLEDGER_EXPIRY_INTERVAL_MS", "0"),
        ],
    )
}

/// What the API acknowledged: (wallet, transaction id) -> (sequence, available).
type Acks = Arc<Mutex<Answers>>;

#[tokio::test]
async fn a_process_killed_mid_batch_leaves_only_whole_acknowledged_commands() {
    let name = format!("crash_{}", std::process::id());
    let (admin, db_url) = fresh_database(&name).await;
    let (mut child, addr) = start(&db_url);
    let http = reqwest::Client::new();
    let wallets = open_wallets(&http, &addr, TOKEN, "crash", 10).await;

    // 32 clients deposit 1.00 at a time until the process dies under them.
    let acks: Acks = Arc::default();
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..32 {
        let (http, addr, wallets, acks) =
            (http.clone(), addr.clone(), wallets.clone(), acks.clone());
        clients.spawn(async move {
            for n in 0.. {
                let wallet = &wallets[(c + n) % wallets.len()];
                let tx = format!("c{c}-{n}");
                let sent = http
                    .post(format!("{addr}/v1/wallets/{wallet}/deposits"))
                    .bearer_auth(TOKEN)
                    .header("content-type", "application/json")
                    .body(format!(r#"{{"transaction_id": "{tx}", "amount": "1.00"}}"#))
                    .send()
                    .await;
                // The process died under this request: it may or may not have committed.
                let in_flight = Some((wallet.clone(), tx.clone()));
                let Ok(response) = sent else { return in_flight };
                if response.status() != 200 {
                    return in_flight;
                }
                let Ok(body) = response.json::<serde_json::Value>().await else {
                    return in_flight;
                };
                acks.lock().await.insert(
                    (wallet.clone(), tx),
                    (
                        body["sequence"].as_u64().unwrap(),
                        body["balance"]["available"].as_str().unwrap().to_string(),
                    ),
                );
            }
            unreachable!("the loop ends only when a request fails")
        });
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    child.kill().expect("SIGKILL");
    child.wait().unwrap();
    let mut in_flight = Vec::new();
    while let Some(done) = clients.join_next().await {
        in_flight.extend(done.unwrap());
    }
    let acks = acks.lock().await.clone();
    assert!(
        acks.len() > 100,
        "only {} commands were acknowledged before the kill",
        acks.len()
    );

    // The log: per wallet, sequences without gaps, each deposit's recorded balance one
    // euro above the one before (whole commands only), no transaction id twice.
    let pool = sqlx::PgPool::connect(&db_url).await.unwrap();
    let logged = logged_deposits(&pool).await;
    for (key, answer) in &acks {
        assert_eq!(
            logged.get(key),
            Some(answer),
            "acknowledged {key:?} is in the log as answered"
        );
    }

    // After a restart, a retry of an acknowledged command is answered from the log, and a
    // retry (twice) of each command that was in flight at the kill runs at most once.
    let (mut child, addr) = start(&db_url);
    let some_ack = acks.keys().next().unwrap().clone();
    let mut retried = vec![some_ack.clone()];
    retried.extend(in_flight.iter().cloned());
    retried.extend(in_flight.iter().cloned());
    for (wallet, tx) in &retried {
        let r = http
            .post(format!("{addr}/v1/wallets/{wallet}/deposits"))
            .bearer_auth(TOKEN)
            .header("content-type", "application/json")
            .body(format!(r#"{{"transaction_id": "{tx}", "amount": "1.00"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    for (wallet, tx) in &retried {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM events WHERE aggregate_id = $1 AND metadata ->> 'transaction_id' = $2",
        )
        .bind(wallet)
        .bind(tx)
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(count, 1, "{wallet}: {tx} once");
    }
    assert!(
        !in_flight.is_empty(),
        "the kill interrupted requests in flight"
    );
    child.kill().unwrap();
    child.wait().unwrap();
    pool.close().await;
    drop_database(&admin, &name).await;
}
