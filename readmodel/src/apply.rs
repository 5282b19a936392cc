//! The one write to the read models: apply a [`Change`] if, and only if, it carries the
//! wallet's next sequence. One Lua script does it, so the balance, the open reservations,
//! the leaderboards and the sequence move together or not at all, and a message delivered
//! twice (at-least-once delivery) or late is a no-op.

use fred::prelude::*;
use fred::types::scripts::Script;

use crate::change::{Change, ReservationChange};
use crate::keys::{Keys, Period};
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

// KEYS[1] the wallet's hash, KEYS[2] its open reservations, KEYS[3] the meta hash.
// ARGV[1] sequence, [2] available, [3] reserved, [4] currency, [5] player id or '',
// [6] 'open' | 'close' | '', [7] reservation id, [8] reservation JSON,
// [9] net win in minor units or '', [10] the game id when the caller knows it or '',
// [11] leaderboard key prefix, [12] leaderboard-currencies key prefix,
// [13] global position, [14] recorded_at, [15..] leaderboard buckets.
// Returns {code, last sequence}: 1 applied, 0 duplicate, 2 gap, 3 unknown reservation.
const APPLY_LUA: &str = r#"
local last = tonumber(redis.call('HGET', KEYS[1], 'sequence') or '0')
local seq = tonumber(ARGV[1])
if seq <= last then return {0, last} end
if seq ~= last + 1 then return {2, last} end
local game = ARGV[10]
if ARGV[9] ~= '' and game == '' then
  local open = redis.call('HGET', KEYS[2], ARGV[7])
  if not open then return {3, last} end
  game = cjson.decode(open)['game_id']
end
redis.call('HSET', KEYS[1], 'sequence', ARGV[1], 'available', ARGV[2],
           'reserved', ARGV[3], 'currency', ARGV[4])
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'player_id', ARGV[5]) end
if ARGV[6] == 'open' then
  redis.call('HSET', KEYS[2], ARGV[7], ARGV[8])
elseif ARGV[6] == 'close' then
  redis.call('HDEL', KEYS[2], ARGV[7])
end
if ARGV[9] ~= '' then
  local player = redis.call('HGET', KEYS[1], 'player_id') or ''
  for i = 15, #ARGV do
    redis.call('ZINCRBY', ARGV[11] .. ARGV[4] .. ':' .. ARGV[i] .. ':' .. game, ARGV[9], player)
  end
  redis.call('SADD', ARGV[12] .. game, ARGV[4])
end
local gp = tonumber(redis.call('HGET', KEYS[3], 'global_position') or '0')
if tonumber(ARGV[13]) > gp then
  redis.call('HSET', KEYS[3], 'global_position', ARGV[13], 'recorded_at', ARGV[14])
end
return {1, seq}
"#;

/// Applies changes to the read models under one key prefix.
#[derive(Clone)]
pub struct Applier {
    client: Client,
    keys: Keys,
    script: Script,
}

impl Applier {
    pub fn new(client: Client, keys: Keys) -> Self {
        Applier {
            client,
            keys,
            script: Script::from_lua(APPLY_LUA),
        }
    }

    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Applies `change` if it is the wallet's next sequence. `game_id` names the game of a
    /// settle whose reservation the read model does not hold (see
    /// [`ApplyOutcome::UnknownReservation`]); otherwise `None`.
    pub async fn apply(
        &self,
        change: &Change,
        game_id: Option<&str>,
    ) -> Result<ApplyOutcome, ReadModelError> {
        let keys = vec![
            self.keys.wallet(&change.wallet_id),
            self.keys.reservations(&change.wallet_id),
            self.keys.meta(),
        ];
        let (op, reservation_id, reservation_json) = match &change.reservation {
            ReservationChange::None => ("", String::new(), String::new()),
            ReservationChange::Open(view) => (
                "open",
                view.reservation_id.clone(),
                serde_json::to_string(view).map_err(|e| ReadModelError::Corrupt(e.to_string()))?,
            ),
            ReservationChange::Close { reservation_id } => {
                ("close", reservation_id.clone(), String::new())
            }
        };
        let mut args = vec![
            change.sequence.to_string(),
            change.balance.available.to_string(),
            change.balance.reserved.to_string(),
            change.balance.currency.code().to_string(),
            change.player_id.clone().unwrap_or_default(),
            op.to_string(),
            reservation_id,
            reservation_json,
            change
                .net_win_minor
                .map(|n| n.to_string())
                .unwrap_or_default(),
            game_id.unwrap_or_default().to_string(),
            self.keys.leaderboard_prefix(),
            self.keys.leaderboard_currencies_prefix(),
            change.global_position.to_string(),
            change.recorded_at.to_rfc3339(),
        ];
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

    /// The last sequence applied to `wallet_id` (0 when the read model has none).
    pub async fn last_sequence(&self, wallet_id: &str) -> Result<u64, ReadModelError> {
        let seq: Option<u64> = self
            .client
            .hget(self.keys.wallet(wallet_id), "sequence")
            .await?;
        Ok(seq.unwrap_or(0))
    }
}
