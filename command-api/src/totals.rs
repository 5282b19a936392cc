//! The totals read model as the read routes and the reports ask for it: which days and
//! slots a query names (`TotalsScope`), and their rows.

use domain::Currency;
use readmodel::query;

use crate::error::ApiError;
use crate::input;
use crate::state::AppState;

/// Most days one totals query or report spans.
pub const TOTALS_DAYS_MAX: i64 = 31;

/// The days and slots a totals query or a report names: `from` to `to` (UTC days,
/// inclusive, at most [`TOTALS_DAYS_MAX`]), the brand, provider, game and currency a row
/// must name when given, and the brands the caller may see.
pub struct TotalsScope {
    pub from: chrono::NaiveDate,
    pub to: chrono::NaiveDate,
    brands: domain::Brands,
    brand_id: Option<domain::BrandId>,
    provider: Option<String>,
    game_id: Option<domain::GameId>,
    currency: Option<Currency>,
}

impl TotalsScope {
    pub fn parse(
        (from, to): (&str, &str),
        (brands, brand_id): (&domain::Brands, Option<String>),
        provider: Option<String>,
        game_id: Option<String>,
        currency: Option<String>,
    ) -> Result<TotalsScope, ApiError> {
        let date = |field: &str, text: &str| {
            chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| {
                ApiError::InvalidRequest(format!("{field} must be a UTC day like 2026-12-01"))
            })
        };
        let (from, to) = (date("from", from)?, date("to", to)?);
        let span = (to - from).num_days();
        if !(0..TOTALS_DAYS_MAX).contains(&span) {
            return Err(ApiError::InvalidRequest(format!(
                "from must not be after to, and the span at most {TOTALS_DAYS_MAX} days"
            )));
        }
        Ok(TotalsScope {
            from,
            to,
            brands: brands.clone(),
            brand_id: brand_id
                .map(|b| {
                    domain::BrandId::new(b).map_err(|e| ApiError::InvalidRequest(e.to_string()))
                })
                .transpose()?,
            provider,
            game_id: game_id
                .map(|g| {
                    domain::GameId::new(g).map_err(|e| ApiError::InvalidRequest(e.to_string()))
                })
                .transpose()?,
            currency: input::optional_currency(currency)?,
        })
    }

    /// The totals rows in scope, and how fresh the read model is.
    pub async fn rows(
        &self,
        state: &AppState,
    ) -> Result<(Vec<readmodel::totals::TotalsRow>, query::Freshness), ApiError> {
        let rm = &state.read_models;
        let generation = query::current(&rm.client, &rm.keys).await?;
        let default = domain::BrandId::default_brand();
        let rows = query::totals(&rm.client, &generation, self.from, self.to, |slot| {
            let brand = slot.origin.brand.as_ref().unwrap_or(&default);
            self.brands.admits(brand)
                && self.brand_id.as_ref().is_none_or(|b| b == brand)
                && self.currency.is_none_or(|c| c == slot.currency)
                && self
                    .provider
                    .as_ref()
                    .is_none_or(|p| slot.origin.provider.as_ref() == Some(p))
                && self
                    .game_id
                    .as_ref()
                    .is_none_or(|g| slot.origin.game_id.as_ref() == Some(g))
        })
        .await?;
        let freshness = query::freshness(&rm.client, &generation).await?;
        Ok((rows, freshness))
    }
}
