//! Player protection checked as the log is folded: each limit's use counted per calendar
//! period as the domain counts it, and what the event's metadata recorded compared.

use super::*;

impl WalletFold {
    /// The protection rules `payload` breaks, checked on the state before it (the lock,
    /// the exclusion, the limits in force at its time) with this fold's own sums of what
    /// each limit's period used. Moves the sums on. Long because each protection event
    /// and each counted movement has its arm; they share the sums, so they stay together.
    pub(super) fn check_protection(
        &mut self,
        event: &LoggedEvent,
        payload: &WalletEvent,
    ) -> Vec<(ViolationKind, String)> {
        let mut found = Vec::new();
        let Some(p) = self.wallet.protection() else {
            if let WalletEvent::LimitChanged { .. } = payload {
                self.tally_limit(payload);
            }
            return found;
        };
        let counted = protection::counted(payload);
        let (staking, depositing, withdrawing) = match payload {
            WalletEvent::FundsReserved { .. } | WalletEvent::BetSettled { .. } => {
                (true, false, false)
            }
            WalletEvent::FundsDeposited { .. } => (false, true, false),
            WalletEvent::FundsWithdrawn { .. } => (false, false, true),
            _ => (false, false, false),
        };
        let decided_at = match payload {
            WalletEvent::LimitChanged { at, .. } | WalletEvent::SelfExcluded { at, .. } => {
                Some(*at)
            }
            _ => counted.first().map(|c| c.at),
        };
        if (staking || depositing) && decided_at.is_none() {
            found.push((
                ViolationKind::EventTime,
                format!("{} of a protected wallet without its time", payload.name()),
            ));
        }
        if let (Some(at), Some(last)) = (decided_at, self.last_at) {
            if at < last {
                found.push((
                    ViolationKind::EventTime,
                    format!(
                        "{} decided at {at}, before an earlier event's {last}",
                        payload.name()
                    ),
                ));
            }
        }
        if let Some(at) = decided_at {
            self.last_at = Some(self.last_at.map_or(at, |l| l.max(at)));
        }
        let at = decided_at.unwrap_or(event.recorded_at);
        if (staking || depositing || withdrawing) && p.is_locked() {
            found.push((
                ViolationKind::WhileLocked,
                format!("{} while the account was locked", payload.name()),
            ));
        }
        if (staking || depositing) && p.excluded_at(at).is_some() {
            found.push((
                ViolationKind::WhileExcluded,
                format!(
                    "{} at {at} while the player was self-excluded",
                    payload.name()
                ),
            ));
        }
        // What was in force before the event (a change applies from its event on).
        let caps: Vec<(LimitKind, LimitPeriod, Option<Decimal>)> = p
            .limits
            .iter()
            .map(|l| (l.kind, l.period, l.in_force(at)))
            .collect();
        // A bet is checked as if it lost, with every stake still open, against what the
        // period had lost before it (its wins making no room: see the domain's rule).
        let loss_before: BTreeMap<LimitPeriod, Decimal> = self
            .tallies
            .iter()
            .filter(|((k, _), _)| *k == LimitKind::Loss)
            .map(|((_, period), t)| {
                let used = if at >= t.window.end {
                    Decimal::ZERO
                } else {
                    t.used
                };
                (*period, used.max(Decimal::ZERO))
            })
            .collect();
        let reserved_before = self.wallet.balance().map_or(Decimal::ZERO, |b| b.reserved);
        // Limits count cash only: a bet's cash part, and its payout's cash share.
        let bonus_share = payload
            .bonus_moves()
            .and_then(|(m, _, _)| m.payout.as_ref())
            .map_or(Decimal::ZERO, |p| p.amount);
        let bet_loss = match payload {
            WalletEvent::FundsReserved { amount, .. } => *amount - payload.funded_bonus(),
            WalletEvent::BetSettled { stake, payout, .. } => {
                (*stake - payload.funded_bonus()) - (*payout - bonus_share)
            }
            _ => Decimal::ZERO,
        };
        self.tally_limit(payload);
        for c in &counted {
            // Time moves every limit on, not only those of the movement's kind.
            for ((kind, period), tally) in self.tallies.iter_mut() {
                if c.at >= tally.window.end {
                    let zone = self
                        .wallet
                        .protection()
                        .and_then(|p| p.limit(*kind, *period))
                        .map_or(chrono_tz::Tz::UTC, |l| l.zone);
                    tally.window = period.window(zone, c.at);
                    tally.used = Decimal::ZERO;
                }
                if *kind == c.kind {
                    tally.used += c.amount;
                }
            }
        }
        // A deposit or bet is checked against the limits of what it adds to; a settle that
        // loses is never refused, so a loss limit is checked only when a bet is placed.
        let checked: &[LimitKind] = match payload {
            WalletEvent::FundsDeposited { .. } => &[LimitKind::Deposit],
            WalletEvent::FundsReserved { .. } => &[LimitKind::Wager, LimitKind::Loss],
            WalletEvent::BetSettled { .. } if bet_loss > Decimal::ZERO => {
                &[LimitKind::Wager, LimitKind::Loss]
            }
            WalletEvent::BetSettled { .. } => &[LimitKind::Wager],
            _ => &[],
        };
        for (kind, period, cap) in caps {
            let (Some(cap), true) = (cap, checked.contains(&kind)) else {
                continue;
            };
            let Some(tally) = self.tallies.get(&(kind, period)) else {
                continue;
            };
            let used = if kind == LimitKind::Loss {
                loss_before.get(&period).copied().unwrap_or_default() + reserved_before + bet_loss
            } else if at >= tally.window.end {
                Decimal::ZERO
            } else {
                tally.used
            };
            if used > cap {
                found.push((
                    ViolationKind::LimitPassed,
                    format!(
                        "{} takes the {} {} limit of {cap} to {used}",
                        payload.name(),
                        period.as_str(),
                        kind.as_str()
                    ),
                ));
            }
        }
        found
    }

    /// Starts the fold's own sum for a limit that `payload` creates; drops the sums of
    /// limits that are gone.
    pub(super) fn tally_limit(&mut self, payload: &WalletEvent) {
        if let WalletEvent::LimitChanged {
            kind,
            period,
            amount: Some(_),
            zone,
            at,
            ..
        } = payload
        {
            let exists = self
                .wallet
                .protection()
                .and_then(|p| p.limit(*kind, *period))
                .is_some_and(|l| l.in_force(*at).is_some());
            if !exists {
                self.tallies.insert(
                    (*kind, *period),
                    Tally {
                        window: period.window(*zone, *at),
                        used: Decimal::ZERO,
                    },
                );
            }
        }
    }
}
