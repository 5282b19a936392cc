//! `write-bench`: the write path's throughput and latency, every figure from one run.
//!
//! For each path it makes a fresh database, writes `--wallets` funded wallets straight in
//! SQL (an open and a deposit each, as the write path records them), then drives a mixed
//! workload for `--seconds` at `--concurrency`: reserve 45 %, settle 40 %, refund 5 %,
//! deposit 5 %, withdraw 5 %, on wallets picked with a Zipf-like skew (wallet k with
//! weight about 1/(k+1)), so some wallets are hot. It prints commands per second and
//! latency p50/p99/p999 for:
//!
//! - `cqrs`: the straightforward path, cqrs-es `CqrsFramework` over postgres-es (a lost
//!   race on the events key is retried, as a caller of it would have to);
//! - `engine`: the engine's write path (`eventstore::WalletStore`) in-process;
//! - `http`: the same through the real API (`betledger-api`'s `Application`, in-process,
//!   over loopback HTTP);
//! - `batched`, `batched-http`: the batched write path (`eventstore::BatchedWalletStore`:
//!   in-memory owners, group commit) in-process and through the API;
//! - `ceiling`: the same PostgreSQL with nothing but INSERTs into an events-shaped table,
//!   single-row transactions and 100-row transactions, at the same concurrency.
//!
//! Durable commits throughout (`synchronous_commit = on`, as `scripts/services.sh`
//! configures). Then the ratios, and one JSON line with every figure.
//!
//! ```text
//! eval "$(scripts/services.sh env)"
//! cargo build --release --locked --bin write-bench
//! target/release/write-bench --wallets 100000 --seconds 10 --concurrency 32
//! ```
//!
//! # Layout
//! - `alloc`: the counting global allocator (mimalloc underneath) and resident memory.
//! - `figures`: a phase's throughput and percentiles.
//! - `targets`: the write paths behind one `Target`.
//! - `drive`: the shared mixed workload against a target, closed or open loop.
//! - `ceiling`: raw INSERT transactions, the database's ceiling.
//! - `memory`: bytes per cached idle wallet.
// Unsafe only in `alloc`: a global allocator must be an `unsafe impl`.
#![deny(unsafe_code)]

mod alloc;
mod ceiling;
mod drive;
mod figures;
mod history;
mod memory;
mod targets;

// The engine allocates many small, short-lived values per command; mimalloc's per-thread
// free lists cost far less than glibc malloc's arenas here (measured in write-bench).
// Wrapped to count live heap bytes for `--paths cache-memory`.
#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use betledger_bench::db;
use clap::Parser;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::CqrsFramework;
use domain::{WalletId, WalletServices};
use eventstore::{BatchConfig, BatchedWalletStore, CqrsWalletStore};
use postgres_es::PostgresEventRepository;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::PgPool;

use crate::drive::drive;
use crate::figures::Figures;
use crate::targets::{Engine, Framework, Http, RoundRobin, Target};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "write-bench",
    about = "Write-path throughput and latency, and the PostgreSQL ceiling, in one run"
)]
pub(crate) struct Args {
    /// Funded wallets the workload picks from.
    #[arg(long, default_value_t = 100_000)]
    wallets: u32,
    /// Length of each measured phase.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Commands (or INSERT transactions) in flight at once; with `--rate`, at most.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Send commands at this fixed rate per second (open loop: latency counts from when a
    /// command was due) instead of at a fixed concurrency. Not for the ceiling.
    #[arg(long)]
    rate: Option<u32>,
    /// Owner tasks of the batched path (the API's default unless given).
    #[arg(long, default_value_t = command_api::config::WRITE_SHARDS_DEFAULT)]
    shards: usize,
    /// Commands per batch of the batched path, at most.
    #[arg(long, default_value_t = BatchConfig::default().batch_max)]
    batch_max: usize,
    /// Paths to measure, comma-separated: ceiling, cqrs, engine, http, batched,
    /// batched-http, cache-memory, long-history. A path may carry `+repeats` (a share of exact retries,
    /// `--repeat-share`) and `+instances` (`--instances` engines on one database, commands
    /// sent round-robin; the HTTP paths then form a cluster that passes each command to its
    /// wallet's owner), and with it `+routed` (each wallet's commands sent to one instance,
    /// as a load balancer routing by wallet would), e.g. `batched-http+instances`.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ceiling,cqrs,engine,http,batched,batched+repeats,batched+instances,batched-http"
    )]
    paths: Vec<String>,
    /// With `+repeats`: the share of accepted commands sent again at once, exactly (same
    /// transaction id, same content), as a provider retries a call whose answer it lost.
    #[arg(long, default_value_t = 0.01)]
    repeat_share: f64,
    /// With `long-history`: the events written to the long wallet.
    #[arg(long, default_value_t = 100_000)]
    history: u64,
    /// With `+instances`: how many engines (each its own pool, shards and cache) share
    /// the database and the wallets.
    #[arg(long, default_value_t = 2)]
    instances: usize,
    /// Connections in each path's pool.
    #[arg(long, default_value_t = 32)]
    connections: u32,
    /// Keep the last path's database under this name instead of dropping it: a real log
    /// for the replay tool to be measured on (`scripts/replay-bench.sh`).
    #[arg(long)]
    keep_database: Option<String>,
    #[arg(
        long,
        env = "BETLEDGER_DATABASE_URL",
        default_value = "postgres://betledger@127.0.0.1:55432/betledger",
        hide_env_values = true
    )]
    database_url: String,
}

#[tokio::main]
async fn main() {
    if let Err(e) = run(Args::parse()).await {
        eprintln!("write-bench: error: {e:#}");
        std::process::exit(1);
    }
}

/// What one path did in its measured phase.
async fn run(args: Args) -> anyhow::Result<()> {
    let mut admin = db::admin(&args.database_url).await?;
    let sync: String = sqlx::query_scalar("SHOW synchronous_commit")
        .fetch_one(&mut admin)
        .await?;
    println!(
        "write-bench: {} wallets, {} s per phase, concurrency {}, synchronous_commit = {sync}",
        args.wallets, args.seconds, args.concurrency
    );
    let mut results = serde_json::Map::new();
    for (n, path) in args.paths.iter().enumerate() {
        let keep = args
            .keep_database
            .clone()
            .filter(|_| n + 1 == args.paths.len());
        let name = keep.clone().unwrap_or_else(|| {
            format!(
                "write_bench_{}_{}",
                std::process::id(),
                path.replace(['-', '+'], "_")
            )
        });
        db::create(&mut admin, &name).await?;
        let outcome = phase(&args, path, &db::with_database(&args.database_url, &name)).await;
        if keep.is_none() || outcome.is_err() {
            db::drop(&mut admin, &name).await?;
        } else {
            println!("write-bench: kept database {name}");
        }
        match outcome? {
            Phase::Commands(mut figures) => {
                results.insert(path.clone(), figures.report(path, "commands"));
            }
            Phase::Report(value) => {
                results.insert(path.clone(), value);
            }
            Phase::Ceiling(mut single, mut batched) => {
                results.insert(
                    "ceiling_single_row".into(),
                    single.report("1-row tx", "transactions"),
                );
                let value = batched.report("100-row tx", "transactions");
                println!(
                    "{:>10}  = {:.0} rows/s in 100-row INSERT transactions",
                    "",
                    batched.per_s() * 100.0
                );
                results.insert("ceiling_100_row".into(), value);
            }
        }
    }
    let rate = |k: &str| results.get(k).and_then(|v| v["per_s"].as_f64());
    let mut ratios = serde_json::Map::new();
    for (a, b) in [
        ("engine", "cqrs"),
        ("engine", "ceiling_single_row"),
        ("http", "cqrs"),
        ("http", "ceiling_single_row"),
        ("batched", "cqrs"),
        ("batched", "ceiling_single_row"),
        ("batched", "engine"),
        ("batched-http", "cqrs"),
        ("batched+repeats", "batched"),
        ("batched+instances", "batched"),
        ("batched-http+repeats", "batched-http"),
        ("batched-http+instances", "batched-http"),
        ("batched-http+instances+routed", "batched-http"),
    ] {
        if let (Some(x), Some(y)) = (rate(a), rate(b)) {
            println!("ratio {a} / {b} = {:.2}", x / y);
            ratios.insert(format!("{a}/{b}"), json!(x / y));
        }
    }
    results.insert("ratios".into(), serde_json::Value::Object(ratios));
    results.insert(
        "settings".into(),
        json!({"wallets": args.wallets, "seconds": args.seconds, "concurrency": args.concurrency,
               "synchronous_commit": sync, "repeat_share": args.repeat_share,
               "instances": args.instances}),
    );
    println!("{}", serde_json::Value::Object(results));
    Ok(())
}

pub(crate) enum Phase {
    Commands(Figures),
    Ceiling(Figures, Figures),
    /// Figures already in their JSON form.
    Report(serde_json::Value),
}

async fn phase(args: &Args, path: &str, url: &str) -> anyhow::Result<Phase> {
    let pool = eventstore::db::connect(url, args.connections).await?;
    eventstore::db::migrate(&pool).await?;
    if path == "ceiling" {
        return ceiling::ceiling(args, &pool).await;
    }
    if path == "cache-memory" {
        return memory::cache_memory(args, &pool).await;
    }
    if path == "long-history" {
        return history::long_history(args, &pool).await;
    }
    print!("{path:>10}: writing {} funded wallets ... ", args.wallets);
    let started = Instant::now();
    let wallets = prewrite(&pool, args.wallets).await?;
    println!("{:.1} s", started.elapsed().as_secs_f64());
    let mut parts = path.split('+');
    let base = parts.next().unwrap_or_default();
    let (mut repeats, mut instances, mut routed) = (0.0, 1, false);
    for part in parts {
        match part {
            "repeats" => repeats = args.repeat_share,
            "instances" => instances = args.instances.max(1),
            "routed" => routed = true,
            other => {
                anyhow::bail!("unknown path option +{other}: use +repeats, +instances or +routed")
            }
        }
    }
    let mut engines: Vec<Arc<dyn Target>> = Vec::with_capacity(instances);
    for n in 0..instances {
        // Each instance its own pool, as separate processes would have.
        let pool = if n == 0 {
            pool.clone()
        } else {
            eventstore::db::connect(url, args.connections).await?
        };
        // Routed by the client (a load balancer by wallet), the instances need not
        // pass commands on; round-robin, they form a cluster.
        engines.push(target(args, base, pool, instances > 1 && !routed).await?);
    }
    let target: Arc<dyn Target> = if engines.len() == 1 {
        engines.pop().expect("one")
    } else {
        Arc::new(RoundRobin::new(engines, routed))
    };
    Ok(Phase::Commands(
        drive(args, target, Arc::new(wallets), repeats).await,
    ))
}

async fn target(
    args: &Args,
    path: &str,
    pool: PgPool,
    cluster: bool,
) -> anyhow::Result<Arc<dyn Target>> {
    Ok(match path {
        "cqrs" => Arc::new(Framework(CqrsFramework::new(
            PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone())),
            vec![],
            WalletServices,
        ))),
        "engine" => Arc::new(Engine(Arc::new(CqrsWalletStore::new(pool.clone())))),
        "http" => Arc::new(Http::start(pool.clone(), args, false, cluster).await?),
        "batched" => Arc::new(Engine(Arc::new(BatchedWalletStore::new(
            pool.clone(),
            batch_config(args),
        )))),
        "batched-http" => Arc::new(Http::start(pool.clone(), args, true, cluster).await?),
        other => anyhow::bail!(
            "unknown path {other:?}: use ceiling, cqrs, engine, http, batched, batched-http, \
             cache-memory"
        ),
    })
}

pub(crate) fn batch_config(args: &Args) -> BatchConfig {
    BatchConfig {
        shards: args.shards,
        batch_max: args.batch_max,
        ..BatchConfig::default()
    }
}

/// Funded wallets straight in SQL (`workload::prewrite_funded`): per wallet an open and a
/// deposit of 1,000,000.00.
pub(crate) async fn prewrite(pool: &PgPool, wallets: u32) -> anyhow::Result<Vec<WalletId>> {
    workload::prewrite_funded(pool, wallets, 1, Decimal::new(100_000_000, 2))
        .await
        .context("writing the funded wallets")
}
