//! The checked fold: one wallet's events applied in order with the domain's own
//! aggregate (`Wallet::apply`), each checked first against the ledger's invariants.
//!
//! `Wallet::apply` trusts the log (an event is a fact) and panics on one that could never
//! have been decided, such as a settle of a reservation that is not open. A replay must
//! not trust a log it is auditing, so every event is checked before it is applied:
//! - its sequence is the next one, its version known, its payload a wallet event of the
//!   type its row names, for this wallet;
//! - amounts are positive (a payout may be zero) and at the currency's scale;
//! - neither available nor reserved goes below zero;
//! - a settle, refund or expiry closes a reservation that is open, for its amount; a
//!   reserve never reuses an id;
//! - rounds: nothing is staked, won or rolled back in a closed round; a round's close
//!   loses bets that are open, for their stakes; a later win names a settled bet; a
//!   bet-win is whole (a positive stake, a payout, an id never used).
//!
//! And after it is applied:
//! - reserved equals the sum of the open reservations, and a closed round has no open bet;
//! - money is conserved: deposits - withdrawals - settled and lost stakes + payouts +
//!   bet-less wins + adjustments = available + reserved, summed from the events' own
//!   amounts, independently of the aggregate;
//! - the balance recorded in the event's metadata (what the caller was answered, and what
//!   the projections copy) equals the fold.
//!
//! An event that cannot be applied stops the wallet's fold (it is "broken"); the checks
//! that only compare figures report and go on.

use std::collections::{BTreeMap, HashMap};

use cqrs_es::Aggregate;
use domain::wallet::protection::{self, LimitKind, LimitPeriod, Window};
use domain::{
    Balance, Currency, GameId, PlayerId, ReservationState, RoundId, Wallet, WalletEvent, WalletId,
};
use eventstore::log::LoggedEvent;
use readmodel::totals::{self, Contribution, Slot};
use readmodel::{ReservationView, WalletModel};
use rust_decimal::Decimal;
use serde::Serialize;

mod check;
mod protection_check;

/// What rule an event breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ViolationKind {
    /// Not the wallet's next sequence.
    SequenceGap,
    /// An unknown version, a payload that is not a wallet event, or one for another wallet.
    Malformed,
    /// An event before the wallet was opened.
    NotOpened,
    /// A second `WalletOpened`.
    OpenedTwice,
    /// An amount that is not positive or not at the currency's scale.
    BadAmount,
    /// Available or reserved below zero.
    NegativeBalance,
    /// A settle, refund or expiry of a reservation never made.
    UnknownReservation,
    /// A settle, refund or expiry of a reservation already closed.
    ClosedReservation,
    /// A reserve under an id already used (or voided), or a void of a reservation made.
    ReservationReused,
    /// A settle's stake, or a refund's or expiry's amount, is not the reservation's.
    AmountMismatch,
    /// Reserved differs from the sum of the open reservations.
    ReservedMismatch,
    /// A bet, win or rollback in a round already closed.
    InClosedRound,
    /// A round closed with a bet of it still open.
    OpenBetInClosedRound,
    /// A later win for a bet that was not settled.
    WinForUnsettledBet,
    /// Available + reserved differs from the money that flowed in and out.
    NotConserved,
    /// The balance recorded in the event's metadata differs from the fold.
    RecordedBalance,
    /// A deposit or a bet that passed a limit in force at its time: what the period used,
    /// summed by this fold from the events, is above the limit.
    LimitPassed,
    /// A deposit, withdrawal or bet while the account was locked.
    WhileLocked,
    /// A deposit or bet while the player was self-excluded.
    WhileExcluded,
    /// A protected wallet's deposit or bet without its time, or an event decided at a
    /// time before an earlier event's: its use could be booked in a period left behind.
    EventTime,
    /// A bonus award's balance, summed by this fold from its events, below zero.
    AwardNegative,
    /// An award's balance, summed by this fold from its events, differs from the
    /// aggregate's, or an event names an award never granted.
    AwardMismatch,
    /// An award converted more than its `max_conversion`.
    ConversionAboveCap,
    /// A stake paid by an award that was not the active one.
    StakeFromInactiveAward,
}

/// One broken rule, where it is.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Violation {
    pub wallet_id: WalletId,
    pub sequence: u64,
    pub global_position: i64,
    pub kind: ViolationKind,
    pub detail: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "wallet {} sequence {} (global position {}): {:?}: {}",
            self.wallet_id, self.sequence, self.global_position, self.kind, self.detail
        )
    }
}

/// The money that flowed through a wallet, summed from the events' own amounts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Flows {
    pub deposited: Decimal,
    pub withdrawn: Decimal,
    /// Stakes that left the wallet: settled, lost with their round, or a bet-win's.
    pub stakes_settled: Decimal,
    /// What bets won: settles, wins and bet-wins.
    pub payouts: Decimal,
    /// Wins without a bet (free spins, promotions, jackpots).
    pub betless_wins: Decimal,
    /// Corrections, signed.
    pub adjustments: Decimal,
    /// Bonus awards entering the balance as they activate.
    #[serde(default)]
    pub bonus_granted: Decimal,
    /// Bonus money forfeited (conversions move money within the wallet: not a flow).
    #[serde(default)]
    pub bonus_forfeited: Decimal,
}

impl Flows {
    /// What the wallet must hold: deposits - withdrawals - settled stakes + payouts +
    /// bet-less wins + adjustments.
    pub fn net(&self) -> Decimal {
        self.deposited - self.withdrawn - self.stakes_settled
            + self.payouts
            + self.betless_wins
            + self.adjustments
            + self.bonus_granted
            - self.bonus_forfeited
    }

    pub fn add(&mut self, other: &Flows) {
        self.deposited += other.deposited;
        self.withdrawn += other.withdrawn;
        self.stakes_settled += other.stakes_settled;
        self.payouts += other.payouts;
        self.betless_wins += other.betless_wins;
        self.adjustments += other.adjustments;
        self.bonus_granted += other.bonus_granted;
        self.bonus_forfeited += other.bonus_forfeited;
    }
}

/// A settle as the leaderboards see it.
#[derive(Debug, Clone, PartialEq)]
pub struct Settled {
    pub game_id: GameId,
    pub player_id: PlayerId,
    pub currency: Currency,
    /// Payout minus stake.
    pub net_win: Decimal,
}

/// What one event did.
#[derive(Debug, Default)]
pub struct Step {
    /// Rules it broke (empty for a good event).
    pub violations: Vec<Violation>,
    /// Whether it was applied (false once the wallet is broken).
    pub applied: bool,
    /// Set for an applied settle.
    pub settled: Option<Settled>,
    /// What an applied event adds to the totals read model, and where.
    pub totals: Option<(Slot, Contribution)>,
}

/// One wallet's fold so far.
#[derive(Debug, Clone)]
pub struct WalletFold {
    wallet_id: WalletId,
    wallet: Wallet,
    sequence: u64,
    flows: Flows,
    /// The sum of open reservations, kept by this fold's own arithmetic.
    open_sum: Decimal,
    /// Open bets per round, kept by this fold's own arithmetic, so that checking a
    /// closed round costs a lookup, not a walk over every bet the wallet ever made.
    open_by_round: HashMap<RoundId, u32>,
    broken: bool,
    /// Forget closed reservations after each event (see [`WalletFold::compacted`]).
    compact: bool,
    /// What each limit's current period used, summed here from the events (not taken
    /// from the aggregate), to check that no deposit or bet passed a limit.
    tallies: BTreeMap<(LimitKind, LimitPeriod), Tally>,
    /// The latest time a protected event of the wallet was decided at.
    last_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Each bonus award's balance, summed here from its events.
    awards: BTreeMap<domain::BonusId, AwardTally>,
    /// The wallet's brand (its opening event's), when not the default: where its totals
    /// count. The aggregate does not keep it.
    brand: Option<domain::BrandId>,
}

/// One award as the fold sums it.
#[derive(Debug, Clone)]
struct AwardTally {
    balance: Decimal,
    /// As granted: what it must activate with.
    amount: Decimal,
    cap: Option<Decimal>,
}

/// One limit's period and what it used, as the fold sums it.
#[derive(Debug, Clone)]
struct Tally {
    window: Window,
    used: Decimal,
}

impl WalletFold {
    pub fn new(wallet_id: WalletId) -> Self {
        WalletFold {
            wallet_id,
            wallet: Wallet::default(),
            sequence: 0,
            flows: Flows::default(),
            open_sum: Decimal::ZERO,
            open_by_round: HashMap::new(),
            broken: false,
            compact: false,
            tallies: BTreeMap::new(),
            last_at: None,
            awards: BTreeMap::new(),
            brand: None,
        }
    }

    /// A fold that keeps only open reservations (`Wallet::compact` after each event), so
    /// its memory is bounded by the wallet's open bets, not its history: for `rebuild`,
    /// which holds every wallet at once. It still refuses to apply a close of a
    /// reservation it does not hold; it cannot tell a closed one from one never made, nor
    /// see a reserve that reuses a closed id. `verify` and `audit` use the full fold.
    pub fn compacted(wallet_id: WalletId) -> Self {
        WalletFold {
            compact: true,
            ..WalletFold::new(wallet_id)
        }
    }

    pub fn wallet_id(&self) -> WalletId {
        self.wallet_id
    }

    /// The aggregate after the events applied so far.
    pub fn wallet(&self) -> &Wallet {
        &self.wallet
    }

    /// The sequence of the last event applied.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    pub fn flows(&self) -> &Flows {
        &self.flows
    }

    /// Whether an event could not be applied; later events are then not checked.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The open reservations as the read models show them, in id order.
    pub fn open_reservations(&self) -> Vec<ReservationView> {
        self.wallet
            .open_reservations()
            .map(|(id, r)| ReservationView::of(id, r))
            .collect()
    }

    /// The read model the log says this wallet has; `None` before it is opened.
    pub fn model(&self) -> Option<WalletModel> {
        Some(WalletModel {
            wallet_id: self.wallet_id,
            player_id: self.wallet.player_id().cloned(),
            balance: self.wallet.balance()?,
            sequence: self.sequence,
            reservations: self.open_reservations(),
            protection: self.wallet.protection().cloned(),
            brand: self.brand.clone(),
        })
    }

    /// Checks `event` and, if it can be applied, applies it. Long because it is the list
    /// of checks of the module's documentation, in that order, each a few lines.
    pub fn apply(&mut self, event: &LoggedEvent) -> Step {
        let mut step = Step::default();
        if self.broken {
            return step;
        }
        let wallet_id = self.wallet_id;
        let violation = |kind: ViolationKind, detail: String| Violation {
            wallet_id,
            sequence: event.sequence,
            global_position: event.global_position,
            kind,
            detail,
        };
        if event.sequence != self.sequence + 1 {
            step.violations.push(violation(
                ViolationKind::SequenceGap,
                format!("expected sequence {}", self.sequence + 1),
            ));
            self.broken = true;
            return step;
        }
        let parsed = self.parse(event);
        let (payload, deltas) = match parsed {
            Ok(ok) => ok,
            Err((kind, detail)) => {
                step.violations.push(violation(kind, detail));
                self.broken = true;
                return step;
            }
        };
        for (kind, detail) in deltas.mismatches.iter().cloned() {
            step.violations.push(violation(kind, detail));
        }
        // Figures before the event, from the aggregate; after it, from this fold's own
        // arithmetic, checked before the aggregate is asked to apply it.
        let before = self
            .wallet
            .balance()
            .unwrap_or_else(|| Balance::zero(deltas.currency));
        let available = before.available + deltas.available;
        let reserved = before.reserved + deltas.reserved;
        let bonus = before.bonus + deltas.bonus;
        let bonus_reserved = before.bonus_reserved + deltas.bonus_reserved;
        if [available, reserved, bonus, bonus_reserved]
            .iter()
            .any(|p| *p < Decimal::ZERO)
        {
            step.violations.push(violation(
                ViolationKind::NegativeBalance,
                format!(
                    "available {available}, reserved {reserved}, bonus {bonus}, bonus \
                     reserved {bonus_reserved} after the event"
                ),
            ));
            self.broken = true;
            return step;
        }
        if let WalletEvent::WalletOpened { brand_id, .. } = &payload {
            self.brand = (!brand_id.is_default()).then(|| brand_id.clone());
        }
        let recorded = event.recorded();
        let opened_round = recorded
            .as_ref()
            .is_ok_and(|r| r.get(eventstore::idempotency::KEY_ROUND_OPENED).is_some());
        match totals::contributions(&payload, deltas.currency, opened_round) {
            Ok(contribution) if contribution.is_empty() => {}
            Ok(contribution) => {
                let bet = payload
                    .closed_reservations()
                    .first()
                    .and_then(|id| self.wallet.reservation(id))
                    .map(|r| (&r.game_id, &r.round_id));
                let slot = Slot {
                    day: totals::day_of(event.recorded_at),
                    currency: deltas.currency,
                    origin: totals::origin(&payload, &contribution, bet, self.brand.as_ref()),
                };
                step.totals = Some((slot, contribution));
            }
            Err(problem) => {
                step.violations
                    .push(violation(ViolationKind::BadAmount, problem));
                self.broken = true;
                return step;
            }
        }
        let net_win = payload.net_win();
        step.settled = match (deltas.game.clone().zip(net_win), self.wallet.player_id()) {
            (Some((game_id, net_win)), Some(player_id)) => Some(Settled {
                game_id,
                player_id: player_id.clone(),
                currency: deltas.currency,
                net_win,
            }),
            _ => None,
        };
        self.flows.add(&deltas.flows);
        self.open_sum += deltas.open;
        let touched: Vec<domain::BonusId> = deltas.awards.keys().cloned().collect();
        self.awards.extend(deltas.awards);
        for (round_id, opened) in deltas.bets {
            if opened {
                *self.open_by_round.entry(round_id).or_default() += 1;
            } else if let Some(count) = self.open_by_round.get_mut(&round_id) {
                *count -= 1;
                if *count == 0 {
                    // Only rounds with an open bet are kept: memory as the open bets.
                    self.open_by_round.remove(&round_id);
                }
            }
        }
        let closed_round = payload.closes_round().then(|| payload.round_id().cloned());
        let protection = self.check_protection(event, &payload);
        step.violations.extend(
            protection
                .into_iter()
                .map(|(k, detail)| violation(k, detail)),
        );
        self.wallet.apply(payload);
        if let Some(Some(round_id)) = closed_round {
            if self.open_by_round.contains_key(&round_id) {
                step.violations.push(violation(
                    ViolationKind::OpenBetInClosedRound,
                    format!("round {round_id} closed with a bet still open"),
                ));
            }
        }
        if self.compact {
            self.wallet.compact();
        }
        self.sequence = event.sequence;
        step.applied = true;

        let after = self
            .wallet
            .balance()
            .expect("an applied event leaves it open");
        if after.reserved != self.open_sum {
            step.violations.push(violation(
                ViolationKind::ReservedMismatch,
                format!(
                    "reserved {} but the open reservations sum to {}",
                    after.reserved, self.open_sum
                ),
            ));
        }
        for id in touched {
            let folded = self.awards[&id].balance;
            let held = self.wallet.awards().find(|a| a.bonus_id == id);
            if held.map(|a| a.balance) != Some(folded) {
                step.violations.push(violation(
                    ViolationKind::AwardMismatch,
                    format!(
                        "award {id}: its events sum to {folded}, the aggregate holds {:?}",
                        held.map(|a| a.balance)
                    ),
                ));
            } else if held.is_some_and(|a| a.status.ended() && !a.balance.is_zero()) {
                step.violations.push(violation(
                    ViolationKind::AwardMismatch,
                    format!("award {id} has ended holding {folded}"),
                ));
            }
        }
        // The balance's bonus parts are what the active award and the open bets hold
        // (looked at only in a wallet that ever had an award: others hold zero, which the
        // recorded balance below checks).
        if !self.awards.is_empty() {
            let active: Decimal = self
                .wallet
                .awards()
                .filter(|a| a.status == domain::AwardStatus::Active)
                .map(|a| a.balance)
                .sum();
            let in_bets: Decimal = self
                .wallet
                .open_reservations()
                .filter_map(|(_, r)| r.bonus.as_ref())
                .map(|b| b.amount)
                .sum();
            if (after.bonus, after.bonus_reserved) != (active, in_bets) {
                step.violations.push(violation(
                    ViolationKind::AwardMismatch,
                    format!(
                        "bonus {} and bonus reserved {} but the active award holds {active} \
                         and open bets {in_bets}",
                        after.bonus, after.bonus_reserved
                    ),
                ));
            }
        }
        if after.total() != self.flows.net() {
            step.violations.push(violation(
                ViolationKind::NotConserved,
                format!(
                    "available + reserved = {} but the flows in and out sum to {}",
                    after.total(),
                    self.flows.net()
                ),
            ));
        }
        match recorded.and_then(|r| eventstore::idempotency::balance_after(&r)) {
            Ok(recorded) if recorded == after => {}
            Ok(recorded) => step.violations.push(violation(
                ViolationKind::RecordedBalance,
                format!(
                    "metadata records {}, the fold has {}",
                    written(&recorded),
                    written(&after)
                ),
            )),
            Err(problem) => step
                .violations
                .push(violation(ViolationKind::RecordedBalance, problem)),
        }
        step
    }

    /// Checks the wallet once all its events are applied: reserved equals the sum of the
    /// aggregate's own open reservations.
    pub fn finish(&self) -> Option<Violation> {
        let balance = self.wallet.balance()?;
        // Reserved holds the cash parts of open bets (their bonus parts are apart).
        let open: Decimal = self
            .wallet
            .open_reservations()
            .map(|(_, r)| r.amount - r.bonus.as_ref().map_or(Decimal::ZERO, |b| b.amount))
            .sum();
        (!self.broken && open != balance.reserved).then(|| Violation {
            wallet_id: self.wallet_id,
            sequence: self.sequence,
            global_position: 0,
            kind: ViolationKind::ReservedMismatch,
            detail: format!(
                "reserved {} but the aggregate's open reservations sum to {open}",
                balance.reserved
            ),
        })
    }
}

/// Totals per currency over many wallets: the flows and what the wallets hold. Equal when
/// money is conserved across the whole ledger.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub by_currency: BTreeMap<String, CurrencyTotals>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct CurrencyTotals {
    pub wallets: u64,
    pub flows: Flows,
    pub available: Decimal,
    pub reserved: Decimal,
    /// Bonus money held (awards' balances and bonus stakes in open bets).
    #[serde(default)]
    pub bonus: Decimal,
}

impl Totals {
    /// Adds a finished wallet.
    pub fn add(&mut self, fold: &WalletFold) {
        if let Some(balance) = fold.wallet().balance() {
            let t = self
                .by_currency
                .entry(balance.currency.code().to_string())
                .or_default();
            t.wallets += 1;
            t.flows.add(fold.flows());
            t.available += balance.available;
            t.reserved += balance.reserved;
            t.bonus += balance.bonus + balance.bonus_reserved;
        }
    }

    /// The currencies where the wallets hold other than what flowed.
    pub fn unconserved(&self) -> Vec<(String, Decimal, Decimal)> {
        self.by_currency
            .iter()
            .filter(|(_, t)| t.available + t.reserved + t.bonus != t.flows.net())
            .map(|(c, t)| (c.clone(), t.available + t.reserved + t.bonus, t.flows.net()))
            .collect()
    }
}

/// What one event moves, by this fold's own arithmetic.
struct Deltas {
    currency: Currency,
    available: Decimal,
    reserved: Decimal,
    bonus: Decimal,
    bonus_reserved: Decimal,
    open: Decimal,
    flows: Flows,
    /// The awards the event touches, as this fold sums them after it.
    awards: BTreeMap<domain::BonusId, AwardTally>,
    /// The game the event's bets belong to, for its net win on the boards.
    game: Option<GameId>,
    /// Bets it opens (true) and closes (false), by round.
    bets: Vec<(RoundId, bool)>,
    mismatches: Vec<(ViolationKind, String)>,
}

impl Deltas {
    fn new(currency: Currency) -> Self {
        Deltas {
            currency,
            available: Decimal::ZERO,
            reserved: Decimal::ZERO,
            bonus: Decimal::ZERO,
            bonus_reserved: Decimal::ZERO,
            open: Decimal::ZERO,
            flows: Flows::default(),
            awards: BTreeMap::new(),
            game: None,
            bets: Vec::new(),
            mismatches: Vec::new(),
        }
    }
}

/// A balance as a violation names it: each part, then the currency.
fn written(balance: &Balance) -> String {
    let parts: Vec<String> = balance
        .named_parts()
        .map(|(name, amount)| format!("{name} {amount}"))
        .collect();
    format!("{} {}", parts.join(" "), balance.currency.code())
}
