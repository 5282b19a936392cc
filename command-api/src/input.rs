//! Parsing what callers send, for every face: ids, currencies and amounts, each refused
//! with the contract's error before any command runs, so bad input changes nothing.

use domain::{
    BetlessKind, CampaignId, Currency, IdError, ReservationId, RoundId, TransactionId, WalletId,
    WinTarget,
};
use rust_decimal::Decimal;

use crate::error::ApiError;

/// A wallet id from a path: a UUID in its one written form (lowercase, hyphenated).
pub fn wallet_id(text: &str) -> Result<WalletId, ApiError> {
    text.parse().map_err(|e| {
        ApiError::InvalidRequest(format!(
            "wallet id {:?}: {e}",
            text.chars().take(64).collect::<String>()
        ))
    })
}

/// A caller-chosen id, validated by `make` (`PlayerId::new`, `GameId::new`, ...).
pub fn valid<T>(make: fn(String) -> Result<T, IdError>, value: String) -> Result<T, ApiError> {
    make(value).map_err(|e| ApiError::InvalidRequest(e.to_string()))
}

/// A native caller's transaction id. It may not contain `:`: that is how provider-scoped
/// ids (`{pid}:{id}`) are written, so a native caller can never create or touch a
/// provider's transaction, nor a provider a native one.
pub fn transaction_id(value: String) -> Result<TransactionId, ApiError> {
    native(&value)?;
    valid(TransactionId::new, value)
}

/// A native caller's reservation id (a reserve's transaction id): as [`transaction_id`].
pub fn reservation_id(value: String) -> Result<ReservationId, ApiError> {
    native(&value)?;
    valid(ReservationId::new, value)
}

/// A native caller's round id: as [`transaction_id`], so a native call can never name a
/// provider's round (`{pid}:{round}`) nor be counted as a provider's in the totals.
pub fn round_id(value: String) -> Result<RoundId, ApiError> {
    native(&value)?;
    valid(RoundId::new, value)
}

fn native(id: &str) -> Result<(), ApiError> {
    if id.contains(':') {
        return Err(ApiError::InvalidRequest(
            "transaction, reservation and round ids may not contain ':' (it marks a \
             provider's ids)"
                .into(),
        ));
    }
    Ok(())
}

/// A currency code the ledger knows.
pub fn currency(code: &str) -> Result<Currency, ApiError> {
    code.parse()
        .map_err(|e: domain::money::UnknownCurrency| ApiError::UnknownCurrency(e.to_string()))
}

/// An optional currency code.
pub fn optional_currency(code: Option<String>) -> Result<Option<Currency>, ApiError> {
    code.as_deref().map(currency).transpose()
}

/// An amount field: a decimal string. A JSON number is refused, so no float ever
/// touches money.
pub fn amount(field: &str, value: &serde_json::Value) -> Result<Decimal, ApiError> {
    match value {
        serde_json::Value::String(text) => domain::money::parse_decimal(text)
            .map_err(|e| ApiError::InvalidAmount(format!("{field}: {e}"))),
        serde_json::Value::Number(_) => Err(ApiError::InvalidAmount(format!(
            "{field} must be a decimal string like \"12.50\", not a JSON number"
        ))),
        _ => Err(ApiError::InvalidRequest(format!(
            "{field} must be a decimal string like \"12.50\""
        ))),
    }
}

/// What a win pays against, from its optional bet id, kind and campaign: shared by the
/// native and the provider face, which differ only in how ids are scoped.
pub fn win_target(
    bet: Option<domain::ReservationId>,
    kind: Option<&str>,
    campaign_id: Option<String>,
) -> Result<WinTarget, ApiError> {
    let campaign_id = campaign_id.map(|c| valid(CampaignId::new, c)).transpose()?;
    match (bet, kind) {
        (Some(_), Some(_)) => Err(ApiError::InvalidRequest(
            "a win with a kind has no bet: leave out bet_transaction_id or kind".into(),
        )),
        (None, Some(kind)) => {
            let kind = BetlessKind::parse(kind).ok_or_else(|| {
                ApiError::InvalidRequest(
                    "kind must be \"free_spin\", \"promo\" or \"jackpot\"".into(),
                )
            })?;
            Ok(WinTarget::Betless { kind, campaign_id })
        }
        _ if campaign_id.is_some() => Err(ApiError::InvalidRequest(
            "campaign_id goes with a win of a kind (free_spin, promo, jackpot)".into(),
        )),
        (Some(bet), None) => Ok(WinTarget::Bet(bet)),
        (None, None) => Ok(WinTarget::Round),
    }
}

/// An adjustment's signed amount: a decimal string, not zero.
pub fn signed_amount(value: &serde_json::Value) -> Result<Decimal, ApiError> {
    let amount = amount("amount", value)?;
    if amount.is_zero() {
        return Err(ApiError::InvalidAmount(
            "amount: an adjustment credits (positive) or debits (negative), never zero".into(),
        ));
    }
    Ok(amount)
}

/// A time in RFC 3339 (`2027-01-31T00:00:00Z`), in UTC.
pub fn time(field: &str, text: &str) -> Result<chrono::DateTime<chrono::Utc>, ApiError> {
    chrono::DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&chrono::Utc))
        .map_err(|e| {
            ApiError::InvalidRequest(format!(
                "{field} must be an RFC 3339 time like 2027-01-31T00:00:00Z: {e}"
            ))
        })
}

/// A page's `limit`: 1 to [`eventstore::history::LIMIT_MAX`], [`eventstore::history::LIMIT_DEFAULT`] when absent
/// (the history's and the operator audit's).
pub fn page_limit(text: Option<&str>) -> Result<u32, ApiError> {
    match text {
        None => Ok(eventstore::history::LIMIT_DEFAULT),
        Some(t) => t
            .parse::<u32>()
            .ok()
            .filter(|n| (1..=eventstore::history::LIMIT_MAX).contains(n))
            .ok_or_else(|| {
                ApiError::InvalidRequest(format!(
                    "limit must be a whole number from 1 to {}",
                    eventstore::history::LIMIT_MAX
                ))
            }),
    }
}
