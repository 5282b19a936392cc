//! Which brand each wallet belongs to, for the brand check of every native route
//! (`crate::auth`'s `Caller`). A wallet's brand never changes once it is opened, so an
//! answer read from the log is kept: the check costs one indexed read per wallet and
//! process, then none. Clients of every brand never ask.

use std::collections::HashMap;
use std::sync::RwLock;

use domain::{BrandId, Brands, WalletId};
use sqlx::PgPool;

use crate::error::ApiError;

/// Most wallets whose brand is kept; past it the map starts afresh (each entry is some
/// 100 bytes, so at most a few MB).
const KEPT_MAX: usize = 50_000;

/// Wallets' brands, read from the log once each.
pub struct BrandDirectory {
    pool: PgPool,
    known: RwLock<HashMap<WalletId, BrandId>>,
}

impl BrandDirectory {
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            known: RwLock::new(HashMap::new()),
        }
    }

    /// Whether `wallet` was opened in one of `brands`: the check of every request of a
    /// client limited to brands, answered under a shared lock without a copy once the
    /// wallet is known.
    pub async fn admitted(&self, wallet: WalletId, brands: &Brands) -> Result<bool, ApiError> {
        if let Some(brand) = self.known.read().expect("not poisoned").get(&wallet) {
            return Ok(brands.admits(brand));
        }
        Ok(self
            .brand_of(wallet)
            .await?
            .is_some_and(|b| brands.admits(&b)))
    }

    /// The brand of `wallet`; `None` when it was never opened (not kept: it may be
    /// opened next).
    pub async fn brand_of(&self, wallet: WalletId) -> Result<Option<BrandId>, ApiError> {
        if let Some(brand) = self.known.read().expect("not poisoned").get(&wallet) {
            return Ok(Some(brand.clone()));
        }
        let brand = eventstore::payload::wallet_brand(&self.pool, wallet).await?;
        if let Some(b) = &brand {
            let mut known = self.known.write().expect("not poisoned");
            if known.len() >= KEPT_MAX {
                known.clear();
            }
            known.insert(wallet, b.clone());
        }
        Ok(brand)
    }
}
