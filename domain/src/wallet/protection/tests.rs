//! Given/when/then for every protection rule and refusal (the period boundary in the
//! configured zone, daylight-saving days, a looser limit before and after its cooling-off,
//! a removal, exclusion and lock), and a property test of random histories with a moving
//! clock against a reference model that finds periods by comparing local calendar dates,
//! not by computing boundaries.

use super::*;
use crate::ids::{ClientId, GameId, LockReason, ReservationId, RoundId};
use crate::wallet::tests::{d, funded, rid, tx};
use crate::wallet::{Wallet, WalletCommand, WinTarget};
use chrono::TimeZone;
use cqrs_es::Aggregate;
use proptest::prelude::*;

const COOLING_S: u32 = 24 * 3_600;

fn berlin() -> Tz {
    "Europe/Berlin".parse().unwrap()
}
fn utc(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
}
fn client() -> ClientId {
    ClientId::new("backoffice").unwrap()
}
fn wallet() -> Wallet {
    let mut w = Wallet::default();
    for e in funded() {
        w.apply(e);
    }
    w
}
/// Decides `command` on `w` and applies its event; the event, or the refusal.
fn run(w: &mut Wallet, command: WalletCommand) -> Result<WalletEvent, WalletError> {
    let event = w.decide(command)?;
    w.apply(event.clone());
    Ok(event)
}
fn set_limit(
    id: &str,
    kind: LimitKind,
    period: LimitPeriod,
    amount: Option<&str>,
    zone: Tz,
    now: DateTime<Utc>,
) -> WalletCommand {
    WalletCommand::SetLimit {
        transaction_id: tx(id),
        kind,
        period,
        amount: amount.map(d),
        currency: None,
        zone,
        cooling_s: COOLING_S,
        now,
        by: client(),
    }
}
fn deposit(id: &str, amount: &str, now: DateTime<Utc>) -> WalletCommand {
    WalletCommand::Deposit {
        transaction_id: tx(id),
        amount: d(amount),
        currency: None,
        now,
    }
}
fn bet(id: &str, amount: &str, now: DateTime<Utc>) -> WalletCommand {
    WalletCommand::Reserve {
        reservation_id: rid(id),
        amount: d(amount),
        currency: None,
        game_id: GameId::new("g").unwrap(),
        round_id: RoundId::new(format!("round-{id}")).unwrap(),
        timeout_s: 3_600,
        now,
    }
}
fn settle(id: &str, payout: &str, now: DateTime<Utc>) -> WalletCommand {
    WalletCommand::Settle {
        reservation_id: rid(id),
        transaction_id: tx(&format!("settle-{id}")),
        payout: d(payout),
        currency: None,
        now,
    }
}
fn limit_reached(
    e: Result<WalletEvent, WalletError>,
) -> (LimitKind, LimitPeriod, Decimal, Decimal, DateTime<Utc>) {
    match e {
        Err(WalletError::LimitReached {
            kind,
            period,
            limit,
            used,
            resets_at,
            ..
        }) => (kind, period, limit, used, resets_at),
        other => panic!("expected LIMIT_REACHED, got {other:?}"),
    }
}

#[test]
fn a_deposit_that_would_pass_the_limit_is_refused_with_the_limit_used_and_reset() {
    let mut w = wallet();
    let now = utc(2027, 1, 15, 10, 0, 0);
    run(
        &mut w,
        set_limit(
            "l1",
            LimitKind::Deposit,
            LimitPeriod::Day,
            Some("50"),
            Tz::UTC,
            now,
        ),
    )
    .unwrap();
    let accepted = run(&mut w, deposit("d2", "30", now)).unwrap();
    assert!(
        matches!(accepted, WalletEvent::FundsDeposited { at: Some(t), .. } if t == now),
        "a protected wallet's deposit records its time: {accepted:?}"
    );
    let refused = run(&mut w, deposit("d3", "20.01", now));
    assert_eq!(
        limit_reached(refused),
        (
            LimitKind::Deposit,
            LimitPeriod::Day,
            d("50.00"),
            d("30.00"),
            utc(2027, 1, 16, 0, 0, 0)
        )
    );
    run(&mut w, deposit("d4", "20", now)).expect("exactly up to the limit");
    assert_eq!(w.balance().unwrap().available, d("150.00"));
}

#[test]
fn a_bet_one_second_before_midnight_counts_in_that_day_and_one_after_in_the_next() {
    // Berlin is UTC+1 in January: local midnight is 23:00 UTC.
    let mut w = wallet();
    let evening = utc(2027, 1, 15, 20, 0, 0);
    run(
        &mut w,
        set_limit(
            "l1",
            LimitKind::Wager,
            LimitPeriod::Day,
            Some("10"),
            berlin(),
            evening,
        ),
    )
    .unwrap();
    run(&mut w, bet("b1", "8", utc(2027, 1, 15, 22, 59, 58))).unwrap();
    let before = run(&mut w, bet("b2", "5", utc(2027, 1, 15, 22, 59, 59)));
    let (_, _, _, used, resets_at) = limit_reached(before);
    assert_eq!((used, resets_at), (d("8.00"), utc(2027, 1, 15, 23, 0, 0)));
    run(&mut w, bet("b3", "5", utc(2027, 1, 15, 23, 0, 1))).expect("a new day in Berlin");
    let view = w.protection_view(utc(2027, 1, 15, 23, 0, 2)).unwrap();
    assert_eq!(view.limits[0].used, d("5.00"));
    assert_eq!(view.limits[0].resets_at, utc(2027, 1, 16, 23, 0, 0));
}

#[test]
fn periods_follow_the_zone_across_daylight_saving_changes() {
    let z = berlin();
    // 2027-03-28: clocks go from 02:00 to 03:00; a 23-hour day.
    let spring = LimitPeriod::Day.window(z, utc(2027, 3, 28, 12, 0, 0));
    assert_eq!(spring.start, utc(2027, 3, 27, 23, 0, 0));
    assert_eq!(spring.end, utc(2027, 3, 28, 22, 0, 0));
    // 2027-10-31: clocks go from 03:00 back to 02:00; a 25-hour day.
    let autumn = LimitPeriod::Day.window(z, utc(2027, 10, 31, 12, 0, 0));
    assert_eq!(autumn.end - autumn.start, Duration::hours(25));
    // An ISO week starts on Monday; a month on its first day, in local time.
    let week = LimitPeriod::Week.window(z, utc(2027, 1, 14, 12, 0, 0)); // a Thursday
    assert_eq!(
        (week.start, week.end),
        (utc(2027, 1, 10, 23, 0, 0), utc(2027, 1, 17, 23, 0, 0))
    );
    let month = LimitPeriod::Month.window(z, utc(2027, 3, 31, 22, 30, 0)); // April 1st, 00:30 local
    assert_eq!(month.start, utc(2027, 3, 31, 22, 0, 0));
    assert_eq!(month.end, utc(2027, 4, 30, 22, 0, 0));
    // Where a change skips midnight (Cuba, 2027-03-14: 00:00 -> 01:00), the day starts at
    // the first local time that exists.
    let havana: Tz = "America/Havana".parse().unwrap();
    let skipped = LimitPeriod::Day.window(havana, utc(2027, 3, 14, 12, 0, 0));
    assert_eq!(
        skipped
            .start
            .with_timezone(&havana)
            .format("%H:%M")
            .to_string(),
        "01:00"
    );
    assert_eq!(skipped.end - skipped.start, Duration::hours(23));
}

#[test]
fn a_looser_limit_waits_for_its_cooling_off_period_and_is_shown_pending() {
    let mut w = wallet();
    let t = utc(2027, 1, 15, 10, 0, 0);
    run(
        &mut w,
        set_limit(
            "l1",
            LimitKind::Wager,
            LimitPeriod::Week,
            Some("10"),
            Tz::UTC,
            t,
        ),
    )
    .unwrap();
    let looser = run(
        &mut w,
        set_limit(
            "l2",
            LimitKind::Wager,
            LimitPeriod::Week,
            Some("50"),
            Tz::UTC,
            t,
        ),
    )
    .unwrap();
    assert!(
        matches!(looser, WalletEvent::LimitChanged { effective_at, .. } if effective_at == t + Duration::hours(24))
    );
    let view = w.protection_view(t).unwrap();
    assert_eq!(view.limits[0].amount, d("10.00"), "the old limit holds");
    assert_eq!(
        view.limits[0].pending,
        Some(PendingLimit {
            amount: Some(d("50.00")),
            effective_at: t + Duration::hours(24)
        })
    );
    limit_reached(run(&mut w, bet("b1", "20", t + Duration::hours(23))));
    run(&mut w, bet("b2", "20", t + Duration::hours(24))).expect("the looser limit is in force");
    let view = w.protection_view(t + Duration::hours(24)).unwrap();
    assert_eq!(
        (view.limits[0].amount, view.limits[0].pending.clone()),
        (d("50.00"), None)
    );
    assert_eq!(
        view.limits[0].used,
        d("20.00"),
        "what the week used carries on"
    );
}

#[test]
fn a_stricter_limit_applies_at_once_and_cancels_a_pending_loosening() {
    let mut w = wallet();
    let t = utc(2027, 1, 15, 10, 0, 0);
    for (id, amount) in [("l1", "30"), ("l2", "90"), ("l3", "20")] {
        run(
            &mut w,
            set_limit(
                id,
                LimitKind::Deposit,
                LimitPeriod::Month,
                Some(amount),
                Tz::UTC,
                t,
            ),
        )
        .unwrap();
    }
    let view = w.protection_view(t + Duration::days(3)).unwrap();
    assert_eq!(
        (view.limits[0].amount, view.limits[0].pending.clone()),
        (d("20.00"), None)
    );
    limit_reached(run(&mut w, deposit("d2", "25", t + Duration::days(3))));
}

#[test]
fn a_removal_waits_for_the_cooling_off_period_and_a_missing_limit_cannot_be_removed() {
    let mut w = wallet();
    let t = utc(2027, 1, 15, 10, 0, 0);
    assert!(matches!(
        w.decide(set_limit(
            "l0",
            LimitKind::Loss,
            LimitPeriod::Day,
            None,
            Tz::UTC,
            t
        )),
        Err(WalletError::LimitNotFound {
            kind: LimitKind::Loss,
            period: LimitPeriod::Day
        })
    ));
    run(
        &mut w,
        set_limit(
            "l1",
            LimitKind::Deposit,
            LimitPeriod::Day,
            Some("10"),
            Tz::UTC,
            t,
        ),
    )
    .unwrap();
    run(
        &mut w,
        set_limit("l2", LimitKind::Deposit, LimitPeriod::Day, None, Tz::UTC, t),
    )
    .unwrap();
    limit_reached(run(&mut w, deposit("d2", "11", t + Duration::hours(1))));
    run(&mut w, deposit("d3", "500", t + Duration::hours(24))).expect("removed after cooling off");
    assert!(w
        .protection_view(t + Duration::hours(25))
        .unwrap()
        .limits
        .is_empty());
}

#[test]
fn a_loss_limit_counts_open_stakes_and_settled_losses_not_betless_wins() {
    let mut w = wallet();
    let t = utc(2027, 1, 15, 10, 0, 0);
    run(
        &mut w,
        set_limit(
            "l1",
            LimitKind::Loss,
            LimitPeriod::Day,
            Some("10"),
            Tz::UTC,
            t,
        ),
    )
    .unwrap();
    run(&mut w, bet("b1", "6", t)).unwrap();
    // Two open bets would lose 12 together: the second is refused.
    let (_, _, _, used, _) = limit_reached(run(&mut w, bet("b2", "6", t)));
    assert_eq!(used, d("6.00"), "the open stake counts as lost");
    // The first loses: 6 lost. A free spin pays 50, which does not count.
    run(&mut w, settle("b1", "0", t)).unwrap();
    run(
        &mut w,
        WalletCommand::Win {
            transaction_id: tx("fs"),
            round_id: RoundId::new("fs-round").unwrap(),
            target: WinTarget::Betless {
                kind: crate::wallet::BetlessKind::FreeSpin,
                campaign_id: None,
            },
            amount: d("50"),
            game_id: None,
            round_closed: true,
            currency: None,
            now: t,
        },
    )
    .unwrap();
    limit_reached(run(&mut w, bet("b3", "5", t)));
    // A bet that wins back 4 of the loss makes room.
    run(&mut w, bet("b4", "4", t)).unwrap();
    run(&mut w, settle("b4", "8", t)).unwrap();
    run(&mut w, bet("b5", "6", t)).expect("lost 6 + 4 - 8 = 2, so 6 more fit");
    assert_eq!(w.protection_view(t).unwrap().limits[0].used, d("8.00"));
}

#[test]
fn wins_refunds_and_expiries_are_never_refused_by_a_limit() {
    let mut w = wallet();
    let t = utc(2027, 1, 15, 10, 0, 0);
    run(&mut w, bet("b1", "5", t)).unwrap();
    run(&mut w, bet("b2", "5", t)).unwrap();
    run(&mut w, bet("b3", "5", t)).unwrap();
    run(
        &mut w,
        set_limit(
            "l1",
            LimitKind::Loss,
            LimitPeriod::Day,
            Some("1"),
            Tz::UTC,
            t,
        ),
    )
    .unwrap();
    run(
        &mut w,
        set_limit(
            "l2",
            LimitKind::Wager,
            LimitPeriod::Day,
            Some("1"),
            Tz::UTC,
            t,
        ),
    )
    .unwrap();
    run(&mut w, settle("b1", "20", t)).expect("a win is paid");
    run(
        &mut w,
        WalletCommand::Refund {
            reservation_id: rid("b2"),
            transaction_id: tx("rf"),
        },
    )
    .expect("a refund is paid");
    run(
        &mut w,
        WalletCommand::Expire {
            reservation_id: rid("b3"),
            now: t + Duration::hours(2),
        },
    )
    .expect("an expiry is paid");
}

#[test]
fn a_self_excluded_player_cannot_bet_or_deposit_but_is_paid_and_may_withdraw() {
    let mut w = wallet();
    let t = utc(2027, 1, 15, 10, 0, 0);
    run(&mut w, bet("b1", "5", t)).unwrap();
    let until = t + Duration::days(7);
    let event = run(
        &mut w,
        WalletCommand::Exclude {
            transaction_id: tx("x1"),
            until: Some(until),
            now: t,
            by: client(),
        },
    )
    .unwrap();
    assert!(matches!(&event, WalletEvent::SelfExcluded { by, .. } if *by == client()));
    let excluded = |e| matches!(e, Err(WalletError::SelfExcluded { until: Some(u) }) if u == until);
    assert!(excluded(w.decide(deposit("d2", "1", t))));
    assert!(excluded(w.decide(bet("b2", "1", t))));
    run(&mut w, settle("b1", "12", t)).expect("a win is paid");
    run(
        &mut w,
        WalletCommand::Withdraw {
            transaction_id: tx("w1"),
            amount: d("10"),
            currency: None,
            forfeit_bonuses: false,
        },
    )
    .expect("money owed may leave");
    // It can be lengthened, and made indefinite, but never shortened.
    assert!(matches!(
        w.decide(WalletCommand::Exclude { transaction_id: tx("x2"), until: Some(until - Duration::days(1)), now: t, by: client() }),
        Err(WalletError::ExclusionNotShortened { until: Some(u) }) if u == until
    ));
    assert!(matches!(
        w.decide(WalletCommand::Exclude {
            transaction_id: tx("x3"),
            until: Some(t),
            now: t,
            by: client()
        }),
        Err(WalletError::ExclusionInPast { .. })
    ));
    run(
        &mut w,
        WalletCommand::Exclude {
            transaction_id: tx("x4"),
            until: None,
            now: t,
            by: client(),
        },
    )
    .unwrap();
    assert!(matches!(
        w.decide(WalletCommand::Exclude {
            transaction_id: tx("x5"),
            until: Some(t + Duration::days(3650)),
            now: t,
            by: client()
        }),
        Err(WalletError::ExclusionNotShortened { until: None })
    ));
    assert!(matches!(
        w.decide(deposit("d3", "1", t + Duration::days(3650))),
        Err(WalletError::SelfExcluded { until: None })
    ));
}

#[test]
fn an_exclusion_ends_at_its_time() {
    let mut w = wallet();
    let t = utc(2027, 1, 15, 10, 0, 0);
    run(
        &mut w,
        WalletCommand::Exclude {
            transaction_id: tx("x1"),
            until: Some(t + Duration::days(1)),
            now: t,
            by: client(),
        },
    )
    .unwrap();
    assert!(w
        .decide(bet("b1", "1", t + Duration::days(1) - Duration::seconds(1)))
        .is_err());
    run(&mut w, bet("b1", "1", t + Duration::days(1))).expect("the exclusion is over");
}

#[test]
fn a_locked_account_keeps_being_paid_but_nothing_leaves_or_is_staked_until_unlocked() {
    let mut w = wallet();
    let t = utc(2027, 1, 15, 10, 0, 0);
    run(&mut w, bet("b1", "5", t)).unwrap();
    run(&mut w, bet("b2", "5", t)).unwrap();
    let reason = LockReason::new("fraud review").unwrap();
    run(
        &mut w,
        WalletCommand::Lock {
            transaction_id: tx("k1"),
            reason: reason.clone(),
            by: client(),
        },
    )
    .unwrap();
    let locked = |e: Result<WalletEvent, WalletError>| matches!(e, Err(WalletError::AccountLocked { reason }) if reason == "fraud review");
    assert!(locked(w.decide(deposit("d2", "1", t))));
    assert!(locked(w.decide(bet("b3", "1", t))));
    assert!(locked(w.decide(WalletCommand::Withdraw {
        transaction_id: tx("w1"),
        amount: d("1"),
        currency: None,
        forfeit_bonuses: false,
    })));
    run(&mut w, settle("b1", "9", t)).expect("a win of a bet already taken is paid");
    run(
        &mut w,
        WalletCommand::Rollback {
            reservation_id: rid("b2"),
            transaction_id: tx("rb"),
            round_id: RoundId::new("round-b2").unwrap(),
        },
    )
    .expect("a rollback is paid");
    run(
        &mut w,
        WalletCommand::Unlock {
            transaction_id: tx("k2"),
            reason,
            by: client(),
        },
    )
    .unwrap();
    run(&mut w, deposit("d3", "1", t)).expect("unlocked");
}

#[test]
fn a_wallet_without_protections_records_no_times_and_keeps_none() {
    let mut w = wallet();
    let event = run(&mut w, deposit("d2", "1", utc(2027, 1, 15, 10, 0, 0))).unwrap();
    assert!(matches!(
        event,
        WalletEvent::FundsDeposited { at: None, .. }
    ));
    assert!(w.protection_view(utc(2027, 1, 15, 10, 0, 0)).is_none());
    assert!(!serde_json::to_string(&w).unwrap().contains("protection"));
}

#[test]
fn winnings_of_one_period_make_no_room_for_open_stakes_that_may_lose_in_the_next() {
    let mut w = wallet();
    let day1 = utc(2027, 1, 15, 10, 0, 0);
    run(&mut w, deposit("d2", "2000", day1)).unwrap();
    run(
        &mut w,
        set_limit(
            "l1",
            LimitKind::Loss,
            LimitPeriod::Day,
            Some("100"),
            Tz::UTC,
            day1,
        ),
    )
    .unwrap();
    run(&mut w, bet("b1", "50", day1)).unwrap();
    run(&mut w, settle("b1", "1050", day1)).unwrap();
    // The day has won 1,000; a bet of 1,100 would still lose 1,100 tomorrow if it
    // settled after midnight, in a day that starts from nothing.
    let (_, _, _, used, _) =
        limit_reached(run(&mut w, bet("b2", "1100", utc(2027, 1, 15, 23, 0, 0))));
    assert_eq!(used, d("0.00"), "a period's wins are shown as nothing used");
    run(&mut w, bet("b3", "100", utc(2027, 1, 15, 23, 0, 0))).expect("up to the limit");
}

#[test]
fn a_command_that_arrives_late_is_decided_at_the_wallets_clock() {
    let mut w = wallet();
    let t = utc(2027, 1, 15, 10, 0, 0);
    run(
        &mut w,
        set_limit(
            "l1",
            LimitKind::Deposit,
            LimitPeriod::Day,
            Some("100"),
            Tz::UTC,
            t,
        ),
    )
    .unwrap();
    run(&mut w, deposit("d2", "100", utc(2027, 1, 15, 23, 59, 58))).unwrap();
    let next_day = utc(2027, 1, 16, 0, 0, 0) + Duration::milliseconds(1);
    run(&mut w, deposit("d3", "10", next_day)).unwrap();
    // Its clock said 23:59:59.999 but it reached the wallet after the one of 00:00:00.001:
    // it is decided, and booked, in the new day, never in the full one left behind.
    let late = utc(2027, 1, 15, 23, 59, 59) + Duration::milliseconds(999);
    let event = run(&mut w, deposit("d4", "90", late)).unwrap();
    assert!(
        matches!(event, WalletEvent::FundsDeposited { at: Some(at), .. } if at == next_day),
        "{event:?}"
    );
    limit_reached(run(&mut w, deposit("d5", "1", late)));
}

// ---- The property test ----

/// The reference model: every accepted movement with its time, and each limit's changes;
/// what a period used is the sum of the movements whose local calendar date (day), ISO
/// week or month in the limit's zone equals the moment's, since the limit was set.
#[derive(Default)]
struct Model {
    available: i64,
    /// Open bets: id -> stake.
    open: std::collections::BTreeMap<u8, i64>,
    /// (kind, amount in cents, time, the op's number) of each accepted movement.
    moves: Vec<(LimitKind, i64, DateTime<Utc>, usize)>,
    limits: Vec<ModelLimit>,
    excluded_until: Option<Option<DateTime<Utc>>>,
    locked: bool,
}

struct ModelLimit {
    kind: LimitKind,
    period: LimitPeriod,
    zone: Tz,
    amount: i64,
    /// The op that set it: it counts the movements after that op.
    since: usize,
    pending: Option<(Option<i64>, DateTime<Utc>)>,
}

fn same_period(period: LimitPeriod, zone: Tz, a: DateTime<Utc>, b: DateTime<Utc>) -> bool {
    let (a, b) = (
        a.with_timezone(&zone).date_naive(),
        b.with_timezone(&zone).date_naive(),
    );
    match period {
        LimitPeriod::Day => a == b,
        LimitPeriod::Week => a.iso_week() == b.iso_week(),
        LimitPeriod::Month => (a.year(), a.month()) == (b.year(), b.month()),
    }
}

impl ModelLimit {
    fn settle_pending(&mut self, now: DateTime<Utc>) -> bool {
        match self.pending {
            Some((Some(amount), at)) if now >= at => {
                self.amount = amount;
                self.pending = None;
                true
            }
            Some((None, at)) if now >= at => false,
            _ => true,
        }
    }
}

impl Model {
    fn tick(&mut self, now: DateTime<Utc>) {
        self.limits.retain_mut(|l| l.settle_pending(now));
    }
    fn used(&self, l: &ModelLimit, now: DateTime<Utc>) -> i64 {
        self.moves
            .iter()
            .filter(|(k, _, at, op)| {
                *k == l.kind && *op > l.since && same_period(l.period, l.zone, *at, now)
            })
            .map(|(_, c, _, _)| c)
            .sum()
    }
    /// The first limit of `kind` that `cents` more (plus `open`) would pass.
    fn passes(
        &self,
        kind: LimitKind,
        cents: i64,
        open: i64,
        now: DateTime<Utc>,
    ) -> Option<(LimitKind, LimitPeriod)> {
        if cents <= 0 {
            return None;
        }
        let mut limits: Vec<&ModelLimit> = self.limits.iter().filter(|l| l.kind == kind).collect();
        limits.sort_by_key(|l| l.period);
        limits
            .into_iter()
            .find(|l| self.used(l, now).max(0) + open + cents > l.amount)
            .map(|l| (l.kind, l.period))
    }
    fn excluded(&self, now: DateTime<Utc>) -> bool {
        match self.excluded_until {
            Some(None) => true,
            Some(Some(until)) => now < until,
            None => false,
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Deposit(i64),
    Bet(u8, i64),
    Settle(u8, i64),
    BetWin(i64, i64),
    SetLimit(LimitKind, LimitPeriod, Option<i64>),
    Exclude(Option<i64>),
    Lock(bool),
    Advance(i64),
}

fn op() -> impl Strategy<Value = Op> {
    let kind = prop_oneof![
        Just(LimitKind::Deposit),
        Just(LimitKind::Wager),
        Just(LimitKind::Loss)
    ];
    let period = prop_oneof![
        Just(LimitPeriod::Day),
        Just(LimitPeriod::Week),
        Just(LimitPeriod::Month)
    ];
    // Whole euros, so that a movement often lands exactly on a limit.
    let eur = |r: std::ops::Range<i64>| r.prop_map(|e| e * 100);
    prop_oneof![
        4 => eur(1..30).prop_map(Op::Deposit),
        4 => (0u8..6, eur(1..20)).prop_map(|(id, c)| Op::Bet(id, c)),
        3 => (0u8..6, eur(0..40)).prop_map(|(id, c)| Op::Settle(id, c)),
        2 => (eur(1..20), eur(0..40)).prop_map(|(s, p)| Op::BetWin(s, p)),
        2 => (kind, period, proptest::option::weighted(0.8, eur(5..50))).prop_map(|(k, p, a)| Op::SetLimit(k, p, a)),
        1 => proptest::option::weighted(0.8, 1i64..200_000).prop_map(Op::Exclude),
        1 => any::<bool>().prop_map(Op::Lock),
        4 => (0i64..40 * 3_600).prop_map(Op::Advance),
    ]
}

fn zone() -> impl Strategy<Value = Tz> {
    prop_oneof![
        Just(Tz::UTC),
        Just(berlin()),
        Just("America/Havana".parse::<Tz>().unwrap()),
        Just("Australia/Lord_Howe".parse::<Tz>().unwrap()),
    ]
}

fn c(cents: i64) -> Decimal {
    Decimal::new(cents, 2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_history_stays_within_the_limits_in_force_and_matches_the_model(
        zone in zone(),
        start_offset in 0i64..(400 * 86_400),
        ops in proptest::collection::vec(op(), 1..80),
    ) {
        let mut w = Wallet::default();
        for e in funded() { w.apply(e); }
        let mut m = Model { available: 10_000, ..Model::default() };
        // From 2026-10-20 over about 13 months: both daylight-saving changes, month ends.
        let mut now = utc(2026, 10, 20, 0, 0, 0) + Duration::seconds(start_offset);
        for (i, op) in ops.into_iter().enumerate() {
            let id = |p: &str| tx(&format!("{p}{i}"));
            let bet_id = |n: u8| ReservationId::new(format!("b{n}")).unwrap();
            m.tick(now);
            let (command, expected): (WalletCommand, Result<(), String>) = match op {
                Op::Advance(s) => { now += Duration::seconds(s); continue; }
                Op::Deposit(cents) => {
                    let expected = if m.locked { Err("locked".into()) }
                        else if m.excluded(now) { Err("excluded".into()) }
                        else if let Some((k, p)) = m.passes(LimitKind::Deposit, cents, 0, now) { Err(format!("limit {k:?} {p:?}")) }
                        else { Ok(()) };
                    (WalletCommand::Deposit { transaction_id: id("d"), amount: c(cents), currency: None, now }, expected)
                }
                Op::Bet(n, cents) => {
                    let open: i64 = m.open.values().sum();
                    let expected = if m.open.contains_key(&n) || w.reservation(&bet_id(n)).is_some() { Err("reused".into()) }
                        else if m.locked { Err("locked".into()) }
                        else if m.excluded(now) { Err("excluded".into()) }
                        else if let Some((k, p)) = m.passes(LimitKind::Wager, cents, 0, now) { Err(format!("limit {k:?} {p:?}")) }
                        else if let Some((k, p)) = m.passes(LimitKind::Loss, cents, open, now) { Err(format!("limit {k:?} {p:?}")) }
                        else if m.available < cents { Err("funds".into()) }
                        else { Ok(()) };
                    (WalletCommand::Reserve {
                        reservation_id: bet_id(n), amount: c(cents), currency: None,
                        game_id: GameId::new("g").unwrap(), round_id: RoundId::new(format!("r{i}")).unwrap(),
                        timeout_s: 7 * 24 * 3_600, now,
                    }, expected)
                }
                Op::Settle(n, payout) => {
                    let expected = if m.open.contains_key(&n) { Ok(()) } else { Err("not open".into()) };
                    (WalletCommand::Settle { reservation_id: bet_id(n), transaction_id: id("s"), payout: c(payout), currency: None, now }, expected)
                }
                Op::BetWin(stake, payout) => {
                    let open: i64 = m.open.values().sum();
                    let expected = if m.locked { Err("locked".into()) }
                        else if m.excluded(now) { Err("excluded".into()) }
                        else if let Some((k, p)) = m.passes(LimitKind::Wager, stake, 0, now) { Err(format!("limit {k:?} {p:?}")) }
                        else if let Some((k, p)) = m.passes(LimitKind::Loss, stake - payout, open, now) { Err(format!("limit {k:?} {p:?}")) }
                        else if m.available < stake { Err("funds".into()) }
                        else { Ok(()) };
                    (WalletCommand::BetWin {
                        reservation_id: ReservationId::new(format!("bw{i}")).unwrap(), amount: c(stake), payout: c(payout),
                        currency: None, game_id: GameId::new("g").unwrap(), round_id: RoundId::new(format!("r{i}")).unwrap(),
                        round_closed: true, now,
                    }, expected)
                }
                Op::SetLimit(kind, period, amount) => {
                    let current = m.limits.iter().find(|l| l.kind == kind && l.period == period);
                    let expected = match (current, amount) {
                        (None, None) => Err("no limit".into()),
                        _ => Ok(()),
                    };
                    (set_limit(&format!("l{i}"), kind, period, amount.map(c).map(|a| a.to_string()).as_deref(), zone, now), expected)
                }
                Op::Exclude(secs) => {
                    let new_until = secs.map(|s| now + Duration::seconds(s));
                    let expected = match (m.excluded(now), m.excluded_until, new_until) {
                        (true, Some(None), Some(_)) => Err("shorter".into()),
                        (true, Some(Some(cur)), Some(new)) if new < cur => Err("shorter".into()),
                        _ => Ok(()),
                    };
                    (WalletCommand::Exclude { transaction_id: id("x"), until: new_until, now, by: client() }, expected)
                }
                Op::Lock(lock) => {
                    let reason = LockReason::new("r").unwrap();
                    let command = if lock {
                        WalletCommand::Lock { transaction_id: id("k"), reason, by: client() }
                    } else {
                        WalletCommand::Unlock { transaction_id: id("u"), reason, by: client() }
                    };
                    (command, Ok(()))
                }
            };
            let before = w.clone();
            let outcome = w.decide(command.clone());
            let name = |e: &WalletError| match e {
                WalletError::AccountLocked { .. } => "locked".to_string(),
                WalletError::SelfExcluded { .. } => "excluded".to_string(),
                WalletError::LimitReached { kind, period, .. } => format!("limit {kind:?} {period:?}"),
                WalletError::InsufficientFunds { .. } => "funds".to_string(),
                WalletError::ReservationClosed { .. } | WalletError::ReservationNotFound { .. } => "not open".to_string(),
                WalletError::IdempotencyConflict { .. } => "reused".to_string(),
                WalletError::LimitNotFound { .. } => "no limit".to_string(),
                WalletError::ExclusionNotShortened { .. } => "shorter".to_string(),
                other => format!("{other:?}"),
            };
            let got = outcome.as_ref().map(|_| ()).map_err(name);
            // The model's "reused" is a closed bet's id: the wallet says closed, or reused.
            let got = match (&expected, got) {
                (Err(e), Err(g)) if e == "reused" && (g == "not open" || g == "reused") => Err(e.clone()),
                (_, g) => g,
            };
            prop_assert_eq!(&got, &expected, "op {} {:?} at {}", i, command.name(), now);
            prop_assert_eq!(&w, &before, "deciding changes nothing");
            let Ok(event) = outcome else { continue };
            // The model follows the accepted event.
            match &event {
                WalletEvent::FundsDeposited { amount, .. } => {
                    let cents = (amount * Decimal::new(100, 0)).try_into().unwrap();
                    m.available += cents;
                    m.moves.push((LimitKind::Deposit, cents, now, i));
                }
                WalletEvent::FundsReserved { reservation_id, amount, .. } => {
                    let cents: i64 = (amount * Decimal::new(100, 0)).try_into().unwrap();
                    let n: u8 = reservation_id.as_str()[1..].parse().unwrap();
                    m.available -= cents;
                    m.open.insert(n, cents);
                    m.moves.push((LimitKind::Wager, cents, now, i));
                }
                WalletEvent::ReservationSettled { reservation_id, payout, .. } => {
                    let n: u8 = reservation_id.as_str()[1..].parse().unwrap();
                    let stake = m.open.remove(&n).unwrap();
                    let payout: i64 = (payout * Decimal::new(100, 0)).try_into().unwrap();
                    m.available += payout;
                    m.moves.push((LimitKind::Loss, stake - payout, now, i));
                }
                WalletEvent::BetSettled { stake, payout, .. } => {
                    let stake: i64 = (stake * Decimal::new(100, 0)).try_into().unwrap();
                    let payout: i64 = (payout * Decimal::new(100, 0)).try_into().unwrap();
                    m.available += payout - stake;
                    m.moves.push((LimitKind::Wager, stake, now, i));
                    m.moves.push((LimitKind::Loss, stake - payout, now, i));
                }
                WalletEvent::LimitChanged { kind, period, amount, effective_at, .. } => {
                    let amount: Option<i64> = amount.map(|a| (a * Decimal::new(100, 0)).try_into().unwrap());
                    let pos = m.limits.iter().position(|l| l.kind == *kind && l.period == *period);
                    match (pos, amount) {
                        (None, Some(a)) => m.limits.push(ModelLimit { kind: *kind, period: *period, zone, amount: a, since: i, pending: None }),
                        (None, None) => unreachable!("refused above"),
                        (Some(p), Some(a)) if a <= m.limits[p].amount => { m.limits[p].amount = a; m.limits[p].pending = None; }
                        (Some(p), a) => {
                            prop_assert_eq!(*effective_at, now + Duration::seconds(i64::from(COOLING_S)));
                            m.limits[p].pending = Some((a, *effective_at));
                        }
                    }
                }
                WalletEvent::SelfExcluded { until, .. } => m.excluded_until = Some(*until),
                WalletEvent::AccountLocked { .. } => m.locked = true,
                WalletEvent::AccountUnlocked { .. } => m.locked = false,
                other => panic!("unexpected {other:?}"),
            }
            w.apply(event);
            prop_assert_eq!(w.balance().unwrap().available, c(m.available));
            // An accepted movement leaves every limit of its kind within the amount in
            // force, as the model counts it (a loss limit with the stakes still open).
            let open: i64 = m.open.values().sum();
            let checked: &[LimitKind] = match command {
                WalletCommand::Deposit { .. } => &[LimitKind::Deposit],
                WalletCommand::Reserve { .. } => &[LimitKind::Wager, LimitKind::Loss],
                WalletCommand::BetWin { amount, payout, .. } if amount > payout => &[LimitKind::Wager, LimitKind::Loss],
                WalletCommand::BetWin { .. } => &[LimitKind::Wager],
                _ => &[],
            };
            for l in m.limits.iter().filter(|l| checked.contains(&l.kind)) {
                let used = m.used(l, now).max(0) + if l.kind == LimitKind::Loss { open } else { 0 };
                prop_assert!(used <= l.amount, "{:?} {:?} used {} of {}", l.kind, l.period, used, l.amount);
            }
            // The wallet shows what the model counts.
            let Some(view) = w.protection_view(now) else {
                prop_assert!(m.limits.is_empty() && !m.locked && m.excluded_until.is_none());
                continue;
            };
            for l in &m.limits {
                let shown = view.limits.iter().find(|v| v.kind == l.kind && v.period == l.period).expect("the limit is shown");
                let open = if l.kind == LimitKind::Loss { m.open.values().sum::<i64>() } else { 0 };
                prop_assert_eq!(shown.used, c(m.used(l, now).max(0) + open), "{:?} {:?}", l.kind, l.period);
                prop_assert_eq!(shown.amount, c(l.amount));
            }
            prop_assert_eq!(view.limits.len(), m.limits.len());
        }
    }
}
