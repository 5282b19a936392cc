//! Commands: what a caller asks of a wallet. Outside facts (the time) are placed in the
//! command by the caller; the aggregate never reads a clock.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::ids::{GameId, PlayerId, ReservationId, RoundId, TransactionId};
use crate::money::Currency;

/// Reservation timeout when the caller names none: one hour, as the contract says.
pub const RESERVATION_TIMEOUT_S_DEFAULT: u32 = 3_600;
/// Shortest reservation timeout accepted.
pub const RESERVATION_TIMEOUT_S_MIN: u32 = 1;
/// Longest reservation timeout accepted: a week.
pub const RESERVATION_TIMEOUT_S_MAX: u32 = 7 * 24 * 3_600;

/// A command for one wallet. Amounts arrive as parsed decimals; the aggregate judges their
/// sign and scale against the wallet's currency. `currency`, when given, must be the
/// wallet's: a guard for callers that want to be sure which money they move.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WalletCommand {
    /// Open the wallet of `player_id` in `currency`.
    Open {
        player_id: PlayerId,
        currency: Currency,
    },
    /// Credit available.
    Deposit {
        transaction_id: TransactionId,
        amount: Decimal,
        currency: Option<Currency>,
    },
    /// Debit available.
    Withdraw {
        transaction_id: TransactionId,
        amount: Decimal,
        currency: Option<Currency>,
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
}

impl WalletCommand {
    /// The caller's transaction id: the key under which a repeat is recognised.
    /// `Open` has none (a second open is `WalletExists`); `Expire` is the engine's own.
    pub fn transaction_id(&self) -> Option<TransactionId> {
        match self {
            WalletCommand::Open { .. } | WalletCommand::Expire { .. } => None,
            WalletCommand::Deposit { transaction_id, .. }
            | WalletCommand::Withdraw { transaction_id, .. }
            | WalletCommand::Settle { transaction_id, .. }
            | WalletCommand::Refund { transaction_id, .. }
            | WalletCommand::Rollback { transaction_id, .. } => Some(transaction_id.clone()),
            WalletCommand::Reserve { reservation_id, .. } => Some(reservation_id.clone().into()),
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
        }
    }

    /// A canonical text of what the caller asked, to tell "the same request again" from
    /// "another request under the same transaction id". Amounts are normalised (`10` and
    /// `10.00` are the same request) and the time a request arrived is left out. A JSON
    /// array, so no id can forge another request's text with a separator.
    pub fn fingerprint(&self) -> String {
        let amount = |d: &Decimal| d.normalize().to_string();
        let value = match self {
            WalletCommand::Open {
                player_id,
                currency,
            } => json!(["open", player_id, currency]),
            WalletCommand::Deposit {
                transaction_id,
                amount: a,
                currency,
            } => json!(["deposit", transaction_id, amount(a), currency]),
            WalletCommand::Withdraw {
                transaction_id,
                amount: a,
                currency,
            } => json!(["withdraw", transaction_id, amount(a), currency]),
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
        };
        value.to_string()
    }
}
