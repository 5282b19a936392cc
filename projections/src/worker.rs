//! Projection workers: consume the partition queues and keep the Redis read models equal
//! to the log.
//!
//! - Manual acks after the apply, a bounded prefetch, one message (a batch, `amqp`) at a
//!   time per partition; in a batch, its wallets side by side and each wallet's events in
//!   order (so one wallet's events apply in order).
//! - Each event is projected with `readmodel::project`, as a rebuild's catch-up does:
//!   idempotent and atomic, an old sequence acked and skipped, a gap filled by reading
//!   the missing events from Postgres first.
//! - A message whose body does not decode is rejected to the dead-letter exchange at once.
//!   An event that cannot be applied (it names a version this code cannot read, say) is
//!   tried `attempts_max` times; its wallet's later events in the batch are left, the
//!   other wallets' events are applied (side by side with it), and the message is
//!   rejected, counted (`projection_dead_letters_total`); the partition goes on. A dependency
//!   that is down (Redis, Postgres) is not the event's fault: the worker retries the same
//!   event with backoff and never dead-letters it for that.
//! - After Redis fails over, the wallets applied to lately whose read model the new master
//!   lacks are re-projected from the log ([`heal`]).
//! - amqprs does not reconnect: when the connection fails, the session ends and starts
//!   again after a backoff; unacked messages are redelivered by the broker.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::ConsumerMessage;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicQosArguments, BasicRejectArguments, Channel,
};
use domain::WalletId;
use eventstore::log::LoggedEvent;
use futures::stream::{self, StreamExt};
use readmodel::{project, Applier, ApplyOutcome, ProjectError};
use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::amqp::{self, Topology};
use crate::heal::{self, Recent};
use crate::shutdown::{supervise, Backoff, Shutdown};

/// Wallets of one batch projected at a time.
pub const WALLETS_IN_FLIGHT: usize = 64;

/// What a worker needs.
#[derive(Clone)]
pub struct WorkerConfig {
    /// Names the worker's consumers (visible in RabbitMQ).
    pub name: String,
    pub amqp_url: String,
    pub topology: Topology,
    /// The partitions this worker consumes (all of them unless split across processes;
    /// several workers on one partition take turns, one active at a time).
    pub partitions: Vec<u16>,
    /// Unacked messages per partition.
    pub prefetch: u16,
    /// Tries of an event that cannot be applied before its batch is dead-lettered.
    pub attempts_max: u32,
}

/// Counters a worker keeps (also exported as metrics).
#[derive(Debug, Default)]
pub struct WorkerStats {
    pub applied: AtomicU64,
    pub duplicates: AtomicU64,
    pub gap_filled: AtomicU64,
    pub dead_lettered: AtomicU64,
    /// Connected sessions started (more than one means it reconnected).
    pub sessions: AtomicU64,
    /// The wallets applied to lately, for healing after a Redis failover ([`heal`]).
    pub recent: Arc<Recent>,
}

impl WorkerStats {
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered.load(Ordering::Relaxed)
    }
}

/// Runs the worker until `shutdown`, reconnecting with backoff after any failure.
pub async fn run(
    pool: PgPool,
    applier: Applier,
    config: WorkerConfig,
    stats: Arc<WorkerStats>,
    shutdown: Shutdown,
) {
    let what = format!("worker {}", config.name);
    // Present at zero from the start: an alert's increase() over it is then 0, not empty.
    metrics::counter!("projection_dead_letters_total").increment(0);
    let healer = tokio::spawn(heal::watch(
        pool.clone(),
        applier.clone(),
        stats.recent.clone(),
        shutdown.clone(),
    ));
    supervise(
        &what,
        "projection_worker_restarts_total",
        shutdown,
        |mut stop| {
            let (pool, applier, config, stats) =
                (pool.clone(), applier.clone(), config.clone(), stats.clone());
            async move { session(&pool, &applier, &config, &stats, &mut stop).await }
        },
    )
    .await;
    let _ = healer.await;
}

async fn session(
    pool: &PgPool,
    applier: &Applier,
    config: &WorkerConfig,
    stats: &Arc<WorkerStats>,
    shutdown: &mut Shutdown,
) -> anyhow::Result<()> {
    let connection = amqp::connect(
        &config.amqp_url,
        &format!("betledger-worker-{}", config.name),
    )
    .await?;
    stats.sessions.fetch_add(1, Ordering::Relaxed);
    let setup = connection.open_channel(None).await?;
    config.topology.declare(&setup).await?;
    let _ = setup.close().await;

    let mut partitions = JoinSet::new();
    for &partition in &config.partitions {
        let channel = connection.open_channel(None).await?;
        channel
            .basic_qos(BasicQosArguments::new(0, config.prefetch, false))
            .await?;
        let queue = config.topology.partition_queue(partition);
        let (_, rx) = channel
            .basic_consume_rx(BasicConsumeArguments::new(
                &queue,
                &format!("{}-{partition}", config.name),
            ))
            .await?;
        let consumer = Consumer {
            pool: pool.clone(),
            applier: applier.clone(),
            stats: stats.clone(),
            attempts_max: config.attempts_max.max(1),
            queue,
        };
        let shutdown = shutdown.clone();
        partitions.spawn(async move { consumer.run(channel, rx, shutdown).await });
    }
    info!(worker = %config.name, partitions = ?config.partitions, "worker consuming");
    let result = tokio::select! {
        ended = partitions.join_next() => match ended {
            Some(Ok(Ok(()))) | None => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(e)) => Err(anyhow::anyhow!("partition task failed: {e}")),
        },
        _ = connection.listen_network_io_failure() => Err(anyhow::anyhow!("AMQP connection lost")),
        _ = shutdown.wait() => Ok(()),
    };
    // On shutdown each partition finishes the message in hand, then stops.
    if result.is_ok() {
        while partitions.join_next().await.is_some() {}
    } else {
        partitions.shutdown().await;
    }
    let _ = connection.close().await;
    result
}

struct Consumer {
    pool: PgPool,
    applier: Applier,
    stats: Arc<WorkerStats>,
    attempts_max: u32,
    queue: String,
}

impl Consumer {
    async fn run(
        self,
        channel: Channel,
        mut rx: UnboundedReceiver<ConsumerMessage>,
        mut shutdown: Shutdown,
    ) -> anyhow::Result<()> {
        loop {
            let message = tokio::select! {
                m = rx.recv() => m,
                _ = shutdown.wait() => return Ok(()),
            };
            let Some(message) = message else {
                anyhow::bail!("consumer of {} closed by the broker", self.queue);
            };
            let Some(deliver) = message.deliver.as_ref() else {
                continue;
            };
            let tag = deliver.delivery_tag();
            match self.handle(&message, &mut shutdown).await {
                Some(true) => {
                    channel
                        .basic_ack(BasicAckArguments::new(tag, false))
                        .await?;
                }
                Some(false) => {
                    channel
                        .basic_reject(BasicRejectArguments::new(tag, false))
                        .await?;
                    self.stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    metrics::counter!("projection_dead_letters_total").increment(1);
                }
                // Shut down mid-retry: leave the message unacked; the broker redelivers it.
                None => return Ok(()),
            }
        }
    }

    /// `Some(true)`: ack; `Some(false)`: dead-letter; `None`: shutting down.
    ///
    /// A batch's wallets are projected side by side (fred pipelines their scripts), each
    /// wallet's events one after the other, in log order. A poison event stops its own
    /// wallet only: the other wallets' events are applied, then the whole message goes to
    /// the dead letters (re-applying its good events later changes nothing: the fence).
    async fn handle(&self, message: &ConsumerMessage, shutdown: &mut Shutdown) -> Option<bool> {
        let body = message.content.as_deref().unwrap_or_default();
        let events = match amqp::decode_batch(body) {
            Ok(events) => events,
            Err(e) => {
                error!(queue = %self.queue, reason = %e, "dead-lettering a message that is not a batch of logged events");
                return Some(false);
            }
        };
        // Each wallet's events, as positions in the batch.
        let mut wallets: Vec<Vec<usize>> = Vec::new();
        let mut index: HashMap<WalletId, usize> = HashMap::new();
        for (at, event) in events.iter().enumerate() {
            let wallet = *index.entry(event.wallet_id).or_insert_with(|| {
                wallets.push(Vec::new());
                wallets.len() - 1
            });
            wallets[wallet].push(at);
        }
        let events = &events;
        let outcomes: Vec<Option<bool>> = stream::iter(wallets)
            .map(|picks| self.handle_wallet(events, picks, shutdown.clone()))
            .buffer_unordered(WALLETS_IN_FLIGHT)
            .collect()
            .await;
        if outcomes.iter().any(Option::is_none) {
            return None;
        }
        Some(outcomes.iter().all(|o| *o == Some(true)))
    }

    /// One wallet's events of a batch (`picks`, in log order), each after the one before;
    /// stops at the first that is not applied.
    async fn handle_wallet(
        &self,
        events: &[LoggedEvent],
        picks: Vec<usize>,
        mut shutdown: Shutdown,
    ) -> Option<bool> {
        for at in picks {
            match self.handle_event(&events[at], &mut shutdown).await {
                Some(true) => {}
                other => return other,
            }
        }
        Some(true)
    }

    /// One event, retried as its failure calls for: `Some(true)` applied (or a
    /// duplicate), `Some(false)` poison after `attempts_max` tries, `None` shutting down.
    async fn handle_event(&self, event: &LoggedEvent, shutdown: &mut Shutdown) -> Option<bool> {
        let mut attempts = 0;
        let mut backoff = Backoff::default();
        loop {
            match self.apply(event).await {
                Ok(()) => return Some(true),
                Err(ProjectError::Poison(reason)) => {
                    attempts += 1;
                    if attempts >= self.attempts_max {
                        error!(queue = %self.queue, wallet_id = %event.wallet_id, sequence = event.sequence, %reason, attempts, "dead-lettering the batch of a poison event");
                        return Some(false);
                    }
                    warn!(queue = %self.queue, wallet_id = %event.wallet_id, sequence = event.sequence, %reason, attempts, "event not applied; trying again");
                    if !shutdown.sleep(Duration::from_millis(100)).await {
                        return None;
                    }
                }
                Err(ProjectError::Unavailable(reason)) => {
                    let delay = backoff.next_delay();
                    warn!(queue = %self.queue, %reason, retry_in_ms = delay.as_millis() as u64, "dependency down; retrying the same event");
                    if !shutdown.sleep(delay).await {
                        return None;
                    }
                }
            }
        }
    }

    async fn apply(&self, event: &LoggedEvent) -> Result<(), ProjectError> {
        let projected = project(&self.pool, &self.applier, event).await?;
        if projected.gap_filled > 0 {
            self.stats
                .gap_filled
                .fetch_add(projected.gap_filled, Ordering::Relaxed);
            metrics::counter!("projection_events_total", "outcome" => "gap_filled")
                .increment(projected.gap_filled);
        }
        // What the read model held once this message was done, for the heal after a
        // Redis failover.
        match projected.outcome {
            ApplyOutcome::Applied => self.stats.recent.note(event.wallet_id, event.sequence),
            ApplyOutcome::Duplicate { last } => self
                .stats
                .recent
                .note(event.wallet_id, last.max(event.sequence)),
            _ => {}
        }
        match projected.outcome {
            ApplyOutcome::Applied => {
                self.stats.applied.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("projection_events_total", "outcome" => "applied").increment(1);
                let lag = (chrono::Utc::now() - event.recorded_at)
                    .num_microseconds()
                    .unwrap_or(0);
                metrics::histogram!("projection_lag_seconds").record(lag.max(0) as f64 / 1e6);
            }
            ApplyOutcome::Duplicate { .. } => {
                self.stats.duplicates.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("projection_events_total", "outcome" => "duplicate").increment(1);
            }
            other => {
                return Err(ProjectError::Poison(format!(
                    "unexpected apply outcome {other:?}"
                )))
            }
        }
        Ok(())
    }
}
