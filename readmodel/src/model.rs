//! A wallet's read model, typed, and the one encoding of it into Redis: the fields of its
//! hash and the JSON of its open reservations (keys in [`crate::keys`]). Every reader
//! decodes with [`WalletModel::from_redis`], and every writer that is not the live apply
//! script (a rebuild's pipelines, a repair) encodes with [`WalletModel::hash_fields`] and
//! [`WalletModel::reservation_entries`] ([`crate::write`]). The apply script
//! ([`crate::apply`]) writes the same fields from Lua.

use std::collections::HashMap;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use domain::wallet::protection::Protection;
use domain::{Balance, Currency, GameId, PlayerId, Reservation, ReservationId, RoundId, WalletId};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use crate::ReadModelError;

/// The wallet hash's fields.
pub const FIELD_SEQUENCE: &str = "sequence";
// The balance's parts are fields under their names (`domain::Part::name`).
pub const FIELD_CURRENCY: &str = "currency";
pub const FIELD_PLAYER_ID: &str = "player_id";
/// The wallet's brand, for a brand other than the default (absent for the default).
pub const FIELD_BRAND: &str = "brand";
/// A protected wallet's limits, exclusion and lock (JSON of `Protection`), as the last
/// event's metadata recorded them.
pub const FIELD_PROTECTION: &str = "protection";

/// An open reservation as the read model shows it (stored as this JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReservationView {
    pub reservation_id: ReservationId,
    pub amount: Decimal,
    pub game_id: GameId,
    pub round_id: RoundId,
    pub expires_at: DateTime<Utc>,
    /// The provider of its round ([`RoundId::provider`]), for the totals of the settle
    /// that closes it; written as `null` for a native round. A view written before this
    /// field existed has no such key, and the apply script then asks the log.
    #[serde(default)]
    pub provider: Option<String>,
}

/// A wallet as its read model holds it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WalletModel {
    pub wallet_id: WalletId,
    /// Set by the wallet's first event; `None` only in a read model that lost it.
    pub player_id: Option<PlayerId>,
    /// Its brand, when not the default (the apply script reads it for the totals).
    pub brand: Option<domain::BrandId>,
    pub balance: Balance,
    /// The last event applied: the read model equals the log up to here.
    pub sequence: u64,
    /// Open reservations, oldest expiry first.
    pub reservations: Vec<ReservationView>,
    /// Limits, exclusion and lock, for a wallet that has had any.
    pub protection: Option<Protection>,
}

impl WalletModel {
    /// A wallet's read model from its hash fields and its reservations' JSON; `None` for
    /// an empty hash (no read model).
    pub fn from_redis(
        wallet_id: WalletId,
        fields: &HashMap<String, String>,
        open: &[String],
    ) -> Result<Option<WalletModel>, ReadModelError> {
        if fields.is_empty() {
            return Ok(None);
        }
        let corrupt = |what: &str| ReadModelError::Corrupt(format!("wallet {wallet_id}: {what}"));
        let get = |k: &str| fields.get(k).ok_or_else(|| corrupt(&format!("no {k}")));
        let mut reservations = open
            .iter()
            .map(|json| serde_json::from_str::<ReservationView>(json))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| corrupt(&format!("reservation: {e}")))?;
        reservations.sort_by(|a, b| {
            (a.expires_at, &a.reservation_id).cmp(&(b.expires_at, &b.reservation_id))
        });
        let player_id = match fields.get(FIELD_PLAYER_ID) {
            None => None,
            // As stored: an id accepted under an older rule stays readable.
            Some(p) => Some(PlayerId::try_from(p.clone()).map_err(|e| corrupt(&e.to_string()))?),
        };
        let brand = fields
            .get(FIELD_BRAND)
            .map(|b| domain::BrandId::new(b.clone()).map_err(|e| corrupt(&e.to_string())))
            .transpose()?;
        let protection = match fields.get(FIELD_PROTECTION) {
            None => None,
            Some(json) => {
                Some(serde_json::from_str(json).map_err(|e| corrupt(&format!("protection: {e}")))?)
            }
        };
        Ok(Some(WalletModel {
            protection,
            wallet_id,
            player_id,
            brand,
            balance: Balance::from_parts(
                Currency::from_str(get(FIELD_CURRENCY)?).map_err(|e| corrupt(&e.to_string()))?,
                |k| {
                    fields
                        .get(k)
                        .map(|v| Decimal::from_str(v).map_err(|e| format!("{k}: {e}")))
                        .transpose()
                },
            )
            .map_err(|e| corrupt(&e))?,
            sequence: get(FIELD_SEQUENCE)?
                .parse()
                .map_err(|e| corrupt(&format!("{FIELD_SEQUENCE}: {e}")))?,
            reservations,
        }))
    }

    /// The wallet hash's fields.
    pub fn hash_fields(&self) -> Vec<(&'static str, String)> {
        let mut fields = vec![(FIELD_SEQUENCE, self.sequence.to_string())];
        fields.extend(self.balance.named_parts());
        fields.push((FIELD_CURRENCY, self.balance.currency.code().to_string()));
        if let Some(player) = &self.player_id {
            fields.push((FIELD_PLAYER_ID, player.to_string()));
        }
        if let Some(brand) = &self.brand {
            fields.push((FIELD_BRAND, brand.to_string()));
        }
        if let Some(p) = &self.protection {
            fields.push((
                FIELD_PROTECTION,
                serde_json::to_string(p).expect("protections serialise"),
            ));
        }
        fields
    }

    /// The reservations hash's entries: reservation id and its JSON.
    pub fn reservation_entries(&self) -> Vec<(String, String)> {
        self.reservations
            .iter()
            .map(|r| (r.reservation_id.to_string(), r.to_json()))
            .collect()
    }
}

impl ReservationView {
    /// The view of the domain's reservation `id`.
    pub fn of(id: &ReservationId, reservation: &Reservation) -> Self {
        ReservationView {
            reservation_id: id.clone(),
            amount: reservation.amount,
            game_id: reservation.game_id.clone(),
            round_id: reservation.round_id.clone(),
            expires_at: reservation.expires_at,
            provider: reservation.round_id.provider().map(str::to_string),
        }
    }

    /// The JSON the reservations hash holds.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a reservation view serialises")
    }
}

/// `amount` in the currency's minor units (cents), if it is whole in them and fits.
pub fn to_minor(amount: Decimal, currency: Currency) -> Option<i64> {
    use rust_decimal::prelude::ToPrimitive;
    let minor = amount * Decimal::from(10i64.pow(currency.scale()));
    if minor.fract() != Decimal::ZERO {
        return None;
    }
    minor.to_i64()
}

/// `minor` units of `currency` as an amount at the currency's scale.
pub fn from_minor(minor: i64, currency: Currency) -> Decimal {
    Decimal::new(minor, currency.scale())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minor_units_round_trip_at_the_currency_scale() {
        let eur = Decimal::new(-1234, 2);
        assert_eq!(to_minor(eur, Currency::Eur), Some(-1234));
        assert_eq!(from_minor(-1234, Currency::Eur).to_string(), "-12.34");
        assert_eq!(to_minor(Decimal::new(1, 3), Currency::Eur), None);
        assert_eq!(to_minor(Decimal::new(5, 0), Currency::Jpy), Some(5));
        assert_eq!(
            from_minor(150_000_000, Currency::Btc).to_string(),
            "1.50000000"
        );
    }

    #[test]
    fn a_model_round_trips_through_its_redis_encoding() {
        let player = PlayerId::new("p-1").unwrap();
        let wallet_id = WalletId::for_player(&player, Currency::Eur);
        let model = WalletModel {
            wallet_id,
            player_id: Some(player),
            balance: Balance {
                available: Decimal::new(1050, 2),
                reserved: Decimal::new(200, 2),
                currency: Currency::Eur,
                bonus: Decimal::ZERO,
                bonus_reserved: Decimal::ZERO,
            },
            sequence: 7,
            reservations: vec![ReservationView {
                reservation_id: ReservationId::new("b-1").unwrap(),
                amount: Decimal::new(200, 2),
                game_id: GameId::new("g").unwrap(),
                round_id: RoundId::new("r").unwrap(),
                expires_at: Utc::now(),
                provider: None,
            }],
            protection: None,
            brand: None,
        };
        let fields: HashMap<String, String> = model
            .hash_fields()
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
        let open: Vec<String> = model
            .reservation_entries()
            .into_iter()
            .map(|(_, json)| json)
            .collect();
        assert_eq!(
            WalletModel::from_redis(wallet_id, &fields, &open).unwrap(),
            Some(model)
        );
        assert_eq!(
            WalletModel::from_redis(wallet_id, &HashMap::new(), &[]).unwrap(),
            None
        );
    }
}
