//! Game rounds: the rules of several bets and wins per round, closing a round, a bet and
//! its win in one command, wins without a bet, and adjustments (the "Rounds" section of
//! the wallet contract). Plain bets, settles, refunds and rollbacks stay in the parent
//! module; they consult the round rules here (`check_round_open`).
//!
//! A round is keyed per wallet by its id. It opens with its first bet or bet-less win (or
//! with a close of a round never seen, which then stays closed, so a bet arriving late
//! for it is refused and never charged) and is open until closed. Closing loses every bet
//! of the round still open (settled with payout 0), in one event.
//!
//! What a cache may forget: closed rounds, and open rounds without an open bet beyond the
//! [`IDLE_ROUNDS_KEPT`] most recently used. A command that names a round the compacted
//! state does not hold is either decided on the full state (a win for the round alone,
//! an adjustment, see `Wallet::holds`) or, when it would open the round, carries the
//! round's key in its event's record, which the log takes once per wallet and round
//! (`Wallet::round_opened_by`): so a round the cache forgot is never opened twice.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::bonus::{BonusMoves, StakeMove};
use super::{Opened, WalletCommand, WalletError, WalletEvent, WinTarget};
use crate::ids::{AdjustmentReason, GameId, ReservationId, RoundId, TransactionId};
use crate::money::{Currency, Money};
use crate::wallet::{Reservation, ReservationState};

/// Open rounds with no open bet that a compacted wallet keeps, the most recently used:
/// the round just settled and the one before it, for a provider that closes a round, or
/// wins in it again, after its bets are settled; bounded for one that never closes a
/// round. Each kept round costs a cached wallet about 100 bytes (write-bench
/// `cache-memory`).
pub const IDLE_ROUNDS_KEPT: usize = 2;

/// What a win without a bet is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BetlessKind {
    FreeSpin,
    Promo,
    Jackpot,
}

impl BetlessKind {
    /// The contract's name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            BetlessKind::FreeSpin => "free_spin",
            BetlessKind::Promo => "promo",
            BetlessKind::Jackpot => "jackpot",
        }
    }

    /// The kind named `s` in the contract, if any.
    pub fn parse(s: &str) -> Option<Self> {
        [
            BetlessKind::FreeSpin,
            BetlessKind::Promo,
            BetlessKind::Jackpot,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// A bet lost when its round closed: its stake left the wallet, nothing was paid.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LostBet {
    pub reservation_id: ReservationId,
    pub stake: Decimal,
}

/// A game round of one wallet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Round {
    /// The round's game, from its first bet (or a bet-less win that named one).
    pub game_id: Option<GameId>,
    pub closed: bool,
    /// The wallet's count of round events when the round was last named: which idle
    /// rounds a compacted wallet keeps.
    #[serde(default)]
    pub(super) last_used: u64,
    /// Its bets still open, counted as they open and close, so compacting a wallet with
    /// many open bets costs one pass over its rounds, not rounds times bets.
    #[serde(default)]
    pub(super) open_bets: u32,
}

impl Opened {
    /// `Err(RoundClosed)` if the wallet knows `round_id` as closed.
    pub(super) fn check_round_open(&self, round_id: &RoundId) -> Result<(), WalletError> {
        match self.rounds.get(round_id) {
            Some(round) if round.closed => Err(WalletError::RoundClosed {
                round_id: round_id.clone(),
            }),
            _ => Ok(()),
        }
    }

    /// The bets of `round_id` still open, but `except`, in id order: what closing it loses.
    fn open_bets(&self, round_id: &RoundId, except: Option<&ReservationId>) -> Vec<LostBet> {
        self.reservations
            .iter()
            .filter(|(id, r)| {
                r.state == ReservationState::Open && &r.round_id == round_id && Some(*id) != except
            })
            .map(|(id, r)| LostBet {
                reservation_id: id.clone(),
                stake: r.amount,
            })
            .collect()
    }

    pub(super) fn lost_if(
        &self,
        closing: bool,
        round_id: &RoundId,
        except: Option<&ReservationId>,
    ) -> Vec<LostBet> {
        if closing {
            self.open_bets(round_id, except)
        } else {
            Vec::new()
        }
    }

    /// The rules of the round commands (`decide` sends only those here).
    pub(super) fn decide_round(&self, command: WalletCommand) -> Result<WalletEvent, WalletError> {
        match command {
            WalletCommand::Win {
                transaction_id,
                round_id,
                target,
                amount,
                game_id,
                round_closed,
                currency,
                now,
            } => self.win(
                transaction_id,
                round_id,
                target,
                amount,
                game_id,
                round_closed,
                currency,
                now,
            ),
            WalletCommand::CloseRound {
                transaction_id,
                round_id,
                now,
            } => Ok(self.close_round(transaction_id, round_id, now)),
            WalletCommand::BetWin {
                reservation_id,
                amount,
                payout,
                currency,
                game_id,
                round_id,
                round_closed,
                now,
            } => self.bet_win(
                reservation_id,
                (amount, payout, currency),
                game_id,
                round_id,
                round_closed,
                now,
            ),
            WalletCommand::Adjust {
                transaction_id,
                amount,
                reason,
                round_id,
                currency,
                by,
            } => self.adjust(transaction_id, amount, (reason, by), round_id, currency),
            other => unreachable!("not a round command: {}", other.name()),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn win(
        &self,
        transaction_id: TransactionId,
        named_round: RoundId,
        target: WinTarget,
        amount: Decimal,
        game_id: Option<GameId>,
        round_closed: bool,
        currency: Option<Currency>,
        now: DateTime<Utc>,
    ) -> Result<WalletEvent, WalletError> {
        let amount = self.money(amount, currency, Money::non_negative)?;
        let (round_id, reservation_id, settled_stake, kind, campaign_id) = match target {
            WinTarget::Betless { kind, campaign_id } => {
                self.check_served(&named_round)?;
                (named_round, None, None, Some(kind), campaign_id)
            }
            WinTarget::Round => {
                if !self.rounds.contains_key(&named_round) {
                    return Err(WalletError::RoundNotFound {
                        round_id: named_round,
                    });
                }
                (named_round, None, None, None, None)
            }
            WinTarget::Bet(reservation_id) => {
                // The bet's own round is the one that counts: a provider names its round
                // in its own words, and a bet placed before rounds were keyed per
                // provider carries the round as it was then.
                let bet: &Reservation = match self.reservations.get(&reservation_id) {
                    Some(bet) => bet,
                    None => {
                        if !self.voided.contains(&reservation_id) {
                            self.check_round_open(&named_round)?;
                        }
                        return Err(self
                            .open_reservation(&reservation_id)
                            .expect_err("a bet not held is not open"));
                    }
                };
                let settled_stake = match bet.state {
                    ReservationState::Open => Some(bet.amount),
                    ReservationState::Settled => None,
                    state => {
                        self.check_round_open(&bet.round_id)?;
                        return Err(WalletError::ReservationClosed {
                            reservation_id,
                            state,
                        });
                    }
                };
                (
                    bet.round_id.clone(),
                    Some(reservation_id),
                    settled_stake,
                    None,
                    None,
                )
            }
        };
        self.check_round_open(&round_id)?;
        let lost = self.lost_if(round_closed, &round_id, reservation_id.as_ref());
        let lost_stakes: Decimal = lost.iter().map(|l| l.stake).sum();
        // The settled and lost stakes leave the total, the amount joins it.
        let leaving = settled_stake.unwrap_or_default() + lost_stakes;
        if amount > leaving {
            self.check_total(amount - leaving)?;
        }
        let game_id = self
            .rounds
            .get(&round_id)
            .and_then(|r| r.game_id.clone())
            .or_else(|| {
                reservation_id
                    .as_ref()
                    .and_then(|id| self.reservations.get(id))
                    .map(|r| r.game_id.clone())
            })
            .or(game_id);
        // A win for a bet (its first, or a further one) is split as the bet was funded.
        let mut moves = BonusMoves::default();
        let currency = self.balance.currency;
        let bonus_money = !self.awards.is_empty() || !self.free_rounds.is_empty();
        if let (None, None, true) = (&reservation_id, kind, bonus_money) {
            // A win for the round alone is split as the round's bets were paid, so bonus
            // stakes cannot come back as cash by naming no bet (a wallet that never had
            // bonus money has no bet to look for).
            if let Some(bets) = self.round_funding(&round_id, now) {
                self.awards
                    .pay(&mut moves, &bets, bets.bonus.as_ref(), amount, currency);
            }
            // In a round of free bets alone, to the grant's winnings.
            if let Some(free) = self.round_free_bet(&round_id) {
                self.free_bet_paid(&mut moves, free, Some(amount), false);
            }
        }
        if let Some(id) = &reservation_id {
            let bet = &self.reservations[id];
            match settled_stake {
                Some(_) => {
                    self.awards
                        .settle(&mut moves, (id, bet), None, amount, currency);
                }
                None => {
                    self.awards
                        .pay(&mut moves, bet, bet.bonus.as_ref(), amount, currency);
                }
            }
            self.free_bet_paid(&mut moves, (id, bet), Some(amount), settled_stake.is_some());
        }
        self.lose(&mut moves, &lost);
        let bonus = self.finish_bonus(moves, StakeMove::Settle, None);
        if let (Some(stake), None, false) = (settled_stake, kind, round_closed) {
            // A bet's first win that leaves the round open is the plain settle it has
            // always been.
            return Ok(WalletEvent::ReservationSettled {
                reservation_id: reservation_id.expect("a settled stake names its bet"),
                transaction_id,
                stake,
                payout: amount,
                at: self.stamp(now),
                bonus,
            });
        }
        Ok(WalletEvent::WinCredited {
            transaction_id,
            round_id,
            game_id,
            reservation_id,
            settled_stake,
            amount,
            kind,
            campaign_id,
            round_closed,
            lost,
            at: self.stamp(now),
            bonus,
        })
    }

    /// The bets of `round_id` (open, settled and lost alike) as one: their stakes summed,
    /// with the bonus part of the award that paid most of them; `None` when bonus money
    /// paid none. What a win for the round alone is split by. The full state holds every
    /// bet (a compacted one is not asked: see `Wallet::holds`).
    fn round_funding(&self, round_id: &RoundId, now: DateTime<Utc>) -> Option<Reservation> {
        let mut stake = Decimal::ZERO;
        let mut by_award: Vec<crate::wallet::bonus::AwardAmount> = Vec::new();
        let mut game_id = None;
        for bet in self
            .reservations
            .values()
            .filter(|r| &r.round_id == round_id)
        {
            stake += bet.amount;
            game_id.get_or_insert_with(|| bet.game_id.clone());
            if let Some(f) = bet.bonus.as_ref().filter(|f| !f.amount.is_zero()) {
                match by_award.iter_mut().find(|a| a.bonus_id == f.bonus_id) {
                    Some(a) => a.amount += f.amount,
                    None => by_award.push(f.clone()),
                }
            }
        }
        let most = by_award.into_iter().max_by_key(|a| a.amount)?;
        Some(Reservation {
            amount: stake,
            game_id: game_id?,
            round_id: round_id.clone(),
            expires_at: now,
            state: ReservationState::Settled,
            bonus: Some(most),
            free_rounds: None,
        })
    }

    /// Adds to `moves` what losing `lost` does to bonus money (their bonus parts leave,
    /// their stakes count toward wagering).
    pub(super) fn lose(&self, moves: &mut BonusMoves, lost: &[LostBet]) {
        let currency = self.balance.currency;
        for l in lost {
            let bet = &self.reservations[&l.reservation_id];
            self.awards.settle(
                moves,
                (&l.reservation_id, bet),
                None,
                Decimal::ZERO,
                currency,
            );
            self.free_bet_paid(moves, (&l.reservation_id, bet), Some(Decimal::ZERO), true);
        }
    }

    fn close_round(
        &self,
        transaction_id: TransactionId,
        round_id: RoundId,
        now: DateTime<Utc>,
    ) -> WalletEvent {
        let game_id = self.rounds.get(&round_id).and_then(|r| r.game_id.clone());
        // A closed round loses nothing more: closing it again is a repeat.
        let closed = self.rounds.get(&round_id).is_some_and(|r| r.closed);
        let lost = self.lost_if(!closed, &round_id, None);
        let game_id = game_id.or_else(|| {
            lost.first()
                .and_then(|l| self.reservations.get(&l.reservation_id))
                .map(|r| r.game_id.clone())
        });
        let mut moves = BonusMoves::default();
        self.lose(&mut moves, &lost);
        WalletEvent::RoundClosed {
            transaction_id,
            round_id,
            game_id,
            lost,
            at: self.stamp(now),
            bonus: self.finish_bonus(moves, StakeMove::Settle, None),
        }
    }

    fn bet_win(
        &self,
        reservation_id: ReservationId,
        (amount, payout, currency): (Decimal, Decimal, Option<Currency>),
        game_id: GameId,
        round_id: RoundId,
        round_closed: bool,
        now: DateTime<Utc>,
    ) -> Result<WalletEvent, WalletError> {
        self.check_new_bet(&reservation_id, &round_id)?;
        let stake = self.money(amount, currency, Money::new)?;
        let payout = self.money(payout, currency, Money::non_negative)?;
        // The bet as it will be: funded cash first, then by the active award.
        let funded = self.awards.fund(stake, self.balance.available, now);
        let bet = Reservation {
            amount: stake,
            game_id: game_id.clone(),
            round_id: round_id.clone(),
            expires_at: now,
            state: ReservationState::Settled,
            bonus: funded.as_ref().and_then(|(_, f)| f.clone()),
            free_rounds: None,
        };
        let mut moves = BonusMoves::default();
        let cash_payout = self.awards.settle(
            &mut moves,
            (&reservation_id, &bet),
            None,
            payout,
            self.balance.currency,
        );
        self.check_protection(
            now,
            super::protection::Movement::Bet {
                stake: funded.as_ref().map_or(stake, |(cash, _)| *cash),
                payout: cash_payout,
            },
        )?;
        self.funded(funded, stake)?;
        let lost = self.lost_if(round_closed, &round_id, None);
        let leaving = stake + lost.iter().map(|l| l.stake).sum::<Decimal>();
        if payout > leaving {
            self.check_total(payout - leaving)?;
        }
        self.lose(&mut moves, &lost);
        let bonus = self.finish_bonus(moves, StakeMove::Settle, Some(&reservation_id));
        Ok(WalletEvent::BetSettled {
            reservation_id,
            game_id,
            round_id,
            stake,
            payout,
            placed_at: self.stamp(now).unwrap_or(now),
            round_closed,
            lost,
            bonus,
        })
    }

    fn adjust(
        &self,
        transaction_id: TransactionId,
        amount: Decimal,
        (reason, by): (AdjustmentReason, Option<crate::ids::ClientId>),
        round_id: Option<RoundId>,
        currency: Option<Currency>,
    ) -> Result<WalletEvent, WalletError> {
        // Signed: the size is validated as any amount, then the sign put back.
        let size = self.money(amount.abs(), currency, Money::new)?;
        let amount = if amount.is_sign_negative() {
            -size
        } else {
            size
        };
        if let Some(round_id) = &round_id {
            self.check_served(round_id)?;
        }
        let game_id = match &round_id {
            None => None,
            Some(round_id) => match self.rounds.get(round_id) {
                Some(round) => round.game_id.clone(),
                None => {
                    return Err(WalletError::RoundNotFound {
                        round_id: round_id.clone(),
                    })
                }
            },
        };
        if amount < Decimal::ZERO {
            self.check_available(size)?;
        } else {
            self.check_total(size)?;
        }
        Ok(WalletEvent::FundsAdjusted {
            transaction_id,
            amount,
            reason,
            round_id,
            game_id,
            by,
        })
    }

    /// The checks of a bet's id and round, for a reserve and a bet-win alike.
    pub(super) fn check_new_bet(
        &self,
        reservation_id: &ReservationId,
        round_id: &RoundId,
    ) -> Result<(), WalletError> {
        // A voided id is refused as such wherever it is named: a compacted state keeps
        // voided ids but may have forgotten their closed round.
        if self.voided.contains(reservation_id) {
            return Err(WalletError::ReservationClosed {
                reservation_id: reservation_id.clone(),
                state: ReservationState::Voided,
            });
        }
        if self.reservations.contains_key(reservation_id) {
            // A repeat with the same payload never reaches the aggregate: the store
            // answers it from the log. This one asks something else under the same id.
            return Err(WalletError::IdempotencyConflict {
                transaction_id: reservation_id.clone().into(),
            });
        }
        self.check_round_open(round_id)
    }

    /// Notes that the provider of the bet `id` (its scope, `{pid}:{id}`; none for a native
    /// bet) has taken a stake from this wallet. The bet's id, not its round's: a provider's
    /// bet ids were scoped before its round ids were (docs/0012), so its older bets count.
    pub(super) fn serve(&mut self, id: &ReservationId) {
        if let Some((provider, _)) = id.as_str().split_once(':') {
            if let Err(at) = self.served_at(provider) {
                self.served.reserve_exact(1);
                self.served.insert(at, provider.to_string());
            }
        }
    }

    /// Where `provider` stands in the sorted list of providers served (`Err`: where it would).
    fn served_at(&self, provider: &str) -> Result<usize, usize> {
        self.served.binary_search_by(|p| p.as_str().cmp(provider))
    }

    /// `Err(NotServed)` when `round_id` is a provider's and that provider has taken no
    /// stake from this wallet: it may not create money here (a win without a bet, an
    /// adjustment). A native round (no scope) is the operator's, checked by its API.
    fn check_served(&self, round_id: &RoundId) -> Result<(), WalletError> {
        match round_id.provider() {
            Some(provider) if self.served_at(provider).is_err() => Err(WalletError::NotServed {
                provider: provider.to_string(),
            }),
            _ => Ok(()),
        }
    }

    /// Notes that `round_id` was named by an event (opening it, with `game_id`, if new).
    pub(super) fn use_round(&mut self, round_id: &RoundId, game_id: Option<&GameId>) -> &mut Round {
        self.round_uses += 1;
        let uses = self.round_uses;
        let round = self.rounds.get_or_insert(round_id, || Round {
            game_id: None,
            closed: false,
            last_used: uses,
            open_bets: 0,
        });
        round.last_used = uses;
        if round.game_id.is_none() {
            round.game_id = game_id.cloned();
        }
        round
    }

    /// Loses `lost` and, if `closed`, closes `round_id`.
    fn close_bets(&mut self, round_id: &RoundId, closed: bool, lost: &[LostBet]) {
        for bet in lost {
            self.close(&bet.reservation_id, ReservationState::Settled, bet.stake);
        }
        if closed {
            self.use_round(round_id, None).closed = true;
        }
    }

    /// Folds a round event (one only rounds have; `Wallet::apply` sends them here).
    pub(super) fn apply_round(&mut self, event: &WalletEvent) {
        match event {
            WalletEvent::WinCredited {
                round_id,
                game_id,
                reservation_id,
                settled_stake,
                round_closed,
                lost,
                ..
            } => {
                self.use_round(round_id, game_id.as_ref());
                if let (Some(id), Some(stake)) = (reservation_id, settled_stake) {
                    self.close(id, ReservationState::Settled, *stake);
                }
                self.close_bets(round_id, *round_closed, lost);
            }
            WalletEvent::RoundClosed { round_id, lost, .. } => {
                self.use_round(round_id, None);
                self.close_bets(round_id, true, lost);
            }
            WalletEvent::BetSettled {
                reservation_id,
                game_id,
                round_id,
                round_closed,
                lost,
                ..
            } => {
                self.use_round(round_id, Some(game_id));
                self.serve(reservation_id);
                let (id, bet) = event.placed_bet().expect("a BetSettled places a bet");
                self.reservations.insert(id, bet);
                self.close_bets(round_id, *round_closed, lost);
            }
            // Its money moves by its postings alone.
            WalletEvent::FundsAdjusted { .. } => {}
            other => unreachable!("not a round event: {}", other.name()),
        }
    }

    /// Forgets closed rounds, and idle open ones past the [`IDLE_ROUNDS_KEPT`] most
    /// recently used; rounds with an open bet stay.
    pub(super) fn compact_rounds(&mut self) {
        // A round put back from the log (`Wallet::restore_round`) that no event has named
        // since was last used at 0: it goes first, whatever the count of idle rounds.
        let idle = |r: &Round| !r.closed && r.open_bets == 0 && r.last_used > 0;
        let unused = |r: &Round| !r.closed && r.open_bets == 0 && r.last_used == 0;
        let gone = self.rounds.iter().any(|(_, r)| r.closed || unused(r));
        let idle_count = self.rounds.iter().filter(|(_, r)| idle(r)).count();
        // The common case: nothing closed and few idle rounds, nothing to forget.
        if !gone && idle_count <= IDLE_ROUNDS_KEPT {
            return;
        }
        let oldest_kept = if idle_count > IDLE_ROUNDS_KEPT {
            let mut uses: Vec<u64> = self
                .rounds
                .iter()
                .filter(|(_, r)| idle(r))
                .map(|(_, r)| r.last_used)
                .collect();
            let at = uses.len() - IDLE_ROUNDS_KEPT;
            *uses.select_nth_unstable(at).1
        } else {
            1
        };
        self.rounds
            .retain(|_, r| !r.closed && (r.open_bets > 0 || r.last_used >= oldest_kept));
    }
}

mod map;
pub(super) use map::Rounds;

#[cfg(test)]
mod tests;
