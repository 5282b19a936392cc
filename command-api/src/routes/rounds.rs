//! The native round endpoints (the contract's "Rounds"): wins in a round, closing a
//! round, a bet and its win in one call, adjustments, and the round view. The rules are
//! the domain's (`domain::wallet::round`); this module only reads bodies into commands.

use axum::extract::{Path, State};
use axum::Json;
use domain::{AdjustmentReason, GameId, RoundId, WalletCommand};
use serde::Deserialize;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{needs, Authorized};
use crate::body::{command_response, CommandAnswer, CommandResponse};
use crate::error::ApiError;
use crate::input::{
    amount, optional_currency, reservation_id, round_id, transaction_id, valid, wallet_id,
};
use crate::json::JsonBody;
use crate::runner::execute;
use crate::state::AppState;
use readmodel::RoundView;

/// Events of one round that the view reads, at most: far past any real round.
const ROUND_EVENTS_MAX: u32 = 1_000;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(round))
        .routes(routes!(win))
        .routes(routes!(close))
        .routes(routes!(bet_win))
        .routes(routes!(adjust))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "win-1", "amount": "10.00", "bet_transaction_id": "bet-1", "round_closed": true})))]
#[schema(as = NativeWinRequest)]
#[serde(deny_unknown_fields)]
struct WinRequest {
    transaction_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    bet_transaction_id: Option<String>,
    kind: Option<String>,
    campaign_id: Option<String>,
    game_id: Option<String>,
    #[serde(default)]
    round_closed: bool,
    currency: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "close-1"})))]
#[serde(deny_unknown_fields)]
struct CloseRequest {
    transaction_id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "bw-1", "game_id": "slots-1", "round_id": "round-2", "amount": "1.00", "payout": "2.00", "round_closed": true})))]
#[schema(as = NativeBetWinRequest)]
#[serde(deny_unknown_fields)]
struct BetWinRequest {
    transaction_id: String,
    game_id: String,
    round_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    #[schema(value_type = String)]
    payout: serde_json::Value,
    #[serde(default)]
    round_closed: bool,
    currency: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "adj-1", "amount": "5.00", "reason": "goodwill"})))]
#[schema(as = NativeAdjustRequest)]
#[serde(deny_unknown_fields)]
struct AdjustRequest {
    transaction_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    reason: String,
    round_id: Option<String>,
    currency: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/rounds/{round_id}/wins",
    tag = "native",
    summary = "A win in a round",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)"), ("round_id" = String, Path, description = "the round's id")),
    request_body = WinRequest,
    responses((status = 200, description = "credited", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn win(
    State(state): State<AppState>,
    _caller: Authorized<needs::Write>,
    Path((path_id, round)): Path<(String, String)>,
    JsonBody(body): JsonBody<WinRequest>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let bet = body.bet_transaction_id.map(reservation_id).transpose()?;
    let command = WalletCommand::Win {
        transaction_id: transaction_id(body.transaction_id)?,
        round_id: round_id(round)?,
        target: crate::input::win_target(bet, body.kind.as_deref(), body.campaign_id)?,
        amount: amount("amount", &body.amount)?,
        game_id: body.game_id.map(|g| valid(GameId::new, g)).transpose()?,
        round_closed: body.round_closed,
        currency: optional_currency(body.currency)?,
        now: state.clock.now(),
    };
    execute(&state, wallet_id, command)
        .await
        .map(command_response)
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/rounds/{round_id}/close",
    tag = "native",
    summary = "Close a round",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)"), ("round_id" = String, Path, description = "the round's id")),
    request_body = CloseRequest,
    responses((status = 200, description = "closed", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn close(
    State(state): State<AppState>,
    _caller: Authorized<needs::Write>,
    Path((path_id, round)): Path<(String, String)>,
    JsonBody(body): JsonBody<CloseRequest>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let command = WalletCommand::CloseRound {
        transaction_id: transaction_id(body.transaction_id)?,
        round_id: round_id(round)?,
        now: state.clock.now(),
    };
    execute(&state, wallet_id, command)
        .await
        .map(command_response)
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/bet-wins",
    tag = "native",
    summary = "A bet and its win at once",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    request_body = BetWinRequest,
    responses((status = 200, description = "staked and paid", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn bet_win(
    State(state): State<AppState>,
    _caller: Authorized<needs::Write>,
    Path(path_id): Path<String>,
    JsonBody(body): JsonBody<BetWinRequest>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let stake = amount("amount", &body.amount)?;
    let command = WalletCommand::BetWin {
        reservation_id: reservation_id(body.transaction_id)?,
        amount: stake,
        payout: amount("payout", &body.payout)?,
        currency: optional_currency(body.currency)?,
        game_id: valid(GameId::new, body.game_id)?,
        round_id: round_id(body.round_id)?,
        round_closed: body.round_closed,
        now: state.clock.now(),
    };
    execute(&state, wallet_id, command)
        .await
        .map(|receipt| crate::body::bet_response(receipt, stake))
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/adjustments",
    tag = "native",
    summary = "A signed correction",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    request_body = AdjustRequest,
    responses((status = 200, description = "adjusted", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn adjust(
    State(state): State<AppState>,
    caller: Authorized<needs::Operator>,
    Path(path_id): Path<String>,
    JsonBody(body): JsonBody<AdjustRequest>,
) -> Result<CommandAnswer, ApiError> {
    // A correction moves money no game decided: the back office's, with the operator scope.
    let wallet_id = wallet_id(&path_id)?;
    let command = WalletCommand::Adjust {
        transaction_id: transaction_id(body.transaction_id)?,
        amount: crate::input::signed_amount(&body.amount)?,
        reason: valid(AdjustmentReason::new, body.reason)?,
        round_id: body.round_id.map(round_id).transpose()?,
        currency: optional_currency(body.currency)?,
        by: Some(caller.client_id()?),
    };
    execute(&state, wallet_id, command)
        .await
        .map(command_response)
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/rounds/{round_id}",
    tag = "native",
    summary = "A round's bets, wins, adjustments and totals",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)"), ("round_id" = String, Path, description = "the round's id")),
    responses((status = 200, description = "the round", body = RoundView), crate::openapi::ReadErrors),
    security(("bearer" = []))
)]
async fn round(
    State(state): State<AppState>,
    _caller: Authorized<needs::Read>,
    Path((path_id, round)): Path<(String, String)>,
) -> Result<Json<RoundView>, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let round_id = valid(RoundId::new, round)?;
    let wallet = state
        .store
        .wallet(wallet_id)
        .await?
        .ok_or_else(ApiError::wallet_not_found)?;
    let events =
        eventstore::payload::round_events(&state.pool, wallet_id, &round_id, ROUND_EVENTS_MAX)
            .await?;
    if events.is_empty() {
        return Err(ApiError::RoundNotFound(format!(
            "wallet {wallet_id} has no round {round_id}"
        )));
    }
    let mut view = RoundView::new(wallet_id, &round_id, wallet.balance.currency);
    for logged in events {
        let event = logged
            .decode()
            .map_err(|e| ApiError::from(eventstore::StoreError::Corrupt(Box::new(e))))?;
        view.fold(event, logged.sequence);
    }
    Ok(Json(view))
}
