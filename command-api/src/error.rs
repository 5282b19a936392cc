//! `ApiError`: every way a request can fail, mapped to the contract's HTTP status and
//! `{"error": {"code", "message"}}` body in one `IntoResponse`. A refusal of a command on a
//! known wallet also carries the wallet's balance, as providers show it to the player.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use domain::{Balance, WalletError};
use eventstore::{ExecuteError, StoreError};
use serde_json::json;

use crate::body::BalanceBody;

/// A request that failed; nothing was changed by it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{0}")]
    InvalidAmount(String),
    #[error("{0}")]
    UnknownCurrency(String),
    #[error("{0}")]
    Unauthorized(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{error}")]
    Refused {
        error: WalletError,
        balance: Option<Balance>,
    },
    #[error("{0}")]
    Unavailable(String),
    /// A provider call with a session token that is unknown, expired or not this
    /// provider's.
    #[error("{0}")]
    InvalidToken(String),
    #[error("more than the client's rate; retry after {retry_after_s} s")]
    RateLimited { retry_after_s: u64 },
    /// No endpoint at this path.
    #[error("{0}")]
    NoSuchEndpoint(String),
    /// The path exists, but not for this method.
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The round view of a round the wallet never saw.
    #[error("{0}")]
    RoundNotFound(String),
}

impl ApiError {
    /// `404 WALLET_NOT_FOUND` for a query on a wallet that was never opened.
    pub fn wallet_not_found() -> Self {
        ApiError::Refused {
            error: WalletError::WalletNotFound,
            balance: None,
        }
    }

    /// The status and the contract's code.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        use StatusCode as S;
        match self {
            ApiError::InvalidRequest(_) => (S::BAD_REQUEST, "INVALID_REQUEST"),
            ApiError::InvalidAmount(_) => (S::BAD_REQUEST, "INVALID_AMOUNT"),
            ApiError::UnknownCurrency(_) => (S::BAD_REQUEST, "UNKNOWN_CURRENCY"),
            ApiError::Unauthorized(_) => (S::UNAUTHORIZED, "UNAUTHORIZED"),
            ApiError::Forbidden(_) => (S::FORBIDDEN, "FORBIDDEN"),
            ApiError::Unavailable(_) => (S::SERVICE_UNAVAILABLE, "UNAVAILABLE"),
            ApiError::InvalidToken(_) => (S::UNAUTHORIZED, "INVALID_TOKEN"),
            ApiError::RateLimited { .. } => (S::TOO_MANY_REQUESTS, "RATE_LIMITED"),
            ApiError::NoSuchEndpoint(_) => (S::NOT_FOUND, "NOT_FOUND"),
            ApiError::MethodNotAllowed(_) => (S::METHOD_NOT_ALLOWED, "METHOD_NOT_ALLOWED"),
            ApiError::RoundNotFound(_) => (S::NOT_FOUND, "ROUND_NOT_FOUND"),
            ApiError::Refused { error, .. } => match error {
                WalletError::WalletNotFound => (S::NOT_FOUND, "WALLET_NOT_FOUND"),
                WalletError::WalletExists { .. } => (S::CONFLICT, "WALLET_EXISTS"),
                WalletError::InvalidAmount { .. } => (S::BAD_REQUEST, "INVALID_AMOUNT"),
                WalletError::CurrencyMismatch { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "CURRENCY_MISMATCH")
                }
                WalletError::InsufficientFunds { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "INSUFFICIENT_FUNDS")
                }
                WalletError::ReservationNotFound { .. } => (S::NOT_FOUND, "RESERVATION_NOT_FOUND"),
                WalletError::ReservationClosed { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "RESERVATION_CLOSED")
                }
                WalletError::ReservationNotExpired { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "RESERVATION_NOT_EXPIRED")
                }
                WalletError::IdempotencyConflict { .. } => (S::CONFLICT, "IDEMPOTENCY_CONFLICT"),
                WalletError::InvalidTimeout { .. } => (S::BAD_REQUEST, "INVALID_REQUEST"),
                WalletError::LimitExceeded { .. } => (S::UNPROCESSABLE_ENTITY, "LIMIT_EXCEEDED"),
                WalletError::RoundClosed { .. } => (S::UNPROCESSABLE_ENTITY, "ROUND_CLOSED"),
                // The contract's code for "nothing to pay against yet": a provider retries
                // a win for a round it has not yet seen arrive.
                WalletError::RoundNotFound { .. } => (S::NOT_FOUND, "RESERVATION_NOT_FOUND"),
                WalletError::LimitReached { .. } => (S::UNPROCESSABLE_ENTITY, "LIMIT_REACHED"),
                WalletError::SelfExcluded { .. } => (S::FORBIDDEN, "SELF_EXCLUDED"),
                WalletError::AccountLocked { .. } => (S::FORBIDDEN, "ACCOUNT_LOCKED"),
                WalletError::LimitNotFound { .. } => (S::NOT_FOUND, "LIMIT_NOT_FOUND"),
                WalletError::ExclusionNotShortened { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "EXCLUSION_NOT_SHORTENED")
                }
                WalletError::ExclusionInPast { .. } => (S::BAD_REQUEST, "INVALID_REQUEST"),
                WalletError::NotServed { .. } => (S::FORBIDDEN, "PROVIDER_NOT_SERVED"),
                WalletError::CreditOverCap { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "CREDIT_CAP_EXCEEDED")
                }
                WalletError::BonusTermsInvalid { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "BONUS_TERMS_INVALID")
                }
                WalletError::BonusNotFound { .. } => (S::NOT_FOUND, "BONUS_NOT_FOUND"),
                WalletError::FreeRoundsUnavailable { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "FREE_ROUNDS_UNAVAILABLE")
                }
                WalletError::BonusActive { .. } => (S::CONFLICT, "BONUS_ACTIVE"),
                WalletError::BonusNotExpired { .. } => {
                    (S::UNPROCESSABLE_ENTITY, "BONUS_NOT_EXPIRED")
                }
            },
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::Unavailable(source) => {
                tracing::warn!(error = %source, "event store unavailable");
                ApiError::Unavailable(
                    "the event store is unavailable; retry with the same transaction_id".into(),
                )
            }
            StoreError::Corrupt(source) => {
                tracing::error!(error = %source, "event store holds unreadable data");
                ApiError::Unavailable(
                    "the event store holds data this server cannot read; operators are alerted"
                        .into(),
                )
            }
        }
    }
}

impl From<readmodel::ReadModelError> for ApiError {
    fn from(e: readmodel::ReadModelError) -> Self {
        match e {
            readmodel::ReadModelError::Unavailable(e) => {
                ApiError::Unavailable(format!("Redis: {e}"))
            }
            readmodel::ReadModelError::Corrupt(e) => {
                ApiError::Unavailable(format!("read model: {e}"))
            }
        }
    }
}

impl From<ExecuteError> for ApiError {
    fn from(e: ExecuteError) -> Self {
        match e {
            ExecuteError::Refused { error, balance } => ApiError::Refused { error, balance },
            ExecuteError::Contention { .. } => ApiError::Unavailable(e.to_string()),
            ExecuteError::Store(e) => e.into(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        self.response(false)
    }
}

impl ApiError {
    /// The answer, its balance written for a provider (`playable`, see
    /// [`BalanceBody::playable`]) or as the native face writes it.
    pub fn response(self, playable: bool) -> Response {
        let (status, code) = self.status_and_code();
        let mut body = json!({ "error": { "code": code, "message": self.to_string() } });
        if let ApiError::Refused { error, balance } = &self {
            if let Some(balance) = balance {
                body["balance"] = json!(if playable {
                    BalanceBody::playable(*balance)
                } else {
                    BalanceBody::from(*balance)
                });
            }
            // The wallet a second open found: the caller can carry on with it.
            if let WalletError::WalletExists { wallet_id } = error {
                body["wallet_id"] = json!(wallet_id.to_string());
            }
            // Which limit, and how much of it is used (the contract's "limit" object).
            if let WalletError::LimitReached {
                kind,
                period,
                limit,
                used,
                resets_at,
                ..
            } = error
            {
                let scale = balance.map_or(2, |b| b.currency.scale());
                let at_scale = |mut d: rust_decimal::Decimal| {
                    d.rescale(scale);
                    d.to_string()
                };
                body["limit"] = json!({
                    "kind": kind,
                    "period": period,
                    "amount": at_scale(*limit),
                    "used": at_scale(*used),
                    "resets_at": resets_at,
                });
            }
            if let WalletError::SelfExcluded { until }
            | WalletError::ExclusionNotShortened { until } = error
            {
                body["excluded_until"] = json!(until);
            }
        }
        let mut response = (status, Json(body)).into_response();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_s } => Some(*retry_after_s),
            ApiError::Unavailable(_) => Some(1),
            _ => None,
        };
        if let Some(seconds) = retry_after {
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
        }
        response
    }
}
