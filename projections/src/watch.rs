//! Gauges of what the read side depends on, sampled every `interval` for the operators'
//! alerts (`ops/prometheus/rules.yml`): how many committed events the log's horizon holds
//! back (a long transaction anywhere stalls the relay), how far the relay's checkpoint is
//! behind the log's head, each partition queue's depth, Redis's reachability and memory,
//! the last `reconcile` and `verify` runs' outcomes (`eventstore::runs`), and the newest
//! backups and the WAL archiver's counters (`eventstore::backups`). Each sample that fails leaves its gauge as it
//! was and sets its `*_up` gauge to 0, so an alert sees the source, not a stale figure.

use std::time::Duration;

use eventstore::log;
use sqlx::PgPool;

use crate::amqp::{self, Topology};
use crate::shutdown::Shutdown;

/// What the watcher samples.
#[derive(Clone)]
pub struct WatchConfig {
    pub interval: Duration,
    pub amqp_url: String,
    pub topology: Topology,
    /// The relay whose checkpoint the lag is measured from.
    pub relay_name: String,
    pub redis: fred::prelude::Client,
    pub keys: readmodel::Keys,
}

/// Samples until `shutdown`.
pub async fn run(pool: PgPool, config: WatchConfig, mut shutdown: Shutdown) {
    let mut amqp: Option<amqprs::connection::Connection> = None;
    loop {
        sample(&pool, &config, &mut amqp).await;
        tokio::select! {
            _ = tokio::time::sleep(config.interval) => {}
            _ = shutdown.wait() => break,
        }
    }
    if let Some(connection) = amqp {
        let _ = connection.close().await;
    }
}

/// Takes every sample once (what `run` does each interval); `amqp` keeps the connection
/// between samples.
pub async fn sample(
    pool: &PgPool,
    config: &WatchConfig,
    amqp: &mut Option<amqprs::connection::Connection>,
) {
    let up = |name: &'static str, ok: bool| metrics::gauge!(name).set(if ok { 1.0 } else { 0.0 });
    match log::held_back(pool).await {
        Ok(n) => metrics::gauge!("log_held_back_events").set(n as f64),
        Err(e) => tracing::warn!(error = %e, "sampling the log's hold-back"),
    }
    let head = log::head(pool).await;
    let checkpoint = crate::relay::checkpoint(pool, &config.relay_name).await;
    up("postgres_up", head.is_ok());
    if let (Ok(head), Ok(checkpoint)) = (head, checkpoint) {
        let head = head.map_or(0, |h| h.global_position);
        metrics::gauge!("relay_lag_events").set((head - checkpoint.global_position).max(0) as f64);
    }
    let redis_ok = match readmodel::query::used_memory(&config.redis).await {
        Ok(bytes) => {
            metrics::gauge!("redis_used_memory_bytes").set(bytes as f64);
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "sampling Redis");
            false
        }
    };
    up("redis_up", redis_ok);
    if let Ok(Some((at, ok, differences))) =
        eventstore::runs::latest(pool, eventstore::runs::Check::Reconcile).await
    {
        metrics::gauge!("reconcile_last_run_timestamp_seconds").set(at.timestamp() as f64);
        metrics::gauge!("reconcile_last_ok").set(if ok { 1.0 } else { 0.0 });
        metrics::gauge!("reconcile_last_differences").set(differences as f64);
    }
    if let Ok(Some((at, ok, violations))) =
        eventstore::runs::latest(pool, eventstore::runs::Check::Verify).await
    {
        metrics::gauge!("verify_last_run_timestamp_seconds").set(at.timestamp() as f64);
        metrics::gauge!("verify_last_ok").set(if ok { 1.0 } else { 0.0 });
        metrics::gauge!("verify_last_violations").set(violations as f64);
    }
    sample_backups(pool).await;
    up("rabbitmq_up", queue_depths(config, amqp).await);
}

/// The newest backup of each kind (`eventstore::backups`, written by `scripts/backup.sh`)
/// and the WAL archiver's counters: what the backup alerts read.
async fn sample_backups(pool: &PgPool) {
    if let Ok(latest) = eventstore::backups::latest(pool).await {
        for b in latest {
            let kind = b.kind;
            metrics::gauge!("backup_last_success_timestamp_seconds", "kind" => kind.clone())
                .set(b.finished_at.timestamp() as f64);
            metrics::gauge!("backup_last_duration_seconds", "kind" => kind.clone()).set(b.seconds);
            metrics::gauge!("backup_last_size_bytes", "kind" => kind.clone())
                .set(b.size_bytes as f64);
            metrics::gauge!("backup_last_repository_bytes", "kind" => kind)
                .set(b.repository_bytes as f64);
        }
    }
    match eventstore::backups::archiver(pool).await {
        Ok(a) => {
            metrics::gauge!("postgres_wal_archiving").set(if a.enabled { 1.0 } else { 0.0 });
            metrics::gauge!("postgres_wal_archived_segments").set(a.archived as f64);
            metrics::gauge!("postgres_wal_archive_failures").set(a.failed as f64);
            // 0 before the first: the failing alert compares the two.
            let seconds = |at: Option<chrono::DateTime<chrono::Utc>>| {
                at.map_or(0.0, |t| t.timestamp() as f64)
            };
            metrics::gauge!("postgres_wal_last_archived_timestamp_seconds")
                .set(seconds(a.last_archived_at));
            metrics::gauge!("postgres_wal_last_failed_timestamp_seconds")
                .set(seconds(a.last_failed_at));
            if let Some(n) = a.pending {
                metrics::gauge!("postgres_wal_archive_pending_segments").set(n as f64);
            }
        }
        Err(e) => tracing::warn!(error = %e, "sampling the WAL archiver"),
    }
}

/// Each partition queue's depth (and the dead letters'), from a passive declare: what
/// RabbitMQ answers without the management plugin. Reconnects when the connection is gone.
async fn queue_depths(
    config: &WatchConfig,
    amqp: &mut Option<amqprs::connection::Connection>,
) -> bool {
    if amqp.as_ref().is_none_or(|c| !c.is_open()) {
        *amqp = amqp::connect(&config.amqp_url, "betledger-watch")
            .await
            .ok();
    }
    let Some(connection) = amqp.as_ref() else {
        return false;
    };
    let Ok(channel) = connection.open_channel(None).await else {
        *amqp = None;
        return false;
    };
    let mut names: Vec<String> = (0..config.topology.partitions)
        .map(|p| config.topology.partition_queue(p))
        .collect();
    names.push(config.topology.dead_letter_queue());
    let mut ok = true;
    for name in names {
        let args = amqprs::channel::QueueDeclareArguments::new(&name)
            .passive(true)
            .finish();
        match channel.queue_declare(args).await {
            Ok(Some((_, messages, _))) => {
                metrics::gauge!("amqp_queue_messages", "queue" => name).set(f64::from(messages))
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(queue = %name, error = %e, "sampling a queue's depth");
                ok = false;
                break;
            }
        }
    }
    let _ = channel.close().await;
    ok
}
