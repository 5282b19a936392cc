//! `backup-bench`: what backups and restores of the event log cost, and what a restore
//! loses, on the drill's PostgreSQL of its own (`scripts/backup.sh --target drill`,
//! 127.0.0.1:55442), with pgBackRest as `scripts/backup.sh` configures it.
//!
//! 1. **Size and time**: a log of `--events` events written straight in SQL
//!    (`workload::prewrite_bet_wins`, over 980 wallets); a full backup; 2% more events (20
//!    more wallets' bet-wins) and an incremental one; the database destroyed and restored to a time T (`restore --to T --replace`);
//!    then what stands between the restore and a serving engine: `betledger-replay
//!    verify` and `rebuild` (the binaries beside this one), and `betledger-api` started
//!    until `/ready`. RTO = restore + rebuild + API start (verify, recommended first, apart).
//! 2. **RPO**, for each `--rpo-timeouts` archive_timeout: one commit every 50 ms (a quiet
//!    hour), the disk lost at a moment (the server killed, its folder deleted), a restore
//!    of everything archived (`--latest`); the loss is the time between the last commit
//!    acknowledged and the last one restored. `--rpo-trials` times each.
//!
//! Prints progress lines, then one JSON line with every figure.
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo build --release --locked -p betledger-bench -p replay-tool -p command-api
//! target/release/backup-bench --events 1000000
//! ```

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use betledger_bench::tools;
use clap::Parser;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use sqlx::PgPool;

#[derive(Parser, Debug)]
#[command(
    name = "backup-bench",
    about = "backup and restore time and size, RTO and RPO, on the drill's PostgreSQL"
)]
struct Args {
    /// Events in the log at the full backup (bet-wins over 980 wallets; 2% more after it).
    #[arg(long, default_value_t = 1_000_000)]
    events: u32,
    /// archive_timeout settings to measure the RPO with, e.g. `10s,60s`; empty skips it.
    #[arg(long, default_value = "10s,60s", value_delimiter = ',')]
    rpo_timeouts: Vec<String>,
    /// Disks lost per archive_timeout.
    #[arg(long, default_value_t = 2)]
    rpo_trials: u32,
    #[arg(
        long,
        env = "BETLEDGER_REDIS_URL",
        default_value = "redis://127.0.0.1:56379"
    )]
    redis_url: String,
}

const DEPOSIT: Decimal = Decimal::from_parts(100_000, 0, 0, false, 2);
const WALLETS: u32 = 1_000;

fn script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/backup.sh")
}

/// `scripts/backup.sh --target drill ARGS`, with `env`; its stdout.
fn backup(args: &[&str], env: &[(&str, &str)]) -> anyhow::Result<String> {
    let out = Command::new("bash")
        .arg(script())
        .args(["--target", "drill"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .with_context(|| format!("running backup.sh {args:?}"))?;
    if !out.status.success() {
        bail!(
            "backup.sh {args:?} exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn backup_json(args: &[&str]) -> anyhow::Result<Value> {
    let out = backup(args, &[])?;
    serde_json::from_str(out.trim()).with_context(|| format!("backup.sh {args:?} printed {out}"))
}

fn url() -> String {
    let port = std::env::var("BETLEDGER_DRILL_PG_PORT").unwrap_or_else(|_| "55442".into());
    format!("postgres://betledger@127.0.0.1:{port}/betledger")
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let replay = tools::beside("betledger-replay", "replay-tool")?;
    let api = tools::beside("betledger-api", "command-api")?;
    let mut report = serde_json::Map::new();
    report.insert(
        "size_and_time".into(),
        size_and_time(&args, &replay, &api).await?,
    );
    let mut rpo = serde_json::Map::new();
    for timeout in args.rpo_timeouts.iter().filter(|t| !t.is_empty()) {
        rpo.insert(
            timeout.clone(),
            measure_rpo(timeout, args.rpo_trials).await?,
        );
    }
    report.insert("rpo".into(), Value::Object(rpo));
    backup(&["stop"], &[])?;
    println!("{}", Value::Object(report));
    Ok(())
}

async fn size_and_time(args: &Args, replay: &Path, api: &Path) -> anyhow::Result<Value> {
    println!("backup-bench: a fresh drill cluster");
    backup(&["fresh"], &[])?;
    let pool = eventstore::db::connect(&url(), 4).await?;
    eventstore::db::migrate(&pool).await?;
    let started = Instant::now();
    // 98% of the wallets get their bet-wins before the full backup, the rest after it (the
    // incremental backup's 2%).
    let ids = workload::prewrite_funded(&pool, WALLETS, 1, DEPOSIT).await?;
    let (now, later) = ids.split_at(WALLETS as usize * 98 / 100);
    let per_wallet = args.events / now.len() as u32;
    workload::prewrite_bet_wins(&pool, now, 1, DEPOSIT, per_wallet).await?;
    let events = count(&pool).await?;
    println!(
        "backup-bench: {events} events written in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("backup-bench: full backup");
    let full = backup_json(&["full"])?;
    println!("backup-bench: {full}");
    workload::prewrite_bet_wins(&pool, later, 1, DEPOSIT, per_wallet).await?;
    let more = count(&pool).await? - events;
    println!("backup-bench: incremental backup after {more} more events");
    let incr = backup_json(&["incr"])?;
    println!("backup-bench: {incr}");
    // T, and a commit after it for the recovery to stop at, archived.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = chrono::Utc::now();
    tokio::time::sleep(Duration::from_millis(200)).await;
    sqlx::query("CREATE TABLE after_t (at timestamptz DEFAULT now())")
        .execute(&pool)
        .await?;
    backup(&["check"], &[])?;
    let events_at_t = count(&pool).await?;
    pool.close().await;
    backup(&["destroy"], &[])?;
    println!("backup-bench: restore to T");
    let target = t.format("%Y-%m-%d %H:%M:%S%.6f+00").to_string();
    let restored = backup_json(&["restore", "--to", &target, "--replace"])?;
    println!("backup-bench: {restored}");
    let pool = eventstore::db::connect(&url(), 4).await?;
    let restored_events = count(&pool).await?;
    if restored_events != events_at_t {
        bail!("the restore holds {restored_events} events, {events_at_t} were written before T");
    }
    pool.close().await;
    let prefix = format!("backup-bench-{}", std::process::id());
    let run = |command: &[&str]| tools::replay(replay, command, &url(), &args.redis_url, &prefix);
    println!("backup-bench: verify, rebuild, API start");
    let (verify, verify_s) = run(&["verify", "--format", "json"])?;
    let (_, rebuild_s) = run(&["rebuild", "--grace-s", "0"])?;
    let api_s = api_start(api, &prefix).await?;
    tools::delete_redis_prefix(&args.redis_url, &prefix);
    let restore_s = restored["seconds"].as_f64().unwrap_or(f64::NAN);
    Ok(json!({
        "events": events,
        "full": full,
        "incremental": {"events_added": more, "backup": incr},
        "restore": restored,
        "verify": {"seconds": verify_s, "ok": verify["ok"]},
        "rebuild_seconds": rebuild_s,
        "api_ready_seconds": api_s,
        "rto_seconds": restore_s + rebuild_s + api_s,
        "rto_with_verify_seconds": restore_s + verify_s + rebuild_s + api_s,
    }))
}

async fn count(pool: &PgPool) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?)
}

/// Starts `betledger-api` on the restored log and times it until `/ready`.
async fn api_start(api: &Path, prefix: &str) -> anyhow::Result<f64> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let started = Instant::now();
    let mut child = Command::new(api)
        .env("BETLEDGER_DATABASE_URL", url())
        .env("BETLEDGER_API_ADDR", format!("127.0.0.1:{port}"))
        .env("BETLEDGER_API_TOKENS", "bench:backup-bench-token:read")
        .env("BETLEDGER_REDIS_PREFIX", prefix)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting betledger-api")?;
    let http = reqwest::Client::new();
    let mut ready = None;
    for _ in 0..600 {
        if http
            .get(format!("http://127.0.0.1:{port}/ready"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = Some(started.elapsed().as_secs_f64());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    ready.context("betledger-api did not become ready within 12 s")
}

/// One commit every 50 ms; the disk lost after a while; everything archived restored;
/// the seconds of acknowledged commits lost, per trial.
async fn measure_rpo(timeout: &str, trials: u32) -> anyhow::Result<Value> {
    let mut losses = Vec::new();
    for trial in 0..trials {
        println!(
            "backup-bench: RPO with archive_timeout {timeout}, trial {}",
            trial + 1
        );
        backup(&["fresh"], &[("BETLEDGER_ARCHIVE_TIMEOUT", timeout)])?;
        backup(&["full"], &[])?;
        let pool = eventstore::db::connect(&url(), 2).await?;
        sqlx::query("CREATE TABLE probe (at timestamptz NOT NULL)")
            .execute(&pool)
            .await?;
        // Long enough for several switches; each trial stops at another phase.
        let seconds = parse_seconds(timeout)? * 2.5 + 3.7 * f64::from(trial + 1);
        let until = Instant::now() + Duration::from_secs_f64(seconds);
        let mut last_acked = None;
        while Instant::now() < until {
            let at: chrono::DateTime<chrono::Utc> =
                sqlx::query_scalar("INSERT INTO probe VALUES (clock_timestamp()) RETURNING at")
                    .fetch_one(&pool)
                    .await?;
            last_acked = Some(at);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        pool.close().await;
        backup(&["destroy"], &[])?;
        backup(&["restore", "--latest", "--replace"], &[])?;
        let pool = eventstore::db::connect(&url(), 2).await?;
        let last_restored: Option<chrono::DateTime<chrono::Utc>> =
            sqlx::query_scalar("SELECT max(at) FROM probe")
                .fetch_one(&pool)
                .await
                .unwrap_or(None);
        pool.close().await;
        let last_acked = last_acked.context("no commit")?;
        let lost = match last_restored {
            Some(r) => (last_acked - r).num_milliseconds() as f64 / 1e3,
            None => f64::NAN,
        };
        println!("backup-bench: lost the last {lost:.2} s of commits");
        losses.push(lost);
    }
    let max = losses.iter().copied().fold(f64::NAN, f64::max);
    Ok(json!({"lost_seconds": losses, "max_lost_seconds": max}))
}

fn parse_seconds(timeout: &str) -> anyhow::Result<f64> {
    let (n, unit) = timeout.split_at(timeout.trim_end_matches(char::is_alphabetic).len());
    let n: f64 = n
        .parse()
        .with_context(|| format!("archive_timeout {timeout}"))?;
    Ok(match unit {
        "" | "s" => n,
        "min" => n * 60.0,
        "ms" => n / 1e3,
        _ => bail!("archive_timeout {timeout}: use s, min or ms"),
    })
}
