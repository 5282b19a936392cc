//! The `betledger-replay` binary as an operator or a cron job runs it: exit statuses,
//! JSON on stdout for tools, progress lines on stderr when not on a terminal, and clear
//! errors. Real PostgreSQL and Redis (`scripts/services.sh up`; `scripts/test.sh` sets the
//! URLs).

use std::process::Output;

use eventstore::CqrsWalletStore;
use rust_decimal::Decimal;
use serde_json::Value;
use sqlx::PgPool;

const MIGRATOR: &sqlx::migrate::Migrator = &eventstore_migrations::MIGRATOR;
const BIN: &str = env!("CARGO_BIN_EXE_betledger-replay");

/// The URL of the test's own database.
fn database_url(pool: &PgPool) -> String {
    let base = std::env::var("DATABASE_URL").expect("DATABASE_URL (run scripts/test.sh)");
    let name = pool.connect_options().get_database().unwrap().to_string();
    let (server, _) = base.rsplit_once('/').expect("a URL with a database name");
    format!("{server}/{name}")
}

fn redis_url() -> String {
    std::env::var("BETLEDGER_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:56379".into())
}

fn run(pool: &PgPool, prefix: &str, args: &[&str]) -> Output {
    std::process::Command::new(BIN)
        .args(args)
        .env("BETLEDGER_DATABASE_URL", database_url(pool))
        .env("BETLEDGER_REDIS_URL", redis_url())
        .env("BETLEDGER_REDIS_PREFIX", prefix)
        .output()
        .expect("betledger-replay runs")
}

fn json(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

#[sqlx::test(migrator = "MIGRATOR")]
async fn the_binary_answers_with_exit_statuses_json_and_progress(pool: PgPool) {
    let store = CqrsWalletStore::new(pool.clone());
    let wallet = workload::open_funded_with(&store, "cli", 1, Decimal::new(2_500, 2)).await[0];
    let prefix = format!("t-cli-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
    let report = std::env::temp_dir().join(format!("{prefix}.json"));
    let report = report.to_str().unwrap();

    let out = run(&pool, &prefix, &["verify", "--format", "json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(
        (v["ok"].as_bool(), v["events"].as_u64()),
        (Some(true), Some(2))
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify: 2/2 events (100%)"),
        "a plain progress line when stderr is not a terminal"
    );

    let out = run(
        &pool,
        &prefix,
        &["audit", &wallet.to_string(), "--format", "json"],
    );
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(json(&out)["balance"]["available"], "25.00");

    // No read models yet under this prefix: reconcile reports the wallet missing.
    let out = run(
        &pool,
        &prefix,
        &["reconcile", "--report", report, "--settle-ms", "10"],
    );
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let written: Value = serde_json::from_slice(&std::fs::read(report).unwrap()).unwrap();
    assert_eq!(written["differences"][0]["field"], "wallet");
    assert_eq!(written["summary"]["ok"], false);

    // rebuild reads the log below the cluster's horizon, as the relay does; another
    // test's transaction may hold it back for a moment.
    let started = std::time::Instant::now();
    while eventstore::log::held_back(&pool).await.unwrap() > 0 {
        assert!(
            started.elapsed().as_secs() < 60,
            "the log's horizon stayed held back"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let out = run(&pool, &prefix, &["rebuild", "--grace-s", "0"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let r = json(&out);
    assert_eq!(
        (r["generation"].as_u64(), r["events"].as_u64()),
        (Some(1), Some(2))
    );
    let out = run(&pool, &prefix, &["reconcile", "--report", report]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("equals the log"));

    // A hand-inserted overdraft: verify exits 1 and names the wallet and sequence.
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         VALUES ('wallet', $1, 3, 'FundsWithdrawn', '1.0',
                 '{\"FundsWithdrawn\": {\"transaction_id\": \"x\", \"amount\": \"30.00\"}}',
                 '{\"available\": \"-5.00\", \"reserved\": \"0.00\", \"currency\": \"EUR\"}')",
    )
    .bind(wallet.to_string())
    .execute(&pool)
    .await
    .unwrap();
    let out = run(&pool, &prefix, &["verify"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains(&format!("VIOLATION wallet {wallet} sequence 3"))
            && text.contains("NegativeBalance"),
        "{text}"
    );

    // Bad input and a service that is not there: exit 2 and say what to do.
    let out = run(&pool, &prefix, &["audit", "not-a-uuid"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a UUID"));
    let out = std::process::Command::new(BIN)
        .args(["rebuild"])
        .env("BETLEDGER_DATABASE_URL", database_url(&pool))
        .env("BETLEDGER_REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach Redis"));

    let redis = readmodel::connect(&redis_url()).await.unwrap();
    readmodel::wait_connected(&redis, std::time::Duration::from_secs(5))
        .await
        .unwrap();
    readmodel::query::delete_prefix(&redis, &prefix)
        .await
        .unwrap();
    let _ = std::fs::remove_file(report);
}

/// One `--format` for every subcommand: text for people, json for tools, csv where it
/// fits (audit); what does not fit is refused with exit status 2, doing nothing.
#[sqlx::test(migrator = "MIGRATOR")]
async fn every_subcommand_takes_one_format_option(pool: PgPool) {
    let prefix = format!("replay-format-{}", uuid::Uuid::new_v4().simple());
    let refused = run(&pool, &prefix, &["verify", "--format", "csv"]);
    assert_eq!(refused.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("csv fits audit only"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    let verify = run(&pool, &prefix, &["--format", "json", "verify"]);
    assert_eq!(verify.status.code(), Some(0));
    assert_eq!(json(&verify)["ok"], true);
    let rebuild = run(
        &pool,
        &prefix,
        &["rebuild", "--grace-s", "0", "--format", "text"],
    );
    assert_eq!(
        rebuild.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&rebuild.stderr)
    );
    assert!(String::from_utf8_lossy(&rebuild.stdout).starts_with("rebuild: generation"));
    let report = std::env::temp_dir().join(format!("{prefix}.json"));
    let reconcile = run(
        &pool,
        &prefix,
        &[
            "reconcile",
            "--format",
            "json",
            "--report",
            report.to_str().unwrap(),
        ],
    );
    assert_eq!(
        reconcile.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&reconcile.stderr)
    );
    assert_eq!(json(&reconcile)["ok"], true);
    let _ = std::fs::remove_file(report);
}
