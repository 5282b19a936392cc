//! Where each read model lives in Redis.
//!
//! - `{P}:wallet:{<id>}`: hash `sequence, available, reserved, currency, player_id`.
//! - `{P}:wallet:{<id>}:reservations`: hash `reservation id -> JSON` of open reservations.
//! - `{P}:leaderboard:{CUR}:{period}:{game}`: sorted set `player id -> net win` in the
//!   currency's minor units (sorted-set scores are f64; integers stay exact to 2^53).
//!   `period` is `all`, `day:2026-11-24` or `week:2026-W48` (UTC, ISO weeks).
//! - `{P}:leaderboard-currencies:{game}`: set of currencies with a board for the game.
//! - `{P}:meta`: hash with the highest log position applied (`global_position`,
//!   `recorded_at`): how fresh the leaderboards are.
//!
//! A wallet's two keys share the hash tag `{<id>}`. Leaderboards are updated in the same
//! script as the wallet so that an event counts exactly once; that needs one Redis primary
//! (or Sentinel), not Redis Cluster, where the leaderboard update would need its own fence.

use chrono::{DateTime, Datelike, Utc};
use domain::Currency;

/// The key layout under one prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Keys {
    prefix: String,
}

impl Keys {
    /// Keys under `prefix` (a deployment's name, or a test's own).
    pub fn new(prefix: impl Into<String>) -> Self {
        Keys {
            prefix: prefix.into(),
        }
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    pub fn wallet(&self, wallet_id: &str) -> String {
        format!("{}:wallet:{{{wallet_id}}}", self.prefix)
    }

    pub fn reservations(&self, wallet_id: &str) -> String {
        format!("{}:wallet:{{{wallet_id}}}:reservations", self.prefix)
    }

    /// The start of every leaderboard key; the apply script appends
    /// `{CUR}:{bucket}:{game}`.
    pub fn leaderboard_prefix(&self) -> String {
        format!("{}:leaderboard:", self.prefix)
    }

    pub fn leaderboard(&self, currency: Currency, bucket: &str, game_id: &str) -> String {
        format!(
            "{}{}:{bucket}:{game_id}",
            self.leaderboard_prefix(),
            currency.code()
        )
    }

    pub fn leaderboard_currencies_prefix(&self) -> String {
        format!("{}:leaderboard-currencies:", self.prefix)
    }

    pub fn leaderboard_currencies(&self, game_id: &str) -> String {
        format!("{}{game_id}", self.leaderboard_currencies_prefix())
    }

    pub fn meta(&self) -> String {
        format!("{}:meta", self.prefix)
    }
}

/// A leaderboard's time window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Day,
    Week,
    All,
}

impl Period {
    pub const ALL: [Period; 3] = [Period::Day, Period::Week, Period::All];

    /// The bucket that a settle recorded at `at` counts in.
    pub fn bucket(self, at: DateTime<Utc>) -> String {
        match self {
            Period::Day => format!("day:{}", at.format("%Y-%m-%d")),
            Period::Week => {
                let week = at.iso_week();
                format!("week:{}-W{:02}", week.year(), week.week())
            }
            Period::All => "all".to_string(),
        }
    }
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "day" => Ok(Period::Day),
            "week" => Ok(Period::Week),
            "all" => Ok(Period::All),
            other => Err(format!("unknown period {other:?}: use day, week or all")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn buckets_are_utc_days_and_iso_weeks() {
        // 2026-12-31 is a Thursday in ISO week 53 of 2026; 2027-01-01 is in the same week.
        let at = Utc.with_ymd_and_hms(2027, 1, 1, 23, 59, 59).unwrap();
        assert_eq!(Period::Day.bucket(at), "day:2027-01-01");
        assert_eq!(Period::Week.bucket(at), "week:2026-W53");
        assert_eq!(Period::All.bucket(at), "all");
        let keys = Keys::new("t1");
        assert_eq!(keys.wallet("w"), "t1:wallet:{w}");
        assert_eq!(keys.reservations("w"), "t1:wallet:{w}:reservations");
        assert_eq!(
            keys.leaderboard(Currency::Eur, "all", "g:1"),
            "t1:leaderboard:EUR:all:g:1"
        );
    }
}
