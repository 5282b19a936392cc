//! The endpoints, one module per face or group: the native wallet commands, the read
//! models, game sessions, the provider face, health.

mod health;
pub mod provider;
mod read;
mod sessions;
mod wallets;

use axum::Router;

use crate::state::AppState;

/// All routes, before layers and state.
pub fn router() -> Router<AppState> {
    Router::new()
        .merge(wallets::routes())
        .merge(read::routes())
        .merge(sessions::routes())
        .merge(provider::routes())
        .merge(health::routes())
}
