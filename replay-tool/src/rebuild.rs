//! `rebuild`: fresh read models folded from the whole log, switched in at once.
//!
//! 1. A new generation number is taken (`{P}:generation-next`) and any leftover of a
//!    crashed rebuild under it is deleted.
//! 2. The log is streamed in its order through a server-side cursor, up to the oldest
//!    transaction running at the start, and folded wallet by wallet with the checked fold
//!    (the domain's own `Wallet::apply`), keeping only each wallet's open reservations so
//!    that memory grows with wallets, not history. A log that breaks an invariant stops
//!    the rebuild before anything is switched: run `verify` for the list.
//! 3. Balances, open reservations, leaderboards, the totals and the freshness mark are
//!    written into the new generation with pipelining; readers still read the old one.
//! 4. Events readable since the scan began (committed below the log's horizon, the
//!    oldest transaction still running) are checked with the same folds and applied to
//!    the new generation with the projection workers' own apply (sequence-fenced). A
//!    violation here also stops the rebuild with nothing switched. Where this ends is
//!    the switch position: every event at or below it is folded and checked.
//! 5. The pointer is moved (only if no other rebuild moved it meanwhile): from this
//!    instant readers read, and workers write, the new generation.
//! 6. The events above the switch position that the relay published and the workers
//!    applied to the old generation just before the switch are applied to the new one,
//!    checked the same way (the sequence fence makes it safe to race the workers).
//!    Events still above the horizon are not waited for: the relay has not published
//!    them yet, so the workers apply them to the new generation. A violation found here
//!    cannot undo the switch: the event, and every later one of its wallet, is left to
//!    the workers' normal path (which dead-letters what cannot be applied), and the
//!    report lists it (`violations_after_switch`, exit status 1).
//! 7. During a grace period, a wallet read answers from whichever generation is further
//!    along (so no reader sees a wallet step back while step 6 runs), and readers that
//!    resolved the old generation just before the switch finish their reads. Then the old
//!    generation is deleted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use domain::{PlayerId, WalletId};
use eventstore::log::{self, LogCursor};
use eventstore::scan::{LogScan, ScanOrder};
use fred::prelude::*;
use readmodel::write::{self, Board};
use readmodel::{Applier, Keys, Period, ProjectError, WalletModel};
use serde::Serialize;
use sqlx::PgPool;

use crate::fold::{Violation, ViolationKind, WalletFold};
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
    pub progress: ProgressMode,
}

impl Default for RebuildConfig {
    fn default() -> Self {
        RebuildConfig {
            page_size: 5_000,
            pipeline_wallets: 500,
            grace: Duration::from_secs(5),
            keep_previous: false,
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
    /// Rows (day, currency, provider, game) of the totals read model written.
    pub totals_slots: u64,
    /// Events applied after the scan, before and after the switch.
    pub caught_up_before_switch: u64,
    pub caught_up_after_switch: u64,
    /// The log position readers were switched at: every event at or below it was folded
    /// and checked before the switch.
    pub switch_position: LogCursor,
    /// Events after the switch position that break a rule: not applied by the rebuild,
    /// left to the workers (run `verify`). Non-empty means exit status 1.
    pub violations_after_switch: Vec<Violation>,
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

/// Each leaderboard's players and their net wins in minor units.
type Boards = HashMap<Board, HashMap<PlayerId, i64>>;

/// Rebuilds every read model under `keys` from the log.
pub async fn rebuild(
    pool: &PgPool,
    redis: &Client,
    keys: &Keys,
    config: &RebuildConfig,
) -> Result<RebuildReport, ReplayError> {
    let started = Instant::now();
    let previous = readmodel::query::current(redis, keys).await?.number();
    let generation = write::new_generation(redis, keys, previous).await?;
    let target = keys.generation(generation);
    readmodel::query::delete_generation(redis, keys, generation).await?;
    eprintln!("rebuild: generation {generation} (readers stay on {previous} until the switch)");

    // 2. Fold the log.
    let mut scan = LogScan::open(pool, ScanOrder::Log, config.page_size).await?;
    let mut progress = Progress::new(config.progress, "rebuild: fold", "events", scan.total());
    let mut wallets: HashMap<WalletId, WalletFold> = HashMap::new();
    let mut boards: Boards = HashMap::new();
    let mut totals = readmodel::totals::Folded::new();
    let mut newest: Option<(i64, chrono::DateTime<chrono::Utc>)> = None;
    loop {
        let page = scan.next_page().await?;
        if page.is_empty() {
            break;
        }
        for event in &page {
            let fold = wallets
                .entry(event.wallet_id)
                .or_insert_with(|| WalletFold::compacted(event.wallet_id));
            let step = fold.apply(event);
            if let Some(violation) = step.violations.first() {
                return Err(ReplayError::Log(format!(
                    "the log breaks an invariant, so nothing was switched: {violation}. \
                     Run `betledger-replay verify` for every violation"
                )));
            }
            if let Some(settled) = step.settled {
                let net = readmodel::model::to_minor(settled.net_win, settled.currency)
                    .ok_or_else(|| {
                        ReplayError::Log(format!(
                            "wallet {} sequence {}: net win {} is not whole minor units",
                            event.wallet_id, event.sequence, settled.net_win
                        ))
                    })?;
                for period in Period::ALL {
                    let board = Board {
                        currency: settled.currency,
                        bucket: period.bucket(event.recorded_at),
                        game_id: settled.game_id.clone(),
                    };
                    *boards
                        .entry(board)
                        .or_default()
                        .entry(settled.player_id.clone())
                        .or_default() += net;
                }
            }
            if let Some((slot, contribution)) = &step.totals {
                readmodel::totals::add(&mut totals, slot.clone(), contribution);
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
        let models: Vec<WalletModel> = chunk.iter().filter_map(|fold| fold.model()).collect();
        open_reservations += models
            .iter()
            .map(|m| m.reservations.len() as u64)
            .sum::<u64>();
        write::put_wallets(redis, &target, &models).await?;
        progress.advance(chunk.len() as u64);
    }
    progress.finish();
    let leaderboards = write::put_leaderboards(redis, &target, &boards).await? as u64;
    let totals_slots = write::put_totals(redis, &target, &totals).await? as u64;
    if let Some((gp, at)) = newest {
        write::put_freshness(redis, &target, gp, at).await?;
    }
    let write_seconds = write_started.elapsed().as_secs_f64();
    let wallet_count = wallets.len() as u64;
    drop(folds);
    drop(boards);
    drop(totals);

    // 4. Catch up with what became readable meanwhile, checked like the scan.
    let applier = Applier::for_generation(redis.clone(), keys.clone(), generation);
    let mut tail = Tail::new(wallets, scan.resume_after());
    let before_switch = match tail.catch_up(pool, &applier, Phase::BeforeSwitch).await {
        Ok(caught_up) => caught_up,
        Err(e) => {
            readmodel::query::delete_generation(redis, keys, generation).await?;
            return Err(e);
        }
    };
    let switch_position = tail.cursor();

    // 5. Switch.
    let switched = write::switch_generation(redis, keys, previous, generation).await?;
    if switched != generation {
        readmodel::query::delete_generation(redis, keys, generation).await?;
        return Err(ReplayError::Invalid(format!(
            "another rebuild switched readers to generation {switched} meanwhile; this one \
             was discarded and generation {switched} is in use"
        )));
    }
    let switch_seconds = started.elapsed().as_secs_f64();
    eprintln!("rebuild: readers switched to generation {generation}");

    // 6. What the workers applied to the old generation just before the switch.
    let after_switch = tail.catch_up(pool, &applier, Phase::AfterSwitch).await?;
    for violation in &after_switch.violations {
        eprintln!(
            "rebuild: after the switch, left to the workers: {violation}. Run \
             `betledger-replay verify` for every violation"
        );
    }

    // 7. After the grace period, stop reading the old generation, and drop it.
    tokio::time::sleep(config.grace).await;
    write::end_grace(redis, keys).await?;
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
        leaderboards,
        totals_slots,
        caught_up_before_switch: before_switch.applied,
        caught_up_after_switch: after_switch.applied,
        switch_position,
        violations_after_switch: after_switch.violations,
        previous_deleted_keys,
        scan_seconds,
        write_seconds,
        seconds: started.elapsed().as_secs_f64(),
        scan_events_per_second: events as f64 / scan_seconds.max(1e-9),
        events_per_second: (events + before_switch.applied) as f64 / switch_seconds.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
    })
}

/// Which side of the switch a catch-up runs on: what a violation it finds does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// A violation stops the rebuild; nothing has been switched.
    BeforeSwitch,
    /// Readers already use the new generation: a violation is reported, its wallet left
    /// to the workers, and the catch-up goes on with the other wallets.
    AfterSwitch,
}

/// What one catch-up did.
#[derive(Debug, Clone, Default)]
pub struct CaughtUp {
    pub applied: u64,
    /// Found after the switch (a catch-up before it returns an error instead).
    pub violations: Vec<Violation>,
}

/// The log after a rebuild's scan: every wallet's checked fold and the position reached,
/// so each event applied to the new generation is checked as the scan's were.
pub struct Tail {
    folds: HashMap<WalletId, WalletFold>,
    /// Wallets with a violation after the switch: their later events are left to the
    /// workers.
    held: HashSet<WalletId>,
    cursor: LogCursor,
}

impl Tail {
    /// The tail after `cursor`, where `folds` (compacted) hold every wallet up to it.
    pub fn new(folds: HashMap<WalletId, WalletFold>, cursor: LogCursor) -> Self {
        Tail {
            folds,
            held: HashSet::new(),
            cursor,
        }
    }

    /// Where the tail has been read to.
    pub fn cursor(&self) -> LogCursor {
        self.cursor
    }

    /// Checks and applies to `applier`'s generation every event readable after the cursor
    /// (below the log's horizon: never waits for a transaction still running), until none
    /// is left.
    pub async fn catch_up(
        &mut self,
        pool: &PgPool,
        applier: &Applier,
        phase: Phase,
    ) -> Result<CaughtUp, ReplayError> {
        let mut done = CaughtUp::default();
        loop {
            let page = log::read_after(pool, self.cursor, log::PAGE_SIZE_MAX).await?;
            if page.is_empty() {
                return Ok(done);
            }
            for event in &page {
                if !self.held.contains(&event.wallet_id) {
                    let fold = self
                        .folds
                        .entry(event.wallet_id)
                        .or_insert_with(|| WalletFold::compacted(event.wallet_id));
                    let step = fold.apply(event);
                    let mut violation = step.violations.into_iter().next();
                    if violation.is_none() && step.applied {
                        match readmodel::project(pool, applier, event).await {
                            Ok(_) => done.applied += 1,
                            Err(ProjectError::Poison(detail)) => {
                                violation = Some(Violation {
                                    wallet_id: event.wallet_id,
                                    sequence: event.sequence,
                                    global_position: event.global_position,
                                    kind: ViolationKind::Malformed,
                                    detail,
                                })
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    if let Some(violation) = violation {
                        if phase == Phase::BeforeSwitch {
                            return Err(ReplayError::Log(format!(
                                "the log breaks an invariant, so nothing was switched: \
                                 {violation}. Run `betledger-replay verify` for every violation"
                            )));
                        }
                        self.held.insert(event.wallet_id);
                        done.violations.push(violation);
                    }
                }
                self.cursor = event.cursor();
            }
        }
    }
}
