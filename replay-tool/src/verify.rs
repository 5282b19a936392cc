//! `verify`: the ledger's invariants over the whole log, wallet by wallet (see
//! [`crate::fold`] for the list), and money conserved per currency across all wallets.

use std::collections::BTreeMap;
use std::time::Instant;

use serde::Serialize;
use sqlx::PgPool;

use crate::fold::{Totals, Violation, ViolationKind};
use crate::progress::{peak_rss_bytes, Progress, ProgressMode};
use crate::stream::WalletStream;
use crate::ReplayError;

/// Options of a verify run.
#[derive(Debug, Clone)]
pub struct VerifyConfig {
    /// Rows per fetch from the server-side cursor.
    pub page_size: u32,
    /// Most violations listed in the report; all are counted.
    pub listed_max: usize,
    pub progress: ProgressMode,
}

impl Default for VerifyConfig {
    fn default() -> Self {
        VerifyConfig {
            page_size: 5_000,
            listed_max: 1_000,
            progress: ProgressMode::Auto,
        }
    }
}

/// What verify found.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub events: u64,
    pub wallets: u64,
    pub violations: u64,
    /// Every violation by kind.
    pub violations_by_kind: BTreeMap<ViolationKind, u64>,
    /// The first violations, wallet by wallet.
    pub listed: Vec<Violation>,
    /// Events after a violation that stopped their wallet's fold.
    pub events_unchecked: u64,
    /// Per currency: what flowed in and out of all wallets and what they hold.
    pub totals: Totals,
    /// Currencies whose wallets hold other than what flowed: `(currency, held, flowed)`.
    pub unconserved: Vec<(String, rust_decimal::Decimal, rust_decimal::Decimal)>,
    pub seconds: f64,
    pub events_per_second: f64,
    pub peak_rss_bytes: Option<u64>,
}

/// Checks every event of the log.
pub async fn verify(pool: &PgPool, config: &VerifyConfig) -> Result<VerifyReport, ReplayError> {
    let started = Instant::now();
    let started_at = chrono::Utc::now();
    let mut stream = WalletStream::open(pool, config.page_size).await?;
    let mut progress = Progress::new(config.progress, "verify", "events", stream.total());
    let mut report = VerifyReport {
        ok: true,
        events: 0,
        wallets: 0,
        violations: 0,
        violations_by_kind: BTreeMap::new(),
        listed: Vec::new(),
        events_unchecked: 0,
        totals: Totals::default(),
        unconserved: Vec::new(),
        seconds: 0.0,
        events_per_second: 0.0,
        peak_rss_bytes: None,
    };
    while let Some(wallet) = stream.next_wallet().await? {
        report.wallets += 1;
        report.events += wallet.events;
        report.events_unchecked += wallet.unchecked;
        report.violations += wallet.violation_count;
        for (kind, n) in &wallet.violation_kinds {
            *report.violations_by_kind.entry(*kind).or_default() += n;
        }
        for violation in wallet.violations {
            if report.listed.len() < config.listed_max {
                report.listed.push(violation);
            }
        }
        report.totals.add(&wallet.fold);
        progress.advance(wallet.events);
    }
    progress.finish();
    report.unconserved = report.totals.unconserved();
    report.ok = report.violations == 0 && report.unconserved.is_empty();
    report.seconds = started.elapsed().as_secs_f64();
    report.events_per_second = report.events as f64 / report.seconds.max(1e-9);
    report.peak_rss_bytes = peak_rss_bytes();
    eventstore::runs::record(
        pool,
        &eventstore::runs::Run {
            check: eventstore::runs::Check::Verify,
            started_at,
            finished_at: chrono::Utc::now(),
            ok: report.ok,
            events: report.events,
            wallets_checked: report.wallets,
            days_checked: 0,
            differences: report.violations + report.unconserved.len() as u64,
            repaired: 0,
            summary: serde_json::to_value(&report).unwrap_or_default(),
        },
    )
    .await?;
    Ok(report)
}
