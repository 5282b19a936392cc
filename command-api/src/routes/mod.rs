//! The endpoints, one module per group, and the bodies they share.

mod health;
mod read;
mod sessions;
pub(crate) mod wallets;

use axum::Router;
use domain::Balance;
use serde::Serialize;

use crate::app::AppState;

/// All routes, before layers and state.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(wallets::routes())
        .merge(read::routes())
        .merge(sessions::routes())
        .merge(crate::provider::routes())
        .merge(health::routes())
}

/// A balance as the contract shows it: decimal strings at the currency's scale.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct BalanceBody {
    pub available: String,
    pub reserved: String,
    pub currency: &'static str,
}

impl From<Balance> for BalanceBody {
    fn from(b: Balance) -> Self {
        let scaled = |mut d: rust_decimal::Decimal| {
            d.rescale(b.currency.scale());
            d.to_string()
        };
        Self {
            available: scaled(b.available),
            reserved: scaled(b.reserved),
            currency: b.currency.code(),
        }
    }
}
