//! `betledger-replay`: audit, rebuild, reconcile and verify from the log.
//!
//! Exit status: 0 when all is well; 1 when `reconcile` found a difference, `verify` or
//! `audit` a violation, or `rebuild` a violation after it switched readers; 2 when the work could
//! not be done (bad input, a service down).

// A replay decodes millions of events into small, short-lived values: under glibc malloc,
// its bookkeeping was about a sixth of `verify`'s CPU (perf, issue 34); mimalloc, as in
// the API and the projections.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand, ValueEnum};
use domain::WalletId;
use replay_tool::audit::{self, AuditFormat};
use replay_tool::progress::ProgressMode;
use replay_tool::rebuild::{self, RebuildConfig};
use replay_tool::reconcile::{self, ReconcileConfig};
use replay_tool::verify::{self, VerifyConfig};
use replay_tool::{chain, ReplayError};

#[derive(Parser, Debug)]
#[command(
    name = "betledger-replay",
    version,
    about = "Read BetLedger's log back: audit a wallet, rebuild the read models, reconcile them, verify the ledger"
)]
struct Cli {
    #[arg(
        long,
        global = true,
        env = "BETLEDGER_DATABASE_URL",
        default_value = "postgres://betledger@127.0.0.1:55432/betledger",
        hide_env_values = true
    )]
    database_url: String,
    #[arg(
        long,
        global = true,
        env = "BETLEDGER_REDIS_URL",
        default_value = "redis://127.0.0.1:56379",
        hide_env_values = true
    )]
    redis_url: String,
    /// The deployment's Redis key prefix (as the API and the projections use it).
    #[arg(
        long,
        global = true,
        env = "BETLEDGER_REDIS_PREFIX",
        default_value = "betledger"
    )]
    redis_prefix: String,
    /// Progress on stderr: a bar on a terminal and lines otherwise (auto), always lines, or
    /// none.
    #[arg(long, global = true, value_enum, default_value = "auto")]
    progress: ProgressArg,
    /// How the result is written on stdout: text for people, json for tools, csv (audit
    /// only). Default: text, but json for rebuild (its summary has always been JSON).
    #[arg(long, global = true, value_enum)]
    format: Option<OutputFormat>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum OutputFormat {
    /// Lines (and for audit, aligned columns) for people.
    #[value(alias = "table")]
    Text,
    /// One JSON document.
    Json,
    /// One row per event, with a header (audit only).
    Csv,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum ProgressArg {
    Auto,
    Lines,
    Quiet,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Every event of one wallet with the balance after each.
    Audit {
        wallet_id: String,
        /// Only events recorded at or before this moment (RFC 3339, e.g.
        /// 2026-11-24T10:00:00Z).
        #[arg(long)]
        as_of: Option<DateTime<Utc>>,
    },
    /// Fold the whole log into a new generation of read models and switch readers to it.
    /// Prints a JSON summary on stdout.
    Rebuild {
        /// Seconds the old generation stays readable after the switch before it is deleted.
        #[arg(long, default_value_t = 5)]
        grace_s: u64,
        /// Keep the old generation.
        #[arg(long)]
        keep_previous: bool,
        /// Rows per fetch from the log.
        #[arg(long, default_value_t = 5_000)]
        page_size: u32,
    },
    /// Compare every wallet's read model and latest snapshot with the log. Prints a summary
    /// and writes a JSON report; exits 1 on any difference.
    Reconcile {
        /// Rewrite wrong read models from the log and delete wrong snapshots.
        #[arg(long)]
        repair: bool,
        /// Where the JSON report goes.
        #[arg(long, default_value = "reconcile-report.json")]
        report: PathBuf,
        /// Milliseconds a differing wallet is given to catch up before it is checked again.
        #[arg(long, default_value_t = 1_000)]
        settle_ms: u64,
        /// Wallets compared per Redis pipeline.
        #[arg(long, default_value_t = 500)]
        batch: usize,
        /// Rows per fetch from the log.
        #[arg(long, default_value_t = 5_000)]
        page_size: u32,
    },
    /// Check the ledger's invariants over the whole log; exits 1 on any violation.
    Verify {
        /// Most violations listed (all are counted).
        #[arg(long, default_value_t = 1_000)]
        listed_max: usize,
        /// Rows per fetch from the log.
        #[arg(long, default_value_t = 5_000)]
        page_size: u32,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli).await {
        Ok(clean) if clean => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Runs the command; `Ok(false)` when it found something wrong.
async fn run(cli: Cli) -> Result<bool, ReplayError> {
    let progress = match cli.progress {
        ProgressArg::Auto => ProgressMode::Auto,
        ProgressArg::Lines => ProgressMode::Lines,
        ProgressArg::Quiet => ProgressMode::Quiet,
    };
    let pool = eventstore::db::connect(&cli.database_url, 4)
        .await
        .map_err(|e| {
            ReplayError::Invalid(format!(
                "cannot reach PostgreSQL at --database-url ({}); is it running \
                 (`scripts/services.sh up`)?",
                chain(&e)
            ))
        })?;
    let keys = readmodel::Keys::new(&cli.redis_prefix);
    let format = cli.format;
    if format == Some(OutputFormat::Csv) && !matches!(cli.command, Command::Audit { .. }) {
        return Err(ReplayError::Invalid(
            "--format csv fits audit only: use text or json".into(),
        ));
    }
    match cli.command {
        Command::Audit { wallet_id, as_of } => {
            let format = match format.unwrap_or(OutputFormat::Text) {
                OutputFormat::Text => AuditFormat::Table,
                OutputFormat::Json => AuditFormat::Json,
                OutputFormat::Csv => AuditFormat::Csv,
            };
            let id: WalletId = wallet_id.parse().map_err(|_| {
                ReplayError::Invalid(format!("wallet id {wallet_id:?} is not a UUID"))
            })?;
            let audit = audit::audit(&pool, id, as_of).await?;
            let mut out = std::io::stdout().lock();
            audit::render(&audit, format, &mut out).map_err(|source| ReplayError::Io {
                path: "stdout".into(),
                source,
            })?;
            Ok(audit.violations.is_empty())
        }
        Command::Rebuild {
            grace_s,
            keep_previous,
            page_size,
        } => {
            let redis = redis(&cli.redis_url).await?;
            let config = RebuildConfig {
                page_size,
                grace: Duration::from_secs(grace_s),
                keep_previous,
                progress,
                ..RebuildConfig::default()
            };
            let report = rebuild::rebuild(&pool, &redis, &keys, &config).await?;
            if format == Some(OutputFormat::Text) {
                println!(
                    "rebuild: generation {} (was {}): {} events, {} wallets, {} open \
                     reservations, {} leaderboards, {} totals rows, in {:.1} s ({:.0} events/s \
                     scanned)",
                    report.generation,
                    report.previous_generation,
                    report.events,
                    report.wallets,
                    report.open_reservations,
                    report.leaderboards,
                    report.totals_slots,
                    report.seconds,
                    report.scan_events_per_second
                );
                for v in &report.violations_after_switch {
                    println!("VIOLATION after the switch (left to the workers): {v}");
                }
            } else {
                println!(
                    "{}",
                    serde_json::to_string(&report).expect("a report serialises")
                );
            }
            Ok(report.violations_after_switch.is_empty())
        }
        Command::Reconcile {
            repair,
            report,
            settle_ms,
            batch,
            page_size,
        } => {
            let redis = redis(&cli.redis_url).await?;
            let config = ReconcileConfig {
                page_size,
                batch_wallets: batch,
                settle: Duration::from_millis(settle_ms),
                repair,
                report,
                progress,
            };
            let s = reconcile::reconcile(&pool, &redis, &keys, &config).await?;
            if format == Some(OutputFormat::Json) {
                println!(
                    "{}",
                    serde_json::to_string(&s).expect("a summary serialises")
                );
                return Ok(s.ok);
            }
            println!(
                "reconcile: generation {}, {} events, {} wallets in the log, {} read-model keys \
                 scanned, {} snapshots checked, in {:.1} s ({:.0} events/s)",
                s.generation,
                s.events,
                s.wallets_in_log,
                s.read_models_scanned,
                s.snapshots_checked,
                s.seconds,
                s.events_per_second
            );
            if s.ok {
                println!("reconcile: every read model and snapshot equals the log");
            } else {
                println!(
                    "reconcile: {} difference(s) in {} wallet(s): {}",
                    s.differences,
                    s.wallets_differing,
                    s.differences_by_field
                        .iter()
                        .map(|(f, n)| format!("{f} {n}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                if repair {
                    println!(
                        "reconcile: repaired {} wallet(s), deleted {} snapshot(s); run \
                         reconcile again to confirm",
                        s.wallets_repaired, s.snapshots_deleted
                    );
                } else {
                    println!("reconcile: run with --repair to rewrite them from the log");
                }
            }
            println!("reconcile: report written to {}", s.report);
            Ok(s.ok)
        }
        Command::Verify {
            listed_max,
            page_size,
        } => {
            let config = VerifyConfig {
                page_size,
                listed_max,
                progress,
            };
            let r = verify::verify(&pool, &config).await?;
            match format.unwrap_or(OutputFormat::Text) {
                OutputFormat::Json => {
                    println!(
                        "{}",
                        serde_json::to_string(&r).expect("a report serialises")
                    )
                }
                OutputFormat::Text | OutputFormat::Csv => {
                    for v in &r.listed {
                        println!("VIOLATION {v}");
                    }
                    for (currency, held, flowed) in &r.unconserved {
                        println!(
                            "VIOLATION {currency}: wallets hold {held} but {flowed} flowed in"
                        );
                    }
                    println!(
                        "verify: {} events in {} wallets, {} violation(s), {} event(s) not \
                         checked after one, in {:.1} s ({:.0} events/s)",
                        r.events,
                        r.wallets,
                        r.violations,
                        r.events_unchecked,
                        r.seconds,
                        r.events_per_second
                    );
                    for (currency, t) in &r.totals.by_currency {
                        println!(
                            "verify: {currency}: {} wallets hold {} available + {} reserved; \
                             deposits {} - withdrawals {} - settled stakes {} + payouts {}",
                            t.wallets,
                            t.available,
                            t.reserved,
                            t.flows.deposited,
                            t.flows.withdrawn,
                            t.flows.stakes_settled,
                            t.flows.payouts
                        );
                    }
                }
            }
            Ok(r.ok)
        }
    }
}

async fn redis(url: &str) -> Result<fred::prelude::Client, ReplayError> {
    let client = readmodel::connect(url).await?;
    readmodel::wait_connected(&client, Duration::from_secs(5))
        .await
        .map_err(|e| {
            ReplayError::Invalid(format!(
                "cannot reach Redis at --redis-url ({e}); is it running (`scripts/services.sh up`)?"
            ))
        })?;
    Ok(client)
}
