//! Free rounds (the contract's "Bonus money"): an operator grants a number of rounds of one
//! game at a fixed bet value, playable with one provider; a bet that names the grant costs
//! the player nothing and uses one round. Its wins add to the grant's winnings, which stay
//! outside the balance until the grant ends: when every round is played and settled, or at
//! its `expires_at` (the engine's expiry, as for reservations and awards). The winnings
//! then become a bonus award (its `bonus_id` the grant's id, wagered `wagering_multiplier`
//! times, expiring [`AWARD_DAYS`] after the grant did) or, without a multiplier, cash
//! counted as a free-spin win.
//!
//! What an event does to grants is in its [`BonusMoves`] (`free_rounds`,
//! `free_rounds_ended`): the fold applies it ([`Opened::apply_free_rounds`]), and `decide`
//! finds the grants that end by applying the moves it is about to record to a copy.
//! A free bet is a reservation of 0 that remembers its grant; a win for a bet of a grant
//! that has ended is recorded and kept by no one (`lapsed`): the grant's rounds were over.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{BonusId, ClientId, GameId, ReservationId, RoundId, TransactionId};
use crate::money::{Currency, Money};
use crate::wallet::bonus::{BonusMoves, Terms};
use crate::wallet::{Opened, Reservation, WalletError, WalletEvent};

/// How long an award made of free-rounds winnings runs, counted from the grant's own
/// `expires_at` (the contract does not say; docs/0016).
pub const AWARD_DAYS: i64 = 30;

/// Most rounds one grant may give.
pub const ROUNDS_MAX: i64 = 10_000;

/// Where a grant is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FreeRoundsStatus {
    Active,
    /// Every round played and settled.
    Completed,
    Expired,
}

impl FreeRoundsStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            FreeRoundsStatus::Active => "active",
            FreeRoundsStatus::Completed => "completed",
            FreeRoundsStatus::Expired => "expired",
        }
    }
}

/// One grant of free rounds and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreeRounds {
    pub grant_id: BonusId,
    /// The provider (or `hub88.{operator}`) whose bets may use it.
    pub provider: String,
    pub game_id: GameId,
    pub rounds: i64,
    pub bet_value: Decimal,
    pub expires_at: DateTime<Utc>,
    /// The award its winnings become; `None` (or 0): they become cash.
    pub wagering_multiplier: Option<i64>,
    pub rounds_left: i64,
    /// Its bets not yet settled.
    pub open: i64,
    pub winnings: Decimal,
    pub status: FreeRoundsStatus,
}

/// What one event does to one grant: a round used (`rounds` -1) or given back (+1), a bet
/// opened (`open` +1) or closed (-1), winnings added; `lapsed` when the grant had ended
/// (nothing is kept).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreeRoundMove {
    pub grant_id: BonusId,
    pub reservation_id: ReservationId,
    #[serde(default)]
    pub rounds: i64,
    #[serde(default)]
    pub open: i64,
    #[serde(default)]
    pub winnings: Decimal,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub lapsed: bool,
}

/// A grant that ended, with its winnings and, when they become an award, its terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FreeRoundsEnded {
    pub grant_id: BonusId,
    pub status: FreeRoundsStatus,
    pub winnings: Decimal,
    /// The terms of the award the winnings become; `None`: they are cash.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub award: Option<Terms>,
}

impl FreeRounds {
    fn active(&self) -> bool {
        self.status == FreeRoundsStatus::Active
    }

    /// How it ends as `status` with its winnings: an award's terms, or cash.
    fn ended(&self, status: FreeRoundsStatus) -> FreeRoundsEnded {
        let award = self
            .wagering_multiplier
            .filter(|m| *m > 0 && !self.winnings.is_zero())
            .map(|m| Terms {
                wagering_multiplier: m,
                expires_at: self.expires_at + chrono::Duration::days(AWARD_DAYS),
                max_conversion: None,
                max_bet: None,
                contributions: Default::default(),
            });
        FreeRoundsEnded {
            grant_id: self.grant_id.clone(),
            status,
            winnings: self.winnings,
            award,
        }
    }
}

/// Folds `moves` into `grants` (the fold's and `decide`'s copy alike).
pub(super) fn apply(grants: &mut [FreeRounds], moves: &BonusMoves) {
    let find = |grants: &mut [FreeRounds], id: &BonusId| -> Option<usize> {
        grants.iter().position(|g| &g.grant_id == id)
    };
    for m in &moves.free_rounds {
        let Some(i) = find(grants, &m.grant_id) else {
            continue;
        };
        let g = &mut grants[i];
        g.rounds_left += m.rounds;
        g.open += m.open;
        if !m.lapsed {
            g.winnings += m.winnings;
        }
    }
    for e in &moves.free_rounds_ended {
        if let Some(i) = find(grants, &e.grant_id) {
            grants[i].status = e.status;
        }
    }
}

impl Opened {
    /// The rules of the free-rounds grant.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn grant_free_rounds(
        &self,
        transaction_id: TransactionId,
        (provider, game_id): (String, GameId),
        (rounds, bet_value): (i64, Decimal),
        (expires_at, wagering_multiplier): (DateTime<Utc>, Option<i64>),
        currency: Option<Currency>,
        multiplier_max: u32,
        now: DateTime<Utc>,
        by: ClientId,
    ) -> Result<WalletEvent, WalletError> {
        let refuse = |reason: String| Err(WalletError::BonusTermsInvalid { reason });
        let bet_value = self.money(bet_value, currency, Money::new)?;
        if !(1..=ROUNDS_MAX).contains(&rounds) {
            return refuse(format!("rounds {rounds} is outside 1..={ROUNDS_MAX}"));
        }
        if expires_at <= now {
            return refuse(format!("expires_at {expires_at} is not in the future"));
        }
        if let Some(m) =
            wagering_multiplier.filter(|m| !(0..=i64::from(multiplier_max)).contains(m))
        {
            return refuse(format!(
                "wagering_multiplier {m} is outside 0..={multiplier_max}"
            ));
        }
        if provider.is_empty() || provider.chars().count() > 64 {
            return refuse("provider_id must be 1 to 64 characters".into());
        }
        Ok(WalletEvent::FreeRoundsGranted {
            grant_id: BonusId::from(transaction_id),
            provider,
            game_id,
            rounds,
            bet_value,
            expires_at,
            wagering_multiplier: wagering_multiplier.filter(|m| *m > 0),
            by,
        })
    }

    /// The grant `id` if a bet of `game_id` in `round_id` may use one of its rounds at
    /// `now`; else why not.
    pub(super) fn free_round_for(
        &self,
        id: &BonusId,
        game_id: &GameId,
        round_id: &RoundId,
        now: DateTime<Utc>,
    ) -> Result<&FreeRounds, WalletError> {
        let unavailable = |reason: String| WalletError::FreeRoundsUnavailable {
            grant_id: id.clone(),
            reason,
        };
        let g = self
            .free_rounds
            .iter()
            .find(|g| &g.grant_id == id)
            .ok_or_else(|| unavailable("no such grant on this wallet".into()))?;
        if !g.active() || now >= g.expires_at {
            return Err(unavailable(format!(
                "it has {}",
                if g.active() { "expired" } else { "ended" }
            )));
        }
        if g.rounds_left < 1 {
            return Err(unavailable("no rounds are left".into()));
        }
        if &g.game_id != game_id {
            return Err(unavailable(format!("it is for game {}", g.game_id)));
        }
        if round_id.provider() != Some(g.provider.as_str()) {
            return Err(unavailable(format!("it is for provider {}", g.provider)));
        }
        Ok(g)
    }

    /// Adds to `moves` what paying the free bet `bet` (held under `id`) does: `payout` to
    /// its grant's winnings (`None`: a refund or expiry, which gives the round back), and,
    /// when it `closes` the bet, one open bet fewer. Nothing for a bet paid with money.
    pub(super) fn free_bet_paid(
        &self,
        moves: &mut BonusMoves,
        (id, bet): (&ReservationId, &Reservation),
        payout: Option<Decimal>,
        closes: bool,
    ) {
        let Some(grant_id) = &bet.free_rounds else {
            return;
        };
        let live = self
            .free_rounds
            .iter()
            .any(|g| &g.grant_id == grant_id && g.active());
        moves.free_rounds.push(FreeRoundMove {
            grant_id: grant_id.clone(),
            reservation_id: id.clone(),
            rounds: i64::from(payout.is_none() && live),
            open: -i64::from(closes),
            winnings: payout.unwrap_or_default(),
            lapsed: !live,
        });
    }

    /// The grant of the free bets of `round_id`, when free bets alone were placed in it:
    /// what a win for the round alone pays into.
    pub(super) fn round_free_bet(
        &self,
        round_id: &RoundId,
    ) -> Option<(&ReservationId, &Reservation)> {
        let mut bets = self
            .reservations
            .iter()
            .filter(|(_, r)| &r.round_id == round_id);
        let first = bets.next()?;
        let all_free = first.1.free_rounds.is_some()
            && bets.all(|(_, r)| r.free_rounds == first.1.free_rounds);
        all_free.then_some(first)
    }

    /// Ends, in `moves`, the grants its free-round moves leave with no round left and no
    /// bet open.
    pub(super) fn finish_free_rounds(&self, mut moves: BonusMoves) -> BonusMoves {
        if moves.free_rounds.is_empty() {
            return moves;
        }
        let mut after = self.free_rounds.clone();
        apply(&mut after, &moves);
        for g in after
            .iter()
            .filter(|g| g.active() && g.rounds_left == 0 && g.open == 0)
        {
            if moves.free_rounds.iter().any(|m| m.grant_id == g.grant_id) {
                moves
                    .free_rounds_ended
                    .push(g.ended(FreeRoundsStatus::Completed));
            }
        }
        moves
    }

    /// The engine's expiry of grant `id` at `now`: its winnings become an award or cash.
    pub(super) fn expire_free_rounds(
        &self,
        id: BonusId,
        now: DateTime<Utc>,
    ) -> Result<BonusMoves, WalletError> {
        let g = self
            .free_rounds
            .iter()
            .find(|g| g.grant_id == id && g.active())
            .ok_or_else(|| WalletError::FreeRoundsUnavailable {
                grant_id: id.clone(),
                reason: "no such grant running on this wallet".into(),
            })?;
        if now < g.expires_at {
            return Err(WalletError::BonusNotExpired {
                bonus_id: id,
                expires_at: g.expires_at,
            });
        }
        Ok(BonusMoves {
            free_rounds_ended: vec![g.ended(FreeRoundsStatus::Expired)],
            ..BonusMoves::default()
        })
    }

    /// A free bet of `game_id` in `round_id` under `reservation_id`, using a round of
    /// grant `grant_id`; with `payout`, a bet-win.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn free_bet(
        &self,
        reservation_id: ReservationId,
        grant_id: BonusId,
        (game_id, round_id): (GameId, RoundId),
        payout: Option<Decimal>,
        round_closed: bool,
        timeout_s: u32,
        currency: Option<Currency>,
        now: DateTime<Utc>,
    ) -> Result<WalletEvent, WalletError> {
        self.check_new_bet(&reservation_id, &round_id)?;
        let payout = payout
            .map(|p| self.money(p, currency, Money::non_negative))
            .transpose()?;
        // A free bet costs nothing; the lock and the exclusion still stop it.
        self.check_protection(
            now,
            super::protection::Movement::Bet {
                stake: Decimal::ZERO,
                payout: Decimal::ZERO,
            },
        )?;
        self.free_round_for(&grant_id, &game_id, &round_id, now)?;
        let used = FreeRoundMove {
            grant_id,
            reservation_id: reservation_id.clone(),
            rounds: -1,
            open: i64::from(payout.is_none()),
            winnings: payout.unwrap_or_default(),
            lapsed: false,
        };
        let moves = BonusMoves {
            free_rounds: vec![used],
            ..BonusMoves::default()
        };
        let zero = self.balance.currency.zero();
        match payout {
            None => Ok(WalletEvent::FundsReserved {
                reservation_id,
                amount: zero,
                game_id,
                round_id,
                expires_at: now + chrono::Duration::seconds(i64::from(timeout_s)),
                at: self.stamp(now),
                bonus: self.finish_bonus(moves, super::bonus::StakeMove::Reserve, None),
            }),
            Some(payout) => {
                let lost = self.lost_if(round_closed, &round_id, None);
                let mut moves = moves;
                self.lose(&mut moves, &lost);
                Ok(WalletEvent::BetSettled {
                    bonus: self.finish_bonus(
                        moves,
                        super::bonus::StakeMove::Settle,
                        Some(&reservation_id),
                    ),
                    reservation_id,
                    game_id,
                    round_id,
                    stake: zero,
                    payout,
                    placed_at: self.stamp(now).unwrap_or(now),
                    round_closed,
                    lost,
                })
            }
        }
    }

    /// Folds what `event` does to free-round grants.
    pub(super) fn apply_free_rounds(&mut self, event: &WalletEvent) {
        if let WalletEvent::FreeRoundsGranted {
            grant_id,
            provider,
            game_id,
            rounds,
            bet_value,
            expires_at,
            wagering_multiplier,
            ..
        } = event
        {
            self.free_rounds.push(FreeRounds {
                grant_id: grant_id.clone(),
                provider: provider.clone(),
                game_id: game_id.clone(),
                rounds: *rounds,
                bet_value: *bet_value,
                expires_at: *expires_at,
                wagering_multiplier: *wagering_multiplier,
                rounds_left: *rounds,
                open: 0,
                winnings: Decimal::ZERO,
                status: FreeRoundsStatus::Active,
            });
        }
        if let Some((moves, _, _)) = event.bonus_moves() {
            apply(&mut self.free_rounds, moves);
        }
    }
}
