//! The read side in-process for a test: the real relay and projection workers over the
//! test's own database, RabbitMQ names and Redis keys (all under one unique prefix), plus
//! the check that the read models equal a fold of the log.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amqprs::channel::Channel;
use amqprs::connection::Connection;
use chrono::{DateTime, Utc};
use cqrs_es::Aggregate;
use domain::{Wallet, WalletEvent};
use eventstore::log::LoggedEvent;
use fred::prelude::*;
use projections::shutdown::{self, Trigger};
use projections::{relay, worker, RelayConfig, RelayStats, Topology, WorkerConfig, WorkerStats};
use readmodel::{query, Applier, Keys, Period};
use rust_decimal::Decimal;
use sqlx::PgPool;
use tokio::task::JoinHandle;

/// How long a test waits for the read models to catch up before it fails.
pub const CATCH_UP: Duration = Duration::from_secs(60);

struct Running {
    trigger: Trigger,
    task: JoinHandle<()>,
}

impl Running {
    async fn stop(self) {
        self.trigger.fire();
        let _ = self.task.await;
    }

    /// Ends the task at its next await point without letting it finish anything: what a
    /// killed process leaves behind (its connections close; nothing is acked or saved).
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

/// The relay and workers of one test.
pub struct ReadSide {
    pub pool: PgPool,
    pub prefix: String,
    pub topology: Topology,
    pub keys: Keys,
    pub redis: Client,
    pub applier: Applier,
    pub stats: Arc<WorkerStats>,
    pub relay_stats: Arc<RelayStats>,
    relay: Option<Running>,
    workers: Vec<Running>,
}

impl ReadSide {
    /// Connects to Redis (failing with a clear message if it is not there).
    pub async fn new(pool: PgPool, prefix: &str, partitions: u16) -> ReadSide {
        let redis = readmodel::connect(&crate::redis_url())
            .await
            .expect("a valid BETLEDGER_REDIS_URL");
        readmodel::wait_connected(&redis, Duration::from_secs(10))
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "Redis at {} is not reachable ({e}); start it with `scripts/services.sh up`",
                    crate::redis_url()
                )
            });
        let keys = Keys::new(prefix);
        ReadSide {
            pool,
            prefix: prefix.to_string(),
            topology: Topology::new(prefix, partitions),
            applier: Applier::new(redis.clone(), keys.clone()),
            keys,
            redis,
            stats: Arc::new(WorkerStats::default()),
            relay_stats: Arc::new(RelayStats::default()),
            relay: None,
            workers: Vec::new(),
        }
    }

    pub fn relay_config(&self) -> RelayConfig {
        RelayConfig {
            name: self.prefix.clone(),
            amqp_url: crate::amqp_url(),
            topology: self.topology.clone(),
            page_size: 200,
            linger: projections::relay::LINGER_DEFAULT,
            stats: self.relay_stats.clone(),
        }
    }

    pub fn worker_config(&self, name: &str) -> WorkerConfig {
        WorkerConfig {
            name: format!("{}-{name}", self.prefix),
            amqp_url: crate::amqp_url(),
            topology: self.topology.clone(),
            partitions: (0..self.topology.partitions).collect(),
            prefetch: 64,
            attempts_max: 3,
        }
    }

    pub fn start_relay(&mut self) {
        assert!(self.relay.is_none(), "the relay is already running");
        let (trigger, stop) = shutdown::channel();
        let task = tokio::spawn(relay::run(self.pool.clone(), self.relay_config(), stop));
        self.relay = Some(Running { trigger, task });
    }

    pub async fn kill_relay(&mut self) {
        self.relay.take().expect("a running relay").kill().await;
    }

    /// Starts one more worker over every partition.
    pub fn start_worker(&mut self) {
        let config = self.worker_config(&format!("w{}", self.workers.len()));
        let (trigger, stop) = shutdown::channel();
        let task = tokio::spawn(worker::run(
            self.pool.clone(),
            self.applier.clone(),
            config,
            self.stats.clone(),
            stop,
        ));
        self.workers.push(Running { trigger, task });
    }

    /// Kills the most recently started worker (its unacked messages go back to the queue).
    pub async fn kill_worker(&mut self) {
        self.workers.pop().expect("a running worker").kill().await;
    }

    /// Stops the relay and every worker as their processes stop on SIGTERM (the queues
    /// and keys stay).
    pub async fn stop(&mut self) {
        if let Some(relay) = self.relay.take() {
            relay.stop().await;
        }
        self.stop_workers().await;
    }

    /// Stops every worker as on SIGTERM (the messages in hand finished, the rest left in
    /// the queues).
    pub async fn stop_workers(&mut self) {
        for worker in self.workers.drain(..) {
            worker.stop().await;
        }
    }

    /// Starts the relay and one worker.
    pub fn start(&mut self) {
        self.start_relay();
        self.start_worker();
    }

    /// A connection and channel to RabbitMQ, with the topology declared.
    pub async fn amqp(&self) -> (Connection, Channel) {
        let connection = projections::amqp::connect(&crate::amqp_url(), &self.prefix)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "RabbitMQ at {} is not reachable ({e}); start it with `scripts/services.sh up`",
                    crate::amqp_url()
                )
            });
        let channel = connection
            .open_channel(None)
            .await
            .expect("an AMQP channel");
        self.topology
            .declare(&channel)
            .await
            .expect("declaring the topology");
        (connection, channel)
    }

    /// Waits until every wallet's read model is at its last sequence in the log.
    pub async fn wait_projected(&self) {
        let started = Instant::now();
        loop {
            let behind = self.wallets_behind().await;
            if behind.is_empty() {
                return;
            }
            assert!(
                started.elapsed() < CATCH_UP,
                "read models still behind the log after {CATCH_UP:?}: {} wallets, e.g. {:?}; \
                 worker stats {:?}",
                behind.len(),
                behind.iter().take(3).collect::<Vec<_>>(),
                self.stats
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `(wallet, read-model sequence, log sequence)` of every wallet whose read model lags.
    async fn wallets_behind(&self) -> Vec<(String, u64, u64)> {
        let heads: Vec<(String, i64)> =
            sqlx::query_as("SELECT aggregate_id, max(sequence) FROM events GROUP BY aggregate_id")
                .fetch_all(&self.pool)
                .await
                .expect("reading the log's heads");
        let mut behind = Vec::new();
        for (wallet, head) in heads {
            let seen = self
                .applier
                .last_sequence(wallet.parse().expect("a wallet id in the log"))
                .await
                .expect("reading a read model's sequence");
            if seen != head as u64 {
                behind.push((wallet, seen, head as u64));
            }
        }
        behind
    }

    /// Asserts that every read model equals the fold of the log: balances, sequences,
    /// players and open reservations per wallet (with no wallet missing or extra), and
    /// every leaderboard score (with no board missing or extra).
    pub async fn assert_matches_log(&self) {
        let generation = query::current(&self.redis, &self.keys)
            .await
            .expect("reading the generation in use");
        let expected = fold_log(&self.pool, &generation).await;
        let wallet_keys = query::scan_keys(&self.redis, &generation.wallet_pattern())
            .await
            .expect("scanning wallet keys");
        let in_redis = wallet_keys
            .iter()
            .filter(|k| !k.ends_with(":reservations"))
            .count();
        assert_eq!(
            in_redis,
            expected.wallets.len(),
            "read models hold {in_redis} wallets, the log {}",
            expected.wallets.len()
        );
        for (wallet_id, want) in &expected.wallets {
            let id = wallet_id.parse().expect("a wallet id in the log");
            let view = query::wallet(&self.redis, &self.keys, id)
                .await
                .expect("reading a wallet's read model")
                .unwrap_or_else(|| panic!("wallet {wallet_id} has no read model"));
            assert_eq!(view.balance, want.balance, "balance of {wallet_id}");
            assert_eq!(view.sequence, want.sequence, "sequence of {wallet_id}");
            assert_eq!(
                view.player_id.map(String::from),
                Some(want.player_id.clone()),
                "player of {wallet_id}"
            );
            let open: BTreeMap<String, (Decimal, String)> = view
                .reservations
                .iter()
                .map(|r| {
                    (
                        r.reservation_id.to_string(),
                        (r.amount, r.game_id.to_string()),
                    )
                })
                .collect();
            assert_eq!(open, want.open, "open reservations of {wallet_id}");
        }
        let board_keys = query::scan_keys(
            &self.redis,
            &format!("{}*", generation.leaderboard_prefix()),
        )
        .await
        .expect("scanning leaderboard keys");
        let mut boards: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
        for key in board_keys {
            let rows: Vec<(String, f64)> = self
                .redis
                .zrange(key.as_str(), 0, -1, None, false, None, true)
                .await
                .expect("reading a leaderboard");
            boards.insert(key, rows.into_iter().map(|(p, s)| (p, s as i64)).collect());
        }
        assert_eq!(
            boards, expected.boards,
            "leaderboards differ from the fold of the log"
        );
    }

    /// Runs `reconcile` (with `--repair` if `repair`) over this read side, its report in
    /// a file of the test's own that is removed afterwards.
    pub async fn reconcile(&self, repair: bool) -> replay_tool::reconcile::ReconcileSummary {
        let report = std::env::temp_dir().join(format!("{}-reconcile.json", self.prefix));
        let summary = replay_tool::reconcile::reconcile(
            &self.pool,
            &self.redis,
            &self.keys,
            &replay_tool::reconcile::ReconcileConfig {
                settle: Duration::from_millis(200),
                repair,
                report: report.clone(),
                progress: replay_tool::progress::ProgressMode::Quiet,
                ..Default::default()
            },
        )
        .await
        .expect("reconcile runs");
        let _ = std::fs::remove_file(report);
        summary
    }

    /// Stops everything and deletes the test's exchanges, queues and keys.
    pub async fn teardown(mut self) {
        self.stop().await;
        let (connection, channel) = self.amqp().await;
        self.topology.delete(&channel).await;
        let _ = connection.close().await;
        let _ = query::delete_prefix(&self.redis, &self.prefix).await;
    }
}

/// A wallet as the fold of its events says it is.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedWallet {
    pub balance: domain::Balance,
    pub sequence: u64,
    pub player_id: String,
    /// reservation id -> (amount, game)
    pub open: BTreeMap<String, (Decimal, String)>,
}

/// What the read models must hold, folded from the log with the domain's own aggregate.
pub struct Expected {
    pub wallets: BTreeMap<String, ExpectedWallet>,
    /// leaderboard key -> player -> net win in minor units
    pub boards: BTreeMap<String, BTreeMap<String, i64>>,
}

/// Folds the whole log (test-sized: read at once).
pub async fn fold_log(pool: &PgPool, keys: &readmodel::Generation) -> Expected {
    let rows: Vec<(String, i64, serde_json::Value, DateTime<Utc>)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, payload, recorded_at FROM events
          ORDER BY aggregate_id, sequence",
    )
    .fetch_all(pool)
    .await
    .expect("reading the log");
    let mut aggregates: BTreeMap<String, (Wallet, u64)> = BTreeMap::new();
    let mut boards: BTreeMap<String, BTreeMap<String, i64>> = BTreeMap::new();
    for (wallet_id, sequence, payload, recorded_at) in rows {
        let event: WalletEvent = serde_json::from_value(payload).expect("a wallet event");
        let (wallet, seq) = aggregates.entry(wallet_id).or_default();
        assert_eq!(*seq + 1, sequence as u64, "the log has a sequence gap");
        if let Some(net) = event.net_win() {
            let currency = wallet.balance().expect("an opened wallet").currency;
            let bet = event
                .reservation_id()
                .or(event.lost().first().map(|l| &l.reservation_id));
            let game = event
                .game_id()
                .cloned()
                .or_else(|| {
                    bet.and_then(|id| wallet.reservation(id))
                        .map(|r| r.game_id.clone())
                })
                .expect("a net win names its game or a bet of it")
                .to_string();
            let player = wallet.player_id().expect("an opened wallet").to_string();
            let net = readmodel::model::to_minor(net, currency).expect("whole cents");
            for period in Period::ALL {
                let key = keys.leaderboard(currency, &period.bucket(recorded_at), &game);
                *boards
                    .entry(key)
                    .or_default()
                    .entry(player.clone())
                    .or_default() += net;
            }
        }
        wallet.apply(event);
        *seq += 1;
    }
    let wallets = aggregates
        .into_iter()
        .map(|(id, (wallet, sequence))| {
            let expected = ExpectedWallet {
                balance: wallet.balance().expect("an opened wallet"),
                sequence,
                player_id: wallet.player_id().expect("an opened wallet").to_string(),
                open: wallet
                    .open_reservations()
                    .map(|(rid, r)| (rid.to_string(), (r.amount, r.game_id.to_string())))
                    .collect(),
            };
            (id, expected)
        })
        .collect();
    Expected { wallets, boards }
}

/// Waits until the log reader can return every event committed now. It returns only
/// events below the cluster's oldest running transaction, and other tests' transactions
/// (in their own databases) count too, so a test that needs a tailing reader (the relay,
/// a rebuild) to see an event it just wrote waits here first.
pub async fn wait_log_readable(pool: &PgPool) {
    let started = Instant::now();
    loop {
        let unreadable = eventstore::log::held_back(pool)
            .await
            .expect("counting events above the log's horizon");
        if unreadable == 0 {
            return;
        }
        assert!(
            started.elapsed() < CATCH_UP,
            "{unreadable} events stay above the log's horizon after {CATCH_UP:?}: a transaction \
             somewhere in the cluster is held open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Every event of the log, read back in log order (for tests that publish on purpose).
pub async fn logged_events(pool: &PgPool) -> Vec<LoggedEvent> {
    wait_log_readable(pool).await;
    let mut events = Vec::new();
    let mut after = eventstore::log::LogCursor::START;
    loop {
        let page = eventstore::log::read_after(pool, after, 1_000)
            .await
            .expect("reading the log");
        let Some(last) = page.last() else {
            return events;
        };
        after = last.cursor();
        events.extend(page);
    }
}
