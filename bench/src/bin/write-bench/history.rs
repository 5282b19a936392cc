//! A wallet with a long history against a new one (`--paths long-history`): the batched
//! path writes `--history` deposits to one wallet (snapshots as in production), then
//! times, on it and on a wallet with a few events, alternating: balance reads
//! (`WalletStore::wallet`), deposits, and commands naming a reservation the cached state
//! has forgotten (a rollback of a settled bet and a refund of a bet never placed, both
//! refused: decided on what indexed lookups put back, not on a fold of the history). It
//! reports each one's p50 and p99 and the long/new ratios, and, as the reference, the same
//! forgotten-reservation command decided on the folded history (`CqrsWalletStore`, the
//! straightforward path) a few times on the long wallet.

use std::sync::Arc;
use std::time::Instant;

use domain::{Currency, PlayerId, TransactionId, WalletCommand, WalletId};
use eventstore::{BatchedWalletStore, CqrsWalletStore, ExecuteError, WalletStore};
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;

use crate::{batch_config, Args, Phase};

/// Reads and deposits timed on each wallet.
const SAMPLES: usize = 500;
/// Commands decided on the folded history, as the reference.
const FOLDS: usize = 5;

pub async fn long_history(args: &Args, pool: &PgPool) -> anyhow::Result<Phase> {
    let store: Arc<dyn WalletStore> =
        Arc::new(BatchedWalletStore::new(pool.clone(), batch_config(args)));
    let open = |name: &str| WalletCommand::Open {
        player_id: PlayerId::new(name).expect("a short id"),
        currency: Currency::Eur,
        brand_id: domain::BrandId::default_brand(),
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
    // A settled bet on each, which the cache forgets once it is settled.
    let game = domain::GameId::new("g").expect("id");
    let round = domain::RoundId::new("r").expect("id");
    let bet = domain::ReservationId::new("settled").expect("id");
    for wallet in [long, new] {
        store
            .execute(
                wallet,
                WalletCommand::Reserve {
                    reservation_id: bet.clone(),
                    amount: Decimal::ONE,
                    currency: None,
                    game_id: game.clone(),
                    round_id: round.clone(),
                    timeout_s: 60,
                    now: chrono::Utc::now(),
                },
            )
            .await?;
        store
            .execute(
                wallet,
                WalletCommand::Settle {
                    reservation_id: bet.clone(),
                    transaction_id: TransactionId::new("settle").expect("id"),
                    payout: Decimal::ZERO,
                    currency: None,
                    now: chrono::Utc::now(),
                },
            )
            .await?;
    }
    // Refused either way, so the wallet does not change: a rollback of the settled bet
    // (closed) and a refund of a bet never placed (not found).
    let forgotten = |n: usize| {
        if n % 2 == 0 {
            WalletCommand::Rollback {
                reservation_id: bet.clone(),
                transaction_id: TransactionId::new(format!("rb{n}")).expect("id"),
                round_id: round.clone(),
            }
        } else {
            WalletCommand::Refund {
                reservation_id: domain::ReservationId::new(format!("never{n}")).expect("id"),
                transaction_id: TransactionId::new(format!("rf{n}")).expect("id"),
            }
        }
    };
    let refused = |answer: Result<_, ExecuteError>| match answer {
        Err(ExecuteError::Refused { .. }) => Ok(()),
        other => Err(anyhow::anyhow!(
            "a command on a forgotten reservation must be refused, got {other:?}"
        )),
    };
    let mut times: [Vec<u32>; 6] = Default::default();
    for n in 0..SAMPLES {
        for (k, wallet) in [(0, long), (1, new)] {
            let t = Instant::now();
            store.wallet(wallet).await?;
            times[k].push(t.elapsed().as_micros() as u32);
            let t = Instant::now();
            store.execute(wallet, deposit(format!("d{n}"))).await?;
            times[k + 2].push(t.elapsed().as_micros() as u32);
            let t = Instant::now();
            refused(store.execute(wallet, forgotten(n)).await)?;
            times[k + 4].push(t.elapsed().as_micros() as u32);
        }
    }
    // The reference: the same commands on the folded history of the long wallet.
    let folding = CqrsWalletStore::new(pool.clone());
    let mut folds = Vec::with_capacity(FOLDS);
    for n in 0..FOLDS {
        let t = Instant::now();
        refused(folding.execute(long, forgotten(SAMPLES + n)).await)?;
        folds.push(t.elapsed().as_micros() as u32);
    }
    folds.sort_unstable();
    let fold_p50_ms = f64::from(folds[FOLDS / 2]) / 1e3;
    println!(
        "forgotten_fold: p50 {fold_p50_ms:.2} ms ({FOLDS} on the long wallet's folded history)"
    );
    let mut report = serde_json::Map::new();
    report.insert("forgotten_fold_long".into(), json!({"p50_ms": fold_p50_ms}));
    for (k, name) in [
        "read_long",
        "read_new",
        "deposit_long",
        "deposit_new",
        "forgotten_long",
        "forgotten_new",
    ]
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
        "forgotten_p99_long/new": p99("forgotten_long") / p99("forgotten_new"),
        "forgotten_fold_p50/lookup_p50_long": fold_p50_ms
            / report["forgotten_long"]["p50_ms"].as_f64().unwrap_or(f64::NAN),
    });
    println!("ratios (long / new, p99): {ratios}");
    report.insert("ratios".into(), ratios);
    report.insert("history_events".into(), json!(writers * each + 1));
    Ok(Phase::Report(serde_json::Value::Object(report)))
}
