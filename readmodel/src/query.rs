//! The reads the API serves from Redis.

use std::collections::HashMap;
use std::str::FromStr;

use domain::{Currency, PlayerId, WalletId};
use fred::prelude::*;
use rust_decimal::Decimal;
use serde::Serialize;

use crate::keys::{parse_totals_field, Generation, Keys, Period};
use crate::model::{from_minor, WalletModel};
use crate::totals::{Folded, Slot, TotalsRow};
use crate::ReadModelError;
use fred::types::scripts::Script;

/// One row of a leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeaderboardEntry {
    pub rank: u32,
    pub player_id: PlayerId,
    /// Payouts minus stakes in the period.
    pub net_win: Decimal,
}

/// How fresh the leaderboards are: the newest event applied.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Freshness {
    pub global_position: i64,
    pub recorded_at: Option<String>,
}

// KEYS[1] the generation pointer, KEYS[2] the previous generation's pointer;
// ARGV[1] the deployment prefix, [2] wallet id. Returns {generation, HGETALL of the wallet,
// HVALS of its reservations}, all from one moment and one generation: the one in use, or
// during a rebuild's grace period the previous one if it is further along.
const WALLET_LUA: &str = r#"
local gen = redis.call('GET', KEYS[1]) or '0'
local wallet = ARGV[1] .. ':g' .. gen .. ':wallet:{' .. ARGV[2] .. '}'
local prev = redis.call('GET', KEYS[2])
if prev and prev ~= gen then
  local older = ARGV[1] .. ':g' .. prev .. ':wallet:{' .. ARGV[2] .. '}'
  local seq = tonumber(redis.call('HGET', wallet, 'sequence') or '0')
  if tonumber(redis.call('HGET', older, 'sequence') or '0') > seq then
    gen = prev
    wallet = older
  end
end
return {gen, redis.call('HGETALL', wallet), redis.call('HVALS', wallet .. ':reservations')}
"#;

/// The generation of the read models in use now. A reader that resolves it and then reads
/// several keys sees one complete generation: a rebuild keeps the one it replaced for a
/// grace period before deleting it.
pub async fn current(client: &Client, keys: &Keys) -> Result<Generation, ReadModelError> {
    let number: Option<String> = client.get(keys.generation_pointer()).await?;
    let number = match number {
        None => 0,
        Some(n) => n
            .parse()
            .map_err(|e| ReadModelError::Corrupt(format!("generation pointer {n:?}: {e}")))?,
    };
    Ok(keys.generation(number))
}

/// The wallet's read model in the generation in use, or `None` if it has none (yet).
pub async fn wallet(
    client: &Client,
    keys: &Keys,
    wallet_id: WalletId,
) -> Result<Option<WalletModel>, ReadModelError> {
    // One script, so the balance and the reservations come from the same moment and the
    // same generation.
    static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    let script = SCRIPT.get_or_init(|| Script::from_lua(WALLET_LUA));
    let (_generation, fields, open): (String, Vec<String>, Vec<String>) = script
        .evalsha_with_reload(
            client,
            vec![keys.generation_pointer(), keys.generation_previous()],
            vec![keys.prefix().to_string(), wallet_id.to_string()],
        )
        .await?;
    let fields: HashMap<String, String> = fields
        .chunks(2)
        .filter_map(|kv| match kv {
            [k, v] => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect();
    WalletModel::from_redis(wallet_id, &fields, &open)
}

/// The currencies that have a board for `game_id`, sorted.
pub async fn leaderboard_currencies(
    client: &Client,
    keys: &Generation,
    game_id: &str,
) -> Result<Vec<Currency>, ReadModelError> {
    let codes: Vec<String> = client
        .smembers(keys.leaderboard_currencies(game_id))
        .await?;
    let mut currencies = codes
        .iter()
        .map(|c| Currency::from_str(c).map_err(|e| ReadModelError::Corrupt(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    currencies.sort_by_key(|c| c.code());
    Ok(currencies)
}

/// The top `limit` players of `game_id` in `currency` for the period containing `at`.
pub async fn leaderboard(
    client: &Client,
    keys: &Generation,
    game_id: &str,
    currency: Currency,
    period: Period,
    at: chrono::DateTime<chrono::Utc>,
    limit: u32,
) -> Result<Vec<LeaderboardEntry>, ReadModelError> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let bucket = period.bucket(at);
    let key = keys.leaderboard(currency, &bucket, game_id);
    let rows: Vec<(String, f64)> = client.zrevrange(key, 0, i64::from(limit) - 1, true).await?;
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    // The exact figures: the sorted set only orders (its scores are f64).
    let players: Vec<&str> = rows.iter().map(|(p, _)| p.as_str()).collect();
    let exact: Vec<Option<String>> = client
        .hmget(keys.leaderboard_net(currency, &bucket, game_id), players)
        .await?;
    rows.into_iter()
        .zip(exact)
        .enumerate()
        .map(|(i, ((player_id, score), exact))| {
            let minor = match exact {
                Some(text) => text.parse::<i64>().map_err(|e| {
                    ReadModelError::Corrupt(format!("leaderboard net {text:?}: {e}"))
                })?,
                // A generation built before the exact figures: run `rebuild`.
                None => score.round() as i64,
            };
            Ok(LeaderboardEntry {
                rank: i as u32 + 1,
                // As stored: an id accepted under an older rule stays readable.
                player_id: PlayerId::try_from(player_id)
                    .map_err(|e| ReadModelError::Corrupt(format!("leaderboard member: {e}")))?,
                net_win: from_minor(minor, currency),
            })
        })
        .collect()
}

/// The totals of UTC day `day` in `generation`, slot by slot, as stored. A field that is
/// not a totals field, or a value that is not an integer, is corruption.
pub async fn totals_of_day(
    client: &Client,
    generation: &Generation,
    day: chrono::NaiveDate,
) -> Result<Folded, ReadModelError> {
    let fields: HashMap<String, String> = client.hgetall(generation.totals(day)).await?;
    let mut totals = Folded::new();
    for (field, value) in fields {
        let corrupt =
            || ReadModelError::Corrupt(format!("totals of {day}: field {field:?} = {value:?}"));
        let (currency, origin, measure) = parse_totals_field(&field).ok_or_else(corrupt)?;
        let value: i64 = value.parse().map_err(|_| corrupt())?;
        totals
            .entry(Slot {
                day,
                currency,
                origin,
            })
            .or_default()
            .insert(measure, value);
    }
    Ok(totals)
}

/// The totals rows of the days `from` to `to` (inclusive) in `generation`, in day,
/// currency, provider and game order, keeping those `keep` accepts.
pub async fn totals(
    client: &Client,
    generation: &Generation,
    from: chrono::NaiveDate,
    to: chrono::NaiveDate,
    keep: impl Fn(&Slot) -> bool,
) -> Result<Vec<TotalsRow>, ReadModelError> {
    let mut rows = Vec::new();
    for day in from.iter_days().take_while(|d| *d <= to) {
        for (slot, figures) in totals_of_day(client, generation, day).await? {
            if keep(&slot) {
                rows.push(TotalsRow::of(&slot, &figures));
            }
        }
    }
    Ok(rows)
}

/// The newest event applied to the read models.
pub async fn freshness(client: &Client, keys: &Generation) -> Result<Freshness, ReadModelError> {
    let fields: HashMap<String, String> = client.hgetall(keys.meta()).await?;
    Ok(Freshness {
        global_position: fields
            .get("global_position")
            .and_then(|p| p.parse().ok())
            .unwrap_or(0),
        recorded_at: fields.get("recorded_at").cloned(),
    })
}

/// Every key matching `pattern` (a Redis glob), by SCAN: never blocks Redis the way KEYS
/// would. For reconciliation and tests, not for request paths.
pub async fn scan_keys(client: &Client, pattern: &str) -> Result<Vec<String>, ReadModelError> {
    use futures::TryStreamExt;
    let keys: Vec<fred::types::Key> = client
        .scan_buffered(pattern.to_string(), Some(1_000), None)
        .try_collect()
        .await?;
    keys.into_iter()
        .map(|k| {
            k.into_string()
                .ok_or_else(|| ReadModelError::Corrupt("a key that is not UTF-8".into()))
        })
        .collect()
}

/// Deletes every key under `prefix` (`{prefix}:*`), by SCAN and UNLINK in chunks so Redis
/// never stalls: a test's or benchmark's own prefix, or an old generation. Returns how
/// many were deleted.
pub async fn delete_prefix(client: &Client, prefix: &str) -> Result<usize, ReadModelError> {
    let keys = scan_keys(client, &format!("{prefix}:*")).await?;
    for chunk in keys.chunks(1_000) {
        let _: i64 = client.unlink(chunk.to_vec()).await?;
    }
    Ok(keys.len())
}

/// Deletes every key of generation `number`. Returns how many were deleted.
pub async fn delete_generation(
    client: &Client,
    keys: &Keys,
    number: u64,
) -> Result<usize, ReadModelError> {
    delete_prefix(client, keys.generation(number).prefix()).await
}

/// The bytes Redis uses (`INFO memory`'s `used_memory`).
pub async fn used_memory(client: &Client) -> Result<u64, ReadModelError> {
    let info: String = client
        .custom(fred::cmd!("INFO"), vec!["memory".to_string()])
        .await?;
    info.lines()
        .find_map(|l| l.strip_prefix("used_memory:"))
        .and_then(|v| v.trim().parse().ok())
        .ok_or_else(|| ReadModelError::Corrupt("INFO memory has no used_memory".into()))
}
