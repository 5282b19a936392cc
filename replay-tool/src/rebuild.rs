//! `rebuild`: fresh read models folded from the whole log, switched in at once.
//!
//! 1. A new generation number is taken (`{P}:generation-next`) and any leftover of a
//!    crashed rebuild under it is deleted.
//! 2. The log is streamed in its order through a server-side cursor, up to the oldest
//!    transaction running at the start, and folded wallet by wallet with the checked fold
//!    (the domain's own `Wallet::apply`), keeping only each wallet's open reservations so
//!    that memory grows with wallets, not history. A log that breaks an invariant stops
//!    the rebuild before anything is switched: run `verify` for the list.
//! 3. Balances, open reservations, leaderboards and the freshness mark are written into
//!    the new generation with pipelining; readers still read the old one.
//! 4. Events committed since the scan began are applied to the new generation with the
//!    projection workers' own apply (sequence-fenced) until it has caught up.
//! 5. The pointer is moved (only if no other rebuild moved it meanwhile): from this
//!    instant readers read, and workers write, the new generation.
//! 6. The events that workers applied to the old generation between step 4 and the
//!    switch are applied to the new one; the sequence fence makes it safe to race the
//!    workers. After that every event committed before the switch is in it, and the
//!    workers keep it current.
//! 7. During a grace period, a wallet read answers from whichever generation is further
//!    along (so no reader sees a wallet step back while step 6 runs), and readers that
//!    resolved the old generation just before the switch finish their reads. Then the old
//!    generation is deleted.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use eventstore::log::{self, LogCursor};
use eventstore::scan::{LogScan, ScanOrder};
use fred::prelude::*;
use fred::types::scripts::Script;
use readmodel::{Applier, Keys, Period};
use serde::Serialize;
use sqlx::PgPool;

use crate::fold::WalletFold;
use crate::progress::{peak_rss_bytes, Progress, ProgressMode};
use crate::ReplayError;

/// Options of a rebuild.
#[derive(Debug, Clone)]
pub struct RebuildConfig {
    /// Rows per fetch from the server-side cursor.
    pub page_size: u32,
    /// Wallets per Redis pipeline.
    pub pipeline_wallets: usize,
    /// How long the old generation stays readable after the switch.
    pub grace: Duration,
    /// Keep the old generation instead of deleting it after the grace period.
    pub keep_previous: bool,
    /// Longest wait for the log to let the catch-up past a transaction still running.
    pub catch_up_timeout: Duration,
    pub progress: ProgressMode,
}

impl Default for RebuildConfig {
    fn default() -> Self {
        RebuildConfig {
            page_size: 5_000,
            pipeline_wallets: 500,
            grace: Duration::from_secs(5),
            keep_previous: false,
            catch_up_timeout: Duration::from_secs(60),
            progress: ProgressMode::Auto,
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub generation: u64,
    pub previous_generation: u64,
    /// Events folded from the scan.
    pub events: u64,
    pub wallets: u64,
    pub open_reservations: u64,
    pub leaderboards: u64,
    /// Events applied after the scan, before and after the switch.
    pub caught_up_before_switch: u64,
    pub caught_up_after_switch: u64,
    pub previous_deleted_keys: Option<usize>,
    pub scan_seconds: f64,
    pub write_seconds: f64,
    pub seconds: f64,
    /// Events folded per second of the scan.
    pub scan_events_per_second: f64,
    /// Events per second of the whole rebuild, from start to switch.
    pub events_per_second: f64,
    pub peak_rss_bytes: Option<u64>,
}

// KEYS[1] the generation pointer, KEYS[2] the previous one's. ARGV[1] the generation
// expected in use, [2] the new one. Moves the pointer only if nobody else moved it since
// the rebuild began, and names the replaced generation for the grace period.
const SWITCH_LUA: &str = r#"
local now = redis.call('GET', KEYS[1]) or '0'
if now ~= ARGV[1] then return now end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('SET', KEYS[2], ARGV[1])
return ARGV[2]
"#;

/// Leaderboard key -> player -> net win in minor units.
type Boards = HashMap<String, HashMap<String, i64>>;

/// Rebuilds every read model under `keys` from the log.
pub async fn rebuild(
    pool: &PgPool,
    redis: &Client,
    keys: &Keys,
    config: &RebuildConfig,
) -> Result<RebuildReport, ReplayError> {
    let started = Instant::now();
    let previous = readmodel::query::current(redis, keys).await?.number();
    let generation = new_generation(redis, keys, previous).await?;
    let target = keys.generation(generation);
    readmodel::query::delete_generation(redis, keys, generation).await?;
    eprintln!("rebuild: generation {generation} (readers stay on {previous} until the switch)");

    // 2. Fold the log.
    let mut scan = LogScan::open(pool, ScanOrder::Log, config.page_size).await?;
    let mut progress = Progress::new(config.progress, "rebuild: fold", "events", scan.total());
    let mut wallets: HashMap<String, WalletFold> = HashMap::new();
    let mut boards: Boards = HashMap::new();
    let mut games: HashMap<String, BTreeSet<&'static str>> = HashMap::new();
    let mut newest: Option<(i64, chrono::DateTime<chrono::Utc>)> = None;
    loop {
        let page = scan.next_page().await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            let fold = wallets
                .entry(event.wallet_id.clone())
                .or_insert_with(|| WalletFold::compacted(&event.wallet_id));
            let step = fold.apply(event);
            if let Some(violation) = step.violations.first() {
                return Err(ReplayError::Log(format!(
                    "the log breaks an invariant, so nothing was switched: {violation}. \
                     Run `betledger-replay verify` for every violation"
                )));
            }
            if let Some(settled) = step.settled {
                let net = readmodel::change::to_minor(settled.net_win, settled.currency)
                    .ok_or_else(|| {
                        ReplayError::Log(format!(
                            "wallet {} sequence {}: net win {} is not whole minor units",
                            event.wallet_id, event.sequence, settled.net_win
                        ))
                    })?;
                for period in Period::ALL {
                    let key = target.leaderboard(
                        settled.currency,
                        &period.bucket(event.recorded_at),
                        &settled.game_id,
                    );
                    *boards
                        .entry(key)
                        .or_default()
                        .entry(settled.player_id.clone())
                        .or_default() += net;
                }
                games
                    .entry(settled.game_id)
                    .or_default()
                    .insert(settled.currency.code());
            }
            if newest.is_none_or(|(gp, _)| event.global_position > gp) {
                newest = Some((event.global_position, event.recorded_at));
            }
        }
        progress.advance(page.len() as u64);
    }
    progress.finish();
    let events = scan.read();
    let scan_seconds = started.elapsed().as_secs_f64();

    // 3. Write the new generation.
    let write_started = Instant::now();
    let mut progress = Progress::new(
        config.progress,
        "rebuild: write",
        "wallets",
        wallets.len() as u64,
    );
    let mut open_reservations = 0;
    let folds: Vec<&WalletFold> = wallets.values().collect();
    for chunk in folds.chunks(config.pipeline_wallets.max(1)) {
        let pipeline = redis.pipeline();
        for fold in chunk {
            let Some(balance) = fold.wallet().balance() else {
                continue;
            };
            let fields: Vec<(&str, String)> = vec![
                ("sequence", fold.sequence().to_string()),
                ("available", balance.available.to_string()),
                ("reserved", balance.reserved.to_string()),
                ("currency", balance.currency.code().to_string()),
                (
                    "player_id",
                    fold.wallet()
                        .player_id()
                        .map(|p| p.to_string())
                        .unwrap_or_default(),
                ),
            ];
            let _: () = pipeline
                .hset(target.wallet(fold.wallet_id()), fields)
                .await?;
            let open = fold.open_reservations();
            if !open.is_empty() {
                open_reservations += open.len() as u64;
                let values = open
                    .iter()
                    .map(|r| Ok((r.reservation_id.clone(), serde_json::to_string(r)?)))
                    .collect::<Result<Vec<(String, String)>, serde_json::Error>>()
                    .map_err(|e| ReplayError::Invalid(e.to_string()))?;
                let _: () = pipeline
                    .hset(target.reservations(fold.wallet_id()), values)
                    .await?;
            }
        }
        let _: Vec<Value> = pipeline.all().await?;
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    for (key, scores) in &boards {
        let members: Vec<(f64, String)> = scores
            .iter()
            .map(|(player, net)| (*net as f64, player.clone()))
            .collect();
        for chunk in members.chunks(1_000) {
            let _: i64 = redis
                .zadd(key.as_str(), None, None, false, false, chunk.to_vec())
                .await?;
        }
    }
    for (game, currencies) in &games {
        let members: Vec<&str> = currencies.iter().copied().collect();
        let _: i64 = redis
            .sadd(target.leaderboard_currencies(game), members)
            .await?;
    }
    if let Some((gp, at)) = newest {
        let _: () = redis
            .hset(
                target.meta(),
                vec![
                    ("global_position", gp.to_string()),
                    ("recorded_at", at.to_rfc3339()),
                ],
            )
            .await?;
    }
    let write_seconds = write_started.elapsed().as_secs_f64();
    let wallet_count = wallets.len() as u64;
    drop(folds);
    drop(wallets);

    // 4. Catch up with what was committed meanwhile.
    let applier = Applier::for_generation(redis.clone(), keys.clone(), generation);
    let mut cursor = scan.resume_after();
    let caught_up_before_switch =
        catch_up(pool, &applier, &mut cursor, None, config.catch_up_timeout).await?;

    // 5. Switch.
    let switched: String = Script::from_lua(SWITCH_LUA)
        .evalsha_with_reload(
            redis,
            vec![keys.generation_pointer(), keys.generation_previous()],
            vec![previous.to_string(), generation.to_string()],
        )
        .await?;
    if switched != generation.to_string() {
        readmodel::query::delete_generation(redis, keys, generation).await?;
        return Err(ReplayError::Invalid(format!(
            "another rebuild switched readers to generation {switched} meanwhile; this one \
             was discarded and generation {switched} is in use"
        )));
    }
    let switch_seconds = started.elapsed().as_secs_f64();
    eprintln!("rebuild: readers switched to generation {generation}");

    // 6. Everything committed before the switch.
    let head = log::head(pool).await?;
    let caught_up_after_switch =
        catch_up(pool, &applier, &mut cursor, head, config.catch_up_timeout).await?;

    // 7. After the grace period, stop reading the old generation, and drop it.
    tokio::time::sleep(config.grace).await;
    let _: i64 = redis.del(keys.generation_previous()).await?;
    let previous_deleted_keys = if config.keep_previous {
        None
    } else {
        Some(readmodel::query::delete_generation(redis, keys, previous).await?)
    };
    Ok(RebuildReport {
        generation,
        previous_generation: previous,
        events,
        wallets: wallet_count,
        open_reservations,
        leaderboards: boards.len() as u64,
        caught_up_before_switch,
        caught_up_after_switch,
        previous_deleted_keys,
        scan_seconds,
        write_seconds,
        seconds: started.elapsed().as_secs_f64(),
        scan_events_per_second: events as f64 / scan_seconds.max(1e-9),
        events_per_second: (events + caught_up_before_switch) as f64 / switch_seconds.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// A generation number above every one handed out and above the one in use.
async fn new_generation(redis: &Client, keys: &Keys, in_use: u64) -> Result<u64, ReplayError> {
    loop {
        let n: u64 = redis.incr(keys.generation_counter()).await?;
        if n > in_use {
            return Ok(n);
        }
    }
}

/// Applies the log after `cursor` to the applier's generation. With `until`, goes on until
/// the cursor reaches it (waiting for transactions still running below it); without, until
/// nothing more can be read. Returns how many events were applied.
async fn catch_up(
    pool: &PgPool,
    applier: &Applier,
    cursor: &mut LogCursor,
    until: Option<LogCursor>,
    timeout: Duration,
) -> Result<u64, ReplayError> {
    let stats = projections::worker::WorkerStats::default();
    let deadline = Instant::now() + timeout;
    let mut applied = 0;
    loop {
        if until.is_some_and(|u| *cursor >= u) {
            return Ok(applied);
        }
        let page = log::read_after(pool, *cursor, log::PAGE_SIZE_MAX).await?;
        if page.is_empty() {
            // Without a target, what is readable now is enough: events held back by a
            // running transaction are applied after the switch, or by the workers.
            if until.is_none() {
                return Ok(applied);
            }
            if Instant::now() > deadline {
                return Err(ReplayError::Log(format!(
                    "the log stayed held back by a running transaction for {timeout:?} after \
                     the switch; the workers will bring the new generation up to date"
                )));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        }
        for event in &page {
            projections::worker::project(pool, applier, event, &stats).await?;
            *cursor = event.cursor();
            applied += 1;
        }
    }
}
