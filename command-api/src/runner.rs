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

/// The answer the log holds for `command` on `wallet_id`: the first receipt of the same
/// request under its transaction id, or `IDEMPOTENCY_CONFLICT` for another request under
/// it; `None` when the id is new there. For a repeat that must be answered before checks
/// the first call passed and a repeat may no longer pass (a session that has ended): a
/// repeat gets its first answer for as long as the log lives.
pub async fn repeat_in_log(
    state: &AppState,
    wallet_id: WalletId,
    command: &WalletCommand,
) -> Result<Option<CommandReceipt>, ApiError> {
    use eventstore::idempotency::Repeat;
    match logged(state, wallet_id, command).await? {
        Repeat::New => Ok(None),
        Repeat::Same(receipt) => {
            crate::metrics::command_outcome(command.name(), "replayed");
            Ok(Some(receipt))
        }
        Repeat::Conflict(transaction_id) => {
            let balance = state.store.wallet(wallet_id).await?.map(|w| w.balance);
            let error = ApiError::from(eventstore::ExecuteError::Refused {
                error: domain::WalletError::IdempotencyConflict { transaction_id },
                balance,
            });
            crate::metrics::command_outcome(command.name(), error.status_and_code().1);
            Err(error)
        }
    }
}

/// `Ok` when `amount` is within what `scope` (a provider, or `hub88.{operator}`) may
/// credit in `currency` without a stake in one call (`crate::caps`), or when the log holds
/// `command`'s transaction id on `wallet_id` (a repeat is answered as the first time, by
/// the write path, whatever the cap is now); else the refusal, with the wallet's balance
/// as every refusal on a known wallet carries.
pub async fn within_cap(
    state: &AppState,
    scope: &str,
    wallet_id: WalletId,
    command: &WalletCommand,
    (currency, amount): (domain::Currency, rust_decimal::Decimal),
) -> Result<(), ApiError> {
    let Err(error) = state.credit_caps.check(scope, currency, amount) else {
        return Ok(());
    };
    if !matches!(
        logged(state, wallet_id, command).await?,
        eventstore::idempotency::Repeat::New
    ) {
        return Ok(());
    }
    let balance = state.store.wallet(wallet_id).await?.map(|w| w.balance);
    Err(ApiError::from(eventstore::ExecuteError::Refused {
        error,
        balance,
    }))
}

/// The first receipt of `command` on `wallet_id` when the log holds the same request under
/// its transaction id; `None` otherwise, another request under the id included.
pub async fn same_in_log(
    state: &AppState,
    wallet_id: WalletId,
    command: &WalletCommand,
) -> Result<Option<CommandReceipt>, ApiError> {
    match logged(state, wallet_id, command).await? {
        eventstore::idempotency::Repeat::Same(receipt) => {
            crate::metrics::command_outcome(command.name(), "replayed");
            Ok(Some(receipt))
        }
        _ => Ok(None),
    }
}

/// What the log says of `command`'s transaction id on `wallet_id`.
async fn logged(
    state: &AppState,
    wallet_id: WalletId,
    command: &WalletCommand,
) -> Result<eventstore::idempotency::Repeat, ApiError> {
    use eventstore::idempotency;
    let digest = idempotency::request_digest(&command.fingerprint());
    Ok(idempotency::repeat_of(&state.pool, wallet_id, command, &digest).await?)
}
