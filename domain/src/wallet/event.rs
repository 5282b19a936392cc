//! Events: the facts in the log. Past tense, and never changed once written: a new shape
//! is a new `event_version` with an upcaster, not an edit. The one exception is a field
//! that is optional and absent from every event written before it (`#[serde(default)]`,
//! left out when empty), such as `at`: readers before and after it read both.

use chrono::{DateTime, Utc};
use cqrs_es::DomainEvent;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ids::{
    AdjustmentReason, BonusId, BrandId, CampaignId, ClientId, ForfeitReason, GameId, LockReason,
    PlayerId, ReservationId, RoundId, TransactionId, WalletId,
};
use crate::money::Currency;
use crate::wallet::bonus::{BonusMoves, Terms};
use crate::wallet::protection::{LimitKind, LimitPeriod};
use crate::wallet::round::{BetlessKind, LostBet};
use crate::wallet::{Reservation, ReservationState};
use chrono_tz::Tz;

/// Version of every event shape below. The round events were added as new kinds, not as
/// changes to an existing shape, so they are 1.0 too.
pub const EVENT_VERSION: &str = "1.0";

/// Something that happened to a wallet. Amounts are at the wallet currency's scale.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum WalletEvent {
    WalletOpened {
        wallet_id: WalletId,
        player_id: PlayerId,
        currency: Currency,
        /// Its brand, for ever; absent (the default brand) in events written before
        /// brands and for wallets of the default brand.
        #[serde(
            default = "BrandId::default_brand",
            skip_serializing_if = "BrandId::is_default"
        )]
        brand_id: BrandId,
    },
    FundsDeposited {
        transaction_id: TransactionId,
        amount: Decimal,
        /// When it was decided, recorded only for a wallet with protections (it counts
        /// towards their limits; see `protection`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
    },
    FundsWithdrawn {
        transaction_id: TransactionId,
        amount: Decimal,
        /// What it did to bonus money (absent: nothing; see `bonus`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bonus: Option<Box<BonusMoves>>,
    },
    FundsReserved {
        reservation_id: ReservationId,
        amount: Decimal,
        game_id: GameId,
        round_id: RoundId,
        expires_at: DateTime<Utc>,
        /// When it was decided, recorded only for a wallet with protections (it counts
        /// towards their limits; see `protection`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
        /// What it did to bonus money (absent: nothing; see `bonus`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bonus: Option<Box<BonusMoves>>,
    },
    ReservationSettled {
        reservation_id: ReservationId,
        transaction_id: TransactionId,
        stake: Decimal,
        payout: Decimal,
        /// When it was decided, recorded only for a wallet with protections (it counts
        /// towards their limits; see `protection`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
        /// What it did to bonus money (absent: nothing; see `bonus`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bonus: Option<Box<BonusMoves>>,
    },
    ReservationRefunded {
        reservation_id: ReservationId,
        transaction_id: TransactionId,
        amount: Decimal,
        /// What it did to bonus money (absent: nothing; see `bonus`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bonus: Option<Box<BonusMoves>>,
    },
    ReservationExpired {
        reservation_id: ReservationId,
        amount: Decimal,
        /// What it did to bonus money (absent: nothing; see `bonus`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bonus: Option<Box<BonusMoves>>,
    },
    /// A rollback arrived for a reservation the wallet never saw: its id is void, and a
    /// bet arriving later under it is refused. Moves no money.
    ReservationVoided {
        reservation_id: ReservationId,
        transaction_id: TransactionId,
        round_id: RoundId,
    },
    /// A win in a round other than a plain settle: a bet's first win that closes the
    /// round (`settled_stake` set), a further win for a settled bet or for the round
    /// alone, or a win without a bet (`kind` set). With `round_closed`, the round closed
    /// after it and `lost` are its bets that were still open.
    WinCredited {
        transaction_id: TransactionId,
        round_id: RoundId,
        game_id: Option<GameId>,
        reservation_id: Option<ReservationId>,
        settled_stake: Option<Decimal>,
        amount: Decimal,
        kind: Option<BetlessKind>,
        campaign_id: Option<CampaignId>,
        round_closed: bool,
        lost: Vec<LostBet>,
        /// When it was decided, recorded only for a wallet with protections (it counts
        /// towards their limits; see `protection`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
        /// What it did to bonus money (absent: nothing; see `bonus`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bonus: Option<Box<BonusMoves>>,
    },
    /// A round closed: its bets still open were lost. Closing a closed round, or one the
    /// wallet never saw (which then stays closed), loses nothing.
    RoundClosed {
        transaction_id: TransactionId,
        round_id: RoundId,
        game_id: Option<GameId>,
        lost: Vec<LostBet>,
        /// When it was decided, recorded only for a wallet with protections (it counts
        /// towards their limits; see `protection`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at: Option<DateTime<Utc>>,
        /// What it did to bonus money (absent: nothing; see `bonus`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bonus: Option<Box<BonusMoves>>,
    },
    /// A bet and its result in one: `stake` taken, `payout` credited. With
    /// `round_closed`, the round closed after it and `lost` are its other open bets.
    BetSettled {
        reservation_id: ReservationId,
        game_id: GameId,
        round_id: RoundId,
        stake: Decimal,
        payout: Decimal,
        placed_at: DateTime<Utc>,
        round_closed: bool,
        lost: Vec<LostBet>,
        /// What it did to bonus money (absent: nothing; see `bonus`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bonus: Option<Box<BonusMoves>>,
    },
    /// A correction credited (positive) or debited (negative) to available.
    FundsAdjusted {
        transaction_id: TransactionId,
        amount: Decimal,
        reason: AdjustmentReason,
        round_id: Option<RoundId>,
        /// The game of its round, as the wallet knew it, so the totals count the
        /// correction for that game.
        #[serde(default)]
        game_id: Option<GameId>,
        /// The operator's API client that made it (absent for a provider's, and in
        /// adjustments logged before it was recorded).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<ClientId>,
    },
    /// A limit set (`amount`) or removed (`None`) by `by`, in force from `effective_at`:
    /// `at` for a stricter one, after the cooling-off period for a looser one or a
    /// removal. Periods are calendar periods in `zone`.
    LimitChanged {
        transaction_id: TransactionId,
        kind: LimitKind,
        period: LimitPeriod,
        amount: Option<Decimal>,
        zone: Tz,
        effective_at: DateTime<Utc>,
        at: DateTime<Utc>,
        by: ClientId,
    },
    /// Self-excluded until `until`, or indefinitely (`None`).
    SelfExcluded {
        transaction_id: TransactionId,
        until: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
        by: ClientId,
    },
    AccountLocked {
        transaction_id: TransactionId,
        reason: LockReason,
        by: ClientId,
    },
    AccountUnlocked {
        transaction_id: TransactionId,
        reason: LockReason,
        by: ClientId,
    },
    /// An operator (`by`) granted a bonus award on `terms`. It activates at once (in
    /// `bonus.activated`) when no other award is active, else it waits, queued.
    BonusGranted {
        bonus_id: BonusId,
        amount: Decimal,
        terms: Terms,
        by: ClientId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        bonus: Option<Box<BonusMoves>>,
    },
    /// An award ended before completion: forfeited by an operator (`by`, `reason`, its
    /// `transaction_id`), or expired at its `expires_at` (none of them). `bonus` says what
    /// it forfeited and which award activated after it.
    BonusForfeited {
        bonus_id: BonusId,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        transaction_id: Option<TransactionId>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<ForfeitReason>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        by: Option<ClientId>,
        bonus: Box<BonusMoves>,
    },
    /// An operator (`by`) granted `rounds` free rounds of `game_id` at `bet_value`, for
    /// `provider`'s bets, until `expires_at`; their winnings become an award wagered
    /// `wagering_multiplier` times, or cash without one (see `free_rounds`).
    FreeRoundsGranted {
        grant_id: BonusId,
        provider: String,
        game_id: GameId,
        rounds: i64,
        bet_value: Decimal,
        expires_at: DateTime<Utc>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        wagering_multiplier: Option<i64>,
        by: ClientId,
    },
    /// The engine ended a free-rounds grant at its `expires_at`: `bonus` says what its
    /// winnings became.
    FreeRoundsExpired {
        grant_id: BonusId,
        bonus: Box<BonusMoves>,
    },
}

impl WalletEvent {
    /// Every event's name ([`WalletEvent::name`]), in declaration order: what a filter by
    /// kind accepts.
    pub const NAMES: [&'static str; 20] = [
        "WalletOpened",
        "FundsDeposited",
        "FundsWithdrawn",
        "FundsReserved",
        "ReservationSettled",
        "ReservationRefunded",
        "ReservationExpired",
        "ReservationVoided",
        "WinCredited",
        "RoundClosed",
        "BetSettled",
        "FundsAdjusted",
        "LimitChanged",
        "SelfExcluded",
        "AccountLocked",
        "AccountUnlocked",
        "BonusGranted",
        "BonusForfeited",
        "FreeRoundsGranted",
        "FreeRoundsExpired",
    ];

    /// The API client an operator's or a player's protection action names as its actor
    /// (`by`); `None` for the game and money events, which their caller's transaction id
    /// identifies.
    pub fn actor(&self) -> Option<&ClientId> {
        match self {
            WalletEvent::LimitChanged { by, .. }
            | WalletEvent::SelfExcluded { by, .. }
            | WalletEvent::AccountLocked { by, .. }
            | WalletEvent::AccountUnlocked { by, .. }
            | WalletEvent::BonusGranted { by, .. }
            | WalletEvent::FreeRoundsGranted { by, .. } => Some(by),
            WalletEvent::BonusForfeited { by, .. } | WalletEvent::FundsAdjusted { by, .. } => {
                by.as_ref()
            }
            _ => None,
        }
    }

    /// The reason an operator's action states: an adjustment's, a lock's or unlock's, a
    /// forfeit's; `None` for any other event.
    pub fn stated_reason(&self) -> Option<&str> {
        match self {
            WalletEvent::FundsAdjusted { reason, .. } => Some(reason.as_str()),
            WalletEvent::AccountLocked { reason, .. }
            | WalletEvent::AccountUnlocked { reason, .. } => Some(reason.as_str()),
            WalletEvent::BonusForfeited { reason, .. } => reason.as_ref().map(|r| r.as_str()),
            _ => None,
        }
    }

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
            WalletEvent::WinCredited { .. } => "WinCredited",
            WalletEvent::RoundClosed { .. } => "RoundClosed",
            WalletEvent::BetSettled { .. } => "BetSettled",
            WalletEvent::FundsAdjusted { .. } => "FundsAdjusted",
            WalletEvent::LimitChanged { .. } => "LimitChanged",
            WalletEvent::SelfExcluded { .. } => "SelfExcluded",
            WalletEvent::AccountLocked { .. } => "AccountLocked",
            WalletEvent::AccountUnlocked { .. } => "AccountUnlocked",
            WalletEvent::BonusGranted { .. } => "BonusGranted",
            WalletEvent::BonusForfeited { .. } => "BonusForfeited",
            WalletEvent::FreeRoundsGranted { .. } => "FreeRoundsGranted",
            WalletEvent::FreeRoundsExpired { .. } => "FreeRoundsExpired",
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
                at: _,
                bonus,
            } => {
                let free_rounds = bonus.as_ref().and_then(|b| b.placed_free(&reservation_id));
                let bonus = bonus.and_then(|b| b.placed_under(&reservation_id));
                Some((
                    reservation_id,
                    Reservation {
                        amount,
                        game_id,
                        round_id,
                        expires_at,
                        state: ReservationState::Open,
                        bonus,
                        free_rounds,
                    },
                ))
            }
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::ReservationSettled { .. }
            | WalletEvent::ReservationRefunded { .. }
            | WalletEvent::ReservationExpired { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::WinCredited { .. }
            | WalletEvent::RoundClosed { .. }
            | WalletEvent::BetSettled { .. }
            | WalletEvent::FundsAdjusted { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => None,
        }
    }

    /// For an event that places a bet, the reservation it leaves: a `FundsReserved`'s open
    /// one, a `BetSettled`'s settled one (its stake, game and round; its placing time as
    /// the expiry); `None` for every other event.
    pub fn placed_bet(&self) -> Option<(ReservationId, Reservation)> {
        match self {
            WalletEvent::BetSettled {
                reservation_id,
                game_id,
                round_id,
                stake,
                placed_at,
                bonus,
                ..
            } => Some((
                reservation_id.clone(),
                Reservation {
                    amount: *stake,
                    game_id: game_id.clone(),
                    round_id: round_id.clone(),
                    expires_at: *placed_at,
                    state: ReservationState::Settled,
                    bonus: bonus.as_ref().and_then(|b| b.placed_under(reservation_id)),
                    free_rounds: bonus.as_ref().and_then(|b| b.placed_free(reservation_id)),
                },
            )),
            reserved @ WalletEvent::FundsReserved { .. } => {
                reserved.clone().into_opened_reservation()
            }
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::ReservationSettled { .. }
            | WalletEvent::ReservationRefunded { .. }
            | WalletEvent::ReservationExpired { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::WinCredited { .. }
            | WalletEvent::RoundClosed { .. }
            | WalletEvent::FundsAdjusted { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => None,
        }
    }

    /// The part of the stake of the bet the event places that a bonus award paid (zero
    /// for a cash bet and for every other event).
    pub fn funded_bonus(&self) -> Decimal {
        // Read from the moves, not through `placed_bet`: no reservation is built for it.
        match self.bonus_moves() {
            Some((moves, crate::wallet::bonus::StakeMove::Reserve, _)) => {
                moves.stakes.iter().map(|s| s.amount).sum()
            }
            Some((moves, _, Some(own))) => moves.stake_of(own),
            Some((_, _, None)) | None => Decimal::ZERO,
        }
    }

    /// The names of the events that return a reservation's stake to the player, naming it
    /// by their `reservation_id`, with the state each leaves it in. A closed reservation
    /// that none of them names was settled (paid, lost, or born settled by a bet-win).
    pub const RETURNING: [(&'static str, ReservationState); 2] = [
        ("ReservationRefunded", ReservationState::Refunded),
        ("ReservationExpired", ReservationState::Expired),
    ];

    /// The names of the events that close a reservation named by their `reservation_id`
    /// (what SQL over the log matches).
    pub const CLOSING: [&'static str; 4] = [
        "ReservationSettled",
        "ReservationRefunded",
        "ReservationExpired",
        "WinCredited",
    ];

    /// The names of the events whose `lost` list closes reservations (a round's close).
    pub const LOSING: [&'static str; 3] = ["WinCredited", "RoundClosed", "BetSettled"];

    /// Whether the event leaves a closed reservation behind: it settles, refunds or
    /// expires one, closes a round with bets in it, or is a bet-win (a bet born settled).
    pub fn closes_reservation(&self) -> bool {
        match self {
            WalletEvent::WinCredited {
                settled_stake,
                lost,
                ..
            } => settled_stake.is_some() || !lost.is_empty(),
            WalletEvent::RoundClosed { lost, .. } => !lost.is_empty(),
            WalletEvent::BetSettled { .. } => true,
            WalletEvent::ReservationSettled { .. }
            | WalletEvent::ReservationRefunded { .. }
            | WalletEvent::ReservationExpired { .. } => true,
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::FundsReserved { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::FundsAdjusted { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => false,
        }
    }

    /// Whether the event may leave a cached wallet something to forget (see
    /// `Wallet::compact`): a closed reservation, a closed round, or a round with no open
    /// bet. A bet, a deposit or a withdrawal leaves nothing: no compaction after them.
    pub fn leaves_to_forget(&self) -> bool {
        self.closes_reservation()
            || self.closes_round()
            || matches!(self, WalletEvent::WinCredited { .. })
    }

    /// What the event adds to a player's net win on a leaderboard: the payout minus the
    /// stakes it settles or loses. `None` for events that settle no bet, and for wins
    /// without a bet (free spins, promotions, jackpots), which are not a bet's result and
    /// are reported apart, so a promotion cannot top a board.
    pub fn net_win(&self) -> Option<Decimal> {
        use crate::wallet::Flow;
        let mut net = None;
        for posting in self.postings() {
            match posting.flow {
                Flow::Payout(Some(_)) => return None,
                Flow::Stake | Flow::Payout(None) | Flow::BonusStake | Flow::BonusPayout => {
                    *net.get_or_insert(Decimal::ZERO) += posting.amount
                }
                Flow::Deposit
                | Flow::Withdrawal
                | Flow::Reserve
                | Flow::Refund
                | Flow::Expiry
                | Flow::Adjustment
                | Flow::BonusGrant
                | Flow::BonusConversion
                | Flow::BonusForfeit => {}
            }
        }
        net
    }

    /// The game the event names, when it names one (a plain settle names only its bet).
    pub fn game_id(&self) -> Option<&GameId> {
        match self {
            WalletEvent::FundsReserved { game_id, .. }
            | WalletEvent::BetSettled { game_id, .. } => Some(game_id),
            WalletEvent::WinCredited { game_id, .. }
            | WalletEvent::RoundClosed { game_id, .. }
            | WalletEvent::FundsAdjusted { game_id, .. } => game_id.as_ref(),
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::ReservationSettled { .. }
            | WalletEvent::ReservationRefunded { .. }
            | WalletEvent::ReservationExpired { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => None,
        }
    }

    /// Whether the event closes its round.
    pub fn closes_round(&self) -> bool {
        match self {
            WalletEvent::RoundClosed { .. } => true,
            WalletEvent::WinCredited { round_closed, .. }
            | WalletEvent::BetSettled { round_closed, .. } => *round_closed,
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::FundsReserved { .. }
            | WalletEvent::ReservationSettled { .. }
            | WalletEvent::ReservationRefunded { .. }
            | WalletEvent::ReservationExpired { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::FundsAdjusted { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => false,
        }
    }

    /// The bets the event lost by closing their round.
    pub fn lost(&self) -> &[LostBet] {
        match self {
            WalletEvent::WinCredited { lost, .. }
            | WalletEvent::RoundClosed { lost, .. }
            | WalletEvent::BetSettled { lost, .. } => lost,
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::FundsReserved { .. }
            | WalletEvent::ReservationSettled { .. }
            | WalletEvent::ReservationRefunded { .. }
            | WalletEvent::ReservationExpired { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::FundsAdjusted { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => &[],
        }
    }

    /// The round the event names, if it names one.
    pub fn round_id(&self) -> Option<&RoundId> {
        match self {
            WalletEvent::FundsReserved { round_id, .. }
            | WalletEvent::ReservationVoided { round_id, .. }
            | WalletEvent::WinCredited { round_id, .. }
            | WalletEvent::RoundClosed { round_id, .. }
            | WalletEvent::BetSettled { round_id, .. } => Some(round_id),
            WalletEvent::FundsAdjusted { round_id, .. } => round_id.as_ref(),
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::ReservationSettled { .. }
            | WalletEvent::ReservationRefunded { .. }
            | WalletEvent::ReservationExpired { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => None,
        }
    }

    /// The round the event opens when the wallet does not hold it yet: a bet's, a
    /// bet-win's, a win's or a close's round. An adjustment or a void naming a round never
    /// opens it.
    pub fn may_open_round(&self) -> Option<&RoundId> {
        match self {
            WalletEvent::FundsReserved { round_id, .. }
            | WalletEvent::WinCredited { round_id, .. }
            | WalletEvent::RoundClosed { round_id, .. }
            | WalletEvent::BetSettled { round_id, .. } => Some(round_id),
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::ReservationSettled { .. }
            | WalletEvent::ReservationRefunded { .. }
            | WalletEvent::ReservationExpired { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::FundsAdjusted { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => None,
        }
    }

    /// The reservations the event closes, the one it names first: a settle's, refund's or
    /// expiry's, a first win's, then the bets a round's close lost. A bet-win's bet is
    /// never open. The read models take a settle's game (and provider) from the first.
    pub fn closed_reservations(&self) -> Vec<ReservationId> {
        let named = match self {
            WalletEvent::ReservationSettled { reservation_id, .. }
            | WalletEvent::ReservationRefunded { reservation_id, .. }
            | WalletEvent::ReservationExpired { reservation_id, .. }
            | WalletEvent::WinCredited {
                reservation_id: Some(reservation_id),
                settled_stake: Some(_),
                ..
            } => Some(reservation_id.clone()),
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::FundsReserved { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::WinCredited { .. }
            | WalletEvent::RoundClosed { .. }
            | WalletEvent::BetSettled { .. }
            | WalletEvent::FundsAdjusted { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => None,
        };
        named
            .into_iter()
            .chain(self.lost().iter().map(|l| l.reservation_id.clone()))
            .collect()
    }

    /// The reservation the event opens, closes or voids, if any.
    pub fn reservation_id(&self) -> Option<&ReservationId> {
        match self {
            WalletEvent::WalletOpened { .. }
            | WalletEvent::FundsDeposited { .. }
            | WalletEvent::FundsWithdrawn { .. }
            | WalletEvent::RoundClosed { .. }
            | WalletEvent::FundsAdjusted { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusGranted { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => None,
            WalletEvent::FundsReserved { reservation_id, .. }
            | WalletEvent::ReservationSettled { reservation_id, .. }
            | WalletEvent::ReservationRefunded { reservation_id, .. }
            | WalletEvent::ReservationExpired { reservation_id, .. }
            | WalletEvent::ReservationVoided { reservation_id, .. }
            | WalletEvent::BetSettled { reservation_id, .. } => Some(reservation_id),
            WalletEvent::WinCredited { reservation_id, .. } => reservation_id.as_ref(),
        }
    }

    /// The amounts the event names, as a statement shows them: what it deposits,
    /// withdraws, stakes (a reserve's, or a settle's stake), refunds, expires or adjusts
    /// (signed); and a settle's or win's payout.
    pub fn amounts(&self) -> (Option<Decimal>, Option<Decimal>) {
        match self {
            WalletEvent::WalletOpened { .. }
            | WalletEvent::ReservationVoided { .. }
            | WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. }
            | WalletEvent::BonusForfeited { .. }
            | WalletEvent::FreeRoundsGranted { .. }
            | WalletEvent::FreeRoundsExpired { .. } => (None, None),
            WalletEvent::BonusGranted { amount, .. } => (Some(*amount), None),
            WalletEvent::RoundClosed { lost, .. } => {
                (Some(lost.iter().map(|l| l.stake).sum()), None)
            }
            WalletEvent::WinCredited {
                settled_stake,
                amount,
                ..
            } => (*settled_stake, Some(*amount)),
            WalletEvent::BetSettled { stake, payout, .. } => (Some(*stake), Some(*payout)),
            WalletEvent::FundsAdjusted { amount, .. } => (Some(*amount), None),
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
