//! A mixed wallet workload for the read-side tests: opens wallets, funds them, then runs
//! reserves, settles, refunds, deposits and withdrawals through a real write path.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::Utc;
use domain::{
    Currency, GameId, PlayerId, ReservationId, RoundId, TransactionId, WalletCommand, WalletId,
};
use eventstore::{ExecuteError, WalletStore};
use rust_decimal::Decimal;

/// A small deterministic generator (xorshift64*): reproducible runs without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

/// Opens `count` EUR wallets for players `{tag}-p{i}` and deposits 1,000.00 in each.
pub async fn open_funded(store: &dyn WalletStore, tag: &str, count: usize) -> Vec<WalletId> {
    let mut wallets = Vec::with_capacity(count);
    for i in 0..count {
        let player = PlayerId::new(format!("{tag}-p{i}")).expect("a valid player id");
        let wallet = WalletId::for_player(&player, Currency::Eur);
        store
            .execute(
                wallet,
                WalletCommand::Open {
                    player_id: player,
                    currency: Currency::Eur,
                },
            )
            .await
            .expect("opening a wallet");
        store
            .execute(
                wallet,
                WalletCommand::Deposit {
                    transaction_id: TransactionId::new(format!("{tag}-fund-{i}")).unwrap(),
                    amount: Decimal::new(100_000, 2),
                    currency: None,
                },
            )
            .await
            .expect("funding a wallet");
        wallets.push(wallet);
    }
    wallets
}

/// Runs `commands` mixed commands over `wallets` from `tasks` concurrent tasks (each task
/// owns a share of the wallets). Returns how many were accepted; refusals (insufficient
/// funds) are part of the mix.
pub async fn run_mixed(
    store: Arc<dyn WalletStore>,
    wallets: &[WalletId],
    commands: usize,
    tasks: usize,
    seed: u64,
) -> usize {
    let mut handles = Vec::new();
    for t in 0..tasks {
        let owned: Vec<WalletId> = wallets.iter().skip(t).step_by(tasks).copied().collect();
        let store = store.clone();
        let share = commands / tasks + usize::from(t < commands % tasks);
        handles.push(tokio::spawn(async move {
            run_share(
                store.as_ref(),
                &owned,
                share,
                seed ^ ((t as u64 + 1) * 7919),
                t,
            )
            .await
        }));
    }
    let mut accepted = 0;
    for h in handles {
        accepted += h.await.expect("a workload task");
    }
    accepted
}

async fn run_share(
    store: &dyn WalletStore,
    wallets: &[WalletId],
    commands: usize,
    seed: u64,
    task: usize,
) -> usize {
    if wallets.is_empty() {
        return 0;
    }
    let mut rng = Rng::new(seed);
    let mut open: BTreeMap<WalletId, Vec<(ReservationId, Decimal)>> = BTreeMap::new();
    let mut accepted = 0;
    for n in 0..commands {
        let wallet = wallets[rng.below(wallets.len() as u64) as usize];
        let tx = TransactionId::new(format!("s{seed:x}-t{task}-{n}")).unwrap();
        let cents = |rng: &mut Rng, max: u64| Decimal::new(1 + rng.below(max) as i64, 2);
        let roll = rng.below(100);
        let pending = open.entry(wallet).or_default();
        let command = if (45..85).contains(&roll) && !pending.is_empty() {
            let (rid, stake) = pending.remove(rng.below(pending.len() as u64) as usize);
            // Payout 0 (a loss) half the time, else up to three times the stake.
            let payout = if rng.below(2) == 0 {
                Decimal::ZERO
            } else {
                stake * Decimal::from(rng.below(3) + 1)
            };
            WalletCommand::Settle {
                reservation_id: rid,
                transaction_id: tx,
                payout,
                currency: None,
            }
        } else if (85..90).contains(&roll) && !pending.is_empty() {
            let (rid, _) = pending.remove(rng.below(pending.len() as u64) as usize);
            WalletCommand::Refund {
                reservation_id: rid,
                transaction_id: tx,
            }
        } else if (90..95).contains(&roll) {
            WalletCommand::Deposit {
                transaction_id: tx,
                amount: cents(&mut rng, 5_000),
                currency: None,
            }
        } else if roll >= 95 {
            WalletCommand::Withdraw {
                transaction_id: tx,
                amount: cents(&mut rng, 5_000),
                currency: None,
            }
        } else {
            let rid = ReservationId::new(tx.to_string()).unwrap();
            let amount = cents(&mut rng, 2_000);
            pending.push((rid.clone(), amount));
            WalletCommand::Reserve {
                reservation_id: rid,
                amount,
                currency: None,
                game_id: GameId::new(format!("g{}", rng.below(3))).unwrap(),
                round_id: RoundId::new(format!("r{n}")).unwrap(),
                timeout_s: 3_600,
                now: Utc::now(),
            }
        };
        let reserve_id = match &command {
            WalletCommand::Reserve { reservation_id, .. } => Some(reservation_id.clone()),
            _ => None,
        };
        match store.execute(wallet, command).await {
            Ok(_) => accepted += 1,
            Err(ExecuteError::Refused { .. }) => {
                if let Some(rid) = reserve_id {
                    open.entry(wallet).or_default().retain(|(r, _)| *r != rid);
                }
            }
            Err(e) => panic!("the write path failed: {e:?}"),
        }
    }
    accepted
}
