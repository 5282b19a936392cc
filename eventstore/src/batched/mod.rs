//! The batched write path: one in-memory owner per wallet, hot wallets cached, and many
//! commands from many wallets committed in one transaction (group commit).
//!
//! - Wallets are spread over `shards` by id. A shard is one task: it alone decides the
//!   commands of its wallets, in arrival order, so commands on one wallet are serialised
//!   without locks or optimistic retries.
//! - A shard takes the commands waiting for it (up to `batch_max`, or what arrives within
//!   `batch_window` of the first), decides each with the domain's own `Wallet::decide`
//!   against its cached state (loading the missing wallets of the batch in one query),
//!   writes all the resulting events in one multi-row INSERT (the usual batch: that one
//!   statement, committing on its own; see [`Shard::commit`]), and only once it is
//!   committed answers each caller with the balance after its command.
//! - Idempotency records (event metadata) and the commit-ordered position (`tx_id`,
//!   `global_position` defaults) are written by the same INSERT as the events.
//! - A refusal is answered from the log when its transaction id was seen before (the
//!   first answer), else with the refusal and the current balance.
//! - A wallet's cached state may be behind the log (another API instance appended to
//!   it). An accepted command then takes a key that is already there; a refusal (or a
//!   `404` for a wallet not opened) is checked against the log's last sequence in the
//!   batch's transaction. Either way that wallet's rows leave the transaction, it leaves
//!   the cache, and its commands go first into the next batch, decided on the state
//!   reloaded from the log; the rest of the batch commits. So no answer is decided on a
//!   state older than the log's when the batch began, and one stale wallet costs one
//!   wallet, not a batch. After [`ATTEMPTS_MAX`] such rounds a command goes through the
//!   straightforward path ([`CqrsWalletStore`]), so a wallet written by several instances
//!   at once still makes progress.
//! - An exact repeat of an accepted command (a provider retry) is recognised before it is
//!   decided: each cached wallet remembers a digest of its recent transaction ids; the
//!   commands that match one leave the batch and are looked up in the log beside the
//!   shard (one query for all of them), which goes on deciding the rest. Commands back
//!   from a stale round are looked up before their wallet is decided. A repeat the cache
//!   does not remember takes its key and is found on its wallet's next round.
//! - The cache is bounded (`cache_max` wallets per store); past it, the least recently
//!   used tenth leaves. A cached wallet is compacted (`Wallet::compact`: closed
//!   reservations forgotten) after each batch that closed something, so its memory does
//!   not grow with its history. A command naming what the compacted state forgot (a late
//!   win, a rollback of a settled bet, a refund of a reservation refunded or never made)
//!   is decided in the batch like any other, on that state with the reservation and its
//!   rounds put back from the log first: a few index lookups for the whole batch
//!   ([`payload::closed_reservations`], [`payload::round_states`]), whatever the
//!   wallet's history, not a fold of it.
//!   Nothing is compacted until the batch is decided, so a command held when the batch
//!   began (a second win on a bet the batch settled) is still decided on the state.
//! - What cannot be decided that way (a forgotten round whose opening event named no
//!   game: a later event may have given it one, which the round index does not tell; a
//!   command sent back [`ATTEMPTS_MAX`] times) is decided after the batch commits, on the
//!   full state from the log, through the straightforward path, and so are the wallet's
//!   later commands in that batch, in order. That runs beside the shard, not in it:
//!   loading a long history must not hold the shard's other wallets. Until it is done the
//!   wallet is busy, and its commands that arrive meanwhile wait, in order, to go first
//!   into the next batch.
//! - Rounds (docs/0012): a cached wallet forgets closed rounds and all but the latest
//!   idle ones. An event that opens a round the cache does not hold records the round's
//!   key, which the log takes once per wallet and round; a refusal of such a command is
//!   checked against those keys in the batch's transaction. Either way a round the log
//!   knows makes the wallet behind; on its next round the command finds the round put
//!   back from the log (one indexed lookup, [`payload::round_states`]) and is decided as
//!   on the full state.
//! - Every `snapshot_every` events a wallet's state is stored as our own snapshot
//!   ([`crate::snapshots`]) in the same transaction as the events that bring it there; a
//!   wallet not in the cache is loaded from its latest snapshot plus the events after it.
//!
//! # Layout
//! - this file: the store, its configuration, and the types the parts share (a job, a
//!   shard, a cached wallet, a decision, a row);
//! - `shard`: the shard's loop: take a batch, decide it, commit, answer;
//! - `repeats`: exact repeats recognised before they are decided, answered from the log;
//! - `commit`: the batch's statement or transaction, snapshots due, and the answers;
//! - `cache`: loading wallets (snapshot plus tail, forgotten rounds put back), releasing
//!   and trimming the cache;
//! - `full_state`: the straightforward path on a thread of its own.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use cqrs_es::Aggregate;
use domain::{RoundId, Wallet, WalletCommand, WalletError, WalletEvent, WalletId};
use sqlx::PgPool;
use tokio::sync::{mpsc, oneshot};

use crate::cqrs::CqrsWalletStore;
use crate::idempotency::{self, Repeat};
use crate::log::unavailable;
use crate::payload;
use crate::store::{CommandReceipt, ExecuteError, StoreError, WalletSnapshot, WalletStore};
use crate::WALLET_AGGREGATE_TYPE;
use std::collections::VecDeque;
use std::hash::{Hash, Hasher};

mod cache;
mod commit;
mod full_state;
mod repeats;
mod shard;

use cache::load;
use full_state::FullStateThread;

/// How a [`BatchedWalletStore`] is tuned.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Owner tasks; each commits its own batches, so this many transactions run at once.
    pub shards: usize,
    /// Commands per batch, at most.
    pub batch_max: usize,
    /// How long a batch waits for more commands after its first.
    pub batch_window: Duration,
    /// Wallets kept in memory, over all shards.
    pub cache_max: usize,
    /// A snapshot of a wallet after this many events since its last one (0: never).
    pub snapshot_every: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            shards: 4,
            batch_max: 512,
            batch_window: Duration::from_micros(500),
            cache_max: 1_000_000,
            snapshot_every: 100,
        }
    }
}

/// Rounds a command may be sent back because its wallet's cached state was behind the
/// log; then it goes through the straightforward path.
pub const ATTEMPTS_MAX: u8 = 3;

/// Transaction ids a cached wallet remembers (as digests), to recognise retries.
const RECENT_IDS: usize = 8;

type Reply = oneshot::Sender<Result<CommandReceipt, ExecuteError>>;

struct Job {
    wallet_id: WalletId,
    command: WalletCommand,
    reply: Reply,
    /// Rounds this job was sent back from (its wallet was behind the log).
    attempts: u8,
    /// Looked up in the log as a possible repeat, and found new.
    checked: bool,
}

/// The batched write path.
pub struct BatchedWalletStore {
    shards: Vec<mpsc::Sender<Job>>,
    cached: Arc<AtomicUsize>,
    /// Batches committed in one statement, and those whose one statement met a taken key
    /// (see [`Shard::commit`]).
    one_statement_batches: Arc<AtomicUsize>,
    taken_key_batches: Arc<AtomicUsize>,
    full_state: Arc<FullStateThread>,
    pool: PgPool,
}

impl BatchedWalletStore {
    /// Starts the shard tasks over `pool` (migrated). They end when the store is dropped.
    pub fn new(pool: PgPool, config: BatchConfig) -> Self {
        // Present at zero from the start: an alert's rate() over it is then 0, not empty.
        metrics::counter!("write_path_cache_evictions_total").increment(0);
        metrics::counter!("write_path_batches_taken_key_total").increment(0);
        metrics::counter!("write_path_batches_one_statement_total").increment(0);
        let cached = Arc::new(AtomicUsize::new(0));
        let one_statement_batches = Arc::new(AtomicUsize::new(0));
        let taken_key_batches = Arc::new(AtomicUsize::new(0));
        let full_state = Arc::new(FullStateThread::start(&pool));
        let shards = (0..config.shards.max(1))
            .map(|_| {
                let (tx, rx) = mpsc::channel(config.batch_max * 4);
                let shard = Shard {
                    resubmit: tx.downgrade(),
                    busy: HashMap::new(),
                    done: mpsc::unbounded_channel(),
                    full_state: full_state.clone(),
                    pool: pool.clone(),
                    cache: HashMap::new(),
                    cache_max: (config.cache_max / config.shards.max(1)).max(1),
                    batch_max: config.batch_max.max(1),
                    batch_window: config.batch_window,
                    snapshot_every: config.snapshot_every,
                    tick: 0,
                    cached: cached.clone(),
                    one_statement_batches: one_statement_batches.clone(),
                    taken_key_batches: taken_key_batches.clone(),
                    counted: 0,
                    again: VecDeque::new(),
                };
                tokio::spawn(shard.run(rx));
                tx
            })
            .collect();
        BatchedWalletStore {
            shards,
            cached,
            one_statement_batches,
            taken_key_batches,
            full_state,
            pool,
        }
    }

    /// Wallets held in memory now, over all shards.
    pub fn cached_wallets(&self) -> usize {
        self.cached.load(Ordering::Relaxed)
    }

    /// Commands decided so far through the straightforward path, on a wallet's whole
    /// history (see the module's notes on what still goes that way).
    pub fn full_state_runs(&self) -> usize {
        self.full_state.runs.load(Ordering::Relaxed)
    }

    /// Batches committed in one statement, without a transaction around it.
    pub fn one_statement_batches(&self) -> usize {
        self.one_statement_batches.load(Ordering::Relaxed)
    }

    /// Batches whose one-statement commit met a taken key and went the transactional way
    /// (a repeat the cache did not remember, another instance's append).
    pub fn taken_key_batches(&self) -> usize {
        self.taken_key_batches.load(Ordering::Relaxed)
    }

    fn shard(&self, wallet_id: WalletId) -> &mpsc::Sender<Job> {
        let index = (wallet_id.as_uuid().as_u128() % self.shards.len() as u128) as usize;
        &self.shards[index]
    }
}

#[async_trait]
impl WalletStore for BatchedWalletStore {
    async fn execute(
        &self,
        wallet_id: WalletId,
        command: WalletCommand,
    ) -> Result<CommandReceipt, ExecuteError> {
        let (reply, answer) = oneshot::channel();
        let job = Job {
            wallet_id,
            command,
            reply,
            attempts: 0,
            checked: false,
        };
        let gone = || {
            ExecuteError::Store(StoreError::Unavailable(
                "the wallet's owner task stopped".into(),
            ))
        };
        self.shard(wallet_id).send(job).await.map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }

    /// The wallet as the log has it now: its latest snapshot and the events after it, so
    /// reading a wallet with a long history costs what reading a new one does.
    async fn wallet(&self, wallet_id: WalletId) -> Result<Option<WalletSnapshot>, StoreError> {
        let mut loaded = load(&self.pool, &[wallet_id]).await?;
        let Some(cached) = loaded.remove(&wallet_id) else {
            return Ok(None);
        };
        Ok(WalletSnapshot::of(
            wallet_id,
            &cached.wallet,
            cached.sequence,
        ))
    }
}

/// A cached wallet: its state, the sequence of its last event, and that of its latest
/// stored snapshot.
#[derive(Default)]
struct Cached {
    wallet: Wallet,
    sequence: u64,
    snapshot_at: u64,
    /// When a command last used it: the shard's tick.
    used: u64,
    /// Digests of the transaction ids of its last accepted commands (0: none).
    recent: [u64; RECENT_IDS],
    /// An event of this batch left something to forget (`WalletEvent::leaves_to_forget`):
    /// compacted once the batch is decided. Not before: until then the state only gains
    /// what the batch's events and `Shard::restore` tell it, so a command that it held
    /// when the batch began, or that was looked up for, is still decided as on the full
    /// state (a second settle of a bet the batch settled is told "closed", not sent to
    /// the full state).
    compact_due: bool,
}

impl Cached {
    fn remember(&mut self, transaction_id: &str) {
        let digest = id_digest(transaction_id);
        self.recent.rotate_right(1);
        self.recent[0] = digest;
    }

    fn remembers(&self, transaction_id: &str) -> bool {
        let digest = id_digest(transaction_id);
        self.recent.contains(&digest)
    }
}

/// A transaction id's digest for [`Cached::recent`] (never 0, which marks an empty place).
/// A collision only costs a lookup in the log.
fn id_digest(transaction_id: &str) -> u64 {
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    transaction_id.hash(&mut hasher);
    hasher.finish().max(1)
}

struct Shard {
    pool: PgPool,
    cache: HashMap<WalletId, Cached>,
    cache_max: usize,
    batch_max: usize,
    batch_window: Duration,
    snapshot_every: u64,
    tick: u64,
    /// The store's count of cached wallets, and this shard's share of it.
    cached: Arc<AtomicUsize>,
    one_statement_batches: Arc<AtomicUsize>,
    taken_key_batches: Arc<AtomicUsize>,
    counted: usize,
    /// Jobs sent back because their wallet was behind the log: the next batch starts
    /// with them, in order.
    again: VecDeque<Job>,
    /// This shard's own queue, for a possible repeat found new after all (weak, so that
    /// the shard ends when the store is dropped).
    resubmit: mpsc::WeakSender<Job>,
    /// Wallets whose commands run on the full state beside the shard, and the commands
    /// that arrived for them meanwhile, in order.
    busy: HashMap<WalletId, Vec<Job>>,
    /// Where those runs say they are done.
    done: (
        mpsc::UnboundedSender<WalletId>,
        mpsc::UnboundedReceiver<WalletId>,
    ),
    /// The straightforward path on a thread of its own, for the full-state runs.
    full_state: Arc<FullStateThread>,
}

/// What [`Shard::restore`] did for a batch.
#[derive(Default)]
struct Restored {
    /// Wallets whose state was looked up: compacted again once the batch is decided.
    looked_up: HashSet<WalletId>,
    /// Wallets whose commands of this batch go to the full state.
    full: HashSet<WalletId>,
}

/// What deciding one job led to.
enum Decided {
    /// An event to write; answered after the commit.
    Accepted {
        job: Job,
        receipt: CommandReceipt,
        row: Row,
    },
    /// Refused by the rules, or a repeat: answered after the commit, from the log.
    Refused {
        job: Job,
        error: WalletError,
        request_sha256: String,
        /// The round the command would open that the cache does not hold: the refusal
        /// stands only if the log never opened that round either.
        unheld_round: Option<RoundId>,
    },
    /// Needs the wallet's full state: run through the straightforward path after the
    /// commit, in order.
    Full { job: Job },
    /// Repeats a transaction id of an earlier command of the batch, or follows such a
    /// command on its wallet: decided in the next batch, in order, once the first is in.
    Later { job: Job },
}

impl Decided {
    fn job(&self) -> &Job {
        match self {
            Decided::Accepted { job, .. }
            | Decided::Refused { job, .. }
            | Decided::Full { job }
            | Decided::Later { job } => job,
        }
    }

    fn into_job(self) -> Job {
        match self {
            Decided::Accepted { job, .. }
            | Decided::Refused { job, .. }
            | Decided::Full { job }
            | Decided::Later { job } => job,
        }
    }
}

struct Row {
    wallet_id: String,
    sequence: i64,
    event_type: String,
    /// The event and its metadata as JSON text: encoded once, parsed once (by
    /// PostgreSQL), never built as a `serde_json::Value` tree.
    payload: String,
    metadata: String,
}

/// Answers every one of `jobs` that the store could not do its work (`message` says why);
/// their callers retry with the same transaction ids.
fn fail_all(jobs: impl IntoIterator<Item = Job>, message: &str) {
    for job in jobs {
        let _ = job.reply.send(Err(
            StoreError::Unavailable(message.to_string().into()).into()
        ));
    }
}
