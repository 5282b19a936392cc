//! What the Hub88-style face needs besides the engine (`../shared/hub88-wallet.md`): each
//! operator's RSA public key and the check of `X-Hub88-Signature` (RSA-SHA256, PKCS#1
//! v1.5, over the raw body, base64), and the conversion of its integer amounts (1/100000
//! of the currency unit) to and from the ledger's decimals; and the answer every call gets
//! (HTTP 200 and an `RS_*` status, [`respond`]), here so that the gate can give it to an
//! unknown operator without reaching up to the endpoints, which are in `routes::hub88`.
//!
//! Verification is `ring`'s (already in the tree through rustls): no RSA of our own. A
//! PEM key is decoded here: `BEGIN PUBLIC KEY` (SubjectPublicKeyInfo, what `openssl pkey
//! -pubout` writes) or `BEGIN RSA PUBLIC KEY` (PKCS#1).

use base64::Engine;
use domain::Currency;
use ring::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use rust_decimal::Decimal;

/// The scale of Hub88 amounts: integers in 1/100000 of the unit.
pub const AMOUNT_SCALE: u32 = 5;

/// The answer of every call: HTTP 200, the status, and the balance when known.
pub fn respond(
    user: Option<&str>,
    request_uuid: Option<&str>,
    status: &str,
    balance: Option<domain::Balance>,
) -> axum::Json<serde_json::Value> {
    let mut body = serde_json::json!({
        "user": user,
        "status": status,
        "request_uuid": request_uuid,
    });
    if let Some(b) = balance {
        body["currency"] = serde_json::json!(b.currency.code());
        // The playable total: cash and the active bonus award (the contract's "Bonus money").
        body["balance"] = serde_json::json!(to_units(b.playable()));
    }
    axum::Json(body)
}

/// Counts an answer of the face by operator and status: its refusals travel in HTTP 200,
/// out of reach of the 5xx and 4xx rates.
pub fn count(operator: &str, status: &'static str) {
    metrics::counter!("hub88_responses_total", "operator" => operator.to_string(), "status" => status)
        .increment(1);
}

/// The answer to a call for an operator that is not configured (the gate gives it before
/// the body is read).
pub fn unknown_partner() -> axum::response::Response {
    use axum::response::IntoResponse;
    count("unknown", "RS_ERROR_INVALID_PARTNER");
    respond(None, None, "RS_ERROR_INVALID_PARTNER", None).into_response()
}

/// The scope of an operator's ids (transactions, rounds, sessions): `hub88.{id}`. A
/// provider id has no `.`, so the two faces' ids never meet.
pub fn scope(operator: &str) -> String {
    format!("hub88.{operator}")
}

/// An operator of the Hub88 face and the public key its calls are signed with.
#[derive(Clone)]
pub struct Hub88Operator {
    pub id: String,
    /// PKCS#1 `RSAPublicKey` DER, as `ring` verifies with.
    key: Vec<u8>,
}

impl std::fmt::Debug for Hub88Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Hub88Operator({}, {}-byte key)", self.id, self.key.len())
    }
}

impl Hub88Operator {
    /// An operator with the key in `pem`; a message saying what is wrong otherwise.
    pub fn new(id: &str, pem: &str) -> Result<Self, String> {
        if id.is_empty()
            || id.len() > 32
            || !id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        {
            return Err(format!(
                "operator id {id:?} must be 1 to 32 of A-Z a-z 0-9 _ -"
            ));
        }
        let key = rsa_public_key(pem)?;
        // `ring` verifies with keys of 2048 to 8192 bits only: a key outside that range
        // would be taken here and then fail every call's signature.
        let bits = modulus_bits(&key).ok_or("the RSA key has no readable modulus")?;
        if !(2048..=8192).contains(&bits) {
            return Err(format!(
                "the RSA key has {bits} bits; the Hub88 face takes keys of 2048 to 8192 bits"
            ));
        }
        Ok(Hub88Operator {
            id: id.to_string(),
            key,
        })
    }

    /// Whether `signature_b64` is this operator's signature of `body`.
    pub fn verify(&self, body: &[u8], signature_b64: &str) -> bool {
        let Ok(signature) = base64::engine::general_purpose::STANDARD.decode(signature_b64.trim())
        else {
            return false;
        };
        UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &self.key)
            .verify(body, &signature)
            .is_ok()
    }
}

/// The PKCS#1 DER of the RSA public key in `pem`.
fn rsa_public_key(pem: &str) -> Result<Vec<u8>, String> {
    let (label, der) = pem_block(pem)?;
    match label.as_str() {
        "RSA PUBLIC KEY" => Ok(der),
        "PUBLIC KEY" => spki_rsa_key(&der),
        other => Err(format!(
            "expected a PEM \"PUBLIC KEY\" or \"RSA PUBLIC KEY\", found \"{other}\""
        )),
    }
}

/// The label and bytes of the first PEM block in `text`.
fn pem_block(text: &str) -> Result<(String, Vec<u8>), String> {
    let begin = text
        .find("-----BEGIN ")
        .ok_or("no PEM block (-----BEGIN ...-----)")?;
    let rest = &text[begin + "-----BEGIN ".len()..];
    let label_end = rest.find("-----").ok_or("a PEM header without its end")?;
    let label = rest[..label_end].to_string();
    let body = &rest[label_end + 5..];
    let end = body
        .find(&format!("-----END {label}-----"))
        .ok_or_else(|| format!("no -----END {label}----- line"))?;
    let b64: String = body[..end].chars().filter(|c| !c.is_whitespace()).collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|e| format!("the PEM body is not base64: {e}"))?;
    Ok((label, der))
}

/// The `RSAPublicKey` inside a SubjectPublicKeyInfo: SEQUENCE { AlgorithmIdentifier
/// (rsaEncryption), BIT STRING { RSAPublicKey } }.
fn spki_rsa_key(der: &[u8]) -> Result<Vec<u8>, String> {
    const RSA_ENCRYPTION: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
    let (spki, _) = der_element(der, 0x30).ok_or("the key is not a DER SEQUENCE")?;
    let (algorithm, rest) = der_element(spki, 0x30).ok_or("no AlgorithmIdentifier")?;
    let (oid, _) = der_element(algorithm, 0x06).ok_or("no algorithm OID")?;
    if oid != RSA_ENCRYPTION {
        return Err("the key is not an RSA key (expected rsaEncryption)".into());
    }
    let (bits, _) = der_element(rest, 0x03).ok_or("no BIT STRING of the key")?;
    match bits.split_first() {
        Some((0, key)) => Ok(key.to_vec()),
        _ => Err("the key's BIT STRING is malformed".into()),
    }
}

/// The size in bits of the modulus of a PKCS#1 `RSAPublicKey` (SEQUENCE { INTEGER n,
/// INTEGER e }).
fn modulus_bits(key: &[u8]) -> Option<usize> {
    let (sequence, _) = der_element(key, 0x30)?;
    let (modulus, _) = der_element(sequence, 0x02)?;
    let significant = modulus.iter().position(|b| *b != 0)?;
    let first = modulus[significant];
    Some((modulus.len() - significant - 1) * 8 + (8 - first.leading_zeros() as usize))
}

/// The contents of the DER element of `tag` at the start of `input`, and what follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&t, rest) = input.split_first()?;
    if t != tag {
        return None;
    }
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| rest.split_at(len))
}

/// Why an amount cannot be taken.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AmountProblem {
    /// Not exact at the currency's scale, negative, or out of range.
    WrongTypes,
    /// The currency has more decimals than the face's 1/100000.
    WrongCurrency,
}

/// `units` (1/100000 of the unit) of `currency` as the ledger's decimal at its scale.
pub fn from_units(units: i64, currency: Currency) -> Result<Decimal, AmountProblem> {
    if currency.scale() > AMOUNT_SCALE {
        return Err(AmountProblem::WrongCurrency);
    }
    if units < 0 {
        return Err(AmountProblem::WrongTypes);
    }
    let mut amount = Decimal::new(units, AMOUNT_SCALE).normalize();
    if amount.scale() > currency.scale() {
        return Err(AmountProblem::WrongTypes);
    }
    amount.rescale(currency.scale());
    Ok(amount)
}

/// A balance as the face writes it: an integer of 1/100000 units.
pub fn to_units(amount: Decimal) -> i64 {
    use rust_decimal::prelude::ToPrimitive;
    (amount * Decimal::from(100_000))
        .trunc()
        .to_i64()
        .unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    const PUBLIC: &str = include_str!("../../tests/fixtures/hub88-test-key.pub.pem");

    #[test]
    fn amounts_are_exact_at_the_scale_or_refused() {
        assert_eq!(from_units(356_000, Currency::Eur), Ok(Decimal::new(356, 2)));
        assert_eq!(from_units(0, Currency::Eur).unwrap().to_string(), "0.00");
        assert_eq!(
            from_units(356_001, Currency::Eur),
            Err(AmountProblem::WrongTypes)
        );
        assert_eq!(
            from_units(-1, Currency::Eur),
            Err(AmountProblem::WrongTypes)
        );
        assert_eq!(from_units(100_000, Currency::Jpy).unwrap().to_string(), "1");
        assert_eq!(
            from_units(50_000, Currency::Jpy),
            Err(AmountProblem::WrongTypes)
        );
        assert_eq!(
            from_units(1, Currency::Btc),
            Err(AmountProblem::WrongCurrency)
        );
        assert_eq!(to_units(Decimal::new(100_500, 2)), 100_500_000);
    }

    #[test]
    fn keys_are_read_from_pem_and_bad_ones_refused() {
        let op = Hub88Operator::new("op1", PUBLIC).unwrap();
        assert!(op.key.len() > 250, "a 2048-bit PKCS#1 key");
        assert!(!op.verify(b"{}", "not base64!"));
        assert!(!op.verify(b"{}", ""));
        assert!(Hub88Operator::new("op1", "nothing").is_err());
        assert!(Hub88Operator::new("op:1", PUBLIC).is_err());
        let private = include_str!("../../tests/fixtures/hub88-test-key.pem");
        assert!(
            Hub88Operator::new("op1", private).is_err(),
            "a private key is refused"
        );
        assert_eq!(modulus_bits(&op.key), Some(2048));
        let short = include_str!("../../tests/fixtures/hub88-1024-bit.pub.pem");
        let refused = Hub88Operator::new("op1", short).unwrap_err();
        assert!(refused.contains("1024 bits"), "{refused}");
    }
}
