//! `/health` (the process answers), `/ready` (PostgreSQL answers) and `/metrics`.

use std::time::Duration;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

use crate::error::ApiError;
use crate::state::AppState;

/// How long `/ready` waits for PostgreSQL.
const READY_TIMEOUT_MS: u64 = 2_000;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn ready(State(state): State<AppState>) -> Result<Json<serde_json::Value>, ApiError> {
    let ping = sqlx::query("SELECT 1").execute(&state.pool);
    match tokio::time::timeout(Duration::from_millis(READY_TIMEOUT_MS), ping).await {
        Ok(Ok(_)) => Ok(Json(match state.presence.warning() {
            None => json!({ "status": "ready" }),
            // Ready all the same: the instances are correct, only slow together.
            Some(warning) => json!({ "status": "ready", "warnings": [warning] }),
        })),
        Ok(Err(e)) => Err(ApiError::Unavailable(format!("PostgreSQL: {e}"))),
        Err(_) => Err(ApiError::Unavailable(format!(
            "PostgreSQL did not answer within {READY_TIMEOUT_MS} ms"
        ))),
    }
}

async fn metrics(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        state.metrics.render(),
    )
}
