//! Player protection on the native face (the contract's "Player protection"): limits,
//! self-exclusion, and an operator's lock. Changes need the `write` scope (a read-only
//! token cannot loosen a limit), a lock or unlock the `operator` scope; each change is an
//! event recording the client that made it. The rules are the domain's
//! (`domain::wallet::protection`); the deployment's time zone and cooling-off period
//! (`BETLEDGER_LIMITS_TZ`, `BETLEDGER_LIMIT_COOLING_S`) are placed in the command.

use axum::extract::{Path, State};
use axum::Json;
use domain::wallet::protection::{LimitKind, LimitPeriod};
use domain::{ClientId, LockReason, WalletCommand};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{needs, Authorized, Caller};
use crate::body::{command_response, protection_body, BalanceBody, CommandAnswer, CommandResponse};
use crate::error::ApiError;
use crate::input::{amount, optional_currency, time, transaction_id, valid, wallet_id};
use crate::json::JsonBody;
use crate::runner::execute;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(limits))
        .routes(routes!(set_limit))
        .routes(routes!(remove_limit))
        .routes(routes!(exclude))
        .routes(routes!(lock))
        .routes(routes!(unlock))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "limit-1", "amount": "500.00"})))]
#[serde(deny_unknown_fields)]
struct LimitRequest {
    transaction_id: String,
    #[schema(value_type = String)]
    amount: serde_json::Value,
    currency: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "limit-2"})))]
#[serde(deny_unknown_fields)]
struct RemoveRequest {
    transaction_id: String,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "excl-1", "until": "2027-06-01T00:00:00Z"})))]
#[serde(deny_unknown_fields)]
struct ExcludeRequest {
    transaction_id: String,
    until: Option<String>,
    #[serde(default)]
    indefinite: bool,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"transaction_id": "lock-1", "reason": "chargeback under review"})))]
#[serde(deny_unknown_fields)]
struct LockRequest {
    transaction_id: String,
    reason: String,
}

/// The kind and period of a limit's path.
fn limit_path(kind: &str, period: &str) -> Result<(LimitKind, LimitPeriod), ApiError> {
    let kind = LimitKind::parse(kind).ok_or_else(|| {
        ApiError::InvalidRequest(format!(
            "unknown limit kind {:?}: use deposit, wager or loss",
            kind.chars().take(32).collect::<String>()
        ))
    })?;
    let period = LimitPeriod::parse(period).ok_or_else(|| {
        ApiError::InvalidRequest(format!(
            "unknown limit period {:?}: use day, week or month",
            period.chars().take(32).collect::<String>()
        ))
    })?;
    Ok((kind, period))
}

fn client_of(caller: &Caller) -> Result<ClientId, ApiError> {
    caller.client_id()
}

#[utoipa::path(
    put,
    path = "/v1/wallets/{id}/limits/{kind}/{period}",
    tag = "native",
    summary = "Set a limit",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)"), ("kind" = String, Path, description = "deposit, wager or loss"), ("period" = String, Path, description = "day, week or month")),
    request_body = LimitRequest,
    responses((status = 200, description = "set, or pending its cooling-off", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn set_limit(
    State(state): State<AppState>,
    caller: Authorized<needs::Write>,
    Path((path_id, kind, period)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<LimitRequest>,
) -> Result<CommandAnswer, ApiError> {
    // The scope first: a read-only token learns nothing about the amount's checks.
    let amount = amount("amount", &body.amount)?;
    let currency = optional_currency(body.currency)?;
    let path = (path_id, kind, period);
    change_limit(
        &state,
        &caller,
        path,
        body.transaction_id,
        Some(amount),
        currency,
    )
    .await
}

#[utoipa::path(
    delete,
    path = "/v1/wallets/{id}/limits/{kind}/{period}",
    tag = "native",
    summary = "Remove a limit after its cooling-off",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)"), ("kind" = String, Path, description = "deposit, wager or loss"), ("period" = String, Path, description = "day, week or month")),
    request_body = RemoveRequest,
    responses((status = 200, description = "removal pending", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn remove_limit(
    State(state): State<AppState>,
    caller: Authorized<needs::Write>,
    Path((path_id, kind, period)): Path<(String, String, String)>,
    JsonBody(body): JsonBody<RemoveRequest>,
) -> Result<CommandAnswer, ApiError> {
    let path = (path_id, kind, period);
    change_limit(&state, &caller, path, body.transaction_id, None, None).await
}

/// Sets (`Some`) or removes (`None`) the limit the path names, as `caller`.
async fn change_limit(
    state: &AppState,
    caller: &Authorized<needs::Write>,
    (path_id, kind, period): (String, String, String),
    transaction: String,
    amount: Option<rust_decimal::Decimal>,
    currency: Option<domain::Currency>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let (kind, period) = limit_path(&kind, &period)?;
    let command = WalletCommand::SetLimit {
        transaction_id: transaction_id(transaction)?,
        kind,
        period,
        amount,
        currency,
        zone: state.protection.zone,
        cooling_s: state.protection.cooling_s,
        now: state.clock.now(),
        by: client_of(caller)?,
    };
    execute(state, wallet_id, command)
        .await
        .map(command_response)
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/exclusion",
    tag = "native",
    summary = "Self-exclude",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    request_body = ExcludeRequest,
    responses((status = 200, description = "excluded", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn exclude(
    State(state): State<AppState>,
    caller: Authorized<needs::Write>,
    Path(path_id): Path<String>,
    JsonBody(body): JsonBody<ExcludeRequest>,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let until = match (body.until, body.indefinite) {
        (Some(text), false) => Some(time("until", &text)?),
        (None, true) => None,
        _ => {
            return Err(ApiError::InvalidRequest(
                "name either until, or indefinite: true".into(),
            ))
        }
    };
    let command = WalletCommand::Exclude {
        transaction_id: transaction_id(body.transaction_id)?,
        until,
        now: state.clock.now(),
        by: client_of(&caller)?,
    };
    execute(&state, wallet_id, command)
        .await
        .map(command_response)
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/lock",
    tag = "native",
    summary = "Lock an account (operator scope)",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    request_body = LockRequest,
    responses((status = 200, description = "locked", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn lock(
    State(state): State<AppState>,
    caller: Authorized<needs::Operator>,
    Path(path_id): Path<String>,
    JsonBody(body): JsonBody<LockRequest>,
) -> Result<CommandAnswer, ApiError> {
    lock_or_unlock(state, caller, path_id, body, true).await
}

#[utoipa::path(
    post,
    path = "/v1/wallets/{id}/unlock",
    tag = "native",
    summary = "Unlock an account (operator scope)",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    request_body = LockRequest,
    responses((status = 200, description = "unlocked", body = CommandResponse), crate::openapi::Errors),
    security(("bearer" = []))
)]
async fn unlock(
    State(state): State<AppState>,
    caller: Authorized<needs::Operator>,
    Path(path_id): Path<String>,
    JsonBody(body): JsonBody<LockRequest>,
) -> Result<CommandAnswer, ApiError> {
    lock_or_unlock(state, caller, path_id, body, false).await
}

async fn lock_or_unlock(
    state: AppState,
    caller: Authorized<needs::Operator>,
    path_id: String,
    body: LockRequest,
    lock: bool,
) -> Result<CommandAnswer, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let transaction_id = transaction_id(body.transaction_id)?;
    let reason = valid(LockReason::new, body.reason)?;
    let by = client_of(&caller)?;
    let command = if lock {
        WalletCommand::Lock {
            transaction_id,
            reason,
            by,
        }
    } else {
        WalletCommand::Unlock {
            transaction_id,
            reason,
            by,
        }
    };
    execute(&state, wallet_id, command)
        .await
        .map(command_response)
}

/// Each limit in force with what its current period used and when it resets, a pending
/// change, and the exclusion and lock; from the write side, exact now.
#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/limits",
    tag = "native",
    summary = "A wallet's limits, use, exclusion and lock",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    responses((status = 200, description = "the protections", body = serde_json::Value), crate::openapi::ReadErrors),
    security(("bearer" = []))
)]
async fn limits(
    State(state): State<AppState>,
    _caller: Authorized<needs::Read>,
    Path(path_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let wallet = state
        .store
        .wallet(wallet_id)
        .await?
        .ok_or_else(ApiError::wallet_not_found)?;
    let now = state.clock.now();
    let view = wallet
        .protection
        .as_ref()
        .map(|p| p.view(now, wallet.balance.reserved));
    let mut body = protection_body(view.as_ref(), wallet.balance.currency.scale());
    body["wallet_id"] = json!(wallet_id.to_string());
    body["balance"] = json!(BalanceBody::from(wallet.balance));
    body["sequence"] = json!(wallet.sequence);
    body["as_of"] = json!(now);
    Ok(Json(body))
}
