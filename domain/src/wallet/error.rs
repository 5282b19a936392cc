//! The wallet's refusals: each names what went wrong and carries the numbers that explain it.

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{BonusId, ReservationId, RoundId, TransactionId, WalletId};
use crate::money::{AmountError, Currency};
use crate::wallet::protection::{LimitKind, LimitPeriod};

/// Where a reservation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReservationState {
    Open,
    Settled,
    Refunded,
    Expired,
    /// Rolled back before the wallet saw it.
    Voided,
}

impl std::fmt::Display for ReservationState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ReservationState::Open => "open",
            ReservationState::Settled => "settled",
            ReservationState::Refunded => "refunded",
            ReservationState::Expired => "expired",
            ReservationState::Voided => "voided (rolled back before it was placed)",
        })
    }
}

/// A rule of the wallet refused a command; nothing was changed. Serializable so that one
/// API instance can pass another's answer on (see command-api's cluster module).
#[derive(Debug, Clone, PartialEq, thiserror::Error, Serialize, Deserialize)]
pub enum WalletError {
    #[error("wallet not found")]
    WalletNotFound,
    #[error("wallet {wallet_id} already exists for this player and currency")]
    WalletExists { wallet_id: WalletId },
    #[error("invalid amount {amount}: {reason}")]
    InvalidAmount {
        amount: Decimal,
        reason: AmountError,
    },
    #[error("the wallet holds {wallet}, the request names {requested}")]
    CurrencyMismatch {
        wallet: Currency,
        requested: Currency,
    },
    #[error("insufficient funds: {available} available, {requested} requested")]
    InsufficientFunds {
        available: Decimal,
        requested: Decimal,
    },
    #[error("reservation {reservation_id} not found")]
    ReservationNotFound { reservation_id: ReservationId },
    #[error("reservation {reservation_id} is already {state}")]
    ReservationClosed {
        reservation_id: ReservationId,
        state: ReservationState,
    },
    #[error("reservation {reservation_id} expires at {expires_at}, not yet")]
    ReservationNotExpired {
        reservation_id: ReservationId,
        expires_at: DateTime<Utc>,
    },
    #[error("transaction {transaction_id} was already used for another request")]
    IdempotencyConflict { transaction_id: TransactionId },
    #[error("reservation timeout {timeout_s} s is outside {min_s}..={max_s} s")]
    InvalidTimeout {
        timeout_s: u32,
        min_s: u32,
        max_s: u32,
    },
    #[error("the balance would reach {attempted}, above the limit of {limit}")]
    LimitExceeded { limit: Decimal, attempted: Decimal },
    #[error("round {round_id} is closed")]
    RoundClosed { round_id: RoundId },
    /// A win naming only a round, or an adjustment naming one, that the wallet never saw.
    #[error("round {round_id} not found")]
    RoundNotFound { round_id: RoundId },
    /// A deposit or bet that would pass a limit in force (see `protection`).
    #[error(
        "the {} {} limit of {limit} has {used} used; {requested} more would pass it (it \
         resets at {resets_at})",
        period.as_str(), kind.as_str()
    )]
    LimitReached {
        kind: LimitKind,
        period: LimitPeriod,
        limit: Decimal,
        used: Decimal,
        requested: Decimal,
        resets_at: DateTime<Utc>,
    },
    #[error("the player is self-excluded {}", until.map_or("indefinitely".to_string(), |u| format!("until {u}")))]
    SelfExcluded { until: Option<DateTime<Utc>> },
    /// The reason is the operator's and is not in the message: a player or provider sees
    /// only that the account is locked.
    #[error("the account is locked")]
    AccountLocked { reason: String },
    #[error("there is no {} {} limit to remove", period.as_str(), kind.as_str())]
    LimitNotFound {
        kind: LimitKind,
        period: LimitPeriod,
    },
    #[error(
        "a self-exclusion cannot be shortened: the one in force ends {}",
        until.map_or("never".to_string(), |u| format!("at {u}"))
    )]
    ExclusionNotShortened { until: Option<DateTime<Utc>> },
    #[error("a self-exclusion must end after now, not at {until}")]
    ExclusionInPast { until: DateTime<Utc> },
    /// A win without a bet, or an adjustment, from a provider (or Hub88 operator) that has
    /// taken no stake from this wallet: money it may not create for a player it never
    /// served.
    #[error(
        "{provider} has taken no bet from this wallet, so it may not pay it a win without \
         a bet or an adjustment"
    )]
    NotServed { provider: String },
    /// A win without a bet, or a credit, from a provider over the cap its deployment
    /// configured for the provider and currency (command-api's `BETLEDGER_CREDIT_CAPS`).
    #[error(
        "{amount} is over the cap of {cap} on one win without a bet or one credit from \
         {provider}"
    )]
    CreditOverCap {
        provider: String,
        cap: Decimal,
        amount: Decimal,
    },
    /// A grant's terms out of range; `reason` says which.
    #[error("the bonus terms are invalid: {reason}")]
    BonusTermsInvalid { reason: String },
    /// No award of that id that is active or queued.
    #[error("bonus {bonus_id} {}", match state { Some(s) => format!("has already ended ({s})"), None => "not found".to_string() })]
    BonusNotFound {
        bonus_id: BonusId,
        /// Its status, when it exists but has ended.
        state: Option<String>,
    },
    /// A withdrawal while an award is active or queued, without `forfeit_bonuses`.
    #[error(
        "bonus {bonus_id} is {status}: a withdrawal must say forfeit_bonuses (which forfeits \
         every active and queued award) while one is"
    )]
    BonusActive { bonus_id: BonusId, status: String },
    /// A bet naming a free-rounds grant that has no round left, has ended or expired, is
    /// for another game or provider, or is not this wallet's.
    #[error("free rounds {grant_id} cannot be used: {reason}")]
    FreeRoundsUnavailable { grant_id: BonusId, reason: String },
    /// An award not yet at its `expires_at` (the engine's expiry arrived early).
    #[error("bonus {bonus_id} expires at {expires_at}, not yet")]
    BonusNotExpired {
        bonus_id: BonusId,
        expires_at: DateTime<Utc>,
    },
}
