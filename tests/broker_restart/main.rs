//! Restarts the shared RabbitMQ while commands flow: the relay and the workers reconnect
//! on their own, and the read models still end equal to the log with nothing counted
//! twice. A test binary of its own, so no other test sees the broker go away.
#![forbid(unsafe_code)]

use std::process::Command;
use std::sync::Arc;

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

#[sqlx::test(migrator = "MIGRATOR")]
async fn read_models_survive_a_rabbitmq_restart(pool: PgPool) {
    let mut side = ReadSide::new(pool.clone(), &unique_prefix("brokerrestart"), 2).await;
    side.start();
    let store: Arc<dyn WalletStore> = Arc::new(CqrsWalletStore::new(pool.clone()));
    let wallets = open_funded(store.as_ref(), "brokerrestart", 10).await;
    let load = {
        let (store, wallets) = (store.clone(), wallets.clone());
        tokio::spawn(async move { run_mixed(store, &wallets, 1_500, 2, 9).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    tokio::task::spawn_blocking(|| services("restart-rabbitmq"))
        .await
        .unwrap();
    load.await.unwrap();
    run_mixed(store, &wallets, 200, 2, 10).await;
    side.wait_projected().await;
    side.assert_matches_log().await;
    let sessions = side
        .stats
        .sessions
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(
        sessions >= 2,
        "the worker reconnected after the restart ({sessions} sessions)"
    );
    side.teardown().await;
}
