//! `POST /internal/v1/execute`: commands another instance passes to this one, their
//! wallets' owner (`crate::cluster`), as a JSON array; the answers come back in the same
//! order. The gate admits only callers with the cluster secret. The commands run at once
//! on this instance's own write path (where they batch) and are never passed on again.

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::post;
use axum::{Json, Router};

use crate::cluster::{Answer, Forwarded, EXECUTE_PATH};
use crate::json::JsonBody;
use crate::state::AppState;

/// Largest forwarded request: a full batch of the longest commands fits.
const BODY_BYTES_MAX: usize = 1024 * 1024;

pub fn routes() -> Router<AppState> {
    Router::new().route(
        EXECUTE_PATH,
        post(execute).layer(DefaultBodyLimit::max(BODY_BYTES_MAX)),
    )
}

async fn execute(
    State(state): State<AppState>,
    JsonBody(forwarded): JsonBody<Vec<Forwarded>>,
) -> Json<Vec<Answer>> {
    let runs = forwarded
        .into_iter()
        .map(|f| state.local.execute(f.wallet_id, f.command));
    let results = futures::future::join_all(runs).await;
    Json(results.into_iter().map(Answer::of).collect())
}
