//! The seamless-wallet layer: the calls a game provider makes (bet, bet-win, win,
//! rollback, adjustment) turned into domain commands and run, in one place for every face
//! that speaks for providers. The provider face (`routes::provider`) and the Hub88 face
//! (`routes::hub88`) only parse their wire format into these calls and shape the answer
//! (HTTP errors, or HTTP 200 with an `RS_*` status); what a call means is decided here:
//!
//! - **ids in a scope** ([`Scope`]): a provider's ids live in the wallet's id space as
//!   `{scope}:{id}`, its rounds as `{scope}:{round}`, where the scope is the provider's id
//!   or `hub88.{operator}`. No caller reaches another's bets, and a native id (never
//!   containing `:`) never meets a provider's.
//! - **an id reused** for the win or rollback of its own bet ([`Scope::closing`]) is
//!   recorded in a scope of its own, `{scope}/win:` or `{scope}/rollback:` (docs/0010).
//! - **a bet** that closes its round is a bet lost at once ([`bet`]).
//! - **a rollback** of a stake already back succeeds and moves nothing ([`run_rollback`]).
//! - **a credit without a stake** (a bet-less win, a positive adjustment) is capped per
//!   call ([`run_credit`], `caps`).
//! - **a repeat after the session** is answered from the log ([`repeat_without_session`]).
//! - **brands** ([`provider_brands`], [`players_wallet`]): a provider acts in the brands
//!   it is enabled in; a call naming a player without a session finds the player's wallet
//!   there, and never guesses between two.

use chrono::{DateTime, Utc};
use domain::wallet::RESERVATION_TIMEOUT_S_DEFAULT;
use domain::{
    AdjustmentReason, Currency, GameId, ReservationId, ReservationState, RoundId, TransactionId,
    WalletCommand, WalletError, WalletId, WinTarget,
};
use eventstore::CommandReceipt;
use rust_decimal::Decimal;

use crate::error::ApiError;
use crate::input::valid;
use crate::runner::execute;
use crate::state::AppState;
use domain::{BrandId, Brands, PlayerId};

/// The id space of one provider, or of one Hub88 operator (`hub88.{operator}`).
#[derive(Debug, Clone, Copy)]
pub struct Scope<'a>(pub &'a str);

impl Scope<'_> {
    /// `{scope}:{id}`: the caller's id (of request field `field`) in the wallet's space. It
    /// keeps its whole length (128).
    pub fn transaction(&self, field: &str, id: &str) -> Result<TransactionId, ApiError> {
        TransactionId::scoped(self.0, id)
            .map_err(|e| ApiError::InvalidRequest(format!("{field}: {e}")))
    }

    /// A bet's id (of request field `field`), as the reservation it makes.
    pub fn bet(&self, field: &str, id: &str) -> Result<ReservationId, ApiError> {
        self.transaction(field, id).map(ReservationId::from)
    }

    /// `{scope}:{round_id}`: two providers' rounds of one player never meet.
    pub fn round(&self, round_id: &str) -> Result<RoundId, ApiError> {
        RoundId::scoped(self.0, round_id)
            .map_err(|e| ApiError::InvalidRequest(format!("round_id: {e}")))
    }

    /// The transaction id a win or rollback (`role`) is recorded under. A provider that
    /// reuses the bet's id as the win's or rollback's (some do) gets that movement
    /// recorded in a scope of its own, `{scope}/{role}:{id}`: no caller can name an id
    /// there (a provider id has no `/`, a native id no `:`), a retry finds the same id,
    /// and the stake is closed as asked instead of the call being refused as a conflict.
    pub fn closing(
        &self,
        role: &str,
        transaction_id: &str,
        bet_transaction_id: &str,
    ) -> Result<TransactionId, ApiError> {
        if transaction_id == bet_transaction_id {
            Scope(&format!("{}/{role}", self.0)).transaction("transaction_id", transaction_id)
        } else {
            self.transaction("transaction_id", transaction_id)
        }
    }
}

/// A bet as a command: a reservation; with `round_closed`, a bet lost at once (a bet-win
/// paying nothing that closes its round: the round has no win to come).
pub fn bet(
    reservation_id: ReservationId,
    amount: Decimal,
    (currency, game_id): (Currency, GameId),
    (round_id, round_closed): (RoundId, bool),
    now: DateTime<Utc>,
) -> WalletCommand {
    if round_closed {
        WalletCommand::BetWin {
            reservation_id,
            amount,
            payout: Decimal::ZERO,
            currency: Some(currency),
            game_id,
            round_id,
            round_closed: true,
            now,
        }
    } else {
        WalletCommand::Reserve {
            reservation_id,
            amount,
            currency: Some(currency),
            game_id,
            round_id,
            timeout_s: RESERVATION_TIMEOUT_S_DEFAULT,
            now,
        }
    }
}

/// A bet and its result in one call: `stake` taken, `payout` credited; with
/// `round_closed`, its round closes after it.
pub fn bet_win(
    reservation_id: ReservationId,
    (stake, payout): (Decimal, Decimal),
    (currency, game_id): (Currency, GameId),
    (round_id, round_closed): (RoundId, bool),
    now: DateTime<Utc>,
) -> WalletCommand {
    WalletCommand::BetWin {
        reservation_id,
        amount: stake,
        payout,
        currency: Some(currency),
        game_id,
        round_id,
        round_closed,
        now,
    }
}

/// A bet that uses one of grant `grant_id`'s free rounds (the provider's
/// `free_rounds_id`): it costs nothing; with `payout`, a bet-win. A bet that closes its
/// round is settled at once with nothing paid, as a paid bet is.
pub fn free_bet(
    reservation_id: ReservationId,
    grant_id: domain::BonusId,
    payout: Option<Decimal>,
    (currency, game_id): (Currency, GameId),
    (round_id, round_closed): (RoundId, bool),
    now: DateTime<Utc>,
) -> WalletCommand {
    WalletCommand::FreeRoundBet {
        reservation_id,
        grant_id,
        game_id,
        round_id,
        payout: payout.or(round_closed.then_some(Decimal::ZERO)),
        round_closed,
        timeout_s: RESERVATION_TIMEOUT_S_DEFAULT,
        currency: Some(currency),
        now,
    }
}

/// A win as a provider reports it, its ids already in the scope ([`Scope::win_ids`]).
pub struct Win {
    pub transaction_id: TransactionId,
    pub round_id: RoundId,
    /// What it pays against: its bet, its round, or nothing (`input::win_target`).
    pub target: WinTarget,
    pub amount: Decimal,
    pub game_id: Option<GameId>,
    pub currency: Currency,
    pub round_closed: bool,
}

impl Win {
    /// The command of the win.
    pub fn command(self, now: DateTime<Utc>) -> WalletCommand {
        WalletCommand::Win {
            transaction_id: self.transaction_id,
            round_id: self.round_id,
            target: self.target,
            amount: self.amount,
            game_id: self.game_id,
            round_closed: self.round_closed,
            currency: Some(self.currency),
            now,
        }
    }
}

impl Scope<'_> {
    /// A win's ids: the bet it pays, if it names one (request field and id), and the id
    /// it is recorded under (request field and id; see [`Scope::closing`]). Checked in
    /// that order; each face checks its other fields in its own order around this.
    pub fn win_ids(
        &self,
        (field, transaction_id): (&str, &str),
        bet: Option<(&str, &str)>,
    ) -> Result<(Option<ReservationId>, TransactionId), ApiError> {
        let reservation_id = bet
            .map(|(bet_field, bet)| self.bet(bet_field, bet))
            .transpose()?;
        let transaction_id = match bet {
            Some((_, bet)) => self.closing("win", transaction_id, bet)?,
            None => self.transaction(field, transaction_id)?,
        };
        Ok((reservation_id, transaction_id))
    }

    /// The command of a rollback of bet `bet` (named by request field `field`).
    pub fn rollback(
        &self,
        transaction_id: &str,
        (field, bet): (&str, &str),
        round_id: &str,
    ) -> Result<WalletCommand, ApiError> {
        Ok(WalletCommand::Rollback {
            reservation_id: self.bet(field, bet)?,
            transaction_id: self.closing("rollback", transaction_id, bet)?,
            round_id: self.round(round_id)?,
        })
    }

    /// The command of an adjustment in round `round_id`.
    pub fn adjust(
        &self,
        transaction_id: &str,
        amount: Decimal,
        reason: String,
        round_id: &str,
        currency: Currency,
    ) -> Result<WalletCommand, ApiError> {
        Ok(WalletCommand::Adjust {
            transaction_id: self.transaction("transaction_id", transaction_id)?,
            amount,
            reason: valid(AdjustmentReason::new, reason)?,
            round_id: Some(self.round(round_id)?),
            currency: Some(currency),
            by: None,
        })
    }
}

/// Runs a win or an adjustment. One that credits without a stake (a bet-less win, a
/// positive adjustment) must fit the scope's cap per call (`caps`), checked only for a new
/// request: a repeat is answered as the first time whatever the cap is now.
pub async fn run_credit(
    state: &AppState,
    scope: Scope<'_>,
    wallet_id: WalletId,
    command: WalletCommand,
) -> Result<CommandReceipt, ApiError> {
    let unstaked = match &command {
        WalletCommand::Win {
            target: WinTarget::Betless { .. },
            amount,
            currency,
            ..
        }
        | WalletCommand::Adjust {
            amount, currency, ..
        } if *amount > Decimal::ZERO => currency.map(|c| (c, *amount)),
        _ => None,
    };
    if let Some(credit) = unstaked {
        crate::runner::within_cap(state, scope.0, wallet_id, &command, credit).await?;
    }
    execute(state, wallet_id, command).await
}

/// Runs a rollback. A rollback of a bet whose stake is already back (refunded, expired,
/// or the bet voided before) keeps its intent: it succeeds, moves nothing, and answers
/// with the balance now.
pub async fn run_rollback(
    state: &AppState,
    wallet_id: WalletId,
    command: WalletCommand,
) -> Result<CommandReceipt, ApiError> {
    let transaction_id = command.transaction_id();
    match execute(state, wallet_id, command).await {
        Ok(receipt) => Ok(receipt),
        Err(ApiError::Refused {
            error:
                WalletError::ReservationClosed {
                    state:
                        ReservationState::Refunded
                        | ReservationState::Expired
                        | ReservationState::Voided,
                    ..
                },
            ..
        }) => {
            let snapshot = state
                .store
                .wallet(wallet_id)
                .await?
                .ok_or_else(ApiError::wallet_not_found)?;
            Ok(CommandReceipt {
                wallet_id,
                transaction_id,
                balance: snapshot.balance,
                sequence: snapshot.sequence,
                // Not a repeat of an earlier answer (`Idempotent-Replayed` would say so):
                // a first rollback that finds nothing left to return.
                replayed: false,
                funded_bonus: rust_decimal::Decimal::ZERO,
            })
        }
        Err(e) => Err(e),
    }
}

/// The first answer to a bet whose session has ended (or was never this one's), when the
/// log holds the same request under its transaction id: a provider re-sends a bet whose
/// answer it lost, and a refusal would make it roll back a bet that stands. The call no
/// longer names its wallet, so it is the one wallet holding the id; `command` is the call
/// as that wallet's currency makes it. A provider's ids are unique per wallet, not per
/// provider, so another request under the id may be another player's: that is not told
/// (`None`, and the call is refused as without a session), nor is an id several wallets
/// hold. The answer is one the provider was given before, so it tells it nothing new.
pub async fn repeat_without_session(
    state: &AppState,
    transaction_id: TransactionId,
    command: impl FnOnce(Currency) -> WalletCommand,
) -> Result<Option<CommandReceipt>, ApiError> {
    let holders = eventstore::idempotency::holders(&state.pool, &transaction_id).await?;
    let [(wallet_id, currency)] = holders[..] else {
        return Ok(None);
    };
    crate::runner::same_in_log(state, wallet_id, &command(currency)).await
}

/// The brands provider `scope` (a provider's id, or `hub88.{operator}`) is enabled in
/// (`BETLEDGER_PROVIDER_BRANDS`); the default brand alone when it is not listed (as
/// before brands existed), so its sessions and the wallets its calls name by player are
/// always in the same brands.
pub fn provider_brands<'s>(state: &'s AppState, scope: &str) -> &'s Brands {
    static DEFAULT_ONLY: std::sync::LazyLock<Brands> =
        std::sync::LazyLock::new(|| Brands::Only(vec![BrandId::default_brand()]));
    state.provider_brands.get(scope).unwrap_or(&DEFAULT_ONLY)
}

/// The wallets `player` may hold in `currency` among provider `scope`'s brands, in the
/// order listed.
pub fn players_wallets(
    state: &AppState,
    scope: &str,
    player: &PlayerId,
    currency: domain::Currency,
) -> Vec<WalletId> {
    match provider_brands(state, scope) {
        Brands::All => vec![WalletId::for_player(player, currency)],
        Brands::Only(list) => list
            .iter()
            .map(|b| WalletId::for_player_in(b, player, currency))
            .collect(),
    }
}

/// The wallet of `player` in `currency` that a call of provider `scope` names without a
/// session (a win or rollback after it, an adjustment): the one of its brands where the
/// player has one. None there: the first brand's (so the call is refused as for a wallet
/// that does not exist). In more than one: refused, for money must never land in a
/// guessed brand; give each brand a provider entry of its own.
pub async fn players_wallet(
    state: &AppState,
    scope: &str,
    player: &PlayerId,
    currency: domain::Currency,
) -> Result<WalletId, ApiError> {
    let candidates = players_wallets(state, scope, player, currency);
    if candidates.len() == 1 {
        return Ok(candidates[0]);
    }
    let mut held = Vec::new();
    for wallet in &candidates {
        if state.store.wallet(*wallet).await?.is_some() {
            held.push(*wallet);
        }
    }
    match held[..] {
        [] => Ok(candidates[0]),
        [one] => Ok(one),
        _ => Err(ApiError::InvalidRequest(format!(
            "player {player} has wallets in several brands provider {scope} is enabled in; \
             call for a session, or give each brand a provider entry of its own"
        ))),
    }
}

/// Whether provider `scope` may open a session on a wallet of `brand`.
pub fn provider_admits(state: &AppState, scope: &str, brand: &BrandId) -> bool {
    provider_brands(state, scope).admits(brand)
}

/// Whether provider `scope` is still enabled in the brand of `wallet` (a session's): a
/// session opened before the provider's brands were narrowed acts no more.
pub async fn provider_still_admits(
    state: &AppState,
    scope: &str,
    wallet: WalletId,
) -> Result<bool, ApiError> {
    // Every provider call with a session passes here: answered from the shared map, with
    // no copy of a brand or of the provider's list.
    state
        .brands
        .admitted(wallet, provider_brands(state, scope))
        .await
}
