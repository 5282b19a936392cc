//! The OpenAPI 3.1 description of every face: the native API, the provider face and the
//! Hub88-style face. It is generated from the handlers themselves (`utoipa`): each route is
//! registered through its `#[utoipa::path]` annotation (`utoipa_axum::routes!`), so a
//! route cannot exist without its description, nor a description without its route.
//! Served at `GET /openapi.json`; `docs/openapi.json` is the same document, checked to be
//! current by a test (`betledger-api openapi > docs/openapi.json` writes it).
//!
//! What the annotations share lives here: the error body, the set of error statuses
//! every call may answer, the Hub88 answer, and the security schemes.

use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{OpenApi, Response, ResponseBuilder, ResponsesBuilder};
use utoipa::{Modify, PartialSchema, ToSchema};

/// The security scheme names used by the annotations.
pub const BEARER: &str = "bearer";
pub const PROVIDER_SIGNATURE: &str = "provider_signature";
pub const HUB88_SIGNATURE: &str = "hub88_signature";

/// The contract's error: `{"error": {"code", "message"}}`, with the balance for a
/// refusal on a known wallet, and the details some refusals add.
#[derive(ToSchema)]
#[schema(examples(json!({
    "error": {"code": "INSUFFICIENT_FUNDS", "message": "insufficient funds: available 5.00, requested 12.50"},
    "balance": {"available": "5.00", "reserved": "0.00", "currency": "EUR"}
})))]
#[allow(dead_code)]
pub struct ErrorBody {
    error: ErrorDetail,
    balance: Option<crate::body::BalanceBody>,
    /// A second open: the wallet that exists.
    wallet_id: Option<String>,
    /// `LIMIT_REACHED`: the limit, what is used and when it resets.
    limit: Option<LimitSchema>,
    /// `SELF_EXCLUDED`, `EXCLUSION_NOT_SHORTENED`: the exclusion's end (null: never).
    excluded_until: Option<String>,
}

#[derive(ToSchema)]
#[allow(dead_code)]
struct ErrorDetail {
    /// `INVALID_REQUEST`, `INVALID_AMOUNT`, `UNKNOWN_CURRENCY`, `UNAUTHORIZED`,
    /// `INVALID_TOKEN`, `FORBIDDEN`, `WALLET_NOT_FOUND`, `RESERVATION_NOT_FOUND`,
    /// `ROUND_NOT_FOUND`, `LIMIT_NOT_FOUND`, `NOT_FOUND`, `METHOD_NOT_ALLOWED`,
    /// `IDEMPOTENCY_CONFLICT`, `WALLET_EXISTS`, `INSUFFICIENT_FUNDS`, `CURRENCY_MISMATCH`,
    /// `RESERVATION_CLOSED`, `RESERVATION_NOT_EXPIRED`, `ROUND_CLOSED`, `LIMIT_EXCEEDED`,
    /// `LIMIT_REACHED`, `EXCLUSION_NOT_SHORTENED`, `SELF_EXCLUDED`, `ACCOUNT_LOCKED`,
    /// `PROVIDER_NOT_SERVED`, `CREDIT_CAP_EXCEEDED`, `BONUS_NOT_FOUND`, `BONUS_ACTIVE`,
    /// `BONUS_TERMS_INVALID`, `FREE_ROUNDS_UNAVAILABLE`, `RATE_LIMITED`, `UNAVAILABLE`.
    code: String,
    message: String,
}

#[derive(ToSchema)]
#[schema(as = Limit)]
#[allow(dead_code)]
struct LimitSchema {
    kind: String,
    period: String,
    amount: String,
    used: String,
    resets_at: String,
}

/// The error statuses an operation may answer, each with the contract's error body, by
/// kind of operation: only those it can answer are documented (schemathesis checks that
/// no other is answered).
fn error_responses(
    codes: &[u16],
) -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<Response>> {
    let description = |code: u16| match code {
        400 => "the request is malformed or its input invalid; nothing moved",
        401 => "no or a wrong token or signature; nothing moved",
        403 => "the caller may not do this, or the player may not play now",
        404 => "no such wallet, reservation, round or limit",
        409 => "the transaction id was used for another request, or the wallet exists",
        422 => "refused by a rule of the wallet; nothing moved",
        429 => "over the client's rate; retry after Retry-After",
        503 => "a dependency is down or the instance is busy; retry with the same transaction id",
        other => unreachable!("no description for {other}"),
    };
    let mut responses = ResponsesBuilder::new();
    for &code in codes {
        responses = responses.response(
            code.to_string(),
            ResponseBuilder::new()
                .description(description(code))
                .content(
                    "application/json",
                    utoipa::openapi::ContentBuilder::new()
                        .schema(Some(utoipa::openapi::Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        );
    }
    responses.build().into()
}

macro_rules! error_set {
    ($(#[$doc:meta])* $name:ident: $($code:literal),+) => {
        $(#[$doc])*
        pub struct $name;

        impl utoipa::IntoResponses for $name {
            fn responses(
            ) -> std::collections::BTreeMap<String, utoipa::openapi::RefOr<Response>> {
                error_responses(&[$($code),+])
            }
        }
    };
}

error_set!(
    /// A command on a wallet (money, rounds, limits, exclusion, lock) of the native or
    /// provider face.
    Errors: 400, 401, 403, 404, 409, 422, 429, 503
);
error_set!(
    /// A read (`GET`): no conflict, no rule refuses it.
    ReadErrors: 400, 401, 403, 404, 429, 503
);
error_set!(
    /// A query over all wallets (leaderboards, totals): no wallet to miss.
    QueryErrors: 400, 401, 403, 429, 503
);
error_set!(
    /// Opening a wallet: a second open conflicts; no wallet to miss.
    OpenErrors: 400, 401, 403, 409, 429, 503
);
error_set!(
    /// Starting a game session: the wallet must exist.
    SessionErrors: 400, 401, 403, 404, 429, 503
);
error_set!(
    /// Ending a game session (`204` also when it was already gone).
    EndSessionErrors: 400, 401, 403, 429, 503
);

/// The answer of every Hub88 call (HTTP 200 for every well-formed call).
#[derive(ToSchema)]
#[allow(dead_code)]
pub struct Hub88Response {
    user: Option<String>,
    /// `RS_OK` or an `RS_ERROR_*` status.
    status: String,
    request_uuid: Option<String>,
    currency: Option<String>,
    /// In 1/100000 of the currency's unit.
    balance: Option<i64>,
}

/// The document's title, version and security schemes.
struct Base;

impl Modify for Base {
    fn modify(&self, openapi: &mut OpenApi) {
        openapi.info.title = "BetLedger wallet API".into();
        openapi.info.version = env!("CARGO_PKG_VERSION").into();
        openapi.info.description = Some(
            "The native API (bearer tokens), the provider face (HMAC-SHA256 of the raw body in \
             X-Signature) and the Hub88-style face (RSA-SHA256 in X-Hub88-Signature) of one \
             wallet ledger. Amounts are decimal strings, except on the Hub88 face (integers of \
             1/100000)."
                .into(),
        );
        // BetLedger's own, not the defaults utoipa fills in from its own crate's metadata
        // (which named utoipa's author and licence).
        openapi.info.contact = Some(
            utoipa::openapi::ContactBuilder::new()
                .name(Some("BetLedger"))
                .build(),
        );
        openapi.info.license = Some(
            utoipa::openapi::LicenseBuilder::new()
                .name("Proprietary (UNLICENSED): all rights reserved")
                .build(),
        );
        openapi.servers = Some(vec![utoipa::openapi::ServerBuilder::new()
            .url("http://127.0.0.1:8080")
            .description(Some("scripts/run.sh on this machine"))
            .build()]);
        openapi.tags = Some(
            [
                (
                    "native",
                    "The casino's own platform: wallets, money, rounds, player protection, \
                     sessions and read models. Bearer tokens with scopes read, write, operator.",
                ),
                (
                    "provider",
                    "Game providers (seamless wallet): bets, wins, rollbacks, signed with \
                     HMAC-SHA256 of the raw body in X-Signature; ids scoped per provider.",
                ),
                (
                    "hub88",
                    "Aggregators speaking Hub88's operator wallet API: RSA-SHA256 in \
                     X-Hub88-Signature, HTTP 200 with an RS_* status, integer amounts.",
                ),
            ]
            .map(|(name, description)| {
                utoipa::openapi::tag::TagBuilder::new()
                    .name(name)
                    .description(Some(description))
                    .build()
            })
            .into(),
        );
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            PROVIDER_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Signature",
                "hex(HMAC-SHA256(provider secret, raw body))",
            ))),
        );
        components.add_security_scheme(
            HUB88_SIGNATURE,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Hub88-Signature",
                "base64(RSA-SHA256 PKCS#1 v1.5 signature of the raw body)",
            ))),
        );
        for (name, schema) in [
            ("ErrorBody", ErrorBody::schema()),
            ("Balance", crate::body::BalanceBody::schema()),
            ("Limit", LimitSchema::schema()),
            ("ErrorDetail", ErrorDetail::schema()),
            ("Hub88Response", Hub88Response::schema()),
        ] {
            components.schemas.insert(name.to_string(), schema);
        }
    }
}

/// Adds what the annotations do not carry to a document collected from the routes, and
/// makes each operation's id unique (`{tag}_{handler}`: two faces both have a `bet`).
pub fn finish(mut openapi: OpenApi) -> OpenApi {
    Base.modify(&mut openapi);
    requests_as_strict_as_the_contract(&mut openapi);
    for item in openapi.paths.paths.values_mut() {
        for operation in [
            &mut item.get,
            &mut item.put,
            &mut item.post,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let tag = operation
                .tags
                .as_ref()
                .and_then(|t| t.first().cloned())
                .unwrap_or_default();
            if let Some(id) = &operation.operation_id {
                operation.operation_id = Some(format!("{tag}_{id}"));
            }
        }
    }
    openapi
}

/// Request schemas as strict as the contract can be said in JSON schema, one rule per
/// field name for every face: caller ids (`*_id`, `*_uuid`, `token`, `user`, `round`,
/// `reason`, `game_code`) are 1 to 128 characters (`domain::ids`), `currency` is one the
/// ledger knows, decimal amounts have their pattern (signed only for an adjustment), and
/// `until` is a date-time.
fn requests_as_strict_as_the_contract(openapi: &mut OpenApi) {
    use utoipa::openapi::schema::Schema;
    use utoipa::openapi::RefOr;
    let Some(components) = openapi.components.as_mut() else {
        return;
    };
    let bounded = |name: &str| {
        name.ends_with("_id")
            || name.ends_with("_uuid")
            || matches!(
                name,
                "token" | "user" | "round" | "reason" | "game_code" | "currency"
            )
    };
    // Requests only: what the API answers is described as it is.
    for (schema_name, schema) in components
        .schemas
        .iter_mut()
        .filter(|(name, _)| name.ends_with("Request"))
    {
        let RefOr::T(Schema::Object(object)) = schema else {
            continue;
        };
        // Decimal strings: unsigned, except an adjustment's signed amount.
        let signed = schema_name.ends_with("AdjustRequest");
        for (name, property) in object.properties.iter_mut() {
            if let (true, RefOr::T(Schema::Object(p))) =
                (matches!(name.as_str(), "amount" | "payout"), &mut *property)
            {
                if p.schema_type
                    == utoipa::openapi::schema::SchemaType::Type(utoipa::openapi::Type::String)
                {
                    p.pattern = Some(if signed {
                        r"^-?[0-9]{1,20}(\.[0-9]{1,8})?$".into()
                    } else {
                        r"^[0-9]{1,20}(\.[0-9]{1,8})?$".into()
                    });
                }
            }
            if let (true, RefOr::T(Schema::Object(p))) = (name == "until", &mut *property) {
                p.format = Some(utoipa::openapi::schema::SchemaFormat::KnownFormat(
                    utoipa::openapi::schema::KnownFormat::DateTime,
                ));
            }
        }
        for (name, property) in object.properties.iter_mut() {
            if !bounded(name) {
                continue;
            }
            if let RefOr::T(Schema::Object(p)) = property {
                if p.schema_type
                    == utoipa::openapi::schema::SchemaType::Type(utoipa::openapi::Type::String)
                    || matches!(&p.schema_type, utoipa::openapi::schema::SchemaType::Array(t) if t.contains(&utoipa::openapi::Type::String))
                {
                    p.min_length = Some(1);
                    p.max_length = Some(128);
                    if name == "currency" {
                        p.min_length = None;
                        p.max_length = None;
                        p.enum_values = Some(
                            domain::Currency::ALL
                                .iter()
                                .map(|c| serde_json::json!(c.code()))
                                .collect(),
                        );
                    }
                }
            }
        }
    }
}

error_set!(
    /// The statuses any call may meet before its handler answers: a body that cannot be
    /// read (400), no request slot (429, 503). The Hub88 face answers everything else in
    /// its body.
    TransportErrors: 400, 429, 503
);

/// The document as served and as written to `docs/openapi.json`.
pub fn json(openapi: &OpenApi) -> String {
    let mut text = openapi
        .to_pretty_json()
        .expect("an OpenAPI document serialises");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    /// `docs/openapi.json` is the document the code generates: CI fails when a change to a
    /// handler is not written there too.
    #[test]
    fn docs_openapi_json_is_current() {
        let generated = super::json(&crate::routes::openapi());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/openapi.json");
        if std::env::var_os("BETLEDGER_WRITE_OPENAPI").is_some() {
            std::fs::write(path, &generated).expect("writing docs/openapi.json");
        }
        let written = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            written == generated,
            "docs/openapi.json is not what the code generates: run \
             `cargo run -p command-api --bin betledger-api -- openapi > docs/openapi.json` \
             (or this test with BETLEDGER_WRITE_OPENAPI=1) and commit it"
        );
        let doc: serde_json::Value = serde_json::from_str(&generated).unwrap();
        assert_eq!(doc["openapi"], "3.1.0");
        let paths = doc["paths"].as_object().unwrap();
        for face in [
            "/v1/wallets/{id}/deposits",
            "/provider/{pid}/bet",
            "/hub88/{operator}/transaction/bet",
        ] {
            assert!(paths.contains_key(face), "{face} is described");
        }
    }
}
