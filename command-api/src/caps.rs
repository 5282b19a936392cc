//! Caps on the money a provider or Hub88 operator may create in one call: a win without a
//! bet (free spin, promotion, jackpot) or a positive adjustment. A provider's stake makes
//! it a party to the player's money; a credit without one is money out of nothing, so the
//! deployment bounds it, per provider and currency (`BETLEDGER_CREDIT_CAPS`), and a call
//! over its cap is `422 CREDIT_CAP_EXCEEDED` (Hub88: `RS_ERROR_UNKNOWN`), moving nothing;
//! a repeat of a call the log holds is answered as the first time whatever the cap is now. Who may create money at all (only a provider that took a stake from the
//! wallet) is the domain's rule (`WalletError::NotServed`).

use std::collections::HashMap;

use domain::{Currency, WalletError};
use rust_decimal::Decimal;

/// The cap of a currency no entry names: this many of its major units per call.
pub const CREDIT_CAP_UNITS_DEFAULT: i64 = 100_000;

/// The caps: per provider and currency, per currency, else [`CREDIT_CAP_UNITS_DEFAULT`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CreditCaps {
    by_scope: HashMap<(String, Currency), Decimal>,
    by_currency: HashMap<Currency, Decimal>,
}

impl CreditCaps {
    /// Reads `[SCOPE/]CUR=AMOUNT,...`: `EUR=50000.00` caps every provider's EUR credits,
    /// `alpha/EUR=2000000.00` provider `alpha`'s (a Hub88 operator's scope is
    /// `hub88.{operator}`). The amount is at the currency's scale.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut caps = CreditCaps::default();
        for entry in text.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let (key, amount) = entry
                .split_once('=')
                .ok_or_else(|| format!("{entry:?}: expected [SCOPE/]CUR=AMOUNT"))?;
            let (scope, code) = match key.split_once('/') {
                Some((scope, code)) if !scope.is_empty() => (Some(scope), code),
                Some(_) => return Err(format!("{entry:?}: the scope before '/' is empty")),
                None => (None, key),
            };
            let currency: Currency = code.trim().parse().map_err(|e| format!("{entry:?}: {e}"))?;
            let amount = domain::money::parse_decimal(amount.trim())
                .and_then(|a| domain::money::Money::non_negative(a, currency))
                .map_err(|e| format!("{entry:?}: {e}"))?
                .amount();
            let taken = match scope {
                Some(scope) => caps
                    .by_scope
                    .insert((scope.to_string(), currency), amount)
                    .is_some(),
                None => caps.by_currency.insert(currency, amount).is_some(),
            };
            if taken {
                return Err(format!("{entry:?}: named twice"));
            }
        }
        Ok(caps)
    }

    /// The most `scope` may credit in `currency` in one call.
    pub fn cap(&self, scope: &str, currency: Currency) -> Decimal {
        self.by_scope
            .get(&(scope.to_string(), currency))
            .or_else(|| self.by_currency.get(&currency))
            .copied()
            .unwrap_or_else(|| Decimal::from(CREDIT_CAP_UNITS_DEFAULT))
    }

    /// `Err(CreditOverCap)` when `amount` is over `scope`'s cap in `currency`.
    pub fn check(
        &self,
        scope: &str,
        currency: Currency,
        amount: Decimal,
    ) -> Result<(), WalletError> {
        let cap = self.cap(scope, currency);
        if amount > cap {
            return Err(WalletError::CreditOverCap {
                provider: scope.to_string(),
                cap,
                amount,
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    #[test]
    fn a_provider_cap_beats_a_currency_cap_which_beats_the_default() {
        let caps = CreditCaps::parse("EUR=500.00, alpha/EUR=2000.00,hub88.op/USD=10").unwrap();
        assert_eq!(caps.cap("alpha", Currency::Eur), dec("2000.00"));
        assert_eq!(caps.cap("beta", Currency::Eur), dec("500.00"));
        assert_eq!(caps.cap("hub88.op", Currency::Usd), dec("10"));
        assert_eq!(caps.cap("beta", Currency::Usd), dec("100000"));
        assert!(caps.check("beta", Currency::Eur, dec("500.00")).is_ok());
        assert_eq!(
            caps.check("beta", Currency::Eur, dec("500.01")),
            Err(WalletError::CreditOverCap {
                provider: "beta".into(),
                cap: dec("500.00"),
                amount: dec("500.01")
            })
        );
    }

    #[test]
    fn a_malformed_cap_is_refused_with_what_is_wrong() {
        for bad in [
            "EUR",
            "XXX=1",
            "EUR=1.001",
            "EUR=-5",
            "/EUR=5",
            "EUR=5,EUR=6",
            "a/EUR=1,a/EUR=2",
        ] {
            assert!(CreditCaps::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(CreditCaps::parse("").unwrap(), CreditCaps::default());
    }
}
