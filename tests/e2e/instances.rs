//! The batched write path with a cache that can fall behind the log (issue 13): another
//! instance writes to a wallet this one has cached, a wallet is opened elsewhere after
//! this one answered 404 for it, providers retry. No answer, refusal or 404 may be
//! decided on a state older than the log's; a repeat is answered as the first time; one
//! stale wallet does not take its batch with it.

use std::sync::Arc;
use std::time::Duration;

use betledger_tests::reopen;
use domain::{Currency, PlayerId, TransactionId, WalletCommand, WalletError, WalletId};
use eventstore::{BatchConfig, BatchedWalletStore, ExecuteError, WalletStore};
use rust_decimal::Decimal;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;

fn wallet(player: &str) -> WalletId {
    WalletId::for_player(&PlayerId::new(player).unwrap(), Currency::Eur)
}

fn open(player: &str) -> WalletCommand {
    WalletCommand::Open {
        player_id: PlayerId::new(player).unwrap(),
        currency: Currency::Eur,
        brand_id: domain::BrandId::default_brand(),
    }
}

fn deposit(id: &str, cents: i64) -> WalletCommand {
    WalletCommand::Deposit {
        transaction_id: TransactionId::new(id).unwrap(),
        amount: Decimal::new(cents, 2),
        currency: None,
        now: chrono::Utc::now(),
    }
}

fn withdraw(id: &str, cents: i64) -> WalletCommand {
    WalletCommand::Withdraw {
        transaction_id: TransactionId::new(id).unwrap(),
        amount: Decimal::new(cents, 2),
        currency: None,
        forfeit_bonuses: false,
    }
}

/// Two instances on one database, as two API processes would run them.
async fn two(pool: &PgPool, config: BatchConfig) -> (Arc<dyn WalletStore>, Arc<dyn WalletStore>) {
    let a: Arc<dyn WalletStore> = Arc::new(BatchedWalletStore::new(pool.clone(), config.clone()));
    let b: Arc<dyn WalletStore> = Arc::new(BatchedWalletStore::new(reopen(pool).await, config));
    (a, b)
}

/// Before: A answered `INSUFFICIENT_FUNDS {"available": "0.00"}` for a wallet B had
/// funded, and `404` for a wallet B had opened after A had looked for it.
#[sqlx::test(migrator = "MIGRATOR")]
async fn an_instance_never_answers_from_a_state_the_log_has_left(pool: PgPool) {
    let (a, b) = two(&pool, BatchConfig::default()).await;
    let w = wallet("alice");
    a.execute(w, open("alice")).await.unwrap();
    // A has the wallet cached with nothing in it; B funds it.
    b.execute(w, deposit("d1", 10_000)).await.unwrap();
    let taken = a.execute(w, withdraw("w1", 40_00)).await.unwrap();
    assert_eq!(taken.balance.available, Decimal::new(60_00, 2));
    assert_eq!(taken.sequence, 3);
    // A refusal carries the balance the log has now, not an old one.
    b.execute(w, deposit("d2", 5_00)).await.unwrap();
    match a.execute(w, withdraw("w2", 100_000)).await {
        Err(ExecuteError::Refused {
            error: WalletError::InsufficientFunds { available, .. },
            balance,
        }) => {
            assert_eq!(available, Decimal::new(65_00, 2));
            assert_eq!(balance.unwrap().available, Decimal::new(65_00, 2));
        }
        other => panic!("expected INSUFFICIENT_FUNDS on 65.00, got {other:?}"),
    }

    // A 404 is not remembered: the wallet may be opened through the other instance.
    let late = wallet("bob");
    match a.execute(late, deposit("d1", 1_00)).await {
        Err(ExecuteError::Refused {
            error: WalletError::WalletNotFound,
            ..
        }) => {}
        other => panic!("expected WALLET_NOT_FOUND, got {other:?}"),
    }
    b.execute(late, open("bob")).await.unwrap();
    let credited = a.execute(late, deposit("d1", 1_00)).await.unwrap();
    assert_eq!(credited.balance.available, Decimal::new(1_00, 2));
    // And opening it again through A is refused as existing, not accepted twice.
    match a.execute(late, open("bob")).await {
        Err(ExecuteError::Refused {
            error: WalletError::WalletExists { .. },
            ..
        }) => {}
        other => panic!("expected WALLET_EXISTS, got {other:?}"),
    }
    // Reads come from the log too.
    assert_eq!(
        a.wallet(w).await.unwrap().unwrap().balance.available,
        Decimal::new(65_00, 2)
    );
}

/// One batch holding new commands, exact repeats (recent and old), a repeat with other
/// content, and commands on a wallet another instance appended to: the new commands
/// commit once, each repeat gets its first answer, the conflict is refused, and the
/// foreign wallet's commands are decided on its new state. Checked against a model of
/// the balances and against the log, event by event.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_batch_with_repeats_and_a_foreign_append_commits_the_rest(pool: PgPool) {
    let config = BatchConfig {
        shards: 1,
        batch_window: Duration::from_millis(50),
        ..BatchConfig::default()
    };
    let (a, b) = two(&pool, config).await;
    let players: Vec<String> = (0..10).map(|i| format!("p{i}")).collect();
    let mut model = vec![0i64; players.len()];
    let mut first_answers = Vec::new();
    // The wallets are set up side by side (each one's commands in order).
    let mut setup = tokio::task::JoinSet::new();
    for (i, p) in players.iter().enumerate() {
        let (a, p) = (a.clone(), p.clone());
        setup.spawn(async move {
            a.execute(wallet(&p), open(&p)).await.unwrap();
            let mut kept = Vec::new();
            // Twelve deposits each: the first falls out of the wallet's recent ids.
            for n in 0..12 {
                let r = a
                    .execute(wallet(&p), deposit(&format!("{p}-{n}"), 10_00))
                    .await
                    .unwrap();
                // Repeated below: every wallet's last deposit, and p1's and p2's first.
                if n == 11 || (n == 0 && (i == 1 || i == 2)) {
                    kept.push((i, n, r));
                }
            }
            kept
        });
    }
    while let Some(kept) = setup.join_next().await {
        for (i, n, r) in kept.unwrap() {
            first_answers.push((i, n, r));
        }
    }
    for m in model.iter_mut() {
        *m = 12 * 10_00;
    }
    // Another instance appends to p3 and p7 behind A's back.
    for i in [3usize, 7] {
        b.execute(wallet(&players[i]), deposit("foreign", 1_00))
            .await
            .unwrap();
        model[i] += 1_00;
    }

    // One batch: everything below is sent at once and lands within A's 50 ms window.
    let mut sent = tokio::task::JoinSet::new();
    for (i, p) in players.iter().enumerate() {
        let a = a.clone();
        let w = wallet(p);
        let p = p.clone();
        sent.spawn(async move {
            (
                i,
                "new",
                a.execute(w, deposit(&format!("{p}-new"), 2_00)).await,
            )
        });
    }
    for (i, n, _) in &first_answers {
        let a = a.clone();
        let p = players[*i].clone();
        let (i, n) = (*i, *n);
        sent.spawn(async move {
            let kind = if n == 0 {
                "old repeat"
            } else {
                "recent repeat"
            };
            (
                i,
                kind,
                a.execute(wallet(&p), deposit(&format!("{p}-{n}"), 10_00))
                    .await,
            )
        });
    }
    {
        let a = a.clone();
        let p = players[5].clone();
        sent.spawn(async move {
            (
                5,
                "conflict",
                a.execute(wallet(&p), deposit(&format!("{p}-4"), 99_00))
                    .await,
            )
        });
    }
    // A withdrawal on p7 that only the foreign deposit makes possible.
    {
        let a = a.clone();
        let p = players[7].clone();
        let all = model[7] + 2_00;
        sent.spawn(async move {
            (
                7,
                "all of it",
                a.execute(wallet(&p), withdraw("all", all)).await,
            )
        });
    }
    let mut results = Vec::new();
    while let Some(done) = sent.join_next().await {
        results.push(done.unwrap());
    }
    results.sort_by_key(|(i, kind, _)| (*i, *kind));
    for (i, kind, result) in &results {
        match (*kind, result) {
            ("new", Ok(r)) => {
                assert!(!r.replayed, "p{i} new");
                model[*i] += 2_00;
            }
            ("old repeat" | "recent repeat", Ok(r)) => {
                let first = first_answers
                    .iter()
                    .find(|(j, n, _)| j == i && (*n == 0) == (*kind == "old repeat"))
                    .map(|(_, _, r)| r)
                    .unwrap();
                assert!(r.replayed, "p{i} {kind}");
                assert_eq!((r.sequence, r.balance), (first.sequence, first.balance));
            }
            (
                "conflict",
                Err(ExecuteError::Refused {
                    error: WalletError::IdempotencyConflict { .. },
                    ..
                }),
            ) => {}
            ("all of it", Ok(r)) => {
                assert!(!r.replayed);
                assert_eq!(r.balance.available, Decimal::ZERO);
                model[*i] = 0;
            }
            other => panic!("unexpected answer {other:?}"),
        }
    }
    // The withdrawal may have been decided before or after p7's new deposit.
    let p7 = a.wallet(wallet(&players[7])).await.unwrap().unwrap();
    assert!(
        p7.balance.available == Decimal::ZERO || p7.balance.available == Decimal::new(2_00, 2),
        "p7: {:?}",
        p7.balance
    );
    model[7] = (p7.balance.available * Decimal::from(100))
        .try_into()
        .unwrap();

    // The wallets that were neither behind the log nor sent an old repeat had their new
    // deposits committed together, in one transaction: their batch was not given up
    // because of the others (before, every command of it went the slow way, one
    // transaction each).
    let untouched: Vec<String> = [0usize, 4, 5, 6, 8, 9]
        .iter()
        .map(|i| wallet(&players[*i]).to_string())
        .collect();
    let transactions: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT tx_id::text) FROM events
          WHERE aggregate_id = ANY($1) AND metadata ->> 'transaction_id' LIKE '%-new'",
    )
    .bind(&untouched)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        transactions, 1,
        "the untouched wallets' new deposits in one commit"
    );

    // The log: each transaction id once, balances as the model, no gap in any sequence.
    for (i, p) in players.iter().enumerate() {
        let rows: Vec<(i64, Option<String>)> = sqlx::query_as(
            "SELECT sequence, metadata ->> 'transaction_id' FROM events
              WHERE aggregate_id = $1 ORDER BY sequence",
        )
        .bind(wallet(p).to_string())
        .fetch_all(&pool)
        .await
        .unwrap();
        for (n, (sequence, _)) in rows.iter().enumerate() {
            assert_eq!(*sequence, n as i64 + 1, "{p}: a gap in the sequence");
        }
        let mut ids: Vec<&String> = rows.iter().filter_map(|(_, t)| t.as_ref()).collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count, "{p}: a transaction id twice");
        let now = b.wallet(wallet(p)).await.unwrap().unwrap();
        assert_eq!(
            now.balance.available,
            Decimal::new(model[i], 2),
            "{p} against the model"
        );
    }
}

/// A mixed run on two instances, each client sending its commands to both in turn: every
/// `INSUFFICIENT_FUNDS` must be true of a state the log had, no older than what that client
/// had already been told (its available is the wallet's balance at some sequence at or
/// after the last one the client saw), and the amount must exceed it. Before, 5 to 8 of
/// such refusals in a run refused a funded wallet on a state the log had left.
#[sqlx::test(migrator = "MIGRATOR")]
async fn every_insufficient_funds_is_true_of_the_log_when_it_is_given(pool: PgPool) {
    use std::collections::HashMap;
    let (a, b) = two(&pool, BatchConfig::default()).await;
    let players: Vec<String> = (0..4).map(|i| format!("mixed-{i}")).collect();
    for p in &players {
        a.execute(wallet(p), open(p)).await.unwrap();
    }
    let mut tasks = tokio::task::JoinSet::new();
    for t in 0..12u64 {
        let (a, b, players) = (a.clone(), b.clone(), players.clone());
        tasks.spawn(async move {
            let mut rng = betledger_tests::workload::Rng::new(t + 7);
            let mut known: HashMap<WalletId, u64> = HashMap::new();
            let mut refusals = Vec::new();
            for n in 0..80 {
                let w = wallet(&players[rng.below(players.len() as u64) as usize]);
                let store = if (t + n) % 2 == 0 { &a } else { &b };
                let id = format!("m{t}-{n}");
                let command = if rng.below(10) < 6 {
                    deposit(&id, 100 + rng.below(5_000) as i64)
                } else {
                    withdraw(&id, 100 + rng.below(8_000) as i64)
                };
                let before = known.get(&w).copied().unwrap_or(0);
                match store.execute(w, command).await {
                    Ok(r) => {
                        let k = known.entry(w).or_default();
                        *k = (*k).max(r.sequence);
                    }
                    Err(ExecuteError::Refused {
                        error:
                            WalletError::InsufficientFunds {
                                available,
                                requested,
                            },
                        ..
                    }) => refusals.push((w, before, available, requested)),
                    Err(e) => panic!("{id}: {e:?}"),
                }
            }
            refusals
        });
    }
    let mut refusals = Vec::new();
    while let Some(done) = tasks.join_next().await {
        refusals.extend(done.unwrap());
    }
    assert!(
        refusals.len() > 20,
        "only {} refusals to check",
        refusals.len()
    );
    let rows: Vec<(String, i64, String)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, metadata ->> 'available' FROM events
          WHERE metadata ? 'available' ORDER BY 1, 2",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let mut balances: HashMap<WalletId, Vec<(u64, Decimal)>> = HashMap::new();
    for (w, sequence, available) in rows {
        balances
            .entry(w.parse().unwrap())
            .or_default()
            .push((sequence as u64, available.parse().unwrap()));
    }
    // An open without a deposit has available 0 at sequence 1.
    for p in &players {
        balances
            .entry(wallet(p))
            .or_default()
            .push((1, Decimal::new(0, 2)));
    }
    for (w, known, available, requested) in &refusals {
        assert!(
            requested > available,
            "{w}: refused {requested} with {available}"
        );
        let latest_with_that_balance = balances[w]
            .iter()
            .filter(|(_, a)| a == available)
            .map(|(s, _)| *s)
            .max();
        assert!(
            latest_with_that_balance.is_some_and(|s| s >= *known),
            "{w}: refused on {available}, a balance the log last had at {latest_with_that_balance:?}, \
             after the client had seen sequence {known}"
        );
    }
    println!(
        "{} INSUFFICIENT_FUNDS checked against the log",
        refusals.len()
    );
}

/// A retry inside one batch of a command the batch refused keeps its place: the wallet's
/// later commands wait with it. Balance 0, one batch: withdraw T 50 (refused), deposit 100,
/// withdraw T 50 again (new: the first wrote nothing), withdraw U 80. In arrival order the
/// retry is accepted and U refused; before, U was decided first and the retry refused.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_retry_within_a_batch_keeps_its_place_among_its_wallets_commands(pool: PgPool) {
    let store: Arc<dyn WalletStore> = Arc::new(BatchedWalletStore::new(
        pool.clone(),
        BatchConfig {
            shards: 1,
            batch_window: Duration::from_millis(100),
            ..BatchConfig::default()
        },
    ));
    let w = wallet("order");
    store.execute(w, open("order")).await.unwrap();
    let commands = [
        withdraw("T", 5_000),
        deposit("D", 10_000),
        withdraw("T", 5_000),
        withdraw("U", 8_000),
    ];
    // Polled in order, so they enter the shard's queue in this order, in one batch.
    let answers =
        futures::future::join_all(commands.into_iter().map(|c| store.execute(w, c))).await;
    let refused = |a: &Result<eventstore::CommandReceipt, ExecuteError>| {
        matches!(
            a,
            Err(ExecuteError::Refused {
                error: WalletError::InsufficientFunds { .. },
                ..
            })
        )
    };
    assert!(refused(&answers[0]), "{:?}", answers[0]);
    assert!(answers[1].is_ok(), "{:?}", answers[1]);
    let retried = answers[2]
        .as_ref()
        .expect("the retry, decided after the deposit");
    assert_eq!(retried.balance.available, Decimal::new(5_000, 2));
    assert!(refused(&answers[3]), "U after the retry: {:?}", answers[3]);
}

/// A batch of accepted commands commits in one statement; when a key is taken (here by
/// another instance's append) that statement writes nothing, and the batch goes the
/// transactional way: the other wallets' commands commit once, the stale wallet's are
/// decided again on its new state. Nothing is written twice or lost.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_taken_key_in_a_one_statement_batch_costs_only_its_wallet(pool: PgPool) {
    let config = BatchConfig {
        shards: 1,
        batch_window: Duration::from_millis(50),
        snapshot_every: 0,
        ..BatchConfig::default()
    };
    let a = Arc::new(BatchedWalletStore::new(pool.clone(), config.clone()));
    let b = BatchedWalletStore::new(reopen(&pool).await, config);
    let players = ["x", "y", "z"];
    for p in players {
        a.execute(wallet(p), open(p)).await.unwrap();
        a.execute(wallet(p), deposit(&format!("{p}-0"), 10_00))
            .await
            .unwrap();
    }
    // One batch with nothing stale in it: one statement, no taken key.
    let mut sent = tokio::task::JoinSet::new();
    for p in players {
        let a = a.clone();
        sent.spawn(async move { a.execute(wallet(p), deposit(&format!("{p}-1"), 1_00)).await });
    }
    while let Some(r) = sent.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(a.taken_key_batches(), 0, "a clean batch met a taken key");
    assert!(
        a.one_statement_batches() >= 1,
        "no batch went in one statement"
    );

    // Another instance appends to y behind A's back; then one batch on x, y and z.
    b.execute(wallet("y"), deposit("foreign", 5_00))
        .await
        .unwrap();
    let mut sent = tokio::task::JoinSet::new();
    for (p, id, cents) in [
        ("x", "x-2", 2_00),
        ("y", "y-2", 2_00),
        ("y", "y-3", 3_00),
        ("z", "z-2", 2_00),
    ] {
        let a = a.clone();
        sent.spawn(async move { (p, id, a.execute(wallet(p), deposit(id, cents)).await) });
    }
    let mut answers = Vec::new();
    while let Some(r) = sent.join_next().await {
        answers.push(r.unwrap());
    }
    // (Whatever batches they landed in, the first with a command of y met its taken key.)
    assert!(a.taken_key_batches() >= 1, "the foreign append was not met");
    for (p, id, answer) in &answers {
        let r = answer.as_ref().unwrap_or_else(|e| panic!("{id}: {e:?}"));
        assert!(!r.replayed, "{id}");
        assert_eq!(r.wallet_id, wallet(p));
    }
    // y's answers were decided after the foreign deposit: sequences 5 and 6, in order.
    let mut y: Vec<_> = answers
        .iter()
        .filter(|(p, ..)| *p == "y")
        .map(|(_, id, r)| (*id, r.as_ref().unwrap().sequence))
        .collect();
    y.sort();
    assert_eq!(y, vec![("y-2", 5), ("y-3", 6)]);
    let balances = [("x", 13_00), ("y", 21_00), ("z", 13_00)];
    for (p, cents) in balances {
        let held = a
            .wallet(wallet(p))
            .await
            .unwrap()
            .unwrap()
            .balance
            .available;
        assert_eq!(held, Decimal::new(cents, 2), "{p}");
    }
    // The log: every transaction id once, each wallet's sequences without a gap.
    let rows: Vec<(String, i64, i64, i64)> = sqlx::query_as(
        "SELECT aggregate_id, count(*), count(DISTINCT metadata ->> 'transaction_id'),
                max(sequence)
           FROM events GROUP BY aggregate_id ORDER BY aggregate_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    for (p, events) in [("x", 4i64), ("y", 6), ("z", 4)] {
        let id = wallet(p).to_string();
        let row = rows.iter().find(|r| r.0 == id).unwrap();
        // Opened has no transaction id: one id fewer than events.
        assert_eq!((row.1, row.2, row.3), (events, events - 1, events), "{p}");
    }
}

/// The snapshots a batch brings due go in its one statement: written with its events, or,
/// when a key is taken, not at all. A snapshot decided on a state another instance had
/// left must never be stored.
#[sqlx::test(migrator = "MIGRATOR")]
async fn a_snapshot_goes_with_its_batch_or_not_at_all(pool: PgPool) {
    let config = BatchConfig {
        shards: 1,
        snapshot_every: 3,
        ..BatchConfig::default()
    };
    let a = BatchedWalletStore::new(pool.clone(), config.clone());
    let b = BatchedWalletStore::new(reopen(&pool).await, config);
    let w = wallet("snap");
    a.execute(w, open("snap")).await.unwrap();
    // Sequences 2 to 8, one command per batch: snapshots at 3 and 6 (only the last kept).
    for n in 2..=8 {
        a.execute(w, deposit(&format!("d{n}"), 1_00)).await.unwrap();
    }
    assert_eq!(
        a.one_statement_batches(),
        8,
        "every batch went in one statement"
    );
    let latest = |pool: PgPool| async move {
        let snapshots = eventstore::snapshots::latest(&pool, &[w]).await.unwrap();
        let s = snapshots.get(&w).expect("a snapshot").clone();
        (s.sequence, s.wallet().unwrap().balance().unwrap().available)
    };
    assert_eq!(latest(pool.clone()).await, (6, Decimal::new(5_00, 2)));
    // B appends sequence 9 behind A's back (and stores its snapshot at 9, 57.00). A's
    // next deposit is decided as 9 on its stale state, which brings a snapshot due there
    // too, of 8.00: its statement meets B's key and must store neither.
    b.execute(w, deposit("foreign", 50_00)).await.unwrap();
    assert_eq!(latest(pool.clone()).await, (9, Decimal::new(57_00, 2)));
    let r = a.execute(w, deposit("d9", 1_00)).await.unwrap();
    assert_eq!(a.taken_key_batches(), 1);
    assert_eq!(
        (r.sequence, r.balance.available),
        (10, Decimal::new(58_00, 2))
    );
    // The snapshot at 9 is still B's, of the log's state, not A's stale one.
    assert_eq!(latest(pool.clone()).await, (9, Decimal::new(57_00, 2)));
    let count: i64 = sqlx::query_scalar("SELECT count(*) FROM snapshots")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(count, 1, "older snapshots are dropped");
}

/// Issue 28, item 1. Before: after ordinary mixed round traffic through two instances,
/// `reconcile` found stored snapshots that differed from the log: a round the snapshot's
/// state had forgotten was named by a later event decided elsewhere, and the wallet
/// loaded from the snapshot gave the round that event's game instead of the one it
/// opened with. Two instances (each with its own cache, snapshots every few events) take
/// the same random mix of bets in several games, wins, round wins, bet-less wins, closes,
/// bet-wins, rollbacks and exact repeats on a few wallets, each command sent to either;
/// then every stored snapshot must stand for the fold of the log at its sequence, and the
/// log must verify.
#[sqlx::test(migrator = "MIGRATOR")]
async fn snapshots_stand_for_the_log_after_mixed_rounds_through_two_instances(pool: PgPool) {
    use domain::{BetlessKind, GameId, ReservationId, RoundId, WinTarget};
    let config = BatchConfig {
        shards: 1,
        snapshot_every: 3,
        ..BatchConfig::default()
    };
    let (a, b) = two(&pool, config).await;
    let players: Vec<String> = (0..4).map(|p| format!("mix-{p}")).collect();
    for p in &players {
        a.execute(wallet(p), open(p)).await.unwrap();
        a.execute(wallet(p), deposit(&format!("{p}-fund"), 1_000_000))
            .await
            .unwrap();
    }
    // Tasks at once, as providers' calls come: one wallet's commands meet in a batch, and
    // the two instances' caches fall behind each other.
    let mut tasks = Vec::new();
    for t in 0..8u64 {
        let (a, b, players) = (a.clone(), b.clone(), players.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = workload::Rng::new(28 + t);
            let mut next = |n: u64| rng.below(n);
            let now = chrono::Utc::now();
            let cents = |c: u64| Decimal::new(c as i64, 2);
            let mut sent: Vec<(WalletId, WalletCommand)> = Vec::new();
            for i in 0..200u64 {
                let p = &players[next(players.len() as u64) as usize];
                // Many rounds, rarely closed: most stay open and idle, and a cache keeps
                // only the latest two of those.
                let round = RoundId::new(format!("r{}", next(20))).unwrap();
                let bet = ReservationId::new(format!("b{}", next(60))).unwrap();
                let game = GameId::new(format!("g{}", next(3))).unwrap();
                let tx = TransactionId::new(format!("t{t}-{i}")).unwrap();
                let command = match next(10) {
                    0 | 1 => WalletCommand::Reserve {
                        reservation_id: bet,
                        amount: cents(1 + next(500)),
                        currency: None,
                        game_id: game,
                        round_id: round,
                        timeout_s: 3_600,
                        now,
                    },
                    2 | 3 => WalletCommand::Win {
                        transaction_id: tx,
                        round_id: round,
                        target: WinTarget::Bet(bet),
                        amount: cents(next(900)),
                        game_id: None,
                        round_closed: next(12) == 0,
                        currency: None,
                        now,
                    },
                    4 => WalletCommand::Win {
                        transaction_id: tx,
                        round_id: round,
                        target: WinTarget::Round,
                        amount: cents(next(300)),
                        game_id: None,
                        round_closed: next(12) == 0,
                        currency: None,
                        now,
                    },
                    // A bet-less win that names no game opens a round the index cannot
                    // tell the game of: a later command in it goes to the full state.
                    5 => WalletCommand::Win {
                        transaction_id: tx,
                        round_id: round,
                        target: WinTarget::Betless {
                            kind: BetlessKind::Promo,
                            campaign_id: None,
                        },
                        amount: cents(next(200)),
                        game_id: (next(2) == 0).then_some(game),
                        round_closed: false,
                        currency: None,
                        now,
                    },
                    6 if next(4) == 0 => WalletCommand::CloseRound {
                        transaction_id: tx,
                        round_id: round,
                        now,
                    },
                    7 => WalletCommand::BetWin {
                        reservation_id: ReservationId::new(format!("bw{t}-{i}")).unwrap(),
                        amount: cents(1 + next(300)),
                        payout: cents(next(600)),
                        currency: None,
                        game_id: game,
                        round_id: round,
                        round_closed: next(8) == 0,
                        now,
                    },
                    8 => WalletCommand::Rollback {
                        reservation_id: bet,
                        transaction_id: tx,
                        round_id: round,
                    },
                    // An exact repeat of an earlier command, through either instance.
                    _ if !sent.is_empty() => {
                        let (w, c) = sent[next(sent.len() as u64) as usize].clone();
                        let store = if next(2) == 0 { &a } else { &b };
                        let _ = store.execute(w, c).await;
                        continue;
                    }
                    _ => continue,
                };
                let store = if next(2) == 0 { &a } else { &b };
                match store.execute(wallet(p), command.clone()).await {
                    Ok(_) | Err(ExecuteError::Refused { .. }) => {}
                    Err(e) => panic!("task {t} command {i} {command:?}: {e}"),
                }
                sent.push((wallet(p), command));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for p in &players {
        let w = wallet(p);
        let snapshots = eventstore::snapshots::latest(&pool, &[w]).await.unwrap();
        let snapshot = snapshots
            .get(&w)
            .expect("a wallet this busy has a snapshot");
        let stored = snapshot.wallet().expect("this build reads its snapshots");
        let mut full = domain::Wallet::default();
        let mut after = 0;
        while after < snapshot.sequence {
            let events = eventstore::log::wallet_events(&pool, w, after, 500)
                .await
                .unwrap();
            assert!(!events.is_empty(), "the log reaches the snapshot");
            for e in events
                .into_iter()
                .take_while(|e| e.sequence <= snapshot.sequence)
            {
                after = e.sequence;
                cqrs_es::Aggregate::apply(&mut full, e.decode().unwrap());
            }
        }
        assert!(
            stored.stands_for(&full),
            "{p}: the snapshot at {} stands for the log's fold\nsnapshot: {}\nfold: {}",
            snapshot.sequence,
            serde_json::to_string(&stored).unwrap(),
            serde_json::to_string(&full.compacted()).unwrap()
        );
    }
    let report = replay_tool::verify::verify(
        &pool,
        &replay_tool::verify::VerifyConfig {
            page_size: 500,
            listed_max: 20,
            progress: replay_tool::progress::ProgressMode::Quiet,
        },
    )
    .await
    .unwrap();
    assert!(report.ok, "{:?}", report.listed);
}

/// Two instances on one database without the cluster settings are correct but slow
/// (docs/deploy/several-instances.md): each says so on `/ready` and in
/// `api_unclustered_instances` while the other runs, and stops saying it once it is gone.
#[sqlx::test(migrator = "MIGRATOR")]
async fn instances_outside_a_cluster_are_told_of_each_other(pool: PgPool) {
    let a = betledger_tests::spawn_app(pool.clone()).await;
    let warnings = |reply: &betledger_tests::Reply| reply.body["warnings"].clone();
    // Alone: nothing to say (its first look happens at start).
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let alone = a.get("/ready").await;
    assert_eq!(alone.status, 200);
    assert!(warnings(&alone).is_null(), "{:?}", alone.body);

    let b = betledger_tests::spawn_app(betledger_tests::reopen(&pool).await).await;
    let mut seen = None;
    for _ in 0..50 {
        let ready = a.get("/ready").await;
        assert_eq!(ready.status, 200, "still ready: the instances are correct");
        if !warnings(&ready).is_null() {
            seen = Some(ready);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let seen = seen.expect("the first instance saw the second within 5 s");
    let text = warnings(&seen)[0].as_str().unwrap_or_default().to_string();
    assert!(
        text.contains("1 other API instance") && text.contains("BETLEDGER_CLUSTER_ADDR"),
        "{text}"
    );
    let metrics = a
        .http
        .get(a.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.lines().any(|l| l == "api_unclustered_instances 1"),
        "the gauge counts the other instance"
    );

    b.stop().await;
    let mut cleared = false;
    for _ in 0..60 {
        if warnings(&a.get("/ready").await).is_null() {
            cleared = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(
        cleared,
        "the warning ends once the other instance has stopped"
    );
    a.stop().await;
}
