//! Given/when/then for every bonus rule and refusal, with the contract's numbers, and a
//! property test of random interleavings of grants, bets (plain and bet-win), wins,
//! refunds, closes, forfeits, expiries, withdrawals, free-rounds grants, free bets and
//! their expiry: every award stays at or above
//! zero, the balance's bonus parts are what the awards and open bets hold, cash + bonus
//! is conserved with grants and forfeits counted as their own flows (summed from the
//! events' fields, not from their postings), and a compacted copy decides as the full
//! state does.

use super::*;
use crate::ids::{ClientId, ForfeitReason, PlayerId, RoundId};
use crate::wallet::protection::{LimitKind, LimitPeriod};
use crate::wallet::tests::{d, rid, t0, tx};
use crate::wallet::{Wallet, WalletCommand, WinTarget};
use cqrs_es::Aggregate;
use proptest::prelude::*;

fn game(g: &str) -> GameId {
    GameId::new(g).unwrap()
}
fn bid(s: &str) -> BonusId {
    BonusId::from(tx(s))
}
fn by() -> ClientId {
    ClientId::new("backoffice").unwrap()
}

/// A wallet: opened in EUR with `cash` deposited.
fn wallet(cash: &str) -> Wallet {
    let mut w = Wallet::default();
    run(
        &mut w,
        WalletCommand::Open {
            player_id: PlayerId::new("p").unwrap(),
            currency: Currency::Eur,
            brand_id: crate::BrandId::default_brand(),
        },
    )
    .unwrap();
    if cash != "0" {
        run(
            &mut w,
            WalletCommand::Deposit {
                transaction_id: tx("dep"),
                amount: d(cash),
                currency: None,
                now: t0(),
            },
        )
        .unwrap();
    }
    w
}

/// Decides and applies `command`, as a write path does.
fn run(w: &mut Wallet, command: WalletCommand) -> Result<WalletEvent, WalletError> {
    let event = w.decide(command)?;
    w.apply(event.clone());
    Ok(event)
}

fn terms(multiplier: i64) -> Terms {
    Terms {
        wagering_multiplier: multiplier,
        expires_at: t0() + chrono::Duration::days(7),
        max_conversion: None,
        max_bet: None,
        contributions: BTreeMap::new(),
    }
}
fn grant_with(id: &str, amount: &str, terms: Terms) -> WalletCommand {
    WalletCommand::GrantBonus {
        transaction_id: tx(id),
        amount: d(amount),
        terms,
        currency: None,
        multiplier_max: WAGERING_MULTIPLIER_MAX_DEFAULT,
        now: t0(),
        by: by(),
    }
}
fn grant(id: &str, amount: &str, multiplier: i64) -> WalletCommand {
    grant_with(id, amount, terms(multiplier))
}
fn bet_on(id: &str, amount: &str, g: &str) -> WalletCommand {
    WalletCommand::Reserve {
        reservation_id: rid(id),
        amount: d(amount),
        currency: None,
        game_id: game(g),
        round_id: RoundId::new(format!("round-{id}")).unwrap(),
        timeout_s: 60,
        now: t0(),
    }
}
fn bet(id: &str, amount: &str) -> WalletCommand {
    bet_on(id, amount, "slots")
}
fn settle(id: &str, payout: &str) -> WalletCommand {
    WalletCommand::Settle {
        reservation_id: rid(id),
        transaction_id: tx(&format!("{id}-win")),
        payout: d(payout),
        currency: None,
        now: t0(),
    }
}
fn refund(id: &str) -> WalletCommand {
    WalletCommand::Refund {
        reservation_id: rid(id),
        transaction_id: tx(&format!("{id}-refund")),
    }
}
fn bet_win(id: &str, stake: &str, payout: &str) -> WalletCommand {
    WalletCommand::BetWin {
        reservation_id: rid(id),
        amount: d(stake),
        payout: d(payout),
        currency: None,
        game_id: game("slots"),
        round_id: RoundId::new(format!("round-{id}")).unwrap(),
        round_closed: false,
        now: t0(),
    }
}
fn withdraw(id: &str, amount: &str, forfeit: bool) -> WalletCommand {
    WalletCommand::Withdraw {
        transaction_id: tx(id),
        amount: d(amount),
        currency: None,
        forfeit_bonuses: forfeit,
    }
}
fn forfeit(id: &str) -> WalletCommand {
    WalletCommand::ForfeitBonus {
        transaction_id: tx(&format!("{id}-forfeit")),
        bonus_id: bid(id),
        reason: ForfeitReason::new("abuse").unwrap(),
        by: by(),
    }
}
fn award<'w>(w: &'w Wallet, id: &str) -> &'w Award {
    w.awards().find(|a| a.bonus_id == bid(id)).unwrap()
}
/// The balance's parts, as text: a negative zero would show.
fn parts(w: &Wallet) -> [String; 4] {
    let b = w.balance().unwrap();
    [b.available, b.reserved, b.bonus, b.bonus_reserved].map(|p| p.to_string())
}
fn cents_of(parts: [&str; 4]) -> [String; 4] {
    parts.map(|p| {
        let mut v = d(p);
        v.rescale(2);
        v.to_string()
    })
}

#[test]
fn a_grant_activates_at_once_and_a_later_one_waits_queued() {
    let mut w = wallet("10.00");
    run(&mut w, grant("b1", "20.00", 5)).unwrap();
    run(&mut w, grant("b2", "30.00", 5)).unwrap();
    assert_eq!(award(&w, "b1").status, AwardStatus::Active);
    assert_eq!(award(&w, "b2").status, AwardStatus::Queued);
    assert_eq!(parts(&w), cents_of(["10.00", "0", "20.00", "0"]));
    assert_eq!(
        award(&w, "b2").balance,
        Decimal::ZERO,
        "queued money is outside"
    );
}

#[test]
fn stakes_take_cash_first_then_the_active_award() {
    let mut w = wallet("10.00");
    run(&mut w, grant("b1", "20.00", 5)).unwrap();
    let placed = run(&mut w, bet("r1", "30.00")).unwrap();
    assert_eq!(placed.funded_bonus(), d("20.00"));
    assert_eq!(parts(&w), cents_of(["0.00", "10.00", "0.00", "20.00"]));
    // 60 paid on a 10 cash + 20 bonus stake: 20 to cash, 40 to the award.
    run(&mut w, settle("r1", "60.00")).unwrap();
    assert_eq!(w.balance().unwrap().available, d("20.00"));
    assert_eq!(award(&w, "b1").balance, d("40.00"));
    assert_eq!(w.balance().unwrap().bonus, d("40.00"));
}

#[test]
fn a_stake_neither_part_covers_is_insufficient_funds_and_moves_nothing() {
    let mut w = wallet("10.00");
    run(&mut w, grant("b1", "20.00", 5)).unwrap();
    let before = w.clone();
    match run(&mut w, bet("r1", "30.01")) {
        Err(WalletError::InsufficientFunds {
            available,
            requested,
        }) => {
            assert_eq!(available, d("30.00"), "the playable total");
            assert_eq!(requested, d("30.01"));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(w, before);
}

#[test]
fn the_bonus_share_of_a_payout_is_rounded_down_and_the_rest_is_cash() {
    let mut w = wallet("1.00");
    run(&mut w, grant("b1", "2.00", 5)).unwrap();
    run(&mut w, bet("r1", "3.00")).unwrap();
    // 1.00 × 2/3 = 0.666..: 0.66 to the award, 0.34 to cash.
    run(&mut w, settle("r1", "1.00")).unwrap();
    assert_eq!(award(&w, "b1").balance, d("0.66"));
    assert_eq!(w.balance().unwrap().available, d("0.34"));
}

#[test]
fn wagering_counts_settled_stakes_by_contribution_and_not_above_max_bet() {
    let mut w = wallet("100.00");
    let mut t = terms(10);
    t.max_bet = Some(d("5.00"));
    t.contributions.insert(game("roulette"), 10);
    t.contributions.insert(game("blackjack"), 0);
    run(&mut w, grant_with("b1", "10.00", t)).unwrap();
    for (id, amount, g) in [
        ("r1", "4.00", "slots"),
        ("r2", "5.00", "roulette"),
        ("r3", "5.00", "blackjack"),
        ("r4", "6.00", "slots"),
    ] {
        run(&mut w, bet_on(id, amount, g)).unwrap();
        run(&mut w, settle(id, "0")).unwrap();
    }
    // 4 × 100% + 5 × 10% + 5 × 0% + (6 is above max_bet) = 4.50
    assert_eq!(award(&w, "b1").progress, d("4.50"));
    run(&mut w, bet("r5", "5.00")).unwrap();
    let before = award(&w, "b1").progress;
    run(&mut w, refund("r5")).unwrap();
    assert_eq!(
        award(&w, "b1").progress,
        before,
        "a refunded bet adds nothing"
    );
}

#[test]
fn completion_converts_up_to_the_cap_forfeits_the_rest_and_activates_the_next() {
    let mut w = wallet("0");
    let mut t = terms(1);
    t.max_conversion = Some(d("15.00"));
    run(&mut w, grant_with("b1", "10.00", t)).unwrap();
    run(&mut w, grant("b2", "5.00", 1)).unwrap();
    // All bonus money: stake 10, win 30 → the award holds 30 and 10 is wagered.
    run(&mut w, bet("r1", "10.00")).unwrap();
    assert_eq!(
        award(&w, "b1").status,
        AwardStatus::Active,
        "its bet is open"
    );
    let event = run(&mut w, settle("r1", "30.00")).unwrap();
    let a = award(&w, "b1");
    assert_eq!(a.status, AwardStatus::Completed);
    assert_eq!((a.converted, a.forfeited), (d("15.00"), d("15.00")));
    assert_eq!(w.balance().unwrap().available, d("15.00"));
    assert_eq!(award(&w, "b2").status, AwardStatus::Active);
    assert_eq!(w.balance().unwrap().bonus, d("5.00"));
    assert_eq!(w.balance().unwrap().total(), d("20.00"));
    // One event says all of it.
    let (moves, _, _) = event.bonus_moves().unwrap();
    assert_eq!(moves.ended.len(), 1);
    assert_eq!(moves.activated.as_ref().unwrap().bonus_id, bid("b2"));
}

#[test]
fn completion_waits_for_the_open_bets_the_award_funded() {
    let mut w = wallet("0");
    run(&mut w, grant("b1", "10.00", 1)).unwrap();
    run(&mut w, bet("r1", "6.00")).unwrap();
    run(&mut w, bet("r2", "4.00")).unwrap();
    run(&mut w, settle("r1", "12.00")).unwrap();
    // 6 wagered of 10, r2 open: still active.
    assert_eq!(award(&w, "b1").status, AwardStatus::Active);
    run(&mut w, settle("r2", "4.00")).unwrap();
    let a = award(&w, "b1");
    assert_eq!(a.status, AwardStatus::Completed);
    assert_eq!(a.converted, d("16.00"));
    assert_eq!(w.balance().unwrap().available, d("16.00"));
}

#[test]
fn an_award_that_runs_dry_ends_forfeited_and_the_next_activates() {
    let mut w = wallet("0");
    run(&mut w, grant("b1", "10.00", 5)).unwrap();
    run(&mut w, grant("b2", "7.00", 5)).unwrap();
    run(&mut w, bet("r1", "10.00")).unwrap();
    run(&mut w, settle("r1", "0")).unwrap();
    assert_eq!(award(&w, "b1").status, AwardStatus::Forfeited);
    assert_eq!(award(&w, "b2").status, AwardStatus::Active);
    assert_eq!(w.balance().unwrap().bonus, d("7.00"));
}

#[test]
fn a_withdrawal_while_an_award_is_pending_is_bonus_active_unless_it_forfeits_them() {
    let mut w = wallet("50.00");
    run(&mut w, grant("b1", "20.00", 5)).unwrap();
    run(&mut w, grant("b2", "10.00", 5)).unwrap();
    let before = w.clone();
    assert!(matches!(
        run(&mut w, withdraw("w1", "50.00", false)),
        Err(WalletError::BonusActive { .. })
    ));
    assert_eq!(w, before);
    run(&mut w, withdraw("w1", "50.00", true)).unwrap();
    assert_eq!(parts(&w), cents_of(["0.00", "0", "0.00", "0"]));
    assert_eq!(award(&w, "b1").status, AwardStatus::Forfeited);
    assert_eq!(award(&w, "b1").forfeited, d("20.00"));
    assert_eq!(award(&w, "b2").status, AwardStatus::Forfeited);
    // The player's own cash is always withdrawable.
    run(&mut w, withdraw("w2", "0.01", false)).unwrap_err();
}

#[test]
fn an_operator_forfeits_an_award_and_the_next_activates() {
    let mut w = wallet("0");
    run(&mut w, grant("b1", "20.00", 5)).unwrap();
    run(&mut w, grant("b2", "10.00", 5)).unwrap();
    run(&mut w, forfeit("b1")).unwrap();
    assert_eq!(award(&w, "b1").status, AwardStatus::Forfeited);
    assert_eq!(award(&w, "b2").status, AwardStatus::Active);
    assert_eq!(w.balance().unwrap().bonus, d("10.00"));
    match run(&mut w, forfeit("b1")) {
        Err(WalletError::BonusNotFound { state, .. }) => {
            assert_eq!(state.as_deref(), Some("forfeited"))
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        run(&mut w, forfeit("nope")),
        Err(WalletError::BonusNotFound { state: None, .. })
    ));
}

#[test]
fn an_award_expires_at_its_time_and_its_open_bet_pays_back_forfeited() {
    let mut w = wallet("0");
    run(&mut w, grant("b1", "20.00", 5)).unwrap();
    run(&mut w, bet("r1", "10.00")).unwrap();
    run(&mut w, bet("r2", "5.00")).unwrap();
    let expires_at = award(&w, "b1").terms.expires_at;
    let early = WalletCommand::ExpireBonus {
        bonus_id: bid("b1"),
        now: expires_at - chrono::Duration::seconds(1),
    };
    assert!(matches!(
        run(&mut w, early),
        Err(WalletError::BonusNotExpired { .. })
    ));
    run(
        &mut w,
        WalletCommand::ExpireBonus {
            bonus_id: bid("b1"),
            now: expires_at,
        },
    )
    .unwrap();
    assert_eq!(award(&w, "b1").status, AwardStatus::Expired);
    assert_eq!(award(&w, "b1").forfeited, d("5.00"));
    // Its bet wins after it ended: the bonus share is forfeited, recorded.
    let paid = run(&mut w, settle("r1", "30.00")).unwrap();
    let (moves, _, _) = paid.bonus_moves().unwrap();
    assert_eq!(moves.lapsed[0].amount, d("30.00"));
    // A rollback after the award ended: its stake is forfeited too.
    run(&mut w, refund("r2")).unwrap();
    assert_eq!(award(&w, "b1").forfeited, d("40.00"));
    assert_eq!(parts(&w), cents_of(["0", "0", "0.00", "0.00"]));
}

#[test]
fn terms_out_of_range_are_bonus_terms_invalid_and_move_nothing() {
    let mut bad = Vec::new();
    bad.push(terms(0));
    bad.push(terms(i64::from(WAGERING_MULTIPLIER_MAX_DEFAULT) + 1));
    bad.push(terms(-1));
    let mut negative = terms(1);
    negative.contributions.insert(game("slots"), -5);
    bad.push(negative);
    let mut past = terms(1);
    past.expires_at = t0();
    bad.push(past);
    let mut pct = terms(1);
    pct.contributions.insert(game("slots"), 101);
    bad.push(pct);
    let mut cap = terms(1);
    cap.max_conversion = Some(d("1.001"));
    bad.push(cap);
    let mut max_bet = terms(1);
    max_bet.max_bet = Some(d("-1"));
    bad.push(max_bet);
    for t in bad {
        let mut w = wallet("0");
        let before = w.clone();
        let got = run(&mut w, grant_with("b1", "10.00", t.clone()));
        assert!(
            matches!(got, Err(WalletError::BonusTermsInvalid { .. })),
            "{t:?}: {got:?}"
        );
        assert_eq!(w, before);
    }
    assert!(matches!(
        run(&mut wallet("0"), grant("b1", "0", 1)),
        Err(WalletError::InvalidAmount { .. })
    ));
}

#[test]
fn limits_count_the_cash_part_only() {
    let mut w = wallet("5.00");
    run(
        &mut w,
        WalletCommand::SetLimit {
            transaction_id: tx("lim"),
            kind: LimitKind::Wager,
            period: LimitPeriod::Day,
            amount: Some(d("5.00")),
            currency: None,
            zone: chrono_tz::Tz::UTC,
            cooling_s: 0,
            now: t0(),
            by: by(),
        },
    )
    .unwrap();
    run(&mut w, grant("b1", "50.00", 5)).unwrap();
    // 5 cash + 20 bonus: the wager limit of 5 counts 5.
    run(&mut w, bet("r1", "25.00")).unwrap();
    // All bonus now: counts nothing.
    run(&mut w, bet("r2", "10.00")).unwrap();
    let view = w.protection_view(t0()).unwrap();
    assert_eq!(view.limits[0].used, d("5.00"));
}

#[test]
fn a_bet_win_funded_by_bonus_splits_its_payout_and_counts_its_wagering() {
    let mut w = wallet("2.00");
    run(&mut w, grant("b1", "8.00", 5)).unwrap();
    let e = run(&mut w, bet_win("bw", "10.00", "5.00")).unwrap();
    assert_eq!(e.funded_bonus(), d("8.00"));
    // 5 paid on 2 cash + 8 bonus: 4 to the award, 1 to cash.
    assert_eq!(parts(&w), cents_of(["1.00", "0", "4.00", "0"]));
    assert_eq!(award(&w, "b1").progress, d("10.00"));
}

#[test]
fn a_closed_round_loses_a_bonus_funded_bet() {
    let mut w = wallet("0");
    run(&mut w, grant("b1", "10.00", 5)).unwrap();
    run(&mut w, bet("r1", "4.00")).unwrap();
    run(
        &mut w,
        WalletCommand::CloseRound {
            transaction_id: tx("c"),
            round_id: RoundId::new("round-r1").unwrap(),
            now: t0(),
        },
    )
    .unwrap();
    assert_eq!(parts(&w), cents_of(["0", "0", "6.00", "0.00"]));
    assert_eq!(award(&w, "b1").progress, d("4.00"));
}

#[test]
fn a_further_win_for_a_settled_bonus_bet_is_split_as_the_bet_was() {
    let mut w = wallet("5.00");
    run(&mut w, grant("b1", "5.00", 5)).unwrap();
    run(&mut w, bet("r1", "10.00")).unwrap();
    run(&mut w, settle("r1", "0")).unwrap();
    run(
        &mut w,
        WalletCommand::Win {
            transaction_id: tx("w2"),
            round_id: RoundId::new("round-r1").unwrap(),
            target: WinTarget::Bet(rid("r1")),
            amount: d("8.00"),
            game_id: None,
            round_closed: false,
            currency: None,
            now: t0(),
        },
    )
    .unwrap();
    // The award ran dry when r1 lost, so its half lapses.
    assert_eq!(w.balance().unwrap().available, d("4.00"));
    assert_eq!(award(&w, "b1").forfeited, d("4.00"));
}

#[test]
fn an_award_past_its_expiry_pays_no_stake_before_the_sweep_ends_it() {
    let mut w = wallet("0");
    run(&mut w, grant("b1", "20.00", 5)).unwrap();
    let expires_at = award(&w, "b1").terms.expires_at;
    let late = WalletCommand::Reserve {
        reservation_id: rid("r1"),
        amount: d("5.00"),
        currency: None,
        game_id: game("slots"),
        round_id: RoundId::new("round-r1").unwrap(),
        timeout_s: 60,
        now: expires_at,
    };
    assert!(matches!(
        run(&mut w, late),
        Err(WalletError::InsufficientFunds { .. })
    ));
}

#[test]
fn only_bets_placed_while_an_award_is_active_count_toward_it() {
    let mut w = wallet("100.00");
    run(&mut w, bet("before", "10.00")).unwrap();
    run(&mut w, grant("b1", "20.00", 5)).unwrap();
    run(&mut w, bet("after", "10.00")).unwrap();
    run(&mut w, settle("before", "0")).unwrap();
    assert_eq!(
        award(&w, "b1").progress,
        Decimal::ZERO,
        "placed before the award"
    );
    run(&mut w, settle("after", "0")).unwrap();
    assert_eq!(
        award(&w, "b1").progress,
        d("10.00"),
        "cash, placed under it"
    );
}

#[test]
fn a_win_for_the_round_alone_is_split_as_the_rounds_bets_were_paid() {
    let mut w = wallet("0");
    run(&mut w, grant("b1", "100.00", 10)).unwrap();
    run(&mut w, bet("r1", "100.00")).unwrap();
    // Lost with its round by a win naming no bet: the win goes back to the award.
    run(
        &mut w,
        WalletCommand::Win {
            transaction_id: tx("rw"),
            round_id: RoundId::new("round-r1").unwrap(),
            target: WinTarget::Round,
            amount: d("500.00"),
            game_id: None,
            round_closed: true,
            currency: None,
            now: t0(),
        },
    )
    .unwrap();
    assert_eq!(w.balance().unwrap().available, Decimal::ZERO);
    assert_eq!(award(&w, "b1").balance, d("500.00"));
    // A compacted cache does not decide it: it may have forgotten the round's bets.
    let cached = w.compacted();
    assert!(!cached.holds(&WalletCommand::Win {
        transaction_id: tx("rw2"),
        round_id: RoundId::new("round-r1").unwrap(),
        target: WinTarget::Round,
        amount: d("1.00"),
        game_id: None,
        round_closed: false,
        currency: None,
        now: t0(),
    }));
}

// ---- the property test ----

#[derive(Debug, Clone)]
enum Op {
    Grant(u32, i64),
    Bet(u32),
    BetWin(u32, u32),
    Settle(usize, u32),
    RoundWin(usize, u32),
    Refund(usize),
    Close(usize),
    Forfeit(usize),
    Expire(usize),
    Withdraw(u32, bool),
    Deposit(u32),
    GrantFree(i64, i64),
    FreeBet(usize, Option<u32>),
    ExpireFree(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u32..3_000, 1i64..4).prop_map(|(a, m)| Op::Grant(a, m)),
        (1u32..4_000).prop_map(Op::Bet),
        (1u32..3_000, 0u32..6_000).prop_map(|(s, p)| Op::BetWin(s, p)),
        (0usize..8, 0u32..8_000).prop_map(|(i, p)| Op::Settle(i, p)),
        (0usize..8, 0u32..8_000).prop_map(|(i, p)| Op::RoundWin(i, p)),
        (0usize..8).prop_map(Op::Refund),
        (0usize..8).prop_map(Op::Close),
        (0usize..4).prop_map(Op::Forfeit),
        (0usize..4).prop_map(Op::Expire),
        (1u32..3_000, any::<bool>()).prop_map(|(a, f)| Op::Withdraw(a, f)),
        (1u32..3_000).prop_map(Op::Deposit),
        (1i64..4, 0i64..3).prop_map(|(r, m)| Op::GrantFree(r, m)),
        (0usize..3, proptest::option::of(0u32..3_000)).prop_map(|(i, p)| Op::FreeBet(i, p)),
        (0usize..3).prop_map(Op::ExpireFree),
    ]
}

fn cents(c: u32) -> Decimal {
    Decimal::new(i64::from(c), 2)
}

/// Cash + bonus as the test sums it from the events' own fields.
#[derive(Default, Debug)]
struct Sums {
    net: Decimal,
}

impl Sums {
    fn add(&mut self, e: &WalletEvent) {
        let moves = e
            .bonus_moves()
            .map(|(m, _, _)| m.clone())
            .unwrap_or_default();
        let forfeited: Decimal = moves.lapsed.iter().map(|l| l.amount).sum::<Decimal>()
            + moves.ended.iter().map(|x| x.forfeited).sum::<Decimal>();
        let granted = moves.activated.as_ref().map_or(Decimal::ZERO, |a| a.amount);
        self.net += granted - forfeited;
        // Free-rounds winnings are never the player's when won (the grant keeps them, or no
        // one); a grant that ends pays them as cash, or as an award counted when it
        // activates.
        self.net -= moves
            .free_rounds
            .iter()
            .map(|m| m.winnings)
            .sum::<Decimal>();
        self.net += moves
            .free_rounds_ended
            .iter()
            .filter(|e| e.award.is_none())
            .map(|e| e.winnings)
            .sum::<Decimal>();
        self.net += match e {
            WalletEvent::FundsDeposited { amount, .. } => *amount,
            WalletEvent::FundsWithdrawn { amount, .. } => -*amount,
            WalletEvent::ReservationSettled { stake, payout, .. } => *payout - *stake,
            WalletEvent::BetSettled {
                stake,
                payout,
                lost,
                ..
            } => *payout - *stake - lost.iter().map(|l| l.stake).sum::<Decimal>(),
            WalletEvent::RoundClosed { lost, .. } => -lost.iter().map(|l| l.stake).sum::<Decimal>(),
            WalletEvent::WinCredited {
                settled_stake,
                amount,
                lost,
                ..
            } => {
                *amount
                    - settled_stake.unwrap_or_default()
                    - lost.iter().map(|l| l.stake).sum::<Decimal>()
            }
            _ => Decimal::ZERO,
        };
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn bonus_money_is_conserved_and_no_award_goes_below_zero(ops in proptest::collection::vec(op(), 1..60)) {
        let mut w = wallet("20.00");
        let mut cached = w.compacted();
        let mut sums = Sums { net: d("20.00") };
        let mut bets: Vec<String> = Vec::new();
        let mut grants: Vec<String> = Vec::new();
        let mut free_grants: Vec<String> = Vec::new();
        for (n, op) in ops.into_iter().enumerate() {
            let command = match op {
                Op::Grant(a, m) => {
                    grants.push(format!("g{n}"));
                    grant(&format!("g{n}"), &cents(a).to_string(), m)
                }
                Op::Bet(a) => {
                    bets.push(format!("r{n}"));
                    bet(&format!("r{n}"), &cents(a).to_string())
                }
                Op::BetWin(s, p) => bet_win(&format!("bw{n}"), &cents(s).to_string(), &cents(p).to_string()),
                Op::Settle(i, p) => match bets.get(i) {
                    Some(id) => WalletCommand::Settle {
                        reservation_id: rid(id),
                        transaction_id: tx(&format!("s{n}")),
                        payout: cents(p),
                        currency: None,
                        now: t0(),
                    },
                    None => continue,
                },
                Op::RoundWin(i, p) => match bets.get(i) {
                    Some(id) => WalletCommand::Win {
                        transaction_id: tx(&format!("rw{n}")),
                        round_id: RoundId::new(format!("round-{id}")).unwrap(),
                        target: WinTarget::Round,
                        amount: cents(p),
                        game_id: None,
                        round_closed: p % 2 == 0,
                        currency: None,
                        now: t0(),
                    },
                    None => continue,
                },
                Op::Refund(i) => match bets.get(i) {
                    Some(id) => WalletCommand::Refund {
                        reservation_id: rid(id),
                        transaction_id: tx(&format!("f{n}")),
                    },
                    None => continue,
                },
                Op::Close(i) => match bets.get(i) {
                    Some(id) => WalletCommand::CloseRound {
                        transaction_id: tx(&format!("c{n}")),
                        round_id: RoundId::new(format!("round-{id}")).unwrap(),
                        now: t0(),
                    },
                    None => continue,
                },
                Op::Forfeit(i) => match grants.get(i) {
                    Some(id) => WalletCommand::ForfeitBonus {
                        transaction_id: tx(&format!("x{n}")),
                        bonus_id: bid(id),
                        reason: ForfeitReason::new("test").unwrap(),
                        by: by(),
                    },
                    None => continue,
                },
                Op::Expire(i) => match grants.get(i) {
                    Some(id) => WalletCommand::ExpireBonus {
                        bonus_id: bid(id),
                        now: t0() + chrono::Duration::days(8),
                    },
                    None => continue,
                },
                Op::Withdraw(a, f) => withdraw(&format!("w{n}"), &cents(a).to_string(), f),
                Op::GrantFree(rounds, m) => {
                    free_grants.push(format!("fg{n}"));
                    WalletCommand::GrantFreeRounds {
                        transaction_id: tx(&format!("fg{n}")),
                        provider: "prov".into(),
                        game_id: game("slots"),
                        rounds,
                        bet_value: d("0.10"),
                        expires_at: t0() + chrono::Duration::days(1),
                        wagering_multiplier: Some(m),
                        currency: None,
                        multiplier_max: WAGERING_MULTIPLIER_MAX_DEFAULT,
                        now: t0(),
                        by: by(),
                    }
                }
                Op::FreeBet(i, payout) => match free_grants.get(i) {
                    Some(g) => {
                        if payout.is_none() {
                            bets.push(format!("prov:fb{n}"));
                        }
                        WalletCommand::FreeRoundBet {
                            reservation_id: rid(&format!("prov:fb{n}")),
                            grant_id: bid(g),
                            game_id: game("slots"),
                            round_id: RoundId::new(format!("prov:round-fb{n}")).unwrap(),
                            payout: payout.map(cents),
                            round_closed: false,
                            timeout_s: 60,
                            currency: None,
                            now: t0(),
                        }
                    }
                    None => continue,
                },
                Op::ExpireFree(i) => match free_grants.get(i) {
                    Some(g) => WalletCommand::ExpireFreeRounds {
                        grant_id: bid(g),
                        now: t0() + chrono::Duration::days(2),
                    },
                    None => continue,
                },
                Op::Deposit(a) => WalletCommand::Deposit {
                    transaction_id: tx(&format!("d{n}")),
                    amount: cents(a),
                    currency: None,
                    now: t0(),
                },
            };
            let full = w.decide(command.clone());
            if cached.holds(&command) && cached.unheld_round(&command).is_none() {
                prop_assert_eq!(&cached.decide(command.clone()), &full, "the cache decides as the full state");
            }
            let Ok(event) = full else { continue };
            sums.add(&event);
            w.apply(event.clone());
            cached.apply(event);
            cached.compact();
            let b = w.balance().unwrap();
            for (part, amount) in b.parts() {
                prop_assert!(amount >= Decimal::ZERO, "{:?} {}", part, amount);
            }
            prop_assert_eq!(b.total(), sums.net, "cash + bonus is conserved");
            let active: Decimal = w.awards().filter(|a| a.status == AwardStatus::Active).map(|a| a.balance).sum();
            prop_assert_eq!(b.bonus, active, "bonus is the active award's balance");
            let open_bonus: Decimal = w.open_reservations().filter_map(|(_, r)| r.bonus.as_ref()).map(|f| f.amount).sum();
            prop_assert_eq!(b.bonus_reserved, open_bonus);
            let open_cash: Decimal = w.open_reservations().map(|(_, r)| r.amount - r.bonus.as_ref().map_or(Decimal::ZERO, |f| f.amount)).sum();
            prop_assert_eq!(b.reserved, open_cash);
            prop_assert!(w.awards().filter(|a| a.status == AwardStatus::Active).count() <= 1);
            for a in w.awards() {
                prop_assert!(a.balance >= Decimal::ZERO && a.in_bets >= Decimal::ZERO, "{:?}", a);
                if let Some(cap) = a.terms.max_conversion {
                    prop_assert!(a.converted <= cap);
                }
                if a.status.ended() {
                    prop_assert_eq!(a.balance, Decimal::ZERO, "an ended award holds nothing");
                }
            }
            prop_assert!(cached.stands_for(&w));
        }
    }
}

// ---- free rounds ----

fn grant_free(id: &str, rounds: i64, multiplier: Option<i64>) -> WalletCommand {
    WalletCommand::GrantFreeRounds {
        transaction_id: tx(id),
        provider: "prov".into(),
        game_id: game("slots"),
        rounds,
        bet_value: d("0.20"),
        expires_at: t0() + chrono::Duration::days(1),
        wagering_multiplier: multiplier,
        currency: None,
        multiplier_max: WAGERING_MULTIPLIER_MAX_DEFAULT,
        now: t0(),
        by: by(),
    }
}
fn free_bet(id: &str, grant: &str, payout: Option<&str>) -> WalletCommand {
    free_bet_at(id, grant, "slots", payout, t0())
}
fn free_bet_at(
    id: &str,
    grant: &str,
    g: &str,
    payout: Option<&str>,
    now: chrono::DateTime<chrono::Utc>,
) -> WalletCommand {
    WalletCommand::FreeRoundBet {
        reservation_id: rid(&format!("prov:{id}")),
        grant_id: bid(grant),
        game_id: game(g),
        round_id: RoundId::new(format!("prov:round-{id}")).unwrap(),
        payout: payout.map(d),
        round_closed: false,
        timeout_s: 60,
        currency: None,
        now,
    }
}
fn free_settle(id: &str, payout: &str) -> WalletCommand {
    WalletCommand::Settle {
        reservation_id: rid(&format!("prov:{id}")),
        transaction_id: tx(&format!("{id}-win")),
        payout: d(payout),
        currency: None,
        now: t0(),
    }
}
fn grant_of<'w>(w: &'w Wallet, id: &str) -> &'w crate::wallet::free_rounds::FreeRounds {
    w.free_rounds().find(|g| g.grant_id == bid(id)).unwrap()
}

#[test]
fn free_bets_cost_nothing_and_their_wins_become_an_award_when_every_round_is_settled() {
    let mut w = wallet("1.00");
    run(&mut w, grant_free("fr", 2, Some(5))).unwrap();
    run(&mut w, free_bet("b1", "fr", None)).unwrap();
    let b = w.balance().unwrap();
    assert_eq!(
        (b.available, b.reserved),
        (d("1.00"), Decimal::ZERO),
        "it costs nothing"
    );
    run(&mut w, free_bet("b2", "fr", Some("3.00"))).unwrap();
    assert_eq!(grant_of(&w, "fr").rounds_left, 0);
    assert_eq!(grant_of(&w, "fr").winnings, d("3.00"));
    assert_eq!(w.balance().unwrap().available, d("1.00"), "winnings wait");
    // No round left: refused, nothing moves.
    assert!(matches!(
        run(&mut w, free_bet("b3", "fr", None)),
        Err(WalletError::FreeRoundsUnavailable { .. })
    ));
    // The last open bet settles: the grant completes into an award wagered 5 times.
    run(&mut w, free_settle("b1", "2.00")).unwrap();
    assert_eq!(
        grant_of(&w, "fr").status,
        crate::wallet::free_rounds::FreeRoundsStatus::Completed
    );
    let a = award(&w, "fr");
    assert_eq!((a.amount, a.status), (d("5.00"), AwardStatus::Active));
    assert_eq!(a.required(), d("25.00"));
    assert_eq!(parts(&w), cents_of(["1.00", "0", "5.00", "0"]));
}

#[test]
fn free_rounds_without_a_multiplier_pay_cash_and_a_refund_gives_the_round_back() {
    let mut w = wallet("0");
    run(&mut w, grant_free("fr", 1, None)).unwrap();
    run(&mut w, free_bet("b1", "fr", None)).unwrap();
    run(
        &mut w,
        WalletCommand::Refund {
            reservation_id: rid("prov:b1"),
            transaction_id: tx("b1-refund"),
        },
    )
    .unwrap();
    assert_eq!(
        grant_of(&w, "fr").rounds_left,
        1,
        "a rolled back round is given back"
    );
    run(&mut w, free_bet("b2", "fr", Some("4.00"))).unwrap();
    assert_eq!(w.balance().unwrap().available, d("4.00"), "cash at the end");
}

#[test]
fn a_free_bet_of_another_game_or_provider_or_after_expiry_is_unavailable() {
    let mut w = wallet("0");
    run(&mut w, grant_free("fr", 3, Some(1))).unwrap();
    let expires = grant_of(&w, "fr").expires_at;
    for (cmd, why) in [
        (
            free_bet_at("b1", "fr", "roulette", None, t0()),
            "another game",
        ),
        (free_bet_at("b2", "fr", "slots", None, expires), "expired"),
        (free_bet("b3", "nope", None), "no such grant"),
    ] {
        assert!(
            matches!(
                run(&mut w, cmd),
                Err(WalletError::FreeRoundsUnavailable { .. })
            ),
            "{why}"
        );
    }
    let other_provider = WalletCommand::FreeRoundBet {
        reservation_id: rid("other:b4"),
        grant_id: bid("fr"),
        game_id: game("slots"),
        round_id: RoundId::new("other:round-b4").unwrap(),
        payout: None,
        round_closed: false,
        timeout_s: 60,
        currency: None,
        now: t0(),
    };
    assert!(matches!(
        run(&mut w, other_provider),
        Err(WalletError::FreeRoundsUnavailable { .. })
    ));
    assert_eq!(grant_of(&w, "fr").rounds_left, 3);
}

#[test]
fn an_expired_grant_pays_its_winnings_and_a_later_win_is_kept_by_no_one() {
    let mut w = wallet("0");
    run(&mut w, grant_free("fr", 5, Some(2))).unwrap();
    run(&mut w, free_bet("b1", "fr", Some("1.50"))).unwrap();
    run(&mut w, free_bet("b2", "fr", None)).unwrap();
    let expires = grant_of(&w, "fr").expires_at;
    run(
        &mut w,
        WalletCommand::ExpireFreeRounds {
            grant_id: bid("fr"),
            now: expires,
        },
    )
    .unwrap();
    assert_eq!(award(&w, "fr").amount, d("1.50"));
    let before = w.balance().unwrap();
    let late = run(&mut w, free_settle("b2", "9.00")).unwrap();
    assert_eq!(w.balance().unwrap(), before, "the grant's rounds were over");
    assert!(late.bonus_moves().unwrap().0.free_rounds[0].lapsed);
}

#[test]
fn a_free_bet_lost_with_its_round_ends_the_grant() {
    let mut w = wallet("0");
    run(&mut w, grant_free("fr", 1, Some(2))).unwrap();
    run(&mut w, free_bet("b1", "fr", None)).unwrap();
    run(
        &mut w,
        WalletCommand::CloseRound {
            transaction_id: tx("close"),
            round_id: RoundId::new("prov:round-b1").unwrap(),
            now: t0(),
        },
    )
    .unwrap();
    let g = grant_of(&w, "fr");
    assert_eq!(
        (g.open, g.status),
        (0, crate::wallet::free_rounds::FreeRoundsStatus::Completed)
    );
}
