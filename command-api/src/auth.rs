//! Bearer tokens per client, with scopes. Tokens are compared by their SHA-256 digests in
//! constant time, so neither a token's length nor its prefix leaks through timing.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use domain::{BrandId, WalletId};
use sha2::{Digest, Sha256};

use crate::error::ApiError;
use crate::limits::RateLimiter;

/// What a client may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Query balances and histories.
    Read,
    /// Move money and open wallets; set a player's limits and self-exclusion.
    Write,
    /// Lock and unlock accounts (an operator's back office, not a player-facing service).
    Operator,
}

pub use domain::Brands;

/// A configured API client.
#[derive(Clone)]
pub struct ApiClient {
    name: String,
    token_sha256: [u8; 32],
    scopes: Vec<Scope>,
    /// Shared: a request's `Caller` clones its client, and this is its one list.
    brands: std::sync::Arc<Brands>,
}

impl ApiClient {
    /// A client of every brand.
    pub fn new(name: &str, token: &str, scopes: Vec<Scope>) -> Self {
        Self {
            name: name.to_string(),
            token_sha256: Sha256::digest(token.as_bytes()).into(),
            scopes,
            brands: std::sync::Arc::new(Brands::All),
        }
    }

    /// The client limited to `brands`.
    pub fn with_brands(mut self, brands: Brands) -> Self {
        self.brands = std::sync::Arc::new(brands);
        self
    }

    /// The brands it may act on.
    pub fn brands(&self) -> &Brands {
        &self.brands
    }

    /// Whether the client holds `scope`.
    pub fn has(&self, scope: Scope) -> bool {
        self.scopes.contains(&scope)
    }

    /// The client's name (never its token).
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ApiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scopes: Vec<&str> = self
            .scopes
            .iter()
            .map(|s| match s {
                Scope::Read => "read",
                Scope::Write => "write",
                Scope::Operator => "operator",
            })
            .collect();
        write!(f, "{}:****:{}", self.name, scopes.join("+"))?;
        if let Brands::Only(list) = self.brands.as_ref() {
            let names: Vec<&str> = list.iter().map(BrandId::as_str).collect();
            write!(f, ":{}", names.join("+"))?;
        }
        Ok(())
    }
}

fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The authenticated caller of a request.
pub struct Caller(pub ApiClient);

impl Caller {
    /// The client's name, as an operator action records it.
    pub fn client_id(&self) -> Result<domain::ClientId, ApiError> {
        domain::ClientId::new(self.0.name()).map_err(|e| ApiError::InvalidRequest(e.to_string()))
    }

    /// The brands the caller may act on.
    pub fn brands(&self) -> &Brands {
        &self.0.brands
    }

    /// Whether the caller may act on wallets of `brand`.
    pub fn admits(&self, brand: &BrandId) -> bool {
        self.0.brands.admits(brand)
    }

    /// Refuses with 403 unless the caller may act on `brand` (opening a wallet in it).
    pub fn require_brand(&self, brand: &BrandId) -> Result<(), ApiError> {
        if self.0.brands.admits(brand) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "client {:?} may not act on brand \"{brand}\"",
                self.0.name
            )))
        }
    }

    /// Refuses with 403 unless the caller may see every brand: what figures summed over
    /// all wallets (leaderboards, totals, reports) need until they are kept per brand.
    pub fn require_all_brands(&self) -> Result<(), ApiError> {
        match *self.0.brands {
            Brands::All => Ok(()),
            Brands::Only(_) => Err(ApiError::Forbidden(format!(
                "client {:?} is limited to some brands, and this answer sums every brand's \
                 wallets: use a token for all brands",
                self.0.name
            ))),
        }
    }

    /// Refuses with 403 unless the caller holds `scope`.
    pub fn require(&self, scope: Scope) -> Result<(), ApiError> {
        if self.0.has(scope) {
            Ok(())
        } else {
            Err(ApiError::Forbidden(format!(
                "client {:?} lacks the {scope:?} scope for this call",
                self.0.name
            )))
        }
    }
}

/// The scope a route requires, as a type: a native route takes `Authorized<needs::X>`, so
/// the scope is checked before the handler runs and a route cannot forget it.
pub mod needs {
    use super::Scope;

    /// A scope as a type, for [`super::Authorized`].
    pub trait Needed: Send + Sync + 'static {
        const SCOPE: Scope;
    }

    /// The `read` scope.
    pub struct Read;
    /// The `write` scope.
    pub struct Write;
    /// The `operator` scope.
    pub struct Operator;

    impl Needed for Read {
        const SCOPE: Scope = Scope::Read;
    }
    impl Needed for Write {
        const SCOPE: Scope = Scope::Write;
    }
    impl Needed for Operator {
        const SCOPE: Scope = Scope::Operator;
    }
}

/// A caller that holds the scope `S` names (403 `FORBIDDEN` otherwise), authenticated and
/// rate-limited as [`Caller`], to which it derefs.
pub struct Authorized<S: needs::Needed>(pub Caller, std::marker::PhantomData<S>);

impl<S: needs::Needed> std::ops::Deref for Authorized<S> {
    type Target = Caller;
    fn deref(&self) -> &Caller {
        &self.0
    }
}

impl<St: Authenticates + Send + Sync, S: needs::Needed> FromRequestParts<St> for Authorized<S> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, ApiError> {
        let caller = Caller::from_request_parts(parts, state).await?;
        caller.require(S::SCOPE)?;
        Ok(Authorized(caller, std::marker::PhantomData))
    }
}

/// What a state must offer for a request to be authenticated: the configured clients and
/// the per-client rate limiter. (The application's state implements it, so this module
/// does not depend on it.)
pub trait Authenticates {
    fn clients(&self) -> &[ApiClient];
    fn limiter(&self) -> &RateLimiter;
    /// Whether `wallet` was opened in one of `brands`.
    fn wallet_admitted(
        &self,
        wallet: WalletId,
        brands: &Brands,
    ) -> impl std::future::Future<Output = Result<bool, ApiError>> + Send;
}

impl<S: Authenticates + Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    /// The client, and for one limited to some brands, the wallet a path names
    /// (`/v1/wallets/{id}...`, `/v1/read/wallets/{id}`) checked to exist and be of one of
    /// them, before anything else of the request is read: another brand's wallet, one
    /// never opened, and a path whose id is not in its one written form (percent-encoded,
    /// say) are all `404 WALLET_NOT_FOUND`, alike, so the answer tells nothing about
    /// another brand. On every route at once: a new route cannot forget it.
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let client = client_of(state.clients(), &parts.headers)?.clone();
        state.limiter().check(&format!("client:{}", client.name))?;
        if matches!(*client.brands, Brands::Only(_)) {
            match wallet_in_path(parts.uri.path()) {
                WalletInPath::None => {}
                WalletInPath::Unreadable => return Err(ApiError::wallet_not_found()),
                WalletInPath::Wallet(wallet) => {
                    if !state.wallet_admitted(wallet, &client.brands).await? {
                        return Err(ApiError::wallet_not_found());
                    }
                }
            }
        }
        Ok(Caller(client))
    }
}

/// What a native path says of a wallet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletInPath {
    /// It is not a wallet's path.
    None,
    /// It is, and names this wallet in its one written form.
    Wallet(WalletId),
    /// It is, but its id segment is not a wallet id as written (percent-encoded, upper
    /// case, empty...): the router may still decode it into one, so it is refused.
    Unreadable,
}

/// The wallet a native path names (the raw path, before any percent-decoding).
pub fn wallet_in_path(path: &str) -> WalletInPath {
    let Some(rest) = path
        .strip_prefix("/v1/wallets/")
        .or_else(|| path.strip_prefix("/v1/read/wallets/"))
    else {
        return WalletInPath::None;
    };
    match rest.split('/').next().unwrap_or_default().parse() {
        Ok(wallet) => WalletInPath::Wallet(wallet),
        Err(_) => WalletInPath::Unreadable,
    }
}

/// The client whose bearer token `headers` carry, compared by digest in constant time.
pub fn client_of<'c>(
    clients: &'c [ApiClient],
    headers: &axum::http::HeaderMap,
) -> Result<&'c ApiClient, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ApiError::Unauthorized("send the header `Authorization: Bearer <token>`".into())
        })?;
    let digest: [u8; 32] = Sha256::digest(token.trim().as_bytes()).into();
    // Look at every client, so the time taken does not tell which one matched.
    let mut found = None;
    for client in clients {
        if constant_time_eq(&client.token_sha256, &digest) {
            found = Some(client);
        }
    }
    found.ok_or_else(|| ApiError::Unauthorized("unknown bearer token".into()))
}
