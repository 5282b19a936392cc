//! The reservation-expiry sweep: a background task of the API that finds reservations
//! past their timeout and issues `expire` commands, so the stake returns to the player and
//! the log says why.
//!
//! Safe in several API instances at once: each sweeps, and the aggregate decides. An
//! `expire` for a reservation that another instance expired (or that was settled or
//! refunded meanwhile) is refused as `RESERVATION_CLOSED`, and a lost race on the events
//! key is decided again, so a reservation expires exactly once.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use domain::wallet::RESERVATION_TIMEOUT_S_MAX;
use domain::WalletCommand;
use eventstore::payload;
use eventstore::{ExecuteError, StoreError, WalletStore};
use sqlx::PgPool;
use tokio::sync::oneshot;

/// Reservations looked at per sweep, at most.
pub const SWEEP_BATCH_MAX: i64 = 1_000;

/// The sweep and what it needs.
pub struct Expiry {
    pub pool: PgPool,
    pub store: Arc<dyn WalletStore>,
    pub interval: Duration,
    pub clock: Arc<dyn crate::clock::Clock>,
}

/// What one sweep did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct SweepReport {
    pub expired: usize,
    /// Closed meanwhile, or expired by another instance.
    pub skipped: usize,
}

impl Expiry {
    /// Sweeps every `interval` until `stop` fires.
    pub async fn run(self, mut stop: oneshot::Receiver<()>) {
        // The first sweep looks back over the longest timeout a reservation can have.
        let mut since = self.clock.now()
            - chrono::Duration::seconds(i64::from(RESERVATION_TIMEOUT_S_MAX) + 3_600);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            match self.sweep(since).await {
                Ok((report, next)) => {
                    since = next;
                    if report.expired > 0 {
                        tracing::info!(
                            expired = report.expired,
                            skipped = report.skipped,
                            "expired reservations"
                        );
                    }
                }
                Err(e) => tracing::warn!(error = %e, "expiry sweep failed; will retry"),
            }
        }
    }

    /// Expires the open reservations whose `expires_at` lies after `since` and is past;
    /// returns what it did and where the next sweep starts.
    pub async fn sweep(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(SweepReport, DateTime<Utc>), StoreError> {
        let now = self.clock.now();
        // Text order of expires_at is exact to the second: look one second past now.
        let due = payload::due_reservations(
            &self.pool,
            since,
            now + chrono::Duration::seconds(1),
            SWEEP_BATCH_MAX,
        )
        .await?;
        let mut report = SweepReport::default();
        let mut next = now;
        for (i, reservation) in due.iter().enumerate() {
            if reservation.expires_at > now {
                continue;
            }
            let (wallet_id, reservation_id) = (reservation.wallet_id, &reservation.reservation_id);
            let command = WalletCommand::Expire {
                reservation_id: reservation_id.clone(),
                now,
            };
            match self.store.execute(wallet_id, command).await {
                Ok(_) => {
                    report.expired += 1;
                    metrics::counter!("reservations_expired_total").increment(1);
                }
                Err(ExecuteError::Refused { .. }) => report.skipped += 1,
                Err(e) => {
                    // Start the next sweep at this reservation so none is passed over.
                    tracing::warn!(error = %e, %wallet_id, %reservation_id, "expiry failed");
                    next = due.get(i).map_or(since, |d| d.expires_at);
                    break;
                }
            }
        }
        if due.len() as i64 == SWEEP_BATCH_MAX {
            next = next.min(due.last().map_or(now, |d| d.expires_at));
        }
        // Text order of expires_at is exact to the second only: look a little back.
        Ok((report, next - chrono::Duration::seconds(2)))
    }
}
