//! Projection workers: consume the partition queues and keep the Redis read models equal
//! to the log.
//!
//! - Manual acks after the apply, a bounded prefetch, one message at a time per partition
//!   (so one wallet's events apply in order).
//! - Each message is projected with `readmodel::project`, as a rebuild's catch-up does:
//!   idempotent and atomic, an old sequence acked and skipped, a gap filled by reading
//!   the missing events from Postgres first.
//! - A message that cannot be applied (it does not decode, or names a version this code
//!   cannot read) is tried `attempts_max` times, then rejected to the dead-letter exchange
//!   and counted (`projection_dead_letters_total`); the partition goes on. A dependency
//!   that is down (Redis, Postgres) is not the message's fault: the worker retries the same
//!   message with backoff and never dead-letters it for that.
//! - After Redis fails over, the wallets applied to lately whose read model the new master
//!   lacks are re-projected from the log ([`heal`]).
//! - amqprs does not reconnect: when the connection fails, the session ends and starts
//!   again after a backoff; unacked messages are redelivered by the broker.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use amqprs::channel::ConsumerMessage;
use amqprs::channel::{
    BasicAckArguments, BasicConsumeArguments, BasicQosArguments, BasicRejectArguments, Channel,
};
use eventstore::log::LoggedEvent;
use readmodel::{project, Applier, ApplyOutcome, ProjectError};
use sqlx::PgPool;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinSet;
use tracing::{error, info, warn};

use crate::amqp::{self, Topology};
use crate::heal::{self, Recent};
use crate::shutdown::{supervise, Backoff, Shutdown};

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
    /// Tries of a message that cannot be applied before it is dead-lettered.
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
    async fn handle(&self, message: &ConsumerMessage, shutdown: &mut Shutdown) -> Option<bool> {
        let body = message.content.as_deref().unwrap_or_default();
        let mut attempts = 0;
        let mut backoff = Backoff::default();
        loop {
            let result = match serde_json::from_slice::<LoggedEvent>(body) {
                Ok(event) => self.apply(&event).await,
                Err(e) => Err(ProjectError::Poison(format!(
                    "body is not a logged event: {e}"
                ))),
            };
            match result {
                Ok(()) => return Some(true),
                Err(ProjectError::Poison(reason)) => {
                    attempts += 1;
                    if attempts >= self.attempts_max {
                        error!(queue = %self.queue, %reason, attempts, "dead-lettering a message");
                        return Some(false);
                    }
                    warn!(queue = %self.queue, %reason, attempts, "message not applied; trying again");
                    if !shutdown.sleep(Duration::from_millis(100)).await {
                        return None;
                    }
                }
                Err(ProjectError::Unavailable(reason)) => {
                    let delay = backoff.next_delay();
                    warn!(queue = %self.queue, %reason, retry_in_ms = delay.as_millis() as u64, "dependency down; retrying the same message");
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
