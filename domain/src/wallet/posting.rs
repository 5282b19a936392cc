//! What an event does to money, said once: its postings, each a signed amount on one
//! [`Part`] of the balance with what it counts as ([`Flow`]). The aggregate folds its
//! balance from them, and the read side (the totals, the round view, the audit) reads
//! them; `verify`'s fold and the property tests' model work money out on their own, on
//! purpose, so they check this description instead of repeating it.
//!
//! Every arm below is written out (no catch-all): a new event does not compile until it
//! says what it moves.

use rust_decimal::Decimal;

use crate::ids::ReservationId;
use crate::money::Part;
use crate::wallet::bonus::{BonusMoves, StakeMove};
use crate::wallet::round::{BetlessKind, LostBet};
use crate::wallet::WalletEvent;

/// What a posting counts as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Flow {
    Deposit,
    Withdrawal,
    /// A bet's stake moved from available to reserved (two postings that sum to zero).
    Reserve,
    /// A reserved stake returned to available by a rollback.
    Refund,
    /// A reserved stake returned to available because its bet expired.
    Expiry,
    /// A settled or lost bet's stake leaving the wallet: from reserved, or from available
    /// for a bet-win. One posting per bet, so counting them counts the bets settled.
    Stake,
    /// What a bet or its round paid (`None`), or a win without a bet of that kind.
    Payout(Option<BetlessKind>),
    /// A correction, signed.
    Adjustment,
    /// A settled or lost bet's bonus part leaving the wallet (besides its cash `Stake`,
    /// which every settled bet posts, zero when bonus money paid it all).
    BonusStake,
    /// A payout's bonus share, to the award that funded the bet.
    BonusPayout,
    /// An award's amount entering the balance as it activates.
    BonusGrant,
    /// An award's balance becoming cash at completion (two postings that sum to zero).
    BonusConversion,
    /// Bonus money forfeited: an award's balance when it ends without converting, the
    /// rest above `max_conversion`, or money that reached an award already ended.
    BonusForfeit,
}

/// One movement of money: `amount` (signed) on `part`, counted as `flow`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Posting {
    pub part: Part,
    pub amount: Decimal,
    pub flow: Flow,
}

impl Posting {
    fn new(part: Part, amount: Decimal, flow: Flow) -> Self {
        Posting { part, amount, flow }
    }
}

/// The cash part of each lost bet leaving reserved (its bonus part is in the moves).
fn lost_stakes<'a>(
    lost: &'a [LostBet],
    bonus: &'a Option<Box<BonusMoves>>,
) -> impl Iterator<Item = Posting> + 'a {
    lost.iter().map(move |bet| {
        let from_bonus = bonus
            .as_deref()
            .map_or(Decimal::ZERO, |b| b.stake_of(&bet.reservation_id));
        Posting::new(Part::Reserved, -(bet.stake - from_bonus), Flow::Stake)
    })
}

/// What of the payout `bonus` says is not cash (see [`BonusMoves::not_cash`]).
fn bonus_share(bonus: &Option<Box<BonusMoves>>) -> Decimal {
    bonus.as_deref().map_or(Decimal::ZERO, BonusMoves::not_cash)
}

/// The cash part of a bet's `stake` whose bonus part `bonus` names.
fn cash(stake: Decimal, bet: &ReservationId, bonus: &Option<Box<BonusMoves>>) -> Decimal {
    stake - bonus.as_deref().map_or(Decimal::ZERO, |b| b.stake_of(bet))
}

impl WalletEvent {
    /// What its bonus moves post (see [`WalletEvent::bonus_moves`]): the bonus half of the
    /// event's money.
    fn bonus_postings(&self) -> impl Iterator<Item = Posting> {
        use Part::{Available, Bonus, BonusReserved};
        let mut out = Vec::new();
        let Some((m, stake, own)) = self.bonus_moves() else {
            return out.into_iter();
        };
        let returned = if matches!(self, WalletEvent::ReservationExpired { .. }) {
            Flow::Expiry
        } else {
            Flow::Refund
        };
        for s in m.stakes.iter().filter(|s| !s.amount.is_zero()) {
            let a = s.amount;
            match stake {
                StakeMove::Reserve => {
                    out.push(Posting::new(Bonus, -a, Flow::Reserve));
                    out.push(Posting::new(BonusReserved, a, Flow::Reserve));
                }
                StakeMove::Settle if Some(&s.reservation_id) == own => {
                    out.push(Posting::new(Bonus, -a, Flow::BonusStake))
                }
                StakeMove::Take => out.push(Posting::new(Bonus, -a, Flow::BonusStake)),
                StakeMove::Settle => out.push(Posting::new(BonusReserved, -a, Flow::BonusStake)),
                StakeMove::Return => {
                    out.push(Posting::new(BonusReserved, -a, returned));
                    out.push(Posting::new(Bonus, a, returned));
                }
            }
        }
        if let Some(p) = &m.payout {
            out.push(Posting::new(Bonus, p.amount, Flow::BonusPayout));
        }
        for l in &m.lapsed {
            out.push(Posting::new(Bonus, -l.amount, Flow::BonusForfeit));
        }
        for e in &m.ended {
            if !e.converted.is_zero() {
                out.push(Posting::new(Bonus, -e.converted, Flow::BonusConversion));
                out.push(Posting::new(Available, e.converted, Flow::BonusConversion));
            }
            if !e.forfeited.is_zero() {
                out.push(Posting::new(Bonus, -e.forfeited, Flow::BonusForfeit));
            }
        }
        // Free-rounds winnings paid as cash count as a free-spin win.
        for e in m.free_rounds_ended.iter().filter(|e| e.award.is_none()) {
            if !e.winnings.is_zero() {
                out.push(Posting::new(
                    Available,
                    e.winnings,
                    Flow::Payout(Some(crate::wallet::BetlessKind::FreeSpin)),
                ));
            }
        }
        if let Some(a) = &m.activated {
            out.push(Posting::new(Bonus, a.amount, Flow::BonusGrant));
        }
        out.into_iter()
    }
}

impl WalletEvent {
    /// What the event does to bonus awards, with how its stakes move and the bet-win
    /// whose stake it takes at once: what the aggregate's fold and the postings read.
    pub fn bonus_moves(&self) -> Option<(&BonusMoves, StakeMove, Option<&ReservationId>)> {
        let (moves, how, own) = match self {
            WalletEvent::FundsReserved { bonus, .. } => (bonus, StakeMove::Reserve, None),
            WalletEvent::ReservationRefunded { bonus, .. }
            | WalletEvent::ReservationExpired { bonus, .. } => (bonus, StakeMove::Return, None),
            WalletEvent::BetSettled {
                bonus,
                reservation_id,
                ..
            } => (bonus, StakeMove::Settle, Some(reservation_id)),
            WalletEvent::FundsWithdrawn { bonus, .. }
            | WalletEvent::ReservationSettled { bonus, .. }
            | WalletEvent::WinCredited { bonus, .. }
            | WalletEvent::RoundClosed { bonus, .. }
            | WalletEvent::BonusGranted { bonus, .. } => (bonus, StakeMove::Settle, None),
            WalletEvent::BonusForfeited { bonus, .. }
            | WalletEvent::FreeRoundsExpired { bonus, .. } => {
                return Some((bonus, StakeMove::Settle, None))
            }
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::FundsAdjusted { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::FreeRoundsGranted { .. } => return None,
        };
        moves.as_deref().map(|m| (m, how, own))
    }

    /// What the event moves, in the order it moves it. Events that move no money have
    /// none. A zero-amount stake or payout is still a posting: a bet settled for 0 is a
    /// bet.
    pub fn postings(&self) -> Vec<Posting> {
        use Flow::*;
        use Part::{Available, Reserved};
        // The cash half, then the bonus half (`bonus_postings`).
        let mut postings = match self {
            WalletEvent::WalletOpened { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => Vec::new(),
            WalletEvent::FundsDeposited { amount, .. } => {
                vec![Posting::new(Available, *amount, Deposit)]
            }
            WalletEvent::FundsWithdrawn { amount, .. } => {
                vec![Posting::new(Available, -*amount, Withdrawal)]
            }
            WalletEvent::FundsReserved {
                reservation_id,
                amount,
                bonus,
                ..
            } => {
                let cash = cash(*amount, reservation_id, bonus);
                vec![
                    Posting::new(Available, -cash, Reserve),
                    Posting::new(Reserved, cash, Reserve),
                ]
            }
            WalletEvent::ReservationSettled {
                reservation_id,
                stake,
                payout,
                bonus,
                ..
            } => vec![
                Posting::new(Reserved, -cash(*stake, reservation_id, bonus), Stake),
                Posting::new(Available, *payout - bonus_share(bonus), Payout(None)),
            ],
            WalletEvent::ReservationRefunded {
                reservation_id,
                amount,
                bonus,
                ..
            }
            | WalletEvent::ReservationExpired {
                reservation_id,
                amount,
                bonus,
            } => {
                let cash = cash(*amount, reservation_id, bonus);
                let flow = self.returned_as();
                vec![
                    Posting::new(Reserved, -cash, flow),
                    Posting::new(Available, cash, flow),
                ]
            }
            WalletEvent::WinCredited {
                reservation_id,
                settled_stake,
                amount,
                kind,
                lost,
                bonus,
                ..
            } => settled_stake
                .iter()
                .map(|stake| {
                    let bet = reservation_id
                        .as_ref()
                        .expect("a settled stake names its bet");
                    Posting::new(Reserved, -cash(*stake, bet, bonus), Stake)
                })
                .chain([Posting::new(
                    Available,
                    *amount - bonus_share(bonus),
                    Payout(*kind),
                )])
                .chain(lost_stakes(lost, bonus))
                .collect(),
            WalletEvent::RoundClosed { lost, bonus, .. } => lost_stakes(lost, bonus).collect(),
            WalletEvent::BetSettled {
                reservation_id,
                stake,
                payout,
                lost,
                bonus,
                ..
            } => [
                Posting::new(Available, -cash(*stake, reservation_id, bonus), Stake),
                Posting::new(Available, *payout - bonus_share(bonus), Payout(None)),
            ]
            .into_iter()
            .chain(lost_stakes(lost, bonus))
            .collect(),
            WalletEvent::FundsAdjusted { amount, .. } => {
                vec![Posting::new(Available, *amount, Adjustment)]
            }
        };
        postings.extend(self.bonus_postings());
        postings
    }

    /// How a refund or an expiry counts the stake it returns.
    fn returned_as(&self) -> Flow {
        if matches!(self, WalletEvent::ReservationExpired { .. }) {
            Flow::Expiry
        } else {
            Flow::Refund
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{GameId, ReservationId, RoundId, TransactionId};
    use chrono::Utc;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn moving_a_stake_between_parts_creates_no_money() {
        let r = ReservationId::new("r1").unwrap();
        let t = TransactionId::new("t1").unwrap();
        for event in [
            WalletEvent::FundsReserved {
                reservation_id: r.clone(),
                amount: dec("2.50"),
                game_id: GameId::new("g").unwrap(),
                round_id: RoundId::new("o").unwrap(),
                expires_at: Utc::now(),
                at: None,
                bonus: None,
            },
            WalletEvent::ReservationRefunded {
                reservation_id: r.clone(),
                transaction_id: t.clone(),
                amount: dec("2.50"),
                bonus: None,
            },
            WalletEvent::ReservationExpired {
                reservation_id: r.clone(),
                amount: dec("2.50"),
                bonus: None,
            },
        ] {
            let postings = event.postings();
            assert_eq!(postings.len(), 2, "{event:?}");
            assert_eq!(
                postings.iter().map(|p| p.amount).sum::<Decimal>(),
                Decimal::ZERO
            );
        }
    }

    #[test]
    fn a_bet_win_with_lost_bets_posts_one_stake_per_bet() {
        let lost = |id: &str, stake: &str| LostBet {
            reservation_id: ReservationId::new(id).unwrap(),
            stake: dec(stake),
        };
        let event = WalletEvent::BetSettled {
            reservation_id: ReservationId::new("b").unwrap(),
            game_id: GameId::new("g").unwrap(),
            round_id: RoundId::new("o").unwrap(),
            stake: dec("1.00"),
            payout: dec("0.00"),
            placed_at: Utc::now(),
            round_closed: true,
            lost: vec![lost("l1", "2.00"), lost("l2", "3.00")],
            bonus: None,
        };
        let postings = event.postings();
        let stakes: Vec<_> = postings.iter().filter(|p| p.flow == Flow::Stake).collect();
        assert_eq!(stakes.len(), 3, "a zero payout does not hide a bet");
        assert_eq!(
            stakes.iter().map(|p| p.amount).sum::<Decimal>(),
            dec("-6.00")
        );
        assert_eq!(
            postings
                .iter()
                .filter(|p| p.part == Part::Reserved)
                .map(|p| p.amount)
                .sum::<Decimal>(),
            dec("-5.00"),
            "lost bets leave reserved; the bet-win's own stake leaves available"
        );
    }
}
