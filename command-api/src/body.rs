//! The response bodies every face shares: a balance as the contract shows it, and the
//! answer to a money-moving call. Errors have theirs in [`crate::error`].

use axum::Json;
use domain::Balance;
use eventstore::CommandReceipt;
use serde::Serialize;

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

/// The answer to every money-moving call: the balance right after it.
#[derive(Serialize)]
pub struct CommandResponse {
    pub wallet_id: String,
    pub transaction_id: String,
    pub balance: BalanceBody,
    pub sequence: u64,
}

/// The answer to an executed command, under the transaction id the caller knows.
pub fn command_response(receipt: CommandReceipt) -> Json<CommandResponse> {
    Json(CommandResponse {
        wallet_id: receipt.wallet_id.to_string(),
        transaction_id: receipt.transaction_id.map(String::from).unwrap_or_default(),
        balance: receipt.balance.into(),
        sequence: receipt.sequence,
    })
}
