//! The totals read model: per UTC day, currency, provider and game, what the bets staked
//! and paid, what bet-less wins of each kind and adjustments paid, and how many rounds
//! opened. The start of a GGR report (docs/0012): `stakes - payouts` is the games' gross
//! win on settled bets; bet-less wins and adjustments are shown apart, for the report to
//! count as its jurisdiction wants.
//!
//! What each event adds ([`contributions`]) is worked out here from the event alone, for
//! the live apply ([`crate::change`]), the rebuild and `reconcile` alike. Where it counts:
//! - the day is the UTC day of the event's `recorded_at`;
//! - the provider is its round's ([`domain::RoundId::provider`]): `None` for a native
//!   round; an adjustment without a round counts for the provider of its transaction id;
//! - the game is the one the event names (a round's events name its game, an adjustment
//!   its round's), else that of the bet it settles ([`Origin`]), else none (a bet-less
//!   win in a round no game was named for, an adjustment without a round).
//!
//! Stakes count when their bet is settled (won, lost, lost with its round, or a bet-win),
//! on the day of the settle; a refunded or expired bet never counts. That is the flow the
//! replay tool's conservation check uses (`stakes_settled`, `payouts`).

use std::collections::BTreeMap;

use chrono::{DateTime, NaiveDate, Utc};
use domain::wallet::Flow;
use domain::{BetlessKind, Currency, GameId, RoundId, WalletEvent};
use rust_decimal::Decimal;
use serde::Serialize;

use crate::model::{from_minor, to_minor};

/// One figure of a totals row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Measure {
    /// Bets settled (a count).
    Bets,
    /// Their stakes, in minor units.
    Stakes,
    /// What bets and rounds paid (wins of a bet, of its round), in minor units.
    Payouts,
    FreeSpinWins,
    PromoWins,
    JackpotWins,
    /// Corrections, signed, in minor units.
    Adjustments,
    /// Rounds opened by a bet, a bet-win or a win (a count; a close of a round never seen
    /// opens none).
    Rounds,
    /// The bonus parts of `Stakes` and `Payouts` (bonus money staked, and paid back to
    /// awards), in minor units.
    BonusStakes,
    BonusPayouts,
    /// Awards entering balances as they activate, in minor units.
    BonusGranted,
    /// Bonus money become cash at completion: the bonus cost of NGR.
    BonusConverted,
    /// Bonus money forfeited.
    BonusForfeited,
}

impl Measure {
    pub const ALL: [Measure; 13] = [
        Measure::Bets,
        Measure::Stakes,
        Measure::Payouts,
        Measure::FreeSpinWins,
        Measure::PromoWins,
        Measure::JackpotWins,
        Measure::Adjustments,
        Measure::Rounds,
        Measure::BonusStakes,
        Measure::BonusPayouts,
        Measure::BonusGranted,
        Measure::BonusConverted,
        Measure::BonusForfeited,
    ];

    /// Its name, in Redis fields and in the API's answer.
    pub fn as_str(self) -> &'static str {
        match self {
            Measure::Bets => "bets",
            Measure::Stakes => "stakes",
            Measure::Payouts => "payouts",
            Measure::FreeSpinWins => "free_spin_wins",
            Measure::PromoWins => "promo_wins",
            Measure::JackpotWins => "jackpot_wins",
            Measure::Adjustments => "adjustments",
            Measure::Rounds => "rounds",
            Measure::BonusStakes => "bonus_stakes",
            Measure::BonusPayouts => "bonus_payouts",
            Measure::BonusGranted => "bonus_granted",
            Measure::BonusConverted => "bonus_converted",
            Measure::BonusForfeited => "bonus_forfeited",
        }
    }

    pub fn parse(name: &str) -> Option<Measure> {
        Measure::ALL.into_iter().find(|m| m.as_str() == name)
    }

    fn of_kind(kind: BetlessKind) -> Measure {
        match kind {
            BetlessKind::FreeSpin => Measure::FreeSpinWins,
            BetlessKind::Promo => Measure::PromoWins,
            BetlessKind::Jackpot => Measure::JackpotWins,
        }
    }
}

/// Where an event's figures count, beyond its day and currency.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Origin {
    /// The wallet's brand; `None` for the default brand (fields written before brands).
    pub brand: Option<domain::BrandId>,
    pub provider: Option<String>,
    pub game_id: Option<GameId>,
}

impl Origin {
    /// The origin of a bet in `round_id` of `game_id`.
    pub fn of_bet(game_id: &GameId, round_id: &RoundId) -> Origin {
        Origin {
            brand: None,
            provider: round_id.provider().map(str::to_string),
            game_id: Some(game_id.clone()),
        }
    }
}

/// Where `event`'s figures count: the game and provider it names, else those of `bet`,
/// the game and round of the reservation it closes first (`WalletEvent::closed_reservations`)
/// as the wallet held it before the event. What the live apply works out in Redis, for the
/// folds of the replay tool.
pub fn origin(
    event: &WalletEvent,
    contribution: &Contribution,
    bet: Option<(&GameId, &RoundId)>,
    brand: Option<&domain::BrandId>,
) -> Origin {
    Origin {
        brand: brand.filter(|b| !b.is_default()).cloned(),
        provider: match &contribution.provider {
            Some(provider) => provider.clone(),
            None => bet.and_then(|(_, round)| round.provider().map(str::to_string)),
        },
        game_id: event.game_id().or(bet.map(|(game, _)| game)).cloned(),
    }
}

/// One row of the totals: a day, a currency, a provider and a game.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Slot {
    pub day: NaiveDate,
    pub currency: Currency,
    pub origin: Origin,
}

/// What one event adds to the totals, before its origin is known.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Contribution {
    /// Figures added (minor units for money), in [`Measure`] order; empty for an event
    /// that adds nothing.
    pub add: Vec<(Measure, i64)>,
    /// The provider, when the event itself says it (it names its round, or it is an
    /// adjustment); `None` when it comes from the bet it settles.
    pub provider: Option<Option<String>>,
}

impl Contribution {
    pub fn is_empty(&self) -> bool {
        self.add.is_empty()
    }
}

/// The UTC day an event recorded at `at` counts in.
pub fn day_of(at: DateTime<Utc>) -> NaiveDate {
    at.date_naive()
}

/// What `event` adds to the totals, in `currency`; `opened_round` is whether it opened a
/// round (the round key in its metadata). Fails on an amount that is not whole minor units.
pub fn contributions(
    event: &WalletEvent,
    currency: Currency,
    opened_round: bool,
) -> Result<Contribution, String> {
    let mut add: BTreeMap<Measure, i64> = BTreeMap::new();
    let mut money = |measure: Measure, amount: Decimal| -> Result<(), String> {
        let minor = to_minor(amount, currency)
            .ok_or_else(|| format!("{} {amount} is not whole minor units", measure.as_str()))?;
        let sum = add.entry(measure).or_default();
        *sum = sum
            .checked_add(minor)
            .ok_or_else(|| format!("{} overflows", measure.as_str()))?;
        Ok(())
    };
    // What it moves, as the domain describes it (`WalletEvent::postings`): each stake
    // posting is one bet settled (won, lost, lost with its round, or a bet-win).
    let mut bets: i64 = 0;
    for posting in event.postings() {
        match posting.flow {
            Flow::Stake => {
                bets += 1;
                money(Measure::Stakes, -posting.amount)?;
            }
            Flow::Payout(None) => money(Measure::Payouts, posting.amount)?,
            Flow::Payout(Some(kind)) => money(Measure::of_kind(kind), posting.amount)?,
            Flow::Adjustment => money(Measure::Adjustments, posting.amount)?,
            // A bet's bonus part counts in its stake and payout, and apart.
            Flow::BonusStake => {
                money(Measure::Stakes, -posting.amount)?;
                money(Measure::BonusStakes, -posting.amount)?;
            }
            Flow::BonusPayout => {
                money(Measure::Payouts, posting.amount)?;
                money(Measure::BonusPayouts, posting.amount)?;
            }
            Flow::BonusGrant => money(Measure::BonusGranted, posting.amount)?,
            // Two postings (out of bonus, into available): counted once.
            Flow::BonusConversion if posting.part == domain::Part::Available => {
                money(Measure::BonusConverted, posting.amount)?
            }
            Flow::BonusConversion => {}
            Flow::BonusForfeit => money(Measure::BonusForfeited, -posting.amount)?,
            // Money in and out of the wallet, and stakes held and returned, are no game's.
            Flow::Deposit | Flow::Withdrawal | Flow::Reserve | Flow::Refund | Flow::Expiry => {}
        }
    }
    if bets > 0 {
        add.insert(Measure::Bets, bets);
    }
    // A round counts once played: a close of a round never seen keys it (closed), but
    // nothing was played in it.
    if opened_round && !matches!(event, WalletEvent::RoundClosed { .. }) {
        add.insert(Measure::Rounds, 1);
    }
    let provider = match event {
        WalletEvent::FundsAdjusted {
            round_id: None,
            transaction_id,
            ..
        } => Some(transaction_id.scope().map(str::to_string)),
        _ => event
            .round_id()
            .map(|round| round.provider().map(str::to_string)),
    };
    Ok(Contribution {
        add: add.into_iter().collect(),
        provider,
    })
}

/// One row of the totals as the API shows it: money at the currency's scale.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TotalsRow {
    pub day: NaiveDate,
    /// The brand of the wallets it counts.
    pub brand_id: String,
    pub currency: &'static str,
    pub provider: Option<String>,
    pub game_id: Option<GameId>,
    pub bets: i64,
    pub stakes: Decimal,
    pub payouts: Decimal,
    pub free_spin_wins: Decimal,
    pub promo_wins: Decimal,
    pub jackpot_wins: Decimal,
    pub adjustments: Decimal,
    pub rounds: i64,
    /// The bonus parts of `stakes` and `payouts`.
    pub bonus_stakes: Decimal,
    pub bonus_payouts: Decimal,
    pub bonus_granted: Decimal,
    pub bonus_converted: Decimal,
    pub bonus_forfeited: Decimal,
}

impl TotalsRow {
    /// The row of `slot` from its figures (absent ones are zero).
    pub fn of(slot: &Slot, figures: &BTreeMap<Measure, i64>) -> TotalsRow {
        let get = |m: Measure| figures.get(&m).copied().unwrap_or(0);
        let money = |m: Measure| from_minor(get(m), slot.currency);
        TotalsRow {
            day: slot.day,
            currency: slot.currency.code(),
            brand_id: slot
                .origin
                .brand
                .as_ref()
                .map_or(domain::BrandId::DEFAULT.to_string(), |b| b.to_string()),
            provider: slot.origin.provider.clone(),
            game_id: slot.origin.game_id.clone(),
            bets: get(Measure::Bets),
            stakes: money(Measure::Stakes),
            payouts: money(Measure::Payouts),
            free_spin_wins: money(Measure::FreeSpinWins),
            promo_wins: money(Measure::PromoWins),
            jackpot_wins: money(Measure::JackpotWins),
            adjustments: money(Measure::Adjustments),
            rounds: get(Measure::Rounds),
            bonus_stakes: money(Measure::BonusStakes),
            bonus_payouts: money(Measure::BonusPayouts),
            bonus_granted: money(Measure::BonusGranted),
            bonus_converted: money(Measure::BonusConverted),
            bonus_forfeited: money(Measure::BonusForfeited),
        }
    }
}

/// The GGR report's figures (`GET /v1/reports/ggr`, the contract's "Brands and back
/// office"), from totals rows: the one place where GGR and NGR are defined.
///
/// - `stakes` and `payouts` are cash: a bet's bonus part is bonus money the casino issued,
///   not money the player brought or took, and is shown apart (`bonus_stakes`,
///   `bonus_payouts`); `payouts` include the bet-less wins of every kind (free-spin, promo
///   and jackpot wins are paid to players too).
/// - `ggr` is `stakes - payouts`; `bonus_cost` is bonus money converted to cash (what bonus
///   money cost the casino in cash); `ngr` is `ggr - bonus_cost`.
/// - Adjustments are corrections by an operator, not play: not counted.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Ggr {
    pub bets: i64,
    pub rounds: i64,
    pub stakes: Decimal,
    pub payouts: Decimal,
    pub ggr: Decimal,
    pub bonus_stakes: Decimal,
    pub bonus_payouts: Decimal,
    pub bonus_cost: Decimal,
    pub ngr: Decimal,
}

impl Ggr {
    /// The figures of one totals row.
    pub fn of(row: &TotalsRow) -> Ggr {
        let stakes = row.stakes - row.bonus_stakes;
        let payouts = row.payouts - row.bonus_payouts
            + row.free_spin_wins
            + row.promo_wins
            + row.jackpot_wins;
        let ggr = stakes - payouts;
        Ggr {
            bets: row.bets,
            rounds: row.rounds,
            stakes,
            payouts,
            ggr,
            bonus_stakes: row.bonus_stakes,
            bonus_payouts: row.bonus_payouts,
            bonus_cost: row.bonus_converted,
            ngr: ggr - row.bonus_converted,
        }
    }

    /// Adds `other`'s figures (of the same currency) to these.
    pub fn add(&mut self, other: &Ggr) {
        self.bets += other.bets;
        self.rounds += other.rounds;
        self.stakes += other.stakes;
        self.payouts += other.payouts;
        self.ggr += other.ggr;
        self.bonus_stakes += other.bonus_stakes;
        self.bonus_payouts += other.bonus_payouts;
        self.bonus_cost += other.bonus_cost;
        self.ngr += other.ngr;
    }
}

/// Totals folded in memory, slot by slot: what a rebuild writes and `reconcile` compares.
pub type Folded = BTreeMap<Slot, BTreeMap<Measure, i64>>;

/// Adds `contribution` at `slot` to `totals`.
pub fn add(totals: &mut Folded, slot: Slot, contribution: &Contribution) {
    let figures = totals.entry(slot).or_default();
    for (measure, value) in &contribution.add {
        *figures.entry(*measure).or_default() += value;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::wallet::round::LostBet;
    use domain::{ReservationId, TransactionId};

    fn eur(cents: i64) -> Decimal {
        Decimal::new(cents, 2)
    }

    #[test]
    fn ggr_counts_cash_stakes_and_payouts_and_ngr_takes_off_conversions() {
        let mut figures = BTreeMap::new();
        for (m, v) in [
            (Measure::Bets, 3),
            (Measure::Rounds, 2),
            (Measure::Stakes, 10_000),
            (Measure::BonusStakes, 3_000),
            (Measure::Payouts, 6_000),
            (Measure::BonusPayouts, 2_000),
            (Measure::JackpotWins, 500),
            (Measure::FreeSpinWins, 200),
            (Measure::Adjustments, 9_999),
            (Measure::BonusConverted, 1_000),
        ] {
            figures.insert(m, v);
        }
        let slot = Slot {
            day: NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            currency: Currency::Eur,
            origin: Origin::default(),
        };
        let g = Ggr::of(&TotalsRow::of(&slot, &figures));
        assert_eq!((g.bets, g.rounds), (3, 2));
        // Cash: 100 - 30 staked; 60 - 20 paid on bets, 5 + 2 bet-less.
        assert_eq!((g.stakes, g.payouts), (eur(7_000), eur(4_700)));
        assert_eq!(g.ggr, eur(2_300));
        assert_eq!((g.bonus_stakes, g.bonus_payouts), (eur(3_000), eur(2_000)));
        assert_eq!((g.bonus_cost, g.ngr), (eur(1_000), eur(1_300)));
        let mut sum = g.clone();
        sum.add(&g);
        assert_eq!((sum.bets, sum.ngr), (6, eur(2_600)));
    }

    #[test]
    fn a_settle_counts_its_stake_and_payout_and_a_close_its_lost_bets() {
        let settle = WalletEvent::ReservationSettled {
            reservation_id: ReservationId::new("b").unwrap(),
            transaction_id: TransactionId::new("w").unwrap(),
            stake: eur(500),
            payout: eur(1250),
            at: None,
            bonus: None,
        };
        let c = contributions(&settle, Currency::Eur, false).unwrap();
        assert_eq!(
            c.add,
            vec![
                (Measure::Bets, 1),
                (Measure::Stakes, 500),
                (Measure::Payouts, 1250)
            ]
        );
        assert_eq!(c.provider, None, "a plain settle's provider is its bet's");
        let close = WalletEvent::RoundClosed {
            transaction_id: TransactionId::scoped("p1", "c").unwrap(),
            round_id: RoundId::scoped("p1", "r").unwrap(),
            game_id: None,
            lost: vec![
                LostBet {
                    reservation_id: ReservationId::new("b1").unwrap(),
                    stake: eur(100),
                },
                LostBet {
                    reservation_id: ReservationId::new("b2").unwrap(),
                    stake: eur(250),
                },
            ],
            at: None,
            bonus: None,
        };
        let c = contributions(&close, Currency::Eur, false).unwrap();
        assert_eq!(c.add, vec![(Measure::Bets, 2), (Measure::Stakes, 350)]);
        assert_eq!(c.provider, Some(Some("p1".to_string())));
    }

    #[test]
    fn betless_wins_count_by_kind_and_adjustments_by_their_scope() {
        let win = WalletEvent::WinCredited {
            transaction_id: TransactionId::new("f").unwrap(),
            round_id: RoundId::new("r").unwrap(),
            game_id: None,
            reservation_id: None,
            settled_stake: None,
            amount: eur(300),
            kind: Some(BetlessKind::Jackpot),
            campaign_id: None,
            round_closed: false,
            lost: vec![],
            at: None,
            bonus: None,
        };
        let c = contributions(&win, Currency::Eur, true).unwrap();
        assert_eq!(
            c.add,
            vec![(Measure::JackpotWins, 300), (Measure::Rounds, 1)]
        );
        assert_eq!(c.provider, Some(None), "a native round has no provider");
        let adjust = WalletEvent::FundsAdjusted {
            transaction_id: TransactionId::scoped("p2", "a").unwrap(),
            amount: eur(-75),
            reason: domain::AdjustmentReason::new("fix").unwrap(),
            round_id: None,
            game_id: None,
            by: None,
        };
        let c = contributions(&adjust, Currency::Eur, false).unwrap();
        assert_eq!(c.add, vec![(Measure::Adjustments, -75)]);
        assert_eq!(c.provider, Some(Some("p2".to_string())));
        let deposit = WalletEvent::FundsDeposited {
            transaction_id: TransactionId::new("d").unwrap(),
            amount: eur(100),
            at: None,
        };
        assert!(contributions(&deposit, Currency::Eur, false)
            .unwrap()
            .is_empty());
    }
}
