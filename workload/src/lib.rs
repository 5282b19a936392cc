//! The wallet workload and fixtures that the tests and the benchmarks share, so every
//! figure and every end-to-end test drives the engine with the same traffic.
//!
//! # Layout
//! - [`Rng`]: a small deterministic generator (reproducible runs, no dependency).
//! - [`Mix`]: the mixed workload, one command at a time: reserve 45 %, settle 40 %,
//!   refund 5 %, deposit 5 %, withdraw 5 % (settles and refunds close the generator's own
//!   open bets), on wallets picked uniformly or with a Zipf-like skew.
//! - [`open_funded`], [`open_funded_with`]: wallets opened and funded through a write
//!   path; [`prewrite_funded`]: the same straight in SQL, fast, for large benchmarks.
//! - [`run_mixed`]: the mix from several tasks at once through a write path, each task
//!   owning its share of the wallets (the tests' load).
#![forbid(unsafe_code)]

use std::sync::Arc;

use chrono::Utc;
use domain::{
    Currency, GameId, PlayerId, ReservationId, RoundId, TransactionId, WalletCommand, WalletId,
};
use eventstore::{ExecuteError, WalletStore};
use rust_decimal::Decimal;
use sqlx::PgPool;

/// xorshift64*: reproducible runs without a dependency.
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

    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// An index in `0..n` with weight about 1/(k+1) for index k: log-uniform over 1..=n,
    /// so a few wallets are hot.
    pub fn zipf(&mut self, n: usize) -> usize {
        let x = ((n as f64 + 1.0).ln() * self.unit()).exp() as usize;
        x.saturating_sub(1).min(n.max(1) - 1)
    }
}

/// How [`Mix`] picks the wallet of a reserve, deposit or withdrawal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    Uniform,
    /// Wallet k with weight about 1/(k+1).
    Zipf,
}

/// A bet the mix placed and may settle or refund later.
#[derive(Debug, Clone, PartialEq)]
pub struct Bet {
    pub wallet: WalletId,
    pub reservation_id: ReservationId,
    pub stake: Decimal,
}

/// One command of the mix, and the bet it places if it is a reserve.
#[derive(Debug, Clone)]
pub struct Next {
    pub wallet: WalletId,
    pub command: WalletCommand,
    pub places: Option<Bet>,
}

/// The mixed workload: reserve 45, settle 40, refund 5, deposit 5, withdraw 5 (percent).
/// Stakes are 1.00 to 9.99, payouts 0, 1 or 2 times the stake, deposits and withdrawals
/// 1.00 to 50.99, over `games` games. Transaction ids are `{tag}-{n}`: give every
/// generator running at once its own tag.
#[derive(Debug, Clone)]
pub struct Mix {
    rng: Rng,
    open: Vec<Bet>,
    tag: String,
    n: u64,
    pick: Pick,
    games: u64,
}

impl Mix {
    pub fn new(seed: u64, tag: impl Into<String>, pick: Pick) -> Self {
        Mix {
            rng: Rng::new(seed),
            open: Vec::new(),
            tag: tag.into(),
            n: 0,
            pick,
            games: 10,
        }
    }

    /// Bets spread over `games` games (default 10).
    pub fn games(mut self, games: u64) -> Self {
        self.games = games.max(1);
        self
    }

    /// The next command over `wallets` (not empty).
    pub fn next(&mut self, wallets: &[WalletId]) -> Next {
        self.n += 1;
        let n = self.n;
        let tx = TransactionId::new(format!("{}-{n}", self.tag)).expect("a short id");
        let roll = self.rng.below(100);
        if roll < 45 || self.open.is_empty() {
            let wallet = self.wallet(wallets);
            let reservation_id = ReservationId::from(tx);
            let stake = Decimal::new(100 + self.rng.below(900) as i64, 2);
            let command = WalletCommand::Reserve {
                reservation_id: reservation_id.clone(),
                amount: stake,
                currency: None,
                game_id: GameId::new(format!("g{}", self.rng.below(self.games))).expect("id"),
                // A round of its own, as providers' round ids are: tagged like the
                // transaction ids, so generators running at once never share one.
                round_id: RoundId::new(format!("{}-r{n}", self.tag)).expect("id"),
                timeout_s: 3_600,
                now: Utc::now(),
            };
            let places = Some(Bet {
                wallet,
                reservation_id,
                stake,
            });
            return Next {
                wallet,
                command,
                places,
            };
        }
        if roll < 90 {
            let bet = self
                .open
                .swap_remove(self.rng.below(self.open.len() as u64) as usize);
            let command = if roll < 85 {
                WalletCommand::Settle {
                    reservation_id: bet.reservation_id,
                    transaction_id: tx,
                    payout: bet.stake * Decimal::from(self.rng.below(3)),
                    currency: None,
                    now: chrono::Utc::now(),
                }
            } else {
                WalletCommand::Refund {
                    reservation_id: bet.reservation_id,
                    transaction_id: tx,
                }
            };
            return Next {
                wallet: bet.wallet,
                command,
                places: None,
            };
        }
        let wallet = self.wallet(wallets);
        let amount = Decimal::new(100 + self.rng.below(5_000) as i64, 2);
        let command = if roll < 95 {
            WalletCommand::Deposit {
                transaction_id: tx,
                amount,
                currency: None,
                now: chrono::Utc::now(),
            }
        } else {
            WalletCommand::Withdraw {
                transaction_id: tx,
                amount,
                currency: None,
                forfeit_bonuses: false,
            }
        };
        Next {
            wallet,
            command,
            places: None,
        }
    }

    /// Records that `bet` (a [`Next::places`]) was accepted: later commands may settle or
    /// refund it. A refused reserve places nothing.
    pub fn placed(&mut self, bet: Bet) {
        self.open.push(bet);
    }

    fn wallet(&mut self, wallets: &[WalletId]) -> WalletId {
        match self.pick {
            Pick::Uniform => wallets[self.rng.below(wallets.len() as u64) as usize],
            Pick::Zipf => wallets[self.rng.zipf(wallets.len())],
        }
    }
}

/// The funding [`open_funded`] gives each wallet: 1,000.00.
pub const FUNDING_DEFAULT: Decimal = Decimal::from_parts(100_000, 0, 0, false, 2);

/// Opens `count` EUR wallets for players `{tag}-p{i}` through `store` and deposits
/// 1,000.00 in each.
pub async fn open_funded(store: &dyn WalletStore, tag: &str, count: usize) -> Vec<WalletId> {
    open_funded_with(store, tag, count, FUNDING_DEFAULT).await
}

/// [`open_funded`] with `amount` in each wallet.
pub async fn open_funded_with(
    store: &dyn WalletStore,
    tag: &str,
    count: usize,
    amount: Decimal,
) -> Vec<WalletId> {
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
                    brand_id: domain::BrandId::default_brand(),
                },
            )
            .await
            .expect("opening a wallet");
        store
            .execute(
                wallet,
                WalletCommand::Deposit {
                    transaction_id: TransactionId::new(format!("{tag}-fund-{i}"))
                        .expect("a short id"),
                    amount,
                    currency: None,
                    now: chrono::Utc::now(),
                },
            )
            .await
            .expect("funding a wallet");
        wallets.push(wallet);
    }
    wallets
}

/// A transaction for one bulk statement: on a loaded machine 100,000 wallets take longer
/// than the pool's statement timeout (`eventstore::db`), which a bulk load may pass.
async fn bulk_load(
    pool: &PgPool,
) -> Result<sqlx::Transaction<'static, sqlx::Postgres>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SET LOCAL statement_timeout = 0")
        .execute(&mut *tx)
        .await?;
    Ok(tx)
}

/// Writes `wallets` EUR wallets straight in SQL, for benchmarks that need many: per
/// wallet an open (player `bench-{w}`) and `deposits` deposits of `amount`, with the
/// balance after each in the metadata exactly as the write paths record it. Returns the
/// wallet ids in order.
pub async fn prewrite_funded(
    pool: &PgPool,
    wallets: u32,
    deposits: u32,
    amount: Decimal,
) -> Result<Vec<WalletId>, sqlx::Error> {
    let mut tx = bulk_load(pool).await?;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'wallet', md5('bench' || w)::uuid::text, s,
                CASE WHEN s = 1 THEN 'WalletOpened' ELSE 'FundsDeposited' END, '1.0',
                CASE WHEN s = 1
                     THEN jsonb_build_object('WalletOpened', jsonb_build_object(
                            'wallet_id', md5('bench' || w)::uuid::text, 'player_id', 'bench-' || w,
                            'currency', 'EUR'))
                     ELSE jsonb_build_object('FundsDeposited', jsonb_build_object(
                            'transaction_id', 'fund-' || s, 'amount', $3::numeric::text)) END,
                jsonb_build_object('command', CASE WHEN s = 1 THEN 'open' ELSE 'deposit' END,
                                   'request_sha256', 'bench',
                                   'available', ($3::numeric * (s - 1))::text,
                                   'reserved', '0.00', 'currency', 'EUR')
                  || CASE WHEN s = 1 THEN '{}'::jsonb
                          ELSE jsonb_build_object('transaction_id', 'fund-' || s) END
           FROM generate_series(1, $1::int) AS w, generate_series(1, $2::int + 1) AS s",
    )
    .bind(wallets as i32)
    .bind(deposits as i32)
    .bind(amount)
    .execute(&mut *tx)
    .await?;
    sqlx::query("ANALYZE events").execute(&mut *tx).await?;
    tx.commit().await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT md5('bench' || w)::uuid::text FROM generate_series(1, $1::int) AS w",
    )
    .bind(wallets as i32)
    .fetch_all(pool)
    .await?;
    Ok(ids
        .iter()
        .map(|id| id.parse().expect("md5 makes a UUID"))
        .collect())
}

/// Writes `per_wallet` bet-wins (stake 1.00, payout 1.00, each in a round of its own that
/// it opens and closes) after the events of each of `wallets` written by
/// [`prewrite_funded`] with `deposits` deposits of `amount`, straight in SQL, as the write
/// paths record them: the event from the domain's own type, the balance after it and the
/// round keys in the metadata. For benchmarks of long histories (the balance stays as it
/// was, so the log verifies clean).
pub async fn prewrite_bet_wins(
    pool: &PgPool,
    wallets: &[WalletId],
    deposits: u32,
    amount: Decimal,
    per_wallet: u32,
) -> Result<(), sqlx::Error> {
    let template = serde_json::to_value(domain::WalletEvent::BetSettled {
        reservation_id: ReservationId::new("x").expect("a valid id"),
        game_id: GameId::new("bench-game").expect("a valid id"),
        round_id: RoundId::new("x").expect("a valid id"),
        stake: Decimal::new(100, 2),
        payout: Decimal::new(100, 2),
        placed_at: chrono::DateTime::UNIX_EPOCH,
        round_closed: true,
        lost: Vec::new(),
        bonus: None,
    })
    .expect("an event serialises");
    let available = (amount * Decimal::from(deposits)).to_string();
    let ids: Vec<String> = wallets.iter().map(|w| w.to_string()).collect();
    let mut tx = bulk_load(pool).await?;
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'wallet', w, $2::int + 1 + k, 'BetSettled', $4,
                jsonb_set(jsonb_set($3::jsonb, '{BetSettled,reservation_id}', to_jsonb('bw-' || k)),
                          '{BetSettled,round_id}', to_jsonb('r-' || k)),
                jsonb_build_object('command', 'bet_win', 'transaction_id', 'bw-' || k,
                                   'request_sha256', 'bench', 'available', $5::text,
                                   'reserved', '0.00', 'currency', 'EUR',
                                   'round_opened', 'r-' || k, 'round_closed', 'r-' || k)
           FROM UNNEST($1::text[]) AS w, generate_series(1, $6::int) AS k",
    )
    .bind(&ids)
    .bind(deposits as i32)
    .bind(template)
    .bind(domain::wallet::EVENT_VERSION)
    .bind(available)
    .bind(per_wallet as i32)
    .execute(&mut *tx)
    .await?;
    sqlx::query("ANALYZE events").execute(&mut *tx).await?;
    tx.commit().await
}

/// Runs `commands` commands of the mix over `wallets` from `tasks` concurrent tasks (each
/// task owns a share of the wallets, picked uniformly, and spreads its bets over 3
/// games). Returns how many were accepted; refusals (insufficient funds) are part of the
/// mix, and any other failure of the write path panics.
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
        let task_seed = seed ^ ((t as u64 + 1) * 7919);
        handles.push(tokio::spawn(async move {
            if owned.is_empty() {
                return 0;
            }
            let mut mix = Mix::new(task_seed, format!("s{seed:x}-t{t}"), Pick::Uniform).games(3);
            let mut accepted = 0;
            for _ in 0..share {
                let next = mix.next(&owned);
                match store.execute(next.wallet, next.command).await {
                    Ok(_) => {
                        accepted += 1;
                        if let Some(bet) = next.places {
                            mix.placed(bet);
                        }
                    }
                    Err(ExecuteError::Refused { .. }) => {}
                    Err(e) => panic!("the write path failed: {e:?}"),
                }
            }
            accepted
        }));
    }
    let mut accepted = 0;
    for h in handles {
        accepted += h.await.expect("a workload task");
    }
    accepted
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_is_reproducible_and_closes_only_bets_it_placed() {
        let wallets: Vec<WalletId> = (0..5)
            .map(|i| WalletId::for_player(&PlayerId::new(format!("p{i}")).unwrap(), Currency::Eur))
            .collect();
        let run = || {
            let mut mix = Mix::new(7, "t", Pick::Zipf);
            let mut placed = Vec::new();
            let mut closed = Vec::new();
            for _ in 0..1_000 {
                let next = mix.next(&wallets);
                match &next.command {
                    WalletCommand::Settle { reservation_id, .. }
                    | WalletCommand::Refund { reservation_id, .. } => {
                        closed.push(reservation_id.clone())
                    }
                    _ => {}
                }
                if let Some(bet) = next.places {
                    placed.push(bet.reservation_id.clone());
                    mix.placed(bet);
                }
            }
            (placed, closed)
        };
        let (placed, closed) = run();
        assert_eq!(
            run(),
            (placed.clone(), closed.clone()),
            "same seed, same commands"
        );
        assert!(closed.len() > 300 && placed.len() > 400);
        assert!(closed.iter().all(|c| placed.contains(c)));
        let mut unique = closed.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), closed.len(), "no bet is closed twice");
    }
}
