//! `POST /internal/v1/execute`: a command another instance passes to this one, the
//! wallet's owner (`crate::cluster`). The gate admits only callers with the cluster secret.
//! The command runs on this instance's own write path and is never passed on again.

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};

use crate::cluster::{Answer, Forwarded, EXECUTE_PATH};
use crate::json::JsonBody;
use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new().route(EXECUTE_PATH, post(execute))
}

async fn execute(
    State(state): State<AppState>,
    JsonBody(forwarded): JsonBody<Forwarded>,
) -> Json<Answer> {
    let result = state
        .local
        .execute(forwarded.wallet_id, forwarded.command)
        .await;
    Json(Answer::of(result))
}
