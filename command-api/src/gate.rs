//! The gate every request passes before it may hold anything: it names the caller from
//! the request's head alone (path and headers), so an unauthenticated request is refused
//! before its body is read and before it takes a slot. A bearer token must be a known
//! client's; a provider call must name a configured provider and carry a well-formed
//! `X-Signature` (the signature itself covers the body and is checked once the body is
//! read, within [`crate::json::BODY_READ_TIMEOUT`]). A POST must say its body is JSON.
//!
//! The principal it names is what [`crate::limits::admit`] caps: each client may hold a share
//! of the request slots, so one client (or someone who knows a provider's public id)
//! cannot starve the others.

use axum::extract::{Request, State};
use axum::http::{header, Method};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::auth::Authenticates;
use crate::error::ApiError;
use crate::principal::Principal;
use crate::state::AppState;

/// Middleware: names the caller or refuses the request (401, or 400 for a body that is
/// not JSON) without reading its body.
pub async fn gate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    // An unknown Hub88 operator is answered at once, in that face's form, before its body is
    // read or a slot taken: no stranger can hold the public slots (health, metrics) with
    // slow bodies.
    if let Some(rest) = request.uri().path().strip_prefix("/hub88/") {
        let operator = rest.split('/').next().unwrap_or_default();
        if !state.hub88.contains_key(operator) {
            crate::json::drain(request.into_body()).await;
            return crate::hub88::unknown_partner();
        }
    }
    match identify(&state, &request) {
        Ok(principal) => {
            request.extensions_mut().insert(principal);
            next.run(request).await
        }
        Err(e) => {
            crate::json::drain(request.into_body()).await;
            e.into_response()
        }
    }
}

fn identify(state: &AppState, request: &Request) -> Result<Principal, ApiError> {
    let path = request.uri().path();
    let principal = if path.starts_with("/internal/") {
        let presented = request
            .headers()
            .get(crate::cluster::SECRET_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        match &state.cluster {
            Some(cluster) if cluster.admits(presented) => Principal::Peer,
            _ => {
                return Err(ApiError::Unauthorized(
                    "calls between instances need the cluster secret".into(),
                ))
            }
        }
    } else if let Some(rest) = path.strip_prefix("/provider/") {
        let pid = rest.split('/').next().unwrap_or_default();
        if !state.providers.contains_key(pid) {
            return Err(ApiError::Unauthorized(format!(
                "unknown provider {:?}",
                pid.chars().take(32).collect::<String>()
            )));
        }
        let signature = request
            .headers()
            .get(crate::providers::SIGNATURE_HEADER)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .unwrap_or_default();
        if signature.len() != 64 || !signature.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::Unauthorized(
                "send `X-Signature: hex(HMAC-SHA256(secret, raw body))`".into(),
            ));
        }
        Principal::Provider(pid.to_string())
    } else if let Some(rest) = path.strip_prefix("/hub88/") {
        // The Hub88 face answers every refusal in its own body (HTTP 200), the unknown
        // operator and the bad signature too: its handlers check them. A known operator
        // gets its own share of the request slots.
        let operator = rest.split('/').next().unwrap_or_default();
        Principal::Provider(crate::hub88::scope(operator))
    } else if path.starts_with("/v1/") || path == "/v1" {
        let client = crate::auth::client_of(state.clients(), request.headers())?;
        Principal::Client(client.name().to_string())
    } else {
        Principal::Public
    };
    // The Hub88 face reads any body's bytes and answers a malformed one in its own body.
    // A request without a body is left to the router (a wrong method is 405) and to the
    // handler (a missing body is 400).
    let has_body = crate::json::has_body(request);
    if request.method() == Method::POST
        && principal != Principal::Public
        && !path.starts_with("/hub88/")
        && has_body
    {
        let json = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/json"));
        if !json {
            return Err(ApiError::InvalidRequest(
                "send the body as JSON with `Content-Type: application/json`".into(),
            ));
        }
    }
    Ok(principal)
}
