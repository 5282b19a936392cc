//! Bonus money on the native face (the contract's "Bonus money"): an operator grants and
//! forfeits awards (the `operator` scope, each change an event recording the client), and
//! any reader lists a wallet's awards. The rules are the domain's (`domain::wallet::bonus`);
//! the deployment's highest wagering multiplier (`BETLEDGER_BONUS_WAGERING_MAX`) is placed
//! in the grant.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::Json;
use domain::wallet::BonusTerms;
use domain::{Award, BonusId, ForfeitReason, GameId, WalletCommand};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{needs, Authorized};
use crate::body::{at_scale, command_response, BalanceBody, CommandAnswer, CommandResponse};
use crate::error::ApiError;
use crate::input::{amount, optional_currency, time, transaction_id, valid, wallet_id};
use crate::json::JsonBody;
use crate::runner::execute;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(grant, bonuses))
        .routes(routes!(forfeit))
        .routes(routes!(grant_free_rounds))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "transaction_id": "spins-1",
    "provider_id": "devgames",
    "game_id": "slots-1",
    "rounds": 20,
    "bet_value": "0.20",
    "expires_at": "2027-01-31T00:00:00Z",
    "wagering_multiplier": 10
})))]
#[serde(deny_unknown_fields)]
struct FreeRoundsRequest {
    /// The grant's id: what a provider's bet names as `free_rounds_id`, and the `bonus_id`
    /// of the award its winnings become.
    transaction_id: String,
    /// The provider whose bets may use it (`hub88.{operator}` for a Hub88 operator).
    provider_id: String,
    game_id: String,
    /// 1 to 10,000.
    rounds: i64,
    #[schema(value_type = String)]
    bet_value: serde_json::Value,
    /// RFC 3339, in the future.
    expires_at: String,
    /// The winnings become an award wagered this many times (1 to
    /// `BETLEDGER_BONUS_WAGERING_MAX`); absent or 0: they become cash.
    wagering_multiplier: Option<i64>,
    currency: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/free-rounds",
    tag = "native",
    summary = "Grant free rounds (operator scope)",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    request_body = FreeRoundsRequest,
    responses((status = 200, description = "granted", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn grant_free_rounds(
    State(state): State<AppState>,
    caller: Authorized<needs::Operator>,
    Path(path_id): Path<String>,
    JsonBody(body): JsonBody<FreeRoundsRequest>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let command = WalletCommand::GrantFreeRounds {
        transaction_id: transaction_id(body.transaction_id)?,
        provider: body.provider_id,
        game_id: valid(GameId::new, body.game_id)?,
        rounds: body.rounds,
        bet_value: amount("bet_value", &body.bet_value)?,
        expires_at: time("expires_at", &body.expires_at)?,
        wagering_multiplier: body.wagering_multiplier,
        currency: optional_currency(body.currency)?,
        multiplier_max: state.protection.wagering_max,
        now: state.clock.now(),
        by: caller.client_id()?,
    };
    execute(&state, wallet_id, command)
        .await
        .map(command_response)
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "transaction_id": "welcome-1",
    "amount": "20.00",
    "wagering_multiplier": 10,
    "expires_at": "2027-01-31T00:00:00Z",
    "max_conversion": "100.00",
    "max_bet": "5.00",
    "contributions": {"roulette-1": 10}
})))]
#[serde(deny_unknown_fields)]
struct GrantRequest {
    /// The grant's id, and the award's `bonus_id`.
    transaction_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    /// 1 to `BETLEDGER_BONUS_WAGERING_MAX` (default 10).
    wagering_multiplier: i64,
    /// RFC 3339, in the future.
    expires_at: String,
    /// The most cash the award can become.
    #[schema(value_type = Option<String>)]
    max_conversion: Option<serde_json::Value>,
    /// A stake above it does not count toward wagering.
    #[schema(value_type = Option<String>)]
    max_bet: Option<serde_json::Value>,
    /// Percent of a stake that counts, per game (0 to 100); other games 100.
    #[serde(default)]
    contributions: BTreeMap<String, i64>,
    currency: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "forfeit-1", "reason": "bonus abuse"})))]
#[serde(deny_unknown_fields)]
struct ForfeitRequest {
    transaction_id: String,
    reason: String,
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/bonuses",
    tag = "native",
    summary = "Grant a bonus award (operator scope)",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    request_body = GrantRequest,
    responses((status = 200, description = "granted: active, or queued behind the active award", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn grant(
    State(state): State<AppState>,
    caller: Authorized<needs::Operator>,
    Path(path_id): Path<String>,
    JsonBody(body): JsonBody<GrantRequest>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let optional = |field, value: &Option<serde_json::Value>| {
        value.as_ref().map(|v| amount(field, v)).transpose()
    };
    let mut contributions = BTreeMap::new();
    for (game, percent) in body.contributions {
        contributions.insert(valid(GameId::new, game)?, percent);
    }
    let command = WalletCommand::GrantBonus {
        transaction_id: transaction_id(body.transaction_id)?,
        amount: amount("amount", &body.amount)?,
        terms: BonusTerms {
            wagering_multiplier: body.wagering_multiplier,
            expires_at: time("expires_at", &body.expires_at)?,
            max_conversion: optional("max_conversion", &body.max_conversion)?,
            max_bet: optional("max_bet", &body.max_bet)?,
            contributions,
        },
        currency: optional_currency(body.currency)?,
        multiplier_max: state.protection.wagering_max,
        now: state.clock.now(),
        by: caller.client_id()?,
    };
    execute(&state, wallet_id, command)
        .await
        .map(command_response)
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/bonuses/{bonus_id}/forfeit",
    tag = "native",
    summary = "Forfeit a bonus award (operator scope)",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)"), ("bonus_id" = String, Path, description = "the award's id: its grant's transaction_id")),
    request_body = ForfeitRequest,
    responses((status = 200, description = "forfeited; the next queued award, if any, is active", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn forfeit(
    State(state): State<AppState>,
    caller: Authorized<needs::Operator>,
    Path((path_id, bonus_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<ForfeitRequest>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let command = WalletCommand::ForfeitBonus {
        transaction_id: transaction_id(body.transaction_id)?,
        bonus_id: valid(BonusId::new, bonus_id)?,
        reason: valid(ForfeitReason::new, body.reason)?,
        by: caller.client_id()?,
    };
    execute(&state, wallet_id, command)
        .await
        .map(command_response)
}

/// Wagering done and needed.
#[derive(Serialize, utoipa::ToSchema)]
struct WageringView {
    required: String,
    progress: String,
}

/// One award as the contract lists it.
#[derive(Serialize, utoipa::ToSchema)]
struct AwardView {
    bonus_id: String,
    /// queued, active, completed, forfeited or expired.
    status: &'static str,
    amount: String,
    balance: String,
    wagering: WageringView,
    max_conversion: Option<String>,
    max_bet: Option<String>,
    contributions: BTreeMap<String, i64>,
    #[schema(value_type = String, format = DateTime)]
    expires_at: chrono::DateTime<chrono::Utc>,
    converted: String,
    forfeited: String,
    /// Its money in open bets.
    in_bets: String,
}

impl AwardView {
    fn of(a: &Award, scale: u32) -> Self {
        let money = |d| at_scale(d, scale);
        AwardView {
            bonus_id: a.bonus_id.to_string(),
            status: a.status.as_str(),
            amount: money(a.amount),
            balance: money(a.balance),
            wagering: WageringView {
                required: money(a.required()),
                progress: money(a.progress),
            },
            max_conversion: a.terms.max_conversion.map(money),
            max_bet: a.terms.max_bet.map(money),
            contributions: a
                .terms
                .contributions
                .iter()
                .map(|(g, p)| (g.to_string(), *p))
                .collect(),
            expires_at: a.terms.expires_at,
            converted: money(a.converted),
            forfeited: money(a.forfeited),
            in_bets: money(a.in_bets),
        }
    }
}

/// One free-rounds grant as the contract lists it.
#[derive(Serialize, utoipa::ToSchema)]
struct FreeRoundsView {
    grant_id: String,
    provider_id: String,
    game_id: String,
    /// active, completed (every round played and settled) or expired.
    status: &'static str,
    rounds: i64,
    rounds_left: i64,
    /// Its bets not settled yet.
    open: i64,
    bet_value: String,
    winnings: String,
    wagering_multiplier: Option<i64>,
    #[schema(value_type = String, format = DateTime)]
    expires_at: chrono::DateTime<chrono::Utc>,
}

impl FreeRoundsView {
    fn of(g: &domain::wallet::free_rounds::FreeRounds, scale: u32) -> Self {
        FreeRoundsView {
            grant_id: g.grant_id.to_string(),
            provider_id: g.provider.clone(),
            game_id: g.game_id.to_string(),
            status: g.status.as_str(),
            rounds: g.rounds,
            rounds_left: g.rounds_left,
            open: g.open,
            bet_value: at_scale(g.bet_value, scale),
            winnings: at_scale(g.winnings, scale),
            wagering_multiplier: g.wagering_multiplier,
            expires_at: g.expires_at,
        }
    }
}

/// A wallet's awards from the write side, exact now.
#[derive(Serialize, utoipa::ToSchema)]
struct BonusesResponse {
    wallet_id: String,
    /// In grant order.
    awards: Vec<AwardView>,
    /// In grant order.
    free_rounds: Vec<FreeRoundsView>,
    balance: BalanceBody,
    sequence: u64,
}

/// A wallet's bonus awards, in grant order, with their balances and wagering, and its
/// free-rounds grants; from the write side, exact now.
#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/bonuses",
    tag = "native",
    summary = "A wallet's bonus awards",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    responses((status = 200, description = "the awards", body = BonusesResponse), crate::openapi::ReadErrors),
    security(("bearer" = []))
)]
async fn bonuses(
    State(state): State<AppState>,
    _caller: Authorized<needs::Read>,
    Path(path_id): Path<String>,
) -> Result<Json<BonusesResponse>, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let wallet = state
        .store
        .wallet(wallet_id)
        .await?
        .ok_or_else(ApiError::wallet_not_found)?;
    let scale = wallet.balance.currency.scale();
    Ok(Json(BonusesResponse {
        wallet_id: wallet_id.to_string(),
        awards: wallet
            .awards
            .iter()
            .map(|a| AwardView::of(a, scale))
            .collect(),
        free_rounds: wallet
            .free_rounds
            .iter()
            .map(|g| FreeRoundsView::of(g, scale))
            .collect(),
        balance: wallet.balance.into(),
        sequence: wallet.sequence,
    }))
}
