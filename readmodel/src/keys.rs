//! Where each read model lives in Redis.
//!
//! Every read model lives in a *generation*: `rebuild` writes a new one beside the one in
//! use and then moves the pointer, so readers switch at once and never see a half-built
//! model. Under the deployment's prefix `{P}`:
//! - `{P}:generation`: the number of the generation in use (absent: 0).
//! - `{P}:generation-next`: a counter that hands out new generation numbers.
//! - `{P}:generation-previous`: during a rebuild's grace period, the generation it
//!   replaced; a wallet read then answers from whichever of the two is further along, so
//!   no reader sees a wallet step back while the new generation catches up.
//!
//! Under a generation's prefix `{G}` = `{P}:g{N}`:
//! - `{G}:wallet:{<id>}`: hash `sequence, available, reserved, currency, player_id`
//!   (encoded and decoded by [`crate::model::WalletModel`]).
//! - `{G}:wallet:{<id>}:reservations`: hash `reservation id -> JSON` of open reservations.
//! - `{G}:leaderboard:{CUR}:{period}:{game}`: sorted set `player id -> net win` in the
//!   currency's minor units (sorted-set scores are f64; integers stay exact to 2^53).
//!   `period` is `all`, `day:2026-11-24` or `week:2026-W48` (UTC, ISO weeks).
//! - `{G}:leaderboard-net:{CUR}:{period}:{game}`: hash `player id -> net win` in minor
//!   units as an exact integer (HINCRBY, 64 bits): what a board shows. The sorted set above
//!   only orders the players; its f64 scores are not exact past 2^53 minor units.
//! - `{G}:leaderboard-currencies:{game}`: set of currencies with a board for the game.
//! - `{G}:totals:{YYYY-MM-DD}`: hash of the UTC day's totals ([`crate::totals`]): field
//!   `{CUR}␟{provider}␟{game}␟{measure}` (␟ is U+001F, which no id may hold; an empty
//!   provider is a native round's, an empty game none named) -> an integer (minor units
//!   for money, HINCRBY). Encoded and decoded by [`totals_field`] and [`parse_totals_field`].
//! - `{G}:meta`: hash with the highest log position applied (`global_position`,
//!   `recorded_at`): how fresh the leaderboards are.
//!
//! A wallet's two keys share the hash tag `{<id>}`. Leaderboards are updated in the same
//! script as the wallet so that an event counts exactly once, and the scripts resolve the
//! generation pointer themselves; that needs one Redis primary (or Sentinel), not Redis
//! Cluster.

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use domain::{Currency, GameId};

use crate::totals::{Measure, Origin};

/// The deployment's keys: the generation pointer and counter, and each generation.
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

    /// The string key naming the generation in use.
    pub fn generation_pointer(&self) -> String {
        format!("{}:generation", self.prefix)
    }

    /// The generation replaced by the last rebuild, while it is still kept.
    pub fn generation_previous(&self) -> String {
        format!("{}:generation-previous", self.prefix)
    }

    /// The counter that hands out generation numbers.
    pub fn generation_counter(&self) -> String {
        format!("{}:generation-next", self.prefix)
    }

    /// The keys of generation `number`.
    pub fn generation(&self, number: u64) -> Generation {
        Generation {
            number,
            prefix: format!("{}:g{number}", self.prefix),
        }
    }
}

/// The keys of one generation of the read models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Generation {
    number: u64,
    prefix: String,
}

impl Generation {
    pub fn number(&self) -> u64 {
        self.number
    }

    /// `{P}:g{N}`: every key of the generation starts with it and a `:`.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A wallet's hash (fields in [`crate::model`]). Takes any id's text, so a key found
    /// by a scan can be named even if it does not hold a wallet id.
    pub fn wallet(&self, wallet_id: impl std::fmt::Display) -> String {
        format!("{}:wallet:{{{wallet_id}}}", self.prefix)
    }

    /// A wallet's open reservations: reservation id -> `ReservationView` JSON.
    pub fn reservations(&self, wallet_id: impl std::fmt::Display) -> String {
        format!("{}:wallet:{{{wallet_id}}}:reservations", self.prefix)
    }

    /// A glob matching every wallet hash and reservations hash of the generation.
    pub fn wallet_pattern(&self) -> String {
        format!("{}:wallet:*", self.prefix)
    }

    /// The wallet id in a key from [`Generation::wallet_pattern`], if it is a wallet hash
    /// (not a reservations hash).
    pub fn wallet_id_of<'k>(&self, key: &'k str) -> Option<&'k str> {
        key.strip_prefix(&self.prefix)?
            .strip_prefix(":wallet:{")?
            .strip_suffix('}')
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

    /// The exact net wins of the board [`Generation::leaderboard`] orders.
    pub fn leaderboard_net(&self, currency: Currency, bucket: &str, game_id: &str) -> String {
        format!(
            "{}:leaderboard-net:{}:{bucket}:{game_id}",
            self.prefix,
            currency.code()
        )
    }

    pub fn leaderboard_currencies_prefix(&self) -> String {
        format!("{}:leaderboard-currencies:", self.prefix)
    }

    pub fn leaderboard_currencies(&self, game_id: &str) -> String {
        format!("{}{game_id}", self.leaderboard_currencies_prefix())
    }

    /// The start of every totals key; the apply script appends the day.
    pub fn totals_prefix(&self) -> String {
        format!("{}:totals:", self.prefix)
    }

    /// The totals of UTC day `day`.
    pub fn totals(&self, day: NaiveDate) -> String {
        format!("{}{}", self.totals_prefix(), day.format("%Y-%m-%d"))
    }

    pub fn meta(&self) -> String {
        format!("{}:meta", self.prefix)
    }
}

/// What separates the parts of a totals field (U+001F, a control character: no id holds
/// one). The apply script writes it as `'\31'`.
pub const TOTALS_SEPARATOR: char = '\u{1f}';

/// What ends the brand at the start of a totals field of a brand other than the default
/// (U+001E); the apply script writes it as `'\30'`.
pub const TOTALS_BRAND_END: char = '\u{1e}';

/// The totals field of `measure` in `currency` for `origin`: for the default brand as it
/// always was, for another brand after its name and [`TOTALS_BRAND_END`].
pub fn totals_field(currency: Currency, origin: &Origin, measure: Measure) -> String {
    let sep = TOTALS_SEPARATOR;
    let brand = origin
        .brand
        .as_ref()
        .map(|b| format!("{b}{TOTALS_BRAND_END}"))
        .unwrap_or_default();
    format!(
        "{brand}{}{sep}{}{sep}{}{sep}{}",
        currency.code(),
        origin.provider.as_deref().unwrap_or_default(),
        origin
            .game_id
            .as_ref()
            .map(|g| g.as_str())
            .unwrap_or_default(),
        measure.as_str()
    )
}

/// The currency, origin and measure of a totals field; `None` if it is not one.
pub fn parse_totals_field(field: &str) -> Option<(Currency, Origin, Measure)> {
    let (brand, field) = match field.split_once(TOTALS_BRAND_END) {
        None => (None, field),
        Some((brand, rest)) => (Some(domain::BrandId::new(brand).ok()?), rest),
    };
    let mut parts = field.split(TOTALS_SEPARATOR);
    let currency = parts.next()?.parse().ok()?;
    let provider = parts.next()?;
    let game = parts.next()?;
    let measure = Measure::parse(parts.next()?)?;
    if parts.next().is_some() {
        return None;
    }
    let origin = Origin {
        brand: brand.filter(|b| !b.is_default()),
        provider: (!provider.is_empty()).then(|| provider.to_string()),
        game_id: match game {
            "" => None,
            g => Some(GameId::try_from(g.to_string()).ok()?),
        },
    };
    Some((currency, origin, measure))
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
        assert_eq!(keys.generation_pointer(), "t1:generation");
        let g = keys.generation(3);
        assert_eq!(g.wallet("w"), "t1:g3:wallet:{w}");
        assert_eq!(g.reservations("w"), "t1:g3:wallet:{w}:reservations");
        assert_eq!(g.wallet_id_of("t1:g3:wallet:{w}"), Some("w"));
        assert_eq!(g.wallet_id_of("t1:g3:wallet:{w}:reservations"), None);
        assert_eq!(g.wallet_id_of("t1:g31:wallet:{w}"), None);
        assert_eq!(
            g.leaderboard(Currency::Eur, "all", "g:1"),
            "t1:g3:leaderboard:EUR:all:g:1"
        );
        assert_eq!(g.totals(at.date_naive()), "t1:g3:totals:2027-01-01");
    }

    #[test]
    fn totals_fields_round_trip_with_and_without_provider_and_game() {
        for origin in [
            Origin::default(),
            Origin {
                provider: Some("p1".into()),
                game_id: Some(GameId::new("game:with:colons").unwrap()),
                brand: None,
            },
            Origin {
                provider: None,
                game_id: Some(GameId::new("g").unwrap()),
                brand: None,
            },
            Origin {
                provider: Some("p1".into()),
                game_id: Some(GameId::new("g").unwrap()),
                brand: Some(domain::BrandId::new("casino-a").unwrap()),
            },
        ] {
            let field = totals_field(Currency::Btc, &origin, Measure::PromoWins);
            assert_eq!(
                parse_totals_field(&field),
                Some((Currency::Btc, origin.clone(), Measure::PromoWins))
            );
        }
        // The default brand's fields are as they always were; another's start with it.
        assert!(
            totals_field(Currency::Eur, &Origin::default(), Measure::Stakes)
                .starts_with("EUR\u{1f}")
        );
        assert_eq!(
            parse_totals_field("Casino\u{1e}EUR\u{1f}p\u{1f}g\u{1f}stakes"),
            None,
            "not a brand id"
        );
        assert_eq!(parse_totals_field("EUR\u{1f}p\u{1f}g"), None);
        assert_eq!(
            parse_totals_field("EUR\u{1f}p\u{1f}g\u{1f}stakes\u{1f}x"),
            None
        );
    }
}
