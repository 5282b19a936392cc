//! A wallet's history for support staff and players' statements (the contract's "Brands
//! and back office"): `GET /v1/wallets/{id}/history`, newest first, filtered, paged by an
//! opaque cursor, or the whole filtered history streamed as CSV (`Accept: text/csv`),
//! one page at a time so an export of a long history never sits in memory. What an entry
//! holds is `eventstore::history`'s.

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use eventstore::history::{self, Cursor, Entry, Filter};
use serde::{Deserialize, Serialize};
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::auth::{needs, Authorized};
use crate::body::{at_scale, BalanceBody};
use crate::error::ApiError;
use crate::input::{page_limit, time, valid, wallet_id};
use crate::json::QueryParams;
use crate::state::AppState;

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(wallet_history))
}

#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct HistoryQuery {
    /// Event kinds, comma-separated (`FundsDeposited,BetSettled`); all when absent.
    kind: Option<String>,
    round_id: Option<String>,
    game_id: Option<String>,
    /// Recorded at or after this RFC 3339 time.
    from: Option<String>,
    /// Recorded before this RFC 3339 time.
    to: Option<String>,
    /// Entries per page, 1 to 1000 (default 100); ignored by a CSV export.
    limit: Option<String>,
    /// The `next_cursor` of the page before.
    cursor: Option<String>,
}

/// One entry of a history.
#[derive(Serialize, utoipa::ToSchema)]
struct EntryBody {
    sequence: u64,
    #[schema(value_type = String, format = DateTime)]
    time: chrono::DateTime<chrono::Utc>,
    /// The event's kind (`FundsDeposited`, `BetSettled`, ...).
    kind: &'static str,
    transaction_id: Option<String>,
    /// What it did to the player's cash (`available`), signed.
    cash: String,
    /// What it did to the active bonus award's balance, signed.
    bonus: String,
    /// The balance after it (absent for an event that recorded none).
    #[schema(value_type = Option<Object>)]
    balance: Option<BalanceBody>,
    round_id: Option<String>,
    game_id: Option<String>,
    provider: Option<String>,
    /// The API client of an operator's or a protection action.
    actor: Option<String>,
}

impl From<Entry> for EntryBody {
    fn from(e: Entry) -> Self {
        let scale = e
            .balance
            .as_ref()
            .map_or(e.cash.scale(), |b| b.currency.scale());
        EntryBody {
            sequence: e.sequence,
            time: e.time,
            kind: e.kind,
            transaction_id: e.transaction_id,
            cash: at_scale(e.cash, scale),
            bonus: at_scale(e.bonus, scale),
            balance: e.balance.map(BalanceBody::from),
            round_id: e.round_id,
            game_id: e.game_id,
            provider: e.provider,
            actor: e.actor,
        }
    }
}

/// A page of a history.
#[derive(Serialize, utoipa::ToSchema)]
struct HistoryPage {
    wallet_id: String,
    entries: Vec<EntryBody>,
    /// Pass it as `cursor` for the next (older) page; absent on the last page.
    next_cursor: Option<String>,
}

#[utoipa::path(
    get,
    path = "/v1/wallets/{id}/history",
    tag = "native",
    summary = "A wallet's history, newest first, paged (or all of it as CSV)",
    description = "Each entry is one event: its time, kind, transaction id, what it did to \
        cash and to bonus money (signed), the balance after it, its round, game, provider \
        and actor. Pages are keyed by `next_cursor`, stable while new events arrive. With \
        `Accept: text/csv` the whole filtered history is streamed as CSV (`limit` is \
        ignored; a `cursor` starts it further back).",
    params(("id" = String, Path, description = "the wallet's id (a lowercase hyphenated UUID)"), HistoryQuery),
    responses(
        (status = 200, description = "a page of the history, or the whole of it as CSV",
         content((HistoryPage = "application/json"), (String = "text/csv"))),
        crate::openapi::ReadErrors
    ),
    security(("bearer" = []))
)]
async fn wallet_history(
    State(state): State<AppState>,
    _caller: Authorized<needs::Read>,
    Path(path_id): Path<String>,
    headers: HeaderMap,
    QueryParams(query): QueryParams<HistoryQuery>,
) -> Result<Response, ApiError> {
    let wallet_id = wallet_id(&path_id)?;
    let filter = Filter {
        kinds: match &query.kind {
            None => Vec::new(),
            Some(list) => Filter::parse_kinds(list).map_err(ApiError::InvalidRequest)?,
        },
        round_id: query
            .round_id
            .map(|r| valid(domain::RoundId::new, r))
            .transpose()?,
        game_id: query
            .game_id
            .map(|g| valid(domain::GameId::new, g))
            .transpose()?,
        from: query.from.as_deref().map(|t| time("from", t)).transpose()?,
        to: query.to.as_deref().map(|t| time("to", t)).transpose()?,
    };
    let cursor = match &query.cursor {
        None => Cursor::START,
        Some(c) => Cursor::parse(c).map_err(ApiError::InvalidRequest)?,
    };
    let limit = page_limit(query.limit.as_deref())?;
    if crate::csv::wanted(&headers) {
        // The status goes out before the first page is read: know the wallet first.
        if !history::wallet_exists(&state.pool, wallet_id).await? {
            return Err(ApiError::wallet_not_found());
        }
        return Ok(csv_export(state, wallet_id, filter, cursor));
    }
    let page = history::page(&state.pool, wallet_id, &filter, cursor, limit).await?;
    // An empty page is a wallet that does not exist, or filters that leave nothing: only
    // then is the log asked which (a page with entries needs no second read).
    if page.entries.is_empty() && !history::wallet_exists(&state.pool, wallet_id).await? {
        return Err(ApiError::wallet_not_found());
    }
    Ok(Json(HistoryPage {
        wallet_id: wallet_id.to_string(),
        entries: page.entries.into_iter().map(EntryBody::from).collect(),
        next_cursor: page.next.map(Cursor::encode),
    })
    .into_response())
}

/// The CSV columns: the entry's fields, then the balance after it by part.
fn csv_header() -> String {
    let mut columns = vec![
        "sequence",
        "time",
        "kind",
        "transaction_id",
        "cash",
        "bonus",
    ];
    let parts: Vec<String> = domain::Part::ALL
        .iter()
        .map(|p| format!("balance_{}", p.name()))
        .collect();
    columns.extend(parts.iter().map(String::as_str));
    columns.extend(["currency", "round_id", "game_id", "provider", "actor"]);
    columns.join(",") + "\n"
}

fn csv_row(e: Entry) -> String {
    let body = EntryBody::from(e);
    let mut fields: Vec<String> = vec![
        body.sequence.to_string(),
        body.time
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        body.kind.to_string(),
        body.transaction_id.unwrap_or_default(),
        body.cash,
        body.bonus,
    ];
    match &body.balance {
        Some(b) => {
            let scale = b.balance.currency.scale();
            fields.extend(b.balance.parts().map(|(_, amount)| at_scale(amount, scale)));
            fields.push(b.balance.currency.code().to_string());
        }
        None => fields.extend((0..=domain::Part::ALL.len()).map(|_| String::new())),
    }
    fields.extend([
        body.round_id.unwrap_or_default(),
        body.game_id.unwrap_or_default(),
        body.provider.unwrap_or_default(),
        body.actor.unwrap_or_default(),
    ]);
    crate::csv::line(&fields)
}

/// Streams the whole filtered history from `cursor` as CSV, a page of
/// [`history::LIMIT_MAX`] at a time. A failure after the first page ends the body early
/// (the status is sent by then): the client sees a truncated download, and the log says why.
fn csv_export(
    state: AppState,
    wallet_id: domain::WalletId,
    filter: Filter,
    cursor: Cursor,
) -> Response {
    let header =
        futures::stream::once(async { Ok::<Bytes, std::io::Error>(Bytes::from(csv_header())) });
    let pages = futures::stream::unfold(Some(cursor), move |next| {
        let state = state.clone();
        let filter = filter.clone();
        async move {
            let cursor = next?;
            match history::page(&state.pool, wallet_id, &filter, cursor, history::LIMIT_MAX).await {
                Ok(page) => {
                    let text: String = page.entries.into_iter().map(csv_row).collect();
                    Some((Ok(Bytes::from(text)), page.next))
                }
                Err(e) => {
                    tracing::warn!(%wallet_id, error = %e, "history export stopped");
                    Some((Err(std::io::Error::other(e.to_string())), None))
                }
            }
        }
    });
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"history-{wallet_id}.csv\""),
            ),
        ],
        Body::from_stream(futures::StreamExt::chain(header, pages)),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_csv_header_names_each_column() {
        assert_eq!(
            csv_header().split(',').count(),
            6 + domain::Part::ALL.len() + 5
        );
    }
}
