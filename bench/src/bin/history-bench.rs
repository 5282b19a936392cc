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
//! On the long wallet it also pages the history (`GET /v1/wallets/{id}/history`: the
//! newest page and one a thousand events from the oldest, through the library and over
//! HTTP from the `betledger-api` binary beside this one) and exports it whole as CSV (rows
//! per second, the API's peak memory); `--history-only` measures that alone.
//! It prints the figures, the long/small ratios, and one JSON line with all of them.
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo build --release --locked -p betledger-bench -p replay-tool -p command-api
//! target/release/history-bench --events 1000000
//! ```

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::{bail, Context};
use betledger_bench::{db, stats, tools};
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
    /// Measure the history endpoint alone (pages and the CSV export on the long wallet),
    /// without the replay tool and the `small` log.
    #[arg(long)]
    history_only: bool,
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
    let replay = if args.history_only {
        PathBuf::new()
    } else {
        tools::beside("betledger-replay", "replay-tool")?
    };
    let mut admin = db::admin(&args.database_url).await?;
    let mut report = serde_json::Map::new();
    let logs: &[(&str, u32)] = if args.history_only {
        &[("long", 1)]
    } else {
        &[("long", 1), ("small", args.small_wallets)]
    };
    for &(name, wallets) in logs {
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
    if args.history_only {
        println!("{}", Value::Object(report));
        return Ok(());
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
    if name == "long" {
        // The history of the long wallet: through the library, then the API binary.
        let history = read_history(&pool, url, ids[0], args.samples).await?;
        println!("{name}: history {history}");
        if args.history_only {
            return Ok(json!({"events": events, "history": history}));
        }
    }
    let prefix = format!("history-bench-{name}-{}", std::process::id());
    let run = |command: &[&str]| -> anyhow::Result<Value> {
        Ok(
            tools::replay(replay, command, url, &args.redis_url, &prefix)
                .with_context(|| format!("on {name}"))?
                .0,
        )
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
    tools::delete_redis_prefix(&args.redis_url, &prefix);
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

/// Pages of `wallet`'s history, `samples` times each: the newest page and one a thousand
/// events from the oldest, through `eventstore::history` (what the endpoint runs) and
/// over HTTP from the `betledger-api` binary beside this bench; then the whole history
/// exported as CSV from it: rows per second, and the API's resident memory before and
/// after (`VmHWM`, its peak).
async fn read_history(
    pool: &PgPool,
    url: &str,
    wallet: WalletId,
    samples: usize,
) -> anyhow::Result<Value> {
    use eventstore::history::{self, Cursor, Filter};
    let filter = Filter::default();
    let deep = Cursor::before(1_000);
    let mut library = serde_json::Map::new();
    for (label, cursor) in [("first_page", Cursor::START), ("deep_page", deep)] {
        let mut ms = Vec::with_capacity(samples);
        for _ in 0..samples {
            let started = Instant::now();
            let page = history::page(pool, wallet, &filter, cursor, history::LIMIT_DEFAULT).await?;
            ms.push(started.elapsed().as_secs_f64() * 1e3);
            if page.entries.len() != history::LIMIT_DEFAULT as usize {
                bail!("a {label} of {} entries", page.entries.len());
            }
        }
        ms.sort_by(f64::total_cmp);
        library.insert(
            label.into(),
            json!({"p50_ms": stats::percentile(&ms, 0.50), "p99_ms": stats::percentile(&ms, 0.99)}),
        );
    }
    let api_bin = tools::beside("betledger-api", "command-api")?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let token = "history-bench-reader-token";
    let mut api = Command::new(&api_bin)
        .env("BETLEDGER_DATABASE_URL", url)
        .env("BETLEDGER_API_ADDR", format!("127.0.0.1:{port}"))
        .env("BETLEDGER_API_TOKENS", format!("bench:{token}:read"))
        .env(
            "BETLEDGER_REDIS_PREFIX",
            format!("history-bench-{}", std::process::id()),
        )
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .spawn()
        .context("starting betledger-api")?;
    let outcome = async {
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let mut ready = false;
        for _ in 0..300 {
            if http.get(format!("{base}/ready")).send().await.is_ok_and(|r| r.status().is_success()) {
                ready = true;
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        if !ready {
            bail!("betledger-api did not become ready on port {port}");
        }
        let path = format!("{base}/v1/wallets/{wallet}/history");
        let mut http_pages = serde_json::Map::new();
        for (label, query) in [("first_page", String::new()), ("deep_page", format!("?cursor={}", deep.encode()))] {
            let mut ms = Vec::with_capacity(samples);
            for _ in 0..samples {
                let started = Instant::now();
                let r = http.get(format!("{path}{query}")).bearer_auth(token).send().await?;
                let status = r.status();
                let body = r.bytes().await?;
                ms.push(started.elapsed().as_secs_f64() * 1e3);
                if !status.is_success() {
                    bail!("GET history{query}: {status}: {}", String::from_utf8_lossy(&body));
                }
            }
            ms.sort_by(f64::total_cmp);
            http_pages.insert(
                label.into(),
                json!({"p50_ms": stats::percentile(&ms, 0.50), "p99_ms": stats::percentile(&ms, 0.99)}),
            );
        }
        let memory_kib = |field: &str| -> anyhow::Result<u64> {
            let status = std::fs::read_to_string(format!("/proc/{}/status", api.id()))?;
            status
                .lines()
                .find_map(|l| l.strip_prefix(field))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
                .with_context(|| format!("{field} of the API process"))
        };
        let peak_before = memory_kib("VmHWM:")?;
        let started = Instant::now();
        let mut response = http
            .get(&path)
            .bearer_auth(token)
            .header("accept", "text/csv")
            .send()
            .await?;
        if !response.status().is_success() {
            bail!("CSV export: {}", response.status());
        }
        let (mut lines, mut bytes) = (0u64, 0u64);
        let mut progress = Instant::now();
        while let Some(chunk) = response.chunk().await? {
            lines += chunk.iter().filter(|b| **b == b'\n').count() as u64;
            bytes += chunk.len() as u64;
            if progress.elapsed().as_secs() >= 5 {
                println!("history-bench: CSV export, {lines} lines so far");
                progress = Instant::now();
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        let rows = lines.saturating_sub(1);
        Ok(json!({
            "library": library,
            "http": http_pages,
            "csv": {
                "rows": rows,
                "bytes": bytes,
                "seconds": seconds,
                "rows_per_second": rows as f64 / seconds,
                "api_peak_kib_before": peak_before,
                "api_peak_kib_after": memory_kib("VmHWM:")?,
            },
        }))
    }
    .await;
    let _ = api.kill();
    let _ = api.wait();
    outcome
}
