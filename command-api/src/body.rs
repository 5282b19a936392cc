//! The response bodies every face shares: a balance as the contract shows it, and the
//! answer to a money-moving call. Errors have theirs in [`crate::error`].

use axum::Json;
use domain::Balance;
use eventstore::CommandReceipt;
use rust_decimal::Decimal;
use serde::Serialize;

/// A balance as the contract shows it: each part of it (`domain::Part`) by name, as a
/// decimal string at the currency's scale, then the currency. Written from the domain's
/// balance alone, so a new part appears in every body; its OpenAPI schema (`Balance`) is
/// built from the same parts. On the provider face (`playable`), `available` is what the
/// player can stake, cash and the active bonus award, and `cash` the cash part of it
/// (the contract's "Bonus money": provider balances answer the playable total).
#[derive(Debug, Clone, PartialEq)]
pub struct BalanceBody {
    pub balance: Balance,
    pub playable: bool,
}

impl From<Balance> for BalanceBody {
    fn from(balance: Balance) -> Self {
        Self {
            balance,
            playable: false,
        }
    }
}

impl BalanceBody {
    /// `balance` as the provider face writes it.
    pub fn playable(balance: Balance) -> Self {
        Self {
            balance,
            playable: true,
        }
    }
}

impl Serialize for BalanceBody {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let b = &self.balance;
        let money = |amount: Decimal| at_scale(amount, b.currency.scale());
        let mut map = serializer.serialize_map(Some(domain::Part::ALL.len() + 2))?;
        for (part, amount) in b.parts() {
            if self.playable && part == domain::Part::Available {
                map.serialize_entry(part.name(), &money(b.playable()))?;
                map.serialize_entry("cash", &money(amount))?;
            } else {
                map.serialize_entry(part.name(), &money(amount))?;
            }
        }
        map.serialize_entry("currency", b.currency.code())?;
        map.end()
    }
}

impl utoipa::PartialSchema for BalanceBody {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Type};
        let mut object = ObjectBuilder::new()
            .description(Some("A balance: decimal strings at the currency's scale."));
        for name in domain::Part::ALL
            .map(domain::Part::name)
            .into_iter()
            .chain(["currency"])
        {
            object = object
                .property(name, ObjectBuilder::new().schema_type(Type::String))
                .required(name);
        }
        // The provider face's: there `available` is cash and bonus, this the cash.
        object = object.property(
            "cash",
            ObjectBuilder::new()
                .schema_type(Type::String)
                .description(Some(
                    "The provider face only: the cash part of `available`, which there is \
                 what the player can stake (cash and the active bonus award).",
                )),
        );
        object.into()
    }
}

impl utoipa::ToSchema for BalanceBody {
    fn name() -> std::borrow::Cow<'static, str> {
        std::borrow::Cow::Borrowed("Balance")
    }
}

/// The answer to every money-moving call: the balance right after it.
#[derive(Serialize, utoipa::ToSchema)]
#[schema(examples(json!({
    "wallet_id": "5e981edd-2830-5883-87b8-66d5add01da4",
    "transaction_id": "dep-1",
    "balance": {"available": "100.00", "reserved": "0.00", "bonus": "0.00", "bonus_reserved": "0.00", "currency": "EUR"},
    "sequence": 2
})))]
pub struct CommandResponse {
    pub wallet_id: String,
    pub transaction_id: String,
    pub balance: BalanceBody,
    pub sequence: u64,
    /// A bet's answer: how its stake was paid, cash first, then the active bonus award.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub funded: Option<Funded>,
}

/// How a bet's stake was paid: decimal strings at the currency's scale.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Funded {
    pub cash: String,
    pub bonus: String,
}

impl Funded {
    /// The split of `stake` whose bonus part is `bonus`, in `currency`.
    pub fn of(stake: Decimal, bonus: Decimal, currency: domain::Currency) -> Funded {
        Funded {
            cash: at_scale(stake - bonus, currency.scale()),
            bonus: at_scale(bonus, currency.scale()),
        }
    }
}

/// `amount` as the contract writes money: a decimal string at `scale`.
pub fn at_scale(mut amount: Decimal, scale: u32) -> String {
    amount.rescale(scale);
    amount.to_string()
}

/// The header on an answer that repeats an earlier one (the same transaction id and
/// request): Stripe's name for it, the one most clients know. The body is the first
/// answer's either way.
pub const REPLAYED_HEADER: &str = "idempotent-replayed";

/// The answer to a money-moving call: its body, and `Idempotent-Replayed: true` when it
/// repeats an earlier answer.
pub struct CommandAnswer {
    pub body: CommandResponse,
    pub replayed: bool,
}

impl axum::response::IntoResponse for CommandAnswer {
    fn into_response(self) -> axum::response::Response {
        let mut response = Json(self.body).into_response();
        if self.replayed {
            response.headers_mut().insert(
                REPLAYED_HEADER,
                axum::http::HeaderValue::from_static("true"),
            );
        }
        response
    }
}

/// The answer to an executed command, under the transaction id the caller knows.
pub fn command_response(receipt: CommandReceipt) -> CommandAnswer {
    CommandAnswer {
        body: CommandResponse {
            wallet_id: receipt.wallet_id.to_string(),
            transaction_id: receipt.transaction_id.map(String::from).unwrap_or_default(),
            balance: receipt.balance.into(),
            sequence: receipt.sequence,
            funded: None,
        },
        replayed: receipt.replayed,
    }
}

/// [`command_response`] for a bet of `stake`: with how it was paid.
pub fn bet_response(receipt: CommandReceipt, stake: Decimal) -> CommandAnswer {
    let funded = Funded::of(stake, receipt.funded_bonus, receipt.balance.currency);
    let mut answer = command_response(receipt);
    answer.body.funded = Some(funded);
    answer
}

/// A wallet's protections as both faces that show them write them: each limit in force
/// with what its period used, when it resets and a pending change, and the exclusion and
/// lock. Money at the currency's `scale`.
pub fn protection_body(
    view: Option<&domain::wallet::protection::ProtectionView>,
    scale: u32,
) -> serde_json::Value {
    let at_scale = |d: Decimal| at_scale(d, scale);
    let limits: Vec<serde_json::Value> = view
        .iter()
        .flat_map(|v| v.limits.iter())
        .map(|l| {
            serde_json::json!({
                "kind": l.kind,
                "period": l.period,
                "amount": at_scale(l.amount),
                "used": at_scale(l.used),
                "resets_at": l.resets_at,
                "zone": l.zone,
                "pending": l.pending.as_ref().map(|p| serde_json::json!({
                    "amount": p.amount.map(at_scale),
                    "effective_at": p.effective_at,
                })),
            })
        })
        .collect();
    serde_json::json!({
        "limits": limits,
        "self_excluded": view.is_some_and(|v| v.self_excluded),
        "excluded_until": view.and_then(|v| v.excluded_until),
        "locked": view.is_some_and(|v| v.locked),
        "lock_reason": view.and_then(|v| v.lock_reason.clone()),
    })
}
