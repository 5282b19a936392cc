//! The one write to the read models: apply a [`Change`] if, and only if, it carries the
//! wallet's next sequence. One Lua script does it, so the balance, the open reservations,
//! the leaderboards and the sequence move together or not at all, and a message delivered
//! twice (at-least-once delivery) or late is a no-op.

use domain::WalletId;
use fred::prelude::*;
use fred::types::scripts::Script;

use crate::change::{Change, ReservationChange};
use crate::keys::{Keys, Period};
use crate::totals::{self, Origin};
use crate::ReadModelError;

/// What happened to one change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApplyOutcome {
    /// It was the next sequence and is now visible.
    Applied,
    /// The read model is already at or past this sequence: nothing changed.
    Duplicate { last: u64 },
    /// Events between `last` and this one are missing: fill them from the log first.
    Gap { last: u64 },
    /// A settle for a reservation the read model does not hold, so its game (and
    /// leaderboard) is unknown; the caller looks the game up in the log and applies
    /// again with it.
    UnknownReservation,
}

// KEYS[1] the generation pointer.
// ARGV[1] the deployment prefix, [2] the generation to write or '' for the one in use,
// [3] wallet id, [4] sequence, [5] the balance: a JSON array of its parts' names and
// amounts in turn (`Balance::named_parts`), [6] currency,
// [7] player id or '', [8] 'open' | 'close' | '', [9] reservation id,
// [10] reservation JSON, [11] net win in minor units or '',
// [12] the game id when the caller knows it or '', [13] global position,
// [14] recorded_at, [15] a JSON array of further reservation ids to close or '',
// [16] the totals' day (YYYY-MM-DD) or '' when the event adds nothing to them,
// [17] 'known' when [18] is the provider ('' for a native round), '' to take it from the
// reservation closed, [19] a JSON array of the totals' measure names and values in turn,
// [20] the wallet's protections (JSON) or '', [21] the wallet's brand when the event
// opens a wallet of a brand other than the default, else '', [22..] leaderboard buckets.
// A wallet's totals fields start with its brand and U+001E when it has one (the hash's
// `brand`).
// Returns {code, last sequence}: 1 applied, 0 duplicate, 2 gap, 3 unknown reservation.
// The key names built here are those of `Generation` in keys.rs (totals fields as
// `keys::totals_field`), the fields those of `WalletModel` in model.rs.
const APPLY_LUA: &str = r#"
local gen = ARGV[2]
if gen == '' then gen = redis.call('GET', KEYS[1]) or '0' end
local p = ARGV[1] .. ':g' .. gen
local wallet = p .. ':wallet:{' .. ARGV[3] .. '}'
local reservations = wallet .. ':reservations'
local held = redis.call('HMGET', wallet, 'sequence', 'brand')
local last = tonumber(held[1] or '0')
local seq = tonumber(ARGV[4])
if seq <= last then return {0, last} end
if seq ~= last + 1 then return {2, last} end
local game = ARGV[12]
local provider = ARGV[18]
local provider_known = ARGV[17] == 'known'
local totals = ARGV[16] ~= ''
if (ARGV[11] ~= '' and game == '')
   or (totals and ARGV[8] == 'close' and (game == '' or not provider_known)) then
  local open = redis.call('HGET', reservations, ARGV[9])
  if not open then return {3, last} end
  local r = cjson.decode(open)
  if game == '' then game = r['game_id'] end
  if not provider_known then
    -- A view written before views named their provider: the caller asks the log.
    if r['provider'] == nil then return {3, last} end
    if r['provider'] == cjson.null then provider = '' else provider = r['provider'] end
  end
end
redis.call('HSET', wallet, 'sequence', ARGV[4], 'currency', ARGV[6],
           unpack(cjson.decode(ARGV[5])))
if ARGV[7] ~= '' then redis.call('HSET', wallet, 'player_id', ARGV[7]) end
if ARGV[20] ~= '' then redis.call('HSET', wallet, 'protection', ARGV[20]) end
if ARGV[21] ~= '' then redis.call('HSET', wallet, 'brand', ARGV[21]) end
if ARGV[8] == 'open' then
  redis.call('HSET', reservations, ARGV[9], ARGV[10])
elseif ARGV[8] == 'close' then
  redis.call('HDEL', reservations, ARGV[9])
end
if ARGV[15] ~= '' then
  for _, id in ipairs(cjson.decode(ARGV[15])) do redis.call('HDEL', reservations, id) end
end
if ARGV[11] ~= '' then
  local player = redis.call('HGET', wallet, 'player_id') or ''
  for i = 22, #ARGV do
    local board = ARGV[6] .. ':' .. ARGV[i] .. ':' .. game
    local ordered = p .. ':leaderboard:' .. board
    local exact = p .. ':leaderboard-net:' .. board
    -- A board built before the exact figures existed has a score and no exact entry:
    -- when the exact entry starts (it equals this change alone), add the score it had
    -- (exact below 2^53 minor units), so it does not count only what came after.
    if redis.call('HINCRBY', exact, player, ARGV[11]) == tonumber(ARGV[11]) then
      local before = tonumber(redis.call('ZSCORE', ordered, player) or '0')
      if before ~= 0 then
        redis.call('HINCRBY', exact, player, string.format('%.0f', before))
      end
    end
    redis.call('ZINCRBY', ordered, ARGV[11], player)
  end
  redis.call('SADD', p .. ':leaderboard-currencies:' .. game, ARGV[6])
end
if totals then
  local key = p .. ':totals:' .. ARGV[16]
  local base = ARGV[6] .. '\31' .. provider .. '\31' .. game .. '\31'
  local brand = held[2] or ARGV[21]
  if brand ~= '' then base = brand .. '\30' .. base end
  local add = cjson.decode(ARGV[19])
  for i = 1, #add, 2 do redis.call('HINCRBY', key, base .. add[i], add[i + 1]) end
end
local meta = p .. ':meta'
local gp = tonumber(redis.call('HGET', meta, 'global_position') or '0')
if tonumber(ARGV[13]) > gp then
  redis.call('HSET', meta, 'global_position', ARGV[13], 'recorded_at', ARGV[14])
end
return {1, seq}
"#;

// KEYS[1] the generation pointer; ARGV[1] the deployment prefix, [2] wallet id.
const LAST_SEQUENCE_LUA: &str = r#"
local gen = redis.call('GET', KEYS[1]) or '0'
return redis.call('HGET', ARGV[1] .. ':g' .. gen .. ':wallet:{' .. ARGV[2] .. '}', 'sequence')
"#;

/// Applies changes to the read models under one key prefix: to the generation in use
/// (the projection workers), or to one named generation (a rebuild catching up before it
/// switches readers over).
#[derive(Clone)]
pub struct Applier {
    client: Client,
    keys: Keys,
    target: Option<u64>,
    script: Script,
    last_sequence: Script,
}

impl Applier {
    /// An applier that writes to whichever generation is in use when each change lands.
    pub fn new(client: Client, keys: Keys) -> Self {
        Applier {
            client,
            keys,
            target: None,
            script: Script::from_lua(APPLY_LUA),
            last_sequence: Script::from_lua(LAST_SEQUENCE_LUA),
        }
    }

    /// An applier that writes to generation `number`, in use or not.
    pub fn for_generation(client: Client, keys: Keys, number: u64) -> Self {
        Applier {
            target: Some(number),
            ..Applier::new(client, keys)
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Applies `change` if it is the wallet's next sequence. `found` is the game and
    /// provider of a settle whose reservation the read model does not hold (see
    /// [`ApplyOutcome::UnknownReservation`]), from the log; otherwise `None`.
    pub async fn apply(
        &self,
        change: &Change,
        found: Option<&Origin>,
    ) -> Result<ApplyOutcome, ReadModelError> {
        let keys = vec![self.keys.generation_pointer()];
        let (op, reservation_id, reservation_json) = match &change.reservation {
            ReservationChange::None => ("", String::new(), String::new()),
            ReservationChange::Open(view) => {
                ("open", view.reservation_id.to_string(), view.to_json())
            }
            ReservationChange::Close { reservation_id } => {
                ("close", reservation_id.to_string(), String::new())
            }
        };
        let mut args = vec![
            self.keys.prefix().to_string(),
            self.target.map(|n| n.to_string()).unwrap_or_default(),
            change.wallet_id.to_string(),
            change.sequence.to_string(),
            serde_json::to_string(
                &change
                    .balance
                    .named_parts()
                    .flat_map(|(name, amount)| [name.to_string(), amount])
                    .collect::<Vec<_>>(),
            )
            .expect("a list of strings"),
            change.balance.currency.code().to_string(),
            change
                .player_id
                .as_ref()
                .map(|p| p.to_string())
                .unwrap_or_default(),
            op.to_string(),
            reservation_id,
            reservation_json,
            change
                .net_win_minor
                .map(|n| n.to_string())
                .unwrap_or_default(),
            found
                .and_then(|f| f.game_id.as_ref())
                .or(change.game_id.as_ref())
                .map(|g| g.to_string())
                .unwrap_or_default(),
            change.global_position.to_string(),
            change.recorded_at.to_rfc3339(),
            if change.closed_also.is_empty() {
                String::new()
            } else {
                serde_json::to_string(&change.closed_also).expect("a list of ids")
            },
        ];
        let provider = found
            .map(|f| &f.provider)
            .or(change.totals.provider.as_ref());
        if change.totals.is_empty() {
            args.extend([String::new(), String::new(), String::new(), String::new()]);
        } else {
            let add: Vec<String> = change
                .totals
                .add
                .iter()
                .flat_map(|(measure, value)| [measure.as_str().to_string(), value.to_string()])
                .collect();
            args.extend([
                totals::day_of(change.recorded_at)
                    .format("%Y-%m-%d")
                    .to_string(),
                if provider.is_some() { "known" } else { "" }.to_string(),
                provider.cloned().flatten().unwrap_or_default(),
                serde_json::to_string(&add).expect("a list of strings"),
            ]);
        }
        args.push(change.protection.clone().unwrap_or_default());
        args.push(
            change
                .brand
                .as_ref()
                .map(|b| b.to_string())
                .unwrap_or_default(),
        );
        args.extend(Period::ALL.iter().map(|p| p.bucket(change.recorded_at)));
        let (code, last): (i64, i64) = self
            .script
            .evalsha_with_reload(&self.client, keys, args)
            .await?;
        let last = u64::try_from(last).map_err(|e| ReadModelError::Corrupt(e.to_string()))?;
        Ok(match code {
            1 => ApplyOutcome::Applied,
            0 => ApplyOutcome::Duplicate { last },
            2 => ApplyOutcome::Gap { last },
            3 => ApplyOutcome::UnknownReservation,
            other => {
                return Err(ReadModelError::Corrupt(format!(
                    "apply script answered {other}"
                )))
            }
        })
    }

    /// The last sequence applied to `wallet_id` in the generation this applier writes
    /// to (0 when the read model has none).
    pub async fn last_sequence(&self, wallet_id: WalletId) -> Result<u64, ReadModelError> {
        let seq: Option<u64> = match self.target {
            Some(n) => {
                self.client
                    .hget(self.keys.generation(n).wallet(wallet_id), "sequence")
                    .await?
            }
            None => {
                self.last_sequence
                    .evalsha_with_reload(
                        &self.client,
                        vec![self.keys.generation_pointer()],
                        vec![self.keys.prefix().to_string(), wallet_id.to_string()],
                    )
                    .await?
            }
        };
        Ok(seq.unwrap_or(0))
    }
}
