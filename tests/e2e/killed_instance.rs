//! Three API processes in a cluster on one database under load, one killed with SIGKILL
//! (issue 13): every acknowledged command is in the log exactly once with the answer it
//! gave, each wallet's balance is what the acknowledged commands make it, the killed
//! instance's wallets are served again within 5 s, and `verify` is clean. Real processes
//! (`target/debug/betledger-api`, built here if needed), so the kill is a real SIGKILL.

use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use betledger_tests::acked::{check_log, expected, open_funded, run_load, Bases};
use replay_tool::verify::{verify, VerifyConfig};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;
const TOKEN: &str = "killed-instance-token";
const WALLETS: usize = 12;

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

/// A free port below Linux's ephemeral range (32768-60999) and away from the HA
/// topology's ports (23501-28443): a port the kernel hands out (bind to 0) can be taken, in
/// the moment before the instance binds it, as the local port of any test's outgoing
/// connection (seen: "Address already in use").
fn free_port() -> u16 {
    let start = 12_000 + (uuid::Uuid::new_v4().as_u128() % 8_000) as u16;
    (0..8_000)
        .map(|i| 12_000 + (start - 12_000 + i) % 8_000)
        .find(|port| std::net::TcpListener::bind(("127.0.0.1", *port)).is_ok())
        .expect("a free port between 12000 and 19999")
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
    let errors = std::env::temp_dir().join(format!("{prefix}-errors"));
    let start = |n: usize| {
        let port = free_port();
        let log = errors.with_extension(n.to_string());
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
            .stderr(std::fs::File::create(&log).expect("a file for its errors"))
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
    for (n, i) in instances.iter_mut().enumerate() {
        let ready = async {
            loop {
                if let Ok(Some(status)) = i.child.try_wait() {
                    let log = errors.with_extension(n.to_string());
                    panic!(
                        "betledger-api ({}) exited with {status} before it was ready: {}\n\
                         (a target/debug/betledger-api older than the migrations? \
                         `cargo build --bin betledger-api`)",
                        binary.display(),
                        std::fs::read_to_string(&log).unwrap_or_default()
                    );
                }
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
    let wallets = open_funded(&http, &bases[0], TOKEN, "k", WALLETS).await;

    // The load: each client sends deposits and withdrawals round-robin over the live
    // instances; a 503 or a dropped connection is retried under the same id, elsewhere.
    let live: Bases = Arc::new(Mutex::new(bases.clone()));
    let load = tokio::spawn(run_load(
        http.clone(),
        live.clone(),
        TOKEN,
        wallets.clone(),
        6,
        Instant::now() + Duration::from_secs(8),
        Duration::from_secs(10),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    // SIGKILL the third instance mid-load.
    let victim = instances.pop().unwrap();
    live.lock().unwrap().retain(|b| *b != victim.base);
    let kill_time = Instant::now();
    drop(victim);
    let seen = load.await.unwrap();

    // Every acknowledged command is in the log once, with the answer it gave; every
    // command was retried until acknowledged, so the log holds exactly those (lost 0) and
    // nothing twice (doubled 0).
    let checked = check_log(&pool, &seen, &wallets).await;
    // And a surviving instance answers each balance the acknowledged commands make.
    for (wallet, (available, _)) in expected(&seen, &wallets) {
        let v: serde_json::Value = http
            .get(format!("{}/v1/wallets/{wallet}", bases[0]))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let answered: rust_decimal::Decimal =
            v["balance"]["available"].as_str().unwrap().parse().unwrap();
        assert_eq!(
            answered, available,
            "{wallet}: the balance a survivor answers"
        );
    }
    // Each wallet was served again soon after the kill.
    let served = seen.first_ack_per_wallet_after(kill_time);
    let slowest = served
        .values()
        .map(|t| t.duration_since(kill_time))
        .max()
        .unwrap_or_default();
    assert_eq!(
        served.len(),
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
        "killed instance: {} commands acknowledged, {} retries ({} answered 503), every wallet served again within {slowest:?}, lost {}, doubled {}",
        seen.acknowledged.len(),
        seen.retries,
        seen.refused_503,
        checked.lost,
        checked.doubled
    );
}
