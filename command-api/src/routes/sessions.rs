//! `POST /v1/sessions` and `DELETE /v1/sessions/{token}`: the casino starts a game for a
//! player and gives the provider a session token (native API, write scope).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use domain::{GameId, PlayerId, WalletId};
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{needs, Authorized};
use crate::error::ApiError;
use crate::input::{currency, valid};
use crate::json::JsonBody;
use crate::sessions::Session;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(create))
        .routes(routes!(end))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"player_id": "alice", "currency": "EUR", "provider_id": "devgames", "game_id": "slots-1"})))]
#[serde(deny_unknown_fields)]
struct SessionRequest {
    player_id: String,
    currency: String,
    provider_id: String,
    game_id: String,
    /// The brand of the player's wallet (default `default`).
    brand_id: Option<String>,
}

#[utoipa::path(
    post,
    path = "/v1/sessions",
    tag = "native",
    summary = "Start a game session for a provider or Hub88 operator",
    request_body = SessionRequest,
    responses((status = 201, description = "the token", body = serde_json::Value), crate::openapi::SessionErrors),
    security(("bearer" = []))
)]
async fn create(
    State(state): State<AppState>,
    caller: Authorized<needs::Write>,
    JsonBody(body): JsonBody<SessionRequest>,
) -> Result<
    (
        StatusCode,
        [(axum::http::HeaderName, String); 1],
        Json<serde_json::Value>,
    ),
    ApiError,
> {
    let player_id = valid(PlayerId::new, body.player_id)?;
    let currency = currency(&body.currency)?;
    let game_id = valid(GameId::new, body.game_id)?;
    let hub88_operator = body
        .provider_id
        .strip_prefix("hub88.")
        .is_some_and(|op| state.hub88.contains_key(op));
    if !state.providers.contains_key(&body.provider_id) && !hub88_operator {
        return Err(ApiError::InvalidRequest(format!(
            "unknown provider {:?}",
            body.provider_id
        )));
    }
    let brand_id = match body.brand_id {
        None => domain::BrandId::default_brand(),
        Some(b) => valid(domain::BrandId::new, b)?,
    };
    let wallet_id = WalletId::for_player_in(&brand_id, &player_id, currency);
    // A session for a wallet that does not exist would only fail later, at the first bet;
    // one of a brand the caller may not act on does not exist for it.
    if !caller.admits(&brand_id) || state.store.wallet(wallet_id).await?.is_none() {
        return Err(ApiError::wallet_not_found());
    }
    if !crate::seamless::provider_admits(&state, &body.provider_id, &brand_id) {
        return Err(ApiError::Forbidden(format!(
            "provider {:?} is not enabled in brand \"{brand_id}\" (BETLEDGER_PROVIDER_BRANDS)",
            body.provider_id
        )));
    }
    let session = Session {
        player_id,
        currency,
        provider_id: body.provider_id,
        game_id,
        wallet_id,
    };
    let token = state.sessions.create(&session).await?;
    Ok((
        StatusCode::CREATED,
        [(
            axum::http::header::LOCATION,
            format!("/v1/sessions/{token}"),
        )],
        Json(json!({
            "token": token,
            "wallet_id": wallet_id.to_string(),
            "expires_in_s": state.sessions.ttl_s(),
        })),
    ))
}

#[utoipa::path(
    delete,
    path = "/v1/sessions/{token}",
    tag = "native",
    summary = "End a session",
    params(("token" = String, Path, description = "the session token")),
    responses((status = 204, description = "ended"), crate::openapi::EndSessionErrors),
    security(("bearer" = []))
)]
async fn end(
    State(state): State<AppState>,
    caller: Authorized<needs::Write>,
    Path(token): Path<String>,
) -> Result<StatusCode, ApiError> {
    // Another brand's session does not exist for a client limited to some brands.
    if !matches!(caller.brands(), crate::auth::Brands::All) {
        if let Some(wallet) = state.sessions.wallet_of(&token).await? {
            let brand = state.brands.brand_of(wallet).await?;
            if brand.is_some_and(|b| !caller.admits(&b)) {
                return Err(ApiError::wallet_not_found());
            }
        }
    }
    // Ending a session that is gone already is not an error: the outcome is the same.
    state.sessions.end(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}
