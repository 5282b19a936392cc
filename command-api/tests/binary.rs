//! The `betledger-api` binary as an operator runs it: configuration from the environment,
//! migrations on start, the address it prints, a real request, a clean stop on SIGTERM,
//! and a clear refusal of bad configuration. Needs `DATABASE_URL` (scripts/test.sh sets
//! it); the test creates and drops a database of its own.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{drop_database, fresh_database, start_api, BIN};

#[tokio::test]
async fn the_binary_migrates_serves_and_stops_on_sigterm() {
    let name = format!("bin_{}", std::process::id());
    let (admin, db_url) = fresh_database(&name).await;
    let (mut child, addr) = start_api(&db_url, "binary-test-token", &[]);

    let http = reqwest::Client::new();
    let ready = http.get(format!("{addr}/ready")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "migrated and connected");
    let opened = http
        .post(format!("{addr}/v1/wallets"))
        .bearer_auth("binary-test-token")
        .header("content-type", "application/json")
        .body(r#"{"player_id": "bin", "currency": "SEK"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(opened.status(), 201);

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the binary did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "a clean stop exits 0: {status:?}");

    let db = sqlx::PgPool::connect(&db_url).await.unwrap();
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(events, 1);
    db.close().await;
    drop_database(&admin, &name).await;
}

#[test]
fn bad_configuration_is_refused_with_the_variable_named() {
    for (variable, value) in [
        ("BETLEDGER_DB_CONNECTIONS_MAX", "lots"),
        ("BETLEDGER_API_ADDR", "not-an-address"),
        ("BETLEDGER_API_TOKENS", "ops:short:read"),
        ("BETLEDGER_LOG_FORMAT", "xml"),
    ] {
        let output = Command::new(BIN).env(variable, value).output().unwrap();
        assert!(!output.status.success(), "{variable}={value} was accepted");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(variable), "{variable}: {stderr}");
    }
}

#[test]
fn an_unreachable_database_is_reported_with_what_to_do() {
    let output = Command::new(BIN)
        .env("BETLEDGER_API_ADDR", "127.0.0.1:0")
        .env(
            "BETLEDGER_DATABASE_URL",
            "postgres://nobody@127.0.0.1:1/none",
        )
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("BETLEDGER_DATABASE_URL"), "{stderr}");
    assert!(stderr.contains("scripts/services.sh up"), "{stderr}");
}
