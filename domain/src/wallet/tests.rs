//! Given/when/then for every command and every refusal, and a property test of the
//! invariants against a reference model that counts in integer minor units.

use super::*;
use crate::ids::TransactionId;
use crate::money::AmountError;
use chrono::TimeZone;
use cqrs_es::test::TestFramework;
use proptest::prelude::*;
use std::collections::HashMap;

type WalletTest = TestFramework<Wallet>;

pub(crate) fn d(s: &str) -> Decimal {
    crate::money::parse_decimal(s).unwrap()
}
fn player() -> PlayerId {
    PlayerId::new("player-1").unwrap()
}
pub(crate) fn tx(s: &str) -> TransactionId {
    TransactionId::new(s).unwrap()
}
pub(crate) fn rid(s: &str) -> ReservationId {
    ReservationId::new(s).unwrap()
}
pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 12, 0, 0).unwrap()
}
fn opened(currency: Currency) -> WalletEvent {
    WalletEvent::WalletOpened {
        wallet_id: WalletId::for_player(&player(), currency),
        player_id: player(),
        currency,
        brand_id: crate::BrandId::default_brand(),
    }
}
fn deposited(id: &str, amount: &str) -> WalletEvent {
    WalletEvent::FundsDeposited {
        transaction_id: tx(id),
        amount: d(amount),
        at: None,
    }
}
fn reserved(id: &str, amount: &str) -> WalletEvent {
    WalletEvent::FundsReserved {
        reservation_id: rid(id),
        amount: d(amount),
        game_id: GameId::new("g").unwrap(),
        round_id: RoundId::new("r").unwrap(),
        expires_at: t0() + chrono::Duration::seconds(60),
        at: None,
        bonus: None,
    }
}
fn deposit(id: &str, amount: &str) -> WalletCommand {
    WalletCommand::Deposit {
        transaction_id: tx(id),
        amount: d(amount),
        currency: None,
        now: chrono::DateTime::UNIX_EPOCH,
    }
}
fn withdraw(id: &str, amount: &str) -> WalletCommand {
    WalletCommand::Withdraw {
        transaction_id: tx(id),
        amount: d(amount),
        currency: None,
        forfeit_bonuses: false,
    }
}
fn reserve(id: &str, amount: &str) -> WalletCommand {
    WalletCommand::Reserve {
        reservation_id: rid(id),
        amount: d(amount),
        currency: None,
        game_id: GameId::new("g").unwrap(),
        round_id: RoundId::new("r").unwrap(),
        timeout_s: 60,
        now: t0(),
    }
}
fn settle(id: &str, payout: &str) -> WalletCommand {
    WalletCommand::Settle {
        reservation_id: rid(id),
        transaction_id: tx(&format!("{id}-settle")),
        payout: d(payout),
        currency: None,
        now: chrono::DateTime::UNIX_EPOCH,
    }
}
fn refund(id: &str) -> WalletCommand {
    WalletCommand::Refund {
        reservation_id: rid(id),
        transaction_id: tx(&format!("{id}-refund")),
    }
}
pub(crate) fn funded() -> Vec<WalletEvent> {
    vec![opened(Currency::Eur), deposited("d1", "100.00")]
}

#[test]
fn open_opens_a_wallet_keyed_by_player_and_currency() {
    WalletTest::with(WalletServices)
        .given_no_previous_events()
        .when(WalletCommand::Open {
            player_id: player(),
            currency: Currency::Eur,
            brand_id: crate::BrandId::default_brand(),
        })
        .then_expect_events(vec![opened(Currency::Eur)]);
}

#[test]
fn second_open_is_refused_as_wallet_exists() {
    WalletTest::with(WalletServices)
        .given(vec![opened(Currency::Eur)])
        .when(WalletCommand::Open {
            player_id: player(),
            currency: Currency::Eur,
            brand_id: crate::BrandId::default_brand(),
        })
        .then_expect_error(WalletError::WalletExists {
            wallet_id: WalletId::for_player(&player(), Currency::Eur),
        });
}

#[test]
fn commands_on_an_unopened_wallet_are_refused_as_not_found() {
    for command in [
        deposit("d", "1"),
        withdraw("w", "1"),
        reserve("r", "1"),
        settle("r", "0"),
        refund("r"),
    ] {
        WalletTest::with(WalletServices)
            .given_no_previous_events()
            .when(command)
            .then_expect_error(WalletError::WalletNotFound);
    }
}

#[test]
fn deposit_credits_available_at_the_currency_scale() {
    WalletTest::with(WalletServices)
        .given(vec![opened(Currency::Eur)])
        .when(deposit("d1", "12.5"))
        .then_expect_events(vec![deposited("d1", "12.50")]);
    let mut w = Wallet::default();
    w.apply(opened(Currency::Eur));
    w.apply(w.decide(deposit("d1", "12.5")).unwrap());
    assert_eq!(w.balance().unwrap().available.to_string(), "12.50");
}

#[test]
fn invalid_amounts_are_refused_with_the_reason() {
    let cases = [
        ("0", AmountError::NotPositive),
        ("-0.00", AmountError::NotPositive),
        ("-1", AmountError::Negative),
        (
            "1.001",
            AmountError::TooPrecise {
                digits: 3,
                currency: Currency::Eur,
                scale: 2,
            },
        ),
        ("1000000000.01", AmountError::TooLarge),
    ];
    for (amount, reason) in cases {
        for command in [
            deposit("x", amount),
            withdraw("x", amount),
            reserve("x", amount),
        ] {
            WalletTest::with(WalletServices)
                .given(funded())
                .when(command)
                .then_expect_error(WalletError::InvalidAmount {
                    amount: d(amount),
                    reason: reason.clone(),
                });
        }
    }
}

#[test]
fn yen_has_no_minor_units() {
    WalletTest::with(WalletServices)
        .given(vec![opened(Currency::Jpy)])
        .when(deposit("d", "1.5"))
        .then_expect_error(WalletError::InvalidAmount {
            amount: d("1.5"),
            reason: AmountError::TooPrecise {
                digits: 1,
                currency: Currency::Jpy,
                scale: 0,
            },
        });
}

#[test]
fn a_named_currency_must_be_the_wallets() {
    WalletTest::with(WalletServices)
        .given(funded())
        .when(WalletCommand::Deposit {
            transaction_id: tx("d2"),
            amount: d("1"),
            currency: Some(Currency::Usd),
            now: chrono::DateTime::UNIX_EPOCH,
        })
        .then_expect_error(WalletError::CurrencyMismatch {
            wallet: Currency::Eur,
            requested: Currency::Usd,
        });
}

#[test]
fn deposit_beyond_the_balance_limit_is_refused() {
    let mut events = vec![opened(Currency::Eur)];
    for i in 0..1000 {
        events.push(deposited(&format!("d{i}"), "1000000000.00"));
    }
    WalletTest::with(WalletServices)
        .given(events)
        .when(deposit("one-more", "0.01"))
        .then_expect_error(WalletError::LimitExceeded {
            limit: BALANCE_MAX,
            attempted: d("1000000000000.01"),
        });
}

#[test]
fn withdraw_debits_available() {
    WalletTest::with(WalletServices)
        .given(funded())
        .when(withdraw("w1", "40"))
        .then_expect_events(vec![WalletEvent::FundsWithdrawn {
            transaction_id: tx("w1"),
            amount: d("40.00"),
            bonus: None,
        }]);
}

#[test]
fn withdraw_more_than_available_is_insufficient_funds() {
    WalletTest::with(WalletServices)
        .given(funded())
        .when(withdraw("w1", "100.01"))
        .then_expect_error(WalletError::InsufficientFunds {
            available: d("100.00"),
            requested: d("100.01"),
        });
}

#[test]
fn reserve_holds_the_stake_until_the_timeout() {
    WalletTest::with(WalletServices)
        .given(funded())
        .when(reserve("r1", "30"))
        .then_expect_events(vec![reserved("r1", "30.00")]);
}

#[test]
fn reserve_cannot_use_reserved_money() {
    let mut events = funded();
    events.push(reserved("r1", "80.00"));
    WalletTest::with(WalletServices)
        .given(events)
        .when(reserve("r2", "20.01"))
        .then_expect_error(WalletError::InsufficientFunds {
            available: d("20.00"),
            requested: d("20.01"),
        });
}

#[test]
fn reserve_under_a_used_id_is_an_idempotency_conflict() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    WalletTest::with(WalletServices)
        .given(events)
        .when(reserve("r1", "11"))
        .then_expect_error(WalletError::IdempotencyConflict {
            transaction_id: tx("r1"),
        });
}

#[test]
fn reserve_timeout_is_bounded() {
    for timeout_s in [0, RESERVATION_TIMEOUT_S_MAX + 1] {
        let WalletCommand::Reserve {
            reservation_id,
            amount,
            currency,
            game_id,
            round_id,
            now,
            ..
        } = reserve("r1", "1")
        else {
            unreachable!()
        };
        WalletTest::with(WalletServices)
            .given(funded())
            .when(WalletCommand::Reserve {
                reservation_id,
                amount,
                currency,
                game_id,
                round_id,
                timeout_s,
                now,
            })
            .then_expect_error(WalletError::InvalidTimeout {
                timeout_s,
                min_s: RESERVATION_TIMEOUT_S_MIN,
                max_s: RESERVATION_TIMEOUT_S_MAX,
            });
    }
}

#[test]
fn settle_captures_the_stake_and_credits_the_payout() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    WalletTest::with(WalletServices)
        .given(events.clone())
        .when(settle("r1", "25"))
        .then_expect_events(vec![WalletEvent::ReservationSettled {
            reservation_id: rid("r1"),
            transaction_id: tx("r1-settle"),
            stake: d("10.00"),
            payout: d("25.00"),
            at: None,
            bonus: None,
        }]);
    let mut w = Wallet::default();
    for e in events {
        w.apply(e);
    }
    w.apply(w.decide(settle("r1", "0")).unwrap());
    let b = w.balance().unwrap();
    assert_eq!((b.available, b.reserved), (d("90.00"), d("0.00")));
}

#[test]
fn settle_of_an_unknown_reservation_is_not_found() {
    WalletTest::with(WalletServices)
        .given(funded())
        .when(settle("nope", "1"))
        .then_expect_error(WalletError::ReservationNotFound {
            reservation_id: rid("nope"),
        });
}

#[test]
fn settle_with_a_negative_or_too_precise_payout_is_refused() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    WalletTest::with(WalletServices)
        .given(events.clone())
        .when(settle("r1", "-1"))
        .then_expect_error(WalletError::InvalidAmount {
            amount: d("-1"),
            reason: AmountError::Negative,
        });
    WalletTest::with(WalletServices)
        .given(events)
        .when(settle("r1", "0.001"))
        .then_expect_error(WalletError::InvalidAmount {
            amount: d("0.001"),
            reason: AmountError::TooPrecise {
                digits: 3,
                currency: Currency::Eur,
                scale: 2,
            },
        });
}

#[test]
fn a_negative_payout_is_a_bad_request_even_for_an_unknown_reservation() {
    // Issue 28: this answered 404 (reservation not found) instead of 400.
    WalletTest::with(WalletServices)
        .given(funded())
        .when(settle("nope", "-1"))
        .then_expect_error(WalletError::InvalidAmount {
            amount: d("-1"),
            reason: AmountError::Negative,
        });
}

#[test]
fn settle_after_refund_is_refused() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    events.push(WalletEvent::ReservationRefunded {
        reservation_id: rid("r1"),
        transaction_id: tx("r1-refund"),
        amount: d("10.00"),
        bonus: None,
    });
    WalletTest::with(WalletServices)
        .given(events)
        .when(settle("r1", "5"))
        .then_expect_error(WalletError::ReservationClosed {
            reservation_id: rid("r1"),
            state: ReservationState::Refunded,
        });
}

#[test]
fn refund_returns_the_stake() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    WalletTest::with(WalletServices)
        .given(events)
        .when(refund("r1"))
        .then_expect_events(vec![WalletEvent::ReservationRefunded {
            reservation_id: rid("r1"),
            transaction_id: tx("r1-refund"),
            amount: d("10.00"),
            bonus: None,
        }]);
}

#[test]
fn refund_after_settle_is_refused() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    events.push(WalletEvent::ReservationSettled {
        reservation_id: rid("r1"),
        transaction_id: tx("r1-settle"),
        stake: d("10.00"),
        payout: d("0.00"),
        at: None,
        bonus: None,
    });
    WalletTest::with(WalletServices)
        .given(events)
        .when(refund("r1"))
        .then_expect_error(WalletError::ReservationClosed {
            reservation_id: rid("r1"),
            state: ReservationState::Settled,
        });
}

#[test]
fn refund_of_an_unknown_reservation_is_not_found() {
    WalletTest::with(WalletServices)
        .given(funded())
        .when(refund("nope"))
        .then_expect_error(WalletError::ReservationNotFound {
            reservation_id: rid("nope"),
        });
}

#[test]
fn expire_refunds_a_reservation_past_its_timeout() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    WalletTest::with(WalletServices)
        .given(events)
        .when(WalletCommand::Expire {
            reservation_id: rid("r1"),
            now: t0() + chrono::Duration::seconds(60),
        })
        .then_expect_events(vec![WalletEvent::ReservationExpired {
            reservation_id: rid("r1"),
            amount: d("10.00"),
            bonus: None,
        }]);
}

#[test]
fn expire_before_the_timeout_is_refused() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    WalletTest::with(WalletServices)
        .given(events)
        .when(WalletCommand::Expire {
            reservation_id: rid("r1"),
            now: t0() + chrono::Duration::seconds(59),
        })
        .then_expect_error(WalletError::ReservationNotExpired {
            reservation_id: rid("r1"),
            expires_at: t0() + chrono::Duration::seconds(60),
        });
}

#[test]
fn win_after_expiry_is_refused_and_expiry_happens_once() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    events.push(WalletEvent::ReservationExpired {
        reservation_id: rid("r1"),
        amount: d("10.00"),
        bonus: None,
    });
    let closed = WalletError::ReservationClosed {
        reservation_id: rid("r1"),
        state: ReservationState::Expired,
    };
    WalletTest::with(WalletServices)
        .given(events.clone())
        .when(settle("r1", "50"))
        .then_expect_error(closed.clone());
    WalletTest::with(WalletServices)
        .given(events)
        .when(WalletCommand::Expire {
            reservation_id: rid("r1"),
            now: t0() + chrono::Duration::days(1),
        })
        .then_expect_error(closed);
}

#[test]
fn fingerprint_ignores_arrival_time_and_amount_spelling_only() {
    let a = reserve("r1", "10");
    let WalletCommand::Reserve {
        reservation_id,
        currency,
        game_id,
        round_id,
        timeout_s,
        ..
    } = a.clone()
    else {
        unreachable!()
    };
    let b = WalletCommand::Reserve {
        reservation_id,
        amount: d("10.00"),
        currency,
        game_id,
        round_id,
        timeout_s,
        now: t0() + chrono::Duration::seconds(5),
    };
    assert_eq!(a.fingerprint(), b.fingerprint());
    assert_ne!(a.fingerprint(), reserve("r1", "10.01").fingerprint());
    assert_ne!(
        deposit("x", "1").fingerprint(),
        withdraw("x", "1").fingerprint()
    );
}

#[test]
fn aggregate_state_round_trips_through_json() {
    let mut w = Wallet::default();
    for e in funded().into_iter().chain([reserved("r1", "5.00")]) {
        w.apply(e);
    }
    let back: Wallet = serde_json::from_value(serde_json::to_value(&w).unwrap()).unwrap();
    assert_eq!(back, w);
}

// ---- Property test against a reference model -------------------------------------------

/// One step of a random history. Amounts are in cents of EUR, except `precise` ones which
/// carry a third decimal that EUR cannot hold.
#[derive(Debug, Clone)]
enum Op {
    Deposit(i64),
    Withdraw(i64),
    Reserve { id: u8, cents: i64, timeout_s: u32 },
    Settle { id: u8, payout: i64 },
    Refund(u8),
    Expire(u8),
    Tick(u32),
    TooPrecise(i64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (1i64..50_000).prop_map(Op::Deposit),
        2 => (1i64..30_000).prop_map(Op::Withdraw),
        4 => (0u8..6, 1i64..20_000, 1u32..120)
            .prop_map(|(id, cents, timeout_s)| Op::Reserve { id, cents, timeout_s }),
        3 => (0u8..6, 0i64..40_000).prop_map(|(id, payout)| Op::Settle { id, payout }),
        2 => (0u8..6).prop_map(Op::Refund),
        1 => (0u8..6).prop_map(Op::Expire),
        1 => (1u32..90).prop_map(Op::Tick),
        1 => (1i64..1_000).prop_map(|m| Op::TooPrecise(m * 10 + 1)),
    ]
}

/// What the reference model says happened: accepted, or which rule refused.
#[derive(Debug, PartialEq)]
enum Outcome {
    Accepted,
    Refused(&'static str),
}

/// The reference: plain integers and a map, written without looking at `decide`.
#[derive(Default)]
struct Model {
    available: i64,
    reserved: i64,
    /// id -> (cents, expires_at_s, open)
    reservations: HashMap<u8, (i64, i64, bool)>,
    deposited: i64,
    withdrawn: i64,
    lost_stakes: i64,
    payouts: i64,
}

impl Model {
    fn step(&mut self, op: &Op, now_s: i64) -> Outcome {
        use Outcome::*;
        match *op {
            Op::Deposit(c) => {
                self.available += c;
                self.deposited += c;
                Accepted
            }
            Op::Withdraw(c) if c > self.available => Refused("InsufficientFunds"),
            Op::Withdraw(c) => {
                self.available -= c;
                self.withdrawn += c;
                Accepted
            }
            Op::Reserve { id, .. } if self.reservations.contains_key(&id) => {
                Refused("IdempotencyConflict")
            }
            Op::Reserve { cents, .. } if cents > self.available => Refused("InsufficientFunds"),
            Op::Reserve {
                id,
                cents,
                timeout_s,
            } => {
                self.available -= cents;
                self.reserved += cents;
                self.reservations
                    .insert(id, (cents, now_s + i64::from(timeout_s), true));
                Accepted
            }
            Op::Settle { id, payout } => match self.reservations.get_mut(&id) {
                None => Refused("ReservationNotFound"),
                Some((_, _, false)) => Refused("ReservationClosed"),
                Some((stake, _, open)) => {
                    *open = false;
                    self.reserved -= *stake;
                    self.available += payout;
                    self.lost_stakes += *stake;
                    self.payouts += payout;
                    Accepted
                }
            },
            Op::Refund(id) => match self.reservations.get_mut(&id) {
                None => Refused("ReservationNotFound"),
                Some((_, _, false)) => Refused("ReservationClosed"),
                Some((stake, _, open)) => {
                    *open = false;
                    self.reserved -= *stake;
                    self.available += *stake;
                    Accepted
                }
            },
            Op::Expire(id) => match self.reservations.get_mut(&id) {
                None => Refused("ReservationNotFound"),
                Some((_, _, false)) => Refused("ReservationClosed"),
                Some((_, expires_at, _)) if now_s < *expires_at => Refused("ReservationNotExpired"),
                Some((stake, _, open)) => {
                    *open = false;
                    self.reserved -= *stake;
                    self.available += *stake;
                    Accepted
                }
            },
            Op::Tick(_) => Accepted,
            Op::TooPrecise(_) => Refused("InvalidAmount"),
        }
    }
}

pub(crate) fn error_name(e: &WalletError) -> &'static str {
    match e {
        WalletError::InsufficientFunds { .. } => "InsufficientFunds",
        WalletError::IdempotencyConflict { .. } => "IdempotencyConflict",
        WalletError::ReservationNotFound { .. } => "ReservationNotFound",
        WalletError::ReservationClosed { .. } => "ReservationClosed",
        WalletError::ReservationNotExpired { .. } => "ReservationNotExpired",
        WalletError::InvalidAmount { .. } => "InvalidAmount",
        WalletError::RoundClosed { .. } => "RoundClosed",
        WalletError::RoundNotFound { .. } => "RoundNotFound",
        other => panic!("the random histories should not meet {other:?}"),
    }
}

pub(crate) fn cents(c: i64) -> Decimal {
    Decimal::new(c, 2)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_history_keeps_balances_non_negative_and_money_conserved(
        ops in proptest::collection::vec(op(), 1..120)
    ) {
        let mut wallet = Wallet::default();
        wallet.apply(opened(Currency::Eur));
        let mut model = Model::default();
        let mut now_s: i64 = 0;
        for (i, op) in ops.iter().enumerate() {
            let now = t0() + chrono::Duration::seconds(now_s);
            let rid = |id: u8| ReservationId::new(format!("r{id}")).unwrap();
            let command = match *op {
                Op::Deposit(c) => Some(WalletCommand::Deposit {
                    transaction_id: tx(&format!("t{i}")), amount: cents(c), currency: None, now }),
                Op::Withdraw(c) => Some(WalletCommand::Withdraw {
                    transaction_id: tx(&format!("t{i}")), amount: cents(c), currency: None, forfeit_bonuses: false,
 }),
                Op::Reserve { id, cents: c, timeout_s } => Some(WalletCommand::Reserve {
                    reservation_id: rid(id), amount: cents(c), currency: None,
                    game_id: GameId::new("g").unwrap(), round_id: RoundId::new("r").unwrap(),
                    timeout_s, now }),
                Op::Settle { id, payout } => Some(WalletCommand::Settle {
                    reservation_id: rid(id), transaction_id: tx(&format!("t{i}")),
                    payout: cents(payout), currency: None, now }),
                Op::Refund(id) => Some(WalletCommand::Refund {
                    reservation_id: rid(id), transaction_id: tx(&format!("t{i}")) }),
                Op::Expire(id) => Some(WalletCommand::Expire { reservation_id: rid(id), now }),
                Op::Tick(s) => { now_s += i64::from(s); None }
                Op::TooPrecise(m) => Some(WalletCommand::Deposit {
                    transaction_id: tx(&format!("t{i}")), amount: Decimal::new(m, 3),
                    currency: None, now: chrono::DateTime::UNIX_EPOCH, }),
            };
            let expected = model.step(op, now_s);
            let Some(command) = command else { continue };
            let before = wallet.clone();
            let actual = match wallet.decide(command) {
                Ok(event) => { wallet.apply(event); Outcome::Accepted }
                Err(e) => {
                    prop_assert_eq!(&wallet, &before, "a refusal changed nothing");
                    Outcome::Refused(error_name(&e))
                }
            };
            prop_assert_eq!(actual, expected, "step {} {:?}", i, op);

            let b = wallet.balance().unwrap();
            prop_assert!(b.available >= Decimal::ZERO && b.reserved >= Decimal::ZERO);
            prop_assert_eq!((b.available, b.reserved), (cents(model.available), cents(model.reserved)));
            let open_sum: Decimal = wallet.open_reservations().map(|(_, r)| r.amount).sum();
            prop_assert_eq!(b.reserved, open_sum, "reserved is the sum of open reservations");
            prop_assert_eq!(
                b.total(),
                cents(model.deposited - model.withdrawn - model.lost_stakes + model.payouts),
                "deposits - withdrawals - settled stakes + payouts = available + reserved"
            );
        }
    }
}

fn rollback(id: &str, by: &str) -> WalletCommand {
    WalletCommand::Rollback {
        reservation_id: rid(id),
        transaction_id: tx(by),
        round_id: RoundId::new("r").unwrap(),
    }
}

fn voided(id: &str, by: &str) -> WalletEvent {
    WalletEvent::ReservationVoided {
        reservation_id: rid(id),
        transaction_id: tx(by),
        round_id: RoundId::new("r").unwrap(),
    }
}

#[test]
fn rollback_of_an_open_reservation_refunds_it() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    WalletTest::with(WalletServices)
        .given(events)
        .when(rollback("r1", "rb1"))
        .then_expect_events(vec![WalletEvent::ReservationRefunded {
            reservation_id: rid("r1"),
            transaction_id: tx("rb1"),
            amount: d("10.00"),
            bonus: None,
        }]);
}

#[test]
fn rollback_of_an_unseen_bet_voids_its_id_and_a_later_bet_or_win_is_closed() {
    WalletTest::with(WalletServices)
        .given(funded())
        .when(rollback("r1", "rb1"))
        .then_expect_events(vec![voided("r1", "rb1")]);
    let mut events = funded();
    events.push(voided("r1", "rb1"));
    let closed = WalletError::ReservationClosed {
        reservation_id: rid("r1"),
        state: ReservationState::Voided,
    };
    WalletTest::with(WalletServices)
        .given(events.clone())
        .when(reserve("r1", "10.00"))
        .then_expect_error(closed.clone());
    WalletTest::with(WalletServices)
        .given(events.clone())
        .when(settle("r1", "5"))
        .then_expect_error(closed.clone());
    WalletTest::with(WalletServices)
        .given(events)
        .when(rollback("r1", "rb2"))
        .then_expect_error(closed);
}

#[test]
fn rollback_after_a_win_is_refused_and_changes_nothing() {
    let mut events = funded();
    events.push(reserved("r1", "10.00"));
    events.push(WalletEvent::ReservationSettled {
        reservation_id: rid("r1"),
        transaction_id: tx("r1-settle"),
        stake: d("10.00"),
        payout: d("0"),
        at: None,
        bonus: None,
    });
    WalletTest::with(WalletServices)
        .given(events)
        .when(rollback("r1", "rb1"))
        .then_expect_error(WalletError::ReservationClosed {
            reservation_id: rid("r1"),
            state: ReservationState::Settled,
        });
}

#[test]
fn a_voided_id_moves_no_money() {
    let mut wallet = Wallet::default();
    for e in funded() {
        wallet.apply(e);
    }
    let before = wallet.balance();
    wallet.apply(voided("r1", "rb1"));
    assert_eq!(wallet.balance(), before);
    assert_eq!(wallet.open_reservations().count(), 0);
}

#[test]
fn a_compacted_wallet_keeps_open_and_voided_ids_and_hands_closed_ones_to_the_full_state() {
    let mut wallet = Wallet::default();
    let mut events = funded();
    events.push(reserved("open", "10.00"));
    events.push(reserved("done", "5.00"));
    events.push(WalletEvent::ReservationSettled {
        reservation_id: rid("done"),
        transaction_id: tx("done-settle"),
        stake: d("5.00"),
        payout: d("7.00"),
        at: None,
        bonus: None,
    });
    events.push(voided("void", "rb"));
    for e in events {
        wallet.apply(e);
    }
    let compacted = wallet.compacted();
    assert_eq!(compacted.balance(), wallet.balance());
    assert!(compacted.reservation(&rid("open")).is_some());
    assert!(
        compacted.reservation(&rid("done")).is_none(),
        "closed ones are forgotten"
    );
    assert!(wallet.reservation(&rid("done")).is_some());
    // What the compacted state can still decide as the full one would...
    assert!(compacted.holds(&settle("open", "1.00")));
    assert!(compacted.holds(&settle("void", "1.00")));
    assert!(compacted.holds(&deposit("d9", "1.00")));
    assert_eq!(
        compacted.decide(settle("void", "1.00")),
        wallet.decide(settle("void", "1.00"))
    );
    // ...and what it must hand over: a closed or unknown reservation.
    assert!(!compacted.holds(&settle("done", "1.00")));
    assert!(!compacted.holds(&refund("never")));
    assert!(!compacted.holds(&rollback("done", "rb2")));
    assert!(matches!(
        wallet.decide(rollback("done", "rb2")),
        Err(WalletError::ReservationClosed { .. })
    ));
}

#[test]
fn names_lists_every_event_and_nothing_else() {
    // serde names every variant when it meets an unknown one: the list to compare with.
    let err = serde_json::from_value::<WalletEvent>(serde_json::json!({"NoSuchEvent": {}}))
        .unwrap_err()
        .to_string();
    let expected = err
        .split_once("expected one of ")
        .expect("serde lists the variants")
        .1;
    let variants: Vec<&str> = expected
        .split(", ")
        .map(|v| v.trim_matches(|c: char| c == '`' || !c.is_alphanumeric()))
        .collect();
    assert_eq!(variants, WalletEvent::NAMES.to_vec());
}
