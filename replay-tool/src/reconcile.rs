//! `reconcile [--repair]`: every wallet's read model and latest snapshot against the fold
//! of the log, as a batch job in bounded memory.
//!
//! - The log is streamed wallet by wallet from one snapshot ([`WalletStream`]); wallets
//!   are compared in batches, their read models fetched with one Redis pipeline a batch.
//! - A wallet that differs is checked again after `settle` (a projection that is merely
//!   behind catches up meanwhile), against a fresh fold of its events and a fresh read:
//!   only a difference that persists is reported.
//! - Read models of wallets the log does not have are found by scanning the generation's
//!   wallet keys.
//! - Each wallet's latest snapshot is compared with the fold of the log up to its
//!   sequence (the full state, or its compaction as the batched path stores it).
//! - Every difference goes into the JSON report as it is found: wallet, field, the log's
//!   value, the read model's value, and whether it was repaired.
//! - `--repair` rewrites a wrong wallet read model from the log (only if the read model
//!   still holds what was compared, so a worker's newer write is never overwritten),
//!   deletes the read model of a wallet the log does not have, and deletes a wrong
//!   snapshot (the wallet then loads from the log alone). Leaderboards are not compared
//!   here: `rebuild` recomputes them.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use domain::{ReservationId, WalletId};
use eventstore::log;
use eventstore::snapshots;
use fred::prelude::*;
use readmodel::totals::{Folded, Measure, Slot, TotalsRow};
use readmodel::write;
use readmodel::{Generation, Keys, ReservationView, WalletModel};
use serde::Serialize;
use serde_json::{json, Value as Json};
use sqlx::PgPool;

use crate::fold::WalletFold;
use crate::progress::{peak_rss_bytes, Progress, ProgressMode};
use crate::stream::{FoldedWallet, WalletStream};
use crate::ReplayError;

/// Options of a reconcile run.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    pub page_size: u32,
    /// Wallets compared per Redis pipeline.
    pub batch_wallets: usize,
    /// How long a differing wallet is given to catch up before it is checked again.
    pub settle: Duration,
    pub repair: bool,
    /// Where the JSON report is written.
    pub report: PathBuf,
    pub progress: ProgressMode,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            page_size: 5_000,
            batch_wallets: 500,
            settle: Duration::from_secs(1),
            repair: false,
            report: PathBuf::from("reconcile-report.json"),
            progress: ProgressMode::Auto,
        }
    }
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Difference {
    pub wallet_id: String,
    /// `wallet` (the read model is missing or extra), `sequence`, each part of the
    /// balance by name (`available`, `reserved`, ...), `currency`, `player_id`, `open_reservations`, `protection`, `snapshot`,
    /// `log_invariant` (the log itself is wrong: run `verify`), or `totals` (one row of
    /// the totals read model; `wallet_id` is then empty).
    pub field: String,
    pub log_value: Json,
    pub read_model_value: Json,
    pub repaired: bool,
}

/// What reconcile found.
#[derive(Debug, Clone, Serialize)]
pub struct ReconcileSummary {
    pub ok: bool,
    pub generation: u64,
    pub events: u64,
    pub wallets_in_log: u64,
    pub read_models_scanned: u64,
    pub snapshots_checked: u64,
    pub differences: u64,
    pub differences_by_field: BTreeMap<String, u64>,
    pub wallets_differing: u64,
    /// Wallets whose read model was rewritten (or, if extra, deleted).
    pub wallets_repaired: u64,
    pub snapshots_deleted: u64,
    /// UTC days whose totals were compared with the fold (those no event after the
    /// snapshot falls on).
    pub totals_days_checked: u64,
    /// Days not compared: events were appended to them after the snapshot (today, under
    /// traffic), so the read model is rightly ahead of the fold. A nightly run checks
    /// the day before.
    pub totals_days_skipped: Vec<NaiveDate>,
    /// Days whose totals were rewritten from the log (`--repair`).
    pub totals_days_repaired: u64,
    pub rechecked: u64,
    pub report: String,
    pub seconds: f64,
    pub events_per_second: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// Streams differences into the report file as they are found.
struct Report {
    path: PathBuf,
    out: std::io::BufWriter<std::fs::File>,
    written: u64,
    by_field: BTreeMap<String, u64>,
    wallets: HashSet<String>,
    wallets_repaired: HashSet<String>,
}

impl Report {
    fn create(path: &PathBuf, generation: u64) -> Result<Self, ReplayError> {
        let io = |source| ReplayError::Io {
            path: path.display().to_string(),
            source,
        };
        let file = std::fs::File::create(path).map_err(io)?;
        let mut out = std::io::BufWriter::new(file);
        write!(out, "{{\"generation\":{generation},\"differences\":[").map_err(io)?;
        Ok(Report {
            path: path.clone(),
            out,
            written: 0,
            by_field: BTreeMap::new(),
            wallets: HashSet::new(),
            wallets_repaired: HashSet::new(),
        })
    }

    fn io(&self, source: std::io::Error) -> ReplayError {
        ReplayError::Io {
            path: self.path.display().to_string(),
            source,
        }
    }

    fn add(&mut self, difference: &Difference) -> Result<(), ReplayError> {
        let sep = if self.written == 0 { "\n" } else { ",\n" };
        let line = serde_json::to_string(difference).expect("a difference serialises");
        write!(self.out, "{sep}{line}").map_err(|e| self.io(e))?;
        self.written += 1;
        *self.by_field.entry(difference.field.clone()).or_default() += 1;
        if difference.field == TOTALS_FIELD {
            return Ok(());
        }
        // One entry per differing wallet: memory grows with what is wrong, not the log.
        self.wallets.insert(difference.wallet_id.clone());
        if difference.repaired && difference.field != "snapshot" {
            self.wallets_repaired.insert(difference.wallet_id.clone());
        }
        Ok(())
    }

    fn finish(mut self, summary: &ReconcileSummary) -> Result<(), ReplayError> {
        let summary = serde_json::to_string(summary).expect("a summary serialises");
        write!(self.out, "\n],\"summary\":{summary}}}\n").map_err(|e| self.io(e))?;
        self.out.flush().map_err(|e| self.io(e))
    }
}

/// Compares every read model and snapshot with the log.
pub async fn reconcile(
    pool: &PgPool,
    redis: &Client,
    keys: &Keys,
    config: &ReconcileConfig,
) -> Result<ReconcileSummary, ReplayError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let generation = readmodel::query::current(redis, keys).await?;
    let mut report = Report::create(&config.report, generation.number())?;
    let ctx = Ctx {
        pool,
        redis,
        generation: &generation,
        repair: config.repair,
    };
    let mut stream = WalletStream::open(pool, config.page_size).await?;
    let mut progress = Progress::new(config.progress, "reconcile", "events", stream.total());
    let mut wallets_in_log = 0;
    let mut snapshots_checked = 0;
    let mut snapshots_deleted = 0;
    let mut rechecked = 0;
    let mut batch: Vec<FoldedWallet> = Vec::with_capacity(config.batch_wallets);
    let mut totals = Folded::new();
    let mut days_folded: BTreeMap<NaiveDate, u64> = BTreeMap::new();
    loop {
        let next = stream.next_wallet().await?;
        let end = next.is_none();
        if let Some(mut wallet) = next {
            wallets_in_log += 1;
            for (day, n) in std::mem::take(&mut wallet.days) {
                *days_folded.entry(day).or_default() += n;
            }
            for (slot, figures) in std::mem::take(&mut wallet.totals) {
                let sums = totals.entry(slot).or_default();
                for (measure, value) in figures {
                    *sums.entry(measure).or_default() += value;
                }
            }
            batch.push(wallet);
        }
        if batch.len() >= config.batch_wallets.max(1) || (end && !batch.is_empty()) {
            let events: u64 = batch.iter().map(|w| w.events).sum();
            let outcome = ctx.check_batch(&batch, config.settle, &mut report).await?;
            rechecked += outcome.rechecked;
            snapshots_checked += outcome.snapshots_checked;
            snapshots_deleted += outcome.snapshots_deleted;
            progress.advance(events);
            batch.clear();
        }
        if end {
            break;
        }
    }
    progress.finish();
    let events = stream.read();
    let read_models_scanned = ctx.find_extra(&mut report).await?;
    let totals_check = ctx
        .check_totals(&totals, &days_folded, config.settle, &mut report)
        .await?;
    let in_use = readmodel::query::current(redis, keys).await?;
    if in_use != generation {
        return Err(ReplayError::Invalid(format!(
            "a rebuild switched readers from generation {} to {} while reconciling; run \
             reconcile again",
            generation.number(),
            in_use.number()
        )));
    }
    let seconds = started.elapsed().as_secs_f64();
    let summary = ReconcileSummary {
        ok: report.written == 0,
        generation: generation.number(),
        events,
        wallets_in_log,
        read_models_scanned,
        snapshots_checked,
        differences: report.written,
        differences_by_field: report.by_field.clone(),
        wallets_differing: report.wallets.len() as u64,
        wallets_repaired: report.wallets_repaired.len() as u64,
        totals_days_checked: totals_check.checked,
        totals_days_skipped: totals_check.skipped,
        totals_days_repaired: totals_check.repaired,
        snapshots_deleted,
        rechecked,
        report: config.report.display().to_string(),
        seconds,
        events_per_second: events as f64 / seconds.max(1e-9),
        peak_rss_bytes: peak_rss_bytes(),
    };
    report.finish(&summary)?;
    eventstore::runs::record(
        pool,
        &eventstore::runs::Run {
            check: eventstore::runs::Check::Reconcile,
            started_at,
            finished_at: chrono::Utc::now(),
            ok: summary.ok,
            events: summary.events,
            wallets_checked: summary.wallets_in_log,
            days_checked: summary.totals_days_checked,
            differences: summary.differences,
            repaired: summary.wallets_repaired + summary.totals_days_repaired,
            summary: serde_json::to_value(&summary).unwrap_or_default(),
        },
    )
    .await?;
    Ok(summary)
}

/// The field of a [`Difference`] in the totals read model.
const TOTALS_FIELD: &str = "totals";

#[derive(Default)]
struct TotalsCheck {
    checked: u64,
    skipped: Vec<NaiveDate>,
    repaired: u64,
}

#[derive(Default)]
struct BatchOutcome {
    rechecked: u64,
    snapshots_checked: u64,
    snapshots_deleted: u64,
}

struct Ctx<'a> {
    pool: &'a PgPool,
    redis: &'a Client,
    generation: &'a Generation,
    repair: bool,
}

impl Ctx<'_> {
    async fn check_batch(
        &self,
        batch: &[FoldedWallet],
        settle: Duration,
        report: &mut Report,
    ) -> Result<BatchOutcome, ReplayError> {
        let mut outcome = BatchOutcome::default();
        let ids: Vec<WalletId> = batch.iter().map(|w| w.fold.wallet_id()).collect();
        let models = self.read_models(&ids).await?;
        let mut suspects = Vec::new();
        for (wallet, model) in batch.iter().zip(&models) {
            if let Some(violation) = wallet.violations.first() {
                report.add(&Difference {
                    wallet_id: wallet.fold.wallet_id().to_string(),
                    field: "log_invariant".into(),
                    log_value: json!(violation.to_string()),
                    read_model_value: Json::Null,
                    repaired: false,
                })?;
                continue;
            }
            if !compare(&wallet.fold, model.as_ref()).is_empty() {
                suspects.push(wallet.fold.wallet_id());
            }
        }
        if !suspects.is_empty() {
            tokio::time::sleep(settle).await;
            outcome.rechecked = suspects.len() as u64;
            for wallet_id in &suspects {
                self.recheck(*wallet_id, report).await?;
            }
        }
        for snapshot in snapshots::latest(self.pool, &ids).await?.into_values() {
            outcome.snapshots_checked += 1;
            let fold =
                fold_from_log(self.pool, snapshot.wallet_id, Some(snapshot.sequence)).await?;
            let stored = snapshot.wallet();
            // The batched path stores the compacted state its cache holds (closed
            // reservations and rounds forgotten, after each batch): it must stand for the
            // fold (`Wallet::stands_for`).
            let matches = fold.sequence() == snapshot.sequence
                && stored.as_ref().is_ok_and(|w| w.stands_for(fold.wallet()));
            if !matches {
                let repaired = self.repair
                    && snapshots::delete(self.pool, snapshot.wallet_id, snapshot.sequence).await?;
                outcome.snapshots_deleted += u64::from(repaired);
                report.add(&Difference {
                    wallet_id: snapshot.wallet_id.to_string(),
                    field: "snapshot".into(),
                    log_value: json!({
                        "sequence": fold.sequence(),
                        "state": serde_json::to_value(fold.wallet()).unwrap_or(Json::Null),
                    }),
                    read_model_value: json!({
                        "sequence": snapshot.sequence,
                        "state": snapshot.payload,
                    }),
                    repaired,
                })?;
            }
        }
        Ok(outcome)
    }

    /// Compares the totals read model with `folded`, the totals of the snapshot's events,
    /// day by day. A day that events were appended to after the snapshot (`days_folded`
    /// counts the snapshot's, the log is counted again now) is skipped. A day that
    /// differs is read again after `settle` (the workers may be behind); what still
    /// differs is reported, and with `--repair` the day is rewritten from the fold, but
    /// only if every wallet read model now equals the log, so no worker can still add an
    /// event of that day on top.
    async fn check_totals(
        &self,
        folded: &Folded,
        days_folded: &BTreeMap<NaiveDate, u64>,
        settle: Duration,
        report: &mut Report,
    ) -> Result<TotalsCheck, ReplayError> {
        let mut check = TotalsCheck::default();
        let days_now = log::events_per_day(self.pool).await?;
        let mut days: std::collections::BTreeSet<NaiveDate> =
            days_folded.keys().chain(days_now.keys()).copied().collect();
        let prefix = self.generation.totals_prefix();
        for key in readmodel::query::scan_keys(self.redis, &format!("{prefix}*")).await? {
            let day = key
                .strip_prefix(&prefix)
                .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
                .ok_or_else(|| ReplayError::Log(format!("a totals key {key:?} names no day")))?;
            days.insert(day);
        }
        let wallets_clean = report.wallets.len() == report.wallets_repaired.len();
        for day in days {
            if days_folded.get(&day) != days_now.get(&day) {
                check.skipped.push(day);
                continue;
            }
            check.checked += 1;
            let want: Folded = folded
                .iter()
                .filter(|(slot, _)| slot.day == day)
                .map(|(slot, figures)| (slot.clone(), figures.clone()))
                .collect();
            let mut have =
                readmodel::query::totals_of_day(self.redis, self.generation, day).await?;
            if without_zeros(&have) != without_zeros(&want) {
                tokio::time::sleep(settle).await;
                have = readmodel::query::totals_of_day(self.redis, self.generation, day).await?;
            }
            if without_zeros(&have) == without_zeros(&want) {
                continue;
            }
            let repaired = self.repair && wallets_clean;
            if repaired {
                write::replace_totals_of_day(self.redis, self.generation, day, &want).await?;
                check.repaired += 1;
            }
            let slots: std::collections::BTreeSet<&Slot> = want.keys().chain(have.keys()).collect();
            for slot in slots {
                let (w, h) = (want.get(slot), have.get(slot));
                if w.map(nonzero) == h.map(nonzero) {
                    continue;
                }
                let row = |figures: Option<&BTreeMap<Measure, i64>>| {
                    figures.map_or(Json::Null, |f| json!(TotalsRow::of(slot, f)))
                };
                report.add(&Difference {
                    wallet_id: String::new(),
                    field: TOTALS_FIELD.into(),
                    log_value: row(w),
                    read_model_value: row(h),
                    repaired,
                })?;
            }
        }
        Ok(check)
    }

    /// Checks one wallet again against a fresh fold and a fresh read, reports what still
    /// differs, and repairs it if asked.
    async fn recheck(&self, wallet_id: WalletId, report: &mut Report) -> Result<(), ReplayError> {
        for _attempt in 0..3 {
            let fold = fold_from_log(self.pool, wallet_id, None).await?;
            let model = self.read_models(&[wallet_id]).await?.remove(0);
            let differences = compare(&fold, model.as_ref());
            if differences.is_empty() {
                return Ok(());
            }
            if self.repair {
                let seen = model.as_ref().map(|m| m.sequence);
                let wallet = wallet_id.to_string();
                let done = write::repair(
                    self.redis,
                    self.generation,
                    &wallet,
                    seen,
                    fold.model().as_ref(),
                )
                .await?;
                if !done {
                    // A worker wrote meanwhile: compare again with what it wrote.
                    continue;
                }
            }
            for mut difference in differences {
                difference.repaired = self.repair;
                report.add(&difference)?;
            }
            return Ok(());
        }
        Err(ReplayError::Invalid(format!(
            "wallet {wallet_id}'s read model kept changing while it was repaired; run \
             reconcile again"
        )))
    }

    /// The read models of `wallet_ids`, in order, fetched with one pipeline.
    async fn read_models(
        &self,
        wallet_ids: &[WalletId],
    ) -> Result<Vec<Option<WalletModel>>, ReplayError> {
        let pipeline = self.redis.pipeline();
        for id in wallet_ids {
            let _: () = pipeline.hgetall(self.generation.wallet(id)).await?;
            let _: () = pipeline.hvals(self.generation.reservations(id)).await?;
        }
        let values: Vec<Value> = pipeline.all().await?;
        let mut models = Vec::with_capacity(wallet_ids.len());
        for (id, pair) in wallet_ids.iter().zip(values.chunks(2)) {
            let [fields, open] = pair else {
                return Err(ReplayError::Invalid("a short pipeline answer".into()));
            };
            let fields: HashMap<String, String> = fields.clone().convert()?;
            let open: Vec<String> = open.clone().convert()?;
            models.push(WalletModel::from_redis(*id, &fields, &open)?);
        }
        Ok(models)
    }

    /// Scans the generation's wallet keys for read models of wallets the log does not
    /// have; reports (and with repair, deletes) them. Returns how many keys were scanned.
    async fn find_extra(&self, report: &mut Report) -> Result<u64, ReplayError> {
        use futures::TryStreamExt;
        let mut scanned = 0;
        let mut pages = self
            .redis
            .scan_buffered(self.generation.wallet_pattern(), Some(1_000), None)
            .try_chunks(1_000);
        while let Some(chunk) = pages.try_next().await.map_err(|e| e.1)? {
            scanned += chunk.len() as u64;
            let mut ids: Vec<String> = chunk
                .iter()
                .filter_map(|k| k.as_str())
                .filter_map(|k| {
                    let k = k.strip_suffix(":reservations").unwrap_or(k);
                    self.generation.wallet_id_of(k).map(str::to_string)
                })
                .collect();
            ids.sort();
            ids.dedup();
            let known: HashSet<String> = sqlx::query_scalar(
                "SELECT aggregate_id FROM events
                  WHERE aggregate_type = $1 AND aggregate_id = ANY($2) AND sequence = 1",
            )
            .bind(eventstore::WALLET_AGGREGATE_TYPE)
            .bind(&ids)
            .fetch_all(self.pool)
            .await
            .map_err(|e| eventstore::StoreError::Unavailable(Box::new(e)))?
            .into_iter()
            .collect();
            for id in ids.iter().filter(|id| !known.contains(*id)) {
                // A key that does not name a wallet id holds nothing this code can read:
                // it is reported (and deleted) by its text alone.
                let model = match id.parse::<WalletId>() {
                    Ok(wallet_id) => self.read_models(&[wallet_id]).await?.remove(0),
                    Err(_) => None,
                };
                let seen = model.as_ref().map(|m| m.sequence);
                let repaired = self.repair
                    && write::repair(self.redis, self.generation, id, seen, None).await?;
                report.add(&Difference {
                    wallet_id: id.clone(),
                    field: "wallet".into(),
                    log_value: Json::Null,
                    read_model_value: model
                        .map(|m| serde_json::to_value(m).unwrap_or(Json::Null))
                        .unwrap_or_else(|| json!("reservations only")),
                    repaired,
                })?;
            }
        }
        Ok(scanned)
    }
}

/// The wallet folded from its events in the log, up to `until` (all of them if `None`).
/// A slot's figures without those that are zero (an adjustment up and one down leave a
/// zero field in Redis, and nothing in a fold that sums first).
fn nonzero(figures: &BTreeMap<Measure, i64>) -> BTreeMap<Measure, i64> {
    figures
        .iter()
        .filter(|(_, v)| **v != 0)
        .map(|(m, v)| (*m, *v))
        .collect()
}

fn without_zeros(totals: &Folded) -> BTreeMap<&Slot, BTreeMap<Measure, i64>> {
    totals
        .iter()
        .map(|(slot, figures)| (slot, nonzero(figures)))
        .filter(|(_, figures)| !figures.is_empty())
        .collect()
}

async fn fold_from_log(
    pool: &PgPool,
    wallet_id: WalletId,
    until: Option<u64>,
) -> Result<WalletFold, ReplayError> {
    let mut fold = WalletFold::new(wallet_id);
    loop {
        let page = log::wallet_events(pool, wallet_id, fold.sequence(), log::PAGE_SIZE_MAX).await?;
        if page.is_empty() {
            return Ok(fold);
        }
        for event in &page {
            if until.is_some_and(|u| event.sequence > u) {
                return Ok(fold);
            }
            let step = fold.apply(event);
            if !step.applied {
                return Err(ReplayError::Log(format!(
                    "wallet {wallet_id} sequence {}: {}; run `betledger-replay verify`",
                    event.sequence,
                    step.violations
                        .first()
                        .map(|v| v.detail.clone())
                        .unwrap_or_default()
                )));
            }
        }
    }
}

/// The fields where `model` differs from `fold`.
fn compare(fold: &WalletFold, model: Option<&WalletModel>) -> Vec<Difference> {
    let wallet_id = fold.wallet_id().to_string();
    let diff = |field: &str, log_value: Json, read_model_value: Json| Difference {
        wallet_id: wallet_id.clone(),
        field: field.to_string(),
        log_value,
        read_model_value,
        repaired: false,
    };
    let Some(balance) = fold.wallet().balance() else {
        return match model {
            None => Vec::new(),
            Some(m) => vec![diff("wallet", Json::Null, json!(m))],
        };
    };
    let Some(model) = model else {
        return vec![diff(
            "wallet",
            json!({"sequence": fold.sequence()}),
            Json::Null,
        )];
    };
    let mut out = Vec::new();
    if model.sequence != fold.sequence() {
        out.push(diff(
            "sequence",
            json!(fold.sequence()),
            json!(model.sequence),
        ));
    }
    for part in domain::Part::ALL {
        if model.balance.get(part) != balance.get(part) {
            out.push(diff(
                part.name(),
                json!(balance.get(part).to_string()),
                json!(model.balance.get(part).to_string()),
            ));
        }
    }
    if model.balance.currency != balance.currency {
        out.push(diff(
            "currency",
            json!(balance.currency.code()),
            json!(model.balance.currency.code()),
        ));
    }
    let player = fold.wallet().player_id();
    if model.player_id.as_ref() != player {
        out.push(diff("player_id", json!(player), json!(model.player_id)));
    }
    let protection = fold.wallet().protection();
    if model.protection.as_ref() != protection {
        out.push(diff(
            "protection",
            json!(protection),
            json!(model.protection),
        ));
    }
    let by_id = |views: Vec<ReservationView>| -> BTreeMap<ReservationId, ReservationView> {
        views
            .into_iter()
            .map(|r| (r.reservation_id.clone(), r))
            .collect()
    };
    let want = by_id(fold.open_reservations());
    let have = by_id(model.reservations.clone());
    if want != have {
        out.push(diff(
            "open_reservations",
            json!(want.values().collect::<Vec<_>>()),
            json!(have.values().collect::<Vec<_>>()),
        ));
    }
    out
}
