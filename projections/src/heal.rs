//! The read models after Redis fails over. Redis replicates asynchronously: a master that
//! dies may have applied (and the worker acked to RabbitMQ) writes its replica never got,
//! and Sentinel promotes that replica. Nothing would deliver those events again, so the
//! wallets they touched would stay behind the log until their next event (which fills the
//! gap from the log) or the nightly `reconcile --repair`.
//!
//! So a worker remembers, for [`WINDOW`], each wallet it applied to and the sequence it
//! reached ([`Recent`]); [`watch`] reads the Redis server's `run_id` every [`TICK`], and
//! when it changes (another server answers: a failover, or a restart that lost the last
//! second of its append-only file) it re-projects from the log every remembered wallet
//! whose read model is behind the sequence the worker reached. `project` is the workers'
//! own sequence-fenced apply, so this races safely with them and applies nothing twice;
//! leaderboards and totals move with the wallet in the same script, so they heal with it.
//!
//! What it does not cover: a replica that lagged by more than [`WINDOW`] when its master
//! died (on a healthy link it lags by milliseconds; the replica's `master_link_status` in
//! `INFO replication` is what operators check), and writes of a worker process that died
//! with the master. For those, each wallet's next event fills its gap, and `reconcile --repair`
//! finds the rest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::WalletId;
use eventstore::log;
use fred::prelude::*;
use readmodel::{project, Applier, ApplyOutcome, ProjectError};
use sqlx::PgPool;
use tracing::{info, warn};

use crate::shutdown::Shutdown;

/// How long a wallet's last apply is remembered: longer than a replica on a healthy link
/// lags, and than Sentinel takes to fail over (`down-after-milliseconds` plus the
/// election).
pub const WINDOW: Duration = Duration::from_secs(60);

/// How often the Redis server's identity is read.
pub const TICK: Duration = Duration::from_secs(1);

/// The wallets a worker applied to lately, with the sequence it reached.
#[derive(Debug, Default)]
pub struct Recent {
    applied: Mutex<HashMap<WalletId, (u64, Instant)>>,
    /// Redis servers seen to change under this worker.
    pub failovers: AtomicU64,
    /// Wallets found behind after a change and re-projected from the log.
    pub healed: AtomicU64,
}

impl Recent {
    /// Notes that the read model of `wallet_id` held `sequence` (applied, or already there).
    pub fn note(&self, wallet_id: WalletId, sequence: u64) {
        let now = Instant::now();
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let entry = applied.entry(wallet_id).or_insert((sequence, now));
        *entry = (entry.0.max(sequence), now);
    }

    /// Forgets the wallets not applied to within [`WINDOW`]: the map holds only those
    /// active lately, however long the worker runs.
    fn forget_old(&self) {
        drop(self.recent_only());
    }

    /// The wallets applied to within [`WINDOW`] (older ones are forgotten).
    fn within_window(&self) -> Vec<(WalletId, u64)> {
        let applied = self.recent_only();
        applied.iter().map(|(id, (seq, _))| (*id, *seq)).collect()
    }

    /// The map, locked, with the entries older than [`WINDOW`] dropped.
    fn recent_only(&self) -> std::sync::MutexGuard<'_, HashMap<WalletId, (u64, Instant)>> {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        applied.retain(|_, (_, at)| at.elapsed() < WINDOW);
        applied
    }
}

/// The identity of the Redis server `client` talks to (`run_id`: new at every start).
async fn server_id(client: &Client) -> Result<String, fred::error::Error> {
    let info: String = client.info(Some(fred::types::InfoKind::Server)).await?;
    info.lines()
        .find_map(|line| line.strip_prefix("run_id:"))
        .map(|id| id.trim().to_string())
        .ok_or_else(|| {
            fred::error::Error::new(fred::error::ErrorKind::Protocol, "INFO has no run_id")
        })
}

/// What one heal did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Healed {
    /// Wallets whose read model was behind and now holds what the worker had applied.
    pub healed: u64,
    /// Wallets that could not be healed now (Redis or the log unavailable): the next
    /// tick tries them again.
    pub retry: u64,
    /// Wallets that cannot be healed by projecting (the log does not hold what the worker
    /// applied, or the event is poison): logged and left to `reconcile --repair`.
    pub given_up: u64,
}

/// Re-projects every wallet of `recent` whose read model is behind what was applied to
/// it. One wallet that fails does not stop the others.
pub async fn heal(pool: &PgPool, applier: &Applier, recent: &Recent) -> Healed {
    let mut done = Healed::default();
    for (wallet_id, sequence) in recent.within_window() {
        match heal_one(pool, applier, wallet_id, sequence).await {
            Ok(true) => done.healed += 1,
            Ok(false) => {}
            Err(ProjectError::Unavailable(e)) => {
                warn!(%wallet_id, error = %e, "healing a wallet: a dependency is down; trying again");
                done.retry += 1;
            }
            Err(ProjectError::Poison(e)) => {
                warn!(%wallet_id, error = %e, "healing a wallet failed; reconcile --repair will find it");
                done.given_up += 1;
            }
        }
    }
    done
}

/// Whether the read model of `wallet_id` was behind `sequence` and was brought to it.
async fn heal_one(
    pool: &PgPool,
    applier: &Applier,
    wallet_id: WalletId,
    sequence: u64,
) -> Result<bool, ProjectError> {
    if applier.last_sequence(wallet_id).await? >= sequence {
        return Ok(false);
    }
    // Projecting the last event it reached fills everything before it from the log.
    let events = log::wallet_events(pool, wallet_id, sequence - 1, 1).await?;
    let Some(event) = events.first() else {
        return Err(ProjectError::Poison(format!(
            "wallet {wallet_id} was applied at {sequence}, which the log does not hold"
        )));
    };
    let projected = project(pool, applier, event).await?;
    // A worker may have got there first (a duplicate that filled nothing).
    Ok(projected.outcome == ApplyOutcome::Applied || projected.gap_filled > 0)
}

/// Watches the Redis server behind `applier` until `shutdown`, and heals after each change.
pub async fn watch(pool: PgPool, applier: Applier, recent: Arc<Recent>, mut shutdown: Shutdown) {
    let mut known: Option<String> = None;
    let mut pending = false;
    metrics::counter!("projection_redis_failovers_total").increment(0);
    metrics::counter!("projection_healed_wallets_total").increment(0);
    loop {
        if !shutdown.sleep(TICK).await {
            return;
        }
        // Unreachable: the workers wait too; the next answer says whether it changed.
        let Ok(id) = server_id(applier.client()).await else {
            continue;
        };
        if known.as_ref().is_some_and(|k| *k != id) {
            warn!(from = known.as_deref(), to = %id, "another Redis server answers: healing the wallets applied lately");
            recent.failovers.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("projection_redis_failovers_total").increment(1);
            pending = true;
        }
        known = Some(id);
        if !pending {
            recent.forget_old();
            continue;
        }
        let started = Instant::now();
        let done = heal(&pool, &applier, &recent).await;
        recent.healed.fetch_add(done.healed, Ordering::Relaxed);
        metrics::counter!("projection_healed_wallets_total").increment(done.healed);
        info!(
            healed = done.healed,
            retry = done.retry,
            given_up = done.given_up,
            took_ms = started.elapsed().as_millis() as u64,
            "read models healed after the Redis change"
        );
        pending = done.retry > 0;
    }
}
