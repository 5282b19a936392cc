//! Typed identifiers. Caller-chosen ids are bounded, printable strings; a wallet's id is
//! derived from its player and currency, so "one wallet per player and currency" needs no
//! lookup table: opening the same pair twice lands on the same aggregate.

use serde::{Deserialize, Serialize};
use std::fmt;
use uuid::Uuid;

use crate::money::Currency;

/// Longest caller-chosen id accepted (transaction, reservation, player, game, round).
pub const ID_LEN_MAX: usize = 128;
/// Longest id as stored: a caller's id scoped by its provider (`{pid}:{id}`, a provider id
/// of at most 32 characters and a role) must not eat the caller's 128.
pub const STORED_ID_LEN_MAX: usize = 192;
/// Longest scope (a provider id, with a role): see [`TransactionId::scoped`].
pub const SCOPE_LEN_MAX: usize = STORED_ID_LEN_MAX - ID_LEN_MAX - 1;

/// Why a caller-chosen id was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("{field} must be 1 to {max} characters, got {len}")]
    Length {
        field: &'static str,
        len: usize,
        max: usize,
    },
    #[error("{field} must not contain control characters")]
    ControlCharacter { field: &'static str },
    /// Invisible characters (zero-width spaces and joiners, direction overrides, soft
    /// hyphens...) would let two ids that look the same name different things.
    #[error("{field} must not contain invisible formatting characters (U+{code:04X})")]
    FormatCharacter { field: &'static str, code: u32 },
    /// White space at either end (or only white space), or a combining mark first: ids
    /// that look like another id, or like none.
    #[error("{field} must not {why}")]
    LookAlike {
        field: &'static str,
        why: &'static str,
    },
    #[error("{field} must not contain {character:?}: {why}")]
    Reserved {
        field: &'static str,
        character: char,
        why: &'static str,
    },
}

/// A new id from a caller: [`canonical_id`], and neither white space at either end nor a
/// combining mark first (`" "`, `"a "`, a lone U+0301), which would look like another id
/// or like none. Ids read back from the log take the older rule alone, so what was
/// accepted before stays readable.
fn new_id(field: &'static str, value: String, max: usize) -> Result<String, IdError> {
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let value = canonical_id(field, value, max)?;
    let (first, last) = match (value.chars().next(), value.chars().next_back()) {
        (Some(first), Some(last)) => (first, last),
        _ => unreachable!("canonical_id refuses an empty id"),
    };
    if first.is_whitespace() || last.is_whitespace() {
        return Err(IdError::LookAlike {
            field,
            why: "begin or end with white space",
        });
    }
    if matches!(
        first.general_category(),
        GeneralCategory::NonspacingMark
            | GeneralCategory::SpacingMark
            | GeneralCategory::EnclosingMark
    ) {
        return Err(IdError::LookAlike {
            field,
            why: "begin with a combining mark",
        });
    }
    Ok(value)
}

/// The one form of an id: Unicode NFC (so a composed "é" and "e" + U+0301 are the same
/// id), with no control or format characters, 1 to `max` characters.
fn canonical_id(field: &'static str, value: String, max: usize) -> Result<String, IdError> {
    // ASCII, as almost every id is: already NFC, one char per byte, and no ASCII
    // character is of the refused categories but the controls. The general-category
    // lookup per char was a twentieth of a replay's CPU (perf, issue 34). The same
    // answers as `canonical_unicode_id` (test `ascii_ids_take_the_same_rules`).
    if value.is_ascii() {
        if value.is_empty() || value.len() > max {
            let len = value.len();
            return Err(IdError::Length { field, len, max });
        }
        if value.bytes().any(|b| b.is_ascii_control()) {
            return Err(IdError::ControlCharacter { field });
        }
        return Ok(value);
    }
    canonical_unicode_id(field, value, max)
}

/// [`canonical_id`] for any text, character by character.
fn canonical_unicode_id(field: &'static str, value: String, max: usize) -> Result<String, IdError> {
    use unicode_normalization::{is_nfc_quick, IsNormalized, UnicodeNormalization};
    use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
    let value = match is_nfc_quick(value.chars()) {
        IsNormalized::Yes => value,
        _ => value.nfc().collect(),
    };
    let len = value.chars().count();
    if len == 0 || len > max {
        return Err(IdError::Length { field, len, max });
    }
    for c in value.chars() {
        if c.is_control() {
            return Err(IdError::ControlCharacter { field });
        }
        if matches!(
            c.general_category(),
            GeneralCategory::Format
                | GeneralCategory::Surrogate
                | GeneralCategory::PrivateUse
                | GeneralCategory::Unassigned
                | GeneralCategory::LineSeparator
                | GeneralCategory::ParagraphSeparator
        ) {
            return Err(IdError::FormatCharacter {
                field,
                code: u32::from(c),
            });
        }
    }
    Ok(value)
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $field:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Validates and wraps a caller-chosen id (in its canonical form: NFC).
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                new_id($field, value.into(), ID_LEN_MAX).map(Self)
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        /// How an id comes back from the log: as stored, which may be longer than a
        /// caller's (a provider-scoped id).
        impl TryFrom<String> for $name {
            type Error = IdError;
            fn try_from(value: String) -> Result<Self, IdError> {
                canonical_id($field, value, STORED_ID_LEN_MAX).map(Self)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

string_id!(
    /// The casino's id of a player.
    PlayerId,
    "player_id"
);
string_id!(
    /// The caller's id of one money movement; the key of idempotency.
    TransactionId,
    "transaction_id"
);
string_id!(
    /// The id of a reservation (a bet's stake); the transaction id of the reserve.
    ReservationId,
    "reservation_id"
);
string_id!(
    /// A game's id, as the provider names it.
    GameId,
    "game_id"
);
string_id!(
    /// A round's id within a game.
    RoundId,
    "round_id"
);
string_id!(
    /// A provider's promotion or jackpot campaign, named on a win without a bet.
    CampaignId,
    "campaign_id"
);
string_id!(
    /// Why an adjustment (a correction of a settled round, or a back-office credit or
    /// debit) was made, as the caller wrote it.
    AdjustmentReason,
    "reason"
);

string_id!(
    /// The API client that made a change of a player's protections (its token's name),
    /// recorded with the change for the audit.
    ClientId,
    "client"
);
string_id!(
    /// Why an operator locked or unlocked an account, as the operator wrote it.
    LockReason,
    "reason"
);
string_id!(
    /// A bonus award's id: the transaction id of its grant (or of the free-rounds grant
    /// whose winnings it holds).
    BonusId,
    "bonus_id"
);
string_id!(
    /// Why an operator forfeited a bonus award, as the operator wrote it.
    ForfeitReason,
    "reason"
);

impl TransactionId {
    /// `{scope}:{id}`: a caller's id (validated as any caller id, up to 128 characters)
    /// in a space of its own. A provider's ids are scoped by the provider (and a role, when
    /// the caller reused one id for two movements): the scope is 1 to
    /// [`SCOPE_LEN_MAX`] characters without `:`, and native ids never contain `:`, so no
    /// caller can name an id in another's space.
    pub fn scoped(scope: &str, id: &str) -> Result<Self, IdError> {
        let id = new_id("transaction_id", id.to_string(), ID_LEN_MAX)?;
        if scope.is_empty() || scope.chars().count() > SCOPE_LEN_MAX || scope.contains(':') {
            return Err(IdError::Reserved {
                field: "scope",
                character: ':',
                why: "a scope is 1 to 63 characters without ':'",
            });
        }
        Ok(Self(format!("{scope}:{id}")))
    }
}

impl TransactionId {
    /// The scope of a scoped id (`{scope}:{id}`, see [`TransactionId::scoped`]); `None`
    /// for a native caller's id.
    pub fn scope(&self) -> Option<&str> {
        self.0.split_once(':').map(|(scope, _)| scope)
    }
}

impl RoundId {
    /// `{pid}:{id}`: a provider's round in the wallet's space, so two providers' rounds of
    /// one player never meet (a native round id has no `:`). Checked as
    /// [`TransactionId::scoped`].
    pub fn scoped(provider: &str, id: &str) -> Result<Self, IdError> {
        TransactionId::scoped(provider, id).map(|t| Self(t.0))
    }

    /// The provider whose round this is, from its scope; `None` for a native round (and
    /// for a provider's round logged before rounds were scoped, docs/0012).
    pub fn provider(&self) -> Option<&str> {
        self.0.split_once(':').map(|(provider, _)| provider)
    }
}

impl From<TransactionId> for BonusId {
    /// A grant's transaction id names its award.
    fn from(id: TransactionId) -> Self {
        Self(id.0)
    }
}

impl From<ReservationId> for TransactionId {
    fn from(id: ReservationId) -> Self {
        Self(id.0)
    }
}

impl From<TransactionId> for ReservationId {
    fn from(id: TransactionId) -> Self {
        Self(id.0)
    }
}

/// A brand (a site or white label of the operator) that a wallet belongs to, for ever
/// (the contract's "Brands and back office"). 1 to 64 characters of `a-z`, `0-9`, `_`,
/// `-` and `.`, so it fits in a token's list (`+`-joined) and in a key. A wallet opened
/// without one is [`BrandId::DEFAULT`]'s, as is every wallet opened before brands existed.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct BrandId(String);

impl BrandId {
    /// The brand of a wallet that names none.
    pub const DEFAULT: &'static str = "default";
    /// Longest brand id.
    pub const LEN_MAX: usize = 64;

    /// Validates a brand id.
    pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
        let value = value.into();
        if value.is_empty() || value.len() > Self::LEN_MAX {
            return Err(IdError::Length {
                field: "brand_id",
                len: value.chars().count(),
                max: Self::LEN_MAX,
            });
        }
        if let Some(c) = value
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || "_-.".contains(*c)))
        {
            return Err(IdError::Reserved {
                field: "brand_id",
                character: c,
                why: "a brand id is a-z, 0-9, '_', '-' and '.'",
            });
        }
        Ok(Self(value))
    }

    /// [`BrandId::DEFAULT`].
    pub fn default_brand() -> Self {
        Self(Self::DEFAULT.to_string())
    }

    pub fn is_default(&self) -> bool {
        self.0 == Self::DEFAULT
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for BrandId {
    type Error = IdError;
    fn try_from(value: String) -> Result<Self, IdError> {
        Self::new(value)
    }
}

impl From<BrandId> for String {
    fn from(id: BrandId) -> String {
        id.0
    }
}

impl fmt::Display for BrandId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The brands an API client or a provider may act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Brands {
    /// Every brand (`*`, or no fourth field).
    All,
    /// These alone.
    Only(Vec<BrandId>),
}

impl Brands {
    /// Whether a wallet of `brand` is this client's to see and move.
    pub fn admits(&self, brand: &BrandId) -> bool {
        match self {
            Brands::All => true,
            Brands::Only(list) => list.contains(brand),
        }
    }
}

/// Namespace of wallet ids (UUIDv5): fixed forever, or every wallet id changes.
const WALLET_NAMESPACE: Uuid = Uuid::from_u128(0x6b1f_2c1e_8d4a_4f55_9a8e_2b7c_0d3e_51a7);

/// One wallet: a player's money in one currency.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct WalletId(Uuid);

impl WalletId {
    /// The wallet of `player` in `currency`; the same pair always gives the same id.
    pub fn for_player(player: &PlayerId, currency: Currency) -> Self {
        let name = format!("{}\u{1f}{}", player.as_str(), currency.code());
        Self(Uuid::new_v5(&WALLET_NAMESPACE, name.as_bytes()))
    }

    /// The wallet of `player` in `currency` in `brand`: [`WalletId::for_player`]'s for
    /// the default brand (so every wallet opened before brands keeps its id), another for
    /// each other brand (a player may hold wallets in several).
    pub fn for_player_in(brand: &BrandId, player: &PlayerId, currency: Currency) -> Self {
        if brand.is_default() {
            return Self::for_player(player, currency);
        }
        // `\u{1e}` never appears in a brand id, a player id or a currency code.
        let name = format!(
            "{}\u{1e}{}\u{1f}{}",
            brand.as_str(),
            player.as_str(),
            currency.code()
        );
        Self(Uuid::new_v5(&WALLET_NAMESPACE, name.as_bytes()))
    }

    /// The id as a UUID.
    pub fn as_uuid(&self) -> Uuid {
        self.0
    }
}

/// A wallet id that is not in its one written form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a wallet id is a UUID in lowercase hyphenated form (8-4-4-4-12 hex digits)")]
pub struct WalletIdError;

/// Only the canonical form (lowercase, hyphenated, as `Display` prints it) is a wallet id:
/// uppercase, simple, braced or URN forms of the same UUID are refused, so one wallet has
/// one name everywhere (paths, logs, keys).
impl std::str::FromStr for WalletId {
    type Err = WalletIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let canonical = s.len() == 36
            && s.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        if !canonical {
            return Err(WalletIdError);
        }
        Uuid::parse_str(s).map(Self).map_err(|_| WalletIdError)
    }
}

impl fmt::Display for WalletId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.hyphenated().fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    proptest! {
        /// The ASCII fast path of `canonical_id` gives what the character-by-character
        /// rules give, for any ASCII text (controls, spaces, DEL, empty, too long).
        #[test]
        fn ascii_ids_take_the_same_rules(value in "[\\x00-\\x7f]{0,12}", max in 1usize..10) {
            prop_assert_eq!(
                super::canonical_id("id", value.clone(), max),
                super::canonical_unicode_id("id", value, max)
            );
        }
    }

    use super::*;

    #[test]
    fn wallet_id_is_stable_per_player_and_currency() {
        let p = PlayerId::new("player-1").unwrap();
        assert_eq!(
            WalletId::for_player(&p, Currency::Eur),
            WalletId::for_player(&p, Currency::Eur)
        );
        assert_ne!(
            WalletId::for_player(&p, Currency::Eur),
            WalletId::for_player(&p, Currency::Usd)
        );
    }

    #[test]
    fn a_brand_gives_a_player_a_wallet_of_its_own_and_the_default_keeps_the_old_id() {
        let p = PlayerId::new("alice").unwrap();
        let brand = |b: &str| BrandId::new(b).unwrap();
        assert_eq!(
            WalletId::for_player_in(&BrandId::default_brand(), &p, Currency::Eur),
            WalletId::for_player(&p, Currency::Eur)
        );
        let a = WalletId::for_player_in(&brand("casino-a"), &p, Currency::Eur);
        assert_ne!(a, WalletId::for_player(&p, Currency::Eur));
        assert_ne!(
            a,
            WalletId::for_player_in(&brand("casino-b"), &p, Currency::Eur)
        );
        assert_eq!(
            a,
            WalletId::for_player_in(&brand("casino-a"), &p, Currency::Eur)
        );
        for bad in ["", "Casino", "a+b", "a:b", "*", &"x".repeat(65)] {
            assert!(BrandId::new(bad).is_err(), "{bad:?}");
        }
        assert!(BrandId::new("casino-a.uk_2").is_ok());
    }

    #[test]
    fn a_wallet_id_has_one_written_form() {
        let id = WalletId::for_player(&PlayerId::new("p").unwrap(), Currency::Eur);
        let text = id.to_string();
        assert_eq!(text.parse::<WalletId>(), Ok(id));
        let simple = text.replace('-', "");
        for other in [
            text.to_uppercase(),
            simple,
            format!("{{{text}}}"),
            format!("urn:uuid:{text}"),
            format!(" {text}"),
        ] {
            assert_eq!(other.parse::<WalletId>(), Err(WalletIdError), "{other:?}");
        }
    }

    #[test]
    fn ids_of_white_space_or_a_lone_combining_mark_are_refused() {
        // Issue 28: " " and a lone U+0301 were accepted as transaction ids.
        for odd in [
            " ",
            "   ",
            "a ",
            " a",
            "\u{301}",
            "\u{301}abc",
            "\u{20dd}x",
            "\u{3000}",
        ] {
            assert!(
                matches!(TransactionId::new(odd), Err(IdError::LookAlike { .. })),
                "{odd:?}"
            );
            assert!(TransactionId::scoped("alpha", odd).is_err(), "{odd:?}");
        }
        // White space inside an id, and a mark after a letter, are fine.
        assert!(TransactionId::new("bet 1").is_ok());
        assert_eq!(
            TransactionId::new("e\u{301}").unwrap(),
            TransactionId::new("\u{e9}").unwrap()
        );
        // What the log holds is read as it was accepted then.
        assert!(TransactionId::try_from(" old ".to_string()).is_ok());
    }

    #[test]
    fn ids_that_look_alike_are_one_id_or_refused() {
        // A decomposed "é" is the composed one.
        let decomposed = PlayerId::new("jose\u{301}").unwrap();
        assert_eq!(decomposed, PlayerId::new("jos\u{e9}").unwrap());
        // Invisible characters are refused, not kept.
        for sneaky in [
            "al\u{200b}ice",
            "alice\u{202e}",
            "\u{feff}alice",
            "al\u{ad}ice",
            "a\u{2028}b",
        ] {
            assert!(
                matches!(PlayerId::new(sneaky), Err(IdError::FormatCharacter { .. })),
                "{sneaky:?}"
            );
        }
        assert!(PlayerId::new("Zoë Ω 名前").is_ok());
    }

    #[test]
    fn a_scoped_id_keeps_the_callers_whole_length() {
        let id = "x".repeat(ID_LEN_MAX);
        let scoped = TransactionId::scoped(&"p".repeat(32), &id).unwrap();
        assert_eq!(scoped.as_str().len(), 32 + 1 + ID_LEN_MAX);
        assert!(TransactionId::scoped("p", &"x".repeat(ID_LEN_MAX + 1)).is_err());
        assert!(TransactionId::scoped("a:b", "x").is_err());
        // What the log stores comes back, though it is longer than a caller's id.
        let back: TransactionId =
            serde_json::from_value(serde_json::json!(scoped.as_str())).unwrap();
        assert_eq!(back, scoped);
    }

    #[test]
    fn ids_are_bounded_and_printable() {
        assert!(TransactionId::new("").is_err());
        assert!(TransactionId::new("x".repeat(ID_LEN_MAX)).is_ok());
        assert!(TransactionId::new("x".repeat(ID_LEN_MAX + 1)).is_err());
        assert!(TransactionId::new("a\nb").is_err());
        assert!(serde_json::from_str::<TransactionId>("\"\"").is_err());
    }
}
