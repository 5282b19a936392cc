//! Idempotency kept in the log itself. Every accepted command produces exactly one event;
//! that event's metadata records the caller's transaction id, a digest of the request and
//! the balance right after it. A unique index on (wallet, transaction id) makes the log
//! refuse a second event under one id, and a repeat is answered from the first event.
//! So the records live as long as the log, commit atomically with the event, and hold
//! across restarts and across API instances. See docs/0003-idempotency-in-the-log.md.

use std::borrow::Cow;
use std::collections::HashMap;
use std::str::FromStr;

use domain::{
    Balance, Currency, RoundId, TransactionId, Wallet, WalletCommand, WalletError, WalletEvent,
    WalletId,
};
use rust_decimal::Decimal;
use serde_json::value::RawValue;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row};

use crate::log::LoggedEvent;

use crate::store::{CommandReceipt, ExecuteError, StoreError};

pub const KEY_TRANSACTION_ID: &str = "transaction_id";
pub const KEY_REQUEST_SHA256: &str = "request_sha256";
pub const KEY_COMMAND: &str = "command";
// The balance's parts are recorded under their names (`domain::Part::name`).
pub const KEY_CURRENCY: &str = "currency";
/// The round an event opens, as far as the deciding state knew: unique per wallet in the
/// log (migration 0005), so a round is never opened twice (see `Wallet::round_opened_by`).
pub const KEY_ROUND_OPENED: &str = "round_opened";
/// The round an event closes: indexed (migration 0005), so a round a cache forgot is put
/// back from the log by one lookup (`payload::round_states`).
pub const KEY_ROUND_CLOSED: &str = "round_closed";
/// A protected wallet's limits, exclusion and lock after the event (JSON): what the read
/// model shows, copied as the balance is, so it never counts a limit's use itself.
pub const KEY_PROTECTION: &str = "protection";
/// The part of a bet's stake a bonus award paid, when one did: the `funded` of its answer
/// (the cash part is the rest of the stake the request named).
pub const KEY_FUNDED_BONUS: &str = "funded_bonus";

/// The round keys an accepted event is recorded with (docs/0012).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RoundKeys {
    pub opened: Option<RoundId>,
    pub closed: Option<RoundId>,
}

impl RoundKeys {
    /// The keys of `event`, decided on `state` (before it is applied).
    pub fn of(state: &Wallet, event: &WalletEvent) -> Self {
        RoundKeys {
            opened: state.round_opened_by(event),
            closed: event
                .closes_round()
                .then(|| event.round_id().cloned())
                .flatten(),
        }
    }
}

/// The digest of a command's canonical text (`WalletCommand::fingerprint`).
pub fn request_digest(fingerprint: &str) -> String {
    hex::encode(Sha256::digest(fingerprint.as_bytes()))
}

/// The metadata written with an accepted command's event.
pub fn metadata(
    command: &'static str,
    transaction_id: Option<&TransactionId>,
    request_sha256: &str,
    balance_after: &Balance,
    rounds: &RoundKeys,
    protection_after: Option<&domain::wallet::protection::Protection>,
    funded_bonus: Decimal,
) -> HashMap<String, String> {
    let mut m = HashMap::with_capacity(8);
    if !funded_bonus.is_zero() {
        m.insert(KEY_FUNDED_BONUS.into(), funded_bonus.to_string());
    }
    if let Some(p) = protection_after {
        m.insert(
            KEY_PROTECTION.into(),
            serde_json::to_string(p).expect("protections serialise"),
        );
    }
    if let Some(round) = &rounds.opened {
        m.insert(KEY_ROUND_OPENED.into(), round.to_string());
    }
    if let Some(round) = &rounds.closed {
        m.insert(KEY_ROUND_CLOSED.into(), round.to_string());
    }
    m.insert(KEY_COMMAND.into(), command.into());
    if let Some(id) = transaction_id {
        m.insert(KEY_TRANSACTION_ID.into(), id.to_string());
    }
    m.insert(KEY_REQUEST_SHA256.into(), request_sha256.into());
    for (name, amount) in balance_after.recorded_parts() {
        m.insert(name.into(), amount);
    }
    m.insert(KEY_CURRENCY.into(), balance_after.currency.code().into());
    m
}

/// What the log recorded for a transaction id.
#[derive(Debug, Clone, PartialEq)]
pub struct PriorCommand {
    pub request_sha256: String,
    pub balance_after: Balance,
    pub sequence: u64,
    pub funded_bonus: Decimal,
}

/// Finds the event recorded under `transaction_id` on `wallet_id`, if any.
pub async fn find(
    pool: &PgPool,
    wallet_id: WalletId,
    transaction_id: &TransactionId,
) -> Result<Option<PriorCommand>, StoreError> {
    let row = sqlx::query(
        "SELECT sequence, metadata FROM events
          WHERE aggregate_type = $1 AND aggregate_id = $2
            AND metadata ? 'transaction_id' AND metadata ->> 'transaction_id' = $3",
    )
    .bind(crate::WALLET_AGGREGATE_TYPE)
    .bind(wallet_id.to_string())
    .bind(transaction_id.as_str())
    .fetch_optional(pool)
    .await
    .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
    let Some(row) = row else { return Ok(None) };
    let sequence: i64 = row.get("sequence");
    parse_prior(row.get::<&RawValue, _>("metadata"), sequence).map(Some)
}

/// The wallets whose log holds `transaction_id`, each with its currency, at most two
/// (more would say no more than two do): one lookup in the index of scoped ids across
/// wallets (migration 0008). Only ids scoped to a provider or a Hub88 operator (they
/// contain `:`) are indexed; a native id is held by no wallet here.
pub async fn holders(
    pool: &PgPool,
    transaction_id: &TransactionId,
) -> Result<Vec<(WalletId, Currency)>, StoreError> {
    if !transaction_id.as_str().contains(':') {
        return Ok(Vec::new());
    }
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT DISTINCT aggregate_id, metadata ->> 'currency' FROM events
          WHERE (metadata ->> 'transaction_id') LIKE '%:%'
            AND metadata ->> 'transaction_id' = $1
            AND aggregate_type = $2
          LIMIT 2",
    )
    .bind(transaction_id.as_str())
    .bind(crate::WALLET_AGGREGATE_TYPE)
    .fetch_all(pool)
    .await
    .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
    rows.into_iter()
        .map(|(wallet, currency)| {
            let corrupt = |what: String| StoreError::Corrupt(what.into());
            Ok((
                wallet
                    .parse()
                    .map_err(|e| corrupt(format!("wallet id {wallet:?}: {e}")))?,
                Currency::from_str(&currency)
                    .map_err(|e| corrupt(format!("currency {currency:?}: {e}")))?,
            ))
        })
        .collect()
}

/// What the log says of a command's transaction id: the one reading of a repeat, for
/// both write paths.
#[derive(Debug, Clone, PartialEq)]
pub enum Repeat {
    /// The id is not in the log (or the command carries none).
    New,
    /// The same request was accepted under the id: its first answer.
    Same(CommandReceipt),
    /// Another request was accepted under the id.
    Conflict(TransactionId),
}

impl Repeat {
    /// The answer to give: the first one for the same request, or `IdempotencyConflict`
    /// with `balance` (the wallet's current one); `None` for a new id.
    pub fn answer(self, balance: Option<Balance>) -> Option<Result<CommandReceipt, ExecuteError>> {
        match self {
            Repeat::New => None,
            Repeat::Same(receipt) => Some(Ok(receipt)),
            Repeat::Conflict(transaction_id) => Some(Err(ExecuteError::Refused {
                error: WalletError::IdempotencyConflict { transaction_id },
                balance,
            })),
        }
    }
}

/// Whether `command` (whose request digest is `request_sha256`) repeats a transaction id
/// the log holds for `wallet_id`.
pub async fn repeat_of(
    pool: &PgPool,
    wallet_id: WalletId,
    command: &WalletCommand,
    request_sha256: &str,
) -> Result<Repeat, StoreError> {
    let Some(transaction_id) = command.transaction_id() else {
        return Ok(Repeat::New);
    };
    let prior = find(pool, wallet_id, &transaction_id).await?;
    Ok(Repeat::of(wallet_id, transaction_id, prior, request_sha256))
}

impl Repeat {
    /// What `prior` (the log's record under `transaction_id`, if any) makes of a request
    /// whose digest is `request_sha256`.
    fn of(
        wallet_id: WalletId,
        transaction_id: TransactionId,
        prior: Option<PriorCommand>,
        request_sha256: &str,
    ) -> Repeat {
        match prior {
            None => Repeat::New,
            Some(prior) if prior.request_sha256 == request_sha256 => Repeat::Same(CommandReceipt {
                wallet_id,
                transaction_id: Some(transaction_id),
                balance: prior.balance_after,
                sequence: prior.sequence,
                replayed: true,
                funded_bonus: prior.funded_bonus,
            }),
            Some(_) => Repeat::Conflict(transaction_id),
        }
    }
}

/// [`repeat_of`] for many requests in one query: `(wallet, command, request digest)` in,
/// one [`Repeat`] per request out, in the same order.
pub async fn repeats_of(
    pool: &PgPool,
    requests: &[(WalletId, &WalletCommand, &str)],
) -> Result<Vec<Repeat>, StoreError> {
    let keyed: Vec<(usize, WalletId, TransactionId)> = requests
        .iter()
        .enumerate()
        .filter_map(|(i, (w, c, _))| c.transaction_id().map(|t| (i, *w, t)))
        .collect();
    let mut found: HashMap<usize, PriorCommand> = HashMap::new();
    if !keyed.is_empty() {
        let rows = sqlx::query(
            // LATERAL, so that each request is one lookup in `events_transaction_id`: as
            // a plain join, the generic plan that sqlx's prepared statement settles on
            // while the log is small walks every wallet event of the index (75 ms on a
            // 100,000-event log instead of 0.08 ms, EXPLAIN ANALYZE under
            // force_generic_plan), and 1% of exact retries halved the HTTP rate.
            "SELECT m.n, e.sequence, e.metadata
               FROM UNNEST($2::text[], $3::text[], $4::bigint[]) AS m(id, tx, n)
               CROSS JOIN LATERAL (
                    SELECT e.sequence, e.metadata FROM events e
                     WHERE e.aggregate_type = $1 AND e.aggregate_id = m.id
                       AND e.metadata ? 'transaction_id'
                       AND e.metadata ->> 'transaction_id' = m.tx
                     LIMIT 1) e",
        )
        .bind(crate::WALLET_AGGREGATE_TYPE)
        .bind(
            keyed
                .iter()
                .map(|(_, w, _)| w.to_string())
                .collect::<Vec<_>>(),
        )
        .bind(keyed.iter().map(|(_, _, t)| t.as_str()).collect::<Vec<_>>())
        .bind(keyed.iter().map(|(i, _, _)| *i as i64).collect::<Vec<_>>())
        .fetch_all(pool)
        .await
        .map_err(|e| StoreError::Unavailable(Box::new(e)))?;
        for row in rows {
            let n: i64 = row.get("n");
            let sequence: i64 = row.get("sequence");
            let metadata: &RawValue = row.get("metadata");
            found.insert(n as usize, parse_prior(metadata, sequence)?);
        }
    }
    Ok(requests
        .iter()
        .enumerate()
        .map(
            |(i, (wallet_id, command, digest))| match command.transaction_id() {
                None => Repeat::New,
                Some(t) => Repeat::of(*wallet_id, t, found.remove(&i), digest),
            },
        )
        .collect())
}

fn parse_prior(metadata: &RawValue, sequence: i64) -> Result<PriorCommand, StoreError> {
    let metadata = Recorded::parse(metadata.get()).map_err(corrupt)?;
    Ok(PriorCommand {
        request_sha256: metadata
            .get(KEY_REQUEST_SHA256)
            .ok_or_else(|| corrupt(format!("event metadata lacks {KEY_REQUEST_SHA256:?}")))?
            .to_string(),
        balance_after: balance_after(&metadata).map_err(corrupt)?,
        sequence: u64::try_from(sequence).map_err(|e| corrupt(e.to_string()))?,
        funded_bonus: match metadata.get(KEY_FUNDED_BONUS) {
            None => Decimal::ZERO,
            Some(v) => Decimal::from_str(v)
                .map_err(|_| corrupt(format!("metadata {KEY_FUNDED_BONUS:?}: {v:?}")))?,
        },
    })
}

/// An event's metadata as read back: the flat object of strings that [`metadata`] wrote,
/// decoded from its JSON text in one pass, borrowing the text where it holds no escapes.
/// The one reader of metadata; [`balance_after`] and [`protection_after`] read through it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Recorded<'a> {
    fields: Vec<(Cow<'a, str>, Cow<'a, str>)>,
}

impl<'a> Recorded<'a> {
    /// Decodes metadata's JSON text; anything but an object of strings is an error.
    pub fn parse(text: &'a str) -> Result<Self, String> {
        let mut de = serde_json::Deserializer::from_str(text);
        let fields = serde::Deserializer::deserialize_map(&mut de, FieldsVisitor)
            .and_then(|fields| de.end().map(|()| fields))
            .map_err(|e| format!("event metadata is not an object of strings: {e}"))?;
        Ok(Recorded { fields })
    }

    /// The value recorded under `key`, if any.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_ref())
    }
}

struct FieldsVisitor;

impl<'de> serde::de::Visitor<'de> for FieldsVisitor {
    type Value = Vec<(Cow<'de, str>, Cow<'de, str>)>;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("an object of strings")
    }

    fn visit_map<M: serde::de::MapAccess<'de>>(self, mut map: M) -> Result<Self::Value, M::Error> {
        let mut fields = Vec::with_capacity(map.size_hint().unwrap_or(10));
        while let Some((k, v)) = map.next_entry::<Text<'de>, Text<'de>>()? {
            fields.push((k.0, v.0));
        }
        Ok(fields)
    }
}

/// A string borrowed from the input when it holds no escapes (serde's `Cow<str>` always
/// copies).
struct Text<'a>(Cow<'a, str>);

impl<'de> serde::Deserialize<'de> for Text<'de> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Text(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

impl LoggedEvent {
    /// This event's metadata: [`Recorded::parse`] of its text.
    pub fn recorded(&self) -> Result<Recorded<'_>, String> {
        Recorded::parse(self.metadata.get())
    }
}

/// The balance an event's metadata records: the answer its command was given. The one
/// reader of these fields, for the write path, the projections and the replay tool.
pub fn balance_after(metadata: &Recorded) -> Result<Balance, String> {
    let field = |key: &str| {
        metadata
            .get(key)
            .ok_or_else(|| format!("event metadata lacks {key:?}"))
    };
    let currency = Currency::from_str(field(KEY_CURRENCY)?).map_err(|e| e.to_string())?;
    Balance::from_parts(currency, |key| {
        metadata
            .get(key)
            .map(|text| {
                Decimal::from_str(text)
                    .map_err(|_| format!("metadata {key:?}: {text:?} is not a decimal"))
            })
            .transpose()
    })
    .map_err(|e| format!("event metadata: {e}"))
}

/// The protections an event's metadata recorded (see [`KEY_PROTECTION`]); `None` for a
/// wallet without any.
pub fn protection_after(
    metadata: &Recorded,
) -> Result<Option<domain::wallet::protection::Protection>, String> {
    match metadata.get(KEY_PROTECTION) {
        None => Ok(None),
        Some(text) => serde_json::from_str(text)
            .map(Some)
            .map_err(|e| format!("metadata {KEY_PROTECTION:?}: {e}")),
    }
}

fn corrupt(message: String) -> StoreError {
    StoreError::Corrupt(message.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metadata_round_trips_to_the_recorded_answer() {
        let balance = Balance {
            available: Decimal::new(1050, 2),
            reserved: Decimal::new(200, 2),
            bonus: Decimal::new(300, 2),
            bonus_reserved: Decimal::ZERO,
            currency: Currency::Eur,
        };
        let tx = TransactionId::new("t-1").unwrap();
        let m = metadata(
            "deposit",
            Some(&tx),
            &request_digest("x"),
            &balance,
            &RoundKeys::default(),
            None,
            Decimal::new(150, 2),
        );
        assert!(
            !m.contains_key("bonus_reserved"),
            "a later part at zero is not recorded"
        );
        let text = serde_json::to_string(&m).unwrap();
        let prior = parse_prior(&RawValue::from_string(text).unwrap(), 7).unwrap();
        assert_eq!(prior.balance_after, balance);
        assert_eq!(prior.funded_bonus, Decimal::new(150, 2));
        assert_eq!(prior.balance_after.available.to_string(), "10.50");
        assert_eq!(prior.sequence, 7);
        assert_eq!(prior.request_sha256, request_digest("x"));
        assert_ne!(request_digest("x"), request_digest("y"));
    }

    #[test]
    fn recorded_reads_an_object_of_strings_only() {
        let text = r#"{"a": "1", "b": "x\"y", "protection": "{\"locked\":true}"}"#;
        let r = Recorded::parse(text).unwrap();
        assert_eq!(r.get("a"), Some("1"));
        assert_eq!(r.get("b"), Some("x\"y"));
        assert_eq!(r.get("protection"), Some(r#"{"locked":true}"#));
        assert_eq!(r.get("c"), None);
        assert!(Recorded::parse(r#"{"a": 1}"#).is_err());
        assert!(Recorded::parse(r#"["a"]"#).is_err());
        assert!(Recorded::parse(r#"{"a": "1"} x"#).is_err());
    }
}
