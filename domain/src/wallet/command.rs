//! Commands: what a caller asks of a wallet. Outside facts (the time) are placed in the
//! command by the caller; the aggregate never reads a clock.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ids::{
    AdjustmentReason, BonusId, BrandId, CampaignId, ClientId, ForfeitReason, GameId, LockReason,
    PlayerId, ReservationId, RoundId, TransactionId,
};
use crate::money::Currency;
use crate::wallet::bonus::Terms;
use crate::wallet::protection::{LimitKind, LimitPeriod};
use crate::wallet::round::BetlessKind;
use chrono_tz::Tz;

/// Reservation timeout when the caller names none: one hour, as the contract says.
pub const RESERVATION_TIMEOUT_S_DEFAULT: u32 = 3_600;
/// Shortest reservation timeout accepted.
pub const RESERVATION_TIMEOUT_S_MIN: u32 = 1;
/// Longest reservation timeout accepted: a week.
pub const RESERVATION_TIMEOUT_S_MAX: u32 = 7 * 24 * 3_600;

/// What a win pays against: one of the round's bets, the round itself, or nothing at all.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WinTarget {
    /// A bet of the round: its first win settles it; a later one is credited to the round.
    Bet(ReservationId),
    /// The round alone, which must be open.
    Round,
    /// No bet: a free-spin, promotional or jackpot win, which may open its round.
    Betless {
        kind: BetlessKind,
        campaign_id: Option<CampaignId>,
    },
}

/// A command for one wallet. Amounts arrive as parsed decimals; the aggregate judges their
/// sign and scale against the wallet's currency. `currency`, when given, must be the
/// wallet's: a guard for callers that want to be sure which money they move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WalletCommand {
    /// Open the wallet of `player_id` in `currency`.
    Open {
        player_id: PlayerId,
        currency: Currency,
        /// The brand it belongs to, for ever ([`BrandId::DEFAULT`] when the caller names
        /// none; also when an instance of an earlier build passes the command on).
        #[serde(default = "BrandId::default_brand")]
        brand_id: BrandId,
    },
    /// Credit available.
    Deposit {
        transaction_id: TransactionId,
        amount: Decimal,
        currency: Option<Currency>,
        now: DateTime<Utc>,
    },
    /// Debit available. Refused while a bonus award is active or queued, unless
    /// `forfeit_bonuses`, which forfeits them in the same event.
    Withdraw {
        transaction_id: TransactionId,
        amount: Decimal,
        currency: Option<Currency>,
        forfeit_bonuses: bool,
    },
    /// Move a bet's stake from available to reserved until the round's result.
    Reserve {
        reservation_id: ReservationId,
        amount: Decimal,
        currency: Option<Currency>,
        game_id: GameId,
        round_id: RoundId,
        timeout_s: u32,
        now: DateTime<Utc>,
    },
    /// Close a reservation with the round's result: the stake leaves, the payout arrives.
    Settle {
        reservation_id: ReservationId,
        transaction_id: TransactionId,
        payout: Decimal,
        currency: Option<Currency>,
        now: DateTime<Utc>,
    },
    /// Close a reservation by returning the stake (a rollback).
    Refund {
        reservation_id: ReservationId,
        transaction_id: TransactionId,
    },
    /// A provider's rollback: refund the reservation if it is open, or, if the wallet never
    /// saw it, void its id so that a bet arriving later under it is refused and never
    /// charged. A rollback of a settled reservation is refused.
    Rollback {
        reservation_id: ReservationId,
        transaction_id: TransactionId,
        round_id: RoundId,
    },
    /// Close a reservation whose timeout has passed by returning the stake.
    Expire {
        reservation_id: ReservationId,
        now: DateTime<Utc>,
    },
    /// A win in a round (see [`WinTarget`]); with `round_closed`, the round closes after it
    /// and its bets still open are lost.
    Win {
        transaction_id: TransactionId,
        round_id: RoundId,
        target: WinTarget,
        amount: Decimal,
        /// The game, for a win that opens its round (a bet-less one); else the round's.
        game_id: Option<GameId>,
        round_closed: bool,
        currency: Option<Currency>,
        now: DateTime<Utc>,
    },
    /// Close a round: its bets still open are lost, and nothing more happens in it.
    CloseRound {
        transaction_id: TransactionId,
        round_id: RoundId,
        now: DateTime<Utc>,
    },
    /// A bet and its result at once: the stake is taken and the payout credited, or
    /// nothing happens. The reservation id is the transaction id, as for a reserve.
    BetWin {
        reservation_id: ReservationId,
        amount: Decimal,
        payout: Decimal,
        currency: Option<Currency>,
        game_id: GameId,
        round_id: RoundId,
        round_closed: bool,
        now: DateTime<Utc>,
    },
    /// A correction: credit (positive) or debit (negative) `amount`, optionally against
    /// a round the wallet knows, which it never reopens.
    Adjust {
        transaction_id: TransactionId,
        amount: Decimal,
        reason: AdjustmentReason,
        round_id: Option<RoundId>,
        currency: Option<Currency>,
        /// The operator's API client that made it; `None` for a provider's (its
        /// transaction id's scope names it).
        by: Option<ClientId>,
    },
    /// Set (`amount`) or remove (`None`) the limit of `kind` per `period` (see
    /// [`crate::wallet::protection`]); `zone` and `cooling_s` are the deployment's.
    SetLimit {
        transaction_id: TransactionId,
        kind: LimitKind,
        period: LimitPeriod,
        amount: Option<Decimal>,
        currency: Option<Currency>,
        zone: Tz,
        cooling_s: u32,
        now: DateTime<Utc>,
        by: ClientId,
    },
    /// Self-exclude until `until`, or indefinitely (`None`).
    Exclude {
        transaction_id: TransactionId,
        until: Option<DateTime<Utc>>,
        now: DateTime<Utc>,
        by: ClientId,
    },
    /// An operator locks the account.
    Lock {
        transaction_id: TransactionId,
        reason: LockReason,
        by: ClientId,
    },
    /// An operator unlocks it.
    Unlock {
        transaction_id: TransactionId,
        reason: LockReason,
        by: ClientId,
    },
    /// An operator grants a bonus award (its id is the transaction id) on `terms`;
    /// `multiplier_max` is the deployment's highest wagering multiplier.
    GrantBonus {
        transaction_id: TransactionId,
        amount: Decimal,
        terms: Terms,
        currency: Option<Currency>,
        multiplier_max: u32,
        now: DateTime<Utc>,
        by: ClientId,
    },
    /// An operator forfeits an active or queued award.
    ForfeitBonus {
        transaction_id: TransactionId,
        bonus_id: BonusId,
        reason: ForfeitReason,
        by: ClientId,
    },
    /// The engine ends an award whose `expires_at` has passed.
    ExpireBonus {
        bonus_id: BonusId,
        now: DateTime<Utc>,
    },
    /// An operator grants free rounds (the grant's id is the transaction id).
    GrantFreeRounds {
        transaction_id: TransactionId,
        provider: String,
        game_id: GameId,
        rounds: i64,
        bet_value: Decimal,
        expires_at: DateTime<Utc>,
        wagering_multiplier: Option<i64>,
        currency: Option<Currency>,
        multiplier_max: u32,
        now: DateTime<Utc>,
        by: ClientId,
    },
    /// A provider's bet that uses one of grant `grant_id`'s free rounds: it costs nothing;
    /// with `payout`, a bet-win. The reservation id is the transaction id, as for a reserve.
    FreeRoundBet {
        reservation_id: ReservationId,
        grant_id: BonusId,
        game_id: GameId,
        round_id: RoundId,
        payout: Option<Decimal>,
        round_closed: bool,
        timeout_s: u32,
        currency: Option<Currency>,
        now: DateTime<Utc>,
    },
    /// The engine ends a free-rounds grant whose `expires_at` has passed.
    ExpireFreeRounds {
        grant_id: BonusId,
        now: DateTime<Utc>,
    },
}

impl WalletCommand {
    /// The caller's transaction id: the key under which a repeat is recognised.
    /// `Open` has none (a second open is `WalletExists`); `Expire` is the engine's own.
    pub fn transaction_id(&self) -> Option<TransactionId> {
        match self {
            WalletCommand::Open { .. }
            | WalletCommand::Expire { .. }
            | WalletCommand::ExpireBonus { .. }
            | WalletCommand::ExpireFreeRounds { .. } => None,
            WalletCommand::Deposit { transaction_id, .. }
            | WalletCommand::Withdraw { transaction_id, .. }
            | WalletCommand::Settle { transaction_id, .. }
            | WalletCommand::Refund { transaction_id, .. }
            | WalletCommand::Rollback { transaction_id, .. }
            | WalletCommand::Win { transaction_id, .. }
            | WalletCommand::CloseRound { transaction_id, .. }
            | WalletCommand::Adjust { transaction_id, .. }
            | WalletCommand::SetLimit { transaction_id, .. }
            | WalletCommand::Exclude { transaction_id, .. }
            | WalletCommand::Lock { transaction_id, .. }
            | WalletCommand::Unlock { transaction_id, .. }
            | WalletCommand::GrantBonus { transaction_id, .. }
            | WalletCommand::ForfeitBonus { transaction_id, .. }
            | WalletCommand::GrantFreeRounds { transaction_id, .. } => Some(transaction_id.clone()),
            WalletCommand::Reserve { reservation_id, .. }
            | WalletCommand::BetWin { reservation_id, .. }
            | WalletCommand::FreeRoundBet { reservation_id, .. } => {
                Some(reservation_id.clone().into())
            }
        }
    }

    /// The command's name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            WalletCommand::Open { .. } => "open",
            WalletCommand::Deposit { .. } => "deposit",
            WalletCommand::Withdraw { .. } => "withdraw",
            WalletCommand::Reserve { .. } => "reserve",
            WalletCommand::Settle { .. } => "settle",
            WalletCommand::Refund { .. } => "refund",
            WalletCommand::Rollback { .. } => "rollback",
            WalletCommand::Expire { .. } => "expire",
            WalletCommand::Win { .. } => "win",
            WalletCommand::CloseRound { .. } => "close_round",
            WalletCommand::BetWin { .. } => "bet_win",
            WalletCommand::Adjust { .. } => "adjust",
            WalletCommand::SetLimit {
                amount: Some(_), ..
            } => "set_limit",
            WalletCommand::SetLimit { amount: None, .. } => "remove_limit",
            WalletCommand::Exclude { .. } => "exclude",
            WalletCommand::Lock { .. } => "lock",
            WalletCommand::Unlock { .. } => "unlock",
            WalletCommand::GrantBonus { .. } => "grant_bonus",
            WalletCommand::ForfeitBonus { .. } => "forfeit_bonus",
            WalletCommand::ExpireBonus { .. } => "expire_bonus",
            WalletCommand::GrantFreeRounds { .. } => "grant_free_rounds",
            WalletCommand::FreeRoundBet { .. } => "free_round_bet",
            WalletCommand::ExpireFreeRounds { .. } => "expire_free_rounds",
        }
    }

    /// A canonical text of what the caller asked, to tell "the same request again" from
    /// "another request under the same transaction id". Amounts are normalised (`10` and
    /// `10.00` are the same request) and the time a request arrived is left out. A JSON
    /// array, so no id can forge another request's text with a separator.
    pub fn fingerprint(&self) -> String {
        let amount = |d: &Decimal| d.normalize().to_string();
        let value = match self {
            // A wallet's id names its brand; the default brand's open keeps its old form.
            WalletCommand::Open {
                player_id,
                currency,
                brand_id,
            } if brand_id.is_default() => json!(["open", player_id, currency]),
            WalletCommand::Open {
                player_id,
                currency,
                brand_id,
            } => json!(["open", player_id, currency, brand_id]),
            WalletCommand::Deposit {
                transaction_id,
                amount: a,
                currency,
                now: _,
            } => json!(["deposit", transaction_id, amount(a), currency]),
            // Without `forfeit_bonuses`, the text withdrawals always had.
            WalletCommand::Withdraw {
                transaction_id,
                amount: a,
                currency,
                forfeit_bonuses: false,
            } => json!(["withdraw", transaction_id, amount(a), currency]),
            WalletCommand::Withdraw {
                transaction_id,
                amount: a,
                currency,
                forfeit_bonuses: true,
            } => json!([
                "withdraw",
                transaction_id,
                amount(a),
                currency,
                "forfeit_bonuses"
            ]),
            WalletCommand::Reserve {
                reservation_id,
                amount: a,
                currency,
                game_id,
                round_id,
                timeout_s,
                now: _,
            } => json!([
                "reserve",
                reservation_id,
                amount(a),
                currency,
                game_id,
                round_id,
                timeout_s
            ]),
            WalletCommand::Settle {
                reservation_id,
                transaction_id,
                payout,
                currency,
                now: _,
            } => json!([
                "settle",
                reservation_id,
                transaction_id,
                amount(payout),
                currency
            ]),
            WalletCommand::Refund {
                reservation_id,
                transaction_id,
            } => json!(["refund", reservation_id, transaction_id]),
            WalletCommand::Rollback {
                reservation_id,
                transaction_id,
                round_id,
            } => json!(["rollback", reservation_id, transaction_id, round_id]),
            WalletCommand::Expire { reservation_id, .. } => json!(["expire", reservation_id]),
            // A plain win for a bet is the settle a provider's win was before rounds, so a
            // retry sent across the upgrade is still the same request.
            WalletCommand::Win {
                transaction_id,
                round_id: _,
                target: WinTarget::Bet(reservation_id),
                amount: a,
                game_id: None,
                round_closed: false,
                currency,
                now: _,
            } => json!([
                "settle",
                reservation_id,
                transaction_id,
                amount(a),
                currency
            ]),
            WalletCommand::Win {
                transaction_id,
                round_id,
                target,
                amount: a,
                game_id,
                round_closed,
                currency,
                now: _,
            } => {
                let target = match target {
                    WinTarget::Bet(id) => json!(["bet", id]),
                    WinTarget::Round => json!(["round"]),
                    WinTarget::Betless { kind, campaign_id } => json!([kind, campaign_id]),
                };
                json!([
                    "win",
                    transaction_id,
                    round_id,
                    target,
                    amount(a),
                    game_id,
                    round_closed,
                    currency
                ])
            }
            WalletCommand::CloseRound {
                transaction_id,
                round_id,
                now: _,
            } => json!(["close_round", transaction_id, round_id]),
            WalletCommand::BetWin {
                reservation_id,
                amount: a,
                payout,
                currency,
                game_id,
                round_id,
                round_closed,
                now: _,
            } => json!([
                "bet_win",
                reservation_id,
                amount(a),
                amount(payout),
                currency,
                game_id,
                round_id,
                round_closed
            ]),
            WalletCommand::Adjust {
                transaction_id,
                amount: a,
                reason,
                round_id,
                currency,
                by: _,
            } => json!([
                "adjust",
                transaction_id,
                amount(a),
                reason,
                round_id,
                currency
            ]),
            // The deployment's zone and cooling-off, the time and the client are not the
            // caller's request: a retry after any of them changed is the same request.
            WalletCommand::SetLimit {
                transaction_id,
                kind,
                period,
                amount: a,
                currency,
                ..
            } => json!([
                "set_limit",
                transaction_id,
                kind,
                period,
                a.as_ref().map(amount),
                currency
            ]),
            WalletCommand::Exclude {
                transaction_id,
                until,
                ..
            } => json!(["exclude", transaction_id, until]),
            WalletCommand::Lock {
                transaction_id,
                reason,
                ..
            } => json!(["lock", transaction_id, reason]),
            WalletCommand::Unlock {
                transaction_id,
                reason,
                ..
            } => json!(["unlock", transaction_id, reason]),
            // The deployment's cap, the time and the client are not the caller's request.
            WalletCommand::GrantBonus {
                transaction_id,
                amount: a,
                terms,
                currency,
                ..
            } => json!([
                "grant_bonus",
                transaction_id,
                amount(a),
                terms.wagering_multiplier,
                terms.expires_at,
                terms.max_conversion.as_ref().map(amount),
                terms.max_bet.as_ref().map(amount),
                terms.contributions,
                currency
            ]),
            WalletCommand::ForfeitBonus {
                transaction_id,
                bonus_id,
                reason,
                ..
            } => json!(["forfeit_bonus", transaction_id, bonus_id, reason]),
            WalletCommand::ExpireBonus { bonus_id, .. } => json!(["expire_bonus", bonus_id]),
            WalletCommand::GrantFreeRounds {
                transaction_id,
                provider,
                game_id,
                rounds,
                bet_value,
                expires_at,
                wagering_multiplier,
                currency,
                ..
            } => json!([
                "grant_free_rounds",
                transaction_id,
                provider,
                game_id,
                rounds,
                amount(bet_value),
                expires_at,
                wagering_multiplier,
                currency
            ]),
            WalletCommand::FreeRoundBet {
                reservation_id,
                grant_id,
                game_id,
                round_id,
                payout,
                round_closed,
                timeout_s,
                currency,
                now: _,
            } => json!([
                "free_round_bet",
                reservation_id,
                grant_id,
                game_id,
                round_id,
                payout.as_ref().map(amount),
                round_closed,
                timeout_s,
                currency
            ]),
            WalletCommand::ExpireFreeRounds { grant_id, .. } => {
                json!(["expire_free_rounds", grant_id])
            }
        };
        value.to_string()
    }
}
