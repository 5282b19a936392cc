//! A wallet with a long history against a new one (`--paths long-history`): the batched
//! path writes `--history` deposits to one wallet (snapshots as in production), then
//! times balance reads (`WalletStore::wallet`) and deposits on it and on a wallet with
//! two events, alternating, and reports each one's p50 and p99 and their ratio.

use std::sync::Arc;
use std::time::Instant;

use domain::{Currency, PlayerId, TransactionId, WalletCommand, WalletId};
use eventstore::{BatchedWalletStore, WalletStore};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;

use crate::{batch_config, Args, Phase};

/// Reads and deposits timed on each wallet.
const SAMPLES: usize = 500;

pub async fn long_history(args: &Args, pool: &PgPool) -> anyhow::Result<Phase> {
    let store: Arc<dyn WalletStore> =
        Arc::new(BatchedWalletStore::new(pool.clone(), batch_config(args)));
    let open = |name: &str| WalletCommand::Open {
        player_id: PlayerId::new(name).expect("a short id"),
        currency: Currency::Eur,
    };
    let id = |name: &str| WalletId::for_player(&PlayerId::new(name).expect("id"), Currency::Eur);
    let deposit = |tx: String| WalletCommand::Deposit {
        transaction_id: TransactionId::new(tx).expect("a short id"),
        amount: Decimal::ONE,
        currency: None,
        now: chrono::Utc::now(),
    };
    let (long, new) = (id("long"), id("new"));
    store.execute(long, open("long")).await?;
    store.execute(new, open("new")).await?;
    store.execute(new, deposit("first".into())).await?;
    let started = Instant::now();
    let writers = 64u64;
    let each = args.history.div_ceil(writers);
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..writers {
        let store = store.clone();
        tasks.spawn(async move {
            for n in 0..each {
                store.execute(long, deposit(format!("h{t}-{n}"))).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    println!(
        "long-history: {} events written to one wallet in {:.1} s",
        writers * each + 1,
        started.elapsed().as_secs_f64()
    );
    let mut times: [Vec<u32>; 4] = Default::default();
    for n in 0..SAMPLES {
        for (k, wallet) in [(0, long), (1, new)] {
            let t = Instant::now();
            store.wallet(wallet).await?;
            times[k].push(t.elapsed().as_micros() as u32);
            let t = Instant::now();
            store.execute(wallet, deposit(format!("d{n}"))).await?;
            times[k + 2].push(t.elapsed().as_micros() as u32);
        }
    }
    let mut report = serde_json::Map::new();
    for (k, name) in ["read_long", "read_new", "deposit_long", "deposit_new"]
        .iter()
        .enumerate()
    {
        times[k].sort_unstable();
        let pct = |p: f64| f64::from(times[k][((times[k].len() - 1) as f64 * p) as usize]) / 1e3;
        report.insert(
            (*name).into(),
            json!({"p50_ms": pct(0.5), "p99_ms": pct(0.99)}),
        );
        println!(
            "{name:>14}: p50 {:.2} ms  p99 {:.2} ms",
            pct(0.5),
            pct(0.99)
        );
    }
    let p99 = |name: &str| report[name]["p99_ms"].as_f64().unwrap_or(f64::NAN);
    let ratios = json!({
        "read_p99_long/new": p99("read_long") / p99("read_new"),
        "deposit_p99_long/new": p99("deposit_long") / p99("deposit_new"),
    });
    println!("ratios (long / new, p99): {ratios}");
    report.insert("ratios".into(), ratios);
    report.insert("history_events".into(), json!(writers * each + 1));
    Ok(Phase::Report(serde_json::Value::Object(report)))
}
