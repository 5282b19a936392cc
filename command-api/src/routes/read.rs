//! The read side: balances and leaderboards from the Redis read models that the projection
//! workers keep. Each answer carries how fresh it is (the wallet's `sequence`, or the
//! newest log position applied) so a caller can compare it with the write side.

use axum::extract::{Path, State};
use axum::Json;
use domain::Currency;
use readmodel::{query, Period};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{needs, Authorized};
use crate::body::BalanceBody;
use crate::error::ApiError;
use crate::input;
use crate::json::QueryParams;
use crate::state::AppState;

/// Rows a leaderboard returns when the caller names no limit, and at most.
const LEADERBOARD_LIMIT_DEFAULT: u32 = 10;
const LEADERBOARD_LIMIT_MAX: u32 = 100;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(wallet))
        .routes(routes!(leaderboard))
        .routes(routes!(totals))
}

#[utoipa::path(
    get,
    path = "/v1/read/wallets/{id}",
    tag = "read",
    summary = "A wallet's read model",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)")),
    responses((status = 200, description = "the read model", body = serde_json::Value), crate::openapi::ReadErrors),
    security(("bearer" = []))
)]
async fn wallet(
    State(state): State<AppState>,
    _caller: Authorized<needs::Read>,
    Path(path_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let wallet_id = input::wallet_id(&path_id)?;
    let rm = &state.read_models;
    let view = query::wallet(&rm.client, &rm.keys, wallet_id)
        .await?
        .ok_or_else(ApiError::wallet_not_found)?;
    let scale = view.balance.currency.scale();
    let reservations: Vec<serde_json::Value> = view
        .reservations
        .iter()
        .map(|r| {
            let mut amount = r.amount;
            amount.rescale(scale);
            json!({
                "reservation_id": r.reservation_id,
                "amount": amount.to_string(),
                "game_id": r.game_id,
                "round_id": r.round_id,
                "expires_at": r.expires_at,
            })
        })
        .collect();
    let mut body = json!({
        "wallet_id": view.wallet_id,
        "player_id": view.player_id.map(String::from).unwrap_or_default(),
        "balance": BalanceBody::from(view.balance),
        "sequence": view.sequence,
        "open_reservations": reservations,
    });
    // The limits and what is used, as of the last event applied; a period that has ended
    // since shows nothing used (the view is taken now).
    if let Some(p) = &view.protection {
        let v = p.view(state.clock.now(), view.balance.reserved);
        body["protection"] = crate::body::protection_body(Some(&v), scale);
    }
    Ok(Json(body))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct LeaderboardQuery {
    period: Option<String>,
    limit: Option<String>,
    currency: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/read/leaderboards/{game_id}",
    tag = "read",
    summary = "A game's leaderboards",
    params(("game_id" = String, Path, description = "the game"), LeaderboardQuery),
    responses((status = 200, description = "the boards", body = serde_json::Value), crate::openapi::QueryErrors),
    security(("bearer" = []))
)]
async fn leaderboard(
    State(state): State<AppState>,
    caller: Authorized<needs::Read>,
    Path(game_id): Path<String>,
    QueryParams(q): QueryParams<LeaderboardQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    // Summed over every brand's wallets (leaderboards are not kept per brand).
    caller.require_all_brands()?;
    domain::GameId::new(game_id.clone()).map_err(|e| ApiError::InvalidRequest(e.to_string()))?;
    let period: Period = q
        .period
        .as_deref()
        .unwrap_or("all")
        .parse()
        .map_err(ApiError::InvalidRequest)?;
    let limit = match q.limit {
        None => LEADERBOARD_LIMIT_DEFAULT,
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=LEADERBOARD_LIMIT_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "limit must be a whole number from 1 to {LEADERBOARD_LIMIT_MAX}"
                ))
            })?,
    };
    let rm = &state.read_models;
    // Resolved once: every board and the freshness below come from one generation.
    let generation = query::current(&rm.client, &rm.keys).await?;
    // Net wins in different currencies do not add up: one board per currency.
    let currencies: Vec<Currency> = match q.currency.as_deref() {
        Some(code) => vec![code.parse().map_err(|e: domain::money::UnknownCurrency| {
            ApiError::UnknownCurrency(e.to_string())
        })?],
        None => query::leaderboard_currencies(&rm.client, &generation, &game_id).await?,
    };
    let now = state.clock.now();
    let mut boards = Vec::with_capacity(currencies.len());
    for currency in currencies {
        let entries = query::leaderboard(
            &rm.client,
            &generation,
            &game_id,
            currency,
            period,
            now,
            limit,
        )
        .await?;
        let entries: Vec<serde_json::Value> = entries
            .into_iter()
            .map(|e| {
                json!({
                    "rank": e.rank,
                    "player_id": e.player_id,
                    "net_win": e.net_win.to_string(),
                })
            })
            .collect();
        boards.push(json!({ "currency": currency.code(), "entries": entries }));
    }
    let freshness = query::freshness(&rm.client, &generation).await?;
    Ok(Json(json!({
        "game_id": game_id,
        "period": q.period.as_deref().unwrap_or("all"),
        "bucket": period.bucket(now),
        "boards": boards,
        "global_position": freshness.global_position,
        "recorded_at": freshness.recorded_at,
    })))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct TotalsQuery {
    day: Option<String>,
    from: Option<String>,
    to: Option<String>,
    brand_id: Option<String>,
    provider: Option<String>,
    game_id: Option<String>,
    currency: Option<String>,
}

/// Per UTC day, currency, provider and game: bets settled and their stakes, payouts,
/// bet-less wins by kind, adjustments and rounds opened (readmodel::totals). `day`, or
/// `from` and `to` (inclusive, at most 31 days); `provider`, `game_id` and `currency`
/// keep only the rows that name them.
#[utoipa::path(
    get,
    path = "/v1/read/totals",
    tag = "read",
    summary = "Totals per day, currency, provider and game",
    params(TotalsQuery),
    responses((status = 200, description = "the rows", body = serde_json::Value), crate::openapi::QueryErrors),
    security(("bearer" = []))
)]
async fn totals(
    State(state): State<AppState>,
    caller: Authorized<needs::Read>,
    QueryParams(q): QueryParams<TotalsQuery>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (from, to) = match (&q.day, &q.from, &q.to) {
        (Some(day), None, None) => (day.as_str(), day.as_str()),
        (None, Some(from), Some(to)) => (from.as_str(), to.as_str()),
        _ => {
            return Err(ApiError::InvalidRequest(
                "name either day, or both from and to".into(),
            ))
        }
    };
    let scope = crate::totals::TotalsScope::parse(
        (from, to),
        (caller.brands(), q.brand_id),
        q.provider,
        q.game_id,
        q.currency,
    )?;
    let (rows, freshness) = scope.rows(&state).await?;
    let (from, to) = (scope.from, scope.to);
    Ok(Json(json!({
        "from": from,
        "to": to,
        "rows": rows,
        "global_position": freshness.global_position,
        "recorded_at": freshness.recorded_at,
    })))
}
