//! The memory a cached idle wallet costs in the batched path (`--paths cache-memory`).

use std::sync::Arc;
use std::time::Duration;

use domain::{TransactionId, WalletCommand};
use eventstore::{BatchedWalletStore, WalletStore};
use rust_decimal::Decimal;
use sqlx::PgPool;

use crate::alloc::{live_bytes, rss_bytes};
use crate::drive::drive;
use crate::targets::Engine;
use crate::{batch_config, prewrite, Args, Phase};

/// The memory a cached idle wallet costs in the batched path: the mixed workload runs for
/// `--seconds` to give the wallets a history, then a fresh store (a restarted process)
/// loads every wallet into its cache with one deposit each, and the growth of the live
/// heap (bytes allocated and not freed) is divided by the wallets cached. The process's
/// resident memory is printed too; it moves less, as the allocator reuses what the first
/// store freed.
pub async fn cache_memory(args: &Args, pool: &PgPool) -> anyhow::Result<Phase> {
    print!("cache-memory: writing {} funded wallets ... ", args.wallets);
    let wallets = prewrite(pool, args.wallets).await?;
    println!("done");
    let store = Arc::new(BatchedWalletStore::new(pool.clone(), batch_config(args)));
    let history = drive(
        args,
        Arc::new(Engine(store.clone())),
        Arc::new(wallets.clone()),
        0.0,
    )
    .await;
    drop(store);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let fresh = Arc::new(BatchedWalletStore::new(pool.clone(), batch_config(args)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes()?;
    let live_before = live_bytes();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in wallets.chunks(wallets.len().div_ceil(args.concurrency.max(1))) {
        let (store, chunk) = (fresh.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for (n, wallet) in chunk.iter().enumerate() {
                let command = WalletCommand::Deposit {
                    transaction_id: TransactionId::new(format!("warm-{wallet}-{n}")).expect("id"),
                    amount: Decimal::new(1, 2),
                    currency: None,
                };
                let _ = store.execute(*wallet, command).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let after = rss_bytes()?;
    let cached = fresh.cached_wallets();
    let per_wallet = (live_bytes() - live_before) as f64 / cached.max(1) as f64;
    println!(
        "cache-memory: {} commands of history ({} events in the log, {:.1} per wallet), then \
         {cached} wallets cached: {per_wallet:.0} bytes of live heap per cached idle wallet \
         (resident memory {:.1} MiB -> {:.1} MiB)",
        history.ops,
        events,
        events as f64 / wallets.len() as f64,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    Ok(Phase::Memory(per_wallet, cached))
}
