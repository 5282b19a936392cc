//! The Hub88-style operator wallet face (`../shared/hub88-wallet.md`), over the same
//! commands as the provider face, so the rules are shared, not copied:
//! `/hub88/{operator}/user/balance`, `/transaction/bet`, `/transaction/win`,
//! `/transaction/rollback`.
//!
//! - Every call must carry `X-Hub88-Signature`, the operator's RSA-SHA256 signature of
//!   the raw body (`crate::hub88`), checked before the body is read.
//! - Every well-formed call answers HTTP 200 with `{"user", "status", "request_uuid",
//!   "currency", "balance"}`; a refusal is an `RS_*` status with the balance when the
//!   wallet is known (`status_of` maps the engine's errors).
//! - Amounts are integers of 1/100000 of the unit, exact at the currency's scale or
//!   `RS_ERROR_WRONG_TYPES`.
//! - Ids are scoped per operator as `hub88.{operator}:{id}` (transactions and rounds), so
//!   no provider or other operator can reach them.
//! - Sessions are the native ones, issued with `provider_id: "hub88.{operator}"`. A token
//!   is checked on balance and bet only: wins and rollbacks name `user` and `currency` and
//!   work after the session ends.
//! - A repeated `transaction_uuid` with the same content answers as the first time (the
//!   balance as it was then), a bet's too after its session ended (the log is read before
//!   the token); with other content it is `RS_ERROR_DUPLICATE_TRANSACTION`.
//! - One id, one wallet: a `transaction_uuid` the log holds in another wallet (another
//!   user's, or the user's in another currency) is `RS_ERROR_DUPLICATE_TRANSACTION` and
//!   moves nothing; a rollback, which names no currency, is decided only where that is
//!   unambiguous (`rollback_wallet`).
//! - A bet with `is_free` and a `reward_uuid` uses a round of that free-rounds grant (it
//!   costs nothing; its win, naming it, goes to the grant's winnings). A bet with
//!   `is_free` and no `reward_uuid` takes no money and records nothing; a win with
//!   `is_free` (of no grant) or `is_supplier_promo` and no `reference_transaction_uuid`
//!   is a bet-less win of kind `free_spin` or `promo` (campaign `reward_uuid`);
//!   `round_closed` closes the round.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use domain::{BonusId, Currency, GameId, PlayerId, WalletCommand, WalletError, WalletId};
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::error::ApiError;
use crate::hub88::{self, count, respond, AmountProblem, Hub88Operator};
use crate::input::valid;
use crate::json::RawBody;
use crate::runner::execute;
use crate::seamless::{self, Scope, Win};
use crate::state::AppState;

/// The header carrying the body's signature (base64).
pub const SIGNATURE_HEADER: &str = "x-hub88-signature";

pub fn routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(balance))
        .routes(routes!(bet))
        .routes(routes!(win))
        .routes(routes!(rollback))
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"user": "alice", "request_uuid": "5f1c2a9e-0000-4000-8000-000000000001", "token": "1e13025f9cd744d1962337eec2c64155dbf85d9dea504975a1c1728acea13cc5", "game_code": "slots-1"})))]
#[schema(as = Hub88BalanceRequest)]
struct BalanceRequest {
    user: Option<String>,
    request_uuid: String,
    token: String,
    #[allow(dead_code)]
    game_code: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"user": "alice", "transaction_uuid": "8a4b2c1d-0000-4000-8000-000000000002", "token": "1e13025f9cd744d1962337eec2c64155dbf85d9dea504975a1c1728acea13cc5", "round": "r-77", "request_uuid": "5f1c2a9e-0000-4000-8000-000000000002", "game_code": "slots-1", "currency": "EUR", "amount": 100000})))]
#[schema(as = Hub88BetRequest)]
struct BetRequest {
    user: String,
    transaction_uuid: String,
    token: String,
    round: String,
    #[serde(default)]
    round_closed: bool,
    request_uuid: String,
    #[serde(default)]
    is_free: bool,
    /// With `is_free`: the free-rounds grant the bet uses (the contract's "Bonus money").
    reward_uuid: Option<String>,
    game_code: String,
    currency: String,
    amount: i64,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"user": "alice", "transaction_uuid": "8a4b2c1d-0000-4000-8000-000000000003", "round": "r-77", "round_closed": true, "request_uuid": "5f1c2a9e-0000-4000-8000-000000000003", "game_code": "slots-1", "currency": "EUR", "amount": 250000, "reference_transaction_uuid": "8a4b2c1d-0000-4000-8000-000000000002"})))]
#[schema(as = Hub88WinRequest)]
struct WinRequest {
    user: String,
    transaction_uuid: String,
    round: String,
    #[serde(default)]
    round_closed: bool,
    reward_uuid: Option<String>,
    request_uuid: String,
    #[serde(default)]
    is_free: bool,
    #[serde(default)]
    is_supplier_promo: bool,
    game_code: Option<String>,
    currency: String,
    amount: i64,
    reference_transaction_uuid: Option<String>,
}

#[derive(Deserialize, utoipa::ToSchema)]
#[schema(examples(json!({"user": "alice", "transaction_uuid": "8a4b2c1d-0000-4000-8000-000000000004", "round": "r-77", "request_uuid": "5f1c2a9e-0000-4000-8000-000000000004", "reference_transaction_uuid": "8a4b2c1d-0000-4000-8000-000000000002"})))]
#[schema(as = Hub88RollbackRequest)]
struct RollbackRequest {
    user: String,
    token: Option<String>,
    transaction_uuid: String,
    round: String,
    request_uuid: String,
    reference_transaction_uuid: String,
}

/// A call refused before or by the engine: its status, and the balance when known.
struct Refusal {
    status: &'static str,
    balance: Option<domain::Balance>,
}

impl Refusal {
    fn new(status: &'static str) -> Self {
        Refusal {
            status,
            balance: None,
        }
    }
}

impl From<ApiError> for Refusal {
    fn from(e: ApiError) -> Self {
        let balance = match &e {
            ApiError::Refused { balance, .. } => *balance,
            _ => None,
        };
        Refusal {
            status: status_of(&e),
            balance,
        }
    }
}

/// The `RS_*` status of an engine error.
fn status_of(e: &ApiError) -> &'static str {
    match e {
        ApiError::InvalidRequest(_) | ApiError::InvalidAmount(_) => "RS_ERROR_WRONG_TYPES",
        ApiError::UnknownCurrency(_) => "RS_ERROR_WRONG_CURRENCY",
        ApiError::Unauthorized(_) => "RS_ERROR_INVALID_SIGNATURE",
        ApiError::InvalidToken(_) => "RS_ERROR_INVALID_TOKEN",
        ApiError::Forbidden(_) => "RS_ERROR_INVALID_GAME",
        ApiError::Refused { error, .. } => match error {
            WalletError::WalletNotFound => "RS_ERROR_INVALID_TOKEN",
            WalletError::InvalidAmount { .. } | WalletError::InvalidTimeout { .. } => {
                "RS_ERROR_WRONG_TYPES"
            }
            WalletError::CurrencyMismatch { .. } => "RS_ERROR_WRONG_CURRENCY",
            WalletError::InsufficientFunds { .. } => "RS_ERROR_NOT_ENOUGH_MONEY",
            WalletError::ReservationNotFound { .. } | WalletError::RoundNotFound { .. } => {
                "RS_ERROR_TRANSACTION_DOES_NOT_EXIST"
            }
            WalletError::IdempotencyConflict { .. } => "RS_ERROR_DUPLICATE_TRANSACTION",
            WalletError::LimitReached { .. } => "RS_ERROR_LIMIT_REACHED",
            WalletError::SelfExcluded { .. } | WalletError::AccountLocked { .. } => {
                "RS_ERROR_USER_DISABLED"
            }
            // A closed bet or round, the balance ceiling: nothing the aggregator can fix
            // by retrying; it rolls the bet back, which the wallet then answers.
            WalletError::WalletExists { .. }
            | WalletError::ReservationClosed { .. }
            | WalletError::ReservationNotExpired { .. }
            | WalletError::LimitExceeded { .. }
            | WalletError::RoundClosed { .. }
            | WalletError::LimitNotFound { .. }
            | WalletError::ExclusionNotShortened { .. }
            | WalletError::ExclusionInPast { .. }
            // A user the operator never took a stake from, a credit over the operator's
            // cap: no status says so (RS_ERROR_LIMIT_REACHED is the player's protection).
            | WalletError::NotServed { .. }
            | WalletError::CreditOverCap { .. }
            // Operator commands, never called through Hub88.
            | WalletError::BonusTermsInvalid { .. }
            | WalletError::BonusNotFound { .. }
            | WalletError::BonusActive { .. }
            | WalletError::BonusNotExpired { .. }
            | WalletError::FreeRoundsUnavailable { .. } => "RS_ERROR_UNKNOWN",
        },
        ApiError::Unavailable(_)
        | ApiError::RateLimited { .. }
        | ApiError::NoSuchEndpoint(_)
        | ApiError::MethodNotAllowed(_)
        | ApiError::RoundNotFound(_) => "RS_ERROR_UNKNOWN",
    }
}

/// The operator named by the path, the signature checked, the body parsed; or the
/// status to answer (`request_uuid` echoed when the body says it).
fn verified<T: DeserializeOwned>(
    state: &AppState,
    operator: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<(Hub88Operator, T), (Option<String>, &'static str)> {
    let request_uuid = || {
        serde_json::from_slice::<Value>(body)
            .ok()
            .and_then(|v| v["request_uuid"].as_str().map(str::to_string))
    };
    let Some(op) = state.hub88.get(operator) else {
        return Err((request_uuid(), "RS_ERROR_INVALID_PARTNER"));
    };
    let signature = headers
        .get(SIGNATURE_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if !op.verify(body, signature) {
        metrics::counter!("provider_bad_signatures_total", "provider" => hub88::scope(operator))
            .increment(1);
        return Err((request_uuid(), "RS_ERROR_INVALID_SIGNATURE"));
    }
    // Rate-limited like a provider, after the signature: a stranger cannot spend an
    // operator's allowance.
    if state
        .limiter
        .check(&format!("provider:{}", hub88::scope(operator)))
        .is_err()
    {
        return Err((request_uuid(), "RS_ERROR_UNKNOWN"));
    }
    let value: Value = serde_json::from_slice(body).map_err(|_| (None, "RS_ERROR_WRONG_SYNTAX"))?;
    let parsed =
        serde_json::from_value(value).map_err(|_| (request_uuid(), "RS_ERROR_WRONG_TYPES"))?;
    Ok((op.clone(), parsed))
}

/// Answers a call that failed before any wallet was known.
fn early(operator: &str, (request_uuid, status): (Option<String>, &'static str)) -> Json<Value> {
    count(operator, status);
    respond(None, request_uuid.as_deref(), status, None)
}

/// The wallet of `user` in `currency` among operator `op`'s brands.
async fn wallet_of(
    state: &AppState,
    op: &Hub88Operator,
    user: &str,
    currency: &str,
) -> Result<(WalletId, Currency), Refusal> {
    let player = valid(PlayerId::new, user.to_string()).map_err(Refusal::from)?;
    let currency = crate::input::currency(currency).map_err(Refusal::from)?;
    if currency.scale() > hub88::AMOUNT_SCALE {
        return Err(Refusal::new("RS_ERROR_WRONG_CURRENCY"));
    }
    let wallet = seamless::players_wallet(state, &hub88::scope(&op.id), &player, currency)
        .await
        .map_err(Refusal::from)?;
    Ok((wallet, currency))
}

fn money(units: i64, currency: Currency) -> Result<Decimal, Refusal> {
    hub88::from_units(units, currency).map_err(|p| {
        Refusal::new(match p {
            AmountProblem::WrongTypes => "RS_ERROR_WRONG_TYPES",
            AmountProblem::WrongCurrency => "RS_ERROR_WRONG_CURRENCY",
        })
    })
}

/// The balance now of a wallet the call named, for a refusal that does not carry it.
async fn balance_now(state: &AppState, wallet_id: WalletId) -> Option<domain::Balance> {
    state
        .store
        .wallet(wallet_id)
        .await
        .ok()
        .flatten()
        .map(|w| w.balance)
}

async fn finish(
    state: &AppState,
    operator: &str,
    user: Option<&str>,
    request_uuid: &str,
    wallet_id: Option<WalletId>,
    outcome: Result<domain::Balance, Refusal>,
) -> Json<Value> {
    count(
        operator,
        outcome.as_ref().map_or_else(|r| r.status, |_| "RS_OK"),
    );
    match outcome {
        Ok(balance) => respond(user, Some(request_uuid), "RS_OK", Some(balance)),
        Err(refusal) => {
            let balance = match (refusal.balance, wallet_id) {
                (Some(b), _) => Some(b),
                (None, Some(w)) => balance_now(state, w).await,
                (None, None) => None,
            };
            respond(user, Some(request_uuid), refusal.status, balance)
        }
    }
}

#[utoipa::path(
    post,
    path = "/hub88/{operator}/user/balance",
    tag = "hub88",
    summary = "The user's balance",
    params(("operator" = String, Path, description = "the Hub88 operator's id")),
    request_body = BalanceRequest,
    responses((status = 200, description = "RS_OK or an RS_ERROR status", body = crate::openapi::Hub88Response), crate::openapi::TransportErrors),
    security(("hub88_signature" = []))
)]
async fn balance(
    State(state): State<AppState>,
    Path(operator): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Json<Value> {
    let (op, request) = match verified::<BalanceRequest>(&state, &operator, &headers, &body) {
        Ok(ok) => ok,
        Err(e) => return early(&operator, e),
    };
    let outcome = async {
        let session = session_of(&state, &op, &request.token).await?;
        if request
            .user
            .as_deref()
            .is_some_and(|u| u != session.player_id.as_str())
        {
            return Err(Refusal::new("RS_ERROR_INVALID_TOKEN"));
        }
        let wallet = state
            .store
            .wallet(session.wallet_id)
            .await
            .map_err(|e| Refusal::from(ApiError::from(e)))?
            .ok_or_else(|| Refusal::from(ApiError::wallet_not_found()))?;
        Ok(wallet.balance)
    }
    .await;
    finish(
        &state,
        &operator,
        request.user.as_deref(),
        &request.request_uuid,
        None,
        outcome,
    )
    .await
}

/// The session of `token`, which must be this operator's.
async fn session_of(
    state: &AppState,
    op: &Hub88Operator,
    token: &str,
) -> Result<crate::sessions::Session, Refusal> {
    let session = state.sessions.touch(token).await.map_err(|e| match e {
        ApiError::InvalidToken(_) => Refusal::new("RS_ERROR_TOKEN_EXPIRED"),
        other => Refusal::from(other),
    })?;
    let scope = hub88::scope(&op.id);
    if session.provider_id != scope
        || !seamless::provider_still_admits(state, &scope, session.wallet_id)
            .await
            .map_err(Refusal::from)?
    {
        return Err(Refusal::new("RS_ERROR_INVALID_TOKEN"));
    }
    Ok(session)
}

#[utoipa::path(
    post,
    path = "/hub88/{operator}/transaction/bet",
    tag = "hub88",
    summary = "A bet",
    params(("operator" = String, Path, description = "the Hub88 operator's id")),
    request_body = BetRequest,
    responses((status = 200, description = "RS_OK or an RS_ERROR status", body = crate::openapi::Hub88Response), crate::openapi::TransportErrors),
    security(("hub88_signature" = []))
)]
async fn bet(
    State(state): State<AppState>,
    Path(operator): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Json<Value> {
    let (op, r) = match verified::<BetRequest>(&state, &operator, &headers, &body) {
        Ok(ok) => ok,
        Err(e) => return early(&operator, e),
    };
    let scope = hub88::scope(&op.id);
    let scope = Scope(&scope);
    let named = wallet_of(&state, &op, &r.user, &r.currency).await;
    let wallet_id = named.as_ref().ok().map(|(w, _)| *w);
    let outcome = async {
        let (wallet_id, currency) = named?;
        let game = valid(GameId::new, r.game_code.clone()).map_err(Refusal::from)?;
        let amount = money(r.amount, currency)?;
        let reservation_id = scope.bet("transaction_uuid", &r.transaction_uuid)?;
        let round_id = scope.round(&r.round)?;
        // A free bet naming a grant (`reward_uuid`) uses one of its free rounds.
        let grant = match (r.is_free, &r.reward_uuid) {
            (true, Some(id)) => Some(valid(BonusId::new, id.clone()).map_err(Refusal::from)?),
            _ => None,
        };
        let command = || match &grant {
            Some(grant_id) => seamless::free_bet(
                reservation_id.clone(),
                grant_id.clone(),
                None,
                (currency, game.clone()),
                (round_id.clone(), r.round_closed),
                state.clock.now(),
            ),
            None => seamless::bet(
                reservation_id.clone(),
                amount,
                (currency, game.clone()),
                (round_id.clone(), r.round_closed),
                state.clock.now(),
            ),
        };
        // The log first: a repeat is answered as the first time even after its session
        // ended, and an id held by another wallet moves nothing.
        if !r.is_free || grant.is_some() {
            if let Some(receipt) =
                logged(&state, wallet_id, reservation_id.clone().into(), &command()).await?
            {
                return Ok(receipt.balance);
            }
        }
        let session = session_of(&state, &op, &r.token).await?;
        if session.wallet_id != wallet_id {
            return Err(Refusal::new("RS_ERROR_INVALID_TOKEN"));
        }
        if game != session.game_id {
            return Err(Refusal::new("RS_ERROR_INVALID_GAME"));
        }
        if r.is_free && grant.is_none() {
            // A free spin of no grant takes no money: nothing to record; its win comes as
            // a bet-less win (`is_free` on the win).
            return balance_now(&state, wallet_id)
                .await
                .ok_or_else(|| Refusal::from(ApiError::wallet_not_found()));
        }
        let receipt = execute(&state, wallet_id, command()).await?;
        Ok(receipt.balance)
    }
    .await;
    finish(
        &state,
        &operator,
        Some(&r.user),
        &r.request_uuid,
        wallet_id,
        outcome,
    )
    .await
}

/// Whether the log holds `transaction_id` on `wallet_id`. An operator's id names one
/// wallet: held by another (another user's, or the user's in another currency) it is
/// `RS_ERROR_DUPLICATE_TRANSACTION`, and the call moves nothing.
async fn held_here(
    state: &AppState,
    wallet_id: WalletId,
    transaction_id: &domain::TransactionId,
) -> Result<bool, Refusal> {
    let holders = eventstore::idempotency::holders(&state.pool, transaction_id)
        .await
        .map_err(ApiError::from)?;
    // An id that an older build let into two wallets is still this one's where it is
    // here: its repeat is answered as the first time.
    if holders.iter().any(|(holder, _)| *holder == wallet_id) {
        return Ok(true);
    }
    match holders[..] {
        [] => Ok(false),
        _ => Err(Refusal::new("RS_ERROR_DUPLICATE_TRANSACTION")),
    }
}

/// The answer the log holds for `command` under `transaction_id` on `wallet_id` (see
/// [`held_here`] and `runner::repeat_in_log`), before any session is checked.
async fn logged(
    state: &AppState,
    wallet_id: WalletId,
    transaction_id: domain::TransactionId,
    command: &WalletCommand,
) -> Result<Option<eventstore::CommandReceipt>, Refusal> {
    if !held_here(state, wallet_id, &transaction_id).await? {
        return Ok(None);
    }
    Ok(crate::runner::repeat_in_log(state, wallet_id, command).await?)
}

#[utoipa::path(
    post,
    path = "/hub88/{operator}/transaction/win",
    tag = "hub88",
    summary = "A win",
    params(("operator" = String, Path, description = "the Hub88 operator's id")),
    request_body = WinRequest,
    responses((status = 200, description = "RS_OK or an RS_ERROR status", body = crate::openapi::Hub88Response), crate::openapi::TransportErrors),
    security(("hub88_signature" = []))
)]
async fn win(
    State(state): State<AppState>,
    Path(operator): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Json<Value> {
    let (op, r) = match verified::<WinRequest>(&state, &operator, &headers, &body) {
        Ok(ok) => ok,
        Err(e) => return early(&operator, e),
    };
    let scope = hub88::scope(&op.id);
    let scope = Scope(&scope);
    let named = wallet_of(&state, &op, &r.user, &r.currency).await;
    let wallet_id = named.as_ref().ok().map(|(w, _)| *w);
    let outcome = async {
        let (wallet_id, currency) = named?;
        let amount = money(r.amount, currency)?;
        // A free spin's bet of no grant took nothing and was not recorded: its win, which
        // names that bet, is a bet-less free-spin win. One of a grant (`reward_uuid`) was
        // recorded: its win settles it, into the grant's winnings. A promo win has no bet.
        let of_grant =
            r.is_free && r.reward_uuid.is_some() && r.reference_transaction_uuid.is_some();
        let reference = r
            .reference_transaction_uuid
            .as_deref()
            .filter(|_| !r.is_free || of_grant);
        let kind = match (r.is_free && !of_grant, r.is_supplier_promo, reference) {
            (true, _, _) => Some("free_spin"),
            (false, true, None) => Some("promo"),
            _ => None,
        };
        let (bet, transaction_id) = scope.win_ids(
            ("transaction_uuid", &r.transaction_uuid),
            reference.map(|bet| ("reference_transaction_uuid", bet)),
        )?;
        let target = crate::input::win_target(bet, kind, kind.and(r.reward_uuid.clone()))?;
        held_here(&state, wallet_id, &transaction_id).await?;
        let command = Win {
            transaction_id,
            round_id: scope.round(&r.round)?,
            target,
            amount,
            game_id: r
                .game_code
                .clone()
                .map(|g| valid(GameId::new, g))
                .transpose()?,
            currency,
            round_closed: r.round_closed,
        }
        .command(state.clock.now());
        let receipt = seamless::run_credit(&state, scope, wallet_id, command).await?;
        Ok::<_, Refusal>(receipt.balance)
    }
    .await;
    finish(
        &state,
        &operator,
        Some(&r.user),
        &r.request_uuid,
        wallet_id,
        outcome,
    )
    .await
}

#[utoipa::path(
    post,
    path = "/hub88/{operator}/transaction/rollback",
    tag = "hub88",
    summary = "A rollback",
    params(("operator" = String, Path, description = "the Hub88 operator's id")),
    request_body = RollbackRequest,
    responses((status = 200, description = "RS_OK or an RS_ERROR status", body = crate::openapi::Hub88Response), crate::openapi::TransportErrors),
    security(("hub88_signature" = []))
)]
async fn rollback(
    State(state): State<AppState>,
    Path(operator): Path<String>,
    headers: HeaderMap,
    RawBody(body): RawBody,
) -> Json<Value> {
    let (op, r) = match verified::<RollbackRequest>(&state, &operator, &headers, &body) {
        Ok(ok) => ok,
        Err(e) => return early(&operator, e),
    };
    let scope = hub88::scope(&op.id);
    // A rollback names no currency, and its token may have expired: see `rollback_wallet`.
    let outcome = async {
        let wallet_id = rollback_wallet(&state, &op, &scope, &r).await?;
        let command = Scope(&scope).rollback(
            &r.transaction_uuid,
            ("reference_transaction_uuid", &r.reference_transaction_uuid),
            &r.round,
        )?;
        let receipt = seamless::run_rollback(&state, wallet_id, command).await?;
        Ok::<_, Refusal>((wallet_id, receipt.balance))
    }
    .await;
    let (wallet_id, outcome) = match outcome {
        Ok((w, b)) => (Some(w), Ok(b)),
        Err(e) => (None, Err(e)),
    };
    finish(
        &state,
        &operator,
        Some(&r.user),
        &r.request_uuid,
        wallet_id,
        outcome,
    )
    .await
}

/// The wallet a rollback is for. It names a user but no currency, so it is decided only
/// where that is unambiguous (an operator's id names one wallet):
/// - the wallet whose log holds the rollback's own id (a repeat), or else the referenced
///   bet's id, when that wallet is the user's; another user's is
///   `RS_ERROR_DUPLICATE_TRANSACTION`;
/// - for a bet the log does not hold (a rollback before its bet, which voids the id): the
///   wallet of the call's token while its session lasts and is this user's, or else the
///   user's only wallet;
/// - a user with wallets in several currencies, no live session and no such bet:
///   `RS_ERROR_TRANSACTION_DOES_NOT_EXIST`, moving nothing. Voiding the id in one of them
///   could leave the bet, arriving later in another, charged and never refunded; the
///   aggregator retries the rollback, which finds the bet once it has come (docs/0014).
async fn rollback_wallet(
    state: &AppState,
    op: &Hub88Operator,
    scope: &str,
    r: &RollbackRequest,
) -> Result<WalletId, Refusal> {
    let player = valid(PlayerId::new, r.user.clone())?;
    let op_scope = hub88::scope(&op.id);
    let players =
        |currency: Currency| seamless::players_wallets(state, &op_scope, &player, currency);
    let users = |wallet_id: WalletId, currency: Currency| {
        if players(currency).contains(&wallet_id) {
            Ok(wallet_id)
        } else {
            Err(Refusal::new("RS_ERROR_DUPLICATE_TRANSACTION"))
        }
    };
    let scope = Scope(scope);
    let own = scope.closing(
        "rollback",
        &r.transaction_uuid,
        &r.reference_transaction_uuid,
    )?;
    let bet = scope.transaction("reference_transaction_uuid", &r.reference_transaction_uuid)?;
    for id in [&own, &bet] {
        let holders = eventstore::idempotency::holders(&state.pool, id)
            .await
            .map_err(ApiError::from)?;
        // The user's own holder first: an older build let some ids into two wallets.
        let own = holders.iter().find(|(w, c)| players(*c).contains(w));
        match (own, &holders[..]) {
            (Some((wallet_id, _)), _) => return Ok(*wallet_id),
            (None, []) => {}
            (None, [(wallet_id, currency)]) => return users(*wallet_id, *currency),
            (None, _) => return Err(Refusal::new("RS_ERROR_DUPLICATE_TRANSACTION")),
        }
    }
    if let Some(token) = &r.token {
        if let Ok(session) = session_of(state, op, token).await {
            if session.player_id == player {
                return Ok(session.wallet_id);
            }
        }
    }
    let mut wallets = Vec::new();
    for currency in Currency::ALL {
        if currency.scale() > hub88::AMOUNT_SCALE {
            continue;
        }
        for wallet_id in players(currency) {
            if state
                .store
                .wallet(wallet_id)
                .await
                .map_err(ApiError::from)?
                .is_some()
            {
                wallets.push(wallet_id);
            }
        }
    }
    match wallets[..] {
        [] => Err(Refusal::from(ApiError::wallet_not_found())),
        [wallet_id] => Ok(wallet_id),
        _ => Err(Refusal::new("RS_ERROR_TRANSACTION_DOES_NOT_EXIST")),
    }
}
