//! Three API processes in a cluster on one database under load, one killed with SIGKILL
//! (issue 13): every acknowledged command is in the log exactly once with the answer it
//! gave, each wallet's balance is what the acknowledged commands make it, the killed
//! instance's wallets are served again within 5 s, and `verify` is clean. Real processes
//! (`target/debug/betledger-api`, built here if needed), so the kill is a real SIGKILL.

use std::collections::HashMap;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use replay_tool::verify::{verify, VerifyConfig};
use serde_json::{json, Value};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;
const TOKEN: &str = "killed-instance-token";
const WALLETS: usize = 12;

/// An event as the log holds it: its sequence and the available balance it recorded.
type Logged = (u64, Option<String>);

struct Instance {
    child: Child,
    base: String,
}

impl Drop for Instance {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The API binary. `cargo test --workspace` builds it (command-api's own tests need it);
/// when it is not there (only this test binary was built), it is built here. Built by
/// itself it may resolve its dependencies' features apart from the workspace's test
/// build, and compile them again: so it is not rebuilt when present.
fn api_binary() -> std::path::PathBuf {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let binary = root.join("target/debug/betledger-api");
    if binary.exists() {
        return binary;
    }
    let status = Command::new(env!("CARGO"))
        .args(["build", "--quiet", "--bin", "betledger-api"])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building betledger-api");
    root.join("target/debug/betledger-api")
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn a_killed_instance_loses_nothing_and_its_wallets_are_served_again_within_5_s(pool: PgPool) {
    let database: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await
        .unwrap();
    let base_url = std::env::var("DATABASE_URL").expect("DATABASE_URL");
    let url = format!("{}/{database}", base_url.rsplit_once('/').unwrap().0);
    let binary = api_binary();
    let prefix = betledger_tests::unique_prefix("killed");
    let start = |_: usize| {
        let port = free_port();
        let child = Command::new(&binary)
            .env("BETLEDGER_DATABASE_URL", &url)
            .env("BETLEDGER_API_ADDR", format!("127.0.0.1:{port}"))
            .env("BETLEDGER_API_TOKENS", format!("t:{TOKEN}:read+write"))
            .env("BETLEDGER_REDIS_URL", betledger_tests::redis_url())
            .env("BETLEDGER_REDIS_PREFIX", &prefix)
            .env("BETLEDGER_CLUSTER_ADDR", "auto")
            .env("BETLEDGER_CLUSTER_SECRET", "killed-instance-cluster-secret")
            .env("BETLEDGER_RATE_LIMIT_PER_S", "1000000")
            .env("BETLEDGER_RATE_LIMIT_BURST", "1000000")
            .env("RUST_LOG", "error")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting betledger-api");
        Instance {
            child,
            base: format!("http://127.0.0.1:{port}"),
        }
    };
    let mut instances: Vec<Instance> = (0..3).map(start).collect();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    for i in &instances {
        let ready = async {
            loop {
                if http
                    .get(format!("{}/ready", i.base))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200)
                {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(30), ready)
            .await
            .expect("the instance starts");
    }
    // Every instance sees the three members before the load starts.
    tokio::time::sleep(Duration::from_secs(2)).await;

    let bases: Vec<String> = instances.iter().map(|i| i.base.clone()).collect();
    let post = |base: &str, path: &str, body: Value| {
        http.post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let mut wallets = Vec::new();
    for w in 0..WALLETS {
        let r = post(
            &bases[0],
            "/v1/wallets",
            json!({"player_id": format!("k{w}"), "currency": "EUR"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 201);
        let id = r.json::<Value>().await.unwrap()["wallet_id"]
            .as_str()
            .unwrap()
            .to_string();
        let r = post(
            &bases[0],
            &format!("/v1/wallets/{id}/deposits"),
            json!({"transaction_id": "fund", "amount": "1000"}),
        )
        .await
        .unwrap();
        assert_eq!(r.status(), 200);
        wallets.push(id);
    }

    // The load: each client sends deposits and withdrawals round-robin over the live
    // instances; a 503 or a dropped connection is retried under the same id, elsewhere.
    #[derive(Default)]
    struct Seen {
        /// transaction id -> (wallet, cents moved, sequence answered, available answered).
        acknowledged: HashMap<String, (String, i64, u64, String)>,
        /// Per wallet, the first acknowledgement after the kill.
        served_after_kill: HashMap<String, Instant>,
        retries: u64,
        refused_503: u64,
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let killed_at: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let live = Arc::new(Mutex::new(bases.clone()));
    let stop_at = Instant::now() + Duration::from_secs(8);
    let mut clients = tokio::task::JoinSet::new();
    for c in 0..6 {
        let (http, wallets, seen, live, killed_at) = (
            http.clone(),
            wallets.clone(),
            seen.clone(),
            live.clone(),
            killed_at.clone(),
        );
        clients.spawn(async move {
            let mut n = 0u64;
            while Instant::now() < stop_at {
                n += 1;
                let wallet = &wallets[(c * 7 + n as usize) % wallets.len()];
                let (kind, cents) = if n.is_multiple_of(3) {
                    ("withdrawals", -100)
                } else {
                    ("deposits", 100)
                };
                let tx = format!("c{c}-{n}");
                let body = json!({"transaction_id": tx, "amount": "1.00"});
                let mut attempt = 0usize;
                loop {
                    let base = {
                        let live = live.lock().unwrap();
                        live[(n as usize + attempt) % live.len()].clone()
                    };
                    let sent = http
                        .post(format!("{base}/v1/wallets/{wallet}/{kind}"))
                        .bearer_auth(TOKEN)
                        .json(&body)
                        .send()
                        .await;
                    match sent {
                        Ok(r) if r.status() == 200 => {
                            let v: Value = r.json().await.unwrap();
                            let mut seen = seen.lock().unwrap();
                            seen.acknowledged.insert(
                                tx.clone(),
                                (
                                    wallet.clone(),
                                    cents,
                                    v["sequence"].as_u64().unwrap(),
                                    v["balance"]["available"].as_str().unwrap().to_string(),
                                ),
                            );
                            if killed_at.lock().unwrap().is_some() {
                                seen.served_after_kill
                                    .entry(wallet.clone())
                                    .or_insert_with(Instant::now);
                            }
                            break;
                        }
                        Ok(r) if r.status() == 503 => {
                            seen.lock().unwrap().refused_503 += 1;
                        }
                        Ok(r) => panic!("{kind} {tx}: {} {:?}", r.status(), r.text().await),
                        Err(_) => {}
                    }
                    seen.lock().unwrap().retries += 1;
                    attempt += 1;
                    assert!(attempt < 200, "{tx} never acknowledged");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        });
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    // SIGKILL the third instance mid-load.
    let victim = instances.pop().unwrap();
    live.lock().unwrap().retain(|b| *b != victim.base);
    *killed_at.lock().unwrap() = Some(Instant::now());
    let kill_time = Instant::now();
    drop(victim);
    while clients.join_next().await.is_some() {}
    let seen = Arc::try_unwrap(seen).ok().unwrap().into_inner().unwrap();

    // Every acknowledged command is in the log once, with the answer it gave.
    let mut expected: HashMap<String, i64> = wallets.iter().map(|w| (w.clone(), 100_000)).collect();
    let logged: Vec<(String, i64, Value)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, metadata FROM events WHERE metadata ? 'transaction_id'",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut in_log: HashMap<(String, String), Vec<Logged>> = HashMap::new();
    for (wallet, sequence, metadata) in logged {
        let tx = metadata["transaction_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let available = metadata["available"].as_str().map(str::to_string);
        in_log
            .entry((wallet, tx))
            .or_default()
            .push((sequence as u64, available));
    }
    for (tx, (wallet, cents, sequence, available)) in &seen.acknowledged {
        let rows = in_log
            .get(&(wallet.clone(), tx.clone()))
            .map_or(&[][..], Vec::as_slice);
        assert_eq!(rows.len(), 1, "{tx} is in the log exactly once");
        assert_eq!(rows[0].0, *sequence, "{tx}: the sequence answered");
        assert_eq!(
            rows[0].1.as_deref(),
            Some(available.as_str()),
            "{tx}: the balance answered"
        );
        *expected.get_mut(wallet).unwrap() += cents;
    }
    // Every command was retried until acknowledged, so the log holds exactly those (lost 0)
    // and nothing twice (doubled 0): each wallet's events and balance are the model's.
    let mut acks: HashMap<&String, i64> = HashMap::new();
    for (wallet, ..) in seen.acknowledged.values() {
        *acks.entry(wallet).or_default() += 1;
    }
    for (wallet, cents) in &expected {
        let r = http
            .get(format!("{}/v1/wallets/{wallet}", bases[0]))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        let v: Value = r.json().await.unwrap();
        let available: rust_decimal::Decimal =
            v["balance"]["available"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            available,
            rust_decimal::Decimal::new(*cents, 2),
            "{wallet}: the balance the acknowledged commands make"
        );
        let logged: i64 = sqlx::query_scalar("SELECT count(*) FROM events WHERE aggregate_id = $1")
            .bind(wallet)
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(
            logged,
            2 + acks.get(wallet).copied().unwrap_or(0),
            "{wallet}: open, fund, and each acknowledged command once"
        );
    }
    // Each wallet was served again soon after the kill.
    let slowest = seen
        .served_after_kill
        .values()
        .map(|t| t.duration_since(kill_time))
        .max()
        .unwrap_or_default();
    assert_eq!(
        seen.served_after_kill.len(),
        WALLETS,
        "every wallet was served after the kill"
    );
    assert!(
        slowest < Duration::from_secs(5),
        "the last wallet was served {slowest:?} after the kill"
    );
    let report = verify(
        &pool,
        &VerifyConfig {
            page_size: 97,
            listed_max: 20,
            progress: replay_tool::progress::ProgressMode::Quiet,
        },
    )
    .await
    .unwrap();
    assert!(report.ok, "{:?}", report.listed);
    println!(
        "killed instance: {} commands acknowledged, {} retries ({} answered 503), every wallet served again within {slowest:?}, lost 0, doubled 0",
        seen.acknowledged.len(),
        seen.retries,
        seen.refused_503
    );
}
