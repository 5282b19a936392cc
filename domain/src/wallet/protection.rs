//! Player protection: deposit, wager and loss limits per calendar period, self-exclusion
//! and an operator's lock, decided in the wallet itself, atomically with the money they
//! guard (a check in another service races with parallel bets). The contract's "Player
//! protection" section; the design, with the choices it leaves open, is docs/0013.
//!
//! - **Limits** of kind [`LimitKind`] per [`LimitPeriod`], calendar periods in the time
//!   zone the limit was set in (`BETLEDGER_LIMITS_TZ` at the time; recorded in its event,
//!   so a replay, or a later change of the setting, never moves a period's boundary).
//!   What is used is kept per limit for its current period ([`Window`]) and starts again
//!   at the next period; a new limit counts from when it is set.
//!   - `deposit`: deposits. `wager`: stakes placed (a bet rolled back still counts as
//!     wagered). `loss`: stakes settled minus what bets paid (wins of bets and rounds;
//!     bet-less wins and adjustments do not count), in the period of the settle; a bet
//!     is checked as if it lost, together with every stake still open, so parallel bets
//!     cannot pass the limit together.
//!   - A stricter (or equal) limit applies at once; a looser one, or a removal, after the
//!     cooling-off period (`BETLEDGER_LIMIT_COOLING_S`): meanwhile the old one holds and
//!     the pending change is shown. A stricter change cancels a pending one.
//! - **Self-exclusion** until a time, or indefinitely; it can be lengthened, never
//!   shortened. Meanwhile bets and deposits are refused.
//! - **Lock** by an operator, with a reason, until unlocked: bets, deposits and
//!   withdrawals are refused.
//!
//! Wins, refunds, rollbacks, expiries, round closes and adjustments are never refused by
//! any of these: money owed is paid. The aggregate reads no clock: `now` is in the
//! command, and each event that counts towards a limit carries its time (`at`).

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::money::Money;
use crate::wallet::{Opened, WalletCommand, WalletError, WalletEvent};

/// What a limit caps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitKind {
    Deposit,
    Wager,
    Loss,
}

impl LimitKind {
    pub const ALL: [LimitKind; 3] = [LimitKind::Deposit, LimitKind::Wager, LimitKind::Loss];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitKind::Deposit => "deposit",
            LimitKind::Wager => "wager",
            LimitKind::Loss => "loss",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The calendar period a limit counts over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LimitPeriod {
    Day,
    /// An ISO week, Monday to Sunday.
    Week,
    Month,
}

impl LimitPeriod {
    pub const ALL: [LimitPeriod; 3] = [LimitPeriod::Day, LimitPeriod::Week, LimitPeriod::Month];

    pub fn as_str(self) -> &'static str {
        match self {
            LimitPeriod::Day => "day",
            LimitPeriod::Week => "week",
            LimitPeriod::Month => "month",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|p| p.as_str() == s)
    }

    /// The period of this kind, in `zone`, that `at` falls in: from its first local
    /// midnight to the next period's. A day across a daylight-saving change is 23 or 25
    /// hours long.
    pub fn window(self, zone: Tz, at: DateTime<Utc>) -> Window {
        let local = at.with_timezone(&zone).date_naive();
        let first = match self {
            LimitPeriod::Day => local,
            LimitPeriod::Week => {
                local - Duration::days(i64::from(local.weekday().num_days_from_monday()))
            }
            LimitPeriod::Month => local.with_day(1).expect("every month has a first day"),
        };
        let next = match self {
            LimitPeriod::Day => first + Duration::days(1),
            LimitPeriod::Week => first + Duration::days(7),
            LimitPeriod::Month => first
                .checked_add_months(chrono::Months::new(1))
                .expect("a month after a real date"),
        };
        Window {
            start: start_of_day(zone, first),
            end: start_of_day(zone, next),
        }
    }
}

/// The first instant of local day `day` in `zone`: its midnight, or, where a
/// daylight-saving change skips midnight, the first local time that exists after it.
fn start_of_day(zone: Tz, day: NaiveDate) -> DateTime<Utc> {
    let midnight = day.and_hms_opt(0, 0, 0).expect("midnight exists");
    let mut local = midnight;
    // Real gaps are at most a few hours; step by a quarter of an hour until one exists.
    for _ in 0..=24 * 4 {
        if let Some(t) = zone.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
        local += Duration::minutes(15);
    }
    midnight.and_utc()
}

/// One period of a limit: `start` included, `end` (when it resets) excluded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
}

/// A change of a limit that waits for its cooling-off period: a looser amount, or the
/// removal (`amount: None`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PendingLimit {
    pub amount: Option<Decimal>,
    pub effective_at: DateTime<Utc>,
}

/// One limit of a wallet: the amount in force, a pending change, and what its current
/// period has used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Limit {
    pub kind: LimitKind,
    pub period: LimitPeriod,
    pub zone: Tz,
    pub amount: Decimal,
    pub pending: Option<PendingLimit>,
    /// The period `used` counts in.
    pub window: Window,
    /// Used in `window`: deposits, stakes, or losses (signed: a period's wins may pass
    /// its losses).
    pub used: Decimal,
}

impl Limit {
    /// The amount in force at `now` (`None`: removed by a pending change now due).
    pub fn in_force(&self, now: DateTime<Utc>) -> Option<Decimal> {
        match &self.pending {
            Some(p) if now >= p.effective_at => p.amount,
            _ => Some(self.amount),
        }
    }

    /// What the period of `now` has used: nothing if `now` is past the counted period.
    pub fn used_at(&self, now: DateTime<Utc>) -> Decimal {
        if now < self.window.end {
            self.used
        } else {
            Decimal::ZERO
        }
    }

    /// When the period of `now` ends.
    pub fn resets_at(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        if now < self.window.end {
            self.window.end
        } else {
            self.period.window(self.zone, now).end
        }
    }

    /// Moves the limit on to `at`: a pending change now due takes effect (`false`: the
    /// limit is removed), and a new period starts from nothing.
    fn advance(&mut self, at: DateTime<Utc>) -> bool {
        if let Some(p) = self.pending.take_if(|p| at >= p.effective_at) {
            match p.amount {
                Some(amount) => self.amount = amount,
                None => return false,
            }
        }
        if at >= self.window.end {
            self.window = self.period.window(self.zone, at);
            self.used = Decimal::ZERO;
        }
        true
    }
}

/// A self-exclusion's end.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exclusion {
    Until(DateTime<Utc>),
    Indefinite,
}

impl Exclusion {
    fn covers(self, now: DateTime<Utc>) -> bool {
        match self {
            Exclusion::Until(until) => now < until,
            Exclusion::Indefinite => true,
        }
    }

    /// Whether `self` ends no earlier than `other`.
    fn at_least(self, other: Exclusion) -> bool {
        match (self, other) {
            (Exclusion::Indefinite, _) => true,
            (Exclusion::Until(_), Exclusion::Indefinite) => false,
            (Exclusion::Until(a), Exclusion::Until(b)) => a >= b,
        }
    }

    /// The end as the API shows it: `None` for indefinite.
    pub fn until(self) -> Option<DateTime<Utc>> {
        match self {
            Exclusion::Until(until) => Some(until),
            Exclusion::Indefinite => None,
        }
    }
}

/// The protections a wallet has. A wallet that never had one has none of this at all
/// (`Option<Box<Protection>>`), so it costs an idle cached wallet nothing.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Protection {
    /// At most one per kind and period, in kind and period order.
    pub limits: Vec<Limit>,
    pub exclusion: Option<Exclusion>,
    /// The reason of the lock, while locked.
    pub lock: Option<String>,
    /// The latest time an event of the wallet was decided at. A later command is decided,
    /// and its event stamped, no earlier ([`Protection::time`]): two requests near
    /// midnight may reach the wallet in the other order than their clocks say (or from
    /// two instances whose clocks differ), and a period's use must not be booked in a
    /// period already left behind.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock: Option<DateTime<Utc>>,
}

/// What a command would add to the limits of one kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Counted {
    pub kind: LimitKind,
    pub amount: Decimal,
    pub at: DateTime<Utc>,
}

/// The movements of `event` that count towards limits, with the event's time. `None` of
/// them for an event decided without protection (no `at`).
pub fn counted(event: &WalletEvent) -> Vec<Counted> {
    use crate::money::Part;
    use crate::wallet::Flow;
    let c = |kind, amount, at| Counted { kind, amount, at };
    // Limits count cash only (the contract's "Bonus money"): the cash postings, worked out
    // only for the events that count.
    let postings = || event.postings();
    // What the event's bets lost in cash: their cash stakes, less what bets paid in cash
    // (a win without a bet is not counted).
    let loss = |postings: &[crate::wallet::Posting]| -> Decimal {
        postings
            .iter()
            .map(|p| match p.flow {
                Flow::Stake => -p.amount,
                Flow::Payout(None) if p.part == Part::Available => -p.amount,
                _ => Decimal::ZERO,
            })
            .sum()
    };
    match event {
        WalletEvent::FundsDeposited {
            amount,
            at: Some(at),
            ..
        } => vec![c(LimitKind::Deposit, *amount, *at)],
        WalletEvent::FundsReserved { at: Some(at), .. } => {
            let cash = postings()
                .iter()
                .filter(|p| p.part == Part::Reserved && p.flow == Flow::Reserve)
                .map(|p| p.amount)
                .sum();
            vec![c(LimitKind::Wager, cash, *at)]
        }
        WalletEvent::ReservationSettled { at: Some(at), .. }
        | WalletEvent::WinCredited { at: Some(at), .. } => {
            vec![c(LimitKind::Loss, loss(&postings()), *at)]
        }
        WalletEvent::RoundClosed {
            lost: l,
            at: Some(at),
            ..
        } if !l.is_empty() => vec![c(LimitKind::Loss, loss(&postings()), *at)],
        WalletEvent::BetSettled { placed_at, .. } => {
            let postings = postings();
            // Its own stake is the first cash stake posted (from available).
            let cash = postings
                .iter()
                .find(|p| p.flow == Flow::Stake && p.part == Part::Available)
                .map_or(Decimal::ZERO, |p| -p.amount);
            vec![
                c(LimitKind::Wager, cash, *placed_at),
                c(LimitKind::Loss, loss(&postings), *placed_at),
            ]
        }
        // Decided without protection: nothing counted.
        WalletEvent::FundsDeposited { at: None, .. }
        | WalletEvent::FundsReserved { at: None, .. }
        | WalletEvent::ReservationSettled { at: None, .. }
        | WalletEvent::WinCredited { at: None, .. } => Vec::new(),
        WalletEvent::WalletOpened { .. }
        | WalletEvent::FundsWithdrawn { .. }
        | WalletEvent::ReservationRefunded { .. }
        | WalletEvent::ReservationExpired { .. }
        | WalletEvent::ReservationVoided { .. }
        | WalletEvent::RoundClosed { .. }
        | WalletEvent::FundsAdjusted { .. }
        | WalletEvent::LimitChanged { .. }
        | WalletEvent::SelfExcluded { .. }
        | WalletEvent::AccountLocked { .. }
        | WalletEvent::AccountUnlocked { .. }
        | WalletEvent::BonusGranted { .. }
        | WalletEvent::BonusForfeited { .. }
        | WalletEvent::FreeRoundsGranted { .. }
        | WalletEvent::FreeRoundsExpired { .. } => Vec::new(),
    }
}

impl Protection {
    /// The time a command arriving at `now` is decided at: `now`, or the wallet's clock if
    /// that is later (see [`Protection::clock`]).
    pub fn time(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        self.clock.map_or(now, |c| c.max(now))
    }

    fn tick(&mut self, at: DateTime<Utc>) {
        self.clock = Some(self.time(at));
    }

    /// Whether the account is locked.
    pub fn is_locked(&self) -> bool {
        self.lock.is_some()
    }

    /// The exclusion in force at `now`, if any.
    pub fn excluded_at(&self, now: DateTime<Utc>) -> Option<Exclusion> {
        self.exclusion.filter(|e| e.covers(now))
    }

    /// The limit of `kind` and `period`, if set.
    pub fn limit(&self, kind: LimitKind, period: LimitPeriod) -> Option<&Limit> {
        self.limits
            .iter()
            .find(|l| l.kind == kind && l.period == period)
    }

    /// Refuses anything while the account is locked (deposits, withdrawals and bets ask).
    pub fn check_unlocked(&self) -> Result<(), WalletError> {
        match &self.lock {
            Some(reason) => Err(WalletError::AccountLocked {
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses a deposit or bet that the lock or the exclusion forbids at `now`.
    pub fn check_allowed(&self, now: DateTime<Utc>) -> Result<(), WalletError> {
        self.check_unlocked()?;
        match self.excluded_at(now) {
            Some(exclusion) => Err(WalletError::SelfExcluded {
                until: exclusion.until(),
            }),
            None => Ok(()),
        }
    }

    /// Refuses `amount` more of `kind` at `now` if it would pass a limit in force.
    /// `open` is added to what is used (a loss check counts the stakes still open).
    pub fn check_limits(
        &self,
        kind: LimitKind,
        amount: Decimal,
        open: Decimal,
        now: DateTime<Utc>,
    ) -> Result<(), WalletError> {
        if amount <= Decimal::ZERO {
            return Ok(());
        }
        for limit in self.limits.iter().filter(|l| l.kind == kind) {
            let Some(cap) = limit.in_force(now) else {
                continue;
            };
            // A period's wins make no room for open stakes: they may settle in the next
            // period, which starts from nothing.
            let used = limit.used_at(now).max(Decimal::ZERO) + open;
            if used + amount > cap {
                return Err(WalletError::LimitReached {
                    kind,
                    period: limit.period,
                    limit: cap,
                    used: used.max(Decimal::ZERO),
                    requested: amount,
                    resets_at: limit.resets_at(now),
                });
            }
        }
        Ok(())
    }

    /// The event of setting (`Some`) or removing (`None`) the limit of `kind` and
    /// `period` at `now`: at once when stricter, after `cooling` otherwise.
    pub fn decide_limit(
        &self,
        kind: LimitKind,
        period: LimitPeriod,
        amount: Option<Decimal>,
        now: DateTime<Utc>,
        cooling: Duration,
    ) -> Result<DateTime<Utc>, WalletError> {
        let in_force = self.limit(kind, period).and_then(|l| l.in_force(now));
        match (in_force, amount) {
            (None, None) => Err(WalletError::LimitNotFound { kind, period }),
            (None, Some(_)) => Ok(now),
            (Some(current), Some(new)) if new <= current => Ok(now),
            (Some(_), _) => Ok(now + cooling),
        }
    }

    /// Refuses an exclusion that would end before the one in force at `now`.
    pub fn check_exclusion(&self, new: Exclusion, now: DateTime<Utc>) -> Result<(), WalletError> {
        match self.excluded_at(now) {
            Some(current) if !new.at_least(current) => Err(WalletError::ExclusionNotShortened {
                until: current.until(),
            }),
            _ => Ok(()),
        }
    }

    /// Folds one of the protection events.
    pub fn apply_change(&mut self, event: &WalletEvent) {
        match event {
            WalletEvent::LimitChanged {
                kind,
                period,
                amount,
                zone,
                effective_at,
                at,
                ..
            } => {
                let (kind, period) = (*kind, *period);
                self.tick(*at);
                self.advance(*at);
                let existing = self
                    .limits
                    .iter()
                    .position(|l| l.kind == kind && l.period == period);
                match (existing, *effective_at <= *at) {
                    (Some(i), true) => {
                        // Stricter, at once: a pending loosening is cancelled.
                        let limit = &mut self.limits[i];
                        limit.pending = None;
                        match amount {
                            Some(amount) => limit.amount = *amount,
                            None => {
                                self.limits.remove(i);
                            }
                        }
                    }
                    (Some(i), false) => {
                        self.limits[i].pending = Some(PendingLimit {
                            amount: *amount,
                            effective_at: *effective_at,
                        });
                    }
                    (None, _) => {
                        if let Some(amount) = amount {
                            self.limits.push(Limit {
                                kind,
                                period,
                                zone: *zone,
                                amount: *amount,
                                pending: None,
                                window: period.window(*zone, *at),
                                used: Decimal::ZERO,
                            });
                            self.limits.sort_by_key(|l| (l.kind, l.period));
                        }
                    }
                }
            }
            WalletEvent::SelfExcluded { until, at, .. } => {
                self.tick(*at);
                self.exclusion = Some(match until {
                    Some(until) => Exclusion::Until(*until),
                    None => Exclusion::Indefinite,
                });
            }
            WalletEvent::AccountLocked { reason, .. } => self.lock = Some(reason.to_string()),
            WalletEvent::AccountUnlocked { .. } => self.lock = None,
            other => unreachable!("not a protection event: {}", other.name()),
        }
    }

    /// Counts `event`'s movements into the limits of their kinds.
    pub fn count(&mut self, event: &WalletEvent) {
        for Counted { kind, amount, at } in counted(event) {
            self.tick(at);
            self.advance(at);
            for limit in self.limits.iter_mut().filter(|l| l.kind == kind) {
                limit.used += amount;
            }
        }
    }

    /// Moves every limit on to `at` (see [`Limit::advance`]).
    fn advance(&mut self, at: DateTime<Utc>) {
        self.limits.retain_mut(|l| l.advance(at));
    }

    /// What the API shows at `now`; `open` is the stakes still open (counted in a loss
    /// limit's use).
    pub fn view(&self, now: DateTime<Utc>, open: Decimal) -> ProtectionView {
        ProtectionView {
            limits: self
                .limits
                .iter()
                .filter(|l| l.in_force(now).is_some())
                .map(|l| {
                    let open = if l.kind == LimitKind::Loss {
                        open
                    } else {
                        Decimal::ZERO
                    };
                    LimitView {
                        kind: l.kind,
                        period: l.period,
                        amount: l.in_force(now).unwrap_or(l.amount),
                        used: l.used_at(now).max(Decimal::ZERO) + open,
                        resets_at: l.resets_at(now),
                        zone: l.zone.name().to_string(),
                        pending: l.pending.clone().filter(|p| now < p.effective_at),
                    }
                })
                .collect(),
            self_excluded: self.excluded_at(now).is_some(),
            excluded_until: self.excluded_at(now).and_then(Exclusion::until),
            locked: self.lock.is_some(),
            lock_reason: self.lock.clone(),
        }
    }
}

/// A movement that the protections may forbid.
#[derive(Debug, Clone, Copy)]
pub(super) enum Movement {
    Deposit(Decimal),
    /// A bet's stake, and what it pays at once (a bet-win's payout; zero for a reserve).
    Bet {
        stake: Decimal,
        payout: Decimal,
    },
}

impl Opened {
    /// When an event decided at `now` is recorded as decided: only a wallet with
    /// protections counts events towards limits.
    pub(super) fn stamp(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.protection.as_deref().map(|p| p.time(now))
    }

    /// Refuses a withdrawal from a locked account (a lock needs no clock).
    pub(super) fn check_unlocked(&self) -> Result<(), WalletError> {
        self.protection
            .as_deref()
            .map_or(Ok(()), Protection::check_unlocked)
    }

    /// Refuses `movement` at `now` if the lock, the exclusion or a limit forbids it.
    pub(super) fn check_protection(
        &self,
        now: DateTime<Utc>,
        movement: Movement,
    ) -> Result<(), WalletError> {
        let Some(p) = self.protection.as_deref() else {
            return Ok(());
        };
        let now = p.time(now);
        p.check_allowed(now)?;
        match movement {
            Movement::Deposit(amount) => {
                p.check_limits(LimitKind::Deposit, amount, Decimal::ZERO, now)
            }
            Movement::Bet { stake, payout } => {
                p.check_limits(LimitKind::Wager, stake, Decimal::ZERO, now)?;
                p.check_limits(LimitKind::Loss, stake - payout, self.balance.reserved, now)
            }
        }
    }

    /// The rules of the protection commands (`decide` sends only those here).
    pub(super) fn decide_protection(
        &self,
        command: WalletCommand,
    ) -> Result<WalletEvent, WalletError> {
        let none = Protection::default();
        let p = self.protection.as_deref().unwrap_or(&none);
        // Decided no earlier than the wallet's clock (see `Protection::clock`).
        let mut command = command;
        if let WalletCommand::SetLimit { now, .. } | WalletCommand::Exclude { now, .. } =
            &mut command
        {
            *now = p.time(*now);
        }
        match command {
            WalletCommand::SetLimit {
                transaction_id,
                kind,
                period,
                amount,
                currency,
                zone,
                cooling_s,
                now,
                by,
            } => {
                let amount = amount
                    .map(|a| self.money(a, currency, Money::new))
                    .transpose()?;
                let effective_at = p.decide_limit(
                    kind,
                    period,
                    amount,
                    now,
                    Duration::seconds(i64::from(cooling_s)),
                )?;
                // A limit keeps the zone it was first set in; a new one takes today's.
                let zone = p.limit(kind, period).map_or(zone, |l| l.zone);
                Ok(WalletEvent::LimitChanged {
                    transaction_id,
                    kind,
                    period,
                    amount,
                    zone,
                    effective_at,
                    at: now,
                    by,
                })
            }
            WalletCommand::Exclude {
                transaction_id,
                until,
                now,
                by,
            } => {
                let exclusion = match until {
                    Some(until) if until <= now => {
                        return Err(WalletError::ExclusionInPast { until })
                    }
                    Some(until) => Exclusion::Until(until),
                    None => Exclusion::Indefinite,
                };
                p.check_exclusion(exclusion, now)?;
                Ok(WalletEvent::SelfExcluded {
                    transaction_id,
                    until,
                    at: now,
                    by,
                })
            }
            WalletCommand::Lock {
                transaction_id,
                reason,
                by,
            } => Ok(WalletEvent::AccountLocked {
                transaction_id,
                reason,
                by,
            }),
            WalletCommand::Unlock {
                transaction_id,
                reason,
                by,
            } => Ok(WalletEvent::AccountUnlocked {
                transaction_id,
                reason,
                by,
            }),
            other => unreachable!("not a protection command: {}", other.name()),
        }
    }

    /// Folds a change of the protections (`Wallet::apply` sends them here).
    pub(super) fn change_protection(&mut self, event: &WalletEvent) {
        self.protection
            .get_or_insert_with(Default::default)
            .apply_change(event);
    }

    /// Counts what `event` moved towards the wallet's limits, if it has any.
    pub(super) fn count_limits(&mut self, event: &WalletEvent) {
        if let Some(p) = self.protection.as_deref_mut() {
            p.count(event);
        }
    }
}

/// A limit as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LimitView {
    pub kind: LimitKind,
    pub period: LimitPeriod,
    /// In force now.
    pub amount: Decimal,
    pub used: Decimal,
    pub resets_at: DateTime<Utc>,
    pub zone: String,
    pub pending: Option<PendingLimit>,
}

/// A wallet's protections as the API shows them.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProtectionView {
    pub limits: Vec<LimitView>,
    pub self_excluded: bool,
    /// The exclusion's end; absent while excluded means indefinitely.
    pub excluded_until: Option<DateTime<Utc>>,
    pub locked: bool,
    pub lock_reason: Option<String>,
}

#[cfg(test)]
mod tests;
