//! Events: the facts in the log. Past tense, and never changed once written: a new shape
//! is a new `event_version` with an upcaster, not an edit.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{GameId, PlayerId, ReservationId, RoundId, TransactionId, WalletId};
use crate::money::Currency;
use crate::wallet::{Reservation, ReservationState};

/// Version of every event shape below.
pub const EVENT_VERSION: &str = "1.0";

/// Something that happened to a wallet. Amounts are at the wallet currency's scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WalletEvent {
    WalletOpened {
        wallet_id: WalletId,
        player_id: PlayerId,
        currency: Currency,
    },
    FundsDeposited {
        transaction_id: TransactionId,
        amount: Decimal,
    },
    FundsWithdrawn {
        transaction_id: TransactionId,
        amount: Decimal,
    },
    FundsReserved {
        reservation_id: ReservationId,
        amount: Decimal,
        game_id: GameId,
        round_id: RoundId,
        expires_at: DateTime<Utc>,
    },
    ReservationSettled {
        reservation_id: ReservationId,
        transaction_id: TransactionId,
        stake: Decimal,
        payout: Decimal,
    },
    ReservationRefunded {
        reservation_id: ReservationId,
        transaction_id: TransactionId,
        amount: Decimal,
    },
    ReservationExpired {
        reservation_id: ReservationId,
        amount: Decimal,
    },
    /// A rollback arrived for a reservation the wallet never saw: its id is void, and a
    /// bet arriving later under it is refused. Moves no money.
    ReservationVoided {
        reservation_id: ReservationId,
        transaction_id: TransactionId,
        round_id: RoundId,
    },
}

impl WalletEvent {
    /// The event's name, as stored in `events.event_type`.
    pub fn name(&self) -> &'static str {
        match self {
            WalletEvent::WalletOpened { .. } => "WalletOpened",
            WalletEvent::FundsDeposited { .. } => "FundsDeposited",
            WalletEvent::FundsWithdrawn { .. } => "FundsWithdrawn",
            WalletEvent::FundsReserved { .. } => "FundsReserved",
            WalletEvent::ReservationSettled { .. } => "ReservationSettled",
            WalletEvent::ReservationRefunded { .. } => "ReservationRefunded",
            WalletEvent::ReservationExpired { .. } => "ReservationExpired",
            WalletEvent::ReservationVoided { .. } => "ReservationVoided",
        }
    }
}

impl WalletEvent {
    /// For a `FundsReserved`, the reservation it opens (open, with its amount, game, round
    /// and expiry); `None` for every other event.
    pub fn into_opened_reservation(self) -> Option<(ReservationId, Reservation)> {
        match self {
            WalletEvent::FundsReserved {
                reservation_id,
                amount,
                game_id,
                round_id,
                expires_at,
            } => Some((
                reservation_id,
                Reservation {
                    amount,
                    game_id,
                    round_id,
                    expires_at,
                    state: ReservationState::Open,
                },
            )),
            _ => None,
        }
    }

    /// The names of the events that close a reservation (what SQL over the log matches).
    pub const CLOSING: [&'static str; 3] = [
        "ReservationSettled",
        "ReservationRefunded",
        "ReservationExpired",
    ];

    /// Whether the event closes a reservation (settles, refunds or expires it).
    pub fn closes_reservation(&self) -> bool {
        Self::CLOSING.contains(&self.name())
    }

    /// The reservation the event opens, closes or voids, if any.
    pub fn reservation_id(&self) -> Option<&ReservationId> {
        match self {
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. } => None,
            WalletEvent::FundsReserved { reservation_id, .. }
            | WalletEvent::ReservationSettled { reservation_id, .. }
            | WalletEvent::ReservationRefunded { reservation_id, .. }
            | WalletEvent::ReservationExpired { reservation_id, .. }
            | WalletEvent::ReservationVoided { reservation_id, .. } => Some(reservation_id),
        }
    }

    /// The amounts the event names, as a statement shows them: what it deposits,
    /// withdraws, stakes (a reserve's, or a settle's stake), refunds or expires; and a
    /// settle's payout.
    pub fn amounts(&self) -> (Option<Decimal>, Option<Decimal>) {
        match self {
            WalletEvent::WalletOpened { .. } | WalletEvent::ReservationVoided { .. } => {
                (None, None)
            }
            WalletEvent::FundsDeposited { amount, .. }
            | WalletEvent::FundsWithdrawn { amount, .. }
            | WalletEvent::FundsReserved { amount, .. }
            | WalletEvent::ReservationRefunded { amount, .. }
            | WalletEvent::ReservationExpired { amount, .. } => (Some(*amount), None),
            WalletEvent::ReservationSettled { stake, payout, .. } => (Some(*stake), Some(*payout)),
        }
    }
}

impl DomainEvent for WalletEvent {
    fn event_type(&self) -> String {
        self.name().to_string()
    }

    fn event_version(&self) -> String {
        EVENT_VERSION.to_string()
    }
}
