//! Three `betledger-api` processes on one database as a cluster (BETLEDGER_CLUSTER_ADDR),
//! clients sending deposits to them in turn, and one instance killed with SIGKILL under
//! load: every acknowledged command is in the log once with the answer it gave, a command
//! lost with the process and retried elsewhere runs at most once, and the killed
//! instance's wallets are served by the others within 5 s. Needs `DATABASE_URL`.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{
    drop_database, fresh_database, logged_deposits, open_wallets, start_api, Answers, Running,
};

const TOKEN: &str = "cluster-test-token";
const SECRET: &str = "cluster-test-secret-0001";
const WALLETS: usize = 12;

fn start(db_url: &str) -> (Running, String) {
    start_api(
        db_url,
        TOKEN,
        &[
            ("BETLEDGER_WRITE_PATH", "batched"),
            ("BETLEDGER_EXPIRY_INTERVAL_MS", "0"),
            ("BETLEDGER_CLUSTER_ADDR", "auto"),
            ("BETLEDGER_CLUSTER_SECRET", SECRET),
        ],
    )
}

type Acks = Answers;

#[tokio::test]
async fn an_instance_killed_under_load_loses_nothing_and_its_wallets_move_within_5_s() {
    let name = format!("cluster_{}", std::process::id());
    let (admin, db_url) = fresh_database(&name).await;
    let mut instances: Vec<(Running, String)> = (0..3).map(|_| start(&db_url)).collect();
    let pool = sqlx::PgPool::connect(&db_url).await.unwrap();
    let started = Instant::now();
    loop {
        let members: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM api_instances WHERE heartbeat_at > now() - interval '3 s'",
        )
        .fetch_one(&pool)
        .await
        .unwrap();
        if members == 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "{members} members, not 3"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Every instance sees the others before the load starts.
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    let http = reqwest::Client::new();
    // The internal endpoint takes nobody without the cluster secret.
    for secret in [None, Some("not-the-cluster-secret!")] {
        let mut call = http
            .post(format!("{}/internal/v1/execute", instances[0].1))
            .header("content-type", "application/json")
            .body("[]");
        if let Some(secret) = secret {
            call = call.header("x-betledger-cluster-secret", secret);
        }
        let r = call.send().await.unwrap();
        assert_eq!(r.status(), 401, "{secret:?}");
        let body: serde_json::Value = r.json().await.unwrap();
        assert_eq!(body["error"]["code"], "UNAUTHORIZED");
    }
    let wallets = open_wallets(&http, &instances[0].1, TOKEN, "member", WALLETS).await;

    let live: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(
        instances.iter().map(|(_, a)| a.clone()).collect(),
    ));
    let acks: Arc<Mutex<Acks>> = Arc::default();
    // Per wallet, when a deposit on it was last acknowledged.
    let served: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
    let deadline = Instant::now() + Duration::from_millis(4_500);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..24usize {
        let (http, wallets, live, acks, served) = (
            http.clone(),
            wallets.clone(),
            live.clone(),
            acks.clone(),
            served.clone(),
        );
        clients.spawn(async move {
            let mut n = 0usize;
            while Instant::now() < deadline {
                let wallet = &wallets[(c + n) % wallets.len()];
                let tx = format!("c{c}-{n}");
                // Sent in turn to the live instances; a failure is retried, same id, on
                // another, as a provider retries a call whose answer it did not get.
                let mut attempt = 0usize;
                let body = loop {
                    let addr = {
                        let live = live.lock().unwrap();
                        live[(c + n + attempt) % live.len()].clone()
                    };
                    let sent = http
                        .post(format!("{addr}/v1/wallets/{wallet}/deposits"))
                        .bearer_auth(TOKEN)
                        .header("content-type", "application/json")
                        .body(format!(r#"{{"transaction_id": "{tx}", "amount": "1.00"}}"#))
                        .timeout(Duration::from_secs(10))
                        .send()
                        .await;
                    if let Ok(response) = sent {
                        if response.status() == 200 {
                            if let Ok(body) = response.json::<serde_json::Value>().await {
                                break body;
                            }
                        }
                    }
                    attempt += 1;
                    assert!(attempt < 20, "{wallet} {tx}: no instance took it");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                };
                acks.lock().unwrap().insert(
                    (wallet.clone(), tx),
                    (
                        body["sequence"].as_u64().unwrap(),
                        body["balance"]["available"].as_str().unwrap().to_string(),
                    ),
                );
                served
                    .lock()
                    .unwrap()
                    .entry(wallet.clone())
                    .or_default()
                    .push(Instant::now());
                n += 1;
            }
        });
    }
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let acked_before = acks.lock().unwrap().len();
    let (mut killed, killed_addr) = instances.remove(2);
    killed.kill().expect("SIGKILL");
    let killed_at = Instant::now();
    killed.wait().unwrap();
    // The load balancer notices: new requests go to the two left.
    live.lock().unwrap().retain(|a| *a != killed_addr);
    while let Some(done) = clients.join_next().await {
        done.unwrap();
    }
    let acks = acks.lock().unwrap().clone();
    assert!(
        acked_before > 100,
        "only {acked_before} acknowledged before the kill"
    );
    assert!(
        acks.len() > acked_before + 100,
        "only {} acknowledged after the kill",
        acks.len() - acked_before
    );
    // Every wallet served again within 5 s of the kill.
    for wallet in &wallets {
        let times = &served.lock().unwrap()[wallet];
        let next = times
            .iter()
            .find(|t| **t > killed_at)
            .unwrap_or_else(|| panic!("{wallet} never served after the kill"));
        let gap = next.duration_since(killed_at);
        assert!(
            gap < Duration::from_secs(5),
            "{wallet} served again after {gap:?}"
        );
    }

    // The log: gapless sequences, one euro more each time, each transaction id once, and
    // every acknowledged deposit there as answered.
    let logged = logged_deposits(&pool).await;
    for (key, answer) in &acks {
        assert_eq!(
            logged.get(key),
            Some(answer),
            "acknowledged {key:?} as answered"
        );
    }
    // The instances did pass commands to each other.
    let metrics = http
        .get(format!("{}/metrics", instances[0].1))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let forwarded: f64 = metrics
        .lines()
        .find(|l| l.starts_with("cluster_forwarded_total"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0);
    assert!(
        forwarded > 0.0,
        "no command was passed to its owner:\n{metrics}"
    );
    println!(
        "cluster: {} acknowledged ({} before the kill), {} forwarded by instance 0",
        acks.len(),
        acked_before,
        forwarded
    );
    drop(instances);
    pool.close().await;
    drop_database(&admin, &name).await;
}
