//! What one logged event does to the read models.
//!
//! The balance after each event is taken from the event's metadata, where the write path
//! recorded it in the same transaction (`eventstore::idempotency`); the read model never
//! does arithmetic on money, so it cannot drift from the log by rounding. The event itself,
//! decoded by the log's one decoder (`LoggedEvent::decode`), says which reservation opens
//! or closes and what a settle won or lost.

use chrono::{DateTime, Utc};
use domain::{Balance, GameId, PlayerId, ReservationId, WalletEvent, WalletId};
use eventstore::idempotency;
use eventstore::log::LoggedEvent;
use eventstore::payload::DecodeError;

use crate::model::{to_minor, ReservationView};
use crate::totals::{self, Contribution};

/// What happens to the wallet's open reservations.
#[derive(Debug, Clone, PartialEq)]
pub enum ReservationChange {
    None,
    Open(ReservationView),
    /// Closed by a settle, refund or expiry.
    Close {
        reservation_id: ReservationId,
    },
}

/// One event's effect on the read models.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub wallet_id: WalletId,
    pub sequence: u64,
    pub global_position: i64,
    pub recorded_at: DateTime<Utc>,
    /// The wallet's balance right after the event.
    pub balance: Balance,
    /// Set by the event that opens the wallet.
    pub player_id: Option<PlayerId>,
    /// Set by the event that opens a wallet of a brand other than the default.
    pub brand: Option<domain::BrandId>,
    pub reservation: ReservationChange,
    /// Further reservations the event closes: the bets a round's close lost.
    pub closed_also: Vec<ReservationId>,
    /// What the event adds to the player's net win on the boards (`WalletEvent::net_win`)
    /// in the currency's minor units.
    pub net_win_minor: Option<i64>,
    /// The game of that net win, when the event names it; else the read model takes it
    /// from the reservation closed.
    pub game_id: Option<GameId>,
    /// What the event adds to the day's totals ([`crate::totals`]), counted at the UTC
    /// day of `recorded_at`.
    pub totals: Contribution,
    /// A protected wallet's limits, exclusion and lock after the event, as its metadata
    /// recorded them (JSON, checked to decode).
    pub protection: Option<String>,
}

/// A logged event that the read models cannot take: a poison message, or a log that needs
/// an upcaster this code does not have.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ChangeError {
    #[error("event {wallet_id}#{sequence}: {source}")]
    Decode {
        wallet_id: WalletId,
        sequence: u64,
        source: DecodeError,
    },
    #[error("event {wallet_id}#{sequence}: {problem}")]
    Malformed {
        wallet_id: WalletId,
        sequence: u64,
        problem: String,
    },
}

impl Change {
    /// The change that `event` makes.
    pub fn of(event: &LoggedEvent) -> Result<Change, ChangeError> {
        let malformed = |problem: String| ChangeError::Malformed {
            wallet_id: event.wallet_id,
            sequence: event.sequence,
            problem,
        };
        if event.sequence == 0 {
            return Err(malformed("sequence 0".into()));
        }
        let payload = event.decode().map_err(|source| ChangeError::Decode {
            wallet_id: event.wallet_id,
            sequence: event.sequence,
            source,
        })?;
        let recorded = event.recorded().map_err(malformed)?;
        let balance = idempotency::balance_after(&recorded).map_err(malformed)?;
        let protection = idempotency::protection_after(&recorded)
            .map_err(malformed)?
            .map(|p| serde_json::to_string(&p).expect("protections serialise"));
        let mut change = Change {
            wallet_id: event.wallet_id,
            sequence: event.sequence,
            global_position: event.global_position,
            recorded_at: event.recorded_at,
            balance,
            player_id: None,
            brand: None,
            reservation: ReservationChange::None,
            closed_also: Vec::new(),
            net_win_minor: None,
            game_id: payload.game_id().cloned(),
            totals: totals::contributions(
                &payload,
                balance.currency,
                recorded.get(idempotency::KEY_ROUND_OPENED).is_some(),
            )
            .map_err(malformed)?,
            protection,
        };
        if let Some(net) = payload.net_win() {
            change.net_win_minor = Some(
                to_minor(net, balance.currency)
                    .ok_or_else(|| malformed(format!("net win {net} out of range")))?,
            );
        }
        let closed = payload.closed_reservations();
        if let WalletEvent::WalletOpened {
            player_id,
            brand_id,
            ..
        } = &payload
        {
            change.player_id = Some(player_id.clone());
            change.brand = (!brand_id.is_default()).then(|| brand_id.clone());
        }
        if let reserved @ WalletEvent::FundsReserved { .. } = payload {
            let (id, reservation) = reserved
                .into_opened_reservation()
                .expect("a FundsReserved opens a reservation");
            change.reservation = ReservationChange::Open(ReservationView::of(&id, &reservation));
        }
        // A win in a round whose game nobody named (a round opened by a bet-less win
        // without `game_id`) is on no board: there is neither a game nor a bet to look it
        // up from. The rebuild's fold leaves it off the boards alike.
        if change.game_id.is_none() && closed.is_empty() {
            change.net_win_minor = None;
        }
        let mut closed = closed.into_iter();
        if let Some(reservation_id) = closed.next() {
            change.reservation = ReservationChange::Close { reservation_id };
        }
        change.closed_also = closed.collect();
        Ok(change)
    }
}
