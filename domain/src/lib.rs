//! The wallet's rules, and nothing else: no I/O, no clock, no randomness.
//!
//! # Layout
//! - [`money`]: currencies with their fixed scale, validated amounts, the decimal parser
//!   every face of the API uses, and the balance with its parts (`Part`), written and read
//!   by name everywhere.
//! - [`ids`]: typed identifiers (wallet, player, transaction, reservation, game, round,
//!   campaign, API client) and the reasons of an adjustment and a lock.
//! - [`wallet`]: the `Wallet` cqrs-es aggregate: its commands, events, errors and the one
//!   `decide` function where every rule lives; `wallet::round` holds the rules of game
//!   rounds (several bets and wins, closing, bet-and-win, wins without a bet, adjustments);
//!   `wallet::protection` those of player protection (limits per calendar period in a time
//!   zone, self-exclusion, an operator's lock); `wallet::posting` says what each event
//!   moves (its postings on the balance's parts: the one description of money per event);
//!   `wallet::compaction` what a compacted state (the write path's cache) holds and how
//!   what it forgot is put back; `wallet::bonus` the rules of bonus money (awards,
//!   funding cash first, payouts split, wagering, completion, forfeiture).
//!
//! Outside data (the time, a command's ids) is looked up by the caller and placed in the
//! command, so the aggregate stays a pure function of its history and the command.
#![forbid(unsafe_code)]

pub mod ids;
pub mod money;
pub mod wallet;

pub use ids::{
    AdjustmentReason, BonusId, BrandId, Brands, CampaignId, ClientId, ForfeitReason, GameId,
    IdError, LockReason, PlayerId, ReservationId, RoundId, TransactionId, WalletId,
};
pub use money::{AmountError, Balance, Currency, Money, Part};
pub use wallet::{
    Award, AwardStatus, BetlessKind, BonusTerms, LostBet, Reservation, ReservationState, Round,
    Wallet, WalletCommand, WalletError, WalletEvent, WalletServices, WinTarget,
};
