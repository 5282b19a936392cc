//! Reports for the back office (the contract's "Brands and back office"):
//! `GET /v1/reports/ggr`, per UTC day, currency, provider and game, from the totals read
//! model (what `reconcile` checks against the log), in JSON or CSV. What GGR and NGR
//! count is `readmodel::totals::Ggr`'s.

use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use readmodel::totals::Ggr;
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{needs, Authorized};
use crate::body::at_scale;
use crate::error::ApiError;
use crate::json::QueryParams;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(ggr))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct GgrQuery {
    /// The first UTC day (`2026-12-01`).
    from: String,
    /// The last UTC day, inclusive (at most 31 days after `from`).
    to: String,
    /// Only this brand's rows (the caller's brands in any case).
    brand_id: Option<String>,
    /// Only this provider's rows.
    provider: Option<String>,
    /// Only this game's rows.
    game_id: Option<String>,
    /// Only this currency's rows.
    currency: Option<String>,
}

/// The report's figures for one row, as decimal strings at the currency's scale.
#[derive(Serialize, utoipa::ToSchema)]
struct GgrFigures {
    bets: i64,
    rounds: i64,
    /// Cash staked on settled bets.
    stakes: String,
    /// Cash paid on bets, and bet-less wins of every kind.
    payouts: String,
    /// `stakes - payouts`.
    ggr: String,
    /// The bonus parts of bets' stakes and payouts (not in `stakes` and `payouts`).
    bonus_stakes: String,
    bonus_payouts: String,
    /// Bonus money converted to cash.
    bonus_cost: String,
    /// `ggr - bonus_cost`.
    ngr: String,
}

impl GgrFigures {
    fn of(g: &Ggr, scale: u32) -> GgrFigures {
        let money = |d: rust_decimal::Decimal| at_scale(d, scale);
        GgrFigures {
            bets: g.bets,
            rounds: g.rounds,
            stakes: money(g.stakes),
            payouts: money(g.payouts),
            ggr: money(g.ggr),
            bonus_stakes: money(g.bonus_stakes),
            bonus_payouts: money(g.bonus_payouts),
            bonus_cost: money(g.bonus_cost),
            ngr: money(g.ngr),
        }
    }

    /// The figures in the CSV columns' order.
    fn fields(self) -> [String; 9] {
        [
            self.bets.to_string(),
            self.rounds.to_string(),
            self.stakes,
            self.payouts,
            self.ggr,
            self.bonus_stakes,
            self.bonus_payouts,
            self.bonus_cost,
            self.ngr,
        ]
    }
}

/// One row of the report: a day, brand, currency, provider (`null`: native rounds) and
/// game (`null`: none named).
#[derive(Serialize, utoipa::ToSchema)]
struct GgrRow {
    #[schema(value_type = String, format = Date)]
    day: chrono::NaiveDate,
    brand_id: String,
    currency: &'static str,
    provider: Option<String>,
    game_id: Option<String>,
    #[serde(flatten)]
    figures: GgrFigures,
}

/// A day's figures in one currency, over every brand, provider and game in the report.
#[derive(Serialize, utoipa::ToSchema)]
struct GgrDay {
    #[schema(value_type = String, format = Date)]
    day: chrono::NaiveDate,
    currency: &'static str,
    #[serde(flatten)]
    figures: GgrFigures,
}

#[derive(Serialize, utoipa::ToSchema)]
struct GgrReport {
    #[schema(value_type = String, format = Date)]
    from: chrono::NaiveDate,
    #[schema(value_type = String, format = Date)]
    to: chrono::NaiveDate,
    rows: Vec<GgrRow>,
    /// Per day and currency, the rows summed.
    days: Vec<GgrDay>,
    /// The newest log position the read model has applied: the report is current up to it.
    global_position: i64,
}

#[utoipa::path(
    get,
    path = "/v1/reports/ggr",
    tag = "read",
    summary = "GGR and NGR per day, brand, currency, provider and game",
    description = "From the totals read model. `stakes` and `payouts` are cash (a bet's \
        bonus part is apart in `bonus_stakes` and `bonus_payouts`); `payouts` include \
        bet-less wins; `ggr` is `stakes - payouts`; `bonus_cost` is bonus money converted \
        to cash; `ngr` is `ggr - bonus_cost`. A token limited to some brands sees their \
        rows alone. `Accept: text/csv` answers the rows as CSV.",
    params(GgrQuery),
    responses(
        (status = 200, description = "the report, or its rows as CSV",
         content((GgrReport = "application/json"), (String = "text/csv"))),
        crate::openapi::QueryErrors
    ),
    security(("bearer" = []))
)]
async fn ggr(
    State(state): State<AppState>,
    caller: Authorized<needs::Read>,
    headers: HeaderMap,
    QueryParams(q): QueryParams<GgrQuery>,
) -> Result<Response, ApiError> {
    let scope = crate::totals::TotalsScope::parse(
        (&q.from, &q.to),
        (caller.brands(), q.brand_id),
        q.provider,
        q.game_id,
        q.currency,
    )?;
    let (totals, freshness) = scope.rows(&state).await?;
    let mut days: BTreeMap<(chrono::NaiveDate, &'static str), (Ggr, u32)> = BTreeMap::new();
    let mut rows = Vec::with_capacity(totals.len());
    for row in &totals {
        let scale = row
            .currency
            .parse::<domain::Currency>()
            .map_or(2, |c| c.scale());
        let g = Ggr::of(row);
        days.entry((row.day, row.currency))
            .or_insert_with(|| (Ggr::default(), scale))
            .0
            .add(&g);
        rows.push(GgrRow {
            day: row.day,
            brand_id: row.brand_id.clone(),
            currency: row.currency,
            provider: row.provider.clone(),
            game_id: row.game_id.as_ref().map(|g| g.to_string()),
            figures: GgrFigures::of(&g, scale),
        });
    }
    if crate::csv::wanted(&headers) {
        let mut text = crate::csv::line(&[
            "day",
            "brand_id",
            "currency",
            "provider",
            "game_id",
            "bets",
            "rounds",
            "stakes",
            "payouts",
            "ggr",
            "bonus_stakes",
            "bonus_payouts",
            "bonus_cost",
            "ngr",
        ]);
        for row in rows {
            let mut fields = vec![
                row.day.to_string(),
                row.brand_id,
                row.currency.to_string(),
                row.provider.unwrap_or_default(),
                row.game_id.unwrap_or_default(),
            ];
            fields.extend(row.figures.fields());
            text.push_str(&crate::csv::line(&fields));
        }
        return Ok((
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
                (
                    header::CONTENT_DISPOSITION,
                    format!(
                        "attachment; filename=\"ggr-{}-{}.csv\"",
                        scope.from, scope.to
                    ),
                ),
            ],
            text,
        )
            .into_response());
    }
    Ok(Json(GgrReport {
        from: scope.from,
        to: scope.to,
        rows,
        days: days
            .into_iter()
            .map(|((day, currency), (g, scale))| GgrDay {
                day,
                currency,
                figures: GgrFigures::of(&g, scale),
            })
            .collect(),
        global_position: freshness.global_position,
    })
    .into_response())
}
