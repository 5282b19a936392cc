//! A wallet's history as its statement shows it (`GET /v1/wallets/{id}/history`): newest
//! first, each event with what it did to cash and to bonus money, the balance after it,
//! its round, game, provider and actor; filtered, and paged by an opaque keyset cursor.
//!
//! A page is "the events older than the last one shown", so the cursor stays correct
//! while new events arrive: they have larger sequences and never shift a page. Every page
//! walks the log's primary key backwards from the cursor (see
//! [`crate::payload::history_page`]), so a page deep in a long history costs what the
//! first one does; a filter by round reads that round alone (the round view's indexes).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use domain::{Balance, GameId, Part, RoundId, TransactionId, WalletEvent, WalletId};
use rust_decimal::Decimal;
use sqlx::PgPool;

use crate::idempotency::{balance_after, KEY_TRANSACTION_ID};
use crate::log::LoggedEvent;
use crate::store::StoreError;

/// Most entries one page holds.
pub const LIMIT_MAX: u32 = 1_000;
/// Entries a page holds when the caller names no `limit`.
pub const LIMIT_DEFAULT: u32 = 100;
/// Most events of one round a filter by round reads.
const ROUND_EVENTS_MAX: u32 = 100_000;

/// Which events a history shows. Empty `kinds`: every kind.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Filter {
    /// Event names ([`WalletEvent::NAMES`]).
    pub kinds: Vec<String>,
    pub round_id: Option<RoundId>,
    pub game_id: Option<GameId>,
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
}

impl Filter {
    /// Reads a comma-separated list of event names; an unknown one is an error that
    /// lists the known ones.
    pub fn parse_kinds(list: &str) -> Result<Vec<String>, String> {
        list.split(',')
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| {
                WalletEvent::NAMES
                    .contains(&k)
                    .then(|| k.to_string())
                    .ok_or_else(|| {
                        format!(
                            "kind {k:?} is not an event kind; the kinds are {}",
                            WalletEvent::NAMES.join(", ")
                        )
                    })
            })
            .collect()
    }

    /// Whether `entry` passes the filters other than the round (for a round read whole).
    fn admits(&self, entry: &Entry) -> bool {
        (self.kinds.is_empty() || self.kinds.iter().any(|k| k == entry.kind))
            && self.from.is_none_or(|from| entry.time >= from)
            && self.to.is_none_or(|to| entry.time < to)
            && self
                .game_id
                .as_ref()
                .is_none_or(|g| entry.game_id.as_deref() == Some(g.as_str()))
    }
}

/// Where a page starts: just below this key (a wallet's sequence for a history, a log
/// position for the operator audit). Callers see it as an opaque string.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor(u64);

impl Cursor {
    const PREFIX: &'static str = "h1.";

    /// The first page: the newest events.
    pub const START: Cursor = Cursor(i64::MAX as u64);

    /// The page of the events older than `sequence`.
    pub fn before(sequence: u64) -> Cursor {
        Cursor(sequence.min(i64::MAX as u64))
    }

    /// The cursor as the answer's `next_cursor` writes it.
    pub fn encode(self) -> String {
        format!("{}{:x}", Self::PREFIX, self.0)
    }

    /// Reads a cursor an earlier answer gave.
    pub fn parse(text: &str) -> Result<Cursor, String> {
        text.strip_prefix(Self::PREFIX)
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
            .filter(|s| *s >= 1 && *s <= i64::MAX as u64)
            .map(Cursor)
            .ok_or_else(|| {
                "cursor is not one this API gave: pass an answer's next_cursor as it is".into()
            })
    }
}

/// One event as the history shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub sequence: u64,
    pub time: DateTime<Utc>,
    /// The event's name ([`WalletEvent::name`]).
    pub kind: &'static str,
    /// The caller's transaction id it answers, as stored (a provider's is scoped).
    pub transaction_id: Option<String>,
    /// What it did to the cash the player may spend (`available`), signed.
    pub cash: Decimal,
    /// What it did to the active award's balance (`bonus`), signed.
    pub bonus: Decimal,
    /// The balance after it, as its answer gave it (`None` for an event that recorded
    /// none).
    pub balance: Option<Balance>,
    /// Its round: the one it names, or its bet's.
    pub round_id: Option<String>,
    /// Its game: the one it names, or its bet's.
    pub game_id: Option<String>,
    /// The provider whose round or transaction it is; `None` for a native caller's.
    pub provider: Option<String>,
    /// The API client an operator's or a protection action names ([`WalletEvent::actor`]).
    pub actor: Option<String>,
}

impl Entry {
    /// The entry for `event`; `bet` is the round and game of the bet it settles, refunds
    /// or expires, when it names only the bet.
    pub fn of(
        event: &LoggedEvent,
        bet: (Option<String>, Option<String>),
    ) -> Result<Entry, StoreError> {
        let decoded = event.decode().map_err(|e| {
            StoreError::Corrupt(
                format!("event {} of {}: {e}", event.sequence, event.wallet_id).into(),
            )
        })?;
        let recorded = event.recorded().map_err(|e| {
            StoreError::Corrupt(
                format!("event {} of {}: {e}", event.sequence, event.wallet_id).into(),
            )
        })?;
        let balance = balance_after(&recorded).ok();
        let (mut cash, mut bonus) = (Decimal::ZERO, Decimal::ZERO);
        for posting in decoded.postings() {
            match posting.part {
                Part::Available => cash += posting.amount,
                Part::Bonus => bonus += posting.amount,
                Part::Reserved | Part::BonusReserved => {}
            }
        }
        if let Some(b) = &balance {
            cash.rescale(b.currency.scale());
            bonus.rescale(b.currency.scale());
        }
        let transaction_id = recorded.get(KEY_TRANSACTION_ID).map(str::to_string);
        let round_id = decoded.round_id().map(|r| r.to_string()).or(bet.0);
        let provider = round_id
            .clone()
            .and_then(|r| RoundId::try_from(r).ok())
            .and_then(|r| r.provider().map(str::to_string))
            .or_else(|| {
                let t = TransactionId::try_from(transaction_id.clone()?).ok()?;
                t.scope().map(str::to_string)
            });
        Ok(Entry {
            sequence: event.sequence,
            time: event.recorded_at,
            kind: decoded.name(),
            transaction_id,
            cash,
            bonus,
            balance,
            game_id: decoded.game_id().map(|g| g.to_string()).or(bet.1),
            round_id,
            provider,
            actor: decoded.actor().map(|a| a.to_string()),
        })
    }
}

/// One page of a history, and where the next one starts (`None`: this is the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    pub entries: Vec<Entry>,
    pub next: Option<Cursor>,
}

/// The page of `wallet_id`'s history that starts at `cursor`, at most `limit` entries
/// (capped at [`LIMIT_MAX`]) that pass `filter`.
pub async fn page(
    pool: &PgPool,
    wallet_id: WalletId,
    filter: &Filter,
    cursor: Cursor,
    limit: u32,
) -> Result<Page, StoreError> {
    let limit = limit.clamp(1, LIMIT_MAX);
    let mut entries = match &filter.round_id {
        None => crate::payload::history_page(pool, wallet_id, cursor.0, filter, limit + 1)
            .await?
            .into_iter()
            .map(|row| Entry::of(&row.event, (row.bet_round, row.bet_game)))
            .collect::<Result<Vec<_>, _>>()?,
        Some(round) => round_page(pool, wallet_id, round, filter, cursor, limit + 1).await?,
    };
    let next = (entries.len() > limit as usize).then(|| {
        entries.truncate(limit as usize);
        Cursor(entries.last().map_or(0, |e| e.sequence))
    });
    Ok(Page { entries, next })
}

/// A page of one round's events: the round is read whole (a round is a handful of
/// events), newest first, and filtered here.
async fn round_page(
    pool: &PgPool,
    wallet_id: WalletId,
    round: &RoundId,
    filter: &Filter,
    cursor: Cursor,
    limit: u32,
) -> Result<Vec<Entry>, StoreError> {
    let events = crate::payload::round_events(pool, wallet_id, round, ROUND_EVENTS_MAX).await?;
    // The round's bets, for the events that name only their bet; and the bet each event
    // names, decoded once here.
    let mut games: HashMap<String, String> = HashMap::new();
    let mut bets: Vec<Option<String>> = Vec::with_capacity(events.len());
    for event in &events {
        let decoded = event.decode().ok();
        if let Some(WalletEvent::FundsReserved {
            reservation_id,
            game_id,
            ..
        }) = &decoded
        {
            games.insert(reservation_id.to_string(), game_id.to_string());
        }
        bets.push(decoded.and_then(|e| e.reservation_id().map(|r| r.to_string())));
    }
    let mut entries = Vec::new();
    for (event, bet) in events.iter().zip(&bets).rev() {
        if event.sequence >= cursor.0 {
            continue;
        }
        let bet_game = bet.as_ref().and_then(|r| games.get(r).cloned());
        let entry = Entry::of(event, (Some(round.to_string()), bet_game))?;
        if filter.admits(&entry) {
            entries.push(entry);
            if entries.len() == limit as usize {
                break;
            }
        }
    }
    Ok(entries)
}

/// One operator's action, as the operator audit (`GET /v1/audit`) lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct Action {
    /// Its log position: the audit's order and cursor.
    pub position: i64,
    pub time: DateTime<Utc>,
    pub wallet_id: WalletId,
    pub sequence: u64,
    /// The event's name (`FundsAdjusted`, `AccountLocked`, ...).
    pub kind: &'static str,
    /// The operator's API client.
    pub actor: String,
    /// The reason it states (an adjustment, a lock or unlock, a forfeit).
    pub reason: Option<String>,
    pub transaction_id: Option<String>,
    /// The amount it names (an adjustment's, signed; a grant's), at its scale.
    pub amount: Option<Decimal>,
}

/// A page of the operator audit, and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Actions {
    pub actions: Vec<Action>,
    pub next: Option<Cursor>,
}

/// Operators' actions across all wallets, newest first, from `cursor`: by `actor` when
/// given, recorded in `[from, to)`, on wallets of `brands` when given, at most `limit`
/// (capped at [`LIMIT_MAX`]). The order
/// is the log position's: an action whose transaction commits after a later position was
/// read appears on a fresh first page, not behind a cursor already past it.
pub async fn operator_actions(
    pool: &PgPool,
    actor: Option<&str>,
    window: (Option<DateTime<Utc>>, Option<DateTime<Utc>>),
    brands: Option<&[String]>,
    cursor: Cursor,
    limit: u32,
) -> Result<Actions, StoreError> {
    let limit = limit.clamp(1, LIMIT_MAX);
    let before = i64::try_from(cursor.0).unwrap_or(i64::MAX);
    let mut events =
        crate::payload::operator_actions(pool, before, actor, window, brands, limit + 1).await?;
    let next = (events.len() > limit as usize).then(|| {
        events.truncate(limit as usize);
        Cursor(events.last().map_or(0, |e| e.global_position.max(0) as u64))
    });
    let actions = events
        .iter()
        .map(|event| {
            let decoded = event.decode().map_err(|e| {
                StoreError::Corrupt(
                    format!("event {} of {}: {e}", event.sequence, event.wallet_id).into(),
                )
            })?;
            Ok(Action {
                position: event.global_position,
                time: event.recorded_at,
                wallet_id: event.wallet_id,
                sequence: event.sequence,
                kind: decoded.name(),
                actor: decoded.actor().map(|a| a.to_string()).unwrap_or_default(),
                reason: decoded.stated_reason().map(str::to_string),
                transaction_id: event
                    .recorded()
                    .map_err(|e| StoreError::Corrupt(e.into()))?
                    .get(KEY_TRANSACTION_ID)
                    .map(str::to_string),
                amount: decoded.amounts().0,
            })
        })
        .collect::<Result<Vec<_>, StoreError>>()?;
    Ok(Actions { actions, next })
}

/// Whether `wallet_id` has any event: a history that is empty because of its filters
/// is not a wallet that does not exist.
pub async fn wallet_exists(pool: &PgPool, wallet_id: WalletId) -> Result<bool, StoreError> {
    Ok(!crate::log::wallet_events(pool, wallet_id, 0, 1)
        .await?
        .is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cursor_reads_back_and_a_forged_one_is_refused() {
        let c = Cursor(42);
        assert_eq!(Cursor::parse(&c.encode()), Ok(c));
        for bad in [
            "",
            "42",
            "h1.",
            "h1.zz",
            "h1.0",
            "h2.2a",
            "h1.ffffffffffffffff",
        ] {
            assert!(Cursor::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kinds_are_event_names() {
        assert_eq!(
            Filter::parse_kinds("FundsDeposited, BetSettled"),
            Ok(vec!["FundsDeposited".to_string(), "BetSettled".to_string()])
        );
        let err = Filter::parse_kinds("deposit").unwrap_err();
        assert!(
            err.contains("\"deposit\"") && err.contains("FundsDeposited"),
            "{err}"
        );
    }
}
