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
// Unsafe only in `counting`: a global allocator must be an `unsafe impl`.
#![deny(unsafe_code)]

// The engine allocates many small, short-lived values per command; mimalloc's per-thread
// free lists cost far less than glibc malloc's arenas here (measured in write-bench).
// Wrapped to count live heap bytes for `--paths cache-memory`.
#[global_allocator]
static GLOBAL: counting::Counting = counting::Counting;

/// mimalloc, counting the bytes allocated and not yet freed (one relaxed atomic add per
/// call): what the cache holds, without the allocator's slack or pages it keeps.
#[allow(unsafe_code)]
mod counting {
    use std::alloc::{GlobalAlloc, Layout};
    use std::sync::atomic::{AtomicIsize, Ordering};

    static LIVE: AtomicIsize = AtomicIsize::new(0);

    /// Heap bytes allocated and not yet freed.
    pub fn live_bytes() -> isize {
        LIVE.load(Ordering::Relaxed)
    }

    pub struct Counting;

    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { mimalloc::MiMalloc.alloc(layout) };
            if !p.is_null() {
                LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            let p = unsafe { mimalloc::MiMalloc.alloc_zeroed(layout) };
            if !p.is_null() {
                LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            unsafe { mimalloc::MiMalloc.dealloc(ptr, layout) };
            LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            let p = unsafe { mimalloc::MiMalloc.realloc(ptr, layout, new_size) };
            if !p.is_null() {
                LIVE.fetch_add(
                    new_size as isize - layout.size() as isize,
                    Ordering::Relaxed,
                );
            }
            p
        }
    }
}

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::Utc;
use clap::Parser;
use cqrs_es::persist::PersistedEventStore;
use cqrs_es::{AggregateError, CqrsFramework};
use domain::{
    GameId, ReservationId, RoundId, TransactionId, Wallet, WalletCommand, WalletId, WalletServices,
};
use eventstore::{BatchConfig, BatchedWalletStore, CqrsWalletStore, ExecuteError, WalletStore};
use postgres_es::PostgresEventRepository;
use rust_decimal::Decimal;
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};

#[derive(Parser, Debug, Clone)]
#[command(
    name = "write-bench",
    about = "Write-path throughput and latency, and the PostgreSQL ceiling, in one run"
)]
struct Args {
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
    /// Owner tasks of the batched path.
    #[arg(long, default_value_t = BatchConfig::default().shards)]
    shards: usize,
    /// Commands per batch of the batched path, at most.
    #[arg(long, default_value_t = BatchConfig::default().batch_max)]
    batch_max: usize,
    /// Paths to measure, comma-separated: ceiling, cqrs, engine, http, batched,
    /// batched-http.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "ceiling,cqrs,engine,http,batched,batched-http"
    )]
    paths: Vec<String>,
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
#[derive(Debug, Default, Clone)]
struct Figures {
    ops: u64,
    refused: u64,
    failed: u64,
    retries: u64,
    seconds: f64,
    latencies_us: Vec<u32>,
}

impl Figures {
    fn per_s(&self) -> f64 {
        self.ops as f64 / self.seconds
    }

    fn pct_ms(&self, p: f64) -> f64 {
        if self.latencies_us.is_empty() {
            return f64::NAN;
        }
        let i = ((self.latencies_us.len() as f64 * p) as usize).min(self.latencies_us.len() - 1);
        f64::from(self.latencies_us[i]) / 1000.0
    }

    fn merge(&mut self, other: Figures) {
        self.ops += other.ops;
        self.refused += other.refused;
        self.failed += other.failed;
        self.retries += other.retries;
        self.latencies_us.extend(other.latencies_us);
    }

    fn report(&mut self, name: &str, unit: &str) -> serde_json::Value {
        self.latencies_us.sort_unstable();
        println!(
            "{name:>10}: {:>9.0} {unit}/s  p50 {:.2} ms  p99 {:.2} ms  p999 {:.2} ms  ({} refused by the rules, {} failed, {} conflict retries)",
            self.per_s(),
            self.pct_ms(0.50),
            self.pct_ms(0.99),
            self.pct_ms(0.999),
            self.refused,
            self.failed,
            self.retries
        );
        json!({"per_s": self.per_s(), "p50_ms": self.pct_ms(0.5), "p99_ms": self.pct_ms(0.99),
               "p999_ms": self.pct_ms(0.999), "ops": self.ops, "refused": self.refused,
               "failed": self.failed, "retries": self.retries})
    }
}

async fn run(args: Args) -> anyhow::Result<()> {
    let mut admin = PgConnection::connect(&args.database_url).await.context(
        "connecting to PostgreSQL (BETLEDGER_DATABASE_URL); `scripts/services.sh up` starts it",
    )?;
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
                path.replace('-', "_")
            )
        });
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let outcome = phase(&args, path, &with_database(&args.database_url, &name)).await;
        if keep.is_none() || outcome.is_err() {
            sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                .execute(&mut admin)
                .await?;
        } else {
            println!("write-bench: kept database {name}");
        }
        match outcome? {
            Phase::Commands(mut figures) => {
                results.insert(path.clone(), figures.report(path, "commands"));
            }
            Phase::Memory(per_wallet, cached) => {
                results.insert(
                    path.clone(),
                    json!({"bytes_per_cached_idle_wallet": per_wallet, "cached_wallets": cached}),
                );
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
               "synchronous_commit": sync}),
    );
    println!("{}", serde_json::Value::Object(results));
    Ok(())
}

fn with_database(url: &str, db: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap_or((url, ""));
    format!("{base}/{db}")
}

enum Phase {
    Commands(Figures),
    Ceiling(Figures, Figures),
    /// Bytes per cached idle wallet, wallets cached.
    Memory(f64, usize),
}

async fn phase(args: &Args, path: &str, url: &str) -> anyhow::Result<Phase> {
    let pool = eventstore::db::connect(url, args.connections).await?;
    eventstore::db::migrate(&pool).await?;
    if path == "ceiling" {
        return ceiling(args, &pool).await;
    }
    if path == "cache-memory" {
        return cache_memory(args, &pool).await;
    }
    print!("{path:>10}: writing {} funded wallets ... ", args.wallets);
    let started = Instant::now();
    let wallets = prewrite(&pool, args.wallets).await?;
    println!("{:.1} s", started.elapsed().as_secs_f64());
    let target: Arc<dyn Target> = match path {
        "cqrs" => Arc::new(Framework(CqrsFramework::new(
            PersistedEventStore::new_event_store(PostgresEventRepository::new(pool.clone())),
            vec![],
            WalletServices,
        ))),
        "engine" => Arc::new(Engine(Arc::new(CqrsWalletStore::new(pool.clone())))),
        "http" => Arc::new(Http::start(pool.clone(), args, false).await?),
        "batched" => Arc::new(Engine(Arc::new(BatchedWalletStore::new(
            pool.clone(),
            batch_config(args),
        )))),
        "batched-http" => Arc::new(Http::start(pool.clone(), args, true).await?),
        other => anyhow::bail!(
            "unknown path {other:?}: use ceiling, cqrs, engine, http, batched, batched-http, \
             cache-memory"
        ),
    };
    Ok(Phase::Commands(
        drive(args, target, Arc::new(wallets)).await,
    ))
}

/// The memory a cached idle wallet costs in the batched path: the mixed workload runs for
/// `--seconds` to give the wallets a history, then a fresh store (a restarted process)
/// loads every wallet into its cache with one deposit each, and the growth of the live
/// heap (bytes allocated and not freed) is divided by the wallets cached. The process's
/// resident memory is printed too; it moves less, as the allocator reuses what the first
/// store freed.
async fn cache_memory(args: &Args, pool: &PgPool) -> anyhow::Result<Phase> {
    print!("cache-memory: writing {} funded wallets ... ", args.wallets);
    let wallets = prewrite(pool, args.wallets).await?;
    println!("done");
    let store = Arc::new(BatchedWalletStore::new(pool.clone(), batch_config(args)));
    let history = drive(
        args,
        Arc::new(Engine(store.clone())),
        Arc::new(wallets.clone()),
    )
    .await;
    drop(store);
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(pool)
        .await?;
    let fresh = Arc::new(BatchedWalletStore::new(pool.clone(), batch_config(args)));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = rss_bytes()?;
    let live_before = counting::live_bytes();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in wallets.chunks(wallets.len().div_ceil(args.concurrency.max(1))) {
        let (store, chunk) = (fresh.clone(), chunk.to_vec());
        tasks.spawn(async move {
            for (n, wallet) in chunk.iter().enumerate() {
                let command = WalletCommand::Deposit {
                    transaction_id: TransactionId::new(format!("warm-{wallet}-{n}")).expect("id"),
                    amount: Decimal::new(1, 2),
                    currency: None,
                };
                let _ = store.execute(*wallet, command).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let after = rss_bytes()?;
    let cached = fresh.cached_wallets();
    let per_wallet = (counting::live_bytes() - live_before) as f64 / cached.max(1) as f64;
    println!(
        "cache-memory: {} commands of history ({} events in the log, {:.1} per wallet), then \
         {cached} wallets cached: {per_wallet:.0} bytes of live heap per cached idle wallet \
         (resident memory {:.1} MiB -> {:.1} MiB)",
        history.ops,
        events,
        events as f64 / wallets.len() as f64,
        before as f64 / 1048576.0,
        after as f64 / 1048576.0
    );
    Ok(Phase::Memory(per_wallet, cached))
}

/// The process's resident memory now (Linux `VmRSS`).
fn rss_bytes() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|n| n.parse().ok())
        .context("no VmRSS in /proc/self/status")?;
    Ok(kib * 1024)
}

fn batch_config(args: &Args) -> BatchConfig {
    BatchConfig {
        shards: args.shards,
        batch_max: args.batch_max,
        ..BatchConfig::default()
    }
}

// ---- the paths -------------------------------------------------------------------------

enum Outcome {
    Done,
    Refused,
    Failed,
}

#[async_trait::async_trait]
trait Target: Send + Sync {
    /// Runs one command; the second value counts retries after a lost race.
    async fn run(&self, wallet: WalletId, command: WalletCommand) -> (Outcome, u64);
}

struct Framework(CqrsFramework<Wallet, PersistedEventStore<PostgresEventRepository, Wallet>>);

#[async_trait::async_trait]
impl Target for Framework {
    async fn run(&self, wallet: WalletId, command: WalletCommand) -> (Outcome, u64) {
        let id = wallet.to_string();
        let mut metadata = HashMap::new();
        if let Some(tx) = command.transaction_id() {
            metadata.insert("transaction_id".to_string(), tx.to_string());
        }
        for retry in 0..32 {
            match self
                .0
                .execute_with_metadata(&id, command.clone(), metadata.clone())
                .await
            {
                Ok(()) => return (Outcome::Done, retry),
                Err(AggregateError::AggregateConflict) => continue,
                Err(AggregateError::UserError(_)) => return (Outcome::Refused, retry),
                Err(_) => return (Outcome::Failed, retry),
            }
        }
        (Outcome::Failed, 32)
    }
}

struct Engine(Arc<dyn WalletStore>);

#[async_trait::async_trait]
impl Target for Engine {
    async fn run(&self, wallet: WalletId, command: WalletCommand) -> (Outcome, u64) {
        match self.0.execute(wallet, command).await {
            Ok(_) => (Outcome::Done, 0),
            Err(ExecuteError::Refused { .. }) => (Outcome::Refused, 0),
            Err(_) => (Outcome::Failed, 0),
        }
    }
}

const BENCH_TOKEN: &str = "write-bench-token";

struct Http {
    base: String,
    client: reqwest::Client,
}

impl Http {
    async fn start(pool: PgPool, args: &Args, batched: bool) -> anyhow::Result<Self> {
        let connections = args.connections;
        use command_api::auth::{ApiClient, Scope};
        let config = command_api::Config {
            listen_addr: "127.0.0.1:0".parse()?,
            database_url: String::new(),
            db_connections_max: connections,
            clients: vec![ApiClient::new(
                "bench",
                BENCH_TOKEN,
                vec![Scope::Read, Scope::Write],
            )],
            log_json: false,
            redis_url: command_api::config::REDIS_URL_DEFAULT.into(),
            redis_prefix: format!("write-bench-{}", std::process::id()),
            providers: vec![],
            session_ttl_s: 60,
            rate_limit_per_s: 1_000_000,
            rate_limit_burst: 1_000_000,
            concurrency_max: 10_000,
            expiry_interval_ms: 0,
            write_path: command_api::config::WritePath::Cqrs,
        };
        let store: Arc<dyn WalletStore> = if batched {
            Arc::new(BatchedWalletStore::new(
                pool.clone(),
                BatchConfig::default(),
            ))
        } else {
            Arc::new(CqrsWalletStore::new(pool.clone()))
        };
        let app = command_api::Application::with_store(&config, pool, store).await?;
        let base = format!("http://{}", app.local_addr());
        tokio::spawn(app.run_until(std::future::pending()));
        Ok(Http {
            base,
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(1_024)
                .build()?,
        })
    }
}

#[async_trait::async_trait]
impl Target for Http {
    async fn run(&self, wallet: WalletId, command: WalletCommand) -> (Outcome, u64) {
        let (path, body) = match command {
            WalletCommand::Deposit {
                transaction_id,
                amount,
                ..
            } => (
                format!("/v1/wallets/{wallet}/deposits"),
                json!({"transaction_id": transaction_id, "amount": amount.to_string()}),
            ),
            WalletCommand::Withdraw {
                transaction_id,
                amount,
                ..
            } => (
                format!("/v1/wallets/{wallet}/withdrawals"),
                json!({"transaction_id": transaction_id, "amount": amount.to_string()}),
            ),
            WalletCommand::Reserve {
                reservation_id,
                amount,
                game_id,
                round_id,
                ..
            } => (
                format!("/v1/wallets/{wallet}/reservations"),
                json!({"transaction_id": reservation_id, "amount": amount.to_string(),
                       "game_id": game_id, "round_id": round_id}),
            ),
            WalletCommand::Settle {
                reservation_id,
                transaction_id,
                payout,
                ..
            } => (
                format!("/v1/wallets/{wallet}/reservations/{reservation_id}/settle"),
                json!({"transaction_id": transaction_id, "payout": payout.to_string()}),
            ),
            WalletCommand::Refund {
                reservation_id,
                transaction_id,
            } => (
                format!("/v1/wallets/{wallet}/reservations/{reservation_id}/refund"),
                json!({"transaction_id": transaction_id}),
            ),
            _ => return (Outcome::Failed, 0),
        };
        let sent = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(BENCH_TOKEN)
            .json(&body)
            .send()
            .await;
        match sent.map(|r| r.status().as_u16()) {
            Ok(200) => (Outcome::Done, 0),
            Ok(404 | 409 | 422) => (Outcome::Refused, 0),
            _ => (Outcome::Failed, 0),
        }
    }
}

// ---- the workload ----------------------------------------------------------------------

/// xorshift64*: reproducible, no dependency.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Wallet k with weight about 1/(k+1): log-uniform over 1..=n.
    fn zipf(&mut self, n: usize) -> usize {
        let x = ((n as f64 + 1.0).ln() * self.unit()).exp() as usize;
        x.saturating_sub(1).min(n - 1)
    }
}

/// A reservation the workload made and may settle or refund later.
type Opened = (WalletId, ReservationId, Decimal);

/// The mixed workload: reserve 45, settle 40, refund 5, deposit 5, withdraw 5 (in
/// percent), on Zipf-skewed wallets; settles and refunds pick one of its own open bets.
struct Workload {
    rng: Rng,
    open: Vec<Opened>,
    tag: String,
    n: u64,
}

impl Workload {
    fn new(seed: u64, tag: String) -> Self {
        Workload {
            rng: Rng(0x9E37_79B9_7F4A_7C15 ^ seed.wrapping_mul(0x1234_5678_9ABC_DEF1)),
            open: Vec::new(),
            tag,
            n: 0,
        }
    }

    /// The next command, and the bet it opens if it is a reserve.
    fn next(&mut self, wallets: &[WalletId]) -> (WalletId, WalletCommand, Option<Opened>) {
        self.n += 1;
        let n = self.n;
        let rng = &mut self.rng;
        let tx = TransactionId::new(format!("{}-{n}", self.tag)).expect("a short id");
        let roll = rng.below(100);
        if roll < 45 || self.open.is_empty() {
            let wallet = wallets[rng.zipf(wallets.len())];
            let rid = ReservationId::from(tx);
            let stake = Decimal::new(100 + rng.below(900) as i64, 2);
            let command = WalletCommand::Reserve {
                reservation_id: rid.clone(),
                amount: stake,
                currency: None,
                game_id: GameId::new(format!("g{}", rng.below(10))).expect("id"),
                round_id: RoundId::new(format!("r{n}")).expect("id"),
                timeout_s: 3_600,
                now: Utc::now(),
            };
            (wallet, command, Some((wallet, rid, stake)))
        } else if roll < 85 {
            let (wallet, rid, stake) = self
                .open
                .swap_remove(rng.below(self.open.len() as u64) as usize);
            let payout = stake * Decimal::from(rng.below(3));
            let command = WalletCommand::Settle {
                reservation_id: rid,
                transaction_id: tx,
                payout,
                currency: None,
            };
            (wallet, command, None)
        } else if roll < 90 {
            let (wallet, rid, _) = self
                .open
                .swap_remove(rng.below(self.open.len() as u64) as usize);
            let command = WalletCommand::Refund {
                reservation_id: rid,
                transaction_id: tx,
            };
            (wallet, command, None)
        } else {
            let wallet = wallets[rng.zipf(wallets.len())];
            let amount = Decimal::new(100 + rng.below(5_000) as i64, 2);
            let command = if roll < 95 {
                WalletCommand::Deposit {
                    transaction_id: tx,
                    amount,
                    currency: None,
                }
            } else {
                WalletCommand::Withdraw {
                    transaction_id: tx,
                    amount,
                    currency: None,
                }
            };
            (wallet, command, None)
        }
    }
}

/// Runs one command and records it in `figures`; latency counts from `since`.
async fn record(
    target: &dyn Target,
    wallet: WalletId,
    command: WalletCommand,
    since: Instant,
    figures: &mut Figures,
) -> bool {
    let (outcome, retries) = target.run(wallet, command).await;
    figures
        .latencies_us
        .push(since.elapsed().as_micros().min(u32::MAX as u128) as u32);
    figures.retries += retries;
    match outcome {
        Outcome::Done => {
            figures.ops += 1;
            true
        }
        Outcome::Refused => {
            figures.refused += 1;
            false
        }
        Outcome::Failed => {
            figures.failed += 1;
            false
        }
    }
}

/// Drives the workload for `--seconds`: at a fixed concurrency (each task sends its next
/// command when the last is answered), or with `--rate`, at a fixed rate.
async fn drive(args: &Args, target: Arc<dyn Target>, wallets: Arc<Vec<WalletId>>) -> Figures {
    if let Some(rate) = args.rate {
        return drive_rate(args, rate, target, wallets).await;
    }
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for task in 0..args.concurrency {
        let (target, wallets) = (target.clone(), wallets.clone());
        tasks.spawn(async move {
            let mut workload = Workload::new(task as u64 + 1, format!("t{task}"));
            let mut figures = Figures::default();
            while Instant::now() < deadline {
                let (wallet, command, opened) = workload.next(&wallets);
                let done = record(
                    target.as_ref(),
                    wallet,
                    command,
                    Instant::now(),
                    &mut figures,
                )
                .await;
                if let (true, Some(o)) = (done, opened) {
                    workload.open.push(o);
                }
            }
            figures
        });
    }
    let mut total = Figures::default();
    while let Some(done) = tasks.join_next().await {
        total.merge(done.expect("a workload task"));
    }
    total.seconds = started.elapsed().as_secs_f64();
    total
}

/// Open-loop load: command i is due at start + i/rate, whatever happened to the others,
/// and its latency counts from when it was due, so a stall shows in the percentiles
/// instead of slowing the load down (no coordinated omission). At most `--concurrency`
/// commands are in flight; one that waits for room is late, and its wait counts.
async fn drive_rate(
    args: &Args,
    rate: u32,
    target: Arc<dyn Target>,
    wallets: Arc<Vec<WalletId>>,
) -> Figures {
    let workload = Arc::new(std::sync::Mutex::new(Workload::new(7, "rate".into())));
    let figures = Arc::new(std::sync::Mutex::new(Figures::default()));
    let room = Arc::new(tokio::sync::Semaphore::new(args.concurrency.max(1)));
    let started = Instant::now();
    let total = u64::from(rate) * args.seconds;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..total {
        let due = started + Duration::from_secs_f64(i as f64 / f64::from(rate));
        tokio::time::sleep_until(due.into()).await;
        let permit = room.clone().acquire_owned().await.expect("never closed");
        let (target, wallets, workload, figures) = (
            target.clone(),
            wallets.clone(),
            workload.clone(),
            figures.clone(),
        );
        tasks.spawn(async move {
            let (wallet, command, opened) = workload.lock().expect("no panic").next(&wallets);
            let mut mine = Figures::default();
            let done = record(target.as_ref(), wallet, command, due, &mut mine).await;
            drop(permit);
            if let (true, Some(o)) = (done, opened) {
                workload.lock().expect("no panic").open.push(o);
            }
            figures.lock().expect("no panic").merge(mine);
        });
        while tasks.try_join_next().is_some() {}
    }
    while tasks.join_next().await.is_some() {}
    let mut total = std::mem::take(&mut *figures.lock().expect("no panic"));
    total.seconds = started.elapsed().as_secs_f64();
    total
}

/// Funded wallets straight in SQL: per wallet an open and a deposit of 1,000,000.00 with
/// the balance after each in the metadata, exactly as the write path records them.
async fn prewrite(pool: &PgPool, wallets: u32) -> anyhow::Result<Vec<WalletId>> {
    sqlx::query(
        "INSERT INTO events (aggregate_type, aggregate_id, sequence, event_type, event_version, payload, metadata)
         SELECT 'wallet', md5('bench' || w)::uuid::text, s,
                CASE WHEN s = 1 THEN 'WalletOpened' ELSE 'FundsDeposited' END, '1.0',
                CASE WHEN s = 1
                     THEN jsonb_build_object('WalletOpened', jsonb_build_object(
                            'wallet_id', md5('bench' || w)::uuid::text, 'player_id', 'bench-' || w, 'currency', 'EUR'))
                     ELSE jsonb_build_object('FundsDeposited', jsonb_build_object(
                            'transaction_id', 'fund', 'amount', '1000000.00')) END,
                CASE WHEN s = 1
                     THEN jsonb_build_object('command', 'open', 'request_sha256', 'bench',
                            'available', '0.00', 'reserved', '0.00', 'currency', 'EUR')
                     ELSE jsonb_build_object('command', 'deposit', 'transaction_id', 'fund',
                            'request_sha256', 'bench', 'available', '1000000.00',
                            'reserved', '0.00', 'currency', 'EUR') END
           FROM generate_series(1, $1::int) AS w, generate_series(1, 2) AS s",
    )
    .bind(wallets as i32)
    .execute(pool)
    .await
    .context("writing the funded wallets")?;
    sqlx::query("ANALYZE events").execute(pool).await?;
    let ids: Vec<String> = sqlx::query_scalar(
        "SELECT md5('bench' || w)::uuid::text FROM generate_series(1, $1::int) AS w",
    )
    .bind(wallets as i32)
    .fetch_all(pool)
    .await?;
    ids.iter()
        .map(|id| {
            id.parse()
                .map_err(|e| anyhow::anyhow!("wallet id {id}: {e}"))
        })
        .collect()
}

/// The same PostgreSQL with nothing but INSERTs into an events-shaped table.
async fn ceiling(args: &Args, pool: &PgPool) -> anyhow::Result<Phase> {
    sqlx::query(
        "CREATE TABLE ceiling_events (aggregate_type text NOT NULL, aggregate_id text NOT NULL,
           sequence bigint NOT NULL, event_type text NOT NULL, event_version text NOT NULL,
           payload jsonb NOT NULL, metadata jsonb NOT NULL,
           PRIMARY KEY (aggregate_type, aggregate_id, sequence))",
    )
    .execute(pool)
    .await?;
    let mut single = None;
    let mut batched = None;
    for rows in [1i64, 100] {
        let deadline = Instant::now() + Duration::from_secs(args.seconds);
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for task in 0..args.concurrency {
            let pool = pool.clone();
            tasks.spawn(async move {
                let mut figures = Figures::default();
                let mut seq = 0i64;
                while Instant::now() < deadline {
                    let t0 = Instant::now();
                    let done = sqlx::query(
                        "INSERT INTO ceiling_events
                         SELECT 'wallet', $1, s, 'FundsDeposited', '1.0',
                                '{\"FundsDeposited\": {\"transaction_id\": \"t\", \"amount\": \"1.00\"}}',
                                '{\"transaction_id\": \"t\", \"available\": \"1.00\", \"reserved\": \"0.00\", \"currency\": \"EUR\"}'
                           FROM generate_series($2::bigint, $3::bigint) AS s",
                    )
                    .bind(format!("{rows}-{task}"))
                    .bind(seq + 1)
                    .bind(seq + rows)
                    .execute(&pool)
                    .await;
                    seq += rows;
                    figures.latencies_us.push(t0.elapsed().as_micros().min(u32::MAX as u128) as u32);
                    match done {
                        Ok(_) => figures.ops += 1,
                        Err(_) => figures.failed += 1,
                    }
                }
                figures
            });
        }
        let mut total = Figures::default();
        while let Some(done) = tasks.join_next().await {
            total.merge(done.expect("an insert task"));
        }
        total.seconds = started.elapsed().as_secs_f64();
        if rows == 1 {
            single = Some(total);
        } else {
            batched = Some(total);
        }
    }
    Ok(Phase::Ceiling(
        single.expect("measured"),
        batched.expect("measured"),
    ))
}
