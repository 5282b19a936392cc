//! The straightforward write path: cqrs-es's `PersistedEventStore` over postgres-es's
//! tables, in event-store mode only (its snapshot modes apply events twice; see
//! docs/0001-cqrs-es-event-store-mode.md). cqrs-es's own `execute` returns neither events
//! nor state, so this module runs load → handle → commit itself and answers with the
//! balance after the command.
//!
//! Commands for one wallet are serialised in this process by a striped lock, so the
//! optimistic-concurrency key only decides races between processes; such a conflict
//! reloads and decides again, a bounded number of times.

use async_trait::async_trait;
use cqrs_es::event_sink::EventSink;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, EventStore};
use domain::{Wallet, WalletCommand, WalletError, WalletId};
use postgres_es::PostgresEventRepository;
use sqlx::PgPool;
use tokio::sync::Mutex;

use crate::idempotency::{self, Repeat};
use crate::store::{CommandReceipt, ExecuteError, StoreError, WalletSnapshot, WalletStore};

/// How many times a command is decided again after losing a race to another process.
pub const CONFLICT_RETRIES_MAX: usize = 32;
/// Stripes of the per-wallet lock: wallets that share a stripe wait for each other.
pub const WALLET_LOCK_STRIPES: usize = 4_096;

/// The cqrs-es + postgres-es write path.
pub struct CqrsWalletStore {
    pool: PgPool,
    store: PersistedEventStore<PostgresEventRepository, Wallet>,
    stripes: Vec<Mutex<()>>,
}

impl CqrsWalletStore {
    /// A store over `pool`, whose schema must be migrated.
    pub fn new(pool: PgPool) -> Self {
        let repo = PostgresEventRepository::new(pool.clone());
        Self {
            pool,
            store: PersistedEventStore::new_event_store(repo),
            stripes: (0..WALLET_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
        }
    }

    fn stripe(&self, wallet_id: WalletId) -> &Mutex<()> {
        // UUIDv5 bits are uniformly spread; the low ones pick the stripe.
        let index = (wallet_id.as_uuid().as_u128() % WALLET_LOCK_STRIPES as u128) as usize;
        &self.stripes[index]
    }

    /// If the log already holds `command`'s transaction id, the answer to give: the first
    /// one for the same request, `IdempotencyConflict` for another. `None` when the id is new.
    async fn answer_if_repeat(
        &self,
        wallet_id: WalletId,
        command: &WalletCommand,
        request_sha256: &str,
    ) -> Option<Result<CommandReceipt, ExecuteError>> {
        let repeat =
            match idempotency::repeat_of(&self.pool, wallet_id, command, request_sha256).await {
                Ok(repeat) => repeat,
                Err(e) => return Some(Err(e.into())),
            };
        let mut balance = None;
        if let Repeat::Conflict(_) = repeat {
            match self.wallet(wallet_id).await {
                Ok(current) => balance = current.map(|w| w.balance),
                Err(e) => return Some(Err(e.into())),
            }
        }
        repeat.answer(balance)
    }
}

fn store_error(e: AggregateError<WalletError>) -> StoreError {
    match e {
        AggregateError::DeserializationError(e) => StoreError::Corrupt(e),
        AggregateError::DatabaseConnectionError(e) | AggregateError::UnexpectedError(e) => {
            StoreError::Unavailable(e)
        }
        AggregateError::AggregateConflict => StoreError::Unavailable("aggregate conflict".into()),
        AggregateError::UserError(e) => StoreError::Unavailable(Box::new(e)),
    }
}

#[async_trait]
impl WalletStore for CqrsWalletStore {
    async fn execute(
        &self,
        wallet_id: WalletId,
        command: WalletCommand,
    ) -> Result<CommandReceipt, ExecuteError> {
        let _serialised = self.stripe(wallet_id).lock().await;
        let aggregate_id = wallet_id.to_string();
        let transaction_id = command.transaction_id();
        let request_sha256 = idempotency::request_digest(&command.fingerprint());

        for _ in 0..CONFLICT_RETRIES_MAX {
            let mut context = self
                .store
                .load_aggregate(&aggregate_id)
                .await
                .map_err(store_error)?;
            // `Aggregate::handle`'s two steps, with a look between them: whether the
            // event opens a round this (full) state does not know.
            let sink = EventSink::default();
            let event = match context.aggregate.decide(command.clone()) {
                Ok(event) => event,
                Err(error) => {
                    // A refusal may be the repeat of a request that was accepted before
                    // (a repeated withdrawal now finds less money): the first answer wins.
                    if let Some(answer) = self
                        .answer_if_repeat(wallet_id, &command, &request_sha256)
                        .await
                    {
                        return answer;
                    }
                    return Err(ExecuteError::Refused {
                        error,
                        balance: context.aggregate.balance(),
                    });
                }
            };
            let rounds = idempotency::RoundKeys::of(&context.aggregate, &event);
            let funded_bonus = event.funded_bonus();
            sink.write(event, &mut context.aggregate).await;
            let events = sink.collect().await;
            debug_assert_eq!(events.len(), 1, "every accepted command is one event");
            let balance = context
                .aggregate
                .balance()
                .expect("an accepted command leaves an opened wallet");
            let metadata = idempotency::metadata(
                command.name(),
                transaction_id.as_ref(),
                &request_sha256,
                &balance,
                &rounds,
                context.aggregate.protection(),
                funded_bonus,
            );
            match self.store.commit(events, context, metadata).await {
                Ok(committed) => {
                    let sequence = committed.last().map_or(0, |e| e.sequence as u64);
                    return Ok(CommandReceipt {
                        wallet_id,
                        transaction_id,
                        balance,
                        sequence,
                        replayed: false,
                        funded_bonus,
                    });
                }
                // Another process appended first: either the same transaction id (answer
                // from the log) or another command (decide again on the new state).
                Err(AggregateError::AggregateConflict) => {
                    if let Some(answer) = self
                        .answer_if_repeat(wallet_id, &command, &request_sha256)
                        .await
                    {
                        return answer;
                    }
                    tracing::debug!(%wallet_id, "append conflict; deciding again");
                }
                Err(e) => return Err(store_error(e).into()),
            }
        }
        Err(ExecuteError::Contention { wallet_id })
    }

    async fn wallet(&self, wallet_id: WalletId) -> Result<Option<WalletSnapshot>, StoreError> {
        let context = self
            .store
            .load_aggregate(&wallet_id.to_string())
            .await
            .map_err(store_error)?;
        Ok(WalletSnapshot::of(
            wallet_id,
            &context.aggregate,
            context.current_sequence as u64,
        ))
    }
}
