//! The command runner every face calls: one wallet command through the configured write
//! path, in a span that names the wallet and transaction, with its outcome counted.

use domain::{WalletCommand, WalletId};
use eventstore::CommandReceipt;
use tracing::Instrument;

use crate::error::ApiError;
use crate::state::AppState;

/// Runs `command` on `wallet_id` and answers with the receipt or the contract's error.
pub async fn execute(
    state: &AppState,
    wallet_id: WalletId,
    command: WalletCommand,
) -> Result<CommandReceipt, ApiError> {
    let name = command.name();
    let span = tracing::info_span!(
        "command",
        command = name,
        wallet_id = %wallet_id,
        transaction_id = tracing::field::Empty,
    );
    if let Some(t) = command.transaction_id() {
        span.record("transaction_id", t.as_str());
    }
    let result = state
        .store
        .execute(wallet_id, command)
        .instrument(span.clone())
        .await
        .map_err(ApiError::from);
    let _entered = span.enter();
    match &result {
        Ok(receipt) => {
            let outcome = if receipt.replayed {
                "replayed"
            } else {
                "accepted"
            };
            crate::metrics::command_outcome(name, outcome);
            tracing::info!(sequence = receipt.sequence, outcome, "command done");
        }
        Err(e) => {
            let code = e.status_and_code().1;
            crate::metrics::command_outcome(name, code);
            tracing::info!(code, error = %e, "command refused");
        }
    }
    result
}
