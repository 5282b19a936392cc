//! Reading what a caller sends, strictly: a body within its size and time bounds, JSON
//! that the contract allows (unknown fields refused), and query strings without unknown
//! or repeated parameters. Anything else becomes `400 INVALID_REQUEST` with a message
//! that says what was wrong, as the contract's JSON, before anything is executed.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue};
use axum::middleware::Next;
use axum::response::Response;
use futures::StreamExt;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body accepted: 64 KiB.
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest a caller may take to send its body once its head has arrived: a client that
/// trickles a body cannot hold a request slot for longer.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest an answer refused before its body was read waits to read (and drop) that body
/// first, up to [`BODY_BYTES_MAX`], so the client's next request can follow on the same
/// connection ([`drain`]). Short: a client sends its body with its head, and a stranger's
/// slow body must not delay its refusal; a body not drained by then closes the connection.
pub const DRAIN_TIMEOUT: Duration = Duration::from_millis(200);

/// Whether `request` says it has a body.
pub fn has_body(request: &Request) -> bool {
    request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim() != "0")
        || request.headers().contains_key(header::TRANSFER_ENCODING)
}

/// Reads and drops what is left of a refused request's body, at most [`BODY_BYTES_MAX`]
/// within [`DRAIN_TIMEOUT`]. Unread, its bytes would reach the server's socket after the
/// connection ends, which makes the kernel reset it, sometimes before the client has
/// read the answer; read, the connection stays usable.
pub async fn drain(body: Body) {
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, axum::body::to_bytes(body, BODY_BYTES_MAX)).await;
}

/// Middleware (outermost): an answer given while its request's body is not read to the
/// end says `Connection: close`. The server closes such a connection after the answer
/// (the rest of the body is still on it); saying so lets a client that keeps connections
/// alive open a new one instead of failing its next request on this one.
pub async fn close_unread(request: Request, next: Next) -> Response {
    if !has_body(&request) {
        return next.run(request).await;
    }
    let read = Arc::new(AtomicBool::new(false));
    let (parts, body) = request.into_parts();
    let ended = read.clone();
    let tracked = body
        .into_data_stream()
        .chain(futures::stream::poll_fn(move |_| {
            ended.store(true, Ordering::Relaxed);
            Poll::Ready(None)
        }));
    let mut response = next
        .run(Request::from_parts(parts, Body::from_stream(tracked)))
        .await;
    if !read.load(Ordering::Relaxed) {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

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
