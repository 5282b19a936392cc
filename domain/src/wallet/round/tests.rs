//! Given/when/then for every round rule and refusal, and a property test of random
//! interleavings of bets, wins, closes, bet-wins, bet-less wins, adjustments and
//! rollbacks against a reference model, with a compacted cache deciding beside the full
//! state as the batched write path does.

use super::*;
use crate::wallet::tests::{cents, d, error_name, funded, rid, t0, tx};
use crate::wallet::{Wallet, WalletServices};
use cqrs_es::test::TestFramework;
use cqrs_es::Aggregate;
use proptest::prelude::*;
use std::collections::HashMap;

type WalletTest = TestFramework<Wallet>;

fn round(s: &str) -> RoundId {
    RoundId::new(s).unwrap()
}
fn game() -> GameId {
    GameId::new("g").unwrap()
}
fn reserved(id: &str, in_round: &str, amount: &str) -> WalletEvent {
    WalletEvent::FundsReserved {
        reservation_id: rid(id),
        amount: d(amount),
        game_id: game(),
        round_id: round(in_round),
        expires_at: t0() + chrono::Duration::seconds(60),
        at: None,
        bonus: None,
    }
}
fn bet(id: &str, in_round: &str, amount: &str) -> WalletCommand {
    WalletCommand::Reserve {
        reservation_id: rid(id),
        amount: d(amount),
        currency: None,
        game_id: game(),
        round_id: round(in_round),
        timeout_s: 60,
        now: t0(),
    }
}
fn win(id: &str, in_round: &str, target: WinTarget, amount: &str, closing: bool) -> WalletCommand {
    WalletCommand::Win {
        transaction_id: tx(id),
        round_id: round(in_round),
        target,
        amount: d(amount),
        game_id: None,
        round_closed: closing,
        currency: None,
        now: chrono::DateTime::UNIX_EPOCH,
    }
}
fn on(bet: &str) -> WinTarget {
    WinTarget::Bet(rid(bet))
}
fn close(id: &str, in_round: &str) -> WalletCommand {
    WalletCommand::CloseRound {
        transaction_id: tx(id),
        round_id: round(in_round),
        now: chrono::DateTime::UNIX_EPOCH,
    }
}
fn bet_win(id: &str, in_round: &str, stake: &str, payout: &str, closing: bool) -> WalletCommand {
    WalletCommand::BetWin {
        reservation_id: rid(id),
        amount: d(stake),
        payout: d(payout),
        currency: None,
        game_id: game(),
        round_id: round(in_round),
        round_closed: closing,
        now: t0(),
    }
}
fn adjust(id: &str, amount: &str, in_round: Option<&str>) -> WalletCommand {
    WalletCommand::Adjust {
        transaction_id: tx(id),
        amount: d(amount),
        reason: AdjustmentReason::new("correction").unwrap(),
        round_id: in_round.map(round),
        currency: None,
        by: None,
    }
}
fn rollback(id: &str, by: &str, in_round: &str) -> WalletCommand {
    WalletCommand::Rollback {
        reservation_id: rid(id),
        transaction_id: tx(by),
        round_id: round(in_round),
    }
}
fn lost(id: &str, stake: &str) -> LostBet {
    LostBet {
        reservation_id: rid(id),
        stake: d(stake),
    }
}
fn settled(id: &str, stake: &str, payout: &str) -> WalletEvent {
    WalletEvent::ReservationSettled {
        reservation_id: rid(id),
        transaction_id: tx(&format!("{id}-win")),
        stake: d(stake),
        payout: d(payout),
        at: None,
        bonus: None,
    }
}
fn closed_round(id: &str, in_round: &str, lost_bets: Vec<LostBet>) -> WalletEvent {
    WalletEvent::RoundClosed {
        transaction_id: tx(id),
        round_id: round(in_round),
        game_id: Some(game()),
        lost: lost_bets,
        at: None,
        bonus: None,
    }
}
fn wallet_of(events: Vec<WalletEvent>) -> Wallet {
    let mut wallet = Wallet::default();
    for e in events {
        wallet.apply(e);
    }
    wallet
}
fn with(events: &[WalletEvent]) -> Vec<WalletEvent> {
    let mut all = funded();
    all.extend_from_slice(events);
    all
}

#[test]
fn the_first_win_settles_a_bet_and_a_second_and_third_are_credited_to_the_round() {
    WalletTest::with(WalletServices)
        .given(with(&[reserved("b1", "r", "10.00")]))
        .when(win("b1-win", "r", on("b1"), "4.00", false))
        .then_expect_events(vec![settled("b1", "10.00", "4.00")]);
    let second = WalletEvent::WinCredited {
        transaction_id: tx("w2"),
        round_id: round("r"),
        game_id: Some(game()),
        reservation_id: Some(rid("b1")),
        settled_stake: None,
        amount: d("3.00"),
        kind: None,
        campaign_id: None,
        round_closed: false,
        lost: vec![],
        at: None,
        bonus: None,
    };
    WalletTest::with(WalletServices)
        .given(with(&[
            reserved("b1", "r", "10.00"),
            settled("b1", "10.00", "4.00"),
        ]))
        .when(win("w2", "r", on("b1"), "3.00", false))
        .then_expect_events(vec![second.clone()]);
    let w = wallet_of(with(&[
        reserved("b1", "r", "10.00"),
        settled("b1", "10.00", "4.00"),
        second,
    ]));
    let third = w.decide(win("w3", "r", on("b1"), "1.50", false)).unwrap();
    let mut w = w;
    w.apply(third);
    assert_eq!(
        w.balance().unwrap().available,
        d("98.50"),
        "100 - 10 + 4 + 3 + 1.50"
    );
}

#[test]
fn a_win_naming_only_the_round_is_credited_while_it_is_open() {
    let w = wallet_of(with(&[reserved("b1", "r", "10.00")]));
    let event = w
        .decide(win("w1", "r", WinTarget::Round, "2.00", false))
        .unwrap();
    assert!(matches!(
        event,
        WalletEvent::WinCredited {
            reservation_id: None,
            settled_stake: None,
            ..
        }
    ));
    assert_eq!(
        w.decide(win("w1", "unseen", WinTarget::Round, "2.00", false)),
        Err(WalletError::RoundNotFound {
            round_id: round("unseen")
        })
    );
}

#[test]
fn a_win_for_a_bet_and_round_never_seen_is_not_found_and_moves_nothing() {
    WalletTest::with(WalletServices)
        .given(funded())
        .when(win("w1", "r", on("b1"), "5.00", false))
        .then_expect_error(WalletError::ReservationNotFound {
            reservation_id: rid("b1"),
        });
}

#[test]
fn a_win_with_the_close_flag_settles_its_bet_and_loses_the_others() {
    WalletTest::with(WalletServices)
        .given(with(&[
            reserved("b1", "r", "10.00"),
            reserved("b2", "r", "5.00"),
            reserved("x", "other", "1.00"),
        ]))
        .when(win("w1", "r", on("b1"), "30.00", true))
        .then_expect_events(vec![WalletEvent::WinCredited {
            transaction_id: tx("w1"),
            round_id: round("r"),
            game_id: Some(game()),
            reservation_id: Some(rid("b1")),
            settled_stake: Some(d("10.00")),
            amount: d("30.00"),
            kind: None,
            campaign_id: None,
            round_closed: true,
            lost: vec![lost("b2", "5.00")],
            at: None,
            bonus: None,
        }]);
}

#[test]
fn closing_a_round_loses_its_open_bets_and_then_bets_wins_and_rollbacks_are_refused() {
    let events = with(&[reserved("b1", "r", "10.00"), reserved("b2", "r", "5.00")]);
    WalletTest::with(WalletServices)
        .given(events.clone())
        .when(close("c1", "r"))
        .then_expect_events(vec![closed_round(
            "c1",
            "r",
            vec![lost("b1", "10.00"), lost("b2", "5.00")],
        )]);
    let mut closed = events;
    closed.push(closed_round(
        "c1",
        "r",
        vec![lost("b1", "10.00"), lost("b2", "5.00")],
    ));
    let w = wallet_of(closed.clone());
    assert_eq!(w.balance().unwrap().available, d("85.00"));
    assert_eq!(w.balance().unwrap().reserved, d("0"));
    let refused = Err(WalletError::RoundClosed {
        round_id: round("r"),
    });
    assert_eq!(w.decide(bet("b3", "r", "1.00")), refused);
    assert_eq!(w.decide(win("w1", "r", on("b1"), "1.00", false)), refused);
    assert_eq!(
        w.decide(win("w2", "r", WinTarget::Round, "1.00", false)),
        refused
    );
    assert_eq!(w.decide(rollback("b1", "rb1", "r")), refused);
    assert_eq!(w.decide(rollback("never", "rb2", "r")), refused);
    assert_eq!(w.decide(bet_win("bw", "r", "1.00", "2.00", false)), refused);
    let free = WinTarget::Betless {
        kind: BetlessKind::FreeSpin,
        campaign_id: None,
    };
    assert_eq!(w.decide(win("w3", "r", free, "1.00", false)), refused);
    // Closing it again is a repeat: it loses nothing.
    WalletTest::with(WalletServices)
        .given(closed)
        .when(close("c2", "r"))
        .then_expect_events(vec![closed_round("c2", "r", vec![])]);
}

#[test]
fn closing_a_round_never_seen_keeps_it_closed_for_a_late_bet() {
    let w = wallet_of(funded());
    let event = w.decide(close("c1", "r")).unwrap();
    assert_eq!(
        event,
        WalletEvent::RoundClosed {
            transaction_id: tx("c1"),
            round_id: round("r"),
            game_id: None,
            lost: vec![],
            at: None,
            bonus: None,
        }
    );
    let mut w = w;
    w.apply(event);
    assert_eq!(
        w.decide(bet("late", "r", "1.00")),
        Err(WalletError::RoundClosed {
            round_id: round("r")
        })
    );
}

#[test]
fn a_bet_win_takes_the_stake_and_pays_at_once_or_does_nothing() {
    WalletTest::with(WalletServices)
        .given(funded())
        .when(bet_win("bw1", "r", "10.00", "25.00", false))
        .then_expect_events(vec![WalletEvent::BetSettled {
            reservation_id: rid("bw1"),
            game_id: game(),
            round_id: round("r"),
            stake: d("10.00"),
            payout: d("25.00"),
            placed_at: t0(),
            round_closed: false,
            lost: vec![],
            bonus: None,
        }]);
    WalletTest::with(WalletServices)
        .given(funded())
        .when(bet_win("bw1", "r", "100.01", "500.00", false))
        .then_expect_error(WalletError::InsufficientFunds {
            available: d("100.00"),
            requested: d("100.01"),
        });
    let mut w = wallet_of(funded());
    w.apply(w.decide(bet_win("bw1", "r", "10.00", "0", true)).unwrap());
    assert_eq!(w.balance().unwrap().available, d("90.00"));
    assert!(w.round(&round("r")).unwrap().closed);
    assert_eq!(
        w.decide(bet_win("bw1", "r2", "1.00", "0", false)),
        Err(WalletError::IdempotencyConflict {
            transaction_id: tx("bw1")
        }),
        "its id is a bet's id"
    );
}

#[test]
fn wins_without_a_bet_of_each_kind_are_credited_and_open_their_round() {
    for kind in [
        BetlessKind::FreeSpin,
        BetlessKind::Promo,
        BetlessKind::Jackpot,
    ] {
        let campaign = Some(crate::ids::CampaignId::new("spring").unwrap());
        let mut w = wallet_of(funded());
        let target = WinTarget::Betless {
            kind,
            campaign_id: campaign.clone(),
        };
        let event = w.decide(win("w1", "fs", target, "7.00", false)).unwrap();
        assert!(
            matches!(&event, WalletEvent::WinCredited { kind: Some(k), campaign_id, .. } if *k == kind && *campaign_id == campaign)
        );
        assert_eq!(w.round_opened_by(&event), Some(round("fs")));
        assert_eq!(event.net_win(), None, "not on the boards");
        w.apply(event);
        assert_eq!(w.balance().unwrap().available, d("107.00"));
        assert!(w.round(&round("fs")).is_some_and(|r| !r.closed));
    }
}

#[test]
fn adjustments_credit_and_debit_against_a_known_round_and_never_reopen_it() {
    let closed = with(&[
        reserved("b1", "r", "10.00"),
        closed_round("c1", "r", vec![lost("b1", "10.00")]),
    ]);
    let mut w = wallet_of(closed.clone());
    let up = w.decide(adjust("a1", "2.50", Some("r"))).unwrap();
    w.apply(up);
    assert_eq!(w.balance().unwrap().available, d("92.50"));
    assert!(w.round(&round("r")).unwrap().closed, "still closed");
    let down = w.decide(adjust("a2", "-2.50", None)).unwrap();
    w.apply(down);
    assert_eq!(w.balance().unwrap().available, d("90.00"));
    assert_eq!(
        w.decide(adjust("a3", "-90.01", None)),
        Err(WalletError::InsufficientFunds {
            available: d("90.00"),
            requested: d("90.01")
        })
    );
    assert_eq!(
        w.decide(adjust("a4", "1.00", Some("unseen"))),
        Err(WalletError::RoundNotFound {
            round_id: round("unseen")
        })
    );
    assert!(matches!(
        w.decide(adjust("a5", "0.001", None)),
        Err(WalletError::InvalidAmount { .. })
    ));
}

#[test]
fn a_compacted_wallet_forgets_closed_and_long_idle_rounds_and_says_when_an_event_would_reopen_one()
{
    let mut events = with(&[
        reserved("b1", "done", "1.00"),
        closed_round("c1", "done", vec![lost("b1", "1.00")]),
    ]);
    for i in 0..20 {
        events.push(reserved(&format!("i{i}"), &format!("idle{i}"), "1.00"));
        events.push(settled(&format!("i{i}"), "1.00", "1.00"));
    }
    events.push(reserved("open", "busy", "1.00"));
    let full = wallet_of(events);
    let cached = full.compacted();
    assert!(
        cached.round(&round("done")).is_none(),
        "closed rounds are forgotten"
    );
    assert!(
        cached.round(&round("busy")).is_some(),
        "a round with an open bet stays"
    );
    let idle_kept = (0..20)
        .filter(|i| cached.round(&round(&format!("idle{i}"))).is_some())
        .count();
    assert_eq!(idle_kept, IDLE_ROUNDS_KEPT);
    assert!(cached.round(&round("idle19")).is_some() && cached.round(&round("idle0")).is_none());
    // A bet in the forgotten closed round: the cache would open it; the log refuses that.
    let reopening = cached.decide(bet("late", "done", "1.00")).unwrap();
    assert_eq!(cached.round_opened_by(&reopening), Some(round("done")));
    assert_eq!(
        full.decide(bet("late", "done", "1.00")),
        Err(WalletError::RoundClosed {
            round_id: round("done")
        })
    );
    // What needs a round it does not hold goes to the full state.
    assert!(!cached.holds(&win("w", "idle0", WinTarget::Round, "1.00", false)));
    assert!(!cached.holds(&win("w", "idle0", on("i0"), "1.00", false)));
    assert!(!cached.holds(&adjust("a", "1.00", Some("idle0"))));
    assert!(cached.holds(&win("w", "busy", on("open"), "1.00", true)));
}

// ---- who may create money: providers that served the wallet (issue 28) -----------------

fn promo() -> WinTarget {
    WinTarget::Betless {
        kind: BetlessKind::Promo,
        campaign_id: None,
    }
}

#[test]
fn a_provider_that_took_no_stake_may_not_pay_a_win_without_a_bet() {
    WalletTest::with(WalletServices)
        .given(funded())
        .when(win("w1", "alpha:r1", promo(), "50.00", false))
        .then_expect_error(WalletError::NotServed {
            provider: "alpha".into(),
        });
}

#[test]
fn a_provider_that_took_a_stake_may_pay_a_win_without_a_bet_in_any_of_its_rounds() {
    let mut events = funded();
    events.push(reserved("alpha:b1", "alpha:r1", "1.00"));
    let w = wallet_of(events.clone());
    assert!(w
        .decide(win("w1", "alpha:r9", promo(), "50.00", false))
        .is_ok());
    // A bet-win serves too; another provider's stake does not.
    let mut by_bet_win = funded();
    let bw = wallet_of(by_bet_win.clone())
        .decide(bet_win("beta:b2", "beta:r1", "1.00", "0", true))
        .unwrap();
    by_bet_win.push(bw);
    let w = wallet_of(by_bet_win);
    assert!(w
        .decide(win("w2", "beta:r2", promo(), "5.00", false))
        .is_ok());
    assert_eq!(
        w.decide(win("w3", "alpha:r2", promo(), "5.00", false)),
        Err(WalletError::NotServed {
            provider: "alpha".into()
        })
    );
}

#[test]
fn a_bet_placed_before_rounds_were_scoped_serves_its_provider() {
    // docs/0012: a provider's bet ids were scoped before its round ids were.
    let mut events = funded();
    events.push(reserved("alpha:old-bet", "legacy-round", "1.00"));
    let w = wallet_of(events);
    assert!(w
        .decide(win("w1", "alpha:r1", promo(), "5.00", false))
        .is_ok());
}

#[test]
fn a_provider_that_took_no_stake_may_not_adjust_even_a_round_it_closed() {
    // A close of a round never seen opens it, closed, moving nothing; it serves nobody.
    let mut events = funded();
    events.push(closed_round("c1", "alpha:never", Vec::new()));
    WalletTest::with(WalletServices)
        .given(events)
        .when(adjust("a1", "1000000.00", Some("alpha:never")))
        .then_expect_error(WalletError::NotServed {
            provider: "alpha".into(),
        });
}

#[test]
fn a_native_round_is_the_operators_and_needs_no_stake_first() {
    let w = wallet_of(funded());
    assert!(w
        .decide(win("w1", "native-r", promo(), "5.00", false))
        .is_ok());
    assert!(w.decide(adjust("a1", "5.00", None)).is_ok());
}

#[test]
fn who_was_served_survives_compaction_and_a_snapshot() {
    let mut events = funded();
    events.push(reserved("alpha:b1", "alpha:r1", "1.00"));
    events.push(settled("alpha:b1", "1.00", "0"));
    let full = wallet_of(events);
    let cached = full.compacted();
    assert!(cached.stands_for(&full));
    assert!(cached
        .decide(win("w1", "alpha:r2", promo(), "5.00", false))
        .is_ok());
    let stored = serde_json::to_value(&cached).unwrap();
    let read: Wallet = serde_json::from_value(stored.clone()).unwrap();
    assert_eq!(read, cached);
    // A snapshot from before the record cannot be read: the log is folded instead.
    let mut old = stored;
    old["opened"].as_object_mut().unwrap().remove("served");
    assert!(serde_json::from_value::<Wallet>(old).is_err());
}

// ---- the property test -----------------------------------------------------------------

#[derive(Debug, Clone)]
enum Op {
    Deposit(i64),
    Bet {
        id: u8,
        round: u8,
        cents: i64,
    },
    Win {
        bet: Option<u8>,
        round: u8,
        cents: i64,
        closing: bool,
    },
    Betless {
        round: u8,
        cents: i64,
        closing: bool,
    },
    Close(u8),
    BetWin {
        id: u8,
        round: u8,
        stake: i64,
        payout: i64,
        closing: bool,
    },
    Adjust {
        cents: i64,
        round: Option<u8>,
    },
    Rollback {
        id: u8,
        round: u8,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let closing = prop_oneof![3 => Just(false), 1 => Just(true)];
    prop_oneof![
        2 => (1i64..20_000).prop_map(Op::Deposit),
        4 => (0u8..8, 0u8..4, 1i64..5_000).prop_map(|(id, round, cents)| Op::Bet { id, round, cents }),
        4 => (proptest::option::weighted(0.8, 0u8..8), 0u8..4, 0i64..8_000, closing.clone())
            .prop_map(|(bet, round, cents, closing)| Op::Win { bet, round, cents, closing }),
        1 => (0u8..4, 0i64..3_000, closing.clone())
            .prop_map(|(round, cents, closing)| Op::Betless { round, cents, closing }),
        2 => (0u8..4).prop_map(Op::Close),
        2 => (8u8..12, 0u8..4, 1i64..5_000, 0i64..8_000, closing)
            .prop_map(|(id, round, stake, payout, closing)| Op::BetWin { id, round, stake, payout, closing }),
        1 => (-3_000i64..3_000, proptest::option::of(0u8..4))
            .prop_filter("an adjustment is not zero", |(c, _)| *c != 0)
            .prop_map(|(cents, round)| Op::Adjust { cents, round }),
        2 => (0u8..12, 0u8..4).prop_map(|(id, round)| Op::Rollback { id, round }),
    ]
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BetState {
    Open,
    Settled,
    Refunded,
    Voided,
}

/// The reference: integers and maps, written from the contract, not from `decide`.
#[derive(Default)]
struct Model {
    available: i64,
    reserved: i64,
    /// bet id -> (round, stake, state)
    bets: HashMap<u8, (u8, i64, BetState)>,
    /// round -> closed
    rounds: HashMap<u8, bool>,
    /// deposits + payouts + bet-less wins + adjustments - stakes taken
    flows: i64,
}

impl Model {
    fn closed(&self, round: u8) -> bool {
        self.rounds.get(&round).copied().unwrap_or(false)
    }

    /// A win of `cents` in `round`, which closes after it if `closing`.
    fn win(&mut self, cents: i64, round: u8, closing: bool) {
        self.available += cents;
        self.flows += cents;
        if closing {
            self.close(round);
        }
    }

    fn close(&mut self, round: u8) {
        for (r, stake, state) in self.bets.values_mut() {
            if *r == round && *state == BetState::Open {
                *state = BetState::Settled;
                self.reserved -= *stake;
                self.flows -= *stake;
            }
        }
        self.rounds.insert(round, true);
    }

    fn step(&mut self, op: &Op) -> Result<(), &'static str> {
        match *op {
            Op::Deposit(c) => {
                self.available += c;
                self.flows += c;
            }
            Op::Bet { id, round, cents } => {
                self.new_bet(id, round)?;
                if cents > self.available {
                    return Err("InsufficientFunds");
                }
                self.available -= cents;
                self.reserved += cents;
                self.bets.insert(id, (round, cents, BetState::Open));
                self.rounds.entry(round).or_insert(false);
            }
            Op::Win {
                bet: Some(id),
                round,
                cents,
                closing,
            } => {
                if self.voided(id) {
                    return Err("ReservationClosed");
                }
                let (bet_round, stake, state) = match self.bets.get(&id) {
                    None if self.closed(round) => return Err("RoundClosed"),
                    None => {
                        return Err(if self.voided(id) {
                            "ReservationClosed"
                        } else {
                            "ReservationNotFound"
                        })
                    }
                    Some(b) => *b,
                };
                if self.closed(bet_round) {
                    return Err("RoundClosed");
                }
                match state {
                    BetState::Open => {
                        self.bets.insert(id, (bet_round, stake, BetState::Settled));
                        self.reserved -= stake;
                        self.flows -= stake;
                    }
                    BetState::Settled => {}
                    _ => return Err("ReservationClosed"),
                }
                self.win(cents, bet_round, closing);
            }
            Op::Win {
                bet: None,
                round,
                cents,
                closing,
            } => {
                match self.rounds.get(&round) {
                    None => return Err("RoundNotFound"),
                    Some(true) => return Err("RoundClosed"),
                    Some(false) => {}
                }
                self.win(cents, round, closing);
            }
            Op::Betless {
                round,
                cents,
                closing,
            } => {
                if self.closed(round) {
                    return Err("RoundClosed");
                }
                self.rounds.entry(round).or_insert(false);
                self.win(cents, round, closing);
            }
            Op::Close(round) => {
                if !self.closed(round) {
                    self.close(round);
                }
            }
            Op::BetWin {
                id,
                round,
                stake,
                payout,
                closing,
            } => {
                self.new_bet(id, round)?;
                if stake > self.available {
                    return Err("InsufficientFunds");
                }
                self.available += payout - stake;
                self.flows += payout - stake;
                self.bets.insert(id, (round, stake, BetState::Settled));
                self.rounds.entry(round).or_insert(false);
                if closing {
                    self.close(round);
                }
            }
            Op::Adjust { cents, round } => {
                if round.is_some_and(|r| !self.rounds.contains_key(&r)) {
                    return Err("RoundNotFound");
                }
                if cents < 0 && -cents > self.available {
                    return Err("InsufficientFunds");
                }
                self.available += cents;
                self.flows += cents;
            }
            Op::Rollback { id, round } => {
                if self.voided(id) {
                    return Err("ReservationClosed");
                }
                let bet_round = self.bets.get(&id).map_or(round, |b| b.0);
                if self.closed(bet_round) {
                    return Err("RoundClosed");
                }
                match self.bets.get(&id).copied() {
                    None => {
                        self.bets.insert(id, (round, 0, BetState::Voided));
                    }
                    Some((r, stake, BetState::Open)) => {
                        self.bets.insert(id, (r, stake, BetState::Refunded));
                        self.reserved -= stake;
                        self.available += stake;
                    }
                    Some(_) => return Err("ReservationClosed"),
                }
            }
        }
        Ok(())
    }

    fn voided(&self, id: u8) -> bool {
        matches!(self.bets.get(&id), Some((_, _, BetState::Voided)))
    }

    fn new_bet(&self, id: u8, round: u8) -> Result<(), &'static str> {
        if self.voided(id) {
            return Err("ReservationClosed");
        }
        if self.bets.contains_key(&id) {
            return Err("IdempotencyConflict");
        }
        if self.closed(round) {
            return Err("RoundClosed");
        }
        Ok(())
    }
}

fn command(op: &Op, i: usize) -> Option<WalletCommand> {
    let t = tx(&format!("t{i}"));
    let b = |id: u8| rid(&format!("b{id}"));
    let r = |n: u8| round(&format!("r{n}"));
    // Bets of one round may name different games: the round keeps its first one.
    let game_of = |id: u8| GameId::new(format!("g{}", id % 3)).unwrap();
    Some(match *op {
        Op::Deposit(c) => WalletCommand::Deposit {
            transaction_id: t,
            amount: cents(c),
            currency: None,
            now: chrono::DateTime::UNIX_EPOCH,
        },
        Op::Bet {
            id,
            round,
            cents: c,
        } => WalletCommand::Reserve {
            reservation_id: b(id),
            amount: cents(c),
            currency: None,
            game_id: game_of(id),
            round_id: r(round),
            timeout_s: 60,
            now: t0(),
        },
        Op::Win {
            bet,
            round,
            cents: c,
            closing,
        } => WalletCommand::Win {
            transaction_id: t,
            round_id: r(round),
            target: bet.map_or(WinTarget::Round, |id| WinTarget::Bet(b(id))),
            amount: cents(c),
            game_id: None,
            round_closed: closing,
            currency: None,
            now: chrono::DateTime::UNIX_EPOCH,
        },
        Op::Betless {
            round,
            cents: c,
            closing,
        } => WalletCommand::Win {
            transaction_id: t,
            round_id: r(round),
            target: WinTarget::Betless {
                kind: BetlessKind::Promo,
                campaign_id: None,
            },
            amount: cents(c),
            game_id: None,
            round_closed: closing,
            currency: None,
            now: chrono::DateTime::UNIX_EPOCH,
        },
        Op::Close(round) => WalletCommand::CloseRound {
            transaction_id: t,
            round_id: r(round),
            now: chrono::DateTime::UNIX_EPOCH,
        },
        Op::BetWin {
            id,
            round,
            stake,
            payout,
            closing,
        } => WalletCommand::BetWin {
            reservation_id: b(id),
            amount: cents(stake),
            payout: cents(payout),
            currency: None,
            game_id: game_of(id),
            round_id: r(round),
            round_closed: closing,
            now: t0(),
        },
        Op::Adjust { cents: c, round } => WalletCommand::Adjust {
            transaction_id: t,
            amount: cents(c),
            reason: AdjustmentReason::new("fix").unwrap(),
            round_id: round.map(r),
            currency: None,
            by: None,
        },
        Op::Rollback { id, round } => WalletCommand::Rollback {
            reservation_id: b(id),
            transaction_id: t,
            round_id: r(round),
        },
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_interleaving_of_round_traffic_matches_the_model_and_conserves_money(
        ops in proptest::collection::vec(op(), 1..150),
        batches in proptest::collection::vec(1usize..5, 150),
        snapshots in proptest::collection::vec(proptest::bool::weighted(0.3), 150),
    ) {
        let mut full = wallet_of(funded());
        let mut cached = full.compacted();
        // The latest stored snapshot (a compacted cache's state) and the events logged
        // after it, each with the round the log recorded it as opening: what a wallet
        // that leaves the cache is loaded from again.
        let mut snapshot = cached.clone();
        let mut tail: Vec<(WalletEvent, Option<RoundId>)> = Vec::new();
        let mut model = Model { available: 10_000, flows: 10_000, ..Model::default() };
        // The game each round's opening event named: what the log's round index tells.
        let mut opened_with: HashMap<RoundId, Option<GameId>> = HashMap::new();
        let commands: Vec<Option<WalletCommand>> =
            ops.iter().enumerate().map(|(i, op)| command(op, i)).collect();
        // Commands come in batches, as the batched path takes them: before a batch is
        // decided, what its commands name that the cache forgot is put back as the log
        // knows it (`Shard::restore`); then the cache decides every one of them, and is
        // compacted once the batch is decided. A round put back whose opening event named
        // no game sends the batch to the full state (a later event may have named one).
        let (mut start, mut b) = (0, 0);
        while start < ops.len() {
            let end = (start + batches[b % batches.len()]).min(ops.len());
            b += 1;
            let mut to_full = false;
            for c in commands[start..end].iter().flatten() {
                if cached.holds(c) {
                    continue;
                }
                let (reservation, round) = Wallet::named(c);
                let mut rounds: Vec<RoundId> = round.into_iter().cloned().collect();
                if let Some((id, bet)) =
                    reservation.and_then(|id| full.reservation(id).map(|r| (id.clone(), r.clone())))
                {
                    prop_assert!(bet.state != ReservationState::Open, "an open bet is never forgotten");
                    rounds.push(bet.round_id.clone());
                    cached.restore_reservation(id, bet);
                }
                for round_id in &rounds {
                    // A round the state holds is already as the full state has it: the
                    // shard looks up only the others (`Shard::restore`).
                    if cached.round(round_id).is_some() {
                        continue;
                    }
                    if let Some(known) = full.round(round_id) {
                        match opened_with.get(round_id).cloned().flatten() {
                            Some(game) => cached.restore_round(round_id, Some(game), known.closed),
                            None => to_full = true,
                        }
                    }
                }
            }
            // Where the log finds the cache behind (below), the batch ends for the wallet:
            // its later commands come in the next batch, on its state loaded again.
            let mut behind_at = None;
            for i in start..end {
                let op = &ops[i];
                let Some(command) = commands[i].clone() else { continue };
                let expected = model.step(op);
                let by_full = full.decide(command.clone());
                if !to_full {
                    let by_cache = cached.decide(command.clone());
                    // A refusal in a round the cache does not hold stands only where the
                    // log never opened that round (the batched path checks its round keys).
                    let refused_unheld = by_cache.is_err()
                        && cached.unheld_round(&command).is_some_and(|r| full.round(r).is_some());
                    // A round it would open that the log knows is refused by the log.
                    let reopens = by_cache.as_ref().ok()
                        .and_then(|e| cached.round_opened_by(e))
                        .is_some_and(|r| full.round(&r).is_some());
                    // An id the cache forgot is one the log holds: the store answers the
                    // command from the log (an accept takes a key the unique index refuses,
                    // a refusal is looked up), whatever the cache decided.
                    let taken = matches!(by_full, Err(WalletError::IdempotencyConflict { .. }));
                    if (reopens || refused_unheld) && !taken {
                        // The command comes back in the next batch, its round put back.
                        behind_at = Some(i + 1);
                        let round_id = cached.unheld_round(&command).cloned().expect("a round named");
                        let known = full.round(&round_id).expect("the log knows it");
                        if let Some(game) = opened_with.get(&round_id).cloned().flatten() {
                            let mut restored = cached.clone();
                            restored.restore_round(&round_id, Some(game), known.closed);
                            prop_assert!(restored.holds(&command));
                            prop_assert_eq!(
                                &restored.decide(command.clone()), &by_full,
                                "step {} {:?}: with its round put back, the cache decides as the full state", i, op
                            );
                        }
                    } else if !taken {
                        prop_assert_eq!(
                            &by_cache, &by_full,
                            "step {} {:?}: the cache, with what the batch names put back, decides as the full state", i, op
                        );
                    }
                }
                let before = full.clone();
                let actual = match by_full {
                    Ok(event) => {
                        // What the log records as opening a round, it opens for the first time.
                        let opened = full.round_opened_by(&event);
                        if let Some(r) = &opened {
                            prop_assert!(full.round(r).is_none());
                            opened_with.insert(r.clone(), event.game_id().cloned());
                        }
                        tail.push((event.clone(), opened));
                        cached.apply(event.clone());
                        full.apply(event);
                        Ok(())
                    }
                    Err(e) => {
                        prop_assert_eq!(&full, &before, "a refusal changed nothing");
                        Err(error_name(&e))
                    }
                };
                prop_assert_eq!(actual, expected, "step {} {:?}", i, op);
                let b = full.balance().unwrap();
                prop_assert!(b.available >= Decimal::ZERO && b.reserved >= Decimal::ZERO);
                prop_assert_eq!((b.available, b.reserved), (cents(model.available), cents(model.reserved)));
                prop_assert_eq!(b.total(), cents(model.flows), "money conserved with every flow counted");
                let open_sum: Decimal = full.open_reservations().map(|(_, r)| r.amount).sum();
                prop_assert_eq!(b.reserved, open_sum);
                prop_assert_eq!(cached.balance(), full.balance());
                for (_, r) in full.open_reservations() {
                    prop_assert!(!full.round(&r.round_id).is_some_and(|round| round.closed), "no open bet in a closed round");
                }
                if behind_at.is_some() {
                    break;
                }
            }
            // The full state's run, or the log finding the cache behind, leaves the wallet
            // to be loaded from the log again.
            if to_full || behind_at.is_some() {
                cached = loaded(&snapshot, &tail, &full, &opened_with);
            } else {
                cached.compact();
            }
            // What a snapshot of it would be, `reconcile` accepts.
            prop_assert!(cached.stands_for(&full), "after step {}: the cache stands for the full state", end);
            if snapshots[b % snapshots.len()] {
                snapshot = cached.clone();
                tail.clear();
            }
            start = behind_at.unwrap_or(end);
        }
    }
}

/// A wallet as the batched path loads it: `snapshot`, the events logged after it
/// (`Wallet::apply_logged`), the forgotten rounds they named put back as the log's round
/// index tells them, or, where it cannot tell a round's game, the whole log folded again;
/// then compacted, as the cache holds it.
fn loaded(
    snapshot: &Wallet,
    tail: &[(WalletEvent, Option<RoundId>)],
    full: &Wallet,
    opened_with: &HashMap<RoundId, Option<GameId>>,
) -> Wallet {
    let mut wallet = snapshot.clone();
    let mut forgotten = Vec::new();
    for (event, opened) in tail {
        if let Some(round) =
            wallet.apply_logged(event.clone(), opened.as_ref().map(RoundId::as_str))
        {
            forgotten.push(round);
        }
    }
    for round in &forgotten {
        match opened_with.get(round).cloned().flatten() {
            Some(game) => {
                let closed = full
                    .round(round)
                    .expect("the log knows a round named")
                    .closed;
                wallet.restore_round(round, Some(game), closed);
            }
            None => return full.compacted(),
        }
    }
    assert_eq!(
        wallet.balance(),
        full.balance(),
        "a snapshot and its tail hold the log's balance"
    );
    wallet.compacted()
}
