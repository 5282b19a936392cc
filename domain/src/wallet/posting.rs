//! What an event does to money, said once: its postings, each a signed amount on one
//! [`Part`] of the balance with what it counts as ([`Flow`]). The aggregate folds its
//! balance from them, and the read side (the totals, the round view, the audit) reads
//! them; `verify`'s fold and the property tests' model work money out on their own, on
//! purpose, so they check this description instead of repeating it.
//!
//! Every arm below is written out (no catch-all): a new event does not compile until it
//! says what it moves.

use rust_decimal::Decimal;

use crate::money::Part;
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

fn lost_stakes(lost: &[LostBet]) -> impl Iterator<Item = Posting> + '_ {
    lost.iter()
        .map(|bet| Posting::new(Part::Reserved, -bet.stake, Flow::Stake))
}

impl WalletEvent {
    /// What the event moves, in the order it moves it. Events that move no money have
    /// none. A zero-amount stake or payout is still a posting: a bet settled for 0 is a
    /// bet.
    pub fn postings(&self) -> Vec<Posting> {
        use Flow::*;
        use Part::{Available, Reserved};
        match self {
            WalletEvent::WalletOpened { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. } => Vec::new(),
            WalletEvent::FundsDeposited { amount, .. } => {
                vec![Posting::new(Available, *amount, Deposit)]
            }
            WalletEvent::FundsWithdrawn { amount, .. } => {
                vec![Posting::new(Available, -*amount, Withdrawal)]
            }
            WalletEvent::FundsReserved { amount, .. } => vec![
                Posting::new(Available, -*amount, Reserve),
                Posting::new(Reserved, *amount, Reserve),
            ],
            WalletEvent::ReservationSettled { stake, payout, .. } => vec![
                Posting::new(Reserved, -*stake, Stake),
                Posting::new(Available, *payout, Payout(None)),
            ],
            WalletEvent::ReservationRefunded { amount, .. } => vec![
                Posting::new(Reserved, -*amount, Refund),
                Posting::new(Available, *amount, Refund),
            ],
            WalletEvent::ReservationExpired { amount, .. } => vec![
                Posting::new(Reserved, -*amount, Expiry),
                Posting::new(Available, *amount, Expiry),
            ],
            WalletEvent::WinCredited {
                settled_stake,
                amount,
                kind,
                lost,
                ..
            } => settled_stake
                .iter()
                .map(|stake| Posting::new(Reserved, -*stake, Stake))
                .chain([Posting::new(Available, *amount, Payout(*kind))])
                .chain(lost_stakes(lost))
                .collect(),
            WalletEvent::RoundClosed { lost, .. } => lost_stakes(lost).collect(),
            WalletEvent::BetSettled {
                stake,
                payout,
                lost,
                ..
            } => [
                Posting::new(Available, -*stake, Stake),
                Posting::new(Available, *payout, Payout(None)),
            ]
            .into_iter()
            .chain(lost_stakes(lost))
            .collect(),
            WalletEvent::FundsAdjusted { amount, .. } => {
                vec![Posting::new(Available, *amount, Adjustment)]
            }
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
            },
            WalletEvent::ReservationRefunded {
                reservation_id: r.clone(),
                transaction_id: t.clone(),
                amount: dec("2.50"),
            },
            WalletEvent::ReservationExpired {
                reservation_id: r.clone(),
                amount: dec("2.50"),
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
