//! A property test of the provider face: random interleavings of bets, wins, rollbacks
//! and the round traffic of the contract's "Rounds" (several bets per round, several wins
//! per bet, a win naming only the round, the close flag, bet-win, bet-less wins of each
//! kind, adjustments up and down), out of order, with duplicates and with a call resent
//! under its id with another amount, for several players; played against the real API and
//! against a reference model of the contract's rules. Every answer (status, code and
//! balance) and every final balance must equal the model's.

use std::collections::HashMap;

use betledger_tests::workload::Rng;
use betledger_tests::{spawn_app, TestApp, PROVIDER_A as A, PROVIDER_A_SECRET as A_KEY};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use serde_json::json;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;
const PLAYERS: usize = 3;
const ROUNDS: usize = 4;
const CASES: u32 = 24;
/// Every player starts with 100.00 EUR, counted here in cents.
const FUNDS_CENTS: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    Bet {
        player: usize,
        bet: usize,
        round: usize,
        cents: i64,
    },
    /// `attempt` varies the transaction id: a second win or rollback for the same bet.
    Win {
        player: usize,
        bet: usize,
        round: usize,
        cents: i64,
        attempt: usize,
        closing: bool,
    },
    Rollback {
        player: usize,
        bet: usize,
        round: usize,
        attempt: usize,
    },
    /// A win naming only its round (`id` is the call's own).
    RoundWin {
        player: usize,
        id: usize,
        round: usize,
        cents: i64,
        closing: bool,
    },
    BetWin {
        player: usize,
        id: usize,
        round: usize,
        stake: i64,
        payout: i64,
        closing: bool,
    },
    /// A win without a bet, of kind `free_spin`, `promo` or `jackpot`.
    Betless {
        player: usize,
        id: usize,
        round: usize,
        kind: usize,
        cents: i64,
    },
    /// `cents` signed.
    Adjust {
        player: usize,
        id: usize,
        round: usize,
        cents: i64,
    },
}

const KINDS: [&str; 3] = ["free_spin", "promo", "jackpot"];

impl Call {
    fn player(self) -> usize {
        match self {
            Call::Bet { player, .. }
            | Call::Win { player, .. }
            | Call::Rollback { player, .. }
            | Call::RoundWin { player, .. }
            | Call::BetWin { player, .. }
            | Call::Betless { player, .. }
            | Call::Adjust { player, .. } => player,
        }
    }

    /// The call's kind and transaction id (its idempotency key), and its payload.
    fn key(self) -> ((&'static str, usize), i64) {
        match self {
            Call::Bet { bet, cents, .. } => (("bet", bet), cents),
            Call::Win {
                bet,
                attempt,
                cents,
                closing,
                ..
            } => (("win", bet * 10 + attempt), cents * 2 + i64::from(closing)),
            Call::Rollback { bet, attempt, .. } => (("rollback", bet * 10 + attempt), 0),
            Call::RoundWin {
                id, cents, closing, ..
            } => (("round-win", id), cents * 2 + i64::from(closing)),
            Call::BetWin {
                id,
                stake,
                payout,
                closing,
                ..
            } => (
                ("bet-win", id),
                (stake * 100_000 + payout) * 2 + i64::from(closing),
            ),
            Call::Betless { id, cents, .. } => (("betless", id), cents),
            Call::Adjust { id, cents, .. } => (("adjust", id), cents),
        }
    }

    /// The same call with another amount: what a provider that reuses an id sends.
    fn other_payload(self) -> Call {
        match self {
            Call::Bet { cents, .. } | Call::Win { cents, .. } => self.with_cents(cents + 100),
            Call::RoundWin { cents, .. } | Call::Betless { cents, .. } => {
                self.with_cents(cents + 100)
            }
            Call::Adjust { cents, .. } => self.with_cents(cents + 100),
            Call::BetWin {
                player,
                id,
                round,
                stake,
                payout,
                closing,
            } => Call::BetWin {
                player,
                id,
                round,
                stake,
                payout: payout + 100,
                closing,
            },
            Call::Rollback { .. } => self,
        }
    }

    fn with_cents(self, new: i64) -> Call {
        match self {
            Call::Bet {
                player, bet, round, ..
            } => Call::Bet {
                player,
                bet,
                round,
                cents: new,
            },
            Call::Win {
                player,
                bet,
                round,
                attempt,
                closing,
                ..
            } => Call::Win {
                player,
                bet,
                round,
                cents: new,
                attempt,
                closing,
            },
            Call::RoundWin {
                player,
                id,
                round,
                closing,
                ..
            } => Call::RoundWin {
                player,
                id,
                round,
                cents: new,
                closing,
            },
            Call::Betless {
                player,
                id,
                round,
                kind,
                ..
            } => Call::Betless {
                player,
                id,
                round,
                kind,
                cents: new,
            },
            Call::Adjust {
                player, id, round, ..
            } => Call::Adjust {
                player,
                id,
                round,
                cents: new,
            },
            other => other,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BetState {
    Open(i64),
    /// Settled by a win, or lost with its round.
    Settled,
    Refunded,
    Voided,
}

/// What the contract says the wallet answers: status, code, balance in cents.
#[derive(Debug, Clone, PartialEq)]
struct Answer {
    status: u16,
    code: String,
    available: i64,
    reserved: i64,
}

#[derive(Default)]
struct PlayerModel {
    available: i64,
    reserved: i64,
    /// Bet -> its state and round.
    bets: HashMap<usize, (BetState, usize)>,
    /// Rounds seen -> closed.
    rounds: HashMap<usize, bool>,
    /// First answers of accepted calls and their payloads, by (kind, transaction id):
    /// repeats get them again, another payload is a conflict.
    recorded: HashMap<(&'static str, usize), (Answer, i64)>,
    /// Whether the provider has taken a stake from the player: only then may it pay a win
    /// without a bet or an adjustment.
    served: bool,
    /// The player's game session has ended: a new bet is `401 INVALID_TOKEN` (and carries
    /// no balance), a repeat of one the wallet holds still gets its first answer.
    session_ended: bool,
}

impl PlayerModel {
    fn answer(&self, status: u16, code: &str) -> Answer {
        Answer {
            status,
            code: code.into(),
            available: self.available,
            reserved: self.reserved,
        }
    }

    /// `401 INVALID_TOKEN`, which carries no balance (read as -1.00).
    fn invalid_token() -> Answer {
        Answer {
            status: 401,
            code: "INVALID_TOKEN".into(),
            available: -100,
            reserved: -100,
        }
    }

    fn closed(&self, round: usize) -> bool {
        self.rounds.get(&round).copied().unwrap_or(false)
    }

    /// The round's open bets are lost and it closes.
    fn close(&mut self, round: usize) {
        for (state, r) in self.bets.values_mut() {
            if let (BetState::Open(stake), true) = (*state, *r == round) {
                self.reserved -= stake;
                *state = BetState::Settled;
            }
        }
        self.rounds.insert(round, true);
    }

    fn open_round(&mut self, round: usize) {
        self.rounds.entry(round).or_insert(false);
    }

    fn play(&mut self, call: Call) -> Answer {
        let (key, payload) = call.key();
        if let Some((first, first_payload)) = self.recorded.get(&key) {
            return if *first_payload == payload {
                first.clone()
            } else if self.session_ended && matches!(call, Call::Bet { .. } | Call::BetWin { .. }) {
                // Without the session the wallet is not known: another request under the
                // id may be another player's, and is not told.
                Self::invalid_token()
            } else {
                self.answer(409, "IDEMPOTENCY_CONFLICT")
            };
        }
        let (answer, record) = self.decide(call);
        if record {
            self.recorded.insert(key, (answer.clone(), payload));
        }
        answer
    }

    fn decide(&mut self, call: Call) -> (Answer, bool) {
        let ok = |m: &Self| (m.answer(200, ""), true);
        match call {
            Call::Bet { .. } | Call::BetWin { .. } if self.session_ended => {
                (Self::invalid_token(), false)
            }
            Call::Bet {
                bet, round, cents, ..
            } => match self.bets.get(&bet) {
                Some((BetState::Voided, _)) => (self.answer(422, "RESERVATION_CLOSED"), false),
                Some(_) => (self.answer(409, "IDEMPOTENCY_CONFLICT"), false),
                None if self.closed(round) => (self.answer(422, "ROUND_CLOSED"), false),
                None if self.available < cents => (self.answer(422, "INSUFFICIENT_FUNDS"), false),
                None => {
                    self.available -= cents;
                    self.reserved += cents;
                    self.bets.insert(bet, (BetState::Open(cents), round));
                    self.open_round(round);
                    self.served = true;
                    ok(self)
                }
            },
            Call::Win {
                bet,
                round,
                cents,
                closing,
                ..
            } => match self.bets.get(&bet).copied() {
                None if self.closed(round) => (self.answer(422, "ROUND_CLOSED"), false),
                None => (self.answer(404, "RESERVATION_NOT_FOUND"), false),
                Some((BetState::Voided, _)) => (self.answer(422, "RESERVATION_CLOSED"), false),
                Some((_, r)) if self.closed(r) => (self.answer(422, "ROUND_CLOSED"), false),
                Some((BetState::Refunded, _)) => (self.answer(422, "RESERVATION_CLOSED"), false),
                Some((BetState::Open(stake), r)) => {
                    self.reserved -= stake;
                    self.available += cents;
                    self.bets.insert(bet, (BetState::Settled, r));
                    if closing {
                        self.close(r);
                    }
                    ok(self)
                }
                // A further win for a settled bet is credited to its round.
                Some((BetState::Settled, r)) => {
                    self.available += cents;
                    if closing {
                        self.close(r);
                    }
                    ok(self)
                }
            },
            Call::Rollback { bet, round, .. } => match self.bets.get(&bet).copied() {
                // The stake is already back: the rollback succeeds and moves nothing.
                Some((BetState::Voided, _)) => (self.answer(200, ""), false),
                Some((_, r)) if self.closed(r) => (self.answer(422, "ROUND_CLOSED"), false),
                None if self.closed(round) => (self.answer(422, "ROUND_CLOSED"), false),
                None => {
                    self.bets.insert(bet, (BetState::Voided, round));
                    ok(self)
                }
                Some((BetState::Open(stake), r)) => {
                    self.reserved -= stake;
                    self.available += stake;
                    self.bets.insert(bet, (BetState::Refunded, r));
                    ok(self)
                }
                Some((BetState::Settled, _)) => (self.answer(422, "RESERVATION_CLOSED"), false),
                Some((BetState::Refunded, _)) => (self.answer(200, ""), false),
            },
            Call::RoundWin {
                round,
                cents,
                closing,
                ..
            } => match self.rounds.get(&round) {
                None => (self.answer(404, "RESERVATION_NOT_FOUND"), false),
                Some(true) => (self.answer(422, "ROUND_CLOSED"), false),
                Some(false) => {
                    self.available += cents;
                    if closing {
                        self.close(round);
                    }
                    ok(self)
                }
            },
            Call::BetWin {
                round,
                stake,
                payout,
                closing,
                ..
            } => {
                if self.closed(round) {
                    (self.answer(422, "ROUND_CLOSED"), false)
                } else if self.available < stake {
                    (self.answer(422, "INSUFFICIENT_FUNDS"), false)
                } else {
                    self.available += payout - stake;
                    self.open_round(round);
                    self.served = true;
                    if closing {
                        self.close(round);
                    }
                    ok(self)
                }
            }
            Call::Betless { round, cents, .. } => {
                if !self.served {
                    (self.answer(403, "PROVIDER_NOT_SERVED"), false)
                } else if self.closed(round) {
                    (self.answer(422, "ROUND_CLOSED"), false)
                } else {
                    self.available += cents;
                    self.open_round(round);
                    ok(self)
                }
            }
            Call::Adjust { round, cents, .. } => {
                // The amount is checked first: an adjustment of nothing is no adjustment
                // (a resent call with another payload can come to 0.00). A 400 carries no
                // balance (read as -1.00).
                if cents == 0 {
                    let invalid = Answer {
                        available: -100,
                        reserved: -100,
                        ..self.answer(400, "INVALID_AMOUNT")
                    };
                    (invalid, false)
                } else if !self.served {
                    (self.answer(403, "PROVIDER_NOT_SERVED"), false)
                } else if !self.rounds.contains_key(&round) {
                    (self.answer(404, "RESERVATION_NOT_FOUND"), false)
                } else if self.available + cents < 0 {
                    (self.answer(422, "INSUFFICIENT_FUNDS"), false)
                } else {
                    self.available += cents;
                    ok(self)
                }
            }
        }
    }
}

fn cents(text: &serde_json::Value) -> i64 {
    let d: rust_decimal::Decimal = text.as_str().unwrap_or("-1").parse().unwrap();
    (d * rust_decimal::Decimal::from(100)).try_into().unwrap()
}

fn euros(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    format!("{sign}{}.{:02}", cents.abs() / 100, cents.abs() % 100)
}

/// One bet: player, round, stake in whole euros, fate (which calls and in what order),
/// payout, and whether its win closes the round.
type PlannedBet = (usize, usize, i64, u8, i64, bool);
/// One round-level call: player, round, what (0..6), an amount in whole euros, a flag.
type PlannedExtra = (usize, usize, u8, i64, bool);
/// Bets, round calls, the seed of the order they are sent in, which calls are sent twice,
/// and which are resent with another payload.
type Scenario = (
    Vec<PlannedBet>,
    Vec<PlannedExtra>,
    u64,
    Vec<prop::sample::Index>,
    Vec<prop::sample::Index>,
);

fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec(
            (
                0..PLAYERS,
                0..ROUNDS,
                1..=40i64,
                0..9u8,
                0..=80i64,
                prop::bool::weighted(0.25),
            ),
            1..14,
        ),
        prop::collection::vec(
            (0..PLAYERS, 0..ROUNDS + 1, 0..6u8, 1..=30i64, any::<bool>()),
            0..8,
        ),
        any::<u64>(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..8),
        prop::collection::vec(any::<prop::sample::Index>(), 0..3),
    )
}

fn calls_of(
    bets: &[PlannedBet],
    extras: &[PlannedExtra],
    seed: u64,
    dups: &[prop::sample::Index],
    conflicts: &[prop::sample::Index],
) -> Vec<Call> {
    let mut calls = Vec::new();
    for (i, &(player, round, euros, fate, payout, closing)) in bets.iter().enumerate() {
        let bet = Call::Bet {
            player,
            bet: i,
            round,
            cents: euros * 100,
        };
        let win = |attempt, closing| Call::Win {
            player,
            bet: i,
            round,
            cents: payout * 100,
            attempt,
            closing,
        };
        let rollback = |attempt| Call::Rollback {
            player,
            bet: i,
            round,
            attempt,
        };
        calls.extend(match fate {
            0 => vec![bet],
            1 => vec![bet, win(0, closing)],
            2 => vec![bet, rollback(0)],
            3 => vec![bet, win(0, false), rollback(0)],
            4 => vec![rollback(0), bet],
            5 => vec![win(0, false), bet, win(0, closing)],
            6 => vec![bet, rollback(0), rollback(1)],
            7 => vec![rollback(0), rollback(1), bet, win(0, false)],
            // A second and a third win for one bet, the last maybe closing the round.
            _ => vec![bet, win(0, false), win(1, false), win(2, closing)],
        });
    }
    for (id, &(player, round, what, euros, flag)) in extras.iter().enumerate() {
        let cents = euros * 100;
        calls.push(match what {
            0 => Call::RoundWin {
                player,
                id,
                round,
                cents,
                closing: flag,
            },
            1 => Call::BetWin {
                player,
                id,
                round,
                stake: cents,
                payout: if flag { cents * 2 } else { 0 },
                closing: true,
            },
            2 => Call::BetWin {
                player,
                id,
                round,
                stake: cents,
                payout: cents / 2,
                closing: false,
            },
            3 => Call::Betless {
                player,
                id,
                round,
                kind: (euros % 3) as usize,
                cents,
            },
            4 => Call::Adjust {
                player,
                id,
                round,
                cents,
            },
            _ => Call::Adjust {
                player,
                id,
                round,
                cents: -cents,
            },
        });
    }
    // Reorder everything (a provider's calls race), then repeat some calls, and resend
    // some under their id with another payload.
    let mut rng = Rng::new(seed);
    for i in (1..calls.len()).rev() {
        calls.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for (d, other) in dups
        .iter()
        .map(|d| (d, false))
        .chain(conflicts.iter().map(|c| (c, true)))
    {
        let at = d.index(calls.len());
        let call = if other {
            calls[at].other_payload()
        } else {
            calls[at]
        };
        calls.insert(at + 1 + rng.below((calls.len() - at) as u64) as usize, call);
    }
    calls
}

async fn send(app: &TestApp, case: usize, tokens: &[String], call: Call) -> Answer {
    let player = |p: usize| format!("c{case}-p{p}");
    // A provider's bet ids are unique across its players (the contract): the log answers
    // a repeat after the session ended by the one wallet that holds its id.
    let bet_id = |p: usize, bet: usize| format!("c{case}-p{p}-b{bet}");
    let named = |p: usize, body: serde_json::Value| {
        let mut body = body;
        body["player_id"] = json!(player(p));
        body["currency"] = json!("EUR");
        body
    };
    let reply = match call {
        Call::Bet { player: p, bet, round, cents } => {
            app.provider(A, A_KEY, "bet", json!({"token": tokens[p], "transaction_id": bet_id(p, bet),
                "round_id": format!("r{round}"), "game_id": "g1", "amount": euros(cents)})).await
        }
        Call::Win { player: p, bet, round, cents, attempt, closing } => {
            app.provider(A, A_KEY, "win", named(p, json!({
                "transaction_id": format!("w{bet}-{attempt}"), "bet_transaction_id": bet_id(p, bet),
                "round_id": format!("r{round}"), "amount": euros(cents), "round_closed": closing}))).await
        }
        Call::Rollback { player: p, bet, round, attempt } => {
            app.provider(A, A_KEY, "rollback", named(p, json!({
                "transaction_id": format!("rb{bet}-{attempt}"), "bet_transaction_id": bet_id(p, bet),
                "round_id": format!("r{round}")}))).await
        }
        Call::RoundWin { player: p, id, round, cents, closing } => {
            app.provider(A, A_KEY, "win", named(p, json!({"transaction_id": format!("rw{id}"),
                "round_id": format!("r{round}"), "amount": euros(cents), "round_closed": closing}))).await
        }
        Call::BetWin { player: p, id, round, stake, payout, closing } => {
            app.provider(A, A_KEY, "bet-win", json!({"token": tokens[p], "transaction_id": format!("c{case}-p{p}-bw{id}"),
                "round_id": format!("r{round}"), "game_id": "g1", "amount": euros(stake),
                "payout": euros(payout), "round_closed": closing})).await
        }
        Call::Betless { player: p, id, round, kind, cents } => {
            app.provider(A, A_KEY, "win", named(p, json!({"transaction_id": format!("f{id}"),
                "round_id": format!("r{round}"), "amount": euros(cents), "kind": KINDS[kind]}))).await
        }
        Call::Adjust { player: p, id, round, cents } => {
            app.provider(A, A_KEY, "adjust", named(p, json!({"transaction_id": format!("a{id}"),
                "round_id": format!("r{round}"), "amount": euros(cents), "reason": "correction"}))).await
        }
    };
    Answer {
        status: reply.status,
        code: reply.code().to_string(),
        available: cents(&reply.body["balance"]["available"]),
        reserved: cents(&reply.body["balance"]["reserved"]),
    }
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn random_provider_interleavings_match_the_reference_model(pool: PgPool) {
    let app = spawn_app(pool).await;
    let mut runner = TestRunner::new(Config::with_cases(CASES));
    let strategy = scenario();
    for case in 0..CASES as usize {
        let (bets, extras, seed, dups, conflicts) =
            strategy.new_tree(&mut runner).unwrap().current();
        let calls = calls_of(&bets, &extras, seed, &dups, &conflicts);
        let mut tokens = Vec::new();
        let mut models: Vec<PlayerModel> = Vec::new();
        let mut wallets = Vec::new();
        for p in 0..PLAYERS {
            let name = format!("c{case}-p{p}");
            let wallet = app.open_wallet(&name, "EUR").await;
            wallets.push(wallet.clone());
            app.deposit(&wallet, "fund", &euros(FUNDS_CENTS)).await;
            tokens.push(app.session(&name, A, "g1").await);
            models.push(PlayerModel {
                available: FUNDS_CENTS,
                ..Default::default()
            });
        }
        for (n, &call) in calls.iter().enumerate() {
            // Halfway, the first player's session ends: its repeats are answered from the
            // log, its new bets refused (issue 28).
            if n == calls.len() / 2 {
                app.end_session(&tokens[0]).await;
                models[0].session_ended = true;
            }
            let want = models[call.player()].play(call);
            let got = send(&app, case, &tokens, call).await;
            assert_eq!(
                got, want,
                "case {case}, call {n} {call:?}\ncalls: {calls:?}"
            );
        }
        for (p, model) in models.iter().enumerate() {
            let reply = app.get(&format!("/v1/wallets/{}", wallets[p])).await;
            assert_eq!(
                (
                    cents(&reply.body["balance"]["available"]),
                    cents(&reply.body["balance"]["reserved"])
                ),
                (model.available, model.reserved),
                "case {case}, final balance of player {p}\ncalls: {calls:?}"
            );
        }
    }
    app.stop().await;
}
