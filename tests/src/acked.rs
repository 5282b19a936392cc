//! Steady mixed load through the HTTP API with every acknowledged answer recorded, and the
//! check that the log holds exactly those: what the tests that kill something (an API
//! instance, a database node, a broker node) prove with. A caller retries a 503 or a
//! broken connection under the same transaction id until it is acknowledged, as a
//! provider does, so nothing may be lost and nothing doubled. [`check_restored`] checks what
//! a restore to a point in time kept of it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgPool;

/// Where the load goes: the live API base URLs (round-robin), changed as instances die.
pub type Bases = Arc<Mutex<Vec<String>>>;

/// One acknowledged command: its wallet, the cents it moved, and the answer's sequence
/// and available balance.
#[derive(Debug, Clone)]
pub struct Ack {
    pub wallet: String,
    pub cents: i64,
    pub sequence: u64,
    pub available: String,
    /// When it was first sent, and when it was acknowledged.
    pub sent: Instant,
    pub at: Instant,
}

/// When the load stops: at an instant, or when a flag is raised.
#[derive(Debug, Clone)]
pub enum Until {
    At(Instant),
    Raised(Arc<AtomicBool>),
}

impl Until {
    fn reached(&self) -> bool {
        match self {
            Until::At(t) => Instant::now() >= *t,
            Until::Raised(flag) => flag.load(Ordering::Relaxed),
        }
    }
}

impl From<Instant> for Until {
    fn from(t: Instant) -> Self {
        Until::At(t)
    }
}

/// What the load saw.
#[derive(Debug, Default)]
pub struct Seen {
    /// By transaction id.
    pub acknowledged: HashMap<String, Ack>,
    /// Attempts after the first of a command (after a 503 or a broken connection).
    pub retries: u64,
    /// Attempts answered `503 UNAVAILABLE`.
    pub refused_503: u64,
    /// Attempts that got no answer (connection refused, reset, timed out).
    pub no_answer: u64,
    /// When the last caller stopped.
    pub ended: Option<Instant>,
}

impl Seen {
    /// The longest time without any acknowledgement from `from` on (the outage a fault
    /// caused), and when it ended: the first command accepted after it.
    pub fn longest_silence_from(&self, from: Instant) -> (Duration, Instant) {
        let mut times: Vec<Instant> = self
            .acknowledged
            .values()
            .map(|a| a.at)
            .filter(|t| *t >= from)
            .collect();
        times.sort();
        let mut last = from;
        let mut longest = (Duration::ZERO, from);
        for t in times {
            if t.duration_since(last) > longest.0 {
                longest = (t.duration_since(last), t);
            }
            last = t;
        }
        longest
    }

    /// Per wallet, the first acknowledgement at or after `mark`.
    pub fn first_ack_per_wallet_after(&self, mark: Instant) -> HashMap<String, Instant> {
        let mut first: HashMap<String, Instant> = HashMap::new();
        for a in self.acknowledged.values().filter(|a| a.at >= mark) {
            let t = first.entry(a.wallet.clone()).or_insert(a.at);
            *t = (*t).min(a.at);
        }
        first
    }
}

/// Opens `count` EUR wallets through `base` and funds each with 1,000.00 (transaction id
/// `fund`), retrying as the load does.
pub async fn open_funded(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    player: &str,
    count: usize,
) -> Vec<String> {
    let mut wallets = Vec::new();
    for w in 0..count {
        let opened = send_until_acknowledged(
            http,
            &format!("{base}/v1/wallets"),
            token,
            &json!({"player_id": format!("{player}{w}"), "currency": "EUR"}),
            201,
        )
        .await;
        let id = opened["wallet_id"].as_str().unwrap().to_string();
        send_until_acknowledged(
            http,
            &format!("{base}/v1/wallets/{id}/deposits"),
            token,
            &json!({"transaction_id": "fund", "amount": "1000"}),
            200,
        )
        .await;
        wallets.push(id);
    }
    wallets
}

async fn send_until_acknowledged(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    body: &Value,
    status: u16,
) -> Value {
    for _ in 0..300 {
        match http.post(url).bearer_auth(token).json(body).send().await {
            Ok(r) if r.status() == status => return r.json().await.unwrap(),
            Ok(r) if r.status() == 503 => {}
            Ok(r) => panic!("{url}: {} {:?}", r.status(), r.text().await),
            Err(_) => {}
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{url} was never acknowledged");
}

/// Runs `clients` callers until `until`, each sending deposits and withdrawals of 1.00
/// (two deposits to one withdrawal) over `wallets`, round-robin over `bases`, every
/// command retried under its id until acknowledged (for at most `patience`).
pub async fn run_load(
    http: reqwest::Client,
    bases: Bases,
    token: &'static str,
    wallets: Vec<String>,
    clients: usize,
    until: impl Into<Until>,
    patience: Duration,
) -> Seen {
    let until = until.into();
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut tasks = tokio::task::JoinSet::new();
    for c in 0..clients {
        let (http, wallets, seen, bases, until) = (
            http.clone(),
            wallets.clone(),
            seen.clone(),
            bases.clone(),
            until.clone(),
        );
        tasks.spawn(async move {
            let mut n = 0u64;
            while !until.reached() {
                n += 1;
                let wallet = &wallets[(c * 7 + n as usize) % wallets.len()];
                let (kind, cents) = if n.is_multiple_of(3) {
                    ("withdrawals", -100)
                } else {
                    ("deposits", 100)
                };
                let tx = format!("c{c}-{n}");
                let body = json!({"transaction_id": tx, "amount": "1.00"});
                let first = Instant::now();
                let mut attempt = 0usize;
                loop {
                    let base = {
                        let bases = bases.lock().unwrap();
                        bases[(n as usize + attempt) % bases.len()].clone()
                    };
                    let answer = http
                        .post(format!("{base}/v1/wallets/{wallet}/{kind}"))
                        .bearer_auth(token)
                        .json(&body)
                        .send()
                        .await;
                    match answer {
                        Ok(r) if r.status() == 200 => {
                            let v: Value = r.json().await.unwrap();
                            let ack = Ack {
                                wallet: wallet.clone(),
                                cents,
                                sequence: v["sequence"].as_u64().unwrap(),
                                available: v["balance"]["available"].as_str().unwrap().into(),
                                sent: first,
                                at: Instant::now(),
                            };
                            seen.lock().unwrap().acknowledged.insert(tx.clone(), ack);
                            break;
                        }
                        Ok(r) if r.status() == 503 => seen.lock().unwrap().refused_503 += 1,
                        Ok(r) => panic!("{kind} {tx}: {} {:?}", r.status(), r.text().await),
                        Err(_) => seen.lock().unwrap().no_answer += 1,
                    }
                    seen.lock().unwrap().retries += 1;
                    attempt += 1;
                    assert!(
                        first.elapsed() < patience,
                        "{tx} not acknowledged within {patience:?}"
                    );
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a load client panicked");
    }
    let mut seen = Arc::try_unwrap(seen).unwrap().into_inner().unwrap();
    seen.ended = Some(Instant::now());
    seen
}

/// An event as the log holds it: its sequence and the available balance it recorded.
type Logged = (u64, Option<String>);

/// What [`check_log`] found: acknowledged commands missing from the log, and commands
/// the log holds more than once (both must be 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Checked {
    pub lost: usize,
    pub doubled: usize,
}

/// Asserts that every acknowledged command is in the log exactly once, with the sequence
/// and balance it was answered with, and that each wallet holds exactly its opening, its
/// funding and the acknowledged commands, with the balance they make (1,000.00 each to
/// start). Returns the counts it checked to be 0.
pub async fn check_log(pool: &PgPool, seen: &Seen, wallets: &[String]) -> Checked {
    let logged: Vec<(String, i64, Value)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, metadata FROM events WHERE metadata ? 'transaction_id'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut in_log: HashMap<(String, String), Vec<Logged>> = HashMap::new();
    for (wallet, sequence, metadata) in logged {
        let tx = metadata["transaction_id"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let available = metadata["available"].as_str().map(str::to_string);
        in_log
            .entry((wallet, tx))
            .or_default()
            .push((sequence as u64, available));
    }
    let lost = seen
        .acknowledged
        .iter()
        .filter(|(tx, a)| !in_log.contains_key(&(a.wallet.clone(), (*tx).clone())))
        .count();
    let doubled = in_log.values().filter(|rows| rows.len() > 1).count();
    assert_eq!(lost, 0, "acknowledged commands missing from the log");
    assert_eq!(doubled, 0, "commands in the log more than once");
    for (tx, a) in &seen.acknowledged {
        let rows = &in_log[&(a.wallet.clone(), tx.clone())];
        assert_eq!(rows[0].0, a.sequence, "{tx}: the sequence answered");
        assert_eq!(
            rows[0].1.as_deref(),
            Some(a.available.as_str()),
            "{tx}: the balance answered"
        );
    }
    for (wallet, (available, events)) in expected(seen, wallets) {
        let (count, available_in_log): (i64, Option<String>) = sqlx::query_as(
            "SELECT count(*), (array_agg(metadata->>'available' ORDER BY sequence DESC))[1]
               FROM events WHERE aggregate_id = $1",
        )
        .bind(&wallet)
        .fetch_one(pool)
        .await
        .unwrap();
        assert_eq!(
            count, events,
            "{wallet}: open, fund, and each acknowledged command once"
        );
        let logged: Decimal = available_in_log.expect("a balance").parse().unwrap();
        assert_eq!(
            logged, available,
            "{wallet}: the balance the acknowledged commands make"
        );
    }
    Checked { lost, doubled }
}

/// Per wallet, the balance the acknowledged commands make (1,000.00 to start) and the
/// number of events they leave (its opening and funding, and one each).
pub fn expected(seen: &Seen, wallets: &[String]) -> HashMap<String, (Decimal, i64)> {
    let mut cents: HashMap<&str, (i64, i64)> =
        wallets.iter().map(|w| (w.as_str(), (100_000, 2))).collect();
    for a in seen.acknowledged.values() {
        let e = cents
            .get_mut(a.wallet.as_str())
            .expect("a wallet of the load");
        e.0 += a.cents;
        e.1 += 1;
    }
    cents
        .into_iter()
        .map(|(w, (c, n))| (w.to_string(), (Decimal::new(c, 2), n)))
        .collect()
}

/// What a restore to a point in time T kept of a load, as [`check_restored`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Restored {
    /// Commands acknowledged before T: each in the log once with its answer.
    pub kept: usize,
    /// Commands first sent after T: none in the log.
    pub undone: usize,
    /// Commands in flight at T (sent before, acknowledged after), and how many of them the
    /// log holds: either is right.
    pub in_flight: usize,
    pub in_flight_kept: usize,
}

/// Asserts what a restore to T must leave of the load `seen` over `wallets`, with T
/// between the instants `before` and `after`: every command acknowledged before T is in
/// the log exactly once with the sequence and balance it was answered with; no command
/// first sent after T is; nothing is there twice, nothing the load did not send; and each
/// wallet's last balance is its funding plus the commands the log kept.
pub async fn check_restored(
    pool: &PgPool,
    seen: &Seen,
    wallets: &[String],
    before: Instant,
    after: Instant,
) -> Restored {
    let logged: Vec<(String, i64, Value)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, metadata FROM events
          WHERE aggregate_id = ANY($1) AND metadata ? 'transaction_id'",
    )
    .bind(wallets)
    .fetch_all(pool)
    .await
    .unwrap();
    let mut in_log: HashMap<String, Vec<(String, Logged)>> = HashMap::new();
    for (wallet, sequence, metadata) in logged {
        let tx = metadata["transaction_id"].as_str().unwrap_or_default();
        if tx == "fund" {
            continue;
        }
        let available = metadata["available"].as_str().map(str::to_string);
        in_log
            .entry(tx.to_string())
            .or_default()
            .push((wallet, (sequence as u64, available)));
    }
    let doubled: Vec<&String> = in_log
        .iter()
        .filter(|(_, rows)| rows.len() > 1)
        .map(|(tx, _)| tx)
        .collect();
    assert!(doubled.is_empty(), "in the log more than once: {doubled:?}");
    let unknown: Vec<&String> = in_log
        .keys()
        .filter(|tx| !seen.acknowledged.contains_key(*tx))
        .collect();
    assert!(unknown.is_empty(), "in the log but never sent: {unknown:?}");
    let mut found = Restored {
        kept: 0,
        undone: 0,
        in_flight: 0,
        in_flight_kept: 0,
    };
    let mut cents: HashMap<&str, i64> = wallets.iter().map(|w| (w.as_str(), 100_000)).collect();
    for (tx, a) in &seen.acknowledged {
        let row = in_log.get(tx).map(|rows| &rows[0]);
        if a.at < before {
            let (wallet, (sequence, available)) =
                row.unwrap_or_else(|| panic!("{tx}, acknowledged before T, is not in the log"));
            assert_eq!(wallet, &a.wallet, "{tx}: its wallet");
            assert_eq!(*sequence, a.sequence, "{tx}: the sequence answered");
            assert_eq!(
                available.as_deref(),
                Some(a.available.as_str()),
                "{tx}: the balance answered"
            );
            found.kept += 1;
        } else if a.sent > after {
            assert!(row.is_none(), "{tx}, first sent after T, is in the log");
            found.undone += 1;
        } else {
            found.in_flight += 1;
            found.in_flight_kept += usize::from(row.is_some());
        }
        if row.is_some() {
            *cents
                .get_mut(a.wallet.as_str())
                .expect("a wallet of the load") += a.cents;
        }
    }
    for (wallet, cents) in cents {
        let last: Option<String> = sqlx::query_scalar(
            "SELECT metadata->>'available' FROM events WHERE aggregate_id = $1
              ORDER BY sequence DESC LIMIT 1",
        )
        .bind(wallet)
        .fetch_one(pool)
        .await
        .unwrap();
        let last: Decimal = last.expect("a balance").parse().unwrap();
        assert_eq!(
            last,
            Decimal::new(cents, 2),
            "{wallet}: its funding and the commands the log kept"
        );
    }
    found
}
