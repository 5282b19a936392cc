//! Projecting one logged event into the read models, whoever delivers it: the projection
//! workers (from RabbitMQ) and the replay tool's rebuild (from the log) call the same
//! [`project`]. It applies the event's [`Change`] with the sequence-fenced apply, first
//! filling any gap before it from the log, and looks up the game of a settle whose
//! reservation the read model does not hold. No clock, no randomness, and nothing but
//! Redis and the log behind it.

use eventstore::log::{self, LoggedEvent};
use eventstore::payload;
use sqlx::PgPool;

use crate::apply::{Applier, ApplyOutcome};
use crate::change::{Change, ReservationChange};
use crate::totals::Origin;
use crate::ReadModelError;

/// Why an event was not projected.
#[derive(Debug, thiserror::Error)]
pub enum ProjectError {
    /// The event itself is bad: retrying cannot help.
    #[error("poison message: {0}")]
    Poison(String),
    /// A dependency failed: the same event will project once it is back.
    #[error("dependency unavailable: {0}")]
    Unavailable(String),
}

impl From<ReadModelError> for ProjectError {
    fn from(e: ReadModelError) -> Self {
        match e {
            ReadModelError::Unavailable(e) => ProjectError::Unavailable(e.to_string()),
            ReadModelError::Corrupt(e) => ProjectError::Poison(e),
        }
    }
}

impl From<eventstore::StoreError> for ProjectError {
    fn from(e: eventstore::StoreError) -> Self {
        match e {
            eventstore::StoreError::Unavailable(e) => ProjectError::Unavailable(e.to_string()),
            eventstore::StoreError::Corrupt(e) => ProjectError::Poison(e.to_string()),
        }
    }
}

/// What projecting one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Projected {
    /// [`ApplyOutcome::Applied`] or [`ApplyOutcome::Duplicate`].
    pub outcome: ApplyOutcome,
    /// Events before it applied from the log to fill a gap.
    pub gap_filled: u64,
}

/// Applies one logged event to the read models, filling any gap before it from the log.
pub async fn project(
    pool: &PgPool,
    applier: &Applier,
    event: &LoggedEvent,
) -> Result<Projected, ProjectError> {
    let change = Change::of(event).map_err(|e| ProjectError::Poison(e.to_string()))?;
    match apply_change(pool, applier, &change).await? {
        ApplyOutcome::Gap { last } => {
            let gap_filled = fill_gap(pool, applier, &change, last).await?;
            match apply_change(pool, applier, &change).await? {
                ApplyOutcome::Gap { last } => Err(ProjectError::Poison(format!(
                    "wallet {} still misses events after {last} once filled",
                    change.wallet_id
                ))),
                outcome => Ok(Projected {
                    outcome,
                    gap_filled,
                }),
            }
        }
        outcome => Ok(Projected {
            outcome,
            gap_filled: 0,
        }),
    }
}

async fn apply_change(
    pool: &PgPool,
    applier: &Applier,
    change: &Change,
) -> Result<ApplyOutcome, ProjectError> {
    match applier.apply(change, None).await? {
        ApplyOutcome::UnknownReservation => {
            let origin = origin_of_reservation(pool, change).await?;
            match applier.apply(change, Some(&origin)).await? {
                ApplyOutcome::UnknownReservation => Err(ProjectError::Poison(
                    "apply refused a settle with its game given".into(),
                )),
                outcome => Ok(outcome),
            }
        }
        outcome => Ok(outcome),
    }
}

/// Applies the wallet's events after `last` and before `change` from the log; returns
/// how many were applied.
async fn fill_gap(
    pool: &PgPool,
    applier: &Applier,
    change: &Change,
    mut last: u64,
) -> Result<u64, ProjectError> {
    tracing::debug!(wallet_id = %change.wallet_id, last, next = change.sequence, "filling a gap from the log");
    let mut filled = 0;
    while last + 1 < change.sequence {
        let missing = u32::try_from(change.sequence - last - 1).unwrap_or(u32::MAX);
        let events = log::wallet_events(pool, change.wallet_id, last, missing).await?;
        if events.is_empty() {
            return Err(ProjectError::Poison(format!(
                "wallet {} has no event after {last} in the log but a message at {}",
                change.wallet_id, change.sequence
            )));
        }
        for event in &events {
            let missing = Change::of(event).map_err(|e| ProjectError::Poison(e.to_string()))?;
            match apply_change(pool, applier, &missing).await? {
                ApplyOutcome::Applied => filled += 1,
                ApplyOutcome::Duplicate { .. } => {}
                other => {
                    return Err(ProjectError::Poison(format!(
                        "filling wallet {} at {}: {other:?}",
                        missing.wallet_id, missing.sequence
                    )))
                }
            }
            last = event.sequence;
        }
    }
    Ok(filled)
}

/// The game and provider of the reservation a settle closes, from the reserve event in
/// the log.
async fn origin_of_reservation(pool: &PgPool, change: &Change) -> Result<Origin, ProjectError> {
    let ReservationChange::Close { reservation_id } = &change.reservation else {
        return Err(ProjectError::Poison(
            "a settle that closes no reservation".into(),
        ));
    };
    let (game, round) = payload::reservation_origin(pool, change.wallet_id, reservation_id)
        .await?
        .ok_or_else(|| {
            ProjectError::Poison(format!(
                "wallet {} settles reservation {:?}, which the log never opened",
                change.wallet_id,
                reservation_id.as_str()
            ))
        })?;
    Ok(Origin::of_bet(&game, &round))
}
