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

mod command;
mod error;
mod event;
mod posting;
pub mod protection;
pub mod round;

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use cqrs_es::event_sink::EventSink;
use cqrs_es::Aggregate;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

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

    /// Forgets the closed reservations, keeping the open ones and the voided ids, and the
    /// closed and long-idle rounds (see [`round`]): what a cache holds of an idle wallet,
    /// so its memory does not grow with its history.
    ///
    /// A compacted wallet cannot tell a closed reservation from one never made, so a
    /// command naming a reservation it does not hold (see [`Wallet::holds`]) must be
    /// decided on the full state, loaded from the log. A reserve under a closed id is
    /// still refused: its id is its transaction id, which the log holds once per wallet.
    pub fn compact(&mut self) {
        if let Some(o) = self.opened.as_mut() {
            o.reservations
                .retain(|_, r| r.state == ReservationState::Open);
            if o.reservations.is_empty() {
                // An emptied map keeps its first node (room for eleven): let it go.
                o.reservations = BTreeMap::new();
            }
            o.compact_rounds();
        }
    }

    /// Whether this state, as a cache holds it, may stand for `full` (the log folded to the
    /// same event): the same wallet, balance, voided ids, limits and round clock; every
    /// reservation it holds equal to `full`'s, and every open one held; every round it
    /// holds equal to `full`'s but for when it was last used (a round put back from the
    /// log does not know it), and every round with an open bet held. A cache that forgets
    /// step by step (after each batch) may keep other idle rounds than one compaction of
    /// `full` would, and both decide what they hold as `full` does. What `reconcile`
    /// checks a stored snapshot against.
    pub fn stands_for(&self, full: &Wallet) -> bool {
        let (o, f) = match (&self.opened, &full.opened) {
            (None, None) => return true,
            (Some(o), Some(f)) => (o, f),
            _ => return false,
        };
        let same_wallet = o.wallet_id == f.wallet_id
            && o.player_id == f.player_id
            && o.balance == f.balance
            && o.voided == f.voided
            && o.round_uses == f.round_uses
            && o.protection == f.protection
            && o.served == f.served;
        let reservations = o
            .reservations
            .iter()
            .all(|(id, r)| f.reservations.get(id) == Some(r))
            && f.reservations
                .iter()
                .filter(|(_, r)| r.state == ReservationState::Open)
                .all(|(id, _)| o.reservations.contains_key(id));
        let rounds = o.rounds.iter().all(|(id, r)| {
            f.rounds.get(id).is_some_and(|g| {
                g.game_id == r.game_id && g.closed == r.closed && g.open_bets == r.open_bets
            })
        }) && f
            .rounds
            .iter()
            .filter(|(_, r)| r.open_bets > 0)
            .all(|(id, _)| o.rounds.contains_key(id));
        same_wallet && reservations && rounds
    }

    /// A compacted copy (see [`Wallet::compact`]).
    pub fn compacted(&self) -> Wallet {
        let mut wallet = self.clone();
        wallet.compact();
        wallet
    }

    /// Whether this state can decide `command` as the full state would, once compacted:
    /// false when the command names a reservation that is neither held nor voided, a
    /// bet that is not open here (a later win for it needs its round's history), or a
    /// round it must know but does not hold. A command that would open a round this state
    /// does not hold is decided here: see [`Wallet::round_opened_by`].
    pub fn holds(&self, command: &WalletCommand) -> bool {
        match command {
            WalletCommand::Settle { reservation_id, .. }
            | WalletCommand::Refund { reservation_id, .. }
            | WalletCommand::Expire { reservation_id, .. }
            | WalletCommand::Rollback { reservation_id, .. } => {
                self.reservation(reservation_id).is_some() || self.is_voided(reservation_id)
            }
            WalletCommand::Win {
                target: WinTarget::Bet(reservation_id),
                ..
            } => self
                .reservation(reservation_id)
                .is_some_and(|r| r.state == ReservationState::Open),
            WalletCommand::Win {
                target: WinTarget::Round,
                round_id,
                ..
            }
            | WalletCommand::Adjust {
                round_id: Some(round_id),
                ..
            } => self.round(round_id).is_some(),
            WalletCommand::Win {
                target: WinTarget::Betless { .. },
                ..
            }
            | WalletCommand::Adjust { round_id: None, .. }
            | WalletCommand::Open { .. }
            | WalletCommand::Deposit { .. }
            | WalletCommand::Withdraw { .. }
            | WalletCommand::Reserve { .. }
            | WalletCommand::CloseRound { .. }
            | WalletCommand::BetWin { .. }
            | WalletCommand::SetLimit { .. }
            | WalletCommand::Exclude { .. }
            | WalletCommand::Lock { .. }
            | WalletCommand::Unlock { .. } => true,
        }
    }

    /// What the full state knows for `command` and a compacted one may have forgotten
    /// (see [`Wallet::holds`]): the reservation it names and the round it names. Put back
    /// from the log ([`Wallet::restore_reservation`], and [`Wallet::restore_round`] for
    /// this round and for the round of the reservation put back), they let this state
    /// decide the command as the full state would.
    pub fn named(command: &WalletCommand) -> (Option<&ReservationId>, Option<&RoundId>) {
        match command {
            WalletCommand::Settle { reservation_id, .. }
            | WalletCommand::Refund { reservation_id, .. }
            | WalletCommand::Expire { reservation_id, .. } => (Some(reservation_id), None),
            WalletCommand::Rollback {
                reservation_id,
                round_id,
                ..
            }
            | WalletCommand::Win {
                target: WinTarget::Bet(reservation_id),
                round_id,
                ..
            } => (Some(reservation_id), Some(round_id)),
            WalletCommand::Win { round_id, .. }
            | WalletCommand::Adjust {
                round_id: Some(round_id),
                ..
            } => (None, Some(round_id)),
            // A bet or a close names a round it may open: see `unheld_round`.
            WalletCommand::Adjust { round_id: None, .. }
            | WalletCommand::Open { .. }
            | WalletCommand::Deposit { .. }
            | WalletCommand::Withdraw { .. }
            | WalletCommand::Reserve { .. }
            | WalletCommand::CloseRound { .. }
            | WalletCommand::BetWin { .. }
            | WalletCommand::SetLimit { .. }
            | WalletCommand::Exclude { .. }
            | WalletCommand::Lock { .. }
            | WalletCommand::Unlock { .. } => (None, None),
        }
    }

    /// The round `id`, if this state knows it (see [`Wallet::compact`]).
    pub fn round(&self, id: &RoundId) -> Option<&Round> {
        self.opened.as_ref().and_then(|o| o.rounds.get(id))
    }

    /// The round that `event`, decided on this state, opens as far as this state knows:
    /// the round it names when this state does not hold it. The write paths record it
    /// with the event, and the log takes one such record per wallet and round, so a
    /// compacted state that forgot a round cannot open it a second time: its event is
    /// refused by the log and the command decided again on the full state.
    pub fn round_opened_by(&self, event: &WalletEvent) -> Option<RoundId> {
        let opened = self.opened.as_ref()?;
        match event {
            WalletEvent::FundsReserved { round_id, .. }
            | WalletEvent::WinCredited { round_id, .. }
            | WalletEvent::RoundClosed { round_id, .. }
            | WalletEvent::BetSettled { round_id, .. }
                if !opened.rounds.contains_key(round_id) =>
            {
                Some(round_id.clone())
            }
            WalletEvent::FundsReserved { .. }
            | WalletEvent::WinCredited { .. }
            | WalletEvent::RoundClosed { .. }
            | WalletEvent::BetSettled { .. }
            | WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::ReservationSettled { .. }
            | WalletEvent::ReservationRefunded { .. }
            | WalletEvent::ReservationExpired { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::FundsAdjusted { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. } => None,
        }
    }

    /// Folds `event`, read from the log after this state (a snapshot's, or a cache's
    /// behind the log), as [`Aggregate::apply`] does; `opened` is the round the log
    /// recorded the event as opening (its `round_opened` key), if any.
    ///
    /// Returns the round the event names that this state did not hold and that the event
    /// did not open: a round a compacted state forgot, named by an event decided on a
    /// state that held it (another instance's cache, a command decided on the full
    /// state). Folding it puts the round back with what the event names (a bet's game),
    /// which need not be the round's own game, so the loader must put the round back as
    /// the log knows it ([`Wallet::restore_round`]) before this state decides anything.
    pub fn apply_logged(&mut self, event: WalletEvent, opened: Option<&str>) -> Option<RoundId> {
        let forgotten = self
            .round_opened_by(&event)
            .filter(|round| opened != Some(round.as_str()));
        self.apply(event);
        forgotten
    }

    /// The round `command` names (for a win on a bet held here, that bet's own round)
    /// when this state does not hold it. A command that would open it is decided here
    /// when accepted (see [`Wallet::round_opened_by`]); the write path checks a refusal of
    /// it against the log's rounds, and on a second try puts the round back from the log
    /// first (see [`Wallet::restore_round`]).
    pub fn unheld_round<'c>(&'c self, command: &'c WalletCommand) -> Option<&'c RoundId> {
        let round_id = match command {
            WalletCommand::Reserve { round_id, .. }
            | WalletCommand::BetWin { round_id, .. }
            | WalletCommand::CloseRound { round_id, .. } => round_id,
            WalletCommand::Win {
                round_id,
                target: WinTarget::Bet(bet),
                ..
            } => self.reservation(bet).map_or(round_id, |r| &r.round_id),
            WalletCommand::Win { round_id, .. } => round_id,
            WalletCommand::Open { .. }
            | WalletCommand::Deposit { .. }
            | WalletCommand::Withdraw { .. }
            | WalletCommand::Settle { .. }
            | WalletCommand::Refund { .. }
            | WalletCommand::Rollback { .. }
            | WalletCommand::Expire { .. }
            | WalletCommand::Adjust { .. }
            | WalletCommand::SetLimit { .. }
            | WalletCommand::Exclude { .. }
            | WalletCommand::Lock { .. }
            | WalletCommand::Unlock { .. } => return None,
        };
        self.round(round_id).is_none().then_some(round_id)
    }

    /// Puts back a round that a compacted state forgot, as the log knows it (its game and
    /// whether it is closed), so a command naming it is decided here as on the full state.
    /// A round held already takes the log's game (see [`Wallet::apply_logged`]). Changes
    /// no money; a round put back leaves at the next compaction unless an event names it
    /// meanwhile.
    pub fn restore_round(&mut self, round_id: &RoundId, game_id: Option<GameId>, closed: bool) {
        let Some(o) = self.opened.as_mut() else {
            return;
        };
        let open_bets = o
            .reservations
            .values()
            .filter(|r| r.state == ReservationState::Open && &r.round_id == round_id)
            .count() as u32;
        // Used longest ago: unless an event names it now, the next compaction forgets it
        // again before any idle round the state held.
        let round = o.rounds.get_or_insert(round_id, || Round {
            game_id: None,
            closed,
            last_used: 0,
            open_bets,
        });
        round.closed |= closed;
        if game_id.is_some() {
            round.game_id = game_id;
        }
    }

    /// Puts back a closed reservation that a compacted state forgot, as the log knows it
    /// (its bet, and the state its closing left it in), so a command naming it is decided
    /// here as on the full state; its round must be put back too ([`Wallet::restore_round`]).
    /// Changes no money; it leaves at the next compaction. An open reservation is never
    /// forgotten, so one is not put back, and a held one is left as it is.
    pub fn restore_reservation(&mut self, id: ReservationId, reservation: Reservation) {
        let Some(o) = self.opened.as_mut() else {
            return;
        };
        if reservation.state == ReservationState::Open {
            return;
        }
        o.reservations.entry(id).or_insert(reservation);
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
                },
            ) => Ok(WalletEvent::WalletOpened {
                wallet_id: WalletId::for_player(&player_id, currency),
                player_id,
                currency,
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
            } => {
                let amount = self.money(amount, currency, Money::new)?;
                self.check_unlocked()?;
                self.check_available(amount)?;
                Ok(WalletEvent::FundsWithdrawn {
                    transaction_id,
                    amount,
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
                self.check_protection(
                    now,
                    Movement::Bet {
                        stake: amount,
                        payout: Decimal::ZERO,
                    },
                )?;
                self.check_available(amount)?;
                Ok(WalletEvent::FundsReserved {
                    reservation_id,
                    amount,
                    game_id,
                    round_id,
                    expires_at: now + chrono::Duration::seconds(i64::from(timeout_s)),
                    at: self.stamp(now),
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
                let stake = self.open_reservation(&reservation_id)?.amount;
                // The stake leaves the total and the payout joins it.
                if payout > stake {
                    self.check_total(payout - stake)?;
                }
                Ok(WalletEvent::ReservationSettled {
                    reservation_id,
                    transaction_id,
                    stake,
                    payout,
                    at: self.stamp(now),
                })
            }
            WalletCommand::Refund {
                reservation_id,
                transaction_id,
            } => {
                let amount = self.open_reservation(&reservation_id)?.amount;
                Ok(WalletEvent::ReservationRefunded {
                    reservation_id,
                    transaction_id,
                    amount,
                })
            }
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
                let amount = self.open_reservation(&reservation_id)?.amount;
                Ok(WalletEvent::ReservationRefunded {
                    reservation_id,
                    transaction_id,
                    amount,
                })
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
                debug_assert!(self.balance.reserved >= reservation.amount);
                Ok(WalletEvent::ReservationExpired {
                    amount: reservation.amount,
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
        if let WalletEvent::WalletOpened {
            wallet_id,
            player_id,
            currency,
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
            });
            return;
        }
        let o = self
            .opened
            .as_mut()
            .expect("every later event follows WalletOpened in the log");
        o.apply_protection(&event);
        for posting in event.postings() {
            o.balance.post(posting.part, posting.amount);
        }
        if !o.apply_round(&event) {
            o.apply_plain(event);
        }
        debug_assert!(o.balance.available >= Decimal::ZERO && o.balance.reserved >= Decimal::ZERO);
    }
}

impl Opened {
    /// Folds an event of the plain wallet (not one of [`round`]'s).
    fn apply_plain(&mut self, event: WalletEvent) {
        let o = self;
        match event {
            WalletEvent::WalletOpened { .. } => unreachable!("handled above"),
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
            WalletEvent::WinCredited { .. }
            | WalletEvent::RoundClosed { .. }
            | WalletEvent::BetSettled { .. }
            | WalletEvent::FundsAdjusted { .. } => unreachable!("folded by apply_round"),
            // Folded by apply_protection; they move no money.
            WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. } => {}
        }
    }
}

#[cfg(test)]
mod tests;
