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

/// Applies an accepted command's `event` to the cached `state` and makes the answer and
/// the row to write: the event and its metadata as JSON text.
fn accept(
    state: &mut Cached,
    job: &Job,
    event: WalletEvent,
    request_sha256: &str,
) -> Result<(CommandReceipt, Row), StoreError> {
    let event_type = event.name().to_string();
    let payload = serde_json::to_string(&event).map_err(|e| StoreError::Corrupt(Box::new(e)))?;
    let rounds = idempotency::RoundKeys::of(&state.wallet, &event);
    let closes = event.leaves_to_forget();
    state.wallet.apply(event);
    state.compact_due |= closes;
    state.sequence += 1;
    let balance = state
        .wallet
        .balance()
        .expect("an accepted command leaves an opened wallet");
    let transaction_id = job.command.transaction_id();
    if let Some(id) = &transaction_id {
        state.remember(id.as_str());
    }
    let metadata = idempotency::metadata(
        job.command.name(),
        transaction_id.as_ref(),
        request_sha256,
        &balance,
        &rounds,
        state.wallet.protection(),
    );
    let row = Row {
        wallet_id: job.wallet_id.to_string(),
        sequence: state.sequence as i64,
        event_type,
        payload,
        metadata: serde_json::to_string(&metadata).expect("a string map"),
    };
    let receipt = CommandReceipt {
        wallet_id: job.wallet_id,
        transaction_id,
        balance,
        sequence: state.sequence,
        replayed: false,
    };
    Ok((receipt, row))
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

impl Shard {
    async fn run(mut self, mut rx: mpsc::Receiver<Job>) {
        loop {
            while let Ok(wallet_id) = self.done.1.try_recv() {
                self.release(wallet_id);
            }
            // Jobs sent back by the last batch go first, in their order.
            let mut jobs: Vec<Job> = self.again.drain(..).collect();
            if jobs.is_empty() {
                tokio::select! {
                    job = rx.recv() => match job {
                        Some(first) => jobs.push(first),
                        None => break,
                    },
                    Some(wallet_id) = self.done.1.recv() => {
                        self.release(wallet_id);
                        continue;
                    }
                }
            }
            let deadline = tokio::time::Instant::now() + self.batch_window;
            while jobs.len() < self.batch_max {
                match rx.try_recv() {
                    Ok(job) => jobs.push(job),
                    Err(mpsc::error::TryRecvError::Disconnected) => break,
                    Err(mpsc::error::TryRecvError::Empty) => {
                        match tokio::time::timeout_at(deadline, rx.recv()).await {
                            Ok(Some(job)) => jobs.push(job),
                            _ => break,
                        }
                    }
                }
            }
            self.batch(jobs).await;
        }
    }

    /// One batch, in named steps: load what is not cached, answer the repeats the log
    /// already holds, decide every other job, commit the accepted events in one
    /// transaction (leaving out the wallets found behind the log), then answer.
    async fn batch(&mut self, jobs: Vec<Job>) {
        // A busy wallet's commands wait for its full-state run, in order.
        let jobs: Vec<Job> = jobs
            .into_iter()
            .filter_map(|job| match self.busy.get_mut(&job.wallet_id) {
                Some(waiting) => {
                    waiting.push(job);
                    None
                }
                None => Some(job),
            })
            .collect();
        if jobs.is_empty() {
            return;
        }
        let deciding_started = std::time::Instant::now();
        let wallets: HashSet<WalletId> = jobs.iter().map(|j| j.wallet_id).collect();
        let loaded = self.load_missing(&wallets).await;
        let jobs = match loaded {
            Ok(()) => self.answer_repeats(jobs).await,
            Err(e) => Err((jobs, e)),
        };
        let jobs = match jobs {
            Ok(jobs) => jobs,
            Err((jobs, e)) => {
                fail_all(jobs, &e.to_string());
                return;
            }
        };
        let restored = match self.restore(&jobs).await {
            Ok(restored) => restored,
            Err(e) => {
                fail_all(jobs, &e.to_string());
                return;
            }
        };
        let decided = self.decide_all(jobs, &restored.full);
        // What the batch closed, and what was put back for it, leave the cache again.
        for id in &wallets {
            if let Some(cached) = self.cache.get_mut(id) {
                if cached.compact_due || restored.looked_up.contains(id) {
                    cached.compact_due = false;
                    cached.wallet.compact();
                }
            }
        }
        let mut rows: Vec<&Row> = decided
            .iter()
            .filter_map(|d| match d {
                Decided::Accepted { row, .. } => Some(row),
                Decided::Refused { .. } | Decided::Full { .. } | Decided::Later { .. } => None,
            })
            .collect();
        // One order of keys for every writer, so two instances' batches cannot deadlock.
        rows.sort_unstable_by(|a, b| (&a.wallet_id, a.sequence).cmp(&(&b.wallet_id, b.sequence)));
        // A refusal must hold against the log: the wallets refused, at the sequence the
        // cache says is last once this batch is in.
        let refused: HashMap<WalletId, u64> = decided
            .iter()
            .filter_map(|d| match d {
                Decided::Refused { job, .. } => Some(job.wallet_id),
                Decided::Accepted { .. } | Decided::Full { .. } | Decided::Later { .. } => None,
            })
            .map(|id| (id, self.cache.get(&id).map_or(0, |c| c.sequence)))
            .collect();
        // And a refusal in a round the cache does not hold, against the log's rounds.
        let unheld: Vec<(WalletId, &RoundId)> = decided
            .iter()
            .filter_map(|d| match d {
                Decided::Refused {
                    job,
                    unheld_round: Some(round),
                    ..
                } => Some((job.wallet_id, round)),
                _ => None,
            })
            .collect();
        let snapshots = self.due_snapshots(&wallets);
        metrics::histogram!("write_path_batch_commands").record(decided.len() as f64);
        let commit_started = std::time::Instant::now();
        metrics::histogram!("write_path_decide_duration_seconds")
            .record((commit_started - deciding_started).as_secs_f64());
        let committed = self.commit(&rows, &refused, &unheld, &snapshots).await;
        let answer_started = std::time::Instant::now();
        metrics::histogram!("write_path_commit_duration_seconds")
            .record((answer_started - commit_started).as_secs_f64());
        match committed {
            Ok(behind) => {
                self.answer_committed(decided, &snapshots, &restored.full, &behind)
                    .await
            }
            Err(e) => self.answer_unknown(decided, &wallets, &e),
        }
        metrics::histogram!("write_path_answer_duration_seconds")
            .record(answer_started.elapsed().as_secs_f64());
        // A wallet no command opened is not kept: it may be opened elsewhere. (Only this
        // batch's wallets can be such: a pass over the whole cache per batch would cost
        // what the cache holds, up to `cache_max` wallets.)
        for id in &wallets {
            if self.cache.get(id).is_some_and(|c| c.sequence == 0) {
                self.cache.remove(id);
            }
        }
        self.trim_cache();
    }

    /// Answers from the log the jobs that may repeat a transaction id it holds, in one
    /// query per kind, and returns the others, in order. A job whose wallet remembers its
    /// id (a provider's retry) leaves the batch: it is looked up beside the shard, which
    /// goes on, and comes back through the queue in the rare case it is new after all. A
    /// job back from a stale round is looked up here, before its wallet is decided.
    async fn answer_repeats(&mut self, jobs: Vec<Job>) -> Result<Vec<Job>, (Vec<Job>, StoreError)> {
        let remembered = |shard: &Self, job: &Job| {
            !job.checked
                && job.attempts == 0
                && job.command.transaction_id().is_some_and(|id| {
                    shard
                        .cache
                        .get(&job.wallet_id)
                        .is_some_and(|c| c.remembers(id.as_str()))
                })
        };
        let stale = |job: &Job| job.attempts > 0 && job.command.transaction_id().is_some();
        // Per job: 1 a retry the wallet remembers, 2 back from a stale round, 0 neither.
        let kinds: Vec<u8> = jobs
            .iter()
            .map(|j| {
                if remembered(self, j) {
                    1
                } else if stale(j) {
                    2
                } else {
                    0
                }
            })
            .collect();
        if kinds.iter().all(|k| *k == 0) {
            return Ok(jobs);
        }
        let mut retries = Vec::new();
        let mut suspects = Vec::new();
        let mut rest = Vec::with_capacity(jobs.len());
        for (i, (job, kind)) in jobs.into_iter().zip(kinds).enumerate() {
            match kind {
                1 => retries.push(job),
                2 => suspects.push((i, job)),
                _ => rest.push((i, job)),
            }
        }
        if !retries.is_empty() {
            let balances: Vec<Option<domain::Balance>> = retries
                .iter()
                .map(|j| {
                    self.cache
                        .get(&j.wallet_id)
                        .and_then(|c| c.wallet.balance())
                })
                .collect();
            tokio::spawn(answer_retries(
                self.pool.clone(),
                retries,
                balances,
                self.resubmit.clone(),
            ));
        }
        if suspects.is_empty() {
            return Ok(rest.into_iter().map(|(_, j)| j).collect());
        }
        let repeats = match repeats_of_jobs(&self.pool, suspects.iter().map(|(_, j)| j)).await {
            Ok(repeats) => repeats,
            Err(e) => {
                rest.extend(suspects);
                rest.sort_unstable_by_key(|(i, _)| *i);
                return Err((rest.into_iter().map(|(_, j)| j).collect(), e));
            }
        };
        for ((i, job), repeat) in suspects.into_iter().zip(repeats) {
            let current = self
                .cache
                .get(&job.wallet_id)
                .and_then(|c| c.wallet.balance());
            match repeat.answer(current) {
                Some(answer) => {
                    let _ = job.reply.send(answer);
                }
                None => rest.push((i, job)),
            }
        }
        rest.sort_unstable_by_key(|(i, _)| *i);
        Ok(rest.into_iter().map(|(_, j)| j).collect())
    }

    /// Decides every job against the cached state itself, in arrival order: if the batch
    /// does not commit, every wallet it touched leaves the cache and is reloaded from the
    /// log. The jobs of the `full` wallets (see [`Shard::restore`]) go to the full state.
    /// Returns what each job led to.
    fn decide_all(&mut self, jobs: Vec<Job>, full: &HashSet<WalletId>) -> Vec<Decided> {
        let mut seen: HashSet<(WalletId, String)> = HashSet::new();
        let mut later: HashSet<WalletId> = HashSet::new();
        let mut decided = Vec::with_capacity(jobs.len());
        for job in jobs {
            self.tick += 1;
            let state = self.cache.entry(job.wallet_id).or_default();
            state.used = self.tick;
            if later.contains(&job.wallet_id) {
                decided.push(Decided::Later { job });
                continue;
            }
            // No `Wallet::holds` here: `restore` put back what the batch's commands name,
            // and nothing is compacted before the batch is decided.
            if full.contains(&job.wallet_id) {
                decided.push(Decided::Full { job });
                continue;
            }
            let request_sha256 = idempotency::request_digest(&job.command.fingerprint());
            // A second command under one transaction id in one batch is a repeat: it, and
            // the wallet's later commands, wait for the next batch, where it is answered
            // from the log once the first has committed.
            if let Some(tx) = job.command.transaction_id() {
                if !seen.insert((job.wallet_id, tx.to_string())) {
                    later.insert(job.wallet_id);
                    decided.push(Decided::Later { job });
                    continue;
                }
            }
            match state.wallet.decide(job.command.clone()) {
                Err(error) => {
                    let unheld_round = state.wallet.unheld_round(&job.command).cloned();
                    decided.push(Decided::Refused {
                        job,
                        error,
                        request_sha256,
                        unheld_round,
                    })
                }
                Ok(event) => match accept(state, &job, event, &request_sha256) {
                    Ok((receipt, row)) => decided.push(Decided::Accepted { job, receipt, row }),
                    Err(e) => {
                        let _ = job.reply.send(Err(e.into()));
                    }
                },
            }
        }
        decided
    }

    /// Puts back, as the log knows them, what the cache forgot and this batch's commands
    /// need, so that they are decided here as on the full state, without folding the
    /// wallet's history:
    /// - for a command its wallet's cached state does not hold (a late win, a rollback of
    ///   a settled bet, a refund of a reservation refunded or never made), the reservation
    ///   and round it names and the round of that reservation (one query for the
    ///   reservations, [`payload::closed_reservations`]);
    /// - for the commands of a wallet back from a stale round, the rounds they name that
    ///   the cache forgot: the log refused to open such a round again, or a refusal in it
    ///   was decided without it. The wallet's new commands in this batch are looked up
    ///   too, so one forgotten round after another cannot keep it behind.
    ///
    /// The rounds come in one query ([`payload::round_states`]); the cache changes only
    /// once both queries have answered, so a failed one leaves it as it was. Nothing is
    /// compacted until the batch is decided ([`Cached::compact_due`]), so every command of
    /// the batch is then decided on its wallet's state as on the full state: what it
    /// names was held when the batch began, or is put back here, or was made by an
    /// earlier command of the batch.
    ///
    /// Returns the wallets looked up (compacted once the batch is decided), and those
    /// that go to the full state instead: a round put back whose opening event named no
    /// game may have been given one by a later event (the full state keeps the first game
    /// any event of the round names), which the round index does not tell.
    async fn restore(&mut self, jobs: &[Job]) -> Result<Restored, StoreError> {
        let mut restored = Restored::default();
        let mut reservations: Vec<(WalletId, &domain::ReservationId, u64)> = Vec::new();
        let mut rounds: HashSet<(WalletId, RoundId)> = HashSet::new();
        let again: HashSet<WalletId> = jobs
            .iter()
            .filter(|job| job.attempts > 0)
            .map(|job| job.wallet_id)
            .collect();
        for job in jobs {
            let Some(cached) = self.cache.get(&job.wallet_id) else {
                continue;
            };
            if cached.wallet.balance().is_none() {
                // Not opened: its state, if this batch opens it, is its whole history.
                continue;
            }
            if !cached.wallet.holds(&job.command) {
                let (reservation, round) = Wallet::named(&job.command);
                if let Some(reservation) = reservation {
                    reservations.push((job.wallet_id, reservation, cached.sequence));
                }
                if let Some(round) = round {
                    rounds.insert((job.wallet_id, round.clone()));
                }
                restored.looked_up.insert(job.wallet_id);
            } else if again.contains(&job.wallet_id) {
                if let Some(round) = cached.wallet.unheld_round(&job.command) {
                    rounds.insert((job.wallet_id, round.clone()));
                    restored.looked_up.insert(job.wallet_id);
                }
            }
        }
        if restored.looked_up.is_empty() {
            return Ok(restored);
        }
        let closed = if reservations.is_empty() {
            Vec::new()
        } else {
            payload::closed_reservations(&self.pool, &reservations).await?
        };
        for (wallet_id, _, bet) in &closed {
            rounds.insert((*wallet_id, bet.round_id.clone()));
        }
        // A round the state holds is already as the full state has it.
        rounds.retain(|(w, r)| {
            self.cache
                .get(w)
                .is_none_or(|c| c.wallet.round(r).is_none())
        });
        let known = if rounds.is_empty() {
            Vec::new()
        } else {
            let asked: Vec<(WalletId, &RoundId)> = rounds.iter().map(|(w, r)| (*w, r)).collect();
            payload::round_states(&self.pool, &asked).await?
        };
        metrics::counter!("write_path_reservations_restored_total").increment(closed.len() as u64);
        metrics::counter!("write_path_rounds_restored_total").increment(known.len() as u64);
        for (wallet_id, id, bet) in closed {
            if let Some(cached) = self.cache.get_mut(&wallet_id) {
                cached.wallet.restore_reservation(id, bet);
            }
        }
        for round in known {
            if round.game_id.is_none() {
                restored.full.insert(round.wallet_id);
            } else if let Some(cached) = self.cache.get_mut(&round.wallet_id) {
                cached
                    .wallet
                    .restore_round(&round.round_id, round.game_id, round.closed);
            }
        }
        Ok(restored)
    }

    /// After the commit: each caller gets its answer, refusals from the log when their
    /// transaction id was seen before, and the jobs that need the full state run through
    /// the straightforward path, in order. The jobs of wallets found `behind` the log
    /// (nothing of theirs was written) go back to the next batch, or, after
    /// [`ATTEMPTS_MAX`] rounds, through the straightforward path.
    async fn answer_committed(
        &mut self,
        decided: Vec<Decided>,
        snapshots: &[(WalletId, i64, serde_json::Value)],
        full: &HashSet<WalletId>,
        behind: &HashSet<WalletId>,
    ) {
        for (id, sequence, _) in snapshots {
            if let Some(cached) = self.cache.get_mut(id) {
                cached.snapshot_at = *sequence as u64;
            }
        }
        for id in behind {
            self.cache.remove(id);
        }
        // A wallet whose job has had its rounds goes the straightforward way, all of it.
        let exhausted: HashSet<WalletId> = decided
            .iter()
            .map(Decided::job)
            .filter(|j| behind.contains(&j.wallet_id) && j.attempts + 1 >= ATTEMPTS_MAX)
            .map(|j| j.wallet_id)
            .collect();
        // Commands to run on the full state beside the shard, per wallet, in order.
        let mut beside: HashMap<WalletId, Vec<Job>> = HashMap::new();
        let mut refusals: Vec<(Job, WalletError, String)> = Vec::new();
        for d in decided {
            let wallet_id = d.job().wallet_id;
            if behind.contains(&wallet_id) {
                let mut job = d.into_job();
                if exhausted.contains(&wallet_id) {
                    beside.entry(wallet_id).or_default().push(job);
                } else {
                    job.attempts += 1;
                    self.again.push_back(job);
                }
                continue;
            }
            match d {
                Decided::Accepted { job, receipt, .. } => {
                    let _ = job.reply.send(Ok(receipt));
                }
                Decided::Refused {
                    job,
                    error,
                    request_sha256,
                    ..
                } => refusals.push((job, error, request_sha256)),
                Decided::Full { job } => beside.entry(job.wallet_id).or_default().push(job),
                Decided::Later { mut job } => {
                    // Looked up in the log first, as a job back from a stale round is.
                    job.attempts = job.attempts.saturating_add(1);
                    self.again.push_back(job);
                }
            }
        }
        self.answer_refusals(refusals).await;
        // The straightforward path writes to these wallets: reload them next time.
        for id in full.iter().chain(&exhausted) {
            self.cache.remove(id);
        }
        for (wallet_id, jobs) in beside {
            self.busy.insert(wallet_id, Vec::new());
            let (fallback, done) = (self.full_state.clone(), self.done.0.clone());
            let pool = self.pool.clone();
            tokio::spawn(async move {
                for job in jobs {
                    // A provider's retry of a win or rollback the cache no longer holds is
                    // answered from the log by one indexed lookup, not by folding the
                    // wallet's history (on a hot wallet, a third of a second).
                    let digest = idempotency::request_digest(&job.command.fingerprint());
                    let repeat =
                        idempotency::repeat_of(&pool, job.wallet_id, &job.command, &digest).await;
                    let answer = match repeat {
                        Ok(Repeat::Same(receipt)) => Ok(receipt),
                        _ => fallback.execute(job.wallet_id, job.command).await,
                    };
                    let _ = job.reply.send(answer);
                }
                let _ = done.send(wallet_id);
            });
        }
        if !behind.is_empty() {
            metrics::counter!("write_path_wallets_behind_log_total").increment(behind.len() as u64);
        }
    }

    /// Unknown whether the commit happened (the connection broke at COMMIT): forget the
    /// cached state; callers retry with the same transaction id.
    fn answer_unknown(
        &mut self,
        decided: Vec<Decided>,
        wallets: &HashSet<WalletId>,
        e: &sqlx::Error,
    ) {
        for id in wallets {
            self.cache.remove(id);
        }
        fail_all(decided.into_iter().map(Decided::into_job), &e.to_string());
    }

    /// The snapshots this batch brings due: `(wallet id, sequence, aggregate JSON)`.
    fn due_snapshots(
        &self,
        wallets: &HashSet<WalletId>,
    ) -> Vec<(WalletId, i64, serde_json::Value)> {
        if self.snapshot_every == 0 {
            return Vec::new();
        }
        wallets
            .iter()
            .filter_map(|id| {
                let cached = self.cache.get(id)?;
                if cached.sequence < cached.snapshot_at + self.snapshot_every {
                    return None;
                }
                // The batch compacts its wallets once it is decided (before this), so the
                // snapshot is compacted, as `reconcile` expects it.
                debug_assert_eq!(cached.wallet, cached.wallet.compacted());
                let payload = serde_json::to_value(&cached.wallet).ok()?;
                Some((*id, cached.sequence as i64, payload))
            })
            .collect()
    }

    /// Writes `rows`, and the `snapshots` they bring due, atomically (one statement, or
    /// one transaction when there are refusals or a key is taken), but for the wallets it
    /// finds behind the log: a row of theirs met a key already taken (another
    /// writer appended, or the command repeats a transaction id), or a wallet `refused`
    /// does not end at the sequence given (the refusal was decided on an old state).
    /// Their rows and snapshots are left out; returns them.
    async fn commit(
        &self,
        rows: &[&Row],
        refused: &HashMap<WalletId, u64>,
        unheld: &[(WalletId, &RoundId)],
        snapshots: &[(WalletId, i64, serde_json::Value)],
    ) -> Result<HashSet<WalletId>, sqlx::Error> {
        let mut behind: HashSet<WalletId> = HashSet::new();
        if rows.is_empty() && refused.is_empty() {
            return Ok(behind);
        }
        // The usual batch (accepted commands, and the snapshots they bring due): one
        // statement, which commits on its own, all of it or, when a key is taken, none of
        // it. One round trip instead of three or four (BEGIN, INSERT, the snapshots,
        // COMMIT); on a loaded machine each costs a wake of the backend and of this task.
        // A taken key (a repeat the cache did not remember, another instance's append) is
        // rare: the batch then goes the way below, which finds the wallets behind and
        // commits the rest. So does a batch with a refusal, which must be checked against
        // the log in the transaction that commits it.
        if refused.is_empty() && unheld.is_empty() && !rows.is_empty() {
            match insert_rows(&self.pool, rows, Write::Whole { snapshots }).await {
                Ok(_) => {
                    self.one_statement_batches.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("write_path_batches_one_statement_total").increment(1);
                    return Ok(behind);
                }
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    self.taken_key_batches.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("write_path_batches_taken_key_total").increment(1);
                }
                Err(e) => return Err(e),
            }
        }
        let mut tx = self.pool.begin().await?;
        if !rows.is_empty() {
            let inserted = insert_rows(&mut *tx, rows, Write::SkippingTaken).await?;
            if inserted != rows.len() as u64 {
                // Rare: which wallets lost a row? Those with fewer rows written by this
                // transaction than sent.
                let mut sent: HashMap<&str, i64> = HashMap::new();
                for row in rows {
                    *sent.entry(row.wallet_id.as_str()).or_default() += 1;
                }
                let written: HashMap<String, i64> = sqlx::query_as(
                    "SELECT aggregate_id, count(*) FROM events
                      WHERE tx_id = pg_current_xact_id() GROUP BY aggregate_id",
                )
                .fetch_all(&mut *tx)
                .await?
                .into_iter()
                .collect();
                for (id, count) in sent {
                    if written.get(id) != Some(&count) {
                        behind.insert(id.parse().expect("a wallet id we wrote"));
                    }
                }
            }
        }
        if !refused.is_empty() {
            let ids: Vec<String> = refused.keys().map(|id| id.to_string()).collect();
            let last: Vec<(String, i64)> = sqlx::query_as(
                "SELECT m.id, coalesce(
                        (SELECT max(e.sequence) FROM events e
                          WHERE e.aggregate_type = $1 AND e.aggregate_id = m.id), 0)
                   FROM UNNEST($2::text[]) AS m(id)",
            )
            .bind(WALLET_AGGREGATE_TYPE)
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
            for (id, sequence) in last {
                let id: WalletId = id.parse().expect("a wallet id we asked for");
                if refused.get(&id).copied() != Some(sequence as u64) {
                    behind.insert(id);
                }
            }
        }
        if !unheld.is_empty() {
            // Rounds the log opened (through the key of their opening event): a refusal
            // in one of them was decided without knowing it.
            let known: Vec<String> = sqlx::query_scalar(
                "SELECT m.id FROM UNNEST($2::text[], $3::text[]) AS m(id, round)
                  WHERE EXISTS (
                        SELECT 1 FROM events e
                         WHERE e.aggregate_type = $1 AND e.aggregate_id = m.id
                           AND e.metadata ? 'round_opened'
                           AND e.metadata ->> 'round_opened' = m.round)",
            )
            .bind(WALLET_AGGREGATE_TYPE)
            .bind(
                unheld
                    .iter()
                    .map(|(id, _)| id.to_string())
                    .collect::<Vec<_>>(),
            )
            .bind(unheld.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>())
            .fetch_all(&mut *tx)
            .await?;
            for id in known {
                behind.insert(id.parse().expect("a wallet id we asked for"));
            }
        }
        if !behind.is_empty() {
            // What this transaction wrote for them: take it out again.
            let ids: Vec<String> = behind.iter().map(|id| id.to_string()).collect();
            sqlx::query(
                "DELETE FROM events
                  WHERE tx_id = pg_current_xact_id()
                    AND aggregate_type = $1 AND aggregate_id = ANY($2)",
            )
            .bind(WALLET_AGGREGATE_TYPE)
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        }
        let snapshots: Vec<(WalletId, i64, serde_json::Value)> = snapshots
            .iter()
            .filter(|(id, _, _)| !behind.contains(id))
            .cloned()
            .collect();
        crate::snapshots::save_many(&mut tx, &snapshots).await?;
        tx.commit().await?;
        Ok(behind)
    }

    /// Answers the batch's refusals: from the log when a refused command's transaction id
    /// was seen before (its first answer, or `IDEMPOTENCY_CONFLICT`), else with the
    /// refusal and the current balance. One query for all of them.
    async fn answer_refusals(&self, refusals: Vec<(Job, WalletError, String)>) {
        if refusals.is_empty() {
            return;
        }
        let requests: Vec<(WalletId, &WalletCommand, &str)> = refusals
            .iter()
            .map(|(job, _, digest)| (job.wallet_id, &job.command, digest.as_str()))
            .collect();
        let repeats = idempotency::repeats_of(&self.pool, &requests).await;
        let repeats = match repeats {
            Ok(repeats) => repeats,
            Err(e) => {
                fail_all(refusals.into_iter().map(|(job, ..)| job), &e.to_string());
                return;
            }
        };
        for ((job, error, _), repeat) in refusals.into_iter().zip(repeats) {
            let current = self
                .cache
                .get(&job.wallet_id)
                .and_then(|c| c.wallet.balance());
            let answer = repeat.answer(current).unwrap_or(Err(ExecuteError::Refused {
                error,
                balance: current,
            }));
            let _ = job.reply.send(answer);
        }
    }

    /// A full-state run on `wallet_id` is done: the commands that waited for it go first
    /// into the next batch, in order.
    fn release(&mut self, wallet_id: WalletId) {
        if let Some(waiting) = self.busy.remove(&wallet_id) {
            self.again.extend(waiting);
        }
    }

    /// Loads the batch's wallets that are not cached (see [`load`]).
    async fn load_missing(&mut self, wallets: &HashSet<WalletId>) -> Result<(), StoreError> {
        let missing: Vec<WalletId> = wallets
            .iter()
            .filter(|id| !self.cache.contains_key(id))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for (wallet_id, mut cached) in load(&self.pool, &missing).await? {
            cached.wallet.compact();
            self.cache.insert(wallet_id, cached);
        }
        Ok(())
    }

    /// Keeps the cache under its cap: past it, the least recently used wallets leave, a
    /// tenth of the cap at a time (one pass over the cache per tenth).
    fn trim_cache(&mut self) {
        if self.cache.len() > self.cache_max {
            let mut by_use: Vec<(u64, WalletId)> =
                self.cache.iter().map(|(id, c)| (c.used, *id)).collect();
            let drop = (self.cache.len() - self.cache_max + self.cache_max / 10).min(by_use.len());
            if drop > 0 && drop < by_use.len() {
                by_use.select_nth_unstable(drop);
            }
            for (_, id) in by_use.into_iter().take(drop) {
                self.cache.remove(&id);
            }
            metrics::counter!("write_path_cache_evictions_total").increment(drop as u64);
        }
        let len = self.cache.len();
        if len >= self.counted {
            self.cached.fetch_add(len - self.counted, Ordering::Relaxed);
        } else {
            self.cached.fetch_sub(self.counted - len, Ordering::Relaxed);
        }
        self.counted = len;
        metrics::gauge!("write_path_cached_wallets")
            .set(self.cached.load(Ordering::Relaxed) as f64);
    }
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

/// How [`insert_rows`] writes a batch's rows.
enum Write<'a> {
    /// All of them, and these `snapshots` with them, or, when a key is taken, nothing:
    /// the statement fails with a unique violation.
    Whole {
        snapshots: &'a [(WalletId, i64, serde_json::Value)],
    },
    /// Each row whose key is free; a row whose key is taken is left out (`ON CONFLICT DO
    /// NOTHING`).
    SkippingTaken,
}

/// Inserts `rows` (sorted by key: one order for every writer, so two instances' batches
/// cannot deadlock) in one statement, as `write` says. Returns how many rows were written.
async fn insert_rows<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    rows: &[&Row],
    write: Write<'_>,
) -> Result<u64, sqlx::Error> {
    const INSERT: &str = "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type,
                                 event_version, payload, metadata)
             SELECT $1, id, seq, ty, $2, p::jsonb, m::jsonb
               FROM UNNEST($3::text[], $4::bigint[], $5::text[], $6::text[], $7::text[])
                    WITH ORDINALITY AS r(id, seq, ty, p, m, n)
              ORDER BY n";
    static WITH_SNAPSHOTS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    static SKIPPING_TAKEN: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let sql: &str = match &write {
        Write::Whole { snapshots: [] } => INSERT,
        Write::Whole { .. } => {
            // The snapshots' parameters after the INSERT's seven.
            WITH_SNAPSHOTS.get_or_init(|| format!("WITH {} {INSERT}", crate::snapshots::saving(8)))
        }
        Write::SkippingTaken => {
            SKIPPING_TAKEN.get_or_init(|| format!("{INSERT} ON CONFLICT DO NOTHING"))
        }
    };
    let query = sqlx::query(sql)
        .bind(WALLET_AGGREGATE_TYPE)
        .bind(domain::wallet::EVENT_VERSION)
        .bind(
            rows.iter()
                .map(|r| r.wallet_id.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.sequence).collect::<Vec<_>>())
        .bind(
            rows.iter()
                .map(|r| r.event_type.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(rows.iter().map(|r| r.payload.as_str()).collect::<Vec<_>>())
        .bind(rows.iter().map(|r| r.metadata.as_str()).collect::<Vec<_>>());
    let query = match write {
        Write::Whole { snapshots } if !snapshots.is_empty() => {
            crate::snapshots::bind_saved(query, snapshots)
        }
        _ => query,
    };
    Ok(query.execute(executor).await?.rows_affected())
}

/// The straightforward path ([`CqrsWalletStore`]) on an OS thread, a runtime and two
/// connections of its own, one command at a time. A full-state command folds the wallet's
/// whole history: on a long one that is CPU work between awaits, which on the store's
/// runtime would take a worker thread (or, on a single-threaded runtime, every shard)
/// for as long as it lasts. Here it takes only this thread.
struct FullStateThread {
    requests: mpsc::UnboundedSender<(WalletId, WalletCommand, Reply)>,
    /// Commands it was given.
    runs: AtomicUsize,
}

impl FullStateThread {
    fn start(pool: &PgPool) -> Self {
        let options = pool.connect_options().as_ref().clone();
        let (requests, mut rx) = mpsc::unbounded_channel::<(WalletId, WalletCommand, Reply)>();
        std::thread::Builder::new()
            .name("betledger-full-state".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("a runtime for the full-state thread");
                runtime.block_on(async move {
                    let pool = sqlx::postgres::PgPoolOptions::new()
                        .max_connections(2)
                        .connect_lazy_with(options);
                    let store = Arc::new(CqrsWalletStore::new(pool));
                    while let Some((wallet_id, command, reply)) = rx.recv().await {
                        // A task of its own, so that a panic in it is an answer, not the
                        // end of this thread.
                        let store = store.clone();
                        let run =
                            tokio::spawn(async move { store.execute(wallet_id, command).await });
                        let answer = run.await.unwrap_or_else(|e| {
                            Err(ExecuteError::Store(StoreError::Unavailable(
                                format!("deciding on the full state failed: {e}").into(),
                            )))
                        });
                        let _ = reply.send(answer);
                    }
                });
            })
            .expect("the full-state thread starts");
        FullStateThread {
            requests,
            runs: AtomicUsize::new(0),
        }
    }

    async fn execute(
        &self,
        wallet_id: WalletId,
        command: WalletCommand,
    ) -> Result<CommandReceipt, ExecuteError> {
        let gone = || {
            ExecuteError::Store(StoreError::Unavailable(
                "the full-state thread stopped".into(),
            ))
        };
        self.runs.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("write_path_full_state_commands_total").increment(1);
        let (reply, answer) = oneshot::channel();
        self.requests
            .send((wallet_id, command, reply))
            .map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// What the log says of each of `jobs` as a possible repeat, in one query.
async fn repeats_of_jobs<'a>(
    pool: &PgPool,
    jobs: impl Iterator<Item = &'a Job>,
) -> Result<Vec<Repeat>, StoreError> {
    let jobs: Vec<&Job> = jobs.collect();
    let digests: Vec<String> = jobs
        .iter()
        .map(|j| idempotency::request_digest(&j.command.fingerprint()))
        .collect();
    let requests: Vec<(WalletId, &WalletCommand, &str)> = jobs
        .iter()
        .zip(&digests)
        .map(|(j, d)| (j.wallet_id, &j.command, d.as_str()))
        .collect();
    idempotency::repeats_of(pool, &requests).await
}

/// Answers `retries` (commands whose wallet remembers their transaction id) from the log,
/// in one query; one that is new after all (a digest collision) goes back to its shard's
/// queue, marked so that it is decided this time.
async fn answer_retries(
    pool: PgPool,
    retries: Vec<Job>,
    balances: Vec<Option<domain::Balance>>,
    resubmit: mpsc::WeakSender<Job>,
) {
    let repeats = repeats_of_jobs(&pool, retries.iter()).await;
    let repeats = match repeats {
        Ok(repeats) => repeats,
        Err(e) => {
            fail_all(retries, &e.to_string());
            return;
        }
    };
    for ((mut job, repeat), balance) in retries.into_iter().zip(repeats).zip(balances) {
        match repeat.answer(balance) {
            Some(answer) => {
                let _ = job.reply.send(answer);
            }
            None => {
                job.checked = true;
                let job = match resubmit.upgrade() {
                    Some(queue) => match queue.send(job).await {
                        Ok(()) => continue,
                        Err(mpsc::error::SendError(job)) => job,
                    },
                    None => job,
                };
                fail_all([job], "the wallet's owner task stopped");
            }
        }
    }
}

/// Wallets as the log has them now: each one's latest snapshot, then the events after it,
/// each step one query for all of `wallets`. A wallet with neither is not in the answer
/// (not opened).
///
/// A snapshot is a compacted state: an event after it may name a round it forgot,
/// decided on a state that held the round (`Wallet::apply_logged`). Those rounds are put
/// back as the log knows them, in one more query ([`payload::round_states`]); a wallet
/// with such a round whose opening event named no game (a later event may have given it
/// one, which the round index does not tell) is folded again from its first event.
async fn load(
    pool: &PgPool,
    wallets: &[WalletId],
) -> Result<HashMap<WalletId, Cached>, StoreError> {
    let snapshots = crate::snapshots::latest(pool, wallets).await?;
    let mut loaded: HashMap<WalletId, Cached> = HashMap::with_capacity(wallets.len());
    for id in wallets {
        let from_snapshot = snapshots.get(id).and_then(|s| match s.wallet() {
            Ok(wallet) => Some(Cached {
                wallet,
                sequence: s.sequence,
                snapshot_at: s.sequence,
                ..Cached::default()
            }),
            Err(e) => {
                // Unreadable by this build: the log alone is enough.
                tracing::warn!(wallet_id = %id, error = %e, "ignoring a snapshot");
                None
            }
        });
        loaded.insert(*id, from_snapshot.unwrap_or_default());
    }
    let mut forgotten = fold_after(pool, &mut loaded).await?;
    // A wallet folded from its first event knows every round (an older log's events may
    // lack the opening key: nothing to put back).
    forgotten.retain(|(w, _)| loaded.get(w).is_some_and(|c| c.snapshot_at > 0));
    if !forgotten.is_empty() {
        let asked: Vec<(WalletId, &RoundId)> = forgotten.iter().map(|(w, r)| (*w, r)).collect();
        let known = payload::round_states(pool, &asked).await?;
        let mut again: HashSet<WalletId> = forgotten.iter().map(|(w, _)| *w).collect();
        let mut told: HashSet<(WalletId, &RoundId)> = HashSet::new();
        for round in &known {
            if round.game_id.is_some() {
                told.insert((round.wallet_id, &round.round_id));
            }
        }
        // A wallet all of whose forgotten rounds the log tells is put right in place.
        again.retain(|w| {
            forgotten
                .iter()
                .any(|(fw, r)| fw == w && !told.contains(&(*w, r)))
        });
        for round in &known {
            if !again.contains(&round.wallet_id) {
                if let Some(cached) = loaded.get_mut(&round.wallet_id) {
                    cached.wallet.restore_round(
                        &round.round_id,
                        round.game_id.clone(),
                        round.closed,
                    );
                }
            }
        }
        metrics::counter!("write_path_loads_refolded_total").increment(again.len() as u64);
        if !again.is_empty() {
            let mut whole: HashMap<WalletId, Cached> =
                again.iter().map(|w| (*w, Cached::default())).collect();
            fold_after(pool, &mut whole).await?;
            for (id, mut cached) in whole {
                if let Some(old) = loaded.get(&id) {
                    cached.snapshot_at = old.snapshot_at;
                }
                loaded.insert(id, cached);
            }
        }
    }
    Ok(loaded
        .into_iter()
        .filter(|(_, cached)| cached.sequence > 0)
        .collect())
}

/// Folds into each of `wallets` the events after its `sequence`, in one query. Returns
/// the forgotten rounds they named (see [`load`]).
async fn fold_after(
    pool: &PgPool,
    wallets: &mut HashMap<WalletId, Cached>,
) -> Result<HashSet<(WalletId, RoundId)>, StoreError> {
    let (ids, after): (Vec<String>, Vec<i64>) = wallets
        .iter()
        .map(|(id, cached)| (id.to_string(), cached.sequence as i64))
        .unzip();
    let rows: Vec<(
        String,
        i64,
        String,
        String,
        serde_json::Value,
        Option<String>,
    )> = sqlx::query_as(
        "SELECT e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload,
                    e.metadata ->> 'round_opened'
               FROM UNNEST($2::text[], $3::bigint[]) AS m(id, after)
               JOIN events e ON e.aggregate_type = $1 AND e.aggregate_id = m.id
                            AND e.sequence > m.after
              ORDER BY e.aggregate_id, e.sequence",
    )
    .bind(WALLET_AGGREGATE_TYPE)
    .bind(&ids)
    .bind(&after)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    let mut forgotten = HashSet::new();
    for (id, sequence, event_type, event_version, payload, opened) in rows {
        let event = payload::decode(&event_type, &event_version, &payload).map_err(|e| {
            StoreError::Corrupt(format!("wallet {id} sequence {sequence}: {e}").into())
        })?;
        let wallet_id: WalletId = id.parse().expect("queried for these ids only");
        let entry = wallets
            .get_mut(&wallet_id)
            .expect("queried for these ids only");
        if let Some(round) = entry.wallet.apply_logged(event, opened.as_deref()) {
            forgotten.insert((wallet_id, round));
        }
        entry.sequence = sequence as u64;
    }
    Ok(forgotten)
}
