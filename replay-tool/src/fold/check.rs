//! Each event checked before it is applied: its shape, its amounts, the reservation or
//! round it names; and what it moves (its [`Deltas`]), worked out from the event's own
//! amounts, apart from the domain's postings, so the two check each other.

use super::*;

impl WalletFold {
    /// Parses `event` and works out what it does, or the rule that stops it. Long because
    /// it has one arm per event kind, each a few checks in the order the domain decides
    /// them; splitting it would part an event's checks from each other.
    pub(super) fn parse(
        &self,
        event: &LoggedEvent,
    ) -> Result<(WalletEvent, Deltas), (ViolationKind, String)> {
        use ViolationKind::*;
        if event.wallet_id != self.wallet_id {
            return Err((Malformed, format!("an event of wallet {}", event.wallet_id)));
        }
        let payload = event.decode().map_err(|e| (Malformed, e.to_string()))?;
        let currency = match (&payload, self.wallet.balance()) {
            (
                WalletEvent::WalletOpened {
                    wallet_id,
                    currency,
                    ..
                },
                None,
            ) => {
                if *wallet_id != self.wallet_id {
                    return Err((Malformed, format!("opens wallet {wallet_id}")));
                }
                *currency
            }
            (WalletEvent::WalletOpened { .. }, Some(_)) => {
                return Err((OpenedTwice, "the wallet is already open".into()))
            }
            (_, None) => {
                return Err((NotOpened, format!("{} before WalletOpened", payload.name())))
            }
            (_, Some(balance)) => balance.currency,
        };
        let mut d = Deltas::new(currency);
        let positive = |what: &str, amount: Decimal, zero_ok: bool| {
            let ok = (amount > Decimal::ZERO || (zero_ok && amount.is_zero()))
                && amount.normalize().scale() <= currency.scale();
            if ok {
                Ok(())
            } else {
                Err((
                    BadAmount,
                    format!("{what} {amount} is not a valid {} amount", currency.code()),
                ))
            }
        };
        // A free bet (one that uses a free-rounds grant) stakes nothing.
        let free = |bet: &domain::ReservationId| {
            payload
                .bonus_moves()
                .and_then(|(m, _, _)| m.placed_free(bet))
                .is_some()
                || self
                    .wallet
                    .reservation(bet)
                    .is_some_and(|r| r.free_rounds.is_some())
        };
        match &payload {
            WalletEvent::WalletOpened { .. } => {}
            WalletEvent::FundsDeposited { amount, .. } => {
                positive("deposit", *amount, false)?;
                d.available = *amount;
                d.flows.deposited = *amount;
            }
            WalletEvent::FundsWithdrawn { amount, .. } => {
                positive("withdrawal", *amount, false)?;
                d.available = -*amount;
                d.flows.withdrawn = *amount;
            }
            WalletEvent::FundsReserved {
                reservation_id,
                amount,
                round_id,
                ..
            } => {
                positive("stake", *amount, free(reservation_id))?;
                self.check_unused(reservation_id)?;
                d.bets.push((round_id.clone(), true));
                d.available = -*amount;
                d.reserved = *amount;
                d.open = *amount;
            }
            WalletEvent::ReservationSettled {
                reservation_id,
                stake,
                payout,
                ..
            } => {
                positive("stake", *stake, free(reservation_id))?;
                positive("payout", *payout, true)?;
                d.game = Some(self.take_stake(&mut d, reservation_id, *stake, "settles")?);
                d.available = *payout;
                d.flows.payouts = *payout;
            }
            WalletEvent::ReservationRefunded {
                reservation_id,
                amount,
                ..
            }
            | WalletEvent::ReservationExpired {
                reservation_id,
                amount,
                ..
            } => {
                let held = self.open_amount(reservation_id, "closes")?;
                if *amount != held.amount {
                    d.mismatches.push((
                        AmountMismatch,
                        format!(
                            "{} names {amount}, the reservation holds {}",
                            payload.name(),
                            held.amount
                        ),
                    ));
                }
                d.bets.push((held.round_id.clone(), false));
                d.available = held.amount;
                d.reserved = -held.amount;
                d.open = -held.amount;
            }
            WalletEvent::ReservationVoided { reservation_id, .. } => {
                if self.wallet.reservation(reservation_id).is_some() {
                    d.mismatches.push((
                        ReservationReused,
                        format!("voids reservation {reservation_id}, which was made"),
                    ));
                }
            }
            WalletEvent::WinCredited {
                reservation_id,
                settled_stake,
                amount,
                kind,
                ..
            } => {
                positive("win", *amount, true)?;
                match (reservation_id, settled_stake) {
                    (Some(id), Some(stake)) => {
                        positive("stake", *stake, free(id))?;
                        d.game = Some(self.take_stake(&mut d, id, *stake, "settles")?);
                    }
                    (Some(id), None) => match self.wallet.reservation(id) {
                        Some(r) if r.state == ReservationState::Settled => {
                            d.game = Some(r.game_id.clone());
                        }
                        // A compacted fold has forgotten settled bets: it cannot tell.
                        None if self.compact => {}
                        other => d.mismatches.push((
                            WinForUnsettledBet,
                            format!(
                                "a later win for bet {id}, which is {}",
                                other.map_or("unknown".to_string(), |r| r.state.to_string())
                            ),
                        )),
                    },
                    (None, Some(_)) => {
                        return Err((Malformed, "a settled stake without its bet".into()))
                    }
                    (None, None) => {}
                }
                d.available += *amount;
                if kind.is_some() {
                    d.flows.betless_wins = *amount;
                } else {
                    d.flows.payouts = *amount;
                }
            }
            WalletEvent::RoundClosed { .. } => {}
            WalletEvent::BetSettled {
                reservation_id,
                game_id,
                stake,
                payout,
                ..
            } => {
                positive("stake", *stake, free(reservation_id))?;
                positive("payout", *payout, true)?;
                self.check_unused(reservation_id)?;
                d.available = *payout - *stake;
                d.flows.stakes_settled = *stake;
                d.flows.payouts = *payout;
                d.game = Some(game_id.clone());
            }
            WalletEvent::FundsAdjusted { amount, .. } => {
                positive("adjustment", amount.abs(), false)?;
                d.available = *amount;
                d.flows.adjustments = *amount;
            }
            // They move no money; `check_protection` checks what they allow.
            WalletEvent::LimitChanged { .. }
            | WalletEvent::SelfExcluded { .. }
            | WalletEvent::AccountLocked { .. }
            | WalletEvent::AccountUnlocked { .. } => {}
            WalletEvent::BonusGranted { amount, terms, .. } => {
                positive("bonus", *amount, false)?;
                if terms.wagering_multiplier == 0 {
                    return Err((Malformed, "a wagering multiplier of 0".into()));
                }
            }
            WalletEvent::FreeRoundsGranted {
                rounds, bet_value, ..
            } => {
                positive("bet value", *bet_value, false)?;
                if *rounds < 1 {
                    return Err((Malformed, format!("a grant of {rounds} free rounds")));
                }
            }
            // What it moves is in its bonus moves, below.
            WalletEvent::BonusForfeited { .. } | WalletEvent::FreeRoundsExpired { .. } => {}
        }
        self.bonus_deltas(&payload, &mut d)?;
        // A bet, win or rollback in a closed round (closing it again is a repeat).
        if let Some(round_id) = payload.round_id() {
            let closed = self.wallet.round(round_id).is_some_and(|r| r.closed);
            let repeat_close =
                matches!(&payload, WalletEvent::RoundClosed { lost, .. } if lost.is_empty());
            let adjustment = matches!(&payload, WalletEvent::FundsAdjusted { .. });
            if closed && !repeat_close && !adjustment {
                d.mismatches.push((
                    InClosedRound,
                    format!("{} in round {round_id}, which is closed", payload.name()),
                ));
            }
        }
        for lost in payload.lost() {
            let game = self.take_stake(&mut d, &lost.reservation_id, lost.stake, "loses")?;
            d.game.get_or_insert(game);
        }
        d.game = payload.game_id().cloned().or(d.game.take());
        Ok((payload, d))
    }

    /// A bet's stake leaves the wallet (settled or lost): the bet must be open and hold
    /// `stake`. Returns the bet's game.
    pub(super) fn take_stake(
        &self,
        d: &mut Deltas,
        id: &domain::ReservationId,
        stake: Decimal,
        verb: &str,
    ) -> Result<GameId, (ViolationKind, String)> {
        let held = self.open_amount(id, verb)?;
        if stake != held.amount {
            d.mismatches.push((
                ViolationKind::AmountMismatch,
                format!(
                    "{verb} bet {id} for stake {stake}, the bet holds {}",
                    held.amount
                ),
            ));
        }
        d.bets.push((held.round_id.clone(), false));
        d.reserved -= held.amount;
        d.open -= held.amount;
        d.flows.stakes_settled += stake;
        Ok(held.game_id.clone())
    }

    /// Corrects `d` (worked out above as if every stake and payout were cash) by what the
    /// event's bonus moves say, by this fold's own arithmetic: the bonus parts of stakes
    /// and payouts move to the bonus parts of the balance, conversions to available, and
    /// grants and forfeits are flows of their own. Checks that a new stake comes from the
    /// active award, that each award's own tally stays at or above zero, and that no
    /// conversion passes the award's cap.
    pub(super) fn bonus_deltas(
        &self,
        payload: &WalletEvent,
        d: &mut Deltas,
    ) -> Result<(), (ViolationKind, String)> {
        use domain::wallet::bonus::StakeMove;
        use ViolationKind::*;
        let mut tally = d.awards.clone();
        // A grant starts the award's tally, even queued (moving nothing yet).
        if let WalletEvent::BonusGranted {
            bonus_id,
            amount,
            terms,
            ..
        } = payload
        {
            tally.insert(
                bonus_id.clone(),
                AwardTally {
                    balance: Decimal::ZERO,
                    amount: *amount,
                    cap: terms.max_conversion,
                },
            );
            d.awards = tally.clone();
        }
        let Some((moves, how, own)) = payload.bonus_moves() else {
            return Ok(());
        };
        // Free-rounds winnings: never cash when won (the grant keeps them, or no one);
        // when the grant ends, cash (a free-spin win) or a new award's amount.
        for m in &moves.free_rounds {
            not_negative(m.winnings)?;
            d.available -= m.winnings;
            d.flows.payouts -= m.winnings;
        }
        for e in &moves.free_rounds_ended {
            match &e.award {
                None => {
                    d.available += e.winnings;
                    d.flows.betless_wins += e.winnings;
                }
                Some(terms) => {
                    tally.insert(
                        e.grant_id.clone(),
                        AwardTally {
                            balance: Decimal::ZERO,
                            amount: e.winnings,
                            cap: terms.max_conversion,
                        },
                    );
                }
            }
        }
        for s in &moves.stakes {
            let b = s.amount;
            // Zero: a cash bet placed under the active award (its wagering counts there).
            not_negative(b)?;
            entry(&mut tally, &self.awards, &s.bonus_id)?;
            let taken = match how {
                StakeMove::Settle if Some(&s.reservation_id) == own => StakeMove::Take,
                other => other,
            };
            match taken {
                StakeMove::Reserve | StakeMove::Take => {
                    let active = self
                        .wallet
                        .awards()
                        .find(|a| a.bonus_id == s.bonus_id)
                        .is_some_and(|a| a.status == domain::AwardStatus::Active);
                    if !active {
                        d.mismatches.push((
                            StakeFromInactiveAward,
                            format!("stakes {b} from award {}, which is not active", s.bonus_id),
                        ));
                    }
                    entry(&mut tally, &self.awards, &s.bonus_id)?.balance -= b;
                    if taken == StakeMove::Reserve {
                        d.available += b;
                        d.reserved -= b;
                        d.open -= b;
                        d.bonus -= b;
                        d.bonus_reserved += b;
                    } else {
                        d.available += b;
                        d.bonus -= b;
                    }
                }
                StakeMove::Settle => {
                    d.reserved += b;
                    d.open += b;
                    d.bonus_reserved -= b;
                }
                StakeMove::Return => {
                    d.available -= b;
                    d.reserved += b;
                    d.open += b;
                    d.bonus_reserved -= b;
                    d.bonus += b;
                    entry(&mut tally, &self.awards, &s.bonus_id)?.balance += b;
                }
            }
        }
        if let Some(p) = &moves.payout {
            d.available -= p.amount;
            d.bonus += p.amount;
            entry(&mut tally, &self.awards, &p.bonus_id)?.balance += p.amount;
        }
        for l in &moves.lapsed {
            d.bonus -= l.amount;
            d.flows.bonus_forfeited += l.amount;
            entry(&mut tally, &self.awards, &l.bonus_id)?.balance -= l.amount;
        }
        for e in &moves.ended {
            let t = entry(&mut tally, &self.awards, &e.bonus_id)?;
            if let Some(cap) = t.cap.filter(|cap| e.converted > *cap) {
                d.mismatches.push((
                    ConversionAboveCap,
                    format!(
                        "award {} converts {}, above its cap of {cap}",
                        e.bonus_id, e.converted
                    ),
                ));
            }
            t.balance -= e.converted + e.forfeited;
            d.bonus -= e.converted + e.forfeited;
            d.available += e.converted;
            d.flows.bonus_forfeited += e.forfeited;
        }
        for w in &moves.wagered {
            entry(&mut tally, &self.awards, &w.bonus_id)?;
        }
        if let Some(a) = &moves.activated {
            let t = entry(&mut tally, &self.awards, &a.bonus_id)?;
            if a.amount != t.amount {
                d.mismatches.push((
                    AwardMismatch,
                    format!(
                        "award {} activates with {}, granted {}",
                        a.bonus_id, a.amount, t.amount
                    ),
                ));
            }
            t.balance += a.amount;
            d.bonus += a.amount;
            d.flows.bonus_granted += a.amount;
        }
        for (id, t) in &tally {
            if t.balance < Decimal::ZERO {
                return Err((
                    AwardNegative,
                    format!("award {id} would hold {}", t.balance),
                ));
            }
        }
        d.awards = tally;
        Ok(())
    }

    /// A new bet's id (a reserve's, a bet-win's) was never used nor voided.
    pub(super) fn check_unused(
        &self,
        id: &domain::ReservationId,
    ) -> Result<(), (ViolationKind, String)> {
        if self.wallet.reservation(id).is_some() || self.wallet.is_voided(id) {
            return Err((
                ViolationKind::ReservationReused,
                format!("bet id {id} was used before"),
            ));
        }
        Ok(())
    }

    pub(super) fn open_amount(
        &self,
        id: &domain::ReservationId,
        verb: &str,
    ) -> Result<&domain::Reservation, (ViolationKind, String)> {
        match self.wallet.reservation(id) {
            None => Err((
                ViolationKind::UnknownReservation,
                format!("{verb} reservation {id}, which was never made"),
            )),
            Some(r) if r.state != ReservationState::Open => Err((
                ViolationKind::ClosedReservation,
                format!("{verb} reservation {id}, which is already {:?}", r.state),
            )),
            Some(r) => Ok(r),
        }
    }
}

/// The fold's tally of award `id`: as this event left it so far, else as the fold holds it.
fn entry<'t>(
    tally: &'t mut BTreeMap<domain::BonusId, AwardTally>,
    folded: &BTreeMap<domain::BonusId, AwardTally>,
    id: &domain::BonusId,
) -> Result<&'t mut AwardTally, (ViolationKind, String)> {
    if !tally.contains_key(id) {
        let known = folded.get(id).cloned();
        let known = known.ok_or_else(|| {
            (
                ViolationKind::AwardMismatch,
                format!("names award {id}, never granted"),
            )
        })?;
        tally.insert(id.clone(), known);
    }
    Ok(tally.get_mut(id).expect("inserted"))
}

fn not_negative(b: Decimal) -> Result<(), (ViolationKind, String)> {
    if b >= Decimal::ZERO {
        Ok(())
    } else {
        Err((ViolationKind::BadAmount, format!("a bonus stake of {b}")))
    }
}
