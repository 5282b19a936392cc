//! The game providers this deployment knows: each one's id and shared secret, and the
//! HMAC-SHA256 signature of a request body under it. The provider face
//! ([`crate::routes::provider`]) checks every call with [`Provider::verify`].

use std::collections::HashMap;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The header a provider signs its request body in.
pub const SIGNATURE_HEADER: &str = "x-signature";

/// A configured game provider.
#[derive(Clone)]
pub struct Provider {
    pub id: String,
    secret: Vec<u8>,
}

impl Provider {
    pub fn new(id: &str, secret: &str) -> Self {
        Provider {
            id: id.to_string(),
            secret: secret.as_bytes().to_vec(),
        }
    }

    /// `hex(HMAC-SHA256(secret, body))`: what the provider sends in `X-Signature`.
    pub fn sign(&self, body: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(body);
        hex::encode(mac.finalize().into_bytes())
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes a key of any length")
    }

    /// Checks a signature in constant time.
    pub fn verify(&self, body: &[u8], signature_hex: &str) -> bool {
        let Ok(signature) = hex::decode(signature_hex.trim()) else {
            return false;
        };
        let mut mac = self.mac();
        mac.update(body);
        mac.verify_slice(&signature).is_ok()
    }
}

/// The providers by id.
pub type Providers = HashMap<String, Provider>;
