//! The seam between the API and a write path. The API sees only [`WalletStore`]; the
//! batched path ([`crate::batched`]) and the straightforward cqrs-es path
//! ([`crate::cqrs`]) implement it, and the API chooses one by configuration.

use async_trait::async_trait;
use domain::{Balance, PlayerId, TransactionId, WalletCommand, WalletError, WalletId};
use rust_decimal::Decimal;

/// The answer to an accepted command: the wallet's balance right after it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CommandReceipt {
    pub wallet_id: WalletId,
    pub transaction_id: Option<TransactionId>,
    pub balance: Balance,
    /// The sequence of the command's event in the wallet's log.
    pub sequence: u64,
    /// True when this is the recorded answer to an earlier, identical request.
    pub replayed: bool,
    /// The part of a bet's stake a bonus award paid (zero for every other command).
    pub funded_bonus: Decimal,
}

/// A wallet's current state from the write side.
#[derive(Debug, Clone, PartialEq)]
pub struct WalletSnapshot {
    pub wallet_id: WalletId,
    pub player_id: PlayerId,
    pub balance: Balance,
    pub sequence: u64,
    /// The wallet's limits, exclusion and lock, if it ever had any.
    pub protection: Option<domain::wallet::protection::Protection>,
    /// Its bonus awards, in grant order.
    pub awards: Vec<domain::Award>,
    /// Its free-rounds grants, in grant order.
    pub free_rounds: Vec<domain::wallet::free_rounds::FreeRounds>,
}

impl WalletSnapshot {
    /// What `wallet`, at `sequence`, shows of itself; `None` if it was never opened.
    pub fn of(wallet_id: WalletId, wallet: &domain::Wallet, sequence: u64) -> Option<Self> {
        wallet
            .balance()
            .zip(wallet.player_id())
            .map(|(balance, player_id)| WalletSnapshot {
                wallet_id,
                player_id: player_id.clone(),
                balance,
                sequence,
                protection: wallet.protection().cloned(),
                awards: wallet.awards().cloned().collect(),
                free_rounds: wallet.free_rounds().cloned().collect(),
            })
    }
}

/// The store could not be read or written; nothing was changed by this call.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("event store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    #[error("event store holds data this build cannot read")]
    Corrupt(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Why a command was not applied. In every case nothing was changed.
#[derive(Debug, thiserror::Error)]
pub enum ExecuteError {
    /// A rule of the wallet refused it; `balance` is the wallet's current one, if it exists.
    #[error("{error}")]
    Refused {
        error: WalletError,
        balance: Option<Balance>,
    },
    /// Other writers kept winning the race for this wallet; the caller may retry.
    #[error("too much contention on wallet {wallet_id}; retry with the same transaction id")]
    Contention { wallet_id: WalletId },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// A write path: executes wallet commands with the ledger's guarantees (one event per
/// accepted command, idempotent by transaction id, answered after the commit).
#[async_trait]
pub trait WalletStore: Send + Sync + 'static {
    /// Executes `command` on `wallet_id` and returns the balance after it. A repeat of an
    /// accepted request (same transaction id, same payload) returns the first answer.
    async fn execute(
        &self,
        wallet_id: WalletId,
        command: WalletCommand,
    ) -> Result<CommandReceipt, ExecuteError>;

    /// The wallet's current state, or `None` if it was never opened.
    async fn wallet(&self, wallet_id: WalletId) -> Result<Option<WalletSnapshot>, StoreError>;
}
