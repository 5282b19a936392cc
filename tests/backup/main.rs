//! The restore drill (issue 33), on a PostgreSQL cluster of its own (`scripts/backup.sh
//! --target drill`, 127.0.0.1:55442) with WAL archived by pgBackRest, and the shared Redis
//! and RabbitMQ under names of its own. Run by `scripts/backup.sh drill` (from
//! `scripts/test.sh`); a bare `cargo test` shows it as ignored.
//!
//! 1. Load through the HTTP API with every acknowledged answer recorded; a full backup
//!    taken while it runs; more load; the instant T marked; more load, with the projection
//!    workers stopped so that events written after T wait in the queues.
//! 2. The disaster: the API and relay stopped, PostgreSQL killed and its data folder
//!    deleted.
//! 3. `backup.sh restore --to T --replace`; then what docs/operate/backup.md tells the
//!    operator: `verify`, the queues purged, `rebuild`, `reconcile`, the engine started.
//! 4. Checks: every command acknowledged before T is in the log exactly once with the
//!    answer it gave; none first sent after T is; verify and reconcile are clean; a
//!    provider's retry of a command acknowledged before T gets the same answer again, and
//!    one of a command after T is carried out anew; the read models, fed again by the
//!    relay from its restored checkpoint, end equal to the log.
#![forbid(unsafe_code)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use betledger_tests::acked::{check_restored, open_funded, run_load, Until};
use betledger_tests::readside::ReadSide;
use betledger_tests::{backup, spawn_app_reading, unique_prefix, verify_clean, WRITER_TOKEN};
use replay_tool::progress::ProgressMode;
use serde_json::json;
use sqlx::postgres::PgPoolOptions;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;
const TARGET: &str = "drill";
const WALLETS: usize = 8;
const CLIENTS: usize = 4;

fn drill_url() -> String {
    let port = std::env::var("BETLEDGER_DRILL_PG_PORT").unwrap_or_else(|_| "55442".into());
    format!("postgres://betledger@127.0.0.1:{port}/betledger")
}

async fn connect() -> PgPool {
    PgPoolOptions::new()
        .max_connections(10)
        .acquire_timeout(Duration::from_secs(5))
        .connect(&drill_url())
        .await
        .unwrap_or_else(|e| panic!("the drill's PostgreSQL at {}: {e}", drill_url()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a PostgreSQL of its own, destroyed and restored: scripts/backup.sh drill runs it"]
async fn a_restore_to_t_keeps_every_answer_acknowledged_before_t_and_nothing_after() {
    let drill_started = Instant::now();
    betledger_tests::quiet_tracing();
    backup::run(TARGET, &["fresh"]).await;
    let pool = connect().await;
    MIGRATOR.run(&pool).await.unwrap();
    let prefix = unique_prefix("drill");
    let mut side = ReadSide::new(pool.clone(), &prefix, 2).await;
    side.start();
    let app = spawn_app_reading(pool.clone(), &prefix).await;
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let wallets = open_funded(&http, &base, WRITER_TOKEN, "drill", WALLETS).await;

    // 1. Load throughout; a full backup under it; T; the workers stopped after T.
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(run_load(
        http.clone(),
        Arc::new(Mutex::new(vec![base.clone()])),
        WRITER_TOKEN,
        wallets.clone(),
        CLIENTS,
        Until::Raised(stop.clone()),
        Duration::from_secs(20),
    ));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let full = backup::run_json(TARGET, &["full"]).await;
    assert_eq!(full["backup"]["kind"], "full", "{full}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = Instant::now();
    let t = chrono::Utc::now();
    let after = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    side.stop_workers().await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = load.await.unwrap();
    // The disk is lost below, with the WAL segment being written: the commits after T must
    // have reached the archive for recovery to stop at T (it stops at the first commit after
    // it). Within `archive_timeout` that happens by itself; `check` switches at once.
    backup::run(TARGET, &["check"]).await;
    let events_before_disaster: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();

    // 2. The disaster.
    app.stop().await;
    side.stop().await;
    pool.close().await;
    backup::run(TARGET, &["destroy"]).await;

    // 3. The restore, and the runbook's steps.
    let target = t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    let restored = backup::run_json(TARGET, &["restore", "--to", &target, "--replace"]).await;
    assert_eq!(restored["replaced"], true, "{restored}");
    let pool = connect().await;
    let found = check_restored(&pool, &seen, &wallets, before, after).await;
    assert!(found.kept > 50, "too little load before T: {found:?}");
    assert!(found.undone > 10, "too little load after T: {found:?}");
    let events = verify_clean(&pool, "after the restore").await;
    assert!(
        (events as i64) < events_before_disaster,
        "the restore undid the events after T ({events} of {events_before_disaster})"
    );
    // The relay's checkpoint came back with the log it points into: at or below its head.
    let checkpoint = projections::relay::checkpoint(&pool, &prefix)
        .await
        .unwrap();
    let head: i64 = sqlx::query_scalar("SELECT max(global_position) FROM events")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert!(
        checkpoint.global_position <= head,
        "checkpoint {} above the restored head {head}",
        checkpoint.global_position
    );
    let mut side = ReadSide::new(pool.clone(), &prefix, 2).await;
    let (connection, channel) = side.amqp().await;
    let purged = side.topology.purge(&channel).await.unwrap();
    let _ = connection.close().await;
    let purged: u32 = purged.iter().map(|(_, n)| n).sum();
    assert!(
        purged > 0,
        "the queues held messages of events written after T, which the restore undid"
    );
    let rebuilt = replay_tool::rebuild::rebuild(
        &pool,
        &side.redis,
        &side.keys,
        &replay_tool::rebuild::RebuildConfig {
            grace: Duration::from_millis(100),
            progress: ProgressMode::Quiet,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    assert_eq!(rebuilt.events, events, "rebuild folded the restored log");
    let reconciled = side.reconcile(false).await;
    assert!(reconciled.ok, "reconcile after the rebuild: {reconciled:?}");

    // 4. The engine again: a retry of a command acknowledged before T answers as it did;
    // one of a command after T is carried out now; the read side resumes from its
    // checkpoint and ends equal to the log.
    side.start();
    let app = spawn_app_reading(pool.clone(), &prefix).await;
    let (kept_tx, kept) = seen
        .acknowledged
        .iter()
        .find(|(_, a)| a.at < before && a.cents > 0)
        .expect("a deposit acknowledged before T");
    let again = app
        .post(
            &format!("/v1/wallets/{}/deposits", kept.wallet),
            json!({"transaction_id": kept_tx, "amount": "1.00"}),
        )
        .await;
    assert_eq!(again.status, 200, "{:?}", again.body);
    assert_eq!(again.body["sequence"].as_u64(), Some(kept.sequence));
    assert_eq!(
        again.body["balance"]["available"].as_str(),
        Some(kept.available.as_str())
    );
    let (lost_tx, lost) = seen
        .acknowledged
        .iter()
        .find(|(_, a)| a.sent > after && a.cents > 0)
        .expect("a deposit sent after T");
    let retried = app
        .post(
            &format!("/v1/wallets/{}/deposits", lost.wallet),
            json!({"transaction_id": lost_tx, "amount": "1.00"}),
        )
        .await;
    assert_eq!(retried.status, 200, "{:?}", retried.body);
    for (i, wallet) in wallets.iter().enumerate() {
        app.deposit(wallet, &format!("after-restore-{i}"), "2.50")
            .await;
    }
    side.wait_projected().await;
    side.assert_matches_log().await;
    let reconciled = side.reconcile(false).await;
    assert!(
        reconciled.ok,
        "reconcile after new commands: {reconciled:?}"
    );
    verify_clean(&pool, "after new commands").await;
    println!(
        "drill: full backup {} s ({} bytes in the repository for a {}-byte database); restore to T {} s; \
         {} acknowledged before T kept, {} sent after T undone, {} in flight at T ({} kept); \
         {} queued messages purged; rebuild of {} events; whole drill {:.1} s",
        full["seconds"],
        full["backup"]["repository_bytes"],
        full["backup"]["size_bytes"],
        restored["seconds"],
        found.kept,
        found.undone,
        found.in_flight,
        found.in_flight_kept,
        purged,
        rebuilt.events,
        drill_started.elapsed().as_secs_f64()
    );
    app.stop().await;
    side.teardown().await;
    pool.close().await;
    backup::run(TARGET, &["stop"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a PostgreSQL of its own, restored over itself: scripts/backup.sh drill runs it"]
async fn a_restore_of_a_running_cluster_lists_the_commands_it_undid() {
    backup::run(TARGET, &["fresh"]).await;
    let pool = connect().await;
    MIGRATOR.run(&pool).await.unwrap();
    let app = betledger_tests::spawn_app(pool.clone()).await;
    let base = format!("http://{}", app.addr);
    let http = reqwest::Client::new();
    let wallets = open_funded(&http, &base, WRITER_TOKEN, "undone", 4).await;
    backup::run_json(TARGET, &["full"]).await;
    let stop = Arc::new(AtomicBool::new(false));
    let load = tokio::spawn(run_load(
        http.clone(),
        Arc::new(Mutex::new(vec![base])),
        WRITER_TOKEN,
        wallets.clone(),
        2,
        Until::Raised(stop.clone()),
        Duration::from_secs(20),
    ));
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = chrono::Utc::now();
    let after = Instant::now();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    let seen = load.await.unwrap();
    // No `check` here: the restore switches and archives the running cluster's last WAL
    // segment itself before stopping it.
    let logged = |pool: PgPool| async move {
        let txs: Vec<String> = sqlx::query_scalar(
            "SELECT metadata->>'transaction_id' FROM events
              WHERE metadata ? 'transaction_id' AND metadata->>'transaction_id' <> 'fund'",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        txs.into_iter()
            .collect::<std::collections::BTreeSet<String>>()
    };
    let before_restore = logged(pool.clone()).await;
    app.stop().await;
    pool.close().await;

    // A bad write, say: the cluster is alive when it is restored over.
    let target = t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    let restored = backup::run_json(TARGET, &["restore", "--to", &target, "--replace"]).await;
    assert!(restored["moved_aside"].is_string(), "{restored}");
    let file = restored["undone_file"]
        .as_str()
        .expect("a list of what was undone");
    let listed: std::collections::BTreeSet<String> = std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split(',').nth(4).unwrap().to_string())
        .filter(|tx| tx != "fund")
        .collect();
    assert_eq!(
        restored["undone_events"].as_u64(),
        Some(listed.len() as u64),
        "{restored}"
    );
    let pool = connect().await;
    let kept = logged(pool.clone()).await;
    let undone: std::collections::BTreeSet<String> =
        before_restore.difference(&kept).cloned().collect();
    assert!(!undone.is_empty(), "the load went on after T");
    assert_eq!(
        listed, undone,
        "the list names exactly the commands the restore undid"
    );
    for (tx, a) in &seen.acknowledged {
        if a.sent > after {
            assert!(listed.contains(tx), "{tx}, sent after T, is listed");
        }
    }
    println!(
        "drill: a restore over the running cluster undid {} commands, each listed in {file}",
        listed.len()
    );
    pool.close().await;
    backup::run(TARGET, &["stop"]).await;
}
