//! The provider face (seamless wallet) of `../shared/wallet-protocol.md`: game providers
//! ask the wallet for every bet, win and rollback.
//!
//! Every request is checked before anything else: the provider must be configured, the
//! `X-Signature` header must be the HMAC-SHA256 of the raw body under the provider's secret
//! (compared in constant time), and the body's `timestamp` must be within 5 minutes of
//! now, so a captured request cannot be replayed later. A provider's transaction ids are
//! scoped by its id (`{pid}:{transaction_id}`), so one provider can never reach another's
//! bets, and so are its round ids (`{pid}:{round_id}`). The rules themselves live in the
//! domain (`Reserve`, `Win`, `Rollback`, `BetWin`, `Adjust`).
//!
//! A bet (or bet-win) whose session has ended is answered from the log when the log holds
//! its id: the same request gets its first answer, another one `IDEMPOTENCY_CONFLICT`
//! (`repeat_without_session`); a new id needs a live session.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use domain::{GameId, PlayerId, ReservationId, WalletCommand, WalletId};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::body::{command_response, BalanceBody, CommandAnswer, CommandResponse};
use crate::error::ApiError;
use crate::input::{amount, currency, valid};
use crate::json::RawBody;
use crate::providers::{Provider, SIGNATURE_HEADER};
use crate::runner::execute;
use crate::seamless::{self, Scope, Win};
use crate::sessions::Session;
use crate::state::AppState;

/// How far a request's `timestamp` may be from now.
pub const TIMESTAMP_WINDOW_S: i64 = 300;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(balance))
        .routes(routes!(bet))
        .routes(routes!(win))
        .routes(routes!(rollback))
        .routes(routes!(bet_win))
        .routes(routes!(adjust))
}

// ---- bodies --------------------------------------------------------------------------

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"token": "1e13025f9cd744d1962337eec2c64155dbf85d9dea504975a1c1728acea13cc5", "timestamp": 1796659200})))]
#[schema(as = ProviderBalanceRequest)]
#[serde(deny_unknown_fields)]
struct BalanceRequest {
    token: String,
    timestamp: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"token": "1e13025f9cd744d1962337eec2c64155dbf85d9dea504975a1c1728acea13cc5", "transaction_id": "p-bet-1", "round_id": "p-round-1", "game_id": "slots-1", "amount": "1.00", "timestamp": 1796659200})))]
#[schema(as = ProviderBetRequest)]
#[serde(deny_unknown_fields)]
struct BetRequest {
    token: String,
    transaction_id: String,
    round_id: String,
    game_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    #[serde(default)]
    round_closed: bool,
    /// A free-rounds grant's id (the operator's `transaction_id` of it): the bet uses one
    /// of its rounds and costs nothing.
    free_rounds_id: Option<String>,
    timestamp: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"player_id": "alice", "currency": "EUR", "transaction_id": "p-win-1", "bet_transaction_id": "p-bet-1", "round_id": "p-round-1", "amount": "3.00", "round_closed": true, "timestamp": 1796659200})))]
#[schema(as = ProviderWinRequest)]
#[serde(deny_unknown_fields)]
struct WinRequest {
    player_id: String,
    currency: String,
    transaction_id: String,
    bet_transaction_id: Option<String>,
    round_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    kind: Option<String>,
    campaign_id: Option<String>,
    game_id: Option<String>,
    #[serde(default)]
    round_closed: bool,
    timestamp: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"token": "1e13025f9cd744d1962337eec2c64155dbf85d9dea504975a1c1728acea13cc5", "transaction_id": "p-bw-1", "round_id": "p-round-2", "game_id": "slots-1", "amount": "1.00", "payout": "0.00", "round_closed": true, "timestamp": 1796659200})))]
#[schema(as = ProviderBetWinRequest)]
#[serde(deny_unknown_fields)]
struct BetWinRequest {
    token: String,
    transaction_id: String,
    round_id: String,
    game_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    #[schema(value_type = String)]
    payout: serde_json::Value,
    #[serde(default)]
    round_closed: bool,
    /// As on `bet`: the bet-win uses one of the grant's rounds and costs nothing.
    free_rounds_id: Option<String>,
    timestamp: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"player_id": "alice", "currency": "EUR", "transaction_id": "p-adj-1", "round_id": "p-round-1", "amount": "-0.50", "reason": "wrong paytable", "timestamp": 1796659200})))]
#[schema(as = ProviderAdjustRequest)]
#[serde(deny_unknown_fields)]
struct AdjustRequest {
    player_id: String,
    currency: String,
    transaction_id: String,
    round_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    reason: String,
    timestamp: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"player_id": "alice", "currency": "EUR", "transaction_id": "p-rb-1", "bet_transaction_id": "p-bet-1", "round_id": "p-round-1", "timestamp": 1796659200})))]
#[schema(as = ProviderRollbackRequest)]
#[serde(deny_unknown_fields)]
struct RollbackRequest {
    player_id: String,
    currency: String,
    transaction_id: String,
    bet_transaction_id: String,
    round_id: String,
    timestamp: i64,
}

trait Timestamped {
    fn timestamp(&self) -> i64;
}

macro_rules! timestamped {
    ($($t:ty),*) => { $(impl Timestamped for $t { fn timestamp(&self) -> i64 { self.timestamp } })* };
}
timestamped!(
    BalanceRequest,
    BetRequest,
    WinRequest,
    RollbackRequest,
    BetWinRequest,
    AdjustRequest
);

// ---- the checks every call passes ------------------------------------------------------

/// Verifies provider, signature, rate and timestamp, then parses the body.
fn verified<T: DeserializeOwned + Timestamped>(
    state: &AppState,
    pid: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Provider, T), ApiError> {
    let provider = state
        .providers
        .get(pid)
        .ok_or_else(|| ApiError::Unauthorized(format!("unknown provider {pid:?}")))?;
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| {
            ApiError::Unauthorized("send `X-Signature: hex(HMAC-SHA256(secret, raw body))`".into())
        })?;
    if !provider.verify(body, signature) {
        metrics::counter!("provider_bad_signatures_total", "provider" => pid.to_string())
            .increment(1);
        return Err(ApiError::Unauthorized(
            "the signature does not match the body under this provider's secret".into(),
        ));
    }
    state.limiter.check(&format!("provider:{pid}"))?;
    let request: T = serde_json::from_slice(body)
        .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))?;
    // In i128: a timestamp near i64::MIN or MAX must not wrap into the window.
    let skew = i128::from(state.clock.now().timestamp()) - i128::from(request.timestamp());
    if skew.abs() > i128::from(TIMESTAMP_WINDOW_S) {
        return Err(ApiError::Unauthorized(format!(
            "timestamp is {skew} s from now; at most {TIMESTAMP_WINDOW_S} s are accepted"
        )));
    }
    Ok((provider.clone(), request))
}

/// The session of `token`, which must be this provider's.
async fn session_of(
    state: &AppState,
    provider: &Provider,
    token: &str,
) -> Result<Session, ApiError> {
    let session = state.sessions.touch(token).await?;
    if session.provider_id != provider.id {
        return Err(ApiError::InvalidToken(
            "the session token was issued for another provider".into(),
        ));
    }
    if !seamless::provider_still_admits(state, &provider.id, session.wallet_id).await? {
        return Err(ApiError::InvalidToken(
            "the session's wallet is of a brand this provider is not enabled in".into(),
        ));
    }
    Ok(session)
}

/// The session of `token` and the game a bet names, which must be the session's.
async fn session_for_game(
    state: &AppState,
    provider: &Provider,
    token: &str,
    game_id: String,
) -> Result<(Session, GameId), ApiError> {
    let session = session_of(state, provider, token).await?;
    let game_id = valid(GameId::new, game_id)?;
    if game_id != session.game_id {
        return Err(ApiError::Forbidden(format!(
            "the session is for game {}, not {game_id}",
            session.game_id
        )));
    }
    Ok((session, game_id))
}

/// The answer to a money-moving provider call: the provider's own transaction id.
fn answer(receipt: eventstore::CommandReceipt, transaction_id: String) -> CommandAnswer {
    let mut response = command_response(receipt);
    response.body.transaction_id = transaction_id;
    response.body.balance.playable = true;
    response
}

/// The free-rounds grant a bet names, if it names one.
fn free_rounds(id: Option<String>) -> Result<Option<domain::BonusId>, ApiError> {
    id.map(|id| valid(domain::BonusId::new, id)).transpose()
}

/// [`answer`] for a bet of `stake`: with how it was paid (`funded`).
fn bet_answer(
    receipt: eventstore::CommandReceipt,
    transaction_id: String,
    stake: rust_decimal::Decimal,
) -> CommandAnswer {
    let mut response = crate::body::bet_response(receipt, stake);
    response.body.transaction_id = transaction_id;
    response.body.balance.playable = true;
    response
}

/// An error of this face: its balance, when it carries one, written as this face writes
/// balances (the playable total, see [`BalanceBody::playable`]).
struct ProviderError(ApiError);

impl<E: Into<ApiError>> From<E> for ProviderError {
    fn from(e: E) -> Self {
        ProviderError(e.into())
    }
}

impl axum::response::IntoResponse for ProviderError {
    fn into_response(self) -> axum::response::Response {
        self.0.response(true)
    }
}

// ---- handlers ------------------------------------------------------------------------

#[utoipa::path(
    post,
    path = "/provider/{pid}/balance",
    tag = "provider",
    summary = "The session's balance",
    params(("pid" = String, Path, description = "the provider's id")),
    request_body = BalanceRequest,
    responses((status = 200, description = "the balance", body = serde_json::Value), crate::openapi::ReadErrors),
    security(("provider_signature" = []))
)]
async fn balance(
    State(state): State<AppState>,
    Path(pid): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<Json<serde_json::Value>, ProviderError> {
    let (provider, request) = verified::<BalanceRequest>(&state, &pid, &headers, &body)?;
    let session = session_of(&state, &provider, &request.token).await?;
    let snapshot = state
        .store
        .wallet(session.wallet_id)
        .await?
        .ok_or_else(ApiError::wallet_not_found)?;
    Ok(Json(json!({
        "wallet_id": snapshot.wallet_id.to_string(),
        "player_id": snapshot.player_id.to_string(),
        "balance": BalanceBody::playable(snapshot.balance),
        "sequence": snapshot.sequence,
    })))
}

#[utoipa::path(
    post,
    path = "/provider/{pid}/bet",
    tag = "provider",
    summary = "A bet",
    params(("pid" = String, Path, description = "the provider's id")),
    request_body = BetRequest,
    responses((status = 200, description = "reserved", body = CommandResponse), crate::openapi::Errors),
    security(("provider_signature" = []))
)]
async fn bet(
    State(state): State<AppState>,
    Path(pid): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<CommandAnswer, ProviderError> {
    let (provider, request) = verified::<BetRequest>(&state, &pid, &headers, &body)?;
    let scope = Scope(&pid);
    let reservation_id = scope.bet("transaction_id", &request.transaction_id)?;
    let round_id = scope.round(&request.round_id)?;
    let amount = amount("amount", &request.amount)?;
    let free = free_rounds(request.free_rounds_id)?;
    let receipt = run_bet(
        &state,
        &provider,
        (&request.token, &request.game_id),
        &reservation_id,
        |currency, game_id| match &free {
            Some(grant_id) => seamless::free_bet(
                reservation_id.clone(),
                grant_id.clone(),
                None,
                (currency, game_id),
                (round_id.clone(), request.round_closed),
                state.clock.now(),
            ),
            None => seamless::bet(
                reservation_id.clone(),
                amount,
                (currency, game_id),
                (round_id.clone(), request.round_closed),
                state.clock.now(),
            ),
        },
    )
    .await?;
    let stake = if free.is_some() {
        rust_decimal::Decimal::ZERO
    } else {
        amount
    };
    Ok(bet_answer(receipt, request.transaction_id, stake))
}

/// Runs a bet or bet-win on its session's wallet, as `command` makes it for the session's
/// currency and game (which must be the one the call names). When the session has ended,
/// a repeat is answered from the log ([`repeat_without_session`]); anything else is
/// refused as without a session.
async fn run_bet(
    state: &AppState,
    provider: &Provider,
    (token, game): (&str, &str),
    reservation_id: &ReservationId,
    command: impl Fn(domain::Currency, GameId) -> WalletCommand,
) -> Result<eventstore::CommandReceipt, ApiError> {
    match session_for_game(state, provider, token, game.to_string()).await {
        Ok((session, game_id)) => {
            execute(state, session.wallet_id, command(session.currency, game_id)).await
        }
        Err(refusal @ ApiError::InvalidToken(_)) => {
            let game_id = valid(GameId::new, game.to_string())?;
            seamless::repeat_without_session(state, reservation_id.clone().into(), |currency| {
                command(currency, game_id)
            })
            .await?
            .ok_or(refusal)
        }
        Err(e) => Err(e),
    }
}

/// The wallet a win or rollback names (they work after the session has ended): the
/// player's among the provider's brands.
async fn named_wallet(
    state: &AppState,
    pid: &str,
    player_id: String,
    currency_code: &str,
) -> Result<WalletId, ApiError> {
    let player_id = valid(PlayerId::new, player_id)?;
    seamless::players_wallet(state, pid, &player_id, currency(currency_code)?).await
}

#[utoipa::path(
    post,
    path = "/provider/{pid}/win",
    tag = "provider",
    summary = "A win",
    params(("pid" = String, Path, description = "the provider's id")),
    request_body = WinRequest,
    responses((status = 200, description = "credited", body = CommandResponse), crate::openapi::Errors),
    security(("provider_signature" = []))
)]
async fn win(
    State(state): State<AppState>,
    Path(pid): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<CommandAnswer, ProviderError> {
    let (_, request) = verified::<WinRequest>(&state, &pid, &headers, &body)?;
    let wallet_id = named_wallet(&state, &pid, request.player_id, &request.currency).await?;
    let scope = Scope(&pid);
    let (bet, transaction_id) = scope.win_ids(
        ("transaction_id", &request.transaction_id),
        request
            .bet_transaction_id
            .as_deref()
            .map(|bet| ("bet_transaction_id", bet)),
    )?;
    let (credit, currency) = (
        amount("amount", &request.amount)?,
        currency(&request.currency)?,
    );
    let command = Win {
        transaction_id,
        round_id: scope.round(&request.round_id)?,
        target: crate::input::win_target(bet, request.kind.as_deref(), request.campaign_id)?,
        amount: credit,
        game_id: request.game_id.map(|g| valid(GameId::new, g)).transpose()?,
        currency,
        round_closed: request.round_closed,
    }
    .command(state.clock.now());
    let receipt = seamless::run_credit(&state, scope, wallet_id, command).await?;
    Ok(answer(receipt, request.transaction_id))
}

#[utoipa::path(
    post,
    path = "/provider/{pid}/bet-win",
    tag = "provider",
    summary = "A bet and its win at once",
    params(("pid" = String, Path, description = "the provider's id")),
    request_body = BetWinRequest,
    responses((status = 200, description = "staked and paid", body = CommandResponse), crate::openapi::Errors),
    security(("provider_signature" = []))
)]
async fn bet_win(
    State(state): State<AppState>,
    Path(pid): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<CommandAnswer, ProviderError> {
    let (provider, request) = verified::<BetWinRequest>(&state, &pid, &headers, &body)?;
    let scope = Scope(&pid);
    let reservation_id = scope.bet("transaction_id", &request.transaction_id)?;
    let round_id = scope.round(&request.round_id)?;
    let (stake, payout) = (
        amount("amount", &request.amount)?,
        amount("payout", &request.payout)?,
    );
    let free = free_rounds(request.free_rounds_id)?;
    let receipt = run_bet(
        &state,
        &provider,
        (&request.token, &request.game_id),
        &reservation_id,
        |currency, game_id| match &free {
            Some(grant_id) => seamless::free_bet(
                reservation_id.clone(),
                grant_id.clone(),
                Some(payout),
                (currency, game_id),
                (round_id.clone(), request.round_closed),
                state.clock.now(),
            ),
            None => seamless::bet_win(
                reservation_id.clone(),
                (stake, payout),
                (currency, game_id),
                (round_id.clone(), request.round_closed),
                state.clock.now(),
            ),
        },
    )
    .await?;
    let stake = if free.is_some() {
        rust_decimal::Decimal::ZERO
    } else {
        stake
    };
    Ok(bet_answer(receipt, request.transaction_id, stake))
}

#[utoipa::path(
    post,
    path = "/provider/{pid}/adjust",
    tag = "provider",
    summary = "A correction",
    params(("pid" = String, Path, description = "the provider's id")),
    request_body = AdjustRequest,
    responses((status = 200, description = "adjusted", body = CommandResponse), crate::openapi::Errors),
    security(("provider_signature" = []))
)]
async fn adjust(
    State(state): State<AppState>,
    Path(pid): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<CommandAnswer, ProviderError> {
    let (_, request) = verified::<AdjustRequest>(&state, &pid, &headers, &body)?;
    let wallet_id = named_wallet(&state, &pid, request.player_id, &request.currency).await?;
    let scope = Scope(&pid);
    let command = scope.adjust(
        &request.transaction_id,
        crate::input::signed_amount(&request.amount)?,
        request.reason,
        &request.round_id,
        currency(&request.currency)?,
    )?;
    let receipt = seamless::run_credit(&state, scope, wallet_id, command).await?;
    Ok(answer(receipt, request.transaction_id))
}

#[utoipa::path(
    post,
    path = "/provider/{pid}/rollback",
    tag = "provider",
    summary = "A rollback",
    params(("pid" = String, Path, description = "the provider's id")),
    request_body = RollbackRequest,
    responses((status = 200, description = "refunded, voided, or already back", body = CommandResponse), crate::openapi::Errors),
    security(("provider_signature" = []))
)]
async fn rollback(
    State(state): State<AppState>,
    Path(pid): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Result<CommandAnswer, ProviderError> {
    let (_, request) = verified::<RollbackRequest>(&state, &pid, &headers, &body)?;
    let wallet_id = named_wallet(&state, &pid, request.player_id, &request.currency).await?;
    let command = Scope(&pid).rollback(
        &request.transaction_id,
        ("bet_transaction_id", &request.bet_transaction_id),
        &request.round_id,
    )?;
    let receipt = seamless::run_rollback(&state, wallet_id, command).await?;
    Ok(answer(receipt, request.transaction_id))
}
