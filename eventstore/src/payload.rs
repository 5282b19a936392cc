//! The log's payloads: the one place where a stored row becomes a [`WalletEvent`], and the
//! one module whose SQL looks inside a payload.
//!
//! Every reader of the log decodes through [`decode`] (or [`LoggedEvent::decode`]): the
//! batched path's loads, the projections, and the replay tool's fold and audit. So a new
//! event version is upcast here, once, and no reader has its own idea of what a row
//! holds. (The straightforward path loads through postgres-es, which deserialises the
//! payload itself: an upcast must be registered with cqrs-es there too; see docs/0009.)
//!
//! The payload's JSON is serde's external tagging of [`WalletEvent`],
//! `{"FundsReserved": {...}}`; the queries below, and migration 0003's index on
//! `payload -> 'FundsReserved' ->> 'expires_at'` that serves [`due_reservations`], depend
//! on it.

use chrono::{DateTime, Utc};
use domain::{GameId, ReservationId, RoundId, WalletEvent, WalletId};
use serde_json::value::RawValue;
use sqlx::types::Json;
use sqlx::{PgPool, Row};

use crate::log::{unavailable, LoggedEvent};
use crate::store::StoreError;
use crate::WALLET_AGGREGATE_TYPE;

/// A jsonb column read as its text, for [`decode`] (no `serde_json::Value` built).
pub(crate) type StoredJson = Json<Box<RawValue>>;

/// Why a stored row is not a wallet event this build can read.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// Written by a newer build, or an old shape with no upcaster here.
    #[error("unknown event version {version:?}")]
    UnknownVersion { version: String },
    #[error("payload is not a wallet event: {0}")]
    NotAnEvent(String),
    #[error("row says {row:?}, payload is {payload}")]
    TypeMismatch { row: String, payload: &'static str },
}

/// Decodes a stored event from its row's `event_type`, `event_version` and `payload` (its
/// JSON text): checks the version (upcasting an older one, when there is one), parses the
/// payload, and checks that it is of the row's type.
pub fn decode(
    event_type: &str,
    event_version: &str,
    payload: &str,
) -> Result<WalletEvent, DecodeError> {
    if event_version != domain::wallet::EVENT_VERSION {
        return Err(DecodeError::UnknownVersion {
            version: event_version.to_string(),
        });
    }
    let event: WalletEvent =
        serde_json::from_str(payload).map_err(|e| DecodeError::NotAnEvent(e.to_string()))?;
    if event.name() != event_type {
        return Err(DecodeError::TypeMismatch {
            row: event_type.to_string(),
            payload: event.name(),
        });
    }
    Ok(event)
}

impl LoggedEvent {
    /// The event this row holds: [`decode`] of its type, version and payload.
    pub fn decode(&self) -> Result<WalletEvent, DecodeError> {
        decode(&self.event_type, &self.event_version, self.payload.get())
    }
}

/// An open reservation the expiry sweep may expire: not settled, refunded, expired or
/// lost with its round.
#[derive(Debug, Clone, PartialEq)]
pub struct DueReservation {
    pub wallet_id: WalletId,
    pub reservation_id: ReservationId,
    pub expires_at: DateTime<Utc>,
}

/// What the bonus-expiry sweep expires: bonus awards, free-rounds grants, and the awards
/// that free-rounds winnings became (which run `domain::wallet::free_rounds::AWARD_DAYS`
/// past their grant's `expires_at`: found by the grant's).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Granted {
    Awards,
    FreeRounds,
    FreeRoundsAwards,
}

impl Granted {
    /// The grant's event, where its `expires_at` and its id are in it, the list of a
    /// later event's bonus moves that ends it and the id's key there, and how long after
    /// the grant's `expires_at` it expires.
    fn paths(
        self,
    ) -> (
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        &'static str,
        chrono::Duration,
    ) {
        let free = (
            "FreeRoundsGranted",
            "payload -> 'FreeRoundsGranted' ->> 'expires_at'",
            "grant_id",
        );
        match self {
            Granted::Awards => (
                "BonusGranted",
                "payload -> 'BonusGranted' -> 'terms' ->> 'expires_at'",
                "bonus_id",
                "ended",
                "bonus_id",
                chrono::Duration::zero(),
            ),
            Granted::FreeRounds => (
                free.0,
                free.1,
                free.2,
                "free_rounds_ended",
                "grant_id",
                chrono::Duration::zero(),
            ),
            Granted::FreeRoundsAwards => (
                free.0,
                free.1,
                free.2,
                "ended",
                "bonus_id",
                chrono::Duration::days(domain::wallet::free_rounds::AWARD_DAYS),
            ),
        }
    }
}

/// An award or free-rounds grant the expiry sweep may expire (it may have ended
/// meanwhile: the wallet then refuses the expiry).
#[derive(Debug, Clone, PartialEq)]
pub struct DueBonus {
    pub wallet_id: WalletId,
    pub bonus_id: domain::BonusId,
    pub expires_at: DateTime<Utc>,
}

/// Awards (or free-rounds grants) granted with an `expires_at` after `since` and before
/// `until`, compared to the second (the indexes of migrations 0010 and 0011 hold RFC 3339
/// text), oldest first, at most `limit`, that no later event of their wallet ended (one
/// ends in some event's `bonus.ended`, or `bonus.free_rounds_ended`). One that ends
/// between this query and its expiry is refused by the wallet.
pub async fn due_bonuses(
    pool: &PgPool,
    granted: Granted,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueBonus>, StoreError> {
    let (event, expires, id, ended, ended_key, after) = granted.paths();
    let lower = (since - after).format("%Y-%m-%dT%H:%M:%S").to_string();
    let upper = (until - after).format("%Y-%m-%dT%H:%M:%S").to_string();
    let expires_g = format!("g.{expires}");
    let query = format!(
        "SELECT g.aggregate_id, g.payload -> '{event}' ->> '{id}', {expires_g}
           FROM events g
          WHERE g.event_type = '{event}'
            AND {expires_g} > $1
            AND {expires_g} < $2
            AND NOT EXISTS (
                SELECT 1 FROM events e
                 WHERE e.aggregate_type = g.aggregate_type
                   AND e.aggregate_id = g.aggregate_id
                   AND e.sequence > g.sequence
                   AND e.payload -> e.event_type -> 'bonus' -> '{ended}' @> jsonb_build_array(
                       jsonb_build_object('{ended_key}', g.payload -> '{event}' -> '{id}')))
          ORDER BY 3
          LIMIT $3"
    );
    let rows: Vec<(String, String, String)> = sqlx::query_as(&query)
        .bind(lower)
        .bind(upper)
        .bind(limit)
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    rows.into_iter()
        .map(|(wallet, id, expires)| {
            Ok(DueBonus {
                wallet_id: wallet
                    .parse()
                    .map_err(|e| corrupt(format!("wallet id {wallet:?}: {e}")))?,
                bonus_id: domain::BonusId::try_from(id).map_err(|e| corrupt(e.to_string()))?,
                expires_at: expires
                    .parse::<DateTime<Utc>>()
                    .map_err(|e| corrupt(format!("expires_at {expires:?}: {e}")))?
                    + after,
            })
        })
        .collect()
}

/// Open reservations whose `expires_at` lies after `since` and before `until`, compared
/// to the second (the index holds RFC 3339 text), oldest first, at most `limit`.
pub async fn due_reservations(
    pool: &PgPool,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueReservation>, StoreError> {
    let lower = since.format("%Y-%m-%dT%H:%M:%S").to_string();
    let upper = until.format("%Y-%m-%dT%H:%M:%S").to_string();
    let rows: Vec<(String, String, String)> = sqlx::query_as(
        "SELECT r.aggregate_id,
                r.payload -> 'FundsReserved' ->> 'reservation_id',
                r.payload -> 'FundsReserved' ->> 'expires_at'
           FROM events r
          WHERE r.event_type = 'FundsReserved'
            AND r.payload -> 'FundsReserved' ->> 'expires_at' > $1
            AND r.payload -> 'FundsReserved' ->> 'expires_at' < $2
            AND NOT EXISTS (
                SELECT 1 FROM events c
                 WHERE c.aggregate_type = r.aggregate_type
                   AND c.aggregate_id = r.aggregate_id
                   AND c.sequence > r.sequence
                   AND ((c.event_type = ANY($4)
                         AND c.payload -> c.event_type ->> 'reservation_id'
                             = r.payload -> 'FundsReserved' ->> 'reservation_id')
                     OR (c.event_type = ANY($5)
                         AND c.payload -> c.event_type -> 'lost' @> jsonb_build_array(
                             jsonb_build_object('reservation_id',
                                 r.payload -> 'FundsReserved' -> 'reservation_id')))))
          ORDER BY 3
          LIMIT $3",
    )
    .bind(lower)
    .bind(upper)
    .bind(limit)
    .bind(&WalletEvent::CLOSING[..])
    .bind(&WalletEvent::LOSING[..])
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.into_iter()
        .map(|(wallet, rid, expires)| {
            Ok(DueReservation {
                wallet_id: wallet
                    .parse()
                    .map_err(|e| corrupt(format!("wallet id {wallet:?}: {e}")))?,
                // As stored: an id accepted under an older rule stays readable.
                reservation_id: ReservationId::try_from(rid).map_err(|e| corrupt(e.to_string()))?,
                expires_at: expires
                    .parse()
                    .map_err(|e| corrupt(format!("expires_at {expires:?}: {e}")))?,
            })
        })
        .collect()
}

/// The game and round of the bet that reserved `reservation_id` on `wallet_id`, from its
/// `FundsReserved` event; `None` if the log never opened that reservation.
pub async fn reservation_origin(
    pool: &PgPool,
    wallet_id: WalletId,
    reservation_id: &ReservationId,
) -> Result<Option<(GameId, RoundId)>, StoreError> {
    let row: Option<(Option<String>, Option<String>)> = sqlx::query_as(
        "SELECT payload -> 'FundsReserved' ->> 'game_id', payload -> 'FundsReserved' ->> 'round_id'
           FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND event_type = 'FundsReserved'
            AND payload -> 'FundsReserved' ->> 'reservation_id' = $3
          LIMIT 1",
    )
    .bind(WALLET_AGGREGATE_TYPE)
    .bind(wallet_id.to_string())
    .bind(reservation_id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?;
    let Some((game, round)) = row else {
        return Ok(None);
    };
    let missing = |what: &str| corrupt(format!("a FundsReserved without {what}"));
    let game = GameId::try_from(game.ok_or_else(|| missing("game_id"))?)
        .map_err(|e| corrupt(e.to_string()))?;
    let round = RoundId::try_from(round.ok_or_else(|| missing("round_id"))?)
        .map_err(|e| corrupt(e.to_string()))?;
    Ok(Some((game, round)))
}

/// The closed reservations among `asked` (wallet, reservation id, the wallet's sequence
/// as its deciding state knows it), as the log had them at that sequence: the bet that
/// placed each one, closed in the state its closing left it in. Two index lookups each
/// (the bet by its transaction id, which is its reservation id; the event that returned
/// its stake, by migration 0007's `events_reservation_closed`), whatever the wallet's
/// history. A reservation the log did not hold by then is left out. Ask only of reservations the deciding state
/// does not hold: a compacted state holds every open one, so one placed by that sequence
/// and not returned was settled.
pub async fn closed_reservations(
    pool: &PgPool,
    asked: &[(WalletId, &ReservationId, u64)],
) -> Result<Vec<(WalletId, ReservationId, domain::Reservation)>, StoreError> {
    let returning = WalletEvent::RETURNING
        .iter()
        .map(|(name, _)| format!("'{name}'"))
        .collect::<Vec<_>>()
        .join(", ");
    // LATERAL, so that each one is an index lookup under the generic plan too (see
    // round_states); the event types are literals, so the planner can use the partial
    // index. 0.14 ms for one reservation of a 100,000-event wallet under
    // `plan_cache_mode = force_generic_plan` (EXPLAIN ANALYZE).
    let rows: Vec<(String, String, String, StoredJson, i64, Option<String>)> =
        sqlx::query_as(&format!(
            "SELECT m.id, o.event_type, o.event_version, o.payload, o.sequence, r.event_type
               FROM UNNEST($2::text[], $3::text[], $4::bigint[]) AS m(id, rid, upto)
               CROSS JOIN LATERAL (
                    SELECT e.event_type, e.event_version, e.payload, e.sequence FROM events e
                     WHERE e.aggregate_type = $1 AND e.aggregate_id = m.id
                       AND e.metadata ? 'transaction_id'
                       AND e.metadata ->> 'transaction_id' = m.rid
                       AND e.sequence <= m.upto
                     LIMIT 1) o
               LEFT JOIN LATERAL (
                    SELECT c.event_type FROM events c
                     WHERE c.aggregate_type = $1 AND c.aggregate_id = m.id
                       AND c.event_type IN ({returning})
                       AND c.payload -> c.event_type ->> 'reservation_id' = m.rid
                       AND c.sequence <= m.upto
                     LIMIT 1) r ON true"
        ))
        .bind(WALLET_AGGREGATE_TYPE)
        .bind(
            asked
                .iter()
                .map(|(w, _, _)| w.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(asked.iter().map(|(_, r, _)| r.as_str()).collect::<Vec<_>>())
        .bind(asked.iter().map(|(_, _, s)| *s as i64).collect::<Vec<_>>())
        .fetch_all(pool)
        .await
        .map_err(unavailable)?;
    let mut closed = Vec::with_capacity(rows.len());
    for (wallet, event_type, version, payload, sequence, returned) in rows {
        let wallet_id: WalletId = wallet
            .parse()
            .map_err(|e| corrupt(format!("wallet id {wallet:?}: {e}")))?;
        let event = decode(&event_type, &version, payload.get())
            .map_err(|e| corrupt(format!("{wallet} #{sequence}: {e}")))?;
        // The id may be another command's transaction id: then no bet was placed under it.
        let Some((id, mut bet)) = event.placed_bet() else {
            continue;
        };
        if let Some(returned) = returned {
            let (_, state) = WalletEvent::RETURNING
                .iter()
                .find(|(name, _)| *name == returned)
                .ok_or_else(|| corrupt(format!("{returned} returns no stake")))?;
            bet.state = *state;
        } else {
            // Placed, not returned, and (the caller asks only of those) not open: settled.
            bet.state = domain::ReservationState::Settled;
        }
        closed.push((wallet_id, id, bet));
    }
    Ok(closed)
}

/// A round as the log knows it: its game (as its opening event named it) and whether an
/// event closed it.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundState {
    pub wallet_id: WalletId,
    pub round_id: RoundId,
    pub game_id: Option<GameId>,
    pub closed: bool,
}

/// The state of each of `rounds` (wallet, round) that the log opened, by the round keys
/// of the events' metadata (migration 0005): two index lookups each, whatever the
/// wallet's history. A round the log never opened is left out.
pub async fn round_states(
    pool: &PgPool,
    rounds: &[(WalletId, &RoundId)],
) -> Result<Vec<RoundState>, StoreError> {
    let rows: Vec<(String, String, Option<String>, bool)> = sqlx::query_as(
        // LATERAL, so that each pair is an index lookup: as a plain join, the generic
        // plan of this prepared statement scanned the whole round index (240 ms on a
        // 73,000-event log; 0.2 ms for 50 pairs this way, EXPLAIN ANALYZE).
        "SELECT m.id, m.round, o.game,
                EXISTS (SELECT 1 FROM events c
                         WHERE c.aggregate_type = $1 AND c.aggregate_id = m.id
                           AND c.metadata ? 'round_closed'
                           AND c.metadata ->> 'round_closed' = m.round)
           FROM UNNEST($2::text[], $3::text[]) AS m(id, round)
           CROSS JOIN LATERAL (
                SELECT e.payload -> e.event_type ->> 'game_id' AS game FROM events e
                 WHERE e.aggregate_type = $1 AND e.aggregate_id = m.id
                   AND e.metadata ? 'round_opened'
                   AND e.metadata ->> 'round_opened' = m.round
                 LIMIT 1) o",
    )
    .bind(WALLET_AGGREGATE_TYPE)
    .bind(
        rounds
            .iter()
            .map(|(w, _)| w.to_string())
            .collect::<Vec<_>>(),
    )
    .bind(rounds.iter().map(|(_, r)| r.as_str()).collect::<Vec<_>>())
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.into_iter()
        .map(|(wallet, round, game, closed)| {
            Ok(RoundState {
                wallet_id: wallet
                    .parse()
                    .map_err(|e| corrupt(format!("wallet id {wallet:?}: {e}")))?,
                round_id: RoundId::try_from(round).map_err(|e| corrupt(e.to_string()))?,
                game_id: game
                    .map(|g| GameId::try_from(g).map_err(|e| corrupt(e.to_string())))
                    .transpose()?,
                closed,
            })
        })
        .collect()
}

/// Events of one round on `wallet_id`, in order, at most `limit`: those that name the
/// round, and the settles, refunds and expiries of its bets (which name only the bet).
/// Each part reads one index (the event that opened the round by `events_round_opened`,
/// the others that name it by `events_round`, the closings by
/// `events_reservation_closed`), so an old round of a long history costs what a new one
/// does.
pub async fn round_events(
    pool: &PgPool,
    wallet_id: WalletId,
    round_id: &RoundId,
    limit: u32,
) -> Result<Vec<LoggedEvent>, StoreError> {
    // The round's events: its opener, and those after it (the two partial indexes'
    // predicates are written out so that a generic plan can use them).
    const NAMED: &str = "(SELECT {COLUMNS} FROM events e
            WHERE e.aggregate_type = $1 AND e.aggregate_id = $2
              AND e.metadata ? 'round_opened' AND e.metadata ->> 'round_opened' = $3
           UNION ALL
           SELECT {COLUMNS} FROM events e
            WHERE e.aggregate_type = $1 AND e.aggregate_id = $2
              AND e.payload -> e.event_type ->> 'round_id' = $3
              AND NOT (e.metadata ? 'round_opened'))";
    let named = NAMED.replace("{COLUMNS}", crate::log::COLUMNS);
    let rows = sqlx::query(&format!(
        "WITH named AS {named}
         SELECT * FROM (
           SELECT * FROM named
           UNION ALL
           SELECT {COLUMNS} FROM events e
            WHERE e.aggregate_type = $1 AND e.aggregate_id = $2
              AND e.event_type IN ('ReservationSettled', 'ReservationRefunded', 'ReservationExpired')
              AND e.payload -> e.event_type ->> 'reservation_id' IN (
                  SELECT n.payload -> 'FundsReserved' ->> 'reservation_id' FROM named n
                   WHERE n.event_type = 'FundsReserved')
         ) r ORDER BY sequence LIMIT $4",
        COLUMNS = crate::log::COLUMNS
    ))
    .bind(WALLET_AGGREGATE_TYPE)
    .bind(wallet_id.to_string())
    .bind(round_id.as_str())
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.iter().map(crate::log::from_row).collect()
}

/// One row of a wallet's history page: the event, and for an event that names only its
/// bet (a settle, refund or expiry), the round and game of that bet.
pub struct HistoryRow {
    pub event: LoggedEvent,
    pub bet_round: Option<String>,
    pub bet_game: Option<String>,
}

/// A page of `wallet_id`'s history, newest first: events with sequence below `before`,
/// of the `kinds` named (all when empty), recorded in `[from, to)`, of `game_id` (its own,
/// or its bet's), at most `limit`. It walks the primary key backwards from `before`, so a
/// page costs the same at the head of a long history as deep in it; each settle, refund
/// or expiry looks its bet up backwards from itself (a bet settles soon after it is
/// placed). A filter by game reads past the events of other games.
pub async fn history_page(
    pool: &PgPool,
    wallet_id: WalletId,
    before: u64,
    filter: &crate::history::Filter,
    limit: u32,
) -> Result<Vec<HistoryRow>, StoreError> {
    let rows = sqlx::query(
        "SELECT e.aggregate_id, e.sequence, e.event_type, e.event_version, e.payload,
                e.metadata, e.global_position, (e.tx_id::text)::bigint AS tx_id,
                e.recorded_at, b.bet_round, b.bet_game
           FROM events e
           LEFT JOIN LATERAL (
             SELECT r.payload -> 'FundsReserved' ->> 'round_id' AS bet_round,
                    r.payload -> 'FundsReserved' ->> 'game_id' AS bet_game
               FROM events r
              WHERE e.event_type IN ('ReservationSettled', 'ReservationRefunded',
                                     'ReservationExpired')
                AND r.aggregate_type = e.aggregate_type AND r.aggregate_id = e.aggregate_id
                AND r.sequence < e.sequence AND r.event_type = 'FundsReserved'
                AND r.payload -> 'FundsReserved' ->> 'reservation_id'
                    = e.payload -> e.event_type ->> 'reservation_id'
              ORDER BY r.sequence DESC LIMIT 1) b ON true
          WHERE e.aggregate_type = $1 AND e.aggregate_id = $2 AND e.sequence < $3
            AND (cardinality($4::text[]) = 0 OR e.event_type = ANY($4))
            AND ($5::timestamptz IS NULL OR e.recorded_at >= $5)
            AND ($6::timestamptz IS NULL OR e.recorded_at < $6)
            AND ($7::text IS NULL
                 OR coalesce(e.payload -> e.event_type ->> 'game_id', b.bet_game) = $7)
          ORDER BY e.sequence DESC LIMIT $8",
    )
    .bind(WALLET_AGGREGATE_TYPE)
    .bind(wallet_id.to_string())
    .bind(i64::try_from(before).unwrap_or(i64::MAX))
    .bind(&filter.kinds)
    .bind(filter.from)
    .bind(filter.to)
    .bind(filter.game_id.as_ref().map(|g| g.as_str()))
    .bind(i64::from(limit))
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.iter()
        .map(|row| {
            Ok(HistoryRow {
                event: crate::log::from_row(row)?,
                bet_round: row.get("bet_round"),
                bet_game: row.get("bet_game"),
            })
        })
        .collect()
}

/// The brand `wallet_id` was opened in (its `WalletOpened`, sequence 1); `None` when it
/// was never opened. A wallet's brand never changes, so a caller may keep the answer.
pub async fn wallet_brand(
    pool: &PgPool,
    wallet_id: WalletId,
) -> Result<Option<domain::BrandId>, StoreError> {
    let row: Option<(Option<String>,)> = sqlx::query_as(
        "SELECT payload -> 'WalletOpened' ->> 'brand_id' FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2 AND sequence = 1",
    )
    .bind(WALLET_AGGREGATE_TYPE)
    .bind(wallet_id.to_string())
    .fetch_optional(pool)
    .await
    .map_err(unavailable)?;
    row.map(|(brand,)| match brand {
        None => Ok(domain::BrandId::default_brand()),
        Some(b) => {
            domain::BrandId::new(b).map_err(|e| corrupt(format!("wallet {wallet_id}'s brand: {e}")))
        }
    })
    .transpose()
}

/// The event kinds an operator's action records, each naming its client (`by`): what the
/// operator audit lists (migration 0012's index `events_operator_actions`).
pub const OPERATOR_ACTIONS: [&str; 6] = [
    "FundsAdjusted",
    "AccountLocked",
    "AccountUnlocked",
    "BonusGranted",
    "BonusForfeited",
    "FreeRoundsGranted",
];

/// Operators' actions across all wallets, newest first: log positions below `before`, by
/// `actor` when given, recorded in `[from, to)`, on wallets of `brands` when given (a
/// wallet's brand is its opening event's), at most `limit`. Reads the partial index
/// `events_operator_actions` backwards, so a page costs the same however long the log.
pub async fn operator_actions(
    pool: &PgPool,
    before: i64,
    actor: Option<&str>,
    (from, to): (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    brands: Option<&[String]>,
    limit: u32,
) -> Result<Vec<LoggedEvent>, StoreError> {
    // The index's predicate is written out so that a generic plan can use it.
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM events e
          WHERE event_type IN ('FundsAdjusted', 'AccountLocked', 'AccountUnlocked',
                               'BonusGranted', 'BonusForfeited', 'FreeRoundsGranted')
            AND (payload -> event_type) ? 'by'
            AND global_position < $1
            AND ($2::text IS NULL OR payload -> event_type ->> 'by' = $2)
            AND ($3::timestamptz IS NULL OR recorded_at >= $3)
            AND ($4::timestamptz IS NULL OR recorded_at < $4)
            AND ($6::text[] IS NULL OR coalesce(
                  (SELECT o.payload -> 'WalletOpened' ->> 'brand_id' FROM events o
                    WHERE o.aggregate_type = e.aggregate_type
                      AND o.aggregate_id = e.aggregate_id AND o.sequence = 1),
                  'default') = ANY($6))
          ORDER BY global_position DESC LIMIT $5",
        COLUMNS = crate::log::COLUMNS
    ))
    .bind(before)
    .bind(actor)
    .bind(from)
    .bind(to)
    .bind(i64::from(limit))
    .bind(brands)
    .fetch_all(pool)
    .await
    .map_err(unavailable)?;
    rows.iter().map(crate::log::from_row).collect()
}

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decode_checks_version_shape_and_type() {
        let payload =
            json!({"FundsDeposited": {"transaction_id": "t-1", "amount": "1.00"}}).to_string();
        let event = decode("FundsDeposited", "1.0", &payload).unwrap();
        assert_eq!(event.name(), "FundsDeposited");
        assert_eq!(
            decode("FundsDeposited", "2.0", &payload),
            Err(DecodeError::UnknownVersion {
                version: "2.0".into()
            })
        );
        assert!(matches!(
            decode("FundsWithdrawn", "1.0", &payload),
            Err(DecodeError::TypeMismatch { .. })
        ));
        assert!(matches!(
            decode("FundsDeposited", "1.0", r#"{"FundsDeposited": {}}"#),
            Err(DecodeError::NotAnEvent(_))
        ));
    }
}
