//! Bonus money: awards beside cash (the "Bonus money" section of the wallet contract).
//!
//! A wallet holds cash (`available`, `reserved`) and bonus funds kept per **award**. One
//! award is active at a time; later grants wait, queued, in grant order. The balance's
//! `bonus` part is the active award's balance, and `bonus_reserved` the bonus parts of
//! open bets, whatever award funded them (docs/0016). A queued award's amount is outside
//! the balance until it activates.
//!
//! What an event does to awards is one [`BonusMoves`], carried by the event (absent: it
//! touched no bonus money). The aggregate folds it with [`Awards::apply`], and `decide`
//! works out the award that completes (or runs dry) by folding the moves it is about to
//! record into a copy of the awards: one piece of code says what a move does. The
//! postings (`WalletEvent::postings`) read the same moves.
//!
//! The rules:
//! - stakes take cash first, then the active award ([`Awards::fund`]);
//! - a payout's bonus share (the bet's bonus part over its stake, rounded down to the
//!   currency's scale) goes to the award that funded the bet; a stake returned by a refund
//!   or an expiry goes back to it too. If that award has ended, the money is forfeited at
//!   once (`lapsed`), recorded and never lost silently;
//! - a settled stake (both parts) adds `stake × contribution / 100` to the progress of the
//!   award that funded it, or of the active award for a cash-only stake, unless the stake
//!   is above the award's `max_bet`; refunded and expired bets add nothing;
//! - an active award completes when its progress reaches `amount × wagering_multiplier`
//!   and no open bet holds its money: its balance becomes cash up to `max_conversion`,
//!   the rest is forfeited. One that has run dry (nothing left and nothing in bets) ends
//!   forfeited with nothing to forfeit, so it does not block a withdrawal forever. Either
//!   way the next queued award activates;
//! - the operator forfeits an award, the engine expires one at its `expires_at`, and a
//!   withdrawal that says `forfeit_bonuses` forfeits every active and queued award.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use crate::ids::{BonusId, GameId, ReservationId};
use crate::money::{Currency, Money};
use crate::wallet::{Opened, Reservation, WalletCommand, WalletError, WalletEvent};

/// The highest wagering multiplier when the deployment names none
/// (`BETLEDGER_BONUS_WAGERING_MAX`): UK licence condition SR 5.1.1's cap of 10.
pub const WAGERING_MULTIPLIER_MAX_DEFAULT: u32 = 10;

/// What an award's grant fixes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Terms {
    /// 1 to the deployment's highest (as the caller sent it; checked by the wallet).
    pub wagering_multiplier: i64,
    pub expires_at: DateTime<Utc>,
    /// The most cash it can become.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_conversion: Option<Decimal>,
    /// A stake above it does not count toward wagering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_bet: Option<Decimal>,
    /// Percent of a stake that counts, per game; other games 100.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub contributions: BTreeMap<GameId, i64>,
}

impl Terms {
    /// The refusal of terms out of range, checked against `now` and the deployment's
    /// highest multiplier (amounts are checked by the wallet, which knows the currency).
    fn check(&self, now: DateTime<Utc>, multiplier_max: u32) -> Result<(), WalletError> {
        let refuse = |reason: String| Err(WalletError::BonusTermsInvalid { reason });
        if !(1..=i64::from(multiplier_max)).contains(&self.wagering_multiplier) {
            return refuse(format!(
                "wagering_multiplier {} is outside 1..={multiplier_max}",
                self.wagering_multiplier
            ));
        }
        if self.expires_at <= now {
            return refuse(format!(
                "expires_at {} is not in the future",
                self.expires_at
            ));
        }
        if let Some((game, pct)) = self
            .contributions
            .iter()
            .find(|(_, p)| !(0..=100).contains(*p))
        {
            return refuse(format!(
                "the contribution of {game} is {pct}%, outside 0 to 100%"
            ));
        }
        Ok(())
    }

    /// Percent of a stake on `game` that counts toward wagering.
    fn contribution(&self, game: &GameId) -> i64 {
        self.contributions.get(game).copied().unwrap_or(100)
    }
}

/// Where an award is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AwardStatus {
    Queued,
    Active,
    Completed,
    Forfeited,
    Expired,
}

impl AwardStatus {
    /// The contract's name.
    pub fn as_str(self) -> &'static str {
        match self {
            AwardStatus::Queued => "queued",
            AwardStatus::Active => "active",
            AwardStatus::Completed => "completed",
            AwardStatus::Forfeited => "forfeited",
            AwardStatus::Expired => "expired",
        }
    }

    /// Whether the award has ended (no money moves into it any more).
    pub fn ended(self) -> bool {
        match self {
            AwardStatus::Queued | AwardStatus::Active => false,
            AwardStatus::Completed | AwardStatus::Forfeited | AwardStatus::Expired => true,
        }
    }
}

/// One award: its grant and where it stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Award {
    pub bonus_id: BonusId,
    pub amount: Decimal,
    pub terms: Terms,
    pub status: AwardStatus,
    /// What it holds now (zero while queued).
    pub balance: Decimal,
    /// Its money in open bets.
    pub in_bets: Decimal,
    /// Wagering counted so far.
    pub progress: Decimal,
    pub converted: Decimal,
    pub forfeited: Decimal,
}

impl Award {
    /// The wagering it needs: `amount × wagering_multiplier`.
    pub fn required(&self) -> Decimal {
        self.amount * Decimal::from(self.terms.wagering_multiplier)
    }
}

/// An amount for one award.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwardAmount {
    pub bonus_id: BonusId,
    pub amount: Decimal,
}

/// The bonus part of one bet's stake, and the award that funded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BetBonus {
    pub reservation_id: ReservationId,
    pub bonus_id: BonusId,
    pub amount: Decimal,
}

/// An award that ended: what became cash and what was forfeited from its balance.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwardEnded {
    pub bonus_id: BonusId,
    pub status: AwardStatus,
    pub converted: Decimal,
    pub forfeited: Decimal,
}

/// What a bet's stake does to bonus money in the event that carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StakeMove {
    /// A bet placed: the award's money goes into the bet.
    Reserve,
    /// A bet-win's own stake: taken from the award at once.
    Take,
    /// A bet settled or lost: its bonus part leaves the wallet.
    Settle,
    /// A bet refunded or expired: its bonus part returns to its award.
    Return,
}

/// What one event does to bonus money, in the order it happens: stakes, the payout's
/// bonus share, money that reached an ended award (`lapsed`), wagering, the awards that
/// end, and the one that activates after them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct BonusMoves {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub stakes: Vec<BetBonus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payout: Option<AwardAmount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lapsed: Vec<AwardAmount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub wagered: Vec<AwardAmount>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ended: Vec<AwardEnded>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub activated: Option<AwardAmount>,
    /// What it does to free-round grants (see `free_rounds`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub free_rounds: Vec<crate::wallet::free_rounds::FreeRoundMove>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub free_rounds_ended: Vec<crate::wallet::free_rounds::FreeRoundsEnded>,
}

impl BonusMoves {
    pub fn is_empty(&self) -> bool {
        *self == BonusMoves::default()
    }

    /// `None` when it moves nothing: what an event records.
    pub fn recorded(self) -> Option<Box<BonusMoves>> {
        (!self.is_empty()).then(|| Box::new(self))
    }

    /// The free-rounds grant a bet placed by this event uses, if it is a free bet.
    pub fn placed_free(&self, bet: &ReservationId) -> Option<BonusId> {
        self.free_rounds
            .iter()
            .find(|m| &m.reservation_id == bet && m.rounds < 0)
            .map(|m| m.grant_id.clone())
    }

    /// What the event pays that is not cash: the payout's bonus share and free-rounds
    /// winnings (kept by the grant, or lapsed).
    pub fn not_cash(&self) -> Decimal {
        self.payout.as_ref().map_or(Decimal::ZERO, |p| p.amount)
            + self.free_rounds.iter().map(|m| m.winnings).sum::<Decimal>()
    }

    /// The award a bet placed by this event (a reserve, a bet-win) was placed under, with
    /// what it paid of the stake (zero for a bet cash covered).
    pub fn placed_under(&self, bet: &ReservationId) -> Option<AwardAmount> {
        self.stakes
            .iter()
            .find(|s| &s.reservation_id == bet)
            .map(|s| AwardAmount {
                bonus_id: s.bonus_id.clone(),
                amount: s.amount,
            })
    }

    /// The bonus part of the stake of `bet`, if any.
    pub fn stake_of(&self, bet: &ReservationId) -> Decimal {
        self.stakes
            .iter()
            .filter(|s| &s.reservation_id == bet)
            .map(|s| s.amount)
            .sum()
    }
}

/// What the moves did to each award, in the order they did it, for people (the audit):
/// `welcome stake 20.00 (bet b1); welcome paid 40.00; welcome wagered 30.00; welcome
/// completed: converted 25.00, forfeited 15.00; reload active with 5.00`.
impl std::fmt::Display for BonusMoves {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut parts: Vec<String> = Vec::new();
        for s in &self.stakes {
            parts.push(format!(
                "{} stake {} (bet {})",
                s.bonus_id, s.amount, s.reservation_id
            ));
        }
        if let Some(p) = &self.payout {
            parts.push(format!("{} paid {}", p.bonus_id, p.amount));
        }
        for l in &self.lapsed {
            parts.push(format!("{} ended: {} forfeited", l.bonus_id, l.amount));
        }
        for w in &self.wagered {
            parts.push(format!("{} wagered {}", w.bonus_id, w.amount));
        }
        for e in &self.ended {
            parts.push(format!(
                "{} {}: converted {}, forfeited {}",
                e.bonus_id,
                e.status.as_str(),
                e.converted,
                e.forfeited
            ));
        }
        for m in &self.free_rounds {
            let mut what = Vec::new();
            if m.rounds < 0 {
                what.push("a round used".to_string());
            }
            if m.rounds > 0 {
                what.push("a round given back".to_string());
            }
            if !m.winnings.is_zero() {
                what.push(format!("won {}", m.winnings));
            }
            if m.lapsed {
                what.push("after it ended: kept by no one".to_string());
            }
            if !what.is_empty() {
                parts.push(format!("free rounds {}: {}", m.grant_id, what.join(", ")));
            }
        }
        for e in &self.free_rounds_ended {
            parts.push(format!(
                "free rounds {} {}: winnings {} {}",
                e.grant_id,
                e.status.as_str(),
                e.winnings,
                if e.award.is_some() {
                    "become an award"
                } else {
                    "paid as cash"
                }
            ));
        }
        if let Some(a) = &self.activated {
            parts.push(format!("{} active with {}", a.bonus_id, a.amount));
        }
        f.write_str(&parts.join("; "))
    }
}

/// A wallet's awards, in grant order. Ended ones are kept: `GET .../bonuses` lists them,
/// and a bet they funded may still settle.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Awards(Vec<Award>);

impl Awards {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Award> {
        self.0.iter()
    }

    pub fn get(&self, id: &BonusId) -> Option<&Award> {
        self.0.iter().find(|a| &a.bonus_id == id)
    }

    fn get_mut(&mut self, id: &BonusId) -> &mut Award {
        self.0
            .iter_mut()
            .find(|a| &a.bonus_id == id)
            .expect("a move names an award the wallet holds")
    }

    /// The active award.
    pub fn active(&self) -> Option<&Award> {
        self.0.iter().find(|a| a.status == AwardStatus::Active)
    }

    /// Whether an award is active or queued (a withdrawal must then forfeit them).
    pub fn any_pending(&self) -> bool {
        self.0.iter().any(|a| !a.status.ended())
    }

    /// Adds a granted award, queued: its activation is a move.
    pub(super) fn grant(&mut self, bonus_id: BonusId, amount: Decimal, terms: Terms) {
        self.0.push(Award {
            bonus_id,
            amount,
            terms,
            status: AwardStatus::Queued,
            balance: Decimal::ZERO,
            in_bets: Decimal::ZERO,
            progress: Decimal::ZERO,
            converted: Decimal::ZERO,
            forfeited: Decimal::ZERO,
        });
    }

    /// Folds `moves`; `stake` says what its stakes are, and `own` names the bet-win whose
    /// stake is taken at once (others in the same event are settled from bets).
    pub(super) fn apply(
        &mut self,
        moves: &BonusMoves,
        stake: StakeMove,
        own: Option<&ReservationId>,
    ) {
        for s in &moves.stakes {
            let award = self.get_mut(&s.bonus_id);
            let how = match stake {
                StakeMove::Settle if Some(&s.reservation_id) == own => StakeMove::Take,
                how => how,
            };
            match how {
                StakeMove::Reserve => {
                    award.balance -= s.amount;
                    award.in_bets += s.amount;
                }
                StakeMove::Take => award.balance -= s.amount,
                StakeMove::Settle => award.in_bets -= s.amount,
                StakeMove::Return => {
                    award.in_bets -= s.amount;
                    award.balance += s.amount;
                }
            }
        }
        if let Some(p) = &moves.payout {
            self.get_mut(&p.bonus_id).balance += p.amount;
        }
        for l in &moves.lapsed {
            let award = self.get_mut(&l.bonus_id);
            award.balance -= l.amount;
            award.forfeited += l.amount;
        }
        for w in &moves.wagered {
            self.get_mut(&w.bonus_id).progress += w.amount;
        }
        for e in &moves.ended {
            let award = self.get_mut(&e.bonus_id);
            award.status = e.status;
            award.balance -= e.converted + e.forfeited;
            award.converted += e.converted;
            award.forfeited += e.forfeited;
        }
        if let Some(a) = &moves.activated {
            let award = self.get_mut(&a.bonus_id);
            award.status = AwardStatus::Active;
            award.balance = a.amount;
        }
    }

    /// How a new stake of `stake` placed at `now` is funded: cash first (`available`),
    /// then the active award, unless it is past its `expires_at` (the sweep has not ended
    /// it yet). `None` when what is usable does not cover it. A stake cash covers still
    /// names the active award, with nothing from it: its wagering counts toward that award,
    /// and only a bet placed while an award is active counts toward it (docs/0016, 3).
    pub(super) fn fund(
        &self,
        stake: Decimal,
        available: Decimal,
        now: DateTime<Utc>,
    ) -> Option<(Decimal, Option<AwardAmount>)> {
        let usable = self.active().filter(|a| now < a.terms.expires_at);
        let from = |a: &Award, amount| AwardAmount {
            bonus_id: a.bonus_id.clone(),
            amount,
        };
        if stake <= available {
            return Some((stake, usable.map(|a| from(a, Decimal::ZERO))));
        }
        let rest = stake - available;
        let award = usable.filter(|a| a.balance >= rest)?;
        Some((available, Some(from(award, rest))))
    }

    /// Adds to `moves` what settling `bet` (held under `id`) with `payout` does: its bonus
    /// part leaves, the payout's bonus share goes to the award that funded it (lapsing if
    /// that award ended), and its stake counts toward wagering. `funding` is the bet's
    /// bonus part when the bet is placed by this same event (a bet-win). Returns the cash
    /// share of the payout.
    pub(super) fn settle(
        &self,
        moves: &mut BonusMoves,
        (id, bet): (&ReservationId, &Reservation),
        funding: Option<&AwardAmount>,
        payout: Decimal,
        currency: Currency,
    ) -> Decimal {
        let funding = funding.or(bet.bonus.as_ref());
        if let Some(f) = funding.filter(|f| !f.amount.is_zero()) {
            moves.stakes.push(BetBonus {
                reservation_id: id.clone(),
                bonus_id: f.bonus_id.clone(),
                amount: f.amount,
            });
        }
        let cash = self.pay(moves, bet, funding, payout, currency);
        // Wagering: toward the award the bet was placed under, while it has not ended.
        let counted = funding.and_then(|f| self.get(&f.bonus_id).filter(|a| !a.status.ended()));
        if let Some(award) = counted {
            let over = award.terms.max_bet.is_some_and(|max| bet.amount > max);
            let pct = award.terms.contribution(&bet.game_id);
            if !over && pct > 0 {
                let amount = (bet.amount * Decimal::from(pct) / Decimal::ONE_HUNDRED)
                    .round_dp_with_strategy(currency.scale(), RoundingStrategy::ToZero);
                if !amount.is_zero() {
                    add(&mut moves.wagered, &award.bonus_id, amount);
                }
            }
        }
        cash
    }

    /// Adds to `moves` the bonus share of `payout` on `bet` (funded by `funding`); returns
    /// the cash share.
    pub(super) fn pay(
        &self,
        moves: &mut BonusMoves,
        bet: &Reservation,
        funding: Option<&AwardAmount>,
        payout: Decimal,
        currency: Currency,
    ) -> Decimal {
        let Some(f) = funding.filter(|_| !bet.amount.is_zero()) else {
            return payout;
        };
        let share = (payout * f.amount / bet.amount)
            .round_dp_with_strategy(currency.scale(), RoundingStrategy::ToZero);
        if share.is_zero() {
            return payout;
        }
        match &mut moves.payout {
            Some(p) if p.bonus_id == f.bonus_id => p.amount += share,
            Some(_) => unreachable!("one event pays one bet's bonus share"),
            none => {
                *none = Some(AwardAmount {
                    bonus_id: f.bonus_id.clone(),
                    amount: share,
                })
            }
        }
        if self.get(&f.bonus_id).is_none_or(|a| a.status.ended()) {
            add(&mut moves.lapsed, &f.bonus_id, share);
        }
        payout - share
    }

    /// Adds to `moves` the return of `bet`'s bonus part to its award (lapsing if that
    /// award ended).
    pub(super) fn give_back(&self, moves: &mut BonusMoves, id: &ReservationId, bet: &Reservation) {
        let Some(f) = bet.bonus.as_ref().filter(|f| !f.amount.is_zero()) else {
            return;
        };
        moves.stakes.push(BetBonus {
            reservation_id: id.clone(),
            bonus_id: f.bonus_id.clone(),
            amount: f.amount,
        });
        if self.get(&f.bonus_id).is_none_or(|a| a.status.ended()) {
            add(&mut moves.lapsed, &f.bonus_id, f.amount);
        }
    }

    /// Adds to `moves` the end of `id` as `status` (forfeiting its balance) and the
    /// activation of the next queued award if `id` was the active one.
    pub(super) fn end(&self, moves: &mut BonusMoves, id: &BonusId, status: AwardStatus) {
        let award = self.get(id).expect("ending an award the wallet holds");
        moves.ended.push(AwardEnded {
            bonus_id: id.clone(),
            status,
            converted: Decimal::ZERO,
            forfeited: award.balance,
        });
    }

    /// Finishes `moves` (with stakes made as `stake`, `own` a bet-win's bet): if, after
    /// them, the active award has met its wagering with no money in bets, or has run dry,
    /// it ends; and when no award is active after them, the next queued one activates.
    pub(super) fn finish(
        &self,
        mut moves: BonusMoves,
        stake: StakeMove,
        own: Option<&ReservationId>,
    ) -> BonusMoves {
        // Nothing can complete or activate without an award pending (a grant adds its
        // award to the copy this is called on first).
        if !self.any_pending() {
            return moves;
        }
        let mut after = self.clone();
        after.apply(&moves, stake, own);
        if let Some(active) = after.active().filter(|a| a.in_bets.is_zero()) {
            if active.progress >= active.required() {
                let converted = active
                    .terms
                    .max_conversion
                    .map_or(active.balance, |max| active.balance.min(max));
                moves.ended.push(AwardEnded {
                    bonus_id: active.bonus_id.clone(),
                    status: AwardStatus::Completed,
                    converted,
                    forfeited: active.balance - converted,
                });
            } else if active.balance.is_zero() {
                moves.ended.push(AwardEnded {
                    bonus_id: active.bonus_id.clone(),
                    status: AwardStatus::Forfeited,
                    converted: Decimal::ZERO,
                    forfeited: Decimal::ZERO,
                });
            }
        }
        let ended = |a: &Award| moves.ended.iter().any(|e| e.bonus_id == a.bonus_id);
        let active_left = after.active().is_some_and(|a| !ended(a));
        if !active_left && moves.activated.is_none() {
            if let Some(next) = after
                .0
                .iter()
                .find(|a| a.status == AwardStatus::Queued && !ended(a))
            {
                moves.activated = Some(AwardAmount {
                    bonus_id: next.bonus_id.clone(),
                    amount: next.amount,
                });
            }
        }
        moves
    }
}

fn add(list: &mut Vec<AwardAmount>, id: &BonusId, amount: Decimal) {
    match list.iter_mut().find(|a| &a.bonus_id == id) {
        Some(a) => a.amount += amount,
        None => list.push(AwardAmount {
            bonus_id: id.clone(),
            amount,
        }),
    }
}

impl Opened {
    /// Finishes the bonus moves an event records: the free-round grants they leave with
    /// nothing to play end (their winnings an award or cash), then the active award that
    /// completes or runs dry ends and the next one activates (see [`Awards::finish`]).
    /// `None` when they move nothing.
    pub(super) fn finish_bonus(
        &self,
        moves: BonusMoves,
        stake: StakeMove,
        own: Option<&ReservationId>,
    ) -> Option<Box<BonusMoves>> {
        let moves = self.finish_free_rounds(moves);
        let made: Vec<_> = moves
            .free_rounds_ended
            .iter()
            .filter_map(|e| e.award.as_ref().map(|t| (e, t)))
            .collect();
        if made.is_empty() {
            return self.awards.finish(moves, stake, own).recorded();
        }
        let mut awards = self.awards.clone();
        for (e, terms) in made {
            awards.grant(e.grant_id.clone(), e.winnings, terms.clone());
        }
        awards.finish(moves, stake, own).recorded()
    }

    /// The rules of the bonus commands (`decide` sends only those here).
    pub(super) fn decide_bonus(&self, command: WalletCommand) -> Result<WalletEvent, WalletError> {
        match command {
            WalletCommand::GrantBonus {
                transaction_id,
                amount,
                mut terms,
                currency,
                multiplier_max,
                now,
                by,
            } => {
                let amount = self.money(amount, currency, Money::new)?;
                terms.check(now, multiplier_max)?;
                for (name, value) in [
                    ("max_conversion", &mut terms.max_conversion),
                    ("max_bet", &mut terms.max_bet),
                ] {
                    if let Some(v) = value {
                        *v = self.money(*v, None, Money::new).map_err(|e| {
                            WalletError::BonusTermsInvalid {
                                reason: format!("{name}: {e}"),
                            }
                        })?;
                    }
                }
                self.check_total(amount)?;
                let bonus_id = BonusId::from(transaction_id);
                let mut awards = self.awards.clone();
                awards.grant(bonus_id.clone(), amount, terms.clone());
                let moves = awards.finish(BonusMoves::default(), StakeMove::Settle, None);
                // (A grant ends no free rounds: only the awards are finished.)
                Ok(WalletEvent::BonusGranted {
                    bonus_id,
                    amount,
                    terms,
                    by,
                    bonus: moves.recorded(),
                })
            }
            WalletCommand::ForfeitBonus {
                transaction_id,
                bonus_id,
                reason,
                by,
            } => {
                self.pending_award(&bonus_id)?;
                let mut moves = BonusMoves::default();
                self.awards
                    .end(&mut moves, &bonus_id, AwardStatus::Forfeited);
                Ok(WalletEvent::BonusForfeited {
                    bonus: self
                        .finish_bonus(moves, StakeMove::Settle, None)
                        .unwrap_or_default(),
                    bonus_id,
                    transaction_id: Some(transaction_id),
                    reason: Some(reason),
                    by: Some(by),
                })
            }
            WalletCommand::ExpireBonus { bonus_id, now } => {
                let award = self.pending_award(&bonus_id)?;
                if now < award.terms.expires_at {
                    return Err(WalletError::BonusNotExpired {
                        bonus_id,
                        expires_at: award.terms.expires_at,
                    });
                }
                let mut moves = BonusMoves::default();
                self.awards.end(&mut moves, &bonus_id, AwardStatus::Expired);
                Ok(WalletEvent::BonusForfeited {
                    bonus: self
                        .finish_bonus(moves, StakeMove::Settle, None)
                        .unwrap_or_default(),
                    bonus_id,
                    transaction_id: None,
                    reason: None,
                    by: None,
                })
            }
            WalletCommand::GrantFreeRounds {
                transaction_id,
                provider,
                game_id,
                rounds,
                bet_value,
                expires_at,
                wagering_multiplier,
                currency,
                multiplier_max,
                now,
                by,
            } => self.grant_free_rounds(
                transaction_id,
                (provider, game_id),
                (rounds, bet_value),
                (expires_at, wagering_multiplier),
                currency,
                multiplier_max,
                now,
                by,
            ),
            WalletCommand::FreeRoundBet {
                reservation_id,
                grant_id,
                game_id,
                round_id,
                payout,
                round_closed,
                timeout_s,
                currency,
                now,
            } => self.free_bet(
                reservation_id,
                grant_id,
                (game_id, round_id),
                payout,
                round_closed,
                timeout_s,
                currency,
                now,
            ),
            WalletCommand::ExpireFreeRounds { grant_id, now } => {
                let moves = self.expire_free_rounds(grant_id.clone(), now)?;
                Ok(WalletEvent::FreeRoundsExpired {
                    bonus: self
                        .finish_bonus(moves, StakeMove::Settle, None)
                        .unwrap_or_default(),
                    grant_id,
                })
            }
            other => unreachable!("not a bonus command: {}", other.name()),
        }
    }

    /// The award `id`, active or queued; else why not.
    fn pending_award(&self, id: &BonusId) -> Result<&Award, WalletError> {
        match self.awards.get(id) {
            Some(a) if !a.status.ended() => Ok(a),
            found => Err(WalletError::BonusNotFound {
                bonus_id: id.clone(),
                state: found.map(|a| a.status.as_str().to_string()),
            }),
        }
    }
}

#[cfg(test)]
mod tests;
