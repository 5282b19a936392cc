//! `history-bench`: the replay tool and the round view on one very long wallet against a
//! log of the same size spread over many small wallets, every figure from one run.
//!
//! Two databases of its own, each written straight in SQL as the write paths record events
//! (`workload::prewrite_funded`, `workload::prewrite_bet_wins`):
//! - `long`: one wallet with `--events` bet-wins (each in a round of its own);
//! - `small`: `--small-wallets` wallets sharing the same number of bet-wins.
//!
//! On each it runs `betledger-replay verify`, `rebuild` and `reconcile` (the binaries
//! beside this one, each a process of its own) and reads their events per second; then
//! it reads one round's events (`eventstore::payload::round_events`, what the round view
//! reads) `--samples` times: the long wallet's oldest round against a small wallet's.
//! It prints the figures, the long/small ratios, and one JSON line with all of them.
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo build --release --locked -p betledger-bench -p replay-tool
//! target/release/history-bench --events 1000000
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use betledger_bench::{db, stats};
use clap::Parser;
use domain::{RoundId, WalletId};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgPool;

#[derive(Parser, Debug)]
#[command(
    name = "history-bench",
    about = "verify, rebuild, reconcile and the round view on one long wallet against many small ones"
)]
struct Args {
    /// Bet-wins in each log: all on one wallet in `long`, spread in `small`.
    #[arg(long, default_value_t = 1_000_000)]
    events: u32,
    /// Wallets sharing the bet-wins in `small`.
    #[arg(long, default_value_t = 10_000)]
    small_wallets: u32,
    /// Reads of one round per log.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Keep the two databases (printed) instead of dropping them, to look into a figure.
    #[arg(long)]
    keep_databases: bool,
    #[arg(
        long,
        env = "BETLEDGER_DATABASE_URL",
        default_value = "postgres://betledger@127.0.0.1:55432/betledger",
        hide_env_values = true
    )]
    database_url: String,
    #[arg(
        long,
        env = "BETLEDGER_REDIS_URL",
        default_value = "redis://127.0.0.1:56379"
    )]
    redis_url: String,
}

const DEPOSIT: Decimal = Decimal::from_parts(100_000, 0, 0, false, 2);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let replay = std::env::current_exe()?
        .parent()
        .context("the bench's folder")?
        .join("betledger-replay");
    if !replay.exists() {
        bail!(
            "{} not found: build it beside this bench (cargo build --release -p replay-tool)",
            replay.display()
        );
    }
    let mut admin = db::admin(&args.database_url).await?;
    let mut report = serde_json::Map::new();
    for (name, wallets) in [("long", 1), ("small", args.small_wallets)] {
        let database = format!("history_bench_{name}_{}", std::process::id());
        db::create(&mut admin, &database).await?;
        let url = db::with_database(&args.database_url, &database);
        let outcome = measure(&args, &replay, &url, name, wallets).await;
        if args.keep_databases && outcome.is_ok() {
            println!("history-bench: kept database {database}");
        } else {
            db::drop(&mut admin, &database).await?;
        }
        report.insert(name.into(), outcome?);
    }
    let ratio = |path: &[&str]| {
        let get = |log: &str| {
            path.iter()
                .fold(&report[log], |v, k| &v[*k])
                .as_f64()
                .unwrap_or(f64::NAN)
        };
        get("long") / get("small")
    };
    let ratios = json!({
        "verify_events_per_second_long/small": ratio(&["verify", "events_per_second"]),
        "rebuild_events_per_second_long/small": ratio(&["rebuild", "events_per_second"]),
        "reconcile_events_per_second_long/small": ratio(&["reconcile", "events_per_second"]),
        "round_view_p50_long/small": ratio(&["round_view", "p50_ms"]),
        "round_view_p99_long/small": ratio(&["round_view", "p99_ms"]),
    });
    println!("ratios (long / small): {ratios}");
    report.insert("ratios".into(), ratios);
    println!("{}", Value::Object(report));
    Ok(())
}

/// Writes one log, runs the replay tool on it and reads a round; returns the figures.
async fn measure(
    args: &Args,
    replay: &PathBuf,
    url: &str,
    name: &str,
    wallets: u32,
) -> anyhow::Result<Value> {
    let pool = eventstore::db::connect(url, 4).await?;
    eventstore::db::migrate(&pool).await?;
    let started = Instant::now();
    let ids = workload::prewrite_funded(&pool, wallets, 1, DEPOSIT).await?;
    workload::prewrite_bet_wins(&pool, &ids, 1, DEPOSIT, args.events / wallets).await?;
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    println!(
        "{name}: {events} events on {wallets} wallet(s) written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let prefix = format!("history-bench-{name}-{}", std::process::id());
    let run = |command: &[&str]| -> anyhow::Result<Value> {
        let output = Command::new(replay)
            .args(["--progress", "lines"])
            .args(command)
            .env("BETLEDGER_DATABASE_URL", url)
            .env("BETLEDGER_REDIS_URL", &args.redis_url)
            .env("BETLEDGER_REDIS_PREFIX", &prefix)
            .output()
            .with_context(|| format!("running betledger-replay {}", command[0]))?;
        if !output.status.success() {
            bail!(
                "betledger-replay {} on {name} exited {}: {}",
                command[0],
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(serde_json::from_slice(&output.stdout)?)
    };
    let verify = run(&["verify", "--format", "json"])?;
    let rebuild = run(&["rebuild", "--grace-s", "0"])?;
    let report_path = std::env::temp_dir().join(format!("{prefix}-reconcile.json"));
    let path = report_path.to_string_lossy().to_string();
    // Exits 1 on a difference; the report says which, and `ok` carries it.
    let _ = Command::new(replay)
        .args(["--progress", "lines", "reconcile", "--report", &path])
        .env("BETLEDGER_DATABASE_URL", url)
        .env("BETLEDGER_REDIS_URL", &args.redis_url)
        .env("BETLEDGER_REDIS_PREFIX", &prefix)
        .output()
        .context("running betledger-replay reconcile")?;
    let reconcile: Value = serde_json::from_slice(
        &std::fs::read(&report_path).context("reading the reconcile report")?,
    )?;
    std::fs::remove_file(&report_path).ok();
    let reconcile = reconcile["summary"].clone();
    // The oldest round of the first wallet: on the long log, a million events back.
    let round_view = read_rounds(&pool, ids[0], args.samples).await?;
    let figures = json!({
        "events": events,
        "wallets": wallets,
        "verify": {"events_per_second": verify["events_per_second"], "ok": verify["ok"]},
        "rebuild": {"events_per_second": rebuild["events_per_second"]},
        "reconcile": {"events_per_second": reconcile["events_per_second"], "ok": reconcile["ok"]},
        "round_view": round_view,
    });
    println!("{name}: {figures}");
    clean_redis(&args.redis_url, &prefix);
    Ok(figures)
}

/// Reads round `r-1` of `wallet` `samples` times; its p50 and p99 in milliseconds.
async fn read_rounds(pool: &PgPool, wallet: WalletId, samples: usize) -> anyhow::Result<Value> {
    let round = RoundId::new("r-1").expect("a valid id");
    let mut ms = Vec::with_capacity(samples);
    let mut found = 0;
    for _ in 0..samples {
        let started = Instant::now();
        found = eventstore::payload::round_events(pool, wallet, &round, 1_000)
            .await?
            .len();
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    if found == 0 {
        bail!("round r-1 of wallet {wallet} has no events");
    }
    ms.sort_by(f64::total_cmp);
    Ok(json!({
        "events": found,
        "p50_ms": stats::percentile(&ms, 0.50),
        "p99_ms": stats::percentile(&ms, 0.99),
    }))
}

/// Deletes the keys `rebuild` wrote under `prefix`.
fn clean_redis(url: &str, prefix: &str) {
    let script = format!(
        "redis-cli -u '{url}' --scan --pattern '{prefix}:*' | xargs -r -n 1000 redis-cli -u '{url}' unlink >/dev/null"
    );
    let _ = Command::new("sh").args(["-c", &script]).status();
}
