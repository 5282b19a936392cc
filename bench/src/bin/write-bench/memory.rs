//! The memory a cached wallet costs in the batched path (`--paths cache-memory`): idle,
//! with an open round and no open bet, with an open bet in its round, with a deposit limit,
//! and with an active bonus award.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use domain::{GameId, ReservationId, RoundId, TransactionId, WalletCommand, WalletId};
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
    let warm = |wallet: WalletId, n: usize| WalletCommand::Deposit {
        transaction_id: TransactionId::new(format!("warm-{wallet}-{n}")).expect("id"),
        amount: Decimal::new(1, 2),
        currency: None,
        now: chrono::Utc::now(),
    };
    on_every_wallet(&fresh, &wallets, args.concurrency, warm).await;
    let after = rss_bytes()?;
    let cached = fresh.cached_wallets();
    let live_idle = live_bytes();
    let per_wallet = (live_idle - live_before) as f64 / cached.max(1) as f64;
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
    // A round left open with no bet in it (a bet-win that does not close its round, as a
    // provider that never closes rounds leaves one), then an open bet in a round of its own.
    let game = GameId::new("mem-game").expect("id");
    let round =
        |wallet: WalletId, what: &str| RoundId::new(format!("{what}-{wallet}")).expect("id");
    let bet_id =
        |wallet: WalletId, what: &str| ReservationId::new(format!("{what}-{wallet}")).expect("id");
    let g = game.clone();
    let idle_round = move |wallet: WalletId, _| WalletCommand::BetWin {
        reservation_id: bet_id(wallet, "mem-bw"),
        amount: Decimal::new(1, 2),
        payout: Decimal::new(1, 2),
        currency: None,
        game_id: g.clone(),
        round_id: round(wallet, "mem-idle"),
        round_closed: false,
        now: Utc::now(),
    };
    on_every_wallet(&fresh, &wallets, args.concurrency, idle_round).await;
    let live_round = live_bytes();
    let per_round = (live_round - live_idle) as f64 / cached.max(1) as f64;
    let open_bet = move |wallet: WalletId, _| WalletCommand::Reserve {
        reservation_id: bet_id(wallet, "mem-bet"),
        amount: Decimal::new(1, 2),
        currency: None,
        game_id: game.clone(),
        round_id: round(wallet, "mem-open"),
        timeout_s: 3_600,
        now: Utc::now(),
    };
    on_every_wallet(&fresh, &wallets, args.concurrency, open_bet).await;
    let live_bet = live_bytes();
    let per_bet = (live_bet - live_round) as f64 / cached.max(1) as f64;
    // Then a daily deposit limit (player protection): what a protected wallet adds.
    let limit = move |wallet: WalletId, _| WalletCommand::SetLimit {
        transaction_id: TransactionId::new(format!("mem-limit-{wallet}")).expect("id"),
        kind: domain::wallet::protection::LimitKind::Deposit,
        period: domain::wallet::protection::LimitPeriod::Day,
        amount: Some(Decimal::new(100_000, 2)),
        currency: None,
        zone: chrono_tz::Tz::UTC,
        cooling_s: 86_400,
        now: Utc::now(),
        by: domain::ClientId::new("write-bench").expect("id"),
    };
    on_every_wallet(&fresh, &wallets, args.concurrency, limit).await;
    let live_limit = live_bytes();
    let per_limit = (live_limit - live_bet) as f64 / cached.max(1) as f64;
    // Then an active bonus award with per-game contributions and caps (bonus money).
    let award = move |wallet: WalletId, _| WalletCommand::GrantBonus {
        transaction_id: TransactionId::new(format!("mem-bonus-{wallet}")).expect("id"),
        amount: Decimal::new(2_000, 2),
        terms: domain::BonusTerms {
            wagering_multiplier: 10,
            expires_at: Utc::now() + chrono::Duration::days(30),
            max_conversion: Some(Decimal::new(10_000, 2)),
            max_bet: Some(Decimal::new(500, 2)),
            contributions: [(GameId::new("roulette-1").expect("id"), 10)].into(),
        },
        currency: None,
        multiplier_max: 10,
        now: Utc::now(),
        by: domain::ClientId::new("write-bench").expect("id"),
    };
    on_every_wallet(&fresh, &wallets, args.concurrency, award).await;
    let per_award = (live_bytes() - live_limit) as f64 / cached.max(1) as f64;
    let still_cached = fresh.cached_wallets();
    println!(
        "cache-memory: + {per_round:.0} bytes per wallet for an open round with no bet in it, \
         + {per_bet:.0} more for an open bet in a round of its own, + {per_limit:.0} more for \
         a daily deposit limit, + {per_award:.0} more for an active bonus award \
         ({still_cached} cached)"
    );
    Ok(Phase::Report(serde_json::json!({
        "bytes_per_cached_idle_wallet": per_wallet,
        "bytes_added_by_an_open_round_without_bets": per_round,
        "bytes_added_by_an_open_bet_in_its_round": per_bet,
        "bytes_added_by_a_deposit_limit": per_limit,
        "bytes_added_by_an_active_bonus_award": per_award,
        "cached_wallets": cached,
    })))
}

/// Runs one command made by `command` on every wallet, `concurrency` at a time.
async fn on_every_wallet(
    store: &Arc<BatchedWalletStore>,
    wallets: &[WalletId],
    concurrency: usize,
    command: impl Fn(WalletId, usize) -> WalletCommand + Clone + Send + 'static,
) {
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in wallets.chunks(wallets.len().div_ceil(concurrency.max(1))) {
        let (store, chunk, command) = (store.clone(), chunk.to_vec(), command.clone());
        tasks.spawn(async move {
            for (n, wallet) in chunk.iter().enumerate() {
                let _ = store.execute(*wallet, command(*wallet, n)).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}
