//! Reading what a caller sends, strictly: a body within its size and time bounds, JSON
//! that the contract allows (unknown fields refused), and query strings without unknown
//! or repeated parameters. Anything else becomes `400 INVALID_REQUEST` with a message
//! that says what was wrong, as the contract's JSON, before anything is executed.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted: 64 KiB.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest a caller may take to send its body once its head has arrived: a client that
/// trickles a body cannot hold a request slot for longer.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// The raw body, read within [`BODY_BYTES_MAX`] and [`BODY_READ_TIMEOUT`] (a provider's
/// signature covers these exact bytes).
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match tokio::time::timeout(BODY_READ_TIMEOUT, Bytes::from_request(req, state)).await {
            Ok(Ok(bytes)) => Ok(RawBody(bytes)),
            Ok(Err(_)) => Err(ApiError::InvalidRequest(format!(
                "the body could not be read or is over {BODY_BYTES_MAX} bytes"
            ))),
            Err(_) => Err(ApiError::InvalidRequest(format!(
                "the body did not arrive within {} s",
                BODY_READ_TIMEOUT.as_secs()
            ))),
        }
    }
}

/// A JSON body parsed into `T` (whose fields should `deny_unknown_fields`).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let RawBody(bytes) = RawBody::from_request(req, state).await?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))
    }
}

/// Query parameters parsed into `T` (whose fields should `deny_unknown_fields`; a
/// parameter given twice is refused too).
pub struct QueryParams<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for QueryParams<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| QueryParams(q.0))
            .map_err(|e| ApiError::InvalidRequest(format!("query string: {}", e.body_text())))
    }
}
