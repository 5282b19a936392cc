//! The writes of whole read models, beside the live apply ([`crate::apply`]): a rebuild
//! takes a new generation ([`new_generation`]), fills it with pipelines ([`put_wallets`],
//! [`put_leaderboards`], [`put_totals`], [`put_freshness`]) and switches readers to it
//! ([`switch_generation`], [`end_grace`]); `reconcile --repair` rewrites or deletes one
//! wallet's read model if nobody moved it meanwhile ([`repair`]), and a day's totals
//! ([`replace_totals_of_day`]). With the apply script
//! and `query::delete_generation`, these are every write of the layout in
//! [`crate::keys`]; the wallet's fields come from [`crate::model::WalletModel`].

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use domain::{Currency, GameId, PlayerId};
use fred::prelude::*;
use fred::types::scripts::Script;

use crate::keys::{totals_field, Generation, Keys};
use crate::model::WalletModel;
use crate::totals::Folded;
use crate::ReadModelError;

/// Most sorted-set members or set members sent in one command.
pub const MEMBERS_PER_COMMAND_MAX: usize = 1_000;

/// Writes `models` into `generation` with one pipeline (their keys must not hold older
/// reservations: a rebuild writes into a fresh generation).
pub async fn put_wallets(
    client: &Client,
    generation: &Generation,
    models: &[WalletModel],
) -> Result<(), ReadModelError> {
    let pipeline = client.pipeline();
    for model in models {
        let _: () = pipeline
            .hset(generation.wallet(model.wallet_id), model.hash_fields())
            .await?;
        let open = model.reservation_entries();
        if !open.is_empty() {
            let _: () = pipeline
                .hset(generation.reservations(model.wallet_id), open)
                .await?;
        }
    }
    let _: Vec<Value> = pipeline.all().await?;
    Ok(())
}

/// One leaderboard's scores: the board's currency, period bucket and game, and each
/// player's net win in minor units.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Board {
    pub currency: Currency,
    pub bucket: String,
    pub game_id: GameId,
}

/// Writes each board's `scores` (whole sums, replacing what a member had) into the
/// leaderboards of `generation`, and records each board's currency for its game.
/// Returns how many boards were written.
pub async fn put_leaderboards(
    client: &Client,
    generation: &Generation,
    scores: &HashMap<Board, HashMap<PlayerId, i64>>,
) -> Result<usize, ReadModelError> {
    let mut currencies: HashMap<&GameId, Vec<&'static str>> = HashMap::new();
    for (board, players) in scores {
        // Sorted-set scores are f64: whole minor units stay exact to 2^53.
        let members: Vec<(f64, String)> = players
            .iter()
            .map(|(player, net)| (*net as f64, player.to_string()))
            .collect();
        let key = generation.leaderboard(board.currency, &board.bucket, board.game_id.as_str());
        let net_key =
            generation.leaderboard_net(board.currency, &board.bucket, board.game_id.as_str());
        for chunk in members.chunks(MEMBERS_PER_COMMAND_MAX) {
            let _: i64 = client
                .zadd(key.as_str(), None, None, false, false, chunk.to_vec())
                .await?;
        }
        let exact: Vec<(String, String)> = players
            .iter()
            .map(|(player, net)| (player.to_string(), net.to_string()))
            .collect();
        for chunk in exact.chunks(MEMBERS_PER_COMMAND_MAX) {
            let _: () = client.hset(net_key.as_str(), chunk.to_vec()).await?;
        }
        let codes = currencies.entry(&board.game_id).or_default();
        if !codes.contains(&board.currency.code()) {
            codes.push(board.currency.code());
        }
    }
    for (game, codes) in currencies {
        let _: i64 = client
            .sadd(generation.leaderboard_currencies(game.as_str()), codes)
            .await?;
    }
    Ok(scores.len())
}

/// Writes folded `totals` into `generation`, replacing the figures of every slot they
/// hold (one pipeline per day). Returns how many slots were written.
pub async fn put_totals(
    client: &Client,
    generation: &Generation,
    totals: &Folded,
) -> Result<usize, ReadModelError> {
    let mut by_day: BTreeMap<chrono::NaiveDate, Vec<(String, String)>> = BTreeMap::new();
    for (slot, figures) in totals {
        let fields = by_day.entry(slot.day).or_default();
        for (measure, value) in figures {
            fields.push((
                totals_field(slot.currency, &slot.origin, *measure),
                value.to_string(),
            ));
        }
    }
    for (day, fields) in by_day {
        for chunk in fields.chunks(MEMBERS_PER_COMMAND_MAX) {
            let _: () = client.hset(generation.totals(day), chunk.to_vec()).await?;
        }
    }
    Ok(totals.len())
}

/// Replaces the totals of UTC day `day` in `generation` with `totals` (its slots of that
/// day), at once: `reconcile --repair`.
pub async fn replace_totals_of_day(
    client: &Client,
    generation: &Generation,
    day: chrono::NaiveDate,
    totals: &Folded,
) -> Result<(), ReadModelError> {
    let fields: Vec<(String, String)> = totals
        .iter()
        .filter(|(slot, _)| slot.day == day)
        .flat_map(|(slot, figures)| {
            figures.iter().map(|(measure, value)| {
                (
                    totals_field(slot.currency, &slot.origin, *measure),
                    value.to_string(),
                )
            })
        })
        .collect();
    let key = generation.totals(day);
    let transaction = client.multi();
    let _: () = transaction.del(key.as_str()).await?;
    if !fields.is_empty() {
        let _: () = transaction.hset(key.as_str(), fields).await?;
    }
    let _: Vec<Value> = transaction.exec(true).await?;
    Ok(())
}

/// Records the newest log position applied to `generation`: how fresh its leaderboards
/// are.
pub async fn put_freshness(
    client: &Client,
    generation: &Generation,
    global_position: i64,
    recorded_at: DateTime<Utc>,
) -> Result<(), ReadModelError> {
    let _: () = client
        .hset(
            generation.meta(),
            vec![
                ("global_position", global_position.to_string()),
                ("recorded_at", recorded_at.to_rfc3339()),
            ],
        )
        .await?;
    Ok(())
}

// KEYS[1] a wallet's hash, KEYS[2] its reservations. ARGV[1] the sequence the read model
// held when compared ('' for none), ARGV[2] 'write' or 'delete', then for 'write' the
// number of hash fields n, n pairs of field and value, then pairs of reservation id and
// JSON. Returns 1 if done, 0 if the read model moved on meanwhile.
const REPAIR_LUA: &str = r#"
local seq = redis.call('HGET', KEYS[1], 'sequence') or ''
if seq ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1], KEYS[2])
if ARGV[2] == 'write' then
  local n = tonumber(ARGV[3])
  for i = 4, 3 + 2 * n, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
  for i = 4 + 2 * n, #ARGV, 2 do redis.call('HSET', KEYS[2], ARGV[i], ARGV[i + 1]) end
end
return 1
"#;

/// Rewrites the read model of `wallet` (by its id's text) in `generation` to `model`, or
/// deletes it when `model` is `None`, only if it still holds the sequence `seen` (`None`:
/// it had no read model): a worker's newer write is never overwritten. Returns whether it
/// was done.
pub async fn repair(
    client: &Client,
    generation: &Generation,
    wallet: &str,
    seen: Option<u64>,
    model: Option<&WalletModel>,
) -> Result<bool, ReadModelError> {
    static SCRIPT: std::sync::OnceLock<Script> = std::sync::OnceLock::new();
    let script = SCRIPT.get_or_init(|| Script::from_lua(REPAIR_LUA));
    let keys = vec![generation.wallet(wallet), generation.reservations(wallet)];
    let mut args = vec![seen.map(|s| s.to_string()).unwrap_or_default()];
    match model {
        None => args.push("delete".into()),
        Some(model) => {
            let fields = model.hash_fields();
            args.push("write".into());
            args.push(fields.len().to_string());
            for (field, value) in fields {
                args.push(field.to_string());
                args.push(value);
            }
            for (id, json) in model.reservation_entries() {
                args.push(id);
                args.push(json);
            }
        }
    }
    let done: i64 = script.evalsha_with_reload(client, keys, args).await?;
    Ok(done == 1)
}

/// A generation number above every one handed out and above `in_use`.
pub async fn new_generation(
    client: &Client,
    keys: &Keys,
    in_use: u64,
) -> Result<u64, ReadModelError> {
    loop {
        let n: u64 = client.incr(keys.generation_counter()).await?;
        if n > in_use {
            return Ok(n);
        }
    }
}

// KEYS[1] the generation pointer, KEYS[2] the previous one's. ARGV[1] the generation
// expected in use, [2] the new one. Moves the pointer only if nobody else moved it since
// the rebuild began, and names the replaced generation for the grace period.
const SWITCH_LUA: &str = r#"
local now = redis.call('GET', KEYS[1]) or '0'
if now ~= ARGV[1] then return now end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
return ARGV[2]
"#;

/// Switches readers (and the workers' writes) from generation `expected` to `new`, only
/// if `expected` is still in use; `expected` stays readable as the previous generation
/// until [`end_grace`]. Returns the generation in use afterwards: `new`, or the one
/// another rebuild switched to meanwhile.
pub async fn switch_generation(
    client: &Client,
    keys: &Keys,
    expected: u64,
    new: u64,
) -> Result<u64, ReadModelError> {
    let switched: String = Script::from_lua(SWITCH_LUA)
        .evalsha_with_reload(
            client,
            vec![keys.generation_pointer(), keys.generation_previous()],
            vec![expected.to_string(), new.to_string()],
        )
        .await?;
    switched
        .parse()
        .map_err(|e| ReadModelError::Corrupt(format!("generation pointer {switched:?}: {e}")))
}

/// Ends a rebuild's grace period: wallet reads stop looking at the previous generation.
pub async fn end_grace(client: &Client, keys: &Keys) -> Result<(), ReadModelError> {
    let _: i64 = client.del(keys.generation_previous()).await?;
    Ok(())
}
