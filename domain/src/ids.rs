//! Typed identifiers. Caller-chosen ids are bounded, printable strings; a wallet's id is
//! derived from its player and currency, so "one wallet per player and currency" needs no
//! lookup table: opening the same pair twice lands on the same aggregate.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::money::Currency;

/// Longest caller-chosen id accepted (transaction, reservation, player, game, round).
pub const ID_LEN_MAX: usize = 128;

/// Why a caller-chosen id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{field} must be 1 to {ID_LEN_MAX} characters, got {len}")]
    Length { field: &'static str, len: usize },
    #[error("{field} must not contain control characters")]
    ControlCharacter { field: &'static str },
}

fn check_id(field: &'static str, value: &str) -> Result<(), IdError> {
    let len = value.chars().count();
    if len == 0 || len > ID_LEN_MAX {
        return Err(IdError::Length { field, len });
    }
    if value.chars().any(char::is_control) {
        return Err(IdError::ControlCharacter { field });
    }
    Ok(())
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a caller-chosen id.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                check_id($field, &value)?;
                Ok(Self(value))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The casino's id of a player.
    PlayerId,
    "player_id"
);
string_id!(
    /// The caller's id of one money movement; the key of idempotency.
    TransactionId,
    "transaction_id"
);
string_id!(
    /// The id of a reservation (a bet's stake); the transaction id of the reserve.
    ReservationId,
    "reservation_id"
);
string_id!(
    /// A game's id, as the provider names it.
    GameId,
    "game_id"
);
string_id!(
    /// A round's id within a game.
    RoundId,
    "round_id"
);

impl From<ReservationId> for TransactionId {
    fn from(id: ReservationId) -> Self {
        Self(id.0)
    }
}

impl From<TransactionId> for ReservationId {
    fn from(id: TransactionId) -> Self {
        Self(id.0)
    }
}

/// Namespace of wallet ids (UUIDv5): fixed forever, or every wallet id changes.
const WALLET_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_2c1e_8d4a_4f55_9a8e_2b7c_0d3e_51a7);

/// One wallet: a player's money in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WalletId(Uuid);

impl WalletId {
    /// The wallet of `player` in `currency`; the same pair always gives the same id.
    pub fn for_player(player: &PlayerId, currency: Currency) -> Self {
        let name = format!("{}\u{1f}{}", player.as_str(), currency.code());
        Self(Uuid::new_v5(&WALLET_NAMESPACE, name.as_bytes()))
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

impl std::str::FromStr for WalletId {
    type Err = uuid::Error;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Uuid::parse_str(s).map(Self)
    }
}

impl fmt::Display for WalletId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallet_id_is_stable_per_player_and_currency() {
        let p = PlayerId::new("player-1").unwrap();
        assert_eq!(
            WalletId::for_player(&p, Currency::Eur),
            WalletId::for_player(&p, Currency::Eur)
        );
        assert_ne!(
            WalletId::for_player(&p, Currency::Eur),
            WalletId::for_player(&p, Currency::Usd)
        );
    }

    #[test]
    fn ids_are_bounded_and_printable() {
        assert!(TransactionId::new("").is_err());
        assert!(TransactionId::new("x".repeat(ID_LEN_MAX)).is_ok());
        assert!(TransactionId::new("x".repeat(ID_LEN_MAX + 1)).is_err());
        assert!(TransactionId::new("a\nb").is_err());
        assert!(serde_json::from_str::<TransactionId>("\"\"").is_err());
    }
}
