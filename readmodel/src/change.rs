//! What one logged event does to the read models.
//!
//! The balance after each event is taken from the event's metadata, where the write path
//! recorded it in the same transaction (`eventstore::idempotency`); the read model never
//! does arithmetic on money, so it cannot drift from the log by rounding. The event itself
//! says which reservation opens or closes and what a settle won or lost.

use chrono::{DateTime, Utc};
use domain::{Balance, Currency, WalletEvent};
use eventstore::idempotency;
use eventstore::log::LoggedEvent;
use rust_decimal::prelude::ToPrimitive;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// An open reservation as the read model shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationView {
    pub reservation_id: String,
    pub amount: Decimal,
    pub game_id: String,
    pub round_id: String,
    pub expires_at: DateTime<Utc>,
}

/// What happens to the wallet's open reservations.
#[derive(Debug, Clone, PartialEq)]
pub enum ReservationChange {
    None,
    Open(ReservationView),
    /// Closed by a settle, refund or expiry.
    Close {
        reservation_id: String,
    },
}

/// One event's effect on the read models.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub wallet_id: String,
    pub sequence: u64,
    pub global_position: i64,
    pub recorded_at: DateTime<Utc>,
    /// The wallet's balance right after the event.
    pub balance: Balance,
    /// Set by the event that opens the wallet.
    pub player_id: Option<String>,
    pub reservation: ReservationChange,
    /// A settle's net win (payout minus stake) in the currency's minor units.
    pub net_win_minor: Option<i64>,
}

/// A logged event that the read models cannot take: a poison message, or a log that needs
/// an upcaster this code does not have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    #[error("event {wallet_id}#{sequence}: unknown event version {version:?}")]
    UnknownVersion {
        wallet_id: String,
        sequence: u64,
        version: String,
    },
    #[error("event {wallet_id}#{sequence}: {problem}")]
    Malformed {
        wallet_id: String,
        sequence: u64,
        problem: String,
    },
}

impl Change {
    /// The change that `event` makes.
    pub fn of(event: &LoggedEvent) -> Result<Change, ChangeError> {
        let malformed = |problem: String| ChangeError::Malformed {
            wallet_id: event.wallet_id.clone(),
            sequence: event.sequence,
            problem,
        };
        if event.event_version != domain::wallet::EVENT_VERSION {
            return Err(ChangeError::UnknownVersion {
                wallet_id: event.wallet_id.clone(),
                sequence: event.sequence,
                version: event.event_version.clone(),
            });
        }
        if event.sequence == 0 {
            return Err(malformed("sequence 0".into()));
        }
        let payload: WalletEvent = serde_json::from_value(event.payload.clone())
            .map_err(|e| malformed(format!("payload: {e}")))?;
        if payload.name() != event.event_type {
            return Err(malformed(format!(
                "event_type {:?} but payload is {}",
                event.event_type,
                payload.name()
            )));
        }
        let balance = idempotency::balance_after(&event.metadata).map_err(malformed)?;
        let mut change = Change {
            wallet_id: event.wallet_id.clone(),
            sequence: event.sequence,
            global_position: event.global_position,
            recorded_at: event.recorded_at,
            balance,
            player_id: None,
            reservation: ReservationChange::None,
            net_win_minor: None,
        };
        match payload {
            WalletEvent::WalletOpened { player_id, .. } => {
                change.player_id = Some(player_id.to_string())
            }
            // A voided id moves no money and opens nothing.
            WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::ReservationVoided { .. } => {}
            WalletEvent::FundsReserved {
                reservation_id,
                amount,
                game_id,
                round_id,
                expires_at,
            } => {
                change.reservation = ReservationChange::Open(ReservationView {
                    reservation_id: reservation_id.to_string(),
                    amount,
                    game_id: game_id.to_string(),
                    round_id: round_id.to_string(),
                    expires_at,
                })
            }
            WalletEvent::ReservationSettled {
                reservation_id,
                stake,
                payout,
                ..
            } => {
                change.net_win_minor =
                    Some(to_minor(payout - stake, balance.currency).ok_or_else(|| {
                        malformed(format!("net win {} out of range", payout - stake))
                    })?);
                change.reservation = ReservationChange::Close {
                    reservation_id: reservation_id.to_string(),
                };
            }
            WalletEvent::ReservationRefunded { reservation_id, .. }
            | WalletEvent::ReservationExpired { reservation_id, .. } => {
                change.reservation = ReservationChange::Close {
                    reservation_id: reservation_id.to_string(),
                }
            }
        }
        Ok(change)
    }
}

/// `amount` in the currency's minor units (cents), if it is whole in them and fits.
pub fn to_minor(amount: Decimal, currency: Currency) -> Option<i64> {
    let minor = amount * Decimal::from(10i64.pow(currency.scale()));
    if minor.fract() != Decimal::ZERO {
        return None;
    }
    minor.to_i64()
}

/// `minor` units of `currency` as an amount at the currency's scale.
pub fn from_minor(minor: i64, currency: Currency) -> Decimal {
    Decimal::new(minor, currency.scale())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_round_trip_at_the_currency_scale() {
        let eur = Decimal::new(-1234, 2);
        assert_eq!(to_minor(eur, Currency::Eur), Some(-1234));
        assert_eq!(from_minor(-1234, Currency::Eur).to_string(), "-12.34");
        assert_eq!(to_minor(Decimal::new(1, 3), Currency::Eur), None);
        assert_eq!(to_minor(Decimal::new(5, 0), Currency::Jpy), Some(5));
        assert_eq!(
            from_minor(150_000_000, Currency::Btc).to_string(),
            "1.50000000"
        );
    }
}
