//! `read-side-bench`: measures the read side on the real services, in one run.
//!
//! 1. **Relay throughput**: writes a log of `--events` events straight into a fresh
//!    database (valid wallets: an open, then deposits), starts the relay and times it to
//!    the log's head (events per second, with publisher confirms and a checkpoint per
//!    page); then starts a worker and times it draining the queues into Redis.
//! 2. **Projection lag**: drives `--rate` commands per second through the write path
//!    (cqrs-es + postgres-es) for `--seconds`, and for each command measures the time
//!    from its commit (the receipt) until Redis shows its sequence: p50, p99, max.
//!
//! Uses its own database, exchange/queue names and key prefix, and removes them at the end.
//! Prints progress lines, then one JSON line with every figure (for tools).
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo run --release -p betledger-bench --bin read-side-bench -- --events 50000 --rate 200 --seconds 20
//! ```
#![forbid(unsafe_code)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use betledger_bench::db;
use betledger_bench::stats::percentile;
use chrono::Utc;
use clap::Parser;
use domain::{GameId, ReservationId, RoundId, TransactionId, WalletCommand, WalletId};
use eventstore::{CqrsWalletStore, WalletStore};
use projections::{relay, shutdown, worker, RelayConfig, Topology, WorkerConfig, WorkerStats};
use readmodel::{Applier, Keys};
use rust_decimal::Decimal;

#[derive(Parser, Debug)]
#[command(
    name = "read-side-bench",
    about = "Relay throughput and projection lag, measured in one run"
)]
struct Args {
    /// Events in the pre-written log for the throughput phase.
    #[arg(long, default_value_t = 50_000)]
    events: u32,
    /// Wallets the pre-written log spreads its events over.
    #[arg(long, default_value_t = 1_000)]
    wallets: u32,
    /// Commands per second in the lag phase.
    #[arg(long, default_value_t = 200)]
    rate: u32,
    /// Length of the lag phase.
    #[arg(long, default_value_t = 20)]
    seconds: u64,
    /// Partition queues.
    #[arg(long, default_value_t = 4)]
    partitions: u16,
    #[command(flatten)]
    urls: projections::cli::ServiceUrls,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("read-side-bench: error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let name = format!("bench_{}", std::process::id());
    let mut admin = db::admin(&args.urls.database_url).await?;
    db::create(&mut admin, &name).await?;
    let url = db::with_database(&args.urls.database_url, &name);
    let result = bench(&args, &name, &url).await;
    if let Err(e) = db::drop(&mut admin, &name).await {
        eprintln!("read-side-bench: could not drop database {name}: {e}");
    }
    result
}

async fn bench(args: &Args, name: &str, url: &str) -> anyhow::Result<()> {
    let pool = eventstore::db::connect(url, 16).await?;
    eventstore::db::migrate(&pool).await?;
    let redis = readmodel::connect(&args.urls.redis_url).await?;
    readmodel::wait_connected(&redis, Duration::from_secs(5))
        .await
        .context("connecting to Redis (BETLEDGER_REDIS_URL)")?;
    let keys = Keys::new(name);
    let applier = Applier::new(redis.clone(), keys.clone());
    let topology = Topology::new(name, args.partitions);
    let stats = Arc::new(WorkerStats::default());

    // ---- phase 1: relay throughput over a pre-written log --------------------------------
    println!(
        "writing a log of {} events over {} wallets",
        args.events, args.wallets
    );
    let per_wallet = (args.events / args.wallets.max(1)).max(1);
    workload::prewrite_funded(&pool, args.wallets, per_wallet - 1, Decimal::new(100, 2))
        .await
        .context("writing the bench log")?;
    let head: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&pool)
        .await?;
    let (relay_stop, relay_signal) = shutdown::channel();
    let relay_config = RelayConfig {
        name: name.to_string(),
        amqp_url: args.urls.amqp_url.clone(),
        topology: topology.clone(),
        page_size: 500,
        linger: relay::LINGER_DEFAULT,
        stats: Default::default(),
    };
    let started = Instant::now();
    let relay_task = tokio::spawn(relay::run(pool.clone(), relay_config, relay_signal));
    wait_progress("relay", started, head as u64, || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT coalesce(sum(events_relayed), 0)::bigint FROM relay_checkpoints",
        )
        .fetch_one(&pool)
        .await
        .map(|n| n as u64)
        .unwrap_or(0)
    })
    .await?;
    let relay_secs = started.elapsed().as_secs_f64();
    let relay_rate = head as f64 / relay_secs;
    println!("relay: {head} events in {relay_secs:.2} s = {relay_rate:.0} events/s (confirmed, checkpointed)");

    let (worker_stop, worker_signal) = shutdown::channel();
    let worker_config = WorkerConfig {
        name: name.to_string(),
        amqp_url: args.urls.amqp_url.clone(),
        topology: topology.clone(),
        partitions: (0..args.partitions).collect(),
        prefetch: 256,
        attempts_max: 5,
    };
    let started = Instant::now();
    let worker_task = tokio::spawn(worker::run(
        pool.clone(),
        applier.clone(),
        worker_config,
        stats.clone(),
        worker_signal,
    ));
    let s = stats.clone();
    wait_progress("workers", started, head as u64, || {
        let s = s.clone();
        async move {
            s.applied.load(std::sync::atomic::Ordering::Relaxed)
                + s.gap_filled.load(std::sync::atomic::Ordering::Relaxed)
        }
    })
    .await?;
    let drain_secs = started.elapsed().as_secs_f64();
    let drain_rate = head as f64 / drain_secs;
    println!("workers: {head} events into Redis in {drain_secs:.2} s = {drain_rate:.0} events/s ({} partitions)", args.partitions);

    // ---- phase 2: lag at a steady command rate --------------------------------------------
    println!(
        "lag: {} commands/s for {} s through the write path",
        args.rate, args.seconds
    );
    let store: Arc<dyn WalletStore> = Arc::new(CqrsWalletStore::new(pool.clone()));
    let wallets = workload::open_funded(store.as_ref(), "lag", 200).await;
    // Let the opens drain so they do not count in the lag figures.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let lags = steady_load(store, &applier, &wallets, args.rate, args.seconds).await?;
    let errors = lags.iter().filter(|l| l.is_none()).count();
    let mut lags: Vec<f64> = lags.into_iter().flatten().collect();
    lags.sort_by(f64::total_cmp);
    let pct = |p: f64| percentile(&lags, p).unwrap_or(f64::NAN);
    let (p50, p99, max) = (
        pct(0.50),
        pct(0.99),
        lags.last().copied().unwrap_or(f64::NAN),
    );
    println!(
        "lag (commit to visible in Redis) over {} commands: p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms{}",
        lags.len(),
        if errors > 0 { format!(" ({errors} not visible within 10 s)") } else { String::new() }
    );

    relay_stop.fire();
    worker_stop.fire();
    let _ = relay_task.await;
    let _ = worker_task.await;
    cleanup(&args.urls.amqp_url, &topology, &redis, name).await;
    println!(
        "{}",
        serde_json::json!({
            "relay_events": head, "relay_seconds": relay_secs, "relay_events_per_s": relay_rate,
            "worker_events_per_s": drain_rate, "partitions": args.partitions,
            "lag_commands": lags.len(), "lag_rate_per_s": args.rate, "lag_not_visible": errors,
            "lag_p50_ms": p50, "lag_p99_ms": p99, "lag_max_ms": max,
        })
    );
    Ok(())
}

/// Waits until `done()` reaches `target`, printing a progress line every second.
async fn wait_progress<F, Fut>(
    what: &str,
    started: Instant,
    target: u64,
    done: F,
) -> anyhow::Result<()>
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = u64>,
{
    let mut last_print = Instant::now();
    loop {
        let n = done().await;
        if n >= target {
            return Ok(());
        }
        if last_print.elapsed() >= Duration::from_secs(1) {
            let rate = n as f64 / started.elapsed().as_secs_f64();
            println!("  {what}: {n}/{target} ({rate:.0}/s)");
            last_print = Instant::now();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(600),
            "{what} did not finish within 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Issues `rate` commands a second for `seconds` (reserve, then settle of that bet), and
/// for each measures commit-to-visible in milliseconds (`None`: not visible within 10 s).
async fn steady_load(
    store: Arc<dyn WalletStore>,
    applier: &Applier,
    wallets: &[WalletId],
    rate: u32,
    seconds: u64,
) -> anyhow::Result<Vec<Option<f64>>> {
    let total = u64::from(rate) * seconds;
    let interval = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut probes = tokio::task::JoinSet::new();
    let started = Instant::now();
    for n in 0..total {
        ticker.tick().await;
        let wallet = wallets[(n as usize) % wallets.len()];
        let store = store.clone();
        let applier = applier.clone();
        probes.spawn(async move {
            let rid = format!("bet-{n}");
            let game = GameId::new(format!("g{}", n % 5)).ok()?;
            let reserve = WalletCommand::Reserve {
                reservation_id: ReservationId::new(rid.clone()).ok()?,
                amount: Decimal::new(100, 2),
                currency: None,
                game_id: game,
                round_id: RoundId::new(rid.clone()).ok()?,
                timeout_s: 3_600,
                now: Utc::now(),
            };
            let receipt = store.execute(wallet, reserve).await.ok()?;
            let committed = Instant::now();
            let deadline = committed + Duration::from_secs(10);
            while Instant::now() < deadline {
                if applier.last_sequence(wallet).await.ok()? >= receipt.sequence {
                    let lag = committed.elapsed().as_secs_f64() * 1000.0;
                    // Close the bet so wallets do not pile up open reservations.
                    let _ = store
                        .execute(
                            wallet,
                            WalletCommand::Settle {
                                reservation_id: ReservationId::new(rid.clone()).ok()?,
                                transaction_id: TransactionId::new(format!("win-{n}")).ok()?,
                                payout: Decimal::new(50 * (n % 3) as i64, 2),
                                currency: None,
                                now: chrono::Utc::now(),
                            },
                        )
                        .await;
                    return Some(lag);
                }
                tokio::time::sleep(Duration::from_micros(500)).await;
            }
            None
        });
        if n > 0 && n % u64::from(rate) == 0 {
            println!(
                "  lag phase: {n}/{total} commands ({:.0} s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let mut lags = Vec::with_capacity(total as usize);
    while let Some(r) = probes.join_next().await {
        lags.push(r.ok().flatten());
    }
    Ok(lags)
}

async fn cleanup(amqp_url: &str, topology: &Topology, redis: &fred::prelude::Client, prefix: &str) {
    if let Ok(connection) = projections::amqp::connect(amqp_url, "read-side-bench-cleanup").await {
        if let Ok(channel) = connection.open_channel(None).await {
            topology.delete(&channel).await;
        }
        let _ = connection.close().await;
    }
    let _ = readmodel::query::delete_prefix(redis, prefix).await;
}
