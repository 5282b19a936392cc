//! Instances that share a database without a cluster: correct, slow, and now told.
//!
//! Every instance says it is there in `api_instances`: a clustered one through the
//! cluster's heartbeat (with the address the others reach it at), an unclustered one here,
//! with an empty address (the cluster's members are the rows with an address). Each
//! instance then counts the other live instances it is *not* clustered with: all of them
//! when it has no cluster, the unclustered ones when it has. Two instances deciding the
//! same wallets without a cluster keep finding each other's writes and reloading (about a
//! third of one instance's rate, docs/deploy/several-instances.md), so a count above zero
//! is logged as a warning once a minute, exported as `api_unclustered_instances` (alert
//! `BetLedgerInstancesNotClustered`), and named by `/ready`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::PgPool;
use uuid::Uuid;

use crate::cluster::{HEARTBEAT, MEMBER_TTL};

/// How often the warning is logged while it holds.
const WARN_EVERY: Duration = Duration::from_secs(60);

/// This instance's view of the instances it is not clustered with.
pub struct Presence {
    pool: PgPool,
    /// This instance's row when it has no cluster (`None`: the cluster keeps its row).
    alone: Option<Uuid>,
    unclustered: AtomicUsize,
}

impl Presence {
    /// `clustered`: whether this instance is in a cluster (whose heartbeat keeps its row).
    pub fn new(pool: PgPool, clustered: bool) -> Arc<Self> {
        Arc::new(Presence {
            pool,
            alone: (!clustered).then(Uuid::new_v4),
            unclustered: AtomicUsize::new(0),
        })
    }

    /// The other live instances on this database that this one is not clustered with,
    /// as last seen.
    pub fn unclustered(&self) -> usize {
        self.unclustered.load(Ordering::Relaxed)
    }

    /// What `/ready` says while others run beside this instance without a cluster.
    pub fn warning(&self) -> Option<String> {
        let n = self.unclustered();
        (n > 0).then(|| {
            format!(
                "{n} other API instance(s) use this database outside a cluster: they are \
                 correct but slow; set BETLEDGER_CLUSTER_ADDR and BETLEDGER_CLUSTER_SECRET on \
                 every instance (docs/deploy/several-instances.md)"
            )
        })
    }

    /// Renews this instance's row (when it has no cluster) and counts the others once.
    pub async fn look(&self) -> Result<usize, sqlx::Error> {
        let ttl = MEMBER_TTL.as_secs_f64();
        let count: i64 = match self.alone {
            Some(me) => {
                sqlx::query_scalar(
                    "WITH renewed AS (
                         INSERT INTO api_instances (instance_id, address, heartbeat_at)
                         VALUES ($1, '', now())
                         ON CONFLICT (instance_id) DO UPDATE SET heartbeat_at = now()
                         RETURNING 1)
                     SELECT count(*) FROM api_instances
                      WHERE instance_id <> $1 AND heartbeat_at > now() - make_interval(secs => $2)",
                )
                .bind(me)
                .bind(ttl)
                .fetch_one(&self.pool)
                .await?
            }
            None => {
                sqlx::query_scalar(
                    "SELECT count(*) FROM api_instances
                      WHERE address = '' AND heartbeat_at > now() - make_interval(secs => $1)",
                )
                .bind(ttl)
                .fetch_one(&self.pool)
                .await?
            }
        };
        let count = usize::try_from(count).unwrap_or(0);
        self.unclustered.store(count, Ordering::Relaxed);
        metrics::gauge!("api_unclustered_instances").set(count as f64);
        Ok(count)
    }

    /// Looks every heartbeat until `stop`, warning once a minute while others run beside
    /// this instance outside a cluster; stopping, removes this instance's row.
    pub async fn run(self: Arc<Self>, mut stop: tokio::sync::oneshot::Receiver<()>) {
        let mut warned: Option<Instant> = None;
        loop {
            match self.look().await {
                Ok(0) => warned = None,
                Ok(_) => {
                    if warned.is_none_or(|at| at.elapsed() >= WARN_EVERY) {
                        tracing::warn!(
                            unclustered = self.unclustered(),
                            "{}",
                            self.warning().unwrap_or_default()
                        );
                        warned = Some(Instant::now());
                    }
                }
                Err(e) => tracing::debug!(error = %e, "counting the other API instances"),
            }
            tokio::select! {
                _ = tokio::time::sleep(HEARTBEAT) => {}
                _ = &mut stop => break,
            }
        }
        if let Some(me) = self.alone {
            let _ = sqlx::query("DELETE FROM api_instances WHERE instance_id = $1")
                .bind(me)
                .execute(&self.pool)
                .await;
        }
    }
}
