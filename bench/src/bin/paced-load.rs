//! `paced-load`: commands over HTTP at a fixed rate, as many clients together send them,
//! and their latency. `scripts/pipeline-bench.sh` runs it when `RATE` is set, in place of
//! wrk's closed loop.
//!
//! Open loop: command `i` is due at `start + i / rate` whatever the answers before it, and
//! its latency runs from that due time to its answer. A command sent late (every
//! connection busy, or the client's own thread behind) is late by that much in its figure,
//! so a stall of the engine shows in the percentiles instead of slowing the load down
//! (what a closed loop such as wrk's hides: "coordinated omission").
//!
//! The request bodies are those of pipeline-bench's wrk script: a deposit of 1.00, or a
//! native bet-win (stake 1.00, payout 0.00 or 2.00, one of 20 games) in a round of its own
//! that it closes. Wallets are drawn at random from `--wallets` (one id per line), and the
//! commands go round-robin over `--addr`.
//!
//! Prints a progress line every 5 s on stderr, then one JSON line:
//! ```text
//! {"rate_per_s": 5000, "seconds": 15.0, "traffic": "deposits", "sent": 75000,
//!  "sent_per_s": 4999.6, "elapsed_s": 15.03, "ok": 75000, "ok_per_s": 4990.0,
//!  "not_2xx": {}, "errors": 0, "late_sends": 0,
//!  "latency_ms": {"p50": 3.1, "p90": 5.0, "p99": 9.8, "p999": 21.4, "max": 40.2}}
//! ```
//! The latencies are those of the 2xx answers; `not_2xx` and `errors` count the rest.
//! `elapsed_s` runs from the first due time to the last answer: when the engine cannot
//! keep up, it is longer than `seconds` and `ok_per_s` below the rate.
#![forbid(unsafe_code)]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use betledger_bench::stats::percentile;
use clap::{Parser, ValueEnum};
use tokio::sync::{mpsc, Semaphore};
use tokio::time::Instant;

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Traffic {
    Deposits,
    BetWins,
}

#[derive(Parser, Debug)]
#[command(
    name = "paced-load",
    about = "Commands over HTTP at a fixed rate (open loop), with their latency"
)]
struct Args {
    /// The API's addresses (host:port), comma-separated; commands go round-robin.
    #[arg(long, value_delimiter = ',', required = true)]
    addr: Vec<String>,
    /// A bearer token with the write scope.
    #[arg(long)]
    token: String,
    /// A file of wallet ids, one per line.
    #[arg(long)]
    wallets: PathBuf,
    /// Commands per second.
    #[arg(long)]
    rate: u32,
    /// How long to send.
    #[arg(long, default_value_t = 15.0)]
    seconds: f64,
    #[arg(long, value_enum, default_value_t = Traffic::Deposits)]
    traffic: Traffic,
    /// Most commands waiting for their answer at once (open connections, at most).
    #[arg(long, default_value_t = 512)]
    in_flight_max: usize,
    /// Prefix of the transaction ids, unique per run.
    #[arg(long)]
    tag: String,
}

/// A command sent this long after its due time is counted late: the client itself fell
/// behind (every slot busy, or its thread starved). Under that, it is the timer's grain
/// (tokio's is 1 ms), which the latencies include.
const LATE: Duration = Duration::from_millis(5);

/// What became of one command: its latency from its due time, and its status (`None`:
/// no answer, a connection error).
struct Outcome {
    latency: Duration,
    status: Option<u16>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    anyhow::ensure!(args.rate > 0, "--rate must be above 0");
    anyhow::ensure!(args.seconds > 0.0, "--seconds must be above 0");
    let wallets: Vec<String> = std::fs::read_to_string(&args.wallets)
        .with_context(|| format!("reading the wallets file {}", args.wallets.display()))?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect();
    anyhow::ensure!(
        !wallets.is_empty(),
        "{} names no wallet",
        args.wallets.display()
    );
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.in_flight_max)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()?;
    let auth = format!("Bearer {}", args.token);

    // Connections opened before the clock starts, so the first second's figures are not
    // those of TCP handshakes.
    let warm = args.in_flight_max.min(256);
    let mut opening = tokio::task::JoinSet::new();
    for i in 0..warm {
        let url = format!("http://{}/ready", args.addr[i % args.addr.len()]);
        let client = client.clone();
        opening.spawn(async move { client.get(url).send().await.map(|r| r.status()) });
    }
    while let Some(r) = opening.join_next().await {
        let status = r?.context("the API did not answer /ready")?;
        anyhow::ensure!(status.is_success(), "the API's /ready answered {status}");
    }

    let total = (f64::from(args.rate) * args.seconds).round() as u64;
    let slots = Arc::new(Semaphore::new(args.in_flight_max));
    let (done, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
    let start = Instant::now() + Duration::from_millis(20);
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ u64::from(std::process::id()));
    let mut late_sends = 0u64;
    let mut next_report = start + Duration::from_secs(5);
    for i in 0..total {
        let due = start + Duration::from_secs_f64(i as f64 / f64::from(args.rate));
        tokio::time::sleep_until(due).await;
        let slot = slots.clone().acquire_owned().await?;
        if due.elapsed() > LATE {
            late_sends += 1;
        }
        let wallet = &wallets[rng.below(wallets.len())];
        let id = format!("{}-{i}", args.tag);
        let (path, body) = match args.traffic {
            Traffic::Deposits => (
                "deposits",
                format!(r#"{{"transaction_id":"{id}","amount":"1.00"}}"#),
            ),
            Traffic::BetWins => {
                let payout = if rng.below(100) < 45 { "2.00" } else { "0.00" };
                let game = 1 + rng.below(20);
                (
                    "bet-wins",
                    format!(
                        r#"{{"transaction_id":"{id}","game_id":"game-{game}","round_id":"{id}","amount":"1.00","payout":"{payout}","round_closed":true}}"#
                    ),
                )
            }
        };
        let url = format!(
            "http://{}/v1/wallets/{wallet}/{path}",
            args.addr[(i as usize) % args.addr.len()]
        );
        let request = client
            .post(url)
            .header("Authorization", &auth)
            .header("Content-Type", "application/json")
            .body(body);
        let done = done.clone();
        tokio::spawn(async move {
            let status = match request.send().await {
                Ok(r) => {
                    let status = r.status().as_u16();
                    // The whole answer, as a client reads it.
                    r.bytes().await.ok().map(|_| status)
                }
                Err(_) => None,
            };
            drop(slot);
            let _ = done.send(Outcome {
                latency: due.elapsed(),
                status,
            });
        });
        if Instant::now() >= next_report {
            eprintln!(
                "paced-load: {}/{total} sent, {:.0}/s, {late_sends} late",
                i + 1,
                (i + 1) as f64 / start.elapsed().as_secs_f64()
            );
            next_report += Duration::from_secs(5);
        }
    }
    let sent_s = start.elapsed().as_secs_f64();
    drop(done);
    // The latencies of the 2xx answers only: a refusal answered at once would make the
    // engine look faster than it serves.
    let mut latencies = Vec::with_capacity(total as usize);
    let (mut ok, mut errors) = (0u64, 0u64);
    let mut not_2xx: BTreeMap<u16, u64> = BTreeMap::new();
    while let Some(o) = outcomes.recv().await {
        match o.status {
            Some(s) if (200..300).contains(&s) => {
                ok += 1;
                latencies.push(o.latency);
            }
            Some(s) => *not_2xx.entry(s).or_default() += 1,
            None => errors += 1,
        }
    }
    // From the first due time to the last answer: what the engine took to serve them all
    // (longer than --seconds when it could not keep up).
    let elapsed_s = start.elapsed().as_secs_f64();
    latencies.sort_unstable();
    let ms = |p: f64| percentile(&latencies, p).map(|d| (d.as_secs_f64() * 1e4).round() / 10.0);
    println!(
        "{}",
        serde_json::json!({
            "rate_per_s": args.rate,
            "seconds": args.seconds,
            "traffic": args.traffic.to_possible_value().map(|v| v.get_name().to_string()),
            "sent": total,
            "sent_per_s": (total as f64 / sent_s * 10.0).round() / 10.0,
            "elapsed_s": (elapsed_s * 1000.0).round() / 1000.0,
            "ok": ok,
            "ok_per_s": (ok as f64 / elapsed_s * 10.0).round() / 10.0,
            "not_2xx": not_2xx,
            "errors": errors,
            "late_sends": late_sends,
            "latency_ms": {
                "p50": ms(0.5), "p90": ms(0.9), "p99": ms(0.99), "p999": ms(0.999), "max": ms(1.0),
            },
        })
    );
    Ok(())
}

/// xorshift64*: enough to spread commands over wallets, with no crate for it.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_F491_4F6C_DD1D) % n as u64) as usize
    }
}
