//! A property test of the provider face: random interleavings of bets, wins and rollbacks
//! (out of order, with duplicates) for several players, played against the real API and
//! against a reference model of the contract's provider rules. Every answer (status, code
//! and balance) and every final balance must equal the model's.

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
const CASES: u32 = 24;
/// Every player starts with 100.00 EUR, counted here in cents.
const FUNDS_CENTS: i64 = 10_000;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Call {
    Bet {
        player: usize,
        bet: usize,
        cents: i64,
    },
    /// `attempt` varies the transaction id: a second win or rollback for the same bet.
    Win {
        player: usize,
        bet: usize,
        cents: i64,
        attempt: usize,
    },
    Rollback {
        player: usize,
        bet: usize,
        attempt: usize,
    },
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum BetState {
    Open(i64),
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
    bets: HashMap<usize, BetState>,
    /// First answers of accepted calls, by (kind, transaction id): repeats get them again.
    recorded: HashMap<(&'static str, usize), Answer>,
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

    fn play(&mut self, call: Call) -> Answer {
        let key = match call {
            Call::Bet { bet, .. } => ("bet", bet),
            Call::Win { bet, attempt, .. } => ("win", bet * 10 + attempt),
            Call::Rollback { bet, attempt, .. } => ("rollback", bet * 10 + attempt),
        };
        if let Some(first) = self.recorded.get(&key) {
            return first.clone();
        }
        let state = match call {
            Call::Bet { bet, .. } | Call::Win { bet, .. } | Call::Rollback { bet, .. } => {
                self.bets.get(&bet).copied()
            }
        };
        let (answer, record) = match (call, state) {
            (Call::Bet { bet, cents, .. }, None) => {
                if self.available < cents {
                    (self.answer(422, "INSUFFICIENT_FUNDS"), false)
                } else {
                    self.available -= cents;
                    self.reserved += cents;
                    self.bets.insert(bet, BetState::Open(cents));
                    (self.answer(200, ""), true)
                }
            }
            (Call::Bet { .. }, Some(_)) => (self.answer(422, "RESERVATION_CLOSED"), false),
            (Call::Win { .. }, None) => (self.answer(404, "RESERVATION_NOT_FOUND"), false),
            (Call::Win { bet, cents, .. }, Some(BetState::Open(stake))) => {
                self.reserved -= stake;
                self.available += cents;
                self.bets.insert(bet, BetState::Settled);
                (self.answer(200, ""), true)
            }
            // A further win for a settled bet is credited to its round, which stays open
            // (these providers never close one): the contract's "several wins per round".
            (Call::Win { cents, .. }, Some(BetState::Settled)) => {
                self.available += cents;
                (self.answer(200, ""), true)
            }
            (Call::Win { .. }, Some(_)) => (self.answer(422, "RESERVATION_CLOSED"), false),
            (Call::Rollback { bet, .. }, None) => {
                self.bets.insert(bet, BetState::Voided);
                (self.answer(200, ""), true)
            }
            (Call::Rollback { bet, .. }, Some(BetState::Open(stake))) => {
                self.reserved -= stake;
                self.available += stake;
                self.bets.insert(bet, BetState::Refunded);
                (self.answer(200, ""), true)
            }
            (Call::Rollback { .. }, Some(BetState::Settled)) => {
                (self.answer(422, "RESERVATION_CLOSED"), false)
            }
            // The stake is already back: the rollback succeeds and moves nothing.
            (Call::Rollback { .. }, Some(BetState::Refunded | BetState::Voided)) => {
                (self.answer(200, ""), false)
            }
        };
        if record {
            self.recorded.insert(key, answer.clone());
        }
        answer
    }
}

fn cents(text: &serde_json::Value) -> i64 {
    let d: rust_decimal::Decimal = text.as_str().unwrap_or("-1").parse().unwrap();
    (d * rust_decimal::Decimal::from(100)).try_into().unwrap()
}

fn euros(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

/// One bet: player, stake in whole euros, fate (which calls and in what order), payout.
type PlannedBet = (usize, i64, u8, i64);
/// Bets, the seed of the order they are sent in, and which calls are sent twice.
type Scenario = (Vec<PlannedBet>, u64, Vec<prop::sample::Index>);

/// A scenario: bets with their fates, the order they are sent in, and duplicates.
fn scenario() -> impl Strategy<Value = Scenario> {
    (
        prop::collection::vec((0..PLAYERS, 1..=60i64, 0..9u8, 0..=120i64), 1..14),
        any::<u64>(),
        prop::collection::vec(any::<prop::sample::Index>(), 0..8),
    )
}

fn calls_of(bets: &[PlannedBet], seed: u64, dups: &[prop::sample::Index]) -> Vec<Call> {
    let mut calls = Vec::new();
    for (i, &(player, euros, fate, payout)) in bets.iter().enumerate() {
        let bet = Call::Bet {
            player,
            bet: i,
            cents: euros * 100,
        };
        let win = |attempt| Call::Win {
            player,
            bet: i,
            cents: payout * 100,
            attempt,
        };
        let rollback = |attempt| Call::Rollback {
            player,
            bet: i,
            attempt,
        };
        calls.extend(match fate {
            0 => vec![bet],
            1 => vec![bet, win(0)],
            2 => vec![bet, rollback(0)],
            3 => vec![bet, win(0), rollback(0)],
            4 => vec![rollback(0), bet],
            5 => vec![win(0), bet, win(0)],
            6 => vec![bet, rollback(0), rollback(1)],
            7 => vec![rollback(0), rollback(1), bet, win(0)],
            _ => vec![bet, win(0), win(1)],
        });
    }
    // Reorder everything (a provider's calls race), then repeat some calls.
    let mut rng = Rng::new(seed);
    for i in (1..calls.len()).rev() {
        calls.swap(i, rng.below(i as u64 + 1) as usize);
    }
    for d in dups {
        let at = d.index(calls.len());
        calls.insert(
            at + 1 + rng.below((calls.len() - at) as u64) as usize,
            calls[at],
        );
    }
    calls
}

async fn send(app: &TestApp, case: usize, tokens: &[String], call: Call) -> Answer {
    let player = |p: usize| format!("c{case}-p{p}");
    let reply = match call {
        Call::Bet { player: p, bet, cents } => {
            app.provider(A, A_KEY, "bet", json!({"token": tokens[p], "transaction_id": format!("b{bet}"),
                "round_id": format!("r{bet}"), "game_id": "g1", "amount": euros(cents)})).await
        }
        Call::Win { player: p, bet, cents, attempt } => {
            app.provider(A, A_KEY, "win", json!({"player_id": player(p), "currency": "EUR",
                "transaction_id": format!("w{bet}-{attempt}"), "bet_transaction_id": format!("b{bet}"),
                "round_id": format!("r{bet}"), "amount": euros(cents)})).await
        }
        Call::Rollback { player: p, bet, attempt } => {
            app.provider(A, A_KEY, "rollback", json!({"player_id": player(p), "currency": "EUR",
                "transaction_id": format!("rb{bet}-{attempt}"), "bet_transaction_id": format!("b{bet}"),
                "round_id": format!("r{bet}")})).await
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
        let (bets, seed, dups) = strategy.new_tree(&mut runner).unwrap().current();
        let calls = calls_of(&bets, seed, &dups);
        let mut tokens = Vec::new();
        let mut models: Vec<PlayerModel> = Vec::new();
        for p in 0..PLAYERS {
            let name = format!("c{case}-p{p}");
            let wallet = app.open_wallet(&name, "EUR").await;
            app.deposit(&wallet, "fund", &euros(FUNDS_CENTS)).await;
            tokens.push(app.session(&name, A, "g1").await);
            models.push(PlayerModel {
                available: FUNDS_CENTS,
                ..Default::default()
            });
        }
        for (n, &call) in calls.iter().enumerate() {
            let player = match call {
                Call::Bet { player, .. }
                | Call::Win { player, .. }
                | Call::Rollback { player, .. } => player,
            };
            let want = models[player].play(call);
            let got = send(&app, case, &tokens, call).await;
            assert_eq!(
                got, want,
                "case {case}, call {n} {call:?}\ncalls: {calls:?}"
            );
        }
        for (p, model) in models.iter().enumerate() {
            let reply = app
                .provider(A, A_KEY, "balance", json!({"token": tokens[p]}))
                .await;
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
