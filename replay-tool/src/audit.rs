//! `audit WALLET [--as-of TIME]`: every event of one wallet in order, with the balance
//! after each, checked as it is folded; and the wallet's state at the end (or at `as_of`).

use std::io::Write;

use chrono::{DateTime, Utc};
use domain::{Balance, Part, WalletId};
use eventstore::log::{self, LoggedEvent};
use readmodel::ReservationView;
use rust_decimal::Decimal;
use serde::Serialize;
use sqlx::PgPool;

use crate::fold::{Violation, WalletFold};
use crate::ReplayError;

/// One event of the history, with the balance right after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRow {
    pub sequence: u64,
    pub global_position: i64,
    pub recorded_at: DateTime<Utc>,
    pub event: String,
    pub transaction_id: Option<String>,
    pub reservation_id: Option<String>,
    /// The round the event is in: the one it names, or its bet's.
    pub round_id: Option<String>,
    /// Deposited, withdrawn, staked (reserve and settle), refunded or expired.
    pub amount: Option<Decimal>,
    /// A settle's payout.
    pub payout: Option<Decimal>,
    /// The balance after it, written as its parts (`available`, `reserved`, ...).
    #[serde(flatten)]
    pub balance: Parts,
    /// The API client that made a change of the player's protections.
    pub by: Option<String>,
    /// What a protection change set: the limit and when it applies, the exclusion's end,
    /// the lock's reason.
    pub detail: Option<String>,
}

/// A balance written as its parts alone, by name (the row says its currency once, in
/// [`Audit::balance`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Parts(pub Balance);

impl Serialize for Parts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.named_parts())
    }
}

/// A wallet's history up to a moment.
#[derive(Debug, Clone, Serialize)]
pub struct Audit {
    pub wallet_id: String,
    pub player_id: Option<String>,
    /// Events recorded at or before this moment are included; `None`: all.
    pub as_of: Option<DateTime<Utc>>,
    pub events: Vec<AuditRow>,
    /// The balance after the last included event; `None` if the wallet was not open yet.
    pub balance: Option<Balance>,
    pub sequence: u64,
    pub open_reservations: Vec<ReservationView>,
    /// Its bonus awards as they stand after the last included event, in grant order.
    pub awards: Vec<domain::Award>,
    /// Rules the history breaks (a correct log has none).
    pub violations: Vec<Violation>,
}

/// Audits `wallet_id` as of `as_of` (or now).
pub async fn audit(
    pool: &PgPool,
    wallet_id: WalletId,
    as_of: Option<DateTime<Utc>>,
) -> Result<Audit, ReplayError> {
    let mut fold = WalletFold::new(wallet_id);
    let mut rows = Vec::new();
    let mut violations = Vec::new();
    let mut after = 0;
    'pages: loop {
        let page = log::wallet_events(pool, wallet_id, after, log::PAGE_SIZE_MAX).await?;
        let Some(last) = page.last() else { break };
        after = last.sequence;
        for event in &page {
            if as_of.is_some_and(|t| event.recorded_at > t) {
                break 'pages;
            }
            let step = fold.apply(event);
            violations.extend(step.violations);
            if !step.applied {
                // The fold stopped here: the rest cannot be shown with a true balance.
                break 'pages;
            }
            rows.push(row(event, &fold));
        }
    }
    if rows.is_empty() && violations.is_empty() {
        let exists: bool = sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM events WHERE aggregate_type = $1 AND aggregate_id = $2)",
        )
        .bind(eventstore::WALLET_AGGREGATE_TYPE)
        .bind(wallet_id.to_string())
        .fetch_one(pool)
        .await
        .map_err(|e| eventstore::StoreError::Unavailable(Box::new(e)))?;
        if !exists {
            return Err(ReplayError::Invalid(format!(
                "wallet {wallet_id} has no events in the log: check the id"
            )));
        }
    }
    violations.extend(fold.finish());
    Ok(Audit {
        wallet_id: wallet_id.to_string(),
        player_id: fold.wallet().player_id().map(|p| p.to_string()),
        as_of,
        balance: fold.wallet().balance(),
        sequence: fold.sequence(),
        open_reservations: fold.open_reservations(),
        awards: fold.wallet().awards().cloned().collect(),
        events: rows,
        violations,
    })
}

fn row(event: &LoggedEvent, fold: &WalletFold) -> AuditRow {
    let balance = fold
        .wallet()
        .balance()
        .expect("an applied event leaves it open");
    let mut row = AuditRow {
        sequence: event.sequence,
        global_position: event.global_position,
        recorded_at: event.recorded_at,
        event: event.event_type.clone(),
        transaction_id: event.recorded().ok().and_then(|r| {
            r.get(eventstore::idempotency::KEY_TRANSACTION_ID)
                .map(str::to_string)
        }),
        reservation_id: None,
        round_id: None,
        amount: None,
        payout: None,
        balance: Parts(balance),
        by: None,
        detail: None,
    };
    // The fold has decoded this payload already; it is a wallet event.
    if let Ok(payload) = event.decode() {
        row.reservation_id = payload.reservation_id().map(|r| r.to_string());
        row.round_id = payload
            .round_id()
            .or_else(|| {
                let bet = payload.reservation_id()?;
                fold.wallet().reservation(bet).map(|r| &r.round_id)
            })
            .map(|r| r.to_string());
        (row.amount, row.payout) = payload.amounts();
        row.by = payload.actor().map(|by| by.to_string());
        row.detail = protection_change(&payload);
        if let Some(life) = award_life(&payload) {
            row.detail = Some(match row.detail.take() {
                Some(d) => format!("{d}; {life}"),
                None => life,
            });
        }
    }
    row
}

/// What the event did to bonus awards, in words: each award's life, read down the rows.
fn award_life(payload: &domain::WalletEvent) -> Option<String> {
    use domain::WalletEvent as E;
    let granted = match payload {
        E::BonusGranted {
            bonus_id,
            amount,
            terms,
            ..
        } => Some(format!(
            "{bonus_id} granted {amount}, wagering x{}, expires {}",
            terms.wagering_multiplier,
            terms.expires_at.to_rfc3339()
        )),
        E::BonusForfeited {
            bonus_id,
            reason: Some(reason),
            ..
        } => Some(format!("{bonus_id} forfeited by the operator: {reason}")),
        E::BonusForfeited { bonus_id, .. } => Some(format!("{bonus_id} expired")),
        _ => None,
    };
    let moves = payload
        .bonus_moves()
        .map(|(m, _, _)| m.to_string())
        .filter(|m| !m.is_empty());
    match (granted, moves) {
        (None, None) => None,
        (Some(g), None) => Some(g),
        (None, Some(m)) => Some(m),
        (Some(g), Some(m)) => Some(format!("{g}; {m}")),
    }
}

/// What a protection change set (its actor is `WalletEvent::actor`).
fn protection_change(payload: &domain::WalletEvent) -> Option<String> {
    use domain::WalletEvent as E;
    match payload {
        E::LimitChanged {
            kind,
            period,
            amount,
            zone,
            effective_at,
            at,
            ..
        } => {
            let what = match amount {
                Some(a) => format!("{} {} limit {a}", period.as_str(), kind.as_str()),
                None => format!("{} {} limit removed", period.as_str(), kind.as_str()),
            };
            let when = if effective_at <= at {
                "at once".to_string()
            } else {
                format!("from {}", effective_at.to_rfc3339())
            };
            Some(format!("{what}, {when} ({zone})"))
        }
        E::SelfExcluded { until, .. } => Some(match until {
            Some(u) => format!("self-excluded until {}", u.to_rfc3339()),
            None => "self-excluded indefinitely".to_string(),
        }),
        E::AccountLocked { reason, .. } => Some(format!("locked: {reason}")),
        E::AccountUnlocked { reason, .. } => Some(format!("unlocked: {reason}")),
        _ => None,
    }
}

/// How an audit is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AuditFormat {
    /// Aligned columns for people.
    Table,
    /// One JSON document.
    Json,
    /// One row per event, with a header.
    Csv,
}

/// The columns: the balance's parts where `available` and `reserved` always were, and a
/// part added later (`Part::always_recorded`) last, so a reader of the earlier columns
/// by place still reads them.
fn columns() -> Vec<&'static str> {
    let (original, later): (Vec<Part>, Vec<Part>) =
        Part::ALL.into_iter().partition(|p| p.always_recorded());
    let mut columns = vec![
        "sequence",
        "recorded_at",
        "event",
        "reservation_id",
        "transaction_id",
        "amount",
        "payout",
    ];
    columns.extend(original.into_iter().map(Part::name));
    // Added with rounds, then with player protection, each last for the same reason.
    columns.extend(["global_position", "round_id", "by", "detail"]);
    columns.extend(later.into_iter().map(Part::name));
    columns
}

fn cells(row: &AuditRow) -> Vec<String> {
    let opt = |d: &Option<Decimal>| d.map(|d| d.to_string()).unwrap_or_default();
    let parts: std::collections::HashMap<&str, String> = row.balance.0.named_parts().collect();
    columns()
        .into_iter()
        .map(|column| match column {
            "sequence" => row.sequence.to_string(),
            "recorded_at" => row
                .recorded_at
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
            "event" => row.event.clone(),
            "reservation_id" => row.reservation_id.clone().unwrap_or_default(),
            "transaction_id" => row.transaction_id.clone().unwrap_or_default(),
            "amount" => opt(&row.amount),
            "payout" => opt(&row.payout),
            "global_position" => row.global_position.to_string(),
            "round_id" => row.round_id.clone().unwrap_or_default(),
            "by" => row.by.clone().unwrap_or_default(),
            "detail" => row.detail.clone().unwrap_or_default(),
            part => parts[part].clone(),
        })
        .collect()
}

/// Writes `audit` to `out` in `format`.
pub fn render(audit: &Audit, format: AuditFormat, out: &mut dyn Write) -> std::io::Result<()> {
    match format {
        AuditFormat::Json => {
            serde_json::to_writer_pretty(&mut *out, audit)?;
            writeln!(out)
        }
        AuditFormat::Csv => {
            let mut writer = csv::Writer::from_writer(out);
            writer.write_record(columns())?;
            for row in &audit.events {
                writer.write_record(cells(row))?;
            }
            writer.flush()
        }
        AuditFormat::Table => {
            let rows: Vec<Vec<String>> = audit.events.iter().map(cells).collect();
            let header: Vec<String> = columns().into_iter().map(str::to_string).collect();
            let mut widths: Vec<usize> = header.iter().map(String::len).collect();
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.len());
                }
            }
            let line = |cells: &[String]| {
                cells
                    .iter()
                    .zip(&widths)
                    .map(|(c, &w)| format!("{c:<w$}"))
                    .collect::<Vec<_>>()
                    .join("  ")
                    .trim_end()
                    .to_string()
            };
            writeln!(out, "{}", line(&header))?;
            for row in &rows {
                writeln!(out, "{}", line(row))?;
            }
            writeln!(out)?;
            let as_of = audit
                .as_of
                .map(|t| t.to_rfc3339())
                .unwrap_or_else(|| "now".into());
            match &audit.balance {
                Some(b) => writeln!(
                    out,
                    "wallet {} (player {}) as of {as_of}: sequence {}, {}, {} open reservation(s)",
                    audit.wallet_id,
                    audit.player_id.as_deref().unwrap_or("?"),
                    audit.sequence,
                    b.named_parts()
                        .map(|(name, amount)| format!("{name} {amount} {}", b.currency.code()))
                        .collect::<Vec<_>>()
                        .join(", "),
                    audit.open_reservations.len()
                )?,
                None => writeln!(out, "wallet {} was not open as of {as_of}", audit.wallet_id)?,
            }
            for a in &audit.awards {
                writeln!(
                    out,
                    "award {}: {}, amount {}, balance {}, wagering {} of {}, converted {}, \
                     forfeited {}, expires {}",
                    a.bonus_id,
                    a.status.as_str(),
                    a.amount,
                    a.balance,
                    a.progress,
                    a.required(),
                    a.converted,
                    a.forfeited,
                    a.terms.expires_at.to_rfc3339()
                )?;
            }
            for v in &audit.violations {
                writeln!(out, "VIOLATION: {v}")?;
            }
            Ok(())
        }
    }
}
