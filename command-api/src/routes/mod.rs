//! The endpoints, one module per face or group: the native wallet commands, the native
//! round commands and round view, player protection, the read models, game sessions, the
//! provider face, the Hub88-style face, health, and calls between instances.

mod health;
mod hub88;
mod internal;
mod protection;
pub mod provider;
mod read;
pub(crate) mod rounds;
mod sessions;
mod wallets;

use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// All routes, before layers and state.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(wallets::routes())
        .merge(rounds::routes())
        .merge(protection::routes())
        .merge(read::routes())
        .merge(sessions::routes())
        .merge(provider::routes())
        .merge(hub88::routes())
        .merge(health::routes())
        .merge(internal::routes())
        .fallback(no_such_endpoint)
        .method_not_allowed_fallback(method_not_allowed)
}

async fn no_such_endpoint(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::NoSuchEndpoint(format!("no endpoint {method} {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::MethodNotAllowed(format!("{} does not take {method}", uri.path()))
}
