//! The batched write path's own guarantees, beyond the whole suite that `scripts/test.sh`
//! also runs through it: two engine instances on one database hammering the same wallets
//! end with a log and balances equal to a reference model, and every acknowledged command
//! is in the log exactly once.

use std::collections::HashMap;
use std::sync::Arc;

use betledger_tests::readside::fold_log;
use betledger_tests::reopen;
use betledger_tests::workload::Rng;
use domain::{Currency, PlayerId, TransactionId, WalletCommand, WalletId};
use eventstore::{BatchConfig, BatchedWalletStore, ExecuteError, WalletStore};
use rust_decimal::Decimal;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

#[sqlx::test(migrator = "MIGRATOR")]
async fn two_instances_on_the_same_wallets_match_a_reference_model(pool: PgPool) {
    let config = BatchConfig {
        shards: 2,
        ..BatchConfig::default()
    };
    let one: Arc<dyn WalletStore> = Arc::new(BatchedWalletStore::new(pool.clone(), config.clone()));
    let two: Arc<dyn WalletStore> = Arc::new(BatchedWalletStore::new(reopen(&pool).await, config));
    let wallets: Vec<WalletId> = (0..5)
        .map(|i| WalletId::for_player(&PlayerId::new(format!("p{i}")).unwrap(), Currency::Eur))
        .collect();
    for (i, w) in wallets.iter().enumerate() {
        one.execute(
            *w,
            WalletCommand::Open {
                player_id: PlayerId::new(format!("p{i}")).unwrap(),
                currency: Currency::Eur,
            },
        )
        .await
        .unwrap();
    }
    // 8 tasks per instance, deposits and withdrawals (some refused) on the 5 wallets; each
    // task sends some commands twice, the second time through the other instance.
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..16u64 {
        let (mine, other) = if t % 2 == 0 {
            (one.clone(), two.clone())
        } else {
            (two.clone(), one.clone())
        };
        let wallets = wallets.clone();
        tasks.spawn(async move {
            let mut rng = Rng::new(t + 1);
            let mut accepted: Vec<(WalletId, u64, Decimal, Decimal)> = Vec::new();
            for n in 0..60 {
                let wallet = wallets[rng.below(wallets.len() as u64) as usize];
                let amount = Decimal::new(1 + rng.below(5_000) as i64, 2);
                let transaction_id = TransactionId::new(format!("t{t}-{n}")).unwrap();
                let command = if rng.below(3) == 0 {
                    WalletCommand::Withdraw {
                        transaction_id,
                        amount,
                        currency: None,
                    }
                } else {
                    WalletCommand::Deposit {
                        transaction_id,
                        amount,
                        currency: None,
                    }
                };
                let mut first = mine.execute(wallet, command.clone()).await;
                if rng.below(4) == 0 {
                    let again = other.execute(wallet, command.clone()).await;
                    match (&first, &again) {
                        (Ok(a), Ok(b)) => {
                            assert_eq!(
                                (a.sequence, a.balance),
                                (b.sequence, b.balance),
                                "a repeat answers as the first time"
                            );
                            assert!(b.replayed);
                        }
                        // Refused first (no funds then), accepted on the retry: that one counts.
                        (Err(ExecuteError::Refused { .. }), Ok(b)) => {
                            assert!(!b.replayed);
                            first = again;
                        }
                        (Err(ExecuteError::Refused { .. }), Err(ExecuteError::Refused { .. })) => {}
                        other => panic!("unexpected pair {other:?}"),
                    }
                }
                match first {
                    Ok(receipt) => {
                        let signed = match command {
                            WalletCommand::Withdraw { .. } => -amount,
                            _ => amount,
                        };
                        accepted.push((
                            wallet,
                            receipt.sequence,
                            signed,
                            receipt.balance.available,
                        ));
                    }
                    Err(ExecuteError::Refused { .. }) => {}
                    Err(e) => panic!("the write path failed: {e:?}"),
                }
            }
            accepted
        });
    }
    let mut model: HashMap<WalletId, Decimal> = HashMap::new();
    let mut acknowledged: HashMap<(WalletId, u64), Decimal> = HashMap::new();
    while let Some(done) = tasks.join_next().await {
        for (wallet, sequence, signed, available_after) in done.unwrap() {
            *model.entry(wallet).or_default() += signed;
            let before = acknowledged.insert((wallet, sequence), available_after);
            assert!(
                before.is_none(),
                "two acknowledged commands share {wallet}#{sequence}"
            );
        }
    }
    // The log: every acknowledged command is there, at its sequence, with the balance it
    // answered; and nothing else was written.
    let logged: Vec<(String, i64, serde_json::Value)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, metadata FROM events WHERE sequence > 1 ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        logged.len(),
        acknowledged.len(),
        "one event per acknowledged command"
    );
    for (wallet, sequence, metadata) in logged {
        let key = (wallet.parse::<WalletId>().unwrap(), sequence as u64);
        let answered = acknowledged
            .get(&key)
            .unwrap_or_else(|| panic!("{key:?} was never acknowledged"));
        let recorded: Decimal = metadata["available"].as_str().unwrap().parse().unwrap();
        assert_eq!(recorded, *answered, "{key:?}");
    }
    let expected = fold_log(&pool, &readmodel::Keys::new("unused").generation(0)).await;
    for wallet in &wallets {
        let want = model.get(wallet).copied().unwrap_or_default();
        let folded = expected.wallets[&wallet.to_string()].balance.available;
        assert_eq!(folded, want, "log of {wallet} vs the model");
        let now = two.wallet(*wallet).await.unwrap().unwrap();
        assert_eq!(
            now.balance.available, want,
            "balance of {wallet} vs the model"
        );
        assert!(want >= Decimal::ZERO);
    }
}
