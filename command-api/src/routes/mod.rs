//! The endpoints, one module per face or group: the native wallet commands, the native
//! round commands and round view, player protection, bonus money, the read models, a
//! wallet's history, reports, the operator audit, game sessions, the provider face, the
//! Hub88-style face, health, and calls between instances.

mod audit;
mod bonuses;
mod health;
mod history;
pub(crate) mod hub88;
mod internal;
mod protection;
pub mod provider;
mod read;
mod reports;
pub(crate) mod rounds;
mod sessions;
mod wallets;

use axum::Router;

use crate::error::ApiError;
use crate::state::AppState;

/// The documented routes (every face's), and the OpenAPI document collected from them.
pub fn documented() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (router, api) = utoipa_axum::router::OpenApiRouter::new()
        .merge(wallets::routes())
        .merge(rounds::routes())
        .merge(protection::routes())
        .merge(bonuses::routes())
        .merge(read::routes())
        .merge(history::routes())
        .merge(reports::routes())
        .merge(audit::routes())
        .merge(sessions::routes())
        .merge(provider::routes())
        .merge(hub88::routes())
        .split_for_parts();
    (router, crate::openapi::finish(api))
}

/// The OpenAPI document of every face (what `GET /openapi.json` serves).
pub fn openapi() -> utoipa::openapi::OpenApi {
    documented().1
}

/// All routes, before layers and state: the documented ones, `GET /openapi.json`,
/// health and metrics, and the calls between instances.
pub fn router() -> Router<AppState> {
    let (documented, api) = documented();
    let json = crate::openapi::json(&api);
    Router::new()
        .merge(documented)
        .route(
            "/openapi.json",
            axum::routing::get(move || {
                let json = json.clone();
                async move {
                    (
                        [(axum::http::header::CONTENT_TYPE, "application/json")],
                        json,
                    )
                }
            }),
        )
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
