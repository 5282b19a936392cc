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
//! died (on loopback it lags by milliseconds; `redis_connected_replicas` and the replica's
//! lag are what operators watch), and writes of a worker process that died with the
//! master. For those, each wallet's next event fills its gap, and `reconcile --repair`
//! finds the rest.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::WalletId;
use eventstore::log;
use fred::prelude::*;
use readmodel::{project, Applier, ProjectError};
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
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        let entry = applied.entry(wallet_id).or_insert((0, Instant::now()));
        entry.0 = entry.0.max(sequence);
        entry.1 = Instant::now();
    }

    /// The wallets applied to within [`WINDOW`]; older ones are forgotten.
    fn within_window(&self) -> Vec<(WalletId, u64)> {
        let mut applied = self.applied.lock().unwrap_or_else(|e| e.into_inner());
        applied.retain(|_, (_, at)| at.elapsed() < WINDOW);
        applied.iter().map(|(id, (seq, _))| (*id, *seq)).collect()
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

/// Re-projects every wallet of `recent` whose read model is behind what was applied to
/// it; returns how many were.
pub async fn heal(pool: &PgPool, applier: &Applier, recent: &Recent) -> Result<u64, ProjectError> {
    let mut healed = 0;
    for (wallet_id, sequence) in recent.within_window() {
        let held = applier.last_sequence(wallet_id).await?;
        if held >= sequence {
            continue;
        }
        // Projecting the last event it reached fills everything before it from the log.
        let events = log::wallet_events(pool, wallet_id, sequence - 1, 1).await?;
        let Some(event) = events.first() else {
            return Err(ProjectError::Poison(format!(
                "wallet {wallet_id} was applied at {sequence}, which the log does not hold"
            )));
        };
        project(pool, applier, event).await?;
        healed += 1;
    }
    Ok(healed)
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
        if pending {
            let started = Instant::now();
            match heal(&pool, &applier, &recent).await {
                Ok(healed) => {
                    pending = false;
                    recent.healed.fetch_add(healed, Ordering::Relaxed);
                    metrics::counter!("projection_healed_wallets_total").increment(healed);
                    info!(
                        healed,
                        took_ms = started.elapsed().as_millis() as u64,
                        "read models healed after the Redis change"
                    );
                }
                Err(e) => warn!(error = %e, "healing after the Redis change failed; trying again"),
            }
        }
    }
}
