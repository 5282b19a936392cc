//! The strict JSON body extractor. Any body the contract refuses (over the size limit,
//! malformed, an unknown field, a wrong type) becomes `400 INVALID_REQUEST` with a message
//! that says what was wrong, before anything is executed.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted: 64 KiB.
pub const BODY_BYTES_MAX: usize = 64 * 1024;

/// A JSON body parsed into `T` (whose fields should `deny_unknown_fields`).
pub struct JsonBody<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = Bytes::from_request(req, state).await.map_err(|_| {
            ApiError::InvalidRequest(format!(
                "the body could not be read or is over {BODY_BYTES_MAX} bytes"
            ))
        })?;
        serde_json::from_slice(&bytes)
            .map(JsonBody)
            .map_err(|e| ApiError::InvalidRequest(format!("invalid JSON body: {e}")))
    }
}
