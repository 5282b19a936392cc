//! Money: currencies with a fixed scale and exact decimal amounts.
//!
//! An amount's scale is its currency's, fixed forever (EUR 2, JPY 0, BTC 8): every amount
//! that enters the ledger is checked against it and stored rescaled to it, so `"10"` and
//! `"10.00"` EUR are the same money and print the same. Arithmetic is checked.

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Largest single amount accepted in one command, in major units of any currency.
pub const AMOUNT_MAX: Decimal = Decimal::from_parts(1_000_000_000, 0, 0, false, 0); // 1e9
/// Largest balance (available + reserved) a wallet may hold, in major units.
pub const BALANCE_MAX: Decimal = Decimal::from_parts(3_567_587_328, 232, 0, false, 0); // 1e12
/// Longest amount string accepted, before any parsing.
pub const AMOUNT_TEXT_LEN_MAX: usize = 40;

/// A currency the wallet keeps, with its scale (digits after the point).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "&'static str", try_from = "String")]
pub enum Currency {
    Eur,
    Usd,
    Gbp,
    Sek,
    Jpy,
    Btc,
}

impl Currency {
    /// Every currency the wallet keeps.
    pub const ALL: [Currency; 6] = [
        Currency::Eur,
        Currency::Usd,
        Currency::Gbp,
        Currency::Sek,
        Currency::Jpy,
        Currency::Btc,
    ];

    /// ISO 4217 code (BTC by convention).
    pub fn code(self) -> &'static str {
        match self {
            Currency::Eur => "EUR",
            Currency::Usd => "USD",
            Currency::Gbp => "GBP",
            Currency::Sek => "SEK",
            Currency::Jpy => "JPY",
            Currency::Btc => "BTC",
        }
    }

    /// Digits after the decimal point; fixed forever for a currency.
    pub fn scale(self) -> u32 {
        match self {
            Currency::Eur | Currency::Usd | Currency::Gbp | Currency::Sek => 2,
            Currency::Jpy => 0,
            Currency::Btc => 8,
        }
    }

    /// Zero at this currency's scale (prints as `0.00` for EUR).
    pub fn zero(self) -> Decimal {
        Decimal::new(0, self.scale())
    }
}

/// The currency code is not one the wallet keeps.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown currency {0:?}: use one of EUR, USD, GBP, SEK, JPY, BTC")]
pub struct UnknownCurrency(pub String);

impl FromStr for Currency {
    type Err = UnknownCurrency;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Currency::ALL
            .into_iter()
            .find(|c| c.code() == s)
            .ok_or_else(|| UnknownCurrency(s.chars().take(16).collect()))
    }
}

impl TryFrom<String> for Currency {
    type Error = UnknownCurrency;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Currency> for &'static str {
    fn from(c: Currency) -> Self {
        c.code()
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// Why an amount was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
pub enum AmountError {
    #[error("amount is not a plain decimal string like \"12.50\"")]
    Malformed,
    #[error("amount must be greater than zero")]
    NotPositive,
    #[error("amount must not be negative")]
    Negative,
    #[error("amount has {digits} digits after the point; {currency} allows {scale}")]
    TooPrecise {
        digits: u32,
        currency: Currency,
        scale: u32,
    },
    /// More digits after the point than a decimal can hold: no currency allows them.
    #[error("amount has {digits} digits after the point; no currency allows more than 8")]
    Unrepresentable { digits: u32 },
    #[error("amount exceeds the largest accepted in one command ({AMOUNT_MAX})")]
    TooLarge,
}

/// Parses the text of an amount: an optional `-`, digits, optionally `.` and digits.
///
/// No exponent, no sign `+`, no spaces, no thousands separators, no leading zeros
/// (`"01.00"`; `"0.50"` is fine): what a caller sends is
/// exactly what is booked or it is refused. The value is exact: trailing zeros after the
/// point are dropped, and a value a `Decimal` cannot hold exactly (more than 28 digits
/// after the point, or too many digits in all) is refused, never rounded. Sign and scale
/// are judged later against the wallet's currency by [`Money::new`].
pub fn parse_decimal(text: &str) -> Result<Decimal, AmountError> {
    if text.is_empty() || text.len() > AMOUNT_TEXT_LEN_MAX {
        return Err(AmountError::Malformed);
    }
    let negative = text.starts_with('-');
    let unsigned = text.strip_prefix('-').unwrap_or(text);
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (unsigned, None),
    };
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    // One written form of each value: "01.00" is not "1.00" written another way.
    let leading_zero = int.len() > 1 && int.starts_with('0');
    if !digits(int) || frac.is_some_and(|f| !digits(f)) || leading_zero {
        return Err(AmountError::Malformed);
    }
    // Trailing zeros after the point are the same value: drop them, so only digits that
    // carry value are judged (and "1.000...0" of any allowed length is 1).
    let frac = frac.map(|f| f.trim_end_matches('0')).unwrap_or("");
    if frac.len() > MAX_SCALE {
        return Err(AmountError::Unrepresentable {
            digits: frac.len() as u32,
        });
    }
    let exact = if frac.is_empty() {
        int.to_string()
    } else {
        format!("{int}.{frac}")
    };
    // `from_str_exact` refuses what it would have to round (too many digits in all).
    let mut value = Decimal::from_str_exact(&exact).map_err(|_| AmountError::Malformed)?;
    // rust_decimal reads "-0.00" as a positive zero; keep the caller's sign so that
    // `Money` can refuse it.
    value.set_sign_negative(negative);
    Ok(value)
}

/// The most digits after the point a `Decimal` holds.
const MAX_SCALE: usize = 28;

/// A validated amount of one currency: non-negative, at the currency's scale, bounded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Money {
    amount: Decimal,
    currency: Currency,
}

impl Money {
    /// A strictly positive amount (a deposit, withdrawal or stake).
    pub fn new(amount: Decimal, currency: Currency) -> Result<Self, AmountError> {
        let money = Self::non_negative(amount, currency)?;
        if money.amount.is_zero() {
            return Err(AmountError::NotPositive);
        }
        Ok(money)
    }

    /// A zero or positive amount (a payout: zero is a lost round).
    pub fn non_negative(amount: Decimal, currency: Currency) -> Result<Self, AmountError> {
        // `-0.00` is refused too: a caller that sends a sign means something we don't book.
        if amount.is_sign_negative() {
            return Err(if amount.is_zero() {
                AmountError::NotPositive
            } else {
                AmountError::Negative
            });
        }
        let digits = amount.normalize().scale();
        if digits > currency.scale() {
            return Err(AmountError::TooPrecise {
                digits,
                currency,
                scale: currency.scale(),
            });
        }
        if amount > AMOUNT_MAX {
            return Err(AmountError::TooLarge);
        }
        let mut amount = amount;
        amount.rescale(currency.scale());
        Ok(Self { amount, currency })
    }

    /// The amount, at its currency's scale.
    pub fn amount(&self) -> Decimal {
        self.amount
    }

    /// Its currency.
    pub fn currency(&self) -> Currency {
        self.currency
    }
}

/// A part of a wallet's balance. Every store and face writes a balance as its parts by
/// name ([`Balance::parts`], [`Balance::from_parts`]), and every event says what it does to
/// each part (`WalletEvent::postings`): a new kind of money is a new variant here, a field
/// in [`Balance`], and the arms the compiler then asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Part {
    /// What the player can spend or withdraw.
    Available,
    /// Held for open bets.
    Reserved,
    /// The active bonus award's balance: money the player may stake but not withdraw
    /// until its wagering is done (see `wallet::bonus`).
    Bonus,
    /// The bonus parts of open bets' stakes, whatever award funded them.
    BonusReserved,
}

impl Part {
    /// Every part, in the order balances are written.
    pub const ALL: [Part; 4] = [
        Part::Available,
        Part::Reserved,
        Part::Bonus,
        Part::BonusReserved,
    ];

    /// Its name: the key in the log's metadata, the Redis hash field, the JSON field.
    pub fn name(self) -> &'static str {
        match self {
            Part::Available => "available",
            Part::Reserved => "reserved",
            Part::Bonus => "bonus",
            Part::BonusReserved => "bonus_reserved",
        }
    }

    /// Whether every event ever logged records it. A part added later is absent from
    /// older events' metadata and older read models, and reads as zero there.
    pub fn always_recorded(self) -> bool {
        match self {
            Part::Available | Part::Reserved => true,
            Part::Bonus | Part::BonusReserved => false,
        }
    }
}

/// A wallet's balance: what the player can spend and what is held for open bets, in
/// cash and in bonus money.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Balance {
    pub available: Decimal,
    pub reserved: Decimal,
    /// Absent from a snapshot written before bonus money: zero.
    #[serde(default)]
    pub bonus: Decimal,
    #[serde(default)]
    pub bonus_reserved: Decimal,
    pub currency: Currency,
}

impl Balance {
    /// An empty balance in `currency`.
    pub fn zero(currency: Currency) -> Self {
        Self {
            available: currency.zero(),
            reserved: currency.zero(),
            bonus: currency.zero(),
            bonus_reserved: currency.zero(),
            currency,
        }
    }

    /// One part of it.
    pub fn get(&self, part: Part) -> Decimal {
        match part {
            Part::Available => self.available,
            Part::Reserved => self.reserved,
            Part::Bonus => self.bonus,
            Part::BonusReserved => self.bonus_reserved,
        }
    }

    fn get_mut(&mut self, part: Part) -> &mut Decimal {
        match part {
            Part::Available => &mut self.available,
            Part::Reserved => &mut self.reserved,
            Part::Bonus => &mut self.bonus,
            Part::BonusReserved => &mut self.bonus_reserved,
        }
    }

    /// Adds `amount` (signed) to `part`.
    pub fn post(&mut self, part: Part, amount: Decimal) {
        let sum = self.get_mut(part);
        // Kept at the scale it had (an exact zero added would otherwise drop it).
        let scale = sum.scale().max(amount.scale());
        *sum += amount;
        if sum.scale() < scale {
            sum.rescale(scale);
        }
        // A zero is written "0.00", never "-0.00" (a part emptied by a negative posting).
        if sum.is_zero() {
            sum.set_sign_positive(true);
        }
    }

    /// Its parts with their amounts, in [`Part::ALL`] order.
    pub fn parts(&self) -> impl Iterator<Item = (Part, Decimal)> + '_ {
        Part::ALL.into_iter().map(|part| (part, self.get(part)))
    }

    /// Its parts by name with their amounts as text, as they are (a balance folded from
    /// events is at its currency's scale): the form the log's metadata, the read model
    /// and the audit write. The HTTP bodies write them at the currency's scale.
    pub fn named_parts(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.parts()
            .map(|(part, amount)| (part.name(), amount.to_string()))
    }

    /// Like [`Balance::named_parts`], without the parts added later while they are zero:
    /// what one event's record keeps (a reader takes a missing later part as zero), so
    /// a wallet without bonus money writes what it always wrote.
    pub fn recorded_parts(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.parts()
            .filter(|(part, amount)| part.always_recorded() || !amount.is_zero())
            .map(|(part, amount)| (part.name(), amount.to_string()))
    }

    /// What the player can stake: cash available and the active award's balance.
    pub fn playable(&self) -> Decimal {
        self.available + self.bonus
    }

    /// The balance in `currency` whose parts `read` finds by name (`None`: not there),
    /// the reader of every form [`Balance::named_parts`] wrote. A part missing where
    /// [`Part::always_recorded`] says it must be is an error naming it; the first error
    /// `read` gives stops it.
    pub fn from_parts(
        currency: Currency,
        mut read: impl FnMut(&'static str) -> Result<Option<Decimal>, String>,
    ) -> Result<Self, String> {
        let mut balance = Balance::zero(currency);
        for part in Part::ALL {
            match read(part.name())? {
                Some(amount) => *balance.get_mut(part) = amount,
                None if part.always_recorded() => {
                    return Err(format!("balance lacks {:?}", part.name()))
                }
                None => {}
            }
        }
        Ok(balance)
    }

    /// Every part summed: all the player's money in this wallet.
    pub fn total(&self) -> Decimal {
        self.parts().map(|(_, amount)| amount).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Decimal {
        Decimal::from_str_exact(s).unwrap()
    }

    #[test]
    fn bounds_are_what_their_comments_say() {
        assert_eq!(AMOUNT_MAX, dec("1000000000"));
        assert_eq!(BALANCE_MAX, dec("1000000000000"));
    }

    #[test]
    fn parse_accepts_plain_decimals_only() {
        assert_eq!(parse_decimal("12.50"), Ok(dec("12.50")));
        assert_eq!(parse_decimal("7"), Ok(dec("7")));
        assert_eq!(parse_decimal("-1.5"), Ok(dec("-1.5")));
        assert_eq!(parse_decimal("0.50"), Ok(dec("0.5")));
        assert_eq!(parse_decimal("0"), Ok(dec("0")));
        for bad in [
            "", "1e30", "1E3", "+1", " 1", "1 ", "1,00", ".5", "5.", "0x10", "NaN", "inf", "--1",
            "1.2.3", "01.00", "00", "-01", "007",
        ] {
            assert_eq!(parse_decimal(bad), Err(AmountError::Malformed), "{bad:?}");
        }
        assert_eq!(
            parse_decimal(&"9".repeat(AMOUNT_TEXT_LEN_MAX + 1)),
            Err(AmountError::Malformed)
        );
        // Fits the text bound but not a Decimal's 96 bits.
        assert_eq!(parse_decimal(&"9".repeat(35)), Err(AmountError::Malformed));
    }

    #[test]
    fn amounts_are_exact_or_refused_never_rounded() {
        // Issue 12: each of these was rounded into an accepted amount.
        for text in [
            "0.009999999999999999999999999999999",
            "1.000000000000000000000000000001",
            "0.00000000000000000000000000001",
        ] {
            let parsed = parse_decimal(text);
            let money = parsed.and_then(|d| Money::non_negative(d, Currency::Eur));
            assert!(money.is_err(), "{text:?} was booked as {money:?}");
        }
        assert_eq!(
            parse_decimal("0.00000000000000000000000000001"),
            Err(AmountError::Unrepresentable { digits: 29 })
        );
        // Trailing zeros carry no value, whatever their number.
        assert_eq!(
            parse_decimal("1.000000000000000000000000000000"),
            Ok(dec("1"))
        );
        assert_eq!(
            Money::new(parse_decimal("1.5000000000").unwrap(), Currency::Eur)
                .unwrap()
                .amount()
                .to_string(),
            "1.50"
        );
    }

    /// The reference: what a caller's text says, worked out on the digits themselves
    /// (no decimal type): `None` if it is not an amount `currency` can book, else the
    /// amount printed at the currency's scale.
    fn reference(text: &str, currency: Currency, zero_ok: bool) -> Option<String> {
        if text.is_empty() || text.len() > AMOUNT_TEXT_LEN_MAX || text.starts_with('-') {
            return None;
        }
        let (int, frac) = text.split_once('.').unwrap_or((text, ""));
        if int.is_empty()
            || (int.len() > 1 && int.starts_with('0'))
            || (text.contains('.') && frac.is_empty())
            || !int.bytes().chain(frac.bytes()).all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let frac = frac.trim_end_matches('0');
        let scale = currency.scale() as usize;
        if frac.len() > scale {
            return None;
        }
        let int = int.trim_start_matches('0');
        if int.len() > 10 {
            return None; // over AMOUNT_MAX (1e9) for sure
        }
        let whole: u128 = if int.is_empty() { 0 } else { int.parse().ok()? };
        let frac_scaled = format!("{frac:0<scale$}");
        let minor: u128 = whole * 10u128.pow(scale as u32)
            + if scale == 0 {
                0
            } else {
                frac_scaled.parse::<u128>().ok()?
            };
        let max_minor = 1_000_000_000u128 * 10u128.pow(scale as u32);
        if minor > max_minor || (minor == 0 && !zero_ok) {
            return None;
        }
        Some(if scale == 0 {
            minor.to_string()
        } else {
            let digits = format!("{minor:0>width$}", width = scale + 1);
            let (i, f) = digits.split_at(digits.len() - scale);
            format!("{i}.{f}")
        })
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig {
            cases: 4_096,
            failure_persistence: None,
            ..proptest::prelude::ProptestConfig::default()
        })]

        /// Every string is either refused or booked as exactly its decimal value at the
        /// currency's scale: checked against the digit-by-digit reference above.
        #[test]
        fn every_amount_text_is_refused_or_booked_exactly(
            text in "-?[0-9]{0,14}(\\.[0-9]{0,34})?|[0-9.eE+ -]{0,12}|0\\.0{0,30}[0-9]{0,8}",
            currency in proptest::sample::select(Currency::ALL.to_vec()),
            zero_ok: bool,
        ) {
            let booked = parse_decimal(&text).ok().and_then(|d| {
                let money = if zero_ok {
                    Money::non_negative(d, currency)
                } else {
                    Money::new(d, currency)
                };
                money.ok()
            });
            let want = reference(&text, currency, zero_ok);
            proptest::prop_assert_eq!(
                booked.map(|m| m.amount().to_string()),
                want,
                "{:?} in {}", text, currency
            );
        }
    }

    #[test]
    fn money_is_rescaled_to_the_currency() {
        let m = Money::new(dec("10"), Currency::Eur).unwrap();
        assert_eq!(m.amount().to_string(), "10.00");
        let m = Money::new(dec("1.10"), Currency::Eur).unwrap();
        assert_eq!(m.amount().to_string(), "1.10");
        let m = Money::new(dec("0.00000001"), Currency::Btc).unwrap();
        assert_eq!(m.amount().to_string(), "0.00000001");
        assert_eq!(
            Money::new(dec("100"), Currency::Jpy)
                .unwrap()
                .amount()
                .to_string(),
            "100"
        );
    }

    #[test]
    fn money_refuses_what_the_currency_cannot_hold() {
        assert_eq!(
            Money::new(dec("1.001"), Currency::Eur),
            Err(AmountError::TooPrecise {
                digits: 3,
                currency: Currency::Eur,
                scale: 2
            })
        );
        assert!(matches!(
            Money::new(dec("1.5"), Currency::Jpy),
            Err(AmountError::TooPrecise { .. })
        ));
        // Trailing zeros beyond the scale are the same value, not extra precision.
        assert!(Money::new(dec("1.100"), Currency::Eur).is_ok());
        assert_eq!(
            Money::new(dec("0"), Currency::Eur),
            Err(AmountError::NotPositive)
        );
        let minus_zero = parse_decimal("-0.00").unwrap();
        assert_eq!(
            Money::new(minus_zero, Currency::Eur),
            Err(AmountError::NotPositive)
        );
        assert_eq!(
            Money::non_negative(minus_zero, Currency::Eur),
            Err(AmountError::NotPositive)
        );
        assert_eq!(
            Money::new(dec("-5"), Currency::Eur),
            Err(AmountError::Negative)
        );
        assert_eq!(
            Money::new(AMOUNT_MAX + dec("0.01"), Currency::Eur),
            Err(AmountError::TooLarge)
        );
        assert!(Money::non_negative(dec("0"), Currency::Eur).is_ok());
    }

    #[test]
    fn currencies_parse_by_code_only() {
        for c in Currency::ALL {
            assert_eq!(c.code().parse::<Currency>(), Ok(c));
        }
        assert!("eur".parse::<Currency>().is_err());
        assert!("XXX".parse::<Currency>().is_err());
        assert_eq!(serde_json::to_string(&Currency::Jpy).unwrap(), "\"JPY\"");
    }
}
