//! The operator audit (the contract's "Brands and back office"): `GET /v1/audit` lists
//! what operators did across wallets (adjustments, locks and unlocks, bonus grants and
//! forfeits, free-rounds grants), newest first, each with its acting client and reason,
//! paged as a history is. What an action holds is `eventstore::history::Action`'s.

use axum::extract::State;
use axum::Json;
use eventstore::history::{self, Cursor};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{needs, Authorized};
use crate::body::at_scale;
use crate::error::ApiError;
use crate::input::{page_limit, time};
use crate::json::QueryParams;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(audit))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    /// Only this API client's actions.
    actor: Option<String>,
    /// Recorded at or after this RFC 3339 time.
    from: Option<String>,
    /// Recorded before this RFC 3339 time.
    to: Option<String>,
    /// Actions per page, 1 to 1000 (default 100).
    limit: Option<String>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// One operator's action.
#[derive(Serialize, utoipa::ToSchema)]
struct ActionBody {
    #[schema(value_type = String, format = DateTime)]
    time: chrono::DateTime<chrono::Utc>,
    wallet_id: String,
    /// The wallet's event that records it.
    sequence: u64,
    /// `FundsAdjusted`, `AccountLocked`, `AccountUnlocked`, `BonusGranted`,
    /// `BonusForfeited` or `FreeRoundsGranted`.
    kind: &'static str,
    /// The operator's API client.
    actor: String,
    reason: Option<String>,
    transaction_id: Option<String>,
    /// An adjustment's amount (signed) or a grant's.
    amount: Option<String>,
}

#[derive(Serialize, utoipa::ToSchema)]
struct AuditPage {
    actions: Vec<ActionBody>,
    /// Pass it as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "native",
    summary = "What operators did, newest first",
    description = "Adjustments, locks and unlocks, bonus grants and forfeits and free-rounds \
        grants across wallets, each with its acting client and reason; filters `actor`, \
        `from`, `to`; paged by `next_cursor`. Needs the operator scope; a token limited to \
        some brands sees their wallets' actions alone.",
    params(AuditQuery),
    responses(
        (status = 200, description = "a page of the audit", body = AuditPage),
        crate::openapi::QueryErrors
    ),
    security(("bearer" = []))
)]
async fn audit(
    State(state): State<AppState>,
    caller: Authorized<needs::Operator>,
    QueryParams(q): QueryParams<AuditQuery>,
) -> Result<Json<AuditPage>, ApiError> {
    let actor = q
        .actor
        .map(|a| domain::ClientId::new(a).map_err(|e| ApiError::InvalidRequest(e.to_string())))
        .transpose()?;
    let from = q.from.as_deref().map(|t| time("from", t)).transpose()?;
    let to = q.to.as_deref().map(|t| time("to", t)).transpose()?;
    let cursor = match &q.cursor {
        None => Cursor::START,
        Some(c) => Cursor::parse(c).map_err(ApiError::InvalidRequest)?,
    };
    let limit = page_limit(q.limit.as_deref())?;
    // A client limited to some brands sees its brands' wallets' actions alone, chosen in
    // the query, so neither a page nor its cursor says anything of another brand.
    let brands: Option<Vec<String>> = match caller.brands() {
        crate::auth::Brands::All => None,
        crate::auth::Brands::Only(list) => Some(list.iter().map(|b| b.to_string()).collect()),
    };
    let page = history::operator_actions(
        &state.pool,
        actor.as_ref().map(|a| a.as_str()),
        (from, to),
        brands.as_deref(),
        cursor,
        limit,
    )
    .await?;
    Ok(Json(AuditPage {
        actions: page
            .actions
            .into_iter()
            .map(|a| ActionBody {
                time: a.time,
                wallet_id: a.wallet_id.to_string(),
                sequence: a.sequence,
                kind: a.kind,
                actor: a.actor,
                reason: a.reason,
                transaction_id: a.transaction_id,
                amount: a.amount.map(|d| at_scale(d, d.scale())),
            })
            .collect(),
        next_cursor: page.next.map(Cursor::encode),
    }))
}
