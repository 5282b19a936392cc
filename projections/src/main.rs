//! `betledger-projections`: the relay and the projection workers, together or apart.
//!
//! ```text
//! betledger-projections all      # relay + workers for every partition (the default)
//! betledger-projections relay    # the relay only
//! betledger-projections worker --partitions 0,1
//! ```
//! Every option also reads an environment variable (see `--help`). Serves `/metrics` and
//! `/health` on `BETLEDGER_PROJECTIONS_ADDR`. Exits 0 on SIGTERM or Ctrl-C after the
//! message in hand is applied.
#![forbid(unsafe_code)]

use std::net::SocketAddr;
use std::sync::Arc;

// Each message decodes a batch of events into many small, short-lived values: under glibc
// malloc, its bookkeeping (_int_malloc, malloc_consolidate, unlink_chunk, _int_free) was
// about a fifth of this process's CPU in a deposit burst (perf, issue 34); mimalloc, as in
// the API.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use projections::{relay, shutdown, worker, RelayConfig, Topology, WorkerConfig, WorkerStats};

/// Unacked messages per partition: each a batch of up to a page (500 events), so 16 hold
/// up to 8,000 events per partition in a backlog. (256 was sized for one event a message.)
const PREFETCH: u16 = 16;

#[derive(Parser, Debug)]
#[command(
    name = "betledger-projections",
    version,
    about = "BetLedger's relay (log to RabbitMQ) and projection workers (RabbitMQ to Redis)"
)]
struct Cli {
    #[command(subcommand)]
    role: Option<Role>,
    #[command(flatten)]
    urls: projections::cli::ServiceUrls,
    /// Prefix of the exchange and queue names.
    #[arg(long, env = "BETLEDGER_AMQP_PREFIX", default_value = "betledger")]
    amqp_prefix: String,
    /// Prefix of the Redis read-model keys (the API must use the same).
    #[arg(long, env = "BETLEDGER_REDIS_PREFIX", default_value = "betledger")]
    redis_prefix: String,
    /// Under traffic, the least milliseconds between the relay's reads of the log (fuller
    /// pages, fewer messages; `relay::LINGER_DEFAULT`); 0 reads again at once.
    #[arg(long, env = "BETLEDGER_RELAY_LINGER_MS", default_value_t = relay::LINGER_DEFAULT.as_millis() as u64)]
    relay_linger_ms: u64,
    /// Number of partition queues; fixed for a deployment (changing it moves wallets).
    #[arg(long, env = "BETLEDGER_PARTITIONS", default_value_t = 4, value_parser = clap::value_parser!(u16).range(1..=256))]
    partition_count: u16,
    /// Where `/metrics` and `/health` are served.
    #[arg(
        long,
        env = "BETLEDGER_PROJECTIONS_ADDR",
        default_value = "127.0.0.1:9464"
    )]
    metrics_addr: SocketAddr,
    /// `text` or `json` logs.
    #[arg(long, env = "BETLEDGER_LOG_FORMAT", default_value = "text", value_parser = ["text", "json"])]
    log_format: String,
}

#[derive(Subcommand, Debug, Clone)]
enum Role {
    /// Relay and workers for every partition.
    All,
    /// Only the relay.
    Relay {
        /// The checkpoint's name.
        #[arg(long, env = "BETLEDGER_RELAY_NAME", default_value = "main")]
        name: String,
    },
    /// Only projection workers.
    Worker {
        /// Partitions to consume, e.g. `0,1` (default: all).
        #[arg(long, value_delimiter = ',')]
        partitions: Vec<u16>,
        /// Unacked messages per partition (batches of up to a relay page each).
        #[arg(long, env = "BETLEDGER_WORKER_PREFETCH", default_value_t = PREFETCH)]
        prefetch: u16,
    },
    /// After a point-in-time restore, with the relay and every worker stopped: empties the
    /// partition queues, whose messages may carry events the restore undid (their positions
    /// and sequences are given again to new events), then exits. Refuses while a worker
    /// consumes. Prints JSON. Then `betledger-replay rebuild` (docs/operate/backup.md).
    Purge,
}

#[tokio::main]
async fn main() {
    if let Err(error) = start().await {
        eprintln!("betledger-projections: error: {error:#}");
        std::process::exit(1);
    }
}

async fn start() -> anyhow::Result<()> {
    let cli = Cli::parse();
    init_tracing(cli.log_format == "json");
    let role = cli.role.clone().unwrap_or(Role::All);
    let topology = Topology::new(&cli.amqp_prefix, cli.partition_count);
    if let Role::Purge = role {
        return purge(&cli.urls.amqp_url, &topology).await;
    }
    let metrics = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .context("installing the metrics recorder")?;

    let pool = eventstore::db::connect(&cli.urls.database_url, 8)
        .await
        .context("connecting to PostgreSQL (BETLEDGER_DATABASE_URL)")?;
    eventstore::db::migrate(&pool)
        .await
        .context("migrating the event store")?;

    let (trigger, stop) = shutdown::channel();
    let mut tasks = tokio::task::JoinSet::new();
    let (run_relay, worker_partitions, prefetch) = match &role {
        Role::All => (
            Some("main".to_string()),
            (0..cli.partition_count).collect(),
            PREFETCH,
        ),
        Role::Relay { name } => (Some(name.clone()), Vec::new(), 0),
        Role::Purge => unreachable!("handled above"),
        Role::Worker {
            partitions,
            prefetch,
        } => {
            let parts: Vec<u16> = if partitions.is_empty() {
                (0..cli.partition_count).collect()
            } else {
                partitions.clone()
            };
            if let Some(p) = parts.iter().find(|p| **p >= cli.partition_count) {
                anyhow::bail!(
                    "--partitions: {p} is not below BETLEDGER_PARTITIONS={}",
                    cli.partition_count
                );
            }
            (None, parts, *prefetch)
        }
    };
    if let Some(name) = run_relay {
        let config = RelayConfig {
            name,
            amqp_url: cli.urls.amqp_url.clone(),
            topology: topology.clone(),
            page_size: 500,
            linger: std::time::Duration::from_millis(cli.relay_linger_ms),
            stats: Default::default(),
        };
        tasks.spawn(relay::run(pool.clone(), config, stop.clone()));
    }
    if !worker_partitions.is_empty() {
        let client = readmodel::connect(&cli.urls.redis_url)
            .await
            .context("configuring the Redis client (BETLEDGER_REDIS_URL)")?;
        let applier = readmodel::Applier::new(client, readmodel::Keys::new(&cli.redis_prefix));
        let config = WorkerConfig {
            name: format!("{}-{}", hostname(), std::process::id()),
            amqp_url: cli.urls.amqp_url.clone(),
            topology: topology.clone(),
            partitions: worker_partitions,
            prefetch,
            attempts_max: 5,
        };
        tasks.spawn(worker::run(
            pool.clone(),
            applier,
            config,
            Arc::new(WorkerStats::default()),
            stop.clone(),
        ));
    }

    // The gauges operators alert on, from whichever process runs the relay (one per
    // deployment), or a worker-only one.
    {
        let client = readmodel::connect(&cli.urls.redis_url)
            .await
            .context("configuring the Redis client (BETLEDGER_REDIS_URL)")?;
        let config = projections::watch::WatchConfig {
            interval: std::time::Duration::from_secs(15),
            amqp_url: cli.urls.amqp_url.clone(),
            topology: topology.clone(),
            relay_name: match &role {
                Role::Relay { name } => name.clone(),
                _ => "main".to_string(),
            },
            redis: client,
            keys: readmodel::Keys::new(&cli.redis_prefix),
        };
        tasks.spawn(projections::watch::run(pool.clone(), config, stop.clone()));
    }

    let listener = tokio::net::TcpListener::bind(cli.metrics_addr)
        .await
        .with_context(|| format!("binding BETLEDGER_PROJECTIONS_ADDR={}", cli.metrics_addr))?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            axum::routing::get(move || std::future::ready(metrics.render())),
        )
        .route("/health", axum::routing::get(|| std::future::ready("ok")));
    let mut http_stop = stop.clone();
    tasks.spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { http_stop.wait().await })
            .await;
    });
    tracing::info!(role = ?role, metrics = %cli.metrics_addr, "betledger-projections started");

    wait_for_signal().await;
    tracing::info!("stopping: finishing the messages in hand");
    trigger.fire();
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn purge(amqp_url: &str, topology: &Topology) -> anyhow::Result<()> {
    let connection = projections::amqp::connect(amqp_url, "betledger-purge")
        .await
        .context("connecting to RabbitMQ (BETLEDGER_AMQP_URL)")?;
    let channel = connection.open_channel(None).await?;
    topology.declare(&channel).await?;
    let purged = topology.purge(&channel).await?;
    let total: u64 = purged.iter().map(|(_, n)| u64::from(*n)).sum();
    let queues: serde_json::Map<String, serde_json::Value> = purged
        .into_iter()
        .map(|(q, n)| (q, serde_json::Value::from(n)))
        .collect();
    println!(
        "{}",
        serde_json::json!({"purged_messages": total, "queues": queues})
    );
    let _ = channel.close().await;
    let _ = connection.close().await;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".into())
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("installing a SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn init_tracing(json: bool) {
    use tracing_subscriber::EnvFilter;
    // amqprs logs every channel it opens at info; RUST_LOG=amqprs=info shows that again.
    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,amqprs=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
