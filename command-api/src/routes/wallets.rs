//! The native wallet API: open, deposit, withdraw, reserve, settle, refund, and the
//! write side's balance and history. Every input is validated before the command runs, so
//! bad input changes nothing; every command runs through the `WalletStore`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use domain::wallet::RESERVATION_TIMEOUT_S_DEFAULT;
use domain::{BrandId, Currency, GameId, PlayerId, TransactionId, WalletCommand, WalletId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{needs, Authorized};
use crate::body::{bet_response, command_response, BalanceBody, CommandAnswer, CommandResponse};
use crate::error::ApiError;
use crate::input::{
    amount, currency, optional_currency, reservation_id, round_id, transaction_id, valid, wallet_id,
};
use crate::json::{JsonBody, QueryParams};
use crate::runner::execute;
use crate::state::AppState;

/// Events returned by one history call when the caller names no limit.
const EVENTS_PAGE_SIZE_DEFAULT: u32 = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(open))
        .routes(routes!(wallet))
        .routes(routes!(events))
        .routes(routes!(deposit))
        .routes(routes!(withdraw))
        .routes(routes!(reserve))
        .routes(routes!(settle))
        .routes(routes!(refund))
}

// ---- bodies --------------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"player_id": "alice", "currency": "EUR", "brand_id": "default"})))]
#[serde(deny_unknown_fields)]
struct OpenRequest {
    player_id: String,
    currency: String,
    /// The brand it belongs to, for ever (default `default`); the caller's token must
    /// list it.
    brand_id: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "dep-1", "amount": "100.00"})))]
#[serde(deny_unknown_fields)]
struct AmountRequest {
    transaction_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    currency: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "wd-1", "amount": "50.00"})))]
#[serde(deny_unknown_fields)]
struct WithdrawRequest {
    transaction_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    currency: Option<String>,
    /// Forfeit every active and queued bonus award in the same event: without it, a
    /// withdrawal while one is pending is `409 BONUS_ACTIVE`.
    #[serde(default)]
    forfeit_bonuses: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "bet-1", "amount": "2.50", "game_id": "slots-1", "round_id": "round-1"})))]
#[serde(deny_unknown_fields)]
struct ReserveRequest {
    transaction_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    game_id: String,
    round_id: String,
    timeout_s: Option<u32>,
    currency: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "settle-1", "payout": "10.00"})))]
#[serde(deny_unknown_fields)]
struct SettleRequest {
    transaction_id: String,
    #[schema(value_type = String)]
    payout: serde_json::Value,
    currency: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "refund-1"})))]
#[serde(deny_unknown_fields)]
struct RefundRequest {
    transaction_id: String,
}

#[derive(Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "wallet_id": "5e981edd-2830-5883-87b8-66d5add01da4",
    "player_id": "alice",
    "balance": {"available": "0.00", "reserved": "0.00", "currency": "EUR"},
    "sequence": 1
})))]
struct WalletResponse {
    wallet_id: String,
    player_id: String,
    brand_id: String,
    balance: BalanceBody,
    sequence: u64,
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    after: Option<String>,
    limit: Option<String>,
}

// ---- handlers ------------------------------------------------------------------------

#[utoipa::path(
    post,
    path = "/v1/wallets",
    tag = "native",
    summary = "Open a wallet",
    request_body = OpenRequest,
    responses((status = 201, description = "opened", body = WalletResponse), crate::openapi::OpenErrors),
    security(("bearer" = []))
)]
async fn open(
    State(state): State<AppState>,
    caller: Authorized<needs::Write>,
    JsonBody(body): JsonBody<OpenRequest>,
) -> Result<
    (
        StatusCode,
        [(axum::http::HeaderName, String); 1],
        Json<WalletResponse>,
    ),
    ApiError,
> {
    let player_id = valid(PlayerId::new, body.player_id)?;
    let currency = currency(&body.currency)?;
    let brand_id = match body.brand_id {
        None => BrandId::default_brand(),
        Some(b) => valid(BrandId::new, b)?,
    };
    caller.require_brand(&brand_id)?;
    let wallet_id = WalletId::for_player_in(&brand_id, &player_id, currency);
    let receipt = execute(
        &state,
        wallet_id,
        WalletCommand::Open {
            player_id: player_id.clone(),
            currency,
            brand_id: brand_id.clone(),
        },
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        [(
            axum::http::header::LOCATION,
            format!("/v1/wallets/{wallet_id}"),
        )],
        Json(WalletResponse {
            wallet_id: wallet_id.to_string(),
            player_id: player_id.into(),
            brand_id: brand_id.to_string(),
            balance: receipt.balance.into(),
            sequence: receipt.sequence,
        }),
    ))
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/deposits",
    tag = "native",
    summary = "Deposit",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    request_body = AmountRequest,
    responses((status = 200, description = "deposited", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn deposit(
    State(state): State<AppState>,
    caller: Authorized<needs::Write>,
    Path(path_id): Path<String>,
    JsonBody(body): JsonBody<AmountRequest>,
) -> Result<CommandAnswer, ApiError> {
    let command = |transaction_id, amount, currency| WalletCommand::Deposit {
        transaction_id,
        amount,
        currency,
        now: state.clock.now(),
    };
    move_funds(&state, &caller, &path_id, body, command).await
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/withdrawals",
    tag = "native",
    summary = "Withdraw",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    request_body = WithdrawRequest,
    responses((status = 200, description = "withdrawn", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn withdraw(
    State(state): State<AppState>,
    caller: Authorized<needs::Write>,
    Path(path_id): Path<String>,
    JsonBody(body): JsonBody<WithdrawRequest>,
) -> Result<CommandAnswer, ApiError> {
    let forfeit_bonuses = body.forfeit_bonuses;
    let body = AmountRequest {
        transaction_id: body.transaction_id,
        amount: body.amount,
        currency: body.currency,
    };
    let command = |transaction_id, amount, currency| WalletCommand::Withdraw {
        transaction_id,
        amount,
        currency,
        forfeit_bonuses,
    };
    move_funds(&state, &caller, &path_id, body, command).await
}

/// A deposit or a withdrawal: the same body, another command.
async fn move_funds(
    state: &AppState,
    _caller: &Authorized<needs::Write>,
    path_id: &str,
    body: AmountRequest,
    command: impl FnOnce(TransactionId, Decimal, Option<Currency>) -> WalletCommand,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(path_id)?;
    let command = command(
        transaction_id(body.transaction_id)?,
        amount("amount", &body.amount)?,
        optional_currency(body.currency)?,
    );
    execute(state, wallet_id, command)
        .await
        .map(command_response)
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/reservations",
    tag = "native",
    summary = "Reserve a bet's stake",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    request_body = ReserveRequest,
    responses((status = 200, description = "reserved", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn reserve(
    State(state): State<AppState>,
    _caller: Authorized<needs::Write>,
    Path(path_id): Path<String>,
    JsonBody(body): JsonBody<ReserveRequest>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let stake = amount("amount", &body.amount)?;
    let command = WalletCommand::Reserve {
        reservation_id: reservation_id(body.transaction_id)?,
        amount: stake,
        currency: optional_currency(body.currency)?,
        game_id: valid(GameId::new, body.game_id)?,
        round_id: round_id(body.round_id)?,
        timeout_s: body.timeout_s.unwrap_or(RESERVATION_TIMEOUT_S_DEFAULT),
        now: state.clock.now(),
    };
    execute(&state, wallet_id, command)
        .await
        .map(|receipt| bet_response(receipt, stake))
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/reservations/{rid}/settle",
    tag = "native",
    summary = "Settle a reservation",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)"), ("rid" = String, Path, description = "the reservation's id (its reserve's transaction id)")),
    request_body = SettleRequest,
    responses((status = 200, description = "settled", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn settle(
    State(state): State<AppState>,
    _caller: Authorized<needs::Write>,
    Path((path_id, rid)): Path<(String, String)>,
    JsonBody(body): JsonBody<SettleRequest>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let command = WalletCommand::Settle {
        reservation_id: reservation_id(rid)?,
        transaction_id: transaction_id(body.transaction_id)?,
        payout: amount("payout", &body.payout)?,
        currency: optional_currency(body.currency)?,
        now: state.clock.now(),
    };
    execute(&state, wallet_id, command)
        .await
        .map(command_response)
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/reservations/{rid}/refund",
    tag = "native",
    summary = "Refund a reservation",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)"), ("rid" = String, Path, description = "the reservation's id (its reserve's transaction id)")),
    request_body = RefundRequest,
    responses((status = 200, description = "refunded", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn refund(
    State(state): State<AppState>,
    _caller: Authorized<needs::Write>,
    Path((path_id, rid)): Path<(String, String)>,
    JsonBody(body): JsonBody<RefundRequest>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let command = WalletCommand::Refund {
        reservation_id: reservation_id(rid)?,
        transaction_id: transaction_id(body.transaction_id)?,
    };
    execute(&state, wallet_id, command)
        .await
        .map(command_response)
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}",
    tag = "native",
    summary = "A wallet's balance from the write side",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    responses((status = 200, description = "the wallet", body = WalletResponse), crate::openapi::ReadErrors),
    security(("bearer" = []))
)]
async fn wallet(
    State(state): State<AppState>,
    _caller: Authorized<needs::Read>,
    Path(path_id): Path<String>,
) -> Result<Json<WalletResponse>, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let snapshot = state
        .store
        .wallet(wallet_id)
        .await?
        .ok_or_else(ApiError::wallet_not_found)?;
    let brand_id = state
        .brands
        .brand_of(wallet_id)
        .await?
        .unwrap_or_else(BrandId::default_brand);
    Ok(Json(WalletResponse {
        wallet_id: wallet_id.to_string(),
        player_id: snapshot.player_id.into(),
        brand_id: brand_id.to_string(),
        balance: snapshot.balance.into(),
        sequence: snapshot.sequence,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/events",
    tag = "native",
    summary = "A wallet's events in order",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)"), EventsQuery),
    responses((status = 200, description = "the events", body = serde_json::Value), crate::openapi::ReadErrors),
    security(("bearer" = []))
)]
async fn events(
    State(state): State<AppState>,
    _caller: Authorized<needs::Read>,
    Path(path_id): Path<String>,
    QueryParams(query): QueryParams<EventsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let number = |name: &str, text: Option<String>, default: u64, min: u64, max: u64| match text {
        None => Ok(default),
        Some(t) => t
            .parse::<u64>()
            .ok()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "{name} must be a whole number from {min} to {max}"
                ))
            }),
    };
    let after = number("after", query.after, 0, 0, i64::MAX as u64)?;
    let limit = number(
        "limit",
        query.limit,
        u64::from(EVENTS_PAGE_SIZE_DEFAULT),
        1,
        u64::from(eventstore::log::PAGE_SIZE_MAX),
    )? as u32;
    let events = eventstore::log::wallet_events(&state.pool, wallet_id, after, limit).await?;
    if events.is_empty()
        && eventstore::log::wallet_events(&state.pool, wallet_id, 0, 1)
            .await?
            .is_empty()
    {
        return Err(ApiError::wallet_not_found());
    }
    let next_after = events.last().map_or(after, |e| e.sequence);
    let events: Vec<serde_json::Value> = events
        .into_iter()
        .map(|e| {
            serde_json::json!({
                "sequence": e.sequence,
                "event_type": e.event_type,
                "event_version": e.event_version,
                "payload": e.payload,
                "metadata": e.metadata,
                "recorded_at": e.recorded_at,
                "global_position": e.global_position,
            })
        })
        .collect();
    Ok(Json(serde_json::json!({
        "wallet_id": wallet_id.to_string(),
        "events": events,
        "next_after": next_after,
    })))
}
