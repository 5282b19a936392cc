//! The round view: one round's bets, wins, adjustments and totals, folded on request from
//! the round's events in the log (`eventstore::payload::round_events`, one index). A read
//! model kept nowhere: a round is short, and the log already indexes it. Its totals are
//! the sums of the events' postings (`WalletEvent::postings`), the one description of
//! what an event moves; the lists say which bet each event settled, lost or returned.

use domain::wallet::Flow;
use domain::{Currency, ReservationId, RoundId, WalletEvent, WalletId};
use rust_decimal::Decimal;
use serde::Serialize;

/// A round as `GET /v1/wallets/{id}/rounds/{round_id}` shows it.
#[derive(Debug, Serialize, Default, utoipa::ToSchema)]
pub struct RoundView {
    pub wallet_id: String,
    pub round_id: String,
    /// open or closed.
    pub status: &'static str,
    pub game_id: Option<String>,
    pub currency: String,
    pub bets: Vec<BetView>,
    pub wins: Vec<WinView>,
    pub adjustments: Vec<AdjustmentView>,
    pub totals: RoundTotals,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct BetView {
    pub transaction_id: String,
    pub amount: String,
    /// open, settled, lost, refunded, expired.
    pub state: &'static str,
    pub sequence: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct WinView {
    pub transaction_id: String,
    pub amount: String,
    pub bet_transaction_id: Option<String>,
    pub kind: Option<&'static str>,
    pub campaign_id: Option<String>,
    pub sequence: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AdjustmentView {
    pub transaction_id: String,
    pub amount: String,
    pub reason: String,
    pub sequence: u64,
}

#[derive(Debug, Serialize, Default, utoipa::ToSchema)]
pub struct RoundTotals {
    /// Stakes taken (settled or lost).
    #[schema(value_type = String)]
    pub stakes: Decimal,
    /// Wins of bets, the round's bet-wins included.
    #[schema(value_type = String)]
    pub wins: Decimal,
    /// Wins without a bet.
    #[schema(value_type = String)]
    pub betless_wins: Decimal,
    #[schema(value_type = String)]
    pub adjustments: Decimal,
    /// What the round moved in all: wins + bet-less wins + adjustments - stakes.
    #[schema(value_type = String)]
    pub net: Decimal,
}

impl RoundView {
    /// An open round with nothing in it yet.
    pub fn new(wallet_id: WalletId, round_id: &RoundId, currency: Currency) -> Self {
        RoundView {
            wallet_id: wallet_id.to_string(),
            round_id: round_id.to_string(),
            status: "open",
            currency: currency.code().to_string(),
            ..RoundView::default()
        }
    }

    fn bet(&mut self, id: &ReservationId) -> Option<&mut BetView> {
        self.bets
            .iter_mut()
            .find(|b| b.transaction_id == id.as_str())
    }

    fn mark(&mut self, id: &ReservationId, state: &'static str) {
        if let Some(bet) = self.bet(id) {
            bet.state = state;
        }
    }

    fn lose(&mut self, lost: &[domain::LostBet]) {
        for l in lost {
            self.mark(&l.reservation_id, "lost");
        }
    }

    fn win(&mut self, transaction_id: String, amount: Decimal, bet: Option<String>, sequence: u64) {
        self.wins.push(WinView {
            transaction_id,
            amount: amount.to_string(),
            bet_transaction_id: bet,
            kind: None,
            campaign_id: None,
            sequence,
        });
    }

    /// Folds one event of the round (logged at `sequence`) into the view.
    pub fn fold(&mut self, event: WalletEvent, sequence: u64) {
        if self.game_id.is_none() {
            self.game_id = event.game_id().map(|g| g.to_string());
        }
        if event.closes_round() {
            self.status = "closed";
        }
        let t = &mut self.totals;
        for posting in event.postings() {
            match posting.flow {
                // A bet's stake and payout, both their cash and bonus parts.
                Flow::Stake | Flow::BonusStake => t.stakes -= posting.amount,
                Flow::Payout(None) | Flow::BonusPayout => t.wins += posting.amount,
                Flow::Payout(Some(_)) => t.betless_wins += posting.amount,
                Flow::Adjustment => t.adjustments += posting.amount,
                Flow::Deposit
                | Flow::Withdrawal
                | Flow::Reserve
                | Flow::Refund
                | Flow::Expiry
                | Flow::BonusGrant
                | Flow::BonusConversion
                | Flow::BonusForfeit => {}
            }
        }
        t.net = t.wins + t.betless_wins + t.adjustments - t.stakes;
        match event {
            WalletEvent::FundsReserved {
                reservation_id,
                amount,
                ..
            } => self.bets.push(BetView {
                transaction_id: reservation_id.into(),
                amount: amount.to_string(),
                state: "open",
                sequence,
            }),
            WalletEvent::ReservationSettled {
                reservation_id,
                transaction_id,
                payout,
                ..
            } => {
                self.mark(&reservation_id, "settled");
                self.win(
                    transaction_id.into(),
                    payout,
                    Some(reservation_id.into()),
                    sequence,
                );
            }
            WalletEvent::ReservationRefunded { reservation_id, .. } => {
                self.mark(&reservation_id, "refunded")
            }
            WalletEvent::ReservationExpired { reservation_id, .. } => {
                self.mark(&reservation_id, "expired")
            }
            WalletEvent::WinCredited {
                transaction_id,
                reservation_id,
                settled_stake,
                amount,
                kind,
                campaign_id,
                lost,
                ..
            } => {
                if let (Some(id), Some(_)) = (&reservation_id, settled_stake) {
                    self.mark(id, "settled");
                }
                match kind {
                    Some(kind) => self.wins.push(WinView {
                        transaction_id: transaction_id.into(),
                        amount: amount.to_string(),
                        bet_transaction_id: None,
                        kind: Some(kind.as_str()),
                        campaign_id: campaign_id.map(String::from),
                        sequence,
                    }),
                    None => self.win(
                        transaction_id.into(),
                        amount,
                        reservation_id.map(String::from),
                        sequence,
                    ),
                }
                self.lose(&lost);
            }
            WalletEvent::RoundClosed { lost, .. } => self.lose(&lost),
            WalletEvent::BetSettled {
                reservation_id,
                stake,
                payout,
                lost,
                ..
            } => {
                self.bets.push(BetView {
                    transaction_id: reservation_id.to_string(),
                    amount: stake.to_string(),
                    state: "settled",
                    sequence,
                });
                self.win(
                    reservation_id.clone().into(),
                    payout,
                    Some(reservation_id.into()),
                    sequence,
                );
                self.lose(&lost);
            }
            WalletEvent::FundsAdjusted {
                transaction_id,
                amount,
                reason,
                ..
            } => self.adjustments.push(AdjustmentView {
                transaction_id: transaction_id.into(),
                amount: amount.to_string(),
                reason: reason.into(),
                sequence,
            }),
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => {}
        }
    }
}
