//! What a compacted state holds, and how it stands for the full one: the write path
//! keeps wallets compacted in its cache (closed reservations and rounds forgotten, see
//! [`Wallet::compact`]), knows which commands such a state can decide ([`Wallet::holds`]),
//! puts back from the log what a command names ([`Wallet::restore_round`],
//! [`Wallet::restore_reservation`]), and folds events logged after it
//! ([`Wallet::apply_logged`]). None of it is a rule of money: those are in `decide`.

use cqrs_es::Aggregate;

use super::*;

impl Wallet {
    /// Forgets the closed reservations, keeping the open ones and the voided ids, and the
    /// closed and long-idle rounds (see [`round`]): what a cache holds of an idle wallet,
    /// so its memory does not grow with its history.
    ///
    /// A compacted wallet cannot tell a closed reservation from one never made, so a
    /// command naming a reservation it does not hold (see [`Wallet::holds`]) must be
    /// decided on the full state, loaded from the log. A reserve under a closed id is
    /// still refused: its id is its transaction id, which the log holds once per wallet.
    pub fn compact(&mut self) {
        if let Some(o) = self.opened.as_mut() {
            o.reservations
                .retain(|_, r| r.state == ReservationState::Open);
            if o.reservations.is_empty() {
                // An emptied map keeps its first node (room for eleven): let it go.
                o.reservations = BTreeMap::new();
            }
            o.compact_rounds();
        }
    }

    /// Whether this state, as a cache holds it, may stand for `full` (the log folded to the
    /// same event): the same wallet, balance, voided ids, limits and round clock; every
    /// reservation it holds equal to `full`'s, and every open one held; every round it
    /// holds equal to `full`'s but for when it was last used (a round put back from the
    /// log does not know it), and every round with an open bet held. A cache that forgets
    /// step by step (after each batch) may keep other idle rounds than one compaction of
    /// `full` would, and both decide what they hold as `full` does. What `reconcile`
    /// checks a stored snapshot against.
    pub fn stands_for(&self, full: &Wallet) -> bool {
        let (o, f) = match (&self.opened, &full.opened) {
            (None, None) => return true,
            (Some(o), Some(f)) => (o, f),
            _ => return false,
        };
        let same_wallet = o.wallet_id == f.wallet_id
            && o.player_id == f.player_id
            && o.balance == f.balance
            && o.voided == f.voided
            && o.round_uses == f.round_uses
            && o.protection == f.protection
            && o.served == f.served
            && o.awards == f.awards
            && o.free_rounds == f.free_rounds;
        let reservations = o
            .reservations
            .iter()
            .all(|(id, r)| f.reservations.get(id) == Some(r))
            && f.reservations
                .iter()
                .filter(|(_, r)| r.state == ReservationState::Open)
                .all(|(id, _)| o.reservations.contains_key(id));
        let rounds = o.rounds.iter().all(|(id, r)| {
            f.rounds.get(id).is_some_and(|g| {
                g.game_id == r.game_id && g.closed == r.closed && g.open_bets == r.open_bets
            })
        }) && f
            .rounds
            .iter()
            .filter(|(_, r)| r.open_bets > 0)
            .all(|(id, _)| o.rounds.contains_key(id));
        same_wallet && reservations && rounds
    }

    /// A compacted copy (see [`Wallet::compact`]).
    pub fn compacted(&self) -> Wallet {
        let mut wallet = self.clone();
        wallet.compact();
        wallet
    }

    /// Whether this state can decide `command` as the full state would, once compacted:
    /// false when the command names a reservation that is neither held nor voided, a
    /// bet that is not open here (a later win for it needs its round's history), or a
    /// round it must know but does not hold. A command that would open a round this state
    /// does not hold is decided here: see [`Wallet::round_opened_by`].
    pub fn holds(&self, command: &WalletCommand) -> bool {
        match command {
            WalletCommand::Settle { reservation_id, .. }
            | WalletCommand::Refund { reservation_id, .. }
            | WalletCommand::Expire { reservation_id, .. }
            | WalletCommand::Rollback { reservation_id, .. } => {
                self.reservation(reservation_id).is_some() || self.is_voided(reservation_id)
            }
            WalletCommand::Win {
                target: WinTarget::Bet(reservation_id),
                ..
            } => self
                .reservation(reservation_id)
                .is_some_and(|r| r.state == ReservationState::Open),
            // A win for the round alone is split by all the round's bets when bonus money
            // may have paid some (see `round`): only the full state holds them all.
            WalletCommand::Win {
                target: WinTarget::Round,
                round_id,
                ..
            } => {
                self.round(round_id).is_some()
                    && self.awards().next().is_none()
                    && self.free_rounds().next().is_none()
            }
            WalletCommand::Adjust {
                round_id: Some(round_id),
                ..
            } => self.round(round_id).is_some(),
            WalletCommand::Win {
                target: WinTarget::Betless { .. },
                ..
            }
            | WalletCommand::Adjust { round_id: None, .. }
            | WalletCommand::Open { .. }
            | WalletCommand::Deposit { .. }
            | WalletCommand::Withdraw { .. }
            | WalletCommand::Reserve { .. }
            | WalletCommand::CloseRound { .. }
            | WalletCommand::BetWin { .. }
            | WalletCommand::SetLimit { .. }
            | WalletCommand::Exclude { .. }
            | WalletCommand::Lock { .. }
            | WalletCommand::Unlock { .. }
            | WalletCommand::GrantBonus { .. }
            | WalletCommand::ForfeitBonus { .. }
            | WalletCommand::ExpireBonus { .. }
            | WalletCommand::GrantFreeRounds { .. }
            | WalletCommand::FreeRoundBet { .. }
            | WalletCommand::ExpireFreeRounds { .. } => true,
        }
    }

    /// Whether only the full state can decide `command` on this wallet, whatever is put
    /// back: a win for the round alone in a wallet with bonus awards or free rounds, split
    /// by every bet of the round (see `round`), settled ones that a cache forgot included.
    pub fn needs_full_state(&self, command: &WalletCommand) -> bool {
        matches!(
            command,
            WalletCommand::Win {
                target: WinTarget::Round,
                ..
            }
        ) && (self.awards().next().is_some() || self.free_rounds().next().is_some())
    }

    /// What the full state knows for `command` and a compacted one may have forgotten
    /// (see [`Wallet::holds`]): the reservation it names and the round it names. Put back
    /// from the log ([`Wallet::restore_reservation`], and [`Wallet::restore_round`] for
    /// this round and for the round of the reservation put back), they let this state
    /// decide the command as the full state would.
    pub fn named(command: &WalletCommand) -> (Option<&ReservationId>, Option<&RoundId>) {
        match command {
            WalletCommand::Settle { reservation_id, .. }
            | WalletCommand::Refund { reservation_id, .. }
            | WalletCommand::Expire { reservation_id, .. } => (Some(reservation_id), None),
            WalletCommand::Rollback {
                reservation_id,
                round_id,
                ..
            }
            | WalletCommand::Win {
                target: WinTarget::Bet(reservation_id),
                round_id,
                ..
            } => (Some(reservation_id), Some(round_id)),
            WalletCommand::Win { round_id, .. }
            | WalletCommand::Adjust {
                round_id: Some(round_id),
                ..
            } => (None, Some(round_id)),
            // A bet or a close names a round it may open: see `unheld_round`.
            WalletCommand::Adjust { round_id: None, .. }
            | WalletCommand::Open { .. }
            | WalletCommand::Deposit { .. }
            | WalletCommand::Withdraw { .. }
            | WalletCommand::Reserve { .. }
            | WalletCommand::CloseRound { .. }
            | WalletCommand::BetWin { .. }
            | WalletCommand::SetLimit { .. }
            | WalletCommand::Exclude { .. }
            | WalletCommand::Lock { .. }
            | WalletCommand::Unlock { .. }
            | WalletCommand::GrantBonus { .. }
            | WalletCommand::ForfeitBonus { .. }
            | WalletCommand::ExpireBonus { .. }
            | WalletCommand::GrantFreeRounds { .. }
            | WalletCommand::FreeRoundBet { .. }
            | WalletCommand::ExpireFreeRounds { .. } => (None, None),
        }
    }

    /// The round that `event`, decided on this state, opens as far as this state knows:
    /// the round it names when this state does not hold it. The write paths record it
    /// with the event, and the log takes one such record per wallet and round, so a
    /// compacted state that forgot a round cannot open it a second time: its event is
    /// refused by the log and the command decided again on the full state.
    pub fn round_opened_by(&self, event: &WalletEvent) -> Option<RoundId> {
        let opened = self.opened.as_ref()?;
        event
            .may_open_round()
            .filter(|round_id| !opened.rounds.contains_key(round_id))
            .cloned()
    }

    /// Folds `event`, read from the log after this state (a snapshot's, or a cache's
    /// behind the log), as [`Aggregate::apply`] does; `opened` is the round the log
    /// recorded the event as opening (its `round_opened` key), if any.
    ///
    /// Returns the round the event names that this state did not hold and that the event
    /// did not open: a round a compacted state forgot, named by an event decided on a
    /// state that held it (another instance's cache, a command decided on the full
    /// state). Folding it puts the round back with what the event names (a bet's game),
    /// which need not be the round's own game, so the loader must put the round back as
    /// the log knows it ([`Wallet::restore_round`]) before this state decides anything.
    pub fn apply_logged(&mut self, event: WalletEvent, opened: Option<&str>) -> Option<RoundId> {
        let forgotten = self
            .round_opened_by(&event)
            .filter(|round| opened != Some(round.as_str()));
        self.apply(event);
        forgotten
    }

    /// The round `command` names (for a win on a bet held here, that bet's own round)
    /// when this state does not hold it. A command that would open it is decided here
    /// when accepted (see [`Wallet::round_opened_by`]); the write path checks a refusal of
    /// it against the log's rounds, and on a second try puts the round back from the log
    /// first (see [`Wallet::restore_round`]).
    pub fn unheld_round<'c>(&'c self, command: &'c WalletCommand) -> Option<&'c RoundId> {
        let round_id = match command {
            WalletCommand::Reserve { round_id, .. }
            | WalletCommand::BetWin { round_id, .. }
            | WalletCommand::FreeRoundBet { round_id, .. }
            | WalletCommand::CloseRound { round_id, .. } => round_id,
            WalletCommand::Win {
                round_id,
                target: WinTarget::Bet(bet),
                ..
            } => self.reservation(bet).map_or(round_id, |r| &r.round_id),
            WalletCommand::Win { round_id, .. } => round_id,
            WalletCommand::Open { .. }
            | WalletCommand::Deposit { .. }
            | WalletCommand::Withdraw { .. }
            | WalletCommand::Settle { .. }
            | WalletCommand::Refund { .. }
            | WalletCommand::Rollback { .. }
            | WalletCommand::Expire { .. }
            | WalletCommand::Adjust { .. }
            | WalletCommand::SetLimit { .. }
            | WalletCommand::Exclude { .. }
            | WalletCommand::Lock { .. }
            | WalletCommand::Unlock { .. }
            | WalletCommand::GrantBonus { .. }
            | WalletCommand::ForfeitBonus { .. }
            | WalletCommand::ExpireBonus { .. }
            | WalletCommand::GrantFreeRounds { .. }
            | WalletCommand::ExpireFreeRounds { .. } => return None,
        };
        self.round(round_id).is_none().then_some(round_id)
    }

    /// Puts back a round that a compacted state forgot, as the log knows it (its game and
    /// whether it is closed), so a command naming it is decided here as on the full state.
    /// A round held already takes the log's game (see [`Wallet::apply_logged`]). Changes
    /// no money; a round put back leaves at the next compaction unless an event names it
    /// meanwhile.
    pub fn restore_round(&mut self, round_id: &RoundId, game_id: Option<GameId>, closed: bool) {
        let Some(o) = self.opened.as_mut() else {
            return;
        };
        let open_bets = o
            .reservations
            .values()
            .filter(|r| r.state == ReservationState::Open && &r.round_id == round_id)
            .count() as u32;
        // Used longest ago: unless an event names it now, the next compaction forgets it
        // again before any idle round the state held.
        let round = o.rounds.get_or_insert(round_id, || Round {
            game_id: None,
            closed,
            last_used: 0,
            open_bets,
        });
        round.closed |= closed;
        if game_id.is_some() {
            round.game_id = game_id;
        }
    }

    /// Puts back a closed reservation that a compacted state forgot, as the log knows it
    /// (its bet, and the state its closing left it in), so a command naming it is decided
    /// here as on the full state; its round must be put back too ([`Wallet::restore_round`]).
    /// Changes no money; it leaves at the next compaction. An open reservation is never
    /// forgotten, so one is not put back, and a held one is left as it is.
    pub fn restore_reservation(&mut self, id: ReservationId, reservation: Reservation) {
        let Some(o) = self.opened.as_mut() else {
            return;
        };
        if reservation.state == ReservationState::Open {
            return;
        }
        o.reservations.entry(id).or_insert(reservation);
    }
}
