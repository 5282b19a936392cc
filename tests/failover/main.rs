//! Failover on the high-availability topology of `scripts/ha.sh` (issue 17): three
//! PostgreSQL nodes under Patroni behind HAProxy, Redis with Sentinel, a three-node
//! RabbitMQ cluster. Each test runs steady mixed load through the HTTP API (every
//! acknowledged answer recorded, every 503 or broken connection retried under the same
//! transaction id), kills a node with SIGKILL as a machine dies, and proves that every
//! acknowledged command is in the log exactly once with the answer it gave, that the read
//! models end equal to the log, and that `verify` is clean. Each prints its figures. The
//! primary's test also restores a copy of the cluster to a time after the failover
//! (`scripts/backup.sh --target ha`), from the WAL the new primary archived.
//!
//! Needs the topology up and the environment pointing at it:
//! `scripts/ha.sh up && eval "$(scripts/ha.sh env)"`; `scripts/test.sh` does that when
//! `BETLEDGER_HA_TESTS=0` says otherwise (`cargo test --test failover -- --ignored`). A bare
//! `cargo test` shows them as ignored. They kill shared nodes, so they take turns.
#![forbid(unsafe_code)]

use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use betledger_tests::acked::{
    check_log, check_restored, open_funded, run_load, Bases, Seen, Until,
};
use betledger_tests::backup;
use betledger_tests::readside::ReadSide;
use betledger_tests::{spawn_app_reading, unique_prefix, verify_clean, TestApp, WRITER_TOKEN};
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;
const WALLETS: usize = 12;
const CLIENTS: usize = 6;
/// How long one command may take to be acknowledged, retries included: longer than a
/// PostgreSQL failover (Patroni's ttl of 10 s, plus HAProxy's checks).
const PATIENCE: Duration = Duration::from_secs(40);

/// The tests kill shared nodes: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn ha_blocking(args: &[&str]) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/ha.sh");
    let out = Command::new("bash")
        .arg(script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("running {script} {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{script} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn ha(args: &[&str]) -> String {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        ha_blocking(&args.iter().map(String::as_str).collect::<Vec<_>>())
    })
    .await
    .unwrap()
}

/// What `scripts/ha.sh primary` says.
async fn leaders() -> serde_json::Value {
    serde_json::from_str(&ha(&["primary"]).await).expect("ha.sh primary prints JSON")
}

/// One test's database on the cluster, its API in-process, its relay and workers, and
/// its funded wallets.
struct Rig {
    database: String,
    admin: PgPool,
    pool: PgPool,
    app: TestApp,
    side: ReadSide,
    wallets: Vec<String>,
    http: reqwest::Client,
    bases: Bases,
}

impl Rig {
    async fn new(name: &str) -> Rig {
        betledger_tests::quiet_tracing();
        let url = std::env::var("BETLEDGER_DATABASE_URL").unwrap_or_default();
        let expected = ha(&["env"]).await;
        assert!(
            !url.is_empty() && expected.contains(&format!("BETLEDGER_DATABASE_URL={url}\n")),
            "the environment does not point at the HA topology (BETLEDGER_DATABASE_URL={url:?}): \
             run `scripts/ha.sh up && eval \"$(scripts/ha.sh env)\"` first"
        );
        // Whatever an earlier test killed comes back, as a replica, and replication is
        // whole again before anything is killed.
        ha(&["up"]).await;
        let admin = PgPoolOptions::new()
            .max_connections(2)
            .connect(&url)
            .await
            .expect("the cluster's primary through HAProxy");
        let database = format!(
            "failover_{name}_{}",
            &uuid::Uuid::new_v4().simple().to_string()[..8]
        );
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&admin)
            .await
            .unwrap();
        let pool = PgPoolOptions::new()
            .max_connections(12)
            .acquire_timeout(Duration::from_secs(3))
            .connect(&format!("{}/{database}", url.rsplit_once('/').unwrap().0))
            .await
            .unwrap();
        MIGRATOR.run(&pool).await.unwrap();
        let prefix = unique_prefix(&format!("failover-{name}"));
        let mut side = ReadSide::new(pool.clone(), &prefix, 4).await;
        side.start();
        let app = spawn_app_reading(pool.clone(), &prefix).await;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap();
        let base = format!("http://{}", app.addr);
        let wallets = open_funded(&http, &base, WRITER_TOKEN, name, WALLETS).await;
        Rig {
            database,
            admin,
            pool,
            app,
            side,
            wallets,
            http,
            bases: Arc::new(Mutex::new(vec![base])),
        }
    }

    /// How many of `wallets` have a read model behind the log.
    async fn behind(&self, wallets: &[String]) -> usize {
        let mut behind = 0;
        for wallet in wallets {
            let head: i64 =
                sqlx::query_scalar("SELECT max(sequence) FROM events WHERE aggregate_id = $1")
                    .bind(wallet)
                    .fetch_one(&self.pool)
                    .await
                    .unwrap();
            let held = self
                .side
                .applier
                .last_sequence(wallet.parse().unwrap())
                .await
                .unwrap_or(0);
            if held != head as u64 {
                behind += 1;
            }
        }
        behind
    }

    /// Load over `wallets` until `until`.
    fn load_until(&self, wallets: Vec<String>, until: Until) -> tokio::task::JoinHandle<Seen> {
        tokio::spawn(run_load(
            self.http.clone(),
            self.bases.clone(),
            WRITER_TOKEN,
            wallets,
            CLIENTS,
            until,
            PATIENCE,
        ))
    }

    /// Load over `wallets` (all of the rig's when `None`) for `length`.
    fn load(
        &self,
        wallets: Option<Vec<String>>,
        length: Duration,
    ) -> tokio::task::JoinHandle<Seen> {
        tokio::spawn(run_load(
            self.http.clone(),
            self.bases.clone(),
            WRITER_TOKEN,
            wallets.unwrap_or_else(|| self.wallets.clone()),
            CLIENTS,
            Instant::now() + length,
            PATIENCE,
        ))
    }

    /// The checks every scenario ends with, and its figures on one line.
    /// `faults_done`: when the last fault of the scenario was over (a node restarted): the
    /// read models' catch-up is timed from it or from the load's end, whichever is later.
    async fn finish(
        self,
        scenario: &str,
        seen: &[&Seen],
        wallets: &[&[String]],
        killed: Instant,
        faults_done: Instant,
    ) {
        let mut lost = 0;
        let mut doubled = 0;
        for (seen, wallets) in seen.iter().zip(wallets) {
            let checked = check_log(&self.pool, seen, wallets).await;
            lost += checked.lost;
            doubled += checked.doubled;
        }
        let load_ended = seen
            .iter()
            .filter_map(|s| s.ended)
            .max()
            .expect("the load ended")
            .max(faults_done);
        self.side.wait_projected().await;
        self.side.assert_matches_log().await;
        let converged = load_ended.elapsed();
        let reconciled = self.side.reconcile(false).await;
        assert!(
            reconciled.ok && reconciled.differences == 0,
            "reconcile after {scenario}: {reconciled:?}"
        );
        verify_clean(&self.pool, &format!("after {scenario}")).await;
        let (gap, recovered) = seen[0].longest_silence_from(killed);
        println!(
            "failover: {scenario}: longest time without an acknowledgement from the kill on {:.2} s (it ended {:.2} s after the kill); \
             {} acknowledged, {} answered 503, {} unanswered, {} retries; lost {lost}, doubled {doubled}; \
             read models equal to the log {:.2} s after the load and the faults ended",
            gap.as_secs_f64(),
            recovered.duration_since(killed).as_secs_f64(),
            seen.iter().map(|s| s.acknowledged.len()).sum::<usize>(),
            seen.iter().map(|s| s.refused_503).sum::<u64>(),
            seen.iter().map(|s| s.no_answer).sum::<u64>(),
            seen.iter().map(|s| s.retries).sum::<u64>(),
            converged.as_secs_f64(),
        );
        self.side.teardown().await;
        self.app.stop().await;
        self.pool.close().await;
        sqlx::query(&format!("DROP DATABASE {} WITH (FORCE)", self.database))
            .execute(&self.admin)
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "kills nodes of the HA topology: scripts/test.sh runs it (BETLEDGER_HA_TESTS=0 skips)"]
async fn the_redis_master_killed_with_writes_its_replica_missed_converges() {
    let _turn = SERIAL.lock().await;
    let rig = Rig::new("redis").await;
    // Half the wallets get load throughout; the other half only until the kill, so
    // nothing but the heal after the failover can bring their read models back.
    let (steady, quiet) = rig.wallets.split_at(WALLETS / 2);
    let (steady, quiet) = (steady.to_vec(), quiet.to_vec());
    let before = leaders().await;
    let port = before["redis_master_port"].to_string();
    let load = rig.load(Some(steady.clone()), Duration::from_secs(16));
    let quiet_load = rig.load(Some(quiet.clone()), Duration::from_secs(5));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // The replica falls behind: stopped, and cut off by the master, so what the master
    // applies now is on the master alone.
    ha(&["pause", "redis-replica"]).await;
    let cut = Command::new("redis-cli")
        .args(["-p", &port, "client", "kill", "type", "replica"])
        .output()
        .expect("redis-cli runs");
    assert!(cut.status.success(), "cutting the replica off: {cut:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let killed = Instant::now();
    ha(&["kill", "redis-master"]).await;
    ha(&["resume", "redis-replica"]).await;
    let resumed = Instant::now();
    let promoted = loop {
        let now = leaders().await;
        if now["redis_master"] != before["redis_master"] && now["redis_master"] != "redis0" {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "Sentinel promoted no replica"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let quiet_seen = quiet_load.await.unwrap();
    // The quiet wallets get no event after the kill: only the heal brings their read
    // models back to the log.
    let behind_at_promotion = rig.behind(&quiet).await;
    let healed_after = loop {
        if rig.behind(&quiet).await == 0 {
            break killed.elapsed();
        }
        assert!(
            killed.elapsed() < Duration::from_secs(60),
            "the quiet wallets' read models were not healed: {} behind",
            rig.behind(&quiet).await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let seen = load.await.unwrap();
    let recent = &rig.side.stats.recent;
    let failovers = recent.failovers.load(std::sync::atomic::Ordering::Relaxed);
    let healed = recent.healed.load(std::sync::atomic::Ordering::Relaxed);
    assert!(failovers >= 1, "the worker saw the Redis server change");
    assert!(
        healed >= 1,
        "the failover lost writes (the replica was cut off) and the heal re-projected them"
    );
    println!(
        "failover: Redis: Sentinel promoted the replica {:.2} s after the kill; the worker healed {healed} wallets from the log; \
         of the {} wallets without traffic after the kill, {behind_at_promotion} were behind at the promotion, and all equal to the log {:.2} s after the kill",
        promoted.as_secs_f64(),
        quiet.len(),
        healed_after.as_secs_f64(),
    );
    rig.finish(
        "Redis master killed, its replica cut off before",
        &[&seen, &quiet_seen],
        &[&steady, &quiet],
        killed,
        resumed,
    )
    .await;
    ha(&["up"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "kills nodes of the HA topology: scripts/test.sh runs it (BETLEDGER_HA_TESTS=0 skips)"]
async fn rabbitmq_nodes_killed_and_restarted_lose_and_double_nothing() {
    let _turn = SERIAL.lock().await;
    let rig = Rig::new("rabbit").await;
    let sessions_before = rig
        .side
        .stats
        .sessions
        .load(std::sync::atomic::Ordering::Relaxed);
    let load = rig.load(None, Duration::from_secs(40));
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Every node goes down once, so whichever the relay and the workers are on, they
    // lose it: one killed, then the other two restarted in turn (a quorum of two stays).
    let killed = Instant::now();
    ha(&["kill", "rabbit1"]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    ha(&["up"]).await;
    ha(&["restart", "rabbit2"]).await;
    ha(&["restart", "rabbit3"]).await;
    let restarted = Instant::now();
    let seen = load.await.unwrap();
    let sessions = rig
        .side
        .stats
        .sessions
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sessions > sessions_before,
        "the workers lost their node and reconnected ({sessions_before} -> {sessions} sessions)"
    );
    let wallets = rig.wallets.clone();
    rig.finish(
        "RabbitMQ rabbit1 killed, rabbit2 and rabbit3 restarted",
        &[&seen],
        &[&wallets],
        killed,
        restarted,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "kills nodes of the HA topology: scripts/test.sh runs it (BETLEDGER_HA_TESTS=0 skips)"]
async fn the_relay_killed_during_a_postgres_failover_loses_nothing() {
    let _turn = SERIAL.lock().await;
    let mut rig = Rig::new("relay").await;
    let load = rig.load(None, Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = Instant::now();
    ha(&["kill", "pg-primary"]).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    rig.side.kill_relay().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    // A new relay starts while the cluster has no primary yet; it retries until one.
    rig.side.start_relay();
    let relay_back = Instant::now();
    let seen = load.await.unwrap();
    let wallets = rig.wallets.clone();
    rig.finish(
        "relay killed during a PostgreSQL failover",
        &[&seen],
        &[&wallets],
        killed,
        relay_back,
    )
    .await;
    ha(&["up"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "kills nodes of the HA topology: scripts/test.sh runs it (BETLEDGER_HA_TESTS=0 skips)"]
/// The primary killed under load: nothing acknowledged is lost. Then, on the new primary, a
/// restore to a time after the failover: the base backup was taken on the old primary, so
/// the restore replays the WAL the new primary archived itself.
async fn the_postgres_primary_killed_loses_nothing_and_a_restore_after_it_uses_the_new_primarys_archive(
) {
    let _turn = SERIAL.lock().await;
    let rig = Rig::new("pg").await;
    // A base backup before the failover, on the old primary's timeline.
    let full = backup::run_json("ha", &["full"]).await;
    let (early, late) = rig.wallets.split_at(WALLETS / 2);
    let (early, late) = (early.to_vec(), late.to_vec());
    let before = leaders().await;
    // Load across the kill of the primary, until it is acknowledged through the new one.
    let across = rig.load(Some(early.clone()), Duration::from_secs(16));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed = Instant::now();
    ha(&["kill", "pg-primary"]).await;
    let across_seen = across.await.unwrap();
    let after = leaders().await;
    assert_ne!(
        before["postgres_leader"], after["postgres_leader"],
        "a replica was promoted"
    );
    assert!(
        matches!(
            after["postgres_leader"].as_str(),
            Some("pg1" | "pg2" | "pg3")
        ),
        "a node leads: {after}"
    );
    // Load on the new primary alone; T in its middle.
    let stop = Arc::new(AtomicBool::new(false));
    let on_new = rig.load_until(late.clone(), Until::Raised(stop.clone()));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let t_before = Instant::now();
    let t = chrono::Utc::now();
    let t_after = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let on_new_seen = on_new.await.unwrap();
    // What the new primary wrote after T reaches the archive, so recovery finds a commit
    // after T to stop at.
    backup::run("ha", &["check"]).await;
    let target = t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    // A copy an earlier run left (a test that failed midway) would hold the port.
    backup::run("ha", &["discard", "--all"]).await;
    let restored = backup::run_json("ha", &["restore", "--to", &target]).await;
    let copy = PgPoolOptions::new()
        .max_connections(2)
        .connect(&format!(
            "postgres://betledger@127.0.0.1:{}/{}",
            restored["port"], rig.database
        ))
        .await
        .expect("the restored copy");
    // Everything acknowledged across the failover came back (all before T) ...
    let across_found = check_restored(&copy, &across_seen, &early, t_before, t_after).await;
    assert_eq!(across_found.kept, across_seen.acknowledged.len());
    // ... and the new primary's commands before T, from the WAL it archived itself.
    let on_new_found = check_restored(&copy, &on_new_seen, &late, t_before, t_after).await;
    assert!(on_new_found.kept > 20, "{on_new_found:?}");
    assert!(on_new_found.undone > 10, "{on_new_found:?}");
    let timeline: i32 = sqlx::query_scalar("SELECT timeline_id FROM pg_control_checkpoint()")
        .fetch_one(&copy)
        .await
        .unwrap();
    verify_clean(&copy, "on the restored copy").await;
    copy.close().await;
    println!(
        "failover: restore after {} was killed and {} promoted: base backup {} s; restore to T {} s (timeline {timeline}); \
         {} acknowledged across the failover kept, {} on the new primary before T kept, {} after T undone",
        before["postgres_leader"],
        after["postgres_leader"],
        full["seconds"],
        restored["seconds"],
        across_found.kept,
        on_new_found.kept,
        on_new_found.undone
    );
    backup::run("ha", &["discard", restored["data_dir"].as_str().unwrap()]).await;
    rig.finish(
        &format!(
            "PostgreSQL primary {} killed, {} promoted",
            before["postgres_leader"], after["postgres_leader"]
        ),
        &[&across_seen, &on_new_seen],
        &[&early, &late],
        killed,
        killed,
    )
    .await;
    ha(&["up"]).await;
}
