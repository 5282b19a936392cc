//! Restarts the shared RabbitMQ while commands flow, then the shared PostgreSQL: the relay
//! and the workers reconnect on their own, and the read models still end equal to the log
//! with nothing counted twice. A test binary of its own with one test, so no other test
//! sees a service go away and the two restarts never overlap.
#![forbid(unsafe_code)]

use std::process::Command;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use betledger_tests::readside::ReadSide;
use betledger_tests::unique_prefix;
use betledger_tests::workload::{open_funded, run_mixed};
use eventstore::{CqrsWalletStore, WalletStore};
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

fn services(action: &str) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/services.sh");
    let status = Command::new("bash")
        .arg(script)
        .arg(action)
        .status()
        .unwrap_or_else(|e| panic!("running {script} {action}: {e}"));
    assert!(status.success(), "{script} {action} failed: {status}");
}

async fn restart(action: &'static str) {
    tokio::task::spawn_blocking(move || services(action))
        .await
        .unwrap();
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn read_models_survive_rabbitmq_and_postgres_restarts(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("restarts"), 2).await;
    side.start();
    let store: Arc<dyn WalletStore> = Arc::new(CqrsWalletStore::new(pool.clone()));
    let wallets = open_funded(store.as_ref(), "restarts", 10).await;

    // RabbitMQ goes down while commands are being written (the write path needs only
    // PostgreSQL, so commands go on; the read side catches up once the broker is back).
    let load = {
        let (store, wallets) = (store.clone(), wallets.clone());
        tokio::spawn(async move { run_mixed(store, &wallets, 1_500, 2, 9).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    restart("restart-rabbitmq").await;
    load.await.unwrap();
    run_mixed(store.clone(), &wallets, 200, 2, 10).await;
    side.wait_projected().await;
    side.assert_matches_log().await;
    let sessions = side.stats.sessions.load(Ordering::Relaxed);
    assert!(
        sessions >= 2,
        "the worker reconnected after the broker restart ({sessions} sessions)"
    );

    // PostgreSQL goes down between commands (the relay's connections, its advisory lock
    // and LISTEN all die with it).
    restart("restart-postgres").await;
    let fresh = betledger_tests::reopen(&pool).await;
    let store: Arc<dyn WalletStore> = Arc::new(CqrsWalletStore::new(fresh.clone()));
    run_mixed(store, &wallets, 300, 2, 11).await;
    side.wait_projected().await;
    side.assert_matches_log().await;
    side.teardown().await;
}
