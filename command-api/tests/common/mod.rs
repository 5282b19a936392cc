//! What the tests that run `betledger-api` as a process share: a database of their own on
//! the test PostgreSQL, and starting the binary and reading the address it prints.

// Each test binary includes this module and uses a part of it.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_betledger-api");

/// The test PostgreSQL (`DATABASE_URL`, set by scripts/test.sh).
pub fn server_url() -> String {
    std::env::var("DATABASE_URL")
        .expect("DATABASE_URL must name the test PostgreSQL; scripts/test.sh sets it")
}

/// Creates database `name` afresh; returns a pool on the server and the new database's URL.
pub async fn fresh_database(name: &str) -> (sqlx::PgPool, String) {
    let admin = sqlx::PgPool::connect(&server_url()).await.unwrap();
    drop_database(&admin, name).await;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap();
    let url = server_url();
    let (base, _) = url.rsplit_once('/').expect("a database URL ends in /name");
    (admin, format!("{base}/{name}"))
}

pub async fn drop_database(admin: &sqlx::PgPool, name: &str) {
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(admin)
        .await
        .unwrap();
}

/// A started binary that is killed when the test lets go of it, so that a failing
/// assertion does not leave a server running (and holding the test harness's output pipe).
pub struct Running(pub Child);

impl std::ops::Deref for Running {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Running {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Starts the binary on port 0 over `db_url` with one client `ops` holding `token`, plus
/// `env`; returns the process and the URL it prints.
pub fn start_api(db_url: &str, token: &str, env: &[(&str, &str)]) -> (Running, String) {
    let mut child = Command::new(BIN)
        .env("BETLEDGER_API_ADDR", "127.0.0.1:0")
        .env("BETLEDGER_DATABASE_URL", db_url)
        .env("BETLEDGER_API_TOKENS", format!("ops:{token}:read+write"))
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .spawn()
        .expect("the binary starts");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("the binary prints where it listens")
            .unwrap();
        if let Some(url) = line.strip_prefix("betledger-api listening on ") {
            break url.to_string();
        }
    };
    // Keep reading what it prints (its warnings), so that it never writes to a closed pipe.
    std::thread::spawn(move || for _ in lines {});
    (Running(child), addr)
}

/// (wallet, transaction id) -> (sequence, available) as answered or as logged.
pub type Answers = std::collections::HashMap<(String, String), (u64, String)>;

/// Reads a log of 1.00 deposits and checks it holds whole commands only: per wallet,
/// sequences without gaps from 1, each deposit's recorded balance one euro above the one
/// before, no transaction id twice. Returns what it records for each transaction id.
pub async fn logged_deposits(pool: &sqlx::PgPool) -> Answers {
    let rows: Vec<(String, i64, Option<String>, String)> = sqlx::query_as(
        "SELECT aggregate_id, sequence, metadata ->> 'transaction_id', metadata ->> 'available'
           FROM events ORDER BY aggregate_id, sequence",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    let mut logged = Answers::new();
    let mut previous: Option<(String, i64, rust_decimal::Decimal)> = None;
    for (wallet, sequence, tx, available) in rows {
        let available: rust_decimal::Decimal = available.parse().unwrap();
        match &previous {
            Some((w, s, a)) if *w == wallet => {
                assert_eq!(sequence, s + 1, "{wallet}: a gap after {s}");
                assert_eq!(
                    available,
                    a + rust_decimal::Decimal::ONE,
                    "{wallet}#{sequence}"
                );
            }
            _ => assert_eq!(sequence, 1, "{wallet} starts at 1"),
        }
        previous = Some((wallet.clone(), sequence, available));
        if let Some(tx) = tx {
            let first = logged.insert(
                (wallet.clone(), tx.clone()),
                (sequence as u64, format!("{available:.2}")),
            );
            assert!(first.is_none(), "{wallet}: {tx} twice in the log");
        }
    }
    logged
}

/// Opens `count` EUR wallets for players `{tag}-0`, `{tag}-1`... through the API at `addr`;
/// returns their ids.
pub async fn open_wallets(
    http: &reqwest::Client,
    addr: &str,
    token: &str,
    tag: &str,
    count: usize,
) -> Vec<String> {
    let mut wallets = Vec::with_capacity(count);
    for i in 0..count {
        let r: serde_json::Value = http
            .post(format!("{addr}/v1/wallets"))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(format!(
                r#"{{"player_id": "{tag}-{i}", "currency": "EUR"}}"#
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        wallets.push(r["wallet_id"].as_str().unwrap().to_string());
    }
    wallets
}
