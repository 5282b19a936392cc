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
use domain::{WalletCommand, WalletId};
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
        // Awards may run for months: the first bonus sweep looks back a year.
        let mut bonuses_since = self.clock.now() - chrono::Duration::days(366);
        loop {
            tokio::select! {
                _ = &mut stop => return,
                _ = tokio::time::sleep(self.interval) => {}
            }
            match self.sweep_bonuses(bonuses_since).await {
                Ok((report, next)) => {
                    bonuses_since = next;
                    if report.expired > 0 {
                        tracing::info!(expired = report.expired, "expired bonus awards");
                    }
                }
                Err(e) => tracing::warn!(error = %e, "bonus expiry sweep failed; will retry"),
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

    /// Expires the bonus awards and free-rounds grants whose `expires_at` lies after
    /// `since` and is past (one that ended meanwhile is refused by its wallet and skipped);
    /// returns what it did and where the next sweep starts.
    pub async fn sweep_bonuses(
        &self,
        since: DateTime<Utc>,
    ) -> Result<(SweepReport, DateTime<Utc>), StoreError> {
        let now = self.clock.now();
        // Text order of expires_at is exact to the second: look one second past now.
        let mut due = Vec::new();
        for granted in [
            payload::Granted::Awards,
            payload::Granted::FreeRounds,
            payload::Granted::FreeRoundsAwards,
        ] {
            let found = payload::due_bonuses(
                &self.pool,
                granted,
                since,
                now + chrono::Duration::seconds(1),
                SWEEP_BATCH_MAX,
            )
            .await?;
            due.extend(found.into_iter().map(|d| {
                let command = match granted {
                    payload::Granted::Awards | payload::Granted::FreeRoundsAwards => {
                        WalletCommand::ExpireBonus {
                            bonus_id: d.bonus_id,
                            now,
                        }
                    }
                    payload::Granted::FreeRounds => WalletCommand::ExpireFreeRounds {
                        grant_id: d.bonus_id,
                        now,
                    },
                };
                (d.wallet_id, d.expires_at, command)
            }));
        }
        // Oldest first over both kinds, so the next sweep starts where this one stopped.
        due.sort_by_key(|(_, expires_at, _)| *expires_at);
        due.truncate(SWEEP_BATCH_MAX as usize);
        Ok(self
            .expire(now, due.into_iter(), "bonuses_expired_total")
            .await)
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
        let due = due.into_iter().map(|d| {
            let command = WalletCommand::Expire {
                reservation_id: d.reservation_id,
                now,
            };
            (d.wallet_id, d.expires_at, command)
        });
        Ok(self.expire(now, due, "reservations_expired_total").await)
    }

    /// Issues each due `(wallet, expires_at, command)` that is past at `now`, oldest
    /// first, counting the accepted ones in `counter`; a refusal (closed or ended
    /// meanwhile, or expired by another instance) is skipped. Returns what it did and
    /// where the next sweep starts: at the first that failed, so none is passed over.
    async fn expire(
        &self,
        now: DateTime<Utc>,
        due: impl ExactSizeIterator<Item = (WalletId, DateTime<Utc>, WalletCommand)>,
        counter: &'static str,
    ) -> (SweepReport, DateTime<Utc>) {
        let full = due.len() as i64 == SWEEP_BATCH_MAX;
        let mut report = SweepReport::default();
        let mut next = now;
        let mut last = now;
        for (wallet_id, expires_at, command) in due {
            last = expires_at;
            if expires_at > now {
                continue;
            }
            let what = command.name();
            match self.store.execute(wallet_id, command).await {
                Ok(_) => {
                    report.expired += 1;
                    metrics::counter!(counter).increment(1);
                }
                Err(ExecuteError::Refused { .. }) => report.skipped += 1,
                Err(e) => {
                    tracing::warn!(error = %e, %wallet_id, command = what, "expiry failed");
                    next = expires_at;
                    break;
                }
            }
        }
        if full {
            next = next.min(last);
        }
        // Text order of expires_at is exact to the second only: look a little back.
        (report, next - chrono::Duration::seconds(2))
    }
}
