//! The `Wallet` aggregate: one player's money in one currency.
//!
//! Every rule is in [`Wallet::decide`], one match arm per command, which returns the one
//! event the command produces or the rule it broke. `apply` folds an event into the state
//! and never refuses: an event is a fact. The cqrs-es `Aggregate::handle` is `decide`
//! followed by a write to the sink, so any write path (cqrs-es's, or a batched one) runs
//! the same rules.
//!
//! Invariants, kept by `decide` and checked by the property tests:
//! - available >= 0 and reserved >= 0;
//! - reserved = the sum of the open reservations' amounts;
//! - deposits - withdrawals - settled and lost stakes + payouts (settles, wins, bet-less
//!   wins, bet-wins) + adjustments = available + reserved;
//! - nothing is staked, won or rolled back in a closed round (see [`round`]).

pub mod bonus;
mod command;
mod compaction;
mod error;
mod event;
pub mod free_rounds;
mod posting;
pub mod protection;
pub mod round;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

pub use bonus::{Award, AwardStatus, Terms as BonusTerms};
pub use command::{
    WalletCommand, WinTarget, RESERVATION_TIMEOUT_S_DEFAULT, RESERVATION_TIMEOUT_S_MAX,
    RESERVATION_TIMEOUT_S_MIN,
};
pub use error::{ReservationState, WalletError};
pub use event::{WalletEvent, EVENT_VERSION};
pub use posting::{Flow, Posting};
pub use round::{BetlessKind, LostBet, Round, IDLE_ROUNDS_KEPT};

use crate::ids::{GameId, PlayerId, ReservationId, RoundId, WalletId};
use crate::money::{Balance, Currency, Money, BALANCE_MAX};
use bonus::{BetBonus, BonusMoves, StakeMove};
use protection::Movement;

/// Services the aggregate needs: none. Outside data is placed in the command instead.
#[derive(Debug, Clone, Copy, Default)]
pub struct WalletServices;

/// A bet's stake held until its round is settled, refunded or expired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reservation {
    pub amount: Decimal,
    pub game_id: GameId,
    pub round_id: RoundId,
    pub expires_at: DateTime<Utc>,
    pub state: ReservationState,
    /// The part of `amount` an award paid, and which (absent: all cash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bonus: Option<bonus::AwardAmount>,
    /// The free-rounds grant a free bet (of 0) used.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub free_rounds: Option<crate::ids::BonusId>,
}

/// The state of an opened wallet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Opened {
    wallet_id: WalletId,
    player_id: PlayerId,
    balance: Balance,
    /// Every reservation ever made, closed ones too: a late settle or a reused id must be
    /// told "closed", not "not found".
    reservations: BTreeMap<ReservationId, Reservation>,
    /// Ids rolled back before any bet was placed under them.
    #[serde(default)]
    voided: BTreeSet<ReservationId>,
    /// The rounds this state knows: all of them in the full state; in a compacted one,
    /// the open rounds with an open bet and the most recently used idle ones.
    #[serde(default)]
    rounds: round::Rounds,
    /// Round events folded so far: the clock of `Round::last_used`.
    #[serde(default)]
    round_uses: u64,
    /// Limits, exclusion and lock, once the wallet has had any (see [`protection`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    protection: Option<Box<protection::Protection>>,
    /// The providers (and Hub88 operators) that have taken a stake from this wallet, by
    /// the scope of their rounds, in order: only they may pay it a win without a bet or an
    /// adjustment (see [`round`]). A few at most, kept by a compacted state too.
    /// Required in a snapshot: one written before it (migration 0009) cannot be read, and
    /// the wallet is folded from its log instead.
    served: Vec<String>,
    /// Bonus awards, in grant order (see [`bonus`]).
    #[serde(default, skip_serializing_if = "bonus::Awards::is_empty")]
    awards: bonus::Awards,
    /// Free-round grants, in grant order (see [`free_rounds`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    free_rounds: Vec<free_rounds::FreeRounds>,
}

/// The aggregate. `Default` is a wallet not yet opened.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Wallet {
    opened: Option<Opened>,
}

impl Wallet {
    /// The balance, or `None` before the wallet is opened.
    pub fn balance(&self) -> Option<Balance> {
        self.opened.as_ref().map(|o| o.balance)
    }

    /// The player owning the wallet, once opened.
    pub fn player_id(&self) -> Option<&PlayerId> {
        self.opened.as_ref().map(|o| &o.player_id)
    }

    /// The reservations still open, in id order.
    pub fn open_reservations(&self) -> impl Iterator<Item = (&ReservationId, &Reservation)> {
        self.opened
            .iter()
            .flat_map(|o| o.reservations.iter())
            .filter(|(_, r)| r.state == ReservationState::Open)
    }

    /// The reservation made under `id`, open or closed, if any.
    pub fn reservation(&self, id: &ReservationId) -> Option<&Reservation> {
        self.opened.as_ref().and_then(|o| o.reservations.get(id))
    }

    /// The round `id`, if this state knows it (see [`Wallet::compact`]).
    pub fn round(&self, id: &RoundId) -> Option<&Round> {
        self.opened.as_ref().and_then(|o| o.rounds.get(id))
    }

    /// The wallet's limits, exclusion and lock, if it ever had any.
    pub fn protection(&self) -> Option<&protection::Protection> {
        self.opened.as_ref()?.protection.as_deref()
    }

    /// The protections as the API shows them at `now`; `None` for a wallet that never
    /// had one (or is not open).
    pub fn protection_view(&self, now: DateTime<Utc>) -> Option<protection::ProtectionView> {
        let o = self.opened.as_ref()?;
        Some(o.protection.as_deref()?.view(now, o.balance.reserved))
    }

    /// The wallet's free-round grants, in grant order.
    pub fn free_rounds(&self) -> impl Iterator<Item = &free_rounds::FreeRounds> {
        self.opened.iter().flat_map(|o| o.free_rounds.iter())
    }

    /// The wallet's bonus awards, in grant order.
    pub fn awards(&self) -> impl Iterator<Item = &Award> {
        self.opened.iter().flat_map(|o| o.awards.iter())
    }

    /// Whether `id` was voided by a rollback before any bet under it.
    pub fn is_voided(&self, id: &ReservationId) -> bool {
        self.opened.as_ref().is_some_and(|o| o.voided.contains(id))
    }

    /// Decides what `command` does to this wallet: the one event it produces, or the rule
    /// it breaks. Changes nothing; `apply` the event to move the state on.
    pub fn decide(&self, command: WalletCommand) -> Result<WalletEvent, WalletError> {
        match (&self.opened, command) {
            (Some(opened), command) => opened.decide(command),
            (
                None,
                WalletCommand::Open {
                    player_id,
                    currency,
                    brand_id,
                },
            ) => Ok(WalletEvent::WalletOpened {
                wallet_id: WalletId::for_player_in(&brand_id, &player_id, currency),
                player_id,
                currency,
                brand_id,
            }),
            (None, _) => Err(WalletError::WalletNotFound),
        }
    }
}

impl Opened {
    /// The rules of an opened wallet, one arm per command.
    fn decide(&self, command: WalletCommand) -> Result<WalletEvent, WalletError> {
        match command {
            round @ (WalletCommand::Win { .. }
            | WalletCommand::CloseRound { .. }
            | WalletCommand::BetWin { .. }
            | WalletCommand::Adjust { .. }) => self.decide_round(round),
            change @ (WalletCommand::SetLimit { .. }
            | WalletCommand::Exclude { .. }
            | WalletCommand::Lock { .. }
            | WalletCommand::Unlock { .. }) => self.decide_protection(change),
            bonus @ (WalletCommand::GrantBonus { .. }
            | WalletCommand::ForfeitBonus { .. }
            | WalletCommand::ExpireBonus { .. }
            | WalletCommand::GrantFreeRounds { .. }
            | WalletCommand::FreeRoundBet { .. }
            | WalletCommand::ExpireFreeRounds { .. }) => self.decide_bonus(bonus),
            WalletCommand::Open { .. } => Err(WalletError::WalletExists {
                wallet_id: self.wallet_id,
            }),
            WalletCommand::Deposit {
                transaction_id,
                amount,
                currency,
                now,
            } => {
                let amount = self.money(amount, currency, Money::new)?;
                self.check_protection(now, Movement::Deposit(amount))?;
                self.check_total(amount)?;
                Ok(WalletEvent::FundsDeposited {
                    transaction_id,
                    amount,
                    at: self.stamp(now),
                })
            }
            WalletCommand::Withdraw {
                transaction_id,
                amount,
                currency,
                forfeit_bonuses,
            } => {
                let amount = self.money(amount, currency, Money::new)?;
                self.check_unlocked()?;
                let pending: Vec<&Award> =
                    self.awards.iter().filter(|a| !a.status.ended()).collect();
                if let (Some(award), false) = (pending.first(), forfeit_bonuses) {
                    return Err(WalletError::BonusActive {
                        bonus_id: award.bonus_id.clone(),
                        status: award.status.as_str().to_string(),
                    });
                }
                self.check_available(amount)?;
                let mut moves = BonusMoves::default();
                for award in pending {
                    self.awards
                        .end(&mut moves, &award.bonus_id, AwardStatus::Forfeited);
                }
                Ok(WalletEvent::FundsWithdrawn {
                    transaction_id,
                    amount,
                    bonus: moves.recorded(),
                })
            }
            WalletCommand::Reserve {
                reservation_id,
                amount,
                currency,
                game_id,
                round_id,
                timeout_s,
                now,
            } => {
                self.check_new_bet(&reservation_id, &round_id)?;
                if !(RESERVATION_TIMEOUT_S_MIN..=RESERVATION_TIMEOUT_S_MAX).contains(&timeout_s) {
                    return Err(WalletError::InvalidTimeout {
                        timeout_s,
                        min_s: RESERVATION_TIMEOUT_S_MIN,
                        max_s: RESERVATION_TIMEOUT_S_MAX,
                    });
                }
                let amount = self.money(amount, currency, Money::new)?;
                let funded = self.awards.fund(amount, self.balance.available, now);
                self.check_protection(
                    now,
                    Movement::Bet {
                        stake: funded.as_ref().map_or(amount, |(cash, _)| *cash),
                        payout: Decimal::ZERO,
                    },
                )?;
                let (_, from_award) = self.funded(funded, amount)?;
                let moves = BonusMoves {
                    stakes: from_award
                        .map(|f| BetBonus {
                            reservation_id: reservation_id.clone(),
                            bonus_id: f.bonus_id,
                            amount: f.amount,
                        })
                        .into_iter()
                        .collect(),
                    ..BonusMoves::default()
                };
                Ok(WalletEvent::FundsReserved {
                    reservation_id,
                    amount,
                    game_id,
                    round_id,
                    expires_at: now + chrono::Duration::seconds(i64::from(timeout_s)),
                    at: self.stamp(now),
                    bonus: moves.recorded(),
                })
            }
            WalletCommand::Settle {
                reservation_id,
                transaction_id,
                payout,
                currency,
                now,
            } => {
                // What the call says is checked before what it names: a negative payout
                // is a bad request whatever the reservation.
                let payout = self.money(payout, currency, Money::non_negative)?;
                let bet = self.open_reservation(&reservation_id)?;
                let stake = bet.amount;
                // The stake leaves the total and the payout joins it.
                if payout > stake {
                    self.check_total(payout - stake)?;
                }
                let mut moves = BonusMoves::default();
                let currency = self.balance.currency;
                self.awards
                    .settle(&mut moves, (&reservation_id, bet), None, payout, currency);
                self.free_bet_paid(&mut moves, (&reservation_id, bet), Some(payout), true);
                Ok(WalletEvent::ReservationSettled {
                    reservation_id,
                    transaction_id,
                    stake,
                    payout,
                    at: self.stamp(now),
                    bonus: self.finish_bonus(moves, StakeMove::Settle, None),
                })
            }
            WalletCommand::Refund {
                reservation_id,
                transaction_id,
            } => self.refund(reservation_id, transaction_id),
            WalletCommand::Rollback {
                reservation_id,
                transaction_id,
                round_id,
            } => {
                // A known bet's own round counts (see `round`); else the one named. A
                // voided id is answered as voided (see `check_new_bet`).
                if !self.voided.contains(&reservation_id) {
                    let bet_round = self.reservations.get(&reservation_id).map(|r| &r.round_id);
                    self.check_round_open(bet_round.unwrap_or(&round_id))?;
                }
                if !self.reservations.contains_key(&reservation_id)
                    && !self.voided.contains(&reservation_id)
                {
                    return Ok(WalletEvent::ReservationVoided {
                        reservation_id,
                        transaction_id,
                        round_id,
                    });
                }
                self.refund(reservation_id, transaction_id)
            }
            WalletCommand::Expire {
                reservation_id,
                now,
            } => {
                let reservation = self.open_reservation(&reservation_id)?;
                if now < reservation.expires_at {
                    return Err(WalletError::ReservationNotExpired {
                        reservation_id,
                        expires_at: reservation.expires_at,
                    });
                }
                let mut moves = BonusMoves::default();
                self.awards
                    .give_back(&mut moves, &reservation_id, reservation);
                self.free_bet_paid(&mut moves, (&reservation_id, reservation), None, true);
                Ok(WalletEvent::ReservationExpired {
                    amount: reservation.amount,
                    bonus: self.finish_bonus(moves, StakeMove::Return, None),
                    reservation_id,
                })
            }
        }
    }

    /// Validates an amount against the wallet's currency; returns it at the currency's scale.
    fn money(
        &self,
        amount: Decimal,
        requested: Option<Currency>,
        validate: fn(Decimal, Currency) -> Result<Money, crate::money::AmountError>,
    ) -> Result<Decimal, WalletError> {
        let currency = self.balance.currency;
        if let Some(requested) = requested.filter(|r| *r != currency) {
            return Err(WalletError::CurrencyMismatch {
                wallet: currency,
                requested,
            });
        }
        validate(amount, currency)
            .map(|m| m.amount())
            .map_err(|reason| WalletError::InvalidAmount { amount, reason })
    }

    /// A rollback's or refund's event: the stake returns, each part where it came from.
    fn refund(
        &self,
        reservation_id: ReservationId,
        transaction_id: crate::ids::TransactionId,
    ) -> Result<WalletEvent, WalletError> {
        let bet = self.open_reservation(&reservation_id)?;
        let mut moves = BonusMoves::default();
        self.awards.give_back(&mut moves, &reservation_id, bet);
        self.free_bet_paid(&mut moves, (&reservation_id, bet), None, true);
        Ok(WalletEvent::ReservationRefunded {
            amount: bet.amount,
            bonus: self.finish_bonus(moves, StakeMove::Return, None),
            reservation_id,
            transaction_id,
        })
    }

    /// A new stake's funding (see [`bonus::Awards::fund`]), or the refusal when cash and
    /// the active award together do not cover `stake`.
    fn funded(
        &self,
        funded: Option<(Decimal, Option<bonus::AwardAmount>)>,
        stake: Decimal,
    ) -> Result<(Decimal, Option<bonus::AwardAmount>), WalletError> {
        funded.ok_or(WalletError::InsufficientFunds {
            available: self.balance.playable(),
            requested: stake,
        })
    }

    fn check_available(&self, requested: Decimal) -> Result<(), WalletError> {
        if self.balance.available < requested {
            return Err(WalletError::InsufficientFunds {
                available: self.balance.available,
                requested,
            });
        }
        Ok(())
    }

    fn check_total(&self, added: Decimal) -> Result<(), WalletError> {
        let attempted = self
            .balance
            .total()
            .checked_add(added)
            .unwrap_or(Decimal::MAX);
        if attempted > BALANCE_MAX {
            return Err(WalletError::LimitExceeded {
                limit: BALANCE_MAX,
                attempted,
            });
        }
        Ok(())
    }

    fn open_reservation(&self, id: &ReservationId) -> Result<&Reservation, WalletError> {
        match self.reservations.get(id) {
            None if self.voided.contains(id) => Err(WalletError::ReservationClosed {
                reservation_id: id.clone(),
                state: ReservationState::Voided,
            }),
            None => Err(WalletError::ReservationNotFound {
                reservation_id: id.clone(),
            }),
            Some(r) if r.state != ReservationState::Open => Err(WalletError::ReservationClosed {
                reservation_id: id.clone(),
                state: r.state,
            }),
            Some(r) => Ok(r),
        }
    }

    /// Marks an open reservation `state`; `logged` is the stake the event says it held
    /// (the event's postings move the money).
    fn close(&mut self, id: &ReservationId, state: ReservationState, logged: Decimal) {
        let reservation = self
            .reservations
            .get_mut(id)
            .expect("an event closes only a reservation that decide found open");
        debug_assert_eq!(reservation.amount, logged, "{id}: the event's stake");
        reservation.state = state;
        // A bet placed before rounds were counted (a snapshot older than them) may find
        // its round uncounted: compaction then forgets that round sooner, which is safe.
        if let Some(round) = self.rounds.get_mut(&reservation.round_id) {
            round.open_bets = round.open_bets.saturating_sub(1);
        }
    }
}

impl Aggregate for Wallet {
    const TYPE: &'static str = "wallet";
    type Command = WalletCommand;
    type Event = WalletEvent;
    type Error = WalletError;
    type Services = WalletServices;

    async fn handle(
        &mut self,
        command: WalletCommand,
        _services: &WalletServices,
        sink: &EventSink<Self>,
    ) -> Result<(), WalletError> {
        let event = self.decide(command)?;
        sink.write(event, self).await;
        Ok(())
    }

    fn apply(&mut self, event: WalletEvent) {
        // The brand is not state: nothing the wallet decides depends on it, and the API
        // reads it from the opening event (`eventstore::payload::wallet_brand`).
        if let WalletEvent::WalletOpened {
            wallet_id,
            player_id,
            currency,
            brand_id: _,
        } = event
        {
            self.opened = Some(Opened {
                wallet_id,
                player_id,
                balance: Balance::zero(currency),
                reservations: BTreeMap::new(),
                voided: BTreeSet::new(),
                rounds: round::Rounds::default(),
                round_uses: 0,
                protection: None,
                served: Vec::new(),
                awards: bonus::Awards::default(),
                free_rounds: Vec::new(),
            });
            return;
        }
        let o = self
            .opened
            .as_mut()
            .expect("every later event follows WalletOpened in the log");
        for posting in event.postings() {
            o.balance.post(posting.part, posting.amount);
        }
        if let WalletEvent::BonusGranted {
            bonus_id,
            amount,
            terms,
            ..
        } = &event
        {
            o.awards.grant(bonus_id.clone(), *amount, terms.clone());
        }
        if let Some((moves, how, own)) = event.bonus_moves() {
            // Free-rounds winnings that become an award are granted first, so the moves
            // may activate it.
            for e in &moves.free_rounds_ended {
                if let Some(terms) = &e.award {
                    o.awards
                        .grant(e.grant_id.clone(), e.winnings, terms.clone());
                }
            }
            o.awards.apply(moves, how, own);
        }
        o.apply_free_rounds(&event);
        // Where each event is folded: the one place a new event must be sent.
        match event {
            WalletEvent::WalletOpened { .. } => unreachable!("folded above"),
            // Awards, grants and their money are folded above.
            WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => {}
            WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. } => o.change_protection(&event),
            WalletEvent::WinCredited { .. }
            | WalletEvent::RoundClosed { .. }
            | WalletEvent::BetSettled { .. }
            | WalletEvent::FundsAdjusted { .. } => {
                o.count_limits(&event);
                o.apply_round(&event);
            }
            WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::FundsReserved { .. }
            | WalletEvent::ReservationSettled { .. }
            | WalletEvent::ReservationRefunded { .. }
            | WalletEvent::ReservationExpired { .. }
            | WalletEvent::ReservationVoided { .. } => {
                o.count_limits(&event);
                o.apply_plain(event);
            }
        }
        debug_assert!(o.balance.parts().all(|(_, amount)| amount >= Decimal::ZERO));
    }
}

impl Opened {
    /// Folds an event of the plain wallet (not one of [`round`]'s).
    fn apply_plain(&mut self, event: WalletEvent) {
        let o = self;
        match event {
            // Money moves by the event's postings (see `apply`).
            WalletEvent::FundsDeposited { .. } | WalletEvent::FundsWithdrawn { .. } => {}
            reserved @ WalletEvent::FundsReserved { .. } => {
                let (id, reservation) = reserved
                    .into_opened_reservation()
                    .expect("a FundsReserved opens a reservation");
                o.use_round(&reservation.round_id, Some(&reservation.game_id))
                    .open_bets += 1;
                o.serve(&id);
                o.reservations.insert(id, reservation);
            }
            WalletEvent::ReservationSettled {
                reservation_id,
                stake,
                ..
            } => o.close(&reservation_id, ReservationState::Settled, stake),
            WalletEvent::ReservationRefunded {
                reservation_id,
                amount,
                ..
            } => o.close(&reservation_id, ReservationState::Refunded, amount),
            WalletEvent::ReservationExpired {
                reservation_id,
                amount,
                ..
            } => o.close(&reservation_id, ReservationState::Expired, amount),
            WalletEvent::ReservationVoided { reservation_id, .. } => {
                o.voided.insert(reservation_id);
            }
            other => unreachable!("not a plain event: {}", other.name()),
        }
    }
}

#[cfg(test)]
mod tests;
