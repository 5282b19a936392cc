//! The response bodies every face shares: a balance as the contract shows it, and the
//! answer to a money-moving call. Errors have theirs in [`crate::error`].

use axum::Json;
use domain::Balance;
use eventstore::CommandReceipt;
use serde::Serialize;

/// A balance as the contract shows it: decimal strings at the currency's scale.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
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
#[derive(Serialize, utoipa::ToSchema)]
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

/// A wallet's protections as both faces that show them write them: each limit in force
/// with what its period used, when it resets and a pending change, and the exclusion and
/// lock. Money at the currency's `scale`.
pub fn protection_body(
    view: Option<&domain::wallet::protection::ProtectionView>,
    scale: u32,
) -> serde_json::Value {
    let at_scale = |mut d: rust_decimal::Decimal| {
        d.rescale(scale);
        d.to_string()
    };
    let limits: Vec<serde_json::Value> = view
        .iter()
        .flat_map(|v| v.limits.iter())
        .map(|l| {
            serde_json::json!({
                "kind": l.kind,
                "period": l.period,
                "amount": at_scale(l.amount),
                "used": at_scale(l.used),
                "resets_at": l.resets_at,
                "zone": l.zone,
                "pending": l.pending.as_ref().map(|p| serde_json::json!({
                    "amount": p.amount.map(at_scale),
                    "effective_at": p.effective_at,
                })),
            })
        })
        .collect();
    serde_json::json!({
        "limits": limits,
        "self_excluded": view.is_some_and(|v| v.self_excluded),
        "excluded_until": view.and_then(|v| v.excluded_until),
        "locked": view.is_some_and(|v| v.locked),
        "lock_reason": view.and_then(|v| v.lock_reason.clone()),
    })
}
