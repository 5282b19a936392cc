//! The log wallet by wallet: each wallet's events folded in sequence order, one wallet in
//! memory at a time, from one consistent snapshot of the log.

use chrono::NaiveDate;
use domain::WalletId;
use eventstore::log::LoggedEvent;
use eventstore::scan::{LogScan, ScanOrder};
use readmodel::totals::{self, Folded};
use sqlx::PgPool;

use std::collections::BTreeMap;

use crate::fold::{Violation, ViolationKind, WalletFold};
use crate::ReplayError;

/// Most violations kept per wallet; the rest are only counted.
pub const VIOLATIONS_KEPT_PER_WALLET: usize = 20;

/// One wallet, folded to the end of its events in the snapshot.
pub struct FoldedWallet {
    pub fold: WalletFold,
    /// The first violations of the wallet's events (at most
    /// [`VIOLATIONS_KEPT_PER_WALLET`]), then the end-of-wallet check's.
    pub violations: Vec<Violation>,
    pub violation_count: u64,
    /// Every violation of the wallet by kind, kept or not.
    pub violation_kinds: BTreeMap<ViolationKind, u64>,
    pub events: u64,
    /// Events not checked because an earlier one could not be applied.
    pub unchecked: u64,
    /// What the wallet's applied events add to the totals read model.
    pub totals: Folded,
    /// The wallet's events per UTC day, checked or not.
    pub days: BTreeMap<NaiveDate, u64>,
}

impl FoldedWallet {
    fn new(wallet_id: WalletId) -> Self {
        FoldedWallet {
            fold: WalletFold::new(wallet_id),
            violations: Vec::new(),
            violation_count: 0,
            violation_kinds: BTreeMap::new(),
            events: 0,
            unchecked: 0,
            totals: Folded::new(),
            days: BTreeMap::new(),
        }
    }

    /// Folds one more event of this wallet.
    pub fn push(&mut self, event: &LoggedEvent) {
        self.events += 1;
        *self
            .days
            .entry(totals::day_of(event.recorded_at))
            .or_default() += 1;
        if self.fold.is_broken() {
            self.unchecked += 1;
            return;
        }
        let step = self.fold.apply(event);
        if let Some((slot, contribution)) = &step.totals {
            totals::add(&mut self.totals, slot.clone(), contribution);
        }
        for violation in step.violations {
            self.note(violation);
        }
    }

    fn note(&mut self, violation: Violation) {
        self.violation_count += 1;
        *self.violation_kinds.entry(violation.kind).or_default() += 1;
        if self.violations.len() < VIOLATIONS_KEPT_PER_WALLET {
            self.violations.push(violation);
        }
    }

    fn finish(mut self) -> Self {
        if let Some(violation) = self.fold.finish() {
            self.note(violation);
        }
        self
    }
}

/// A scan of the log in wallet order that hands out folded wallets.
pub struct WalletStream {
    scan: LogScan,
    page: std::vec::IntoIter<LoggedEvent>,
    current: Option<FoldedWallet>,
    done: bool,
}

impl WalletStream {
    pub async fn open(pool: &PgPool, page_size: u32) -> Result<Self, ReplayError> {
        Ok(WalletStream {
            scan: LogScan::open(pool, ScanOrder::Wallet, page_size).await?,
            page: Vec::new().into_iter(),
            current: None,
            done: false,
        })
    }

    /// Events in the snapshot.
    pub fn total(&self) -> u64 {
        self.scan.total()
    }

    /// Events read so far.
    pub fn read(&self) -> u64 {
        self.scan.read()
    }

    /// The next wallet, folded over all its events; `None` at the end of the log.
    pub async fn next_wallet(&mut self) -> Result<Option<FoldedWallet>, ReplayError> {
        loop {
            for event in self.page.by_ref() {
                match &mut self.current {
                    Some(c) if c.fold.wallet_id() == event.wallet_id => c.push(&event),
                    _ => {
                        let mut next = FoldedWallet::new(event.wallet_id);
                        next.push(&event);
                        if let Some(done) = self.current.replace(next) {
                            return Ok(Some(done.finish()));
                        }
                    }
                }
            }
            if self.done {
                return Ok(self.current.take().map(FoldedWallet::finish));
            }
            let page = self.scan.next_page().await?;
            self.done = page.is_empty();
            self.page = page.into_iter();
        }
    }
}
